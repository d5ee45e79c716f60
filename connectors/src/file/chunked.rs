//! CSV decoded on several threads: the text (after gzip and transcoding, which stay sequential) is cut into
//! chunks at line ends, each chunk is decoded by a fresh [`CsvDecoder`] on the blocking pool, and the batches
//! are delivered in order, a few chunks in flight at most.
//!
//! A cut is a guess that a line end is also a record end: the decoder of the chunk before checks it (it must end
//! with a complete record, [`CsvDecoder::at_boundary`]). When it does not (a quoted field with a line break
//! spans the cut, or an escape character fooled the quote count), the next chunk's speculative result is thrown
//! away and its text is fed to the decoder that holds the unfinished record instead, exactly as the sequential
//! reader would. So the rows, quarantined records, their line numbers and byte offsets are those of the
//! sequential reader whatever the data; only batch boundaries differ (each chunk ends its last batch).

use std::collections::VecDeque;
use std::sync::Arc;

use arrow::array::RecordBatch;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::StreamExt;
use tokio::task::JoinHandle;

use segkit::{BatchStream, Error, Result};

use super::csv::CsvDecoder;
use super::decode::Decode;
use super::prelude::{Outcome, Prelude};

/// Chunks decoded ahead of the consumer.
const IN_FLIGHT: usize = 3;

/// Bounds of the adaptive chunk size (text bytes).
const MIN_CHUNK: usize = 256 << 10;
const MAX_CHUNK: usize = 16 << 20;

/// Makes the decoder of a chunk starting at (1-based) `line` and text byte `offset`; `first` for the chunk at
/// the start of the scan (which reads the header, if any).
pub(crate) type MakeDecoder = Arc<dyn Fn(u64, u64, bool) -> CsvDecoder + Send + Sync>;

/// How a chunk's decoder ends.
#[derive(Clone)]
enum End {
    /// More text follows: the decoder's rows are flushed, an unfinished record is kept.
    More,
    /// The input ended.
    Finish,
    /// The input broke off (corrupt gzip data) for this reason.
    Corrupt(String),
}

/// What decoding a chunk gave.
struct Decoded {
    batches: VecDeque<RecordBatch>,
    decoder: CsvDecoder,
    /// Whether the chunk ended with a complete record.
    clean: bool,
}

/// Decodes a chunk; with a fresh decoder reading typed fields, the chunk is decoded again as text if a typed
/// reader refused a value (so such values reach the ingest as the text they were). A decoder carried over with
/// an unfinished record reads its chunk as text.
fn decode_chunk(mut decoder: CsvDecoder, text: &[u8], end: &End) -> Result<Decoded> {
    let twin = decoder.text_twin();
    if twin.is_none() {
        decoder.read_as_text();
    }
    let done = decode_chunk_once(decoder, text, end)?;
    match twin {
        Some(twin) if done.decoder.typed_failed() => decode_chunk_once(twin, text, end),
        _ if done.decoder.typed_failed() => Err(Error::Io(std::io::Error::other(
            "the CSV reader refused a typed value it could not read again as text",
        ))),
        _ => Ok(done),
    }
}

fn decode_chunk_once(mut decoder: CsvDecoder, text: &[u8], end: &End) -> Result<Decoded> {
    let mut batches = VecDeque::new();
    decoder.feed(text, &mut batches)?;
    let clean = match end {
        End::More => {
            decoder.flush(&mut batches)?;
            decoder.at_boundary()
        }
        End::Finish => {
            decoder.finish(&mut batches)?;
            true
        }
        End::Corrupt(reason) => {
            decoder.corrupt(reason, &mut batches)?;
            true
        }
    };
    Ok(Decoded { batches, decoder, clean })
}

/// A chunk being decoded.
struct Job {
    text: Arc<Vec<u8>>,
    end: End,
    result: Pending,
}

enum Pending {
    Task(JoinHandle<Result<Decoded>>),
    Done(Box<Result<Decoded>>),
}

/// Runs `decode_chunk` on the blocking pool when a tokio runtime is current, else right away.
fn start(decoder: CsvDecoder, text: Arc<Vec<u8>>, end: End) -> Job {
    let result = if tokio::runtime::Handle::try_current().is_ok() {
        let (t, e) = (text.clone(), end.clone());
        Pending::Task(tokio::task::spawn_blocking(move || decode_chunk(decoder, &t, &e)))
    } else {
        Pending::Done(Box::new(decode_chunk(decoder, &text, &end)))
    };
    Job { text, end, result }
}

