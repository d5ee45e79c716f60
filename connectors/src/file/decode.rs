//! Turning an object_store byte stream into a record batch stream with a push decoder.

use std::collections::VecDeque;

use arrow::array::RecordBatch;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::StreamExt;
use object_store::{GetResult, GetResultPayload};

use segkit::memory::BufferPool;
use segkit::{BatchStream, Error, Result};

use super::prelude::{Outcome, Prelude};

/// Bytes per read of a local file (object_store reads local files 8 KiB at a time, each read a hop to the
/// blocking pool and back).
pub(crate) const LOCAL_READ_BYTES: usize = 1 << 20;

/// The bytes of an object: a local file read [`LOCAL_READ_BYTES`] at a time on the blocking pool, any other
/// object as the store streams it.
pub(crate) fn object_bytes(got: GetResult) -> BoxStream<'static, object_store::Result<Bytes>> {
    match got.payload {
        GetResultPayload::File(file, path) => local_chunks(file, path, got.range),
        GetResultPayload::Stream(s) => s,
    }
}

/// Read buffers a local file's stream keeps for reuse: a chunk's buffer returns when the consumer drops the last
/// `Bytes` of it, and the next read fills it again ([`segkit::memory::BufferPool`]). A fresh buffer of
/// [`LOCAL_READ_BYTES`] is at glibc's mmap threshold, so each one was mapped, faulted in page by page and unmapped:
/// 14 % of an events ingest's page faults.
const SPARE_READ_BUFFERS: usize = 4;

/// `range` of a local file in chunks of [`LOCAL_READ_BYTES`], read into recycled buffers ([`SPARE_READ_BUFFERS`]); a
/// file that ends early ends the stream there.
fn local_chunks(
    file: std::fs::File,
    path: std::path::PathBuf,
    range: std::ops::Range<u64>,
) -> BoxStream<'static, object_store::Result<Bytes>> {
    use std::io::{Read, Seek, SeekFrom};
    let io_error = |path: &std::path::Path, e: std::io::Error| object_store::Error::Generic {
        store: "LocalFileSystem",
        source: format!("reading {}: {e}", path.display()).into(),
    };
    futures::stream::try_unfold(
        (file, path, range.start, range.end, true, BufferPool::new(SPARE_READ_BUFFERS)),
        move |(mut file, path, at, end, first, pool)| async move {
            if at >= end {
                return Ok(None);
            }
            let mut buf = pool.take();
            let read = move || -> object_store::Result<_> {
                if first {
                    file.seek(SeekFrom::Start(at)).map_err(|e| io_error(&path, e))?;
                }
                let want = (end - at).min(LOCAL_READ_BYTES as u64);
                buf.reserve_exact(want as usize);
                (&mut file).take(want).read_to_end(&mut buf).map_err(|e| io_error(&path, e))?;
                Ok((buf, file, path))
            };
            let (buf, file, path) = if tokio::runtime::Handle::try_current().is_ok() {
                tokio::task::spawn_blocking(read)
                    .await
                    .map_err(|e| object_store::Error::Generic { store: "LocalFileSystem", source: Box::new(e) })??
            } else {
                read()?
            };
            if buf.is_empty() {
                return Ok(None);
            }
            let next = at + buf.len() as u64;
            let bytes = pool.lend(buf);
            Ok(Some((bytes, (file, path, next, end, false, pool))))
        },
    )
    .boxed()
}

/// A push decoder of records: fed UTF-8 text (possibly with undecodable-byte markers) in order, it emits
/// complete batches.
pub(crate) trait Decode: Send + 'static {
    /// Consumes a piece of text, pushing any batches it completes.
    fn feed(&mut self, text: &[u8], out: &mut VecDeque<RecordBatch>) -> Result<()>;
    /// Signals the end of input, pushing the last batch.
    fn finish(&mut self, out: &mut VecDeque<RecordBatch>) -> Result<()>;
    /// The input broke off (corrupt or truncated compressed data): delivers what was read, then one malformed
    /// row with `reason` (and the partial record, if any), then the last batch.
    fn corrupt(&mut self, reason: &str, out: &mut VecDeque<RecordBatch>) -> Result<()>;
}

/// Raw bytes → [`Prelude`] (gzip, encoding) → a record [`Decode`]r.
pub(crate) struct TextPipeline<D> {
    prelude: Prelude,
    decoder: D,
    stopped: bool,
}

impl<D: Decode> TextPipeline<D> {
    pub(crate) fn new(prelude: Prelude, decoder: D) -> Self {
        TextPipeline { prelude, decoder, stopped: false }
    }

    fn feed(&mut self, chunk: &[u8], out: &mut VecDeque<RecordBatch>) -> Result<()> {
        if self.stopped {
            return Ok(());
        }
        let TextPipeline { prelude, decoder, .. } = self;
        match prelude.feed(chunk, &mut |text| decoder.feed(text, out)) {
            Ok(()) => Ok(()),
            Err(Outcome::Sink(e)) => Err(e),
            Err(Outcome::Corrupt(c)) => {
                self.stopped = true;
                self.decoder.corrupt(&c.0, out)
            }
        }
    }

