//! HMAC-SHA-256 (RFC 2104) on SHA-256's compression function, keyed once per key.
//!
//! Every OMEMO message runs a dozen HMACs over inputs of one to three blocks: the chain step,
//! the HKDF expansions of the message and payload keys, the two tags. At that size what a
//! general-purpose MAC does around the compressions (cloning and padding its buffers for each
//! tag) costs a good part of the compressions themselves, so this module keeps only what HMAC
//! needs: the two chaining values after the key's padded blocks, and one block of buffer on
//! the stack. `crypto.rs` checks it against the `hmac` crate for any key and input, and
//! `cost_tests.rs` counts the blocks each message takes.

use sha2::block_api::compress256;
use subtle::ConstantTimeEq;
use zeroize::Zeroize;

/// SHA-256's initial chaining value (FIPS 180-4, 5.3.3).
const SHA256_IV: [u32; 8] = [
    0x6a09_e667,
    0xbb67_ae85,
    0x3c6e_f372,
    0xa54f_f53a,
    0x510e_527f,
    0x9b05_688c,
    0x1f83_d9ab,
    0x5be0_cd19,
];

const BLOCK: usize = 64;

/// An HMAC-SHA-256 key: SHA-256's chaining values after the inner (`key ⊕ ipad`) and outer
/// (`key ⊕ opad`) blocks. Each tag then costs only the blocks of its own message plus one.
/// Either value is as good as the key itself: both are wiped when dropped.
#[derive(Clone)]
pub(crate) struct HmacKey {
    inner: [u32; 8],
    outer: [u32; 8],
}

impl Drop for HmacKey {
    fn drop(&mut self) {
        self.inner.as_mut_slice().zeroize();
        self.outer.as_mut_slice().zeroize();
    }
}

impl HmacKey {
    /// Keys HMAC with `key` (any length; keys over one block are hashed first, as RFC 2104
    /// says).
    pub(crate) fn new(key: &[u8]) -> Self {
        let mut block = [0u8; BLOCK];
        if key.len() > BLOCK {
            let mut digest = sha256(key);
            block[..32].copy_from_slice(&digest);
            wipe(&mut digest);
        } else {
            block[..key.len()].copy_from_slice(key);
        }
        let mut pad = [0u8; BLOCK];
        let mut key = Self {
            inner: SHA256_IV,
            outer: SHA256_IV,
        };
        for (state, fill) in [(&mut key.inner, 0x36), (&mut key.outer, 0x5c)] {
            for (p, k) in pad.iter_mut().zip(&block) {
                *p = k ^ fill;
            }
            compress(state, core::slice::from_ref(&pad));
        }
        wipe(&mut pad);
        wipe(&mut block);
        key
    }

    /// The full tag over the concatenation of `parts`.
    pub(crate) fn sign(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut inner = Hasher::resume(self.inner, BLOCK as u64);
        for part in parts {
            inner.update(part);
        }
        // The outer hash is one block: the inner digest, then its padding (FIPS 180-4,
        // 5.1.1) for a length of one block plus 32 bytes.
        let mut outer = [0u8; BLOCK];
        inner.finish_into(&mut outer[..32]);
        outer[32] = 0x80;
        outer[BLOCK - 8..].copy_from_slice(&((BLOCK as u64 + 32) * 8).to_be_bytes());
        let mut state = self.outer;
        compress(&mut state, core::slice::from_ref(&outer));
        wipe(&mut outer);
        let tag = digest_of(&state);
        state.as_mut_slice().zeroize();
        tag
    }

    /// Constant-time check of a tag truncated to its first `tag.len()` bytes (at least one).
    pub(crate) fn verify_truncated(&self, parts: &[&[u8]], tag: &[u8]) -> bool {
        let mut full = self.sign(parts);
        let ok = match full.get(..tag.len()) {
            Some(expected) if !tag.is_empty() => bool::from(expected.ct_eq(tag)),
            _ => false,
        };
        wipe(&mut full);
        ok
    }
}

