//! Behavioural conditions over a linked event entity, and segment references (issue 3, first part).

mod common;

use common::*;
use segkit::{Attribute, DataType, Entity, IngestOptions, Link, SegmentDefinition, Workspace};
use serde_json::json;

const EVENTS: &str = "user_id,ts,event_type,amount
1,2026-06-25T10:00:00Z,purchase,10.0
1,2026-06-26T10:00:00Z,purchase,20.0
1,2026-06-27T10:00:00Z,purchase,300.0
1,2026-06-28T10:00:00Z,view,
2,2026-05-01T00:00:00Z,purchase,500.0
2,2026-06-29T00:00:00Z,purchase,5.0
3,2026-06-20T00:00:00Z,view,
3,2026-06-21T00:00:00Z,view,
4,2026-06-10T00:00:00Z,purchase,50
4,2026-06-11T00:00:00Z,purchase,60
4,2026-06-12T00:00:00Z,purchase,70
6,2026-06-29T23:59:59Z,purchase,1000
7,2025-01-01T00:00:00Z,purchase,150
99,2026-06-20T00:00:00Z,purchase,999
";

/// The people fixture with an `events` entity linked to it, holding `events` (CSV text).
async fn workspace_with(events: &str) -> (tempfile::TempDir, Workspace) {
    let (dir, ws) = people_workspace().await;
    ws.define_entity(
        Entity::event("events", "ts")
            .attribute(Attribute::new("user_id", DataType::Int64))
            .attribute(Attribute::new("ts", DataType::Timestamp))
            .attribute(Attribute::new("event_type", DataType::String).indexed())
            .attribute(Attribute::new("amount", DataType::Float64))
            .link(Link::new("user_id", "people")),
    )
    .await
    .unwrap();
    let r = ws.ingest_batches("events", vec![csv_batch(events)], IngestOptions::default()).await.unwrap();
    assert_eq!(r.rows_quarantined, 0, "{:?}", r.quarantine_sample);
    (dir, ws)
}

async fn workspace() -> (tempfile::TempDir, Workspace) {
    let (dir, ws) = workspace_with(EVENTS).await;
    assert_eq!(ws.snapshot("events").unwrap().row_count, 14);
    (dir, ws)
}

fn purchases(extra: serde_json::Value) -> serde_json::Value {
    let mut p = json!({"event": "events", "where": {"attribute": "event_type", "op": "eq", "value": "purchase"}});
    for (k, v) in extra.as_object().unwrap() {
        p[k] = v.clone();
    }
    p
}

