//! File sources: CSV/TSV, NDJSON and Parquet from a local path or an object_store URL, and JSON records in
//! memory.
//!
//! # Types and malformed records
//!
//! CSV and NDJSON have no (reliable) types, so every field is delivered as **text** (`Utf8`) and segkit's
//! ingest parses it per row into the attribute's type, quarantining the rows that do not parse. An empty CSV
//! field is null. NDJSON fields are delivered as: strings as-is, numbers and booleans as their JSON text,
//! arrays and objects as compact JSON text, `null` as null. Parquet is typed and delivered as stored.
//!
//! A record that cannot be read as a row — a CSV record with the wrong number of fields or invalid UTF-8, an
//! NDJSON line that is not a JSON object — does **not** abort the ingest. It is delivered, in its place in
//! the file's row order, as a row whose fields are all null and whose extra column [`RAW_COLUMN`] (`_raw`)
//! holds the record's raw text. CSV and NDJSON schemas always end with that column (null for good rows).
//! Ingest then quarantines the row because its key (or another required attribute) is missing, with the
//! row's 1-based number and the raw text in the quarantined record, so nothing is dropped silently.
//!
//! Row numbers count data records: for CSV, records after the header (a quoted field may span lines); for
//! NDJSON, non-blank lines (blank lines are skipped).

mod csv;
mod decode;
mod ndjson;
mod parquet;
mod text;

use std::fmt;
use std::path::Path as StdPath;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use futures::StreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use serde_json::Value;
use tokio::sync::OnceCell;
use url::Url;

use segkit::{BatchStream, Error, Result, ScanRequest, Source, SourceCapabilities};

use decode::decode_stream;
use text::{text_schema, KeyUnion, TextBatchBuilder, DEFAULT_BATCH_SIZE};

/// The extra text column of CSV and NDJSON sources that carries a malformed record's raw text (null for
/// well-formed rows). See the [module documentation](self).
pub const RAW_COLUMN: &str = segkit::source::MALFORMED_COLUMN;

/// The format of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FileFormat {
    /// Delimited text.
    Csv {
        /// Field delimiter (default `,`; `\t` for `.tsv`).
        delimiter: u8,
        /// Whether the first record names the columns (default true); without one, columns are named
        /// `column_1`, `column_2`, ….
        header: bool,
    },
    /// Newline-delimited JSON: one object per line.
    Ndjson,
    /// Apache Parquet.
    Parquet,
}

impl FileFormat {
    /// CSV with a header and `,` delimiter.
    pub fn csv() -> Self {
        FileFormat::Csv { delimiter: b',', header: true }
    }

    /// Infers the format from a path or URL's extension: `.csv`, `.tsv` (tab), `.ndjson` / `.jsonl` / `.json`,
    /// `.parquet` / `.pq` (case-insensitive; a URL's query and fragment are ignored).
    pub fn from_extension(location: &str) -> Option<Self> {
        let path = location.split(['?', '#']).next().unwrap_or(location);
        let ext = path.rsplit_once('.')?.1.to_ascii_lowercase();
        match ext.as_str() {
            "csv" => Some(FileFormat::csv()),
            "tsv" | "tab" => Some(FileFormat::Csv { delimiter: b'\t', header: true }),
            "ndjson" | "jsonl" | "json" => Some(FileFormat::Ndjson),
            "parquet" | "pq" => Some(FileFormat::Parquet),
            _ => None,
        }
    }

    /// The short name used in source names: `csv`, `tsv`, `ndjson`, `parquet`.
    pub fn label(&self) -> &'static str {
        match self {
            FileFormat::Csv { delimiter: b'\t', .. } => "tsv",
            FileFormat::Csv { .. } => "csv",
            FileFormat::Ndjson => "ndjson",
            FileFormat::Parquet => "parquet",
        }
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

/// A CSV, NDJSON or Parquet file read through object_store.
///
/// `Debug` and [`Source::name`] never show option values (credentials) or a URL's user info and query.
pub struct FileSource {
    name: String,
    location: String,
    format: FileFormat,
    option_keys: Vec<String>,
    store: Arc<dyn ObjectStore>,
    path: Path,
    batch_size: usize,
    schema: OnceCell<SchemaRef>,
}

impl fmt::Debug for FileSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let options: Vec<String> = self.option_keys.iter().map(|k| format!("{k}=<redacted>")).collect();
        f.debug_struct("FileSource")
            .field("name", &self.name)
            .field("location", &self.location)
            .field("format", &self.format)
            .field("options", &options)
            .field("batch_size", &self.batch_size)
            .finish()
    }
}

