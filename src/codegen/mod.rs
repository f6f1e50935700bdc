//! Codegen: kernel IR → Cranelift IR → native code in memory.
//!
//! Each [`Kernel`] becomes one function `extern "C" fn(*const KernelArgs)`
//! that loops over the batches of its rows itself, so a whole epoch of
//! training is one call. Loop variables and scalar locals are Cranelift
//! variables (the frontend builds SSA); buffer addresses are base pointers
//! plus affine offsets, without bounds checks: the lowering proved every
//! index in bounds for the batch size the scratch memory was sized for, and
//! [`Compiled`] refuses arguments that break those assumptions.
//!
//! Vector loops (see [`crate::kernel::vectorize`]) emit each statement once
//! per *copy*: a group of four lanes of one blocked row. Copies share the
//! loads they make at the same address (one weight row for all blocked
//! rows), and a reduction loop inside a vector loop runs two steps per
//! iteration.
//!
//! `acc + a·b` becomes one `fma` when the CPU has it. `exp`, `log`, `tanh`
//! and `sigmoid` are inline polynomials (see `math.rs`): the generated code
//! calls nothing.
//!
//! Optimizer state is one more packed buffer ([`KernelArgs::state`]). A
//! kernel that reads run-time scalars besides `lr` keeps the step counter
//! `t` (from [`KernelArgs::step`], plus one per batch) and, at the top of
//! each batch, loads the others — the schedule's factor, Adam's `1 − βᵗ` —
//! from [`KernelArgs::hyper_table`], which [`Compiled::call`] fills before
//! the call with [`HyperContext::value`] (f64, rounded to f32) for every
//! batch: a load per scalar, no call out of native code.

pub mod gemm;
mod math;

use crate::ir::program::HyperContext;
use crate::ir::{Compare, Hyper};
use crate::kernel::{BinaryOp, BufferKind, Expr, Extent, Index, Kernel, KernelKind, LoopVar, Stmt, UnaryOp};
use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::{AbiParam, BlockArg, InstBuilder, MemFlagsData, Type, UserFuncName, Value, types};
use cranelift_codegen::isa::OwnedTargetIsa;
use cranelift_codegen::settings::{self, Configurable};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext, Variable};
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::{Linkage, Module, default_libcall_names};
use std::collections::HashMap;
use std::time::Instant;

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

/// The run-time scalars a kernel reads besides `lr`, in order of first use.
fn hypers_of(kernel: &Kernel) -> Vec<Hyper> {
    fn expr(e: &Expr, out: &mut Vec<Hyper>) {
        match e {
            Expr::Hyper(h) => {
                if !out.contains(h) {
                    out.push(*h);
                }
            }
            Expr::Unary(_, x) => expr(x, out),
            Expr::Binary(_, x, y) | Expr::Compare(_, x, y) => {
                expr(x, out);
                expr(y, out);
            }
            Expr::Select(c, x, y) => {
                expr(c, out);
                expr(x, out);
                expr(y, out);
            }
            Expr::Dropout { x, step, .. } => {
                expr(x, out);
                expr(step, out);
            }
            Expr::Const(_) | Expr::Load(..) | Expr::Local(_) | Expr::BatchSize | Expr::LearningRate => {}
        }
    }
    fn stmts(body: &[Stmt], out: &mut Vec<Hyper>) {
        for stmt in body {
            match stmt {
                Stmt::Loop { body, .. } => stmts(body, out),
                Stmt::Assign { value, .. } | Stmt::Store { value, .. } | Stmt::StoreLoss(value) => expr(value, out),
                Stmt::Gemm(g) => {
                    if let Some(scale) = &g.accumulate {
                        expr(scale, out);
                    }
                }
            }
        }
    }
    let mut out = Vec::new();
    stmts(&kernel.body, &mut out);
    out
}

/// The shapes of the optimizer state buffers of a kernel, by index.
fn state_shapes(kernel: &Kernel) -> Vec<crate::ir::Shape> {
    let mut states: Vec<(u32, crate::ir::Shape)> = kernel
        .buffers
        .iter()
        .filter_map(|b| match b.kind {
            BufferKind::State(i) => Some((i, b.shape)),
            _ => None,
        })
        .collect();
    states.sort_by_key(|(i, _)| *i);
    debug_assert!(states.iter().enumerate().all(|(k, (i, _))| k == *i as usize), "every state has a buffer");
    states.into_iter().map(|(_, shape)| shape).collect()
}

type KernelFn = unsafe extern "C" fn(*const KernelArgs);

/// Options for compilation.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// Run Cranelift's IR verifier (on in tests and debug builds).
    pub verify: bool,
    /// Keep the Cranelift IR text and the machine code listing for
    /// `nnc ir --stage clif|asm` (printing them costs about a tenth of the
    /// compile time, so runs that only execute the kernel skip it).
    pub listings: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options { verify: cfg!(debug_assertions), listings: false }
    }
}

