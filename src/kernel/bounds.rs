//! The bounds proof: every load and store of a kernel stays inside its
//! buffer for every batch size up to the kernel's `max_batch`, every
//! library product's operands are whole matrices of the right shape, and
//! every scratch buffer fits the scratch area. Lowering runs it on each
//! kernel it makes; codegen relies on it and emits no bounds checks.
//! [`super::verify`] runs the same per-statement check and says where.

use super::{BufferId, BufferKind, Expr, Extent, Index, Kernel, LoopVar, Stmt};
use std::collections::HashMap;

/// Prove that every load and store stays inside its buffer for every batch
/// size up to `max_batch`. Code generation relies on this: it emits no
/// run-time bounds checks.
pub fn check_bounds(kernel: &Kernel) -> Result<(), String> {
    fn stmts(kernel: &Kernel, body: &[Stmt], extents: &mut HashMap<LoopVar, u32>) -> Result<(), String> {
        for stmt in body {
            statement(kernel, stmt, extents)?;
            if let Stmt::Loop { var, extent, body } = stmt {
                extents.insert(*var, trips(kernel, *extent));
                stmts(kernel, body, extents)?;
                extents.remove(var);
            }
        }
        Ok(())
    }
    scratch_fits(kernel)?;
    stmts(kernel, &kernel.body, &mut HashMap::new())
}

/// Iterations of a loop over `extent` at most.
pub(super) fn trips(kernel: &Kernel, extent: Extent) -> u32 {
    extent.max_trips(kernel.max_batch)
}

/// Every scratch buffer lies inside the scratch area.
pub(super) fn scratch_fits(kernel: &Kernel) -> Result<(), String> {
    for buffer in &kernel.buffers {
        if let BufferKind::Scratch { offset } = buffer.kind
            && offset + buffer.shape.len(kernel.max_batch) > kernel.scratch_len
        {
            return Err(format!("scratch buffer {} overruns the scratch area", buffer.name));
        }
    }
    Ok(())
}

/// The accesses of one statement itself (its store, its product's operands,
/// the loads of its expressions — not the statements inside a loop) are in
/// bounds, with `extents` the trip counts of the loops around it.
pub(super) fn statement(kernel: &Kernel, stmt: &Stmt, extents: &HashMap<LoopVar, u32>) -> Result<(), String> {
    let buffer_len = |buffer: BufferId| kernel.buffers[buffer.0 as usize].shape.len(kernel.max_batch);
    let name = |buffer: BufferId| &kernel.buffers[buffer.0 as usize].name;
    match stmt {
        Stmt::Loop { .. } | Stmt::Assign { .. } | Stmt::StoreLoss(_) => {}
        Stmt::Gemm(g) => {
            let n = |e: Extent| trips(kernel, e) as usize;
            let (m, k, cols) = (n(g.m), n(g.k), g.n as usize);
            let (a_rows, a_cols) = if g.trans_a { (k, m) } else { (m, k) };
            let (b_rows, b_cols) = if g.trans_b { (cols, k) } else { (k, cols) };
            for (buffer, rows, width) in [(g.out, m, cols), (g.a, a_rows, a_cols), (g.b, b_rows, b_cols)] {
                let stored = kernel.buffers[buffer.0 as usize].shape.width().map(|w| w as usize);
                if stored != Some(width) || rows * width > buffer_len(buffer) {
                    return Err(format!("gemm operand {} is not a {rows}×{width} matrix", name(buffer)));
                }
            }
        }
        Stmt::Store { buffer, index, .. } => {
            let max = max_index(index, extents)?;
            if max >= buffer_len(*buffer) {
                return Err(format!("store to {} at {max} is out of bounds", name(*buffer)));
            }
        }
    }
    let mut result = Ok(());
    stmt.for_each_expr(&mut |value| {
        value.walk(&mut |e| {
            if result.is_err() {
                return;
            }
            result = match e {
                Expr::Load(b, index) => max_index(index, extents).and_then(|max| {
                    if max >= buffer_len(*b) {
                        Err(format!("load from {} at {max} is out of bounds", name(*b)))
                    } else {
                        Ok(())
                    }
                }),
                // The element's place is hashed, not loaded: its loop
                // variables must still be in scope.
                Expr::Dropout { index, .. } => max_index(index, extents).map(|_| ()),
                _ => Ok(()),
            };
        })
    });
    result
}

/// The largest value `index` takes inside loops of these trip counts.
fn max_index(index: &Index, extents: &HashMap<LoopVar, u32>) -> Result<usize, String> {
    let mut max = index.offset as usize;
    for (var, stride) in &index.terms {
        let extent = extents.get(var).ok_or_else(|| format!("loop variable i{} used outside its loop", var.0))?;
        max += (*extent as usize).saturating_sub(1) * *stride as usize;
    }
    Ok(max)
}
