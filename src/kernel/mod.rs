//! The kernel IR: fused loop nests over flat f32 buffers.
//!
//! Lowering ([`lower`]) turns a graph into one [`Kernel`]: a body of
//! [`Stmt`]s that runs once per batch, inside a batch loop that the code
//! generator emits around it, so a whole epoch is one native call.
//! Elementwise chains are not stored anywhere: they are inlined as scalar
//! [`Expr`] trees into the loop that consumes them (fusion). Only values that
//! need memory — matmul, reductions, softmax, concatenations, values used
//! more than once, and the outputs — get a buffer.
//!
//! Indices are affine in the loop variables (`i*8 + j + 3`), and every
//! buffer's length is known at lowering time from the shapes and the largest
//! batch, so bounds are proved here rather than checked at run time: the
//! lowering asserts each index's maximum against the buffer length.

mod bounds;
mod lower;
pub mod parallel;
mod print;
pub mod shard;
pub mod vectorize;
pub mod verify;

pub use lower::{GEMM_MIN_MACS, KernelKind, LowerOptions, lower, lower_with};
pub use print::print;
pub use verify::{VerifyError, verify};

use crate::ir::{Compare, Hyper, Shape};

/// Where a buffer lives; the code generator turns each into a base pointer.
#[derive(Clone, Debug, PartialEq)]
pub enum BufferKind {
    /// A trainable parameter, read and updated in place.
    Param(u32),
    /// Optimizer state tensor `i`, packed like the parameters, read and
    /// updated in place.
    State(u32),
    /// Data input `i`, rows of the current batch.
    Input(u32),
    /// Data target `i`, rows of the current batch.
    Target(u32),
    /// Kernel-owned scratch memory at this offset (in f32s).
    Scratch { offset: usize },
    /// The model's output rows for the current batch (prediction).
    Predict,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Buffer {
    pub name: String,
    pub kind: BufferKind,
    pub shape: Shape,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BufferId(pub u32);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LoopVar(pub u32);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Local(pub u32);

/// A loop's trip count: fixed, or the rows in the current batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Extent {
    Fixed(u32),
    Batch,
    /// The rows of chunk `chunk` of the current batch, numbered as in the
    /// batch (a loop over them starts at the chunk's first row): a sum over
    /// rows cut into [`shard::CHUNKS`] fixed parts (see [`shard`]).
    Rows {
        chunk: u32,
    },
}

impl Extent {
    /// The most iterations it can have (a chunk counted as the whole batch).
    pub fn max_trips(self, max_batch: usize) -> u32 {
        match self {
            Extent::Fixed(n) => n,
            Extent::Batch | Extent::Rows { .. } => max_batch as u32,
        }
    }
}

impl std::fmt::Display for Extent {
    /// The end of the range `0..` in kernel text: `8`, `B`, or `B` with
    /// its chunk (`B.0`, the rows of chunk 0).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Extent::Fixed(n) => write!(f, "{n}"),
            Extent::Batch => write!(f, "B"),
            Extent::Rows { chunk } => write!(f, "B.{chunk}"),
        }
    }
}

/// `Σ var·stride + offset`, in elements.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct Index {
    pub terms: Vec<(LoopVar, u32)>,
    pub offset: u32,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum UnaryOp {
    Neg,
    Exp,
    Log,
    Tanh,
    Sigmoid,
    Relu,
    Abs,
    Step,
    Sign,
    /// `x^n` for a small integer `n`, by multiplication.
    Powi(i32),
    /// `√x` (`x^0.5`).
    Sqrt,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    Max,
}

/// A scalar f32 computation.
#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    Const(f32),
    Load(BufferId, Index),
    Local(Local),
    /// The number of rows in the current batch.
    BatchSize,
    LearningRate,
    /// Another run-time scalar, computed once per batch (see [`Hyper`]).
    Hyper(Hyper),
    Unary(UnaryOp, Box<Expr>),
    Binary(BinaryOp, Box<Expr>, Box<Expr>),
    /// 1.0 where the comparison holds, else 0.0.
    Compare(Compare, Box<Expr>, Box<Expr>),
    /// `cond != 0 ? a : b`.
    Select(Box<Expr>, Box<Expr>, Box<Expr>),
    /// `x · scale` where `dropout_hash(key, step, index) >= threshold`, else
    /// 0 (see [`crate::ir::dropout_keeps`]): `index` is the element's place
    /// in its value, `step` the step number `t`.
    Dropout {
        key: u32,
        threshold: u32,
        scale: f32,
        index: Index,
        x: Box<Expr>,
        step: Box<Expr>,
    },
}

impl Expr {
    /// Call `f` on the expressions directly inside this one, in order.
    ///
    /// This is the one place that knows which variants hold expressions:
    /// every walk over kernel expressions goes through it (or [`Expr::walk`]),
    /// so a new variant is a compile error here rather than a case that some
    /// walk silently skips.
    pub fn for_each_child<'a>(&'a self, f: &mut impl FnMut(&'a Expr)) {
        match self {
            Expr::Const(_)
            | Expr::Load(..)
            | Expr::Local(_)
            | Expr::BatchSize
            | Expr::LearningRate
            | Expr::Hyper(_) => {}
            Expr::Unary(_, x) => f(x),
            Expr::Binary(_, x, y) | Expr::Compare(_, x, y) => {
                f(x);
                f(y);
            }
            Expr::Select(c, x, y) => {
                f(c);
                f(x);
                f(y);
            }
            Expr::Dropout { x, step, key: _, threshold: _, scale: _, index: _ } => {
                f(x);
                f(step);
            }
        }
    }