/// A compiled kernel with the JIT memory that holds it.
pub struct Compiled {
    module: Option<JITModule>,
    function: KernelFn,
    /// The kernel it was compiled from (buffer layout, sizes).
    pub kernel: Kernel,
    /// Whether it reads [`KernelArgs::state`].
    uses_state: bool,
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
    threads: Option<std::sync::Arc<crate::threads::Pool>>,
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

fn isa(options: Options) -> Result<OwnedTargetIsa, String> {
    let mut flags = settings::builder();
    let set = |flags: &mut settings::Builder, k: &str, v: &str| flags.set(k, v).map_err(|e| format!("{k}: {e}"));
    set(&mut flags, "opt_level", "speed")?;
    set(&mut flags, "use_colocated_libcalls", "false")?;
    set(&mut flags, "is_pic", "false")?;
    set(&mut flags, "enable_verifier", if options.verify { "true" } else { "false" })?;
    let isa_builder = cranelift_native::builder().map_err(|e| format!("unsupported host: {e}"))?;
    isa_builder.finish(settings::Flags::new(flags)).map_err(|e| e.to_string())
}

/// Compile a kernel to native code.
pub fn compile(kernel: &Kernel, param_shapes: &[crate::ir::Shape], options: Options) -> Result<Compiled, String> {
    let start = Instant::now();
    let isa = isa(options)?;
    let has_fma = isa.has_native_fma();
    let builder = JITBuilder::with_isa(isa, default_libcall_names());
    let mut module = JITModule::new(builder);
    let pointer = module.target_config().pointer_type();

    let mut ctx = module.make_context();
    ctx.set_disasm(options.listings);
    ctx.func.signature.params.push(AbiParam::new(pointer));
    let func_id = module.declare_function("kernel", Linkage::Export, &ctx.func.signature).map_err(|e| e.to_string())?;
    ctx.func.name = UserFuncName::user(0, func_id.as_u32());

    // Run-time scalars other than `lr` and `t` come from the table that
    // `Compiled::call` fills, in this order.
    let hypers = hypers_of(kernel);
    let table_hypers: Vec<Hyper> = hypers.iter().copied().filter(|h| *h != Hyper::Step).collect();

    let mut fctx = FunctionBuilderContext::new();
    {
        let mut b = FunctionBuilder::new(&mut ctx.func, &mut fctx);
        let mut emitter = Emitter::new(&mut b, kernel, param_shapes, pointer, has_fma);
        emitter.state_offsets = param_offsets(&state_shapes(kernel));
        emitter.hypers = hypers.iter().map(|h| (*h, Value::from_u32(0))).collect();
        emitter.function();
        b.seal_all_blocks();
        b.finalize(module.target_config());
    }
    let clif = options.listings.then(|| ctx.func.display().to_string());
    module.define_function(func_id, &mut ctx).map_err(|e| format!("cranelift: {e:?}"))?;
    let compiled = ctx.compiled_code().ok_or("cranelift produced no code")?;
    let code_size = compiled.code_buffer().len();
    let asm = compiled.vcode.clone();
    module.clear_context(&mut ctx);
    module.finalize_definitions().map_err(|e| e.to_string())?;
    let code = module.get_finalized_function(func_id);
    // SAFETY: the function was declared with exactly this signature
    // (one pointer argument, no results, the platform's C convention).
    let function = unsafe { std::mem::transmute::<*const u8, KernelFn>(code) };
    Ok(Compiled {
        module: Some(module),
        function,
        kernel: kernel.clone(),
        uses_state: kernel.buffers.iter().any(|b| matches!(b.kind, BufferKind::State(_))),
        hypers: table_hypers,
        clif,
        asm,
        code_size,
        compile_ms: start.elapsed().as_secs_f64() * 1e3,
        threads: None,
    })
}

/// Field offsets of [`KernelArgs`].
mod field {
    pub const PARAMS: i32 = 0;
    pub const SCRATCH: i32 = 8;
    pub const LOSSES: i32 = 16;
    pub const PREDICT: i32 = 24;
    pub const INPUTS: i32 = 32;
    pub const TARGETS: i32 = 40;
    pub const ROWS: i32 = 48;
    pub const BATCH: i32 = 56;
    pub const LEARNING_RATE: i32 = 64;
    pub const STATE: i32 = std::mem::offset_of!(super::KernelArgs, state) as i32;
    pub const STEP: i32 = std::mem::offset_of!(super::KernelArgs, step) as i32;
    pub const HYPER_TABLE: i32 = std::mem::offset_of!(super::KernelArgs, hyper_table) as i32;
    pub const THREADS: i32 = std::mem::offset_of!(super::KernelArgs, threads) as i32;
}

struct Emitter<'a, 'b> {
    b: &'a mut FunctionBuilder<'b>,
    kernel: &'a Kernel,
    param_offsets: Vec<usize>,
    pointer: Type,
    has_fma: bool,
    loop_vars: Vec<Variable>,
    locals: Vec<Variable>,
    /// The same locals as four lanes, one per copy, inside vector loops.
    vector_locals: Vec<Vec<Variable>>,
    /// Copies of each statement per iteration of the current vector loop:
    /// `groups` groups of four lanes for each blocked row.
    copies: usize,
    /// The copy being emitted: row `copy / groups`, group `copy % groups`.
    copy: usize,
    groups: usize,
    /// Lanes in use in the last group when it is partial (1 to 3).
    partial: Option<u32>,
    /// The blocked row loop around the current vector loop, and its rows
    /// per iteration (see [`Kernel::blocked_rows`]).
    row_block: Option<(LoopVar, u32)>,
    /// A constant added to each loop variable (for unrolled copies of a body).
    shift: Vec<i64>,
    /// Loads already emitted for the current statement, by address.
    loaded: HashMap<(u32, Index, i32), V>,
    /// Buffers stored anywhere in the top-level loop nest being emitted.
    nest_stores: std::collections::HashSet<u32>,
    /// Loop variables of the loops being emitted (not written-out ones).
    active_loops: Vec<LoopVar>,
    /// Loop variables whose value is a constant where code is being emitted
    /// (written-out loops, straight-line vector groups): folded into the
    /// immediate offsets of addresses instead of multiplied at run time.
    known: Vec<Option<i64>>,
    /// Address computations (base plus the variable terms of an index)
    /// already emitted for the current statement.
    addresses: HashMap<(Value, Vec<(LoopVar, u32)>), Value>,
    /// Locals assigned (so far) in the current vector loop.
    vector_locals_defined: std::collections::HashSet<crate::kernel::Local>,
    /// The loop variable whose iterations are the lanes, inside a vector loop.
    lanes: Option<LoopVar>,
    /// Per-batch base address of each buffer.
    bases: Vec<(Value, i32)>,
    batch_rows: Value,
    batch_rows_f32: Value,
    learning_rate: Value,
    loss_slot: Value,
    /// Where each optimizer state tensor starts in `KernelArgs::state` (f32s).
    state_offsets: Vec<usize>,
    /// The run-time scalars the kernel reads (besides `lr`) and, inside the
    /// batch loop, their values for the current batch: `t` from the step
    /// counter, the others from [`KernelArgs::hyper_table`] in this order.
    hypers: Vec<(Hyper, Value)>,
    /// Inside the batch loop of a kernel that reads any run-time scalar but
    /// `lr`: the current step `t` (1-based, i64), e.g. to seed random numbers.
    step: Option<Value>,
    /// [`KernelArgs::threads`], in kernels that call the library GEMM.
    threads: Option<Value>,
}

const MEM: MemFlagsData = MemFlagsData::trusted();

/// Innermost loops of at most this many iterations are written out in full.
pub const UNROLL_LIMIT: u32 = 8;

/// At most this many groups of four lanes per vector-loop iteration.
const MAX_GROUPS: usize = 4;

/// At most this many copies of a statement (groups × blocked rows).
const MAX_COPIES: usize = 8;

/// Fixed-length vector loops of at most this many lanes are written out.
const WRITE_OUT_LANES: u32 = 4 * MAX_GROUPS as u32;

impl<'a, 'b> Emitter<'a, 'b> {
    fn new(
        b: &'a mut FunctionBuilder<'b>,
        kernel: &'a Kernel,
        param_shapes: &[crate::ir::Shape],
        pointer: Type,
        has_fma: bool,
    ) -> Self {
        let loop_vars = (0..kernel.n_loop_vars).map(|_| b.declare_var(types::I64)).collect();
        let locals = (0..kernel.n_locals).map(|_| b.declare_var(types::F32)).collect();
        let vector_locals =
            (0..kernel.n_locals).map(|_| (0..MAX_COPIES).map(|_| b.declare_var(types::F32X4)).collect()).collect();
        let placeholder = Value::from_u32(0);
        Emitter {
            b,
            kernel,
            param_offsets: param_offsets(param_shapes),
            pointer,
            has_fma,
            loop_vars,
            locals,
            vector_locals,
            copies: 1,
            copy: 0,
            groups: 1,
            partial: None,
            row_block: None,
            shift: vec![0; kernel.n_loop_vars as usize],
            loaded: HashMap::new(),
            nest_stores: Default::default(),
            active_loops: Vec::new(),
            known: vec![None; kernel.n_loop_vars as usize],
            addresses: HashMap::new(),
            vector_locals_defined: Default::default(),
            lanes: None,
            bases: Vec::new(),
            batch_rows: placeholder,
            batch_rows_f32: placeholder,
            learning_rate: placeholder,
            loss_slot: placeholder,
            state_offsets: Vec::new(),
            hypers: Vec::new(),
            step: None,
            threads: None,
        }
    }