#[tokio::test]
async fn behavioural_conditions() {
    let (_dir, ws) = workspace().await;
    let cases: Vec<(&str, serde_json::Value, Vec<i64>)> = vec![
        (
            "any purchase in 30 days",
            json!({"performed": purchases(json!({"within_last": "30 days"}))}),
            vec![1, 2, 4, 6],
        ),
        (
            "S3 shape: >= 3 purchases and sum > 200 in 30 days",
            json!({"performed": purchases(json!({"within_last": {"amount": 30, "unit": "days"},
                "having": [{"count": {"ge": 3}}, {"sum": "amount", "gt": 200}]}))}),
            vec![1],
        ),
        (
            "no purchase in 30 days",
            json!({"not_performed": purchases(json!({"within_last": "30 days"}))}),
            vec![3, 5, 7, 8],
        ),
        (
            "fewer than 2 purchases (holds without events)",
            json!({"performed": purchases(json!({"within_last": "30 days", "having": [{"count": {"lt": 2}}]}))}),
            vec![2, 3, 5, 6, 7, 8],
        ),
        (
            "first purchase within the last 7 days",
            json!({"performed": purchases(json!({"having": [{"min": "ts", "within_last": "7 days"}]}))}),
            vec![1, 6],
        ),
        (
            "last purchase not within the last 30 days",
            json!({"performed": purchases(json!({"having": [{"max": "ts", "not_within_last": "30 days"}]}))}),
            vec![7],
        ),
        ("purchased since joining", json!({"performed": purchases(json!({"since": "joined"}))}), vec![1, 2]),
        (
            "two distinct event types ever",
            json!({"performed": {"event": "events", "having": [{"count_distinct": "event_type", "ge": 2}]}}),
            vec![1],
        ),
        (
            "average purchase between 100 and 400",
            json!({"performed": purchases(json!({"having": [{"avg": "amount", "between": [100, 400]}]}))}),
            vec![1, 2, 7],
        ),
        (
            "between two instants",
            json!({"performed": purchases(json!({"between": ["2026-06-10T00:00:00Z", "2026-06-11T00:00:00Z"]}))}),
            vec![4],
        ),
        (
            "inside an OR",
            json!({"or": [{"attribute": "country", "op": "eq", "value": "DE"},
                          {"performed": purchases(json!({"within_last": "30 days", "having": [{"sum": "amount", "gt": 900}]}))}]}),
            vec![4, 6],
        ),
        (
            "negated inside an AND",
            json!({"and": [{"attribute": "plan", "op": "eq", "value": "pro"},
                           {"not": {"performed": purchases(json!({"within_last": "30 days"}))}}]}),
            vec![8],
        ),
    ];
    for (i, (name, rule, want)) in cases.into_iter().enumerate() {
        let got =
            members(&ws, &format!("b{i}"), "people", rule.clone()).await.unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(got, want, "{name}: {rule}");
        assert_eq!(ws.count(&format!("b{i}")).await.unwrap() as usize, want.len(), "{name}: count");
        // The stored canonical rule checks and selects the same.
        let stored = ws.segment(&format!("b{i}")).unwrap().rule;
        let again = members(&ws, &format!("c{i}"), "people", stored.to_json()).await.unwrap();
        assert_eq!(again, want, "{name}: canonical form");
    }
}

#[tokio::test]
async fn behavioural_errors_have_paths() {
    let (_dir, ws) = workspace().await;
    for (rule, needle) in [
        (
            json!({"performed": {"event": "evnts"}}),
            "rule error at performed.event: entity `evnts` is not defined (did you mean `events`?)",
        ),
        (json!({"performed": {"event": "people"}}), "entity `people` has no link to `people.id`"),
        (
            json!({"performed": {"event": "events", "where": {"attribute": "amout", "op": "gt", "value": 1}}}),
            "performed.where.attribute: entity `events` has no attribute `amout` (did you mean `amount`?)",
        ),
        (
            json!({"performed": {"event": "events", "having": [{"sum": "event_type", "gt": 1}]}}),
            "sum does not apply to `event_type` of type string",
        ),
        (
            json!({"performed": {"event": "events", "having": [{"count": {"gt": "many"}}]}}),
            "performed.having[0].value: \"many\" is not a valid int64",
        ),
        (json!({"performed": {"event": "events", "within_last": "3 days", "since": "joined"}}), "give one time window"),
        (
            json!({"performed": {"event": "events", "since": "name"}}),
            "`name` is string but the event time `ts` is timestamp",
        ),
        (
            json!({"and": [{"performed": {"event": "events", "having": [{"sum": "amount"}]}}]}),
            "and[0].performed.having[0]",
        ),
    ] {
        let e = members(&ws, "bad", "people", rule.clone()).await.unwrap_err();
        assert!(matches!(e, segkit::Error::Rule { .. }), "{rule}: {e:?}");
        assert!(e.to_string().contains(needle), "{rule}: {e}");
    }
}

