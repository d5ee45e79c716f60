//! Incremental reads of file sources: the cursor records every file read (path, size, modification time /
//! ETag, fingerprints of its first and last KiB, lines), so a sync from that cursor reads only new files and
//! the bytes appended to a file since (see the [module documentation](super#incremental-syncs)).

use object_store::ObjectMeta;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Bytes of a file's start (and of the end of the part read) its fingerprints cover, at most.
pub const FINGERPRINT_BYTES: u64 = 1024;

/// What a sync does with a file that changed in place since the cursor's sync (it shrank, its first or last
/// read bytes differ, or it grew after a last line that had no line end, or it is a format that cannot be
/// read from an offset: gzip'd, Parquet, a spreadsheet, a JSON array, UTF-16 text).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnChange {
    /// The sync fails with an error naming the file and what changed; nothing is committed (default: in
    /// `append` mode a re-read would double the file's rows).
    #[default]
    Error,
    /// The file is read again from its start (right for `upsert` sources whose files are replaced by newer
    /// exports: the rows are upserted by key).
    Reread,
}

/// One file of a file source's cursor (`{"files": [...]}`): how it was when it was last read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileState {
    /// The object path (for a local file, its absolute path without the leading `/`).
    pub path: String,
    /// Bytes read: the file's size when it was read (the offset a grown file is read from).
    pub size: u64,
    /// Its modification time then (RFC 3339).
    pub modified: String,
    /// Its ETag then, if the store gives one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    /// FNV-1a 64 (hex) of its first `min(size, 1024)` bytes.
    pub head: String,
    /// FNV-1a 64 (hex) of the last `min(size, 1024)` bytes read.
    pub tail: String,
    /// Line ends (`\n` bytes) in the part read, so line numbers in messages go on counting.
    #[serde(default)]
    pub lines: u64,
    /// The part read ended inside a line (no `\n` at its end): a later growth would continue that line.
    #[serde(default)]
    pub open_end: bool,
}

/// Parses a stored cursor.
pub(crate) fn parse(v: &Value) -> Result<Vec<FileState>, String> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct C {
        files: Vec<FileState>,
    }
    serde_json::from_value::<C>(v.clone()).map(|c| c.files).map_err(|e| e.to_string())
}

/// The cursor value of `files` (sorted by path).
pub(crate) fn to_value(mut files: Vec<FileState>) -> Value {
    files.sort_by(|a, b| a.path.cmp(&b.path));
    serde_json::json!({ "files": files })
}

/// FNV-1a 64 as 16 hex digits (stable across Rust versions, unlike `std`'s hasher).
pub(crate) fn fnv1a(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// The byte ranges the fingerprints of a file read up to `size` cover: `(head, tail)`.
pub(crate) fn fingerprint_ranges(size: u64) -> (std::ops::Range<u64>, std::ops::Range<u64>) {
    (0..size.min(FINGERPRINT_BYTES), size.saturating_sub(FINGERPRINT_BYTES)..size)
}

/// Whether the store's metadata says the file is exactly as it was (same size, and the same ETag when both
/// have one, else the same modification time).
pub(crate) fn same_meta(old: &FileState, meta: &ObjectMeta) -> bool {
    if old.size != meta.size {
        return false;
    }
    match (&old.etag, &meta.e_tag) {
        (Some(a), Some(b)) => a == b,
        _ => old.modified == meta.last_modified.to_rfc3339(),
    }
}

/// How a file is read in a scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Plan {
    /// Not read: unchanged since the cursor's sync (the state is carried into the new cursor).
    Skip(FileState),
    /// Read from `start` (0, or the size read before for a file that grew) to its current size; `lines`
    /// line ends precede `start`.
    Read { start: u64, lines: u64 },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_ranges_cover_the_first_and_last_kib() {
        assert_eq!(fingerprint_ranges(0), (0..0, 0..0));
        assert_eq!(fingerprint_ranges(10), (0..10, 0..10));
        assert_eq!(fingerprint_ranges(5000), (0..1024, 3976..5000));
        assert_ne!(fnv1a(b"a"), fnv1a(b"b"));
        assert_eq!(fnv1a(b""), "cbf29ce484222325");
    }

    #[test]
    fn cursors_round_trip_and_bad_ones_are_refused() {
        let s = FileState {
            path: "d/a.csv".into(),
            size: 3,
            modified: "2026-01-01T00:00:00+00:00".into(),
            etag: None,
            head: fnv1a(b"a\n"),
            tail: fnv1a(b"a\n"),
            lines: 1,
            open_end: false,
        };
        let v = to_value(vec![s.clone()]);
        assert_eq!(parse(&v).unwrap(), vec![s]);
        assert!(parse(&serde_json::json!({"offset": 3})).unwrap_err().contains("files"));
    }
}
