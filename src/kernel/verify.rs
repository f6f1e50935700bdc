//! The kernel-IR verifier: what codegen takes for granted, checked on a
//! kernel after `lower` and after `vectorize` (in tests and debug builds;
//! `lower_with` runs it).
//!
//! - **Names.** Every buffer, loop variable and local exists; each loop
//!   variable is bound by one loop only, and used only inside it; a local is
//!   assigned before it is read; the decisions (`vector_loops`,
//!   `blocked_rows`, `written_out`, `paired_loops`) name loops of the body.
//! - **Bounds.** Every load and store is inside its buffer for every batch
//!   up to `max_batch` (the proof of [`super::bounds`], statement by
//!   statement).
//! - **Buffer kinds.** Data (inputs, targets) is never written; only a
//!   training kernel writes parameters or has optimizer state or dropout,
//!   and only evaluation kernels write predictions; a prediction kernel
//!   loads no target (the runtime passes none) and records no loss; a library product stays at the top level, writes a scratch
//!   buffer (or accumulates into a parameter in a training kernel) that is
//!   neither of its operands.
//! - **Vector loops.** Not nested in another one; every store in one is
//!   contiguous along it (codegen writes four neighbouring floats) and none
//!   is a loss, a product or dropout.
//! - **Independence.** The rows of a blocked row loop that run together, and
//!   the lanes of a vector loop that run together (up to `4 × MAX_GROUPS`),
//!   store disjoint elements, and none reads an element another one
//!   stores. Shown by listing the elements each touches — not by the
//!   stride argument `vectorize` makes — for indices of at most
//!   [`MAX_ELEMENTS`] elements per iteration; larger ones are not checked.
//!
//! An error names the statement by its line in [`super::print`]'s text and
//! shows that text with the line marked.

use super::{BufferId, BufferKind, Expr, Index, Kernel, KernelKind, LoopVar, Stmt, bounds, walk};
use std::collections::{HashMap, HashSet};
use std::fmt;

/// Indices that reach more elements than this within one iteration are not
/// enumerated by the independence check.
pub const MAX_ELEMENTS: usize = 1 << 16;

/// A rule the kernel breaks, at the statement that breaks it.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifyError {
    /// The statement's 1-based line in the printed kernel (the header line
    /// for rules about the kernel as a whole).
    pub line: usize,
    pub message: String,
    /// The printed kernel with the line marked.
    pub listing: String,
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "kernel line {}: {}\n{}", self.line, self.message, self.listing)
    }
}

/// Check `kernel` (see the module doc).
pub fn verify(kernel: &Kernel) -> Result<(), VerifyError> {
    let fail = |line: usize, message: String| {
        let text = super::print(kernel);
        let mut listing = String::new();
        for (k, l) in text.lines().enumerate() {
            listing.push_str(l);
            listing.push('\n');
            if k + 1 == line {
                let pad = l.len() - l.trim_start().len();
                listing.push_str(&format!("{}{} {message}\n", " ".repeat(pad), "^".repeat(l.trim().chars().count())));
            }
        }
        VerifyError { line, message, listing }
    };
    whole(kernel).map_err(|m| fail(1, m))?;
    let mut v = Verifier {
        kernel,
        extents: HashMap::new(),
        bound: HashSet::new(),
        assigned: HashSet::new(),
        vector: None,
        depth: 0,
        line: 2 + kernel.buffers.len(),
    };
    v.stmts(&kernel.body).map_err(|(line, m)| fail(line, m))?;
    // The decisions name loops of the body.
    let decided = kernel.vector_loops.iter().chain(kernel.blocked_rows.iter().map(|(v, _)| v));
    for var in decided.chain(&kernel.written_out).chain(&kernel.paired_loops) {
        if !v.bound.contains(var) {
            return Err(fail(1, format!("a decision names i{}, which no loop binds", var.0)));
        }
    }
    Ok(())
}

