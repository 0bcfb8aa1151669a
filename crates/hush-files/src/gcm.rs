//! AES-256-GCM over a stream, for files of any size in flat memory.
//!
//! Every OMEMO client encrypts a shared file as one GCM message with the tag appended
//! (XEP-0454, XEP-0448): the whole file is one nonce and one tag, so it cannot be cut into
//! independently sealed chunks. No maintained Rust crate offers GCM incrementally, so this
//! module builds it from its two halves (NIST SP 800-38D):
//!
//! - **CTR:** the keystream is AES over the counter blocks `inc32(J0)`, `inc32²(J0)`, …,
//!   applied with aws-lc's AES-CTR, restarted wherever the low 32 bits of the counter wrap
//!   (possible only with a 16-byte IV, whose `J0` is a hash).
//! - **GHASH** over the ciphertext, as a polynomial in `H = AES_K(0¹²⁸)`. aws-lc computes it
//!   fastest inside its own GCM, so each run of whole blocks is passed to a GCM seal as
//!   *additional data* with no plaintext, under a fixed internal nonce. That seal's tag is
//!   `GHASH(run ‖ len) ⊕ AES_K(nonce ‖ 1)`; removing the mask and the length block leaves
//!   `H·P(run)`, where `P(X₁…X_k) = Σ Xᵢ·H^(k−i+1)`. Runs join as
//!   `P(A ‖ B) = P(A)·H^|B| ⊕ P(B)`, so one multiplication in GF(2¹²⁸) per run carries the
//!   accumulator across runs, whatever their sizes. Those internal tags never leave this
//!   module: the only tag anyone sees is the file's, which is standard GCM.
//!
//! The result is byte-for-byte AES-256-GCM (the tests compare it with RustCrypto's one-shot
//! implementation for random lengths, splits and both IV sizes), at aws-lc's speed for both
//! halves. Decryption releases plaintext before the tag is checked — the only way to stream —
//! so a caller writes it somewhere private and keeps it only once [`Opener::finish`] says the
//! tag matched.

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use aws_lc_rs::cipher::{EncryptingKey, EncryptionContext, UnboundCipherKey, AES_256};
use aws_lc_rs::iv::FixedLength;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, Zeroizing};

use crate::error::FileError;
use crate::key::{FileKey, Iv};

/// The length of the GCM tag appended to an encrypted file.
pub const TAG_LEN: usize = 16;

/// The largest plaintext one GCM nonce may cover: 2³² − 2 blocks (SP 800-38D §5.2.1.1).
pub const MAX_PLAINTEXT: u64 = (u32::MAX as u64 - 1) * 16;

const BLOCK: usize = 16;

/// The reduction constant of GCM's field, in its reflected bit order.
const R: u128 = 0xE1 << 120;

/// Multiplies two elements of GF(2¹²⁸) in GCM's bit order (the first bit of a block is the
/// coefficient of x⁰), in constant time: no branch or index depends on either operand.
fn gf_mul(x: u128, y: u128) -> u128 {
    let mut z = 0u128;
    let mut v = y;
    for i in 0..128 {
        let bit = (x >> (127 - i)) & 1;
        z ^= v & 0u128.wrapping_sub(bit);
        let carry = v & 1;
        v = (v >> 1) ^ (R & 0u128.wrapping_sub(carry));
    }
    z
}

/// Which way a [`Core`] runs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    Seal,
    Open,
}

/// The state both directions share: keys, the next counter block and the GHASH accumulator.
struct Core {
    ctr: EncryptingKey,
    ghash: LessSafeKey,
    /// `H`.
    h: u128,
    /// `H^(2^i)` for i in 0..=32: enough to raise `H` to any run length in blocks.
    h_powers: [u128; 33],
    /// The last run length seen and `H` to that power (runs usually repeat their size).
    cached_power: (u64, u128),
    /// `AES_K(0⁹⁶ ‖ 1)`, the mask on the internal GHASH seals' tags.
    ghash_mask: u128,
    /// `AES_K(J0)`, the mask on the file's tag.
    tag_mask: u128,
    /// The next counter block.
    counter: u128,
    /// `H·P(ciphertext so far)`.
    acc: u128,
    /// Bytes of ciphertext through so far.
    done: u64,
    direction: Direction,
}

