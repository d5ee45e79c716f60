//! Catalog-level errors: cycles written around the checker, a catalog from elsewhere.

mod common;

use common::*;
use segkit::catalog::Catalog;
use segkit::rules::{Dialect, Rule};
use segkit::{Error, ErrorKind, SegmentDefinition};
use serde_json::json;

fn rule(v: serde_json::Value) -> Rule {
    Rule::parse(&v, Dialect::Auto).unwrap()
}

#[tokio::test]
async fn a_reference_cycle_in_the_catalog_is_a_definition_error_naming_the_cycle() {
    let (dir, ws) = people_workspace().await;
    members(&ws, "a", "people", json!({"attribute": "age", "op": "gt", "value": 1})).await.unwrap();
    members(&ws, "b", "people", json!({"in_segment": "a"})).await.unwrap();
    members(&ws, "c", "people", json!({"in_segment": "b"})).await.unwrap();
    assert_eq!(ws.dependents("a").unwrap(), vec!["b", "c"]);
    // The checker refuses cycles, so write one straight into the catalog, as an old or foreign writer could.
    let cat = Catalog::open(&dir.path().join("segkit.db")).unwrap();
    cat.put_segment(&SegmentDefinition::new("a", "people", rule(json!({"in_segment": "c"})))).unwrap();
    drop(cat);
    let e = ws.dependents("a").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Definition, "{e:?}");
    assert!(matches!(&e, Error::Definition { path, .. } if path == "segment `a`"), "{e:?}");
    assert!(e.to_string().contains("segment references form a cycle: "), "{e}");
    let cycle = e.to_string().rsplit("cycle: ").next().unwrap().to_string();
    let names: Vec<&str> = cycle.split(" → ").collect();
    assert_eq!(names.first(), names.last(), "a closed path: {cycle}");
    let mut inner = names[1..].to_vec();
    inner.sort();
    assert_eq!(inner, vec!["a", "b", "c"], "{cycle}");
}
