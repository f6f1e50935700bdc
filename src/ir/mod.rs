//! The graph IR: the shared vocabulary of every stage after `check`.
//!
//! A model becomes a [`Graph`]: a list of [`Node`]s in topological order,
//! each one primitive [`Op`] applied to earlier nodes, with a static
//! [`Shape`]. Shapes are always two-dimensional, `[rows, cols]`, where `rows`
//! may be the symbolic batch dimension `B`; scalars are `[1,1]` and bias rows
//! `[1,n]`, and size-1 dimensions broadcast as in numpy. One rank keeps
//! broadcasting, reductions and code generation uniform.
//!
//! The op set is small on purpose (about twenty ops): `dense`, `softmax`
//! layers, `mse`, `cross_entropy`, the other built-in activations and
//! losses, conditionals (a `compare` giving 1 or 0, and a `select`) and user
//! functions (inlined) are all spelled with it by the checker, so autodiff
//! needs one derivative rule per op and the backends one lowering per op. Every node remembers its [`Origin`] — the `.nn` span and layer it
//! came from — so a problem found late can still be reported in the user's
//! terms.
//!
//! A graph has named outputs: `loss` (a scalar), `predict` (the model's
//! output, when there is data), and after autodiff `grad.<param>` for every
//! parameter. The training step adds `update.<param>` (the new value of each
//! parameter). The reference interpreter ([`interp`]) evaluates any of them in
//! f64; it defines what every op means and is the oracle for the JIT.
//!
//! Every graph prints as text ([`print`]) and the text reads back
//! ([`parse`]) to the same graph, so pass tests start from IR text
//! (`tests/passes/`).
//!
//! Invariants (checked by [`verify`]): arguments precede their users, every
//! node's shape equals what [`infer_shape`] derives from its arguments, every
//! leaf (input, target, parameter, state) names a declaration of its shape,
//! and every output id exists.

mod graph;
pub mod interp;
pub mod math;
pub mod parse;
pub mod print;
pub mod program;
pub mod verify;

pub use graph::{
    Binary, Compare, DataVar, Dim, Graph, Hyper, Init, Node, NodeId, Op, Origin, ParamInfo, Shape, ShapeError,
    StateInfo, Unary, dropout_hash, dropout_keeps, dropout_site_key, dropout_threshold, infer_shape, mix32, pow,
    whole_exponent,
};
pub use parse::{ParseError, parse};
