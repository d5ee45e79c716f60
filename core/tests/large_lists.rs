//! Large literal lists (`in` / `not_in` / `has_any` with up to 1 M values) and static-list segments.

mod common;

use common::*;
use serde_json::json;

fn timed<T>(what: &str, t: std::time::Instant, v: T) -> T {
    eprintln!("{what}: {:?}", t.elapsed());
    v
}

#[tokio::test]
async fn in_with_a_million_values_selects_the_listed_rows() {
    let (_d, ws) = people_workspace().await;
    // 1 M ids, of which 2, 5 and 7 exist in people.csv (ids 1..=8).
    let mut values: Vec<i64> = (1000..1_001_000).collect();
    values.extend([2, 5, 7]);
    let t = std::time::Instant::now();
    let rule = json!({"attribute": "id", "op": "in", "value": values});
    let rule = timed("json", t, rule);
    let t = std::time::Instant::now();
    let parsed = segkit::rules::Rule::parse(&rule, segkit::rules::Dialect::Auto).unwrap();
    let parsed = timed("parse", t, parsed);
    let t = std::time::Instant::now();
    ws.define_segment(segkit::SegmentDefinition::new("big_in", "people", parsed)).await.unwrap();
    timed("define", t, ());
    let t = std::time::Instant::now();
    let got = ids(&ws.evaluate("big_in").await.unwrap().members);
    timed("evaluate", t, ());
    assert_eq!(got, vec![2, 5, 7]);
}

/// 100 k values (above the join threshold) with `not_in`: rows whose value is listed and rows with a null are
/// left out (a null is unknown), exactly as with a short list.
#[tokio::test]
async fn not_in_with_a_large_list_keeps_three_valued_semantics() {
    let (_d, ws) = people_workspace().await;
    let mut values: Vec<i64> = (1000..101_000).collect();
    values.extend([19, 52]);
    let big = members(&ws, "big_not_in", "people", json!({"attribute": "age", "op": "not_in", "value": values}))
        .await
        .unwrap();
    let small = members(&ws, "small_not_in", "people", json!({"attribute": "age", "op": "not_in", "value": [19, 52]}))
        .await
        .unwrap();
    assert_eq!(big, small);
    assert!(!big.contains(&3), "id 3 has a null age: {big:?}");
    assert!(!big.is_empty());
    // Under `not`, `in` with a large list: null rows stay out as well.
    let mut strings: Vec<String> = (0..50_000).map(|i| format!("X{i}")).collect();
    strings.push("DE".into());
    let not_in =
        members(&ws, "not_big_in", "people", json!({"not": {"attribute": "country", "op": "in", "value": strings}}))
            .await
            .unwrap();
    let not_small =
        members(&ws, "not_small_in", "people", json!({"not": {"attribute": "country", "op": "in", "value": ["DE"]}}))
            .await
            .unwrap();
    assert_eq!(not_in, not_small);
    assert!(!not_in.contains(&5), "id 5 has a null country: {not_in:?}");
}
