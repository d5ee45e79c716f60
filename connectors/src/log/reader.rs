//! Reading log files on a blocking thread: matching files to the cursor (rotation), splitting lines with a
//! bounded buffer, parsing them into rows, and the cursor after the scan.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::mpsc::Sender;

use segkit::{Error, Result};

use super::{Gzip, Options};
use crate::file::prelude::{Outcome, Prelude, TextEncoding};
use crate::file::text::TextBatchBuilder;

/// Bytes of a file's start its fingerprint covers (at most).
pub(crate) const FINGERPRINT_BYTES: usize = 1024;

/// Most file entries a cursor keeps (files seen before but not matched now are carried, oldest dropped first).
pub(crate) const MAX_CURSOR_FILES: usize = 4096;

/// Bytes read from a file at once.
const CHUNK: usize = 64 * 1024;

/// The longest raw text of an overlong line kept as evidence in the quarantine.
const EVIDENCE_BYTES: usize = 1024;

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Where the reading of one file stopped: one entry of a log source's cursor (`{"files": [...]}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileCursor {
    /// The file's path when it was read (informative: files are recognised by identity, not by name).
    pub path: String,
    /// Device number.
    pub dev: u64,
    /// Inode number.
    pub ino: u64,
    /// FNV-1a 64 hash (hex) of the first `fp_len` bytes of the file's content (decompressed for gzip).
    pub fp: String,
    /// Bytes the fingerprint covers: the first [`FINGERPRINT_BYTES`] bytes or, if less, all bytes read.
    pub fp_len: u64,
    /// Content bytes consumed (after the last complete line read).
    pub offset: u64,
    /// Lines consumed (so line numbers in messages go on counting).
    pub line: u64,
    /// The file's size on disk when it was read.
    pub size: u64,
    /// Whether the file was read to its end and will not grow (a gzip'd file).
    pub eof: bool,
}

/// The entries of a cursor.
pub(crate) fn parse_cursor(v: &Value) -> std::result::Result<Vec<FileCursor>, String> {
    #[derive(Deserialize)]
    struct C {
        files: Vec<FileCursor>,
    }
    serde_json::from_value::<C>(v.clone()).map(|c| c.files).map_err(|e| e.to_string())
}

