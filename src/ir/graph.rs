//! The graph IR's data structures: [`Graph`], [`Node`], [`Op`], [`Shape`].
//!
//! Nodes live in one vector in topological order (an argument always has a
//! smaller id than its user), so every walk is a plain loop. The builder
//! hash-conses: asking for a node that already exists returns the existing id,
//! which makes common-subexpression elimination a property of construction.

use crate::span::Span;
use std::collections::HashMap;
use std::fmt;

/// Index of a node in its graph; prints as `%7`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct NodeId(pub u32);

impl NodeId {
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "%{}", self.0)
    }
}

/// One dimension: the batch (rows of data, known only at run time) or a size.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Dim {
    Batch,
    Fixed(u32),
}

impl Dim {
    pub fn is_one(self) -> bool {
        self == Dim::Fixed(1)
    }

    /// The size, given the batch size.
    pub fn resolve(self, batch: usize) -> usize {
        match self {
            Dim::Batch => batch,
            Dim::Fixed(n) => n as usize,
        }
    }
}

impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dim::Batch => f.write_str("B"),
            Dim::Fixed(n) => write!(f, "{n}"),
        }
    }
}

/// Every value is a matrix `[rows, cols]`: a batch of rows `[B,8]`, a weight
/// `[4,8]`, a bias row `[1,8]`, a scalar `[1,1]`. One rank keeps broadcasting,
/// reductions and code generation uniform; size-1 dimensions broadcast.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Shape {
    pub rows: Dim,
    pub cols: Dim,
}

impl Shape {
    pub const SCALAR: Shape = Shape { rows: Dim::Fixed(1), cols: Dim::Fixed(1) };

    pub fn new(rows: Dim, cols: Dim) -> Shape {
        Shape { rows, cols }
    }

    pub fn fixed(rows: u32, cols: u32) -> Shape {
        Shape { rows: Dim::Fixed(rows), cols: Dim::Fixed(cols) }
    }

    pub fn batch(cols: u32) -> Shape {
        Shape { rows: Dim::Batch, cols: Dim::Fixed(cols) }
    }

    pub fn is_scalar(self) -> bool {
        self == Shape::SCALAR
    }

    /// Number of elements for a given batch size.
    pub fn len(self, batch: usize) -> usize {
        self.rows.resolve(batch) * self.cols.resolve(batch)
    }

    /// The width, when it is a fixed number.
    pub fn width(self) -> Option<u32> {
        match self.cols {
            Dim::Fixed(n) => Some(n),
            Dim::Batch => None,
        }
    }

    /// Numpy-style broadcast of two shapes, `None` if they do not fit.
    pub fn broadcast(a: Shape, b: Shape) -> Option<Shape> {
        fn dim(a: Dim, b: Dim) -> Option<Dim> {
            if a == b || b.is_one() {
                Some(a)
            } else if a.is_one() {
                Some(b)
            } else {
                None
            }
        }
        Some(Shape { rows: dim(a.rows, b.rows)?, cols: dim(a.cols, b.cols)? })
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{},{}]", self.rows, self.cols)
    }
}

/// Run-time scalars: the same for every element, and possibly different at
/// every step. The kernel reads the base learning rate from its arguments,
/// computes the step number itself, and evaluates the others once per batch
/// (in f64, by [`crate::ir::program::HyperContext::value`]).
#[derive(Clone, Copy, PartialEq, Debug)]
pub enum Hyper {
    /// The base learning rate: the file's `lr`, or `--lr`.
    LearningRate,
    /// `t`, the 1-based number of the current optimizer step, counted over
    /// the whole training (it continues across epochs and resumed runs).
    Step,
    /// The learning-rate schedule's factor at step `t`: the rate used is
    /// `lr · schedule`.
    Schedule,
    /// `1 − β^t`: Adam's bias correction for the decay rate `β`.
    BiasCorrection(f64),
}

