//! Worker threads, shared by every stage that runs work in parallel.
//!
//! A [`Pool`] is made once per run from `--threads N` (default: every core
//! the process may use, [`available`]). Work split over it must not change
//! the answer: callers partition by a fixed rule that does not depend on the
//! number of threads and combine parts in a fixed order (see
//! `codegen::gemm`), so a run gives bitwise the same result on 1 or 64
//! threads; only the time changes.

use std::sync::atomic::{AtomicUsize, Ordering};

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

/// The threads of one call of a kernel compiled for a team (see
/// `kernel::parallel`): every thread runs the same code on its share of
/// each statement, and they meet at [`Team::wait`] between statements.
pub struct Team {
    threads: usize,
    /// Whether waiting threads spin before yielding (not when there are
    /// more threads than cores).
    spin: bool,
    arrived: AtomicUsize,
    generation: AtomicUsize,
}

/// Spins before a waiting thread starts yielding its core: long enough to
/// cover the gap between two threads finishing the same statement when
/// each has a core (a few microseconds), short enough that a thread waiting
/// for one that lost its core soon lets it run.
const SPINS: u32 = 1 << 14;

impl Team {
    pub fn new(threads: usize) -> Team {
        Team {
            threads: threads.max(1),
            spin: threads <= available(),
            arrived: AtomicUsize::new(0),
            generation: AtomicUsize::new(0),
        }
    }

    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Return when every thread of the team has called this as often as
    /// this one has; what each wrote before is then visible to all.
    pub fn wait(&self) {
        let generation = self.generation.load(Ordering::Acquire);
        if self.arrived.fetch_add(1, Ordering::AcqRel) + 1 == self.threads {
            // The last to arrive: reset the count before releasing the others
            // (who may arrive at the next barrier at once).
            self.arrived.store(0, Ordering::Relaxed);
            self.generation.fetch_add(1, Ordering::Release);
            return;
        }
        // More threads than cores: a waiting thread yields at once, since
        // the one it waits for may need its core.
        let mut spins = if self.spin { 0 } else { SPINS };
        while self.generation.load(Ordering::Acquire) == generation {
            if spins < SPINS {
                std::hint::spin_loop();
                spins += 1;
            } else {
                std::thread::yield_now();
            }
        }
    }
}

/// [`Team::wait`] for generated code.
///
/// # Safety
/// `team` must point to a live [`Team`].
pub unsafe extern "C" fn barrier(team: *const Team) {
    // SAFETY: by the caller.
    unsafe { (*team).wait() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_barrier_lets_no_thread_run_ahead() {
        for threads in [1, 2, 3] {
            let team = Team::new(threads);
            let counts: Vec<AtomicUsize> = (0..threads).map(|_| AtomicUsize::new(0)).collect();
            std::thread::scope(|scope| {
                for t in 0..threads {
                    let (team, counts) = (&team, &counts);
                    scope.spawn(move || {
                        for round in 0..200 {
                            counts[t].store(round + 1, Ordering::Relaxed);
                            team.wait();
                            // Every thread has finished this round's write.
                            assert!(counts.iter().all(|c| c.load(Ordering::Relaxed) >= round + 1));
                            team.wait();
                        }
                    });
                }
            });
        }
    }
}