fn fnv1a(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// A scan, run on a blocking thread.
pub(crate) struct Job {
    pub(crate) name: String,
    pub(crate) schema: SchemaRef,
    pub(crate) options: Arc<Options>,
    pub(crate) files: Vec<PathBuf>,
    pub(crate) previous: Vec<FileCursor>,
    pub(crate) cursor: Arc<Mutex<Option<Value>>>,
    pub(crate) now: DateTime<Utc>,
}

/// Why a scan stopped early.
enum Stop {
    /// The consumer went away.
    Cancelled,
    Failed(Error),
}

/// Where a file's reading starts.
enum Start {
    /// Not changed since it was read to its end.
    Unchanged(usize),
    /// From the cursor entry's offset.
    Resume(usize),
    FromZero,
}

struct Candidate {
    path: PathBuf,
    dev: u64,
    ino: u64,
    size: u64,
    gzip: bool,
    head: Option<Vec<u8>>,
    start: Option<Start>,
}

impl Job {
    /// Runs the scan, sending batches (or one error) to `tx`; stores the cursor before the stream ends.
    pub(crate) fn run(self, tx: Sender<Result<RecordBatch>>) {
        match self.run_inner(&tx) {
            Ok(cursor) if self.options.tail => *self.cursor.lock().expect("cursor lock") = Some(cursor),
            Ok(_) => {}
            Err(Stop::Cancelled) => {}
            Err(Stop::Failed(e)) => {
                let _ = tx.blocking_send(Err(e));
            }
        }
    }

    fn err(&self, message: String) -> Stop {
        Stop::Failed(Error::Source { source_name: self.name.clone(), message, cause: None })
    }

    fn head(&self, c: &Candidate) -> std::result::Result<Vec<u8>, Stop> {
        let f = File::open(&c.path).map_err(|e| self.err(format!("cannot open `{}`: {e}", c.path.display())))?;
        let mut out = Vec::with_capacity(FINGERPRINT_BYTES);
        let r: Box<dyn Read> = if c.gzip { Box::new(flate2::read::MultiGzDecoder::new(f)) } else { Box::new(f) };
        // A corrupt gzip stream gives a shorter head: it then matches less, never wrongly.
        let _ = r.take(FINGERPRINT_BYTES as u64).read_to_end(&mut out);
        Ok(out)
    }

    fn run_inner(&self, tx: &Sender<Result<RecordBatch>>) -> std::result::Result<Value, Stop> {
        let o = &self.options;
        let mut cands = vec![];
        for p in &self.files {
            let meta = match std::fs::metadata(p) {
                Ok(m) => m,
                // Rotated away between listing and reading: its entry is carried, it is read next time.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(self.err(format!("cannot read `{}`: {e}", p.display()))),
            };
            let gzip = match o.gzip {
                Gzip::Auto => p.extension().is_some_and(|e| e.eq_ignore_ascii_case("gz")),
                Gzip::Always => true,
                Gzip::Never => false,
            };
            cands.push(Candidate {
                path: p.clone(),
                dev: meta.dev(),
                ino: meta.ino(),
                size: meta.len(),
                gzip,
                head: None,
                start: None,
            });
        }
        let mut claimed = vec![false; self.previous.len()];
        let fits = |head: &[u8], e: &FileCursor| {
            let n = e.fp_len as usize;
            head.len() >= n && fnv1a(&head[..n]) == e.fp
        };
        // Same inode first (a renamed file keeps it), then the same first bytes (a copy, a gzip'd copy).
        for c in cands.iter_mut() {
            let Some(i) = (0..self.previous.len())
                .find(|&i| !claimed[i] && self.previous[i].dev == c.dev && self.previous[i].ino == c.ino)
            else {
                continue;
            };
            let e = &self.previous[i];
            if c.gzip && e.eof && e.size == c.size {
                claimed[i] = true;
                c.start = Some(Start::Unchanged(i));
                continue;
            }
            let head = self.head(c)?;
            if fits(&head, e) && (c.gzip || c.size >= e.offset) {
                claimed[i] = true;
                c.start = Some(Start::Resume(i));
            }
            c.head = Some(head);
        }
        for c in cands.iter_mut().filter(|c| c.start.is_none()) {
            let head = match c.head.take() {
                Some(h) => h,
                None => self.head(c)?,
            };
            let found = (0..self.previous.len())
                .filter(|&i| !claimed[i] && self.previous[i].fp_len > 0 && fits(&head, &self.previous[i]))
                .max_by_key(|&i| (self.previous[i].fp_len, self.previous[i].offset));
            c.start = Some(match found {
                Some(i) => {
                    claimed[i] = true;
                    Start::Resume(i)
                }
                None => Start::FromZero,
            });
            c.head = Some(head);
        }
        let mut builder = TextBatchBuilder::new(self.schema.clone());
        let mut next: Vec<FileCursor> =
            self.previous.iter().zip(&claimed).filter(|(_, c)| !**c).map(|(e, _)| e.clone()).collect();
        for c in &cands {
            let entry = match c.start.as_ref().expect("every file has a start") {
                Start::Unchanged(i) => FileCursor { path: c.path.display().to_string(), ..self.previous[*i].clone() },
                Start::Resume(i) => self.read(c, Some(&self.previous[*i]), &mut builder, tx)?,
                Start::FromZero => self.read(c, None, &mut builder, tx)?,
            };
            next.push(entry);
        }
        if let Some(b) = builder.finish().map_err(Stop::Failed)? {
            tx.blocking_send(Ok(b)).map_err(|_| Stop::Cancelled)?;
        }
        let drop = next.len().saturating_sub(MAX_CURSOR_FILES);
        next.drain(..drop);
        Ok(serde_json::json!({ "files": next }))
    }

    /// Reads one file from `from` (or 0), returning its cursor entry.
    fn read(
        &self,
        c: &Candidate,
        from: Option<&FileCursor>,
        builder: &mut TextBatchBuilder,
        tx: &Sender<Result<RecordBatch>>,
    ) -> std::result::Result<FileCursor, Stop> {
        let o = &self.options;
        let mut file = File::open(&c.path).map_err(|e| self.err(format!("cannot open `{}`: {e}", c.path.display())))?;
        let head = c.head.as_deref().unwrap_or_default();
        let bom = if head.starts_with(BOM) { BOM.len() as u64 } else { 0 };
        let (offset, line) = from.map_or((0, 0), |e| (e.offset, e.line));
        let offset = offset.max(bom);
        let short = c.path.file_name().map_or_else(|| c.path.display().to_string(), |n| n.to_string_lossy().into());
        let display = c.path.display().to_string();
        let mut lines = Lines {
            job: self,
            builder,
            tx,
            short: &short,
            display: &display,
            cur: Vec::new(),
            cur_len: 0,
            line_start: offset,
            pos: offset,
            skip_until: offset,
            line_no: line,
            done: (offset, line),
            values: Vec::new(),
        };
        let mut buf = vec![0u8; CHUNK];
        let mut eof = false;
        if c.gzip {
            lines.pos = bom;
            lines.line_start = bom;
            let mut prelude = Prelude::new(true, TextEncoding::default());
            let mut corrupt = None;
            loop {
                let n =
                    read_some(&mut file, &mut buf).map_err(|e| self.err(format!("cannot read `{display}`: {e}")))?;
                let r = if n == 0 {
                    prelude.finish(&mut |t| lines.push(t))
                } else {
                    prelude.feed(&buf[..n], &mut |t| lines.push(t))
                };
                match r {
                    Ok(()) => {}
                    Err(Outcome::Sink(s)) => return Err(s),
                    Err(Outcome::Corrupt(c)) => {
                        corrupt = Some(c.0);
                        break;
                    }
                }
                if n == 0 {
                    break;
                }
            }
            match corrupt {
                Some(reason) => lines.corrupt(&reason)?,
                None => lines.end(true)?,
            }
            eof = true;
        } else {
            file.seek(SeekFrom::Start(offset)).map_err(|e| self.err(format!("cannot read `{display}`: {e}")))?;
            loop {
                let n =
                    read_some(&mut file, &mut buf).map_err(|e| self.err(format!("cannot read `{display}`: {e}")))?;
                if n == 0 {
                    break;
                }
                lines.push(&buf[..n])?;
            }
            lines.end(!o.tail)?;
        }
        let (offset, line) = lines.done;
        let fp_len = (offset as usize).min(FINGERPRINT_BYTES);
        // The head read before may be shorter than what was read since (the file grew): re-read it.
        let head = if head.len() >= fp_len { head.to_vec() } else { self.head(c)? };
        let fp_len = fp_len.min(head.len());
        Ok(FileCursor {
            path: display,
            dev: c.dev,
            ino: c.ino,
            fp: fnv1a(&head[..fp_len]),
            fp_len: fp_len as u64,
            offset,
            line,
            size: c.size,
            eof,
        })
    }
}

fn read_some(f: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    loop {
        match f.read(buf) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            r => return r,
        }
    }
}

