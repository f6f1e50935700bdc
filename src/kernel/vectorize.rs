//! Choosing loops to run four lanes at a time (f32x4).
//!
//! A loop can be vectorised when its iterations are independent lanes:
//! - every store in it writes contiguously along the loop variable
//!   (stride 1), so four iterations write four neighbouring floats;
//! - every buffer it both reads and writes is read exactly where it is
//!   written (an in-place update), so no lane reads another lane's result;
//! - every local it assigns is first assigned at the top of its body from
//!   values that do not include the local itself (a per-lane temporary such
//!   as a matmul accumulator), never carried from one iteration to the next
//!   (a reduction such as a row maximum).
//!
//! Loads may have any stride: stride 0 becomes one scalar load broadcast to
//! all lanes, stride 1 a vector load, anything else four scalar loads.
//! Loops are considered outermost first and the first legal one in a nest
//! is chosen. A fixed trip count that is not a multiple of four ends in a
//! partial group of 1–3 lanes (loads and stores touch only those lanes); a
//! loop over the batch ends in a scalar tail.
//!
//! Around a vector loop whose body is a long reduction (a matrix product),
//! the enclosing row loop may be *blocked*: several rows per iteration, so
//! one load of a weight row feeds several rows' multiply-adds
//! ([`Kernel::blocked_rows`], printed as `(2 at a time)`).
//!
//! Last, it decides which loops are written out as straight-line code
//! ([`Kernel::written_out`]) and which reductions inside vector loops run
//! two steps per iteration ([`Kernel::paired_loops`]); codegen follows
//! these decisions and makes none of its own.

use super::{BufferId, Expr, Extent, Index, Kernel, Local, LoopVar, Stmt, walk, walk_exprs};
use std::collections::{HashMap, HashSet};

/// Mark the loops of `kernel` that run as f32x4, and the loops around them
/// whose iterations run several at a time (register blocking).
pub fn vectorize(kernel: &mut Kernel) {
    let mut chosen = Vec::new();
    choose(&kernel.body, &mut chosen);
    kernel.vector_loops = chosen;
    // An evaluation runs once per epoch at most: its kernel is kept small,
    // since compiling the larger blocked code would cost more than it saves
    // — unless it is sized for long chunks of rows.
    let mut blocked = Vec::new();
    let small_eval = kernel.kind == super::KernelKind::Eval && kernel.max_batch < BLOCKED_EVAL_MIN_ROWS;
    if !small_eval {
        choose_blocks(&kernel.body, &kernel.vector_loops, kernel.max_batch, &mut blocked);
    }
    kernel.blocked_rows = blocked;
    let mut written_out = Vec::new();
    let mut paired = Vec::new();
    unrolling(&kernel.body, &kernel.vector_loops, false, &mut written_out, &mut paired);
    kernel.written_out = written_out;
    // Small evaluation kernels stay small (see above).
    kernel.paired_loops = if !small_eval { paired } else { Vec::new() };
}

/// Evaluation kernels sized for at least this many rows per call (an
/// evaluation in chunks of `pipeline::EVAL_CHUNK` rows) get the training
/// kernels' blocked rows and paired reductions: over 10⁶ rows of
/// 20-64-64-3 the blocked code saves far more than its compile time.
pub const BLOCKED_EVAL_MIN_ROWS: usize = 4096;

/// Innermost loops of at most this many iterations are written out in full:
/// the index becomes a constant in every address, and the loop control
/// disappears (tiny layers such as iris's 4 inputs).
pub const UNROLL_LIMIT: u32 = 8;

/// Fixed-length vector loops of at most this many lanes are written out.
const WRITE_OUT_LANES: u32 = 4 * super::MAX_GROUPS;

/// The loops of `body` that are written out in full, and the reductions
/// inside a vector loop (`in_vector`) that run two steps per iteration:
/// half the loop control, and the register allocator can alternate
/// registers between the two steps instead of moving every accumulator
/// back.
fn unrolling(
    body: &[Stmt],
    vector: &[LoopVar],
    in_vector: bool,
    written_out: &mut Vec<LoopVar>,
    paired: &mut Vec<LoopVar>,
) {
    for stmt in body {
        let Stmt::Loop { var, extent, body: inner } = stmt else { continue };
        let innermost = !inner.iter().any(|s| matches!(s, Stmt::Loop { .. }));
        let short = |limit: u32| matches!(extent, Extent::Fixed(n) if *n <= limit);
        if vector.contains(var) {
            if short(WRITE_OUT_LANES) {
                written_out.push(*var);
            }
        } else if innermost && short(UNROLL_LIMIT) {
            written_out.push(*var);
        } else if innermost && in_vector {
            paired.push(*var);
        }
        unrolling(inner, vector, in_vector || vector.contains(var), written_out, paired);
    }
}

