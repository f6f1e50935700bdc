//! The built-in functions: one table ([`BUILTINS`]) that names each with its
//! kind and parameters, and their lowering, each spelled with primitive ops:
//! activations (`leaky_relu`, `elu`, `softplus`, `gelu`, `silu`/`swish`,
//! `softsign`, `mish` besides the primitive ones), losses (`mse`, `mae`, `huber`,
//! `cross_entropy`, `binary_cross_entropy`), regularisers (`l1`, `l2`),
//! `where`, `concat` and `dropout`. Only `dropout` has an op of its own (it
//! depends on the step and on each element's place); the rest are spelled
//! with the primitives autodiff, the simplifier and the kernels already know.
//!
//! The checker, the README's table of built-ins (`tests/docs.rs` compares
//! them) and the gradient tests over every activation read the table; the
//! lowering is one exhaustive `match` over [`Builtin`], so a new entry without
//! a lowering does not compile.
//!
//! Where a textbook formula overflows, the stable form is used: `softplus`
//! and `binary_cross_entropy` go through `log(1 + e^-|z|)`, `elu` takes
//! `e^-relu(-z)` (never above 1), and `cross_entropy` of a softmax layer is
//! `log_softmax` of its input.

use super::{Checker, errors};
use crate::diag::Diagnostic;
use crate::ir::program::{LossWeightKind, LossWeights};
use crate::ir::{Binary, Compare, Dim, Hyper, NodeId, Op, Shape, Unary};
use crate::span::Span;
use crate::syntax::ast::{self, Expr};

/// A checked argument and where it was written.
pub(super) type Arg = (NodeId, Span);

/// `sqrt(2 / π)`, in the tanh form of gelu.
const GELU_SCALE: f64 = 0.797_884_560_802_865_4;

/// Every built-in, one variant each; the lowering matches on it exhaustively.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Builtin {
    Exp,
    Log,
    Tanh,
    Sigmoid,
    Relu,
    Abs,
    Identity,
    Softmax,
    LeakyRelu,
    Elu,
    Softplus,
    Gelu,
    Silu,
    Softsign,
    Mish,
    Sum,
    Mean,
    Mse,
    Mae,
    Huber,
    CrossEntropy,
    BinaryCrossEntropy,
    L1,
    L2,
    Where,
    Concat,
    Dropout,
    Dense,
}

/// Where a built-in may be written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Elementwise: a `dense` layer's activation, alone or per neuron, and a
    /// function in expressions.
    Activation,
    /// A function in expressions only.
    Function,
    /// A loss: compares an output with a target and gives a scalar.
    Loss,
    /// `dense`: a layer, only on its own line in a `model` block.
    Layer,
}

/// A parameter's default when it is left out.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Default {
    /// It must be given.
    Required,
    /// A constant number.
    Number(f64),
    /// A word of the language (`bias = true`).
    Word(&'static str),
}

/// One parameter of a built-in. A parameter with a default may be left out
/// or given by name (`leaky_relu(z, alpha = 0.2)`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Param {
    pub name: &'static str,
    pub default: Default,
}

/// One row of the table.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Def {
    pub name: &'static str,
    pub builtin: Builtin,
    pub kind: Kind,
    /// In order; the required ones first.
    pub params: &'static [Param],
    /// Whether any number of further arguments like the last may follow (`concat`).
    pub variadic: bool,
}

const fn req(name: &'static str) -> Param {
    Param { name, default: Default::Required }
}

const fn num(name: &'static str, value: f64) -> Param {
    Param { name, default: Default::Number(value) }
}

const fn word(name: &'static str, value: &'static str) -> Param {
    Param { name, default: Default::Word(value) }
}

const fn def(name: &'static str, builtin: Builtin, kind: Kind, params: &'static [Param]) -> Def {
    Def { name, builtin, kind, params, variadic: false }
}

const Z: &[Param] = &[req("z")];
const AB: &[Param] = &[req("a"), req("b")];

