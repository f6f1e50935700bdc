//! The training loop around the compiled kernels.
//!
//! Parameters live in one packed f32 array (the layout the kernels were
//! compiled for). Each epoch is one call of the training kernel over all
//! rows; the Rust side only checks the returned batch losses, keeps a copy
//! of the last good parameters, and reports progress. The final loss and
//! accuracy come from the evaluation kernel run over the whole set with the
//! final weights.

use super::data::{Dataset, Transform};
use crate::codegen::{Compiled, KernelArgs, param_len, param_offsets};
use crate::ir::program::{HyperContext, Program, Task};
use crate::ir::{Init, Shape};
use rand_chacha::ChaCha8Rng;
use rand_core::{Rng, SeedableRng};
use std::fmt;
use std::ops::ControlFlow;
use std::time::Instant;

/// Settings for one run, after flags have overridden the file.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RunConfig {
    /// Epochs over the data, or steps for a model without data.
    pub epochs: u64,
    pub batch: usize,
    pub learning_rate: f32,
    pub seed: u64,
    /// Visit the rows in a new order every epoch, drawn from the seed.
    pub shuffle: bool,
}

/// The packed parameters of a model, and the optimizer's state.
#[derive(Clone, Debug, PartialEq)]
pub struct Params {
    pub values: Vec<f32>,
    pub offsets: Vec<usize>,
    pub shapes: Vec<Shape>,
    pub state: OptimizerState,
}

/// The optimizer's state tensors (momentum buffers, Adam's moments; see
/// `Optimizer::states`), packed like the parameters, and the step count.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OptimizerState {
    /// `<param>.<kind>`, in `Optimizer::states` order.
    pub names: Vec<String>,
    pub values: Vec<f32>,
    pub offsets: Vec<usize>,
    pub shapes: Vec<Shape>,
    /// Optimizer steps taken so far: the next one is step `t = step + 1`.
    pub step: u64,
}

impl OptimizerState {
    /// The state of a fresh optimizer: zeros, no steps taken.
    pub fn zeros(program: &Program) -> OptimizerState {
        let states = program.train.optimizer.value.states(&program.graph.params);
        let shapes: Vec<Shape> = states.iter().map(|s| s.shape).collect();
        OptimizerState {
            names: states.into_iter().map(|s| s.name).collect(),
            values: vec![0.0; param_len(&shapes)],
            offsets: param_offsets(&shapes),
            shapes,
            step: 0,
        }
    }

    /// The values of state tensor `i`, row-major.
    pub fn get(&self, i: usize) -> &[f32] {
        &self.values[self.offsets[i]..self.offsets[i] + self.shapes[i].len(1)]
    }

    pub fn get_mut(&mut self, i: usize) -> &mut [f32] {
        let n = self.shapes[i].len(1);
        &mut self.values[self.offsets[i]..self.offsets[i] + n]
    }
}

impl Params {
    /// Initial values: Xavier-uniform weights from the seed, the rest as declared.
    pub fn init(program: &Program, seed: u64) -> Params {
        let shapes: Vec<Shape> = program.graph.params.iter().map(|p| p.shape).collect();
        let offsets = param_offsets(&shapes);
        let mut values = vec![0.0f32; param_len(&shapes)];
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        for (i, param) in program.graph.params.iter().enumerate() {
            let n = param.shape.len(1);
            let slot = &mut values[offsets[i]..offsets[i] + n];
            match param.init {
                Init::Value(v) => slot.fill(v as f32),
                Init::XavierUniform => {
                    let fan_in = param.shape.rows.resolve(1) as f64;
                    let fan_out = param.shape.cols.resolve(1) as f64;
                    let limit = (6.0 / (fan_in + fan_out)).sqrt();
                    for x in slot.iter_mut() {
                        // 53 random bits → [0, 1): fixed across rand versions.
                        let unit = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
                        *x = ((2.0 * unit - 1.0) * limit) as f32;
                    }
                }
            }
        }
        Params { values, offsets, shapes, state: OptimizerState::zeros(program) }
    }