impl Drop for Core {
    fn drop(&mut self) {
        self.h.zeroize();
        self.h_powers.zeroize();
        self.cached_power.1.zeroize();
        self.ghash_mask.zeroize();
        self.tag_mask.zeroize();
        self.counter.zeroize();
        self.acc.zeroize();
    }
}

fn internal() -> FileError {
    FileError::Cipher
}

impl Core {
    fn new(key: &FileKey, direction: Direction) -> Result<Self, FileError> {
        let ctr = EncryptingKey::ctr(
            UnboundCipherKey::new(&AES_256, key.key_bytes()).map_err(|_| internal())?,
        )
        .map_err(|_| internal())?;
        let ghash = LessSafeKey::new(
            UnboundKey::new(&AES_256_GCM, key.key_bytes()).map_err(|_| internal())?,
        );
        let mut core = Self {
            ctr,
            ghash,
            h: 0,
            h_powers: [0; 33],
            cached_power: (0, 1 << 127),
            ghash_mask: 0,
            tag_mask: 0,
            counter: 0,
            acc: 0,
            done: 0,
            direction,
        };
        core.h = core.block_cipher(0)?;
        core.ghash_mask = core.block_cipher(1)?;
        let mut p = core.h;
        for slot in core.h_powers.iter_mut() {
            *slot = p;
            p = gf_mul(p, p);
        }
        core.cached_power = (1, core.h);
        let j0 = match key.iv() {
            Iv::Standard(iv) => {
                let mut block = [0u8; BLOCK];
                block[..12].copy_from_slice(iv);
                block[15] = 1;
                u128::from_be_bytes(block)
            }
            // J0 = GHASH(IV ‖ 0⁶⁴ ‖ [128]₆₄) = ((IV·H) ⊕ 128)·H.
            Iv::Long(iv) => gf_mul(gf_mul(u128::from_be_bytes(*iv), core.h) ^ 128, core.h),
        };
        core.tag_mask = core.block_cipher(j0)?;
        core.counter = inc32(j0, 1);
        Ok(core)
    }

    /// `AES_K(block)`, as the first keystream block of CTR at that counter.
    fn block_cipher(&self, block: u128) -> Result<u128, FileError> {
        let mut out = [0u8; BLOCK];
        self.ctr
            .less_safe_encrypt(
                &mut out,
                EncryptionContext::Iv128(FixedLength::from(block.to_be_bytes())),
            )
            .map_err(|_| internal())?;
        let value = u128::from_be_bytes(out);
        out.zeroize();
        Ok(value)
    }

    /// `H^k`.
    fn h_power(&mut self, k: u64) -> u128 {
        if self.cached_power.0 == k {
            return self.cached_power.1;
        }
        let mut result = 1u128 << 127; // the field's one, in GCM's bit order
        for (i, power) in self.h_powers.iter().enumerate() {
            if k >> i & 1 == 1 {
                result = gf_mul(result, *power);
            }
        }
        self.cached_power = (k, result);
        result
    }

    /// XORs the keystream into `data` (a whole number of blocks, or the final piece).
    fn apply_keystream(&mut self, mut data: &mut [u8]) -> Result<(), FileError> {
        while !data.is_empty() {
            // Counter blocks left before the low 32 bits wrap; aws-lc's CTR would carry into
            // the IV part there, where GCM wraps.
            let before_wrap = (1u64 << 32) - u64::from(self.counter as u32);
            let blocks = (data.len() as u64).div_ceil(BLOCK as u64);
            let now = blocks.min(before_wrap);
            let take = data.len().min((now as usize) * BLOCK);
            let (head, rest) = data.split_at_mut(take);
            self.ctr
                .less_safe_encrypt(
                    head,
                    EncryptionContext::Iv128(FixedLength::from(self.counter.to_be_bytes())),
                )
                .map_err(|_| internal())?;
            self.counter = inc32(self.counter, now);
            data = rest;
        }
        Ok(())
    }

