//! Criterion benchmarks of training throughput.
//!
//! - `peers/<task>`: one epoch of each PEERS.md task (iris_b1, iris_b16,
//!   digits_b16, diabetes_b1) through the compiled kernel, in rows per
//!   second — the figure to compare with PEERS.md's table.
//! - `wide/nnc` and `wide/sgemm`: a 784-256-10 network, batch 32, on
//!   synthetic data, against the `matrixmultiply` crate's sgemm doing the
//!   same five matrix products per batch (forward ×2, backward ×3), in
//!   FLOP/s (2 per multiply-add): how far large layers are from a tuned GEMM.
//!
//! Run with `cargo bench --bench train`. Numbers come from one machine and
//! one run; BENCHMARKS.md records them with the date and command.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use nnc::codegen::Options;
use nnc::pipeline;
use nnc::runtime::data::{self, Dataset};
use nnc::runtime::train::{self, Params, RunConfig};
use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

const RELEASE: Options =
    Options { verify: false, listings: false, threads: 1, team_min_work: nnc::kernel::parallel::PARALLEL_MIN_WORK };

fn example(name: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("examples/{name}.nn")))
        .expect("example exists")
}

/// One epoch of `model` over `data` at `batch`, per iteration.
fn bench_epoch(c: &mut Criterion, group: &str, id: &str, source: &str, data: &Dataset, batch: usize, lr: f32) {
    let front = pipeline::frontend(source).expect("model checks");
    let program = &front.program;
    let graphs = pipeline::graphs(program);
    let kernels = pipeline::kernels(&graphs, batch, data.rows).expect("lowers");
    let native = pipeline::compile(program, &kernels, RELEASE).expect("compiles");
    let config = RunConfig { epochs: 1, batch, learning_rate: lr, seed: 0, shuffle: false };
    let mut group = c.benchmark_group(group);
    group.throughput(Throughput::Elements(data.rows as u64));
    group.measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    // Training keeps going from the last iteration's weights; with a tiny
    // learning rate they stay finite however many iterations criterion runs.
    let mut params = Params::init(program, 0);
    group.bench_function(BenchmarkId::from_parameter(id), |b| {
        b.iter(|| {
            let outcome = train::train(program, &native.train, Some(data), &config, params.clone(), |_, _, _| {})
                .expect("training stays finite");
            params = outcome.params;
        })
    });
    group.finish();
}

fn peers(c: &mut Criterion) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for (id, model, csv, batch) in [
        ("iris_b1", "iris", "iris.csv", 1),
        ("iris_b16", "iris", "iris.csv", 16),
        ("digits_b16", "digits", "digits.csv", 16),
        ("diabetes_b1", "diabetes", "diabetes.csv", 1),
    ] {
        let source = example(model);
        let program = pipeline::frontend(&source).expect("checks").program;
        let dataset = data::load(&root.join("examples").join(csv), &program).expect("binds");
        bench_epoch(c, "peers", id, &source, &dataset, batch, 1e-6);
    }
}

const WIDE: &str = "data { input x[784] target y = one_hot(10) }
model { h = dense(x, 256, relu)  out = dense(h, 10, softmax) }
loss cross_entropy(out, y)";

/// Multiply-adds per sample of one training step of WIDE (forward x·W1,
/// h·W2; backward g·W2ᵀ, xᵀ·g1, hᵀ·g2).
const WIDE_MACS: u64 = 784 * 256 + 256 * 10 + 256 * 10 + 784 * 256 + 256 * 10;

fn synthetic(rows: usize) -> Dataset {
    // A fixed LCG: the values only need to be varied and repeatable.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((state >> 40) as f32 / (1u64 << 24) as f32) - 0.5
    };
    let inputs = vec![(0..rows * 784).map(|_| next()).collect()];
    let targets = vec![(0..rows).flat_map(|r| (0..10).map(move |k| f32::from(k == r % 10))).collect()];
    Dataset { rows, inputs, targets, has_targets: true }
}

fn wide(c: &mut Criterion) {
    const ROWS: usize = 1024;
    const BATCH: usize = 32;
    let dataset = synthetic(ROWS);
    // nnc: one epoch of 1024 rows in batches of 32, counted in FLOPs.
    let front = pipeline::frontend(WIDE).expect("checks");
    let program = &front.program;
    let graphs = pipeline::graphs(program);
    let kernels = pipeline::kernels(&graphs, BATCH, ROWS).expect("lowers");
    let native = pipeline::compile(program, &kernels, RELEASE).expect("compiles");
    let config = RunConfig { epochs: 1, batch: BATCH, learning_rate: 1e-6, seed: 0, shuffle: false };
    let mut group = c.benchmark_group("wide");
    group.throughput(Throughput::Elements(2 * WIDE_MACS * ROWS as u64));
    group.measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    let mut params = Params::init(program, 0);
    group.bench_function("nnc_784_256_10_b32", |b| {
        b.iter(|| {
            let outcome = train::train(program, &native.train, Some(&dataset), &config, params.clone(), |_, _, _| {})
                .expect("finite");
            params = outcome.params;
        })
    });
    // sgemm: the same five products per batch, nothing else.
    let x = &dataset.inputs[0];
    let w1 = vec![0.01f32; 784 * 256];
    let w2 = vec![0.01f32; 256 * 10];
    let mut h = vec![0.0f32; BATCH * 256];
    let mut o = vec![0.0f32; BATCH * 10];
    let mut dh = vec![0.0f32; BATCH * 256];
    let mut dw1 = vec![0.0f32; 784 * 256];
    let mut dw2 = vec![0.0f32; 256 * 10];
    group.bench_function("sgemm_same_products", |b| {
        b.iter(|| {
            for batch in 0..ROWS / BATCH {
                let xb = &x[batch * BATCH * 784..(batch + 1) * BATCH * 784];
                // SAFETY: every pointer and stride below describes a buffer
                // of exactly the stated row-major shape.
                unsafe {
                    gemm(BATCH, 784, 256, xb.as_ptr(), 784, 1, w1.as_ptr(), 256, 1, h.as_mut_ptr(), 256);
                    gemm(BATCH, 256, 10, h.as_ptr(), 256, 1, w2.as_ptr(), 10, 1, o.as_mut_ptr(), 10);
                    // g·W2ᵀ: W2 read transposed.
                    gemm(BATCH, 10, 256, o.as_ptr(), 10, 1, w2.as_ptr(), 1, 10, dh.as_mut_ptr(), 256);
                    // xᵀ·g1 and hᵀ·g2: the left operands read transposed.
                    gemm(784, BATCH, 256, xb.as_ptr(), 1, 784, dh.as_ptr(), 256, 1, dw1.as_mut_ptr(), 256);
                    gemm(256, BATCH, 10, h.as_ptr(), 1, 256, o.as_ptr(), 10, 1, dw2.as_mut_ptr(), 10);
                }
            }
            black_box((&dw1, &dw2));
        })
    });
    group.finish();
}

/// C[m,n] = A[m,k]·B[k,n] with explicit strides (row stride, column stride).
#[allow(clippy::too_many_arguments)]
unsafe fn gemm(
    m: usize,
    k: usize,
    n: usize,
    a: *const f32,
    a_row: isize,
    a_col: isize,
    b: *const f32,
    b_row: isize,
    b_col: isize,
    c: *mut f32,
    c_row: isize,
) {
    // SAFETY: forwarded from the caller.
    unsafe { matrixmultiply::sgemm(m, k, n, 1.0, a, a_row, a_col, b, b_row, b_col, 0.0, c, c_row, 1) }
}

criterion_group!(benches, peers, wide);
criterion_main!(benches);