/// The line splitter and row builder of one file.
struct Lines<'a> {
    job: &'a Job,
    builder: &'a mut TextBatchBuilder,
    tx: &'a Sender<Result<RecordBatch>>,
    short: &'a str,
    display: &'a str,
    /// The current line's bytes (at most `max_line_bytes + 1` kept).
    cur: Vec<u8>,
    /// The current line's true length.
    cur_len: u64,
    line_start: u64,
    /// Content offset of the next byte.
    pos: u64,
    /// Content before this offset was read by an earlier scan (gzip'd files are decompressed from the start).
    skip_until: u64,
    line_no: u64,
    /// (offset, lines) after the last line consumed.
    done: (u64, u64),
    values: Vec<Option<String>>,
}

impl Lines<'_> {
    fn push(&mut self, mut text: &[u8]) -> std::result::Result<(), Stop> {
        if self.pos < self.skip_until {
            let n = ((self.skip_until - self.pos) as usize).min(text.len());
            text = &text[n..];
            self.pos += n as u64;
            self.line_start = self.pos;
        }
        let max = self.job.options.max_line_bytes;
        while !text.is_empty() {
            match memchr_nl(text) {
                Some(i) => {
                    self.append(&text[..i], max);
                    self.pos += i as u64 + 1;
                    self.line_no += 1;
                    self.complete()?;
                    self.done = (self.pos, self.line_no);
                    self.line_start = self.pos;
                    text = &text[i + 1..];
                }
                None => {
                    self.append(text, max);
                    self.pos += text.len() as u64;
                    text = &[];
                }
            }
        }
        Ok(())
    }

    fn append(&mut self, bytes: &[u8], max: usize) {
        let room = (max + 1).saturating_sub(self.cur.len());
        self.cur.extend_from_slice(&bytes[..bytes.len().min(room)]);
        self.cur_len += bytes.len() as u64;
    }

    /// The end of the file: a last line without `\n` is read if `take_partial`, else left for later.
    fn end(&mut self, take_partial: bool) -> std::result::Result<(), Stop> {
        if self.cur_len > 0 && take_partial {
            self.line_no += 1;
            self.complete()?;
            self.done = (self.pos, self.line_no);
        }
        Ok(())
    }

    /// The gzip stream broke off: the partial line (if any) and the reason, quarantined.
    fn corrupt(&mut self, reason: &str) -> std::result::Result<(), Stop> {
        let raw = String::from_utf8_lossy(&self.cur[..self.cur.len().min(EVIDENCE_BYTES)]).into_owned();
        let why = format!("{} line {}, byte {}: {reason}", self.short, self.line_no + 1, self.line_start);
        self.builder.push_raw(&raw, &why);
        self.line_no += 1;
        self.done = (self.pos, self.line_no);
        self.flush_if_full()
    }

    fn flush_if_full(&mut self) -> std::result::Result<(), Stop> {
        if self.builder.len() >= self.job.options.batch_size {
            if let Some(b) = self.builder.finish().map_err(Stop::Failed)? {
                self.tx.blocking_send(Ok(b)).map_err(|_| Stop::Cancelled)?;
            }
        }
        Ok(())
    }

    /// One complete line (in `cur`): a row, a malformed row, or nothing (blank).
    fn complete(&mut self) -> std::result::Result<(), Stop> {
        let job = self.job;
        let o = &job.options;
        let mut bytes = std::mem::take(&mut self.cur);
        let len = std::mem::take(&mut self.cur_len);
        let (short, number, start) = (self.short, self.line_no, self.line_start);
        let where_ = move || format!("{short} line {number}, byte {start}");
        if len > o.max_line_bytes as u64 {
            let raw = String::from_utf8_lossy(&bytes[..bytes.len().min(EVIDENCE_BYTES)]).into_owned();
            let why =
                format!("{}: a line of {len} bytes is longer than max_line_bytes ({})", where_(), o.max_line_bytes);
            self.builder.push_raw(&format!("{raw}…"), &why);
            bytes.clear();
            self.cur = bytes;
            return self.flush_if_full();
        }
        if bytes.last() == Some(&b'\r') {
            bytes.pop();
        }
        if bytes.iter().all(u8::is_ascii_whitespace) {
            bytes.clear();
            self.cur = bytes;
            return Ok(());
        }
        let enc = o.encoding.encoding();
        let text: Option<std::borrow::Cow<str>> = if enc == encoding_rs::UTF_8 {
            std::str::from_utf8(&bytes).ok().map(Into::into)
        } else {
            enc.decode_without_bom_handling_and_without_replacement(&bytes)
        };
        match text {
            None => {
                let raw = String::from_utf8_lossy(&bytes).into_owned();
                self.builder.push_raw(&raw, &format!("{}: not valid {}", where_(), o.encoding.name()));
            }
            Some(line) => match self.row(&line) {
                Ok(()) => {
                    let n = o.columns.len();
                    let file = o.file_column.as_ref().map(|_| Some(self.display));
                    let values = self.values.iter().take(n).map(|v| v.as_deref());
                    self.builder.push_positional(values.chain(file));
                }
                Err(reason) => self.builder.push_raw(&line, &format!("{}: {reason}", where_())),
            },
        }
        bytes.clear();
        self.cur = bytes;
        self.flush_if_full()
    }

    /// Parses `line` into `self.values`.
    fn row(&mut self, line: &str) -> std::result::Result<(), String> {
        let job = self.job;
        let o = &job.options;
        o.parser.parse(line, &mut self.values)?;
        for v in self.values.iter_mut() {
            if v.as_ref().is_some_and(|s| o.null_values.iter().any(|n| n == s)) {
                *v = None;
            }
        }
        for (i, f) in &o.times {
            if let Some(t) = &self.values[*i] {
                let normal = f.normalize(t, self.job.now).map_err(|e| format!("column `{}`: {e}", o.columns[*i]))?;
                self.values[*i] = Some(normal);
            }
        }
        Ok(())
    }
}

fn memchr_nl(b: &[u8]) -> Option<usize> {
    b.iter().position(|&c| c == b'\n')
}
