//! The reference interpreter: evaluates a graph in f64, one node at a time.
//!
//! It is deliberately simple — every op computed the obvious way on dense
//! row-major matrices — because it is the definition of what the IR means and
//! the oracle the compiled kernels are tested against.

use super::program::{HyperContext, Schedule};
use super::{Binary, Dim, Graph, Hyper, Op, Shape, Unary};

/// A dense row-major f64 matrix.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    pub rows: usize,
    pub cols: usize,
    pub data: Vec<f64>,
}

impl Tensor {
    pub fn new(rows: usize, cols: usize, data: Vec<f64>) -> Tensor {
        assert_eq!(rows * cols, data.len(), "tensor data does not match its shape");
        Tensor { rows, cols, data }
    }

    pub fn filled(rows: usize, cols: usize, value: f64) -> Tensor {
        Tensor { rows, cols, data: vec![value; rows * cols] }
    }

    pub fn scalar(value: f64) -> Tensor {
        Tensor::filled(1, 1, value)
    }

    pub fn at(&self, r: usize, c: usize) -> f64 {
        self.data[r * self.cols + c]
    }

    /// Element `[r, c]` where size-1 dimensions broadcast.
    fn at_broadcast(&self, r: usize, c: usize) -> f64 {
        let r = if self.rows == 1 { 0 } else { r };
        let c = if self.cols == 1 { 0 } else { c };
        self.data[r * self.cols + c]
    }

    fn map(&self, f: impl Fn(f64) -> f64) -> Tensor {
        Tensor { rows: self.rows, cols: self.cols, data: self.data.iter().map(|&x| f(x)).collect() }
    }
}

/// Everything a graph reads besides its constants.
#[derive(Clone, Debug, Default)]
pub struct Env {
    pub inputs: Vec<Tensor>,
    pub targets: Vec<Tensor>,
    pub params: Vec<Tensor>,
    /// The base learning rate.
    pub learning_rate: f64,
    /// Optimizer state, one tensor per `graph.states` entry (zeros at first).
    pub state: Vec<Tensor>,
    /// Optimizer steps already taken: this step is `t = step + 1`.
    pub step: u64,
    /// The learning-rate schedule (resolved: a cosine has its length).
    pub schedule: Schedule,
}

impl Env {
    /// Rows in the batch: those of the data, or 1 for a model without data.
    pub fn batch(&self) -> usize {
        self.inputs.first().or(self.targets.first()).map_or(1, |t| t.rows)
    }

    /// A run-time scalar's value at this step.
    pub fn hyper(&self, hyper: Hyper) -> f64 {
        HyperContext { learning_rate: self.learning_rate, schedule: self.schedule }.value(hyper, self.step + 1)
    }
}

fn dims(shape: Shape, batch: usize) -> (usize, usize) {
    (shape.rows.resolve(batch), shape.cols.resolve(batch))
}

