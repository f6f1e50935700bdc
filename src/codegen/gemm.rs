//! The native side of [`Stmt::Gemm`](crate::kernel::Stmt::Gemm): a matrix
//! product by the `gemm` crate's tuned kernels (AVX2/FMA or AVX-512, chosen
//! by the CPU at run time), which generated code calls for large products.
//!
//! Cranelift emits 128-bit vectors only, so its loop nests reach about half
//! of what a 256-bit micro-kernel with cache blocking does on a large
//! product; for small ones the fused loop nest wins (no call, no buffer for
//! the product). Lowering picks by size (`kernel::GEMM_MIN_MACS`).
//!
//! **Deterministic threads.** The output is cut into blocks by [`blocks`],
//! a rule that depends on the product's shape only, never on the number of
//! threads; each block is one single-threaded library call, so every output
//! element is summed in the same order whichever thread computes it. A run
//! gives bitwise the same weights on 1, 2 or 3 threads.

use crate::threads::Pool;

/// Output blocks are at least this many rows or columns wide (unless the
/// output is narrower), and there are at most [`MAX_BLOCKS`]: enough
/// blocks that a 64-wide layer's product has two to share between threads
/// and a 784-row one thirteen (shares within 5% of each other on two
/// threads), few enough that the library's packing of the other operand,
/// repeated for every block, stays a small cost (a 4096-row evaluation
/// chunk: 16 blocks, not 128). Measured on AVX-512: 256×64×64, 64×64×256
/// and 64×256×784 products ran as fast in blocks of 32 as whole, 784×256×64
/// in blocks of 64 at 97%.
const MIN_BLOCK: usize = 32;
const MAX_BLOCKS: usize = 16;

/// Products smaller than this many multiply-adds run their blocks on the
/// calling thread even when there are more: handing blocks to another
/// thread costs more than it saves. Measured on a quiet 2-core machine
/// (BENCHMARKS.md, `peers/scale.py`): the 784-256-10 step at batch 64
/// (products of 12.8 M) ran at 0.83× on two threads, 20-256-256-3 at
/// batch 256 (16.8 M) at 1.00×, 20-1024-1024-3 (268 M) at 1.78×. Either
/// way the blocks, and so the results, are the same. (Kernels compiled for
/// a team split every product with [`sgemm_share`] instead.)
const PARALLEL_MIN_MACS: usize = 1 << 25;

/// How to cut an `m × n` output: along the longer side into equal blocks
/// (see [`MIN_BLOCK`], rounded up to 16, the micro-kernels' multiple), the
/// last one possibly shorter. Returns `(along_rows, block, count)`.
pub fn blocks(m: usize, n: usize) -> (bool, usize, usize) {
    let along_rows = m > n;
    let length = if along_rows { m } else { n };
    let count = length.div_ceil(MIN_BLOCK).clamp(1, MAX_BLOCKS);
    let block = length.div_ceil(count).next_multiple_of(16).min(length.max(1));
    (along_rows, block, length.div_ceil(block).max(1))
}

/// Raw operands, shared read-only between the threads of one call.
#[derive(Clone, Copy)]
struct Operands {
    m: usize,
    n: usize,
    k: usize,
    a: *const f32,
    a_rs: isize,
    a_cs: isize,
    b: *const f32,
    b_rs: isize,
    b_cs: isize,
    c: *mut f32,
    c_rs: isize,
    accumulate: bool,
    scale: f32,
}

// SAFETY: the pointers are only used for the duration of one `sgemm` call,
// whose caller guarantees them valid; blocks write disjoint parts of `c`.
unsafe impl Send for Operands {}
unsafe impl Sync for Operands {}

impl Operands {
    /// Block `i` of [`blocks`]: one single-threaded library call.
    ///
    /// # Safety
    /// As [`sgemm`]; `i` below the block count.
    unsafe fn block(&self, along_rows: bool, block: usize, i: usize) {
        let start = i * block;
        // SAFETY: block `i` covers rows (or columns) `start..start+len` of
        // the output and the matching rows of `a` (columns of `b`), all
        // inside the extents the caller vouched for.
        unsafe {
            if along_rows {
                let len = block.min(self.m - start);
                product(
                    self,
                    len,
                    self.n,
                    self.a.offset(start as isize * self.a_rs),
                    self.b,
                    self.c.offset(start as isize * self.c_rs),
                );
            } else {
                let len = block.min(self.n - start);
                product(self, self.m, len, self.a, self.b.offset(start as isize * self.b_cs), self.c.add(start));
            }
        }
    }
}

