//! Worker threads, shared by every stage that runs work in parallel.
//!
//! A [`Pool`] is made once per run from `--threads N` (default: every core
//! the process may use, [`available`]). Work split over it must not change
//! the answer: callers partition by a fixed rule that does not depend on the
//! number of threads and combine parts in a fixed order (see
//! `codegen::gemm`), so a run gives bitwise the same result on 1 or 64
//! threads; only the time changes.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};

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
    /// Spins before a waiting thread goes to sleep (none when there are
    /// more threads than cores: the one it waits for may need its core).
    spins: u32,
    arrived: AtomicUsize,
    generation: AtomicUsize,
    /// Threads asleep (or about to be) in [`Team::wait`], woken by the last
    /// to arrive.
    sleepers: AtomicUsize,
    lock: Mutex<()>,
    wake: Condvar,
}

/// Spins before a waiting thread sleeps: the gap between two threads that
/// each have a core finishing the same group of statements is a few
/// microseconds (on a quiet 2-core machine 2¹⁴ spins trained 20-64-64-3
/// about 20% faster than 2¹¹, as fast as 2¹⁷); a longer wait means the
/// other thread lost its core (the machine is busy), and then sleeping
/// hands this core to it.
const SPINS: u32 = 1 << 14;

impl Team {
    pub fn new(threads: usize) -> Team {
        Team {
            threads: threads.max(1),
            spins: if threads <= available() { SPINS } else { 0 },
            arrived: AtomicUsize::new(0),
            generation: AtomicUsize::new(0),
            sleepers: AtomicUsize::new(0),
            lock: Mutex::new(()),
            wake: Condvar::new(),
        }
    }

    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Return when every thread of the team has called this as often as
    /// this one has; what each wrote before is then visible to all.
    pub fn wait(&self) {
        let generation = self.generation.load(Ordering::SeqCst);
        if self.arrived.fetch_add(1, Ordering::AcqRel) + 1 == self.threads {
            // The last to arrive: reset the count before releasing the others
            // (who may arrive at the next barrier at once).
            self.arrived.store(0, Ordering::Relaxed);
            self.generation.fetch_add(1, Ordering::SeqCst);
            // A thread that counted itself a sleeper before this load checks
            // the generation under the lock, so it either sees the new one
            // or is woken here.
            if self.sleepers.load(Ordering::SeqCst) > 0 {
                let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
                self.wake.notify_all();
            }
            return;
        }
        for _ in 0..self.spins {
            if self.generation.load(Ordering::Acquire) != generation {
                return;
            }
            std::hint::spin_loop();
        }
        self.sleepers.fetch_add(1, Ordering::SeqCst);
        let mut guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        while self.generation.load(Ordering::SeqCst) == generation {
            guard = self.wake.wait(guard).unwrap_or_else(|e| e.into_inner());
        }
        drop(guard);
        self.sleepers.fetch_sub(1, Ordering::SeqCst);
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
                            assert!(counts.iter().all(|c| c.load(Ordering::Relaxed) > round));
                            team.wait();
                        }
                    });
                }
            });
        }
    }
}
