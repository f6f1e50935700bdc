//! Which statements of a kernel's batch body run split across threads.
//!
//! A kernel compiled for a team of threads runs its whole batch loop on
//! every thread at once (SPMD): each top-level statement is a [`Part`] — a
//! loop nest whose outer iterations are shared out, a library product whose
//! fixed blocks are shared out, or a statement that only the first thread
//! runs — and the threads meet at a barrier after every part that writes
//! memory.
//!
//! **Why the answer does not change.** A split nest's outer iterations are
//! independent: each writes only its own rows (or elements) of every buffer
//! it stores, and reads back only what the same iteration wrote. So an
//! iteration computes the same bits on whichever thread it runs. Split
//! points are multiples of the loop's step as the code generator emits it
//! (its rows per iteration, its lanes per vector iteration: the
//! *granularity*), so every iteration also runs the same code — vector
//! body, partial group or scalar tail — as it does on one thread. Sums over
//! rows (a weight's gradient) lie inside one outer iteration (one output
//! element) and keep their order. Products are cut into blocks by a rule
//! that depends on their shape only (`codegen::gemm::blocks`). A run gives
//! bitwise the same weights for any number of threads.

use super::{BufferId, Expr, Extent, Index, Kernel, Local, LoopVar, MAX_GROUPS, Stmt, walk};
use std::collections::{HashMap, HashSet};

/// How one top-level statement of the batch body runs on a team.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    /// A loop nest whose outer iterations are shared out in ranges that
    /// start and end at multiples of `granularity` (or at the end).
    Split { granularity: u32 },
    /// A library product: each thread computes its share of the blocks.
    Gemm,
    /// A scalar assignment every thread makes for itself; `reads_memory`
    /// when its value loads from a buffer (then the threads meet after it,
    /// before a later part may overwrite what it read).
    Everywhere { reads_memory: bool },
    /// Only the first thread runs it (a scalar store, the loss, a
    /// reduction over rows into one value).
    First,
    /// A sum over one chunk of the batch's rows (`kernel::shard`): thread
    /// `chunk` (modulo the team's size) runs it, the thread that computed
    /// those rows in a team of `shard::CHUNKS`.
    Chunk(u32),
}

impl Part {
    /// The one thread (of a team of `threads`) that runs this part, if one does.
    pub fn alone(self, threads: usize) -> Option<usize> {
        match self {
            Part::First => Some(0),
            Part::Chunk(chunk) => Some(chunk as usize % threads.max(1)),
            Part::Split { .. } | Part::Gemm | Part::Everywhere { .. } => None,
        }
    }
}

/// Loops over the batch are shared out in runs of a multiple of this many
/// rows (every granularity divides it), so that every split nest over the
/// batch gives a thread the same rows: a nest that reads only the rows the
/// one before it wrote needs no barrier between them.
pub const BATCH_SHARE_MULTIPLE: u32 = ROW_BLOCK;

/// Products over the batch's rows — `m` the batch, `a` stored row by row,
/// at most [`ROW_PRODUCT_MAX_N`] columns — are cut into blocks of this many
/// rows by every kernel, plain or team (`codegen::gemm::sgemm_rows`): a
/// team's thread then computes exactly the rows it owns in the nests over
/// the batch around the product, which need no barrier before or after it.
pub const ROW_BLOCK: u32 = 32;

/// See [`ROW_BLOCK`]: wider products keep the library's blocks by shape
/// (`codegen::gemm::blocks`), whose columns are shared out instead.
pub const ROW_PRODUCT_MAX_N: u32 = 64;

/// Whether `g` is a product over the batch's rows (see [`ROW_BLOCK`]).
pub fn by_rows(g: &super::Gemm) -> bool {
    g.m == Extent::Batch && !g.trans_a && g.n <= ROW_PRODUCT_MAX_N
}

/// Kernels whose batch body does less than this many inner iterations (at
/// the largest batch; a product counts its multiply-adds) run on one
/// thread: a barrier costs about as much as a few thousand iterations, and
/// a body meets at one after most statements. (The 20-64-64-3 task at
/// batch 256 does about 4·10⁶; the textbook tasks under 10⁵.)
pub const PARALLEL_MIN_WORK: u64 = 1 << 18;

