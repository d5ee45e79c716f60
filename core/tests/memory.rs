//! `release_unused_memory` sees and trims freed arena memory. Its own test binary with one test: any other test
//! in the same process that ingests or evaluates trims the arenas concurrently and would race the measurement.

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
fn freed_arena_memory_is_seen_and_trimmed() {
    use segkit::memory::{release_unused_memory, RELEASE_THRESHOLD};
    let chunks: Vec<Vec<u8>> = (0..1024).map(|i| vec![i as u8; 64 * 1024]).collect();
    assert_eq!(chunks.iter().map(|c| c.len()).sum::<usize>(), 64 << 20);
    drop(chunks);
    let free = release_unused_memory();
    assert!(free > RELEASE_THRESHOLD, "glibc held {free} free bytes after freeing 64 MiB");
    // Trimmed: what is left free in the arenas is below what was freed.
    // SAFETY: mallinfo2 only reads glibc's allocator state.
    let after = unsafe { libc::mallinfo2() }.fordblks;
    assert!(after <= free, "{after} > {free}");
}
