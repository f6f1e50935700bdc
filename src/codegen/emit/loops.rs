//! Loops: how each kernel loop becomes control flow — counted, written out
//! in full, two reduction steps per iteration, four lanes at a time
//! (vector loops, with partial groups and scalar tails), or several rows
//! at a time around a vector loop (blocked rows).

use super::{Emitter, MAX_COPIES};
use crate::kernel::{Extent, LoopVar, MAX_GROUPS, Stmt};
use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{BlockArg, InstBuilder, Value, types};

impl Emitter<'_, '_> {
    /// One loop, in the form the kernel's decisions (see
    /// [`crate::kernel::Kernel::written_out`] and the fields beside it) and
    /// the place it is emitted in call for.
    ///
    /// The outer loop of a split nest (`kernel::parallel`) runs over this
    /// thread's range only, taken from `split_range`.
    pub(super) fn loop_nest(&mut self, var: LoopVar, extent: Extent, body: &[Stmt]) {
        let written_out = self.kernel.written_out.contains(&var);
        let range = self.split_range.take();
        if self.lanes.is_none() && self.kernel.vector_loops.contains(&var) {
            self.vector_loop(var, extent, body, range)
        } else if let Some(rows) = self.rows_of(var).filter(|_| self.lanes.is_none()) {
            self.blocked_loop(var, extent, rows, body, range)
        } else if let Some((start, limit)) = range {
            debug_assert!(!written_out, "written-out loops are not split");
            self.counted_loop(var, start, limit, 1, |e| e.stmts(body));
        } else if self.lanes.is_some() && self.kernel.paired_loops.contains(&var) {
            // Two steps per iteration. (With loads that may move — see
            // `load_flags` — Cranelift schedules each step's loads next to
            // their multiply-adds; otherwise both steps' loads were live at
            // once and spilled.)
            let (start, limit) = self.range(extent);
            let v = var.0 as usize;
            self.counted_loop(var, start, limit, 2, |e| {
                e.stmts(body);
                e.shift[v] += 1;
                e.stmts(body);
                e.shift[v] -= 1;
            });
            if !matches!(extent, Extent::Fixed(n) if n % 2 == 0) {
                let start = self.b.use_var(self.loop_vars[v]);
                self.counted_loop(var, start, limit, 1, |e| e.stmts(body));
            }
        } else if let (true, Extent::Fixed(n)) = (written_out, extent) {
            for k in 0..n {
                self.set_constant(var, k as i64);
                self.stmts(body);
            }
            self.known[var.0 as usize] = None;
        } else {
            let (start, limit) = self.range(extent);
            self.counted_loop(var, start, limit, 1, |e| e.stmts(body));
        }
    }

    /// The end of a loop over `extent` that starts at 0 (see `range`).
    pub(super) fn limit(&mut self, extent: Extent) -> Value {
        match extent {
            Extent::Fixed(n) => self.b.ins().iconst(types::I64, n as i64),
            Extent::Batch => self.batch_rows,
            Extent::Rows { .. } => unreachable!("a chunk's loop starts at its first row: `range`"),
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
    fn blocked_loop(&mut self, var: LoopVar, extent: Extent, rows: u32, body: &[Stmt], range: Option<(Value, Value)>) {
        let (zero, limit) = match range {
            Some(range) => range,
            None => self.range(extent),
        };
        self.row_block = Some((var, rows));
        self.counted_loop(var, zero, limit, rows as i64, |e| e.stmts(body));
        self.row_block = None;
        if !matches!(extent, Extent::Fixed(n) if n % rows == 0) {
            let start = self.b.use_var(self.loop_vars[var.0 as usize]);
            self.counted_loop(var, start, limit, 1, |e| e.stmts(body));
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
    ///
    /// With a `range` (a split nest's share), the loop runs over it; a
    /// fixed-length loop's written-out last groups then run on the thread
    /// whose range ends at the end (and is not empty).
    fn vector_loop(&mut self, var: LoopVar, extent: Extent, body: &[Stmt], range: Option<(Value, Value)>) {
        let has_inner_loop = body.iter().any(|s| matches!(s, Stmt::Loop { .. }));
        let variable = self.loop_vars[var.0 as usize];
        self.lanes = Some(var);
        self.vector_locals_defined.clear();
        match extent {
            Extent::Fixed(n) => {
                let mut done = 0;
                if !self.kernel.written_out.contains(&var) {
                    let groups = if has_inner_loop { MAX_GROUPS as usize } else { 1 };
                    let step = 4 * groups as u32;
                    done = n / step * step;
                    let (zero, limit) = match range {
                        // A share ends at a multiple of `step` (so at or
                        // before `done`) or at `n`.
                        Some((start, end)) => {
                            let done = self.b.ins().iconst(types::I64, done as i64);
                            (start, self.b.ins().umin(end, done))
                        }
                        None => {
                            let zero = self.b.ins().iconst(types::I64, 0);
                            (zero, self.b.ins().iconst(types::I64, done as i64))
                        }
                    };
                    self.with_groups(groups, None, |e| {
                        e.counted_loop(var, zero, limit, step as i64, |e| e.stmts(body))
                    });
                }
                let rest = n - done;
                if rest > 0 {
                    let after = range.map(|(start, end)| {
                        let (rest_block, after) = (self.b.create_block(), self.b.create_block());
                        // The one thread whose (non-empty) range ends at `n`:
                        // a later thread's empty range `n..n` ends there too.
                        let ends = self.b.ins().icmp_imm_u(IntCC::Equal, end, n as i64);
                        let starts = self.b.ins().icmp_imm_u(IntCC::UnsignedLessThan, start, n as i64);
                        let at_end = self.b.ins().band(ends, starts);
                        self.b.ins().brif(at_end, rest_block, &[] as &[BlockArg], after, &[]);
                        self.b.switch_to_block(rest_block);
                        self.b.seal_block(rest_block);
                        after
                    });
                    self.set_constant(var, done as i64);
                    let partial = (rest % 4 != 0).then_some(rest % 4);
                    self.with_groups(rest.div_ceil(4) as usize, partial, |e| e.stmts(body));
                    self.known[var.0 as usize] = None;
                    if let Some(after) = after {
                        self.b.ins().jump(after, &[]);
                        self.b.switch_to_block(after);
                        self.b.seal_block(after);
                    }
                }
                self.lanes = None;
            }
            Extent::Batch | Extent::Rows { .. } => {
                let (zero, limit) = match range {
                    Some(range) => range,
                    None => self.range(extent),
                };
                let groups = if has_inner_loop { MAX_GROUPS as usize } else { 1 };
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
    /// Give `var` the value `k` in the code that follows, known at compile time.
    fn set_constant(&mut self, var: LoopVar, k: i64) {
        let value = self.b.ins().iconst(types::I64, k);
        self.b.def_var(self.loop_vars[var.0 as usize], value);
        self.known[var.0 as usize] = Some(k);
    }
}