impl Hyper {
    pub fn name(self) -> String {
        match self {
            Hyper::LearningRate => "lr".into(),
            Hyper::Step => "step".into(),
            Hyper::Schedule => "schedule".into(),
            Hyper::BiasCorrection(beta) => format!("bias_correction[{beta}]"),
        }
    }

    /// A hashable key: a tag and the payload's bits.
    fn key(self) -> (u64, u64) {
        match self {
            Hyper::LearningRate => (0, 0),
            Hyper::Step => (1, 0),
            Hyper::Schedule => (2, 0),
            Hyper::BiasCorrection(beta) => (3, canonical_bits(beta)),
        }
    }
}

/// Elementwise functions of one argument.
#[derive(Clone, Copy, PartialEq, Debug)]
pub enum Unary {
    Neg,
    Exp,
    Log,
    Tanh,
    Sigmoid,
    Relu,
    Abs,
    /// Heaviside step `x > 0 ? 1 : 0`: the derivative of relu.
    Step,
    /// `sign(x)`: the derivative of abs (0 at 0).
    Sign,
    /// `x ^ c` for a constant exponent.
    Pow(f64),
}

impl Unary {
    /// Every unary op but `pow` (which carries its exponent).
    pub const PLAIN: [Unary; 9] = [
        Unary::Neg,
        Unary::Exp,
        Unary::Log,
        Unary::Tanh,
        Unary::Sigmoid,
        Unary::Relu,
        Unary::Abs,
        Unary::Step,
        Unary::Sign,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Unary::Neg => "neg",
            Unary::Exp => "exp",
            Unary::Log => "log",
            Unary::Tanh => "tanh",
            Unary::Sigmoid => "sigmoid",
            Unary::Relu => "relu",
            Unary::Abs => "abs",
            Unary::Step => "step",
            Unary::Sign => "sign",
            Unary::Pow(_) => "pow",
        }
    }

    /// Exact f64 semantics: the reference every backend is checked against.
    pub fn eval(self, x: f64) -> f64 {
        match self {
            Unary::Neg => -x,
            Unary::Exp => x.exp(),
            Unary::Log => x.ln(),
            Unary::Tanh => x.tanh(),
            Unary::Sigmoid => 1.0 / (1.0 + (-x).exp()),
            Unary::Relu => x.max(0.0),
            Unary::Abs => x.abs(),
            Unary::Step => f64::from(x > 0.0),
            Unary::Sign => {
                if x > 0.0 {
                    1.0
                } else if x < 0.0 {
                    -1.0
                } else {
                    0.0
                }
            }
            Unary::Pow(c) => pow(x, c),
        }
    }
}

/// `c` as a whole exponent, when it is one that fits an `i32`: then `x^c`
/// is repeated multiplication (exact for negative `x` too) in the
/// interpreter ([`pow`]) and in the kernels (`kernel::lower` makes it a
/// `UnaryOp::Powi`), one rule for both.
pub fn whole_exponent(c: f64) -> Option<i32> {
    (c.fract() == 0.0 && c.abs() <= i32::MAX as f64).then_some(c as i32)
}

/// `x^c`: whole exponents by multiplication ([`whole_exponent`]), as the kernel does.
pub fn pow(x: f64, c: f64) -> f64 {
    match whole_exponent(c) {
        Some(n) => x.powi(n),
        None => x.powf(c),
    }
}

/// Elementwise functions of two arguments, with broadcasting.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Binary {
    Add,
    Sub,
    Mul,
    Div,
}

impl Binary {
    pub const ALL: [Binary; 4] = [Binary::Add, Binary::Sub, Binary::Mul, Binary::Div];

    pub fn name(self) -> &'static str {
        match self {
            Binary::Add => "add",
            Binary::Sub => "sub",
            Binary::Mul => "mul",
            Binary::Div => "div",
        }
    }

    pub fn eval(self, a: f64, b: f64) -> f64 {
        match self {
            Binary::Add => a + b,
            Binary::Sub => a - b,
            Binary::Mul => a * b,
            Binary::Div => a / b,
        }
    }
}