/// Rules about the buffer list.
fn whole(kernel: &Kernel) -> Result<(), String> {
    bounds::scratch_fits(kernel)?;
    for buffer in &kernel.buffers {
        let allowed = match buffer.kind {
            BufferKind::State(_) => kernel.kind == KernelKind::Train,
            BufferKind::Predict => kernel.kind != KernelKind::Train,
            BufferKind::Param(_) | BufferKind::Input(_) | BufferKind::Target(_) | BufferKind::Scratch { .. } => true,
        };
        if !allowed {
            return Err(format!("a {:?} kernel has no place for {} ({:?})", kernel.kind, buffer.name, buffer.kind));
        }
    }
    Ok(())
}

struct Verifier<'k> {
    kernel: &'k Kernel,
    /// Trip counts of the loops around the current statement.
    extents: HashMap<LoopVar, u32>,
    /// Every loop variable bound so far.
    bound: HashSet<LoopVar>,
    assigned: HashSet<super::Local>,
    /// The vector loop around the current statement.
    vector: Option<LoopVar>,
    depth: usize,
    /// The printed line of the last statement visited.
    line: usize,
}

impl Verifier<'_> {
    fn stmts(&mut self, body: &[Stmt]) -> Result<(), (usize, String)> {
        for stmt in body {
            self.line += 1;
            let line = self.line;
            self.stmt(stmt).map_err(|m| (line, m))?;
            if let Stmt::Loop { var, extent, body } = stmt {
                let outer_vector = self.vector;
                if self.kernel.vector_loops.contains(var) {
                    self.vector = Some(*var);
                }
                self.extents.insert(*var, bounds::trips(self.kernel, *extent));
                self.depth += 1;
                self.stmts(body)?;
                self.depth -= 1;
                self.extents.remove(var);
                self.vector = outer_vector;
                self.line += 1;
            }
        }
        Ok(())
    }

    fn stmt(&mut self, stmt: &Stmt) -> Result<(), String> {
        let kernel = self.kernel;
        let name = |b: BufferId| &kernel.buffers[b.0 as usize].name;
        self.names(stmt)?;
        bounds::statement(kernel, stmt, &self.extents)?;
        match stmt {
            Stmt::Loop { var, extent, body } => {
                let trips = bounds::trips(kernel, *extent);
                if !self.bound.insert(*var) {
                    return Err(format!("loop variable i{} is bound by two loops", var.0));
                }
                if kernel.vector_loops.contains(var) {
                    if let Some(outer) = self.vector {
                        return Err(format!("vector loop i{} inside vector loop i{}", var.0, outer.0));
                    }
                    self.independent(*var, trips.min(4 * super::MAX_GROUPS), body, "lanes")?;
                }
                if let Some((_, rows)) = kernel.blocked_rows.iter().find(|(v, _)| v == var) {
                    if kernel.vector_loops.contains(var) {
                        return Err(format!("i{} is both a vector loop and a blocked row loop", var.0));
                    }
                    self.independent(*var, trips.min(*rows), body, "blocked rows")?;
                }
            }
            Stmt::Store { buffer, index, .. } => {
                let kind = &kernel.buffers[buffer.0 as usize].kind;
                self.writable(*buffer, kind)?;
                if let Some(lane) = self.vector
                    && stride(index, lane) != 1
                {
                    return Err(format!(
                        "a store to {} in vector loop i{} is not contiguous along it",
                        name(*buffer),
                        lane.0
                    ));
                }
            }
            Stmt::StoreLoss(_) => {
                if kernel.kind == KernelKind::Predict {
                    return Err("a prediction kernel records a loss".into());
                }
                if self.depth > 0 {
                    return Err("the loss is recorded inside a loop".into());
                }
            }
            Stmt::Gemm(g) => {
                if self.depth > 0 {
                    return Err("a library product inside a loop".into());
                }
                let out = &kernel.buffers[g.out.0 as usize].kind;
                let ok = match out {
                    BufferKind::Scratch { .. } => true,
                    BufferKind::Param(_) => g.accumulate.is_some() && kernel.kind == KernelKind::Train,
                    _ => false,
                };
                if !ok {
                    return Err(format!("a library product writes {} ({out:?})", name(g.out)));
                }
                if kernel.kind == KernelKind::Predict && (self.is_target(g.a) || self.is_target(g.b)) {
                    return Err("a prediction kernel's library product reads a target (it gets none)".into());
                }
                if g.out == g.a || g.out == g.b {
                    return Err(format!("a library product writes its own operand {}", name(g.out)));
                }
            }
            Stmt::Assign { local, .. } => {
                // Assigned after its value is read: `l = l + x` reads the old one.
                let mut result = Ok(());
                stmt.for_each_expr(&mut |e| result = result.clone().and(self.reads(e)));
                result?;
                self.assigned.insert(*local);
                return Ok(());
            }
        }
        if self.vector.is_some() && matches!(stmt, Stmt::StoreLoss(_) | Stmt::Gemm(_)) {
            return Err("a loss or a library product inside a vector loop".into());
        }
        let mut result = Ok(());
        stmt.for_each_expr(&mut |e| result = result.clone().and(self.reads(e)));
        result
    }

    /// Ids in range.
    fn names(&self, stmt: &Stmt) -> Result<(), String> {
        let kernel = self.kernel;
        let buffer = |b: BufferId| {
            if (b.0 as usize) < kernel.buffers.len() { Ok(()) } else { Err(format!("no buffer b{}", b.0)) }
        };
        let var =
            |v: LoopVar| if v.0 < kernel.n_loop_vars { Ok(()) } else { Err(format!("no loop variable i{}", v.0)) };
        let index = |i: &Index| i.terms.iter().try_for_each(|(v, _)| var(*v));
        match stmt {
            Stmt::Loop { var: v, .. } => var(*v)?,
            Stmt::Store { buffer: b, index: i, .. } => {
                buffer(*b)?;
                index(i)?;
            }
            Stmt::Gemm(g) => [g.out, g.a, g.b].into_iter().try_for_each(buffer)?,
            Stmt::Assign { local, .. } => {
                if local.0 >= kernel.n_locals {
                    return Err(format!("no local l{}", local.0));
                }
            }
            Stmt::StoreLoss(_) => {}
        }
        let mut result = Ok(());
        stmt.for_each_expr(&mut |value| {
            value.walk(&mut |e| {
                let this = match e {
                    Expr::Load(b, i) => buffer(*b).and_then(|_| index(i)),
                    Expr::Dropout { index: i, .. } => index(i),
                    Expr::Local(l) if l.0 >= kernel.n_locals => Err(format!("no local l{}", l.0)),
                    _ => Ok(()),
                };
                result = result.clone().and(this);
            })
        });
        result
    }

    fn is_target(&self, buffer: BufferId) -> bool {
        matches!(self.kernel.buffers[buffer.0 as usize].kind, BufferKind::Target(_))
    }

    fn writable(&self, buffer: BufferId, kind: &BufferKind) -> Result<(), String> {
        let name = format!("b{} ({})", buffer.0, self.kernel.buffers[buffer.0 as usize].name);
        match kind {
            BufferKind::Input(_) | BufferKind::Target(_) => {
                Err(format!("a store to {name}, which is data (read-only)"))
            }
            BufferKind::Param(_) | BufferKind::State(_) if self.kernel.kind != KernelKind::Train => {
                Err(format!("a {:?} kernel stores to {name}, which it may only read", self.kernel.kind))
            }
            _ => Ok(()),
        }
    }

    /// What an expression reads is there to read.
    fn reads(&self, value: &Expr) -> Result<(), String> {
        let mut result = Ok(());
        value.walk(&mut |e| {
            let this = match e {
                Expr::Local(l) if !self.assigned.contains(l) => Err(format!("l{} is read before it is assigned", l.0)),
                Expr::Dropout { .. } if self.kernel.kind != KernelKind::Train => {
                    Err(format!("dropout in a {:?} kernel", self.kernel.kind))
                }
                Expr::Dropout { .. } if self.vector.is_some() => Err("dropout inside a vector loop".into()),
                Expr::Load(b, _) if self.kernel.kind == KernelKind::Predict && self.is_target(*b) => Err(format!(
                    "a prediction kernel reads {}, a target (it gets none)",
                    self.kernel.buffers[b.0 as usize].name
                )),
                _ => Ok(()),
            };
            result = result.clone().and(this);
        });
        result
    }

    /// Iterations `0..trips` of the loop over `var` (running together)
    /// store disjoint elements, and none reads what another stores.
    fn independent(&self, var: LoopVar, trips: u32, body: &[Stmt], what: &str) -> Result<(), String> {
        let kernel = self.kernel;
        let mut extents = HashMap::new();
        let mut stores: Vec<(BufferId, &Index)> = Vec::new();
        let mut loads: Vec<(BufferId, &Index)> = Vec::new();
        walk(body, &mut |stmt| {
            match stmt {
                Stmt::Loop { var, extent, .. } => {
                    extents.insert(*var, bounds::trips(kernel, *extent));
                }
                Stmt::Store { buffer, index, .. } => stores.push((*buffer, index)),
                Stmt::Assign { .. } | Stmt::StoreLoss(_) | Stmt::Gemm(_) => {}
            }
            stmt.for_each_expr(&mut |value| {
                value.walk(&mut |e| {
                    if let Expr::Load(b, index) = e {
                        loads.push((*b, index));
                    }
                })
            });
        });
        // The elements an index touches in iteration 0, listed: the loops
        // inside run over their extents; loops outside keep one value (0),
        // which compares two indices only when they depend on the outer
        // loops alike. Iteration `k` touches them shifted by `k × stride`.
        let elements = |index: &Index| -> Option<HashSet<i64>> {
            let mut out = HashSet::from([index.offset as i64]);
            for (v, s) in &index.terms {
                let Some(&n) = extents.get(v) else { continue };
                if out.len() * n as usize > MAX_ELEMENTS {
                    return None;
                }
                out = out.iter().flat_map(|e| (0..n as i64).map(move |j| e + j * *s as i64)).collect();
            }
            Some(out)
        };
        let outer = |index: &Index| -> Vec<(LoopVar, u32)> {
            let mut terms: Vec<_> =
                index.terms.iter().copied().filter(|(v, _)| *v != var && !extents.contains_key(v)).collect();
            terms.sort_by_key(|(v, s)| (v.0, *s));
            terms
        };
        for &(buffer, stored) in &stores {
            let name = format!("b{}", buffer.0);
            let Some(mine) = elements(stored) else { continue };
            for &(_, other) in stores.iter().chain(&loads).filter(|(b, _)| *b == buffer) {
                if outer(other) != outer(stored) {
                    return Err(format!(
                        "{what} of i{}: {name} is stored and accessed with different outer indices, which this check cannot compare",
                        var.0
                    ));
                }
                let Some(theirs) = elements(other) else { continue };
                let (s1, s2) = (stride(stored, var) as i64, stride(other, var) as i64);
                for k in 0..trips as i64 {
                    for j in (0..trips as i64).filter(|j| *j != k) {
                        if let Some(e) = mine.iter().map(|e| e + k * s1).find(|e| theirs.contains(&(e - j * s2))) {
                            return Err(format!(
                                "{what} of i{} are not independent: iteration {k} stores {name}[{e}], which iteration {j} also touches",
                                var.0
                            ));
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

fn stride(index: &Index, var: LoopVar) -> u32 {
    index.terms.iter().filter(|(v, _)| *v == var).map(|(_, s)| *s).sum()
}