/// At most this many vector accumulators live at once in a blocked nest:
/// x86-64 has 16 vector registers, and each step of the reduction also
/// holds one row of weights per group and one broadcast per blocked row.
const MAX_ACCUMULATORS: u32 = 8;

/// Register blocking. In a matrix product
///
/// ```text
/// for r in 0..B { for c in 0..n (f32x4) { acc = 0; for k { acc += a[r,k]·w[k,c] }; out[r,c] = f(acc) } }
/// ```
///
/// every step of the inner loop loads a row of `w` for a single row `r`.
/// Running `U` rows of `r` together (unroll and jam) loads it once for all
/// `U`, so the loop does `U` times the multiply-adds per weight load. Legal
/// when the rows are independent: each row's stores land in its own part of
/// the buffer, and a buffer that is stored is read only where it is written.
fn choose_blocks(body: &[Stmt], vector: &[LoopVar], max_batch: usize, out: &mut Vec<(LoopVar, u32)>) {
    for stmt in body {
        let Stmt::Loop { var, extent, body: inner } = stmt else { continue };
        if vector.contains(var) {
            continue;
        }
        if let [Stmt::Loop { var: lanes, extent: Extent::Fixed(width), body: lane_body }] = &inner[..]
            && vector.contains(lanes)
            && lane_body.iter().any(|s| matches!(s, Stmt::Loop { extent, .. } if long_reduction(*extent)))
        {
            // Groups of four lanes per vector iteration, as codegen runs them.
            let groups = width.div_ceil(4).min(super::MAX_GROUPS);
            let rows = if groups <= 2 { 4 } else { 2 };
            let trips = match extent {
                Extent::Fixed(n) => *n as usize,
                Extent::Batch | Extent::Rows { .. } => max_batch,
            };
            if groups * rows <= MAX_ACCUMULATORS && trips >= rows as usize && rows_independent(*var, inner, max_batch) {
                out.push((*var, rows));
                continue;
            }
        }
        choose_blocks(inner, vector, max_batch, out);
    }
}

/// Whether a reduction is long enough for blocking to pay for the code it
/// adds: short ones (a layer of a few inputs) are written out in full by
/// codegen (see [`UNROLL_LIMIT`]), where blocking would multiply straight-line code that compiles
/// slower than it runs.
fn long_reduction(extent: Extent) -> bool {
    match extent {
        Extent::Fixed(n) => n > UNROLL_LIMIT,
        Extent::Batch | Extent::Rows { .. } => true,
    }
}

/// Whether iterations of the loop over `var` touch disjoint stored elements
/// and read no element another iteration stores.
fn rows_independent(var: LoopVar, body: &[Stmt], max_batch: usize) -> bool {
    let mut extents: HashMap<LoopVar, u32> = HashMap::new();
    let mut stores: HashMap<BufferId, Vec<&Index>> = HashMap::new();
    let mut loads: Vec<(BufferId, &Index)> = Vec::new();
    walk(body, &mut |stmt| {
        match stmt {
            Stmt::Loop { var, extent, .. } => {
                let n = match extent {
                    Extent::Fixed(n) => *n,
                    Extent::Batch | Extent::Rows { .. } => max_batch as u32,
                };
                extents.insert(*var, n);
            }
            Stmt::Store { buffer, index, .. } => stores.entry(*buffer).or_default().push(index),
            Stmt::Assign { .. } | Stmt::StoreLoss(_) | Stmt::Gemm(_) => {}
        }
        stmt.for_each_expr(&mut |value| loads_of(value, &mut loads));
    });
    let disjoint = stores.values().flatten().all(|index| {
        let step = stride(index, var);
        let span: u32 = index
            .terms
            .iter()
            .filter(|(v, _)| *v != var)
            .map(|(v, s)| extents.get(v).map_or(u32::MAX, |n| n.saturating_sub(1).saturating_mul(*s)))
            .fold(0, u32::saturating_add);
        step > span
    });
    let in_place =
        loads.iter().all(|(buffer, index)| stores.get(buffer).is_none_or(|w| w.iter().all(|w| *w == *index)));
    disjoint && in_place && !stores.is_empty()
}