/// Elementwise comparisons, with broadcasting: 1.0 where true, 0.0 where
/// false. As in IEEE 754, every comparison with a NaN is false except `ne`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Compare {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

impl Compare {
    pub const ALL: [Compare; 6] = [Compare::Lt, Compare::Le, Compare::Gt, Compare::Ge, Compare::Eq, Compare::Ne];

    pub fn name(self) -> &'static str {
        match self {
            Compare::Lt => "lt",
            Compare::Le => "le",
            Compare::Gt => "gt",
            Compare::Ge => "ge",
            Compare::Eq => "eq",
            Compare::Ne => "ne",
        }
    }

    /// The operator as written in `.nn` files: `<`, `==`, ...
    pub fn symbol(self) -> &'static str {
        match self {
            Compare::Lt => "<",
            Compare::Le => "<=",
            Compare::Gt => ">",
            Compare::Ge => ">=",
            Compare::Eq => "==",
            Compare::Ne => "!=",
        }
    }

    pub fn holds(self, a: f64, b: f64) -> bool {
        match self {
            Compare::Lt => a < b,
            Compare::Le => a <= b,
            Compare::Gt => a > b,
            Compare::Ge => a >= b,
            Compare::Eq => a == b,
            Compare::Ne => a != b,
        }
    }

    pub fn eval(self, a: f64, b: f64) -> f64 {
        f64::from(self.holds(a, b))
    }
}

/// The primitive operations. Everything the language offers is lowered to
/// these; autodiff has one rule per variant.
#[derive(Clone, PartialEq, Debug)]
pub enum Op {
    /// Data input number `i`, `[B, width]`.
    Input(u32),
    /// Data target number `i`, `[B, width]`.
    Target(u32),
    /// Trainable parameter number `i`.
    Param(u32),
    /// Optimizer state tensor number `i` (`graph.states[i]`): read like a
    /// parameter, written by an `update.<state>` output, never differentiated.
    State(u32),
    /// A run-time scalar such as the learning rate.
    Hyper(Hyper),
    /// The number of rows in the current batch, as a float.
    BatchSize,
    /// A tensor filled with one value.
    Const(f64),
    Unary(Unary),
    Binary(Binary),
    /// `a · b`, optionally transposing either side first.
    MatMul {
        trans_a: bool,
        trans_b: bool,
    },
    /// Sum over rows and/or columns, keeping the reduced dimension as 1.
    Sum {
        rows: bool,
        cols: bool,
    },
    /// Repeat a size-1 dimension to the node's shape.
    Broadcast,
    /// Softmax along each row.
    Softmax,
    /// `log(softmax(x))` along each row, computed stably.
    LogSoftmax,
    /// Columns `start..start+width` of the argument (width from the node's shape).
    SliceCols {
        start: u32,
    },
    /// The argument placed at column `start` of a zero matrix of the node's shape.
    PadCols {
        start: u32,
    },
    /// The arguments side by side.
    ConcatCols,
    /// `a ⊙ b` elementwise: 1.0 where it holds, else 0.0 (no gradient).
    Compare(Compare),
    /// `select(c, a, b)`: `a` where `c` is not 0, else `b` (all three broadcast).
    Select,
    /// `dropout(x, step)`: each element of `x` zeroed with probability
    /// `rate` and the rest scaled by `1/(1 − rate)`, by a hash of `site`
    /// (which dropout), the step `t` (the scalar second argument) and the
    /// element's place: see [`dropout_keeps`]. Training graphs only.
    Dropout {
        rate: f64,
        site: u32,
    },
}

/// Whether `dropout` keeps element `index` (row-major, within its value) of
/// dropout `site` at step `t`: a hash of the three, compared with `rate`
/// as a fraction of 2³². The same integer arithmetic runs in the kernels,
/// so both drop the same elements and the backward pass needs no mask.
pub fn dropout_keeps(site: u32, step: u64, index: u64, rate: f64) -> bool {
    dropout_hash(dropout_site_key(site), step as u32, index as u32) >= dropout_threshold(rate)
}