    /// entry → batch loop { body } → return
    fn function(&mut self) {
        let entry = self.b.create_block();
        self.b.append_block_params_for_function_params(entry);
        self.b.switch_to_block(entry);
        let args = self.b.block_params(entry)[0];
        let load_ptr = |b: &mut FunctionBuilder, offset: i32| b.ins().load(types::I64, MEM, args, offset);
        let params = load_ptr(self.b, field::PARAMS);
        let scratch = load_ptr(self.b, field::SCRATCH);
        let losses = load_ptr(self.b, field::LOSSES);
        let predict = load_ptr(self.b, field::PREDICT);
        let inputs = load_ptr(self.b, field::INPUTS);
        let targets = load_ptr(self.b, field::TARGETS);
        let rows = load_ptr(self.b, field::ROWS);
        let batch = load_ptr(self.b, field::BATCH);
        self.learning_rate = self.b.ins().load(types::F32, MEM, args, field::LEARNING_RATE);
        let has_state = self.kernel.buffers.iter().any(|b| matches!(b.kind, BufferKind::State(_)));
        let state = if has_state { load_ptr(self.b, field::STATE) } else { params };
        if self.kernel.body.iter().any(|s| matches!(s, Stmt::Gemm(_))) {
            self.threads = Some(load_ptr(self.b, field::THREADS));
        }
        // The step counter: `t` of the first batch is `args.step + 1`.
        let step_var = (!self.hypers.is_empty()).then(|| {
            let first = load_ptr(self.b, field::STEP);
            let first = self.b.ins().iadd_imm_s(first, 1);
            let var = self.b.declare_var(types::I64);
            self.b.def_var(var, first);
            var
        });
        // The table of the other run-time scalars: `n` f32s per batch, read
        // through a pointer that moves on by one batch's worth each batch.
        let n_table = self.hypers.iter().filter(|(h, _)| *h != Hyper::Step).count();
        let table_var = (n_table > 0).then(|| {
            let table = load_ptr(self.b, field::HYPER_TABLE);
            let var = self.b.declare_var(types::I64);
            self.b.def_var(var, table);
            var
        });

        let start = self.b.declare_var(types::I64);
        let loss_ptr = self.b.declare_var(types::I64);
        let zero = self.b.ins().iconst(types::I64, 0);
        self.b.def_var(start, zero);
        self.b.def_var(loss_ptr, losses);
        let header = self.b.create_block();
        let body = self.b.create_block();
        let exit = self.b.create_block();
        self.b.ins().jump(header, &[]);

        self.b.switch_to_block(header);
        let current = self.b.use_var(start);
        let more = self.b.ins().icmp(IntCC::SignedLessThan, current, rows);
        self.b.ins().brif(more, body, &[], exit, &[]);

        self.b.switch_to_block(body);
        let current = self.b.use_var(start);
        let left = self.b.ins().isub(rows, current);
        let is_short = self.b.ins().icmp(IntCC::SignedLessThan, left, batch);
        self.batch_rows = self.b.ins().select(is_short, left, batch);
        self.batch_rows_f32 = self.b.ins().fcvt_from_sint(types::F32, self.batch_rows);
        self.loss_slot = self.b.use_var(loss_ptr);
        let table_slot = table_var.map(|var| self.b.use_var(var));
        if let Some(var) = step_var {
            let t = self.b.use_var(var);
            self.step = Some(t);
            let mut slot = 0;
            for k in 0..self.hypers.len() {
                let value = match (self.hypers[k].0, table_slot) {
                    (Hyper::Step, _) => self.b.ins().fcvt_from_sint(types::F32, t),
                    (_, Some(table)) => {
                        slot += 1;
                        self.b.ins().load(types::F32, MEM, table, (slot - 1) * 4)
                    }
                    _ => unreachable!("kernels that read computed scalars load the table"),
                };
                self.hypers[k].1 = value;
            }
        }
        // Base addresses: parameters and scratch share one pointer each, with
        // the buffer's place folded into every access's immediate offset (few
        // live registers); data buffers move with the batch's first row.
        for buffer in &self.kernel.buffers {
            let base = match buffer.kind {
                BufferKind::Param(i) => (params, (self.param_offsets[i as usize] * 4) as i32),
                BufferKind::State(i) => (state, (self.state_offsets[i as usize] * 4) as i32),
                BufferKind::Scratch { offset } => (scratch, (offset * 4) as i32),
                BufferKind::Input(i) | BufferKind::Target(i) => {
                    let table = if matches!(buffer.kind, BufferKind::Input(_)) { inputs } else { targets };
                    let column_base = self.b.ins().load(self.pointer, MEM, table, (i * 8) as i32);
                    (self.row_base(column_base, current, buffer.shape), 0)
                }
                BufferKind::Predict => (self.row_base(predict, current, buffer.shape), 0),
            };
            self.bases.push(base);
        }
        let stmts = self.kernel.body.clone();
        for stmt in &stmts {
            self.nest_stores = stored_buffers(std::slice::from_ref(stmt));
            self.stmts(std::slice::from_ref(stmt));
        }
        self.nest_stores.clear();
        let next = self.b.ins().iadd(current, batch);
        self.b.def_var(start, next);
        let next_loss = self.b.ins().iadd_imm_u(self.loss_slot, 4);
        self.b.def_var(loss_ptr, next_loss);
        if let (Some(var), Some(table)) = (table_var, table_slot) {
            let next_table = self.b.ins().iadd_imm_u(table, (n_table * 4) as i64);
            self.b.def_var(var, next_table);
        }
        if let (Some(var), Some(t)) = (step_var, self.step) {
            let next_step = self.b.ins().iadd_imm_s(t, 1);
            self.b.def_var(var, next_step);
        }
        self.b.ins().jump(header, &[]);

        self.b.switch_to_block(exit);
        self.b.ins().return_(&[]);
    }

