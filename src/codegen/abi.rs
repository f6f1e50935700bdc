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
    /// The team this call's threads form, for kernels compiled for one
    /// (see `kernel::parallel`); filled in by [`Compiled::call`].
    pub team: *const crate::threads::Team,
    /// This thread's place in the team (0 runs the parts no other does).
    pub thread: i64,
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
            team: std::ptr::null(),
            thread: 0,
        }
    }
}

pub(super) type KernelFn = unsafe extern "C" fn(*const KernelArgs);

/// One team thread's copy of the arguments, sent to the thread.
struct ThreadArgs(KernelArgs);

// SAFETY: the pointers are used only during the call that made them, which
// waits for every thread; the buffers they point to are shared as the
// kernel's parts allow (`kernel::parallel`).
unsafe impl Send for ThreadArgs {}

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
    /// The threads every call of `function` runs on, each its share of
    /// every statement (`kernel::parallel`): 1 for the plain kernel.
    pub team: usize,
    /// The same kernel compiled for a team of threads, when the caller asked
    /// for threads and the kernel has the work for them: it gives bitwise the
    /// same results, and [`Compiled::call`] runs whichever is faster.
    pub team_version: Option<Box<Compiled>>,
    /// Which of the two versions runs, and when to time them again.
    pub(super) choice: Choice,
}

/// The batches a version runs when it is timed while the other is faster:
/// at least this many, and at least [`PROBE_SECONDS`] by the last times.
const PROBE_BATCHES: u64 = 8;
const PROBE_SECONDS: f64 = 0.004;

/// After the first timing of both (on the first batches, which are slower
/// than later ones: caches and pages are cold), the slower is timed again
/// this soon.
const FIRST_PROBE_EVERY_SECONDS: f64 = 0.025;

/// The faster version runs in chunks of about this long, each timed: a
/// team waits at every barrier for its slowest thread, so when another
/// process takes a core it slows down many times over, and the next chunk
/// runs on one thread instead.
const CHUNK_SECONDS: f64 = 0.05;

/// How long the faster version runs before the other is timed again (so a
/// team gets its cores back when the machine is quiet again).
const PROBE_EVERY_SECONDS: f64 = 0.5;

/// What [`Compiled::call`] knows of its two versions: each one's time per
/// batch, in nanoseconds (0: not yet measured; the last probe's, or the
/// running version's smoothed over its chunks), and the
/// batches left before the slower one is timed again. Atomics, so that a
/// shared `&Compiled` can be called.
#[derive(Debug, Default)]
pub(super) struct Choice {
    single_ns: std::sync::atomic::AtomicU64,
    team_ns: std::sync::atomic::AtomicU64,
    until_probe: std::sync::atomic::AtomicU64,
    /// Times the team has been probed.
    team_probes: std::sync::atomic::AtomicU64,
    /// Batches run so far, and how many of them on the team.
    batches: std::sync::atomic::AtomicU64,
    team_batches: std::sync::atomic::AtomicU64,
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

    /// With a team version: its threads, and the share of the batches run
    /// so far that ran on it (0 to 1).
    pub fn team_share(&self) -> Option<(usize, f64)> {
        use std::sync::atomic::Ordering::Relaxed;
        let team = self.team_version.as_ref()?;
        let all = self.choice.batches.load(Relaxed).max(1);
        Some((team.team, self.choice.team_batches.load(Relaxed) as f64 / all as f64))
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
        match &self.team_version {
            // SAFETY: as above.
            None => _ = unsafe { self.run(&args) },
            // SAFETY: as above; the team version is the same kernel.
            Some(team) => unsafe { self.run_faster(team, &args) },
        }
    }

