//! Throughput of call-site prediction, in MB of executable code per second
//! on one core, over the x64 and x86 drivers of the real corpus that import
//! hooked APIs (`tests/corpus/fetch.sh`; the others are not decoded at
//! all): a linear sweep of all the code (what x86 images and x64 images
//! without `.pdata` get), and the whole prediction (for x64 with `.pdata`,
//! the byte scans and the data-flow analysis of only the functions that
//! reference a hooked import; globals, callers, verdicts).
//!
//! `cargo bench -p civctl --bench predict`

use civ_engine::pe::{Layout, PeImage};
use civctl::predict::{self, sweep};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;

fn images() -> Vec<(String, Vec<u8>)> {
    let corpus = civ_fixtures::corpus_dir();
    civ_fixtures::corpus_expected()
        .into_iter()
        .filter(|r| (r.machine == "AMD64" || r.machine == "I386") && !r.hooked.is_empty())
        .map(|r| {
            let data = std::fs::read(corpus.join(&r.path)).expect("corpus file");
            (r.path, data)
        })
        .collect()
}

fn code_bytes(images: &[(String, Vec<u8>)]) -> u64 {
    images
        .iter()
        .map(|(_, d)| {
            let pe = PeImage::parse(d, Layout::File).expect("PE");
            predict::code_sections(&pe)
                .iter()
                .map(|s| s.bytes.len() as u64)
                .sum::<u64>()
        })
        .sum()
}

fn bench(c: &mut Criterion) {
    let images = images();
    let total = code_bytes(&images);
    let mut g = c.benchmark_group("predict");
    g.throughput(Throughput::Bytes(total));
    g.bench_function("sweep (decode only)", |b| {
        b.iter(|| {
            for (_, d) in &images {
                let pe = PeImage::parse(d, Layout::File).expect("PE");
                let sections = predict::code_sections(&pe);
                let bitness = if pe.is_64() { 64 } else { 32 };
                let s = sweep::sweep(&sections, bitness, pe.image_base(), &[], &[], &|_| None);
                black_box(s.candidates.len());
            }
        })
    });
    g.bench_function("predict (scan or sweep, data flow, verdicts)", |b| {
        b.iter(|| {
            for (_, d) in &images {
                let pe = PeImage::parse(d, Layout::File).expect("PE");
                black_box(predict::predict(&pe).expect("imports").map(|s| s.len()));
            }
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