    fn row_base(&mut self, base: Value, first_row: Value, shape: crate::ir::Shape) -> Value {
        let width = shape.width().expect("data buffers have fixed widths") as i64;
        let offset = self.b.ins().imul_imm_u(first_row, width * 4);
        self.b.ins().iadd(base, offset)
    }

    fn stmts(&mut self, stmts: &[Stmt]) {
        for stmt in stmts {
            match stmt {
                Stmt::Loop { var, extent, body } if self.lanes.is_none() && self.kernel.vector_loops.contains(var) => {
                    self.vector_loop(*var, *extent, body)
                }
                Stmt::Loop { var, extent, body } if self.lanes.is_none() && self.rows_of(*var).is_some() => {
                    let rows = self.rows_of(*var).expect("matched");
                    self.blocked_loop(*var, *extent, rows, body)
                }
                // The reduction inside a vector loop (a matrix product's inner
                // loop) runs two steps per iteration: half the loop control,
                // and the register allocator can alternate registers between
                // the two steps instead of moving every accumulator back.
                // (With loads that may move — see `load_flags` — Cranelift
                // schedules each step's loads next to their multiply-adds;
                // otherwise both steps' loads were live at once and spilled.)
                Stmt::Loop { var, extent, body }
                    if self.lanes.is_some()
                        && self.kernel.kind != KernelKind::Eval
                        && !body.iter().any(|s| matches!(s, Stmt::Loop { .. }))
                        && !matches!(extent, Extent::Fixed(n) if *n <= UNROLL_LIMIT) =>
                {
                    let start = self.b.ins().iconst(types::I64, 0);
                    let limit = self.limit(*extent);
                    let v = var.0 as usize;
                    self.counted_loop(*var, start, limit, 2, |e| {
                        e.stmts(body);
                        e.shift[v] += 1;
                        e.stmts(body);
                        e.shift[v] -= 1;
                    });
                    if !matches!(extent, Extent::Fixed(n) if n % 2 == 0) {
                        let start = self.b.use_var(self.loop_vars[v]);
                        self.counted_loop(*var, start, limit, 1, |e| e.stmts(body));
                    }
                }
                // A short innermost loop of fixed length is written out: the
                // index becomes a constant in every address, and the loop
                // control disappears (tiny layers such as iris's 4 inputs).
                Stmt::Loop { var, extent: Extent::Fixed(n), body }
                    if *n <= UNROLL_LIMIT && !body.iter().any(|s| matches!(s, Stmt::Loop { .. })) =>
                {
                    for k in 0..*n {
                        self.set_constant(*var, k as i64);
                        self.stmts(body);
                    }
                    self.known[var.0 as usize] = None;
                }
                Stmt::Loop { var, extent, body } => {
                    let start = self.b.ins().iconst(types::I64, 0);
                    let limit = self.limit(*extent);
                    self.counted_loop(*var, start, limit, 1, |e| e.stmts(body));
                }
                Stmt::Assign { local, value } => {
                    self.addresses.clear();
                    if self.lanes.is_some() {
                        // Evaluate every copy before defining any: a copy may
                        // read the local's previous value.
                        self.loaded.clear();
                        let mut values = Vec::new();
                        for copy in 0..self.copies {
                            self.copy = copy;
                            let v = self.expr(value);
                            values.push(self.splat_if_scalar(v).value);
                        }
                        self.copy = 0;
                        self.vector_locals_defined.insert(*local);
                        for (copy, v) in values.into_iter().enumerate() {
                            self.b.def_var(self.vector_locals[local.0 as usize][copy], v);
                        }
                    } else {
                        let value = self.expr(value);
                        self.b.def_var(self.locals[local.0 as usize], value.value);
                    }
                }
                Stmt::Store { buffer, index, value } => {
                    // Every copy's value first, then the stores: no copy
                    // reads what another one stores.
                    self.loaded.clear();
                    self.addresses.clear();
                    let mut values = Vec::with_capacity(self.copies);
                    for copy in 0..self.copies {
                        self.copy = copy;
                        let value = self.expr(value);
                        values.push(if self.lanes.is_some() { self.splat_if_scalar(value) } else { value });
                    }
                    for (copy, value) in values.into_iter().enumerate() {
                        self.copy = copy;
                        let (address, offset) = self.address(buffer.0, index);
                        let offset = offset + (self.group() as u32 * 16) as i32;
                        match self.lanes_in_copy() {
                            4 => {
                                self.b.ins().store(MEM, value.value, address, offset);
                            }
                            lanes => self.store_partial(value.value, address, offset, lanes),
                        }
                    }
                    self.copy = 0;
                }
                Stmt::Gemm(g) => self.gemm(g),
                Stmt::StoreLoss(value) => {
                    self.addresses.clear();
                    let value = self.expr(value);
                    self.b.ins().store(MEM, value.value, self.loss_slot, 0);
                }
            }
        }
    }

