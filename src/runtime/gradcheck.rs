//! `nnc check --gradcheck`: the compiled kernel's gradient against central
//! differences, on the user's own model and rows.
//!
//! The gradient comes from a training kernel lowered and compiled exactly as
//! `nnc run`'s (same simplification, fusion and code generation) whose
//! update of each parameter is its gradient: one call over one batch leaves
//! `∂loss/∂p` where the parameters were. The reference is the loss of the
//! forward graph on the f64 interpreter, differentiated by central
//! differences with PyTorch `gradcheck`'s step (eps 1e-6); each element
//! passes when `|kernel − numeric| ≤ atol + rtol·|numeric|` with its
//! tolerances (atol 1e-5, rtol 1e-3).

use super::data::Dataset;
use super::train::Params;
use crate::codegen::{Compiled, KernelArgs};
use crate::ir::interp::{self, Env, Tensor};
use crate::ir::program::{HyperContext, Program};

/// PyTorch `torch.autograd.gradcheck`'s defaults.
pub const EPS: f64 = 1e-6;
pub const ATOL: f64 = 1e-5;
pub const RTOL: f64 = 1e-3;

/// Elements of one parameter beyond this many are sampled evenly (the
/// first and last always among them).
pub const MAX_ELEMENTS: usize = 256;

/// How one parameter's gradient compares.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamCheck {
    pub name: String,
    pub elements: usize,
    pub checked: usize,
    /// The largest `|kernel − numeric|`.
    pub worst_abs: f64,
    /// The largest `|kernel − numeric| / |numeric|` among elements whose
    /// numeric gradient is not zero.
    pub worst_rel: f64,
    /// Elements outside `atol + rtol·|numeric|`.
    pub failures: usize,
    /// The worst element (by how far beyond the tolerance it is): index,
    /// kernel value, numeric value.
    pub worst: Option<(usize, f64, f64)>,
}

impl ParamCheck {
    pub fn passed(&self) -> bool {
        self.failures == 0
    }
}

/// The first `rows` rows of `data`.
pub fn first_rows(program: &Program, data: &Dataset, rows: usize) -> Dataset {
    let rows = rows.min(data.rows);
    let cut = |matrices: &[Vec<f32>], widths: Vec<usize>| -> Vec<Vec<f32>> {
        matrices.iter().zip(widths).map(|(m, w)| m[..rows * w].to_vec()).collect()
    };
    let input_widths = program.graph.inputs.iter().map(|v| v.width as usize).collect();
    let target_widths = program.graph.targets.iter().map(|v| v.width as usize).collect();
    Dataset {
        rows,
        inputs: cut(&data.inputs, input_widths),
        targets: if data.has_targets { cut(&data.targets, target_widths) } else { Vec::new() },
        has_targets: data.has_targets,
    }
}

/// The gradient of the mean loss over `batch` (one step, `t = 1`) at
/// `params`, from a gradient kernel for `batch`'s rows (made by
/// `pipeline::gradient_kernel`); packed like
/// `params`.
pub fn call_gradient(program: &Program, compiled: &Compiled, params: &Params, batch: Option<&Dataset>) -> Vec<f32> {
    let rows = batch.map_or(1, |d| d.rows);
    let mut values = params.values.clone();
    let mut scratch = vec![0.0f32; compiled.kernel.scratch_len.max(1)];
    let mut loss = [0.0f32];
    let input_ptrs: Vec<*const f32> = batch.map_or(Vec::new(), |d| d.inputs.iter().map(|v| v.as_ptr()).collect());
    let target_ptrs: Vec<*const f32> = batch.map_or(Vec::new(), |d| d.targets.iter().map(|v| v.as_ptr()).collect());
    let hypers = HyperContext {
        learning_rate: program.train.learning_rate.value,
        schedule: program.train.schedule.value.resolved(1),
    };
    let args = KernelArgs {
        params: values.as_mut_ptr(),
        scratch: scratch.as_mut_ptr(),
        losses: loss.as_mut_ptr(),
        inputs: input_ptrs.as_ptr(),
        targets: target_ptrs.as_ptr(),
        rows: rows as i64,
        batch: rows as i64,
        learning_rate: program.train.learning_rate.value as f32,
        step: 0,
        hypers: &hypers,
        ..KernelArgs::default()
    };
    // SAFETY: the kernel was lowered for batches of `rows` rows (the
    // caller's batch; `Compiled::call` refuses larger ones) over these
    // parameter shapes; the data matrices hold `rows × width`
    // values each, the scratch area its length, and the graph has no
    // optimizer state.
    unsafe { compiled.call(&args) };
    values
}

