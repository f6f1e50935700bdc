//! The emitter: one kernel's body as Cranelift instructions — the batch
//! loop around it, base addresses, statements, expressions, loads and
//! stores (the loops themselves are in `emit/loops.rs`).
//!
//! Vector loops (the kernel's `vector_loops`) emit each statement once
//! per *copy*: a group of four lanes of one blocked row. Copies share the
//! loads they make at the same address (one weight row for all blocked
//! rows), and a reduction loop inside a vector loop runs two steps per
//! iteration.
//!
//! `acc + a·b` becomes one `fma` when the CPU has it. `exp`, `log`, `tanh`
//! and `sigmoid` are inline polynomials (see `math.rs`): the generated code
//! calls nothing.

mod loops;

use super::abi::{field, param_offsets};
use super::{gemm, math};
use crate::ir::{Compare, Hyper};
use crate::kernel::parallel::{self, Part};
use crate::kernel::{BinaryOp, BufferKind, Expr, Extent, Index, Kernel, LoopVar, Stmt, UnaryOp};
use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::{AbiParam, InstBuilder, MemFlagsData, Type, Value, types};
use cranelift_frontend::{FunctionBuilder, Variable};
use std::collections::HashMap;

pub(super) struct Emitter<'a, 'b> {
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
    pub(super) state_offsets: Vec<usize>,
    /// The run-time scalars the kernel reads (besides `lr`) and, inside the
    /// batch loop, their values for the current batch: `t` from the step
    /// counter, the others from [`KernelArgs::hyper_table`] in this order.
    pub(super) hypers: Vec<(Hyper, Value)>,
    /// Inside the batch loop of a kernel that reads any run-time scalar but
    /// `lr`: the current step `t` (1-based, i64), e.g. to seed random numbers.
    step: Option<Value>,
    /// [`KernelArgs::threads`], in kernels that call the library GEMM.
    threads: Option<Value>,
    /// The threads the kernel runs on (see `kernel::parallel`): 1, or a
    /// team, each thread running its share of every statement.
    pub(super) team_size: usize,
    /// In a team kernel: [`KernelArgs::team`] and [`KernelArgs::thread`].
    team: Option<(Value, Value)>,
    /// The range of its outer loop the next loop nest runs on this thread
    /// (a split part's share), taken by the nest's outer loop.
    split_range: Option<(Value, Value)>,
}

const MEM: MemFlagsData = MemFlagsData::trusted();

/// At most this many copies of a statement (groups × blocked rows).
const MAX_COPIES: usize = 8;