/// The inner iterations of one batch at the largest batch size.
pub fn work(kernel: &Kernel) -> u64 {
    fn of(body: &[Stmt], max_batch: u64) -> u64 {
        body.iter()
            .map(|stmt| match stmt {
                Stmt::Loop { extent, body, .. } => trips(*extent, max_batch).saturating_mul(of(body, max_batch).max(1)),
                Stmt::Gemm(g) => trips(g.m, max_batch).saturating_mul(g.n as u64).saturating_mul(trips(g.k, max_batch)),
                Stmt::Assign { .. } | Stmt::Store { .. } | Stmt::StoreLoss(_) => 1,
            })
            .sum()
    }
    /// A chunk of rows counts its share of the batch.
    fn trips(extent: Extent, max_batch: u64) -> u64 {
        match extent {
            Extent::Fixed(n) => n as u64,
            Extent::Batch => max_batch,
            Extent::Rows { .. } => max_batch.div_ceil(super::shard::CHUNKS as u64),
        }
    }
    of(&kernel.body, kernel.max_batch as u64)
}

/// The part each top-level statement of `kernel.body` is, in order.
pub fn plan(kernel: &Kernel) -> Vec<Part> {
    // Locals whose value only the first thread knows (assigned in a part it
    // runs alone); a statement that reads one runs there too.
    let mut first_only: HashSet<Local> = HashSet::new();
    let mut parts = Vec::with_capacity(kernel.body.len());
    for (i, stmt) in kernel.body.iter().enumerate() {
        let chunk = super::shard::chunk_of(stmt);
        let part = match stmt {
            _ if let Some(chunk) = chunk => Part::Chunk(chunk),
            Stmt::Gemm(g) => match &g.accumulate {
                Some(scale) if reads_any(scale, &first_only) => Part::First,
                _ => Part::Gemm,
            },
            Stmt::Assign { value, .. } if !reads_any(value, &first_only) => {
                Part::Everywhere { reads_memory: value.any(&mut |e| matches!(e, Expr::Load(..))) }
            }
            Stmt::Loop { var, extent, body } => {
                let others = kernel.body.iter().enumerate().filter(|(j, _)| *j != i).map(|(_, s)| s);
                match granularity(kernel, *var, *extent, body) {
                    Some(granularity) if independent(*var, *extent, body, kernel, &first_only, others) => {
                        Part::Split { granularity }
                    }
                    _ => Part::First,
                }
            }
            Stmt::Assign { .. } | Stmt::Store { .. } | Stmt::StoreLoss(_) => Part::First,
        };
        if part == Part::First {
            walk(std::slice::from_ref(stmt), &mut |s| {
                if let Stmt::Assign { local, .. } = s {
                    first_only.insert(*local);
                }
            });
        }
        parts.push(part);
    }
    parts
}

/// The order a team runs the parts in, and where it meets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schedule {
    /// Indices into the batch body, each once.
    pub order: Vec<usize>,
    /// Whether the threads meet at a barrier after the part at the same
    /// place in `order`.
    pub barrier_after: Vec<bool>,
}

