//! The built-in functions, each spelled with primitive ops: activations
//! (`leaky_relu`, `elu`, `softplus`, `gelu`, `silu`/`swish`, `softsign`
//! besides the primitive ones), losses (`mse`, `mae`, `huber`,
//! `cross_entropy`, `binary_cross_entropy`), regularisers (`l1`, `l2`),
//! `where`, `concat` and `dropout`. Only `dropout` has an op of its own (it
//! depends on the step and on each element's place); the rest are spelled
//! with the primitives autodiff, the simplifier and the kernels already know.
//!
//! Where a textbook formula overflows, the stable form is used: `softplus`
//! and `binary_cross_entropy` go through `log(1 + e^-|z|)`, `elu` takes
//! `e^-relu(-z)` (never above 1), and `cross_entropy` of a softmax layer is
//! `log_softmax` of its input.

use super::{Checker, errors};
use crate::ir::{Binary, Compare, Dim, Hyper, NodeId, Op, Shape, Unary};
use crate::span::Span;
use crate::syntax::ast::Expr;

/// A checked argument and where it was written.
pub(super) type Arg = (NodeId, Span);

/// `sqrt(2 / π)`, in the tanh form of gelu.
const GELU_SCALE: f64 = 0.797_884_560_802_865_4;

/// Default slope of `leaky_relu` for negative inputs.
pub const LEAKY_RELU_ALPHA: f64 = 0.01;
/// Default scale of `elu` for negative inputs.
pub const ELU_ALPHA: f64 = 1.0;
/// Default threshold of `huber`.
pub const HUBER_DELTA: f64 = 1.0;

/// How many arguments a built-in takes: at least, at most.
pub fn arity(name: &str) -> (usize, usize) {
    match name {
        "leaky_relu" | "elu" => (1, 2),
        "mse" | "mae" | "cross_entropy" | "binary_cross_entropy" | "dropout" => (2, 2),
        "huber" => (2, 3),
        "where" => (3, 3),
        "concat" => (1, usize::MAX),
        _ => (1, 1),
    }
}

/// "1 argument", "2 or 3 arguments", "at least 1 argument".
pub fn arity_text(min: usize, max: usize) -> String {
    let plural = |n: usize| if n == 1 { "argument" } else { "arguments" };
    if max == usize::MAX {
        format!("at least {min} {}", plural(min))
    } else if min == max {
        format!("{min} {}", plural(min))
    } else if max == min + 1 {
        format!("{min} or {max} arguments")
    } else {
        format!("{min} to {max} arguments")
    }
}

impl Checker {
    fn op(&mut self, op: Op, args: &[NodeId], span: Span) -> Option<NodeId> {
        self.node(op, args, span)
    }

    fn un(&mut self, u: Unary, x: NodeId, span: Span) -> Option<NodeId> {
        self.node(Op::Unary(u), &[x], span)
    }

    fn bin(&mut self, b: Binary, x: NodeId, y: NodeId, span: Span) -> Option<NodeId> {
        self.node(Op::Binary(b), &[x, y], span)
    }

    /// `c · x` for a constant `c`.
    fn times(&mut self, c: f64, x: NodeId, span: Span) -> Option<NodeId> {
        let c = self.constant(c, span);
        self.bin(Binary::Mul, c, x, span)
    }