/// Every built-in, in the order diagnostics list them.
pub const BUILTINS: &[Def] = &[
    def("exp", Builtin::Exp, Kind::Function, Z),
    def("log", Builtin::Log, Kind::Function, Z),
    def("tanh", Builtin::Tanh, Kind::Activation, Z),
    def("sigmoid", Builtin::Sigmoid, Kind::Activation, Z),
    def("relu", Builtin::Relu, Kind::Activation, Z),
    def("abs", Builtin::Abs, Kind::Function, Z),
    def("identity", Builtin::Identity, Kind::Activation, Z),
    def("softmax", Builtin::Softmax, Kind::Activation, Z),
    def("leaky_relu", Builtin::LeakyRelu, Kind::Activation, &[req("z"), num("alpha", 0.01)]),
    def("elu", Builtin::Elu, Kind::Activation, &[req("z"), num("alpha", 1.0)]),
    def("softplus", Builtin::Softplus, Kind::Activation, Z),
    def("gelu", Builtin::Gelu, Kind::Activation, Z),
    def("silu", Builtin::Silu, Kind::Activation, Z),
    def("swish", Builtin::Silu, Kind::Activation, Z),
    def("softsign", Builtin::Softsign, Kind::Activation, Z),
    def("mish", Builtin::Mish, Kind::Activation, Z),
    def("sum", Builtin::Sum, Kind::Function, Z),
    def("mean", Builtin::Mean, Kind::Function, Z),
    def("mse", Builtin::Mse, Kind::Loss, AB),
    def("mae", Builtin::Mae, Kind::Loss, AB),
    def("huber", Builtin::Huber, Kind::Loss, &[req("a"), req("b"), num("delta", 1.0)]),
    def("cross_entropy", Builtin::CrossEntropy, Kind::Loss, &[req("p"), req("y"), word("weights", "none")]),
    def("binary_cross_entropy", Builtin::BinaryCrossEntropy, Kind::Loss, &[req("p"), req("y"), num("pos_weight", 1.0)]),
    def("l1", Builtin::L1, Kind::Function, &[req("x")]),
    def("l2", Builtin::L2, Kind::Function, &[req("x")]),
    def("where", Builtin::Where, Kind::Function, &[req("c"), req("a"), req("b")]),
    Def { name: "concat", builtin: Builtin::Concat, kind: Kind::Function, params: &[req("a")], variadic: true },
    def("dropout", Builtin::Dropout, Kind::Function, &[req("z"), req("p")]),
    def(
        "dense",
        Builtin::Dense,
        Kind::Layer,
        &[
            req("x"),
            req("units"),
            Param { name: "activation", default: Default::Word("identity") },
            Param { name: "bias", default: Default::Word("true") },
        ],
    ),
];

/// The built-in called `name`.
pub fn lookup(name: &str) -> Option<&'static Def> {
    BUILTINS.iter().find(|d| d.name == name)
}

/// The names of the built-ins of one kind, in table order.
pub fn names(kind: Kind) -> impl Iterator<Item = &'static str> + Clone {
    BUILTINS.iter().filter(move |d| d.kind == kind).map(|d| d.name)
}

impl Def {
    /// How many arguments it takes: at least, at most.
    pub fn arity(&self) -> (usize, usize) {
        let min = self.params.iter().filter(|p| p.default == Default::Required).count();
        (min, if self.variadic { usize::MAX } else { self.params.len() })
    }

