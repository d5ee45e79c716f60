//! JSON Schemas of plugin configs tagged by `type` — a source's `config` (connectors) and a workflow step's
//! `action` (actions) — for the project file's schema and the OpenAPI document. The crates that define the
//! config types make one [`variant`] per type (family) and [`one_of`] joins them, with an open alternative for
//! types registered by third parties, so a schema never rejects a config of a custom type.
//!
//! Secret-named fields ([`is_secret_field`](crate::sources::is_secret_field)) must be `env:NAME` references
//! (or empty): their schemas say so with a `pattern` and a description.

use schemars::generate::SchemaSettings;
use serde_json::{json, Value};

use crate::sources::is_secret_field;

/// The pattern of a secret field: an `env:NAME` reference, or empty.
pub const SECRET_REFERENCE_PATTERN: &str = r"^(env:\S+)?$";

/// The schema of a config type `T` (its own `type` field replaced by the `types` it is registered under, and
/// required), every subschema inlined so it can be placed anywhere.
pub fn variant<T: schemars::JsonSchema>(types: &[&str]) -> Value {
    let generator = SchemaSettings::draft2020_12()
        .with(|s| {
            s.inline_subschemas = true;
            s.meta_schema = None;
        })
        .into_generator();
    let mut v = generator.into_root_schema_for::<T>().to_value();
    if let Some(m) = v.as_object_mut() {
        m.insert("title".into(), Value::String(types.first().copied().unwrap_or_default().to_string()));
        let props = m.entry("properties").or_insert_with(|| json!({}));
        props["type"] = json!({"type": "string", "enum": types, "description": "The config type"});
        let required = m.entry("required").or_insert_with(|| json!([]));
        if let Some(r) = required.as_array_mut() {
            if !r.iter().any(|x| x == "type") {
                r.insert(0, json!("type"));
            }
        }
    }
    mark_secrets(&mut v);
    v
}

/// `{"oneOf": [variants…, open]}`: one of the built-in variants, or a config of another `type` (registered by a
/// third party: any object whose `type` is none of the built-in ones). `what` names the plugin kind in the
/// open alternative's description (`connector`, `action`).
pub fn one_of(variants: Vec<Value>, what: &str) -> Value {
    let builtin: Vec<Value> =
        variants.iter().flat_map(|v| v["properties"]["type"]["enum"].as_array().cloned().unwrap_or_default()).collect();
    let open = json!({
        "title": format!("custom {what}"),
        "description": format!(
            "A config of a {what} type registered by the application (not built in): `type` names it, the other \
             fields are that {what}'s. Secret fields take `env:NAME` references."
        ),
        "type": "object",
        "properties": {"type": {"type": "string", "minLength": 1, "not": {"enum": builtin}}},
        "required": ["type"],
    });
    let mut all = variants;
    all.push(open);
    json!({"oneOf": all})
}

/// Gives every secret-named string property (at any depth) the `env:NAME` pattern and says so.
fn mark_secrets(v: &mut Value) {
    match v {
        Value::Object(m) => {
            if let Some(Value::Object(props)) = m.get_mut("properties") {
                for (name, p) in props.iter_mut() {
                    if is_secret_field(name) && allows_string(p) {
                        if let Value::Object(pm) = p {
                            pm.insert("pattern".into(), Value::String(SECRET_REFERENCE_PATTERN.into()));
                            let d = pm.get("description").and_then(Value::as_str).unwrap_or_default().to_string();
                            let note = "A secret: an `env:NAME` reference, read from that environment variable when \
                                        the config is used and never stored.";
                            let d = if d.is_empty() { note.to_string() } else { format!("{d} {note}") };
                            pm.insert("description".into(), Value::String(d));
                        }
                    }
                }
            }
            for (_, x) in m.iter_mut() {
                mark_secrets(x);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(mark_secrets),
        _ => {}
    }
}

fn allows_string(p: &Value) -> bool {
    match &p["type"] {
        Value::String(t) => t == "string",
        Value::Array(ts) => ts.iter().any(|t| t == "string"),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(schemars::JsonSchema)]
    #[allow(dead_code)]
    struct Demo {
        r#type: String,
        host: String,
        password: Option<String>,
    }

    #[test]
    fn variants_name_their_types_and_mark_secrets_and_the_open_one_excludes_them() {
        let v = variant::<Demo>(&["demo", "demo2"]);
        assert_eq!(v["properties"]["type"]["enum"], json!(["demo", "demo2"]));
        assert_eq!(v["required"][0], "type");
        assert_eq!(v["properties"]["password"]["pattern"], SECRET_REFERENCE_PATTERN);
        assert!(v["properties"]["host"].get("pattern").is_none());
        let all = one_of(vec![v], "connector");
        let open = &all["oneOf"][1];
        assert_eq!(open["properties"]["type"]["not"]["enum"], json!(["demo", "demo2"]));
        assert_eq!(open["required"], json!(["type"]));
    }
}