impl FileSource {
    /// A source over `location` (a local path, or a URL such as `file:///data/users.csv` or
    /// `s3://bucket/users.csv`) in `format`.
    pub fn new(location: &str, format: FileFormat) -> Result<Self> {
        Self::with_options(location, format, Vec::<(String, String)>::new())
    }

    /// Like [`new`](Self::new), with object_store options (e.g. `aws_region`, `aws_endpoint`,
    /// `aws_access_key_id`). A value written `env:NAME` is read from that environment variable now. For
    /// `s3://` URLs, `AWS_*` environment variables are used for options not given explicitly.
    pub fn with_options<K: Into<String>, V: Into<String>>(
        location: &str,
        format: FileFormat,
        options: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Self> {
        if let FileFormat::Csv { delimiter, .. } = format {
            if matches!(delimiter, b'"' | b'\n' | b'\r') {
                return Err(Error::InvalidArgument(format!("invalid CSV delimiter {:?}", delimiter as char)));
            }
        }
        let mut resolved = vec![];
        let mut option_keys = vec![];
        for (k, v) in options {
            let (k, v): (String, String) = (k.into(), v.into());
            resolved.push((k.to_ascii_lowercase(), resolve_secret(&k, &v)?));
            option_keys.push(k);
        }
        let url = to_url(location)?;
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
        let file_name = path.filename().map(str::to_string).unwrap_or_else(|| path.to_string());
        Ok(FileSource {
            name: format!("{}:{file_name}", format.label()),
            location: redact_url(&url),
            format,
            option_keys,
            store: Arc::from(store),
            path,
            batch_size: DEFAULT_BATCH_SIZE,
            schema: OnceCell::new(),
        })
    }

    /// Rows per batch for CSV and NDJSON, and the Parquet reader's batch size (default 65 536).
    pub fn with_batch_size(mut self, rows: usize) -> Self {
        self.batch_size = rows.max(1);
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

    async fn bytes(&self) -> Result<futures::stream::BoxStream<'static, object_store::Result<bytes::Bytes>>> {
        let got = self.store.get(&self.path).await.map_err(|e| Error::source_error(self.name.clone(), e))?;
        Ok(got.into_stream())
    }

    async fn discover(&self) -> Result<SchemaRef> {
        match &self.format {
            FileFormat::Csv { delimiter, header } => {
                let mut bytes = self.bytes().await?;
                let mut parser = csv::RecordParser::new(*delimiter);
                let mut names: Option<Vec<String>> = None;
                let mut on_record = |rec: csv::RecordView<'_>| {
                    names = Some(csv::header_names(&rec, *header));
                    Ok(false)
                };
                let mut more = true;
                while more {
                    match bytes.next().await {
                        Some(chunk) => {
                            let chunk = chunk.map_err(|e| Error::source_error(self.name.clone(), e))?;
                            if !chunk.is_empty() {
                                more = parser.feed(&chunk, &mut on_record)?;
                            }
                        }
                        None => {
                            parser.feed(&[], &mut on_record)?;
                            more = false;
                        }
                    }
                }
                match names {
                    Some(n) => Ok(text_schema(n)),
                    None if *header => Err(Error::Source {
                        source_name: self.name.clone(),
                        message: "the file is empty: no header record".into(),
                        cause: None,
                    }),
                    None => Ok(text_schema(vec![])),
                }
            }
            FileFormat::Ndjson => {
                let mut bytes = self.bytes().await?;
                let mut keys = ndjson::KeyScanner::default();
                while let Some(chunk) = bytes.next().await {
                    keys.feed(&chunk.map_err(|e| Error::source_error(self.name.clone(), e))?)?;
                }
                Ok(text_schema(keys.finish()?))
            }
            FileFormat::Parquet => parquet::schema(&self.name, &self.store, &self.path).await,
        }
    }