/// SHA-256 of `data` (for keys longer than a block).
fn sha256(data: &[u8]) -> [u8; 32] {
    let mut hasher = Hasher::resume(SHA256_IV, 0);
    hasher.update(data);
    let mut out = [0u8; 32];
    hasher.finish_into(&mut out);
    out
}

/// The big-endian bytes of a chaining value: the digest, once the last block is in.
fn digest_of(state: &[u32; 8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (chunk, word) in out.chunks_exact_mut(4).zip(state) {
        chunk.copy_from_slice(&word.to_be_bytes());
    }
    out
}

/// Clears a temporary that held secret bytes, as a slice: `zeroize` fills a slice with plain
/// stores behind an optimisation barrier, where on an array it writes each element
/// volatilely, which here cost more than the hashing it follows.
fn wipe(bytes: &mut [u8]) {
    bytes.zeroize();
}

/// A SHA-256 computation under way: the chaining value, the bytes hashed so far and the
/// partial block. The buffer may hold secret bytes and is wiped when dropped.
struct Hasher {
    state: [u32; 8],
    length: u64,
    buffer: [u8; BLOCK],
    filled: usize,
}

impl Drop for Hasher {
    fn drop(&mut self) {
        wipe(&mut self.buffer);
        self.state.as_mut_slice().zeroize();
    }
}

impl Hasher {
    /// Continues from `state`, reached after `length` bytes (a whole number of blocks).
    fn resume(state: [u32; 8], length: u64) -> Self {
        Self {
            state,
            length,
            buffer: [0; BLOCK],
            filled: 0,
        }
    }

    fn update(&mut self, mut data: &[u8]) {
        self.length = self.length.wrapping_add(data.len() as u64);
        if self.filled > 0 {
            let take = data.len().min(BLOCK - self.filled);
            self.buffer[self.filled..self.filled + take].copy_from_slice(&data[..take]);
            self.filled += take;
            data = &data[take..];
            if self.filled < BLOCK {
                return;
            }
            compress(&mut self.state, core::slice::from_ref(&self.buffer));
            self.filled = 0;
        }
        let (blocks, rest) = data.as_chunks::<BLOCK>();
        compress(&mut self.state, blocks);
        self.buffer[..rest.len()].copy_from_slice(rest);
        self.filled = rest.len();
    }

    /// Pads (FIPS 180-4, 5.1.1) and writes the 32-byte digest into `out`.
    fn finish_into(mut self, out: &mut [u8]) {
        let bits = self.length.wrapping_mul(8);
        let filled = self.filled;
        self.buffer[filled] = 0x80;
        self.buffer[filled + 1..].fill(0);
        // The length takes the last 8 bytes; if they are taken, it goes in a block of its own.
        if filled >= BLOCK - 8 {
            compress(&mut self.state, core::slice::from_ref(&self.buffer));
            self.buffer.fill(0);
        }
        self.buffer[BLOCK - 8..].copy_from_slice(&bits.to_be_bytes());
        compress(&mut self.state, core::slice::from_ref(&self.buffer));
        let mut digest = digest_of(&self.state);
        out.copy_from_slice(&digest);
        wipe(&mut digest);
    }
}

/// SHA-256's compression over `blocks`; counted in test builds, so that the cost of each
/// protocol step in blocks can be checked (`cost_tests.rs`).
fn compress(state: &mut [u32; 8], blocks: &[[u8; BLOCK]]) {
    #[cfg(test)]
    counter::add(blocks.len());
    if !blocks.is_empty() {
        compress256(state, blocks);
    }
}

/// How many SHA-256 blocks this thread has compressed (test builds only).
#[cfg(test)]
pub(crate) mod counter {
    use std::cell::Cell;

    thread_local! {
        static BLOCKS: Cell<usize> = const { Cell::new(0) };
    }

    pub(super) fn add(n: usize) {
        BLOCKS.with(|b| b.set(b.get() + n));
    }

    /// The blocks compressed on this thread while `f` ran, and what `f` returned.
    pub(crate) fn blocks_in<T>(f: impl FnOnce() -> T) -> (usize, T) {
        let before = BLOCKS.with(Cell::get);
        let out = f();
        (BLOCKS.with(Cell::get) - before, out)
    }
}
