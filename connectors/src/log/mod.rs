//! Log files (feature `log`): lines parsed by a regex with named groups or a preset (nginx / Apache
//! combined, JSON lines, syslog RFC 3164 / RFC 5424), from one local file or a glob of them (gzip'd rotated
//! files included), read incrementally ("tail") from a persisted byte offset per file, following rotation.
//!
//! ```json
//! {"type": "log", "path": "/var/log/nginx/access.log*", "format": "nginx"}
//! {"type": "log", "path": "app/*.log", "pattern": "^(?P<ts>\\S+ \\S+) (?P<level>\\w+) (?P<msg>.*)$",
//!  "time_fields": ["ts"], "time_format": "%Y-%m-%d %H:%M:%S"}
//! ```
//!
//! Every column is delivered as text, and ingest parses it into the entity's attribute type (ints, floats,
//! booleans…); the time columns are first normalised by the connector to RFC 3339 in UTC from their
//! strftime format, so a timestamp attribute takes them as they are. A line that does not match, whose time
//! does not parse, that is not valid in the file's encoding, or that is longer than `max_line_bytes`, is
//! delivered as a malformed row ([`crate::RAW_COLUMN`] / [`crate::ERROR_COLUMN`]) that ingest quarantines with
//! its file, line number and byte offset — the lines around it are kept. Empty lines are skipped.
//!
//! # Tail mode and rotation
//!
//! The cursor holds, for each file read, its identity (device + inode, and a fingerprint — a hash of its
//! first bytes, up to 1 KiB) and the byte offset after the last complete line read. A scan from a cursor
//! reads, for every file the path or glob matches now:
//!
//! - a file with the same device + inode and the same first bytes: from its offset (a file renamed by
//!   rotation keeps its inode, so `access.log` → `access.log.1` has its remainder read);
//! - a file with the same device + inode but other first bytes, or shorter than its offset
//!   (copy-truncate): from 0;
//! - a new inode whose first bytes match a file of the cursor (a copy, e.g. `copytruncate`'s
//!   `access.log.1`, or the gzip'd `access.log.1.gz` of a file read before): from that file's offset;
//! - any other file: from 0.
//!
//! A last line without `\n` in a plain file is left for the next scan (the writer may be in the middle of
//! it); in a gzip'd file (finished by definition) or with `tail: false` it is read. Offsets of gzip'd files
//! count decompressed bytes; a gzip'd file read to its end is not decompressed again while its size is
//! unchanged.
//!
//! Memory is bounded: files are read in 64 KiB chunks on a blocking thread, lines longer than
//! `max_line_bytes` are never buffered beyond that bound, and rows go out in batches of `batch_size`.
//! Lines are split at the byte `\n`, so the encoding must be ASCII-compatible (UTF-8, GBK, GB18030, Big5,
//! Shift_JIS, windows-125x…; UTF-16 is refused). Paths are local (tail mode needs inodes).

mod format;
mod reader;

use std::fmt;
use std::sync::{Arc, Mutex};

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;
use futures::StreamExt;
use serde::Deserialize;
use serde_json::Value;

use segkit::{BatchStream, Error, Result, ScanRequest, Source, SourceCapabilities};

use crate::file::prelude::TextEncoding;
use crate::file::{ERROR_COLUMN, FILE_COLUMN, RAW_COLUMN};

pub use format::{Preset, MAX_PATTERN_BYTES};
pub use reader::FileCursor;

/// Default bound on a line's length, in bytes.
pub const DEFAULT_MAX_LINE_BYTES: usize = 64 * 1024;

/// Largest `max_line_bytes` a config may set.
pub const MAX_MAX_LINE_BYTES: usize = 64 << 20;

/// Rows per batch by default.
pub const DEFAULT_BATCH_SIZE: usize = 8192;

/// Most files one glob may match.
pub const MAX_FILES: usize = 100_000;

/// `true` (column `_file`), `false`, or a column name.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
enum FileColumn {
    On(bool),
    Named(String),
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(rename = "type")]
    _kind: String,
    path: String,
    format: Option<String>,
    pattern: Option<String>,
    fields: Option<Vec<String>>,
    time_fields: Option<Vec<String>>,
    time_format: Option<String>,
    null_values: Option<Vec<String>>,
    encoding: Option<String>,
    compression: Option<String>,
    max_line_bytes: Option<u64>,
    batch_size: Option<u64>,
    file_column: Option<FileColumn>,
    tail: Option<bool>,
}

