//! The derivative rules: one arm per primitive op.
//!
//! Given a node `y = op(args)` and the adjoint `g = ∂loss/∂y`, a rule returns
//! the contribution to `∂loss/∂arg` for each argument (or `None` when the
//! argument has no gradient, like the steps of `relu`'). Rules reuse forward
//! values where the calculus allows — `d tanh = 1 − y²`, `d exp = y`,
//! `d sigmoid = y(1 − y)` — so the backward pass recomputes nothing.

use crate::ir::{Binary, Dim, Graph, NodeId, Op, Origin, Shape, Unary};

/// Builds backward nodes, all tagged with the origin of the forward node they
/// differentiate (so a gradient is still "from layer h").
pub struct Builder<'g> {
    pub graph: &'g mut Graph,
    pub origin: Origin,
}

impl Builder<'_> {
    pub fn add(&mut self, op: Op, args: &[NodeId]) -> NodeId {
        self.graph.add(op, args, self.origin.clone()).expect("derivative rules build well-shaped nodes")
    }

    fn declared(&mut self, op: Op, args: &[NodeId], shape: Shape) -> NodeId {
        self.graph.add_declared(op, args, shape, self.origin.clone()).expect("derivative rules build well-shaped nodes")
    }

    pub fn constant(&mut self, value: f64) -> NodeId {
        self.declared(Op::Const(value), &[], Shape::SCALAR)
    }

    fn unary(&mut self, u: Unary, a: NodeId) -> NodeId {
        self.add(Op::Unary(u), &[a])
    }

    fn binary(&mut self, b: Binary, x: NodeId, y: NodeId) -> NodeId {
        self.add(Op::Binary(b), &[x, y])
    }

    fn mul(&mut self, x: NodeId, y: NodeId) -> NodeId {
        self.binary(Binary::Mul, x, y)
    }

    fn matmul(&mut self, trans_a: bool, trans_b: bool, a: NodeId, b: NodeId) -> NodeId {
        self.add(Op::MatMul { trans_a, trans_b }, &[a, b])
    }

    /// Sum `g` over the dimensions that broadcasting expanded, so that it
    /// has `shape` again (the adjoint of an implicit broadcast).
    pub fn unbroadcast(&mut self, g: NodeId, shape: Shape) -> NodeId {
        let from = self.graph.shape(g);
        let reduce = |to: Dim, from: Dim| to.is_one() && !from.is_one();
        let (rows, cols) = (reduce(shape.rows, from.rows), reduce(shape.cols, from.cols));
        if !rows && !cols {
            return g;
        }
        self.add(Op::Sum { rows, cols }, &[g])
    }
}

