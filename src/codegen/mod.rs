//! Codegen: kernel IR → Cranelift IR → native code in memory.
//!
//! Each [`Kernel`] becomes one function `extern "C" fn(*const KernelArgs)`
//! that loops over the batches of its rows itself, so a whole epoch of
//! training is one call. This file is the driver: it sets up the target
//! and the JIT module, has `emit.rs` build the function, and returns it as
//! a [`Compiled`]. `abi.rs` is what the runtime sees (the argument block,
//! the parameter packing, the checked call); `emit.rs` turns statements and
//! expressions into Cranelift instructions, and `emit/loops.rs` the loops
//! (counted, written out, vector, blocked); `math.rs` has the inline
//! `exp`, `log`, `sigmoid` and `tanh`; `gemm.rs` is the native side of
//! [`crate::kernel::Stmt::Gemm`].
//!
//! Loop variables and scalar locals are Cranelift variables (the frontend
//! builds SSA); buffer addresses are base pointers plus affine offsets,
//! without bounds checks: the lowering proved every index in bounds for the
//! batch size the scratch memory was sized for, and [`Compiled`] refuses
//! arguments that break those assumptions.

mod abi;
mod emit;
pub mod gemm;
mod math;

pub use abi::{Compiled, KernelArgs, param_len, param_offsets};

use crate::ir::Hyper;
use crate::kernel::parallel::PARALLEL_MIN_WORK;
use crate::kernel::{BufferKind, Expr, Kernel};
use abi::KernelFn;
use cranelift_codegen::ir::{AbiParam, UserFuncName, Value};
use cranelift_codegen::isa::OwnedTargetIsa;
use cranelift_codegen::settings::{self, Configurable};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::{Linkage, Module, default_libcall_names};
use emit::Emitter;
use std::time::Instant;

/// The run-time scalars a kernel reads besides `lr`, in order of first use.
fn hypers_of(kernel: &Kernel) -> Vec<Hyper> {
    let mut out = Vec::new();
    crate::kernel::walk_exprs(&kernel.body, &mut |e| {
        if let Expr::Hyper(h) = e
            && !out.contains(h)
        {
            out.push(*h);
        }
    });
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

/// Options for compilation.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// Run Cranelift's IR verifier (on in tests and debug builds).
    pub verify: bool,
    /// Keep the Cranelift IR text and the machine code listing for
    /// `nnc ir --stage clif|asm` (printing them costs about a tenth of the
    /// compile time, so runs that only execute the kernel skip it).
    pub listings: bool,
    /// The threads the kernel will run on: with more than one, a kernel
    /// with enough work per batch ([`Options::team_min_work`]) is
    /// compiled to run on a team of that many, each thread its share of
    /// every statement; the result is bitwise the same.
    pub threads: usize,
    /// The least work per batch (`kernel::parallel::work`) for which a
    /// kernel gets a team version ([`PARALLEL_MIN_WORK`] unless a test
    /// wants every kernel to have one).
    pub team_min_work: u64,
}

impl Default for Options {
    fn default() -> Options {
        Options { verify: cfg!(debug_assertions), listings: false, threads: 1, team_min_work: PARALLEL_MIN_WORK }
    }
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

/// Compile a kernel to native code: for one thread, and — with
/// `options.threads` above one and enough work per batch — also for a team
/// of that many (compiled on a second thread meanwhile). The two give
/// bitwise the same results; [`Compiled::call`] runs whichever is faster
/// at the time (see there).
pub fn compile(kernel: &Kernel, param_shapes: &[crate::ir::Shape], options: Options) -> Result<Compiled, String> {
    let start = Instant::now();
    let team = options.threads > 1 && crate::kernel::parallel::work(kernel) >= options.team_min_work;
    if !team {
        return compile_for(kernel, param_shapes, options, 1);
    }
    let (single, team) = std::thread::scope(|scope| {
        let team = scope.spawn(|| compile_for(kernel, param_shapes, options, options.threads));
        let single = compile_for(kernel, param_shapes, options, 1);
        (single, team.join().unwrap_or_else(|_| Err("the compiler thread panicked".to_string())))
    });
    let mut compiled = single?;
    compiled.team_version = Some(Box::new(team?));
    compiled.compile_ms = start.elapsed().as_secs_f64() * 1e3;
    Ok(compiled)
}

/// Compile a kernel for `team` threads (1: the plain kernel).
fn compile_for(
    kernel: &Kernel,
    param_shapes: &[crate::ir::Shape],
    options: Options,
    team: usize,
) -> Result<Compiled, String> {
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
        emitter.team_size = team;
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
        team,
        team_version: None,
        choice: Default::default(),
    })
}
