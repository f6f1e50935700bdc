//! The JIT against the reference interpreter.
//!
//! Every model here (the three examples and hand-written sources covering
//! relu, `bias = false`, per-neuron activation lists, custom losses, three
//! layers, non-integer powers, and batch sizes 1, 3, 4 with a partial last
//! batch, and the full batch) is compiled through `pipeline::{frontend,
//! graphs, kernels, compile}` with Cranelift's verifier on, and run side by
//! side with `ir::interp` in f64 from the same initial parameters:
//!
//! - the evaluation kernel's loss and predictions over the whole data, vs
//!   `interp::eval` of `graphs.eval` (before and after training);
//! - the parameters and loss after one training-kernel call over one batch,
//!   vs `interp::train_step` on `graphs.train`;
//! - the per-batch losses and the parameters after each of several epochs
//!   (one kernel call per epoch), vs the interpreter stepping batch by batch;
//! - the same through `runtime::train::train` (history, final loss, accuracy).
//!
//! Every optimizer and schedule (momentum, Nesterov, Adam, AdamW; step,
//! exponential and cosine) goes through the same checks, on hand-written
//! models and the optimizer examples, with the optimizer state tensors and
//! the step counter compared as well.
//!
//! The same checks run on 100 random graphs (`common::random`: elementwise
//! ops, broadcasts, reductions, softmax, slices, pads, concatenations and
//! small matmuls over data and parameters), built directly as a `Program`.
//!
//! The kernels compute in f32, so values are compared at f32 tolerances:
//! `|jit − interp| ≤ ATOL + RTOL·|interp|` (the examples stay about 100×
//! inside them). Finally the seed network's forward pass is checked against
//! the article's formula written out by hand in plain Rust, and minimize.nn
//! against its known minimum x = 1.

mod common;

use common::{Rng, assert_all_close, close, random, tensor_f32, to_f64};
use nnc::codegen::{Compiled, KernelArgs, Options};
use nnc::ir::interp::{self, Env, Tensor};
use nnc::ir::program::{Encoding, HyperContext, Program, Schedule, Task};
use nnc::pipeline::{self, Graphs, Native};
use nnc::runtime::data::{self, Dataset};
use nnc::runtime::train::{self, Params, RunConfig};
use std::ops::Range;

/// f32 round-off relative to the f64 reference.
const RTOL: f64 = 1e-4;
const ATOL: f64 = 1e-5;

const EPOCHS: usize = 3;

// ---- compiling and calling ----------------------------------------------------------

struct Model {
    program: Program,
    graphs: Graphs,
    native: Native,
    /// The same kernels compiled for teams of 2 and 3 threads (each split
    /// as `kernel::parallel` plans it, however little work it has): the
    /// training kernel's team version, and the evaluation kernel's.
    teams: Vec<(Compiled, Option<train::Evaluator>)>,
    /// Rows of the data set (steps per call for a model without data).
    rows: usize,
    batch: usize,
}

/// Compile `source` for training batches of `batch` rows and an evaluation
/// over `eval_rows` rows.
fn compile(source: &str, batch: usize, rows: usize, eval_rows: usize) -> Model {
    compile_program(common::program(source), batch, rows, eval_rows)
}

