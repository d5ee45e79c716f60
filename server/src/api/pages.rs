//! Encoded members pages, kept in a byte-bounded LRU ([`MEMBER_PAGE_CACHE_BYTES`]).
//!
//! A segment run's membership file is written once under a unique name and never changes, so the encoding of
//! one page of it (offset, limit, format and whether `pii` was masked) never goes stale: nothing invalidates an
//! entry, least recently used ones are dropped when the bound is reached. The key holds the file, not the segment
//! name or run number, and the handler resolves the run in the catalog before every lookup, so a deleted segment
//! or run answers 404 and never a kept page. Masked and unmasked encodings are separate keys: they never mix.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use segkit::limits::{MEMBER_PAGE_CACHE_BYTES, MEMBER_PAGE_CACHE_MAX_ENTRY_BYTES};
use sha2::{Digest, Sha256};

/// What one encoded page is the encoding of.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct PageKey {
    /// The run's membership file (unique, immutable).
    pub file: String,
    /// The first row.
    pub offset: usize,
    /// Rows asked for.
    pub limit: usize,
    /// The encoding (`json`, `csv` or `arrow`).
    pub format: &'static str,
    /// Whether `pii` columns were masked.
    pub masked: bool,
}

impl PageKey {
    /// A strong `ETag` of the page: equal exactly when the bytes are (same file, rows, encoding and masking,
    /// encoded by the same server version).
    pub fn etag(&self) -> String {
        let mut h = Sha256::new();
        let version = env!("CARGO_PKG_VERSION").as_bytes();
        for part in [self.file.as_bytes(), self.format.as_bytes(), if self.masked { b"m" } else { b"u" }, version] {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part);
        }
        h.update((self.offset as u64).to_le_bytes());
        h.update((self.limit as u64).to_le_bytes());
        format!("\"m{}\"", hex::encode(&h.finalize()[..12]))
    }
}

/// One encoded page.
#[derive(Debug, Clone)]
pub(super) struct Page {
    /// The response body.
    pub body: Bytes,
    /// The next page's cursor (`run.offset`); `None` on the last page.
    pub next: Option<String>,
}

/// The byte-bounded LRU of encoded pages.
#[derive(Debug)]
pub(super) struct PageCache {
    inner: Mutex<Lru>,
    capacity: usize,
    max_entry: usize,
}

#[derive(Debug, Default)]
struct Lru {
    map: HashMap<Arc<PageKey>, (Page, u64)>,
    /// Keys by last use, oldest first.
    order: BTreeMap<u64, Arc<PageKey>>,
    bytes: usize,
    tick: u64,
}

impl Default for PageCache {
    fn default() -> Self {
        PageCache::new(MEMBER_PAGE_CACHE_BYTES, MEMBER_PAGE_CACHE_MAX_ENTRY_BYTES)
    }
}

/// What one entry costs against the bound: its body, its key's file name and a fixed overhead.
fn cost(key: &PageKey, page: &Page) -> usize {
    page.body.len() + key.file.len() + page.next.as_ref().map_or(0, String::len) + 128
}

impl PageCache {
    /// A cache of at most `capacity` bytes that keeps no page above `max_entry` bytes.
    pub fn new(capacity: usize, max_entry: usize) -> Self {
        PageCache { inner: Mutex::new(Lru::default()), capacity, max_entry: max_entry.min(capacity) }
    }

    /// The page kept under `key`, now the most recently used.
    pub fn get(&self, key: &PageKey) -> Option<Page> {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let lru = &mut *g;
        lru.tick += 1;
        let tick = lru.tick;
        let (k, (page, used)) = lru.map.get_key_value(key).map(|(k, v)| (k.clone(), v.clone()))?;
        lru.order.remove(&used);
        lru.order.insert(tick, k.clone());
        if let Some(v) = lru.map.get_mut(&k) {
            v.1 = tick;
        }
        Some(page)
    }

    /// Keeps `page` under `key` (unless it is larger than an entry may be), dropping the least recently used
    /// pages until the bound holds.
    pub fn put(&self, key: PageKey, page: Page) {
        let size = cost(&key, &page);
        if size > self.max_entry {
            return;
        }
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let lru = &mut *g;
        if let Some((old, used)) = lru.map.remove(&key) {
            lru.order.remove(&used);
            lru.bytes -= cost(&key, &old);
        }
        while lru.bytes + size > self.capacity {
            let Some((_, oldest)) = lru.order.pop_first() else { break };
            if let Some((old, _)) = lru.map.remove(&oldest) {
                lru.bytes -= cost(&oldest, &old);
            }
        }
        lru.tick += 1;
        let key = Arc::new(key);
        lru.order.insert(lru.tick, key.clone());
        lru.map.insert(key, (page, lru.tick));
        lru.bytes += size;
    }

    /// Bytes held (what the bound counts) and pages held.
    #[cfg(test)]
    fn usage(&self) -> (usize, usize) {
        let g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        (g.bytes, g.map.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(file: &str, offset: usize, masked: bool) -> PageKey {
        PageKey { file: file.into(), offset, limit: 10, format: "json", masked }
    }

    fn page(n: usize) -> Page {
        Page { body: Bytes::from(vec![b'x'; n]), next: None }
    }

    #[test]
    fn bounded_by_bytes_least_recently_used_dropped_first() {
        let one = cost(&key("segments/s/a.parquet", 0, false), &page(1000));
        let cache = PageCache::new(3 * one, one);
        for offset in 0..3 {
            cache.put(key("segments/s/a.parquet", offset, false), page(1000));
        }
        assert_eq!(cache.usage(), (3 * one, 3));
        // Page 0 used again: page 1 is now the oldest and goes when page 3 comes.
        assert!(cache.get(&key("segments/s/a.parquet", 0, false)).is_some());
        cache.put(key("segments/s/a.parquet", 3, false), page(1000));
        assert_eq!(cache.usage(), (3 * one, 3));
        assert!(cache.get(&key("segments/s/a.parquet", 1, false)).is_none());
        for offset in [0, 2, 3] {
            assert_eq!(cache.get(&key("segments/s/a.parquet", offset, false)).unwrap().body.len(), 1000);
        }
        // Too large for an entry: not kept, nothing dropped for it.
        cache.put(key("segments/s/a.parquet", 9, false), page(5000));
        assert!(cache.get(&key("segments/s/a.parquet", 9, false)).is_none());
        assert_eq!(cache.usage().1, 3);
        // Replacing an entry does not count it twice.
        cache.put(key("segments/s/a.parquet", 0, false), page(1000));
        assert_eq!(cache.usage(), (3 * one, 3));
    }

    #[test]
    fn masked_and_unmasked_pages_never_mix() {
        let cache = PageCache::default();
        cache.put(key("f", 0, true), Page { body: Bytes::from_static(b"masked"), next: None });
        assert!(cache.get(&key("f", 0, false)).is_none());
        cache.put(key("f", 0, false), Page { body: Bytes::from_static(b"plain"), next: Some("1.10".into()) });
        assert_eq!(&cache.get(&key("f", 0, true)).unwrap().body[..], b"masked");
        assert_eq!(&cache.get(&key("f", 0, false)).unwrap().body[..], b"plain");
        assert_ne!(key("f", 0, true).etag(), key("f", 0, false).etag());
        assert_ne!(key("f", 0, false).etag(), key("g", 0, false).etag());
        assert_ne!(key("f", 0, false).etag(), PageKey { format: "csv", ..key("f", 0, false) }.etag());
        assert_eq!(key("f", 0, false).etag(), key("f", 0, false).etag());
    }
}
