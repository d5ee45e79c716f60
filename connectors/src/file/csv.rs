//! Streaming CSV decoding with `csv-core`: every field is delivered as text; null markers become null; a
//! record with the wrong number of fields, invalid UTF-8 or undecodable bytes is delivered as a malformed row
//! (see [`super::RAW_COLUMN`]) with its line and byte offset.

use std::collections::VecDeque;

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringBuilder};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use csv_core::{ReadRecordResult, Reader, ReaderBuilder};

use segkit::ingest::{ColumnReader, TypedField};
use segkit::Result;

use super::decode::Decode;
use super::prelude::UNDECODABLE;
use super::text::TextBatchBuilder;

/// The null markers used when a CSV config gives none: the empty field, `\N` (MySQL / PostgreSQL dumps),
/// `NULL`, `null`, `NA` and `N/A` (R, pandas) and `#N/A` (spreadsheets). Matched against the whole field
/// exactly (case-sensitive, quoted or not).
pub const DEFAULT_NULL_VALUES: [&str; 7] = ["", "\\N", "NULL", "null", "NA", "N/A", "#N/A"];

/// How a delimited text file is written.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CsvOptions {
    /// Field delimiter (default `,`; tab for `.tsv`).
    pub delimiter: u8,
    /// Quote character (default `"`); a doubled quote inside quotes is a literal quote.
    pub quote: u8,
    /// Escape character inside quotes (default none: quotes are escaped by doubling).
    pub escape: Option<u8>,
    /// Lines starting with this byte are skipped (default none).
    pub comment: Option<u8>,
    /// Whether the first record is a header (default true).
    pub header: bool,
    /// Column names; without them the header names the columns, or, with no header, `column_1`, `column_2`, ….
    /// With a header too, the header record is skipped and these names are used.
    pub columns: Option<Vec<String>>,
    /// Field texts that mean null (default [`DEFAULT_NULL_VALUES`]).
    pub null_values: Vec<String>,
}

impl Default for CsvOptions {
    fn default() -> Self {
        CsvOptions {
            delimiter: b',',
            quote: b'"',
            escape: None,
            comment: None,
            header: true,
            columns: None,
            null_values: DEFAULT_NULL_VALUES.iter().map(|s| s.to_string()).collect(),
        }
    }
}

impl CsvOptions {
    /// Tab-separated.
    pub fn tsv() -> Self {
        CsvOptions { delimiter: b'\t', ..Self::default() }
    }
}

/// Incremental CSV record parser: feed bytes, get records (fields, raw text and position).
pub(crate) struct RecordParser {
    core: Reader,
    /// The dialect (to make a fresh `core`: csv-core's `Reader::clone` does not copy its whole state machine).
    options: CsvOptions,
    /// Whether any input was fed.
    fed: bool,
    comment: Option<u8>,
    fields: Vec<u8>,
    ends: Vec<usize>,
    outlen: usize,
    endlen: usize,
    raw: Vec<u8>,
    /// Bytes consumed before `raw` starts.
    offset: u64,
    /// Line (1-based) at which `raw` starts.
    line: u64,
    /// csv-core's line count (its count of `\n` bytes read, from 1) where `raw` starts. Its terminator is CRLF,
    /// so `\n` is one of the bytes its state machine looks at and it counts every one (in quotes, comments and
    /// blank lines too): the difference at a record's end is the count of line ends in the record's text.
    core_line: u64,
}

/// One parsed record; `fields()` borrows from the parser.
pub(crate) struct RecordView<'a> {
    fields: &'a [u8],
    ends: &'a [usize],
    raw: &'a [u8],
    /// Byte offset of the record's first byte in the decoded text.
    pub(crate) offset: u64,
    /// Line number (1-based) of the record's first line.
    pub(crate) line: u64,
}