    /// Call `f` on this expression and on every expression inside it,
    /// each before its children.
    pub fn walk<'a>(&'a self, f: &mut impl FnMut(&'a Expr)) {
        f(self);
        self.for_each_child(&mut |child| child.walk(f));
    }

    /// Whether `pred` holds for this expression or any inside it.
    pub fn any(&self, pred: &mut impl FnMut(&Expr) -> bool) -> bool {
        let mut found = false;
        self.walk(&mut |e| found = found || pred(e));
        found
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Stmt {
    Loop {
        var: LoopVar,
        extent: Extent,
        body: Vec<Stmt>,
    },
    Assign {
        local: Local,
        value: Expr,
    },
    Store {
        buffer: BufferId,
        index: Index,
        value: Expr,
    },
    /// Record the batch's loss (a scalar) in the per-batch loss array.
    StoreLoss(Expr),
    /// A large matrix product computed by a tuned library routine instead
    /// of a loop nest (see [`Gemm`]); only at the top level of the body.
    Gemm(Gemm),
}

impl Stmt {
    /// Call `f` on the expressions this statement evaluates itself (not
    /// those of the statements inside a loop); like [`Expr::for_each_child`],
    /// the one place that knows where statements hold expressions.
    pub fn for_each_expr<'a>(&'a self, f: &mut impl FnMut(&'a Expr)) {
        match self {
            Stmt::Loop { var: _, extent: _, body: _ } => {}
            Stmt::Assign { value, local: _ } | Stmt::Store { value, buffer: _, index: _ } | Stmt::StoreLoss(value) => {
                f(value)
            }
            Stmt::Gemm(Gemm { accumulate, out: _, a: _, trans_a: _, b: _, trans_b: _, m: _, n: _, k: _ }) => {
                if let Some(scale) = accumulate {
                    f(scale);
                }
            }
        }
    }

    /// The statements directly inside this one (a loop's body).
    pub fn children(&self) -> &[Stmt] {
        match self {
            Stmt::Loop { body, .. } => body,
            Stmt::Assign { .. } | Stmt::Store { .. } | Stmt::StoreLoss(_) | Stmt::Gemm(_) => &[],
        }
    }
}

/// Call `f` on every statement of `body` and of the loops inside it, each
/// loop before its body.
pub fn walk<'a>(body: &'a [Stmt], f: &mut impl FnMut(&'a Stmt)) {
    for stmt in body {
        f(stmt);
        walk(stmt.children(), f);
    }
}

/// Call `f` on every expression of `body` (of every statement, at any
/// depth), each before its children.
pub fn walk_exprs<'a>(body: &'a [Stmt], f: &mut impl FnMut(&'a Expr)) {
    walk(body, &mut |stmt| stmt.for_each_expr(&mut |e| e.walk(f)));
}

/// `out[m,n] = a[m,k] · b[k,n]` (or `out += scale · a·b`), each operand a whole row-major buffer read
/// as stored or transposed (`a` stored `[k,m]` when `trans_a`, `b` stored
/// `[n,k]` when `trans_b`). Lowering chooses it for products of at least
/// [`LowerOptions::gemm_min_macs`] multiply-adds; codegen emits a call to
/// `codegen::gemm::sgemm`, which splits `out` into blocks by a fixed rule and
/// may run them on several threads: the result is the same for any number.
#[derive(Clone, Debug, PartialEq)]
pub struct Gemm {
    pub out: BufferId,
    pub a: BufferId,
    pub trans_a: bool,
    pub b: BufferId,
    pub trans_b: bool,
    pub m: Extent,
    pub n: u32,
    pub k: Extent,
    /// `out += scale · a·b` instead of `out = a·b`: plain SGD's update of a
    /// weight from a product, `w − lr·(xᵀ·δ)`, done by the library call
    /// itself (`scale` is the scalar `−lr`, evaluated once per batch).
    pub accumulate: Option<Expr>,
}

/// One compiled unit: buffers, and the per-batch body.
#[derive(Clone, Debug, PartialEq)]
pub struct Kernel {
    pub kind: KernelKind,
    pub buffers: Vec<Buffer>,
    pub body: Vec<Stmt>,
    pub n_loop_vars: u32,
    pub n_locals: u32,
    /// f32s of scratch memory the kernel needs.
    pub scratch_len: usize,
    /// The largest batch the scratch is sized for.
    pub max_batch: usize,
    /// Loops that run four lanes at a time (see [`vectorize`]).
    pub vector_loops: Vec<LoopVar>,
    /// Loops whose iterations run this many at a time around a vector loop
    /// (register blocking, see [`vectorize`]).
    pub blocked_rows: Vec<(LoopVar, u32)>,
    /// Loops written out in full as straight-line code, the loop variable a
    /// constant in each copy of the body: short innermost loops, and vector
    /// loops of at most `4 × MAX_GROUPS` lanes (see [`vectorize`]).
    pub written_out: Vec<LoopVar>,
    /// Reductions inside a vector loop whose vector code runs two steps per
    /// iteration (see [`vectorize`]); the scalar tail of a vector loop over
    /// the batch runs them one step at a time.
    pub paired_loops: Vec<LoopVar>,
}

/// At most this many groups of four lanes run side by side in one
/// iteration of a vector loop: the code generator's unit, which
/// [`vectorize`] counts registers and written-out lengths with.
pub const MAX_GROUPS: u32 = 4;
