//! Source connectors for segkit.
//!
//! Each family of connectors is a module behind a cargo feature:
//!
//! - `file` (default): [`file::FileSource`] reads CSV/TSV, NDJSON and Parquet from a local path or an
//!   object_store URL (`file://`, `s3://`, …), and [`file::JsonRecordsSource`] wraps in-memory JSON objects.
//! - `postgres`, `mysql`, `sqlite`: [`db::DbSource`] reads a table or a query, fully or incrementally by a
//!   cursor column (see [`db`]).
//!
//! The entry points [`open`] (format from the extension) and [`from_config`] (a JSON config tagged by `type`)
//! return a ready `Arc<dyn Source>` for [`segkit::Workspace::ingest`].
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

#[cfg(feature = "file")]
pub use file::{open, FileFormat, FileSource, JsonRecordsSource, RAW_COLUMN};

/// Databases: PostgreSQL (`postgres`), MySQL / MariaDB (`mysql`), SQLite (`sqlite`); see [`db`].
#[cfg(feature = "db")]
pub mod db;

/// Builds a source from a JSON config tagged by `type`: a database (`postgres`, `mysql` / `mariadb`, `sqlite`,
/// see [`db`]) or a file (`csv`, `tsv`, `ndjson`, `parquet`, see [`file::from_config`]).
#[cfg(any(feature = "file", feature = "db"))]
pub fn from_config(config: &serde_json::Value) -> segkit::Result<std::sync::Arc<dyn segkit::Source>> {
    #[cfg(feature = "db")]
    if let Some(source) = db::from_config(config)? {
        return Ok(source);
    }
    #[cfg(feature = "file")]
    return file::from_config(config);
    #[cfg(not(feature = "file"))]
    Err(segkit::Error::Definition {
        path: "source.type".into(),
        message: "unknown source type (expected postgres, mysql, mariadb or sqlite)".into(),
    })
}