fn choose(body: &[Stmt], chosen: &mut Vec<LoopVar>) {
    for stmt in body {
        if let Stmt::Loop { var, extent, body } = stmt {
            // Two or three lanes are still one vector operation (a partial
            // group of four in the generated code).
            let long_enough = match extent {
                Extent::Fixed(n) => *n >= 2,
                Extent::Batch | Extent::Rows { .. } => true,
            };
            if long_enough && legal(*var, body) {
                chosen.push(*var);
            } else {
                choose(body, chosen);
            }
        }
    }
}

fn stride(index: &Index, var: LoopVar) -> u32 {
    index.terms.iter().filter(|(v, _)| *v == var).map(|(_, s)| *s).sum()
}

/// Whether the loop over `var` with this body can run as independent lanes.
pub fn legal(var: LoopVar, body: &[Stmt]) -> bool {
    let mut stores: HashMap<BufferId, Vec<&Index>> = HashMap::new();
    let mut loads: Vec<(BufferId, &Index)> = Vec::new();
    let mut ok = true;
    walk(body, &mut |stmt| {
        match stmt {
            Stmt::Store { buffer, index, .. } => {
                ok &= stride(index, var) == 1;
                stores.entry(*buffer).or_default().push(index);
            }
            Stmt::StoreLoss(_) | Stmt::Gemm(_) => ok = false,
            Stmt::Assign { .. } | Stmt::Loop { .. } => {}
        }
        stmt.for_each_expr(&mut |value| {
            ok &= !has_dropout(value);
            loads_of(value, &mut loads);
        });
    });
    if !ok || stores.is_empty() {
        return false;
    }
    for (buffer, index) in &loads {
        if let Some(written) = stores.get(buffer)
            && written.iter().any(|w| *w != *index)
        {
            return false;
        }
    }
    if stores.values().any(|w| w.windows(2).any(|p| p[0] != p[1])) {
        return false;
    }
    locals_are_lanes(body)
}

/// Every local assigned anywhere in `body` must first be assigned at the top
/// level of `body`, from a value that does not read it.
fn locals_are_lanes(body: &[Stmt]) -> bool {
    let mut assigned: HashSet<Local> = HashSet::new();
    walk(body, &mut |stmt| {
        if let Stmt::Assign { local, .. } = stmt {
            assigned.insert(*local);
        }
    });
    let mut initialised: HashSet<Local> = HashSet::new();
    for stmt in body {
        let mut read = HashSet::new();
        walk_exprs(std::slice::from_ref(stmt), &mut |e| {
            if let Expr::Local(local) = e {
                read.insert(*local);
            }
        });
        match stmt {
            Stmt::Assign { local, value } if !initialised.contains(local) => {
                let mut reads_self = HashSet::new();
                locals_of(value, &mut reads_self);
                if reads_self.contains(local) {
                    return false;
                }
                initialised.insert(*local);
            }
            _ => {
                if read.iter().any(|l| assigned.contains(l) && !initialised.contains(l)) {
                    return false;
                }
                let mut inner = HashSet::new();
                walk(std::slice::from_ref(stmt), &mut |s| {
                    if let Stmt::Assign { local, .. } = s {
                        inner.insert(*local);
                    }
                });
                if inner.iter().any(|l| !initialised.contains(l)) {
                    return false;
                }
            }
        }
    }
    true
}

/// Dropout hashes integer positions, which the vector code does not do.
fn has_dropout(expr: &Expr) -> bool {
    expr.any(&mut |e| matches!(e, Expr::Dropout { .. }))
}

fn loads_of<'a>(expr: &'a Expr, out: &mut Vec<(BufferId, &'a Index)>) {
    expr.walk(&mut |e| {
        if let Expr::Load(buffer, index) = e {
            out.push((*buffer, index));
        }
    });
}

fn locals_of(expr: &Expr, out: &mut HashSet<Local>) {
    expr.walk(&mut |e| {
        if let Expr::Local(local) = e {
            out.insert(*local);
        }
    });
}
