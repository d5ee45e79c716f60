//! Source connectors for segkit.
//!
//! Each family of connectors is a module behind a cargo feature:
//!
//! - `file` (default): [`file::FileSource`] reads CSV/TSV, NDJSON and Parquet from a local path or an
//!   object_store URL (`file://`, `s3://`, …), and [`file::JsonRecordsSource`] wraps in-memory JSON objects.
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
mod registry;

pub use registry::registry;

#[cfg(feature = "file")]
pub use file::{from_config, open, FileFormat, FileSource, JsonRecordsSource, RAW_COLUMN};