/// How the files are compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Gzip {
    /// `.gz` files are gzip.
    Auto,
    Always,
    Never,
}

/// The parsed options of a log source.
#[derive(Debug)]
pub(crate) struct Options {
    pub(crate) parser: format::LineParser,
    /// The parsed columns (without file / raw / error).
    pub(crate) columns: Vec<String>,
    /// Column indexes of time columns, with their format.
    pub(crate) times: Vec<(usize, format::TimeFormat)>,
    pub(crate) null_values: Vec<String>,
    pub(crate) encoding: TextEncoding,
    pub(crate) gzip: Gzip,
    pub(crate) max_line_bytes: usize,
    pub(crate) batch_size: usize,
    pub(crate) file_column: Option<String>,
    pub(crate) tail: bool,
}

/// Log files read line by line; see the [module documentation](self).
pub struct LogSource {
    name: String,
    /// The path or glob as given.
    location: String,
    /// Literal base directory and compiled glob (relative to it), or `None` for one file.
    glob: Option<(std::path::PathBuf, globset::GlobMatcher)>,
    preset: Preset,
    options: Arc<Options>,
    schema: SchemaRef,
    cursor: Arc<Mutex<Option<Value>>>,
}

impl fmt::Debug for LogSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogSource")
            .field("name", &self.name)
            .field("location", &self.location)
            .field("format", &self.preset)
            .field("columns", &self.options.columns)
            .finish()
    }
}

/// Builds a log source from its JSON config (`type` `log`):
///
/// - `path` (required): a local file or a glob (`/var/log/nginx/access.log*`, `logs/**/*.log.gz`);
/// - `format`: `regex` (the default when `pattern` is given), `nginx`, `apache`, `json`, `syslog_rfc3164`
///   (alias `syslog`), `syslog_rfc5424`; `pattern`: the regex (named groups become columns; at most
///   [`MAX_PATTERN_BYTES`], compiled within `segkit::limits::MAX_REGEX_PROGRAM_BYTES`); `fields` (json): the
///   keys read as columns;
/// - `time_fields` / `time_format`: columns holding times and their strftime format (or `rfc3339`), normalised to
///   RFC 3339 UTC (the presets set their own: nginx `time_local`, Apache `time`, syslog `timestamp`);
/// - `null_values`: texts read as null (presets: `-`); `encoding`: an ASCII-compatible WHATWG label (default
///   `utf-8`); `compression`: `auto` (by `.gz`), `gzip`, `none`;
/// - `max_line_bytes` (default 65 536), `batch_size` (default 8192), `file_column` (`true` for `_file`, or a
///   name), `tail` (default `true`: incremental, see the module documentation).
///
/// Errors are [`Error::Definition`] naming the field (`source.pattern`, `source.format`, …).
pub fn from_config(config: &Value) -> Result<Arc<dyn Source>> {
    Ok(Arc::new(LogSource::from_config(config)?))
}