impl<'a> RecordView<'a> {
    pub(crate) fn len(&self) -> usize {
        self.ends.len()
    }
    pub(crate) fn field(&self, i: usize) -> &'a [u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.fields[start..self.ends[i]]
    }
    /// The record's text as it appeared in the file, without its line terminator (undecodable bytes shown as
    /// U+FFFD).
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
    pub(crate) fn new(o: &CsvOptions) -> Self {
        let mut b = ReaderBuilder::new();
        b.delimiter(o.delimiter).quote(o.quote).escape(o.escape).comment(o.comment);
        if o.escape.is_some() {
            b.double_quote(false);
        }
        RecordParser {
            core: b.build(),
            options: o.clone(),
            fed: false,
            comment: o.comment,
            fields: vec![0; 4096],
            ends: vec![0; 64],
            outlen: 0,
            endlen: 0,
            raw: Vec::new(),
            offset: 0,
            line: 1,
            core_line: 1,
        }
    }

    /// How many bytes at the front of `raw` are blank and comment lines csv-core skipped, and how many line
    /// ends they hold.
    fn skip_leading(raw: &[u8], comment: Option<u8>) -> (usize, u64) {
        let mut start = 0;
        let mut lines = 0;
        loop {
            let rest = &raw[start..];
            match rest.first() {
                Some(b'\n') => {
                    start += 1;
                    lines += 1;
                }
                Some(b'\r') => start += 1,
                Some(c) if Some(*c) == comment => match rest.iter().position(|b| *b == b'\n') {
                    Some(p) => {
                        start += p + 1;
                        lines += 1;
                    }
                    None => break,
                },
                _ => break,
            }
        }
        (start, lines)
    }

    /// Parses `input` (an empty slice means end of input), calling `on_record` for each complete record.
    /// Returns `false` once the end of the data has been reached or `on_record` asked to stop.
    ///
    /// A record that lies wholly in `input` is seen in place; only the text of a record left unfinished at the
    /// end of `input` is copied (to `raw`), to be completed by the next call.
    pub(crate) fn feed(
        &mut self,
        input: &[u8],
        mut on_record: impl FnMut(RecordView<'_>) -> Result<bool>,
    ) -> Result<bool> {
        let eof = input.is_empty();
        self.fed = true;
        // `input[start..at]` is the current record's text read from this input so far.
        let (mut start, mut at) = (0, 0);
        loop {
            let (res, nin, nout, nend) =
                self.core.read_record(&input[at..], &mut self.fields[self.outlen..], &mut self.ends[self.endlen..]);
            at += nin;
            self.outlen += nout;
            self.endlen += nend;
            match res {
                ReadRecordResult::InputEmpty => {
                    if at == input.len() && !eof {
                        self.raw.extend_from_slice(&input[start..]);
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
                    let raw: &[u8] = if self.raw.is_empty() {
                        &input[start..at]
                    } else {
                        self.raw.extend_from_slice(&input[start..at]);
                        &self.raw
                    };
                    start = at;
                    let (skip, skipped_lines) = Self::skip_leading(raw, self.comment);
                    self.line += skipped_lines;
                    let view = RecordView {
                        fields: &self.fields[..self.outlen],
                        ends: &self.ends[..self.endlen],
                        raw: &raw[skip..],
                        offset: self.offset + skip as u64,
                        line: self.line,
                    };
                    let more = on_record(view)?;
                    // The record's line ends after the skipped lines (counted by csv-core as it read them).
                    let lines = self.core.line().saturating_sub(self.core_line);
                    self.core_line = self.core.line();
                    self.line += lines.saturating_sub(skipped_lines);
                    self.offset += raw.len() as u64;
                    self.outlen = 0;
                    self.endlen = 0;
                    self.raw.clear();
                    if !more {
                        return Ok(false);
                    }
                }
                ReadRecordResult::End => {
                    self.raw.extend_from_slice(&input[start..at]);
                    return Ok(false);
                }
            }
        }
    }

    /// A parser in the same state, for one that has not been fed yet (`None` after that).
    pub(crate) fn unfed_copy(&self) -> Option<RecordParser> {
        if self.fed {
            return None;
        }
        let mut p = RecordParser::new(&self.options);
        p.offset = self.offset;
        p.line = self.line;
        Some(p)
    }

    /// Whether everything fed so far ended with a complete record (at most blank line ends since), so a
    /// fresh parser given the following text reads the same records as this one would.
    pub(crate) fn at_boundary(&self) -> bool {
        self.raw.iter().all(|b| *b == b'\n' || *b == b'\r')
    }

    /// The text of a record cut off by the end of the input, if any.
    pub(crate) fn partial(&mut self) -> Option<(String, u64, u64)> {
        let (skip, lines) = Self::skip_leading(&self.raw, self.comment);
        self.line += lines;
        self.raw.drain(..skip);
        self.offset += skip as u64;
        let raw = &self.raw;
        (!raw.is_empty()).then(|| (String::from_utf8_lossy(raw).into_owned(), self.line, self.offset))
    }
}

/// Column names from a header record: empty names become `column_<n>`, repeated names get a `_<n>` suffix.
/// Invalid UTF-8 in a header is replaced (U+FFFD).
pub(crate) fn header_names(record: &RecordView<'_>, header: bool) -> Vec<String> {
    let names: Vec<String> = (0..record.len())
        .map(|i| {
            if header {
                let f: Vec<u8> = record.field(i).iter().copied().filter(|b| *b != UNDECODABLE).collect();
                String::from_utf8_lossy(&f).trim().to_string()
            } else {
                String::new()
            }
        })
        .collect();
    dedupe_names(names)
}

/// Empty names become `column_<n>`; repeated names get a `_<n>` suffix.
pub(crate) fn dedupe_names(raw: Vec<String>) -> Vec<String> {
    let mut names: Vec<String> = Vec::with_capacity(raw.len());
    for (i, mut name) in raw.into_iter().enumerate() {
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

/// The null markers of a CSV config, checked against every field without a byte comparison call: a field whose
/// length no marker has (most fields: ids, times, names) is rejected by one bit test, and a field of up to 8
/// bytes is compared as one integer against the markers of its length.
#[derive(Clone)]
struct NullMarkers {
    /// Bit `n` is set when some marker is `n` bytes long (markers of 64 bytes or more set no bit).
    lengths: u64,
    /// Markers of up to 8 bytes: (length, bytes packed little-endian, zero-padded).
    short: Vec<(usize, u64)>,
    /// Longer markers.
    long: Vec<Vec<u8>>,
}

/// Up to 8 bytes packed little-endian into an integer, zero-padded.
#[inline]
fn pack(bytes: &[u8]) -> u64 {
    let mut word = [0u8; 8];
    word[..bytes.len()].copy_from_slice(bytes);
    u64::from_le_bytes(word)
}

impl NullMarkers {
    fn new(values: &[String]) -> Self {
        let mut m = NullMarkers { lengths: 0, short: vec![], long: vec![] };
        for v in values {
            let b = v.as_bytes();
            if b.len() < 64 {
                m.lengths |= 1 << b.len();
            }
            if b.len() <= 8 {
                m.short.push((b.len(), pack(b)));
            } else {
                m.long.push(b.to_vec());
            }
        }
        m
    }

    /// Whether `field` is one of the markers (exactly).
    #[inline]
    fn matches(&self, field: &[u8]) -> bool {
        let n = field.len();
        if n < 64 && self.lengths & (1 << n) == 0 {
            return false;
        }
        if n <= 8 {
            let word = pack(field);
            self.short.iter().any(|&(len, m)| len == n && m == word)
        } else {
            self.long.iter().any(|m| m.as_slice() == field)
        }
    }
}

/// Rows with the fields an ingest asked for read typed ([`ColumnReader`]), the others as text.
struct TypedBatchBuilder {
    schema: SchemaRef,
    /// The data columns.
    columns: Vec<TypedColumn>,
    raw: MostlyNullText,
    error: MostlyNullText,
    rows: usize,
}

/// A text column that is null in most rows (the raw record and error of malformed rows): nothing is built per
/// row until it gets a value, and a batch without one is a null array made in one step.
#[derive(Default)]
struct MostlyNullText {
    /// The values so far, once one arrived (the rows before it appended as nulls).
    values: Option<StringBuilder>,
    rows: usize,
}

impl MostlyNullText {
    #[inline]
    fn append_null(&mut self) {
        if let Some(b) = &mut self.values {
            b.append_null();
        }
        self.rows += 1;
    }

    fn append_value(&mut self, v: &str) {
        let rows = self.rows;
        let b = self.values.get_or_insert_with(|| {
            let mut b = StringBuilder::new();
            b.append_nulls(rows);
            b
        });
        b.append_value(v);
        self.rows += 1;
    }

    fn finish(&mut self) -> ArrayRef {
        let rows = std::mem::take(&mut self.rows);
        match self.values.take() {
            Some(mut b) => Arc::new(b.finish()),
            None => arrow::array::new_null_array(&DataType::Utf8, rows),
        }
    }
}

enum TypedColumn {
    /// A field kept as text, and the text bytes of its last batch.
    Text(StringBuilder, usize),
    Read(ColumnReader),
}

impl TypedBatchBuilder {
    /// A builder over the text `schema` (data columns, then the raw and error columns) reading the data columns
    /// named in `fields` typed; `None` when none of them is a data column.
    fn new(schema: &SchemaRef, columns: usize, fields: &[TypedField]) -> Option<Self> {
        let mut typed = false;
        let mut cols = Vec::with_capacity(columns);
        let mut out_fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
        for (i, f) in schema.fields().iter().take(columns).enumerate() {
            match fields.iter().find(|t| t.name == *f.name()).and_then(ColumnReader::new) {
                Some(reader) => {
                    out_fields[i] = Field::new(f.name(), reader.data_type(), true);
                    cols.push(TypedColumn::Read(reader));
                    typed = true;
                }
                None => cols.push(TypedColumn::Text(StringBuilder::new(), 0)),
            }
        }
        typed.then(|| TypedBatchBuilder {
            schema: Arc::new(Schema::new(out_fields)),
            columns: cols,
            raw: MostlyNullText::default(),
            error: MostlyNullText::default(),
            rows: 0,
        })
    }

    /// Appends a row of data values; `false` (leaving the batch unusable) when a reader refused one.
    #[inline]
    fn push<'a>(&mut self, values: impl IntoIterator<Item = Option<&'a str>>) -> bool {
        for (c, v) in self.columns.iter_mut().zip(values) {
            match c {
                TypedColumn::Text(b, _) => b.append_option(v),
                TypedColumn::Read(r) => {
                    if !r.push(v) {
                        return false;
                    }
                }
            }
        }
        self.raw.append_null();
        self.error.append_null();
        self.rows += 1;
        true
    }

    /// Appends a malformed record (see [`TextBatchBuilder::push_raw`]).
    fn push_raw(&mut self, raw: &str, reason: &str) {
        for c in &mut self.columns {
            match c {
                TypedColumn::Text(b, _) => b.append_null(),
                TypedColumn::Read(r) => r.push_null(),
            }
        }
        self.raw.append_value(raw);
        self.error.append_value(reason);
        self.rows += 1;
    }

    fn finish(&mut self) -> Result<Option<RecordBatch>> {
        if self.rows == 0 {
            return Ok(None);
        }
        let rows = std::mem::take(&mut self.rows);
        let mut cols: Vec<ArrayRef> = Vec::with_capacity(self.columns.len() + 2);
        for c in &mut self.columns {
            cols.push(match c {
                TypedColumn::Text(b, bytes) => {
                    let a = b.finish();
                    *bytes = a.values().len();
                    *b = StringBuilder::with_capacity(rows, *bytes + *bytes / 8);
                    Arc::new(a)
                }
                TypedColumn::Read(r) => r.finish(),
            });
        }
        cols.push(self.raw.finish());
        cols.push(self.error.finish());
        Ok(Some(RecordBatch::try_new(self.schema.clone(), cols)?))
    }
}

/// Where a decoder's rows go: all-text batches, or batches with typed fields.
enum Rows {
    Text(TextBatchBuilder),
    Typed(Box<TypedBatchBuilder>),
}

impl Rows {
    fn len(&self) -> usize {
        match self {
            Rows::Text(b) => b.len(),
            Rows::Typed(b) => b.rows,
        }
    }

    /// Appends a row of data values; `false` when a typed reader refused one (see [`CsvDecoder::typed_failed`]).
    #[inline]
    fn push<'a>(&mut self, values: impl IntoIterator<Item = Option<&'a str>>) -> bool {
        match self {
            Rows::Text(b) => {
                b.push_positional(values);
                true
            }
            Rows::Typed(b) => b.push(values),
        }
    }

    fn push_raw(&mut self, raw: &str, reason: &str) {
        match self {
            Rows::Text(b) => b.push_raw(raw, reason),
            Rows::Typed(b) => b.push_raw(raw, reason),
        }
    }

    fn finish(&mut self) -> Result<Option<RecordBatch>> {
        match self {
            Rows::Text(b) => b.finish(),
            Rows::Typed(b) => b.finish(),
        }
    }
}

/// Decodes CSV data records into all-text batches of a known schema, or (see [`CsvDecoder::typed`]) batches with
/// the fields an ingest asked for read typed.
pub(crate) struct CsvDecoder {
    parser: RecordParser,
    skip_header: bool,
    columns: usize,
    nulls: NullMarkers,
    /// The all-text schema.
    schema: SchemaRef,
    builder: Rows,
    /// A typed reader refused a value: the rows decoded are unusable (see [`Self::typed_failed`]).
    failed: bool,
    batch_size: usize,
    /// For messages: the file's name and its encoding.
    file: String,
    encoding: &'static str,
}

impl CsvDecoder {
    /// `schema` is the source schema (data columns followed by the raw and error columns); `columns` the
    /// number of data columns.
    pub(crate) fn new(
        schema: SchemaRef,
        columns: usize,
        o: &CsvOptions,
        batch_size: usize,
        file: String,
        encoding: &'static str,
    ) -> Self {
        CsvDecoder {
            parser: RecordParser::new(o),
            skip_header: o.header,
            columns,
            nulls: NullMarkers::new(&o.null_values),
            builder: Rows::Text(TextBatchBuilder::new(schema.clone())),
            schema,
            failed: false,
            batch_size,
            file,
            encoding,
        }
    }

    /// Reads the data columns named in `fields` typed, with the ingest's rules (see
    /// [`segkit::ingest::ColumnReader`]). A value a reader refuses stops the decoding ([`Self::typed_failed`]):
    /// the caller then decodes the same text again as text, with the decoder [`Self::text_twin`] gave before.
    pub(crate) fn typed(mut self, fields: &[TypedField]) -> Self {
        if let Some(b) = TypedBatchBuilder::new(&self.schema, self.columns, fields) {
            self.builder = Rows::Typed(Box::new(b));
        }
        self
    }

    /// Whether a typed reader refused a value (the decoder stopped; its rows must not be used).
    pub(crate) fn typed_failed(&self) -> bool {
        self.failed
    }

    /// For a decoder reading typed fields that has not been fed yet: an all-text decoder in the same state, to
    /// decode the same text again should a typed reader refuse a value.
    pub(crate) fn text_twin(&self) -> Option<CsvDecoder> {
        if !matches!(self.builder, Rows::Typed(_)) || self.builder.len() > 0 {
            return None;
        }
        Some(CsvDecoder {
            parser: self.parser.unfed_copy()?,
            skip_header: self.skip_header,
            columns: self.columns,
            nulls: self.nulls.clone(),
            schema: self.schema.clone(),
            builder: Rows::Text(TextBatchBuilder::new(self.schema.clone())),
            failed: false,
            batch_size: self.batch_size,
            file: self.file.clone(),
            encoding: self.encoding,
        })
    }

    /// Reads every field as text from now on (a decoder that holds no typed rows).
    pub(crate) fn read_as_text(&mut self) {
        if matches!(self.builder, Rows::Typed(_)) && self.builder.len() == 0 {
            self.builder = Rows::Text(TextBatchBuilder::new(self.schema.clone()));
        }
    }

    /// Continues a file from the middle (after a complete record): no header record is expected, and the first
    /// record read is at `line` (1-based) and byte `offset`.
    pub(crate) fn resume_at(&mut self, line: u64, offset: u64) {
        self.skip_header = false;
        self.parser.line = line;
        self.parser.offset = offset;
    }

    /// Whether the text fed so far ended with a complete record (see [`RecordParser::at_boundary`]).
    pub(crate) fn at_boundary(&self) -> bool {
        self.parser.at_boundary()
    }

    /// Pushes the rows buffered so far as a batch (if any).
    pub(crate) fn flush(&mut self, out: &mut VecDeque<RecordBatch>) -> Result<()> {
        if self.failed {
            return Ok(());
        }
        if let Some(b) = self.builder.finish()? {
            out.push_back(b);
        }
        Ok(())
    }

    fn run(&mut self, input: &[u8], out: &mut VecDeque<RecordBatch>) -> Result<()> {
        if self.failed {
            return Ok(());
        }
        let CsvDecoder { parser, skip_header, columns, nulls, builder, failed, batch_size, file, encoding, .. } = self;
        parser.feed(input, |rec| {
            if *skip_header {
                *skip_header = false;
                return Ok(true);
            }
            // The usual case first: the record's text is valid UTF-8 (checked once, not per field) and every
            // field boundary falls between characters, so each field is a slice of it.
            if rec.len() == *columns {
                if let Ok(text) = std::str::from_utf8(rec.fields) {
                    if rec.ends.iter().all(|&e| text.is_char_boundary(e)) {
                        let mut start = 0;
                        let taken = builder.push(rec.ends.iter().map(|&end| {
                            let f = &text[start..end];
                            start = end;
                            (!nulls.matches(f.as_bytes())).then_some(f)
                        }));
                        if !taken {
                            *failed = true;
                            return Ok(false);
                        }
                        if builder.len() >= *batch_size {
                            if let Some(b) = builder.finish()? {
                                out.push_back(b);
                            }
                        }
                        return Ok(true);
                    }
                }
            }
            let at = || format!("{file} line {}, byte {}", rec.line, rec.offset);
            let problem = if rec.len() != *columns {
                Some(format!("{}: {} fields, expected {}", at(), rec.len(), columns))
            } else if let Some(i) = (0..rec.len()).find(|&i| std::str::from_utf8(rec.field(i)).is_err()) {
                let field = rec.field(i);
                Some(if field.contains(&UNDECODABLE) && *encoding != "UTF-8" {
                    format!("{}: field {} has bytes that are not valid {encoding}", at(), i + 1)
                } else {
                    format!("{}: field {} is not valid UTF-8", at(), i + 1)
                })
            } else {
                None
            };
            match problem {
                None => {
                    let taken = builder.push((0..rec.len()).map(|i| {
                        let f = rec.field(i);
                        if nulls.matches(f) {
                            None
                        } else {
                            std::str::from_utf8(f).ok()
                        }
                    }));
                    if !taken {
                        *failed = true;
                        return Ok(false);
                    }
                }
                Some(why) => builder.push_raw(&rec.raw_text(), &why),
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
        if self.failed {
            return Ok(());
        }
        if let Some(b) = self.builder.finish()? {
            out.push_back(b);
        }
        Ok(())
    }

    fn corrupt(&mut self, reason: &str, out: &mut VecDeque<RecordBatch>) -> Result<()> {
        if self.failed {
            return Ok(());
        }
        let (raw, line, offset) = self.parser.partial().unwrap_or_default();
        let line = line.max(1);
        self.builder.push_raw(
            &raw,
            &format!("{} line {line}, byte {offset}: {reason}; the rest of the file is unread", self.file),
        );
        if let Some(b) = self.builder.finish()? {
            out.push_back(b);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{CsvOptions, NullMarkers, RecordParser};

    /// Every record's line number is 1 + the line ends before its first byte, whatever the line ends inside it
    /// (quoted line breaks, CRLF) and before it (blank lines, comment lines), and however the text is fed.
    #[test]
    fn record_lines_count_every_line_end_before_them() {
        let text = "a,b\r\n\n\n# note\n1,\"x\ny\"\r\n# two\n# notes\n\r\n2,\"\n\n\"\n3,z\n\"4\n\",\"w\"\n5,v";
        let options = CsvOptions { comment: Some(b'#'), ..CsvOptions::default() };
        for piece in [1, 2, 3, 7, text.len()] {
            let mut parser = RecordParser::new(&options);
            let mut seen = vec![];
            for chunk in text.as_bytes().chunks(piece).chain([&b""[..]]) {
                parser
                    .feed(chunk, |rec| {
                        seen.push((rec.line, rec.offset));
                        Ok(true)
                    })
                    .unwrap();
            }
            assert_eq!(seen.len(), 6, "piece {piece}");
            for (line, offset) in seen {
                let want = 1 + text.as_bytes()[..offset as usize].iter().filter(|b| **b == b'\n').count() as u64;
                assert_eq!(line, want, "piece {piece}, record at byte {offset}");
            }
        }
    }

    /// Markers match whole fields exactly, whatever their length: empty, short (packed), 9 bytes and longer
    /// than the length bitmask; a field that only shares a marker's length, prefix or zero padding does not.
    #[test]
    fn null_markers_match_exactly() {
        let long = "x".repeat(70);
        let m = NullMarkers::new(&["".into(), "NA".into(), "#N/A".into(), "nothing!!".into(), long.clone()]);
        for yes in ["", "NA", "#N/A", "nothing!!", long.as_str()] {
            assert!(m.matches(yes.as_bytes()), "{yes:?}");
        }
        let longer = "x".repeat(71);
        for no in ["N", "na", "NB", "NA\0", "\0NA", "#N/B", "nothing!?", "nothing!!!", &long[1..], longer.as_str()] {
            assert!(!m.matches(no.as_bytes()), "{no:?}");
        }
        assert!(!NullMarkers::new(&[]).matches(b""));
    }
}