/// The first stage of [`dropout_hash`], which depends on the site alone.
pub fn dropout_site_key(site: u32) -> u32 {
    mix32(site ^ 0x5bd1_e995)
}

/// `mix(mix(key ^ step) ^ index)`, with murmur3's 32-bit finaliser as `mix`.
pub fn dropout_hash(key: u32, step: u32, index: u32) -> u32 {
    mix32(mix32(key ^ step) ^ index)
}

/// Hashes at or above this are kept: `rate · 2³²`, rounded.
pub fn dropout_threshold(rate: f64) -> u32 {
    (rate * 4_294_967_296.0).round().clamp(0.0, u32::MAX as f64) as u32
}

/// murmur3's finaliser: every input bit affects every output bit.
pub fn mix32(mut h: u32) -> u32 {
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

impl Op {
    pub fn name(&self) -> &'static str {
        match self {
            Op::Input(_) => "input",
            Op::Target(_) => "target",
            Op::Param(_) => "param",
            Op::State(_) => "state",
            Op::Hyper(_) => "hyper",
            Op::BatchSize => "batch_size",
            Op::Const(_) => "const",
            Op::Unary(u) => u.name(),
            Op::Binary(b) => b.name(),
            Op::MatMul { .. } => "matmul",
            Op::Sum { .. } => "sum",
            Op::Broadcast => "broadcast",
            Op::Softmax => "softmax",
            Op::LogSoftmax => "log_softmax",
            Op::SliceCols { .. } => "slice_cols",
            Op::PadCols { .. } => "pad_cols",
            Op::ConcatCols => "concat_cols",
            Op::Compare(c) => c.name(),
            Op::Select => "select",
            Op::Dropout { .. } => "dropout",
        }
    }

    /// True for ops whose value at `[i, j]` depends only on the arguments at
    /// the (broadcast) position `[i, j]`; these fuse into their consumers.
    pub fn is_elementwise(&self) -> bool {
        matches!(self, Op::Unary(_) | Op::Binary(_) | Op::Compare(_) | Op::Select | Op::Dropout { .. })
    }

    /// A hashable key: the op with its float payloads as bit patterns.
    fn key(&self) -> (u8, u64, u64) {
        match *self {
            Op::Input(i) => (0, i as u64, 0),
            Op::Target(i) => (1, i as u64, 0),
            Op::Param(i) => (2, i as u64, 0),
            // States share the parameters' tag, told apart by the last slot.
            Op::State(i) => (2, i as u64, 1),
            Op::Hyper(h) => {
                let (tag, payload) = h.key();
                (3, tag, payload)
            }
            Op::BatchSize => (4, 0, 0),
            Op::Const(c) => (5, canonical_bits(c), 0),
            Op::Unary(u) => {
                let tag = match u {
                    Unary::Neg => 0,
                    Unary::Exp => 1,
                    Unary::Log => 2,
                    Unary::Tanh => 3,
                    Unary::Sigmoid => 4,
                    Unary::Relu => 5,
                    Unary::Abs => 6,
                    Unary::Step => 7,
                    Unary::Sign => 8,
                    Unary::Pow(_) => 9,
                };
                let payload = if let Unary::Pow(c) = u { canonical_bits(c) } else { 0 };
                (6, tag, payload)
            }
            Op::Binary(b) => (7, b as u64, 0),
            Op::MatMul { trans_a, trans_b } => (8, trans_a as u64, trans_b as u64),
            Op::Sum { rows, cols } => (9, rows as u64, cols as u64),
            Op::Broadcast => (10, 0, 0),
            Op::Softmax => (11, 0, 0),
            Op::LogSoftmax => (12, 0, 0),
            Op::SliceCols { start } => (13, start as u64, 0),
            Op::PadCols { start } => (14, start as u64, 0),
            Op::ConcatCols => (15, 0, 0),
            Op::Compare(c) => (16, c as u64, 0),
            Op::Select => (17, 0, 0),
            Op::Dropout { rate, site } => (18, site as u64, canonical_bits(rate)),
        }
    }
}

