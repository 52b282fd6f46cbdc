//! The threads of one generation step, handing each other its parallel operations through a
//! shared counter instead of a fork-join each.
//!
//! Why: a step is ~150 short operations (a product of a few microseconds, the attention of a
//! layer). Through rayon each one was a fork-join: the other thread, back in rayon's idle loop
//! (a `sched_yield` per round) after the serial work between two operations, took 0.8 us to
//! start on its share of a one-answer product and 3-3.7 us at four answers, where the serial
//! part before a product (quantizing four rows) is longer, of products that take 12-20 us
//! (measured with a timer in the product, docs/benchmarks.md). Here the other threads spin on
//! one atomic for the whole step and start an operation within a cache-line transfer.
//!
//! How: [`Team::with`] runs a step's body on the calling thread and a helper on every other
//! thread of the current rayon pool (spawned in a `rayon::scope`, so they are the pool's own
//! threads and leave when the body returns). [`Team::run`] publishes one operation (`tasks`
//! calls of a closure on the caller's stack), takes tasks itself, and returns only once every
//! task has finished and no helper can still reach the operation. A helper that never started
//! (its thread busy) costs nothing but speed: the caller takes every task itself.
//!
//! This is the one place outside the SIMD kernels and the panel cache's mapping where the
//! crate uses `unsafe`: a helper reads the published operation through a pointer whose
//! lifetime the compiler cannot see. The protocol that makes it sound is on [`Team::run`].
#![allow(unsafe_code)]

use std::any::Any;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a helper spins for the next operation before it yields its core between looks.
const SPIN_BEFORE_YIELDING: Duration = Duration::from_micros(50);

/// One operation: `tasks` calls of `work`, each index handed out once by `next`.
struct Operation<'a> {
    work: &'a (dyn Fn(usize) + Sync),
    tasks: usize,
    next: AtomicUsize,
    done: AtomicUsize,
    /// The first panic of a task, re-raised on the calling thread once the operation is over.
    panic: Mutex<Option<Box<dyn Any + Send>>>,
}

impl Operation<'_> {
    /// Takes tasks until none are left; a panicking task counts as done.
    fn take_tasks(&self) {
        loop {
            let task = self.next.fetch_add(1, Ordering::Relaxed);
            if task >= self.tasks {
                return;
            }
            if let Err(panic) = catch_unwind(AssertUnwindSafe(|| (self.work)(task))) {
                let mut first = self
                    .panic
                    .lock()
                    .unwrap_or_else(|poison| poison.into_inner());
                first.get_or_insert(panic);
            }
            self.done.fetch_add(1, Ordering::Release);
        }
    }
}

/// The threads of one step ([`Team::with`]).
pub(crate) struct Team {
    /// The operation being run, or null.
    operation: AtomicPtr<Operation<'static>>,
    /// Bumped at each publication, so that a helper looks at each operation once.
    published: AtomicUsize,
    /// Helpers that may be reading `operation`.
    readers: AtomicUsize,
    closed: AtomicBool,
}

impl Team {
    /// Runs `body` with a team: this thread plus a helper on each other thread of the current
    /// rayon pool. Called from outside a pool (tests' token-by-token comparisons), `body` runs on
    /// rayon's global pool with its threads as the team, as its products did through rayon; in
    /// a pool of one, on this thread alone.
    pub(crate) fn with<R: Send>(body: impl FnOnce(&Team) -> R + Send) -> R {
        let team = Team {
            operation: AtomicPtr::new(std::ptr::null_mut()),
            published: AtomicUsize::new(0),
            readers: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
        };
        let helpers = rayon::current_num_threads().saturating_sub(1);
        if helpers == 0 {
            return body(&team);
        }
        rayon::scope(|scope| {
            for _ in 0..helpers {
                scope.spawn(|_| team.help());
            }
            // The helpers leave once the body is over, whether it returned or panicked (a
            // panic here would otherwise leave them spinning and the scope waiting for them).
            let result = catch_unwind(AssertUnwindSafe(|| body(&team)));
            team.closed.store(true, Ordering::Release);
            result.unwrap_or_else(|panic| resume_unwind(panic))
        })
    }