impl LogSource {
    /// See [`from_config`].
    pub fn from_config(config: &Value) -> Result<LogSource> {
        let c: RawConfig = segkit::sources::parse_config(config)?;
        let preset = match (&c.format, &c.pattern) {
            (Some(f), _) => Preset::parse(f).ok_or_else(|| {
                definition(
                    "source.format",
                    format!(
                        "unknown log format `{f}` (expected regex, nginx, apache, json, syslog_rfc3164, \
                         syslog_rfc5424)"
                    ),
                )
            })?,
            (None, Some(_)) => Preset::Regex,
            (None, None) => {
                return Err(definition(
                    "source.format",
                    "give a `format` (nginx, apache, json, syslog_rfc3164, syslog_rfc5424) or a regex `pattern`",
                ))
            }
        };
        if c.pattern.is_some() && preset != Preset::Regex {
            return Err(definition("source.pattern", "`pattern` goes with format `regex` only"));
        }
        let (parser, columns) = format::LineParser::new(preset, c.pattern.as_deref(), c.fields.as_deref())?;
        for (i, col) in columns.iter().enumerate() {
            if col == RAW_COLUMN || col == ERROR_COLUMN {
                return Err(definition("source.pattern", format!("`{col}` is reserved; rename that column")));
            }
            if columns[..i].contains(col) {
                return Err(definition("source.fields", format!("column `{col}` appears twice")));
            }
        }
        let mut times = vec![];
        let time_fields = match (&c.time_fields, preset.time()) {
            (Some(t), _) => t.clone(),
            (None, Some((col, _))) if c.time_format.is_none() || preset != Preset::Regex => vec![col.to_string()],
            (None, _) if c.time_format.is_some() => {
                return Err(definition("source.time_fields", "`time_format` needs `time_fields`"))
            }
            _ => vec![],
        };
        let fmt = c.time_format.clone().or(preset.time().map(|(_, f)| f.to_string()));
        for t in &time_fields {
            let i = columns.iter().position(|c| c == t).ok_or_else(|| {
                definition("source.time_fields", format!("`{t}` is not a column ({})", columns.join(", ")))
            })?;
            let f = fmt.clone().ok_or_else(|| {
                definition("source.time_format", "`time_fields` need a `time_format` (strftime or rfc3339)")
            })?;
            if f.is_empty() || f.len() > 256 {
                return Err(definition("source.time_format", "give a strftime format of 1 to 256 bytes"));
            }
            if !f.eq_ignore_ascii_case("rfc3339")
                && chrono::format::StrftimeItems::new(&f).any(|i| matches!(i, chrono::format::Item::Error))
            {
                return Err(definition("source.time_format", format!("invalid strftime format `{f}`")));
            }
            times.push((i, format::TimeFormat(f)));
        }
        let encoding = match &c.encoding {
            None => TextEncoding::default(),
            Some(l) => {
                let e = TextEncoding::for_label(l)
                    .ok_or_else(|| definition("source.encoding", format!("unknown text encoding `{l}`")))?;
                if !e.encoding().is_ascii_compatible() {
                    return Err(definition(
                        "source.encoding",
                        format!("{} is not ASCII-compatible: log lines are split at the byte \\n", e.name()),
                    ));
                }
                e
            }
        };
        let gzip = match c.compression.as_deref().map(str::to_ascii_lowercase).as_deref() {
            None | Some("auto") => Gzip::Auto,
            Some("gzip") | Some("gz") => Gzip::Always,
            Some("none") => Gzip::Never,
            Some(other) => {
                return Err(definition(
                    "source.compression",
                    format!("unknown compression `{other}` (expected auto, gzip or none)"),
                ))
            }
        };
        let max_line_bytes = match c.max_line_bytes {
            None => DEFAULT_MAX_LINE_BYTES,
            Some(n) if n >= 16 && n <= MAX_MAX_LINE_BYTES as u64 => n as usize,
            Some(n) => {
                return Err(definition(
                    "source.max_line_bytes",
                    format!("{n} is out of range (16 to {MAX_MAX_LINE_BYTES})"),
                ))
            }
        };
        let batch_size = match c.batch_size {
            None => DEFAULT_BATCH_SIZE,
            Some(n) if (1..=1_000_000).contains(&n) => n as usize,
            Some(n) => return Err(definition("source.batch_size", format!("{n} is out of range (1 to 1000000)"))),
        };
        let file_column = match c.file_column {
            None | Some(FileColumn::On(false)) => None,
            Some(FileColumn::On(true)) => Some(FILE_COLUMN.to_string()),
            Some(FileColumn::Named(n)) => Some(n),
        };
        if let Some(fc) = &file_column {
            if columns.contains(fc) || fc == RAW_COLUMN || fc == ERROR_COLUMN {
                return Err(definition("source.file_column", format!("`{fc}` is already a column")));
            }
        }
        if c.path.contains("://") && !c.path.starts_with("file://") {
            return Err(definition("source.path", "log files are read from local paths only"));
        }
        let path = c.path.strip_prefix("file://").unwrap_or(&c.path).to_string();
        let (glob, shown) = match crate::file::split_glob(&path) {
            Some((base, pattern)) => {
                let g = globset::GlobBuilder::new(pattern)
                    .literal_separator(true)
                    .build()
                    .map_err(|e| definition("source.path", format!("invalid glob pattern `{pattern}`: {e}")))?;
                (
                    Some((std::path::PathBuf::from(base), g.compile_matcher())),
                    pattern.rsplit('/').next().unwrap_or(pattern),
                )
            }
            None => {
                if path.trim().is_empty() {
                    return Err(definition("source.path", "empty path"));
                }
                (None, path.rsplit('/').next().unwrap_or(&path))
            }
        };
        let mut fields: Vec<Field> = columns.iter().map(|c| Field::new(c, DataType::Utf8, true)).collect();
        if let Some(fc) = &file_column {
            fields.push(Field::new(fc, DataType::Utf8, true));
        }
        fields.push(Field::new(RAW_COLUMN, DataType::Utf8, true));
        fields.push(Field::new(ERROR_COLUMN, DataType::Utf8, true));
        let mut null_values = c.null_values.unwrap_or_else(|| preset.null_values());
        null_values.dedup();
        Ok(LogSource {
            name: format!("log:{shown}"),
            location: path.clone(),
            glob,
            preset,
            schema: Arc::new(Schema::new(fields)),
            options: Arc::new(Options {
                parser,
                columns,
                times,
                null_values,
                encoding,
                gzip,
                max_line_bytes,
                batch_size,
                file_column,
                tail: c.tail.unwrap_or(true),
            }),
            cursor: Arc::new(Mutex::new(None)),
        })
    }

