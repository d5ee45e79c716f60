//! The request model (`segkit::spec`) against the shared fixture `tests/fixtures/specs.json`, which the Python and
//! Node suites run too: the same spec gives the same entity / members, or the same error (kind and message).

mod common;

use common::*;
use segkit::spec::{self, EntitySpec, IngestSpec, SegmentSpec};
use serde_json::{json, Value};

fn fixture_text() -> String {
    std::fs::read_to_string(format!("{FIXTURES}/specs.json")).unwrap()
}

fn cases() -> Vec<Value> {
    serde_json::from_str(&fixture_text()).unwrap()
}

/// The JSON text of each case's `spec`, as written (a `Value` would sort the keys of the attribute maps, whose
/// order is the storage order): the balanced value after each `"spec": `.
fn spec_texts() -> Vec<String> {
    let text = fixture_text();
    let mut out = vec![];
    for (at, _) in text.match_indices("\"spec\": ") {
        let rest = &text[at + 8..];
        let (mut depth, mut in_str, mut escaped) = (0usize, false, false);
        for (i, c) in rest.char_indices() {
            match (in_str, c) {
                (true, '\\') if !escaped => escaped = true,
                (true, '"') if !escaped => in_str = false,
                (true, _) => escaped = false,
                (false, '"') => in_str = true,
                (false, '{' | '[') => depth += 1,
                (false, '}' | ']') => {
                    depth -= 1;
                    if depth == 0 {
                        out.push(rest[..=i].to_string());
                        break;
                    }
                }
                _ => {}
            }
        }
    }
    out
}

/// The case's spec as JSON text, with `deep_not` (a rule nested that deep) filled in.
fn spec_of(case: &Value, text: &str) -> String {
    match case.get("deep_not").and_then(Value::as_u64) {
        None => text.to_string(),
        Some(depth) => {
            let mut rule = json!({"attribute": "age", "op": "gt", "value": 30});
            for _ in 1..depth {
                rule = json!({ "not": rule });
            }
            let mut spec = case["spec"].clone();
            spec["rule"] = rule;
            spec.to_string()
        }
    }
}

async fn run(ws: &segkit::Workspace, case: &Value, text: &str) -> segkit::Result<Value> {
    match case["kind"].as_str().unwrap() {
        "entity" => {
            let e = ws.define_entity(spec::from_json_text::<EntitySpec>(text)?.into_entity()?).await?;
            let attrs: Vec<Value> =
                e.attributes.iter().map(|a| json!([a.name, a.data_type.to_string(), a.nullable, a.pii])).collect();
            Ok(json!({ "attributes": attrs }))
        }
        "segment" => {
            let def = ws.define_segment(spec::from_json_text::<SegmentSpec>(text)?.into_definition()?).await?;
            let run = ws.evaluate(&def.name).await?;
            Ok(json!({ "members": ids(&run.members), "keep_runs": def.keep_runs }))
        }
        "ingest" => {
            let options = spec::from_json_text::<IngestSpec>(text)?.into_options()?;
            let csv = std::fs::read_to_string(format!("{FIXTURES}/people.csv")).unwrap();
            let r = ws.ingest_batches("people", vec![csv_batch(&csv)], options).await?;
            Ok(json!({ "rows_written": r.rows_written }))
        }
        other => panic!("unknown case kind {other}"),
    }
}

#[tokio::test]
async fn shared_spec_fixtures() {
    let (_dir, ws) = people_workspace().await;
    let cases = cases();
    let texts = spec_texts();
    assert!(cases.len() >= 20);
    assert_eq!(cases.len(), texts.len());
    for (case, text) in cases.iter().zip(&texts) {
        let name = case["name"].as_str().unwrap();
        assert_eq!(serde_json::from_str::<Value>(text).unwrap(), case["spec"], "{name}: spec text");
        let got = run(&ws, case, &spec_of(case, text)).await;
        match (&case["error"], got) {
            (Value::Null, Ok(out)) => {
                for key in ["attributes", "members", "keep_runs", "rows_written"] {
                    if let Some(want) = case.get(key) {
                        assert_eq!(&out[key], want, "{name}: {key}");
                    }
                }
            }
            (Value::Null, Err(e)) => panic!("{name}: unexpected error {e}"),
            (want, Ok(out)) => panic!("{name}: expected {want}, got {out}"),
            (want, Err(e)) => {
                assert_eq!(e.kind().as_str(), want["kind"], "{name}: {e}");
                assert_eq!(e.to_string(), want["message"].as_str().unwrap(), "{name}");
            }
        }
    }
}

/// The same outcome from JSON text and from a `Value` (the two ways bindings hand specs over).
#[test]
fn value_and_text_agree_on_errors() {
    for (case, text) in cases().iter().zip(spec_texts()) {
        let spec: Value = serde_json::from_str(&spec_of(case, &text)).unwrap();
        let (a, b) = match case["kind"].as_str().unwrap() {
            "entity" => (
                spec::from_value::<EntitySpec>(spec.clone()).map(|_| ()),
                spec::from_json_text::<EntitySpec>(&spec.to_string()).map(|_| ()),
            ),
            "segment" => (
                spec::from_value::<SegmentSpec>(spec.clone()).and_then(|s| s.into_definition()).map(|_| ()),
                spec::from_json_text::<SegmentSpec>(&spec.to_string()).and_then(|s| s.into_definition()).map(|_| ()),
            ),
            _ => (
                spec::from_value::<IngestSpec>(spec.clone()).and_then(|s| s.into_options()).map(|_| ()),
                spec::from_json_text::<IngestSpec>(&spec.to_string()).and_then(|s| s.into_options()).map(|_| ()),
            ),
        };
        assert_eq!(a.map_err(|e| e.to_string()), b.map_err(|e| e.to_string()), "{}", case["name"]);
    }
}