/// `c[m,n] = a[m,k] · b[k,n]` with element strides (`a[i,p]` at
/// `a + i·a_rs + p·a_cs`), `c` row-major with row stride `c_rs`; with
/// `accumulate` not 0, `c += scale · a·b` instead. `pool` may be null (one
/// thread). Called from generated code.
///
/// # Safety
/// All pointers must be valid for the extents and strides given, `c` must
/// not overlap `a` or `b`, and `pool`, when not null, must point to a live
/// [`Pool`].
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn sgemm(
    pool: *const Pool,
    m: i64,
    n: i64,
    k: i64,
    a: *const f32,
    a_rs: i64,
    a_cs: i64,
    b: *const f32,
    b_rs: i64,
    b_cs: i64,
    c: *mut f32,
    c_rs: i64,
    accumulate: i64,
    scale: f32,
) {
    let ops = Operands::new(m, n, k, a, a_rs, a_cs, b, b_rs, b_cs, c, c_rs, accumulate, scale);
    if ops.m == 0 || ops.n == 0 {
        return;
    }
    let (along_rows, block, count) = blocks(ops.m, ops.n);
    // SAFETY: by the caller, for every block below `count`.
    let run = move |i: usize| unsafe { ops.block(along_rows, block, i) };
    // SAFETY: null or a live pool, by the caller.
    match unsafe { pool.as_ref() } {
        Some(pool) if ops.m.saturating_mul(ops.n).saturating_mul(ops.k) >= PARALLEL_MIN_MACS => {
            pool.for_each(count, &run)
        }
        _ => (0..count).for_each(run),
    }
}

/// Thread `thread` of `threads`' share of [`sgemm`]'s blocks: a run of
/// consecutive blocks, the same for every call with these sizes. Called by
/// each thread of a team (`kernel::parallel`), which meet at a barrier
/// afterwards; the blocks, and so the result, are those of [`sgemm`].
///
/// # Safety
/// As [`sgemm`]; `thread < threads`.
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn sgemm_share(
    thread: i64,
    threads: i64,
    m: i64,
    n: i64,
    k: i64,
    a: *const f32,
    a_rs: i64,
    a_cs: i64,
    b: *const f32,
    b_rs: i64,
    b_cs: i64,
    c: *mut f32,
    c_rs: i64,
    accumulate: i64,
    scale: f32,
) {
    let ops = Operands::new(m, n, k, a, a_rs, a_cs, b, b_rs, b_cs, c, c_rs, accumulate, scale);
    if ops.m == 0 || ops.n == 0 {
        return;
    }
    let (along_rows, block, count) = blocks(ops.m, ops.n);
    let (thread, threads) = (thread.max(0) as usize, threads.max(1) as usize);
    for i in share(count, thread, threads) {
        // SAFETY: by the caller; `share` stays below `count`.
        unsafe { ops.block(along_rows, block, i) };
    }
}

/// Rows `first..end` of [`sgemm`]'s product (`first` a multiple of
/// `kernel::parallel::ROW_BLOCK`, `end` one too or at most `m`), in blocks
/// of that many rows: the whole product (`0..m`) in a plain kernel, one
/// thread's rows in a team (`kernel::parallel::by_rows`). The blocks, and so
/// the result, are the same either way.
///
/// # Safety
/// As [`sgemm`].
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn sgemm_rows(
    first: i64,
    end: i64,
    m: i64,
    n: i64,
    k: i64,
    a: *const f32,
    a_rs: i64,
    a_cs: i64,
    b: *const f32,
    b_rs: i64,
    b_cs: i64,
    c: *mut f32,
    c_rs: i64,
    accumulate: i64,
    scale: f32,
) {
    let ops = Operands::new(m, n, k, a, a_rs, a_cs, b, b_rs, b_cs, c, c_rs, accumulate, scale);
    if ops.m == 0 || ops.n == 0 {
        return;
    }
    let block = crate::kernel::parallel::ROW_BLOCK as usize;
    let (first, end) = (first.max(0) as usize, (end.max(0) as usize).min(ops.m));
    if first >= end {
        return;
    }
    for i in first / block..end.div_ceil(block) {
        // SAFETY: by the caller; block `i` starts below `m`.
        unsafe { ops.block(true, block, i) };
    }
}

/// The blocks `count` blocks give thread `thread` of `threads`: consecutive
/// runs whose lengths differ by at most one.
pub fn share(count: usize, thread: usize, threads: usize) -> std::ops::Range<usize> {
    (thread * count / threads)..((thread + 1) * count / threads)
}