    /// The parameters that may be given by name: those with a default.
    pub fn named(&self) -> Vec<&'static str> {
        self.params.iter().filter(|p| p.default != Default::Required).map(|p| p.name).collect()
    }

    /// As the README writes it: `leaky_relu(z, alpha = 0.01)`, `concat(a, ..)`.
    pub fn signature(&self) -> String {
        let mut params: Vec<String> = self
            .params
            .iter()
            .map(|p| match p.default {
                Default::Required => p.name.to_string(),
                Default::Number(v) => format!("{} = {v}", p.name),
                Default::Word(w) => format!("{} = {w}", p.name),
            })
            .collect();
        if self.variadic {
            params.push("..".into());
        }
        format!("{}({})", self.name, params.join(", "))
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

/// Where each argument of a call of `def` goes, the first `skip` parameters
/// being given already (a layer's value, for an activation): positional
/// ones in order, named ones at their parameter's place. `None`, with a
/// diagnostic, for an unknown name, a parameter given twice, or a
/// positional argument after a named one. The count is checked before.
pub(super) fn places(def: &Def, args: &[ast::Arg], skip: usize, diags: &mut Vec<Diagnostic>) -> Option<Vec<usize>> {
    let mut given: Vec<Option<Span>> = vec![None; def.params.len().max(skip + args.len())];
    let mut places = Vec::with_capacity(args.len());
    let mut named = false;
    for (i, arg) in args.iter().enumerate() {
        let (place, span) = match &arg.name {
            None if named => {
                diags.push(errors::expected(
                    "named arguments after the positional ones",
                    arg.value.span,
                    "a positional argument after a named one",
                ));
                return None;
            }
            None => (skip + i, arg.value.span),
            Some(name) => {
                named = true;
                let known = def.named();
                let Some(place) = def.params.iter().position(|p| p.name == name.name && known.contains(&p.name)) else {
                    let mut diag = errors::unknown_argument(def.name, &name.name, name.span, &known);
                    if matches!(name.name.as_str(), "weights" | "pos_weight") && def.kind == Kind::Loss {
                        diag = diag.with_help(
                            "weights apply to classification losses only: `cross_entropy(p, y, weights = ..)` \
                             and `binary_cross_entropy(p, y, pos_weight = ..)`",
                        );
                    }
                    diags.push(diag);
                    return None;
                };
                (place, name.span)
            }
        };
        if let Some(first) = given[place] {
            diags.push(errors::duplicate("argument", def.params[place].name, span, first));
            return None;
        }
        given[place] = Some(span);
        places.push(place);
    }
    Some(places)
}

/// [`places`] for a built-in (`def`); for a user function `name`, which
/// takes no named arguments, `Some(None)` when none is named. `None` with a
/// diagnostic when the arguments are wrong.
pub(super) fn call_places(
    def: Option<&Def>,
    name: &str,
    args: &[ast::Arg],
    skip: usize,
    diags: &mut Vec<Diagnostic>,
) -> Option<Option<Vec<usize>>> {
    match def {
        Some(def) => places(def, args, skip, diags).map(Some),
        None => match args.iter().find_map(|a| a.name.as_ref()) {
            Some(arg_name) => {
                diags.push(errors::unknown_argument(name, &arg_name.name, arg_name.span, &[]));
                None
            }
            None => Some(None),
        },
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

    /// The checked arguments from parameter `skip` on, in parameter order,
    /// placed by [`places`]; a parameter left out before one given by name
    /// gets its default.
    pub(super) fn in_order(
        &mut self,
        def: &Def,
        skip: usize,
        places: &[usize],
        values: &[Arg],
        span: Span,
    ) -> Vec<Arg> {
        let end = places.iter().map(|p| p + 1).max().unwrap_or(skip);
        let mut slots: Vec<Option<Arg>> = vec![None; end.saturating_sub(skip)];
        for (&place, &value) in places.iter().zip(values) {
            slots[place - skip] = Some(value);
        }
        let mut args = Vec::with_capacity(slots.len());
        for (i, slot) in slots.into_iter().enumerate() {
            let arg = match slot {
                Some(arg) => arg,
                None => self.default_argument(def, skip + i, span),
            };
            args.push(arg);
        }
        args
    }

    /// Argument `i`, or its parameter's default as a constant.
    fn argument(&mut self, def: &Def, args: &[Arg], i: usize, span: Span) -> Arg {
        match args.get(i) {
            Some(&arg) => arg,
            None => self.default_argument(def, i, span),
        }
    }

    fn default_argument(&mut self, def: &Def, i: usize, span: Span) -> Arg {
        match def.params[i].default {
            Default::Number(value) => (self.constant(value, span), span),
            default => {
                unreachable!("`{}` of `{}` has no number to default to: {default:?}", def.params[i].name, def.name)
            }
        }
    }

    /// An activation applied to `x`, with the extra arguments written after
    /// its name (`leaky_relu(0.2)`) or after `x` in a call (`leaky_relu(z, 0.2)`):
    /// a user function's body inlined, or a built-in lowered.
    pub(super) fn activation_fn(&mut self, name: &str, x: Arg, extra: &[Arg], span: Span) -> Option<NodeId> {
        let mut args = vec![x];
        args.extend_from_slice(extra);
        if self.functions.contains_key(name) {
            return self.call_user(name, &args, span);
        }
        let def = lookup(name).expect("checked to be an activation");
        self.builtin(def, &args, span)
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

    /// A built-in applied to arguments of checked count in parameter order
    /// (the ones with defaults may be left off the end).
    pub(super) fn builtin(&mut self, def: &Def, args: &[Arg], span: Span) -> Option<NodeId> {
        let x = args[0];
        let z = x.0;
        match def.builtin {
            Builtin::Identity => Some(z),
            Builtin::Exp => self.un(Unary::Exp, z, span),
            Builtin::Log => self.un(Unary::Log, z, span),
            Builtin::Abs => self.un(Unary::Abs, z, span),
            Builtin::Sigmoid => self.un(Unary::Sigmoid, z, span),
            Builtin::Tanh => self.un(Unary::Tanh, z, span),
            Builtin::Relu => self.un(Unary::Relu, z, span),
            Builtin::Softmax => self.op(Op::Softmax, &[z], span),
            // relu(z) − α·relu(−z)
            Builtin::LeakyRelu => {
                let alpha = self.argument(def, args, 1, span);
                let positive = self.un(Unary::Relu, z, span)?;
                let minus = self.un(Unary::Neg, z, span)?;
                let negative = self.un(Unary::Relu, minus, span)?;
                let scaled = self.binary(Binary::Mul, alpha, (negative, x.1), span)?;
                self.bin(Binary::Sub, positive, scaled, span)
            }
            // relu(z) + α·(e^−relu(−z) − 1): z for z > 0, α(e^z − 1) below,
            // and the exponential never overflows.
            Builtin::Elu => {
                let alpha = self.argument(def, args, 1, span);
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
            Builtin::Softplus => {
                let positive = self.un(Unary::Relu, z, span)?;
                let tail = self.log1p_exp_neg_abs(z, span)?;
                self.bin(Binary::Add, positive, tail, span)
            }
            // z/2 · (1 + tanh(√(2/π) · (z + 0.044715 z³)))
            Builtin::Gelu => {
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
            Builtin::Silu => {
                let gate = self.un(Unary::Sigmoid, z, span)?;
                self.bin(Binary::Mul, z, gate, span)
            }
            // z / (1 + |z|)
            Builtin::Softsign => {
                let abs = self.un(Unary::Abs, z, span)?;
                let one = self.constant(1.0, span);
                let denominator = self.bin(Binary::Add, one, abs, span)?;
                self.bin(Binary::Div, z, denominator, span)
            }
            // z · tanh(softplus(z)), with softplus's stable form
            Builtin::Mish => {
                let positive = self.un(Unary::Relu, z, span)?;
                let tail = self.log1p_exp_neg_abs(z, span)?;
                let softplus = self.bin(Binary::Add, positive, tail, span)?;
                let gate = self.un(Unary::Tanh, softplus, span)?;
                self.bin(Binary::Mul, z, gate, span)
            }
            Builtin::Sum => self.op(Op::Sum { rows: true, cols: true }, &[z], span),
            Builtin::Mean => self.mean(z, span),
            Builtin::Mse | Builtin::Mae => {
                let (a, b) = (args[0], args[1]);
                self.same_shape(&format!("`{}`", def.name), a, b)?;
                let diff = self.bin(Binary::Sub, a.0, b.0, span)?;
                let error = if def.builtin == Builtin::Mse {
                    self.un(Unary::Pow(2.0), diff, span)?
                } else {
                    self.un(Unary::Abs, diff, span)?
                };
                self.mean(error, span)
            }
            Builtin::Huber => self.huber(def, args, span),
            // A weight argument is taken by `Checker::call` before the
            // arguments are checked as values (it is a list or a word).
            Builtin::CrossEntropy => self.cross_entropy(args[0], args[1], None, span),
            Builtin::BinaryCrossEntropy => self.binary_cross_entropy(args[0], args[1], None, span),
            Builtin::L1 => {
                let abs = self.un(Unary::Abs, z, span)?;
                self.op(Op::Sum { rows: true, cols: true }, &[abs], span)
            }
            Builtin::L2 => {
                let square = self.un(Unary::Pow(2.0), z, span)?;
                self.op(Op::Sum { rows: true, cols: true }, &[square], span)
            }
            Builtin::Where => self.select(args[0], args[1], args[2], span),
            Builtin::Concat => self.concat(args, span),
            // Both are taken by `Checker::call` before their arguments are
            // checked as values: a dropout rate must be a constant as
            // written, and a layer is a line of its own.
            Builtin::Dropout | Builtin::Dense => unreachable!("`{}` is checked before its arguments", def.name),
        }
    }

    /// Mean over elements of ½a² + δ·(|d| − a), with d = p − y and
    /// a = min(|d|, δ) = |d| − relu(|d| − δ): quadratic near 0, linear beyond δ.
    fn huber(&mut self, def: &Def, args: &[Arg], span: Span) -> Option<NodeId> {
        let (p, y) = (args[0], args[1]);
        self.same_shape("`huber`", p, y)?;
        let delta = self.argument(def, args, 2, span);
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
    pub(super) fn cross_entropy(&mut self, p: Arg, y: Arg, weights: Option<&Weights>, span: Span) -> Option<NodeId> {
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
        let Some(weights) = weights else {
            let product = self.bin(Binary::Mul, y.0, log_p, span)?;
            let total = self.op(Op::Sum { rows: true, cols: true }, &[product], span)?;
            let rows = self.rows_count(sp.rows, span);
            let mean = self.bin(Binary::Div, total, rows, span)?;
            return self.un(Unary::Neg, mean, span);
        };
        // PyTorch's CrossEntropyLoss(weight=w): −Σ w[y_i]·log p_i[y_i] / Σ w[y_i],
        // a weighted mean over the batch; y's rows pick their class's weight.
        let Dim::Fixed(classes) = sp.cols else { unreachable!("a softmax layer has a fixed width") };
        let row = self.weight_row(LossWeightKind::Class, weights, classes, "class")?;
        let picked = self.bin(Binary::Mul, y.0, row, span)?;
        let product = self.bin(Binary::Mul, picked, log_p, span)?;
        let total = self.op(Op::Sum { rows: true, cols: true }, &[product], span)?;
        let weight = self.op(Op::Sum { rows: true, cols: true }, &[picked], span)?;
        let mean = self.bin(Binary::Div, total, weight, span)?;
        self.un(Unary::Neg, mean, span)
    }

    /// The weights as a constant row `[1, n]` (a scalar for one `pos_weight`
    /// number), checked: `n` of them, each finite and above 0. Recorded in
    /// the program for the run's echo and the weights file.
    fn weight_row(&mut self, kind: LossWeightKind, weights: &Weights, n: u32, what: &str) -> Option<NodeId> {
        let argument = kind.argument();
        let values: Vec<(f64, Span)> = match weights {
            Weights::Balanced(span) => {
                let supplied = self.class_weights.clone().filter(|w| w.len() == n as usize);
                let resolved = supplied.is_some();
                let values = supplied.unwrap_or_else(|| vec![1.0; n as usize]);
                self.record_weights(kind, true, &values, resolved, *span);
                values.into_iter().map(|v| (v, *span)).collect()
            }
            Weights::Values(values, span) => {
                if values.len() != n as usize && !(kind == LossWeightKind::Positive && values.len() == 1) {
                    self.diags.push(errors::wrong_weight_count(argument, values.len(), n as usize, what, *span));
                    return None;
                }
                for &(value, at) in values {
                    if !(value.is_finite() && value > 0.0) {
                        self.diags.push(errors::bad_value(
                            format!("`{argument}` must be positive, got {value}"),
                            at,
                            "a weight scales a class's share of the loss: use a number above 0",
                        ));
                        return None;
                    }
                }
                let plain: Vec<f64> = values.iter().map(|v| v.0).collect();
                self.record_weights(kind, false, &plain, true, *span);
                values.clone()
            }
        };
        let nodes: Vec<NodeId> = values.iter().map(|&(v, at)| self.constant(v, at)).collect();
        match nodes.as_slice() {
            [one] => Some(*one),
            _ => self.op(Op::ConcatCols, &nodes, weights.span()),
        }
    }

    fn record_weights(&mut self, kind: LossWeightKind, balanced: bool, values: &[f64], resolved: bool, span: Span) {
        if self.loss_weights.is_none() {
            let values = values.to_vec();
            self.loss_weights = Some(LossWeights { kind, balanced, values, resolved, span });
        }
    }

    /// Mean of −y·log p − (1 − y)·log(1 − p) for `p = sigmoid(z)`, computed
    /// from `z` as relu(z) − z·y + log(1 + e^−|z|), which never overflows.
    pub(super) fn binary_cross_entropy(
        &mut self,
        p: Arg,
        y: Arg,
        pos_weight: Option<&Weights>,
        span: Span,
    ) -> Option<NodeId> {
        self.same_shape("`binary_cross_entropy`", p, y)?;
        self.note_label(p.0, y.0, true);
        let node = self.graph.node(p.0);
        if node.op != Op::Unary(Unary::Sigmoid) {
            self.diags.push(errors::not_a_sigmoid(p.1));
            return None;
        }
        let z = node.args[0];
        let positive = self.un(Unary::Relu, z, span)?;
        let tail = self.log1p_exp_neg_abs(z, span)?;
        let Some(pos_weight) = pos_weight else {
            let product = self.bin(Binary::Mul, z, y.0, span)?;
            let linear = self.bin(Binary::Sub, positive, product, span)?;
            let total = self.bin(Binary::Add, linear, tail, span)?;
            return self.mean(total, span);
        };
        // PyTorch's BCEWithLogitsLoss(pos_weight=w): the mean of
        // −(w·y·log σ(z) + (1 − y)·log(1 − σ(z))) = softplus(z)·(1 + (w − 1)·y) − w·y·z,
        // with softplus(z) = relu(z) + log(1 + e^−|z|) as above.
        let Dim::Fixed(labels) = self.graph.shape(p.0).cols else { unreachable!("a layer has a fixed width") };
        let w = self.weight_row(LossWeightKind::Positive, pos_weight, labels, "label")?;
        let softplus = self.bin(Binary::Add, positive, tail, span)?;
        let weighted_y = self.bin(Binary::Mul, w, y.0, span)?;
        let one = self.constant(1.0, span);
        let shifted = self.bin(Binary::Add, one, weighted_y, span)?;
        let factor = self.bin(Binary::Sub, shifted, y.0, span)?;
        let scaled = self.bin(Binary::Mul, softplus, factor, span)?;
        let linear = self.bin(Binary::Mul, weighted_y, z, span)?;
        let total = self.bin(Binary::Sub, scaled, linear, span)?;
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
    pub(super) fn regularise_all(&mut self, def: &Def, arg_span: Span, span: Span) -> Option<NodeId> {
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
            let term = self.builtin(def, &[(w, arg_span)], span)?;
            total = Some(match total {
                Some(sum) => self.bin(Binary::Add, sum, term, span)?,
                None => term,
            });
        }
        total
    }
}

/// A loss's weight argument as written: `balanced`, or numbers (a list, or
/// one number for `pos_weight`), each with its place.
#[derive(Clone, Debug)]
pub(super) enum Weights {
    Balanced(Span),
    Values(Vec<(f64, Span)>, Span),
}

impl Weights {
    fn span(&self) -> Span {
        match self {
            Weights::Balanced(span) | Weights::Values(_, span) => *span,
        }
    }

    /// Read the argument: `balanced` (class weights only), a list of
    /// constant numbers, or (for `pos_weight`) one number.
    pub(super) fn read(kind: LossWeightKind, expr: &Expr, diags: &mut Vec<Diagnostic>) -> Option<Weights> {
        let expected = match kind {
            LossWeightKind::Class => "one weight per class, `[1, 2.5, 1]`, or `balanced`",
            LossWeightKind::Positive => "a number, or one per label: `[2, 0.5]`",
        };
        let number = |e: &Expr, diags: &mut Vec<Diagnostic>| match super::const_value(e) {
            Some(v) => Some((v, e.span)),
            None => {
                diags.push(errors::expected("a number", e.span, "not a constant number"));
                None
            }
        };
        match &expr.kind {
            ast::ExprKind::Name(word) if word == "balanced" && kind == LossWeightKind::Class => {
                Some(Weights::Balanced(expr.span))
            }
            ast::ExprKind::List(items) if !items.is_empty() => {
                let values: Option<Vec<(f64, Span)>> = items.iter().map(|e| number(e, diags)).collect();
                Some(Weights::Values(values?, expr.span))
            }
            _ if kind == LossWeightKind::Positive && super::const_value(expr).is_some() => {
                Some(Weights::Values(vec![number(expr, diags)?], expr.span))
            }
            _ => {
                diags.push(errors::expected(expected, expr.span, &format!("not a valid `{}`", kind.argument())));
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_required_parameters_come_first() {
        for (i, def) in BUILTINS.iter().enumerate() {
            assert!(BUILTINS[..i].iter().all(|d| d.name != def.name), "`{}` twice", def.name);
            let first_optional = def.params.iter().position(|p| p.default != Default::Required);
            let required_after =
                first_optional.is_some_and(|i| def.params[i..].iter().any(|p| p.default == Default::Required));
            assert!(!required_after, "`{}` has a required parameter after an optional one", def.name);
        }
    }
}