/// `0.0` and `-0.0` are different constants (1/x differs), NaNs are all one.
fn canonical_bits(x: f64) -> u64 {
    if x.is_nan() { f64::NAN.to_bits() } else { x.to_bits() }
}

/// Where a node came from in the `.nn` file.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Origin {
    pub span: Option<Span>,
    /// The model layer (or `loss`) whose definition produced the node.
    pub layer: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub op: Op,
    pub args: Vec<NodeId>,
    pub shape: Shape,
    pub origin: Origin,
}

/// A trainable tensor: its name (`h.w`, `h.b`, or a `param`'s own name),
/// shape, and how to initialise it.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamInfo {
    pub name: String,
    pub shape: Shape,
    pub init: Init,
    pub layer: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Init {
    /// Every element this value (`param x = 0`, biases).
    Value(f64),
    /// Xavier/Glorot uniform: U(-a, a), a = sqrt(6 / (fan_in + fan_out)).
    XavierUniform,
}

/// An optimizer state tensor (momentum, Adam's moments): one per parameter
/// and kind, with the parameter's shape, zero at the start of training.
#[derive(Clone, Debug, PartialEq)]
pub struct StateInfo {
    /// `<param>.<kind>`: `h.w.momentum`, `h.w.adam_m`, `h.w.adam_v`.
    pub name: String,
    pub shape: Shape,
    /// The parameter it belongs to (index into `graph.params`).
    pub param: u32,
}

/// A data binding: an input or a target with its width.
#[derive(Clone, Debug, PartialEq)]
pub struct DataVar {
    pub name: String,
    pub width: u32,
}

/// The graph: nodes in topological order, the declared data and parameters,
/// and the named outputs (`loss`, `predict`, `grad.<param>`, `update.<param>`,
/// `update.<state>`).
#[derive(Clone, Debug, Default)]
pub struct Graph {
    pub nodes: Vec<Node>,
    pub inputs: Vec<DataVar>,
    pub targets: Vec<DataVar>,
    pub params: Vec<ParamInfo>,
    /// Optimizer state, added by the optimizer pass (empty before it).
    pub states: Vec<StateInfo>,
    /// Read-only outside this file: change outputs with [`Graph::set_output`].
    pub outputs: Vec<(String, NodeId)>,
    interned: HashMap<(u8, u64, u64, Vec<NodeId>, Shape), NodeId>,
    /// Output name → its place in `outputs`, so lookups stay O(1) in models
    /// with thousands of parameters.
    output_index: HashMap<String, usize>,
}

/// Why an op cannot take arguments of these shapes.
#[derive(Clone, Debug, PartialEq)]
pub struct ShapeError(pub String);

impl Graph {
    pub fn node(&self, id: NodeId) -> &Node {
        &self.nodes[id.index()]
    }

    pub fn shape(&self, id: NodeId) -> Shape {
        self.nodes[id.index()].shape
    }

    pub fn output(&self, name: &str) -> Option<NodeId> {
        self.output_index.get(name).map(|&i| self.outputs[i].1)
    }

    pub fn set_output(&mut self, name: &str, id: NodeId) {
        match self.output_index.get(name) {
            Some(&i) => self.outputs[i].1 = id,
            None => {
                self.output_index.insert(name.to_string(), self.outputs.len());
                self.outputs.push((name.to_string(), id));
            }
        }
    }

    /// A copy with the same declarations and no nodes, for passes that rebuild.
    pub fn empty_like(&self) -> Graph {
        Graph {
            inputs: self.inputs.clone(),
            targets: self.targets.clone(),
            params: self.params.clone(),
            states: self.states.clone(),
            ..Graph::default()
        }
    }

