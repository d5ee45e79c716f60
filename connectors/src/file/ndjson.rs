//! Streaming NDJSON decoding: one JSON object per line, every top-level field delivered as text.

use std::collections::VecDeque;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;

use segkit::Result;

use super::decode::Decode;
use super::text::{KeyUnion, ObjectKeys, OrderedObject, TextBatchBuilder};

/// Splits a byte stream into lines (without `\n` / `\r\n`), carrying partial lines across chunks.
#[derive(Default)]
pub(crate) struct LineSplitter {
    pending: Vec<u8>,
}

impl LineSplitter {
    /// Calls `on_line` for every complete line in `chunk`.
    pub(crate) fn feed(&mut self, chunk: &[u8], mut on_line: impl FnMut(&[u8]) -> Result<()>) -> Result<()> {
        let mut rest = chunk;
        while let Some(pos) = rest.iter().position(|b| *b == b'\n') {
            let (line, tail) = rest.split_at(pos);
            if self.pending.is_empty() {
                on_line(trim_cr(line))?;
            } else {
                self.pending.extend_from_slice(line);
                let line = std::mem::take(&mut self.pending);
                on_line(trim_cr(&line))?;
            }
            rest = &tail[1..];
        }
        self.pending.extend_from_slice(rest);
        Ok(())
    }

    /// Calls `on_line` for a last line without a terminator.
    pub(crate) fn finish(&mut self, mut on_line: impl FnMut(&[u8]) -> Result<()>) -> Result<()> {
        if !self.pending.is_empty() {
            let line = std::mem::take(&mut self.pending);
            on_line(trim_cr(&line))?;
        }
        Ok(())
    }
}

fn trim_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn is_blank(line: &[u8]) -> bool {
    line.iter().all(u8::is_ascii_whitespace)
}

/// Collects the union of top-level keys (first-seen order) over all well-formed lines.
#[derive(Default)]
pub(crate) struct KeyScanner {
    lines: LineSplitter,
    keys: KeyUnion,
}

impl KeyScanner {
    fn on_line(keys: &mut KeyUnion, line: &[u8]) -> Result<()> {
        if is_blank(line) {
            return Ok(());
        }
        if let Ok(ObjectKeys(ks)) = serde_json::from_slice::<ObjectKeys>(line) {
            for k in &ks {
                keys.add(k);
            }
        }
        Ok(())
    }
    /// Consumes a chunk.
    pub(crate) fn feed(&mut self, chunk: &[u8]) -> Result<()> {
        let keys = &mut self.keys;
        self.lines.feed(chunk, |l| Self::on_line(keys, l))
    }
    /// The keys seen, after the end of input.
    pub(crate) fn finish(mut self) -> Result<Vec<String>> {
        let keys = &mut self.keys;
        self.lines.finish(|l| Self::on_line(keys, l))?;
        Ok(self.keys.into_names())
    }
}

/// Decodes NDJSON lines into all-text batches of a known schema. Blank lines are skipped; a line that is not
/// a JSON object is delivered as a malformed row (see [`super::RAW_COLUMN`]).
pub(crate) struct NdjsonDecoder {
    lines: LineSplitter,
    builder: TextBatchBuilder,
    batch_size: usize,
}

impl NdjsonDecoder {
    pub(crate) fn new(schema: SchemaRef, batch_size: usize) -> Self {
        NdjsonDecoder { lines: LineSplitter::default(), builder: TextBatchBuilder::new(schema), batch_size }
    }

    fn on_line(
        builder: &mut TextBatchBuilder,
        batch_size: usize,
        line: &[u8],
        out: &mut VecDeque<RecordBatch>,
    ) -> Result<()> {
        if is_blank(line) {
            return Ok(());
        }
        match serde_json::from_slice::<OrderedObject>(line) {
            Ok(OrderedObject(fields)) => builder.push_object(fields.iter().map(|(k, v)| (k.as_str(), v))),
            Err(_) => builder.push_raw(&String::from_utf8_lossy(line)),
        }
        if builder.len() >= batch_size {
            if let Some(b) = builder.finish()? {
                out.push_back(b);
            }
        }
        Ok(())
    }
}

impl Decode for NdjsonDecoder {
    fn feed(&mut self, chunk: &[u8], out: &mut VecDeque<RecordBatch>) -> Result<()> {
        let NdjsonDecoder { lines, builder, batch_size } = self;
        lines.feed(chunk, |l| Self::on_line(builder, *batch_size, l, out))
    }

    fn finish(&mut self, out: &mut VecDeque<RecordBatch>) -> Result<()> {
        let NdjsonDecoder { lines, builder, batch_size } = self;
        lines.finish(|l| Self::on_line(builder, *batch_size, l, out))?;
        if let Some(b) = builder.finish()? {
            out.push_back(b);
        }
        Ok(())
    }
}