/// Groups of parts that run between two barriers, greedily: each group
/// takes, in program order, every part that depends on no earlier part
/// outside the finished groups except parts of its own group it can run
/// beside. A part depends on an earlier one that touches a buffer or a
/// local either writes; it can run beside one when they touch no buffer
/// that either writes — or only rows of their own in two nests over the
/// batch (which give each thread the same rows,
/// [`BATCH_SHARE_MULTIPLE`]; in a team of `threads` = `shard::CHUNKS`, a
/// chunk's sum is thread `c`'s rows too), or both run on the same one
/// thread — since a local is each thread's own. Within a group, parts run in program order;
/// every group ends with a barrier (the last one too: the next batch
/// starts over). Moving a part changes no value it computes, only when.
pub fn schedule(kernel: &Kernel, parts: &[Part], threads: usize) -> Schedule {
    let touches: Vec<Touches> =
        kernel.body.iter().zip(parts).map(|(stmt, part)| touches(kernel, stmt, *part, threads)).collect();
    let depends = |i: usize, j: usize| {
        let (a, b) = (&touches[i], &touches[j]);
        shares_a_write(&a.buffers, &b.buffers) || shares_a_write(&a.locals, &b.locals)
    };
    let clash = |i: usize, j: usize| {
        let (a, b) = (&touches[i], &touches[j]);
        a.buffers.iter().any(|(buffer, x)| match b.buffers.get(buffer) {
            None => false,
            Some(y) if !x.writes && !y.writes => false,
            Some(_) if a.alone.is_some() && a.alone == b.alone => false,
            Some(y) => !(a.batch_split && b.batch_split && x.row.is_some() && x.row == y.row),
        })
    };
    let n = parts.len();
    let mut done = vec![false; n];
    let mut schedule = Schedule { order: Vec::with_capacity(n), barrier_after: Vec::with_capacity(n) };
    while schedule.order.len() < n {
        let mut group: Vec<usize> = Vec::new();
        for j in (0..n).filter(|&j| !done[j]) {
            let free = (0..j).all(|i| done[i] || !depends(i, j) || (group.contains(&i) && !clash(i, j)));
            if free {
                group.push(j);
            }
        }
        for &j in &group {
            done[j] = true;
            schedule.order.push(j);
            schedule.barrier_after.push(false);
        }
        *schedule.barrier_after.last_mut().expect("the first part left always joins") = true;
    }
    schedule
}

/// Whether a place both touch is written by either.
fn shares_a_write<K: Eq + std::hash::Hash>(x: &HashMap<K, Touch>, y: &HashMap<K, Touch>) -> bool {
    x.iter().any(|(place, t)| y.get(place).is_some_and(|u| t.writes || u.writes))
}

/// How one part touches a buffer: whether it writes it, and `Some(c)` when
/// every access is in the row `var·c + r` (`0 ≤ r < c`) of the iteration
/// making it (for nests split over the batch).
#[derive(Clone, Copy, Debug)]
struct Touch {
    writes: bool,
    row: Option<u32>,
}

/// The buffers and locals one part touches, and how it runs.
struct Touches {
    buffers: HashMap<BufferId, Touch>,
    locals: HashMap<Local, Touch>,
    /// Split over the batch (so each thread has the same rows as in every
    /// other such part).
    batch_split: bool,
    /// Run by one thread only: the first (`Some(0)`), or a chunk's.
    alone: Option<u32>,
}

