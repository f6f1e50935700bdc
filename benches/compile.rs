//! Criterion benchmarks: one group per compiler stage over the shipped
//! examples, and training throughput (rows per second) of the compiled
//! kernels. Run with `cargo bench --bench compile`.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use nnc::codegen::Options;
use nnc::pipeline;
use nnc::runtime::{data, train};
use std::hint::black_box;
use std::path::Path;

const EXAMPLES: &[&str] = &["minimize", "seed", "iris"];

fn source(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("examples/{name}.nn"));
    std::fs::read_to_string(path).expect("example exists")
}

fn stages(c: &mut Criterion) {
    let release = Options { verify: false, disassemble: false };
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

fn training(c: &mut Criterion) {
    let text = source("iris");
    let front = pipeline::frontend(&text).expect("iris checks");
    let program = &front.program;
    let csv = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/iris.csv");
    let dataset = data::load(&csv, program).unwrap_or_else(|e| panic!("iris.csv binds: {e:?}"));
    let graphs = pipeline::graphs(program);
    let mut group = c.benchmark_group("train_epoch");
    group.throughput(Throughput::Elements(dataset.rows as u64));
    for batch in [1usize, 16] {
        let kernels = pipeline::kernels(&graphs, batch, dataset.rows).expect("lowers");
        let native =
            pipeline::compile(program, &kernels, Options { verify: false, disassemble: false }).expect("compiles");
        let config = train::RunConfig { epochs: 1, batch, learning_rate: 0.05, seed: 0, shuffle: false };
        group.bench_function(BenchmarkId::new("iris", format!("b{batch}")), |b| {
            b.iter(|| {
                let params = train::Params::init(program, 0);
                train::train(program, &native.train, Some(&dataset), &config, params, |_, _, _| {})
                    .expect("iris trains")
            })
        });
    }
    group.finish();
}

criterion_group!(benches, stages, training);
criterion_main!(benches);