/// The forward loss on the interpreter at `values` (f64), step `t = 1`.
fn loss_at(program: &Program, env: &mut Env, values: &[f64], offsets: &[usize]) -> f64 {
    for (i, tensor) in env.params.iter_mut().enumerate() {
        let n = tensor.data.len();
        tensor.data.copy_from_slice(&values[offsets[i]..offsets[i] + n]);
    }
    let out = interp::eval(&program.graph, env);
    program.graph.output("loss").map_or(f64::NAN, |id| out[id.index()].data[0])
}

/// Which elements of a parameter of `n` elements are checked.
fn sample(n: usize) -> Vec<usize> {
    if n <= MAX_ELEMENTS {
        (0..n).collect()
    } else {
        (0..MAX_ELEMENTS).map(|k| k * (n - 1) / (MAX_ELEMENTS - 1)).collect()
    }
}

/// Compare `kernel` (packed like `params`) with central differences of the
/// interpreter's loss over `batch`, parameter by parameter.
pub fn compare(program: &Program, params: &Params, batch: Option<&Dataset>, kernel: &[f32]) -> Vec<ParamCheck> {
    let f64s = |values: &[f32]| values.iter().map(|&v| v as f64).collect::<Vec<f64>>();
    let matrix = |m: &Vec<f32>, width: u32| Tensor::new(m.len() / width.max(1) as usize, width as usize, f64s(m));
    let mut env = Env {
        inputs: batch.map_or(Vec::new(), |d| {
            program.graph.inputs.iter().zip(&d.inputs).map(|(v, m)| matrix(m, v.width)).collect()
        }),
        targets: batch.map_or(Vec::new(), |d| {
            program.graph.targets.iter().zip(&d.targets).map(|(v, m)| matrix(m, v.width)).collect()
        }),
        params: params.shapes.iter().map(|s| Tensor::filled(s.rows.resolve(1), s.cols.resolve(1), 0.0)).collect(),
        learning_rate: program.train.learning_rate.value,
        schedule: program.train.schedule.value.resolved(1),
        ..Env::default()
    };
    let mut values = f64s(&params.values);
    let mut out = Vec::new();
    for (i, param) in program.graph.params.iter().enumerate() {
        let n = params.shapes[i].len(1);
        let elements = sample(n);
        let mut check = ParamCheck {
            name: param.name.clone(),
            elements: n,
            checked: elements.len(),
            worst_abs: 0.0,
            worst_rel: 0.0,
            failures: 0,
            worst: None,
        };
        let mut worst_excess = f64::NEG_INFINITY;
        for k in elements {
            let at = params.offsets[i] + k;
            let original = values[at];
            values[at] = original + EPS;
            let up = loss_at(program, &mut env, &values, &params.offsets);
            values[at] = original - EPS;
            let down = loss_at(program, &mut env, &values, &params.offsets);
            values[at] = original;
            let numeric = (up - down) / (2.0 * EPS);
            let analytic = kernel[at] as f64;
            let diff = (analytic - numeric).abs();
            check.worst_abs = check.worst_abs.max(diff);
            if numeric != 0.0 {
                check.worst_rel = check.worst_rel.max(diff / numeric.abs());
            }
            let excess = diff - (ATOL + RTOL * numeric.abs());
            // NaN anywhere is a failure too.
            if excess > 0.0 || excess.is_nan() {
                check.failures += 1;
            }
            if excess > worst_excess || excess.is_nan() {
                worst_excess = if excess.is_nan() { f64::INFINITY } else { excess };
                check.worst = Some((k, analytic, numeric));
            }
        }
        out.push(check);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_cover_both_ends() {
        assert_eq!(sample(3), vec![0, 1, 2]);
        let s = sample(2048);
        assert_eq!(s.len(), MAX_ELEMENTS);
        assert_eq!((s[0], s[MAX_ELEMENTS - 1]), (0, 2047));
    }
}
