//! Sums over a batch's rows cut into fixed chunks, so that each thread of a
//! team sums the rows it computed itself.
//!
//! A weight's gradient is a sum over the batch's rows (`Σ_r x[r,i]·δ[r,j]`).
//! Shared out by output element (`kernel::parallel`), every thread reads
//! every row of the activations — half of them just written by the other
//! core, so they cross between the cores' caches every batch (on the
//! 20-64-64-3 task, ≈ 10 µs of a 100 µs batch on two threads). This pass
//! cuts such a sum into [`CHUNKS`] sums over fixed runs of rows, each stored
//! into a partial buffer of its own, and the nest that used the sum now
//! adds the partials, in chunk order. Chunk `c` holds exactly the rows
//! that thread `c` of a team of [`CHUNKS`] computes in every nest over the
//! batch (`kernel::parallel::BATCH_SHARE_MULTIPLE`), and that thread sums
//! them (`parallel::Part::Chunk`): only the partial sums cross.
//!
//! **Why the answer does not depend on the threads.** The chunks depend on
//! the batch's row count only, and every version of a kernel — plain, or
//! for a team of any size — runs the same sharded code: one thread computes
//! chunk 0, chunk 1, then their sum, exactly as a team does; only the thread
//! that runs each chunk differs. Against the same kernel without this pass,
//! the order of each sum changes once: `(Σ chunk 0) + (Σ chunk 1)` instead of
//! one sum in row order. The lowering shards kernels with enough work per
//! batch (`LowerOptions::shard_min_work`), a property of the kernel alone.
//!
//! **Which sums.** A loop nest of fixed-length loops whose innermost body is
//! `l = 0; for r in 0..B { l = l + term }; …` (`term` loaded from buffers),
//! and a library product over the batch's rows (`Stmt::Gemm` with `k` the
//! batch), when its partial sums are no more values than the rows it reads
//! (`CHUNKS · outputs ≤ B · widths`): a 784×256 weight's gradient from 64
//! rows keeps its one sum.

use super::{BinaryOp, Buffer, BufferId, BufferKind, Expr, Extent, Gemm, Index, Kernel, Local, LoopVar, Stmt, walk};
use std::collections::{HashMap, HashSet};

/// Parts a sharded sum is cut into: the cores of the machines nnc is
/// measured on. (A team of more threads leaves the others idle while the
/// chunks are summed.)
pub const CHUNKS: u32 = 2;

/// Shard every sum of the batch body that qualifies (see the module doc).
pub fn shard(kernel: &mut Kernel) {
    let body = std::mem::take(&mut kernel.body);
    let mut sharded = Vec::with_capacity(body.len());
    for stmt in body {
        let parts = match &stmt {
            Stmt::Loop { .. } => shard_nest(kernel, &stmt),
            Stmt::Gemm(g) => shard_gemm(kernel, g),
            Stmt::Assign { .. } | Stmt::Store { .. } | Stmt::StoreLoss(_) => None,
        };
        match parts {
            Some(parts) => sharded.extend(parts),
            None => sharded.push(stmt),
        }
    }
    kernel.body = sharded;
}

/// Whether `stmt` sums one chunk of rows, and which (`parallel` gives it to
/// one thread).
pub fn chunk_of(stmt: &Stmt) -> Option<u32> {
    let mut chunk = None;
    walk(std::slice::from_ref(stmt), &mut |s| match s {
        Stmt::Loop { extent: Extent::Rows { chunk: c }, .. } => chunk = Some(*c),
        Stmt::Gemm(Gemm { k: Extent::Rows { chunk: c }, .. }) => chunk = Some(*c),
        _ => {}
    });
    chunk
}

