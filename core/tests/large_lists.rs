//! Large literal lists (`in` / `not_in` / `has_any` with up to 1 M values) and static-list segments.

mod common;

use common::*;
use serde_json::json;

#[tokio::test]
async fn in_with_a_million_values_selects_the_listed_rows() {
    let (_d, ws) = people_workspace().await;
    // 1 M ids, of which 2, 5 and 7 exist in people.csv (ids 1..=8).
    let mut values: Vec<i64> = (1000..1_001_000).collect();
    values.extend([2, 5, 7]);
    let got = members(&ws, "big_in", "people", json!({"attribute": "id", "op": "in", "value": values})).await.unwrap();
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

/// `explain` of a rule with a large list still says whether the listed value matched.
#[tokio::test]
async fn explain_works_with_a_large_list() {
    let (_d, ws) = people_workspace().await;
    let mut values: Vec<i64> = (1000..6000).collect();
    values.push(2);
    assert_eq!(
        members(&ws, "x", "people", json!({"attribute": "id", "op": "in", "value": values})).await.unwrap(),
        vec![2]
    );
    let e = ws.explain("x", "2").await.unwrap();
    assert!(e.member, "{e}");
    assert_eq!(e.root.value, Some(true), "{e}");
    let e = ws.explain("x", "1").await.unwrap();
    assert!(!e.member, "{e}");
    assert_eq!(e.root.value, Some(false), "{e}");
}

/// `has_any` with a large list selects the rows holding any listed tag (compared with the one-value form).
#[tokio::test]
async fn has_any_with_a_large_list() {
    let (_d, ws) = people_workspace().await;
    let small = members(&ws, "small_any", "people", json!({"attribute": "tags", "op": "has_any", "value": ["vip"]}))
        .await
        .unwrap();
    let mut values: Vec<String> = (0..100_000).map(|i| format!("T{i}")).collect();
    values.push("vip".into());
    let big = members(&ws, "big_any", "people", json!({"attribute": "tags", "op": "has_any", "value": values}))
        .await
        .unwrap();
    assert_eq!(big, small);
    assert!(!big.is_empty());
}

/// `has_any` / `has_all` / `has_none` with 200 k values (a hash set of the values, not a chain of comparisons)
/// select what their short forms select; a row with no tags list is in none of them (unknown).
#[tokio::test]
async fn list_operators_with_a_million_values_equal_their_short_forms() {
    let (_d, ws) = people_workspace().await;
    let pad = |v: &[&str]| {
        let mut out: Vec<String> = (0..200_000).map(|i| format!("T{i}")).collect();
        out.extend(v.iter().map(|s| s.to_string()));
        out
    };
    for (op, wanted) in [("has_any", vec!["vip", "b"]), ("has_none", vec!["vip"]), ("has_all", vec!["a"])] {
        let small =
            members(&ws, &format!("small_{op}"), "people", json!({"attribute": "tags", "op": op, "value": wanted}))
                .await
                .unwrap();
        assert!(!small.is_empty(), "{op}");
        let big =
            members(&ws, &format!("big_{op}"), "people", json!({"attribute": "tags", "op": op, "value": pad(&wanted)}))
                .await
                .unwrap();
        if op == "has_all" {
            // No row holds all 200 k padding tags.
            assert!(big.is_empty(), "{op}: {big:?}");
        } else {
            assert_eq!(big, small, "{op}");
        }
        assert!(!big.contains(&3), "id 3 has no tags list: {op} {big:?}");
    }
}

/// `explain` of a large `has_any` evaluates the hash-set form on the one entity.
#[tokio::test]
async fn explain_works_with_a_large_has_any() {
    let (_d, ws) = people_workspace().await;
    let mut values: Vec<String> = (0..5000).map(|i| format!("T{i}")).collect();
    values.push("c".into());
    let got =
        members(&ws, "c_tags", "people", json!({"attribute": "tags", "op": "has_any", "value": values})).await.unwrap();
    assert_eq!(got, vec![4, 6]);
    let e = ws.explain("c_tags", "6").await.unwrap();
    assert!(e.member && e.root.value == Some(true), "{e}");
    let e = ws.explain("c_tags", "1").await.unwrap();
    assert!(!e.member && e.root.value == Some(false), "{e}");
    let e = ws.explain("c_tags", "3").await.unwrap();
    assert!(!e.member && e.root.value.is_none(), "{e}");
}
