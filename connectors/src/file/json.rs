//! Streaming JSON decoding: NDJSON (one object per line) and JSON arrays (`[{…}, {…}]`, or an array inside a
//! wrapping object selected by a record path such as `data` or `result.items`). Every top-level field of a
//! record is delivered as text. Neither form is parsed as a whole: an array is split into its elements by a
//! byte scanner that tracks only strings and nesting, and each element is parsed on its own, so memory holds
//! one element (at most [`MAX_RECORD_BYTES`]) and one batch.

use std::collections::VecDeque;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;

use segkit::{Error, Result};

use super::decode::Decode;
use super::text::{KeyUnion, ObjectKeys, OrderedObject, TextBatchBuilder};

/// The largest record (a line or an array element) read; a larger one is delivered as a malformed row
/// (its first bytes as evidence) and skipped.
pub(crate) const MAX_RECORD_BYTES: usize = 16 << 20;

/// How much of an oversized record is kept as evidence.
const EVIDENCE_BYTES: usize = 1024;

/// One record's bytes and where it started.
pub(crate) struct Piece<'a> {
    pub(crate) bytes: &'a [u8],
    /// Line (NDJSON) or element index (arrays), 1-based.
    pub(crate) number: u64,
    /// Byte offset of its first byte in the decoded text.
    pub(crate) offset: u64,
    /// Set when the record was longer than [`MAX_RECORD_BYTES`] (`bytes` is then its first bytes).
    pub(crate) oversized: bool,
}

/// Splits a byte stream into lines (without `\n` / `\r\n`), carrying partial lines across chunks.
#[derive(Default)]
pub(crate) struct LineSplitter {
    pending: Vec<u8>,
    oversized: bool,
    line: u64,
    offset: u64,
    start: u64,
}

