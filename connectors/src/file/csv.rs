//! Streaming CSV decoding with `csv-core`: every field is delivered as text, and a record with the wrong
//! number of fields (or invalid UTF-8) is delivered as a malformed row (see [`super::RAW_COLUMN`]).

use std::collections::VecDeque;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use csv_core::{ReadRecordResult, Reader, ReaderBuilder};

use segkit::Result;

use super::decode::Decode;
use super::text::TextBatchBuilder;

/// Incremental CSV record parser: feed bytes, get records (fields + raw text).
pub(crate) struct RecordParser {
    core: Reader,
    fields: Vec<u8>,
    ends: Vec<usize>,
    outlen: usize,
    endlen: usize,
    raw: Vec<u8>,
}

/// One parsed record; `fields()` borrows from the parser.
pub(crate) struct RecordView<'a> {
    fields: &'a [u8],
    ends: &'a [usize],
    raw: &'a [u8],
}

impl<'a> RecordView<'a> {
    pub(crate) fn len(&self) -> usize {
        self.ends.len()
    }
    pub(crate) fn field(&self, i: usize) -> &'a [u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.fields[start..self.ends[i]]
    }
    /// The record's text as it appeared in the file, without its line terminator.
    pub(crate) fn raw_text(&self) -> String {
        let mut r = self.raw;
        while let Some((last, rest)) = r.split_last() {
            if *last == b'\n' || *last == b'\r' {
                r = rest;
            } else {
                break;
            }
        }
        String::from_utf8_lossy(r).into_owned()
    }
}

impl RecordParser {
    pub(crate) fn new(delimiter: u8) -> Self {
        RecordParser {
            core: ReaderBuilder::new().delimiter(delimiter).build(),
            fields: vec![0; 4096],
            ends: vec![0; 64],
            outlen: 0,
            endlen: 0,
            raw: Vec::new(),
        }
    }

    /// Parses `input` (an empty slice means end of input), calling `on_record` for each complete record.
    /// Returns `false` once the end of the data has been reached.
    pub(crate) fn feed(
        &mut self,
        mut input: &[u8],
        mut on_record: impl FnMut(RecordView<'_>) -> Result<bool>,
    ) -> Result<bool> {
        let eof = input.is_empty();
        loop {
            let (res, nin, nout, nend) =
                self.core.read_record(input, &mut self.fields[self.outlen..], &mut self.ends[self.endlen..]);
            self.raw.extend_from_slice(&input[..nin]);
            input = &input[nin..];
            self.outlen += nout;
            self.endlen += nend;
            match res {
                ReadRecordResult::InputEmpty => {
                    if input.is_empty() && !eof {
                        return Ok(true);
                    }
                }
                ReadRecordResult::OutputFull => {
                    let n = self.fields.len() * 2;
                    self.fields.resize(n, 0);
                }
                ReadRecordResult::OutputEndsFull => {
                    let n = self.ends.len() * 2;
                    self.ends.resize(n, 0);
                }
                ReadRecordResult::Record => {
                    let view = RecordView {
                        fields: &self.fields[..self.outlen],
                        ends: &self.ends[..self.endlen],
                        raw: &self.raw,
                    };
                    let more = on_record(view)?;
                    self.outlen = 0;
                    self.endlen = 0;
                    self.raw.clear();
                    if !more {
                        return Ok(false);
                    }
                }
                ReadRecordResult::End => return Ok(false),
            }
        }
    }
}

/// Column names from a header record: empty names become `column_<n>`, repeated names get a `_<n>` suffix.
pub(crate) fn header_names(record: &RecordView<'_>, header: bool) -> Vec<String> {
    let mut names: Vec<String> = Vec::with_capacity(record.len());
    for i in 0..record.len() {
        let mut name = if header { String::from_utf8_lossy(record.field(i)).trim().to_string() } else { String::new() };
        if name.is_empty() {
            name = format!("column_{}", i + 1);
        }
        let base = name.clone();
        let mut n = 2;
        while names.contains(&name) {
            name = format!("{base}_{n}");
            n += 1;
        }
        names.push(name);
    }
    names
}

/// Decodes CSV data records into all-text batches of a known schema.
pub(crate) struct CsvDecoder {
    parser: RecordParser,
    skip_header: bool,
    columns: usize,
    builder: TextBatchBuilder,
    batch_size: usize,
}

impl CsvDecoder {
    /// `schema` is the source schema (data columns followed by the raw column); `columns` the data columns.
    pub(crate) fn new(schema: SchemaRef, columns: usize, delimiter: u8, header: bool, batch_size: usize) -> Self {
        CsvDecoder {
            parser: RecordParser::new(delimiter),
            skip_header: header,
            columns,
            builder: TextBatchBuilder::new(schema),
            batch_size,
        }
    }

    fn run(&mut self, input: &[u8], out: &mut VecDeque<RecordBatch>) -> Result<()> {
        let CsvDecoder { parser, skip_header, columns, builder, batch_size, .. } = self;
        parser.feed(input, |rec| {
            if *skip_header {
                *skip_header = false;
                return Ok(true);
            }
            let texts: Option<Vec<&str>> = (rec.len() == *columns)
                .then(|| (0..rec.len()).map(|i| std::str::from_utf8(rec.field(i)).ok()).collect())
                .flatten();
            match texts {
                Some(t) => builder.push_positional(t.into_iter().map(|s| (!s.is_empty()).then_some(s))),
                None => builder.push_raw(&rec.raw_text()),
            }
            if builder.len() >= *batch_size {
                if let Some(b) = builder.finish()? {
                    out.push_back(b);
                }
            }
            Ok(true)
        })?;
        Ok(())
    }
}

impl Decode for CsvDecoder {
    fn feed(&mut self, chunk: &[u8], out: &mut VecDeque<RecordBatch>) -> Result<()> {
        if chunk.is_empty() {
            return Ok(());
        }
        self.run(chunk, out)
    }

    fn finish(&mut self, out: &mut VecDeque<RecordBatch>) -> Result<()> {
        self.run(&[], out)?;
        if let Some(b) = self.builder.finish()? {
            out.push_back(b);
        }
        Ok(())
    }
}
