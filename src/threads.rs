//! Worker threads, shared by every stage that runs work in parallel.
//!
//! A [`Pool`] is made once per run from `--threads N` (default: every core
//! the process may use, [`available`]). Work split over it must not change
//! the answer: callers partition by a fixed rule that does not depend on the
//! number of threads and combine parts in a fixed order (see
//! `codegen::gemm`), so a run gives bitwise the same result on 1 or 64
//! threads; only the time changes.

/// The cores this process may run on (1 when that cannot be known).
pub fn available() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// A fixed number of threads. With one, work runs on the calling thread and
/// no thread is started.
pub struct Pool {
    threads: usize,
    pool: Option<rayon::ThreadPool>,
}

impl Pool {
    /// A pool of `threads` threads (at least one). Fails only when the
    /// operating system refuses to start threads.
    pub fn new(threads: usize) -> Result<Pool, String> {
        let threads = threads.max(1);
        let pool = if threads == 1 {
            None
        } else {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .thread_name(|i| format!("nnc-worker-{i}"))
                .build()
                .map_err(|e| format!("cannot start {threads} threads: {e}"))?;
            Some(pool)
        };
        Ok(Pool { threads, pool })
    }

    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Run `task(i)` for every `i` in `0..tasks`, spread over the threads,
    /// and return when all have finished. Which thread runs a task is not
    /// fixed, so tasks must write disjoint memory.
    pub fn for_each(&self, tasks: usize, task: &(dyn Fn(usize) + Sync)) {
        match &self.pool {
            Some(pool) if tasks > 1 => pool.scope(|scope| {
                for i in 0..tasks {
                    scope.spawn(move |_| task(i));
                }
            }),
            _ => (0..tasks).for_each(task),
        }
    }
}
