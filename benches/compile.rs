//! Criterion benchmarks of the compiler: one group per stage (parse, check,
//! grad, lower, codegen) over the shipped examples. Run with
//! `cargo bench --bench compile`; training speed is in `benches/train.rs`.

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use nnc::codegen::Options;
use nnc::pipeline;
use std::hint::black_box;
use std::path::Path;

const EXAMPLES: &[&str] = &["minimize", "seed", "iris", "digits", "diabetes", "linnerud"];

fn source(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("examples/{name}.nn"));
    std::fs::read_to_string(path).expect("example exists")
}

fn stages(c: &mut Criterion) {
    let release = Options { verify: false, ..Options::default() };
    for name in EXAMPLES {
        let text = source(name);
        let front = pipeline::frontend(&text).expect("examples check");
        let program = &front.program;
        let graphs = pipeline::graphs(program);
        let batch = program.train.batch.value as usize;
        let kernels = pipeline::kernels(&graphs, batch, batch).expect("lowers");
        c.benchmark_group("parse")
            .bench_function(BenchmarkId::from_parameter(name), |b| b.iter(|| nnc::syntax::parse(black_box(&text))));
        c.benchmark_group("check")
            .bench_function(BenchmarkId::from_parameter(name), |b| b.iter(|| nnc::check::check(black_box(&front.ast))));
        c.benchmark_group("grad")
            .bench_function(BenchmarkId::from_parameter(name), |b| b.iter(|| pipeline::graphs(black_box(program))));
        c.benchmark_group("lower").bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| pipeline::kernels(black_box(&graphs), batch, batch))
        });
        c.benchmark_group("codegen").bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| pipeline::compile(program, black_box(&kernels), release).expect("compiles"))
        });
    }
}

criterion_group!(benches, stages);
criterion_main!(benches);
