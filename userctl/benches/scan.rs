//! What `civctl scan` costs per file, in process, over the real corpus
//! (`scripts/fetch-test-data.sh`): the image checks and hooked-import list
//! alone (what bench/lief/run.sh compares with LIEF), and with the SHA-256
//! the reports carry.
//!
//! `cargo bench -p civctl --bench scan`

use civctl::scan::analyze::{analyze, analyze_unhashed};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;

fn bench(c: &mut Criterion) {
    let corpus = civ_fixtures::corpus_dir();
    let files: Vec<(String, Vec<u8>)> = civ_fixtures::corpus_expected()
        .into_iter()
        .map(|r| {
            (
                r.path.clone(),
                std::fs::read(corpus.join(&r.path)).expect("corpus file"),
            )
        })
        .collect();
    let mut g = c.benchmark_group("scan the corpus");
    g.throughput(Throughput::Elements(files.len() as u64));
    g.bench_function("checks only", |b| {
        b.iter(|| {
            files
                .iter()
                .map(|(p, d)| analyze_unhashed(p.clone(), black_box(d)).findings.len())
                .sum::<usize>()
        })
    });
    g.bench_function("checks and SHA-256", |b| {
        b.iter(|| {
            files
                .iter()
                .map(|(p, d)| analyze(p.clone(), black_box(d)).findings.len())
                .sum::<usize>()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