    /// The values of parameter `i`, row-major.
    pub fn get(&self, i: usize) -> &[f32] {
        &self.values[self.offsets[i]..self.offsets[i] + self.shapes[i].len(1)]
    }

    pub fn get_mut(&mut self, i: usize) -> &mut [f32] {
        let n = self.shapes[i].len(1);
        &mut self.values[self.offsets[i]..self.offsets[i] + n]
    }

    /// Index of the first parameter holding a NaN or infinity.
    fn first_non_finite(&self) -> Option<usize> {
        (0..self.shapes.len()).find(|&i| self.get(i).iter().any(|x| !x.is_finite()))
    }
}

/// What a finished run produced.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// Mean training loss of each epoch (each step, without data).
    pub history: Vec<f64>,
    pub params: Params,
    /// Time spent inside the training kernel.
    pub train_seconds: f64,
    /// Rows (steps) processed in training.
    pub samples: u64,
}

/// Training stopped because a value became NaN or infinite.
#[derive(Clone, Debug)]
pub struct Diverged {
    /// 1-based epoch (or step, without data).
    pub epoch: u64,
    /// 1-based batch within the epoch where the loss first went non-finite.
    pub batch: Option<usize>,
    /// The parameter (and its layer) that first went non-finite, if any did.
    pub param: Option<String>,
    pub layer: Option<String>,
    /// The parameters before the failing epoch.
    pub last_good: Params,
    pub learning_rate: f32,
}

impl fmt::Display for Diverged {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "training diverged in epoch {}", self.epoch)?;
        if let Some(batch) = self.batch {
            write!(f, " at batch {batch}")?;
        }
        write!(f, ": the loss became NaN or infinite")?;
        match (&self.param, &self.layer) {
            (Some(p), Some(l)) => write!(f, "; `{p}` in layer `{l}` went non-finite first")?,
            (Some(p), None) => write!(f, "; `{p}` went non-finite first")?,
            _ => {}
        }
        write!(f, "\n  help: try a smaller learning rate, e.g. --lr {}", self.learning_rate / 10.0)
    }
}

/// Train with the compiled training kernel, one call per epoch (one call
/// for all steps, without data). `on_epoch(epoch, loss, params)` sees every
/// epoch (step) after it ran.
pub fn train(
    program: &Program,
    train_kernel: &Compiled,
    data: Option<&Dataset>,
    config: &RunConfig,
    initial: Params,
    mut on_epoch: impl FnMut(u64, f64, &Params),
) -> Result<Outcome, Box<Diverged>> {
    train_until(program, train_kernel, data, config, initial, |epoch, loss, params| {
        on_epoch(epoch, loss, params);
        ControlFlow::Continue(())
    })
}

/// [`train`], stopping after any epoch for which `on_epoch` breaks (early
/// stopping, an interruption). Without data every step has run by the time
/// `on_epoch` sees the first, so a break only ends the reporting.
pub fn train_until(
    program: &Program,
    train_kernel: &Compiled,
    data: Option<&Dataset>,
    config: &RunConfig,
    initial: Params,
    on_epoch: impl FnMut(u64, f64, &Params) -> ControlFlow<()>,
) -> Result<Outcome, Box<Diverged>> {
    train_with_progress(program, train_kernel, data, config, initial, None, on_epoch)
}

/// Progress within an epoch: the kernel is called on chunks of whole
/// batches instead of the whole epoch at once, and `report(epoch, rows
/// done)` is called after each chunk. Chunks are `rows` rows at first
/// (rounded up to whole batches), then as many batches as run in about
/// `interval` (measured), so a long epoch reports about that often and a
/// short one runs in one call as without progress. The weights are the
/// same bytes: each batch sees the same parameters, rows and step number.
pub struct Progress<'a> {
    pub rows: usize,
    pub interval: std::time::Duration,
    pub report: &'a mut dyn FnMut(u64, usize),
}