impl<'a, 'b> Emitter<'a, 'b> {
    pub(super) fn new(
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
            team_size: 1,
            team: None,
            split_range: None,
        }
    }

    /// entry → batch loop { body } → return
    pub(super) fn function(&mut self) {
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
        if self.team_size > 1 {
            let team = load_ptr(self.b, field::TEAM);
            let thread = load_ptr(self.b, field::THREAD);
            self.team = Some((team, thread));
        } else if self.kernel.body.iter().any(|s| matches!(s, Stmt::Gemm(_))) {
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
        if self.team.is_some() {
            // A team runs the parts in groups between barriers (the order
            // changes no value, see `kernel::parallel::schedule`).
            let parts = parallel::plan(self.kernel);
            let schedule = parallel::schedule(self.kernel, &parts, self.team_size);
            for (&i, &barrier) in schedule.order.iter().zip(&schedule.barrier_after) {
                self.nest_stores = stored_buffers(std::slice::from_ref(&stmts[i]));
                self.part(&stmts[i], parts[i], barrier);
            }
        } else {
            for stmt in &stmts {
                self.nest_stores = stored_buffers(std::slice::from_ref(stmt));
                self.stmts(std::slice::from_ref(stmt));
            }
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

    /// One statement of a team kernel, as its part says: this thread's
    /// share of a split loop nest or of a product's blocks, the statement
    /// itself, or (the first thread only) the statement; then the barrier.
    fn part(&mut self, stmt: &Stmt, part: Part, barrier: bool) {
        let (team, thread) = self.team.expect("team kernels load their team");
        match (part, stmt) {
            (Part::Split { granularity }, Stmt::Loop { extent, .. }) => {
                self.split_range = Some(self.share(*extent, granularity, thread));
                self.stmts(std::slice::from_ref(stmt));
                debug_assert!(self.split_range.is_none(), "the nest's outer loop took its range");
            }
            (Part::Split { .. }, _) => unreachable!("only loop nests are split"),
            (Part::Gemm | Part::Everywhere { .. }, _) => self.stmts(std::slice::from_ref(stmt)),
            (Part::First | Part::Chunk(_), _) => {
                let body = self.b.create_block();
                let after = self.b.create_block();
                let alone = part.alone(self.team_size).expect("one thread runs it");
                let mine = self.b.ins().icmp_imm_u(IntCC::Equal, thread, alone as i64);
                self.b.ins().brif(mine, body, &[], after, &[]);
                self.b.switch_to_block(body);
                self.b.seal_block(body);
                self.stmts(std::slice::from_ref(stmt));
                self.b.ins().jump(after, &[]);
                self.b.switch_to_block(after);
                self.b.seal_block(after);
            }
        }
        if barrier {
            let mut sig = cranelift_codegen::ir::Signature::new(self.b.func.signature.call_conv);
            sig.params.push(AbiParam::new(self.pointer));
            let sig = self.b.import_signature(sig);
            let callee = self.b.ins().iconst(types::I64, crate::threads::barrier as *const () as i64);
            self.b.ins().call_indirect(sig, callee, &[team]);
        }
    }

    /// This thread's range `start..end` of a loop over `extent`: the
    /// iterations cut into one run per thread, each a multiple of
    /// `granularity` long (the last one shorter, later ones possibly empty).
    fn share(&mut self, extent: Extent, granularity: u32, thread: Value) -> (Value, Value) {
        let (threads, g) = (self.team_size as u64, granularity.max(1) as u64);
        match extent {
            Extent::Fixed(n) => {
                let total = self.limit(extent);
                let chunk = (n as u64).div_ceil(threads).div_ceil(g) * g;
                let chunk = self.b.ins().iconst(types::I64, chunk as i64);
                self.run_of(chunk, thread, total)
            }
            Extent::Batch => {
                // Every nest over the batch gives a thread the same rows.
                debug_assert!(
                    (parallel::BATCH_SHARE_MULTIPLE as u64).is_multiple_of(granularity as u64),
                    "every granularity divides the batch's multiple"
                );
                self.rows_of_part(threads, thread)
            }
            Extent::Rows { .. } => unreachable!("a chunk's rows are summed by one thread"),
        }
    }

    /// Rows `start..end` of part `part` (a value) of the current batch cut
    /// into `parts` runs of a multiple of [`parallel::BATCH_SHARE_MULTIPLE`]
    /// rows: a team's thread's rows, or a chunk's (`kernel::shard`).
    fn rows_of_part(&mut self, parts: u64, part: Value) -> (Value, Value) {
        let g = parallel::BATCH_SHARE_MULTIPLE as u64;
        let total = self.batch_rows;
        let per_part = self.b.ins().iadd_imm_u(total, (parts - 1) as i64);
        let per_part = self.b.ins().udiv_imm_u(per_part, parts as i64);
        let units = self.b.ins().iadd_imm_u(per_part, (g - 1) as i64);
        let units = self.b.ins().udiv_imm_u(units, g as i64);
        let run = self.b.ins().imul_imm_u(units, g as i64);
        self.run_of(run, part, total)
    }

    /// Run `index` of runs of `length` over `0..total`, cut at `total`.
    fn run_of(&mut self, length: Value, index: Value, total: Value) -> (Value, Value) {
        let start = self.b.ins().imul(index, length);
        let start = self.b.ins().umin(start, total);
        let end = self.b.ins().iadd(start, length);
        let end = self.b.ins().umin(end, total);
        (start, end)
    }

    /// The iterations `start..end` of a loop over `extent`.
    pub(super) fn range(&mut self, extent: Extent) -> (Value, Value) {
        match extent {
            Extent::Rows { chunk } => {
                let chunk = self.b.ins().iconst(types::I64, chunk as i64);
                self.rows_of_part(crate::kernel::shard::CHUNKS as u64, chunk)
            }
            Extent::Fixed(_) | Extent::Batch => (self.b.ins().iconst(types::I64, 0), self.limit(extent)),
        }
    }

    fn row_base(&mut self, base: Value, first_row: Value, shape: crate::ir::Shape) -> Value {
        let width = shape.width().expect("data buffers have fixed widths") as i64;
        let offset = self.b.ins().imul_imm_u(first_row, width * 4);
        self.b.ins().iadd(base, offset)
    }

    fn stmts(&mut self, stmts: &[Stmt]) {
        for stmt in stmts {
            match stmt {
                Stmt::Loop { var, extent, body } => self.loop_nest(*var, *extent, body),
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
        let mut a = address(self, g.a);
        let mut b = address(self, g.b);
        let c = address(self, g.out);
        let m = self.limit(g.m);
        let n = self.b.ins().iconst(types::I64, g.n as i64);
        let (first, end) = self.range(g.k);
        let k = self.b.ins().isub(end, first);
        if let Extent::Rows { .. } = g.k {
            // A chunk's rows: both operands from its first one on.
            let a_step = self.b.ins().imul_imm_u(first, if g.trans_a { a_width } else { 1 } * 4);
            a = self.b.ins().iadd(a, a_step);
            let b_step = self.b.ins().imul_imm_u(first, if g.trans_b { 1 } else { b_width } * 4);
            b = self.b.ins().iadd(b, b_step);
        }
        let constant = |e: &mut Self, x: i64| e.b.ins().iconst(types::I64, x);
        // A product over the batch's rows: this thread's rows (all of them
        // in a plain kernel), in blocks of `ROW_BLOCK` rows. Else one
        // thread's share of the blocks in a team kernel, or all of them, on
        // the pool if there is one.
        let (mut args, callee) = match self.team {
            // A chunk's product is one thread's (`Part::Chunk`), in a team.
            Some(_) if matches!(g.k, Extent::Rows { .. }) => (vec![constant(self, 0)], gemm::sgemm as *const () as i64),
            _ if parallel::by_rows(g) => {
                sig.params.insert(0, AbiParam::new(types::I64));
                let rows = match self.team {
                    Some((_, thread)) => self.share(Extent::Batch, parallel::ROW_BLOCK, thread),
                    None => (constant(self, 0), m),
                };
                (vec![rows.0, rows.1], gemm::sgemm_rows as *const () as i64)
            }
            Some((_, thread)) => {
                sig.params.insert(0, AbiParam::new(types::I64));
                let threads = constant(self, self.team_size as i64);
                (vec![thread, threads], gemm::sgemm_share as *const () as i64)
            }
            None => (vec![self.threads.expect("loaded in kernels with a gemm")], gemm::sgemm as *const () as i64),
        };
        args.extend([
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
        ]);
        let (accumulate, scale) = match &g.accumulate {
            Some(scale) => {
                self.addresses.clear();
                self.loaded.clear();
                let value = self.expr(scale).value;
                (constant(self, 1), value)
            }
            None => (constant(self, 0), self.b.ins().f32const(0.0)),
        };
        args.extend([accumulate, scale]);
        let sig = self.b.import_signature(sig);
        let callee = constant(self, callee);
        self.b.ins().call_indirect(sig, callee, &args);
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
    crate::kernel::walk(body, &mut |stmt| match stmt {
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
