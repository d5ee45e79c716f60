//! # segkit
//!
//! An embeddable engine for entity segmentation and automation, built on Arrow, DataFusion, Parquet and
//! object_store. Define entities and typed attributes, ingest data, group entities into segments with rule
//! trees, and act on who entered or left them.
//!
//! ```no_run
//! # async fn demo() -> segkit::Result<()> {
//! use segkit::{Attribute, DataType, Entity, SegmentDefinition, Workspace};
//! let ws = Workspace::open("./my-workspace").await?;
//! ws.define_entity(
//!     Entity::profile("user", "user_id")
//!         .attribute(Attribute::new("user_id", DataType::Int64))
//!         .attribute(Attribute::new("country", DataType::String)),
//! ).await?;
//! let rule = segkit::rules::Rule::parse_str(r#"{"attribute": "country", "op": "in", "value": ["CN", "US"]}"#)?;
//! ws.define_segment(SegmentDefinition::new("cn_us", "user", rule)).await?;
//! let run = ws.evaluate("cn_us").await?;
//! println!("{} members, {} entered", run.count, run.entered.num_rows());
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

pub mod action;
pub mod appender;
pub mod auth;
pub mod catalog;
pub mod clock;
pub mod encode;
pub mod error;
pub mod ingest;
pub mod limits;
pub mod memory;
pub mod model;
pub mod monitoring;
pub mod project;
pub mod rules;
pub mod segment;
pub mod source;
pub mod sources;
pub mod spec;
pub mod split;
pub mod store;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod workflow;
pub mod workspace;

pub use action::{Action, ActionFactory, ActionRegistry, Delivery, Outcome};
pub use clock::{Clock, FixedClock, SystemClock};
pub use error::{Error, ErrorKind, Result};
pub use ingest::{FieldMapping, IngestMode, IngestOptions, IngestReport, Mapping, Transform};
pub use model::{Attribute, DataType, Entity, EntityKind, Link};
pub use project::{ApplyOptions, Project};
pub use segment::{DryRun, SegmentDefinition, SegmentRun};
pub use source::{BatchStream, RecordBatchSource, ScanRequest, Source, SourceCapabilities};
pub use sources::{
    CancellationToken, IngestControl, Progress, SourceDefinition, SourceFactory, SourceInfo, SourceRegistry,
};
pub use split::Split;
pub use workspace::{
    ChangeKind, ChangesQuery, CompactReport, EntityDependents, ExplainNode, Explanation, MembersPage, MembersRun,
    PageRequest, QuarantineQuery, QuarantineSort, RowsPage, StaticListReport, SyncRecord, VacuumReport, Workspace,
    WorkspaceOptions, DEFAULT_DURABLE_DELIVERY_WINDOW, DEFAULT_INGEST_MEMORY, ORPHAN_GRACE,
};

/// Re-exports of the Arrow and DataFusion crates segkit is built on, so users get matching versions.
pub mod deps {
    pub use arrow;
    pub use datafusion;
    pub use object_store;
    pub use parquet;
}