    fn finish(&mut self, out: &mut VecDeque<RecordBatch>) -> Result<()> {
        if self.stopped {
            return Ok(());
        }
        self.stopped = true;
        let TextPipeline { prelude, decoder, .. } = self;
        match prelude.finish(&mut |text| decoder.feed(text, out)) {
            Ok(()) => self.decoder.finish(out),
            Err(Outcome::Sink(e)) => Err(e),
            Err(Outcome::Corrupt(c)) => self.decoder.corrupt(&c.0, out),
        }
    }
}

/// Drives `pipeline` over `bytes` lazily: a chunk is read only when the consumer wants the next batch.
pub(crate) fn decode_stream<D: Decode>(
    source_name: String,
    bytes: BoxStream<'static, object_store::Result<Bytes>>,
    pipeline: TextPipeline<D>,
) -> BatchStream {
    struct State<D> {
        name: String,
        bytes: BoxStream<'static, object_store::Result<Bytes>>,
        pipeline: TextPipeline<D>,
        ready: VecDeque<RecordBatch>,
        done: bool,
    }
    let state = State { name: source_name, bytes, pipeline, ready: VecDeque::new(), done: false };
    futures::stream::try_unfold(state, |mut s| async move {
        loop {
            if let Some(b) = s.ready.pop_front() {
                return Ok(Some((b, s)));
            }
            if s.done {
                return Ok(None);
            }
            if s.pipeline.stopped {
                s.done = true;
                continue;
            }
            match s.bytes.next().await {
                Some(chunk) => {
                    let chunk = chunk.map_err(|e| Error::source_error(s.name.clone(), e))?;
                    s.pipeline.feed(&chunk, &mut s.ready)?;
                }
                None => {
                    s.pipeline.finish(&mut s.ready)?;
                    s.done = true;
                }
            }
        }
    })
    .boxed()
}

#[cfg(test)]
pub(super) mod tests {
    use std::collections::VecDeque;

    use arrow::array::{AsArray, RecordBatch};
    use proptest::prelude::*;

    use super::super::csv::{CsvDecoder, CsvOptions};
    use super::super::json::{JsonDecoder, Layout};
    use super::super::prelude::{Prelude, TextEncoding};
    use super::super::text::text_schema;
    use super::{local_chunks, TextPipeline, LOCAL_READ_BYTES};

    /// The chunks of `range` of the file at `path`; with `recycle`, each chunk is dropped before the next is
    /// read (so its buffer is reused), and the chunks come back as copies with their buffers' addresses.
    fn local_read(path: &std::path::Path, range: std::ops::Range<u64>, recycle: bool) -> Vec<(Vec<u8>, usize)> {
        use futures::StreamExt;
        let file = std::fs::File::open(path).unwrap();
        let mut chunks = local_chunks(file, path.to_path_buf(), range);
        futures::executor::block_on(async {
            let mut held = vec![];
            let mut out = vec![];
            while let Some(chunk) = chunks.next().await {
                let chunk = chunk.unwrap();
                out.push((chunk.to_vec(), chunk.as_ptr() as usize));
                if !recycle {
                    held.push(chunk);
                }
            }
            out
        })
    }

    /// Read buffers are reused once the consumer dropped a chunk, and a reused buffer holds only its new read: a
    /// short last read after full ones carries none of the earlier bytes; chunks still held are never
    /// overwritten.
    #[test]
    fn recycled_read_buffers_hold_only_their_own_bytes() {
        let len = 2 * LOCAL_READ_BYTES + 5;
        let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data.bin");
        std::fs::write(&path, &data).unwrap();
        for (range, recycle) in [(0..len as u64, true), (0..len as u64, false), (3..len as u64 - 1, true)] {
            let chunks = local_read(&path, range.clone(), recycle);
            let lens: Vec<usize> = chunks.iter().map(|(c, _)| c.len()).collect();
            let want = range.end as usize - range.start as usize;
            assert_eq!(lens, [LOCAL_READ_BYTES, LOCAL_READ_BYTES, want - 2 * LOCAL_READ_BYTES], "{range:?}");
            let read: Vec<u8> = chunks.iter().flat_map(|(c, _)| c.iter().copied()).collect();
            assert_eq!(read, data[range.start as usize..range.end as usize], "{range:?}");
            let reused = chunks.windows(2).all(|w| w[0].1 == w[1].1);
            assert_eq!(reused, recycle, "buffers reused exactly when the chunks were dropped ({range:?})");
        }
        assert!(local_read(&path, 7..7, true).is_empty());
    }

    /// The rows of all-text batches, `None` for nulls (shared with the chunked reader's tests).
    pub(in super::super) fn rows(batches: &[RecordBatch]) -> Vec<Vec<Option<String>>> {
        let mut out = vec![];
        for b in batches {
            for r in 0..b.num_rows() {
                out.push(
                    b.columns()
                        .iter()
                        .map(|c| {
                            let s = c.as_string::<i32>();
                            (!arrow::array::Array::is_null(s, r)).then(|| s.value(r).to_string())
                        })
                        .collect(),
                );
            }
        }
        out
    }