#[tokio::test]
async fn segment_references() {
    let (_dir, ws) = workspace().await;
    members(&ws, "buyers", "people", json!({"performed": purchases(json!({"within_last": "30 days"}))})).await.unwrap();
    let pro = json!({"attribute": "plan", "op": "eq", "value": "pro"});
    assert_eq!(
        members(&ws, "pro_buyers", "people", json!({"and": [pro, {"in_segment": "buyers"}]})).await.unwrap(),
        vec![1, 4]
    );
    assert_eq!(
        members(&ws, "pro_other", "people", json!({"and": [pro, {"not_in_segment": "buyers"}]})).await.unwrap(),
        vec![8]
    );
    // A reference keeps two-valued semantics: a null age in the referenced rule does not leak "unknown".
    members(&ws, "young", "people", json!({"attribute": "age", "op": "lt", "value": 30})).await.unwrap();
    assert_eq!(
        members(&ws, "not_young", "people", json!({"not_in_segment": "young"})).await.unwrap(),
        vec![1, 2, 3, 6, 7, 8]
    );
    // Stored mode reads the latest run; recompute mode follows the data.
    members(&ws, "stored", "people", json!({"in_segment": {"segment": "buyers", "stored": true}})).await.unwrap();
    assert_eq!(ids(&ws.evaluate("stored").await.unwrap().members), vec![1, 2, 4, 6]);
    // Dependents, in dependency order.
    members(
        &ws,
        "pro_buyers_cn",
        "people",
        json!({"and": [{"in_segment": "pro_buyers"}, {"attribute": "country", "op": "eq", "value": "CN"}]}),
    )
    .await
    .unwrap();
    let deps = ws.dependents("buyers").unwrap();
    let pos = |n: &str| deps.iter().position(|d| d == n).unwrap_or_else(|| panic!("{n} missing from {deps:?}"));
    assert!(pos("pro_buyers") < pos("pro_buyers_cn"), "{deps:?}");
    assert!(
        deps.contains(&"pro_other".to_string())
            && deps.contains(&"stored".to_string())
            && !deps.contains(&"young".to_string())
    );
    let runs = ws.evaluate_with_dependents("buyers").await.unwrap();
    assert_eq!(runs[0].segment, "buyers");
    assert_eq!(runs.len(), deps.len() + 1);
    // Cycles are refused at definition time, with the path of the cycle.
    let e = members(&ws, "buyers", "people", json!({"in_segment": "pro_buyers"})).await.unwrap_err();
    assert!(e.to_string().contains("segment references form a cycle: buyers → pro_buyers → buyers"), "{e}");
    let e = members(&ws, "selfish", "people", json!({"in_segment": "selfish"})).await.unwrap_err();
    assert!(e.to_string().contains("segment `selfish` is not defined"), "{e}");
    let e = members(&ws, "x", "people", json!({"in_segment": "buyer"})).await.unwrap_err();
    assert!(e.to_string().contains("(did you mean `buyers`?)"), "{e}");
    ws.define_entity(Entity::profile("other", "k").attribute(Attribute::new("k", DataType::Int64))).await.unwrap();
    let e = members(&ws, "x", "other", json!({"in_segment": "buyers"})).await.unwrap_err();
    assert!(e.to_string().contains("segment `buyers` selects `people`, not `other`"), "{e}");
    // Stored mode without a run is a clear error.
    members(&ws, "fresh", "people", json!({"attribute": "id", "op": "gt", "value": 0})).await.unwrap();
    ws.delete_segment("fresh").await.unwrap();
    ws.define_segment(SegmentDefinition::new(
        "fresh",
        "people",
        segkit::rules::Rule::parse_str(r#"{"attribute": "id", "op": "gt", "value": 0}"#).unwrap(),
    ))
    .await
    .unwrap();
    let e = members(&ws, "y", "people", json!({"in_segment": {"segment": "fresh", "stored": true}})).await.unwrap_err();
    assert!(e.to_string().contains("segment `fresh` has no stored run yet"), "{e}");
}

#[tokio::test]
async fn explain_annotates_every_node() {
    let (_dir, ws) = workspace().await;
    let s3 = json!({"performed": purchases(json!({"within_last": "30 days",
        "having": [{"count": {"ge": 3}}, {"sum": "amount", "gt": 200}]}))});
    let rule = json!({"and": [
        {"or": [{"attribute": "country", "op": "eq", "value": "CN"}, {"attribute": "name", "op": "starts_with", "value": "D"}]},
        {"not": {"attribute": "age", "op": "gt", "value": 40}},
        s3
    ]});
    members(&ws, "x", "people", rule).await.unwrap();
    let e = ws.explain("x", "1").await.unwrap();
    assert!(e.member, "{e}");
    let text = e.to_string();
    assert!(text.starts_with("1 is a member of `x`"), "{text}");
    assert!(text.contains("[true] country eq \"CN\"  (country = CN)"), "{text}");
    assert!(text.contains("(name = *** (pii))"), "pii masked: {text}");
    assert!(text.contains("count = 3 → count ge 3: true; sum(amount) = 330.0 → sum(amount) gt 200.0: true"), "{text}");

    let e = ws.explain("x", "4").await.unwrap();
    assert!(!e.member);
    let behaviour = &e.root.children[2];
    assert_eq!(behaviour.value, Some(false));
    assert!(behaviour.detail.as_ref().unwrap().contains("sum(amount) = 180.0 → sum(amount) gt 200.0: false"), "{e}");

    // Unknown stays unknown: person 3 has no age.
    let e = ws.explain("x", "3").await.unwrap();
    let not_age = &e.root.children[1];
    assert_eq!((not_age.value, not_age.children[0].value), (None, None));
    assert_eq!(not_age.children[0].detail.as_deref(), Some("age is null"));
    assert_eq!(e.root.value, Some(false), "and(true, unknown, false) is false: {e}");

    // No events at all: count is 0 and sum unknown.
    let e = ws.explain("x", "5").await.unwrap();
    assert!(e.root.children[2].detail.as_ref().unwrap().contains("count = 0"), "{e}");
    assert!(
        e.root.children[2].detail.as_ref().unwrap().contains("sum(amount) = null → sum(amount) gt 200.0: unknown"),
        "{e}"
    );

    let err = ws.explain("x", "42").await.unwrap_err();
    assert!(matches!(err, segkit::Error::NotFound { .. }), "{err}");
    let err = ws.explain("x", "abc").await.unwrap_err();
    assert!(err.to_string().contains("not a valid int64"), "{err}");
}

#[tokio::test]
async fn conditions_over_related_profile_entities() {
    let (_dir, ws) = people_workspace().await;
    ws.define_entity(
        Entity::profile("orders", "order_id")
            .attribute(Attribute::new("order_id", DataType::Int64))
            .attribute(Attribute::new("buyer", DataType::Int64))
            .attribute(Attribute::new("status", DataType::String))
            .attribute(Attribute::new("amount", DataType::Float64))
            .link(Link::new("buyer", "people")),
    )
    .await
    .unwrap();
    let orders = "order_id,buyer,status,amount\n1,1,paid,150\n2,1,refunded,500\n3,2,paid,90\n4,3,paid,101\n5,3,paid,300\n6,4,open,1000\n7,,paid,5\n";
    ws.ingest_batches("orders", vec![csv_batch(orders)], IngestOptions::default()).await.unwrap();
    // "has at least one order with status = paid and amount > 100"
    let paid_big = json!({"performed": {"event": "orders", "where": {"and": [
        {"attribute": "status", "op": "eq", "value": "paid"}, {"attribute": "amount", "op": "gt", "value": 100}]}}});
    assert_eq!(members(&ws, "paid_big", "people", paid_big).await.unwrap(), vec![1, 3]);
    // with aggregates: two or more paid orders totalling over 300
    let two_paid = json!({"performed": {"event": "orders", "where": {"attribute": "status", "op": "eq", "value": "paid"},
        "having": [{"count": {"ge": 2}}, {"sum": "amount", "gt": 300}]}});
    assert_eq!(members(&ws, "two_paid", "people", two_paid).await.unwrap(), vec![3]);
    // The other direction: orders whose buyer is in CN (buyers 1 and 3), and those whose buyer is known and not.
    let cn = json!({"attribute": "country", "op": "eq", "value": "CN"});
    assert_eq!(
        members(&ws, "cn_orders", "orders", json!({"linked": {"via": "buyer", "where": cn}})).await.unwrap(),
        vec![1, 2, 4, 5]
    );
    assert_eq!(
        members(&ws, "other_orders", "orders", json!({"not": {"linked": {"via": "buyer", "where": cn}}}))
            .await
            .unwrap(),
        vec![3, 6],
        "order 7 has no buyer: unknown, so in neither"
    );
    // Also when no buyer at all qualifies (SQL's `NULL NOT IN (empty)` would be true).
    let nobody = json!({"attribute": "country", "op": "eq", "value": "ZZ"});
    assert_eq!(
        members(&ws, "not_nobody", "orders", json!({"not": {"linked": {"via": "buyer", "where": nobody}}}))
            .await
            .unwrap(),
        vec![1, 2, 3, 4, 5, 6]
    );
    // Linked rules may hold behavioural conditions of the target: orders of buyers with two paid orders.
    assert_eq!(
        members(&ws, "of_two_paid", "orders", json!({"linked": {"via": "buyer", "where": {"in_segment": "two_paid"}}}))
            .await
            .unwrap(),
        vec![4, 5]
    );
    let e = ws.explain("other_orders", "7").await.unwrap();
    assert_eq!(e.root.value, None, "{e}");
    assert!(e.to_string().contains("buyer is null"), "{e}");
    let e = members(&ws, "bad", "people", json!({"performed": {"event": "orders", "within_last": "3 days"}}))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("has no timestamp attribute, so it takes no time window"), "{e}");
}