thread_local! {
    /// The GEMM cut-over of the kernels this test thread compiles.
    static GEMM_MIN_MACS: std::cell::Cell<u64> = const { std::cell::Cell::new(nnc::kernel::GEMM_MIN_MACS) };
    /// Kernels compiled on this test thread that call the library GEMM.
    static GEMM_KERNELS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    /// The work from which the kernels this test thread compiles have
    /// their sums over rows cut into chunks (`kernel::shard`).
    static SHARD_MIN_WORK: std::cell::Cell<u64> = const { std::cell::Cell::new(nnc::kernel::parallel::PARALLEL_MIN_WORK) };
    /// Kernels compiled on this test thread with sums over chunks of rows.
    static SHARDED_KERNELS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Run `checks` with every matrix product of every kernel on the library
/// GEMM (`Stmt::Gemm`) instead of loop nests (every product whose operands
/// are stored; a product of a constant stays a loop); at least `kernels` of
/// the kernels compiled must call it.
fn with_library_gemm(kernels: usize, checks: impl FnOnce()) {
    GEMM_MIN_MACS.with(|m| m.set(0));
    GEMM_KERNELS.with(|n| n.set(0));
    checks();
    GEMM_MIN_MACS.with(|m| m.set(nnc::kernel::GEMM_MIN_MACS));
    let calling = GEMM_KERNELS.with(|n| n.get());
    assert!(calling >= kernels, "only {calling} kernels called the library GEMM");
}

/// Run `checks` with the sums over rows of every training kernel cut into
/// chunks (`kernel::shard`) wherever they qualify; at least `kernels` of
/// the kernels compiled must have one.
fn with_sharded_sums(kernels: usize, checks: impl FnOnce()) {
    SHARD_MIN_WORK.with(|m| m.set(0));
    SHARDED_KERNELS.with(|n| n.set(0));
    checks();
    SHARD_MIN_WORK.with(|m| m.set(nnc::kernel::parallel::PARALLEL_MIN_WORK));
    let sharded = SHARDED_KERNELS.with(|n| n.get());
    assert!(sharded >= kernels, "only {sharded} kernels had sums over chunks of rows");
}

fn compile_program(program: Program, batch: usize, rows: usize, eval_rows: usize) -> Model {
    let graphs = pipeline::graphs(&program);
    let options = nnc::kernel::LowerOptions {
        gemm_min_macs: GEMM_MIN_MACS.with(|m| m.get()),
        shard_min_work: SHARD_MIN_WORK.with(|m| m.get()),
    };
    let kernels =
        pipeline::kernels_with(&graphs, batch, eval_rows, options).unwrap_or_else(|e| panic!("lowering failed: {e}"));
    let has_gemm = |k: &nnc::kernel::Kernel| k.body.iter().any(|s| matches!(s, nnc::kernel::Stmt::Gemm(_)));
    GEMM_KERNELS.with(|n| n.set(n.get() + has_gemm(&kernels.0) as usize + has_gemm(&kernels.1) as usize));
    let sharded = kernels.0.body.iter().any(|s| nnc::kernel::shard::chunk_of(s).is_some());
    SHARDED_KERNELS.with(|n| n.set(n.get() + sharded as usize));
    let options = Options { verify: true, ..Options::default() };
    let native = pipeline::compile(&program, &kernels, options).unwrap_or_else(|e| panic!("compilation failed: {e}"));
    let teams = [2, 3]
        .into_iter()
        .map(|threads| {
            let options = Options { threads, team_min_work: 0, ..options };
            let mut native =
                pipeline::compile(&program, &kernels, options).unwrap_or_else(|e| panic!("compilation failed: {e}"));
            let train = *native.train.team_version.take().expect("every kernel has a team version here");
            let eval = match native.eval {
                train::Evaluator::Compiled(mut k) => k.team_version.take().map(train::Evaluator::Compiled),
                train::Evaluator::Interpreted(_) => None,
            };
            (train, eval)
        })
        .collect();
    Model { program, graphs, native, teams, rows, batch }
}

fn pointers(matrices: &[Vec<f32>]) -> Vec<*const f32> {
    matrices.iter().map(|m| m.as_ptr()).collect()
}

fn predict_width(graph: &nnc::ir::Graph) -> usize {
    graph.output("predict").map_or(0, |id| graph.shape(id).width().expect("fixed width") as usize)
}

/// The evaluation kernel over all rows: (loss, predictions row-major).
fn jit_eval(model: &Model, data: Option<&Dataset>, params: &Params) -> (f64, Vec<f64>) {
    let rows = data.map_or(1, |d| d.rows);
    let width = predict_width(&model.graphs.eval);
    let mut values = params.values.clone();
    let eval_kernel = model.native.eval.compiled().expect("pipeline::compile compiles the evaluation kernel");
    let mut scratch = vec![f32::NAN; eval_kernel.kernel.scratch_len.max(1)];
    let mut loss = [f32::NAN];
    // NaN-filled, so anything the kernel does not write shows up.
    let mut predict = vec![f32::NAN; (rows * width).max(1)];
    let (inputs, targets) = data.map_or((vec![], vec![]), |d| (pointers(&d.inputs), pointers(&d.targets)));
    let args = KernelArgs {
        params: values.as_mut_ptr(),
        scratch: scratch.as_mut_ptr(),
        losses: loss.as_mut_ptr(),
        predict: predict.as_mut_ptr(),
        inputs: inputs.as_ptr(),
        targets: targets.as_ptr(),
        rows: rows as i64,
        batch: rows as i64,
        ..KernelArgs::default()
    };
    // SAFETY: the buffers have the sizes the kernel was lowered for: packed
    // parameters, its scratch, one loss, `rows × width` data and predictions,
    // and the evaluation kernel was lowered for batches of `rows` rows.
    unsafe { eval_kernel.call(&args) };
    assert_eq!(values, params.values, "the evaluation kernel changed the parameters");
    (loss[0] as f64, to_f64(&predict[..rows * width]))
}

/// The training kernel over the first `rows` rows (steps, without data) in
/// batches of `model.batch`; updates `params`, returns the per-batch losses.
fn jit_train(model: &Model, data: Option<&Dataset>, params: &mut Params, rows: usize, learning_rate: f32) -> Vec<f64> {
    if let Some(d) = data {
        assert!(rows <= d.rows);
    }
    let hypers = HyperContext { learning_rate: learning_rate as f64, schedule: schedule(model) };
    let mut scratch = vec![f32::NAN; model.native.train.kernel.scratch_len.max(1)];
    let mut losses = vec![f32::NAN; rows.div_ceil(model.batch)];
    let (inputs, targets) = data.map_or((vec![], vec![]), |d| (pointers(&d.inputs), pointers(&d.targets)));
    let args = KernelArgs {
        params: params.values.as_mut_ptr(),
        scratch: scratch.as_mut_ptr(),
        losses: losses.as_mut_ptr(),
        predict: std::ptr::null_mut(),
        inputs: inputs.as_ptr(),
        targets: targets.as_ptr(),
        rows: rows as i64,
        batch: model.batch as i64,
        learning_rate,
        state: params.state.values.as_mut_ptr(),
        step: params.state.step as i64,
        hypers: &hypers,
        ..KernelArgs::default()
    };
    // SAFETY: as in `jit_eval`; the data matrices hold at least `rows` rows,
    // the kernel was lowered for batches of `model.batch` rows, and the
    // optimizer state is packed as the program declares it.
    unsafe { model.native.train.call(&args) };
    params.state.step += losses.len() as u64;
    to_f64(&losses)
}

/// The program's schedule with a cosine's length set as `runtime::train`
/// sets it for a run of `EPOCHS` epochs (calls) from step 0.
fn schedule(model: &Model) -> Schedule {
    let per_call = model.rows.div_ceil(model.batch) as u64;
    model.program.train.schedule.value.resolved(EPOCHS as u64 * per_call)
}

/// The interpreter's side of training: parameters, optimizer state, steps taken.
#[derive(Clone, Default)]
struct Reference {
    params: Vec<Tensor>,
    state: Vec<Tensor>,
    step: u64,
}

impl Reference {
    fn new(params: &Params) -> Reference {
        Reference { params: param_tensors(params), ..Reference::default() }
    }

    /// One interpreter step on rows `range`; returns the loss.
    fn step(&mut self, model: &Model, data: Option<&Dataset>, range: Range<usize>, lr: f32) -> f64 {
        let mut env = env(&model.program, data, range, std::mem::take(&mut self.params), lr);
        env.state = std::mem::take(&mut self.state);
        env.step = self.step;
        env.schedule = schedule(model);
        let loss = interp::train_step(&model.graphs.train, &mut env);
        (self.params, self.state, self.step) = (env.params, env.state, env.step);
        loss
    }
}

// ---- the interpreter side -----------------------------------------------------------

fn param_tensors(params: &Params) -> Vec<Tensor> {
    (0..params.shapes.len()).map(|i| tensor_f32(params.shapes[i], params.get(i))).collect()
}

/// All optimizer state, unpadded, one tensor after another.
fn flat_state(params: &Params) -> Vec<f64> {
    (0..params.state.shapes.len()).flat_map(|i| to_f64(params.state.get(i))).collect()
}

/// All parameters, unpadded, one after another.
fn flat_params(params: &Params) -> Vec<f64> {
    (0..params.shapes.len()).flat_map(|i| to_f64(params.get(i))).collect()
}

fn flat_tensors(tensors: &[Tensor]) -> Vec<f64> {
    tensors.iter().flat_map(|t| t.data.clone()).collect()
}

/// Rows `range` of a row-major matrix of `width` columns, as a tensor.
fn rows_of(matrix: &[f32], width: usize, range: Range<usize>) -> Tensor {
    let data = to_f64(&matrix[range.start * width..range.end * width]);
    Tensor::new(range.len(), width, data)
}

/// The interpreter's environment for rows `range` of the data.
fn env(program: &Program, data: Option<&Dataset>, range: Range<usize>, params: Vec<Tensor>, lr: f32) -> Env {
    let graph = &program.graph;
    let (inputs, targets) = match data {
        Some(d) => (
            graph.inputs.iter().zip(&d.inputs).map(|(v, m)| rows_of(m, v.width as usize, range.clone())).collect(),
            graph.targets.iter().zip(&d.targets).map(|(v, m)| rows_of(m, v.width as usize, range.clone())).collect(),
        ),
        None => (vec![], vec![]),
    };
    Env { inputs, targets, params, learning_rate: lr as f64, ..Env::default() }
}

/// Loss and predictions of `graphs.eval` over all rows.
fn interp_eval(model: &Model, data: Option<&Dataset>, params: Vec<Tensor>) -> (f64, Vec<f64>) {
    let rows = data.map_or(1, |d| d.rows);
    let env = env(&model.program, data, 0..rows, params, 0.0);
    let graph = &model.graphs.eval;
    let values = interp::eval(graph, &env);
    let loss = values[graph.output("loss").expect("a loss").index()].data[0];
    let predict = graph.output("predict").map_or(vec![], |id| values[id.index()].data.clone());
    (loss, predict)
}

// ---- the checks ---------------------------------------------------------------------

fn check_eval(name: &str, model: &Model, data: Option<&Dataset>, params: &Params) {
    let (jit_loss, jit_predict) = jit_eval(model, data, params);
    let (loss, predict) = interp_eval(model, data, param_tensors(params));
    assert!(close(jit_loss, loss, RTOL, ATOL), "{name}: eval kernel loss {jit_loss:.9e}, interpreter {loss:.9e}");
    assert_all_close(&format!("{name}: eval kernel predictions"), &jit_predict, &predict, RTOL, ATOL);
}

/// The training kernel over `rows` rows vs the interpreter stepping batch by
/// batch from the same parameters; returns the interpreter's batch losses.
fn check_train_call(
    name: &str,
    model: &Model,
    data: Option<&Dataset>,
    jit: &mut Params,
    reference: &mut Reference,
    rows: usize,
) -> Vec<f64> {
    let lr = model.program.train.learning_rate.value as f32;
    let jit_losses = jit_train(model, data, jit, rows, lr);
    let mut losses = Vec::new();
    for start in (0..rows).step_by(model.batch) {
        // Without data, the kernel's rows are steps and every step sees the same (no) data.
        let range = if data.is_some() { start..(start + model.batch).min(rows) } else { 0..0 };
        losses.push(reference.step(model, data, range, lr));
    }
    assert_all_close(&format!("{name}: batch losses"), &jit_losses, &losses, RTOL, ATOL);
    assert_all_close(&format!("{name}: parameters"), &flat_params(jit), &flat_tensors(&reference.params), RTOL, ATOL);
    let state = flat_tensors(&reference.state);
    assert_all_close(&format!("{name}: optimizer state"), &flat_state(jit), &state, RTOL, ATOL);
    assert_eq!(jit.state.step, reference.step, "{name}: steps taken");
    losses
}

/// Every comparison for one model and data set.
fn check_model(name: &str, model: &Model, data: Option<&Dataset>) {
    let init = Params::init(&model.program, model.program.train.seed.value);
    check_eval(&format!("{name}, initial parameters"), model, data, &init);

    // One call, one batch (one step without data).
    let mut jit = init.clone();
    let mut reference = Reference::new(&init);
    let one = if data.is_some() { model.batch } else { 1 };
    check_train_call(&format!("{name}, one batch"), model, data, &mut jit, &mut reference, one);

    // Several epochs: one call each over all rows.
    let mut jit = init.clone();
    let mut reference = Reference::new(&init);
    let mut history = Vec::new();
    for epoch in 1..=EPOCHS {
        let losses =
            check_train_call(&format!("{name}, epoch {epoch}"), model, data, &mut jit, &mut reference, model.rows);
        history.push(losses);
    }
    check_eval(&format!("{name}, trained parameters"), model, data, &jit);

    // The same through the runtime's training loop.
    let config = RunConfig {
        epochs: if data.is_some() { EPOCHS } else { EPOCHS * model.rows } as u64,
        batch: model.batch,
        learning_rate: model.program.train.learning_rate.value as f32,
        seed: model.program.train.seed.value,
        shuffle: false,
    };
    let outcome = train::train(&model.program, &model.native.train, data, &config, init.clone(), |_, _, _| {})
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let final_eval = train::evaluate(&model.program, &model.native.eval, data, &outcome.params, None).metrics;
    let final_loss = final_eval.loss.expect("the data has targets");
    assert_all_close(
        &format!("{name}: runtime::train parameters"),
        &flat_params(&outcome.params),
        &flat_tensors(&reference.params),
        RTOL,
        ATOL,
    );
    let expected_history: Vec<f64> = match data {
        // Each epoch's loss is the row-weighted mean of its batch losses.
        Some(d) => history
            .iter()
            .map(|losses| {
                let total: f64 = losses
                    .iter()
                    .enumerate()
                    .map(|(i, l)| l * (model.batch.min(d.rows - i * model.batch)) as f64)
                    .sum();
                total / d.rows as f64
            })
            .collect(),
        None => history.concat(),
    };
    assert_all_close(&format!("{name}: runtime::train history"), &outcome.history, &expected_history, RTOL, ATOL);
    // With progress, the epoch runs in chunks (two batches, then one per
    // call): the same bytes, and progress reported after every chunk.
    let mut reports = Vec::new();
    let mut report = |epoch: u64, rows: usize| reports.push((epoch, rows));
    let progress = train::Progress { rows: model.batch + 1, interval: std::time::Duration::ZERO, report: &mut report };
    let chunked = train::train_with_progress(
        &model.program,
        &model.native.train,
        data,
        &config,
        init.clone(),
        Some(progress),
        |_, _, _| std::ops::ControlFlow::Continue(()),
    )
    .unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(chunked.params, outcome.params, "{name}: chunked epochs train other weights");
    assert_eq!(chunked.history, outcome.history, "{name}: chunked epochs report other losses");
    if let Some(d) = data {
        let batches = d.rows.div_ceil(model.batch);
        let calls = if batches > 2 { batches - 1 } else { 1 };
        assert_eq!(reports.len(), calls * EPOCHS, "{name}: progress reports {reports:?}");
        assert_eq!(reports.last(), Some(&(EPOCHS as u64, d.rows)), "{name}: the last report");
        assert!(reports.windows(2).all(|w| w[0] < w[1]), "{name}: progress moves forward: {reports:?}");
    }
    // On teams of 2 and 3 threads: the same bytes (`kernel::parallel`).
    for (team, eval) in &model.teams {
        let threads = team.team;
        let on_team = train::train(&model.program, team, data, &config, init.clone(), |_, _, _| {})
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(on_team.params == outcome.params, "{name}: {threads} threads train other weights");
        assert!(on_team.history == outcome.history, "{name}: {threads} threads report other losses");
        if let Some(eval) = eval {
            let team_eval = train::evaluate(&model.program, eval, data, &outcome.params, None);
            let plain_eval = train::evaluate(&model.program, &model.native.eval, data, &outcome.params, None);
            assert!(
                team_eval.metrics.loss.map(f64::to_bits) == final_eval.loss.map(f64::to_bits),
                "{name}: {threads} threads evaluate another loss"
            );
            assert!(team_eval.predictions == plain_eval.predictions, "{name}: {threads} threads predict otherwise");
        }
    }
    let (loss, predict) = interp_eval(model, data, reference.params);
    assert!(
        close(final_loss, loss, RTOL, ATOL),
        "{name}: runtime::evaluate final loss {final_loss:.9e}, interpreter {loss:.9e}"
    );
    if let (Task::Classification { classes }, Some(d)) = (model.program.task, data) {
        let k = classes as usize;
        let argmax = |row: &[f64]| (0..row.len()).fold(0, |best, i| if row[i] > row[best] { i } else { best });
        let target = to_f64(&d.targets[0]);
        let class = |r: usize| match target.len() / d.rows {
            1 => target[r] as usize, // a column of class indices
            _ => argmax(&target[r * k..(r + 1) * k]),
        };
        let correct = (0..d.rows).filter(|&r| argmax(&predict[r * k..(r + 1) * k]) == class(r)).count();
        let accuracy = correct as f64 / d.rows as f64;
        // One row may flip when two classes are within f32 round-off.
        let slack = 1.0 / d.rows as f64 + 1e-12;
        let got = final_eval.accuracy.expect("classification reports accuracy");
        assert!((got - accuracy).abs() <= slack, "{name}: accuracy {got}, interpreter {accuracy}");
    }
}

// ---- data ---------------------------------------------------------------------------

fn load_csv(program: &Program, file: &str) -> Dataset {
    data::load(&common::example_path(file), program).unwrap_or_else(|e| panic!("{e:?}"))
}

fn first_rows(data: &Dataset, rows: usize) -> Dataset {
    let cut = |matrices: &[Vec<f32>]| -> Vec<Vec<f32>> {
        matrices.iter().map(|m| m[..rows * (m.len() / data.rows)].to_vec()).collect()
    };
    Dataset { rows, inputs: cut(&data.inputs), targets: cut(&data.targets), ..data.clone() }
}

/// Random data of the program's widths: inputs in [-1, 1], one-hot targets
/// as one-hot rows, other targets in [-1, 1].
fn synthetic(program: &Program, rows: usize, seed: u64) -> Dataset {
    let mut rng = Rng::new(seed);
    let graph = &program.graph;
    let mut matrix =
        |width: u32| -> Vec<f32> { (0..rows * width as usize).map(|_| rng.uniform(-1.0, 1.0) as f32).collect() };
    let inputs: Vec<Vec<f32>> = graph.inputs.iter().map(|v| matrix(v.width)).collect();
    let mut targets: Vec<Vec<f32>> = graph.targets.iter().map(|v| matrix(v.width)).collect();
    for binding in program.data.iter().filter(|b| b.is_target) {
        if let Encoding::OneHot { classes } = binding.encoding {
            let k = classes as usize;
            let mut one_hot = vec![0.0; rows * k];
            for r in 0..rows {
                one_hot[r * k + rng.below(k)] = 1.0;
            }
            targets[binding.index as usize] = one_hot;
        }
    }
    Dataset { rows, inputs, targets, has_targets: true }
}

/// Compile and check a model with data, at its file's batch size unless
/// `batch` overrides it.
fn check_with_data(name: &str, source: &str, data: impl Fn(&Program) -> Dataset, batch: Option<usize>) {
    let program = common::program(source);
    let data = data(&program);
    let batch = batch.unwrap_or(program.train.batch.value as usize).min(data.rows);
    let model = compile(source, batch, data.rows, data.rows);
    check_model(&format!("{name} (batch {batch}, {} rows)", data.rows), &model, Some(&data));
}

/// Compile and check a model without data, `steps` steps per kernel call.
fn check_without_data(name: &str, source: &str, steps: usize) {
    let model = compile(source, 1, steps, 1);
    check_model(name, &model, None);
}

// ---- the examples -------------------------------------------------------------------

#[test]
fn minimize_example() {
    check_without_data("minimize.nn", &common::example("minimize.nn"), 10);
}

#[test]
fn seed_example() {
    let source = common::example("seed.nn");
    check_with_data("seed.nn", &source, |p| load_csv(p, "seed.csv"), None);
    check_with_data("seed.nn", &source, |p| first_rows(&load_csv(p, "seed.csv"), 10), Some(4));
}

#[test]
fn iris_example() {
    let source = common::example("iris.nn");
    check_with_data("iris.nn", &source, |p| load_csv(p, "iris.csv"), None);
    check_with_data("iris.nn", &source, |p| first_rows(&load_csv(p, "iris.csv"), 10), Some(3));
    check_with_data("iris.nn", &source, |p| load_csv(p, "iris.csv"), Some(150));
}

// ---- hand-written models ------------------------------------------------------------

#[test]
fn relu_layers() {
    let source = "data { input x[3] target y[2] }
        model { h = dense(x, 6, relu)  g = dense(h, 4, relu)  out = dense(g, 2) }
        loss mse(out, y)
        train { optimizer = sgd(lr = 0.1)  batch = 4  seed = 3 }";
    check_with_data("relu layers", source, |p| synthetic(p, 10, 1), None);
}

#[test]
fn no_bias_and_per_neuron_activations() {
    let source = "data { input x[3] target y[2] }
        model {
          h = dense(x, 4, [relu, tanh, sigmoid, tanh], bias = false)
          out = dense(h, 2, [sigmoid, identity])
        }
        loss mse(out, y)
        train { optimizer = sgd(lr = 0.2)  batch = 3  seed = 5 }";
    check_with_data("per-neuron activations", source, |p| synthetic(p, 10, 2), None);
}

#[test]
fn mean_absolute_error_batch_1() {
    let source = "data { input x[2] target y[1] }
        model { h = dense(x, 3, tanh)  out = dense(h, 1) }
        loss mean(abs(out - y))
        train { optimizer = sgd(lr = 0.05)  batch = 1 }";
    check_with_data("mae", source, |p| synthetic(p, 7, 3), None);
}

#[test]
fn custom_squared_loss_full_batch() {
    let source = "data { input x[4] target y[2] }
        model { h = dense(x, 5, sigmoid)  out = dense(h, 2, identity) }
        loss sum((out - y)^2) / 2
        train { optimizer = sgd(lr = 0.05)  batch = 10 }";
    check_with_data("Σ(out − y)²/2", source, |p| synthetic(p, 10, 4), None);
}

#[test]
fn three_layer_classifier() {
    let source = "data { input x[4] target y = one_hot(3) }
        model {
          h1 = dense(x, 6, tanh)
          h2 = dense(h1, 5, relu)
          out = dense(h2, 3, softmax)
        }
        loss cross_entropy(out, y)
        train { optimizer = sgd(lr = 0.1)  batch = 4  seed = 7 }";
    check_with_data("3 layers, softmax", source, |p| synthetic(p, 10, 5), None);
    check_with_data("3 layers, softmax", source, |p| synthetic(p, 1, 6), None);
}

#[test]
fn params_without_data() {
    // Non-integer powers lower through exp and log; 1/b is a negative power.
    let source = "param a = 0.5
        param b = 1.5
        loss (a - 1)^2 + exp(a) * b^0.5 + 1 / b + b^2 * 0.1 - log(b) * a^3
        train { optimizer = sgd(lr = 0.05)  steps = 10 }";
    check_without_data("params without data", source, 10);
}

// ---- independent oracles: the article's formula, the known minimum ------------------

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

#[test]
fn seed_forward_pass_is_the_articles_formula() {
    let source = common::example("seed.nn");
    let program = common::program(&source);
    // W1 [inputs=3, outputs=2] and W2 [2, 1], hand-chosen.
    let w1 = [[0.5, -0.3], [0.2, 0.8], [-0.7, 0.1]];
    let w2 = [1.2, -0.6];
    let x = [[0.547912, -0.122243, 0.717196], [0.394736, -0.811645, 0.951245], [-1.0, 0.25, 0.5], [2.0, -1.5, 0.0]];
    let y = [0.981075, 1.792424, -0.5, 0.25];
    // ŷ = f3(f1(x·W1[:,0])·w*1 + f2(x·W1[:,1])·w*2), f1 = tanh, f2 = sigmoid, f3 = identity.
    let expected: Vec<f64> = x
        .iter()
        .map(|row| {
            let z1: f64 = (0..3).map(|k| row[k] * w1[k][0]).sum();
            let z2: f64 = (0..3).map(|k| row[k] * w1[k][1]).sum();
            z1.tanh() * w2[0] + sigmoid(z2) * w2[1]
        })
        .collect();
    let expected_loss = expected.iter().zip(&y).map(|(p, t)| (p - t).powi(2)).sum::<f64>() / y.len() as f64;

    let mut params = Params::init(&program, 0);
    let names: Vec<&str> = program.graph.params.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["h.w", "y_hat.w"], "seed.nn has two weight matrices and no biases");
    assert_eq!(params.shapes, [nnc::ir::Shape::fixed(3, 2), nnc::ir::Shape::fixed(2, 1)]);
    for (k, row) in w1.iter().enumerate() {
        params.get_mut(0)[2 * k..2 * k + 2].copy_from_slice(&[row[0] as f32, row[1] as f32]);
    }
    params.get_mut(1).copy_from_slice(&[w2[0] as f32, w2[1] as f32]);
    let data = Dataset {
        rows: x.len(),
        inputs: vec![x.iter().flatten().map(|&v| v as f32).collect()],
        targets: vec![y.iter().map(|&v| v as f32).collect()],
        has_targets: true,
    };
    // The f32 inputs and weights as the kernels and the interpreter see them.
    let exact: Vec<f64> = x
        .iter()
        .map(|row| {
            let r = |v: f64| v as f32 as f64;
            let z1: f64 = (0..3).map(|k| r(row[k]) * r(w1[k][0])).sum();
            let z2: f64 = (0..3).map(|k| r(row[k]) * r(w1[k][1])).sum();
            z1.tanh() * r(w2[0]) + sigmoid(z2) * r(w2[1])
        })
        .collect();
    assert_all_close("f32 rounding of the inputs", &exact, &expected, 1e-6, 1e-6);

    let model = compile(&source, 1, x.len(), x.len());
    for (stage, graph) in [("forward graph", &program.graph), ("graphs.eval", &model.graphs.eval)] {
        let env = env(&program, Some(&data), 0..x.len(), param_tensors(&params), 0.0);
        let values = interp::eval(graph, &env);
        let predict = &values[graph.output("predict").expect("prediction").index()].data;
        let loss = values[graph.output("loss").expect("loss").index()].data[0];
        assert_all_close(&format!("interpreter on {stage}: ŷ"), predict, &exact, 1e-12, 1e-12);
        assert!(close(loss, exact_loss(&exact, &data), 1e-12, 1e-12), "interpreter on {stage}: loss {loss}");
    }
    let (jit_loss, jit_predict) = jit_eval(&model, Some(&data), &params);
    assert_all_close("eval kernel: ŷ", &jit_predict, &expected, RTOL, ATOL);
    assert!(close(jit_loss, expected_loss, RTOL, ATOL), "eval kernel loss {jit_loss}, formula {expected_loss}");
}