/// `nest` as one nest per chunk, storing its partial sums, and the nest
/// itself with the sum replaced by the partials' sum.
fn shard_nest(kernel: &mut Kernel, nest: &Stmt) -> Option<Vec<Stmt>> {
    // The loops down to the body holding the sum: each one's body is the
    // next loop alone.
    let mut loops: Vec<(LoopVar, u32)> = Vec::new();
    let mut stmt = nest;
    let inner = loop {
        let Stmt::Loop { var, extent: Extent::Fixed(n), body } = stmt else { return None };
        loops.push((*var, *n));
        match &body[..] {
            [only @ Stmt::Loop { .. }] => stmt = only,
            _ => break body,
        }
    };
    let [
        Stmt::Assign { local, value: Expr::Const(zero) },
        Stmt::Loop { var: row, extent: Extent::Batch, body: sum },
        rest @ ..,
    ] = &inner[..]
    else {
        return None;
    };
    let [Stmt::Assign { local: into, value: Expr::Binary(BinaryOp::Add, total, term) }] = &sum[..] else {
        return None;
    };
    if *zero != 0.0 || rest.is_empty() || into != local || **total != Expr::Local(*local) {
        return None;
    }
    // The term is loaded from buffers (no local carries a value in); the
    // row loop is a plain one; lanes (if any) are the innermost loop's, so
    // that a partial buffer's lanes are consecutive.
    let plain = |v: &LoopVar| {
        !kernel.vector_loops.contains(v)
            && !kernel.written_out.contains(v)
            && !kernel.blocked_rows.iter().any(|(w, _)| w == v)
    };
    if term.any(&mut |e| matches!(e, Expr::Local(_)))
        || !plain(row)
        || loops[..loops.len() - 1].iter().any(|(v, _)| kernel.vector_loops.contains(v))
    {
        return None;
    }
    let outputs: u64 = loops.iter().map(|(_, n)| *n as u64).product();
    let mut read: HashSet<BufferId> = HashSet::new();
    term.walk(&mut |e| {
        if let Expr::Load(buffer, index) = e
            && index.terms.iter().any(|(v, _)| v == row)
        {
            read.insert(*buffer);
        }
    });
    let widths: u64 = read.iter().map(|b| kernel.buffers[b.0 as usize].shape.width().unwrap_or(1) as u64).sum();
    if CHUNKS as u64 * outputs > kernel.max_batch as u64 * widths {
        return None;
    }
    // The partial sums, row-major over the loops around the sum.
    let mut terms = Vec::with_capacity(loops.len());
    let mut stride = 1;
    for &(var, n) in loops.iter().rev() {
        terms.push((var, stride));
        stride *= n;
    }
    terms.reverse();
    let at = Index { terms, offset: 0 };
    let name = stored_name(kernel, rest);
    let partials: Vec<BufferId> =
        (0..CHUNKS).map(|c| scratch(kernel, format!("{name} rows {c}"), 1, outputs as u32)).collect();
    let mut parts = Vec::with_capacity(CHUNKS as usize + 1);
    for (chunk, &partial) in (0..CHUNKS).zip(&partials) {
        let summed = vec![
            Stmt::Assign { local: *local, value: Expr::Const(0.0) },
            Stmt::Loop { var: *row, extent: Extent::Rows { chunk }, body: sum.clone() },
            Stmt::Store { buffer: partial, index: at.clone(), value: Expr::Local(*local) },
        ];
        parts.push(renamed(kernel, &with_inner(nest, summed)));
    }
    let mut used = vec![Stmt::Assign { local: *local, value: added(&partials, &at) }];
    used.extend(rest.iter().cloned());
    parts.push(with_inner(nest, used));
    // The row loop is gone from the nest that keeps the original loops.
    forget(kernel, *row);
    Some(parts)
}