    /// Calls `work(task)` for every task in `0..tasks`, on this thread and the helpers, and
    /// returns when all have returned (a task's panic is re-raised here, after that).
    ///
    /// Soundness: `operation` points at a local of this call. It is published (stored) before
    /// `published` is bumped, and taken back (nulled) only once every task is done; this call
    /// then waits until `readers` is zero before returning. A helper counts itself in
    /// `readers` *before* it loads the pointer and dereferences only a non-null value loaded
    /// after that (all `SeqCst`), so either it was counted before the pointer was taken back
    /// (and this call waits for it) or it loads null or a later operation, which is live.
    pub(crate) fn run(&self, tasks: usize, work: &(dyn Fn(usize) + Sync)) {
        if tasks == 0 {
            return;
        }
        let operation = Operation {
            work,
            tasks,
            next: AtomicUsize::new(0),
            done: AtomicUsize::new(0),
            panic: Mutex::new(None),
        };
        // Only the lifetime is erased; see above for why no helper outlives it.
        let pointer = (&operation as *const Operation<'_>)
            .cast::<Operation<'static>>()
            .cast_mut();
        self.operation.store(pointer, Ordering::SeqCst);
        self.published.fetch_add(1, Ordering::SeqCst);
        operation.take_tasks();
        while operation.done.load(Ordering::Acquire) < tasks {
            std::hint::spin_loop();
        }
        self.operation.store(std::ptr::null_mut(), Ordering::SeqCst);
        while self.readers.load(Ordering::SeqCst) != 0 {
            std::hint::spin_loop();
        }
        let panic = operation
            .panic
            .into_inner()
            .unwrap_or_else(|poison| poison.into_inner());
        if let Some(panic) = panic {
            resume_unwind(panic);
        }
    }

    /// A helper's loop: spins until an operation is published, takes its tasks, and leaves
    /// when the team is closed.
    fn help(&self) {
        let mut seen = 0;
        let mut idle_since = None;
        while !self.closed.load(Ordering::Acquire) {
            let published = self.published.load(Ordering::SeqCst);
            if published == seen {
                // Spinning through a step's serial parts (microseconds); past that (this
                // thread's caller descheduled, say) the core goes to whatever else is waiting,
                // such as the searches' embedder, at a yield per look.
                let since = *idle_since.get_or_insert_with(Instant::now);
                if since.elapsed() < SPIN_BEFORE_YIELDING {
                    std::hint::spin_loop();
                } else {
                    std::thread::yield_now();
                }
                continue;
            }
            idle_since = None;
            seen = published;
            self.readers.fetch_add(1, Ordering::SeqCst);
            let operation = self.operation.load(Ordering::SeqCst);
            if !operation.is_null() {
                // SAFETY: loaded non-null after this thread counted itself in `readers`, so
                // the operation is live until `readers` falls back (see `run`).
                unsafe { (*operation).take_tasks() };
            }
            self.readers.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// The tasks of `0..items` in `parts` contiguous ranges (the first ones one longer where they
/// do not divide): task `task` covers the returned range.
pub(crate) fn share(items: usize, parts: usize, task: usize) -> std::ops::Range<usize> {
    let parts = parts.max(1);
    let (base, extra) = (items / parts, items % parts);
    let start = task * base + task.min(extra);
    let end = start + base + usize::from(task < extra);
    start.min(items)..end.min(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_task_runs_once_on_a_pool_of_two() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .expect("pool");
        let counts: Vec<AtomicUsize> = (0..1000).map(|_| AtomicUsize::new(0)).collect();
        let threads = Mutex::new(std::collections::HashSet::new());
        pool.install(|| {
            Team::with(|team| {
                for round in 0..200 {
                    let tasks = round % 7 + 1;
                    team.run(tasks, &|task| {
                        counts[round * 5 % 990 + task].fetch_add(1, Ordering::Relaxed);
                        threads
                            .lock()
                            .expect("lock")
                            .insert(std::thread::current().id());
                        // Long enough that the helper takes some.
                        std::thread::sleep(std::time::Duration::from_micros(50));
                    });
                }
            })
        });
        let mut expected = vec![0_usize; 1000];
        for round in 0..200 {
            for task in 0..round % 7 + 1 {
                expected[round * 5 % 990 + task] += 1;
            }
        }
        let counted: Vec<usize> = counts.iter().map(|c| c.load(Ordering::Relaxed)).collect();
        assert_eq!(counted, expected);
        assert_eq!(
            threads.lock().expect("lock").len(),
            2,
            "both threads took tasks"
        );
    }

    #[test]
    fn a_task_panic_reaches_the_caller_after_the_operation() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .expect("pool");
        let finished = AtomicUsize::new(0);
        let outcome = pool.install(|| {
            catch_unwind(AssertUnwindSafe(|| {
                Team::with(|team| {
                    team.run(8, &|task| {
                        std::thread::sleep(std::time::Duration::from_micros(100));
                        if task == 3 {
                            panic!("task three");
                        }
                        finished.fetch_add(1, Ordering::Relaxed);
                    })
                })
            }))
        });
        let panic = outcome.expect_err("the panic is re-raised");
        assert_eq!(panic.downcast_ref::<&str>(), Some(&"task three"));
        assert_eq!(finished.load(Ordering::Relaxed), 7, "the other tasks ran");
    }

    #[test]
    fn outside_a_pool_the_global_pool_runs_it() {
        let total = AtomicUsize::new(0);
        let on_pool = AtomicUsize::new(0);
        Team::with(|team| {
            team.run(10, &|task| {
                total.fetch_add(task, Ordering::Relaxed);
                if rayon::current_thread_index().is_some() {
                    on_pool.fetch_add(1, Ordering::Relaxed);
                }
            })
        });
        assert_eq!(total.load(Ordering::Relaxed), 45);
        assert_eq!(
            on_pool.load(Ordering::Relaxed),
            10,
            "every task on the global pool"
        );
    }

    #[test]
    fn shares_are_contiguous_and_cover_everything() {
        for items in 0..40 {
            for parts in 1..9 {
                let ranges: Vec<_> = (0..parts).map(|task| share(items, parts, task)).collect();
                assert_eq!(ranges[0].start, 0);
                assert_eq!(ranges[parts - 1].end, items);
                for pair in ranges.windows(2) {
                    assert_eq!(pair[0].end, pair[1].start);
                    assert!(pair[0].len() >= pair[1].len() && pair[0].len() <= pair[1].len() + 1);
                }
            }
        }
    }
}
