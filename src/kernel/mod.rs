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
mod print;
pub mod vectorize;

pub use lower::{GEMM_MIN_MACS, KernelKind, LowerOptions, lower, lower_with};
pub use print::print;

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
}
