//! Arrow IPC files (config `type` `arrow_ipc`, aliases `arrow`, `ipc`, `feather`; extensions `.arrow`,
//! `.arrows`, `.feather`, `.ipc`): segkit's [`ArrowIpcSource`] configured the way the file connectors are.
//!
//! ```json
//! {"type": "arrow_ipc", "path": "exports/events.arrow"}
//! ```
//!
//! Keys: `type` (optional when the path has one of the extensions above), `path` (a local file, in the
//! streaming or the file format — told apart by the file format's magic), `name` (its name in reports and
//! errors; default the path). Arrow IPC files are read from the local disk only.

use std::sync::Arc;

use segkit::sources::ArrowIpcSource;
use segkit::{Error, Result, Source};
use serde::Deserialize;
use serde_json::Value;

/// The config `type`s of Arrow IPC files.
pub const TYPES: &[&str] = &["arrow_ipc", "arrow", "ipc", "feather"];

const EXTENSIONS: &[&str] = &["arrow", "arrows", "feather", "ipc"];

const KEYS: &[&str] = &["type", "path", "name"];

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(rename = "type")]
    kind: Option<String>,
    path: Option<String>,
    name: Option<String>,
}

fn config_error(field: &str, message: impl Into<String>) -> Error {
    let path = if field.is_empty() { "source".to_string() } else { format!("source.{field}") };
    Error::Definition { path, message: message.into() }
}

/// Whether `t` names an Arrow IPC file.
pub fn is_ipc_type(t: &str) -> bool {
    TYPES.contains(&t.to_ascii_lowercase().as_str())
}

/// Whether `location` ends in an Arrow IPC extension (case-insensitive).
pub fn is_ipc_location(location: &str) -> bool {
    location.rsplit_once('.').is_some_and(|(_, ext)| EXTENSIONS.iter().any(|e| ext.eq_ignore_ascii_case(e)))
}

/// Whether `config` describes an Arrow IPC file: its `type` says so, or it has none and its `path` ends in an
/// Arrow IPC extension.
pub fn is_ipc_config(config: &Value) -> bool {
    match config.get("type") {
        Some(Value::String(t)) => is_ipc_type(t),
        None => config.get("path").and_then(Value::as_str).is_some_and(is_ipc_location),
        Some(_) => false,
    }
}

fn local_path(location: &str, field: &str) -> Result<String> {
    if let Some(rest) = location.strip_prefix("file://") {
        return Ok(rest.to_string());
    }
    if location.contains("://") {
        return Err(config_error(
            field,
            format!("`{location}`: Arrow IPC files are read from the local disk only (a path or a file:// URL)"),
        ));
    }
    Ok(location.to_string())
}

/// An Arrow IPC file at a local path (or `file://` URL).
pub fn open(location: &str) -> Result<Arc<dyn Source>> {
    let path = local_path(location, "path")?;
    Ok(Arc::new(ArrowIpcSource::new(&path, location)))
}

/// Builds an [`ArrowIpcSource`] from a config (see the [module documentation](self)); unknown keys and values
/// of the wrong type are [`Error::Definition`] errors naming them.
pub fn from_config(config: &Value) -> Result<Arc<dyn Source>> {
    if !config.is_object() {
        return Err(config_error(
            "",
            "expected a JSON object such as {\"type\": \"arrow_ipc\", \"path\": \"events.arrow\"}",
        ));
    }
    let raw: RawConfig = serde_path_to_error::deserialize(config).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        match inner.strip_prefix("unknown field `") {
            Some(rest) => {
                let field = rest.split('`').next().unwrap_or_default();
                config_error(field, format!("unknown key `{field}` (expected one of: {})", KEYS.join(", ")))
            }
            None => config_error(if path == "." { "" } else { &path }, inner),
        }
    })?;
    if let Some(t) = &raw.kind {
        if !is_ipc_type(t) {
            return Err(config_error(
                "type",
                format!("`{t}` is not an Arrow IPC type (expected {})", TYPES.join(", ")),
            ));
        }
    }
    let location = raw.path.ok_or_else(|| config_error("path", "missing `path`"))?;
    if location.is_empty() {
        return Err(config_error("path", "`path` is empty"));
    }
    let path = local_path(&location, "path")?;
    let name = raw.name.unwrap_or_else(|| location.clone());
    Ok(Arc::new(ArrowIpcSource::new(&path, name)))
}

// Tested through the bindings (bindings/python/tests/test_admin.py, bindings/node/test/admin.test.js): a
// connectors-only test build would compile another DataFusion feature set.

/// The JSON Schema of this config for `types` (see [`segkit::spec::config_schema`]).
pub(crate) fn config_schema_variant(types: &[&str]) -> serde_json::Value {
    segkit::spec::config_schema::variant::<RawConfig>(types)
}