    /// An activation applied to `x`, with the extra arguments written after
    /// its name (`leaky_relu(0.2)`) or after `x` in a call (`leaky_relu(z, 0.2)`).
    pub(super) fn activation_fn(&mut self, name: &str, x: Arg, extra: &[Arg], span: Span) -> Option<NodeId> {
        let z = x.0;
        if self.functions.contains_key(name) {
            let mut args = vec![x];
            args.extend_from_slice(extra);
            return self.call_user(name, &args, span);
        }
        match name {
            "identity" => Some(z),
            "sigmoid" => self.un(Unary::Sigmoid, z, span),
            "tanh" => self.un(Unary::Tanh, z, span),
            "relu" => self.un(Unary::Relu, z, span),
            "softmax" => self.op(Op::Softmax, &[z], span),
            // relu(z) − α·relu(−z)
            "leaky_relu" => {
                let alpha = self.argument_or(extra.first(), LEAKY_RELU_ALPHA, span);
                let positive = self.un(Unary::Relu, z, span)?;
                let minus = self.un(Unary::Neg, z, span)?;
                let negative = self.un(Unary::Relu, minus, span)?;
                let scaled = self.binary(Binary::Mul, alpha, (negative, x.1), span)?;
                self.bin(Binary::Sub, positive, scaled, span)
            }
            // relu(z) + α·(e^−relu(−z) − 1): z for z > 0, α(e^z − 1) below,
            // and the exponential never overflows.
            "elu" => {
                let alpha = self.argument_or(extra.first(), ELU_ALPHA, span);
                let positive = self.un(Unary::Relu, z, span)?;
                let minus = self.un(Unary::Neg, z, span)?;
                let negative = self.un(Unary::Relu, minus, span)?;
                let below = self.un(Unary::Neg, negative, span)?;
                let exp = self.un(Unary::Exp, below, span)?;
                let one = self.constant(1.0, span);
                let shifted = self.bin(Binary::Sub, exp, one, span)?;
                let scaled = self.binary(Binary::Mul, alpha, (shifted, x.1), span)?;
                self.bin(Binary::Add, positive, scaled, span)
            }
            // relu(z) + log(1 + e^−|z|)
            "softplus" => {
                let positive = self.un(Unary::Relu, z, span)?;
                let tail = self.log1p_exp_neg_abs(z, span)?;
                self.bin(Binary::Add, positive, tail, span)
            }
            // z/2 · (1 + tanh(√(2/π) · (z + 0.044715 z³)))
            "gelu" => {
                let cube = self.un(Unary::Pow(3.0), z, span)?;
                let cube = self.times(0.044715, cube, span)?;
                let inner = self.bin(Binary::Add, z, cube, span)?;
                let inner = self.times(GELU_SCALE, inner, span)?;
                let tanh = self.un(Unary::Tanh, inner, span)?;
                let one = self.constant(1.0, span);
                let gate = self.bin(Binary::Add, one, tanh, span)?;
                let half = self.times(0.5, z, span)?;
                self.bin(Binary::Mul, half, gate, span)
            }
            // z · sigmoid(z)
            "silu" | "swish" => {
                let gate = self.un(Unary::Sigmoid, z, span)?;
                self.bin(Binary::Mul, z, gate, span)
            }
            // z / (1 + |z|)
            "softsign" => {
                let abs = self.un(Unary::Abs, z, span)?;
                let one = self.constant(1.0, span);
                let denominator = self.bin(Binary::Add, one, abs, span)?;
                self.bin(Binary::Div, z, denominator, span)
            }
            _ => unreachable!("`{name}` is checked to be an activation"),
        }
    }

    /// The argument if given, else a constant.
    fn argument_or(&mut self, arg: Option<&Arg>, default: f64, span: Span) -> Arg {
        match arg {
            Some(&arg) => arg,
            None => (self.constant(default, span), span),
        }
    }

    /// `log(1 + e^−|z|)`: at most log 2, never overflowing.
    fn log1p_exp_neg_abs(&mut self, z: NodeId, span: Span) -> Option<NodeId> {
        let abs = self.un(Unary::Abs, z, span)?;
        let minus = self.un(Unary::Neg, abs, span)?;
        let exp = self.un(Unary::Exp, minus, span)?;
        let one = self.constant(1.0, span);
        let sum = self.bin(Binary::Add, one, exp, span)?;
        self.un(Unary::Log, sum, span)
    }

    /// The built-ins that are not activations, with checked arity.
    pub(super) fn builtin(&mut self, name: &str, args: &[Arg], span: Span) -> Option<NodeId> {
        let x = args[0].0;
        match name {
            "exp" => self.un(Unary::Exp, x, span),
            "log" => self.un(Unary::Log, x, span),
            "abs" => self.un(Unary::Abs, x, span),
            "sum" => self.op(Op::Sum { rows: true, cols: true }, &[x], span),
            "mean" => self.mean(x, span),
            "mse" | "mae" => {
                let (a, b) = (args[0], args[1]);
                self.same_shape(&format!("`{name}`"), a, b)?;
                let diff = self.bin(Binary::Sub, a.0, b.0, span)?;
                let error = if name == "mse" {
                    self.un(Unary::Pow(2.0), diff, span)?
                } else {
                    self.un(Unary::Abs, diff, span)?
                };
                self.mean(error, span)
            }
            "huber" => self.huber(args, span),
            "cross_entropy" => self.cross_entropy(args[0], args[1], span),
            "binary_cross_entropy" => self.binary_cross_entropy(args[0], args[1], span),
            "l1" => {
                let abs = self.un(Unary::Abs, x, span)?;
                self.op(Op::Sum { rows: true, cols: true }, &[abs], span)
            }
            "l2" => {
                let square = self.un(Unary::Pow(2.0), x, span)?;
                self.op(Op::Sum { rows: true, cols: true }, &[square], span)
            }
            "where" => self.select(args[0], args[1], args[2], span),
            "concat" => self.concat(args, span),
            _ => self.activation_fn(name, args[0], &args[1..], span),
        }
    }

