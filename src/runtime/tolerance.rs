//! Stopping on the gradient, for models without data (the article's
//! `x³/3 − x`): before every step the gradient of the loss is evaluated on
//! the reference interpreter (f64, from the same f32 parameters the kernel
//! holds); once its Euclidean norm over every parameter is below the
//! `tolerance`, training stops. Steps run one kernel call each, so the
//! interpreter sees every intermediate value.

use super::train::{self, Diverged, Outcome, Params, RunConfig};
use crate::codegen::Compiled;
use crate::ir::Graph;
use crate::ir::interp::{self, Env, Tensor};
use crate::ir::program::Program;
use std::ops::ControlFlow;

/// Where the gradient stood when training ended.
#[derive(Clone, Debug, PartialEq)]
pub struct GradientStop {
    /// Steps taken.
    pub steps: u64,
    /// `|∂loss/∂p|` over all parameters at the final values.
    pub norm: f64,
    pub tolerance: f64,
    /// The norm fell below the tolerance (else the step limit came first).
    pub reached: bool,
}

impl GradientStop {
    /// "stopped after 61 steps: |∂loss/∂x| = 8.1e-7 < 1e-6".
    pub fn describe(&self, program: &Program) -> String {
        let params = &program.graph.params;
        let symbol = match params.as_slice() {
            [only] => format!("|∂loss/∂{}|", only.name),
            _ => "‖∇loss‖".to_string(),
        };
        let steps = if self.steps == 1 { "1 step".to_string() } else { format!("{} steps", self.steps) };
        if self.reached {
            format!("stopped after {steps}: {symbol} = {:.1e} < {:e}", self.norm, self.tolerance)
        } else {
            format!("ran all {steps}: {symbol} = {:.1e} is still above the tolerance {:e}", self.norm, self.tolerance)
        }
    }
}

/// The norm of the gradient of the loss at `params`, from `grad_graph`
/// (the graph with `grad.<param>` outputs).
pub fn gradient_norm(program: &Program, grad_graph: &Graph, params: &Params) -> f64 {
    let tensor = |shape: crate::ir::Shape, values: &[f32]| {
        let (r, c) = (interp::resolve(shape.rows, 1), interp::resolve(shape.cols, 1));
        Tensor::new(r, c, values.iter().map(|&v| v as f64).collect())
    };
    let state = &params.state;
    let env = Env {
        params: (0..params.shapes.len()).map(|i| tensor(params.shapes[i], params.get(i))).collect(),
        state: (0..state.shapes.len()).map(|i| tensor(state.shapes[i], state.get(i))).collect(),
        step: state.step,
        schedule: program.train.schedule.value,
        learning_rate: program.train.learning_rate.value,
        ..Env::default()
    };
    let values = interp::eval(grad_graph, &env);
    let squares: f64 = program
        .graph
        .params
        .iter()
        .filter_map(|p| grad_graph.output(&format!("grad.{}", p.name)))
        .map(|id| values[id.index()].data.iter().map(|g| g * g).sum::<f64>())
        .sum();
    squares.sqrt()
}

/// Train a model without data one step at a time until the gradient's
/// norm is below `tolerance` or `config.epochs` steps have run;
/// `on_step(step, loss, params)` sees every step and may stop the run.
pub fn minimize(
    program: &Program,
    grad_graph: &Graph,
    train_kernel: &Compiled,
    config: &RunConfig,
    initial: Params,
    tolerance: f64,
    mut on_step: impl FnMut(u64, f64, &Params) -> ControlFlow<()>,
) -> Result<(Outcome, GradientStop), Box<Diverged>> {
    // A cosine without a length anneals over the whole run, not one call.
    let mut program = program.clone();
    let last_step = initial.state.step + config.epochs;
    program.train.schedule.value = program.train.schedule.value.resolved(last_step);
    let one = RunConfig { epochs: 1, ..*config };
    let mut params = initial;
    let mut history = Vec::new();
    let mut seconds = 0.0;
    let mut steps = 0;
    let mut norm = gradient_norm(&program, grad_graph, &params);
    // A NaN gradient never counts as small.
    let small = |norm: f64| norm < tolerance;
    while steps < config.epochs && !small(norm) {
        let outcome = train::train(&program, train_kernel, None, &one, params, |_, _, _| {}).map_err(|mut d| {
            d.epoch += steps;
            d
        })?;
        steps += 1;
        seconds += outcome.train_seconds;
        let loss = outcome.history.first().copied().unwrap_or(f64::NAN);
        history.push(loss);
        params = outcome.params;
        norm = gradient_norm(&program, grad_graph, &params);
        if on_step(steps, loss, &params).is_break() {
            break;
        }
    }
    let stop = GradientStop { steps, norm, tolerance, reached: norm < tolerance };
    Ok((Outcome { history, params, train_seconds: seconds, samples: steps }, stop))
}