impl LineSplitter {
    fn emit(&mut self, line: &[u8], on_line: &mut impl FnMut(Piece<'_>) -> Result<()>) -> Result<()> {
        self.line += 1;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let piece = Piece { bytes: line, number: self.line, offset: self.start, oversized: self.oversized };
        self.oversized = false;
        on_line(piece)
    }

    /// Calls `on_line` for every complete line in `chunk`.
    pub(crate) fn feed(&mut self, chunk: &[u8], mut on_line: impl FnMut(Piece<'_>) -> Result<()>) -> Result<()> {
        let mut rest = chunk;
        while let Some(pos) = rest.iter().position(|b| *b == b'\n') {
            let (line, tail) = rest.split_at(pos);
            if self.pending.is_empty() && !self.oversized {
                self.emit(line, &mut on_line)?;
            } else {
                self.take(line);
                let line = std::mem::take(&mut self.pending);
                self.emit(&line, &mut on_line)?;
            }
            self.offset += pos as u64 + 1;
            self.start = self.offset;
            rest = &tail[1..];
        }
        self.take(rest);
        self.offset += rest.len() as u64;
        Ok(())
    }

    fn take(&mut self, part: &[u8]) {
        let room = MAX_RECORD_BYTES.saturating_sub(self.pending.len());
        if part.len() > room || self.oversized {
            if !self.oversized {
                self.pending.truncate(EVIDENCE_BYTES);
                let keep = EVIDENCE_BYTES.saturating_sub(self.pending.len()).min(part.len());
                self.pending.extend_from_slice(&part[..keep]);
            }
            self.oversized = true;
        } else {
            self.pending.extend_from_slice(part);
        }
    }

    /// Calls `on_line` for a last line without a terminator.
    pub(crate) fn finish(&mut self, mut on_line: impl FnMut(Piece<'_>) -> Result<()>) -> Result<()> {
        if !self.pending.is_empty() {
            let line = std::mem::take(&mut self.pending);
            self.emit(&line, &mut on_line)?;
        }
        Ok(())
    }
}

fn is_blank(line: &[u8]) -> bool {
    line.iter().all(u8::is_ascii_whitespace)
}

#[derive(Debug, Clone, PartialEq)]
enum Frame {
    Object { key: Option<Vec<u8>>, expect_key: bool },
    Array,
}

/// Splits the elements out of the JSON array at a record path (empty: the document itself), fed bytes in
/// order. Only strings and nesting are tracked; each element's own syntax is checked by its parser.
pub(crate) struct ArraySplitter {
    path: Vec<Vec<u8>>,
    stack: Vec<Frame>,
    in_string: bool,
    escape: bool,
    /// Collecting an object key (outside the target array).
    key: Option<Vec<u8>>,
    /// Depth of the target array's frame while inside it.
    target: Option<usize>,
    elem: Vec<u8>,
    in_elem: bool,
    oversized: bool,
    elem_start: u64,
    offset: u64,
    index: u64,
    found: bool,
    /// The first non-whitespace byte of the document, to explain a document that is not what was expected.
    first: Option<u8>,
}

impl ArraySplitter {
    pub(crate) fn new(path: &[String]) -> Self {
        ArraySplitter {
            path: path.iter().map(|p| p.as_bytes().to_vec()).collect(),
            stack: vec![],
            in_string: false,
            escape: false,
            key: None,
            target: None,
            elem: vec![],
            in_elem: false,
            oversized: false,
            elem_start: 0,
            offset: 0,
            index: 0,
            found: false,
            first: None,
        }
    }

    fn at_path(&self) -> bool {
        self.stack.len() == self.path.len()
            && self.stack.iter().zip(&self.path).all(|(f, p)| matches!(f, Frame::Object { key: Some(k), .. } if k == p))
    }

    fn push_elem_byte(&mut self, b: u8) {
        if self.oversized {
            return;
        }
        if self.elem.len() >= MAX_RECORD_BYTES {
            self.elem.truncate(EVIDENCE_BYTES);
            self.oversized = true;
            return;
        }
        self.elem.push(b);
    }

    fn end_elem(&mut self, on_elem: &mut impl FnMut(Piece<'_>) -> Result<()>) -> Result<()> {
        if self.in_elem {
            self.index += 1;
            let elem = std::mem::take(&mut self.elem);
            let piece = Piece { bytes: &elem, number: self.index, offset: self.elem_start, oversized: self.oversized };
            on_elem(piece)?;
            self.elem = elem;
            self.elem.clear();
            self.in_elem = false;
            self.oversized = false;
        }
        Ok(())
    }

    /// Feeds bytes, calling `on_elem` for each complete element of the target array.
    pub(crate) fn feed(&mut self, chunk: &[u8], mut on_elem: impl FnMut(Piece<'_>) -> Result<()>) -> Result<()> {
        for &b in chunk {
            self.step(b, &mut on_elem)?;
            self.offset += 1;
        }
        Ok(())
    }

    fn step(&mut self, b: u8, on_elem: &mut impl FnMut(Piece<'_>) -> Result<()>) -> Result<()> {
        if self.first.is_none() && !b.is_ascii_whitespace() {
            self.first = Some(b);
        }
        let inside = self.target.is_some_and(|d| self.stack.len() > d);
        // Inside an element: copy bytes, watch strings and nesting for its end.
        if self.in_elem {
            if self.in_string {
                self.push_elem_byte(b);
                if self.escape {
                    self.escape = false;
                } else if b == b'\\' {
                    self.escape = true;
                } else if b == b'"' {
                    self.in_string = false;
                }
                return Ok(());
            }
            let depth = self.target.expect("elements are inside the target");
            match b {
                b'"' => {
                    self.in_string = true;
                    self.push_elem_byte(b);
                }
                b'{' | b'[' => {
                    self.stack.push(Frame::Array);
                    self.push_elem_byte(b);
                }
                b'}' | b']' if self.stack.len() > depth + 1 => {
                    self.stack.pop();
                    self.push_elem_byte(b);
                }
                b',' if self.stack.len() == depth + 1 => self.end_elem(on_elem)?,
                b']' | b'}' => {
                    // The end of the target array.
                    self.end_elem(on_elem)?;
                    self.stack.truncate(depth);
                    self.target = None;
                }
                _ => self.push_elem_byte(b),
            }
            return Ok(());
        }
        if inside {
            // Between elements of the target array.
            match b {
                b',' => {}
                b']' | b'}' => {
                    let depth = self.target.take().expect("inside");
                    self.stack.truncate(depth);
                }
                c if c.is_ascii_whitespace() => {}
                c => {
                    self.in_elem = true;
                    self.elem_start = self.offset;
                    self.elem.clear();
                    if c == b'"' {
                        self.in_string = true;
                    } else if c == b'{' || c == b'[' {
                        self.stack.push(Frame::Array);
                    }
                    self.push_elem_byte(c);
                }
            }
            return Ok(());
        }
        // Outside the target: track structure and keys to find it.
        if self.in_string {
            if self.escape {
                self.escape = false;
                if let Some(k) = &mut self.key {
                    k.push(b);
                }
            } else if b == b'\\' {
                self.escape = true;
                if let Some(k) = &mut self.key {
                    k.push(b);
                }
            } else if b == b'"' {
                self.in_string = false;
                if let Some(k) = self.key.take() {
                    let k =
                        serde_json::from_slice::<String>(&[b"\"".as_slice(), k.as_slice(), b"\"".as_slice()].concat())
                            .map(String::into_bytes)
                            .unwrap_or(k);
                    if let Some(Frame::Object { key, expect_key }) = self.stack.last_mut() {
                        *key = Some(k);
                        *expect_key = false;
                    }
                }
            } else if let Some(k) = &mut self.key {
                if k.len() < 4096 {
                    k.push(b);
                }
            }
            return Ok(());
        }
        match b {
            b'"' => {
                self.in_string = true;
                if matches!(self.stack.last(), Some(Frame::Object { expect_key: true, .. })) {
                    self.key = Some(vec![]);
                }
            }
            b'{' => self.stack.push(Frame::Object { key: None, expect_key: true }),
            b'[' => {
                if self.at_path() {
                    self.found = true;
                    self.target = Some(self.stack.len());
                }
                self.stack.push(Frame::Array);
            }
            b'}' | b']' => {
                self.stack.pop();
            }
            b',' => {
                if let Some(Frame::Object { key, expect_key }) = self.stack.last_mut() {
                    *key = None;
                    *expect_key = true;
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Ends the input. A cut-off element is handed over as oversized-free bytes with `truncated` set; returns
    /// whether the target array was found, closed, and the truncated element (if any).
    pub(crate) fn finish(&mut self) -> Finish {
        let truncated = (self.in_elem || self.target.is_some()).then(|| {
            let number = self.index + 1;
            (String::from_utf8_lossy(&self.elem).into_owned(), number, self.elem_start)
        });
        Finish { found: self.found, truncated, first: self.first }
    }
}

/// What [`ArraySplitter::finish`] found.
pub(crate) struct Finish {
    pub(crate) found: bool,
    /// The input ended inside the array: (partial element text, element number, offset).
    pub(crate) truncated: Option<(String, u64, u64)>,
    pub(crate) first: Option<u8>,
}

/// The JSON layout of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Layout {
    /// One object per line.
    Lines,
    /// The elements of the array at this record path (empty: the document is the array).
    Array(Vec<String>),
}

/// Either splitter.
enum Splitter {
    Lines(LineSplitter),
    Array(ArraySplitter),
}

impl Splitter {
    fn new(layout: &Layout) -> Self {
        match layout {
            Layout::Lines => Splitter::Lines(LineSplitter::default()),
            Layout::Array(p) => Splitter::Array(ArraySplitter::new(p)),
        }
    }
}

fn array_problem(file: &str, layout: &Layout, f: &Finish) -> Option<String> {
    let Layout::Array(path) = layout else { return None };
    if f.found {
        return None;
    }
    Some(if path.is_empty() {
        match f.first {
            None => return None,
            Some(c) => format!(
                "{file} is not a JSON array (it starts with {:?}); for one object per line use type `ndjson`, for an \
                 array inside an object give `record_path`",
                c as char
            ),
        }
    } else {
        format!("{file} has no array at record path `{}`", path.join("."))
    })
}

/// Collects the union of top-level keys (first-seen order) over all well-formed records.
pub(crate) struct KeyScanner {
    splitter: Splitter,
    layout: Layout,
    keys: KeyUnion,
    file: String,
}

impl KeyScanner {
    pub(crate) fn new(layout: &Layout, file: &str) -> Self {
        KeyScanner {
            splitter: Splitter::new(layout),
            layout: layout.clone(),
            keys: KeyUnion::default(),
            file: file.to_string(),
        }
    }

    fn on_piece(keys: &mut KeyUnion, p: Piece<'_>) -> Result<()> {
        if p.oversized || is_blank(p.bytes) {
            return Ok(());
        }
        if let Ok(ObjectKeys(ks)) = serde_json::from_slice::<ObjectKeys>(p.bytes) {
            for k in &ks {
                keys.add(k);
            }
        }
        Ok(())
    }

    /// Consumes decoded text.
    pub(crate) fn feed(&mut self, chunk: &[u8]) -> Result<()> {
        let keys = &mut self.keys;
        match &mut self.splitter {
            Splitter::Lines(l) => l.feed(chunk, |p| Self::on_piece(keys, p)),
            Splitter::Array(a) => a.feed(chunk, |p| Self::on_piece(keys, p)),
        }
    }

    /// The keys seen, after the end of input; an error if the array was not there at all.
    pub(crate) fn finish(mut self) -> Result<Vec<String>> {
        let keys = &mut self.keys;
        match &mut self.splitter {
            Splitter::Lines(l) => l.finish(|p| Self::on_piece(keys, p))?,
            Splitter::Array(a) => {
                let f = a.finish();
                if let Some(message) = array_problem(&self.file, &self.layout, &f) {
                    return Err(Error::Source { source_name: format!("json:{}", self.file), message, cause: None });
                }
            }
        }
        Ok(self.keys.into_names())
    }
}

/// Decodes JSON records into all-text batches of a known schema. Blank lines are skipped; a record that is not
/// a JSON object is delivered as a malformed row (see [`super::RAW_COLUMN`]).
pub(crate) struct JsonDecoder {
    splitter: Splitter,
    layout: Layout,
    builder: TextBatchBuilder,
    batch_size: usize,
    file: String,
}

impl JsonDecoder {
    pub(crate) fn new(schema: SchemaRef, layout: &Layout, batch_size: usize, file: String) -> Self {
        JsonDecoder {
            splitter: Splitter::new(layout),
            layout: layout.clone(),
            builder: TextBatchBuilder::new(schema),
            batch_size,
            file,
        }
    }

    /// Continues an NDJSON file from the middle: `lines` lines precede byte `offset`, where reading starts.
    pub(crate) fn resume_at(&mut self, lines: u64, offset: u64) {
        if let Splitter::Lines(l) = &mut self.splitter {
            l.line = lines;
            l.offset = offset;
            l.start = offset;
        }
    }

    fn on_piece(
        builder: &mut TextBatchBuilder,
        batch_size: usize,
        file: &str,
        lines: bool,
        p: Piece<'_>,
        out: &mut VecDeque<RecordBatch>,
    ) -> Result<()> {
        if is_blank(p.bytes) && !p.oversized {
            return Ok(());
        }
        let at = if lines {
            format!("{file} line {}, byte {}", p.number, p.offset)
        } else {
            format!("{file} element {}, byte {}", p.number, p.offset)
        };
        if p.oversized {
            builder.push_raw(
                &String::from_utf8_lossy(p.bytes),
                &format!("{at}: record longer than {} MiB (skipped; its first bytes are kept)", MAX_RECORD_BYTES >> 20),
            );
        } else {
            match serde_json::from_slice::<OrderedObject>(p.bytes) {
                Ok(OrderedObject(fields)) => builder.push_object(fields.iter().map(|(k, v)| (k.as_str(), v))),
                Err(e) => {
                    let why = match std::str::from_utf8(p.bytes) {
                        Err(_) => "not valid text in the file's encoding".to_string(),
                        Ok(_) if e.is_data() => "not a JSON object".to_string(),
                        Ok(_) => format!("not valid JSON ({e})"),
                    };
                    builder.push_raw(&String::from_utf8_lossy(p.bytes), &format!("{at}: {why}"))
                }
            }
        }
        if builder.len() >= batch_size {
            if let Some(b) = builder.finish()? {
                out.push_back(b);
            }
        }
        Ok(())
    }
}

impl Decode for JsonDecoder {
    fn feed(&mut self, chunk: &[u8], out: &mut VecDeque<RecordBatch>) -> Result<()> {
        let JsonDecoder { splitter, builder, batch_size, file, .. } = self;
        match splitter {
            Splitter::Lines(l) => l.feed(chunk, |p| Self::on_piece(builder, *batch_size, file, true, p, out)),
            Splitter::Array(a) => a.feed(chunk, |p| Self::on_piece(builder, *batch_size, file, false, p, out)),
        }
    }

    fn finish(&mut self, out: &mut VecDeque<RecordBatch>) -> Result<()> {
        let JsonDecoder { splitter, builder, batch_size, file, layout } = self;
        match splitter {
            Splitter::Lines(l) => l.finish(|p| Self::on_piece(builder, *batch_size, file, true, p, out))?,
            Splitter::Array(a) => {
                let f = a.finish();
                if let Some(message) = array_problem(file, layout, &f) {
                    return Err(Error::Source { source_name: format!("json:{file}"), message, cause: None });
                }
                if let Some((raw, n, offset)) = f.truncated {
                    builder.push_raw(
                        &raw,
                        &format!("{file} element {n}, byte {offset}: the file ends inside the array (truncated)"),
                    );
                }
            }
        }
        if let Some(b) = builder.finish()? {
            out.push_back(b);
        }
        Ok(())
    }

    fn corrupt(&mut self, reason: &str, out: &mut VecDeque<RecordBatch>) -> Result<()> {
        let (raw, what) = match &mut self.splitter {
            Splitter::Lines(l) => {
                let pending = String::from_utf8_lossy(&l.pending).into_owned();
                (pending, format!("line {}, byte {}", l.line + 1, l.start))
            }
            Splitter::Array(a) => {
                let f = a.finish();
                match f.truncated {
                    Some((raw, n, offset)) => (raw, format!("element {n}, byte {offset}")),
                    None => (String::new(), format!("byte {}", a.offset)),
                }
            }
        };
        self.builder.push_raw(&raw, &format!("{} {what}: {reason}; the rest of the file is unread", self.file));
        if let Some(b) = self.builder.finish()? {
            out.push_back(b);
        }
        Ok(())
    }
}
