//! The optimizer as IR: each parameter's new value after one step, and the
//! new value of each optimizer state tensor.
//!
//! Every update is graph nodes — `update.<param>` and `update.<state>`
//! outputs — so the lowering fuses it with the backward pass like any other
//! elementwise op, and the kernel updates parameters and state in place.
//! State tensors (`Op::State`, declared in `graph.states`) are leaves read
//! like parameters; they start at zero. Every update reads only old values:
//! the lowering writes all of them after every read (see `kernel::lower`).
//!
//! The formulas are PyTorch's (`torch.optim.SGD`, `Adam`, `AdamW`, see
//! [`Optimizer`]); the learning rate is `lr` (a run-time scalar) times the
//! schedule's factor at the step, and Adam's bias corrections `1 − β^t` are
//! run-time scalars of the step too ([`Hyper`]).

use crate::ir::program::{AdamConfig, Optimizer, Schedule};
use crate::ir::{Binary, Graph, Hyper, NodeId, Op, Origin, Shape, Unary};

/// Add `update.<param>` for every parameter (needs `grad.<param>`) and
/// `update.<state>` for every state tensor, declaring the state in
/// `graph.states`.
pub fn step(graph: &mut Graph, optimizer: Optimizer, schedule: Schedule) {
    graph.states = optimizer.states(&graph.params);
    let origin = Origin { span: None, layer: Some(optimizer.name().into()) };
    let mut b = Builder { graph, origin };
    let mut lr = b.leaf(Op::Hyper(Hyper::LearningRate), Shape::SCALAR);
    if schedule != Schedule::Constant {
        let factor = b.leaf(Op::Hyper(Hyper::Schedule), Shape::SCALAR);
        lr = b.binary(Binary::Mul, lr, factor);
    }
    let kinds = optimizer.state_kinds().len();
    for (index, param) in b.graph.params.clone().iter().enumerate() {
        let gradient = b.graph.output(&format!("grad.{}", param.name)).expect("autodiff ran first");
        let current = b.leaf(Op::Param(index as u32), param.shape);
        let first_state = (index * kinds) as u32;
        let next = match optimizer {
            Optimizer::Sgd { momentum, nesterov, weight_decay } => {
                let g = b.decayed(gradient, current, weight_decay);
                let direction = if momentum == 0.0 {
                    g
                } else {
                    // buf ← μ·buf + g; nesterov: g + μ·buf (the new buf).
                    let buf = b.state(first_state);
                    let mu = b.constant(momentum);
                    let scaled = b.binary(Binary::Mul, mu, buf);
                    let next_buf = b.binary(Binary::Add, scaled, g);
                    b.set_state(first_state, next_buf);
                    if nesterov {
                        let ahead = b.binary(Binary::Mul, mu, next_buf);
                        b.binary(Binary::Add, g, ahead)
                    } else {
                        next_buf
                    }
                };
                let step = b.binary(Binary::Mul, lr, direction);
                b.binary(Binary::Sub, current, step)
            }
            Optimizer::Adam(config) => {
                let g = b.decayed(gradient, current, config.weight_decay);
                adam(&mut b, config, lr, current, g, first_state)
            }
            Optimizer::AdamW(config) => {
                // p ← p·(1 − lr·wd), then Adam's step on the decayed value.
                let base = if config.weight_decay == 0.0 {
                    current
                } else {
                    let wd = b.constant(config.weight_decay);
                    let rate = b.binary(Binary::Mul, lr, wd);
                    let one = b.constant(1.0);
                    let keep = b.binary(Binary::Sub, one, rate);
                    b.binary(Binary::Mul, current, keep)
                };
                adam(&mut b, config, lr, base, gradient, first_state)
            }
        };
        b.graph.set_output(&format!("update.{}", param.name), next);
    }
}

/// Adam's step from `base` (the parameter, or its decayed value for AdamW):
/// `m ← β1·m + (1−β1)·g; v ← β2·v + (1−β2)·g²;
/// base − lr/(1−β1^t) · m / (√v/√(1−β2^t) + ε)`, written as PyTorch does.
fn adam(b: &mut Builder, config: AdamConfig, lr: NodeId, base: NodeId, g: NodeId, first_state: u32) -> NodeId {
    let (m_index, v_index) = (first_state, first_state + 1);
    let m = b.state(m_index);
    let v = b.state(v_index);
    let beta1 = b.constant(config.beta1);
    let rest1 = b.constant(1.0 - config.beta1);
    let beta2 = b.constant(config.beta2);
    let rest2 = b.constant(1.0 - config.beta2);
    let m_old = b.binary(Binary::Mul, beta1, m);
    let m_new_part = b.binary(Binary::Mul, rest1, g);
    let next_m = b.binary(Binary::Add, m_old, m_new_part);
    let v_old = b.binary(Binary::Mul, beta2, v);
    let squared = b.unary(Unary::Pow(2.0), g);
    let v_new_part = b.binary(Binary::Mul, rest2, squared);
    let next_v = b.binary(Binary::Add, v_old, v_new_part);
    b.set_state(m_index, next_m);
    b.set_state(v_index, next_v);
    // step_size = lr / (1 − β1^t); denom = √v / √(1 − β2^t) + ε
    let correction1 = b.leaf(Op::Hyper(Hyper::BiasCorrection(config.beta1)), Shape::SCALAR);
    let correction2 = b.leaf(Op::Hyper(Hyper::BiasCorrection(config.beta2)), Shape::SCALAR);
    let step_size = b.binary(Binary::Div, lr, correction1);
    let root2 = b.unary(Unary::Pow(0.5), correction2);
    let root_v = b.unary(Unary::Pow(0.5), next_v);
    let scaled = b.binary(Binary::Div, root_v, root2);
    let eps = b.constant(config.eps);
    let denominator = b.binary(Binary::Add, scaled, eps);
    let ratio = b.binary(Binary::Div, next_m, denominator);
    let step = b.binary(Binary::Mul, step_size, ratio);
    b.binary(Binary::Sub, base, step)
}

struct Builder<'g> {
    graph: &'g mut Graph,
    origin: Origin,
}

impl Builder<'_> {
    fn leaf(&mut self, op: Op, shape: Shape) -> NodeId {
        self.graph.add_declared(op, &[], shape, self.origin.clone()).expect("a leaf")
    }

    fn constant(&mut self, value: f64) -> NodeId {
        self.leaf(Op::Const(value), Shape::SCALAR)
    }

    fn state(&mut self, index: u32) -> NodeId {
        let shape = self.graph.states[index as usize].shape;
        self.leaf(Op::State(index), shape)
    }

    fn set_state(&mut self, index: u32, value: NodeId) {
        let name = format!("update.{}", self.graph.states[index as usize].name);
        self.graph.set_output(&name, value);
    }

    fn unary(&mut self, op: Unary, x: NodeId) -> NodeId {
        self.graph.add(Op::Unary(op), &[x], self.origin.clone()).expect("elementwise")
    }

    fn binary(&mut self, op: Binary, x: NodeId, y: NodeId) -> NodeId {
        self.graph.add(Op::Binary(op), &[x, y], self.origin.clone()).expect("a scalar or the same shape")
    }

    /// `g + wd·p` (L2 weight decay added to the gradient), or `g` when wd = 0.
    fn decayed(&mut self, g: NodeId, p: NodeId, weight_decay: f64) -> NodeId {
        if weight_decay == 0.0 {
            return g;
        }
        let wd = self.constant(weight_decay);
        let decay = self.binary(Binary::Mul, wd, p);
        self.binary(Binary::Add, g, decay)
    }
}