    /// A call of [`gemm::sgemm`] for the product `g`, with each operand's
    /// address for the current batch and its strides as constants.
    fn gemm(&mut self, g: &crate::kernel::Gemm) {
        let pointer = self.pointer;
        let mut sig = cranelift_codegen::ir::Signature::new(self.b.func.signature.call_conv);
        sig.params.extend(std::iter::repeat_n(AbiParam::new(pointer), 12));
        sig.params.push(AbiParam::new(types::I64));
        sig.params.push(AbiParam::new(types::F32));
        let sig = self.b.import_signature(sig);
        let width = |e: &Self, buffer: crate::kernel::BufferId| {
            e.kernel.buffers[buffer.0 as usize].shape.width().expect("fixed widths") as i64
        };
        let address = |e: &mut Self, buffer: crate::kernel::BufferId| {
            let (base, offset) = e.bases[buffer.0 as usize];
            e.b.ins().iadd_imm_s(base, offset as i64)
        };
        // Element strides (row, column) of each operand as the product reads it.
        let (a_width, b_width, c_width) = (width(self, g.a), width(self, g.b), width(self, g.out));
        let (a_rs, a_cs) = if g.trans_a { (1, a_width) } else { (a_width, 1) };
        let (b_rs, b_cs) = if g.trans_b { (1, b_width) } else { (b_width, 1) };
        let a = address(self, g.a);
        let b = address(self, g.b);
        let c = address(self, g.out);
        let m = self.limit(g.m);
        let n = self.b.ins().iconst(types::I64, g.n as i64);
        let k = self.limit(g.k);
        let threads = self.threads.expect("loaded in kernels with a gemm");
        let constant = |e: &mut Self, x: i64| e.b.ins().iconst(types::I64, x);
        let args = [
            threads,
            m,
            n,
            k,
            a,
            constant(self, a_rs),
            constant(self, a_cs),
            b,
            constant(self, b_rs),
            constant(self, b_cs),
            c,
            constant(self, c_width),
        ];
        let (accumulate, scale) = match &g.accumulate {
            Some(scale) => {
                self.addresses.clear();
                self.loaded.clear();
                let value = self.expr(scale).value;
                (constant(self, 1), value)
            }
            None => (constant(self, 0), self.b.ins().f32const(0.0)),
        };
        let mut args = args.to_vec();
        args.extend([accumulate, scale]);
        let callee = constant(self, gemm::sgemm as *const () as i64);
        self.b.ins().call_indirect(sig, callee, &args);
    }

    fn limit(&mut self, extent: Extent) -> Value {
        match extent {
            Extent::Fixed(n) => self.b.ins().iconst(types::I64, n as i64),
            Extent::Batch => self.batch_rows,
        }
    }

    /// `for var in start..limit step step { body }`, skipped when empty.
    fn counted_loop(&mut self, var: LoopVar, start: Value, limit: Value, step: i64, body: impl FnOnce(&mut Self)) {
        let variable = self.loop_vars[var.0 as usize];
        self.b.def_var(variable, start);
        self.known[var.0 as usize] = None;
        let head = self.b.create_block();
        let exit = self.b.create_block();
        // Enter only if at least one iteration fits: start + step <= limit.
        let first_end = self.b.ins().iadd_imm_s(start, step);
        let enter = self.b.ins().icmp(IntCC::SignedLessThanOrEqual, first_end, limit);
        self.b.ins().brif(enter, head, &[] as &[BlockArg], exit, &[]);
        self.b.switch_to_block(head);
        self.active_loops.push(var);
        body(self);
        self.active_loops.pop();
        let value = self.b.use_var(variable);
        let next = self.b.ins().iadd_imm_s(value, step);
        self.b.def_var(variable, next);
        let next_end = self.b.ins().iadd_imm_s(next, step);
        let again = self.b.ins().icmp(IntCC::SignedLessThanOrEqual, next_end, limit);
        self.b.ins().brif(again, head, &[] as &[BlockArg], exit, &[]);
        self.b.seal_block(head);
        self.b.switch_to_block(exit);
        self.b.seal_block(exit);
    }

    /// The rows per iteration of a blocked row loop.
    fn rows_of(&self, var: LoopVar) -> Option<u32> {
        self.kernel.blocked_rows.iter().find(|(v, _)| *v == var).map(|(_, rows)| *rows)
    }

    /// A row loop around a vector loop, `rows` rows per iteration (each
    /// statement of the vector loop is emitted once per row and group of
    /// lanes), then the rows left over one at a time.
    fn blocked_loop(&mut self, var: LoopVar, extent: Extent, rows: u32, body: &[Stmt]) {
        let zero = self.b.ins().iconst(types::I64, 0);
        let limit = self.limit(extent);
        self.row_block = Some((var, rows));
        self.counted_loop(var, zero, limit, rows as i64, |e| e.stmts(body));
        self.row_block = None;
        if !matches!(extent, Extent::Fixed(n) if n % rows == 0) {
            let start = self.b.use_var(self.loop_vars[var.0 as usize]);
            self.counted_loop(var, start, limit, 1, |e| e.stmts(body));
        }
    }

    /// The group of four lanes the current copy covers.
    fn group(&self) -> usize {
        self.copy % self.groups
    }

    /// Lanes in use in the current copy: 4, or fewer in a partial last group.
    fn lanes_in_copy(&self) -> u32 {
        match self.partial {
            Some(lanes) if self.lanes.is_some() && self.group() == self.groups - 1 => lanes,
            _ => 4,
        }
    }

    /// Emit `body` with `groups` groups of lanes per blocked row.
    fn with_groups(&mut self, groups: usize, partial: Option<u32>, body: impl FnOnce(&mut Self)) {
        let rows = self.row_block.map_or(1, |(_, rows)| rows as usize);
        debug_assert!(groups * rows <= MAX_COPIES, "the blocking keeps copies within MAX_COPIES");
        (self.groups, self.partial, self.copies) = (groups, partial, groups * rows);
        body(self);
        (self.groups, self.partial, self.copies) = (1, None, 1);
    }

