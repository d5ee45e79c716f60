//! File sources: CSV/TSV, NDJSON, JSON arrays, Parquet and (feature `excel`) Excel / OpenDocument
//! spreadsheets, from a local path or an object_store URL (`s3://…`), one file or many through a glob, plain
//! or gzip'd; and JSON records in memory.
//!
//! # Types and malformed records
//!
//! CSV and JSON have no (reliable) types, so every field is delivered as **text** (`Utf8`) and segkit's
//! ingest parses it per row into the attribute's type, quarantining the rows that do not parse. A CSV field
//! equal to one of the null markers (default [`DEFAULT_NULL_VALUES`]: empty, `\N`, `NULL`, `null`, `NA`, `N/A`,
//! `#N/A`) is null. JSON fields are delivered as: strings as-is, numbers and booleans as their JSON text,
//! arrays and objects as compact JSON text, `null` as null. Parquet is typed and delivered as stored; Excel
//! cells are typed per column (see [`ExcelOptions`]).
//!
//! A record that cannot be read as a row — a CSV record with the wrong number of fields or bytes that are not
//! valid in the file's encoding, a JSON line or array element that is not an object, a record cut off by a
//! truncated or corrupt gzip stream — does **not** abort the ingest. It is delivered, in its place in the
//! file's row order, as a row whose fields are all null, whose column [`RAW_COLUMN`] (`_raw`) holds the
//! record's raw text and whose column [`ERROR_COLUMN`] (`_error`) says where it was and why, e.g.
//! `users.csv line 7, byte 181: 5 fields, expected 4`. Text schemas always end with these two columns (null
//! for good rows). Ingest quarantines such a row with that reason and the row's 1-based number, so nothing is
//! dropped silently. A corrupt gzip stream ends the file there: the rows before it are kept.
//!
//! Line numbers are 1-based lines of the (decompressed, decoded) text; byte offsets are 0-based offsets of
//! the record's first byte in that text (for an uncompressed UTF-8 file without BOM: in the file).
//!
//! # Encodings
//!
//! Text files are UTF-8 unless `encoding` says otherwise (any WHATWG label: `gbk`, `gb18030`, `big5`,
//! `utf-16le`, `utf-16be`, `shift_jis`, `windows-1252`, …). A byte-order mark is honoured and removed: a
//! UTF-8 BOM, and a UTF-16 BOM even when no encoding is given. Decoding streams with fixed buffers; a file is
//! never read into memory as a whole.
//!
//! # Many files
//!
//! A location with glob characters (`*`, `?`, `[…]`, `{a,b}`; `**` crosses directories) lists the matching
//! objects (local directories and `s3://` buckets alike) and reads them one after the other in path order. The
//! schema is the union of the files' columns by name (first-seen order); a column missing from a file is null
//! there. A column whose type differs between typed files (Parquet, Excel) is refused with an error naming
//! both files. `file_column` adds each row's file as a column (`_file`).
//!
//! # Incremental syncs
//!
//! A [`FileSource`] is incremental ([`SourceCapabilities::incremental`]): after a scan its cursor
//! ([`Source::cursor`]) lists every file it covered as a [`FileState`] — path, size read, modification time,
//! ETag, FNV-1a fingerprints of the first KiB and of the last KiB read, line ends read — and a named source's
//! sync commits it with the snapshot. A scan from that cursor, for every file the location matches now:
//!
//! - skips a file with the same size and ETag (or modification time), or the same size and fingerprints;
//! - reads a file the cursor does not know from its start;
//! - reads a file that **grew** with unchanged fingerprints from the byte where the last scan stopped — plain
//!   CSV (no header expected there; line numbers go on counting) and NDJSON in an ASCII-compatible encoding;
//! - otherwise the file **changed in place** (it shrank, its first or last read bytes differ, it grew after a
//!   last line without a line end, or it is gzip'd / Parquet / a spreadsheet / a JSON array / UTF-16 and grew):
//!   with `on_change: error` (the default) the scan fails before reading anything, naming the file and what
//!   changed; with `on_change: reread` the file is read again from its start (right for upsert sources whose
//!   exports are replaced).
//!
//! Files no longer matched leave the cursor. Each file is read up to the size it had when listed, so bytes
//! appended during a sync are read by the next one. A scan without a cursor reads everything.

mod chunked;
mod config;
pub(crate) use config::config_schema_variant;
mod csv;
mod decode;
#[cfg(feature = "excel")]
mod excel;
#[cfg(feature = "excel")]
mod excel_guard;
mod incremental;
mod json;
mod parquet;
pub(crate) mod prelude;
pub(crate) mod text;

use std::fmt;
use std::path::Path as StdPath;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arrow::array::{new_null_array, ArrayRef, RecordBatch, StringArray};
use arrow::datatypes::{DataType as ArrowType, Field, Schema, SchemaRef};
use async_trait::async_trait;
use futures::StreamExt;
use object_store::path::Path;
use object_store::{GetOptions, ObjectMeta, ObjectStore, ObjectStoreExt};
use serde_json::Value;
use tokio::sync::OnceCell;
use url::Url;

use segkit::ingest::TypedField;
use segkit::{BatchStream, Error, Result, ScanRequest, Source, SourceCapabilities};

pub use self::csv::{CsvOptions, DEFAULT_NULL_VALUES};
pub use self::incremental::{FileState, OnChange, FINGERPRINT_BYTES};
use decode::{decode_stream, TextPipeline};
use incremental::{fingerprint_ranges, fnv1a, same_meta, Plan};
use prelude::{Prelude, TextEncoding};
use text::{text_schema, KeyUnion, TextBatchBuilder, DEFAULT_BATCH_SIZE};

/// The extra text column of CSV and JSON sources that carries a malformed record's raw text (null for
/// well-formed rows). See the [module documentation](self).
pub const RAW_COLUMN: &str = segkit::source::MALFORMED_COLUMN;

/// The extra text column that says where a malformed record was and why it could not be read.
pub const ERROR_COLUMN: &str = segkit::source::MALFORMED_REASON_COLUMN;

/// The default name of the column holding each row's file (`file_column: true`).
pub const FILE_COLUMN: &str = "_file";

/// JSON layouts.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct JsonOptions {
    /// `Some(true)`: one object per line (NDJSON); `Some(false)`: an array; `None` (type `json`): decided by
    /// the file's first character (`[` → array) unless a record path is given.
    pub lines: Option<bool>,
    /// Keys leading from the document to the array of records (`["data"]` for `{"data": [...]}`); empty: the
    /// document is the array.
    pub record_path: Vec<String>,
}

impl JsonOptions {
    /// NDJSON.
    pub fn lines() -> Self {
        JsonOptions { lines: Some(true), record_path: vec![] }
    }
}

/// Which sheet of a workbook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SheetRef {
    /// By 0-based position.
    Index(usize),
    /// By name.
    Name(String),
}

