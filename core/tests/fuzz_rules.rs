//! Fuzzing the rule pipeline (limits → the three dialect parsers → checker → compiler → canonical form) over
//! arbitrary and near-valid JSON. Every run replays the kept corpus `tests/fixtures/fuzz/rules/*.json` (add a
//! file there for every crash found), then `SEGKIT_FUZZ_CASES` generated cases (default 256; a long run:
//! `SEGKIT_FUZZ_CASES=200000 nice -n 19 cargo test -p segkit --test fuzz_rules`).

mod common;

use common::*;
use proptest::prelude::*;
use segkit::rules::{check, compile, Dialect, Rule};
use serde_json::{json, Map, Value};

/// The whole pipeline on one JSON value: must return (Ok or Err), never panic.
fn pipeline(v: &Value) {
    let entity = people_entity();
    let now = chrono::DateTime::parse_from_rfc3339("2026-06-30T00:00:00Z").unwrap().to_utc();
    for dialect in [Dialect::Auto, Dialect::Segkit, Dialect::QueryBuilder, Dialect::JsonLogic] {
        let Ok(rule) = Rule::parse(v, dialect) else { continue };
        let _ = serde_json::to_string(&rule).unwrap();
        if let Ok(checked) = check(&rule, &entity) {
            let _ = compile(&checked, now);
            let again = check(&checked.to_rule(), &entity).expect("the canonical form checks");
            assert_eq!(again, checked, "canonical form round-trips for {v}");
        }
    }
    let _ = Rule::parse_str(&v.to_string());
}

#[test]
fn corpus_replays() {
    let dir = format!("{FIXTURES}/fuzz/rules");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            let text = std::fs::read_to_string(&path).unwrap();
            // as text first (may be deeper than any Value we would build), then as a value if it parses
            let _ = Rule::parse_str(&text);
            if let Ok(v) = segkit::limits::parse_rule_text(&text) {
                pipeline(&v);
            }
            n += 1;
        }
    }
    assert!(n >= 5, "corpus in {dir} has {n} files");
}

const ATTRS: &[&str] = &["id", "name", "country", "age", "plan", "score", "vip", "joined", "tags", "nope", ""];
const OPS: &[&str] = &[
    "eq",
    "ne",
    "lt",
    "le",
    "gt",
    "ge",
    "in",
    "not_in",
    "between",
    "not_between",
    "contains",
    "not_contains",
    "starts_with",
    "ends_with",
    "matches",
    "is_null",
    "not_null",
    "has_any",
    "has_all",
    "has_none",
    "before",
    "after",
    "within_last",
    "not_within_last",
    "=",
    "beginsWith",
    "doesNotEndWith",
    "notBetween",
    "bogus",
];

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map(Value::Number).unwrap_or(Value::Null)),
        Just(json!(u64::MAX)),
        Just(json!(1e308)),
        Just(json!("30 days")),
        Just(json!("2026-01-01")),
        Just(json!("(a+)+$")),
        Just(json!("\\w{1000}\\w{1000}")),
        Just(json!("[")),
        "\\PC{0,12}".prop_map(Value::String),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec(("\\PC{0,6}", inner), 0..3).prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

fn condition() -> impl Strategy<Value = Value> {
    (prop::sample::select(ATTRS), prop::sample::select(OPS), value(), 0..4u8).prop_map(|(a, o, v, style)| match style {
        0 => json!({"attribute": a, "op": o, "value": v}),
        1 => json!({"field": a, "operator": o, "value": v}),
        2 => json!({ o: [{"var": a}, v] }),
        _ => json!({"startsWith": [{"var": a}, v]}),
    })
}

/// Near-valid rules in every dialect, nested up to a few levels (the depth limit has its own tests).
fn rule() -> impl Strategy<Value = Value> {
    condition().prop_recursive(6, 48, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(|v| json!({ "and": v })),
            prop::collection::vec(inner.clone(), 0..4).prop_map(|v| json!({ "or": v })),
            inner.clone().prop_map(|v| json!({ "not": v })),
            inner.clone().prop_map(|v| json!({ "!": v })),
            (prop::collection::vec(inner.clone(), 0..4), any::<bool>())
                .prop_map(|(v, n)| json!({"combinator": "and", "not": n, "rules": v})),
            prop::collection::vec(inner.clone(), 0..3).prop_map(|v| json!({"combinator": "or", "rules": v})),
            inner.clone().prop_map(|v| json!({"performed": {"event": "people", "where": v}})),
            (inner, value()).prop_map(|(r, extra)| {
                let mut m = Map::new();
                m.insert("and".into(), json!([r]));
                m.insert("x".into(), extra);
                Value::Object(m)
            }),
        ]
    })
}

fn cases() -> u32 {
    std::env::var("SEGKIT_FUZZ_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(256)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn near_valid_rules_never_panic(v in rule()) {
        pipeline(&v);
    }

    #[test]
    fn arbitrary_json_never_panics(v in value()) {
        pipeline(&v);
    }
}

/// Found by the fuzzer: `and(and(), or())` simplified to `and(or())`, which re-checked to `or()`.
#[test]
fn regression_simplify_is_idempotent() {
    let v = json!({"combinator": "and", "not": true, "rules": [{"combinator": "and", "rules": []}, {"combinator": "or", "rules": []}]});
    let checked = check(&Rule::parse(&v, Dialect::Auto).unwrap(), &people_entity()).unwrap();
    assert_eq!(format!("{checked:?}"), "Not(Or([]))");
    pipeline(&v);
}