    /// Four lanes at a time — several groups of four at once when the body
    /// has an inner loop, so independent accumulators hide the latency of
    /// `fma`. A loop of fixed length ends in straight-line code for the
    /// last groups, the very last one partial (1 to 3 lanes) if the length
    /// is not a multiple of four; short ones are only that. A loop over the
    /// batch ends with the remaining iterations one at a time.
    fn vector_loop(&mut self, var: LoopVar, extent: Extent, body: &[Stmt]) {
        let has_inner_loop = body.iter().any(|s| matches!(s, Stmt::Loop { .. }));
        let variable = self.loop_vars[var.0 as usize];
        self.lanes = Some(var);
        self.vector_locals_defined.clear();
        match extent {
            Extent::Fixed(n) => {
                let mut done = 0;
                if n > WRITE_OUT_LANES {
                    let groups = if has_inner_loop { MAX_GROUPS } else { 1 };
                    let step = 4 * groups as u32;
                    done = n / step * step;
                    let zero = self.b.ins().iconst(types::I64, 0);
                    let limit = self.b.ins().iconst(types::I64, done as i64);
                    self.with_groups(groups, None, |e| {
                        e.counted_loop(var, zero, limit, step as i64, |e| e.stmts(body))
                    });
                }
                let rest = n - done;
                if rest > 0 {
                    self.set_constant(var, done as i64);
                    let partial = (rest % 4 != 0).then_some(rest % 4);
                    self.with_groups(rest.div_ceil(4) as usize, partial, |e| e.stmts(body));
                    self.known[var.0 as usize] = None;
                }
                self.lanes = None;
            }
            Extent::Batch => {
                let zero = self.b.ins().iconst(types::I64, 0);
                let limit = self.limit(extent);
                let groups = if has_inner_loop { MAX_GROUPS } else { 1 };
                self.with_groups(groups, None, |e| {
                    e.counted_loop(var, zero, limit, 4 * groups as i64, |e| e.stmts(body))
                });
                if groups > 1 {
                    let start = self.b.use_var(variable);
                    self.counted_loop(var, start, limit, 4, |e| e.stmts(body));
                }
                // The vector loops left `var` at the first unprocessed index
                // (or at 0 when they never ran).
                self.lanes = None;
                let start = self.b.use_var(variable);
                self.counted_loop(var, start, limit, 1, |e| e.stmts(body));
            }
        }
    }

    /// Base plus variable part, and the constant part as an immediate offset.
    fn address(&mut self, buffer: u32, index: &Index) -> (Value, i32) {
        let (base, base_offset) = self.bases[buffer as usize];
        let mut offset = base_offset as i64 + index.offset as i64 * 4;
        let mut terms = Vec::new();
        for &(var, stride) in &index.terms {
            offset += (self.shift_of(var) + self.known[var.0 as usize].unwrap_or(0)) * stride as i64 * 4;
            if self.known[var.0 as usize].is_none() {
                terms.push((var, stride));
            }
        }
        if terms.is_empty() {
            return (base, offset as i32);
        }
        let key = (base, terms);
        if let Some(&address) = self.addresses.get(&key) {
            return (address, offset as i32);
        }
        let mut address = base;
        for &(var, stride) in &key.1 {
            let value = self.b.use_var(self.loop_vars[var.0 as usize]);
            let scaled = self.b.ins().imul_imm_u(value, stride as i64 * 4);
            address = self.b.ins().iadd(address, scaled);
        }
        self.addresses.insert(key, address);
        (address, offset as i32)
    }

    /// Give `var` the value `k` in the code that follows, known at compile time.
    fn set_constant(&mut self, var: LoopVar, k: i64) {
        let value = self.b.ins().iconst(types::I64, k);
        self.b.def_var(self.loop_vars[var.0 as usize], value);
        self.known[var.0 as usize] = Some(k);
    }

    /// The constant added to `var` in the copy being emitted: the blocked
    /// row it covers, or its place in an unrolled body.
    fn shift_of(&self, var: LoopVar) -> i64 {
        let row = match self.row_block {
            Some((row_var, _)) if row_var == var => (self.copy / self.groups) as i64,
            _ => 0,
        };
        self.shift[var.0 as usize] + row
    }

    /// Flags for a load: movable (a pure value that Cranelift may schedule
    /// freely and merge with identical loads) when nothing can store to
    /// that element while the load's value is in use — data, which the
    /// kernel never writes, or a buffer that the current loop nest does not
    /// store, at an address that moves with one of the nest's loops (so the
    /// load can neither move out of the nest nor merge with a load in
    /// another one).
    fn load_flags(&self, buffer: u32, index: &Index) -> MemFlagsData {
        let data = matches!(self.kernel.buffers[buffer as usize].kind, BufferKind::Input(_) | BufferKind::Target(_));
        let in_loop = index.terms.iter().any(|(v, _)| self.active_loops.contains(v));
        if data || (!self.nest_stores.contains(&buffer) && in_loop) { MEM.with_readonly().with_can_move() } else { MEM }
    }

    /// The first `lanes` (1 to 3) floats at `address + offset` in the low
    /// lanes of a vector, reading nothing beyond them.
    fn load_partial(&mut self, address: Value, offset: i32, lanes: u32) -> Value {
        let flags = MemFlagsData::new().with_notrap();
        if lanes == 1 {
            let x = self.b.ins().load(types::F32, flags, address, offset);
            return self.b.ins().scalar_to_vector(types::F32X4, x);
        }
        let pair = self.b.ins().load(types::F64, flags, address, offset);
        let pair = self.b.ins().scalar_to_vector(types::F64X2, pair);
        let v = self.b.ins().bitcast(types::F32X4, LANES, pair);
        if lanes == 3 {
            let third = self.b.ins().load(types::F32, flags, address, offset + 8);
            self.b.ins().insertlane(v, third, 2)
        } else {
            v
        }
    }

    /// Store the first `lanes` (1 to 3) lanes of `value`, nothing beyond.
    fn store_partial(&mut self, value: Value, address: Value, offset: i32, lanes: u32) {
        let flags = MemFlagsData::new().with_notrap();
        if lanes == 1 {
            let x = self.b.ins().extractlane(value, 0);
            self.b.ins().store(flags, x, address, offset);
            return;
        }
        let pair = self.b.ins().bitcast(types::F64X2, LANES, value);
        let low = self.b.ins().extractlane(pair, 0);
        self.b.ins().store(flags, low, address, offset);
        if lanes == 3 {
            let third = self.b.ins().extractlane(value, 2);
            self.b.ins().store(flags, third, address, offset + 8);
        }
    }

    fn scalar(&mut self, x: f32) -> V {
        V { value: self.b.ins().f32const(x), vector: false }
    }

    fn splat_if_scalar(&mut self, x: V) -> V {
        if x.vector { x } else { V { value: self.b.ins().splat(types::F32X4, x.value), vector: true } }
    }

    /// Both operands in the same form: splat a scalar if the other is a vector.
    fn pair(&mut self, x: V, y: V) -> (Value, Value, bool) {
        if x.vector || y.vector {
            let (x, y) = (self.splat_if_scalar(x), self.splat_if_scalar(y));
            (x.value, y.value, true)
        } else {
            (x.value, y.value, false)
        }
    }

