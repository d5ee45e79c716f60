//! Giving freed memory back to the operating system.
//!
//! An ingest or an evaluation allocates and frees hundreds of MiB of Arrow buffers. glibc's malloc keeps freed
//! memory in its arenas for reuse (one arena per thread that allocated, and a dynamic mmap threshold that grows
//! to 32 MiB after the first large free, so later large buffers come from the arenas, not from `mmap`), so the
//! process's resident size stays near its peak long after the data is gone: in the shared benchmark about
//! 600 MiB after ingesting 5 M users. [`release_unused_memory`] asks glibc to return free pages
//! (`malloc_trim(0)`, which also trims the non-main arenas) when its arenas hold more than
//! [`RELEASE_THRESHOLD`] free; the workspace calls it at the end of every ingest, evaluation, count and
//! static-list change. Other allocators (musl, macOS, a `#[global_allocator]` such as mimalloc) return memory
//! themselves; there it does nothing. `SEGKIT_MALLOC_TRIM=0` in the environment turns it off (to measure).

/// Free bytes in glibc's arenas above which [`release_unused_memory`] trims them.
pub const RELEASE_THRESHOLD: usize = 16 * 1024 * 1024;

/// Returns free allocator memory to the operating system if enough is held (see the module documentation).
/// Returns the number of free bytes the allocator held before (0 where this does nothing).
pub fn release_unused_memory() -> usize {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        static ENABLED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        if !*ENABLED.get_or_init(|| std::env::var("SEGKIT_MALLOC_TRIM").map(|v| v != "0").unwrap_or(true)) {
            return 0;
        }
        // SAFETY: mallinfo2 and malloc_trim only read and adjust glibc's allocator state; both are thread-safe.
        let free = unsafe { libc::mallinfo2() }.fordblks;
        if free > RELEASE_THRESHOLD {
            unsafe { libc::malloc_trim(0) };
        }
        free
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        0
    }
}