    /// Add a node whose shape is inferred; reuses an identical existing node.
    pub fn add(&mut self, op: Op, args: &[NodeId], origin: Origin) -> Result<NodeId, ShapeError> {
        let shapes: Vec<Shape> = args.iter().map(|&a| self.shape(a)).collect();
        let shape = infer_shape(&op, &shapes, None)?;
        Ok(self.add_shaped(op, args, shape, origin))
    }

    /// Add a node whose result shape is declared (leaves, broadcast, slices,
    /// pads); the declaration is checked against the arguments.
    pub fn add_declared(
        &mut self,
        op: Op,
        args: &[NodeId],
        shape: Shape,
        origin: Origin,
    ) -> Result<NodeId, ShapeError> {
        let shapes: Vec<Shape> = args.iter().map(|&a| self.shape(a)).collect();
        let shape = infer_shape(&op, &shapes, Some(shape))?;
        Ok(self.add_shaped(op, args, shape, origin))
    }

    /// Add a node with a result shape the caller has already checked.
    fn add_shaped(&mut self, op: Op, args: &[NodeId], shape: Shape, origin: Origin) -> NodeId {
        let (a, b, c) = op.key();
        let key = (a, b, c, args.to_vec(), shape);
        if let Some(&id) = self.interned.get(&key) {
            return id;
        }
        let id = NodeId(self.nodes.len() as u32);
        self.nodes.push(Node { op, args: args.to_vec(), shape, origin });
        self.interned.insert(key, id);
        id
    }

    /// Append `node` as written, its shape and arguments unchecked: for
    /// [`super::parse`], which leaves checking to [`super::verify`]. The
    /// builder will reuse it like any node unless an identical node came
    /// first; with `intern` false it never reuses it (a stand-in for a node
    /// the text left out).
    pub(super) fn push_unchecked(&mut self, node: Node, intern: bool) -> NodeId {
        let id = NodeId(self.nodes.len() as u32);
        if intern {
            let (a, b, c) = node.op.key();
            self.interned.entry((a, b, c, node.args.clone(), node.shape)).or_insert(id);
        }
        self.nodes.push(node);
        id
    }

    /// How many times each node is used as an argument or output.
    pub fn use_counts(&self) -> Vec<u32> {
        let mut uses = vec![0u32; self.nodes.len()];
        for node in &self.nodes {
            for a in &node.args {
                uses[a.index()] += 1;
            }
        }
        for (_, id) in &self.outputs {
            uses[id.index()] += 1;
        }
        uses
    }

    /// Nodes reachable from the outputs.
    pub fn live(&self) -> Vec<bool> {
        let roots: Vec<NodeId> = self.outputs.iter().map(|(_, id)| *id).collect();
        self.live_from(&roots)
    }

    /// Nodes reachable from `roots`.
    pub fn live_from(&self, roots: &[NodeId]) -> Vec<bool> {
        let mut live = vec![false; self.nodes.len()];
        for id in roots {
            live[id.index()] = true;
        }
        for i in (0..self.nodes.len()).rev() {
            if live[i] {
                for a in &self.nodes[i].args {
                    live[a.index()] = true;
                }
            }
        }
        live
    }
}