    /// Mean over elements of ½a² + δ·(|d| − a), with d = p − y and
    /// a = min(|d|, δ) = |d| − relu(|d| − δ): quadratic near 0, linear beyond δ.
    fn huber(&mut self, args: &[Arg], span: Span) -> Option<NodeId> {
        let (p, y) = (args[0], args[1]);
        self.same_shape("`huber`", p, y)?;
        let delta = self.argument_or(args.get(2), HUBER_DELTA, span);
        if let Op::Const(c) = self.graph.node(delta.0).op
            && (c.is_nan() || c <= 0.0)
        {
            self.diags.push(errors::bad_value(
                format!("the `huber` threshold must be positive, got {c}"),
                delta.1,
                "δ is where the loss turns from quadratic to linear, e.g. 1",
            ));
            return None;
        }
        let diff = self.bin(Binary::Sub, p.0, y.0, span)?;
        let abs = self.un(Unary::Abs, diff, span)?;
        let beyond = self.binary(Binary::Sub, (abs, span), delta, span)?;
        let over = self.un(Unary::Relu, beyond, span)?;
        let clipped = self.bin(Binary::Sub, abs, over, span)?;
        let square = self.un(Unary::Pow(2.0), clipped, span)?;
        let quadratic = self.times(0.5, square, span)?;
        let linear = self.binary(Binary::Mul, delta, (over, span), span)?;
        let total = self.bin(Binary::Add, quadratic, linear, span)?;
        self.mean(total, span)
    }

    /// Remember what the first classification loss outside a user function
    /// compares the output with, for the metrics.
    fn note_label(&mut self, output: NodeId, label: NodeId, binary: bool) {
        if self.label.is_none() && self.scopes.is_empty() {
            self.label = Some((output, label, binary));
        }
    }

    /// `-Σ y · log p / rows` of a softmax layer `p`, as `log_softmax` of its
    /// input. `y` is one-hot (the shape of `p`), or one column of class
    /// indices `0..K-1`, compared with each column's index.
    fn cross_entropy(&mut self, p: Arg, y: Arg, span: Span) -> Option<NodeId> {
        self.note_label(p.0, y.0, false);
        let (sp, sy) = (self.graph.shape(p.0), self.graph.shape(y.0));
        let y = match (sp.cols, sy.cols) {
            (Dim::Fixed(classes), Dim::Fixed(1)) if classes > 1 && sp.rows == sy.rows => {
                // A target column read directly: its values are checked
                // against the classes when the CSV is read.
                if let Op::Target(index) = self.graph.node(y.0).op
                    && let Some(binding) = self.data.iter_mut().find(|b| b.is_target && b.index == index)
                {
                    binding.class_indices = Some(binding.class_indices.map_or(classes, |k| k.min(classes)));
                }
                let indices: Vec<NodeId> = (0..classes).map(|k| self.constant(k as f64, y.1)).collect();
                let row = self.op(Op::ConcatCols, &indices, y.1)?;
                (self.op(Op::Compare(Compare::Eq), &[y.0, row], y.1)?, y.1)
            }
            _ => {
                self.same_shape("`cross_entropy`", p, y)?;
                y
            }
        };
        let node = self.graph.node(p.0);
        if node.op != Op::Softmax {
            self.diags.push(errors::not_a_distribution(p.1));
            return None;
        }
        let logits = node.args[0];
        let log_p = self.op(Op::LogSoftmax, &[logits], span)?;
        let product = self.bin(Binary::Mul, y.0, log_p, span)?;
        let total = self.op(Op::Sum { rows: true, cols: true }, &[product], span)?;
        let rows = self.rows_count(sp.rows, span);
        let mean = self.bin(Binary::Div, total, rows, span)?;
        self.un(Unary::Neg, mean, span)
    }