fn exact_loss(predict: &[f64], data: &Dataset) -> f64 {
    predict.iter().zip(&data.targets[0]).map(|(p, &t)| (p - t as f64).powi(2)).sum::<f64>() / predict.len() as f64
}

#[test]
fn minimize_ends_at_one() {
    // f(x) = x³/3 − x has its local minimum at x = 1 (f'(x) = x² − 1).
    let source = common::example("minimize.nn");
    let program = common::program(&source);
    let steps = program.train.epochs.value;
    let model = compile(&source, 1, steps as usize, 1);
    let config = RunConfig {
        epochs: steps,
        batch: 1,
        learning_rate: program.train.learning_rate.value as f32,
        seed: program.train.seed.value,
        shuffle: false,
    };
    let outcome = train::train(&program, &model.native.train, None, &config, Params::init(&program, 0), |_, _, _| {})
        .unwrap_or_else(|e| panic!("{e}"));
    let x = outcome.params.get(0)[0] as f64;
    assert!((x - 1.0).abs() < 1e-3, "minimize.nn ends at x = {x}");
    let final_loss = train::evaluate(&program, &model.native.eval, None, &outcome.params, None).metrics.loss.unwrap();
    assert!(close(final_loss, -2.0 / 3.0, 1e-4, 1e-5), "f(1) = -2/3, got {final_loss}");
}