    /// Folds `run` of ciphertext (whole blocks, except at the very end) into the GHASH.
    fn absorb(&mut self, run: &[u8]) -> Result<(), FileError> {
        if run.is_empty() {
            return Ok(());
        }
        let tag = self
            .ghash
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key([0u8; 12]),
                Aad::from(run),
                &mut [],
            )
            .map_err(|_| internal())?;
        let mut bytes = [0u8; BLOCK];
        bytes.copy_from_slice(tag.as_ref());
        let length_block = u128::from(run.len() as u64 * 8) << 64;
        let q = u128::from_be_bytes(bytes) ^ self.ghash_mask ^ gf_mul(length_block, self.h);
        bytes.zeroize();
        let k = run.len().div_ceil(BLOCK) as u64;
        let shifted = gf_mul(self.acc, self.h_power(k));
        self.acc = shifted ^ q;
        Ok(())
    }

    /// Takes `plain` (whole blocks) as already decrypted: re-encrypts it into `scratch` to
    /// fold the ciphertext into the GHASH and move the counter on, as if it had been opened.
    fn skip_known(&mut self, plain: &[u8], scratch: &mut Vec<u8>) -> Result<(), FileError> {
        let total = self.done + plain.len() as u64;
        if total > MAX_PLAINTEXT {
            return Err(FileError::TooLarge {
                limit: MAX_PLAINTEXT,
            });
        }
        scratch.clear();
        scratch.extend_from_slice(plain);
        self.apply_keystream(scratch)?;
        self.absorb(scratch)?;
        scratch.zeroize();
        self.done = total;
        Ok(())
    }

    /// Runs whole blocks (or the final piece) through the cipher in place.
    fn process(&mut self, data: &mut [u8]) -> Result<(), FileError> {
        let total = self.done + data.len() as u64;
        if total > MAX_PLAINTEXT {
            return Err(FileError::TooLarge {
                limit: MAX_PLAINTEXT,
            });
        }
        match self.direction {
            Direction::Seal => {
                self.apply_keystream(data)?;
                self.absorb(data)?;
            }
            Direction::Open => {
                self.absorb(data)?;
                self.apply_keystream(data)?;
            }
        }
        self.done = total;
        Ok(())
    }

    /// The file's tag: `GHASH(C ‖ [0]₆₄ ‖ [8·|C|]₆₄) ⊕ AES_K(J0)`.
    fn tag(&self) -> Zeroizing<[u8; TAG_LEN]> {
        let length_block = u128::from(self.done * 8);
        let s = self.acc ^ gf_mul(length_block, self.h);
        Zeroizing::new((s ^ self.tag_mask).to_be_bytes())
    }
}

/// `block` with its low 32 bits advanced by `n`, wrapping as GCM's `inc32` does.
fn inc32(block: u128, n: u64) -> u128 {
    let low = (block as u32).wrapping_add(n as u32);
    (block & !0xFFFF_FFFF) | u128::from(low)
}

/// Encrypts a file as it streams: [`Self::update`] with each piece, then [`Self::finish`],
/// which appends the tag. The output is exactly AES-256-GCM of the whole input.
pub struct Sealer {
    core: Core,
    tail: [u8; BLOCK],
    tail_len: usize,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer")
            .field("done", &self.core.done)
            .finish_non_exhaustive()
    }
}

impl Drop for Sealer {
    fn drop(&mut self) {
        self.tail.zeroize();
    }
}

impl Sealer {
    /// A sealer for `key` (its key and IV); a key must seal one file only.
    pub fn new(key: &FileKey) -> Result<Self, FileError> {
        Ok(Self {
            core: Core::new(key, Direction::Seal)?,
            tail: [0; BLOCK],
            tail_len: 0,
        })
    }

    /// Encrypts `data`, appending the ciphertext to `out`. Up to 15 bytes wait for the next
    /// call (GCM works in blocks), so `out` may grow by a little less or more than `data`.
    pub fn update(&mut self, data: &[u8], out: &mut Vec<u8>) -> Result<(), FileError> {
        let mut data = data;
        if self.tail_len > 0 {
            let fill = (BLOCK - self.tail_len).min(data.len());
            self.tail[self.tail_len..self.tail_len + fill].copy_from_slice(&data[..fill]);
            self.tail_len += fill;
            data = &data[fill..];
            if self.tail_len < BLOCK {
                return Ok(());
            }
            let mut block = self.tail;
            self.core.process(&mut block)?;
            out.extend_from_slice(&block);
            self.tail_len = 0;
        }
        let whole = data.len() - data.len() % BLOCK;
        let start = out.len();
        out.extend_from_slice(&data[..whole]);
        self.core.process(&mut out[start..])?;
        let rest = &data[whole..];
        self.tail[..rest.len()].copy_from_slice(rest);
        self.tail_len = rest.len();
        Ok(())
    }