/// The result shape of `op` applied to arguments of `shapes`.
///
/// `declared` is the node's own shape for ops whose result is not determined
/// by their arguments (leaves, broadcast, slices, pads), checked for sense.
pub fn infer_shape(op: &Op, shapes: &[Shape], declared: Option<Shape>) -> Result<Shape, ShapeError> {
    let arity = |n: usize| {
        if shapes.len() == n {
            Ok(())
        } else {
            Err(ShapeError(format!("`{}` takes {n} argument(s), got {}", op.name(), shapes.len())))
        }
    };
    let need_declared = || declared.ok_or_else(|| ShapeError(format!("`{}` needs a declared shape", op.name())));
    match op {
        Op::Input(_) | Op::Target(_) | Op::Param(_) | Op::State(_) | Op::Const(_) => {
            arity(0)?;
            need_declared()
        }
        Op::Hyper(_) | Op::BatchSize => {
            arity(0)?;
            Ok(Shape::SCALAR)
        }
        Op::Unary(_) | Op::Softmax | Op::LogSoftmax => {
            arity(1)?;
            Ok(shapes[0])
        }
        Op::Binary(b) => {
            arity(2)?;
            Shape::broadcast(shapes[0], shapes[1])
                .ok_or_else(|| ShapeError(format!("cannot {} shapes {} and {}", b.name(), shapes[0], shapes[1])))
        }
        Op::MatMul { trans_a, trans_b } => {
            arity(2)?;
            let (ar, ac) = if *trans_a { (shapes[0].cols, shapes[0].rows) } else { (shapes[0].rows, shapes[0].cols) };
            let (br, bc) = if *trans_b { (shapes[1].cols, shapes[1].rows) } else { (shapes[1].rows, shapes[1].cols) };
            if ac != br {
                return Err(ShapeError(format!(
                    "matmul of {} and {}: inner sizes {ac} and {br} differ",
                    shapes[0], shapes[1]
                )));
            }
            Ok(Shape::new(ar, bc))
        }
        Op::Sum { rows, cols } => {
            arity(1)?;
            let s = shapes[0];
            Ok(Shape::new(if *rows { Dim::Fixed(1) } else { s.rows }, if *cols { Dim::Fixed(1) } else { s.cols }))
        }
        Op::Broadcast => {
            arity(1)?;
            let to = need_declared()?;
            let ok = |from: Dim, to: Dim| from == to || from.is_one();
            if ok(shapes[0].rows, to.rows) && ok(shapes[0].cols, to.cols) {
                Ok(to)
            } else {
                Err(ShapeError(format!("cannot broadcast {} to {to}", shapes[0])))
            }
        }
        Op::SliceCols { start } => {
            arity(1)?;
            let to = need_declared()?;
            match (shapes[0].cols, to.cols) {
                (Dim::Fixed(w), Dim::Fixed(n)) if to.rows == shapes[0].rows && start + n <= w => Ok(to),
                _ => Err(ShapeError(format!("bad column slice {start}.. of {} to {to}", shapes[0]))),
            }
        }
        Op::PadCols { start } => {
            arity(1)?;
            let to = need_declared()?;
            match (shapes[0].cols, to.cols) {
                (Dim::Fixed(n), Dim::Fixed(w)) if to.rows == shapes[0].rows && start + n <= w => Ok(to),
                _ => Err(ShapeError(format!("bad column pad of {} at {start} to {to}", shapes[0]))),
            }
        }
        Op::Compare(c) => {
            arity(2)?;
            Shape::broadcast(shapes[0], shapes[1]).ok_or_else(|| {
                ShapeError(format!("cannot compare ({}) shapes {} and {}", c.symbol(), shapes[0], shapes[1]))
            })
        }
        Op::Select => {
            arity(3)?;
            Shape::broadcast(shapes[0], shapes[1]).and_then(|s| Shape::broadcast(s, shapes[2])).ok_or_else(|| {
                ShapeError(format!("cannot select with shapes {}, {} and {}", shapes[0], shapes[1], shapes[2]))
            })
        }
        Op::Dropout { rate, .. } => {
            arity(2)?;
            if !(0.0..1.0).contains(rate) {
                return Err(ShapeError(format!("dropout rate {rate} is not in [0, 1)")));
            }
            if !shapes[1].is_scalar() {
                return Err(ShapeError(format!("dropout's step is {}, not a scalar", shapes[1])));
            }
            Ok(shapes[0])
        }
        Op::ConcatCols => {
            if shapes.is_empty() {
                return Err(ShapeError("`concat_cols` needs arguments".into()));
            }
            let rows = shapes[0].rows;
            let mut width = 0u32;
            for s in shapes {
                match s.cols {
                    Dim::Fixed(n) if s.rows == rows => width += n,
                    _ => return Err(ShapeError(format!("cannot concatenate {s} beside {}", shapes[0]))),
                }
            }
            Ok(Shape::new(rows, Dim::Fixed(width)))
        }
    }
}
