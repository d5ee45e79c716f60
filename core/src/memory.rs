//! Giving freed memory back to the operating system.
//!
//! An ingest or an evaluation allocates and frees hundreds of MiB of Arrow buffers. glibc's malloc keeps freed
//! memory in its arenas for reuse (one arena per thread that allocated, and a dynamic mmap threshold that grows
//! to 32 MiB after the first large free, so later large buffers come from the arenas, not from `mmap`), so the
//! process's resident size stays near its peak long after the data is gone: in the shared benchmark about
//! 600 MiB after ingesting 5 M users. [`release_unused_memory`] asks glibc to return free pages
//! (`malloc_trim(0)`, which also trims the non-main arenas) when its arenas hold more than
//! [`RELEASE_THRESHOLD`] free; the workspace calls it at the end of every ingest, evaluation, count and
//! static-list change, and every [`RELEASE_EVERY_ROWS`] rows during an ingest ([`PeriodicRelease`]).
//!
//! Trimming after the fact does not lower the peak of work whose stages run on several threads (an ingest: the
//! decoding task, the sort, the Parquet writer task and the blocking threads of file I/O), because each thread
//! allocates in its own arena and memory freed in one arena is not reused by the others. So the first workspace
//! opened also fixes glibc's mmap threshold at [`MMAP_THRESHOLD`] ([`tune_allocator`]): buffers of that size and
//! more (most Arrow buffers of a batch) are mapped on their own and unmapped when freed, whatever thread freed
//! them. Measured in the shared benchmark (5 M users, then 50 M events, re-ingested; peak RSS of each ingest):
//! 346 / 448 MiB as glibc behaves by default, 297 / 381 MiB with the periodic trim, 281 / 265 MiB with both.
//!
//! Other allocators (musl, macOS, a `#[global_allocator]` such as mimalloc) return memory themselves; there this
//! module does nothing. `SEGKIT_MALLOC_TRIM=0` in the environment turns all of it off (to measure), and a host that
//! tunes glibc itself (`MALLOC_MMAP_THRESHOLD_`, `GLIBC_TUNABLES`) keeps its own setting.

/// Free bytes in glibc's arenas above which [`release_unused_memory`] trims them.
pub const RELEASE_THRESHOLD: usize = 16 * 1024 * 1024;

/// Rows an ingest handles between two calls of [`release_unused_memory`] (see [`PeriodicRelease`]).
pub const RELEASE_EVERY_ROWS: usize = 1 << 20;

/// Calls [`release_unused_memory`] once every [`RELEASE_EVERY_ROWS`] rows counted, for work that allocates and
/// frees all along (an ingest). Its stages run on several threads (the decoding task, the ingest's own task, the
/// Parquet writer task and the blocking threads of file I/O), each allocating in its own glibc arena; memory a
/// thread freed is reused only by threads of the same arena, so without trimming each arena keeps its own
/// high-water mark and the process holds their sum. In the shared benchmark (5 M users then 50 M events) this
/// took the ingest's peak from about 275 MiB, with one arena (`MALLOC_ARENA_MAX=1`), to 448 MiB.
#[derive(Debug, Default)]
pub(crate) struct PeriodicRelease {
    rows: usize,
}

impl PeriodicRelease {
    /// Counts `rows` handled; trims when [`RELEASE_EVERY_ROWS`] have passed since the last trim.
    pub(crate) fn rows(&mut self, rows: usize) {
        self.rows += rows;
        if self.rows >= RELEASE_EVERY_ROWS {
            self.rows = 0;
            release_unused_memory();
        }
    }
}

/// The mmap threshold [`tune_allocator`] sets: allocations of at least this many bytes get their own mapping.
pub const MMAP_THRESHOLD: usize = 1 << 20;

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn enabled() -> bool {
    static ENABLED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ENABLED.get_or_init(|| std::env::var("SEGKIT_MALLOC_TRIM").map(|v| v != "0").unwrap_or(true))
}

/// Fixes glibc's mmap threshold at [`MMAP_THRESHOLD`] (see the module documentation), once per process, unless
/// turned off or the host set glibc's allocator options itself. Returns whether it was set (now or before).
pub fn tune_allocator() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        static TUNED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *TUNED.get_or_init(|| {
            let host_tuned = ["MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES"]
                .iter()
                .any(|v| std::env::var_os(v).is_some());
            if !enabled() || host_tuned {
                return false;
            }
            // SAFETY: mallopt only adjusts glibc's allocator parameters; it is thread-safe.
            unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD as libc::c_int) == 1 }
        })
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

