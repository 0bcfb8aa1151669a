//! File encryption throughput: streaming AES-256-GCM as `hush send-file` and `hush recv` run
//! it (1 MiB pieces, as read from disk or the network), over a 64 MiB file. Compare with
//! `openssl speed -evp aes-256-gcm` in the same run: `scripts/bench-files` runs both.

// Test code: a failed assumption is a failed test, so it may unwrap, expect and panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use hush_files::{FileKey, Iv, Opener, Sealer};

const FILE: usize = 64 << 20;
const PIECE: usize = 1 << 20;

fn key() -> FileKey {
    FileKey::from_parts([7; 32], Iv::Standard([1; 12]))
}

fn seal(data: &[u8], out: &mut Vec<u8>) {
    out.clear();
    let mut sealer = Sealer::new(&key()).unwrap();
    for piece in data.chunks(PIECE) {
        sealer.update(piece, out).unwrap();
        // What the uploader does: hand the piece on and reuse the buffer.
        out.clear();
    }
    sealer.finish(out).unwrap();
}

fn open(data: &[u8], out: &mut Vec<u8>) {
    out.clear();
    let mut opener = Opener::new(&key()).unwrap();
    for piece in data.chunks(PIECE) {
        opener.update(piece, out).unwrap();
        out.clear();
    }
    opener.finish(out).unwrap();
}

fn files(c: &mut Criterion) {
    let plain = vec![0x42u8; FILE];
    let mut sealed = Vec::with_capacity(FILE + 16);
    {
        let mut sealer = Sealer::new(&key()).unwrap();
        sealer.update(&plain, &mut sealed).unwrap();
        sealer.finish(&mut sealed).unwrap();
    }
    let mut out = Vec::with_capacity(PIECE + 64);
    let mut group = c.benchmark_group("file_aes256gcm_64MiB");
    group.throughput(Throughput::Bytes(FILE as u64));
    group.sample_size(20);
    group.bench_function("seal", |b| b.iter(|| seal(&plain, &mut out)));
    group.bench_function("open", |b| b.iter(|| open(&sealed, &mut out)));
    group.finish();
}

criterion_group!(benches, files);
criterion_main!(benches);
