//! Every operator on every type it applies to, with nulls: explicit expected members, plus the three-valued
//! law that `not(rule)` selects exactly the non-null rows the rule does not select.

mod common;

use common::*;
use serde_json::{json, Value};

/// Which rows (ids) hold a null in each attribute of `people.csv`.
fn null_rows(attr: &str) -> Vec<i64> {
    match attr {
        "age" | "tags" => vec![3],
        "country" | "vip" => vec![5],
        "score" => vec![4],
        "joined" => vec![6],
        _ => vec![],
    }
}

fn cases() -> Vec<(&'static str, &'static str, Value, Vec<i64>)> {
    vec![
        // string
        ("country", "eq", json!("CN"), vec![1, 3, 7]),
        ("country", "ne", json!("CN"), vec![2, 4, 6, 8]),
        ("country", "lt", json!("DE"), vec![1, 3, 7]),
        ("country", "le", json!("DE"), vec![1, 3, 4, 7]),
        ("country", "gt", json!("DE"), vec![2, 6, 8]),
        ("country", "ge", json!("FR"), vec![2, 6, 8]),
        ("country", "between", json!(["CN", "DE"]), vec![1, 3, 4, 7]),
        ("country", "not_between", json!(["CN", "DE"]), vec![2, 6, 8]),
        ("country", "in", json!(["DE", "FR"]), vec![4, 8]),
        ("country", "not_in", json!("DE, FR"), vec![1, 2, 3, 6, 7]),
        ("country", "contains", json!("N"), vec![1, 3, 7]),
        ("country", "not_contains", json!("N"), vec![2, 4, 6, 8]),
        ("country", "starts_with", json!("U"), vec![2, 6]),
        ("country", "ends_with", json!("E"), vec![4]),
        ("country", "matches", json!("^(CN|FR)$"), vec![1, 3, 7, 8]),
        ("name", "contains", json!("%"), vec![]),
        ("name", "starts_with", json!("_"), vec![]),
        ("country", "is_null", Value::Null, vec![5]),
        ("country", "not_null", Value::Null, vec![1, 2, 3, 4, 6, 7, 8]),
        // int32
        ("age", "eq", json!(30), vec![6]),
        ("age", "ne", json!("30"), vec![1, 2, 4, 5, 7, 8]),
        ("age", "lt", json!(30), vec![4, 5]),
        ("age", "le", json!(30), vec![4, 5, 6]),
        ("age", "gt", json!(40), vec![2, 8]),
        ("age", "ge", json!(40.0), vec![2, 7, 8]),
        ("age", "between", json!([25, 31]), vec![1, 4, 6]),
        ("age", "not_between", json!("25,31"), vec![2, 5, 7, 8]),
        ("age", "in", json!("19,52"), vec![5, 8]),
        ("age", "not_in", json!([19, 52]), vec![1, 2, 4, 6, 7]),
        ("age", "is_null", Value::Null, vec![3]),
        // int64
        ("id", "gt", json!(6), vec![7, 8]),
        ("id", "in", json!([1, 2, 99]), vec![1, 2]),
        // float64
        ("score", "gt", json!(42), vec![3, 7]),
        ("score", "le", json!("3"), vec![2, 5]),
        ("score", "between", json!([3, 12.5]), vec![1, 2, 8]),
        ("score", "eq", json!(0), vec![5]),
        ("score", "not_in", json!([0.0, 3.0]), vec![1, 3, 6, 7, 8]),
        ("score", "is_null", Value::Null, vec![4]),
        // bool
        ("vip", "eq", json!(true), vec![1, 3, 6, 8]),
        ("vip", "ne", json!(true), vec![2, 4, 7]),
        ("vip", "eq", json!("false"), vec![2, 4, 7]),
        ("vip", "in", json!([true]), vec![1, 3, 6, 8]),
        ("vip", "is_null", Value::Null, vec![5]),
        // timestamp (clock at 2026-06-30T00:00:00Z)
        ("joined", "before", json!("2026-01-01"), vec![3, 8]),
        ("joined", "after", json!("2026-06-20T12:00:00Z"), vec![4]),
        ("joined", "ge", json!("2026-06-20T12:00:00+00:00"), vec![4, 7]),
        ("joined", "between", json!(["2026-01-15T08:30:00Z", "2026-06-01 10:00:00"]), vec![1, 2, 5]),
        ("joined", "within_last", json!({"amount": 10, "unit": "days"}), vec![4, 7]),
        ("joined", "not_within_last", json!("10 days"), vec![1, 2, 3, 5, 8]),
        ("joined", "within_last", json!("1 month"), vec![1, 4, 7]),
        ("joined", "within_last", json!("48 hours"), vec![4]),
        ("joined", "within_last", json!("1 week"), vec![4]),
        ("joined", "within_last", json!({"amount": 0, "unit": "minutes"}), vec![]),
        ("joined", "is_null", Value::Null, vec![6]),
        // list<string>
        ("tags", "has_any", json!(["vip", "b"]), vec![1, 2, 4, 5, 7]),
        ("tags", "has_all", json!(["a", "b"]), vec![5]),
        ("tags", "has_none", json!(["vip"]), vec![2, 5, 6, 8]),
        ("tags", "contains", json!("c"), vec![4, 6]),
        ("tags", "not_contains", json!("a"), vec![2, 4, 6, 7]),
        ("tags", "has_any", json!("vip,c"), vec![1, 4, 6, 7]),
        ("tags", "is_null", Value::Null, vec![3]),
    ]
}