async fn wait(p: Pending, name: &str) -> Result<Decoded> {
    match p {
        Pending::Done(r) => *r,
        Pending::Task(h) => h.await.map_err(|e| Error::source_error(name.to_string(), e))?,
    }
}

/// How big the chunks are.
#[derive(Clone, Copy)]
pub(crate) enum ChunkSize {
    /// About one batch of rows, judged from the line lengths seen so far.
    Rows(usize),
    /// Always this many bytes (tests).
    #[cfg(test)]
    Fixed(usize),
}

struct State {
    name: String,
    bytes: BoxStream<'static, object_store::Result<Bytes>>,
    prelude: Prelude,
    make: MakeDecoder,
    quote: u8,
    size: ChunkSize,
    /// Text not yet handed to a decoder; `line` and `offset` are where it starts.
    buf: Vec<u8>,
    line: u64,
    offset: u64,
    /// Whether the next chunk is the first.
    first: bool,
    /// Text bytes and line ends cut so far (for the adaptive size).
    cut_bytes: u64,
    cut_lines: u64,
    jobs: VecDeque<Job>,
    /// Text buffers of delivered chunks, for reuse.
    spare: Vec<Vec<u8>>,
    /// The decoder of the record the last delivered chunk left unfinished.
    carry: Option<CsvDecoder>,
    ready: VecDeque<RecordBatch>,
    input_done: bool,
}

impl State {
    fn target(&self) -> usize {
        match self.size {
            ChunkSize::Rows(rows) => match self.cut_bytes.checked_div(self.cut_lines) {
                None => 4 << 20,
                Some(per_line) => (per_line.max(1) as usize).saturating_mul(rows).clamp(MIN_CHUNK, MAX_CHUNK),
            },
            #[cfg(test)]
            ChunkSize::Fixed(n) => n.max(1),
        }
    }

    /// Where to cut `buf` (up to `limit`), and how many line ends the text before the cut holds: after the last
    /// line end before which the count of quote characters is even (a line end outside quotes, if the chunk
    /// starts outside and quotes are doubled), else after the last line end, else everything. Quotes and line
    /// ends are counted in one vectorized pass (see [`count_two`]).
    fn cut_point(&self, limit: usize) -> (usize, u64) {
        let text = &self.buf[..limit];
        let Some(last) = text.iter().rposition(|b| *b == b'\n') else { return (limit, 0) };
        let (mut quotes, lines) = count_two(&text[..=last], self.quote, b'\n');
        let mut at = last;
        let mut passed = 0;
        loop {
            if quotes % 2 == 0 {
                return (at + 1, lines - passed);
            }
            // Step back to the previous line end, uncounting the quotes passed.
            let Some(prev) = text[..at].iter().rposition(|b| *b == b'\n') else { return (last + 1, lines) };
            quotes -= text[prev + 1..at].iter().filter(|b| **b == self.quote).count() as u64;
            at = prev;
            passed += 1;
        }
    }

    /// Hands `buf[..n]` to a new decoder; `lines` is the count of line ends in it, if known.
    fn dispatch(&mut self, n: usize, lines: Option<u64>, end: End) {
        // The rest moves to a buffer of a delivered chunk (or a new one) big enough for the next chunk, so the
        // text buffers are allocated (and their pages faulted in) once, not grown and freed chunk by chunk.
        let mut rest = self.spare.pop().unwrap_or_default();
        rest.clear();
        rest.reserve(self.target() + (1 << 20));
        rest.extend_from_slice(&self.buf[n..]);
        self.buf.truncate(n);
        let text = std::mem::replace(&mut self.buf, rest);
        let lines = lines.unwrap_or_else(|| count_byte(&text, b'\n'));
        let decoder = (self.make)(self.line, self.offset, self.first);
        self.first = false;
        self.line += lines;
        self.offset += text.len() as u64;
        self.cut_bytes += text.len() as u64;
        self.cut_lines += lines;
        self.jobs.push_back(start(decoder, Arc::new(text), end));
    }

    /// Cuts full chunks off `buf`.
    fn dispatch_full(&mut self) {
        loop {
            let target = self.target();
            if self.buf.len() < target {
                return;
            }
            let (n, lines) = self.cut_point(target);
            self.dispatch(n, Some(lines), End::More);
        }
    }

