//! Source connectors for segkit.
//!
//! Each family of connectors is a module behind a cargo feature:
//!
//! - `file` (default): [`file::FileSource`] reads CSV/TSV, NDJSON, JSON arrays and Parquet — plain or gzip'd,
//!   in UTF-8, GBK, GB18030, Big5, UTF-16 or any other WHATWG encoding — from a local path or an object_store
//!   URL (`file://`, `s3://`, …), one file or a glob of many; [`file::JsonRecordsSource`] wraps in-memory JSON
//!   objects.
//! - `excel` (default): spreadsheets (`.xlsx`, `.xlsm`, `.xlsb`, `.xls`, `.ods`) through calamine, as
//!   [`file::FileFormat::Excel`].
//! - `log`: [`log::LogSource`] reads log files (regex with named groups, nginx / Apache combined, JSON lines,
//!   syslog RFC 3164 / 5424), tailing them from a byte offset per file and following rotation.
//! - `postgres`, `mysql`, `sqlite`: [`db::DbSource`] reads a table or a query, fully or incrementally by a
//!   cursor column (see [`db`]).
//!
//! The entry points [`open`] (format from the extension) and [`from_config`] (a JSON config tagged by `type`)
//! return a ready `Arc<dyn Source>` for [`segkit::Workspace::ingest`]; [`infer_entity`] proposes an entity
//! definition from a sample of any source.
//!
//! ```no_run
//! # async fn demo() -> segkit::Result<()> {
//! let ws = segkit::Workspace::open("./ws").await?;
//! let source = segkit_connectors::open("users.csv")?;
//! let report = ws.ingest("user", source.as_ref(), Default::default()).await?;
//! println!("{} rows, {} quarantined", report.rows_written, report.rows_quarantined);
//! # Ok(()) }
//! ```

#[cfg(feature = "file")]
pub mod file;
pub mod infer;
/// Arrow IPC files (`arrow_ipc`), segkit's `ArrowIpcSource` configured like the file connectors; see [`ipc`].
#[cfg(feature = "file")]
pub mod ipc;
mod registry;

pub use registry::{config_schema, registry};

#[cfg(feature = "file")]
pub use file::{
    CsvOptions, ExcelOptions, FileFormat, FileOptions, FileSource, JsonOptions, JsonRecordsSource, ERROR_COLUMN,
    FILE_COLUMN, RAW_COLUMN,
};
pub use infer::{infer_entity, InferOptions, InferredEntity};

/// Kafka topics of JSON messages (`kafka`): assigned partitions or a consumer group, offsets as the cursor,
/// drain and continuous modes; see [`kafka`].
#[cfg(feature = "kafka")]
pub mod kafka;

/// Log files with tail mode and rotation (feature `log`); see [`log`].
#[cfg(feature = "log")]
pub mod log;

/// HTTP JSON APIs (`http`): pagination, auth, retries, rate limit; see [`http`].
#[cfg(feature = "http")]
pub mod http;

/// Databases: PostgreSQL (`postgres`), MySQL / MariaDB (`mysql`), SQLite (`sqlite`); see [`db`].
#[cfg(feature = "db")]
pub mod db;

/// Opens a file source from a local path, URL or glob, inferring the format from the extension: an Arrow IPC
/// file (`.arrow`, `.arrows`, `.feather`, `.ipc`; see [`ipc`]) or any format of [`file::open`].
#[cfg(feature = "file")]
pub fn open(location: &str) -> segkit::Result<std::sync::Arc<dyn segkit::Source>> {
    if ipc::is_ipc_location(location) {
        return ipc::open(location);
    }
    file::open(location)
}

/// Builds a source from a JSON config tagged by `type`: a database (`postgres`, `mysql` / `mariadb`, `sqlite`,
/// see [`db`]), an Arrow IPC file (`arrow_ipc`, see [`ipc`]) or a file (`csv`, `tsv`, `ndjson`, `parquet`, see
/// [`file::from_config`]).
#[cfg(any(feature = "file", feature = "db"))]
pub fn from_config(config: &serde_json::Value) -> segkit::Result<std::sync::Arc<dyn segkit::Source>> {
    #[cfg(feature = "db")]
    if let Some(source) = db::from_config(config)? {
        return Ok(source);
    }
    #[cfg(feature = "file")]
    if ipc::is_ipc_config(config) {
        return ipc::from_config(config);
    }
    #[cfg(feature = "file")]
    return file::from_config(config);
    #[cfg(not(feature = "file"))]
    Err(segkit::Error::Definition {
        path: "source.type".into(),
        message: "unknown source type (expected postgres, mysql, mariadb or sqlite)".into(),
    })
}