// ---- more of the language -----------------------------------------------------------

#[test]
fn unused_parameter_and_negative_powers() {
    // `unused` has a zero gradient: its update is the identity, written in place.
    let source = "param a = 0.5
        param unused = 2
        loss (a - 1)^2 + a^-2 + (a + 1)^-1
        train { optimizer = sgd(lr = 0.05)  steps = 10 }";
    check_without_data("unused param", source, 10);
}

#[test]
fn scalar_param_beside_layers() {
    // A [1,1] parameter broadcast over a [B,2] batch: its gradient sums over both.
    let source = "data { input x[3] target y[2] }
        param s = 1.5
        model { h = dense(x, 4, tanh)  out = dense(h, 2) }
        loss mean((out * s - y)^2) + s^2 * 0.01
        train { optimizer = sgd(lr = 0.1)  batch = 4 }";
    check_with_data("scalar param with data", source, |p| synthetic(p, 10, 8), None);
}

#[test]
fn several_inputs_and_targets() {
    let source = "data { input a[2] input b[1] target y[1] target z[2] }
        model { h = dense(a, 3, tanh)  out = dense(h, 1) }
        loss mse(out * b, y) + mean(abs(h - 0.1)) * 0.01 + mean((out - z) ^ 2)
        train { optimizer = sgd(lr = 0.1)  batch = 3 }";
    check_with_data("several inputs and targets", source, |p| synthetic(p, 10, 9), None);
}