/// A product over the batch's rows as one product per chunk into partial
/// buffers, and a loop adding them (and, for an update, adding the scaled
/// sum to the weight).
fn shard_gemm(kernel: &mut Kernel, g: &Gemm) -> Option<Vec<Stmt>> {
    let Extent::Fixed(m) = g.m else { return None };
    // `a` stored [k, m] and `b` stored [k, n]: a chunk is a run of rows of both.
    if g.k != Extent::Batch || !g.trans_a || g.trans_b {
        return None;
    }
    let outputs = m as u64 * g.n as u64;
    if CHUNKS as u64 * outputs > kernel.max_batch as u64 * (m + g.n) as u64 {
        return None;
    }
    let name = kernel.buffers[g.out.0 as usize].name.clone();
    let partials: Vec<BufferId> = (0..CHUNKS).map(|c| scratch(kernel, format!("{name} rows {c}"), m, g.n)).collect();
    let mut parts: Vec<Stmt> = (0..CHUNKS)
        .zip(&partials)
        .map(|(chunk, &partial)| {
            Stmt::Gemm(Gemm { out: partial, k: Extent::Rows { chunk }, accumulate: None, ..g.clone() })
        })
        .collect();
    let lanes = LoopVar(kernel.n_loop_vars);
    kernel.n_loop_vars += 1;
    kernel.vector_loops.push(lanes);
    let at = Index { terms: vec![(lanes, 1)], offset: 0 };
    let total = added(&partials, &at);
    let value = match &g.accumulate {
        Some(scale) => Expr::Binary(
            BinaryOp::Add,
            Box::new(Expr::Load(g.out, at.clone())),
            Box::new(Expr::Binary(BinaryOp::Mul, Box::new(scale.clone()), Box::new(total))),
        ),
        None => total,
    };
    parts.push(Stmt::Loop {
        var: lanes,
        extent: Extent::Fixed(m * g.n),
        body: vec![Stmt::Store { buffer: g.out, index: at, value }],
    });
    Some(parts)
}

/// `p₀[at] + p₁[at] + …`, in chunk order.
fn added(partials: &[BufferId], at: &Index) -> Expr {
    partials
        .iter()
        .map(|&p| Expr::Load(p, at.clone()))
        .reduce(|sum, next| Expr::Binary(BinaryOp::Add, Box::new(sum), Box::new(next)))
        .expect("at least one chunk")
}

/// The name of the first buffer `stmts` store (what the sum is for), for
/// the partial buffers' names.
fn stored_name(kernel: &Kernel, stmts: &[Stmt]) -> String {
    let mut name = None;
    walk(stmts, &mut |s| {
        if let (None, Stmt::Store { buffer, .. }) = (&name, s) {
            name = Some(kernel.buffers[buffer.0 as usize].name.clone());
        }
    });
    name.unwrap_or_else(|| "sum".to_string())
}

/// A new `rows × cols` scratch buffer, on cache lines of its own (each
/// chunk's partials are written by another thread).
fn scratch(kernel: &mut Kernel, name: String, rows: u32, cols: u32) -> BufferId {
    const LINE: usize = 16;
    let offset = kernel.scratch_len.next_multiple_of(LINE);
    kernel.scratch_len = offset + (rows as usize * cols as usize).next_multiple_of(LINE);
    kernel.buffers.push(Buffer {
        name,
        kind: BufferKind::Scratch { offset },
        shape: crate::ir::Shape::fixed(rows, cols),
    });
    BufferId(kernel.buffers.len() as u32 - 1)
}

/// `nest` with the body of its innermost loop (down the chain of loops
/// each alone in its parent's body) replaced by `inner`.
fn with_inner(nest: &Stmt, inner: Vec<Stmt>) -> Stmt {
    match nest {
        Stmt::Loop { var, extent, body } => {
            let body = match &body[..] {
                [only @ Stmt::Loop { .. }] => vec![with_inner(only, inner)],
                _ => inner,
            };
            Stmt::Loop { var: *var, extent: *extent, body }
        }
        _ => unreachable!("sharded nests are loops"),
    }
}