    /// Reads the next piece of input into `buf`, dispatching full chunks (and the rest at the end).
    async fn read_more(&mut self) -> Result<()> {
        let State { prelude, buf, .. } = self;
        let mut sink = |text: &[u8]| -> Result<()> {
            buf.extend_from_slice(text);
            Ok(())
        };
        let outcome = match self.bytes.next().await {
            Some(chunk) => {
                let chunk = chunk.map_err(|e| Error::source_error(self.name.clone(), e))?;
                prelude.feed(&chunk, &mut sink).map(|()| false)
            }
            None => prelude.finish(&mut sink).map(|()| true),
        };
        match outcome {
            Ok(false) => self.dispatch_full(),
            Ok(true) => {
                self.input_done = true;
                self.dispatch_full();
                self.dispatch(self.buf.len(), None, End::Finish);
            }
            Err(Outcome::Sink(e)) => return Err(e),
            Err(Outcome::Corrupt(c)) => {
                self.input_done = true;
                self.dispatch_full();
                self.dispatch(self.buf.len(), None, End::Corrupt(c.0));
            }
        }
        Ok(())
    }

    /// Waits for the oldest chunk and queues its batches.
    async fn deliver(&mut self, job: Job) -> Result<()> {
        let speculative = wait(job.result, &self.name).await;
        let (done, text) = match self.carry.take() {
            None => (speculative?, job.text),
            Some(carry) => {
                // The chunk started inside a record: its own decoding is void; the carried decoder reads it.
                drop(speculative);
                let again = start(carry, job.text, job.end.clone());
                (wait(again.result, &self.name).await?, again.text)
            }
        };
        if let Ok(buffer) = Arc::try_unwrap(text) {
            if self.spare.is_empty() {
                self.spare.push(buffer);
            }
        }
        self.ready.extend(done.batches);
        if !done.clean {
            self.carry = Some(done.decoder);
        }
        Ok(())
    }
}

/// How many bytes of `text` equal `a` and how many equal `b`, in one pass (see [`count_each`]).
pub(crate) fn count_two(text: &[u8], a: u8, b: u8) -> (u64, u64) {
    let [na, nb] = count_each(text, [a, b]);
    (na, nb)
}

/// How many bytes of `text` equal `b` (see [`count_each`]).
pub(crate) fn count_byte(text: &[u8], b: u8) -> u64 {
    let [n] = count_each(text, [b]);
    n
}

/// How many bytes of `text` equal each of `bytes`, in one pass: 32 bytes at a time into byte-wide lanes (which
/// compilers turn into vector compares), the lanes summed before they can overflow.
fn count_each<const K: usize>(text: &[u8], bytes: [u8; K]) -> [u64; K] {
    const LANES: usize = 32;
    let mut blocks = text.chunks_exact(LANES);
    let mut totals = [0u64; K];
    loop {
        let mut lanes = [[0u8; LANES]; K];
        let mut taken = 0;
        for block in blocks.by_ref().take(255) {
            for (lanes, &b) in lanes.iter_mut().zip(&bytes) {
                for i in 0..LANES {
                    lanes[i] += u8::from(block[i] == b);
                }
            }
            taken += 1;
        }
        for (total, lanes) in totals.iter_mut().zip(&lanes) {
            *total += lanes.iter().map(|&n| u64::from(n)).sum::<u64>();
        }
        if taken < 255 {
            break;
        }
    }
    for &c in blocks.remainder() {
        for (total, &b) in totals.iter_mut().zip(&bytes) {
            *total += u64::from(c == b);
        }
    }
    totals
}

/// How a scan's text is cut.
pub(crate) struct Chunking {
    /// The CSV quote character (for choosing cuts).
    pub(crate) quote: u8,
    /// The chunk size.
    pub(crate) size: ChunkSize,
    /// The (1-based) line and text byte offset at which the scan starts.
    pub(crate) line: u64,
    pub(crate) offset: u64,
}