    fn projection_indices(&self, schema: &SchemaRef, fields: &[String]) -> Result<Vec<usize>> {
        fields
            .iter()
            .map(|f| {
                schema
                    .index_of(f)
                    .map_err(|_| Error::InvalidArgument(format!("source `{}` has no field `{f}`", self.name)))
            })
            .collect()
    }
}

#[async_trait]
impl Source for FileSource {
    fn name(&self) -> String {
        self.name.clone()
    }

    /// The schema: for CSV, the header (one read of the first record); for NDJSON, the union of the keys of
    /// all lines in first-seen order (one pass over the file); for Parquet, the file's schema. Computed once
    /// and cached.
    async fn schema(&self) -> Result<SchemaRef> {
        self.schema.get_or_try_init(|| self.discover()).await.cloned()
    }

    async fn scan(&self, request: &ScanRequest) -> Result<BatchStream> {
        let schema = self.schema().await?;
        let projection = match &request.projection {
            Some(fields) => Some(self.projection_indices(&schema, fields)?),
            None => None,
        };
        let stream = match &self.format {
            FileFormat::Csv { delimiter, header } => {
                let columns = schema.fields().len() - usize::from(schema.index_of(RAW_COLUMN).is_ok());
                let dec = csv::CsvDecoder::new(schema.clone(), columns, *delimiter, *header, self.batch_size);
                decode_stream(self.name.clone(), self.bytes().await?, dec)
            }
            FileFormat::Ndjson => {
                let dec = ndjson::NdjsonDecoder::new(schema.clone(), self.batch_size);
                decode_stream(self.name.clone(), self.bytes().await?, dec)
            }
            FileFormat::Parquet => {
                return parquet::scan(&self.name, &self.store, &self.path, schema, projection, self.batch_size).await
            }
        };
        Ok(match projection {
            None => stream,
            Some(idx) => stream.map(move |b| Ok(b?.project(&idx)?)).boxed(),
        })
    }