/// [`train_until`], calling `progress` within epochs when given (see
/// [`Progress`]); without it each epoch is one kernel call.
pub fn train_with_progress(
    program: &Program,
    train_kernel: &Compiled,
    data: Option<&Dataset>,
    config: &RunConfig,
    initial: Params,
    mut progress: Option<Progress<'_>>,
    mut on_epoch: impl FnMut(u64, f64, &Params) -> ControlFlow<()>,
) -> Result<Outcome, Box<Diverged>> {
    let mut params = initial;
    let mut scratch = vec![0.0f32; train_kernel.kernel.scratch_len.max(1)];
    let (rows, batch, epochs) = match data {
        Some(d) => (d.rows, config.batch.min(d.rows).max(1), config.epochs),
        // Without data the kernel's "rows" are steps: one call runs them all.
        None => (config.epochs as usize, 1, 1),
    };
    let n_batches = rows.div_ceil(batch);
    let mut losses = vec![0.0f32; n_batches];
    // Run-time scalars: the base rate and the schedule, a cosine without a
    // length running to the last step of this run.
    let last_step = params.state.step + epochs * n_batches as u64;
    let hypers = HyperContext {
        learning_rate: config.learning_rate as f64,
        schedule: program.train.schedule.value.resolved(last_step),
    };
    // With shuffling, each epoch trains on a permuted copy of the rows.
    let mut shuffled = data.filter(|_| config.shuffle).cloned();
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed ^ 0x0053_4855_4646_4c45);
    let mut order: Vec<usize> = (0..rows).collect();
    let mut history = Vec::new();
    // Only time spent in the kernel counts: callbacks may evaluate or print.
    let mut kernel_time = std::time::Duration::ZERO;
    let mut epochs_run = 0;
    for epoch in 1..=epochs {
        if let (Some(source), Some(copy)) = (data, shuffled.as_mut()) {
            shuffle(&mut order, &mut rng);
            permute(source, copy, &order);
        }
        let epoch_data = shuffled.as_ref().or(data);
        let last_good = params.clone();
        // Whole batches per kernel call: all of them, or chunks with progress.
        let mut chunk = match (&progress, data) {
            (Some(p), Some(_)) => p.rows.div_ceil(batch).max(1),
            _ => n_batches,
        };
        let mut done = 0;
        while done < n_batches {
            let count = chunk.min(n_batches - done);
            let first_row = done * batch;
            let chunk_rows = (count * batch).min(rows - first_row);
            // Data pointers at the chunk's first row (each matrix is row-major).
            let at = |m: &Vec<f32>| {
                let width = m.len() / rows.max(1);
                m[first_row * width..].as_ptr()
            };
            let input_ptrs: Vec<*const f32> = epoch_data.map_or(Vec::new(), |d| d.inputs.iter().map(at).collect());
            let target_ptrs: Vec<*const f32> = epoch_data.map_or(Vec::new(), |d| d.targets.iter().map(at).collect());
            let args = KernelArgs {
                params: params.values.as_mut_ptr(),
                scratch: scratch.as_mut_ptr(),
                losses: losses[done..].as_mut_ptr(),
                predict: std::ptr::null_mut(),
                inputs: input_ptrs.as_ptr(),
                targets: target_ptrs.as_ptr(),
                rows: chunk_rows as i64,
                batch: batch as i64,
                learning_rate: config.learning_rate,
                state: params.state.values.as_mut_ptr(),
                step: params.state.step as i64,
                hypers: &hypers,
                ..KernelArgs::default()
            };
            // SAFETY: the buffers above have the sizes the kernels were lowered
            // for: the packed parameters and optimizer state (both laid out from
            // the program, as the kernel's buffers are), the scratch area, one
            // loss slot for each of the call's batches (from `done` on), and
            // `chunk_rows × width` data matrices from the chunk's first row,
            // inside the matrices checked when the CSV was bound; `hypers`
            // outlives the call.
            let start = Instant::now();
            unsafe { train_kernel.call(&args) };
            let elapsed = start.elapsed();
            kernel_time += elapsed;
            params.state.step += count as u64;
            done += count;
            if let Some(p) = progress.as_mut().filter(|_| data.is_some()) {
                (p.report)(epoch, first_row + chunk_rows);
                // Batches that take about one interval, from this call's speed.
                let per_batch = elapsed.as_secs_f64() / count as f64;
                chunk = ((p.interval.as_secs_f64() / per_batch.max(1e-9)) as usize).clamp(1, n_batches);
            }
        }
        let bad_batch = losses.iter().position(|l| !l.is_finite());
        let bad_param = params.first_non_finite();
        if bad_batch.is_some() || bad_param.is_some() {
            let info = bad_param.map(|i| &program.graph.params[i]);
            let (epoch, batch) = match data {
                Some(_) => (epoch, bad_batch.map(|b| b + 1)),
                None => (bad_batch.map_or(config.epochs, |b| b as u64 + 1), None),
            };
            return Err(Box::new(Diverged {
                epoch,
                batch,
                param: info.map(|p| p.name.clone()),
                layer: info.and_then(|p| p.layer.clone()),
                last_good,
                learning_rate: config.learning_rate,
            }));
        }
        match data {
            Some(_) => {
                // Mean over rows: each batch loss is a mean over its rows.
                let total: f64 =
                    losses.iter().enumerate().map(|(i, &l)| l as f64 * (batch.min(rows - i * batch)) as f64).sum();
                let loss = total / rows as f64;
                history.push(loss);
                epochs_run = epoch;
                if on_epoch(epoch, loss, &params).is_break() {
                    break;
                }
            }
            None => {
                epochs_run = 1;
                for (step, &loss) in losses.iter().enumerate() {
                    history.push(loss as f64);
                    if on_epoch(step as u64 + 1, loss as f64, &params).is_break() {
                        break;
                    }
                }
            }
        }
    }
    let train_seconds = kernel_time.as_secs_f64();
    Ok(Outcome { history, params, train_seconds, samples: rows as u64 * epochs_run })
}

