//! A counter for the hot path: each thread that counts owns a cache line of
//! it and adds with a plain load and store. An atomic add is a locked
//! instruction (about 4 ns here, three of them per cached verification),
//! and a counter every core adds to moves its cache line from core to core
//! on each add. Reading sums the lines.
//!
//! A line is written by one thread only, so no add is lost: a thread takes
//! a line number when it first counts and gives it back when it exits (the
//! pool's lock orders the old owner's last add before the new owner's
//! first). Threads beyond the machine's parallelism, and a thread counting
//! after its number was given back (in another thread-local's destructor),
//! share one more line with an atomic add.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex, PoisonError};

use prometheus_client::metrics::counter::Atomic;

/// Two cache lines, as x86's adjacent-line prefetcher pairs them: two
/// threads' lines never share a pair.
#[repr(align(128))]
#[derive(Default)]
struct Line(AtomicU64);

/// Lines owned by one thread each: as many as the threads that verify at
/// once (Tokio's workers, one per core by default), and a few more.
static OWNED_LINES: LazyLock<usize> =
    LazyLock::new(|| std::thread::available_parallelism().map_or(4, usize::from) + 2);

/// Line numbers given back by threads that exited, and the next never used.
struct Pool {
    returned: Vec<usize>,
    next: usize,
}

static POOL: Mutex<Pool> = Mutex::new(Pool {
    returned: Vec::new(),
    next: 0,
});

/// What [`LINE`] holds before this thread first counted.
const UNTAKEN: usize = usize::MAX;
/// What [`LINE`] holds when no line is this thread's: all were taken, or
/// this thread gave its own back as it exits.
const SHARED: usize = usize::MAX - 1;

thread_local! {
    /// This thread's line number, read on every add: a plain thread-local
    /// load, no lazy initialisation to check.
    static LINE: Cell<usize> = const { Cell::new(UNTAKEN) };
    /// Gives the line back when the thread exits.
    static OWNER: Owner = const { Owner };
}

struct Owner;

impl Drop for Owner {
    fn drop(&mut self) {
        let Ok(line) = LINE.try_with(|line| line.replace(SHARED)) else {
            return;
        };
        if line < SHARED {
            POOL.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .returned
                .push(line);
        }
    }
}

/// This thread's line, taken from the pool on its first add.
fn owned_line() -> usize {
    let line = LINE.with(Cell::get);
    if line != UNTAKEN {
        return line;
    }
    let mut pool = POOL.lock().unwrap_or_else(PoisonError::into_inner);
    let taken = pool.returned.pop().or_else(|| {
        (pool.next < *OWNED_LINES).then(|| {
            pool.next += 1;
            pool.next - 1
        })
    });
    drop(pool);
    // Registering the owner fails only while the thread exits: then the
    // line must not be taken, as nothing would give it back.
    let line = match taken {
        Some(line) if OWNER.try_with(|_| ()).is_ok() => line,
        Some(line) => {
            POOL.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .returned
                .push(line);
            SHARED
        }
        None => SHARED,
    };
    LINE.with(|cell| cell.set(line));
    line
}

/// The value of a [`prometheus_client`] counter, counted per thread; see
/// the module's documentation.
pub struct PerThreadCount {
    /// The owned lines, then the shared one.
    lines: Box<[Line]>,
}

impl Default for PerThreadCount {
    fn default() -> Self {
        Self {
            lines: (0..=*OWNED_LINES).map(|_| Line::default()).collect(),
        }
    }
}

impl std::fmt::Debug for PerThreadCount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("PerThreadCount").field(&self.get()).finish()
    }
}

impl PerThreadCount {
    fn shared(&self) -> &AtomicU64 {
        &self.lines[self.lines.len() - 1].0
    }
}

impl Atomic<u64> for PerThreadCount {
    fn inc(&self) -> u64 {
        self.inc_by(1)
    }

    /// Returns what this thread's line held before (not the total, which
    /// would take reading every line).
    fn inc_by(&self, v: u64) -> u64 {
        // An owned line's number is below the shared line's.
        match self.lines[..self.lines.len() - 1].get(owned_line()) {
            Some(line) => {
                let before = line.0.load(Ordering::Relaxed);
                line.0.store(before.wrapping_add(v), Ordering::Relaxed);
                before
            }
            None => self.shared().fetch_add(v, Ordering::Relaxed),
        }
    }

    fn get(&self) -> u64 {
        self.lines
            .iter()
            .map(|line| line.0.load(Ordering::Relaxed))
            .fold(0, u64::wrapping_add)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Barrier};

    use super::*;

    #[test]
    fn adds_from_more_threads_than_lines_in_waves_of_new_threads_are_all_counted() {
        let count = Arc::new(PerThreadCount::default());
        let threads = *OWNED_LINES * 2 + 3;
        const ADDS: u64 = 10_000;
        // Threads that exit give their lines to the next wave's.
        for _wave in 0..3 {
            let start = Arc::new(Barrier::new(threads));
            let handles: Vec<_> = (0..threads)
                .map(|_| {
                    let count = count.clone();
                    let start = start.clone();
                    std::thread::spawn(move || {
                        start.wait();
                        for _ in 0..ADDS {
                            count.inc();
                        }
                        count.inc_by(2);
                    })
                })
                .collect();
            for handle in handles {
                handle.join().unwrap();
            }
        }
        assert_eq!(count.get(), 3 * threads as u64 * (ADDS + 2));
    }

    #[test]
    fn what_a_thread_counts_while_it_exits_is_counted() {
        struct CountsWhenDropped(Arc<PerThreadCount>);
        impl Drop for CountsWhenDropped {
            fn drop(&mut self) {
                self.0.inc();
            }
        }
        thread_local! {
            static LATE: std::cell::RefCell<Option<CountsWhenDropped>> =
                const { std::cell::RefCell::new(None) };
        }
        let count = Arc::new(PerThreadCount::default());
        let in_thread = count.clone();
        std::thread::spawn(move || {
            // Registered before the line is taken, so destroyed after it
            // was given back.
            LATE.with(|late| *late.borrow_mut() = Some(CountsWhenDropped(in_thread.clone())));
            in_thread.inc();
        })
        .join()
        .unwrap();
        assert_eq!(count.get(), 2);
    }
}
