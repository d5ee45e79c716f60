//! The JSON config of file sources (`{"type": "csv", "path": …}`), parsed with serde; unknown fields are
//! refused with their path.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use segkit::{Error, Result};

use super::csv::CsvOptions;
use super::{Compression, ExcelOptions, FileFormat, FileOptions, JsonOptions, MergedHeaders, SheetRef};

/// A text or a list of texts.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

/// `true` (column `_file`), `false`, or a column name.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
enum FileColumn {
    On(bool),
    Named(String),
}

/// A sheet name or a 0-based index.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
enum Sheet {
    Index(u32),
    Name(String),
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(rename = "type")]
    kind: Option<String>,
    path: Option<String>,
    url: Option<String>,
    #[serde(default)]
    options: BTreeMap<String, Value>,
    batch_size: Option<u64>,
    file_column: Option<FileColumn>,
    compression: Option<String>,
    encoding: Option<String>,
    on_change: Option<String>,
    // csv
    delimiter: Option<String>,
    quote: Option<String>,
    escape: Option<String>,
    comment: Option<String>,
    header: Option<bool>,
    columns: Option<Vec<String>>,
    null_values: Option<OneOrMany>,
    // json
    record_path: Option<OneOrMany>,
    // excel
    sheet: Option<Sheet>,
    header_row: Option<u32>,
    merged_headers: Option<String>,
}

/// The keys a file config may have, for messages.
pub(crate) const KEYS: &[&str] = &[
    "type",
    "path",
    "url",
    "options",
    "batch_size",
    "file_column",
    "compression",
    "encoding",
    "on_change",
    "delimiter",
    "quote",
    "escape",
    "comment",
    "header",
    "columns",
    "null_values",
    "record_path",
    "sheet",
    "header_row",
    "merged_headers",
];

pub(crate) fn config_error(field: &str, message: impl Into<String>) -> Error {
    let path = if field.is_empty() { "source".to_string() } else { format!("source.{field}") };
    Error::Definition { path, message: message.into() }
}

fn one_byte(field: &str, v: &str) -> Result<u8> {
    let v = match v {
        "\\t" | "tab" => "\t",
        other => other,
    };
    match v.as_bytes() {
        [b] if v.is_ascii() => Ok(*b),
        _ => Err(config_error(field, format!("`{field}` must be one ASCII character, got {v:?}"))),
    }
}

/// A parsed config: where, what format, the reading options and object_store options.
pub(crate) struct Parsed {
    pub(crate) location: String,
    pub(crate) format: FileFormat,
    pub(crate) options: FileOptions,
    pub(crate) store_options: Vec<(String, String)>,
}

/// The format named by a `type` (or an extension).
pub(crate) fn format_for_type(t: &str) -> Option<FileFormat> {
    Some(match t.to_ascii_lowercase().as_str() {
        "csv" => FileFormat::Csv(CsvOptions::default()),
        "tsv" => FileFormat::Csv(CsvOptions::tsv()),
        "ndjson" | "jsonl" => FileFormat::Json(JsonOptions::lines()),
        "json" => FileFormat::Json(JsonOptions::default()),
        "parquet" => FileFormat::Parquet,
        "excel" | "xlsx" | "xls" | "xlsm" | "xlsb" | "ods" => FileFormat::Excel(ExcelOptions::default()),
        _ => return None,
    })
}

