//! The ABI between the runtime and a compiled kernel: [`KernelArgs`] (the
//! one argument of the native function, laid out as in C, and the field
//! offsets the emitted code loads from), the packing of parameters and
//! optimizer state ([`param_offsets`]), and [`Compiled`], which owns the
//! JIT memory and checks a call's arguments before running it.
//!
//! A kernel that reads run-time scalars besides `lr` keeps the step counter
//! `t` (from [`KernelArgs::step`], plus one per batch) and, at the top of
//! each batch, loads the others — the schedule's factor, Adam's `1 − βᵗ` —
//! from [`KernelArgs::hyper_table`], which [`Compiled::call`] fills before
//! the call with [`HyperContext::value`] (f64, rounded to f32) for every
//! batch: a load per scalar, no call out of native code.

use crate::ir::Hyper;
use crate::ir::program::HyperContext;
use crate::kernel::{BufferKind, Kernel, KernelKind, Stmt};
use cranelift_jit::JITModule;

/// What the native function receives, laid out as in C.
#[repr(C)]
#[derive(Debug)]
pub struct KernelArgs {
    /// All parameters, back to back at [`param_offsets`].
    pub params: *mut f32,
    pub scratch: *mut f32,
    /// One loss per batch.
    pub losses: *mut f32,
    /// Predictions, `rows × width` (evaluation kernels only).
    pub predict: *mut f32,
    /// One pointer per data input, each `rows × width`, row-major.
    pub inputs: *const *const f32,
    /// One pointer per data target.
    pub targets: *const *const f32,
    pub rows: i64,
    pub batch: i64,
    /// The base learning rate.
    pub learning_rate: f32,
    /// Optimizer state, packed like the parameters (at [`param_offsets`] of
    /// the state shapes); null when the kernel keeps none.
    pub state: *mut f32,
    /// Optimizer steps taken before this call: batch `k` (0-based) of the
    /// call is step `t = step + k + 1`.
    pub step: i64,
    /// The learning rate's schedule and what else run-time scalars are
    /// computed from; null when the kernel reads none but `lr` and `t`.
    /// Read by [`Compiled::call`], not by the kernel.
    pub hypers: *const HyperContext,
    /// The run-time scalars of every batch of the call, computed from
    /// `hypers`: batch `k`'s values at `k × n`, `n` scalars a batch, in the
    /// order of [`Compiled::hypers`]. Filled in by [`Compiled::call`]; callers
    /// leave it null (the default).
    pub hyper_table: *const f32,
    /// The threads that large matrix products ([`Stmt::Gemm`]) are split
    /// over; null runs them on the calling thread. The result is the same.
    pub threads: *const crate::threads::Pool,
}

impl Default for KernelArgs {
    /// Null pointers and zeros: set what the kernel reads.
    fn default() -> KernelArgs {
        KernelArgs {
            params: std::ptr::null_mut(),
            scratch: std::ptr::null_mut(),
            losses: std::ptr::null_mut(),
            predict: std::ptr::null_mut(),
            inputs: std::ptr::null(),
            targets: std::ptr::null(),
            rows: 0,
            batch: 0,
            learning_rate: 0.0,
            state: std::ptr::null_mut(),
            step: 0,
            hypers: std::ptr::null(),
            hyper_table: std::ptr::null(),
            threads: std::ptr::null(),
        }
    }
}

pub(super) type KernelFn = unsafe extern "C" fn(*const KernelArgs);

/// A compiled kernel with the JIT memory that holds it.
pub struct Compiled {
    pub(super) module: Option<JITModule>,
    pub(super) function: KernelFn,
    /// The kernel it was compiled from (buffer layout, sizes).
    pub kernel: Kernel,
    /// Whether it reads [`KernelArgs::state`].
    pub(super) uses_state: bool,
    /// The run-time scalars it loads from [`KernelArgs::hyper_table`], in
    /// table order (all it reads but `lr` and `t`); empty when it needs no
    /// [`KernelArgs::hypers`].
    pub hypers: Vec<Hyper>,
    /// Cranelift IR as text, before optimisation (with [`Options::listings`]).
    pub clif: Option<String>,
    /// The machine code listing, when asked for.
    pub asm: Option<String>,
    pub code_size: usize,
    pub compile_ms: f64,
    /// The threads its library GEMM calls run on when the caller passes
    /// none in [`KernelArgs::threads`] (see [`Compiled::set_threads`]).
    pub(super) threads: Option<std::sync::Arc<crate::threads::Pool>>,
}

impl Drop for Compiled {
    fn drop(&mut self) {
        if let Some(module) = self.module.take() {
            // SAFETY: `function` points into this module and `Compiled` owns
            // the only copy; after drop nothing can call it.
            unsafe { module.free_memory() };
        }
    }
}

impl Compiled {
    /// Run this kernel's library GEMM calls on `pool` (the result does not
    /// depend on its size).
    pub fn set_threads(&mut self, pool: std::sync::Arc<crate::threads::Pool>) {
        self.threads = Some(pool);
    }

    /// Whether it is a prediction kernel (computes no loss, reads no targets).
    pub fn predicts_only(&self) -> bool {
        self.kernel.kind == KernelKind::Predict
    }