/// Fisher–Yates with the run's generator: the same seed, the same orders.
fn shuffle(order: &mut [usize], rng: &mut ChaCha8Rng) {
    for i in (1..order.len()).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        order.swap(i, j);
    }
}

/// Copy `source`'s rows into `target` in `order`.
fn permute(source: &Dataset, target: &mut Dataset, order: &[usize]) {
    let pairs =
        source.inputs.iter().zip(target.inputs.iter_mut()).chain(source.targets.iter().zip(target.targets.iter_mut()));
    for (from, to) in pairs {
        let width = from.len() / source.rows.max(1);
        for (row, &r) in order.iter().enumerate() {
            to[row * width..(row + 1) * width].copy_from_slice(&from[r * width..(r + 1) * width]);
        }
    }
}

/// How well a model fits a data set. Regression metrics are in the first
/// target's file units (after undoing its scale and standardisation).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Metrics {
    /// The model's loss (absent when the data has no targets).
    pub loss: Option<f64>,
    pub accuracy: Option<f64>,
    pub mse: Option<f64>,
    pub mae: Option<f64>,
    pub r2: Option<f64>,
}

/// Predictions and metrics of a model on a data set.
#[derive(Clone, Debug)]
pub struct Evaluation {
    pub metrics: Metrics,
    /// `rows × width` model outputs, row-major, in model units.
    pub predictions: Vec<f32>,
    pub width: usize,
}

/// What runs evaluations (loss, predictions, metrics over a data set).
pub enum Evaluator {
    /// The compiled evaluation kernel.
    Compiled(Box<Compiled>),
    /// The f64 reference interpreter on the evaluation graph, for data so
    /// small that interpreting every evaluation of a run costs less than
    /// compiling the kernel (see [`crate::pipeline::interpret_evaluations`]).
    Interpreted(Box<crate::ir::Graph>),
}