/// Evaluate every node; returns one tensor per node.
pub fn eval(graph: &Graph, env: &Env) -> Vec<Tensor> {
    let batch = env.batch();
    let mut values: Vec<Tensor> = Vec::with_capacity(graph.nodes.len());
    for node in &graph.nodes {
        let arg = |i: usize| &values[node.args[i].index()];
        let (rows, cols) = dims(node.shape, batch);
        let value = match &node.op {
            Op::Input(i) => env.inputs[*i as usize].clone(),
            Op::Target(i) => env.targets[*i as usize].clone(),
            Op::Param(i) => env.params[*i as usize].clone(),
            Op::State(i) => env.state[*i as usize].clone(),
            Op::Hyper(h) => Tensor::scalar(env.hyper(*h)),
            Op::BatchSize => Tensor::scalar(batch as f64),
            Op::Const(c) => Tensor::filled(rows, cols, *c),
            Op::Unary(u) => unary(*u, arg(0)),
            Op::Binary(b) => binary(*b, arg(0), arg(1), rows, cols),
            Op::Compare(kind) => {
                let (x, y) = (arg(0), arg(1));
                let mut out = Tensor::filled(rows, cols, 0.0);
                for r in 0..rows {
                    for c in 0..cols {
                        out.data[r * cols + c] = kind.eval(x.at_broadcast(r, c), y.at_broadcast(r, c));
                    }
                }
                out
            }
            Op::Dropout { rate, site } => {
                let (x, step) = (arg(0), arg(1).data[0] as u64);
                let scale = 1.0 / (1.0 - rate);
                let mut out = Tensor::filled(rows, cols, 0.0);
                for (i, (o, &v)) in out.data.iter_mut().zip(&x.data).enumerate() {
                    if super::dropout_keeps(*site, step, i as u64, *rate) {
                        *o = v * scale;
                    }
                }
                out
            }
            Op::Select => {
                let (cond, a, b) = (arg(0), arg(1), arg(2));
                let mut out = Tensor::filled(rows, cols, 0.0);
                for r in 0..rows {
                    for c in 0..cols {
                        let pick = if cond.at_broadcast(r, c) != 0.0 { a } else { b };
                        out.data[r * cols + c] = pick.at_broadcast(r, c);
                    }
                }
                out
            }
            Op::MatMul { trans_a, trans_b } => matmul(arg(0), arg(1), *trans_a, *trans_b),
            Op::Sum { rows: sum_rows, cols: sum_cols } => {
                let a = arg(0);
                let mut out = Tensor::filled(rows, cols, 0.0);
                for r in 0..a.rows {
                    for c in 0..a.cols {
                        let (or, oc) = (if *sum_rows { 0 } else { r }, if *sum_cols { 0 } else { c });
                        out.data[or * cols + oc] += a.at(r, c);
                    }
                }
                out
            }
            Op::Broadcast => {
                let a = arg(0);
                let mut out = Tensor::filled(rows, cols, 0.0);
                for r in 0..rows {
                    for c in 0..cols {
                        out.data[r * cols + c] = a.at_broadcast(r, c);
                    }
                }
                out
            }
            Op::Softmax | Op::LogSoftmax => {
                let a = arg(0);
                let mut out = a.clone();
                for r in 0..a.rows {
                    let row = &a.data[r * a.cols..(r + 1) * a.cols];
                    let max = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    let sum: f64 = row.iter().map(|&x| (x - max).exp()).sum();
                    for (c, &x) in row.iter().enumerate() {
                        out.data[r * a.cols + c] =
                            if node.op == Op::Softmax { (x - max).exp() / sum } else { x - max - sum.ln() };
                    }
                }
                out
            }
            Op::SliceCols { start } => {
                let a = arg(0);
                let mut out = Tensor::filled(rows, cols, 0.0);
                for r in 0..rows {
                    for c in 0..cols {
                        out.data[r * cols + c] = a.at(r, c + *start as usize);
                    }
                }
                out
            }
            Op::PadCols { start } => {
                let a = arg(0);
                let mut out = Tensor::filled(rows, cols, 0.0);
                for r in 0..rows {
                    for c in 0..a.cols {
                        out.data[r * cols + c + *start as usize] = a.at(r, c);
                    }
                }
                out
            }
            Op::ConcatCols => {
                let mut out = Tensor::filled(rows, cols, 0.0);
                let mut offset = 0;
                for a in &node.args {
                    let a = &values[a.index()];
                    for r in 0..rows {
                        for c in 0..a.cols {
                            out.data[r * cols + offset + c] = a.at(r, c);
                        }
                    }
                    offset += a.cols;
                }
                out
            }
        };
        debug_assert_eq!((value.rows, value.cols), (rows, cols), "{:?}", node.op);
        values.push(value);
    }
    values
}

fn unary(u: Unary, a: &Tensor) -> Tensor {
    a.map(|x| u.eval(x))
}

fn binary(b: Binary, x: &Tensor, y: &Tensor, rows: usize, cols: usize) -> Tensor {
    let mut out = Tensor::filled(rows, cols, 0.0);
    for r in 0..rows {
        for c in 0..cols {
            out.data[r * cols + c] = b.eval(x.at_broadcast(r, c), y.at_broadcast(r, c));
        }
    }
    out
}

fn matmul(a: &Tensor, b: &Tensor, trans_a: bool, trans_b: bool) -> Tensor {
    let (n, k) = if trans_a { (a.cols, a.rows) } else { (a.rows, a.cols) };
    let m = if trans_b { b.rows } else { b.cols };
    let get_a = |i: usize, j: usize| if trans_a { a.at(j, i) } else { a.at(i, j) };
    let get_b = |i: usize, j: usize| if trans_b { b.at(j, i) } else { b.at(i, j) };
    let mut out = Tensor::filled(n, m, 0.0);
    for i in 0..n {
        for j in 0..m {
            out.data[i * m + j] = (0..k).map(|p| get_a(i, p) * get_b(p, j)).sum();
        }
    }
    out
}

/// Evaluate the graph and return the named output.
pub fn output(graph: &Graph, env: &Env, name: &str) -> Option<Tensor> {
    let id = graph.output(name)?;
    Some(eval(graph, env).swap_remove(id.index()))
}

/// One reference training step on a graph with `update.<param>` (and
/// `update.<state>`) outputs: returns the loss before the step, replaces the
/// parameters and the optimizer state in `env` — all computed from the old
/// values — and counts the step. Missing state starts at zero.
pub fn train_step(graph: &Graph, env: &mut Env) -> f64 {
    for state in graph.states.iter().skip(env.state.len()) {
        let (rows, cols) = dims(state.shape, 1);
        env.state.push(Tensor::filled(rows, cols, 0.0));
    }
    let values = eval(graph, env);
    let loss = values[graph.output("loss").expect("graph has a loss").index()].data[0];
    for (i, param) in graph.params.iter().enumerate() {
        if let Some(id) = graph.output(&format!("update.{}", param.name)) {
            env.params[i] = values[id.index()].clone();
        }
    }
    for (i, state) in graph.states.iter().enumerate() {
        if let Some(id) = graph.output(&format!("update.{}", state.name)) {
            env.state[i] = values[id.index()].clone();
        }
    }
    env.step += 1;
    loss
}

/// Size of a dimension for a batch (re-exported for tests).
pub fn resolve(dim: Dim, batch: usize) -> usize {
    dim.resolve(batch)
}
