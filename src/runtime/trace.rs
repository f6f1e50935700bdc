//! `nnc run --trace-grads`: per layer and epoch, the norm of the gradient,
//! of the weights, and of the epoch's update relative to the weights.
//!
//! The training kernel is not changed: at the end of each epoch a second
//! kernel, compiled like it but whose updates are the gradients (see
//! `pipeline::gradient_kernel`), computes the gradient of the mean
//! loss over a fixed sample — the first [`SAMPLE_ROWS`] training rows — at
//! the weights as they stand. The update is the change of the weights over
//! the epoch (every step of it), divided by their norm before it. Norms are
//! Euclidean over all of a layer's parameters (weights and bias together).

use super::data::Dataset;
use super::gradcheck::call_gradient;
use super::train::Params;
use crate::codegen::Compiled;
use crate::ir::program::Program;

/// Rows the gradient is measured on, at most.
pub const SAMPLE_ROWS: usize = 256;
/// A layer whose gradient norm falls below this is reported as vanishing.
pub const VANISHING: f64 = 1e-7;
/// A layer whose gradient norm rises above this is reported as exploding.
pub const EXPLODING: f64 = 1e3;

/// One layer's statistics after one epoch.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerTrace {
    pub layer: String,
    pub grad_norm: f64,
    pub weight_norm: f64,
    /// `‖W_after − W_before‖ / ‖W_before‖` over the epoch.
    pub update_ratio: f64,
}

pub struct Tracer {
    kernel: Compiled,
    sample: Dataset,
    /// Each layer (or scalar `param`) and the indices of its parameters.
    pub layers: Vec<(String, Vec<usize>)>,
    previous: Params,
}

impl Tracer {
    /// A tracer measuring on `sample` with `kernel`, a gradient kernel for
    /// its rows (see `pipeline::tracer`).
    pub fn new(program: &Program, sample: Dataset, kernel: Compiled, initial: &Params) -> Tracer {
        let mut layers: Vec<(String, Vec<usize>)> = Vec::new();
        for (i, param) in program.graph.params.iter().enumerate() {
            let name = param.layer.clone().unwrap_or_else(|| param.name.clone());
            match layers.iter_mut().find(|(n, _)| *n == name) {
                Some((_, members)) => members.push(i),
                None => layers.push((name, vec![i])),
            }
        }
        Tracer { kernel, sample, layers, previous: initial.clone() }
    }

    /// The statistics after an epoch that ended at `params`.
    pub fn observe(&mut self, program: &Program, params: &Params) -> Vec<LayerTrace> {
        let gradient = call_gradient(program, &self.kernel, params, Some(&self.sample));
        let norm = |values: &dyn Fn(usize) -> f64, members: &[usize]| -> f64 {
            members
                .iter()
                .flat_map(|&i| (params.offsets[i]..params.offsets[i] + params.shapes[i].len(1)).map(values))
                .map(|x| x * x)
                .sum::<f64>()
                .sqrt()
        };
        let out = self
            .layers
            .iter()
            .map(|(layer, members)| {
                let before = norm(&|k| self.previous.values[k] as f64, members);
                let change = norm(&|k| params.values[k] as f64 - self.previous.values[k] as f64, members);
                LayerTrace {
                    layer: layer.clone(),
                    grad_norm: norm(&|k| gradient[k] as f64, members),
                    weight_norm: norm(&|k| params.values[k] as f64, members),
                    update_ratio: if before > 0.0 { change / before } else { f64::NAN },
                }
            })
            .collect();
        self.previous = params.clone();
        out
    }
}

/// Warnings about the traces of a run (`epoch`, layers): the first epoch
/// where each layer's gradient vanished or exploded.
pub fn warnings(history: &[(u64, Vec<LayerTrace>)]) -> Vec<String> {
    let mut out = Vec::new();
    let Some((_, first)) = history.first() else { return out };
    for (k, layer) in first.iter().enumerate() {
        let vanished = history.iter().find(|(_, t)| t[k].grad_norm < VANISHING);
        if let Some((epoch, t)) = vanished {
            out.push(format!(
                "the gradient of layer `{}` vanished: norm {:.1e} < {VANISHING:e} in epoch {epoch}",
                layer.layer, t[k].grad_norm
            ));
        }
        let exploded = history.iter().find(|(_, t)| t[k].grad_norm > EXPLODING || t[k].grad_norm.is_nan());
        if let Some((epoch, t)) = exploded {
            out.push(format!(
                "the gradient of layer `{}` exploded: norm {:.1e} > {EXPLODING:e} in epoch {epoch}",
                layer.layer, t[k].grad_norm
            ));
        }
    }
    out
}