    /// Mean of −y·log p − (1 − y)·log(1 − p) for `p = sigmoid(z)`, computed
    /// from `z` as relu(z) − z·y + log(1 + e^−|z|), which never overflows.
    fn binary_cross_entropy(&mut self, p: Arg, y: Arg, span: Span) -> Option<NodeId> {
        self.same_shape("`binary_cross_entropy`", p, y)?;
        self.note_label(p.0, y.0, true);
        let node = self.graph.node(p.0);
        if node.op != Op::Unary(Unary::Sigmoid) {
            self.diags.push(errors::not_a_sigmoid(p.1));
            return None;
        }
        let z = node.args[0];
        let positive = self.un(Unary::Relu, z, span)?;
        let product = self.bin(Binary::Mul, z, y.0, span)?;
        let linear = self.bin(Binary::Sub, positive, product, span)?;
        let tail = self.log1p_exp_neg_abs(z, span)?;
        let total = self.bin(Binary::Add, linear, tail, span)?;
        self.mean(total, span)
    }

    /// `where(c, a, b)` and `if c then a else b`: `a` where `c` is not 0.
    pub(super) fn select(&mut self, cond: Arg, a: Arg, b: Arg, span: Span) -> Option<NodeId> {
        let (sc, sa, sb) = (self.graph.shape(cond.0), self.graph.shape(a.0), self.graph.shape(b.0));
        let help = "the condition and both branches need the same shape, or 1 where they differ";
        let Some(first) = Shape::broadcast(sc, sa) else {
            self.diags.push(errors::shape_mismatch("a conditional", (cond.1, sc), (a.1, sa)).with_help(help));
            return None;
        };
        if Shape::broadcast(first, sb).is_none() {
            self.diags.push(errors::shape_mismatch("a conditional", (a.1, sa), (b.1, sb)).with_help(help));
            return None;
        }
        self.op(Op::Select, &[cond.0, a.0, b.0], span)
    }

    /// `concat(a, b, ..)`: values with the same rows, side by side.
    fn concat(&mut self, args: &[Arg], span: Span) -> Option<NodeId> {
        let first = args[0];
        let rows = self.graph.shape(first.0).rows;
        for &arg in args {
            let shape = self.graph.shape(arg.0);
            if shape.rows != rows {
                let first_shape = self.graph.shape(first.0);
                self.diags.push(
                    errors::shape_mismatch("`concat`", (first.1, first_shape), (arg.1, shape))
                        .with_help("`concat` puts values with the same rows side by side: [B,2] and [B,3] give [B,5]"),
                );
                return None;
            }
        }
        let nodes: Vec<NodeId> = args.iter().map(|a| a.0).collect();
        self.op(Op::ConcatCols, &nodes, span)
    }

    /// `dropout(x, rate)`: in training, each element of `x` zeroed with
    /// probability `rate` (a constant in [0, 1)) and the others scaled by
    /// `1/(1 − rate)`, by a hash of the step and the element's place; the
    /// evaluation graph drops it (`opt::inference`).
    pub(super) fn dropout(&mut self, x: &Expr, rate: &Expr, span: Span) -> Option<NodeId> {
        let value = self.expr(x);
        let Some(p) = super::const_value(rate) else {
            self.diags.push(errors::expected("a constant dropout rate", rate.span, "not a constant number"));
            return None;
        };
        if !(0.0..1.0).contains(&p) {
            self.diags.push(errors::bad_value(
                format!("the dropout rate must be at least 0 and below 1, got {p}"),
                rate.span,
                "the rate is the probability of dropping each value, e.g. 0.5",
            ));
            return None;
        }
        let value = value?;
        if p == 0.0 {
            return Some(value);
        }
        let site = self.dropout_sites;
        self.dropout_sites += 1;
        let step = self.graph.add(Op::Hyper(Hyper::Step), &[], self.origin(span)).expect("a scalar");
        self.op(Op::Dropout { rate: p, site }, &[value, step], span)
    }

    /// `l1(weights)`, `l2(weights)`: the sum over every `dense` layer's
    /// weight matrix defined so far (not the biases, not `param`s).
    pub(super) fn regularise_all(&mut self, name: &str, arg_span: Span, span: Span) -> Option<NodeId> {
        let weights: Vec<NodeId> = self
            .layers
            .iter()
            .filter_map(|layer| self.param_nodes.get(&format!("{}.w", layer.name)).copied())
            .collect();
        if weights.is_empty() {
            self.diags.push(errors::expected(
                "`weights` to name the weight matrices of `dense` layers",
                arg_span,
                "no `dense` layer is defined before this",
            ));
            return None;
        }
        let mut total = None;
        for w in weights {
            let term = self.builtin(name, &[(w, arg_span)], span)?;
            total = Some(match total {
                Some(sum) => self.bin(Binary::Add, sum, term, span)?,
                None => term,
            });
        }
        total
    }
}