pub(crate) fn parse(config: &Value) -> Result<Parsed> {
    if !config.is_object() {
        return Err(config_error("", "expected a JSON object such as {\"type\": \"csv\", \"path\": \"users.csv\"}"));
    }
    let raw: RawConfig = serde_path_to_error::deserialize(config).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        let field = if path == "." { String::new() } else { path };
        // serde names an unknown key in its message; put it in the path too.
        let field = match (field.is_empty(), inner.strip_prefix("unknown field `")) {
            (true, Some(rest)) => rest.split('`').next().unwrap_or_default().to_string(),
            _ => field,
        };
        if inner.starts_with("unknown field") {
            config_error(&field, format!("unknown key `{field}` (expected one of: {})", KEYS.join(", ")))
        } else {
            config_error(&field, inner)
        }
    })?;
    let location = match (raw.path, raw.url) {
        (Some(p), None) => p,
        (None, Some(u)) => u,
        (Some(_), Some(_)) => return Err(config_error("url", "give either `path` or `url`, not both")),
        (None, None) => return Err(config_error("path", "missing `path` (or `url`)")),
    };
    let mut format = match &raw.kind {
        Some(t) => format_for_type(t).ok_or_else(|| {
            config_error(
                "type",
                format!("unknown source type `{t}` (expected csv, tsv, ndjson, jsonl, json, parquet, excel, arrow_ipc, postgres, mysql, mariadb or sqlite)"),
            )
        })?,
        None => FileFormat::from_extension(&location).ok_or_else(|| {
            config_error("type", format!("missing `type`, and it cannot be inferred from `{location}`"))
        })?,
    };
    let label = format.label();
    let only = |field: &str, present: bool, wanted: &str| -> Result<()> {
        if present {
            return Err(config_error(field, format!("`{field}` applies to {wanted} sources only, not {label}")));
        }
        Ok(())
    };
    match &mut format {
        FileFormat::Csv(o) => {
            if let Some(d) = &raw.delimiter {
                o.delimiter = one_byte("delimiter", d)?;
            }
            if let Some(q) = &raw.quote {
                o.quote = one_byte("quote", q)?;
            }
            if let Some(e) = &raw.escape {
                o.escape = Some(one_byte("escape", e)?);
            }
            if let Some(c) = &raw.comment {
                o.comment = Some(one_byte("comment", c)?);
            }
            if let Some(h) = raw.header {
                o.header = h;
            }
            if let Some(c) = raw.columns {
                if c.is_empty() {
                    return Err(config_error("columns", "`columns` must name at least one column"));
                }
                o.columns = Some(c);
            }
            if let Some(n) = raw.null_values {
                o.null_values = match n {
                    OneOrMany::One(s) => vec![s],
                    OneOrMany::Many(v) => v,
                };
            }
            for (field, b) in [("delimiter", Some(o.delimiter)), ("quote", Some(o.quote)), ("escape", o.escape)] {
                if matches!(b, Some(b'\n' | b'\r')) {
                    return Err(config_error(field, format!("`{field}` cannot be a line break")));
                }
            }
            if o.delimiter == o.quote {
                return Err(config_error("quote", "the quote character cannot be the delimiter"));
            }
        }
        _ => {
            for (k, present) in [
                ("delimiter", raw.delimiter.is_some()),
                ("quote", raw.quote.is_some()),
                ("escape", raw.escape.is_some()),
                ("comment", raw.comment.is_some()),
                ("header", raw.header.is_some()),
                ("columns", raw.columns.is_some()),
                ("null_values", raw.null_values.is_some()),
            ] {
                only(k, present, "csv")?;
            }
        }
    }
    match &mut format {
        FileFormat::Json(j) => {
            if let Some(p) = raw.record_path {
                let parts: Vec<String> = match p {
                    OneOrMany::One(s) => s.split('.').map(str::to_string).collect(),
                    OneOrMany::Many(v) => v,
                };
                if parts.iter().any(String::is_empty) {
                    return Err(config_error("record_path", "`record_path` has an empty part"));
                }
                j.record_path = parts;
            }
        }
        _ => only("record_path", raw.record_path.is_some(), "json")?,
    }
    match &mut format {
        FileFormat::Excel(x) => {
            if let Some(s) = raw.sheet {
                x.sheet = match s {
                    Sheet::Index(i) => SheetRef::Index(i as usize),
                    Sheet::Name(n) => SheetRef::Name(n),
                };
            }
            if let Some(h) = raw.header_row {
                x.header_row = h;
            }
            if let Some(m) = raw.merged_headers {
                x.merged_headers = match m.as_str() {
                    "repeat" => MergedHeaders::Repeat,
                    "join" => MergedHeaders::Join,
                    other => {
                        return Err(config_error(
                            "merged_headers",
                            format!("unknown value `{other}` (expected `repeat` or `join`)"),
                        ))
                    }
                };
            }
        }
        _ => {
            only("sheet", raw.sheet.is_some(), "excel")?;
            only("header_row", raw.header_row.is_some(), "excel")?;
            only("merged_headers", raw.merged_headers.is_some(), "excel")?;
        }
    }
    let mut options = FileOptions::default();
    if let Some(e) = raw.encoding {
        if matches!(format, FileFormat::Parquet | FileFormat::Excel(_)) {
            return Err(config_error("encoding", format!("`encoding` applies to text sources only, not {label}")));
        }
        options.encoding = super::prelude::TextEncoding::for_label(&e).ok_or_else(|| {
            config_error(
                "encoding",
                format!("unknown encoding `{e}` (e.g. utf-8, gbk, gb18030, big5, utf-16le, utf-16be, shift_jis)"),
            )
        })?;
    }
    if let Some(c) = raw.compression {
        options.compression = match c.to_ascii_lowercase().as_str() {
            "auto" => Compression::Auto,
            "gzip" | "gz" => Compression::Gzip,
            "none" => Compression::None,
            other => {
                return Err(config_error(
                    "compression",
                    format!("unknown compression `{other}` (expected auto, gzip or none)"),
                ))
            }
        };
    }
    match raw.file_column {
        None | Some(FileColumn::On(false)) => {}
        Some(FileColumn::On(true)) => options.file_column = Some(super::FILE_COLUMN.to_string()),
        Some(FileColumn::Named(n)) if !n.trim().is_empty() => options.file_column = Some(n),
        Some(FileColumn::Named(_)) => return Err(config_error("file_column", "`file_column` must not be empty")),
    }
    if let Some(c) = raw.on_change {
        options.on_change = match c.as_str() {
            "error" => super::OnChange::Error,
            "reread" => super::OnChange::Reread,
            other => {
                return Err(config_error(
                    "on_change",
                    format!("unknown value `{other}` (expected `error` or `reread`)"),
                ))
            }
        };
    }
    if let Some(n) = raw.batch_size {
        if n == 0 || n > 1 << 24 {
            return Err(config_error("batch_size", "`batch_size` must be an integer from 1 to 16777216"));
        }
        options.batch_size = n as usize;
    }
    let mut store_options = vec![];
    for (k, v) in raw.options {
        let v = match v {
            Value::String(s) => s,
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            _ => {
                return Err(config_error(&format!("options.{k}"), "option values must be strings, numbers or booleans"))
            }
        };
        store_options.push((k, v));
    }
    Ok(Parsed { location, format, options, store_options })
}

/// The JSON Schema of this config for `types` (see [`segkit::spec::config_schema`]).
pub(crate) fn config_schema_variant(types: &[&str]) -> serde_json::Value {
    segkit::spec::config_schema::variant::<RawConfig>(types)
}
