//! What civ costs at run time, on this host (x86-64):
//! - a clean call through a hooked IAT slot (entry stub, dispatch, the
//!   predicate, jump to the original) against a direct call of the
//!   original (target: at most 2 ns more);
//! - recording a violation at a site already in the log (target: < 100 ns);
//! - planning the IAT of the largest x64 driver of the corpus (target:
//!   < 20 µs).
//!
//! Run: `cargo bench -p civ-engine --bench runtime`.

use civ_engine::catalog::CATALOG;
use civ_engine::code::Counter;
use civ_engine::iat;
use civ_engine::log::{Event, Log};
use civ_engine::pe::{Layout, PeImage};
use civ_engine::{runtime, stubs};
use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;

#[inline(never)]
extern "win64" fn original(pool_type: u64, size: u64, tag: u64) -> u64 {
    pool_type ^ size ^ tag
}

type Alloc = extern "win64" fn(u64, u64, u64) -> u64;

fn hooked_call(c: &mut Criterion) {
    let row = CATALOG
        .iter()
        .position(|h| h.name == "ExAllocatePoolWithTag")
        .expect("row");
    runtime::clear_originals();
    runtime::set_original(row, original as *const () as usize as u64);
    let entry = stubs::entry(row).expect("stub");
    // SAFETY: a stub takes any win64 call and passes it on to `original`.
    let hooked: Alloc = unsafe { std::mem::transmute::<usize, Alloc>(entry as usize) };
    let direct: Alloc = black_box(original);
    let mut g = c.benchmark_group("call");
    g.bench_function("direct", |b| {
        b.iter(|| direct(black_box(0x200), black_box(64), black_box(0x7476_6943)))
    });
    g.bench_function("hooked, clean", |b| {
        b.iter(|| hooked(black_box(0x200), black_box(64), black_box(0x7476_6943)))
    });
    g.finish();
}

static BENCH_LOG: Log<64, 1024, 1024> = Log::new();

fn record(c: &mut Criterion) {
    let target = BENCH_LOG
        .register_target(b"bench.sys", 0x1000_0000, 0x10_0000, 0)
        .expect("target")
        .index;
    let event = Event {
        counter: Counter::ExecutePoolType,
        target,
        api: 1,
        offset: 0x1234,
        arg3: 0,
        arg4: 0x7476_6943,
        load: 1,
    };
    BENCH_LOG.record(event, 0);
    let mut now = 0u64;
    c.bench_function("record a violation at a known site", |b| {
        b.iter(|| {
            now += 1;
            BENCH_LOG.record(black_box(event), now)
        })
    });
}

fn plan(c: &mut Criterion) {
    let corpus = civ_fixtures::corpus_dir();
    let largest = civ_fixtures::corpus_expected()
        .into_iter()
        .filter(|r| r.machine == "AMD64" && r.path.ends_with(".sys"))
        .map(|r| std::fs::read(corpus.join(&r.path)).expect("corpus file"))
        .max_by_key(Vec::len)
        .expect("an x64 driver");
    let mapped = civ_fixtures::map_image(&largest);
    c.bench_function("plan the IAT of the largest corpus driver", |b| {
        b.iter(|| {
            let pe = PeImage::parse(black_box(&mapped), Layout::Mapped).expect("parses");
            iat::plan(&pe).expect("plans").slots().len()
        })
    });
}

criterion_group!(benches, hooked_call, record, plan);
criterion_main!(benches);
