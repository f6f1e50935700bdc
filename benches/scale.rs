//! Criterion benchmarks of the next size up (issue 12).
//!
//! - `wide_step/*`: one epoch of 640 rows (10 steps of batch 64) of a
//!   784-256-10 relu/softmax network, in FLOP/s of its five products
//!   (2 per multiply-add): products in f32x4 loop nests (`loops`), on the
//!   library GEMM with 1 and 2 threads (`gemm_1t`, `gemm_2t`), and the
//!   `gemm` crate alone doing the same five products per batch
//!   (`library_products`) — the ceiling the step is measured against.
//! - `gemm_cutover/<W>/{loops,gemm}`: 20-W-W-3, batch 256, 2048 rows: where
//!   the library call starts to beat the fused loop nest
//!   (`kernel::GEMM_MIN_MACS`).
//! - `ingest/csv_100k`: `runtime::data::load` of a 100 000 × 21 numeric CSV
//!   (20 features and a class), in rows per second; `ingest/parquet_100k`
//!   the same numbers in a Parquet file (snappy, one row group, written by
//!   the `parquet` crate).
//!
//! Run with `cargo bench --bench scale`; BENCHMARKS.md records the figures.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use nnc::codegen::Options;
use nnc::kernel::LowerOptions;
use nnc::pipeline;
use nnc::runtime::data::{self, Dataset};
use nnc::runtime::train::{self, Params, RunConfig};
use std::hint::black_box;
use std::time::Duration;

/// Release options for a run on `threads` threads (a team version of the
/// kernel when it has the work for one, as `nnc run` compiles it).
fn release(threads: usize) -> Options {
    Options { verify: false, threads, ..Options::default() }
}
const LOOPS: LowerOptions =
    LowerOptions { gemm_min_macs: u64::MAX, shard_min_work: nnc::kernel::parallel::PARALLEL_MIN_WORK };

/// Repeatable values in [-0.5, 0.5) from a fixed LCG.
fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..n)
        .map(|_| {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((state >> 40) as f32 / (1u64 << 24) as f32) - 0.5
        })
        .collect()
}

fn synthetic(rows: usize, inputs: usize, classes: usize) -> Dataset {
    let targets = vec![(0..rows).flat_map(|r| (0..classes).map(move |k| f32::from(k == r % classes))).collect()];
    Dataset { rows, inputs: vec![values(rows * inputs, 1)], targets, has_targets: true }
}

/// One epoch of `source` over `data`, per iteration, as benchmark `id`.
#[allow(clippy::too_many_arguments)]
fn bench_epoch(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    id: BenchmarkId,
    source: &str,
    data: &Dataset,
    batch: usize,
    options: LowerOptions,
    threads: usize,
) {
    let front = pipeline::frontend(source).expect("model checks");
    let program = &front.program;
    let graphs = pipeline::graphs(program);
    let kernels = pipeline::kernels_with(&graphs, batch, batch, options).expect("lowers");
    let mut native = pipeline::compile(program, &kernels, release(threads)).expect("compiles");
    native.use_threads(threads).expect("threads start");
    let config = RunConfig { epochs: 1, batch, learning_rate: 1e-6, seed: 0, shuffle: false };
    // Training goes on from the last iteration's weights; with a tiny
    // learning rate they stay finite however many iterations criterion runs.
    let mut params = Params::init(program, 0);
    group.bench_function(id, |b| {
        b.iter(|| {
            let outcome = train::train(program, &native.train, Some(data), &config, params.clone(), |_, _, _| {})
                .expect("training stays finite");
            params = outcome.params;
        })
    });
}

const WIDE: &str = "data { input x[784] target y = one_hot(10) }
model { h = dense(x, 256, relu)  out = dense(h, 10, softmax) }
loss cross_entropy(out, y)";

/// Multiply-adds per row of one training step of WIDE (forward x·W1, h·W2;
/// backward g·W2ᵀ, xᵀ·g1, hᵀ·g2).
const WIDE_MACS: u64 = 784 * 256 + 256 * 10 + 256 * 10 + 784 * 256 + 256 * 10;

fn wide_step(c: &mut Criterion) {
    const ROWS: usize = 640;
    const BATCH: usize = 64;
    let data = synthetic(ROWS, 784, 10);
    let mut group = c.benchmark_group("wide_step");
    group.throughput(Throughput::Elements(2 * WIDE_MACS * ROWS as u64));
    group.sample_size(20).measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    let id = |name: &str| BenchmarkId::from_parameter(name);
    bench_epoch(&mut group, id("loops"), WIDE, &data, BATCH, LOOPS, 1);
    bench_epoch(&mut group, id("gemm_1t"), WIDE, &data, BATCH, LowerOptions::default(), 1);
    bench_epoch(&mut group, id("gemm_2t"), WIDE, &data, BATCH, LowerOptions::default(), 2);
    // The library alone: the same five products per batch, one call each.
    let x = &data.inputs[0];
    let (w1, w2) = (values(784 * 256, 2), values(256 * 10, 3));
    let (mut h, mut o, mut dh) = (vec![0.0f32; BATCH * 256], vec![0.0f32; BATCH * 10], vec![0.0f32; BATCH * 256]);
    let (mut dw1, mut dw2) = (vec![0.0f32; 784 * 256], vec![0.0f32; 256 * 10]);
    group.bench_function(id("library_products"), |b| {
        b.iter(|| {
            for batch in 0..ROWS / BATCH {
                let xb = &x[batch * BATCH * 784..(batch + 1) * BATCH * 784];
                // SAFETY: every pointer and stride describes a buffer of
                // exactly the stated row-major shape.
                unsafe {
                    product(BATCH, 784, 256, xb.as_ptr(), (784, 1), w1.as_ptr(), (256, 1), h.as_mut_ptr());
                    product(BATCH, 256, 10, h.as_ptr(), (256, 1), w2.as_ptr(), (10, 1), o.as_mut_ptr());
                    product(BATCH, 10, 256, o.as_ptr(), (10, 1), w2.as_ptr(), (1, 10), dh.as_mut_ptr());
                    product(784, BATCH, 256, xb.as_ptr(), (1, 784), dh.as_ptr(), (256, 1), dw1.as_mut_ptr());
                    product(256, BATCH, 10, h.as_ptr(), (1, 256), o.as_ptr(), (10, 1), dw2.as_mut_ptr());
                }
            }
            black_box((&dw1, &dw2));
        })
    });
    group.finish();
}