#[test]
fn expression_layer_and_binary_cross_entropy() {
    let source = "data { input x[3] target y[2] }
        model { h = tanh(x) * 2 - 1  g = dense(h, 4, relu)  out = dense(g, 2, sigmoid) }
        loss -mean(y * log(out) + (1 - y) * log(1 - out))
        train { optimizer = sgd(lr = 0.1)  batch = 4 }";
    let probabilities = |p: &Program| {
        let mut data = synthetic(p, 10, 10);
        for t in data.targets[0].iter_mut() {
            *t = (*t + 1.0) / 2.0;
        }
        data
    };
    check_with_data("expression layer, bce", source, probabilities, None);
}

#[test]
fn data_without_inputs_or_without_targets() {
    let source = "data { target y[2] }
        param m = 0
        loss mean((y - m)^2)
        train { optimizer = sgd(lr = 0.1)  batch = 4 }";
    check_with_data("target only", source, |p| synthetic(p, 10, 12), None);
    let source = "data { input x[2] }
        model { h = dense(x, 3, tanh) }
        loss mean(h^2) + sum(h) / 10
        train { optimizer = sgd(lr = 0.1)  batch = 4 }";
    check_with_data("input only", source, |p| synthetic(p, 10, 13), None);
}

#[test]
fn wide_layers() {
    // Widths that are not multiples of 4 (parameter padding), long activation lists.
    let source = "data { input x[13] target y = one_hot(5) }
        model {
          h = dense(x, 17, [tanh, tanh, relu, relu, relu, sigmoid, tanh, tanh, tanh,
                            tanh, tanh, relu, relu, sigmoid, sigmoid, tanh, identity])
          g = dense(h, 9, sigmoid)
          out = dense(g, 5, softmax)
        }
        loss cross_entropy(out, y) + mean(abs(h)) * 0.01
        train { optimizer = sgd(lr = 0.3)  batch = 7 }";
    check_with_data("wide", source, |p| synthetic(p, 23, 14), None);
}

