//! The registry of built-in connectors: every family registers its config `type`s here, behind its feature.

use segkit::sources::SourceRegistry;

/// A [`SourceRegistry`] with every connector compiled in (per cargo feature), for
/// [`segkit::WorkspaceOptions::source_factory`]:
///
/// - `file`: `csv`, `tsv`, `ndjson` (aliases `jsonl`, `json`), `parquet`, `excel` — see [`crate::file::from_config`];
///   `arrow_ipc` (aliases `arrow`, `ipc`, `feather`) — see [`crate::ipc`];
/// - `log`: log files (regex, nginx / Apache, JSON lines, syslog), tailed — see [`crate::log`];
/// - `postgres` (`postgresql`), `mysql` (`mariadb`), `sqlite` (`sqlite3`) — see [`crate::db`];
/// - `kafka` — see [`crate::kafka`];
/// - `http` (feature `http`) — see [`crate::http`].
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
    for t in ["csv", "tsv", "ndjson", "jsonl", "json", "parquet", "excel"] {
        r.register(t, crate::file::from_config);
    }
    #[cfg(feature = "file")]
    for t in crate::ipc::TYPES {
        r.register(t, crate::ipc::from_config);
    }
    #[cfg(feature = "log")]
    r.register("log", crate::log::from_config);
    #[cfg(feature = "postgres")]
    for t in ["postgres", "postgresql"] {
        r.register(t, crate::from_config);
    }
    #[cfg(feature = "mysql")]
    for t in ["mysql", "mariadb"] {
        r.register(t, crate::from_config);
    }
    #[cfg(feature = "sqlite")]
    for t in ["sqlite", "sqlite3"] {
        r.register(t, crate::from_config);
    }
    #[cfg(feature = "kafka")]
    crate::kafka::register(&mut r);
    #[cfg(feature = "http")]
    r.register("http", crate::http::from_config);
    r
}
