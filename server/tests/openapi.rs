//! The OpenAPI document, checked by an independent validator (openapi-spec-validator from PyPI, in
//! `$SEGKIT_VENV` — scripts/test-all.sh installs it from scripts/requirements-services.txt — or
//! `/var/cache/segkit/venv`, `bindings/python/.venv`, or the system `python3`); the test fails with a clear
//! message when none has it.

use std::path::PathBuf;
use std::process::Command;

fn validator_python() -> PathBuf {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let mut candidates: Vec<PathBuf> =
        std::env::var_os("SEGKIT_VENV").map(|v| PathBuf::from(v).join("bin/python")).into_iter().collect();
    candidates.extend(
        ["/var/cache/segkit/venv/bin/python", &format!("{root}/bindings/python/.venv/bin/python"), "python3"]
            .map(PathBuf::from),
    );
    for py in candidates {
        let ok = Command::new(&py).args(["-c", "import openapi_spec_validator"]).output();
        if ok.is_ok_and(|o| o.status.success()) {
            return py;
        }
    }
    panic!(
        "no Python with openapi-spec-validator: pip install -r scripts/requirements-services.txt into a venv and \
         set SEGKIT_VENV to it"
    );
}

#[test]
fn the_openapi_document_passes_an_independent_validator() {
    let doc = segkit_server::api::openapi();
    let text = serde_json::to_string_pretty(&doc).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("openapi.json");
    std::fs::write(&path, &text).unwrap();
    let out = Command::new(validator_python())
        .args(["-c", "import json, sys; from openapi_spec_validator import validate; validate(json.load(open(sys.argv[1]))); print('valid')"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("valid"),
        "openapi-spec-validator: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // And a broken document is refused, so the check can fail.
    let broken = text.replacen("\"3.1.0\"", "\"9.9.9\"", 1);
    std::fs::write(&path, broken).unwrap();
    let out = Command::new(validator_python())
        .args([
            "-c",
            "import json, sys; from openapi_spec_validator import validate; validate(json.load(open(sys.argv[1])))",
        ])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success(), "a document claiming OpenAPI 9.9.9 must be refused");
}

// ------------------------------------------------------------------------------------- typed bodies and refs

use serde_json::{json, Value};

/// Follows `$ref`s (local JSON pointers) to the schema they name; `None` when one does not resolve.
fn resolve<'a>(doc: &'a Value, mut schema: &'a Value) -> Option<&'a Value> {
    for _ in 0..32 {
        let Some(r) = schema.get("$ref").and_then(Value::as_str) else { return Some(schema) };
        schema = doc.pointer(r.strip_prefix('#')?)?;
    }
    None
}

/// Whether `schema` says nothing about its value's shape: `true`, `{}`, or an object type without properties,
/// pattern properties, a schema for additional properties or a composition.
fn untyped(schema: &Value) -> bool {
    match schema {
        Value::Bool(true) => true,
        Value::Object(m) => {
            let typed_keys = ["properties", "patternProperties", "items", "oneOf", "anyOf", "allOf", "enum", "const"];
            if typed_keys.iter().any(|k| m.contains_key(*k)) {
                return false;
            }
            if m.get("additionalProperties").is_some_and(Value::is_object) {
                return false;
            }
            match m.get("type") {
                None => true,
                Some(Value::String(t)) => t == "object",
                Some(Value::Array(ts)) => ts.iter().all(|t| t == "object" || t == "null"),
                Some(_) => false,
            }
        }
        _ => false,
    }
}

/// Every problem with `doc`: operations whose request body or 2xx response body is untyped (or whose schema
/// reference does not resolve), and every `$ref` anywhere that does not resolve.
fn typing_problems(doc: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let mut check_body = |what: String, body: &Value| {
        let Some(content) = body.get("content").and_then(Value::as_object) else { return };
        for (media, c) in content {
            let Some(schema) = c.get("schema") else {
                problems.push(format!("{what} ({media}): no schema"));
                continue;
            };
            match resolve(doc, schema) {
                None => problems.push(format!("{what} ({media}): unresolved {schema}")),
                Some(s) if untyped(s) => problems.push(format!("{what} ({media}): untyped object {s}")),
                Some(_) => {}
            }
        }
    };
    for (path, item) in doc["paths"].as_object().into_iter().flatten() {
        for (method, op) in item.as_object().into_iter().flatten() {
            if let Some(body) = op.get("requestBody") {
                check_body(format!("{method} {path} request"), body);
            }
            for (status, resp) in op["responses"].as_object().into_iter().flatten() {
                if status.starts_with('2') {
                    check_body(format!("{method} {path} {status}"), resp);
                }
            }
        }
    }
    fn refs(doc: &Value, v: &Value, at: &str, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                if let Some(r) = m.get("$ref").and_then(Value::as_str) {
                    if r.strip_prefix('#').and_then(|p| doc.pointer(p)).is_none() {
                        out.push(format!("{at}: $ref {r} does not resolve"));
                    }
                }
                for (k, x) in m {
                    refs(doc, x, &format!("{at}/{k}"), out);
                }
            }
            Value::Array(a) => a.iter().enumerate().for_each(|(i, x)| refs(doc, x, &format!("{at}/{i}"), out)),
            _ => {}
        }
    }
    refs(doc, doc, "", &mut problems);
    problems
}