    /// Run a call's batches on the kernel or its team version, whichever is
    /// faster now: the faster (by the last times measured) in timed chunks
    /// of about [`CHUNK_SECONDS`], the slower for [`PROBE_BATCHES`] batches
    /// every [`PROBE_EVERY_SECONDS`] (and each for that many at the start).
    /// The times carry over to the next call. Both versions give bitwise the
    /// same results, so which one runs a batch changes only the time.
    ///
    /// The environment variable `NNC_TEAM` set to `always` or `never` runs
    /// every batch on the team or on one thread (for benchmarks and tests).
    ///
    /// # Safety
    /// As [`Compiled::call`], with `args.hyper_table` filled in.
    unsafe fn run_faster(&self, team: &Compiled, args: &KernelArgs) {
        use std::sync::atomic::Ordering::Relaxed;
        let choice = &self.choice;
        let batches = (args.rows.max(0) as u64).div_ceil(args.batch as u64);
        choice.batches.fetch_add(batches, Relaxed);
        match std::env::var("NNC_TEAM").as_deref() {
            Ok("always") => {
                // SAFETY: all batches of this call; on one thread if the
                // team's threads cannot start (then the team ran nothing).
                if unsafe { team.run_batches(args, 0, batches) } {
                    choice.team_batches.fetch_add(batches, Relaxed);
                } else {
                    unsafe { self.run(args) };
                }
                return;
            }
            Ok("never") => {
                // SAFETY: as the caller vouched.
                unsafe { self.run(args) };
                return;
            }
            _ => {}
        }
        let mut done = 0;
        // A probe's time replaces the last one, and so does a faster chunk
        // of the running version; a slower chunk moves its time a quarter
        // of the way, so that one slow chunk (the VM paused a core for a
        // moment) does not hand the next half second to the slower
        // version, while a machine that stays busier shows within a few
        // chunks.
        let record = |time: &std::sync::atomic::AtomicU64, per_batch: u64, probe: bool| {
            let last = time.load(Relaxed);
            let smoothed = match last {
                0 | u64::MAX => per_batch,
                _ if probe || per_batch <= last => per_batch,
                last => (3 * last + per_batch) / 4,
            };
            time.store(smoothed.max(1), Relaxed);
        };
        let run = |on_team: bool, count: u64, done: &mut u64, probe: bool| {
            let start = std::time::Instant::now();
            // SAFETY: batches of this call, as the caller vouched.
            if on_team && !unsafe { team.run_batches(args, *done, count) } {
                // The team's threads could not start: one thread runs the
                // batches, and the team counts as slowest.
                unsafe { self.run_batches(args, *done, count) };
                choice.team_ns.store(u64::MAX, Relaxed);
            } else if on_team {
                record(&choice.team_ns, start.elapsed().as_nanos() as u64 / count, probe);
                choice.team_batches.fetch_add(count, Relaxed);
            } else {
                unsafe { self.run_batches(args, *done, count) };
                record(&choice.single_ns, start.elapsed().as_nanos() as u64 / count, probe);
            }
            *done += count;
        };
        while done < batches {
            let left = batches - done;
            let (single, on_team) = (choice.single_ns.load(Relaxed), choice.team_ns.load(Relaxed));
            // Time whichever is unmeasured, or the slower one when it is due.
            let due = choice.until_probe.load(Relaxed) == 0;
            let probe = match (single, on_team) {
                (0, _) => Some(false),
                (_, 0) => Some(true),
                // The team's first probe times threads just woken and
                // partial sums never touched: a team slower than one
                // thread then is timed again at once, warm, before one
                // thread is given a chunk (on 784-256-10 a quarter of a
                // short run went to one thread after a cold first probe).
                _ if choice.team_probes.load(Relaxed) == 1 && on_team >= single => Some(true),
                _ if due => Some(single < on_team),
                _ => None,
            };
            // The slower one's time per batch, at most four times the
            // faster's (a team on a busy machine can be many times slower).
            let probe_batches = match (single, on_team) {
                (0, _) | (_, 0) => PROBE_BATCHES,
                _ => {
                    let slower = single.max(on_team).min(4 * single.min(on_team));
                    PROBE_BATCHES.max((PROBE_SECONDS * 1e9) as u64 / slower)
                }
            };
            if let Some(probe_team) = probe.filter(|_| left >= probe_batches) {
                // The first timings, and the team's warm second one.
                let first = single == 0 || on_team == 0 || (probe_team && choice.team_probes.load(Relaxed) == 1);
                if probe_team {
                    choice.team_probes.fetch_add(1, Relaxed);
                }
                run(probe_team, probe_batches, &mut done, true);
                let faster = choice.single_ns.load(Relaxed).min(choice.team_ns.load(Relaxed)).max(1);
                let every = if first { FIRST_PROBE_EVERY_SECONDS } else { PROBE_EVERY_SECONDS };
                choice.until_probe.store((every * 1e9) as u64 / faster, Relaxed);
                continue;
            }
            let use_team = on_team != 0 && (single == 0 || on_team < single);
            let per_batch = if use_team { on_team } else { single }.max(1);
            let count = ((CHUNK_SECONDS * 1e9) as u64 / per_batch).clamp(1, left);
            run(use_team, count, &mut done, false);
            let until = choice.until_probe.load(Relaxed);
            choice.until_probe.store(until.saturating_sub(count), Relaxed);
        }
    }