/// Contributions of adjoint `g` of node `y` to each of its arguments.
pub fn backward(b: &mut Builder, y: NodeId, g: NodeId) -> Vec<Option<NodeId>> {
    let node = b.graph.node(y).clone();
    let args = node.args.clone();
    let shape_of = |b: &Builder, i: usize| b.graph.shape(args[i]);
    match node.op {
        Op::Input(_) | Op::Target(_) | Op::Param(_) | Op::State(_) | Op::Hyper(_) | Op::BatchSize | Op::Const(_) => {
            vec![]
        }
        Op::Unary(u) => {
            let a = args[0];
            let da = match u {
                Unary::Neg => Some(b.unary(Unary::Neg, g)),
                // d exp(a) = exp(a): the forward value itself.
                Unary::Exp => Some(b.mul(g, y)),
                Unary::Log => Some(b.binary(Binary::Div, g, a)),
                // d tanh(a) = 1 - tanh(a)^2, from the forward value.
                Unary::Tanh => {
                    let one = b.constant(1.0);
                    let square = b.unary(Unary::Pow(2.0), y);
                    let derivative = b.binary(Binary::Sub, one, square);
                    Some(b.mul(g, derivative))
                }
                // d sigmoid(a) = s (1 - s), from the forward value.
                Unary::Sigmoid => {
                    let one = b.constant(1.0);
                    let complement = b.binary(Binary::Sub, one, y);
                    let derivative = b.mul(y, complement);
                    Some(b.mul(g, derivative))
                }
                Unary::Relu => {
                    let step = b.unary(Unary::Step, a);
                    Some(b.mul(g, step))
                }
                Unary::Abs => {
                    let sign = b.unary(Unary::Sign, a);
                    Some(b.mul(g, sign))
                }
                // Piecewise constant: zero derivative almost everywhere.
                Unary::Step | Unary::Sign => None,
                // x^0 = 1: zero derivative (c·x^-1 would be 0·∞ at x = 0).
                Unary::Pow(0.0) => None,
                // d a^c = c a^(c-1)
                Unary::Pow(c) => {
                    let coefficient = b.constant(c);
                    let power = b.unary(Unary::Pow(c - 1.0), a);
                    let derivative = b.mul(coefficient, power);
                    Some(b.mul(g, derivative))
                }
            };
            vec![da]
        }
        Op::Binary(op) => {
            let (x, z) = (args[0], args[1]);
            let (dx, dz) = match op {
                Binary::Add => (g, g),
                Binary::Sub => (g, b.unary(Unary::Neg, g)),
                Binary::Mul => (b.mul(g, z), b.mul(g, x)),
                // d(x/z)/dz = -x/z² = -y/z, reusing the forward quotient.
                Binary::Div => {
                    let dx = b.binary(Binary::Div, g, z);
                    let gy = b.mul(g, y);
                    let quotient = b.binary(Binary::Div, gy, z);
                    (dx, b.unary(Unary::Neg, quotient))
                }
            };
            let (sx, sz) = (shape_of(b, 0), shape_of(b, 1));
            vec![Some(b.unbroadcast(dx, sx)), Some(b.unbroadcast(dz, sz))]
        }
        Op::MatMul { trans_a, trans_b } => {
            let (p, q) = (args[0], args[1]);
            let (dp, dq) = match (trans_a, trans_b) {
                // C = P Q:    dP = G Qᵀ,   dQ = Pᵀ G
                (false, false) => (b.matmul(false, true, g, q), b.matmul(true, false, p, g)),
                // C = Pᵀ Q:   dP = Q Gᵀ,   dQ = P G
                (true, false) => (b.matmul(false, true, q, g), b.matmul(false, false, p, g)),
                // C = P Qᵀ:   dP = G Q,    dQ = Gᵀ P
                (false, true) => (b.matmul(false, false, g, q), b.matmul(true, false, g, p)),
                // C = Pᵀ Qᵀ:  dP = Qᵀ Gᵀ,  dQ = Gᵀ Pᵀ
                (true, true) => (b.matmul(true, true, q, g), b.matmul(true, true, g, p)),
            };
            vec![Some(dp), Some(dq)]
        }
        Op::Sum { .. } => {
            let shape = shape_of(b, 0);
            vec![Some(b.declared(Op::Broadcast, &[g], shape))]
        }
        Op::Broadcast => {
            let shape = shape_of(b, 0);
            vec![Some(b.unbroadcast(g, shape))]
        }
        // dA = y ⊙ (g − Σ_cols(g ⊙ y))
        Op::Softmax => {
            let gy = b.mul(g, y);
            let row_sum = b.add(Op::Sum { rows: false, cols: true }, &[gy]);
            let centered = b.binary(Binary::Sub, g, row_sum);
            vec![Some(b.mul(y, centered))]
        }
        // dA = g − softmax(A) ⊙ Σ_cols(g); softmax(A) is usually already in the
        // forward graph (the layer's output), and hash-consing finds it.
        Op::LogSoftmax => {
            let probabilities = b.add(Op::Softmax, &[args[0]]);
            let row_sum = b.add(Op::Sum { rows: false, cols: true }, &[g]);
            let scaled = b.mul(probabilities, row_sum);
            vec![Some(b.binary(Binary::Sub, g, scaled))]
        }
        Op::SliceCols { start } => {
            let shape = shape_of(b, 0);
            vec![Some(b.declared(Op::PadCols { start }, &[g], shape))]
        }
        Op::PadCols { start } => {
            let shape = shape_of(b, 0);
            vec![Some(b.declared(Op::SliceCols { start }, &[g], shape))]
        }
        // Piecewise constant: zero derivative almost everywhere.
        Op::Compare(_) => vec![None, None],
        // y = m ⊙ x / (1 − rate) for the mask m, so dx = m ⊙ g / (1 − rate):
        // the same dropout (same site, step and places) of the adjoint.
        Op::Dropout { rate, site } => vec![Some(b.add(Op::Dropout { rate, site }, &[g, args[1]])), None],
        // The adjoint flows into the branch that was chosen, element by
        // element: select(c, g, 0) and select(c, 0, g). The condition has none.
        Op::Select => {
            let cond = args[0];
            let zero = b.constant(0.0);
            let da = b.add(Op::Select, &[cond, g, zero]);
            let db = b.add(Op::Select, &[cond, zero, g]);
            let (sa, sb) = (shape_of(b, 1), shape_of(b, 2));
            vec![None, Some(b.unbroadcast(da, sa)), Some(b.unbroadcast(db, sb))]
        }
        Op::ConcatCols => {
            let mut offset = 0;
            let mut out = Vec::new();
            for i in 0..args.len() {
                let shape = shape_of(b, i);
                out.push(Some(b.declared(Op::SliceCols { start: offset }, &[g], shape)));
                offset += shape.width().expect("concatenated parts have fixed widths");
            }
            out
        }
    }
}
