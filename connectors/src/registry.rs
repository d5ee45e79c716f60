//! The registry of built-in connectors: every family registers its config `type`s here, behind its feature.

use segkit::sources::SourceRegistry;

/// A [`SourceRegistry`] with every connector compiled in (per cargo feature), for
/// [`segkit::WorkspaceOptions::source_factory`]:
///
/// - `file`: `csv`, `tsv`, `ndjson` (aliases `jsonl`, `json`), `parquet` — see [`crate::from_config`].
///
/// Register more types (your own connectors) on the returned registry before handing it to the workspace.
///
/// ```no_run
/// # async fn demo() -> segkit::Result<()> {
/// use segkit::{SourceDefinition, Workspace, WorkspaceOptions};
/// let ws = Workspace::open_with("./ws", WorkspaceOptions::default().source_factory(segkit_connectors::registry()))
///     .await?;
/// ws.define_source(SourceDefinition::new("users_csv", "user", serde_json::json!({"type": "csv", "path": "users.csv"})))
///     .await?;
/// let report = ws.sync("users_csv").await?;
/// # Ok(()) }
/// ```
pub fn registry() -> SourceRegistry {
    #[allow(unused_mut)]
    let mut r = SourceRegistry::new();
    #[cfg(feature = "file")]
    for t in ["csv", "tsv", "ndjson", "jsonl", "json", "parquet"] {
        r.register(t, crate::file::from_config);
    }
    r
}