/// How header cells merged across columns are named.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MergedHeaders {
    /// Every column under a merged header cell gets the merged text (then made unique: `Q1`, `Q1_2`, …).
    #[default]
    Repeat,
    /// With two header rows, a merged parent cell over child cells names each column `parent_child`
    /// (`Sales_Q1`, `Sales_Q2`); needs `header_row` ≥ 1 (the parent row is the one above it).
    Join,
}

/// How a spreadsheet is read (feature `excel`).
///
/// Cells are typed per column from all of the sheet's data rows: all whole numbers → `Int64`, numbers →
/// `Float64`, booleans → `Boolean`, dates (a date number format, no time of day) → `Date32`, date-times →
/// `Timestamp(µs, UTC)` (spreadsheets have no time zone: the wall time is taken as UTC); a column mixing kinds,
/// or holding text or error cells (`#DIV/0!`), is `Utf8` with every cell as its text (numbers as written,
/// dates `YYYY-MM-DD`), so ingest quarantines the cells that are not of the attribute's type, with their row,
/// instead of losing them. Empty cells are null; empty trailing rows and columns are ignored.
///
/// Memory: calamine reads the whole file (compressed) and one sheet's cells, as a dense grid, into memory;
/// batches of the configured size are built from it. Files are bounded by [`MAX_EXCEL_BYTES`]; an `.xlsx` /
/// `.xlsb` sheet whose used area exceeds [`segkit::limits::MAX_SPREADSHEET_CELLS`] is refused while its cells
/// stream in, before its grid is built; an `.xls` / `.ods` workbook (which calamine parses whole) is walked
/// record by record first and refused if all its sheets together would exceed that many cells.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExcelOptions {
    /// The sheet (default the first).
    pub sheet: SheetRef,
    /// The 0-based row holding the column names (default 0); the rows above it are skipped.
    pub header_row: u32,
    /// Merged header cells.
    pub merged_headers: MergedHeaders,
}

impl Default for ExcelOptions {
    fn default() -> Self {
        ExcelOptions { sheet: SheetRef::Index(0), header_row: 0, merged_headers: MergedHeaders::Repeat }
    }
}

/// The largest spreadsheet file read (its bytes are held in memory while it is read):
/// [`segkit::limits::MAX_SPREADSHEET_BYTES`].
pub const MAX_EXCEL_BYTES: u64 = segkit::limits::MAX_SPREADSHEET_BYTES;

/// The format of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FileFormat {
    /// Delimited text.
    Csv(CsvOptions),
    /// NDJSON or a JSON array.
    Json(JsonOptions),
    /// Apache Parquet.
    Parquet,
    /// A spreadsheet: `.xlsx`, `.xlsm`, `.xlsb`, `.xls`, `.ods` (reading needs the `excel` feature).
    Excel(ExcelOptions),
}

impl FileFormat {
    /// CSV with a header and `,` delimiter.
    pub fn csv() -> Self {
        FileFormat::Csv(CsvOptions::default())
    }

    /// Infers the format from a path or URL's extension (case-insensitive; a URL's query and fragment and a
    /// trailing `.gz` are ignored): `.csv`, `.tsv` / `.tab` (tab), `.ndjson` / `.jsonl` (NDJSON), `.json`
    /// (array or NDJSON, by the first character), `.parquet` / `.pq`, `.xlsx` / `.xlsm` / `.xlsb` / `.xls` /
    /// `.ods`.
    pub fn from_extension(location: &str) -> Option<Self> {
        let path = location.split(['?', '#']).next().unwrap_or(location);
        let lower = path.to_ascii_lowercase();
        let path = lower.strip_suffix(".gz").unwrap_or(&lower);
        let ext = path.rsplit_once('.')?.1;
        match ext {
            "csv" => Some(FileFormat::csv()),
            "tsv" | "tab" => Some(FileFormat::Csv(CsvOptions::tsv())),
            "ndjson" | "jsonl" => Some(FileFormat::Json(JsonOptions::lines())),
            "json" => Some(FileFormat::Json(JsonOptions::default())),
            "parquet" | "pq" => Some(FileFormat::Parquet),
            "xlsx" | "xlsm" | "xlsb" | "xls" | "ods" => Some(FileFormat::Excel(ExcelOptions::default())),
            _ => None,
        }
    }

    /// The short name used in source names: `csv`, `tsv`, `ndjson`, `json`, `parquet`, `excel`.
    pub fn label(&self) -> &'static str {
        match self {
            FileFormat::Csv(o) if o.delimiter == b'\t' => "tsv",
            FileFormat::Csv(_) => "csv",
            FileFormat::Json(j) if j.lines == Some(true) => "ndjson",
            FileFormat::Json(_) => "json",
            FileFormat::Parquet => "parquet",
            FileFormat::Excel(_) => "excel",
        }
    }

    fn is_text(&self) -> bool {
        matches!(self, FileFormat::Csv(_) | FileFormat::Json(_))
    }
}

/// Whether text files are gzip'd.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    /// By the file name: `.gz` is gzip (default).
    #[default]
    Auto,
    /// Always gzip.
    Gzip,
    /// Never.
    None,
}

/// Reading options common to every file format.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FileOptions {
    /// Gzip (text formats).
    pub compression: Compression,
    encoding: TextEncoding,
    /// A column holding each row's file (its location as given, or as listed for a glob).
    pub file_column: Option<String>,
    /// Rows per batch (default 65 536).
    pub batch_size: usize,
    /// What an incremental scan does with a file changed in place (default [`OnChange::Error`]).
    pub on_change: OnChange,
}

impl Default for FileOptions {
    fn default() -> Self {
        FileOptions {
            compression: Compression::Auto,
            encoding: TextEncoding::default(),
            file_column: None,
            batch_size: DEFAULT_BATCH_SIZE,
            on_change: OnChange::default(),
        }
    }
}

impl FileOptions {
    /// Sets the text encoding by its WHATWG label (`utf-8`, `gbk`, `gb18030`, `big5`, `utf-16le`, …).
    pub fn with_encoding(mut self, label: &str) -> Result<Self> {
        self.encoding = TextEncoding::for_label(label)
            .ok_or_else(|| Error::InvalidArgument(format!("unknown text encoding `{label}`")))?;
        Ok(self)
    }

    /// The text encoding's name.
    pub fn encoding(&self) -> &'static str {
        self.encoding.name()
    }
}

/// Resolves `env:NAME` references; other values are returned as they are.
fn resolve_secret(key: &str, value: &str) -> Result<String> {
    match value.strip_prefix("env:") {
        Some(var) => std::env::var(var).map_err(|_| {
            Error::InvalidArgument(format!("option `{key}` refers to environment variable `{var}`, which is not set"))
        }),
        None => Ok(value.to_string()),
    }
}

/// One file of a source, with its own schema.
#[derive(Debug, Clone)]
struct FileEntry {
    path: Path,
    /// The location shown in messages and in the file column.
    display: String,
    /// The file name, for messages.
    short: String,
    schema: SchemaRef,
    /// Size, modification time and ETag when it was listed: a scan reads the file up to this size.
    meta: ObjectMeta,
}

