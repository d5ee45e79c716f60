//! Named sources: a connector config, a field mapping and an ingest mode stored in the catalog under a name,
//! and synced incrementally with [`Workspace::sync`](crate::Workspace::sync).
//!
//! Core does not know connectors: it builds a source from its config through a [`SourceFactory`] given in
//! [`WorkspaceOptions::source_factory`](crate::WorkspaceOptions) — usually a [`SourceRegistry`] that maps each
//! config `type` to a builder (`segkit_connectors::registry()` registers the built-in connectors; a third-party
//! connector registers its own type).
//!
//! # Secrets
//!
//! A config holds **references** to secrets, never the secrets: `"password": "env:PG_PASSWORD"`. The reference
//! is stored in the catalog as written and resolved by the connector each time the source is built (at
//! `define_source`, to validate it, and at every `sync`). A field whose name says it is a secret (`password`,
//! `token`, `secret`, `api_key`, `client_secret`, `private_key`, `*_password`, `*_token`, `*_secret`,
//! `*_api_key`, `*_secret_access_key` …) given inline, and a URL with a password in it, are **refused** at
//! definition with an error naming the field (without echoing the value): refusing is the only way to keep
//! the secret out of the catalog file, its backups and everything that prints a definition.

mod control;
mod ipc;

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub(crate) use control::Tracker;
pub use control::{CancellationToken, IngestControl, Progress, ProgressFn, PROGRESS_INTERVAL};
pub use ipc::ArrowIpcSource;

use crate::error::{Error, Result};
use crate::ingest::{IngestMode, Mapping};
use crate::source::Source;

/// Builds sources from their JSON configs (the `config` of a [`SourceDefinition`]).
pub trait SourceFactory: Send + Sync + std::fmt::Debug {
    /// Builds the source `config` describes. Errors name the offending field as
    /// [`Error::Definition`] with a path such as `source.options.batch_size`.
    fn build(&self, config: &Value) -> Result<Arc<dyn Source>>;
}

/// A builder for one source `type`.
pub type SourceBuilder = Arc<dyn Fn(&Value) -> Result<Arc<dyn Source>> + Send + Sync>;

/// A [`SourceFactory`] that picks a builder by the config's `type` field — the open registry connectors plug
/// into (like delta-rs' log-store factories), rather than a closed match.
///
/// ```
/// use std::sync::Arc;
/// use segkit::sources::{SourceFactory, SourceRegistry};
/// let mut registry = SourceRegistry::new();
/// registry.register("memory", |_config| {
///     let schema = Arc::new(segkit::deps::arrow::datatypes::Schema::empty());
///     Ok(Arc::new(segkit::RecordBatchSource::empty("memory", schema)) as _)
/// });
/// assert!(registry.build(&serde_json::json!({"type": "memory"})).is_ok());
/// let e = registry.build(&serde_json::json!({"type": "memroy"})).unwrap_err();
/// assert!(e.to_string().contains("did you mean `memory`"), "{e}");
/// ```
#[derive(Clone, Default)]
pub struct SourceRegistry {
    builders: BTreeMap<String, SourceBuilder>,
}

impl std::fmt::Debug for SourceRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceRegistry").field("types", &self.types()).finish()
    }
}

impl SourceRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers (or replaces) the builder for configs whose `type` is `type_name` (matched ignoring ASCII
    /// case). The builder receives the whole config, `type` included.
    pub fn register(
        &mut self,
        type_name: &str,
        builder: impl Fn(&Value) -> Result<Arc<dyn Source>> + Send + Sync + 'static,
    ) -> &mut Self {
        self.builders.insert(type_name.to_ascii_lowercase(), Arc::new(builder));
        self
    }

    /// The registered types, sorted.
    pub fn types(&self) -> Vec<&str> {
        self.builders.keys().map(String::as_str).collect()
    }
}