    /// Encrypts what is left and appends the tag to `out`.
    pub fn finish(mut self, out: &mut Vec<u8>) -> Result<(), FileError> {
        let start = out.len();
        out.extend_from_slice(&self.tail[..self.tail_len]);
        self.core.process(&mut out[start..])?;
        out.extend_from_slice(self.core.tag().as_ref());
        Ok(())
    }

    /// How many bytes of plaintext went in so far (whole blocks encrypted).
    pub fn position(&self) -> u64 {
        self.core.done + self.tail_len as u64
    }
}

/// Decrypts a file as it streams: [`Self::update`] with each piece of what was downloaded,
/// then [`Self::finish`], which checks the tag. The last 16 bytes seen are held back, since
/// they may be the tag; what `update` releases is unauthenticated until `finish` says `Ok`.
pub struct Opener {
    core: Core,
    /// Bytes not yet decrypted: fewer than 32, the last 16 of which may be the tag.
    held: Vec<u8>,
}

impl std::fmt::Debug for Opener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Opener")
            .field("done", &self.core.done)
            .finish_non_exhaustive()
    }
}

impl Drop for Opener {
    fn drop(&mut self) {
        self.held.zeroize();
    }
}

impl Opener {
    /// An opener for `key`.
    pub fn new(key: &FileKey) -> Result<Self, FileError> {
        Ok(Self {
            core: Core::new(key, Direction::Open)?,
            held: Vec::with_capacity(2 * BLOCK),
        })
    }

    /// Resumes an interrupted download: `plain` is what an earlier opener of the same file
    /// released, read back (a whole number of 16-byte blocks, before anything else went into
    /// this opener). It is encrypted again to bring the tag's computation up to date, so the
    /// download can go on from `plain.len()` bytes into the ciphertext. Call it in pieces of
    /// any whole-block size.
    pub fn resume(&mut self, plain: &[u8]) -> Result<(), FileError> {
        if !self.held.is_empty() || !plain.len().is_multiple_of(BLOCK) {
            return Err(FileError::BadResume);
        }
        let mut scratch = Vec::with_capacity(plain.len().min(1 << 20));
        for piece in plain.chunks(1 << 20) {
            self.core.skip_known(piece, &mut scratch)?;
        }
        Ok(())
    }

    /// Decrypts what `data` completes, appending (unauthenticated) plaintext to `out`.
    pub fn update(&mut self, data: &[u8], out: &mut Vec<u8>) -> Result<(), FileError> {
        let available = self.held.len() + data.len();
        if available < TAG_LEN + BLOCK {
            self.held.extend_from_slice(data);
            return Ok(());
        }
        let ready = (available - TAG_LEN) / BLOCK * BLOCK;
        let from_held = ready.min(self.held.len());
        let from_data = ready - from_held;
        let start = out.len();
        out.extend_from_slice(&self.held[..from_held]);
        out.extend_from_slice(&data[..from_data]);
        self.core.process(&mut out[start..])?;
        self.held.drain(..from_held);
        self.held.extend_from_slice(&data[from_data..]);
        Ok(())
    }

    /// Decrypts the rest into `out` and checks the tag: `Err` means the file is not what the
    /// sender encrypted (tampered, truncated or another file) and everything released must
    /// be thrown away.
    pub fn finish(mut self, out: &mut Vec<u8>) -> Result<(), FileError> {
        if self.held.len() < TAG_LEN {
            return Err(FileError::Truncated);
        }
        let split = self.held.len() - TAG_LEN;
        let mut rest = Zeroizing::new(self.held[..split].to_vec());
        let received: [u8; TAG_LEN] = self.held[split..]
            .try_into()
            .map_err(|_| FileError::Truncated)?;
        self.core.process(&mut rest)?;
        let expected = self.core.tag();
        if !bool::from(expected.ct_eq(&received)) {
            return Err(FileError::Tampered);
        }
        out.extend_from_slice(&rest);
        Ok(())
    }