impl Operands {
    #[allow(clippy::too_many_arguments)]
    fn new(
        m: i64,
        n: i64,
        k: i64,
        a: *const f32,
        a_rs: i64,
        a_cs: i64,
        b: *const f32,
        b_rs: i64,
        b_cs: i64,
        c: *mut f32,
        c_rs: i64,
        accumulate: i64,
        scale: f32,
    ) -> Operands {
        Operands {
            m: m.max(0) as usize,
            n: n.max(0) as usize,
            k: k.max(0) as usize,
            a,
            a_rs: a_rs as isize,
            a_cs: a_cs as isize,
            b,
            b_rs: b_rs as isize,
            b_cs: b_cs as isize,
            c,
            c_rs: c_rs as isize,
            accumulate: accumulate != 0,
            scale,
        }
    }
}

/// One single-threaded library call for an `m × n` block.
///
/// # Safety
/// As [`sgemm`], for the block.
unsafe fn product(ops: &Operands, m: usize, n: usize, a: *const f32, b: *const f32, c: *mut f32) {
    if ops.k == 0 {
        if ops.accumulate {
            return;
        }
        for i in 0..m {
            // SAFETY: row `i` of the block, inside `c`.
            unsafe { std::slice::from_raw_parts_mut(c.offset(i as isize * ops.c_rs), n).fill(0.0) };
        }
        return;
    }
    // SAFETY: by the caller. `gemm` computes dst = alpha·dst + beta·lhs·rhs;
    // with `read_dst = false` it never reads `c` (alpha is then ignored).
    let (read_dst, beta) = if ops.accumulate { (true, ops.scale) } else { (false, 1.0) };
    unsafe {
        gemm::gemm(
            m,
            n,
            ops.k,
            c,
            1,
            ops.c_rs,
            read_dst,
            a,
            ops.a_cs,
            ops.a_rs,
            b,
            ops.b_cs,
            ops.b_rs,
            1.0f32,
            beta,
            false,
            false,
            false,
            gemm::Parallelism::None,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_shares_compute_their_rows_only_and_add_up_to_the_whole() {
        let (m, n, k) = (70usize, 8usize, 5usize);
        let a: Vec<f32> = (0..m * k).map(|i| (i % 7) as f32 - 3.0).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i % 5) as f32 * 0.5).collect();
        let product = |ranges: &[(i64, i64)]| {
            let mut c = vec![f32::NAN; m * n];
            for &(first, end) in ranges {
                // SAFETY: a is m×k, b is k×n, c is m×n, all row-major.
                unsafe {
                    sgemm_rows(
                        first,
                        end,
                        m as i64,
                        n as i64,
                        k as i64,
                        a.as_ptr(),
                        k as i64,
                        1,
                        b.as_ptr(),
                        n as i64,
                        1,
                        c.as_mut_ptr(),
                        n as i64,
                        0,
                        0.0,
                    )
                };
            }
            c
        };
        let whole = product(&[(0, m as i64)]);
        assert!(whole.iter().all(|x| x.is_finite()));
        let shared = product(&[(0, 32), (32, 64), (64, 70), (70, 70)]);
        assert_eq!(
            whole.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
            shared.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
        );
        // An empty share (a thread with no rows, as the last thread of a
        // short batch has) writes nothing.
        assert!(product(&[(32, 32), (70, 70)]).iter().all(|x| x.is_nan()));
        // A share computes its rows and no other.
        let part = product(&[(32, 64)]);
        assert!(part[..32 * n].iter().chain(&part[64 * n..]).all(|x| x.is_nan()));
        assert!(part[32 * n..64 * n].iter().all(|x| x.is_finite()));
    }

    #[test]
    fn shares_cover_the_blocks_once() {
        for count in 1..20 {
            for threads in 1..5 {
                let covered: Vec<usize> = (0..threads).flat_map(|t| share(count, t, threads)).collect();
                assert_eq!(covered, (0..count).collect::<Vec<_>>());
            }
        }
    }

    #[test]
    fn blocks_cover_the_output_once() {
        for (m, n) in [(1, 1), (64, 256), (784, 256), (256, 10), (3, 1000), (1000, 1000), (130, 7)] {
            let (along_rows, block, count) = blocks(m, n);
            let length = if along_rows { m } else { n };
            assert!(block >= 1 && (count - 1) * block < length && count * block >= length, "{m}x{n}");
        }
    }
}