impl SourceFactory for SourceRegistry {
    fn build(&self, config: &Value) -> Result<Arc<dyn Source>> {
        let Value::Object(m) = config else {
            return Err(Error::definition("source", "the config must be an object with a `type`"));
        };
        let t = match m.get("type") {
            Some(Value::String(t)) => t,
            Some(_) => return Err(Error::definition("source.type", "`type` must be a string")),
            None => {
                return Err(Error::definition(
                    "source.type",
                    format!("missing `type` (one of: {})", self.types().join(", ")),
                ))
            }
        };
        match self.builders.get(&t.to_ascii_lowercase()) {
            Some(b) => b(config),
            None => {
                let hint = crate::error::hint(t, self.types());
                Err(Error::definition(
                    "source.type",
                    format!("unknown source type `{t}`{hint} (registered: {})", self.types().join(", ")),
                ))
            }
        }
    }
}

/// Deserializes a connector config into `T` with serde, so a connector gets typed configs and errors that name
/// the field path (`source.pagination.page_size: invalid type: string "x", expected u32`).
///
/// ```
/// #[derive(serde::Deserialize)]
/// #[serde(deny_unknown_fields)]
/// struct Config { r#type: String, url: String, page_size: Option<u32> }
/// let e = segkit::sources::parse_config::<Config>(
///     &serde_json::json!({"type": "api", "url": "http://x", "page_size": "ten"})).err().unwrap();
/// assert!(e.to_string().starts_with("invalid definition of source.page_size: invalid type"), "{e}");
/// ```
pub fn parse_config<T: serde::de::DeserializeOwned>(config: &Value) -> Result<T> {
    serde_path_to_error::deserialize(config).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." { "source".to_string() } else { format!("source.{path}") };
        Error::definition(path, e.into_inner().to_string())
    })
}

/// Resolves a secret reference: `env:NAME` is the value of environment variable `NAME`; anything else is
/// returned as it is. `field` names the config field in the error (the value is never shown).
pub fn resolve_secret(field: &str, value: &str) -> Result<String> {
    match value.strip_prefix("env:") {
        Some(name) => std::env::var(name).map_err(|_| {
            Error::definition(
                format!("source.{field}"),
                format!("environment variable `{name}` (referenced as env:{name}) is not set"),
            )
        }),
        None => Ok(value.to_string()),
    }
}

/// Whether a config field name denotes a secret (see the [module documentation](self)).
pub fn is_secret_field(name: &str) -> bool {
    const EXACT: [&str; 8] = ["password", "passwd", "pwd", "secret", "token", "api_key", "apikey", "credentials"];
    const SUFFIX: [&str; 9] = [
        "_password",
        "_passwd",
        "_secret",
        "_token",
        "_api_key",
        "_apikey",
        "_secret_access_key",
        "_private_key",
        "_credentials",
    ];
    let n = name.to_ascii_lowercase().replace('-', "_");
    EXACT.contains(&n.as_str()) || SUFFIX.iter().any(|s| n.ends_with(s)) || n == "private_key"
}

/// Refuses inline secrets in `config` (see the [module documentation](self)): returns the path of the first
/// secret-named field holding a literal string, or of a URL with a password.
pub fn check_no_inline_secrets(config: &Value) -> Result<()> {
    fn walk(v: &Value, path: &str) -> Result<()> {
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    let p = format!("{path}.{k}");
                    if let Value::String(s) = v {
                        if is_secret_field(k) && !s.starts_with("env:") && !s.is_empty() {
                            return Err(Error::definition(
                                p,
                                format!(
                                    "`{k}` looks like a secret and is given inline; give a reference such as \
                                     \"env:MY_{}\" (the value is read from that environment variable when the \
                                     source is built and never stored)",
                                    k.to_ascii_uppercase().replace('-', "_")
                                ),
                            ));
                        }
                    }
                    walk(v, &p)?;
                }
                Ok(())
            }
            Value::Array(a) => a.iter().enumerate().try_for_each(|(i, v)| walk(v, &format!("{path}[{i}]"))),
            Value::String(s) => match url::Url::parse(s) {
                Ok(u) if u.password().is_some() => Err(Error::definition(
                    path,
                    "the URL has a password in it; put the password in its own field as an env:NAME reference",
                )),
                _ => Ok(()),
            },
            _ => Ok(()),
        }
    }
    walk(config, "source")
}