/// A copy of `stmt` with new loop variables (carrying the old ones'
/// decisions: lanes, blocked rows, written out, paired) and new locals, so
/// that it can stand beside the original in the body.
fn renamed(kernel: &mut Kernel, stmt: &Stmt) -> Stmt {
    let mut vars: HashMap<LoopVar, LoopVar> = HashMap::new();
    let mut locals: HashMap<Local, Local> = HashMap::new();
    walk(std::slice::from_ref(stmt), &mut |s| match s {
        Stmt::Loop { var, .. } => {
            vars.insert(*var, LoopVar(kernel.n_loop_vars + vars.len() as u32));
        }
        Stmt::Assign { local, .. } => {
            let next = Local(kernel.n_locals + locals.len() as u32);
            locals.entry(*local).or_insert(next);
        }
        _ => {}
    });
    kernel.n_loop_vars += vars.len() as u32;
    kernel.n_locals += locals.len() as u32;
    for (old, new) in &vars {
        if kernel.vector_loops.contains(old) {
            kernel.vector_loops.push(*new);
        }
        if let Some(&(_, rows)) = kernel.blocked_rows.iter().find(|(v, _)| v == old) {
            kernel.blocked_rows.push((*new, rows));
        }
        if kernel.written_out.contains(old) {
            kernel.written_out.push(*new);
        }
        if kernel.paired_loops.contains(old) {
            kernel.paired_loops.push(*new);
        }
    }
    rename(stmt, &vars, &locals)
}

fn rename(stmt: &Stmt, vars: &HashMap<LoopVar, LoopVar>, locals: &HashMap<Local, Local>) -> Stmt {
    let var = |v: &LoopVar| *vars.get(v).unwrap_or(v);
    let local = |l: &Local| *locals.get(l).unwrap_or(l);
    let index = |i: &Index| Index { terms: i.terms.iter().map(|(v, s)| (var(v), *s)).collect(), offset: i.offset };
    let expr = |e: &Expr| rename_expr(e, &local, &index);
    match stmt {
        Stmt::Loop { var: v, extent, body } => {
            Stmt::Loop { var: var(v), extent: *extent, body: body.iter().map(|s| rename(s, vars, locals)).collect() }
        }
        Stmt::Assign { local: l, value } => Stmt::Assign { local: local(l), value: expr(value) },
        Stmt::Store { buffer, index: i, value } => Stmt::Store { buffer: *buffer, index: index(i), value: expr(value) },
        Stmt::StoreLoss(value) => Stmt::StoreLoss(expr(value)),
        Stmt::Gemm(g) => Stmt::Gemm(Gemm { accumulate: g.accumulate.as_ref().map(expr), ..g.clone() }),
    }
}

fn rename_expr(e: &Expr, local: &impl Fn(&Local) -> Local, index: &impl Fn(&Index) -> Index) -> Expr {
    let go = |x: &Expr| Box::new(rename_expr(x, local, index));
    match e {
        Expr::Const(_) | Expr::BatchSize | Expr::LearningRate | Expr::Hyper(_) => e.clone(),
        Expr::Load(buffer, i) => Expr::Load(*buffer, index(i)),
        Expr::Local(l) => Expr::Local(local(l)),
        Expr::Unary(op, x) => Expr::Unary(*op, go(x)),
        Expr::Binary(op, x, y) => Expr::Binary(*op, go(x), go(y)),
        Expr::Compare(c, x, y) => Expr::Compare(*c, go(x), go(y)),
        Expr::Select(c, x, y) => Expr::Select(go(c), go(x), go(y)),
        Expr::Dropout { key, threshold, scale, index: i, x, step } => {
            Expr::Dropout { key: *key, threshold: *threshold, scale: *scale, index: index(i), x: go(x), step: go(step) }
        }
    }
}

/// Drop `var`'s decisions (its loop is gone).
fn forget(kernel: &mut Kernel, var: LoopVar) {
    kernel.vector_loops.retain(|v| *v != var);
    kernel.blocked_rows.retain(|(v, _)| *v != var);
    kernel.written_out.retain(|v| *v != var);
    kernel.paired_loops.retain(|v| *v != var);
}