impl Evaluator {
    /// The compiled kernel, if evaluations run on one.
    pub fn compiled(&self) -> Option<&Compiled> {
        match self {
            Evaluator::Compiled(kernel) => Some(kernel.as_ref()),
            Evaluator::Interpreted(_) => None,
        }
    }
}

/// Evaluate over all rows of `data` (or once, without data), on the kernel
/// or the interpreter. `transforms` undo the target's preprocessing for the
/// metrics.
pub fn evaluate(
    program: &Program,
    evaluator: &Evaluator,
    data: Option<&Dataset>,
    params: &Params,
    transforms: Option<&[Transform]>,
) -> Evaluation {
    let rows = data.map_or(1, |d| d.rows);
    let width = program.graph.output("predict").map_or(0, |id| program.graph.shape(id).width().unwrap_or(0) as usize);
    let (loss, predict) = match evaluator {
        Evaluator::Compiled(kernel) => run_eval_kernel(kernel, data, params, rows, width),
        Evaluator::Interpreted(graph) => interpret(graph, data, params, rows, width),
    };
    let has_targets = data.is_none_or(|d| d.has_targets);
    let mut metrics = Metrics { loss: has_targets.then_some(loss), ..Metrics::default() };
    if let (Some(d), true) = (data, has_targets) {
        match program.task {
            Task::Classification { .. } | Task::Binary { .. } => {
                metrics.accuracy = super::metrics::accuracy(program, d, &predict);
            }
            Task::Regression => regression_metrics(program, d, &predict, width, transforms, &mut metrics),
            Task::Minimize => {}
        }
    }
    Evaluation { metrics, predictions: predict, width }
}

/// Loss and predictions from the compiled evaluation kernel, which runs the
/// rows in chunks of the batch it was lowered for (all rows, or
/// `pipeline::EVAL_CHUNK` when the loss is a mean over rows): the loss is
/// the row-weighted mean of the chunks' losses.
fn run_eval_kernel(
    eval_kernel: &Compiled,
    data: Option<&Dataset>,
    params: &Params,
    rows: usize,
    width: usize,
) -> (f64, Vec<f32>) {
    let mut params = params.clone();
    let mut scratch = vec![0.0f32; eval_kernel.kernel.scratch_len.max(1)];
    let batch = eval_kernel.kernel.max_batch.min(rows).max(1);
    let mut losses = vec![f32::NAN; rows.div_ceil(batch).max(1)];
    let mut predict = vec![0.0f32; (rows * width).max(1)];
    let input_ptrs: Vec<*const f32> = data.map_or(Vec::new(), |d| d.inputs.iter().map(|v| v.as_ptr()).collect());
    let mut target_ptrs: Vec<*const f32> = data.map_or(Vec::new(), |d| d.targets.iter().map(|v| v.as_ptr()).collect());
    // Prediction without targets: null column pointers the kernel loads and
    // never follows, rather than an empty table it would read past.
    target_ptrs.resize(target_ptrs.len().max(eval_kernel.target_slots()), std::ptr::null());
    let args = KernelArgs {
        params: params.values.as_mut_ptr(),
        scratch: scratch.as_mut_ptr(),
        losses: losses.as_mut_ptr(),
        predict: predict.as_mut_ptr(),
        inputs: input_ptrs.as_ptr(),
        targets: target_ptrs.as_ptr(),
        rows: rows as i64,
        batch: batch as i64,
        ..KernelArgs::default()
    };
    assert!(
        data.is_none_or(|d| d.has_targets) || eval_kernel.predicts_only(),
        "data without targets needs a prediction kernel"
    );
    // SAFETY: as in `train`; the evaluation kernel was lowered for batches
    // of `batch` rows, `losses` has one slot per batch, `predict` holds
    // `rows × width` values, and target pointers are only read by kernels
    // that compute the loss.
    unsafe { eval_kernel.call(&args) };
    let loss = if losses.len() == 1 {
        losses[0] as f64
    } else {
        let total: f64 = losses.iter().enumerate().map(|(i, &l)| l as f64 * batch.min(rows - i * batch) as f64).sum();
        total / rows as f64
    };
    (loss, predict)
}