/// A named source as defined: where data comes from (`config`, tagged by `type`), which entity it feeds, how
/// its fields map to attributes and how each sync combines with the stored data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SourceDefinition {
    /// The source's name (same rules as entity names).
    pub name: String,
    /// The target entity.
    pub entity: String,
    /// The connector config, tagged by `type`; secrets as `env:NAME` references.
    pub config: Value,
    /// Field mapping (see [`Mapping`]): attribute → source field, or `{source, constant, transforms}`.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, Value>")]
    pub mapping: Mapping,
    /// Ingest mode (default: upsert for profiles, append for events).
    #[serde(default)]
    pub mode: Option<IngestMode>,
}

impl SourceDefinition {
    /// A source named `name` feeding `entity` from `config`, with the default mapping and mode.
    pub fn new(name: impl Into<String>, entity: impl Into<String>, config: Value) -> Self {
        SourceDefinition { name: name.into(), entity: entity.into(), config, mapping: Mapping::default(), mode: None }
    }
    /// Sets the mapping.
    pub fn mapping(mut self, mapping: Mapping) -> Self {
        self.mapping = mapping;
        self
    }
    /// Sets the mode.
    pub fn mode(mut self, mode: IngestMode) -> Self {
        self.mode = Some(mode);
        self
    }
}

/// A stored named source: its definition and its sync state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceInfo {
    /// The definition.
    #[serde(flatten)]
    pub definition: SourceDefinition,
    /// The cursor committed by the last sync (incremental sources), handed to the next scan.
    pub cursor: Option<Value>,
    /// The entity snapshot the last committing sync produced.
    pub snapshot: Option<i64>,
    /// When the definition or the sync state last changed (RFC 3339).
    pub updated_at: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn inline_secrets_are_refused_with_the_field_path_and_without_the_value() {
        let e = check_no_inline_secrets(&json!({"type": "pg", "auth": {"password": "hunter2"}})).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Definition);
        assert!(e
            .to_string()
            .starts_with("invalid definition of source.auth.password: `password` looks like a secret"));
        assert!(!e.to_string().contains("hunter2"), "{e}");
        let e = check_no_inline_secrets(&json!({"options": {"aws_secret_access_key": "AKIA"}})).unwrap_err();
        assert!(e.to_string().contains("source.options.aws_secret_access_key"), "{e}");
        let e = check_no_inline_secrets(&json!({"headers": [{"x": "1"}, {"Auth-Token": "t"}]})).unwrap_err();
        assert!(e.to_string().contains("source.headers[1].Auth-Token"), "{e}");
        let e = check_no_inline_secrets(&json!({"url": "postgres://u:hunter2@db/x"})).unwrap_err();
        assert!(e.to_string().contains("source.url") && !e.to_string().contains("hunter2"), "{e}");
        check_no_inline_secrets(&json!({"password": "env:PG_PASSWORD", "token_path": "next", "url": "http://h/x"}))
            .unwrap();
    }

    #[test]
    fn secret_field_names() {
        for n in ["password", "Token", "api-key", "client_secret", "aws_secret_access_key", "private_key"] {
            assert!(is_secret_field(n), "{n}");
        }
        for n in ["token_path", "next_token_field", "user", "secretary", "path"] {
            assert!(!is_secret_field(n), "{n}");
        }
    }

    #[test]
    fn secrets_resolve_from_the_environment_only_when_referenced() {
        assert_eq!(resolve_secret("password", "plain").unwrap(), "plain");
        let e = resolve_secret("password", "env:SEGKIT_SURELY_UNSET_VAR").unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid definition of source.password: environment variable `SEGKIT_SURELY_UNSET_VAR` (referenced as \
             env:SEGKIT_SURELY_UNSET_VAR) is not set"
        );
    }
}