/// `c[m,n] = a[m,k]·b[k,n]`, operands with (row, column) strides, `c`
/// row-major: one single-threaded call of the `gemm` crate.
#[allow(clippy::too_many_arguments)]
unsafe fn product(
    m: usize,
    k: usize,
    n: usize,
    a: *const f32,
    a_strides: (isize, isize),
    b: *const f32,
    b_strides: (isize, isize),
    c: *mut f32,
) {
    // SAFETY: forwarded from the caller.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c,
            1,
            n as isize,
            false,
            a,
            a_strides.1,
            a_strides.0,
            b,
            b_strides.1,
            b_strides.0,
            0.0f32,
            1.0f32,
            false,
            false,
            false,
            gemm::Parallelism::None,
        )
    }
}

fn gemm_cutover(c: &mut Criterion) {
    const ROWS: usize = 2048;
    let data = synthetic(ROWS, 20, 3);
    let mut group = c.benchmark_group("gemm_cutover");
    group.throughput(Throughput::Elements(ROWS as u64));
    group.sample_size(10).measurement_time(Duration::from_secs(2)).warm_up_time(Duration::from_millis(500));
    for width in [32, 64, 128, 256] {
        let source = format!(
            "data {{ input x[20] target y = one_hot(3) }}
             model {{ h = dense(x, {width}, relu)  g = dense(h, {width}, relu)  out = dense(g, 3, softmax) }}
             loss cross_entropy(out, y)"
        );
        let all = LowerOptions { gemm_min_macs: 0, ..LowerOptions::default() };
        bench_epoch(&mut group, BenchmarkId::new(width.to_string(), "loops"), &source, &data, 256, LOOPS, 1);
        bench_epoch(&mut group, BenchmarkId::new(width.to_string(), "gemm"), &source, &data, 256, all, 1);
    }
    group.finish();
}

fn ingest(c: &mut Criterion) {
    const ROWS: usize = 100_000;
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench_ingest_100k.csv");
    if !path.exists() {
        let features = values(ROWS * 20, 4);
        let mut text = String::with_capacity(ROWS * 200);
        for (r, row) in features.chunks(20).enumerate() {
            for v in row {
                text.push_str(&format!("{:.6},", v * 4.0));
            }
            text.push_str(&format!("{}\n", r % 3));
        }
        std::fs::write(&path, text).expect("writes the data file");
    }
    let source = "data { input x[20] target y = one_hot(3) }
        model { out = dense(x, 3, softmax) }
        loss cross_entropy(out, y)";
    let program = pipeline::frontend(source).expect("checks").program;
    let mut group = c.benchmark_group("ingest");
    group.throughput(Throughput::Elements(ROWS as u64));
    group.sample_size(10).measurement_time(Duration::from_secs(3));
    group.bench_function("csv_100k", |b| b.iter(|| black_box(data::load(&path, &program).expect("binds"))));
    let parquet = path.with_extension("parquet");
    if !parquet.exists() {
        write_parquet(&parquet, &values(ROWS * 20, 4), ROWS);
    }
    group.bench_function("parquet_100k", |b| b.iter(|| black_box(data::load(&parquet, &program).expect("binds"))));
    group.finish();
}

/// `rows` rows of 20 doubles (`features`, row-major, times 4 as in the
/// CSV) and a class `r % 3`, as a Parquet file.
fn write_parquet(path: &std::path::Path, features: &[f32], rows: usize) {
    use parquet::basic::Compression;
    use parquet::data_type::{DoubleType, Int64Type};
    use parquet::file::properties::WriterProperties;
    use parquet::file::writer::SerializedFileWriter;
    let columns: String = (0..20).map(|k| format!("required double f{k}; ")).collect();
    let schema =
        parquet::schema::parser::parse_message_type(&format!("message m {{ {columns} required int64 label; }}"))
            .expect("a schema");
    let properties = WriterProperties::builder().set_compression(Compression::SNAPPY).build();
    let file = std::fs::File::create(path).expect("creates the data file");
    let mut writer = SerializedFileWriter::new(file, schema.into(), properties.into()).expect("a writer");
    let mut group = writer.next_row_group().expect("a row group");
    for k in 0..20 {
        let column: Vec<f64> = (0..rows).map(|r| f64::from(features[r * 20 + k] * 4.0)).collect();
        let mut out = group.next_column().expect("a column").expect("20 doubles");
        out.typed::<DoubleType>().write_batch(&column, None, None).expect("writes");
        out.close().expect("closes");
    }
    let labels: Vec<i64> = (0..rows as i64).map(|r| r % 3).collect();
    let mut out = group.next_column().expect("a column").expect("the label");
    out.typed::<Int64Type>().write_batch(&labels, None, None).expect("writes");
    out.close().expect("closes");
    group.close().expect("closes");
    writer.close().expect("closes");
}

criterion_group!(benches, wide_step, gemm_cutover, ingest);
criterion_main!(benches);