#[test]
fn kernels_sized_for_larger_batches() {
    // `Compiled::call` accepts any batch up to the size the kernel was lowered for.
    let source = "data { input x[3] target y = one_hot(3) }
        model { h = dense(x, 5, tanh)  out = dense(h, 3, softmax) }
        loss cross_entropy(out, y)
        train { optimizer = sgd(lr = 0.1)  batch = 3 }";
    let program = common::program(source);
    let data = synthetic(&program, 10, 11);
    let mut model = compile(source, 8, 10, 16);
    model.batch = 3;
    check_model("kernels sized for batch 8 and 16 rows, run at 3 and 10", &model, Some(&data));
}

#[test]
fn large_integer_power_of_a_negative_number() {
    // The interpreter (`ir::pow`) uses powf, which is exact for negative bases
    // with integral exponents: (-0.9)^66 = 0.9^66 ≈ 9.6e-4.
    let source = "param a = -0.9
        loss a^66 + a^2
        train { optimizer = sgd(lr = 0.05)  steps = 10 }";
    check_without_data("(-0.9)^66", source, 10);
}

// ---- optimizers and schedules: state tensors and the step counter --------------------

/// Every optimizer and schedule, as `train` settings.
const OPTIMIZERS: &[&str] = &[
    "optimizer = sgd(lr = 0.1, momentum = 0.9)",
    "optimizer = sgd(lr = 0.1, momentum = 0.9, nesterov = true, weight_decay = 0.01)",
    "optimizer = adam(lr = 0.01)",
    "optimizer = adam(lr = 0.01, beta1 = 0.8, beta2 = 0.99, eps = 1e-6, weight_decay = 0.1)",
    "optimizer = adamw(lr = 0.01, weight_decay = 0.1)",
    "optimizer = sgd(lr = 0.1)  schedule = step(every = 2, gamma = 0.5)",
    "optimizer = sgd(lr = 0.1, momentum = 0.5)  schedule = exponential(gamma = 0.9)",
    "optimizer = adam(lr = 0.01)  schedule = cosine()",
    "optimizer = adamw(lr = 0.01)  schedule = cosine(steps = 5, min_lr = 0.001)",
];

#[test]
fn optimizers_with_data() {
    for settings in OPTIMIZERS {
        let source = format!(
            "data {{ input x[3] target y = one_hot(3) }}
            param s = 1.5
            model {{ h = dense(x, 6, tanh)  out = dense(h, 3, softmax) }}
            loss cross_entropy(out, y) + (s - 1)^2
            train {{ {settings}  batch = 4  seed = 2 }}"
        );
        check_with_data(settings, &source, |p| synthetic(p, 10, 21), None);
        check_with_data(settings, &source, |p| synthetic(p, 9, 22), Some(1));
    }
}

#[test]
fn optimizer_examples() {
    let source = common::example("momentum.nn");
    check_with_data("momentum.nn", &source, |p| first_rows(&load_csv(p, "iris.csv"), 40), None);
    let source = common::example("adamw.nn");
    check_with_data("adamw.nn", &source, |p| first_rows(&load_csv(p, "diabetes.csv"), 40), Some(8));
}

#[test]
fn optimizers_without_data() {
    for settings in OPTIMIZERS {
        let source = format!(
            "param a = 0.5
            param b = 1.5
            loss (a - 1)^2 + 0.5 * (b + 2)^2 + 0.1 * exp(a) * b^2
            train {{ {settings}  steps = 10 }}"
        );
        check_without_data(settings, &source, 10);
    }
}

// ---- built-ins, user functions, conditionals, deeper models (issue 6) ---------------

#[test]
fn new_activations() {
    // Widths of 8 and batches of 5: vector loops with a scalar tail.
    let source = "data { input x[3] target y[2] }
        model {
          h = dense(x, 8, [leaky_relu, elu, softplus, gelu, silu, swish, softsign, leaky_relu(0.2)])
          g = dense(h, 8, elu(0.5))
          k = dense(g, 4, gelu)
          out = dense(k, 2, softsign)
        }
        loss mae(out, y) + mean(softplus(out - y))
        train { optimizer = sgd(lr = 0.1)  batch = 5 }";
    check_with_data("new activations", source, |p| synthetic(p, 13, 20), None);
}

#[test]
fn every_activation_of_the_table() {
    // One neuron per activation of the built-ins' table (softmax, which
    // couples a layer's neurons, aside), then each alone on a whole layer.
    use nnc::check::builtins::{BUILTINS, Kind};
    let names: Vec<&str> =
        BUILTINS.iter().filter(|d| d.kind == Kind::Activation && d.name != "softmax").map(|d| d.name).collect();
    let source = format!(
        "data {{ input x[3] target y[2] }}
        model {{ h = dense(x, {}, [{}])  out = dense(h, 2) }}
        loss mse(out, y)
        train {{ optimizer = sgd(lr = 0.1)  batch = 5 }}",
        names.len(),
        names.join(", ")
    );
    check_with_data("every activation", &source, |p| synthetic(p, 13, 23), None);
    for name in names {
        let source = format!(
            "data {{ input x[3] target y[2] }}
            model {{ h = dense(x, 6, {name})  out = dense(h, 2, {name}) }}
            loss mse(out, y)
            train {{ optimizer = sgd(lr = 0.1)  batch = 5 }}"
        );
        check_with_data(name, &source, |p| synthetic(p, 11, 24), None);
    }
}

#[test]
fn new_losses_and_regularisation() {
    let source = "data { input x[3] target y[2] }
        param k = 0.5
        model { h = dense(x, 6, tanh)  out = dense(h, 2) }
        loss huber(out, y, 0.3) + huber(out * k, y) + 1e-2 * l2(weights) + 1e-3 * l1(h.w) + l2(out.b)
        train { optimizer = sgd(lr = 0.1)  batch = 4 }";
    check_with_data("huber, l1, l2", source, |p| synthetic(p, 10, 21), None);
}

#[test]
fn binary_cross_entropy_from_logits() {
    let source = "data { input x[4] target y[1] }
        model { h = dense(x, 6, relu)  out = dense(h, 1, sigmoid) }
        loss binary_cross_entropy(out, y)
        train { optimizer = sgd(lr = 0.5)  batch = 4 }";
    let labels = |p: &Program| {
        let mut data = synthetic(p, 11, 22);
        for t in data.targets[0].iter_mut() {
            *t = f32::from(*t > 0.0);
        }
        data
    };
    check_with_data("binary cross-entropy", source, labels, None);
}

#[test]
fn cross_entropy_of_class_indices() {
    let source = "data { input x[4] target y[1] }
        model { h = dense(x, 6, tanh)  out = dense(h, 3, softmax) }
        loss cross_entropy(out, y)
        train { optimizer = sgd(lr = 0.2)  batch = 4 }";
    let classes = |p: &Program| {
        let mut data = synthetic(p, 10, 23);
        for (i, t) in data.targets[0].iter_mut().enumerate() {
            *t = (i % 3) as f32;
        }
        data
    };
    check_with_data("class indices", source, classes, None);
}

