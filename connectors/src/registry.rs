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

/// The JSON Schema of a source `config` for the connectors of [`registry()`] (per cargo feature): `oneOf` one
/// schema per connector family, its `type` among that family's names, and an open alternative for types an
/// application registers itself (any object whose `type` is not built in). Secret fields are `env:NAME`
/// references. Used for the project file's schema and the REST API's OpenAPI document.
// Each push is behind its own cargo feature, so the vector cannot be one `vec![…]`.
#[allow(clippy::vec_init_then_push)]
pub fn config_schema() -> serde_json::Value {
    #[allow(unused_mut)]
    let mut variants: Vec<serde_json::Value> = vec![];
    #[cfg(feature = "file")]
    variants.push(crate::file::config_schema_variant(&["csv", "tsv", "ndjson", "jsonl", "json", "parquet", "excel"]));
    #[cfg(feature = "file")]
    variants.push(crate::ipc::config_schema_variant(crate::ipc::TYPES));
    #[cfg(feature = "log")]
    variants.push(crate::log::config_schema_variant(&["log"]));
    #[cfg(feature = "db")]
    {
        let mut db: Vec<&str> = vec![];
        #[cfg(feature = "postgres")]
        db.extend(["postgres", "postgresql"]);
        #[cfg(feature = "mysql")]
        db.extend(["mysql", "mariadb"]);
        #[cfg(feature = "sqlite")]
        db.extend(["sqlite", "sqlite3"]);
        if !db.is_empty() {
            variants.push(crate::db::config_schema_variant(&db));
        }
    }
    #[cfg(feature = "kafka")]
    variants.push(crate::kafka::config_schema_variant(&["kafka"]));
    #[cfg(feature = "http")]
    variants.push(crate::http::config_schema_variant(&["http"]));
    segkit::spec::config_schema::one_of(variants, "connector")
}