    fn capabilities(&self) -> SourceCapabilities {
        let mut c = SourceCapabilities::default();
        c.projection = true;
        c
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

/// Opens a file source from a local path or URL, inferring the format from the extension (`.csv`, `.tsv`,
/// `.ndjson` / `.jsonl` / `.json`, `.parquet` / `.pq`).
///
/// ```no_run
/// let users = segkit_connectors::open("data/users.csv")?;
/// let events = segkit_connectors::open("s3://my-bucket/events/2026-01.parquet")?;
/// # Ok::<(), segkit::Error>(())
/// ```
pub fn open(location: &str) -> Result<Arc<dyn Source>> {
    let format = FileFormat::from_extension(location).ok_or_else(|| {
        Error::InvalidArgument(format!(
            "cannot infer the format of `{location}` from its extension (expected .csv, .tsv, .ndjson, .jsonl, .json, \
             .parquet or .pq); use from_config with a `type`"
        ))
    })?;
    Ok(Arc::new(FileSource::new(location, format)?))
}

fn config_error(field: &str, message: impl Into<String>) -> Error {
    Error::Definition { path: format!("source.{field}"), message: message.into() }
}

/// Builds a source from a JSON config:
///
/// ```json
/// {"type": "csv", "path": "users.csv", "delimiter": ";", "header": true}
/// {"type": "parquet", "url": "s3://bucket/events.parquet",
///  "options": {"aws_region": "eu-west-1", "aws_secret_access_key": "env:AWS_SECRET"}}
/// ```
///
/// `type` is `csv`, `tsv`, `ndjson` (alias `jsonl`, `json`) or `parquet`; if absent it is inferred from the
/// extension. Exactly one of `path` / `url` is required. `delimiter` (one character) and `header` apply to
/// CSV only; `batch_size` sets rows per batch. `options` are object_store options whose values may be
/// `env:NAME` references. Unknown keys and types are [`Error::Definition`] errors naming the field.
pub fn from_config(config: &Value) -> Result<Arc<dyn Source>> {
    let Value::Object(m) = config else {
        return Err(config_error("", "expected a JSON object such as {\"type\": \"csv\", \"path\": \"users.csv\"}"));
    };
    const KEYS: [&str; 7] = ["type", "path", "url", "delimiter", "header", "options", "batch_size"];
    for k in m.keys() {
        if !KEYS.contains(&k.as_str()) {
            return Err(config_error(k, format!("unknown key `{k}` (expected one of: {})", KEYS.join(", "))));
        }
    }
    let text = |k: &str| -> Result<Option<&str>> {
        match m.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            Some(_) => Err(config_error(k, format!("`{k}` must be a string"))),
        }
    };
    let location = match (text("path")?, text("url")?) {
        (Some(p), None) => p,
        (None, Some(u)) => u,
        (Some(_), Some(_)) => return Err(config_error("url", "give either `path` or `url`, not both")),
        (None, None) => return Err(config_error("path", "missing `path` (or `url`)")),
    };
    let mut format = match text("type")? {
        Some(t) => match t.to_ascii_lowercase().as_str() {
            "csv" => FileFormat::csv(),
            "tsv" => FileFormat::Csv { delimiter: b'\t', header: true },
            "ndjson" | "jsonl" | "json" => FileFormat::Ndjson,
            "parquet" => FileFormat::Parquet,
            other => {
                return Err(config_error(
                    "type",
                    format!("unknown source type `{other}` (expected csv, tsv, ndjson or parquet)"),
                ))
            }
        },
        None => FileFormat::from_extension(location).ok_or_else(|| {
            config_error("type", format!("missing `type`, and it cannot be inferred from `{location}`"))
        })?,
    };
    match &mut format {
        FileFormat::Csv { delimiter, header } => {
            if let Some(d) = text("delimiter")? {
                let d = match d {
                    "\\t" | "tab" => "\t",
                    other => other,
                };
                match d.as_bytes() {
                    [b] if d.is_ascii() => *delimiter = *b,
                    _ => {
                        return Err(config_error(
                            "delimiter",
                            format!("`delimiter` must be one ASCII character, got {d:?}"),
                        ))
                    }
                }
            }
            match m.get("header") {
                None | Some(Value::Null) => {}
                Some(Value::Bool(b)) => *header = *b,
                Some(_) => return Err(config_error("header", "`header` must be true or false")),
            }
        }
        _ => {
            for k in ["delimiter", "header"] {
                if m.get(k).is_some_and(|v| !v.is_null()) {
                    return Err(config_error(k, format!("`{k}` applies to csv sources only")));
                }
            }
        }
    }
    let mut options = vec![];
    match m.get("options") {
        None | Some(Value::Null) => {}
        Some(Value::Object(o)) => {
            for (k, v) in o {
                let v = match v {
                    Value::String(s) => s.clone(),
                    Value::Number(n) => n.to_string(),
                    Value::Bool(b) => b.to_string(),
                    _ => {
                        return Err(config_error(
                            &format!("options.{k}"),
                            "option values must be strings, numbers or booleans",
                        ))
                    }
                };
                options.push((k.clone(), v));
            }
        }
        Some(_) => return Err(config_error("options", "`options` must be an object of object_store options")),
    }
    let mut source = FileSource::with_options(location, format, options)?;
    match m.get("batch_size") {
        None | Some(Value::Null) => {}
        Some(v) => match v.as_u64() {
            Some(n) if n > 0 => source = source.with_batch_size(n as usize),
            _ => return Err(config_error("batch_size", "`batch_size` must be a positive integer")),
        },
    }
    Ok(Arc::new(source))
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
        let chunks = records.len().div_ceil(size);
        Ok(futures::stream::iter(0..chunks)
            .map(move |c| {
                let mut b = TextBatchBuilder::new(schema.clone());
                for r in &records[c * size..((c + 1) * size).min(records.len())] {
                    match r {
                        Value::Object(o) => b.push_object(o.iter().map(|(k, v)| (k.as_str(), v))),
                        other => b.push_raw(&other.to_string()),
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