    fn load(&mut self, buffer: u32, index: &Index) -> V {
        let stride = self.lanes.map_or(0, |lane| vectorize_stride(index, lane));
        let (address, offset) = self.address(buffer, index);
        // Group g of the lanes starts 4g iterations further on.
        let offset = offset + (self.group() as u32 * 4 * stride * 4) as i32;
        // Copies share what they read at the same place (a weight row read
        // by every blocked row, an input broadcast to every group).
        let key = (buffer, index.clone(), offset);
        if self.lanes.is_some()
            && let Some(v) = self.loaded.get(&key)
        {
            return *v;
        }
        let lanes = self.lanes_in_copy();
        let flags = self.load_flags(buffer, index);
        let v = match (self.lanes, stride) {
            (None, _) | (Some(_), 0) => {
                V { value: self.b.ins().load(types::F32, flags, address, offset), vector: false }
            }
            (Some(_), 1) if lanes < 4 => V { value: self.load_partial(address, offset, lanes), vector: true },
            (Some(_), 1) => {
                // Lanes are contiguous but only 4-byte aligned.
                let flags = if flags.readonly() {
                    MemFlagsData::new().with_notrap().with_readonly().with_can_move()
                } else {
                    MemFlagsData::new().with_notrap()
                };
                V { value: self.b.ins().load(types::F32X4, flags, address, offset), vector: true }
            }
            (Some(_), stride) => {
                let first = self.b.ins().load(types::F32, MEM, address, offset);
                let mut value = self.b.ins().splat(types::F32X4, first);
                for lane in 1..lanes as u8 {
                    let lane_offset = offset + (lane as u32 * stride * 4) as i32;
                    let element = self.b.ins().load(types::F32, MEM, address, lane_offset);
                    value = self.b.ins().insertlane(value, element, lane);
                }
                V { value, vector: true }
            }
        };
        if self.lanes.is_some() {
            self.loaded.insert(key, v);
        }
        v
    }

    fn expr(&mut self, expr: &Expr) -> V {
        match expr {
            Expr::Const(c) => self.scalar(*c),
            Expr::Load(buffer, index) => self.load(buffer.0, index),
            Expr::Local(local) => {
                if self.lanes.is_some() && self.vector_locals_defined.contains(local) {
                    V { value: self.b.use_var(self.vector_locals[local.0 as usize][self.copy]), vector: true }
                } else {
                    V { value: self.b.use_var(self.locals[local.0 as usize]), vector: false }
                }
            }
            Expr::BatchSize => V { value: self.batch_rows_f32, vector: false },
            Expr::LearningRate => V { value: self.learning_rate, vector: false },
            Expr::Hyper(h) => {
                let value = self.hypers.iter().find(|(k, _)| k == h).expect("collected by hypers_of").1;
                V { value, vector: false }
            }
            Expr::Unary(op, x) => {
                let x = self.expr(x);
                self.unary(*op, x)
            }
            Expr::Compare(kind, x, y) => {
                let (x, y) = (self.expr(x), self.expr(y));
                let (x, y, vector) = self.pair(x, y);
                let holds = self.b.ins().fcmp(float_cc(*kind), x, y);
                let (one, zero) = (self.constant_like(1.0, vector), self.constant_like(0.0, vector));
                V { value: self.choose(holds, one, zero, vector), vector }
            }
            Expr::Select(cond, a, b) => {
                // A comparison as the condition is the select's own test, so
                // `select(x > 0, ..)` is one fcmp, not a 1.0/0.0 and a test of it.
                let (lhs, rhs, kind) = match &**cond {
                    Expr::Compare(kind, x, y) => (self.expr(x), self.expr(y), *kind),
                    other => (self.expr(other), self.scalar(0.0), Compare::Ne),
                };
                let (a, b) = (self.expr(a), self.expr(b));
                let vector = lhs.vector || rhs.vector || a.vector || b.vector;
                let [lhs, rhs, a, b] =
                    [lhs, rhs, a, b].map(|v| if vector { self.splat_if_scalar(v).value } else { v.value });
                let holds = self.b.ins().fcmp(float_cc(kind), lhs, rhs);
                V { value: self.choose(holds, a, b, vector), vector }
            }
            Expr::Dropout { key, threshold, scale, index, x, step } => {
                // Scalar only: `vectorize` keeps dropout out of vector loops.
                let x = self.expr(x).value;
                let step = match (&**step, self.step) {
                    (Expr::Hyper(Hyper::Step), Some(t)) => t,
                    (other, _) => {
                        let value = self.expr(other).value;
                        self.b.ins().fcvt_to_sint_sat(types::I64, value)
                    }
                };
                let place = self.element_index(index);
                let step = self.b.ins().ireduce(types::I32, step);
                let place = self.b.ins().ireduce(types::I32, place);
                // dropout_hash(key, t, place) = mix(mix(key ^ t) ^ place), in u32.
                let key = self.b.ins().iconst(types::I32, *key as i64);
                let h = self.b.ins().bxor(key, step);
                let h = self.mix32(h);
                let h = self.b.ins().bxor(h, place);
                let h = self.mix32(h);
                let threshold = self.b.ins().iconst(types::I32, *threshold as i64);
                let keep = self.b.ins().icmp(IntCC::UnsignedGreaterThanOrEqual, h, threshold);
                let scale = self.b.ins().f32const(*scale);
                let scaled = self.b.ins().fmul(x, scale);
                let zero = self.b.ins().f32const(0.0);
                V { value: self.b.ins().select(keep, scaled, zero), vector: false }
            }
            Expr::Binary(BinaryOp::Add, x, y) if self.has_fma && matches!(**y, Expr::Binary(BinaryOp::Mul, ..)) => {
                // acc + a·b → fma(a, b, acc)
                let Expr::Binary(BinaryOp::Mul, a, b) = &**y else { unreachable!("matched above") };
                let acc = self.expr(x);
                let (a, b) = (self.expr(a), self.expr(b));
                // x86's fma overwrites its first operand: make that the
                // per-copy vector (a weight row), not a broadcast scalar that
                // every copy shares and would otherwise have to copy first.
                let (a, b) = if !a.vector && b.vector { (b, a) } else { (a, b) };
                let vector = acc.vector || a.vector || b.vector;
                let (acc, a, b) = if vector {
                    (self.splat_if_scalar(acc).value, self.splat_if_scalar(a).value, self.splat_if_scalar(b).value)
                } else {
                    (acc.value, a.value, b.value)
                };
                V { value: self.b.ins().fma(a, b, acc), vector }
            }
            Expr::Binary(op, x, y) => {
                let (x, y) = (self.expr(x), self.expr(y));
                let (x, y, vector) = self.pair(x, y);
                let value = match op {
                    BinaryOp::Add => self.b.ins().fadd(x, y),
                    BinaryOp::Sub => self.b.ins().fsub(x, y),
                    BinaryOp::Mul => self.b.ins().fmul(x, y),
                    BinaryOp::Div => self.b.ins().fdiv(x, y),
                    BinaryOp::Max => {
                        let greater = self.b.ins().fcmp(FloatCC::GreaterThan, y, x);
                        if vector {
                            let mask = self.b.ins().bitcast(types::F32X4, LANES, greater);
                            self.b.ins().bitselect(mask, y, x)
                        } else {
                            self.b.ins().select(greater, y, x)
                        }
                    }
                };
                V { value, vector }
            }
        }
    }