    /// How many bytes of ciphertext were decrypted so far.
    pub fn position(&self) -> u64 {
        self.core.done
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aes_gcm::aead::consts::U16;
    use aes_gcm::aead::{Aead, KeyInit};
    use aes_gcm::{Aes256Gcm, AesGcm};
    use proptest::prelude::*;

    fn reference(key: &FileKey, data: &[u8]) -> Vec<u8> {
        match key.iv() {
            Iv::Standard(iv) => Aes256Gcm::new_from_slice(key.key_bytes())
                .unwrap()
                .encrypt(iv.into(), data)
                .unwrap(),
            Iv::Long(iv) => AesGcm::<aes_gcm::aes::Aes256, U16>::new_from_slice(key.key_bytes())
                .unwrap()
                .encrypt(iv.into(), data)
                .unwrap(),
        }
    }

    fn seal_in(key: &FileKey, data: &[u8], cuts: &[usize]) -> Vec<u8> {
        let mut sealer = Sealer::new(key).unwrap();
        let mut out = Vec::new();
        let mut at = 0;
        for &cut in cuts {
            let cut = cut.min(data.len()).max(at);
            sealer.update(&data[at..cut], &mut out).unwrap();
            at = cut;
        }
        sealer.update(&data[at..], &mut out).unwrap();
        sealer.finish(&mut out).unwrap();
        out
    }

    fn open_in(key: &FileKey, data: &[u8], cuts: &[usize]) -> Result<Vec<u8>, FileError> {
        let mut opener = Opener::new(key).unwrap();
        let mut out = Vec::new();
        let mut at = 0;
        for &cut in cuts {
            let cut = cut.min(data.len()).max(at);
            opener.update(&data[at..cut], &mut out)?;
            at = cut;
        }
        opener.update(&data[at..], &mut out)?;
        opener.finish(&mut out)?;
        Ok(out)
    }

    fn key(long: bool, seed: u8) -> FileKey {
        let k = [seed; 32];
        if long {
            FileKey::from_parts(k, Iv::Long([seed.wrapping_mul(3); 16]))
        } else {
            FileKey::from_parts(k, Iv::Standard([seed.wrapping_add(9); 12]))
        }
    }

    #[test]
    fn field_multiplication_has_one_and_commutes() {
        let one = 1u128 << 127;
        let a = 0x66e94bd4ef8a2c3b884cfa59ca342b2e_u128;
        let b = 0x0388dace60b6a392f328c2b971b2fe78_u128;
        assert_eq!(gf_mul(a, one), a);
        assert_eq!(gf_mul(a, b), gf_mul(b, a));
        assert_ne!(gf_mul(a, b), a ^ b);
    }

    /// NIST's GCM test case 14 (AES-256, zero key and IV, one zero block).
    #[test]
    fn known_answer() {
        let key = FileKey::from_parts([0; 32], Iv::Standard([0; 12]));
        let sealed = seal_in(&key, &[0u8; 16], &[]);
        assert_eq!(
            hex::encode(&sealed),
            "cea7403d4d606b6e074ec5d3baf39d18d0d1c8a799996bf0265b98b5d48ab919"
        );
    }

    #[test]
    fn an_empty_file_is_its_tag() {
        let key = key(false, 4);
        let sealed = seal_in(&key, &[], &[]);
        assert_eq!(sealed, reference(&key, &[]));
        assert_eq!(open_in(&key, &sealed, &[]).unwrap(), Vec::<u8>::new());
    }

    /// With a 16-byte IV, J0 is a hash and the counter may start anywhere: it must wrap in
    /// its low 32 bits as GCM's inc32 does, not carry into the rest of the block as plain CTR
    /// would.
    #[test]
    fn the_counter_wraps_in_its_low_32_bits() {
        let mut core = Core::new(&key(true, 5), Direction::Seal).unwrap();
        let start = (0xABCD_u128 << 112) | 0xFFFF_FFFE;
        core.counter = start;
        let mut stream = [0u8; 5 * BLOCK];
        core.apply_keystream(&mut stream).unwrap();
        for (i, block) in stream.chunks(BLOCK).enumerate() {
            let expected = core.block_cipher(inc32(start, i as u64)).unwrap();
            assert_eq!(
                u128::from_be_bytes(block.try_into().unwrap()),
                expected,
                "block {i}"
            );
        }
        assert_eq!(inc32(start, 2), 0xABCD_u128 << 112);
        assert_eq!(core.counter, inc32(start, 5));
    }

    #[test]
    fn every_flipped_bit_and_every_truncation_is_refused() {
        let key = key(false, 1);
        let data = vec![0x5a; 100];
        let sealed = seal_in(&key, &data, &[]);
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 0x10;
            assert_eq!(
                open_in(&key, &bad, &[]),
                Err(FileError::Tampered),
                "byte {i}"
            );
        }
        for len in 0..sealed.len() {
            let got = open_in(&key, &sealed[..len], &[]);
            assert!(
                matches!(got, Err(FileError::Truncated | FileError::Tampered)),
                "length {len}: {got:?}"
            );
        }
        let mut longer = sealed.clone();
        longer.push(0);
        assert_eq!(open_in(&key, &longer, &[]), Err(FileError::Tampered));
        assert_eq!(open_in(&key, &sealed, &[]).unwrap(), data);
    }