fn touches(kernel: &Kernel, stmt: &Stmt, part: Part, threads: usize) -> Touches {
    // In a team of `shard::CHUNKS`, thread `c` sums chunk `c`: the rows it
    // computes in every nest over the batch.
    let own_chunk = matches!(part, Part::Chunk(_)) && threads == super::shard::CHUNKS as usize;
    let split_var = match (stmt, part) {
        (Stmt::Loop { var, extent: Extent::Batch, .. }, Part::Split { .. }) => Some(*var),
        _ if own_chunk => {
            let mut rows = None;
            walk(std::slice::from_ref(stmt), &mut |s| {
                if let Stmt::Loop { var, extent: Extent::Rows { .. }, .. } = s {
                    rows = Some(*var);
                }
            });
            rows
        }
        _ => None,
    };
    let row_product = matches!((stmt, part), (Stmt::Gemm(g), Part::Gemm) if by_rows(g));
    let chunk_product = own_chunk && matches!(stmt, Stmt::Gemm(_));
    let mut extents: HashMap<LoopVar, u32> = HashMap::new();
    let mut buffers: HashMap<BufferId, Touch> = HashMap::new();
    let mut locals: HashMap<Local, Touch> = HashMap::new();
    let row_of =
        |index: &Index, extents: &HashMap<LoopVar, u32>| split_var.and_then(|var| own_row(index, var, extents));
    let width = |b: BufferId| kernel.buffers[b.0 as usize].shape.width();
    let mut touch = |buffer: BufferId, row: Option<u32>, writes: bool| {
        let entry = buffers.entry(buffer).or_insert(Touch { writes, row });
        entry.writes |= writes;
        if entry.row != row {
            entry.row = None;
        }
    };
    walk(std::slice::from_ref(stmt), &mut |s| {
        match s {
            Stmt::Loop { var, extent, .. } => {
                extents.insert(*var, extent.max_trips(kernel.max_batch));
            }
            Stmt::Store { buffer, index, .. } => touch(*buffer, row_of(index, &extents), true),
            Stmt::Gemm(g) if chunk_product => {
                // Rows of `a` and `b`: the chunk's, the thread's own.
                touch(g.out, None, true);
                touch(g.a, width(g.a), false);
                touch(g.b, width(g.b), false);
            }
            Stmt::Gemm(g) if row_product => {
                // Rows of `out` and of `a`: those of the thread's share.
                touch(g.out, width(g.out), true);
                touch(g.a, width(g.a), false);
                touch(g.b, None, false);
            }
            Stmt::Gemm(g) => {
                touch(g.out, None, true);
                touch(g.a, None, false);
                touch(g.b, None, false);
            }
            Stmt::Assign { local, .. } => {
                locals.entry(*local).or_insert(Touch { writes: true, row: None }).writes = true;
            }
            Stmt::StoreLoss(_) => {}
        }
        s.for_each_expr(&mut |e| {
            e.walk(&mut |e| match e {
                Expr::Load(buffer, index) => touch(*buffer, row_of(index, &extents), false),
                Expr::Local(local) => {
                    locals.entry(*local).or_insert(Touch { writes: false, row: None });
                }
                _ => {}
            })
        });
    });
    let alone = match part {
        Part::First => Some(0),
        Part::Chunk(chunk) => Some(chunk),
        Part::Split { .. } | Part::Gemm | Part::Everywhere { .. } => None,
    };
    Touches { buffers, locals, batch_split: split_var.is_some() || row_product || chunk_product, alone }
}

/// Whether `expr` reads any of `locals`.
fn reads_any(expr: &Expr, locals: &HashSet<Local>) -> bool {
    expr.any(&mut |e| matches!(e, Expr::Local(l) if locals.contains(l)))
}

/// The step a split point of the loop over `var` must be a multiple of, so
/// that each iteration runs the code it runs on one thread; `None` when
/// the loop is written out (no loop to split).
fn granularity(kernel: &Kernel, var: LoopVar, extent: Extent, body: &[Stmt]) -> Option<u32> {
    if kernel.written_out.contains(&var) {
        return None;
    }
    if kernel.vector_loops.contains(&var) {
        // `codegen`'s vector loop: groups of four lanes, `MAX_GROUPS` at a
        // time when the body has an inner loop; a fixed-length one ends in
        // written-out groups after its last multiple of that step.
        let has_inner_loop = body.iter().any(|s| matches!(s, Stmt::Loop { .. }));
        let step = 4 * if has_inner_loop { MAX_GROUPS } else { 1 };
        return match extent {
            Extent::Fixed(n) if n < 2 * step => None,
            _ => Some(step),
        };
    }
    if let Some((_, rows)) = kernel.blocked_rows.iter().find(|(v, _)| *v == var) {
        return Some(*rows);
    }
    match extent {
        Extent::Fixed(n) if n < 2 => None,
        _ => Some(1),
    }
}