#[tokio::test]
async fn sequences() {
    let (_dir, ws) = workspace().await;
    let purchase = json!({"attribute": "event_type", "op": "eq", "value": "purchase"});
    let view = json!({"attribute": "event_type", "op": "eq", "value": "view"});
    let seq = |extra: serde_json::Value| {
        let mut s = json!({"event": "events", "first": purchase, "then": view});
        for (k, v) in extra.as_object().unwrap() {
            s[k] = v.clone();
        }
        json!({"sequence": s})
    };
    let cases: Vec<(&str, serde_json::Value, Vec<i64>)> = vec![
        ("purchase then view within 2 days", seq(json!({"within": "2 days"})), vec![1]),
        ("… within 12 hours", seq(json!({"within": "12 hours"})), vec![]),
        (
            "cheap purchase then view",
            seq(json!({"first": {"attribute": "amount", "op": "lt", "value": 15}, "within": "5 days"})),
            vec![1],
        ),
        (
            "cheap purchase then view with no purchase between",
            seq(
                json!({"first": {"attribute": "amount", "op": "lt", "value": 15}, "within": "5 days", "without": purchase}),
            ),
            vec![],
        ),
        ("only the last 3 days", seq(json!({"within_last": "3 days"})), vec![1]),
        ("only the last 2 days", seq(json!({"within_last": "2 days"})), vec![]),
        ("negated", json!({"not_sequence": seq(json!({"within": "2 days"}))["sequence"]}), vec![2, 3, 4, 5, 6, 7, 8]),
    ];
    for (i, (name, rule, want)) in cases.into_iter().enumerate() {
        let got =
            members(&ws, &format!("q{i}"), "people", rule.clone()).await.unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(got, want, "{name}: {rule}");
        let stored = ws.segment(&format!("q{i}")).unwrap().rule;
        assert_eq!(
            members(&ws, &format!("r{i}"), "people", stored.to_json()).await.unwrap(),
            want,
            "{name}: canonical"
        );
    }
    let e = ws.explain("q0", "1").await.unwrap();
    assert_eq!(e.root.value, Some(true), "{e}");
    // The witness: the latest purchase before the view, not the first one.
    assert_eq!(
        e.root.detail.as_deref(),
        Some("first step at 2026-06-27T10:00:00Z, then at 2026-06-28T10:00:00Z"),
        "{e}"
    );
    let e = ws.explain("q0", "2").await.unwrap();
    assert_eq!(e.root.value, Some(false), "{e}");
    assert_eq!(e.root.detail.as_deref(), Some("no first step followed by a then step as required"), "{e}");
    let e =
        members(&ws, "bad", "people", json!({"sequence": {"event": "events", "first": purchase}})).await.unwrap_err();
    assert!(e.to_string().contains("sequence.then"), "{e}");
}