/// CSV text decoded in parallel chunks (see the module docs): `bytes` through `prelude`, each chunk decoded by a
/// decoder from `make`.
pub(crate) fn csv_stream(
    name: String,
    bytes: BoxStream<'static, object_store::Result<Bytes>>,
    prelude: Prelude,
    make: MakeDecoder,
    chunking: Chunking,
) -> BatchStream {
    let Chunking { quote, size, line: start_line, offset: start_offset } = chunking;
    let state = State {
        name,
        bytes,
        prelude,
        make,
        quote,
        size,
        buf: Vec::new(),
        line: start_line,
        offset: start_offset,
        first: true,
        cut_bytes: 0,
        cut_lines: 0,
        jobs: VecDeque::new(),
        spare: Vec::new(),
        carry: None,
        ready: VecDeque::new(),
        input_done: false,
    };
    futures::stream::try_unfold(state, |mut s| async move {
        loop {
            if let Some(b) = s.ready.pop_front() {
                return Ok(Some((b, s)));
            }
            if !s.input_done && s.jobs.len() < IN_FLIGHT {
                s.read_more().await?;
                continue;
            }
            match s.jobs.pop_front() {
                Some(job) => s.deliver(job).await?,
                None => return Ok(None),
            }
        }
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;
    use futures::StreamExt;
    use proptest::prelude::*;

    use super::super::csv::{CsvDecoder, CsvOptions};
    use super::super::decode::tests::rows;
    use super::super::decode::{decode_stream, TextPipeline};
    use super::super::prelude::{Prelude, TextEncoding};
    use super::super::text::text_schema;
    use super::{csv_stream, ChunkSize, Chunking, MakeDecoder};
    use arrow::array::{Array, AsArray, RecordBatch};
    use arrow::datatypes::DataType as ArrowType;
    use arrow::util::display::{ArrayFormatter, FormatOptions};
    use segkit::ingest::{coerce, TypedField};
    use segkit::{Attribute, BatchStream, DataType};

    type Rows = Vec<Vec<Option<String>>>;

    /// The pieces of `bytes` cut at `cuts`, as an object byte stream.
    fn pieces(bytes: &[u8], cuts: &[usize]) -> futures::stream::BoxStream<'static, object_store::Result<Bytes>> {
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
        cuts.sort_unstable();
        let mut at = 0;
        let mut out = vec![];
        for c in cuts.into_iter().chain([bytes.len()]) {
            out.push(Ok(Bytes::copy_from_slice(&bytes[at..c])));
            at = c;
        }
        futures::stream::iter(out).boxed()
    }

    fn collect(stream: BatchStream, runtime: Option<&tokio::runtime::Runtime>) -> Vec<RecordBatch> {
        let all = async { stream.map(|b| b.unwrap()).collect::<Vec<_>>().await };
        match runtime {
            Some(rt) => rt.block_on(all),
            None => futures::executor::block_on(all),
        }
    }

    fn options(variant: usize) -> CsvOptions {
        let mut o = CsvOptions::default();
        match variant {
            1 => o.escape = Some(b'\\'),
            2 => o.comment = Some(b'#'),
            3 => o.header = false,
            _ => {}
        }
        o
    }

    /// The sequential reader's rows and the chunked reader's rows of `bytes`.
    fn both(bytes: &[u8], variant: usize, gzip: bool, chunk: usize, cuts: &[usize], threads: bool) -> (Rows, Rows) {
        let (seq, par) = both_batches(bytes, variant, gzip, chunk, cuts, threads, &[]);
        (rows(&seq), rows(&par))
    }

    /// The sequential (all-text) reader's batches and the chunked reader's batches of `bytes`, the latter reading
    /// the `typed` fields typed.
    fn both_batches(
        bytes: &[u8],
        variant: usize,
        gzip: bool,
        chunk: usize,
        cuts: &[usize],
        threads: bool,
        typed: &[TypedField],
    ) -> (Vec<RecordBatch>, Vec<RecordBatch>) {
        let schema = text_schema(vec!["x".to_string(), "y".to_string(), "z".to_string()]);
        let o = options(variant);
        let enc = TextEncoding::default();
        let seq = decode_stream(
            "s".into(),
            pieces(bytes, &[]),
            TextPipeline::new(
                Prelude::new(gzip, enc),
                CsvDecoder::new(schema.clone(), 3, &o, 3, "f.csv".into(), enc.name()),
            ),
        );
        let (opts, s2, typed) = (o.clone(), schema.clone(), typed.to_vec());
        let make: MakeDecoder = Arc::new(move |line, offset, first| {
            let mut d = CsvDecoder::new(s2.clone(), 3, &opts, 3, "f.csv".into(), enc.name()).typed(&typed);
            if !first {
                d.resume_at(line, offset);
            }
            d
        });
        let chunking = Chunking { quote: o.quote, size: ChunkSize::Fixed(chunk), line: 1, offset: 0 };
        let par = csv_stream("s".into(), pieces(bytes, cuts), Prelude::new(gzip, enc), make, chunking);
        let rt = threads.then(|| tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().unwrap());
        (collect(seq, None), collect(par, rt.as_ref()))
    }

    /// The rows as an ingest sees them: each data value coerced to its attribute's type and shown, or the
    /// coercion's error (which shows the text); the raw and error columns as they are. A null of a required
    /// attribute in a typed batch (which a reader must refuse) is shown as such, unlike a null in a text batch.
    fn coerced(batches: &[RecordBatch], attrs: &[Attribute]) -> Vec<Vec<String>> {
        let mut out = vec![];
        for b in batches {
            let typed = b.columns().iter().any(|c| c.data_type() != &ArrowType::Utf8);
            let malformed = b.column(3).clone();
            let mut cols: Vec<Vec<String>> = vec![];
            for (i, c) in b.columns().iter().enumerate() {
                let shown: Vec<String> = match attrs.get(i) {
                    Some(a) => {
                        let (v, errors) = coerce(c, a, "|").unwrap();
                        let f = ArrayFormatter::try_new(v.as_ref(), &FormatOptions::default().with_null("∅")).unwrap();
                        let mut shown: Vec<String> = (0..v.len()).map(|r| f.value(r).to_string()).collect();
                        for (r, why) in errors {
                            shown[r] = format!("error: {why}");
                        }
                        for (r, s) in shown.iter_mut().enumerate() {
                            if typed && !a.nullable && v.is_null(r) && malformed.is_null(r) {
                                *s = "a null of a required attribute in a typed batch".into();
                            }
                        }
                        shown
                    }
                    None => c.as_string::<i32>().iter().map(|v| format!("{v:?}")).collect(),
                };
                cols.push(shown);
            }
            for r in 0..b.num_rows() {
                out.push(cols.iter().map(|c| c[r].clone()).collect());
            }
        }
        out
    }

    /// Field texts for typed reading: numbers in several forms, blanks, null markers, NaN, text, a quoted field
    /// with a delimiter and a line break, bad UTF-8.
    const VALUES: [&[u8]; 14] = [
        b"17",
        b"-3",
        b" 4 ",
        b"1e2",
        b"2.5",
        b"NaN",
        b"",
        b"NULL",
        b"a",
        b"\"q,\nr\"",
        b"\"7\"",
        b"\xff",
        b"x\"y",
        b"2020-08-10 13:33:58Z",
    ];

    /// Records of up to four fields from [`VALUES`], with varied line ends.
    fn typed_text(records: &[(Vec<usize>, usize)]) -> Vec<u8> {
        let mut t = b"x,y,z\n".to_vec();
        for (fields, end) in records {
            for (i, f) in fields.iter().enumerate() {
                if i > 0 {
                    t.push(b',');
                }
                t.extend_from_slice(VALUES[f % VALUES.len()]);
            }
            t.extend_from_slice([&b"\n"[..], b"\r\n", b"\n\n"][end % 3]);
        }
        t
    }

    const TOKENS: [&[u8]; 16] = [
        b"a",
        b"17",
        b",",
        b",",
        b"\"",
        b"\"\"",
        b"\n",
        b"\n",
        b"\r\n",
        b"\xff",
        "é城".as_bytes(),
        b"NULL",
        b"\\",
        b"#",
        b"\"q,\nr\"",
        b"\r",
    ];

    fn text(tokens: &[usize]) -> Vec<u8> {
        let mut t = b"x,y,z\n".to_vec();
        for i in tokens {
            t.extend_from_slice(TOKENS[i % TOKENS.len()]);
        }
        t
    }

    fn gz(data: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 300, failure_persistence: None, ..ProptestConfig::default() })]

        /// Any text (quotes, doubled and escaped quotes, line breaks in and out of quotes, CR, bad UTF-8, wrong
        /// field counts, comments), any chunk size down to one byte, with and without worker threads: the rows,
        /// the quarantined records and their line numbers and offsets are the sequential reader's.
        #[test]
        fn chunked_rows_equal_sequential_rows(tokens in proptest::collection::vec(0usize..64, 0..120),
                                              variant in 0usize..4, chunk in 1usize..48,
                                              cuts in proptest::collection::vec(any::<usize>(), 0..6),
                                              threads in any::<bool>()) {
            let t = text(&tokens);
            let (seq, par) = both(&t, variant, false, chunk, &cuts, threads);
            prop_assert_eq!(par, seq);
        }

        /// The same through gzip, and for gzip data cut short (the broken-off record and the reason come last).
        #[test]
        fn chunked_gzip_and_truncated_gzip(tokens in proptest::collection::vec(0usize..64, 0..120),
                                           chunk in 1usize..48, keep in 0.0f64..1.0) {
            let g = gz(&text(&tokens));
            let (seq, par) = both(&g, 0, true, chunk, &[], true);
            prop_assert_eq!(par, seq);
            let cut = &g[..(g.len() as f64 * keep) as usize];
            let (seq, par) = both(cut, 0, true, chunk, &[], false);
            prop_assert!(seq.last().is_some_and(|r| r[4].as_deref().is_some_and(|e| e.contains("gzip"))), "{:?}", seq);
            prop_assert_eq!(par, seq);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 300, failure_persistence: None, ..ProptestConfig::default() })]

        /// Typed reading (a required integer, an optional float, a required text): for any records and chunk
        /// sizes, the rows the ingest sees — values, coercion errors with the text shown, malformed records
        /// with their line and offset — are those of the sequential all-text reader; a refused value makes its
        /// chunk text, never a typed batch with a null where a value is required.
        #[test]
        fn typed_chunks_read_as_the_sequential_text_reader(
            records in proptest::collection::vec((proptest::collection::vec(0usize..64, 2..5), 0usize..3), 0..60),
            chunk in 1usize..200, threads in any::<bool>(), required in any::<bool>()) {
            let t = typed_text(&records);
            let mut x = Attribute::new("x", DataType::Int64);
            x.nullable = !required;
            let y = Attribute::new("y", DataType::Float64);
            let mut z = Attribute::new("z", DataType::String);
            z.nullable = !required;
            let attrs = [x, y, z];
            let fields: Vec<TypedField> = attrs
                .iter()
                .map(|a| TypedField { name: a.name.clone(), data_type: a.data_type.clone(), required: !a.nullable })
                .collect();
            let (seq, par) = both_batches(&t, 0, false, chunk, &[], threads, &fields);
            prop_assert_eq!(coerced(&par, &attrs), coerced(&seq, &attrs));
        }
    }

    proptest! {
        /// The one-pass vectorized count equals the plain count, for any length (block remainders, lane
        /// overflow past 255 blocks).
        #[test]
        fn count_two_counts(text in proptest::collection::vec(prop_oneof![Just(b'"'), Just(b'\n'), any::<u8>()], 0..20_000),
                            a in prop_oneof![Just(b'"'), any::<u8>()]) {
            let want = |c: u8| text.iter().filter(|b| **b == c).count() as u64;
            prop_assert_eq!(super::count_two(&text, a, b'\n'), (want(a), want(b'\n')));
            prop_assert_eq!(super::count_byte(&text, a), want(a));
        }
    }

    /// Every byte the same, past the 255 blocks after which the byte lanes are summed.
    #[test]
    fn count_two_long_runs() {
        let text = vec![b'\n'; 32 * 255 * 3 + 17];
        assert_eq!(super::count_two(&text, b'\n', b'"'), (text.len() as u64, 0));
    }

    /// Realistic data in large chunks: quoted text fields with the odd line break, every cut checked, and the
    /// quarantine's line numbers count the line breaks inside quotes.
    #[test]
    fn quoted_line_breaks_across_many_chunks() {
        let mut t = b"x,y,z\n".to_vec();
        for i in 0..2000 {
            if i % 97 == 0 {
                t.extend_from_slice(format!("{i},\"two\nlines \"\"{i}\"\"\",\"c\"\n").as_bytes());
            } else if i % 331 == 0 {
                t.extend_from_slice(format!("{i},bad\n").as_bytes());
            } else {
                t.extend_from_slice(format!("{i},\"name {i}\",\"x,y\"\n").as_bytes());
            }
        }
        for chunk in [7, 64, 1000, 4096] {
            let (seq, par) = both(&t, 0, false, chunk, &[100, 5000], true);
            assert_eq!(seq.len(), 2000);
            assert_eq!(par, seq, "chunk {chunk}");
        }
        let (_, par) = both(&t, 0, false, 64, &[], true);
        // Row 331 is on line 2 + 331 + 4: the header, 331 rows and the line breaks inside quotes of rows 0, 97,
        // 194 and 291 precede it.
        let at = t.windows(8).position(|w| w == b"\n331,bad").unwrap() + 1;
        assert_eq!(t[..at].iter().filter(|b| **b == b'\n').count(), 336);
        let want = format!("f.csv line 337, byte {at}: 2 fields, expected 3");
        assert_eq!(par[331][4].as_deref(), Some(want.as_str()));
        assert_eq!(par[331][3].as_deref(), Some("331,bad"));
    }
}