/// Whether the outer iterations of `for var in 0..extent { body }` are
/// independent: every store writes a row of its own (`var·c + r` with
/// `0 ≤ r < c`, the same `c` for every store to that buffer), every buffer
/// the nest stores is read only in the row the same iteration writes, no
/// local crosses the nest's edge (`others` are the other top-level
/// statements), and it records no loss.
fn independent<'a>(
    var: LoopVar,
    extent: Extent,
    body: &[Stmt],
    kernel: &Kernel,
    first_only: &HashSet<Local>,
    others: impl Iterator<Item = &'a Stmt>,
) -> bool {
    let mut extents: HashMap<LoopVar, u32> = HashMap::new();
    let max = |e: Extent| e.max_trips(kernel.max_batch);
    extents.insert(var, max(extent));
    let mut ok = true;
    let mut assigned: HashSet<Local> = HashSet::new();
    let mut read: HashSet<Local> = HashSet::new();
    let mut stores: Vec<(BufferId, &Index)> = Vec::new();
    let mut loads: Vec<(BufferId, &Index)> = Vec::new();
    walk(body, &mut |stmt| {
        match stmt {
            Stmt::Loop { var, extent, .. } => {
                extents.insert(*var, max(*extent));
            }
            Stmt::Assign { local, .. } => {
                assigned.insert(*local);
            }
            Stmt::Store { buffer, index, .. } => stores.push((*buffer, index)),
            Stmt::StoreLoss(_) | Stmt::Gemm(_) => ok = false,
        }
        stmt.for_each_expr(&mut |e| {
            e.walk(&mut |e| match e {
                Expr::Load(buffer, index) => loads.push((*buffer, index)),
                Expr::Local(l) => {
                    read.insert(*l);
                }
                _ => {}
            })
        });
    });
    if !ok || read.iter().any(|l| first_only.contains(l)) {
        return false;
    }
    // A local assigned here and used by another top-level statement (a
    // reduction into a value read later) makes the nest one thread's work.
    let mut crosses = false;
    for other in others {
        walk(std::slice::from_ref(other), &mut |s| {
            if let Stmt::Assign { local, .. } = s {
                crosses |= assigned.contains(local);
            }
            s.for_each_expr(&mut |e| crosses |= reads_any(e, &assigned));
        });
    }
    if crosses {
        return false;
    }
    // Each stored buffer: one row stride along `var`, rows that do not overlap.
    let mut row_of: HashMap<BufferId, u32> = HashMap::new();
    for (buffer, index) in &stores {
        let Some(c) = own_row(index, var, &extents) else { return false };
        if *row_of.entry(*buffer).or_insert(c) != c {
            return false;
        }
    }
    loads.iter().all(|(buffer, index)| match row_of.get(buffer) {
        None => true,
        Some(&c) => own_row(index, var, &extents) == Some(c),
    })
}