#[tokio::test]
async fn sequence_gaps_in_days_are_calendar_days_of_the_workspace_zone() {
    // Berlin moves from CET to CEST on 2026-03-29 at 01:00 UTC, so 13:00 on the 28th to 13:00 on the 29th is 23 h.
    let (_dir, ws) = workspace_with(
        "user_id,ts,event_type,amount
1,2026-03-28T12:00:00Z,purchase,
1,2026-03-29T11:00:00Z,view,
2,2026-03-28T12:00:00Z,purchase,
2,2026-03-29T11:30:00Z,view,
",
    )
    .await;
    let rule = json!({"sequence": {"event": "events",
        "first": {"attribute": "event_type", "op": "eq", "value": "purchase"},
        "then": {"attribute": "event_type", "op": "eq", "value": "view"},
        "within": "1 day"}});
    assert_eq!(members(&ws, "utc", "people", rule.clone()).await.unwrap(), vec![1, 2], "24 hours in UTC");
    ws.set_time_zone("Europe/Berlin").unwrap();
    assert_eq!(members(&ws, "berlin", "people", rule.clone()).await.unwrap(), vec![1], "up to 13:00 CEST");
    let hours = json!({"sequence": {"event": "events",
        "first": {"attribute": "event_type", "op": "eq", "value": "purchase"},
        "then": {"attribute": "event_type", "op": "eq", "value": "view"},
        "within": "24 hours"}});
    assert_eq!(members(&ws, "berlin_hours", "people", hours).await.unwrap(), vec![1, 2], "hours stay absolute");
}