#[tokio::test]
async fn every_operator_on_every_type_with_nulls() {
    let (_dir, ws) = people_workspace().await;
    let all: Vec<i64> = (1..=8).collect();
    for (i, (attr, op, value, want)) in cases().into_iter().enumerate() {
        let rule = json!({"attribute": attr, "op": op, "value": value});
        let got =
            members(&ws, &format!("c{i}"), "people", rule.clone()).await.unwrap_or_else(|e| panic!("{rule}: {e}"));
        assert_eq!(got, want, "{rule}");
        if op != "is_null" && op != "not_null" {
            let nulls = null_rows(attr);
            assert!(got.iter().all(|id| !nulls.contains(id)), "{rule} selected a null row");
            let negated = members(&ws, &format!("n{i}"), "people", json!({"not": rule})).await.unwrap();
            let expect_not: Vec<i64> =
                all.iter().copied().filter(|id| !nulls.contains(id) && !want.contains(id)).collect();
            assert_eq!(negated, expect_not, "not {rule}: unknown must stay unknown under not");
        }
        assert_eq!(ws.count(&format!("c{i}")).await.unwrap() as usize, want.len(), "count of {rule}");
    }
}

#[tokio::test]
async fn operators_outside_their_types_are_refused() {
    let (_dir, ws) = people_workspace().await;
    for (attr, op, value, needle) in [
        ("age", "contains", json!("3"), "operator `contains` does not apply to `age` of type int32"),
        ("country", "has_any", json!(["CN"]), "operator `has_any` does not apply to `country` of type string"),
        ("country", "within_last", json!("3 days"), "does not apply to `country` of type string"),
        ("vip", "lt", json!(true), "operator `lt` does not apply to `vip` of type bool"),
        ("tags", "eq", json!("a"), "operator `eq` does not apply to `tags` of type list<string>"),
        ("age", "matches", json!("1"), "operator `matches` does not apply to `age`"),
        ("score", "before", json!("2026-01-01"), "operator `before` does not apply to `score`"),
        ("age", "eq", json!("thirty"), "\"thirty\" is not a valid int32"),
        ("joined", "after", json!("06/30/2026"), "is not a valid timestamp"),
        ("tags", "has_all", json!([]), "the list of values is empty"),
        ("age", "is_null", json!(5), "`is_null` takes no value"),
    ] {
        let rule = json!({"and": [{"attribute": "id", "op": "gt", "value": 0}, {"attribute": attr, "op": op, "value": value}]});
        let err = members(&ws, "bad", "people", rule.clone()).await.unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, segkit::Error::Rule { .. }), "{rule}: {err:?}");
        assert!(text.starts_with("rule error at and[1]."), "{rule}: {text}");
        assert!(text.contains(needle), "{rule}: {text}");
    }
    assert!(matches!(ws.segment("bad"), Err(segkit::Error::NotFound { .. })), "a refused segment must not be stored");
}