/// `c` when `index` is `var·c + r` with `0 ≤ r < c` for every value of the
/// other loop variables (their extents in `extents`).
fn own_row(index: &Index, var: LoopVar, extents: &HashMap<LoopVar, u32>) -> Option<u32> {
    let mut stride = None;
    let mut rest_max = index.offset as u64;
    for &(v, s) in &index.terms {
        if v == var {
            if stride.is_some() {
                return None;
            }
            stride = Some(s);
        } else {
            let extent = *extents.get(&v)?;
            rest_max += s as u64 * extent.saturating_sub(1) as u64;
        }
    }
    stride.filter(|&c| c > 0 && rest_max < c as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::{BinaryOp, Buffer, BufferKind, KernelKind};

    fn kernel(body: Vec<Stmt>, buffers: usize) -> Kernel {
        Kernel {
            kind: KernelKind::Train,
            buffers: (0..buffers)
                .map(|i| Buffer {
                    name: format!("b{i}"),
                    kind: BufferKind::Scratch { offset: 0 },
                    shape: crate::ir::Shape::new(crate::ir::Dim::Batch, crate::ir::Dim::Fixed(8)),
                })
                .collect(),
            body,
            n_loop_vars: 4,
            n_locals: 4,
            scratch_len: 0,
            max_batch: 16,
            vector_loops: vec![],
            blocked_rows: vec![],
            written_out: vec![],
            paired_loops: vec![],
        }
    }

    fn index(terms: &[(u32, u32)], offset: u32) -> Index {
        Index { terms: terms.iter().map(|&(v, s)| (LoopVar(v), s)).collect(), offset }
    }

    fn load(buffer: u32, terms: &[(u32, u32)]) -> Expr {
        Expr::Load(BufferId(buffer), index(terms, 0))
    }

    fn for_rows(var: u32, body: Vec<Stmt>) -> Stmt {
        Stmt::Loop { var: LoopVar(var), extent: Extent::Batch, body }
    }

    fn for_cols(var: u32, body: Vec<Stmt>) -> Stmt {
        Stmt::Loop { var: LoopVar(var), extent: Extent::Fixed(8), body }
    }

    /// `for var { for var+1 { b<to>[var, var+1] = b<from>[var, var+1] } }`
    fn copy_rows(var: u32, from: u32, to: u32) -> Stmt {
        for_rows(
            var,
            vec![for_cols(
                var + 1,
                vec![Stmt::Store {
                    buffer: BufferId(to),
                    index: index(&[(var, 8), (var + 1, 1)], 0),
                    value: load(from, &[(var, 8), (var + 1, 1)]),
                }],
            )],
        )
    }

    #[test]
    fn a_rowwise_nest_is_split_and_a_reduction_over_rows_is_not() {
        // b1[i,j] = b0[i,j] * 2: each row its own.
        let rowwise = for_rows(
            0,
            vec![for_cols(
                1,
                vec![Stmt::Store {
                    buffer: BufferId(1),
                    index: index(&[(0, 8), (1, 1)], 0),
                    value: Expr::Binary(
                        BinaryOp::Mul,
                        Box::new(load(0, &[(0, 8), (1, 1)])),
                        Box::new(Expr::Const(2.0)),
                    ),
                }],
            )],
        );
        // l0 = 0; for i { l0 = l0 + b1[i,0] }; b2[0] = l0
        let sum = vec![
            Stmt::Assign { local: Local(0), value: Expr::Const(0.0) },
            for_rows(
                2,
                vec![Stmt::Assign {
                    local: Local(0),
                    value: Expr::Binary(BinaryOp::Add, Box::new(Expr::Local(Local(0))), Box::new(load(1, &[(2, 8)]))),
                }],
            ),
            Stmt::Store { buffer: BufferId(2), index: index(&[], 0), value: Expr::Local(Local(0)) },
        ];
        let mut body = vec![rowwise];
        body.extend(sum);
        let parts = plan(&kernel(body, 3));
        assert_eq!(
            parts,
            [Part::Split { granularity: 1 }, Part::Everywhere { reads_memory: false }, Part::First, Part::First]
        );
    }

    #[test]
    fn a_nest_that_reads_another_rows_result_is_not_split() {
        // b1[i,j] = ...; and in the same nest b2[i,j] = b1[i+1... ] is out of the row.
        let nest = for_rows(
            0,
            vec![for_cols(
                1,
                vec![
                    Stmt::Store { buffer: BufferId(1), index: index(&[(0, 8), (1, 1)], 0), value: Expr::Const(1.0) },
                    Stmt::Store { buffer: BufferId(2), index: index(&[(0, 8), (1, 1)], 0), value: load(1, &[(1, 1)]) },
                ],
            )],
        );
        assert_eq!(plan(&kernel(vec![nest], 3)), [Part::First]);
        // A store that is not a row of its own (b1[j]) is not split either.
        let nest = for_rows(
            0,
            vec![for_cols(
                1,
                vec![Stmt::Store { buffer: BufferId(1), index: index(&[(1, 1)], 0), value: Expr::Const(1.0) }],
            )],
        );
        assert_eq!(plan(&kernel(vec![nest], 2)), [Part::First]);
    }

    #[test]
    fn nests_over_the_same_rows_need_no_barrier_between_them() {
        // b1[i,j] = b0[i,j]; b2[i,j] = b1[i,j]  (row by row: no barrier)
        // b3[j] = b2[0,j]                        (reads another thread's row)
        let first_row = for_cols(
            4,
            vec![Stmt::Store { buffer: BufferId(3), index: index(&[(4, 1)], 0), value: load(2, &[(4, 1)]) }],
        );
        let mut k = kernel(vec![copy_rows(0, 0, 1), copy_rows(2, 1, 2), first_row], 4);
        k.n_loop_vars = 5;
        let parts = plan(&k);
        assert_eq!(parts[..2], [Part::Split { granularity: 1 }, Part::Split { granularity: 1 }]);
        // The third reads a row another thread wrote: a barrier before it.
        let schedule = schedule(&k, &parts, 2);
        assert_eq!(schedule.order, [0, 1, 2]);
        assert_eq!(schedule.barrier_after, [false, true, true]);
    }

    #[test]
    fn a_part_that_depends_on_nothing_before_joins_the_first_group() {
        // b1 = b0 row by row; b2[0,j] = b1[0,j] (reads another thread's
        // row); b3 = b0 row by row (depends on neither).
        let first_row = for_cols(
            4,
            vec![Stmt::Store { buffer: BufferId(2), index: index(&[(4, 1)], 0), value: load(1, &[(4, 1)]) }],
        );
        let mut k = kernel(vec![copy_rows(0, 0, 1), first_row, copy_rows(2, 0, 3)], 4);
        k.n_loop_vars = 5;
        let parts = plan(&k);
        let schedule = schedule(&k, &parts, 2);
        assert_eq!(schedule.order, [0, 2, 1]);
        assert_eq!(schedule.barrier_after, [false, true, true]);
    }

    /// The groups of a schedule: the statements between two barriers.
    fn groups(schedule: &Schedule) -> Vec<Vec<usize>> {
        let mut groups = vec![Vec::new()];
        for (&i, &barrier) in schedule.order.iter().zip(&schedule.barrier_after) {
            groups.last_mut().expect("one").push(i);
            if barrier {
                groups.push(Vec::new());
            }
        }
        groups.pop();
        groups
    }

    #[test]
    fn a_team_of_two_sums_its_chunks_beside_the_nests_that_wrote_their_rows() {
        let text = include_str!("../../tests/passes/shard/linear.ir");
        let graph = crate::ir::parse(text).expect("the filetest's graph parses");
        let options = crate::kernel::LowerOptions { gemm_min_macs: u64::MAX, shard_min_work: 0 };
        let k = crate::kernel::lower_with(&graph, crate::kernel::KernelKind::Train, 32, options).expect("lowers");
        let parts = plan(&k);
        let chunks: Vec<usize> = (0..parts.len()).filter(|&i| matches!(parts[i], Part::Chunk(_))).collect();
        assert_eq!(chunks.len(), 4, "two chunks for the weight and two for the bias: {parts:?}");
        assert!(chunks.iter().all(|&i| parts[i] == Part::Chunk(super::super::shard::chunk_of(&k.body[i]).unwrap())));
        // The row nest that writes the gradient rows the weight's chunks
        // (the first two) read.
        let writer = (0..parts.len())
            .rfind(|&i| i < chunks[0] && matches!(parts[i], Part::Split { .. }))
            .expect("a split nest before the chunks");
        let group_of = |groups: &[Vec<usize>], i: usize| groups.iter().position(|g| g.contains(&i)).unwrap();
        // Two threads: chunk c is thread c's own rows, no barrier between.
        let two = groups(&schedule(&k, &parts, 2));
        assert!(chunks[..2].iter().all(|&c| group_of(&two, c) == group_of(&two, writer)), "{two:?}");
        // Three threads: the chunks are not the threads' rows; they wait.
        let three = groups(&schedule(&k, &parts, 3));
        assert!(chunks[..2].iter().all(|&c| group_of(&three, c) > group_of(&three, writer)), "{three:?}");
        // Either way, the update that adds a sum's partials (the statement
        // after its chunks) comes after both.
        for groups in [&two, &three] {
            for pair in chunks.chunks(2) {
                let update = pair[1] + 1;
                assert!(!chunks.contains(&update));
                assert!(pair.iter().all(|&c| group_of(groups, update) > group_of(groups, c)), "{groups:?}");
            }
        }
    }

    #[test]
    fn rows_are_their_own_only_when_the_rest_fits_in_the_stride() {
        let extents: HashMap<LoopVar, u32> = [(LoopVar(0), 16), (LoopVar(1), 8)].into();
        assert_eq!(own_row(&index(&[(0, 8), (1, 1)], 0), LoopVar(0), &extents), Some(8));
        assert_eq!(own_row(&index(&[(0, 8), (1, 1)], 1), LoopVar(0), &extents), None);
        assert_eq!(own_row(&index(&[(0, 16), (1, 1)], 8), LoopVar(0), &extents), Some(16));
        assert_eq!(own_row(&index(&[(1, 1)], 0), LoopVar(0), &extents), None);
    }
}