    /// A download cut anywhere resumes from the plaintext released so far (rounded down to a
    /// block) and ends with the same file and a good tag; a changed prefix fails the tag.
    #[test]
    fn an_interrupted_download_resumes_from_what_was_released() {
        let key = key(false, 3);
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7) as u8).collect();
        let sealed = seal_in(&key, &data, &[]);
        for cut in [0, 15, 16, 17, 4096, 9_999, sealed.len() - 1] {
            let mut first = Opener::new(&key).unwrap();
            let mut released = Vec::new();
            first.update(&sealed[..cut], &mut released).unwrap();
            drop(first);
            let kept = released.len() / BLOCK * BLOCK;
            let mut second = Opener::new(&key).unwrap();
            second.resume(&released[..kept]).unwrap();
            let mut rest = released[..kept].to_vec();
            second.update(&sealed[kept..], &mut rest).unwrap();
            second.finish(&mut rest).unwrap();
            assert_eq!(rest, data, "cut at {cut}");
            if kept > 0 {
                let mut wrong = released[..kept].to_vec();
                wrong[0] ^= 1;
                let mut third = Opener::new(&key).unwrap();
                third.resume(&wrong).unwrap();
                let mut out = Vec::new();
                third.update(&sealed[kept..], &mut out).unwrap();
                assert_eq!(
                    third.finish(&mut out),
                    Err(FileError::Tampered),
                    "cut at {cut}"
                );
            }
        }
        let mut opener = Opener::new(&key).unwrap();
        assert_eq!(opener.resume(&[0; 15]), Err(FileError::BadResume));
    }

    #[test]
    fn another_key_does_not_open_it() {
        let sealed = seal_in(&key(false, 1), b"secret file", &[]);
        assert_eq!(
            open_in(&key(false, 2), &sealed, &[]),
            Err(FileError::Tampered)
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        /// Any file, cut anywhere for either direction, with either IV size, gives exactly
        /// what one-shot AES-256-GCM gives, and opens back to itself.
        #[test]
        fn streaming_equals_one_shot(
            data in proptest::collection::vec(any::<u8>(), 0..5000),
            seal_cuts in proptest::collection::vec(0usize..5000, 0..6),
            open_cuts in proptest::collection::vec(0usize..5100, 0..6),
            long in any::<bool>(),
            seed in any::<u8>(),
        ) {
            let key = key(long, seed);
            let mut seal_cuts = seal_cuts;
            seal_cuts.sort_unstable();
            let mut open_cuts = open_cuts;
            open_cuts.sort_unstable();
            let sealed = seal_in(&key, &data, &seal_cuts);
            prop_assert_eq!(&sealed, &reference(&key, &data));
            prop_assert_eq!(open_in(&key, &sealed, &open_cuts).unwrap(), data);
        }
    }
}
