//! The shared fixture set: equivalent rules in the three dialects give the same AST and the same members.

mod common;

use common::*;
use segkit::rules::{check, Dialect, Rule};
use serde_json::Value;

#[tokio::test]
async fn fixtures_agree_across_dialects() {
    let (_dir, ws) = people_workspace().await;
    let entity = people_entity();
    let cases: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(format!("{FIXTURES}/dialects.json")).unwrap()).unwrap();
    assert!(cases.len() >= 7);
    for (i, case) in cases.iter().enumerate() {
        let name = case["name"].as_str().unwrap();
        let want: Vec<i64> = serde_json::from_value(case["members"].clone()).unwrap();
        let same_ast = case.get("same_ast").and_then(Value::as_bool).unwrap_or(true);
        let mut checked = vec![];
        for (d, dialect) in
            [("segkit", Dialect::Segkit), ("querybuilder", Dialect::QueryBuilder), ("jsonlogic", Dialect::JsonLogic)]
        {
            assert_eq!(Dialect::detect(&case[d]), dialect, "{name}: {d} not detected");
            let rule = Rule::parse(&case[d], dialect).unwrap_or_else(|e| panic!("{name} ({d}): {e}"));
            checked.push(check(&rule, &entity).unwrap_or_else(|e| panic!("{name} ({d}): {e}")));
            let got = members(&ws, &format!("c{i}_{d}"), "people", case[d].clone()).await.unwrap();
            assert_eq!(got, want, "{name} ({d})");
        }
        if same_ast {
            assert_eq!(checked[0], checked[1], "{name}: segkit vs querybuilder AST");
            assert_eq!(checked[0], checked[2], "{name}: segkit vs jsonlogic AST");
            let stored: Vec<_> = ["segkit", "querybuilder", "jsonlogic"]
                .iter()
                .map(|d| ws.segment(&format!("c{i}_{d}")).unwrap().rule)
                .collect();
            assert_eq!(stored[0], stored[1], "{name}: stored rules differ");
            assert_eq!(stored[0], stored[2], "{name}: stored rules differ");
        }
        for c in &checked {
            assert_eq!(&check(&c.to_rule(), &entity).unwrap(), c, "{name}: canonical form must check to the same rule");
        }
    }
}