#[derive(Debug)]
struct Resolved {
    files: Vec<FileEntry>,
    schema: SchemaRef,
}

/// One file or a glob of files (CSV, JSON, Parquet, Excel) read through object_store.
///
/// `Debug` and [`Source::name`] never show option values (credentials) or a URL's user info and query.
pub struct FileSource {
    name: String,
    location: String,
    format: FileFormat,
    options: FileOptions,
    option_keys: Vec<String>,
    store: Arc<dyn ObjectStore>,
    /// The object (one file) or the listing prefix (glob).
    path: Path,
    /// The glob over paths relative to `path`, with the displayed base.
    glob: Option<(globset::GlobMatcher, String)>,
    resolved: OnceCell<Resolved>,
    /// The cursor of the last scan whose stream ended (see [`Source::cursor`]).
    last_cursor: Arc<Mutex<Option<Value>>>,
    /// Scans so far: the first uses the files listed by [`Source::schema`], later ones list them again.
    scans: AtomicU64,
}

impl fmt::Debug for FileSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let options: Vec<String> = self.option_keys.iter().map(|k| format!("{k}=<redacted>")).collect();
        f.debug_struct("FileSource")
            .field("name", &self.name)
            .field("location", &self.location)
            .field("format", &self.format)
            .field("options", &self.options)
            .field("store_options", &options)
            .finish()
    }
}

/// Splits a location at the last `/` before its first glob character: (literal base, pattern), or `None` if it
/// has no glob characters.
pub(crate) fn split_glob(location: &str) -> Option<(&str, &str)> {
    let path_start = location.find("://").map(|i| i + 3).unwrap_or(0);
    // In a URL, `?` starts the query: only `*`, `[…]` and `{…}` are glob characters there.
    let first = if path_start > 0 {
        let path = &location[..location[path_start..].find(['?', '#']).map_or(location.len(), |i| i + path_start)];
        path[path_start..].find(['*', '[', '{']).map(|i| i + path_start)?
    } else {
        location.find(['*', '?', '[', '{'])?
    };
    match location[..first].rfind('/') {
        Some(slash) if slash >= path_start => Some((&location[..slash], &location[slash + 1..])),
        _ => Some((".", &location[path_start..])),
    }
}

impl FileSource {
    /// A source over `location` (a local path, or a URL such as `file:///data/users.csv` or
    /// `s3://bucket/users.csv`, or a glob such as `data/*.csv` or `s3://bucket/2026/**/*.ndjson.gz`) in
    /// `format`.
    pub fn new(location: &str, format: FileFormat) -> Result<Self> {
        Self::with_options(location, format, FileOptions::default(), Vec::<(String, String)>::new())
    }

    /// Like [`new`](Self::new), with reading options and object_store options (e.g. `aws_region`,
    /// `aws_endpoint`, `aws_access_key_id`). A value written `env:NAME` is read from that environment variable
    /// now. For `s3://` URLs, `AWS_*` environment variables are used for options not given explicitly.
    pub fn with_options<K: Into<String>, V: Into<String>>(
        location: &str,
        format: FileFormat,
        options: FileOptions,
        store_options: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Self> {
        if let FileFormat::Csv(o) = &format {
            if matches!(o.delimiter, b'\n' | b'\r') || o.delimiter == o.quote {
                return Err(Error::InvalidArgument(format!("invalid CSV delimiter {:?}", o.delimiter as char)));
            }
        }
        let mut resolved = vec![];
        let mut option_keys = vec![];
        for (k, v) in store_options {
            let (k, v): (String, String) = (k.into(), v.into());
            resolved.push((k.to_ascii_lowercase(), resolve_secret(&k, &v)?));
            option_keys.push(k);
        }
        let (base, glob) = match split_glob(location) {
            Some((base, pattern)) => {
                let g = globset::GlobBuilder::new(pattern)
                    .literal_separator(true)
                    .build()
                    .map_err(|e| Error::InvalidArgument(format!("invalid glob pattern `{pattern}`: {e}")))?;
                (base, Some((g.compile_matcher(), base.trim_end_matches('/').to_string())))
            }
            None => (location, None),
        };
        let url = to_url(base)?;
        if url.scheme() == "s3" || url.scheme() == "s3a" {
            for (k, v) in std::env::vars() {
                let k = k.to_ascii_lowercase();
                if k.starts_with("aws_") && !resolved.iter().any(|(rk, _)| *rk == k) {
                    resolved.push((k, v));
                }
            }
        }
        let (store, path) = object_store::parse_url_opts(&url, resolved)
            .map_err(|e| Error::InvalidArgument(format!("cannot open `{}`: {e}", redact_url(&url))))?;
        let shown = match &glob {
            Some(_) => location.rsplit('/').next().unwrap_or(location).to_string(),
            None => path.filename().map(str::to_string).unwrap_or_else(|| path.to_string()),
        };
        let mut location_shown = redact_url(&url);
        if let Some((_, pattern)) = split_glob(location) {
            location_shown = format!("{}/{pattern}", location_shown.trim_end_matches('/'));
        }
        Ok(FileSource {
            name: format!("{}:{shown}", format.label()),
            location: location_shown,
            format,
            options,
            option_keys,
            store: Arc::from(store),
            path,
            glob,
            resolved: OnceCell::new(),
            last_cursor: Arc::default(),
            scans: AtomicU64::new(0),
        })
    }

    /// Rows per batch (default 65 536).
    pub fn with_batch_size(mut self, rows: usize) -> Self {
        self.options.batch_size = rows.max(1);
        self
    }

    /// The file format.
    pub fn format(&self) -> &FileFormat {
        &self.format
    }

    /// The location as given, without user info, query or fragment.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// The files the source reads (listed once, for a glob), as shown in the file column.
    pub async fn files(&self) -> Result<Vec<String>> {
        Ok(self.resolve().await?.files.iter().map(|f| f.display.clone()).collect())
    }

    fn err(&self, message: impl Into<String>) -> Error {
        Error::Source { source_name: self.name.clone(), message: message.into(), cause: None }
    }

    async fn list(&self) -> Result<Vec<(Path, String, ObjectMeta)>> {
        let Some((matcher, base)) = &self.glob else {
            let display = self.location.clone();
            let meta = self.store.head(&self.path).await.map_err(|e| Error::source_error(self.name.clone(), e))?;
            return Ok(vec![(self.path.clone(), display, meta)]);
        };
        let prefix = self.path.clone();
        let mut listing = self.store.list(Some(&prefix));
        let mut out = vec![];
        while let Some(meta) = listing.next().await {
            let meta = meta.map_err(|e| Error::source_error(self.name.clone(), e))?;
            let full = meta.location.as_ref();
            let rel = if prefix.as_ref().is_empty() {
                full
            } else {
                full.strip_prefix(prefix.as_ref()).and_then(|r| r.strip_prefix('/')).unwrap_or(full)
            };
            if matcher.is_match(rel) {
                let display = format!("{base}/{rel}");
                out.push((meta.location.clone(), display, meta));
                if out.len() > 100_000 {
                    return Err(self.err("the glob matches more than 100000 files; narrow it"));
                }
            }
        }
        out.sort_by(|a, b| a.0.as_ref().cmp(b.0.as_ref()));
        if out.is_empty() {
            return Err(self.err(format!("no file matches `{}`", self.location)));
        }
        Ok(out)
    }

    async fn resolve(&self) -> Result<&Resolved> {
        self.resolved
            .get_or_try_init(|| async {
                let mut files = vec![];
                for (path, display, meta) in self.list().await? {
                    let short = path.filename().unwrap_or(path.as_ref()).to_string();
                    let schema = self.discover(&path, &short).await?;
                    files.push(FileEntry { path, display, short, schema, meta });
                }
                let schema = self.unify(&files)?;
                Ok(Resolved { files, schema })
            })
            .await
    }

    /// The files as they are now, for a later scan: files known since [`Source::schema`] keep their schema; a
    /// new file's schema must fit the source's (its columns were fixed by the first listing).
    async fn relist(&self, resolved: &Resolved) -> Result<Vec<FileEntry>> {
        let mut files = vec![];
        for (path, display, meta) in self.list().await? {
            if let Some(known) = resolved.files.iter().find(|f| f.path == path) {
                files.push(FileEntry { meta, ..known.clone() });
                continue;
            }
            let short = path.filename().unwrap_or(path.as_ref()).to_string();
            let schema = self.discover(&path, &short).await?;
            for field in schema.fields() {
                match resolved.schema.field_with_name(field.name()) {
                    Ok(known) if known.data_type() == field.data_type() => {}
                    _ => {
                        return Err(self.err(format!(
                            "file `{display}` has column `{}` ({}), which the source's schema (fixed when its files \
                             were first listed) does not have; build the source again to read it",
                            field.name(),
                            field.data_type()
                        )))
                    }
                }
            }
            files.push(FileEntry { path, display, short, schema, meta });
        }
        Ok(files)
    }

    /// The union of the files' schemas by name (types must agree), plus the file / raw / error columns.
    fn unify(&self, files: &[FileEntry]) -> Result<SchemaRef> {
        let extra = |n: &str| n == RAW_COLUMN || n == ERROR_COLUMN;
        let mut fields: Vec<Field> = vec![];
        let mut first_seen: Vec<&str> = vec![];
        let mut malformed = self.format.is_text();
        for f in files {
            for field in f.schema.fields() {
                if extra(field.name()) {
                    malformed = true;
                    continue;
                }
                match fields.iter().position(|x| x.name() == field.name()) {
                    None => {
                        fields.push(field.as_ref().clone().with_nullable(true));
                        first_seen.push(&f.display);
                    }
                    Some(i) if fields[i].data_type() != field.data_type() => {
                        return Err(self.err(format!(
                            "file `{}`: column `{}` is {} there but {} in `{}`; the files of one source must agree",
                            f.display,
                            field.name(),
                            field.data_type(),
                            fields[i].data_type(),
                            first_seen[i]
                        )))
                    }
                    Some(_) => {}
                }
            }
        }
        if let Some(fc) = &self.options.file_column {
            if fields.iter().any(|f| f.name() == fc) {
                return Err(self.err(format!("file_column `{fc}` is also a column of the data; choose another name")));
            }
            fields.push(Field::new(fc, ArrowType::Utf8, true));
        }
        if malformed {
            fields.push(Field::new(RAW_COLUMN, ArrowType::Utf8, true));
            fields.push(Field::new(ERROR_COLUMN, ArrowType::Utf8, true));
        }
        Ok(Arc::new(Schema::new(fields)))
    }

    async fn bytes(
        &self,
        path: &Path,
    ) -> Result<futures::stream::BoxStream<'static, object_store::Result<bytes::Bytes>>> {
        let got = self.store.get(path).await.map_err(|e| Error::source_error(self.name.clone(), e))?;
        Ok(decode::object_bytes(got))
    }