#[test]
fn user_functions_and_conditionals() {
    let source = "fn act(z) = z * sigmoid(z)
        fn leaky(z, a) = if z > 0 then z else a * z
        fn hub(d, k) = if abs(d) <= k then 0.5 * d^2 else k * (abs(d) - 0.5 * k)
        fn clip(z) = if z < -1 then -1 else if z > 1 then 1 else z
        data { input x[3] target y[2] }
        model {
          h = dense(x, 9, [act, act, leaky(0.1), leaky(0.1), clip, clip, leaky(0.2), act, tanh])
          g = dense(h, 8, leaky(0.05))
          out = dense(g, 2)
        }
        loss mean(hub(out - y, 0.5)) + mean(where(y < 0, out^2, abs(out))) * 0.1 + mean((out != y) * (out >= y))
        train { optimizer = sgd(lr = 0.1)  batch = 4 }";
    check_with_data("user functions", source, |p| synthetic(p, 10, 24), None);
    check_with_data("user functions", source, |p| synthetic(p, 10, 24), Some(1));
}

#[test]
fn skip_connections() {
    let source = "data { input x[3] target y[2] }
        model {
          h1 = dense(x, 5, tanh)
          h2 = dense(h1, 5, relu)
          h3 = h1 + h2
          c = concat(x, h3, h1 * h2)
          out = dense(c, 2)
        }
        loss mse(out, y)
        train { optimizer = sgd(lr = 0.1)  batch = 4 }";
    check_with_data("skip connections", source, |p| synthetic(p, 10, 25), None);
}

#[test]
fn dropout_in_training_only() {
    // Several epochs: the masks change with the step, identically in the
    // kernel and the interpreter; evaluation has no dropout.
    let source = "data { input x[3] target y[2] }
        model {
          h = dense(x, 9, relu)
          d = dropout(h, 0.4)
          g = dense(d, 6, tanh)
          out = dense(g + dropout(g, 0.25), 2)
        }
        loss mse(out, y)
        train { optimizer = sgd(lr = 0.1)  batch = 4 }";
    check_with_data("dropout", source, |p| synthetic(p, 10, 26), None);
    check_with_data("dropout", source, |p| synthetic(p, 10, 26), Some(1));
    let program = common::program(source);
    let graphs = pipeline::graphs(&program);
    let dropouts = |g: &nnc::ir::Graph| g.nodes.iter().filter(|n| n.op.name() == "dropout").count();
    assert!(dropouts(&graphs.train) >= 4, "dropout forward and backward in training");
    assert_eq!(dropouts(&graphs.eval), 0, "no dropout in evaluation");
}

// ---- random graphs ------------------------------------------------------------------

/// A program around a random expression of data `x [B,3]`, `w [B,1]` and
/// parameters `a [1,3]`, `c [1,1]`: `loss = Σ(out ⊙ t)/B + 0.1·Σa² + c²`,
/// `predict = out ⊙ t`.
fn random_program(seed: u64) -> (Program, String) {
    use nnc::ir::program::{Binding, Columns, Setting, TrainConfig};
    use nnc::ir::{Binary, DataVar, Graph, Init, Op, Origin, ParamInfo, Shape, Unary};
    let mut rng = Rng::new(seed);
    let mut g = Graph::default();
    let o = Origin::default;
    g.inputs = vec![DataVar { name: "x".into(), width: 3 }, DataVar { name: "w".into(), width: 1 }];
    g.targets = vec![DataVar { name: "t".into(), width: 3 }];
    g.params = vec![
        ParamInfo { name: "a".into(), shape: Shape::fixed(1, 3), init: Init::XavierUniform, layer: None },
        ParamInfo { name: "c".into(), shape: Shape::SCALAR, init: Init::Value(0.5), layer: None },
    ];
    let shapes = [Shape::batch(3), Shape::batch(1), Shape::fixed(1, 3), Shape::SCALAR];
    let ops = [Op::Input(0), Op::Input(1), Op::Param(0), Op::Param(1)];
    let leaves: Vec<_> = ops.into_iter().zip(shapes).map(|(op, s)| g.add_declared(op, &[], s, o()).unwrap()).collect();
    let n = 4 + rng.below(12);
    let steps = random::steps(&mut rng, &shapes, n);
    let out = random::build(&mut g, &leaves, &steps);
    let t = g.add_declared(Op::Target(0), &[], Shape::batch(3), o()).unwrap();
    let weighted = g.add(Op::Binary(Binary::Mul), &[out, t], o()).unwrap();
    let total = g.add(Op::Sum { rows: true, cols: true }, &[weighted], o()).unwrap();
    let rows = g.add(Op::BatchSize, &[], o()).unwrap();
    let mean = g.add(Op::Binary(Binary::Div), &[total, rows], o()).unwrap();
    let a2 = g.add(Op::Unary(Unary::Pow(2.0)), &[leaves[2]], o()).unwrap();
    let a2 = g.add(Op::Sum { rows: true, cols: true }, &[a2], o()).unwrap();
    let tenth = g.add_declared(Op::Const(0.1), &[], Shape::SCALAR, o()).unwrap();
    let decay = g.add(Op::Binary(Binary::Mul), &[tenth, a2], o()).unwrap();
    let c2 = g.add(Op::Unary(Unary::Pow(2.0)), &[leaves[3]], o()).unwrap();
    let loss = g.add(Op::Binary(Binary::Add), &[mean, decay], o()).unwrap();
    let loss = g.add(Op::Binary(Binary::Add), &[loss, c2], o()).unwrap();
    g.set_output("loss", loss);
    g.set_output("predict", weighted);
    let binding = |name: &str, is_target, index, width| Binding {
        name: name.into(),
        is_target,
        index,
        columns: Columns::Positional,
        encoding: Encoding::Raw { width },
        scale: 1.0,
        standardize: false,
        class_indices: None,
        fill: None,
        span: Default::default(),
    };
    let data = vec![binding("x", false, 0, 3), binding("w", false, 1, 1), binding("t", true, 0, 3)];
    let train = TrainConfig {
        learning_rate: Setting::set(0.02),
        batch: Setting::set(4),
        seed: Setting::set(seed),
        ..TrainConfig::default()
    };
    let program = Program {
        graph: g,
        data,
        task: Task::Regression,
        train,
        layers: vec![],
        named: vec![],
        functions: vec![],
        missing: Default::default(),
        label: None,
        loss_weights: None,
    };
    (program, format!("random graph {seed}: {steps:?}"))
}

/// Whether the interpreter's training stays in a range where f32 is
/// meaningful (random graphs can have exploding gradients, such as (c+c)³
/// cubed, and then f32 overflows where f64 does not).
fn tame(model: &Model, data: &Dataset) -> bool {
    let init = Params::init(&model.program, model.program.train.seed.value);
    let mut reference = Reference::new(&init);
    let lr = model.program.train.learning_rate.value as f32;
    for _ in 0..EPOCHS {
        for start in (0..data.rows).step_by(model.batch) {
            let range = start..(start + model.batch).min(data.rows);
            let loss = reference.step(model, Some(data), range, lr);
            let small = |x: f64| x.abs() < 1e3; // false for NaN
            if !small(loss) || !reference.params.iter().flat_map(|t| &t.data).all(|&x| small(x)) {
                return false;
            }
        }
    }
    true
}

#[test]
fn random_graphs() {
    let mut checked = 0;
    for seed in 0..100 {
        let (program, name) = random_program(seed);
        let data = synthetic(&program, 10, seed);
        let model = compile_program(program, 4, 10, 10);
        if tame(&model, &data) {
            check_model(&name, &model, Some(&data));
            checked += 1;
        }
    }
    assert!(checked >= 80, "only {checked} of 100 random graphs trained without exploding");
}