#[tokio::test]
async fn sequences_over_string_keys() {
    let dir = tempfile::tempdir().unwrap();
    let ws = Workspace::open(dir.path()).await.unwrap();
    ws.define_entity(Entity::profile("acct", "code").attribute(Attribute::new("code", DataType::String)))
        .await
        .unwrap();
    ws.define_entity(
        Entity::event("hits", "ts")
            .attribute(Attribute::new("code", DataType::String))
            .attribute(Attribute::new("ts", DataType::Timestamp))
            .attribute(Attribute::new("kind", DataType::String))
            .link(Link::new("code", "acct")),
    )
    .await
    .unwrap();
    ws.ingest_batches("acct", vec![csv_batch("code\nx-1\ny-2\nz-3\n")], IngestOptions::default()).await.unwrap();
    let hits = "code,ts,kind
x-1,2026-06-01T00:00:00Z,open
x-1,2026-06-01T00:10:00Z,buy
y-2,2026-06-01T00:10:00Z,open
y-2,2026-06-01T00:00:00Z,buy
z-3,2026-06-01T00:00:00Z,open
z-3,2026-06-01T00:05:00Z,close
z-3,2026-06-01T00:10:00Z,buy
";
    ws.ingest_batches("hits", vec![csv_batch(hits)], IngestOptions::default()).await.unwrap();
    let step = |k: &str| json!({"attribute": "kind", "op": "eq", "value": k});
    let rule = json!({"sequence": {"event": "hits", "first": step("open"), "then": step("buy"), "within": "1 hour",
        "without": step("close")}});
    ws.define_segment(SegmentDefinition::new(
        "opened_then_bought",
        "acct",
        segkit::rules::Rule::parse(&rule, segkit::rules::Dialect::Segkit).unwrap(),
    ))
    .await
    .unwrap();
    let run = ws.evaluate("opened_then_bought").await.unwrap();
    let keys: Vec<String> = (0..run.members.num_rows())
        .map(|i| segkit::deps::arrow::util::display::array_value_to_string(run.members.column(0), i).unwrap())
        .collect();
    assert_eq!(keys, vec!["x-1"]);
}