    /// The bytes of `f` from `start` to its listed size, counting line ends into `newlines`.
    async fn range_bytes(
        &self,
        f: &FileEntry,
        start: u64,
        newlines: Arc<AtomicU64>,
    ) -> Result<futures::stream::BoxStream<'static, object_store::Result<bytes::Bytes>>> {
        if start >= f.meta.size {
            return Ok(futures::stream::empty().boxed());
        }
        let options = GetOptions::new().with_range(Some(start..f.meta.size));
        let got = self.store.get_opts(&f.path, options).await.map_err(|e| Error::source_error(self.name.clone(), e))?;
        // `object_bytes`, not `got.into_stream()`: object_store streams a local file 8 KiB at a time, each read a
        // hop to the blocking pool and back (70,807 reads and 344,136 futex calls for the bench's users.csv).
        Ok(decode::object_bytes(got)
            .inspect(move |chunk| {
                if let Ok(b) = chunk {
                    newlines.fetch_add(chunked::count_byte(b, b'\n'), Ordering::Relaxed);
                }
            })
            .boxed())
    }

    /// The first bytes (up to 1 KiB) of `f` and the fingerprints (head, tail) of its first `size` bytes, with
    /// the last of those bytes.
    async fn fingerprints(&self, f: &FileEntry, size: u64) -> Result<(bytes::Bytes, String, String, Option<u8>)> {
        if size == 0 {
            return Ok((bytes::Bytes::new(), fnv1a(b""), fnv1a(b""), None));
        }
        let (head, tail) = fingerprint_ranges(size);
        let got = self
            .store
            .get_ranges(&f.path, &[head, tail])
            .await
            .map_err(|e| Error::source_error(self.name.clone(), e))?;
        let (h, t) = (fnv1a(&got[0]), fnv1a(&got[1]));
        let last = got[1].last().copied();
        Ok((got[0].clone(), h, t, last))
    }

    /// The cursor entry of `f` read to its listed size (`lines` is filled in after the read).
    async fn state_after_read(&self, f: &FileEntry) -> Result<FileState> {
        let (_, head, tail, last) = self.fingerprints(f, f.meta.size).await?;
        Ok(FileState {
            path: f.path.to_string(),
            size: f.meta.size,
            modified: f.meta.last_modified.to_rfc3339(),
            etag: f.meta.e_tag.clone(),
            head,
            tail,
            lines: 0,
            open_end: last.is_some_and(|b| b != b'\n'),
        })
    }

    /// Whether rows appended to `f` can be read from an offset: plain (not gzip'd) CSV or NDJSON in an
    /// ASCII-compatible encoding (`first` are the file's first bytes, for a BOM and the JSON layout).
    fn can_resume(&self, f: &FileEntry, first: &[u8]) -> bool {
        let gzip = match self.options.compression {
            Compression::Gzip => true,
            Compression::None => false,
            Compression::Auto => f.path.as_ref().to_ascii_lowercase().ends_with(".gz"),
        };
        let utf16_bom = first.starts_with(b"\xFF\xFE") || first.starts_with(b"\xFE\xFF");
        if gzip || utf16_bom || !self.options.encoding.is_ascii_compatible() {
            return false;
        }
        match &self.format {
            FileFormat::Csv(_) => true,
            FileFormat::Json(j) => {
                let text = first.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(first);
                let first_char = text.iter().copied().find(|b| !b.is_ascii_whitespace());
                self.json_layout(j, first_char) == json::Layout::Lines
            }
            FileFormat::Parquet | FileFormat::Excel(_) => false,
        }
    }

    /// How `f` is read by a scan from a cursor holding `previous`.
    async fn plan(&self, f: &FileEntry, previous: Option<&[FileState]>) -> Result<Plan> {
        let from_start = Plan::Read { start: 0, lines: 0 };
        let Some(old) = previous.and_then(|p| p.iter().find(|s| s.path == f.path.as_ref())) else {
            return Ok(from_start);
        };
        let unchanged = || {
            let mut s = old.clone();
            s.modified = f.meta.last_modified.to_rfc3339();
            s.etag = f.meta.e_tag.clone();
            Plan::Skip(s)
        };
        if same_meta(old, &f.meta) {
            return Ok(unchanged());
        }
        let (size, was) = (f.meta.size, old.size);
        let why = if size < was {
            format!("it shrank from {was} to {size} bytes")
        } else {
            let (first, head, tail, _) = self.fingerprints(f, was).await?;
            if head != old.head {
                format!("its first {} bytes differ", was.min(FINGERPRINT_BYTES))
            } else if tail != old.tail {
                format!(
                    "the {} bytes before byte {was} (where the last sync stopped) differ",
                    was.min(FINGERPRINT_BYTES)
                )
            } else if size == was {
                // Touched, or rewritten with the same size, first and last bytes: taken as unchanged.
                return Ok(unchanged());
            } else if !self.can_resume(f, &first) {
                format!(
                    "it grew from {was} to {size} bytes, and a {} file cannot be read from an offset (only plain CSV \
                     and NDJSON in an ASCII-compatible encoding can)",
                    self.format.label()
                )
            } else if old.open_end {
                format!("it grew from {was} to {size} bytes, but the last sync read a last line without a line end")
            } else {
                return Ok(Plan::Read { start: was, lines: old.lines });
            }
        };
        match self.options.on_change {
            OnChange::Reread => Ok(from_start),
            OnChange::Error => Err(self.err(format!(
                "file `{}` changed in place since the last sync: {why}. Nothing was read. Set \"on_change\": \
                 \"reread\" to read changed files again from their start (right for upsert sources whose files are \
                 replaced), or sync with mode full_refresh",
                f.display
            ))),
        }
    }

    fn prelude(&self, path: &Path) -> Prelude {
        let gzip = match self.options.compression {
            Compression::Gzip => true,
            Compression::None => false,
            Compression::Auto => path.as_ref().to_ascii_lowercase().ends_with(".gz"),
        };
        Prelude::new(gzip, self.options.encoding)
    }

    fn json_layout(&self, j: &JsonOptions, first: Option<u8>) -> json::Layout {
        match (j.lines, j.record_path.is_empty()) {
            (Some(true), _) => json::Layout::Lines,
            (_, false) => json::Layout::Array(j.record_path.clone()),
            (Some(false), true) => json::Layout::Array(vec![]),
            (None, true) if first == Some(b'[') => json::Layout::Array(vec![]),
            (None, true) => json::Layout::Lines,
        }
    }

    /// The first non-whitespace decoded byte of a file (for `json`'s layout), read from its start.
    async fn first_byte(&self, path: &Path) -> Result<Option<u8>> {
        let mut bytes = self.bytes(path).await?;
        let mut prelude = self.prelude(path);
        let mut first = None;
        while let Some(chunk) = bytes.next().await {
            let chunk = chunk.map_err(|e| Error::source_error(self.name.clone(), e))?;
            let mut sink = |t: &[u8]| -> std::result::Result<(), ()> {
                if first.is_none() {
                    first = t.iter().copied().find(|b| !b.is_ascii_whitespace());
                }
                if first.is_some() {
                    Err(())
                } else {
                    Ok(())
                }
            };
            match prelude.feed(&chunk, &mut sink) {
                Ok(()) => {}
                Err(_) => break,
            }
        }
        Ok(first)
    }

    async fn discover(&self, path: &Path, short: &str) -> Result<SchemaRef> {
        match &self.format {
            FileFormat::Csv(o) => {
                if let (Some(cols), false) = (&o.columns, o.header) {
                    return Ok(text_schema(csv::dedupe_names(cols.clone())));
                }
                let mut bytes = self.bytes(path).await?;
                let mut prelude = self.prelude(path);
                let mut parser = csv::RecordParser::new(o);
                let mut names: Option<Vec<String>> = None;
                let header = o.header;
                let mut more = true;
                while more {
                    let chunk = match bytes.next().await {
                        Some(c) => c.map_err(|e| Error::source_error(self.name.clone(), e))?,
                        None => bytes::Bytes::new(),
                    };
                    let eof = chunk.is_empty();
                    let mut sink = |t: &[u8]| -> Result<()> {
                        if names.is_none() {
                            parser.feed(t, |rec| {
                                names = Some(csv::header_names(&rec, header));
                                Ok(false)
                            })?;
                        }
                        Ok(())
                    };
                    let r = if eof { prelude.finish(&mut sink) } else { prelude.feed(&chunk, &mut sink) };
                    match r {
                        Ok(()) => {}
                        Err(prelude::Outcome::Sink(e)) => return Err(e),
                        Err(prelude::Outcome::Corrupt(c)) if names.is_none() => {
                            return Err(self.err(format!("{short}: {} before the first record", c.0)))
                        }
                        Err(prelude::Outcome::Corrupt(_)) => {}
                    }
                    if eof && names.is_none() {
                        parser.feed(&[], |rec| {
                            names = Some(csv::header_names(&rec, header));
                            Ok(false)
                        })?;
                    }
                    more = !eof && names.is_none();
                }
                let names = match (names, &o.columns) {
                    (_, Some(cols)) => csv::dedupe_names(cols.clone()),
                    (Some(n), None) => n,
                    (None, None) if header => {
                        return Err(self.err(format!("{short} is empty: no header record")));
                    }
                    (None, None) => vec![],
                };
                Ok(text_schema(names))
            }
            FileFormat::Json(j) => {
                let layout = self.json_layout(j, self.first_byte(path).await?);
                let mut bytes = self.bytes(path).await?;
                let mut prelude = self.prelude(path);
                let mut keys = json::KeyScanner::new(&layout, short);
                while let Some(chunk) = bytes.next().await {
                    let chunk = chunk.map_err(|e| Error::source_error(self.name.clone(), e))?;
                    match prelude.feed(&chunk, &mut |t| keys.feed(t)) {
                        Ok(()) => {}
                        Err(prelude::Outcome::Sink(e)) => return Err(e),
                        Err(prelude::Outcome::Corrupt(_)) => break,
                    }
                }
                let _ = prelude.finish(&mut |t| keys.feed(t));
                Ok(text_schema(keys.finish()?))
            }
            FileFormat::Parquet => parquet::schema(&self.name, &self.store, path).await,
            FileFormat::Excel(x) => self.excel_schema(path, short, x).await,
        }
    }

    #[cfg(feature = "excel")]
    async fn excel_bytes(&self, path: &Path) -> Result<bytes::Bytes> {
        let meta = self.store.head(path).await.map_err(|e| Error::source_error(self.name.clone(), e))?;
        if meta.size > MAX_EXCEL_BYTES {
            return Err(self.err(format!(
                "{}: {} bytes is more than the {} MiB a spreadsheet may have (limit MAX_SPREADSHEET_BYTES)",
                path.filename().unwrap_or_default(),
                meta.size,
                MAX_EXCEL_BYTES >> 20
            )));
        }
        let got = self.store.get(path).await.map_err(|e| Error::source_error(self.name.clone(), e))?;
        got.bytes().await.map_err(|e| Error::source_error(self.name.clone(), e))
    }

    #[cfg(feature = "excel")]
    async fn excel_schema(&self, path: &Path, short: &str, x: &ExcelOptions) -> Result<SchemaRef> {
        let data = self.excel_bytes(path).await?;
        let (x, short, name) = (x.clone(), short.to_string(), self.name.clone());
        tokio::task::spawn_blocking(move || excel::schema(&data, &x, &short).map_err(|m| source_err(&name, m)))
            .await
            .map_err(|e| self.err(format!("the spreadsheet reader failed: {e}")))?
    }

    #[cfg(not(feature = "excel"))]
    async fn excel_schema(&self, _path: &Path, _short: &str, _x: &ExcelOptions) -> Result<SchemaRef> {
        Err(self.err("reading spreadsheets needs segkit-connectors' `excel` feature"))
    }

    /// Streams one file's rows from byte `start` (0, or where a previous scan stopped: then `lines` line ends
    /// precede it) up to its listed size, counting the line ends read into `newlines`.
    ///
    /// `typed`: fields to read typed (see [`ScanRequest::typed`]; CSV only, and only for a file with the scan's
    /// schema).
    async fn scan_file(
        &self,
        f: &FileEntry,
        start: u64,
        lines: u64,
        newlines: Arc<AtomicU64>,
        typed: Arc<Vec<TypedField>>,
    ) -> Result<BatchStream> {
        let size = self.options.batch_size;
        let prelude = || if start == 0 { self.prelude(&f.path) } else { Prelude::continuing(self.options.encoding) };
        Ok(match &self.format {
            FileFormat::Csv(o) => {
                // Decoded in chunks on the blocking pool (`chunked`), in order, with the sequential reader's
                // rows, line numbers and offsets.
                let (schema, columns, opts) = (f.schema.clone(), f.schema.fields().len() - 2, o.clone());
                let (file, encoding) = (f.short.clone(), self.options.encoding.name());
                let make: chunked::MakeDecoder = Arc::new(move |line, offset, first| {
                    let mut dec = csv::CsvDecoder::new(schema.clone(), columns, &opts, size, file.clone(), encoding)
                        .typed(&typed);
                    if !(first && start == 0) {
                        dec.resume_at(line, offset);
                    }
                    dec
                });
                let chunking = chunked::Chunking {
                    quote: o.quote,
                    size: chunked::ChunkSize::Rows(size),
                    line: lines + 1,
                    offset: start,
                };
                let bytes = self.range_bytes(f, start, newlines).await?;
                chunked::csv_stream(self.name.clone(), bytes, prelude(), make, chunking)
            }
            FileFormat::Json(j) => {
                let layout = self.json_layout(j, self.first_byte(&f.path).await?);
                let mut dec = json::JsonDecoder::new(f.schema.clone(), &layout, size, f.short.clone());
                if start > 0 {
                    dec.resume_at(lines, start);
                }
                let pipeline = TextPipeline::new(prelude(), dec);
                decode_stream(self.name.clone(), self.range_bytes(f, start, newlines).await?, pipeline)
            }
            FileFormat::Parquet => {
                parquet::scan(&self.name, &self.store, &f.path, f.schema.clone(), None, size).await?
            }
            FileFormat::Excel(x) => self.excel_scan(f, x).await?,
        })
    }

    #[cfg(feature = "excel")]
    async fn excel_scan(&self, f: &FileEntry, x: &ExcelOptions) -> Result<BatchStream> {
        let data = self.excel_bytes(&f.path).await?;
        Ok(excel::scan(data, x.clone(), f.schema.clone(), self.options.batch_size, f.short.clone(), self.name.clone()))
    }

    #[cfg(not(feature = "excel"))]
    async fn excel_scan(&self, _f: &FileEntry, _x: &ExcelOptions) -> Result<BatchStream> {
        Err(self.err("reading spreadsheets needs segkit-connectors' `excel` feature"))
    }
}