/// Layer widths and batch sizes around every boundary of the generated loops:
/// partial groups of 1–3 lanes, straight-line groups up to 16 lanes, vector
/// loops of 16 lanes with leftovers beyond, blocked rows (2 or 4 at a time)
/// with leftover rows, and the two-step reduction loop with an odd length.
#[test]
fn widths_and_batches_at_every_loop_boundary() {
    for (inputs, hidden, outputs) in
        [(1, 1, 2), (2, 3, 2), (5, 7, 3), (9, 10, 6), (3, 13, 5), (17, 19, 11), (33, 35, 18)]
    {
        let source = format!(
            "data {{ input x[{inputs}] target y = one_hot({outputs}) }}
             model {{ h = dense(x, {hidden}, relu)  out = dense(h, {outputs}, softmax) }}
             loss cross_entropy(out, y)
             train {{ optimizer = sgd(lr = 0.1)  seed = 11 }}"
        );
        for (batch, rows) in [(1, 3), (2, 5), (3, 7), (4, 9), (5, 11), (9, 19), (16, 37)] {
            let name = format!("{inputs}-{hidden}-{outputs}");
            check_with_data(&name, &source, |p| synthetic(p, rows, (inputs * batch) as u64), Some(batch));
        }
    }
}

/// The same models with every product on the library GEMM: operands read
/// transposed or not, from data, parameters and scratch, into scratch or the
/// predictions, with partial last batches and batches of one row.
#[test]
fn library_gemm_matches_the_interpreter() {
    with_library_gemm(60, models_with_data);
}

/// The checks of every model trained on data (each its own test too), for
/// the variations of the kernels above and below.
fn models_with_data() {
    relu_layers();
    no_bias_and_per_neuron_activations();
    mean_absolute_error_batch_1();
    custom_squared_loss_full_batch();
    three_layer_classifier();
    several_inputs_and_targets();
    wide_layers();
    kernels_sized_for_larger_batches();
    optimizers_with_data();
    iris_example();
}

/// Sums over rows cut into chunks train as the interpreter does, and teams
/// of 2 and 3 threads give bitwise the plain kernel's weights; with
/// products in loops and on the library GEMM.
#[test]
fn sharded_sums_match_the_interpreter() {
    with_sharded_sums(12, models_with_data);
    with_sharded_sums(8, || {
        with_library_gemm(8, || {
            relu_layers();
            three_layer_classifier();
            wide_layers();
            kernels_sized_for_larger_batches();
            optimizers_with_data();
        })
    });
}

#[test]
fn sharded_sums_on_random_graphs_and_loop_boundaries() {
    with_sharded_sums(30, || {
        random_graphs();
        widths_and_batches_at_every_loop_boundary();
    });
    with_sharded_sums(30, || with_library_gemm(60, widths_and_batches_at_every_loop_boundary));
}

#[test]
fn library_gemm_on_random_graphs_and_loop_boundaries() {
    with_library_gemm(100, || {
        random_graphs();
        widths_and_batches_at_every_loop_boundary();
    });
}

/// Over more rows than `pipeline::EVAL_CHUNK`, the evaluation kernel runs
/// in chunks (its scratch sized for one chunk, whatever the rows), and
/// `runtime::train::evaluate` still gives the loss and predictions of the
/// whole set, as the interpreter computes them over all rows at once; with
/// products on the loops and on the library GEMM.
#[test]
fn chunked_evaluation_matches_the_interpreter() {
    let source = "data { input x[5] target y = one_hot(3) }
        model { h = dense(x, 7, tanh)  out = dense(h, 3, softmax) }
        loss cross_entropy(out, y) + 1e-3 * l2(weights)
        train { optimizer = sgd(lr = 0.1)  batch = 16 }";
    let rows = 2 * pipeline::EVAL_CHUNK + 808;
    for gemm in [false, true] {
        let program = common::program(source);
        let data = synthetic(&program, rows, 31);
        let check = || {
            let model = compile(source, 16, rows, rows);
            let eval = model.native.eval.compiled().expect("compiled");
            assert_eq!(eval.kernel.max_batch, pipeline::EVAL_CHUNK, "the evaluation kernel is sized for a chunk");
            let params = Params::init(&model.program, 4);
            let evaluation = train::evaluate(&model.program, &model.native.eval, Some(&data), &params, None);
            let (loss, predict) = interp_eval(&model, Some(&data), param_tensors(&params));
            let got = evaluation.metrics.loss.unwrap();
            assert!(close(got, loss, RTOL, ATOL), "gemm {gemm}: chunked loss {got:.9e}, interpreter {loss:.9e}");
            assert_all_close("chunked predictions", &to_f64(&evaluation.predictions), &predict, RTOL, ATOL);
        };
        if gemm { with_library_gemm(1, check) } else { check() }
    }
}

/// A loss that is not a mean over rows (a sum, the square of a mean) is
/// evaluated over all rows in one call; means (with `l2` terms) in chunks.
#[test]
fn only_row_mean_losses_are_evaluated_in_chunks() {
    let rows = 3 * pipeline::EVAL_CHUNK;
    for (loss, chunked) in [
        ("mse(out, y)", true),
        ("cross_entropy(softmax(out), y)", true),
        ("mean(abs(out - y)) + 0.01 * l2(weights) + 2", true),
        ("sum((out - y)^2)", false),
        ("mean(out - y)^2", false),
    ] {
        let source = format!(
            "data {{ input x[4] target y[2] }}
             model {{ h = dense(x, 3, tanh)  out = dense(h, 2) }}
             loss {loss}"
        );
        let graphs = pipeline::graphs(&common::program(&source));
        let want = if chunked { pipeline::EVAL_CHUNK } else { rows };
        assert_eq!(pipeline::eval_batch(&graphs.eval, rows), want, "{loss}");
    }
}

/// Evaluations on the interpreter (what `nnc run` uses for small data) give
/// the compiled evaluation kernel's loss, predictions and accuracy.
#[test]
fn interpreted_evaluations_match_the_kernel() {
    for (model, data) in [("iris.nn", "iris.csv"), ("diabetes.nn", "diabetes.csv"), ("seed.nn", "seed.csv")] {
        let program = common::program(&common::example(model));
        let data = load_csv(&program, data);
        let graphs = pipeline::graphs(&program);
        let kernels = pipeline::kernels(&graphs, 16.min(data.rows), data.rows).expect("lowers");
        let options = Options { verify: true, ..Options::default() };
        let compiled = pipeline::compile(&program, &kernels, options).expect("compiles");
        let interpreted =
            pipeline::compile_interpreted_eval(&program, &kernels.0, &graphs.eval, options).expect("compiles");
        assert!(interpreted.eval.compiled().is_none());
        let params = Params::init(&program, 3);
        let a = train::evaluate(&program, &compiled.eval, Some(&data), &params, None);
        let b = train::evaluate(&program, &interpreted.eval, Some(&data), &params, None);
        let (la, lb) = (a.metrics.loss.unwrap(), b.metrics.loss.unwrap());
        assert!((la - lb).abs() <= 1e-5 * la.abs().max(1.0), "{model}: loss {la} vs {lb}");
        for (x, y) in a.predictions.iter().zip(&b.predictions) {
            assert!((x - y).abs() <= 1e-4 * x.abs().max(1.0), "{model}: prediction {x} vs {y}");
        }
        assert_eq!(a.metrics.accuracy, b.metrics.accuracy, "{model}");
    }
}