#[test]
fn every_request_and_2xx_body_is_typed_and_every_ref_resolves() {
    let doc = segkit_server::api::openapi();
    let problems = typing_problems(&doc);
    assert!(problems.is_empty(), "untyped bodies or dangling refs:\n{}", problems.join("\n"));
    // The check itself can fail: an untyped body and a dangling reference are both reported.
    let mut broken = doc.clone();
    broken["paths"]["/api/v1/entities"]["post"]["requestBody"]["content"]["application/json"]["schema"] =
        json!({"type": "object"});
    broken["components"]["schemas"]["Dangling"] = json!({"$ref": "#/components/schemas/NoSuchSchema"});
    let found = typing_problems(&broken);
    assert!(found.iter().any(|p| p.contains("post /api/v1/entities request") && p.contains("untyped")), "{found:?}");
    assert!(found.iter().any(|p| p.contains("NoSuchSchema") && p.contains("does not resolve")), "{found:?}");
}

#[test]
fn definition_bodies_are_core_request_model_schemas() {
    let doc = segkit_server::api::openapi();
    let schemas = &doc["components"]["schemas"];
    let project = segkit::project::json_schema();
    // The same schemas as the project file's (both generated by schemars from core's types), not a second copy.
    for name in ["EntitySpec", "SegmentSpec", "TemplateSpec", "WorkflowSpec", "ScheduleSpec", "SourceDefinition"] {
        let api = &schemas[name];
        let file = &project["$defs"][name];
        assert!(api.is_object() && file.is_object(), "{name} missing");
        let keys = |v: &Value| v["properties"].as_object().map(|m| m.keys().cloned().collect::<Vec<_>>());
        assert_eq!(keys(api), keys(file), "{name}: properties differ from the project schema's");
        assert!(keys(api).is_some_and(|k| k.contains(&"name".to_string())), "{name}");
    }
    // Refs point into components (OpenAPI), not `$defs`.
    let text = doc.to_string();
    assert!(!text.contains("#/$defs/"), "a schemars reference was left pointing at $defs");
    // The operations name them: create an entity with an EntitySpec, answer with one; PUT of a segment may leave
    // the name out; a list answers a page of the item type.
    let op = &doc["paths"]["/api/v1/entities"]["post"];
    assert_eq!(op["requestBody"]["content"]["application/json"]["schema"]["$ref"], "#/components/schemas/EntitySpec");
    assert_eq!(
        op["responses"]["201"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/EntitySpec"
    );
    let put = &doc["paths"]["/api/v1/segments/{name}"]["put"]["requestBody"]["content"]["application/json"]["schema"];
    let put = &schemas[put["$ref"].as_str().unwrap().rsplit('/').next().unwrap()];
    assert!(!put["required"].as_array().unwrap().contains(&json!("name")), "{put}");
    assert!(schemas["SegmentSpec"]["required"].as_array().unwrap().contains(&json!("name")));
    let page = &doc["paths"]["/api/v1/workflows"]["get"]["responses"]["200"]["content"]["application/json"]["schema"];
    let page = &schemas[page["$ref"].as_str().unwrap().rsplit('/').next().unwrap()];
    assert_eq!(page["properties"]["items"]["items"]["$ref"], "#/components/schemas/WorkflowSpec");
    assert_eq!(page["required"], json!(["items", "sort"]));
    // Lists take an empty offset, cursor or sort as none, and say so.
    let params = doc["paths"]["/api/v1/syncs"]["get"]["parameters"].as_array().unwrap();
    let offset = params.iter().find(|p| p["name"] == "offset").unwrap();
    assert_eq!(offset["allowEmptyValue"], true, "{offset}");
    assert!(params.iter().find(|p| p["name"] == "limit").unwrap().get("allowEmptyValue").is_none());
}

/// The `oneOf` choices of a typed plugin config: the names each built-in choice takes, and the open one.
fn plugin_choices(schema: &Value) -> (Vec<String>, Option<Value>) {
    let choices = schema["oneOf"].as_array().unwrap_or_else(|| panic!("no oneOf: {schema}"));
    let mut names = vec![];
    let mut open = None;
    for c in choices {
        match c["properties"]["type"]["enum"].as_array() {
            Some(e) => names.extend(e.iter().map(|t| t.as_str().unwrap().to_string())),
            None if c["properties"]["type"]["not"].is_object() => open = Some(c.clone()),
            None => {}
        }
    }
    (names, open)
}

/// Source configs and workflow action configs are typed (one schema per built-in type, an open alternative
/// for custom types, secrets as `env:NAME`) in the OpenAPI document and in the shipped project schema, which is
/// current.
#[test]
fn plugin_configs_are_typed_and_the_shipped_project_schema_is_current() {
    let doc = segkit_server::api::openapi();
    let project = segkit_server::api::project_schema();
    for (what, defs) in [("openapi", &doc["components"]["schemas"]), ("project", &project["$defs"])] {
        for source in ["SourceDefinition", "SourceDefinitionNameOptional"] {
            if what == "project" && source.ends_with("Optional") {
                continue;
            }
            let config = &defs[source]["properties"]["config"];
            let (names, open) = plugin_choices(config);
            for t in ["csv", "parquet", "arrow_ipc", "log", "postgres", "mysql", "sqlite", "kafka", "http"] {
                assert!(names.contains(&t.to_string()), "{what} {source}: no `{t}` in {names:?}");
            }
            let open = open.unwrap_or_else(|| panic!("{what}: no open alternative"));
            assert!(open["properties"]["type"]["not"]["enum"].as_array().unwrap().contains(&json!("csv")));
            // Fields are typed: a CSV config knows `delimiter`, refuses unknown fields; a database password
            // must be an env reference.
            let csv = config["oneOf"].as_array().unwrap().iter().find(|c| c["title"] == "csv").unwrap();
            assert!(csv["properties"]["delimiter"].is_object() && csv["additionalProperties"] == false, "{csv}");
            let db = config["oneOf"].as_array().unwrap().iter().find(|c| c["title"] == "postgres").unwrap();
            assert_eq!(db["properties"]["password"]["pattern"], segkit::spec::config_schema::SECRET_REFERENCE_PATTERN);
            assert!(db["properties"]["password"]["description"].as_str().unwrap().contains("env:NAME"));
        }
        let steps = defs["StepSpec"]["oneOf"].as_array().unwrap();
        let action =
            &steps.iter().find(|s| s["properties"]["type"]["const"] == "action").unwrap()["properties"]["action"];
        let (names, open) = plugin_choices(action);
        for t in ["jsonl", "smtp", "webhook", "wecom", "dingtalk", "feishu", "sms"] {
            assert!(names.contains(&t.to_string()), "{what}: no action `{t}` in {names:?}");
        }
        assert!(open.is_some(), "{what}: no open action alternative");
        assert!(action["oneOf"].as_array().unwrap().iter().any(|c| c["type"] == "string"), "a registered name");
        let smtp = action["oneOf"].as_array().unwrap().iter().find(|c| c["title"] == "smtp").unwrap();
        assert_eq!(smtp["properties"]["password"]["pattern"], segkit::spec::config_schema::SECRET_REFERENCE_PATTERN);
    }
    // The shipped file is this schema (rewritten when it is not: commit it).
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/project.schema.json");
    let text = serde_json::to_string_pretty(&project).unwrap() + "\n";
    let shipped = std::fs::read_to_string(&path).unwrap_or_default();
    if shipped != text {
        std::fs::write(&path, &text).unwrap();
        panic!("docs/project.schema.json was out of date and has been rewritten: commit it");
    }
}