#[cfg(feature = "excel")]
fn source_err(name: &str, message: String) -> Error {
    Error::Source { source_name: name.to_string(), message, cause: None }
}

/// `batch` (of one file) in the source's `schema`: columns by name, nulls for columns the file lacks, the file
/// column filled; the `typed` fields as the file's decoder delivered them (typed, or text).
fn conform(
    batch: RecordBatch,
    schema: &SchemaRef,
    file_column: Option<&str>,
    display: &str,
    typed: &[TypedField],
) -> Result<RecordBatch> {
    if batch.schema() == *schema {
        return Ok(batch);
    }
    let is_typed = |name: &str| typed.iter().any(|t| t.name == name);
    let given = batch.schema();
    if file_column.is_none()
        && !typed.is_empty()
        && given.fields().len() == schema.fields().len()
        && given
            .fields()
            .iter()
            .zip(schema.fields())
            .all(|(g, f)| g == f || (g.name() == f.name() && is_typed(f.name())))
    {
        return Ok(batch);
    }
    let n = batch.num_rows();
    let cols = schema
        .fields()
        .iter()
        .map(|f| {
            if Some(f.name().as_str()) == file_column {
                return Ok(Arc::new(StringArray::from(vec![display; n])) as ArrayRef);
            }
            Ok(match batch.column_by_name(f.name()) {
                Some(c) if c.data_type() == f.data_type() || is_typed(f.name()) => c.clone(),
                Some(c) => arrow::compute::cast(c, f.data_type())?,
                None => new_null_array(f.data_type(), n),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    if cols.iter().zip(schema.fields()).all(|(c, f)| c.data_type() == f.data_type()) {
        return Ok(RecordBatch::try_new(schema.clone(), cols)?);
    }
    let fields: Vec<Field> =
        cols.iter().zip(schema.fields()).map(|(c, f)| Field::new(f.name(), c.data_type().clone(), true)).collect();
    Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), cols)?)
}

#[async_trait]
impl Source for FileSource {
    fn name(&self) -> String {
        self.name.clone()
    }

    /// The schema: for CSV, the header (one read of the first record); for JSON, the union of the keys of all
    /// records in first-seen order (one pass over the file); for Parquet, the file's schema; for a spreadsheet,
    /// the header row and the column types (one pass over the sheet). For a glob, the union over the files.
    /// Computed once and cached.
    async fn schema(&self) -> Result<SchemaRef> {
        Ok(self.resolve().await?.schema.clone())
    }

    /// Reads every file (with no cursor), or, from a cursor, only the files and appended bytes it does not
    /// cover (see the [module documentation](self#incremental-syncs)). Files are listed again on every scan
    /// after the first.
    async fn scan(&self, request: &ScanRequest) -> Result<BatchStream> {
        let resolved = self.resolve().await?;
        let schema = resolved.schema.clone();
        let listed = match self.scans.fetch_add(1, Ordering::Relaxed) {
            0 => resolved.files.clone(),
            _ => self.relist(resolved).await?,
        };
        let projection = match &request.projection {
            Some(fields) => Some(
                fields
                    .iter()
                    .map(|f| {
                        schema
                            .index_of(f)
                            .map_err(|_| Error::InvalidArgument(format!("source `{}` has no field `{f}`", self.name)))
                    })
                    .collect::<Result<Vec<_>>>()?,
            ),
            None => None,
        };
        let previous = match &request.cursor {
            None => None,
            Some(v) => Some(incremental::parse(v).map_err(|e| {
                self.err(format!(
                    "the stored cursor is not a file source's cursor ({e}); redefine the source to start over"
                ))
            })?),
        };
        *self.last_cursor.lock().unwrap_or_else(|p| p.into_inner()) = None;
        // Decide for every file first, so a file changed in place fails the scan before anything is read.
        let mut states = vec![];
        let mut reads = vec![];
        for f in &listed {
            match self.plan(f, previous.as_deref()).await? {
                Plan::Skip(state) => states.push(state),
                Plan::Read { start, lines } => {
                    let mut next = self.state_after_read(f).await?;
                    next.lines = lines;
                    reads.push((f.clone(), start, next));
                }
            }
        }
        let states = Arc::new(Mutex::new(states));
        let fc = self.options.file_column.clone();
        let this = self.clone_shallow();
        let done = states.clone();
        let wanted = Arc::new(request.typed.clone());
        let stream = futures::stream::iter(reads)
            .then(move |(f, start, next)| {
                let this = this.clone();
                let schema = schema.clone();
                let fc = fc.clone();
                let states = states.clone();
                // Typed fields only for a file whose columns are the scan's (a glob's files may differ).
                let typed = if f.schema == schema { wanted.clone() } else { Arc::new(vec![]) };
                async move {
                    let newlines = Arc::new(AtomicU64::new(0));
                    let s = this.scan_file(&f, start, next.lines, newlines.clone(), typed.clone()).await?;
                    let display = f.display.clone();
                    // After the file's last batch: its entry of the new cursor.
                    let finished = futures::stream::once(async move {
                        let mut next = next;
                        next.lines += newlines.load(Ordering::Relaxed);
                        states.lock().unwrap_or_else(|p| p.into_inner()).push(next);
                        None
                    })
                    .filter_map(futures::future::ready);
                    Ok::<_, Error>(
                        s.map(move |b| conform(b?, &schema, fc.as_deref(), &display, &typed)).chain(finished),
                    )
                }
            })
            .map(|r| match r {
                Ok(s) => s.boxed(),
                Err(e) => futures::stream::once(async move { Err(e) }).boxed(),
            })
            .flatten();
        let slot = self.last_cursor.clone();
        let ended = futures::stream::once(async move {
            let files = std::mem::take(&mut *done.lock().unwrap_or_else(|p| p.into_inner()));
            *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(incremental::to_value(files));
            None
        })
        .filter_map(futures::future::ready);
        let stream = stream.chain(ended);
        Ok(match projection {
            None => stream.boxed(),
            Some(idx) => stream.map(move |b| Ok(b?.project(&idx)?)).boxed(),
        })
    }

    fn capabilities(&self) -> SourceCapabilities {
        SourceCapabilities::none().with_projection().with_incremental()
    }

    /// `{"files": [...]}`: every file the last completed scan listed, as [`FileState`]s.
    async fn cursor(&self) -> Result<Option<Value>> {
        Ok(self.last_cursor.lock().unwrap_or_else(|p| p.into_inner()).clone())
    }
}

impl FileSource {
    /// A copy sharing the store and the resolved files, for streams that outlive `&self`.
    fn clone_shallow(&self) -> Arc<FileSource> {
        let resolved = OnceCell::new();
        if let Some(r) = self.resolved.get() {
            let _ = resolved.set(Resolved { files: r.files.clone(), schema: r.schema.clone() });
        }
        Arc::new(FileSource {
            name: self.name.clone(),
            location: self.location.clone(),
            format: self.format.clone(),
            options: self.options.clone(),
            option_keys: self.option_keys.clone(),
            store: self.store.clone(),
            path: self.path.clone(),
            glob: self.glob.clone(),
            resolved,
            last_cursor: self.last_cursor.clone(),
            scans: AtomicU64::new(1),
        })
    }
}

/// A local path (relative to the current directory) or a URL, as a URL.
fn to_url(location: &str) -> Result<Url> {
    if location.trim().is_empty() {
        return Err(Error::InvalidArgument("empty file location".into()));
    }
    let looks_like_url = location.split_once("://").is_some_and(|(scheme, _)| {
        scheme.len() > 1 && scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
    });
    if looks_like_url {
        return Url::parse(location).map_err(|e| Error::InvalidArgument(format!("invalid URL `{location}`: {e}")));
    }
    let abs = std::path::absolute(StdPath::new(location))
        .map_err(|e| Error::InvalidArgument(format!("invalid path `{location}`: {e}")))?;
    // `a/../b` → `b` (lexically, as a shell would for a path typed by hand): object_store refuses `..`.
    let mut clean = std::path::PathBuf::new();
    for c in abs.components() {
        match c {
            std::path::Component::ParentDir => {
                clean.pop();
            }
            std::path::Component::CurDir => {}
            other => clean.push(other),
        }
    }
    let abs = clean;
    Url::from_file_path(&abs).map_err(|_| Error::InvalidArgument(format!("invalid path `{location}`")))
}

/// A URL without user info, query or fragment.
fn redact_url(url: &Url) -> String {
    let mut u = url.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.set_query(None);
    u.set_fragment(None);
    u.to_string()
}

/// Opens a file source from a local path, URL or glob, inferring the format from the extension (`.csv`,
/// `.tsv`, `.ndjson` / `.jsonl`, `.json`, `.parquet` / `.pq`, `.xlsx` / `.xls` / `.ods` …, each optionally
/// `.gz`).
///
/// ```no_run
/// let users = segkit_connectors::open("data/users.csv")?;
/// let events = segkit_connectors::open("s3://my-bucket/events/2026-*.parquet")?;
/// # Ok::<(), segkit::Error>(())
/// ```
pub fn open(location: &str) -> Result<Arc<dyn Source>> {
    let format = FileFormat::from_extension(location).ok_or_else(|| {
        Error::InvalidArgument(format!(
            "cannot infer the format of `{location}` from its extension (expected .csv, .tsv, .ndjson, .jsonl, .json, \
             .parquet, .pq, .xlsx, .xls or .ods, optionally .gz); use from_config with a `type`"
        ))
    })?;
    Ok(Arc::new(FileSource::new(location, format)?))
}

/// Builds a source from a JSON config:
///
/// ```json
/// {"type": "csv", "path": "data/*.csv.gz", "delimiter": ";", "encoding": "gbk", "null_values": ["NA", ""],
///  "file_column": true}
/// {"type": "json", "url": "s3://bucket/export.json", "record_path": "data",
///  "options": {"aws_region": "eu-west-1", "aws_secret_access_key": "env:AWS_SECRET"}}
/// {"type": "excel", "path": "report.xlsx", "sheet": "Q1", "header_row": 2}
/// ```
///
/// Keys (unknown ones are [`Error::Definition`] errors naming them, as are values of the wrong type):
///
/// - `type`: `csv`, `tsv`, `ndjson` (alias `jsonl`), `json` (array or NDJSON by the first character),
///   `parquet`, `excel` (aliases `xlsx`, `xls`, `ods`); if absent, from the extension.
/// - `path` or `url` (exactly one): a local path, a URL, or a glob of either.
/// - `options`: object_store options (values may be `env:NAME` references); `batch_size`: rows per batch;
///   `file_column`: `true` (column `_file`) or a column name; `compression`: `auto` (by `.gz`), `gzip`,
///   `none`; `encoding` (text formats): a WHATWG label, default `utf-8`.
/// - CSV: `delimiter`, `quote` (default `"`), `escape` (default none: quotes double), `comment` (one
///   character each; `\t` or `tab` for a tab), `header` (default true), `columns` (names), `null_values`
///   (a text or a list; default [`DEFAULT_NULL_VALUES`]).
/// - JSON: `record_path`: `"data"`, `"result.items"` or `["result", "items"]`.
/// - Excel: `sheet` (a name or 0-based index), `header_row` (0-based, default 0), `merged_headers`
///   (`repeat` or `join`; see [`MergedHeaders`]).
pub fn from_config(config: &Value) -> Result<Arc<dyn Source>> {
    let p = config::parse(config)?;
    Ok(Arc::new(FileSource::with_options(&p.location, p.format, p.options, p.store_options)?))
}

/// A source over JSON objects in memory (e.g. an array of plain objects handed over by the Node binding).
///
/// Fields are delivered as text with the NDJSON convention (see the [module documentation](self)); the
/// schema is the union of the objects' keys in first-seen order, plus [`RAW_COLUMN`]. An element that is not
/// an object is delivered as a malformed row with its JSON text in [`RAW_COLUMN`].
#[derive(Debug, Clone)]
pub struct JsonRecordsSource {
    name: String,
    records: Arc<Vec<Value>>,
    schema: SchemaRef,
    batch_size: usize,
}

impl JsonRecordsSource {
    /// Wraps `records`.
    pub fn new(name: impl Into<String>, records: Vec<Value>) -> Self {
        let mut keys = KeyUnion::default();
        for r in &records {
            if let Value::Object(o) = r {
                for k in o.keys() {
                    keys.add(k);
                }
            }
        }
        JsonRecordsSource {
            name: name.into(),
            records: Arc::new(records),
            schema: text_schema(keys.into_names()),
            batch_size: DEFAULT_BATCH_SIZE,
        }
    }

    /// Rows per batch (default 65 536).
    pub fn with_batch_size(mut self, rows: usize) -> Self {
        self.batch_size = rows.max(1);
        self
    }

    /// The number of records.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether there are no records.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
}

#[async_trait]
impl Source for JsonRecordsSource {
    fn name(&self) -> String {
        self.name.clone()
    }

    async fn schema(&self) -> Result<SchemaRef> {
        Ok(self.schema.clone())
    }

    async fn scan(&self, request: &ScanRequest) -> Result<BatchStream> {
        let projection = match &request.projection {
            Some(fields) => Some(
                fields
                    .iter()
                    .map(|f| {
                        self.schema
                            .index_of(f)
                            .map_err(|_| Error::InvalidArgument(format!("source `{}` has no field `{f}`", self.name)))
                    })
                    .collect::<Result<Vec<_>>>()?,
            ),
            None => None,
        };
        let records = self.records.clone();
        let schema = self.schema.clone();
        let size = self.batch_size;
        let name = self.name.clone();
        let chunks = records.len().div_ceil(size);
        Ok(futures::stream::iter(0..chunks)
            .map(move |c| {
                let mut b = TextBatchBuilder::new(schema.clone());
                for (k, r) in records[c * size..((c + 1) * size).min(records.len())].iter().enumerate() {
                    match r {
                        Value::Object(o) => b.push_object(o.iter().map(|(k, v)| (k.as_str(), v))),
                        other => b.push_raw(
                            &other.to_string(),
                            &format!("{name} element {}: not a JSON object", c * size + k + 1),
                        ),
                    }
                }
                let batch = b.finish()?.expect("chunks are non-empty");
                Ok(match &projection {
                    Some(idx) => batch.project(idx)?,
                    None => batch,
                })
            })
            .boxed())
    }

    fn capabilities(&self) -> SourceCapabilities {
        let mut c = SourceCapabilities::default();
        c.projection = true;
        c
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;

    use futures::StreamExt;

    use super::{decode::LOCAL_READ_BYTES, FileFormat, FileSource};

    /// A scan of a local file from a byte offset reads it in chunks of `LOCAL_READ_BYTES` (not object_store's
    /// 8 KiB, each a hop to the blocking pool), gives exactly the bytes from the offset on and counts their line
    /// ends.
    #[tokio::test]
    async fn local_ranges_are_read_in_large_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.csv");
        let mut data = b"id,name\n".to_vec();
        let mut i = 0u64;
        while data.len() < 2 * LOCAL_READ_BYTES + 12_345 {
            data.extend_from_slice(format!("{i},\"name {i}\"\n").as_bytes());
            i += 1;
        }
        std::fs::write(&path, &data).unwrap();
        let source = FileSource::new(path.to_str().unwrap(), FileFormat::csv()).unwrap();
        let resolved = source.resolve().await.unwrap();
        let f = resolved.files[0].clone();
        for start in [0u64, 8, 1_000_003] {
            let newlines = Arc::new(AtomicU64::new(0));
            let chunks: Vec<bytes::Bytes> =
                source.range_bytes(&f, start, newlines.clone()).await.unwrap().map(|c| c.unwrap()).collect().await;
            let want = &data[start as usize..];
            assert_eq!(chunks.len(), want.len().div_ceil(LOCAL_READ_BYTES), "start {start}");
            assert_eq!(chunks.concat(), want, "start {start}");
            let lines = want.iter().filter(|b| **b == b'\n').count() as u64;
            assert_eq!(newlines.load(Ordering::Relaxed), lines, "start {start}");
        }
    }
}