/// Loss and predictions from the reference interpreter (f64, rounded to f32
/// like the kernel's outputs).
fn interpret(
    graph: &crate::ir::Graph,
    data: Option<&Dataset>,
    params: &Params,
    rows: usize,
    width: usize,
) -> (f64, Vec<f32>) {
    use crate::ir::interp::{self, Env, Tensor};
    let matrix = |values: &[f32], width: u32| {
        let width = width as usize;
        Tensor::new(values.len() / width.max(1), width, values.iter().map(|&v| v as f64).collect())
    };
    let has_targets = data.is_none_or(|d| d.has_targets);
    let env = Env {
        inputs: data
            .map_or(Vec::new(), |d| graph.inputs.iter().zip(&d.inputs).map(|(v, m)| matrix(m, v.width)).collect()),
        targets: data
            .filter(|d| d.has_targets)
            .map_or(Vec::new(), |d| graph.targets.iter().zip(&d.targets).map(|(v, m)| matrix(m, v.width)).collect()),
        params: (0..params.shapes.len())
            .map(|i| {
                let shape = params.shapes[i];
                let (r, c) = (interp::resolve(shape.rows, 1), interp::resolve(shape.cols, 1));
                Tensor::new(r, c, params.get(i).iter().map(|&v| v as f64).collect())
            })
            .collect(),
        ..Env::default()
    };
    let predict = |values: &[Tensor]| {
        graph.output("predict").map_or_else(
            || vec![0.0; (rows * width).max(1)],
            |id| values[id.index()].data.iter().map(|&v| v as f32).collect(),
        )
    };
    // `nnc run` chooses the interpreter, always with labelled data: the
    // evaluation graph's loss reads the targets.
    assert!(has_targets, "the interpreter evaluates data with targets");
    let values = interp::eval(graph, &env);
    let loss = graph.output("loss").map_or(f64::NAN, |id| values[id.index()].data[0] as f32 as f64);
    (loss, predict(&values))
}

/// MSE, MAE and R² of the predictions against the first target of the
/// same width, in the file's units.
fn regression_metrics(
    program: &Program,
    data: &Dataset,
    predict: &[f32],
    width: usize,
    transforms: Option<&[Transform]>,
    metrics: &mut Metrics,
) {
    let rows = data.rows;
    let Some(index) = data.targets.iter().position(|t| t.len() == rows * width && width > 0) else { return };
    let target = &data.targets[index];
    let transform = transforms.and_then(|ts| {
        let i = program.data.iter().position(|b| b.is_target && b.index == index as u32)?;
        ts.get(i)
    });
    let unit = |c: usize, v: f32| transform.map_or(v as f64, |t| t.invert(c, v as f64));
    let n = (rows * width) as f64;
    let (mut se, mut ae, mut sum) = (0.0, 0.0, 0.0);
    for r in 0..rows {
        for c in 0..width {
            let y = unit(c, target[r * width + c]);
            let p = unit(c, predict[r * width + c]);
            se += (p - y) * (p - y);
            ae += (p - y).abs();
            sum += y;
        }
    }
    let mean = sum / n;
    let mut ss_tot = 0.0;
    for r in 0..rows {
        for c in 0..width {
            let y = unit(c, target[r * width + c]);
            ss_tot += (y - mean) * (y - mean);
        }
    }
    metrics.mse = Some(se / n);
    metrics.mae = Some(ae / n);
    metrics.r2 = (ss_tot > 0.0).then(|| 1.0 - se / ss_tot);
}
