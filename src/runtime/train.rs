//! The training loop around the compiled kernels.
//!
//! Parameters live in one packed f32 array (the layout the kernels were
//! compiled for). Each epoch is one call of the training kernel over all
//! rows; the Rust side only checks the returned batch losses, keeps a copy
//! of the last good parameters, and reports progress. The final loss and
//! accuracy come from the evaluation kernel run over the whole set with the
//! final weights.

use super::data::Dataset;
use crate::codegen::{Compiled, KernelArgs, param_len, param_offsets};
use crate::ir::program::{Program, Task};
use crate::ir::{Init, Shape};
use rand_chacha::ChaCha8Rng;
use rand_core::{Rng, SeedableRng};
use std::fmt;
use std::time::Instant;

/// Settings for one run, after flags have overridden the file.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RunConfig {
    /// Epochs over the data, or steps for a model without data.
    pub epochs: u64,
    pub batch: usize,
    pub learning_rate: f32,
    pub seed: u64,
}

/// The packed parameters of a model.
#[derive(Clone, Debug, PartialEq)]
pub struct Params {
    pub values: Vec<f32>,
    pub offsets: Vec<usize>,
    pub shapes: Vec<Shape>,
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
        Params { values, offsets, shapes }
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
    /// Loss over the whole training set with the final weights.
    pub final_loss: f64,
    /// Fraction of rows classified correctly, for classification.
    pub accuracy: Option<f64>,
    pub params: Params,
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

/// Train with the compiled kernels; `on_epoch(epoch, loss)` sees each epoch.
pub fn train(
    program: &Program,
    train_kernel: &Compiled,
    eval_kernel: &Compiled,
    data: Option<&Dataset>,
    config: &RunConfig,
    initial: Params,
    mut on_epoch: impl FnMut(u64, f64),
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
    let no_pointer: Vec<*const f32> = Vec::new();
    let input_ptrs: Vec<*const f32> =
        data.map_or(no_pointer.clone(), |d| d.inputs.iter().map(|v| v.as_ptr()).collect());
    let target_ptrs: Vec<*const f32> = data.map_or(no_pointer, |d| d.targets.iter().map(|v| v.as_ptr()).collect());
    let mut history = Vec::new();
    let start = Instant::now();
    for epoch in 1..=epochs {
        let last_good = params.clone();
        let args = KernelArgs {
            params: params.values.as_mut_ptr(),
            scratch: scratch.as_mut_ptr(),
            losses: losses.as_mut_ptr(),
            predict: std::ptr::null_mut(),
            inputs: input_ptrs.as_ptr(),
            targets: target_ptrs.as_ptr(),
            rows: rows as i64,
            batch: batch as i64,
            learning_rate: config.learning_rate,
        };
        // SAFETY: the buffers above have the sizes the kernels were lowered
        // for: the packed parameters, the scratch area, one loss per batch,
        // and `rows × width` data matrices checked when the CSV was bound.
        unsafe { train_kernel.call(&args) };
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
                last_good: if data.is_some() { last_good } else { params.clone() },
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
                on_epoch(epoch, loss);
            }
            None => {
                for (step, &loss) in losses.iter().enumerate() {
                    history.push(loss as f64);
                    on_epoch(step as u64 + 1, loss as f64);
                }
            }
        }
    }
    let train_seconds = start.elapsed().as_secs_f64();
    let (final_loss, accuracy) = evaluate(program, eval_kernel, data, &params);
    Ok(Outcome { history, final_loss, accuracy, params, train_seconds, samples: rows as u64 * epochs })
}

/// Loss over the whole data set (or the function value, without data) and,
/// for classification, the accuracy.
pub fn evaluate(
    program: &Program,
    eval_kernel: &Compiled,
    data: Option<&Dataset>,
    params: &Params,
) -> (f64, Option<f64>) {
    let rows = data.map_or(1, |d| d.rows);
    let mut params = params.clone();
    let mut scratch = vec![0.0f32; eval_kernel.kernel.scratch_len.max(1)];
    let mut loss = [0.0f32];
    let width = program.graph.output("predict").map_or(0, |id| program.graph.shape(id).width().unwrap_or(0) as usize);
    let mut predict = vec![0.0f32; (rows * width).max(1)];
    let input_ptrs: Vec<*const f32> = data.map_or(Vec::new(), |d| d.inputs.iter().map(|v| v.as_ptr()).collect());
    let target_ptrs: Vec<*const f32> = data.map_or(Vec::new(), |d| d.targets.iter().map(|v| v.as_ptr()).collect());
    let args = KernelArgs {
        params: params.values.as_mut_ptr(),
        scratch: scratch.as_mut_ptr(),
        losses: loss.as_mut_ptr(),
        predict: predict.as_mut_ptr(),
        inputs: input_ptrs.as_ptr(),
        targets: target_ptrs.as_ptr(),
        rows: rows as i64,
        batch: rows as i64,
        learning_rate: 0.0,
    };
    // SAFETY: as in `train`; the evaluation kernel was lowered for batches
    // of all `rows` rows and `predict` holds `rows × width` values.
    unsafe { eval_kernel.call(&args) };
    let accuracy = match (program.task, data) {
        (Task::Classification { classes }, Some(d)) => {
            let k = classes as usize;
            let Some(target) = d.targets.iter().find(|t| t.len() == rows * k) else {
                return (loss[0] as f64, None);
            };
            let correct = (0..rows)
                .filter(|&r| argmax(&predict[r * k..(r + 1) * k]) == argmax(&target[r * k..(r + 1) * k]))
                .count();
            Some(correct as f64 / rows as f64)
        }
        _ => None,
    };
    (loss[0] as f64, accuracy)
}

fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (i, &x) in row.iter().enumerate() {
        if x > row[best] {
            best = i;
        }
    }
    best
}