    /// Run batches `first..first + count` of the call `args` on this version
    /// (a team version has the plain kernel's buffers); false when it is
    /// a team whose threads could not start (and nothing ran).
    ///
    /// # Safety
    /// As [`Compiled::call`], with `args.hyper_table` filled in.
    unsafe fn run_batches(&self, args: &KernelArgs, first: u64, count: u64) -> bool {
        let first_row = (first * args.batch as u64) as usize;
        let rows = (count * args.batch as u64).min(args.rows as u64 - first_row as u64);
        // The width of each input (or target) column the kernel reads, by
        // its place in the table.
        let widths = |inputs: bool| {
            let mut widths: Vec<Option<usize>> = Vec::new();
            for buffer in &self.kernel.buffers {
                let i = match buffer.kind {
                    BufferKind::Input(i) if inputs => i as usize,
                    BufferKind::Target(i) if !inputs => i as usize,
                    _ => continue,
                };
                widths.resize(widths.len().max(i + 1), None);
                widths[i] = buffer.shape.width().map(|w| w as usize);
            }
            widths
        };
        // The data tables with each column moved to the first row (null
        // columns stay null; columns the kernel does not read are not moved).
        let moved = |table: *const *const f32, widths: Vec<Option<usize>>| -> Vec<*const f32> {
            (0..widths.len())
                .map(|i| {
                    // SAFETY: the kernel reads `widths.len()` entries of the table.
                    let column = unsafe { *table.add(i) };
                    match widths[i] {
                        Some(w) if !column.is_null() => column.wrapping_add(first_row * w),
                        _ => column,
                    }
                })
                .collect()
        };
        let inputs = moved(args.inputs, widths(true));
        let targets = moved(args.targets, widths(false));
        let predict_width = self.kernel.buffers.iter().find(|b| b.kind == BufferKind::Predict);
        let predict = match predict_width.and_then(|b| b.shape.width()) {
            Some(w) if !args.predict.is_null() => args.predict.wrapping_add(first_row * w as usize),
            _ => args.predict,
        };
        let moved_args = KernelArgs {
            losses: if args.losses.is_null() { args.losses } else { args.losses.wrapping_add(first as usize) },
            predict,
            inputs: inputs.as_ptr(),
            targets: targets.as_ptr(),
            rows: rows as i64,
            step: args.step + first as i64,
            hyper_table: if args.hyper_table.is_null() {
                args.hyper_table
            } else {
                args.hyper_table.wrapping_add(first as usize * self.hypers.len())
            },
            ..*args
        };
        // SAFETY: the same buffers from the first batch's row on, by the caller.
        unsafe { self.run(&moved_args) }
    }

    /// Run this version's function over `args`: on this thread, or on its
    /// team (this thread and `team − 1` started for the call).
    ///
    /// # Safety
    /// As [`Compiled::call`], with `args.hyper_table` filled in.
    ///
    /// Returns false, having run nothing, when a team's threads cannot all
    /// start (each would wait at the first barrier for the missing one).
    unsafe fn run(&self, args: &KernelArgs) -> bool {
        use std::sync::atomic::{AtomicU8, Ordering};
        let args = KernelArgs { ..*args };
        if self.team <= 1 {
            // SAFETY: guaranteed by the caller, see above; the kernel reads
            // `hyper_table` only when it reads scalars, and then `table` holds
            // `hypers.len()` values for each of its batches and outlives the call.
            unsafe { (self.function)(&args) };
            return true;
        }
        // A team: the calling thread is thread 0, the others start here and
        // end with the call (a few tens of microseconds per call, which runs
        // a chunk of batches of about 50 ms). They begin once all have started.
        const WAIT: u8 = 0;
        const GO: u8 = 1;
        const GIVE_UP: u8 = 2;
        let team = crate::threads::Team::new(self.team);
        let start = AtomicU8::new(WAIT);
        let function = self.function;
        let run = move |args: ThreadArgs| {
            // SAFETY: as above; every thread reads the same buffers and
            // writes its own share of them, meeting the others at the
            // team's barriers, which outlive the call with `team`.
            unsafe { function(&args.0) }
        };
        std::thread::scope(|scope| {
            for thread in 1..self.team {
                let args = ThreadArgs(KernelArgs { team: &team, thread: thread as i64, ..args });
                let start = &start;
                let started = std::thread::Builder::new().spawn_scoped(scope, move || {
                    loop {
                        match start.load(Ordering::Acquire) {
                            WAIT => std::thread::yield_now(),
                            GO => return run(args),
                            _ => return,
                        }
                    }
                });
                if started.is_err() {
                    start.store(GIVE_UP, Ordering::Release);
                    return false;
                }
            }
            start.store(GO, Ordering::Release);
            run(ThreadArgs(KernelArgs { team: &team, thread: 0, ..args }));
            true
        })
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
    pub const TEAM: i32 = offset_of!(KernelArgs, team) as i32;
    pub const THREAD: i32 = offset_of!(KernelArgs, thread) as i32;
}