    fn constant_like(&mut self, c: f32, vector: bool) -> Value {
        let value = self.b.ins().f32const(c);
        if vector { self.b.ins().splat(types::F32X4, value) } else { value }
    }

    /// `cond ? a : b` for a comparison result of either form.
    fn choose(&mut self, cond: Value, a: Value, b: Value, vector: bool) -> Value {
        if vector {
            let mask = self.b.ins().bitcast(types::F32X4, LANES, cond);
            self.b.ins().bitselect(mask, a, b)
        } else {
            self.b.ins().select(cond, a, b)
        }
    }

    fn unary(&mut self, op: UnaryOp, x: V) -> V {
        let vector = x.vector;
        let v = x.value;
        let value = match op {
            UnaryOp::Neg => self.b.ins().fneg(v),
            UnaryOp::Abs => self.b.ins().fabs(v),
            UnaryOp::Sqrt => self.b.ins().sqrt(v),
            UnaryOp::Exp => math::exp(self.b, v, vector),
            UnaryOp::Sigmoid => math::sigmoid(self.b, v, vector),
            UnaryOp::Tanh => math::tanh(self.b, v, vector),
            UnaryOp::Log => math::log(self.b, v, vector),
            UnaryOp::Relu => {
                let zero = self.constant_like(0.0, vector);
                let positive = self.b.ins().fcmp(FloatCC::GreaterThan, v, zero);
                self.choose(positive, v, zero, vector)
            }
            UnaryOp::Step => {
                let (zero, one) = (self.constant_like(0.0, vector), self.constant_like(1.0, vector));
                let positive = self.b.ins().fcmp(FloatCC::GreaterThan, v, zero);
                self.choose(positive, one, zero, vector)
            }
            UnaryOp::Sign => {
                let zero = self.constant_like(0.0, vector);
                let one = self.constant_like(1.0, vector);
                let minus_one = self.constant_like(-1.0, vector);
                let positive = self.b.ins().fcmp(FloatCC::GreaterThan, v, zero);
                let negative = self.b.ins().fcmp(FloatCC::LessThan, v, zero);
                let low = self.choose(negative, minus_one, zero, vector);
                self.choose(positive, one, low, vector)
            }
            UnaryOp::Powi(n) => {
                let magnitude = self.powi(v, n.unsigned_abs(), vector);
                if n < 0 {
                    let one = self.constant_like(1.0, vector);
                    self.b.ins().fdiv(one, magnitude)
                } else {
                    magnitude
                }
            }
        };
        V { value, vector }
    }

    /// murmur3's 32-bit finaliser, as [`crate::ir::dropout_hash`] uses it.
    fn mix32(&mut self, h: Value) -> Value {
        let mut h = h;
        for (shift, factor) in [(16, Some(0x85eb_ca6b_u32)), (13, Some(0xc2b2_ae35)), (16, None)] {
            let shifted = self.b.ins().ushr_imm_u(h, shift);
            h = self.b.ins().bxor(h, shifted);
            if let Some(factor) = factor {
                let factor = self.b.ins().iconst(types::I32, factor as i64);
                h = self.b.ins().imul(h, factor);
            }
        }
        h
    }

    /// An affine index's value (in elements), as an i64.
    fn element_index(&mut self, index: &Index) -> Value {
        let shifts: i64 = index.terms.iter().map(|(var, stride)| self.shift_of(*var) * *stride as i64).sum();
        let mut value = self.b.ins().iconst(types::I64, index.offset as i64 + shifts);
        for (var, stride) in &index.terms {
            let v = self.b.use_var(self.loop_vars[var.0 as usize]);
            let scaled = self.b.ins().imul_imm_u(v, *stride as i64);
            value = self.b.ins().iadd(value, scaled);
        }
        value
    }

    /// `x^n` by repeated squaring.
    fn powi(&mut self, x: Value, n: u32, vector: bool) -> Value {
        if n == 0 {
            return self.constant_like(1.0, vector);
        }
        let mut result: Option<Value> = None;
        let mut base = x;
        let mut n = n;
        loop {
            if n & 1 == 1 {
                result = Some(match result {
                    Some(r) => self.b.ins().fmul(r, base),
                    None => base,
                });
            }
            n >>= 1;
            if n == 0 {
                break;
            }
            base = self.b.ins().fmul(base, base);
        }
        result.expect("n > 0")
    }
}

/// A value in the generated code: one f32, or four lanes.
#[derive(Clone, Copy)]
struct V {
    value: Value,
    vector: bool,
}

/// The Cranelift condition for a comparison; NaN compares as in Rust (and
/// the interpreter): false, except for `!=`.
fn float_cc(kind: Compare) -> FloatCC {
    match kind {
        Compare::Lt => FloatCC::LessThan,
        Compare::Le => FloatCC::LessThanOrEqual,
        Compare::Gt => FloatCC::GreaterThan,
        Compare::Ge => FloatCC::GreaterThanOrEqual,
        Compare::Eq => FloatCC::Equal,
        Compare::Ne => FloatCC::NotEqual,
    }
}

/// The buffers a statement list stores to.
fn stored_buffers(body: &[Stmt]) -> std::collections::HashSet<u32> {
    let mut out = std::collections::HashSet::new();
    crate::kernel::vectorize::walk(body, &mut |stmt| match stmt {
        Stmt::Store { buffer, .. } => {
            out.insert(buffer.0);
        }
        Stmt::Gemm(g) => {
            out.insert(g.out.0);
        }
        _ => {}
    });
    out
}

/// Lane order for bitcasts between vector types (x86 is little-endian).
const LANES: MemFlagsData = MemFlagsData::new().with_endianness(cranelift_codegen::ir::Endianness::Little);

/// How far apart consecutive lanes are in a load's index.
fn vectorize_stride(index: &Index, lane: LoopVar) -> u32 {
    index.terms.iter().filter(|(v, _)| *v == lane).map(|(_, s)| *s).sum()
}
