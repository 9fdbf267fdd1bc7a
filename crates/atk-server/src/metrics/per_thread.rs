//! A counter for the hot path: each thread that counts owns a cache line of
//! it and adds with a plain load and store. An atomic add is a locked
//! instruction (three of them cost a cached verification about 10 ns
//! here), and a counter every core adds to moves its cache line from core
//! to core on each add. Reading sums the lines.
//!
//! A line is written by one thread only, so no add is lost: a thread takes
//! a line number when it first counts and gives it back when it exits (the
//! pool's lock orders the old owner's last add before the new owner's
//! first). There are as many lines as the machine's parallelism and two
//! more, taken by the first threads to count (in a server, Tokio's
//! workers). A thread that finds none free, and a thread counting after it
//! gave its own back (in another thread-local's destructor), count on one
//! shared line with an atomic add: slower, never wrong.
//!
//! Each counter takes a line per possible owner: with P the parallelism
//! seen when the first counter was made, (P + 3) × 128 bytes.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex, PoisonError};

use prometheus_client::metrics::counter::Atomic;

/// Two cache lines, as x86's adjacent-line prefetcher pairs them: two
/// threads' lines never share a pair.
#[repr(align(128))]
#[derive(Default)]
struct Line(AtomicU64);

/// Line numbers free to take.
struct Pool {
    /// Given back by threads that exited.
    returned: Vec<usize>,
    /// The lowest number never taken.
    next: usize,
    capacity: usize,
}

impl Pool {
    fn new(capacity: usize) -> Self {
        Self {
            returned: Vec::new(),
            next: 0,
            capacity,
        }
    }

    fn take(&mut self) -> Option<usize> {
        self.returned.pop().or_else(|| {
            (self.next < self.capacity).then(|| {
                self.next += 1;
                self.next - 1
            })
        })
    }

    fn give_back(&mut self, line: usize) {
        self.returned.push(line);
    }
}

static POOL: LazyLock<Mutex<Pool>> = LazyLock::new(|| {
    Mutex::new(Pool::new(
        std::thread::available_parallelism().map_or(4, usize::from) + 2,
    ))
});

fn pool() -> std::sync::MutexGuard<'static, Pool> {
    POOL.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Lines a thread may own: every counter has these and the shared one.
fn owned_lines() -> usize {
    pool().capacity
}

/// What [`LINE`] holds before this thread first counted.
const UNTAKEN: usize = usize::MAX;
/// What [`LINE`] holds when no line is this thread's: none was free, or
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
        let line = LINE.with(|line| line.replace(SHARED));
        if line < SHARED {
            pool().give_back(line);
        }
    }
}

/// This thread's line, taken from the pool on its first add.
fn owned_line() -> usize {
    let line = LINE.with(Cell::get);
    if line != UNTAKEN {
        return line;
    }
    let taken = pool().take();
    // `OWNER` is first touched here, and `LINE` leaves `UNTAKEN` for good
    // right after, so `OWNER` cannot have been destroyed yet: `try_with`
    // only keeps the hot path free of a panic. Should it fail, the line
    // goes back at once, as nothing would give it back later.
    let line = match taken {
        Some(line) if OWNER.try_with(|_| ()).is_ok() => line,
        Some(line) => {
            pool().give_back(line);
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
            lines: (0..=owned_lines()).map(|_| Line::default()).collect(),
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

    /// Returns what this thread's line held before, not the counter's
    /// total as `Counter::inc` documents (that would take reading every
    /// line); nothing here reads it.
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
    use std::sync::{Arc, Barrier, mpsc};

    use super::*;

    /// The tests below take lines from the one pool: one at a time, so
    /// one cannot leave the other none.
    static ONE_TEST_AT_A_TIME: Mutex<()> = Mutex::new(());

    #[test]
    fn the_pool_hands_out_each_line_once_and_again_after_it_comes_back() {
        let mut pool = Pool::new(2);
        assert_eq!(
            (pool.take(), pool.take(), pool.take()),
            (Some(0), Some(1), None)
        );
        pool.give_back(1);
        assert_eq!((pool.take(), pool.take()), (Some(1), None));
    }

    #[test]
    fn adds_from_more_threads_than_lines_in_waves_of_new_threads_are_all_counted() {
        let _serial = ONE_TEST_AT_A_TIME
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let count = Arc::new(PerThreadCount::default());
        let threads = owned_lines() * 2 + 3;
        const ADDS: u64 = 10_000;
        // Threads that exit give their lines to the next wave's.
        for _wave in 0..3 {
            // Every thread of a wave holds its line until all have said
            // which it holds: no two may hold the same.
            let all_counted = Arc::new(Barrier::new(threads));
            let (line_of, lines) = mpsc::channel();
            let handles: Vec<_> = (0..threads)
                .map(|_| {
                    let count = count.clone();
                    let all_counted = all_counted.clone();
                    let line_of = line_of.clone();
                    std::thread::spawn(move || {
                        count.inc();
                        line_of.send(owned_line()).unwrap();
                        all_counted.wait();
                        for _ in 1..ADDS {
                            count.inc();
                        }
                        count.inc_by(2);
                    })
                })
                .collect();
            drop(line_of);
            for handle in handles {
                handle.join().unwrap();
            }
            let mut owned: Vec<usize> = lines.iter().filter(|&line| line != SHARED).collect();
            let held = owned.len();
            owned.sort_unstable();
            owned.dedup();
            assert_eq!(owned.len(), held, "two live threads held one line");
            assert!(held > 0 && owned.iter().all(|&line| line < owned_lines()));
        }
        assert_eq!(count.get(), 3 * threads as u64 * (ADDS + 2));
    }

    #[test]
    fn a_thread_counting_after_it_gave_its_line_back_counts_on_the_shared_line() {
        let _serial = ONE_TEST_AT_A_TIME
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        /// Counts when the thread's thread-locals are destroyed, and says
        /// which line the thread had then.
        struct CountsAtExit(Arc<PerThreadCount>, mpsc::Sender<usize>);
        impl Drop for CountsAtExit {
            fn drop(&mut self) {
                self.0.inc();
                self.1.send(LINE.with(Cell::get)).unwrap();
            }
        }
        thread_local! {
            static AT_EXIT: std::cell::RefCell<Option<CountsAtExit>> =
                const { std::cell::RefCell::new(None) };
        }
        let count = Arc::new(PerThreadCount::default());
        let (line_at, lines) = mpsc::channel();
        let in_thread = count.clone();
        std::thread::spawn(move || {
            // Registered before the line is taken: std destroys
            // thread-locals last registered first, so this one after the
            // line went back.
            AT_EXIT.with(|at_exit| {
                *at_exit.borrow_mut() = Some(CountsAtExit(in_thread.clone(), line_at.clone()));
            });
            in_thread.inc();
            line_at.send(owned_line()).unwrap();
        })
        .join()
        .unwrap();
        let (while_running, at_exit) = (lines.recv().unwrap(), lines.recv().unwrap());
        assert!(while_running < owned_lines(), "no line was free");
        assert_eq!(at_exit, SHARED);
        assert_eq!(count.lines[while_running].0.load(Ordering::Relaxed), 1);
        assert_eq!(count.shared().load(Ordering::Relaxed), 1);
        assert_eq!(count.get(), 2);
    }
}
