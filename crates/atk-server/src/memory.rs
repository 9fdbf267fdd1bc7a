//! Gives freed heap memory back to the operating system.
//!
//! glibc's allocator keeps what a burst of work freed for reuse, spread
//! over one arena per thread: reading a million keys from the store to
//! cache them leaves about 70 MB of freed rows behind, resident, though the
//! cache itself holds only the compact records. Trimming hands whole free
//! pages back; a node's resident memory then follows what it holds. The
//! `atk` binary allocates with jemalloc, which hands pages back on its own
//! (see its `malloc_conf`); what still goes through glibc is what C code
//! allocates (SQLite's page cache, for one), and this trims that. Other
//! platforms return memory on their own, so this does nothing there.

use std::time::Duration;

/// How often freed memory is handed back. A trim runs on a blocking
/// thread, off the request path; measured while a million keys were being
/// read into the cache, one took 6 to 28 ms.
pub const TRIM_EVERY: Duration = Duration::from_secs(10);

/// Trims every [`TRIM_EVERY`] until the returned task is aborted.
pub fn spawn_trimmer() -> tokio::task::JoinHandle<()> {
    tokio::spawn(async {
        let mut every = tokio::time::interval(TRIM_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        every.tick().await;
        loop {
            every.tick().await;
            let started = std::time::Instant::now();
            if tokio::task::spawn_blocking(trim).await.is_err() {
                return;
            }
            tracing::trace!(took_us = started.elapsed().as_micros(), "heap trimmed");
        }
    })
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim() {
    // SAFETY: malloc_trim takes no pointers and only releases free pages
    // inside the allocator's own arenas; it is safe to call at any time
    // from any thread.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() {}