/// Returns free allocator memory to the operating system if enough is held (see the module documentation).
/// Returns the number of free bytes the allocator held before (0 where this does nothing).
pub fn release_unused_memory() -> usize {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        if !enabled() {
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

/// A small pool of byte buffers lent out as [`bytes::Bytes`]: a buffer comes back (emptied when taken again)
/// once the last `Bytes` of it is dropped, wherever that happens, and is filled again instead of allocating a
/// new one. A buffer of [`MMAP_THRESHOLD`] or more is otherwise mapped, faulted in page by page and unmapped each
/// time ([`tune_allocator`]). At most `keep` buffers wait for reuse; the rest are freed.
#[derive(Clone, Debug)]
pub struct BufferPool {
    spare: std::sync::Arc<std::sync::Mutex<Vec<Vec<u8>>>>,
    keep: usize,
}

impl BufferPool {
    /// A pool keeping at most `keep` buffers for reuse.
    pub fn new(keep: usize) -> Self {
        BufferPool { spare: Default::default(), keep }
    }

    /// An empty buffer: a returned one (its capacity kept) if any, else a new one.
    pub fn take(&self) -> Vec<u8> {
        let mut buf = self.spare.lock().map(|mut spare| spare.pop()).unwrap_or_default().unwrap_or_default();
        buf.clear();
        buf
    }

    /// `buf`'s bytes, which return to the pool when the last `Bytes` of them (a slice too) is dropped.
    pub fn lend(&self, buf: Vec<u8>) -> bytes::Bytes {
        bytes::Bytes::from_owner(Lent { buf, pool: self.clone() })
    }

    /// Buffers waiting for reuse.
    pub fn spare(&self) -> usize {
        self.spare.lock().map(|s| s.len()).unwrap_or_default()
    }
}

/// A buffer lent out by a [`BufferPool`]; returns to it when dropped.
struct Lent {
    buf: Vec<u8>,
    pool: BufferPool,
}

impl AsRef<[u8]> for Lent {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

impl Drop for Lent {
    fn drop(&mut self) {
        let buf = std::mem::take(&mut self.buf);
        if let Ok(mut spare) = self.pool.spare.lock() {
            if spare.len() < self.pool.keep {
                spare.push(buf);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// At most `keep` buffers wait for reuse, a buffer returns only when its last `Bytes` (a slice too) is
    /// dropped, and a buffer taken again is empty but keeps its capacity.
    #[test]
    fn a_buffer_pool_is_bounded_and_hands_out_empty_buffers() {
        let pool = BufferPool::new(3);
        let lent: Vec<bytes::Bytes> = (0..5u8)
            .map(|i| {
                let mut buf = pool.take();
                buf.extend_from_slice(&[i; 10]);
                pool.lend(buf)
            })
            .collect();
        assert_eq!(pool.spare(), 0);
        assert_eq!(&lent[4][..], &[4; 10]);
        let slice = lent[0].slice(2..4);
        drop(lent);
        assert_eq!(pool.spare(), 3, "four returned, three kept");
        assert_eq!(&slice[..], &[0, 0], "a slice keeps its buffer");
        drop(slice);
        assert_eq!(pool.spare(), 3);
        let again = pool.take();
        assert!(again.is_empty() && again.capacity() >= 10);
        assert_eq!(pool.spare(), 2);
        let mut short = again;
        short.extend_from_slice(b"ab");
        assert_eq!(&pool.lend(short)[..], b"ab", "a reused buffer holds only its new bytes");
    }

    #[test]
    fn the_mmap_threshold_is_fixed_on_glibc_unless_the_host_tuned_it() {
        let host_tuned = ["MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES"]
            .iter()
            .any(|v| std::env::var_os(v).is_some())
            || std::env::var("SEGKIT_MALLOC_TRIM").is_ok_and(|v| v == "0");
        let expected = cfg!(all(target_os = "linux", target_env = "gnu")) && !host_tuned;
        assert_eq!(tune_allocator(), expected);
        assert_eq!(tune_allocator(), expected, "a second call answers the same");
    }
}