    /// The files the path or glob matches now, oldest first (by modification time, then path).
    pub fn files(&self) -> Result<Vec<std::path::PathBuf>> {
        let path = &self.location;
        let Some((base, matcher)) = &self.glob else {
            let p = std::path::PathBuf::from(path);
            return match std::fs::metadata(&p) {
                Ok(m) if m.is_file() => Ok(vec![p]),
                Ok(_) => Err(self.err(format!("`{path}` is not a file"))),
                Err(e) => Err(self.err(format!("cannot read `{path}`: {e}"))),
            };
        };
        let mut out = vec![];
        let mut dirs = vec![base.to_path_buf()];
        while let Some(dir) = dirs.pop() {
            let entries =
                std::fs::read_dir(&dir).map_err(|e| self.err(format!("cannot list `{}`: {e}", dir.display())))?;
            for entry in entries {
                let entry = entry.map_err(|e| self.err(format!("cannot list `{}`: {e}", dir.display())))?;
                let p = entry.path();
                let ft = entry.file_type().map_err(|e| self.err(e.to_string()))?;
                if ft.is_dir() {
                    dirs.push(p);
                    continue;
                }
                let Ok(rel) = p.strip_prefix(base) else { continue };
                if matcher.is_match(rel) {
                    match std::fs::metadata(&p) {
                        Ok(m) if m.is_file() => out.push((m.modified().ok(), p)),
                        _ => {}
                    }
                    if out.len() > MAX_FILES {
                        return Err(self.err(format!("the glob matches more than {MAX_FILES} files; narrow it")));
                    }
                }
            }
        }
        if out.is_empty() {
            return Err(self.err(format!("no file matches `{}`", self.location)));
        }
        out.sort();
        Ok(out.into_iter().map(|(_, p)| p).collect())
    }

    fn err(&self, message: impl Into<String>) -> Error {
        Error::Source { source_name: self.name.clone(), message: message.into(), cause: None }
    }
}

#[async_trait]
impl Source for LogSource {
    fn name(&self) -> String {
        self.name.clone()
    }

    /// The format's columns, then the file column if asked for, then `_raw` and `_error` (all Utf8).
    async fn schema(&self) -> Result<SchemaRef> {
        Ok(self.schema.clone())
    }

    async fn scan(&self, request: &ScanRequest) -> Result<BatchStream> {
        *self.cursor.lock().expect("cursor lock") = None;
        let previous: Vec<FileCursor> = match (&request.cursor, self.options.tail) {
            (Some(c), true) => reader::parse_cursor(c).map_err(|m| self.err(format!("invalid cursor: {m}")))?,
            _ => vec![],
        };
        let files = self.files()?;
        let (tx, mut rx) = tokio::sync::mpsc::channel(2);
        let job = reader::Job {
            name: self.name.clone(),
            schema: self.schema.clone(),
            options: self.options.clone(),
            files,
            previous,
            cursor: self.cursor.clone(),
            now: chrono::Utc::now(),
        };
        tokio::task::spawn_blocking(move || job.run(tx));
        Ok(futures::stream::poll_fn(move |cx| rx.poll_recv(cx)).boxed())
    }

    fn capabilities(&self) -> SourceCapabilities {
        if self.options.tail {
            SourceCapabilities::none().with_incremental()
        } else {
            SourceCapabilities::none()
        }
    }

    async fn cursor(&self) -> Result<Option<Value>> {
        Ok(self.cursor.lock().expect("cursor lock").clone())
    }
}

/// A config error at `path` (`source.pattern`, …).
pub(crate) fn definition(path: impl Into<String>, message: impl Into<String>) -> Error {
    Error::Definition { path: path.into(), message: message.into() }
}

/// The JSON Schema of this config for `types` (see [`segkit::spec::config_schema`]).
pub(crate) fn config_schema_variant(types: &[&str]) -> serde_json::Value {
    segkit::spec::config_schema::variant::<RawConfig>(types)
}