    /// Feeds `bytes` split at `cuts` through a fresh pipeline made by `make`.
    fn run<D: super::Decode>(
        make: &dyn Fn() -> TextPipeline<D>,
        bytes: &[u8],
        cuts: &[usize],
    ) -> Vec<Vec<Option<String>>> {
        let mut p = make();
        let mut out = VecDeque::new();
        let mut at = 0;
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
        cuts.sort_unstable();
        for c in cuts.into_iter().chain([bytes.len()]) {
            p.feed(&bytes[at..c], &mut out).unwrap();
            at = c;
        }
        p.finish(&mut out).unwrap();
        rows(&out.into_iter().collect::<Vec<_>>())
    }

    fn gz(data: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    const CSV: &str =
        "a,城市\r\n1,\"北京,\"\"x\"\"\"\r\n2,臺北\n3,bad,extra\n# not a comment here\n4,\"multi\nline\"\n5,";

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

        /// Chunk boundaries (inside multi-byte characters, BOMs, gzip blocks, quotes, CRLF) never change the rows.
        #[test]
        fn csv_rows_do_not_depend_on_chunking(cuts in proptest::collection::vec(any::<usize>(), 0..12),
                                              which in 0usize..5) {
            let (bytes, enc, gzip): (Vec<u8>, &str, bool) = match which {
                0 => (CSV.as_bytes().to_vec(), "utf-8", false),
                1 => ([b"\xEF\xBB\xBF".as_slice(), CSV.as_bytes()].concat(), "utf-8", false),
                2 => (encoding_rs::GB18030.encode(CSV).0.into_owned(), "gb18030", false),
                3 => ([vec![0xFE, 0xFF], CSV.encode_utf16().flat_map(u16::to_be_bytes).collect()].concat(), "utf-8", false),
                _ => (gz(CSV.as_bytes()), "utf-8", true),
            };
            let schema = text_schema(vec!["a".to_string(), "城市".to_string()]);
            let o = CsvOptions::default();
            let make = || {
                let enc = TextEncoding::for_label(enc).unwrap();
                TextPipeline::new(
                    Prelude::new(gzip, enc),
                    CsvDecoder::new(schema.clone(), 2, &o, 2, "f.csv".into(), enc.name()),
                )
            };
            let whole = run(&make, &bytes, &[]);
            prop_assert_eq!(whole.len(), 6);
            prop_assert_eq!(whole[0][1].as_deref(), Some("北京,\"x\""));
            prop_assert_eq!(whole[1][1].as_deref(), Some("臺北"));
            prop_assert!(whole[2][2].is_some() && whole[3][2].is_some(), "{:?}", whole);
            prop_assert_eq!(whole[4][1].as_deref(), Some("multi\nline"));
            prop_assert_eq!(&run(&make, &bytes, &cuts), &whole);
        }

        /// The same for JSON arrays (strings with brackets and escapes, a record path) and NDJSON.
        #[test]
        fn json_records_do_not_depend_on_chunking(cuts in proptest::collection::vec(any::<usize>(), 0..12),
                                                  wrapped in any::<bool>()) {
            let arr = r#"[{"a": "x,]}\"\\", "b": [1, {"c": "]"}]}, 7 , {"a": "城"}, {"a": 1,}]"#;
            let doc = if wrapped { format!(r#"{{"x": [1, 2], "data": {arr}, "y": {{"data": []}}}}"#) } else { arr.to_string() };
            let path = if wrapped { vec!["data".to_string()] } else { vec![] };
            let schema = text_schema(vec!["a".to_string(), "b".to_string()]);
            let make = || TextPipeline::new(
                Prelude::new(false, TextEncoding::default()),
                JsonDecoder::new(schema.clone(), &Layout::Array(path.clone()), 3, "f.json".into()),
            );
            let whole = run(&make, doc.as_bytes(), &[]);
            prop_assert_eq!(whole.len(), 4);
            prop_assert_eq!(whole[0][0].as_deref(), Some("x,]}\"\\"));
            prop_assert_eq!(whole[0][1].as_deref(), Some(r#"[1,{"c":"]"}]"#));
            prop_assert!(whole[1][2].is_some() && whole[3][2].is_some());
            prop_assert_eq!(whole[2][0].as_deref(), Some("城"));
            prop_assert_eq!(&run(&make, doc.as_bytes(), &cuts), &whole);
            let lines = "{\"a\": 1}\r\n\n{\"a\": \"城\"}\nnot json\n{\"b\": [2]}";
            let make = || TextPipeline::new(
                Prelude::new(false, TextEncoding::default()),
                JsonDecoder::new(schema.clone(), &Layout::Lines, 2, "f.ndjson".into()),
            );
            let whole = run(&make, lines.as_bytes(), &[]);
            prop_assert_eq!(whole.len(), 4);
            prop_assert_eq!(whole[2][3].as_deref(), Some("f.ndjson line 4, byte 24: not valid JSON (expected ident at line 1 column 2)"));
            prop_assert_eq!(&run(&make, lines.as_bytes(), &cuts), &whole);
        }
    }
}