    /// How many slots the kernel's `targets` table has: the kernel loads
    /// every declared target's column pointer, read or not, so a caller
    /// without targets passes this many null pointers, not an empty table.
    pub fn target_slots(&self) -> usize {
        let slots = self.kernel.buffers.iter().filter_map(|b| match b.kind {
            BufferKind::Target(i) => Some(i as usize + 1),
            _ => None,
        });
        slots.max().unwrap_or(0)
    }

    /// Whether the kernel calls the library GEMM (and so can use threads).
    pub fn calls_gemm(&self) -> bool {
        self.kernel.body.iter().any(|s| matches!(s, Stmt::Gemm(_)))
    }

    /// Run the kernel over `args.rows` rows in batches of `args.batch`.
    ///
    /// # Safety
    /// The pointers in `args` must point to buffers of the sizes the kernel
    /// was lowered for: `params` at least [`param_len`] f32s, `scratch`
    /// `kernel.scratch_len`, `losses` one per batch, inputs and targets
    /// `rows × width` each, `predict` `rows × width` for evaluation kernels;
    /// `batch` must be between 1 and `kernel.max_batch`; `hypers`, when the
    /// kernel reads run-time scalars, must point to a valid context.
    /// `args.hyper_table` is ignored: the call fills in its own. `args.threads`, when null, is
    /// the pool given to [`Compiled::set_threads`] (if any), which must be
    /// live for the call.
    pub unsafe fn call(&self, args: &KernelArgs) {
        assert!(args.batch >= 1 && args.batch as usize <= self.kernel.max_batch, "batch exceeds the kernel's sizing");
        assert!(!self.uses_state || !args.state.is_null(), "the kernel keeps optimizer state: pass its buffer");
        assert!(self.hypers.is_empty() || !args.hypers.is_null(), "the kernel reads run-time scalars: pass hypers");
        assert!(args.step >= 0, "the step count is never negative");
        // The run-time scalars of batch `k` (step `t = step + k + 1`), computed
        // here so that the kernel calls nothing per batch.
        let mut table = Vec::new();
        // SAFETY: checked non-null above when needed; valid by the caller.
        if let Some(context) = unsafe { args.hypers.as_ref() }.filter(|_| !self.hypers.is_empty()) {
            let batches = (args.rows.max(0) as u64).div_ceil(args.batch as u64);
            table.reserve(batches as usize * self.hypers.len());
            for k in 0..batches {
                let t = args.step as u64 + k + 1;
                table.extend(self.hypers.iter().map(|&hyper| context.value(hyper, t) as f32));
            }
        }
        let hyper_table = if table.is_empty() { std::ptr::null() } else { table.as_ptr() };
        let threads = match (&self.threads, args.threads.is_null()) {
            (Some(pool), true) => std::sync::Arc::as_ptr(pool),
            _ => args.threads,
        };
        let args = KernelArgs { hyper_table, threads, ..*args };
        // SAFETY: guaranteed by the caller, see above; the kernel reads
        // `hyper_table` only when it reads scalars, and then `table` holds
        // `hypers.len()` values for each of its batches and outlives the call.
        unsafe { (self.function)(&args) }
    }
}

/// Where each parameter starts in the packed parameter array (in f32s).
pub fn param_offsets(shapes: &[crate::ir::Shape]) -> Vec<usize> {
    let mut offsets = Vec::with_capacity(shapes.len());
    let mut next = 0;
    for shape in shapes {
        offsets.push(next);
        next += shape.len(1).next_multiple_of(4);
    }
    offsets
}

/// Total length of the packed parameter array.
pub fn param_len(shapes: &[crate::ir::Shape]) -> usize {
    shapes.iter().map(|s| s.len(1).next_multiple_of(4)).sum()
}

/// Field offsets of [`KernelArgs`], as the emitted code loads them.
pub(super) mod field {
    use super::KernelArgs;
    use std::mem::offset_of;

    pub const PARAMS: i32 = offset_of!(KernelArgs, params) as i32;
    pub const SCRATCH: i32 = offset_of!(KernelArgs, scratch) as i32;
    pub const LOSSES: i32 = offset_of!(KernelArgs, losses) as i32;
    pub const PREDICT: i32 = offset_of!(KernelArgs, predict) as i32;
    pub const INPUTS: i32 = offset_of!(KernelArgs, inputs) as i32;
    pub const TARGETS: i32 = offset_of!(KernelArgs, targets) as i32;
    pub const ROWS: i32 = offset_of!(KernelArgs, rows) as i32;
    pub const BATCH: i32 = offset_of!(KernelArgs, batch) as i32;
    pub const LEARNING_RATE: i32 = offset_of!(KernelArgs, learning_rate) as i32;
    pub const STATE: i32 = offset_of!(KernelArgs, state) as i32;
    pub const STEP: i32 = offset_of!(KernelArgs, step) as i32;
    pub const HYPER_TABLE: i32 = offset_of!(KernelArgs, hyper_table) as i32;
    pub const THREADS: i32 = offset_of!(KernelArgs, threads) as i32;
}