#[tokio::test]
async fn sequence_steps_may_test_another_linked_entity() {
    // Events link to the user and to a product; "viewed an electronics product, then purchased within 2 days".
    let (_dir, ws) = people_workspace().await;
    ws.define_entity(
        Entity::profile("product", "sku")
            .attribute(Attribute::new("sku", DataType::String))
            .attribute(Attribute::new("category", DataType::String)),
    )
    .await
    .unwrap();
    ws.ingest_batches(
        "product",
        vec![csv_batch("sku,category\ntv,electronics\nsock,clothes\n")],
        IngestOptions::default(),
    )
    .await
    .unwrap();
    ws.define_entity(
        Entity::event("events", "ts")
            .attribute(Attribute::new("user_id", DataType::Int64))
            .attribute(Attribute::new("ts", DataType::Timestamp))
            .attribute(Attribute::new("event_type", DataType::String))
            .attribute(Attribute::new("sku", DataType::String))
            .link(Link::new("user_id", "people"))
            .link(Link::new("sku", "product")),
    )
    .await
    .unwrap();
    let events = "user_id,ts,event_type,sku
1,2026-06-01T00:00:00Z,view,tv
1,2026-06-02T00:00:00Z,purchase,tv
2,2026-06-01T00:00:00Z,view,sock
2,2026-06-02T00:00:00Z,purchase,sock
3,2026-06-01T00:00:00Z,view,tv
3,2026-06-05T00:00:00Z,purchase,tv
";
    ws.ingest_batches("events", vec![csv_batch(events)], IngestOptions::default()).await.unwrap();
    let rule = json!({"sequence": {"event": "events",
        "first": {"and": [{"attribute": "event_type", "op": "eq", "value": "view"},
                          {"linked": {"via": "sku", "where": {"attribute": "category", "op": "eq", "value": "electronics"}}}]},
        "then": {"attribute": "event_type", "op": "eq", "value": "purchase"},
        "within": "2 days"}});
    assert_eq!(members(&ws, "electronics_buyers", "people", rule).await.unwrap(), vec![1]);
}

#[tokio::test]
async fn plans_name_nodes_by_id_and_are_the_same_on_every_run() {
    let (_dir, ws) = workspace().await;
    members(&ws, "buyers", "people", json!({"performed": purchases(json!({}))})).await.unwrap();
    let rule = json!({"or": [
        {"in_segment": "buyers"},
        {"and": [
            {"attribute": "age", "op": "gt", "value": 30},
            {"performed": purchases(json!({"having": [{"count": {"ge": 2}}]}))}
        ]}
    ]});
    members(&ws, "mixed", "people", rule).await.unwrap();
    let first = ws.query_plan("mixed").await.unwrap();
    assert_eq!(first, ws.query_plan("mixed").await.unwrap(), "the plan text is deterministic");
    // Subqueries are named after node ids assigned in checking order, not after memory addresses: the
    // referenced segment's behaviour is node 2 (after its filter predicate 0 and its implicit count threshold 1),
    // the reference 3, `age` 4, the second behaviour 7 (after its filter predicate 5 and threshold 6).
    assert!(first.contains("__in_2@0") && first.contains("__in_7@0"), "{first}");
}
