//! Property test: random rule trees over random data with nulls, compiled to DataFusion and run over stored
//! Parquet, must select exactly the members the row-by-row reference interpreter selects.

use std::sync::Arc;

use arrow::array::{Array, AsArray};
use arrow::array::{
    ArrayRef, BooleanArray, Date32Array, Float64Array, Int32Array, Int64Array, ListBuilder, RecordBatch, StringArray,
    StringBuilder, TimestampMicrosecondArray,
};
use arrow::datatypes::Int64Type;
use proptest::prelude::*;
use serde_json::{json, Value};

use super::reference;
use super::{check, Op, Rule};
use crate::model::{Attribute, DataType, Entity};
use crate::{FixedClock, IngestOptions, SegmentDefinition, Workspace};

const NOW: &str = "2026-06-30T12:00:00Z";
const NOW_US: i64 = 1_782_820_800_000_000;
const DAY_US: i64 = 86_400_000_000;
const STRINGS: [&str; 10] = ["", "a", "ab", "b", "ba", "%", "_x", "A", "a%b", "é"];
const TAGS: [&str; 3] = ["a", "b", "c"];
const FLOATS: [f64; 6] = [-1.5, 0.0, 1.0, 2.5, 1e300, f64::NAN];

pub(crate) fn entity() -> Entity {
    Entity::profile("t", "id")
        .attribute(Attribute::new("id", DataType::Int64))
        .attribute(Attribute::new("s", DataType::String).indexed())
        .attribute(Attribute::new("i", DataType::Int32).indexed())
        .attribute(Attribute::new("l", DataType::Int64))
        .attribute(Attribute::new("f", DataType::Float64))
        .attribute(Attribute::new("b", DataType::Bool))
        .attribute(Attribute::new("d", DataType::Date))
        .attribute(Attribute::new("ts", DataType::Timestamp))
        .attribute(Attribute::new("tags", DataType::List(Box::new(DataType::String))))
}

#[derive(Debug, Clone)]
struct Row {
    s: Option<usize>,
    i: Option<i32>,
    l: Option<i64>,
    f: Option<usize>,
    b: Option<bool>,
    d: Option<i32>,
    ts: Option<i64>,
    tags: Option<Vec<Option<usize>>>,
}

fn opt<T: std::fmt::Debug + Clone + 'static>(s: impl Strategy<Value = T> + 'static) -> BoxedStrategy<Option<T>> {
    prop_oneof![1 => Just(None), 4 => s.prop_map(Some)].boxed()
}

fn row() -> impl Strategy<Value = Row> {
    (
        opt(0..STRINGS.len()),
        opt(-3i32..4),
        opt(-3i64..4),
        opt(0..FLOATS.len()),
        opt(any::<bool>()),
        opt(-4i32..3),
        opt(-5i64..3),
        opt(prop::collection::vec(opt(0..TAGS.len()), 0..4)),
    )
        .prop_map(|(s, i, l, f, b, d, ts, tags)| Row { s, i, l, f, b, d, ts, tags })
}

/// Day offsets relative to NOW's date; timestamps at NOW + k days + a few hours.
fn batch(rows: &[Row]) -> RecordBatch {
    let now_day = (NOW_US / DAY_US) as i32;
    let mut tags = ListBuilder::new(StringBuilder::new());
    for r in rows {
        match &r.tags {
            None => tags.append_null(),
            Some(v) => {
                for t in v {
                    tags.values().append_option(t.map(|i| TAGS[i]));
                }
                tags.append(true);
            }
        }
    }
    let cols: Vec<(&str, ArrayRef)> = vec![
        ("id", Arc::new(Int64Array::from_iter_values(0..rows.len() as i64))),
        ("s", Arc::new(rows.iter().map(|r| r.s.map(|i| STRINGS[i])).collect::<StringArray>())),
        ("i", Arc::new(rows.iter().map(|r| r.i).collect::<Int32Array>())),
        ("l", Arc::new(rows.iter().map(|r| r.l).collect::<Int64Array>())),
        ("f", Arc::new(rows.iter().map(|r| r.f.map(|i| FLOATS[i])).collect::<Float64Array>())),
        ("b", Arc::new(rows.iter().map(|r| r.b).collect::<BooleanArray>())),
        ("d", Arc::new(rows.iter().map(|r| r.d.map(|d| now_day + d)).collect::<Date32Array>())),
        (
            "ts",
            Arc::new(
                rows.iter()
                    .map(|r| r.ts.map(|k| NOW_US + k * DAY_US + 3_600_000_000 * (k % 3)))
                    .collect::<TimestampMicrosecondArray>()
                    .with_timezone("UTC"),
            ),
        ),
        ("tags", Arc::new(tags.finish())),
    ];
    RecordBatch::try_from_iter(cols).unwrap()
}

fn date_text(offset: i32) -> String {
    let d =
        chrono::DateTime::from_timestamp_micros(NOW_US).unwrap().date_naive() + chrono::Duration::days(offset as i64);
    d.format("%Y-%m-%d").to_string()
}

fn ts_text(offset_days: i64, hours: i64) -> String {
    chrono::DateTime::from_timestamp_micros(NOW_US + offset_days * DAY_US + hours * 3_600_000_000).unwrap().to_rfc3339()
}

fn condition() -> impl Strategy<Value = Rule> {
    let s = (0..STRINGS.len()).prop_map(|i| json!(STRINGS[i]));
    let int = (-3i64..4).prop_map(|v| json!(v));
    let fl = prop_oneof![(0..FLOATS.len() - 1).prop_map(|i| json!(FLOATS[i])), Just(json!(0.5))];
    let date = (-4i32..3).prop_map(|d| json!(date_text(d)));
    let ts = (-5i64..3, 0i64..3).prop_map(|(d, h)| json!(ts_text(d, h)));
    let tag = (0..TAGS.len()).prop_map(|i| json!(TAGS[i]));
    let tags =
        prop::collection::vec(0..TAGS.len(), 1..3).prop_map(|v| json!(v.iter().map(|i| TAGS[*i]).collect::<Vec<_>>()));
    let window = (0i64..4, prop::sample::select(vec!["hours", "days", "weeks", "months"]))
        .prop_map(|(a, u)| json!({"amount": a, "unit": u}));
    let ordered_ops = prop::sample::select(vec![Op::Eq, Op::Ne, Op::Lt, Op::Le, Op::Gt, Op::Ge]);
    let list = |v: BoxedStrategy<Value>| prop::collection::vec(v, 1..4).prop_map(Value::Array);
    let attr_scalar = |name: &'static str, v: BoxedStrategy<Value>| {
        prop_oneof![
            (ordered_ops.clone(), v.clone()).prop_map(move |(op, x)| Rule::condition(name, op, x)),
            (prop::bool::ANY, list(v.clone())).prop_map(move |(neg, x)| Rule::condition(
                name,
                if neg { Op::NotIn } else { Op::In },
                x
            )),
            prop::bool::ANY.prop_map(move |neg| Rule::condition(
                name,
                if neg { Op::NotNull } else { Op::IsNull },
                Value::Null
            )),
        ]
    };
    prop_oneof![
        attr_scalar("s", s.clone().boxed()),
        (prop::sample::select(vec![Op::Contains, Op::NotContains, Op::StartsWith, Op::EndsWith]), s.clone())
            .prop_map(|(op, v)| Rule::condition("s", op, v)),
        prop::sample::select(vec!["^a", "b$", "^$", "[%_]", "(?i)a"]).prop_map(|p| Rule::condition(
            "s",
            Op::Matches,
            p
        )),
        attr_scalar("i", int.clone().boxed()),
        attr_scalar("l", int.clone().boxed()),
        (prop::bool::ANY, -3i64..4, -3i64..4).prop_map(|(n, a, b)| {
            Rule::condition("i", if n { Op::NotBetween } else { Op::Between }, json!([a.min(b), a.max(b)]))
        }),
        attr_scalar("f", fl.clone().boxed()),
        (prop::bool::ANY, fl.clone(), fl).prop_map(|(n, x, y)| {
            // Bounds must be ordered numerically for the checker; sort them here.
            let mut a: Vec<f64> = vec![x.as_f64().unwrap(), y.as_f64().unwrap()];
            a.sort_by(f64::total_cmp);
            Rule::condition("f", if n { Op::NotBetween } else { Op::Between }, json!(a))
        }),
        (prop::bool::ANY, prop::bool::ANY).prop_map(|(v, ne)| Rule::condition(
            "b",
            if ne { Op::Ne } else { Op::Eq },
            v
        )),
        Just(Rule::condition("b", Op::IsNull, Value::Null)),
        attr_scalar("d", date.clone().boxed()),
        (prop::bool::ANY, date).prop_map(|(a, v)| Rule::condition("d", if a { Op::After } else { Op::Before }, v)),
        attr_scalar("ts", ts.clone().boxed()),
        (prop::bool::ANY, ts).prop_map(|(a, v)| Rule::condition("ts", if a { Op::After } else { Op::Before }, v)),
        (prop::sample::select(vec!["d", "ts"]), prop::bool::ANY, window).prop_map(|(a, n, w)| Rule::condition(
            a,
            if n { Op::NotWithinLast } else { Op::WithinLast },
            w
        )),
        (prop::sample::select(vec![Op::HasAny, Op::HasAll, Op::HasNone]), tags)
            .prop_map(|(op, v)| Rule::condition("tags", op, v)),
        (prop::bool::ANY, tag).prop_map(|(n, v)| Rule::condition(
            "tags",
            if n { Op::NotContains } else { Op::Contains },
            v
        )),
        Just(Rule::condition("tags", Op::IsNull, Value::Null)),
    ]
}

/// Event rows: (link to `t.id` or an unknown id or null, day offset, kind, amount).
#[derive(Debug, Clone)]
struct Event {
    uid: Option<i64>,
    day: i64,
    kind: Option<usize>,
    amt: Option<usize>,
}

const KINDS: [&str; 2] = ["a", "b"];
const AMOUNTS: [f64; 3] = [1.0, 2.5, -1.0];

fn event() -> impl Strategy<Value = Event> {
    (opt(0i64..45), -40i64..2, opt(0..KINDS.len()), opt(0..AMOUNTS.len())).prop_map(|(uid, day, kind, amt)| Event {
        uid,
        day,
        kind,
        amt,
    })
}

fn events_entity() -> Entity {
    Entity::event("ev", "at")
        .attribute(Attribute::new("uid", DataType::Int64))
        .attribute(Attribute::new("at", DataType::Timestamp))
        .attribute(Attribute::new("kind", DataType::String).indexed())
        .attribute(Attribute::new("amt", DataType::Float64))
        .link(crate::model::Link::new("uid", "t"))
}

fn events_batch(events: &[Event]) -> RecordBatch {
    let cols: Vec<(&str, ArrayRef)> = vec![
        ("uid", Arc::new(events.iter().map(|e| e.uid).collect::<Int64Array>())),
        (
            "at",
            Arc::new(
                events
                    .iter()
                    .map(|e| Some(NOW_US + e.day * DAY_US + 3_600_000_000 * (e.day.rem_euclid(2))))
                    .collect::<TimestampMicrosecondArray>()
                    .with_timezone("UTC"),
            ),
        ),
        ("kind", Arc::new(events.iter().map(|e| e.kind.map(|k| KINDS[k])).collect::<StringArray>())),
        ("amt", Arc::new(events.iter().map(|e| e.amt.map(|a| AMOUNTS[a])).collect::<Float64Array>())),
    ];
    RecordBatch::try_from_iter(cols).unwrap()
}

/// Orders: a related profile entity `o` whose `owner` links to `t.id` (or to an unknown id, or is null).
#[derive(Debug, Clone)]
struct Order {
    owner: Option<i64>,
    status: Option<usize>,
    total: Option<usize>,
}

const STATUSES: [&str; 2] = ["paid", "open"];
const TOTALS: [f64; 3] = [50.0, 150.0, 0.0];

fn order() -> impl Strategy<Value = Order> {
    (opt(0i64..35), opt(0..STATUSES.len()), opt(0..TOTALS.len())).prop_map(|(owner, status, total)| Order {
        owner,
        status,
        total,
    })
}

fn orders_entity() -> Entity {
    Entity::profile("o", "oid")
        .attribute(Attribute::new("oid", DataType::Int64))
        .attribute(Attribute::new("owner", DataType::Int64))
        .attribute(Attribute::new("status", DataType::String))
        .attribute(Attribute::new("total", DataType::Float64))
        .link(crate::model::Link::new("owner", "t"))
}

fn orders_batch(orders: &[Order]) -> RecordBatch {
    let cols: Vec<(&str, ArrayRef)> = vec![
        ("oid", Arc::new(Int64Array::from_iter_values(0..orders.len() as i64))),
        ("owner", Arc::new(orders.iter().map(|o| o.owner).collect::<Int64Array>())),
        ("status", Arc::new(orders.iter().map(|o| o.status.map(|k| STATUSES[k])).collect::<StringArray>())),
        ("total", Arc::new(orders.iter().map(|o| o.total.map(|k| TOTALS[k])).collect::<Float64Array>())),
    ];
    RecordBatch::try_from_iter(cols).unwrap()
}

/// A condition on a user over their orders (a related profile entity: counted, never windowed).
fn related() -> impl Strategy<Value = Rule> {
    let filter = prop_oneof![
        Just(None),
        (0..STATUSES.len()).prop_map(|k| Some(json!({"attribute": "status", "op": "eq", "value": STATUSES[k]}))),
        (0..TOTALS.len()).prop_map(|k| Some(json!({"and": [
            {"attribute": "status", "op": "eq", "value": "paid"},
            {"attribute": "total", "op": "gt", "value": TOTALS[k]}
        ]}))),
    ];
    let threshold = prop_oneof![
        (prop::sample::select(vec!["ge", "lt", "eq"]), 0i64..3).prop_map(|(op, n)| json!({"count": {op: n}})),
        (prop::sample::select(vec!["gt", "le"]), 0i64..200).prop_map(|(op, n)| json!({"sum": "total", op: n})),
        (prop::sample::select(vec!["ge", "lt"]), 0i64..200).prop_map(|(op, n)| json!({"max": "total", op: n})),
    ];
    (filter, prop::collection::vec(threshold, 0..2), prop::bool::ANY).prop_map(|(f, h, neg)| {
        let mut spec = json!({"event": "o"});
        if let Some(f) = f {
            spec["where"] = f;
        }
        if !h.is_empty() {
            spec["having"] = json!(h);
        }
        Rule::parse(&json!({ if neg { "not_performed" } else { "performed" }: spec }), super::Dialect::Segkit).unwrap()
    })
}

/// A rule on orders: their own attributes, and `linked` conditions on their owner (any rule on `t`, behavioural
/// ones and segment references included).
fn order_rule() -> impl Strategy<Value = Rule> {
    let own = prop_oneof![
        (prop::bool::ANY, 0..STATUSES.len()).prop_map(|(ne, k)| Rule::condition(
            "status",
            if ne { Op::Ne } else { Op::Eq },
            STATUSES[k]
        )),
        Just(Rule::condition("status", Op::IsNull, Value::Null)),
        (prop::bool::ANY, 0..TOTALS.len()).prop_map(|(gt, k)| Rule::condition(
            "total",
            if gt { Op::Gt } else { Op::Le },
            TOTALS[k]
        )),
    ];
    let linked = rule_with_behaviour().prop_map(|r| {
        Rule::parse(&json!({"linked": {"via": "owner", "where": r.to_json()}}), super::Dialect::Segkit).unwrap()
    });
    prop_oneof![1 => own, 2 => linked].prop_recursive(2, 6, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Rule::And),
            prop::collection::vec(inner.clone(), 0..3).prop_map(Rule::Or),
            inner.prop_map(Rule::not),
        ]
    })
}

/// A behavioural condition over `ev` or over the related orders `o`, or a reference to the segment `base`.
fn behaviour() -> impl Strategy<Value = Rule> {
    let filter = prop_oneof![
        Just(None),
        (0..KINDS.len()).prop_map(|k| Some(json!({"attribute": "kind", "op": "eq", "value": KINDS[k]}))),
        Just(Some(json!({"attribute": "amt", "op": "gt", "value": 0}))),
    ];
    let window = prop_oneof![
        Just(None),
        (0i64..40).prop_map(|d| Some(("within_last", json!(format!("{d} days"))))),
        (-40i64..0, 0i64..20).prop_map(|(a, len)| Some(("between", json!([ts_text(a, 0), ts_text(a + len, 0)])))),
        Just(Some(("since", json!("ts")))),
    ];
    let threshold = prop_oneof![
        (prop::sample::select(vec!["ge", "lt", "eq", "gt"]), 0i64..4).prop_map(|(op, n)| json!({"count": {op: n}})),
        (prop::sample::select(vec!["gt", "le"]), -2i64..5).prop_map(|(op, n)| json!({"sum": "amt", op: n})),
        (prop::sample::select(vec!["gt", "lt"]), 0i64..3).prop_map(|(op, n)| json!({"avg": "amt", op: n})),
        (prop::sample::select(vec!["ge", "le"]), 1i64..3).prop_map(|(op, n)| json!({"count_distinct": "kind", op: n})),
        (0i64..30).prop_map(|d| json!({"min": "at", "within_last": format!("{d} days")})),
        (0i64..30).prop_map(|d| json!({"max": "at", "not_within_last": format!("{d} days")})),
        Just(json!({"max": "amt", "is_null": null})),
    ];
    let performed =
        (filter, window, prop::collection::vec(threshold, 0..3), prop::bool::ANY).prop_map(|(f, w, h, neg)| {
            let mut spec = json!({"event": "ev"});
            if let Some(f) = f {
                spec["where"] = f;
            }
            if let Some((k, v)) = w {
                spec[k] = v;
            }
            if !h.is_empty() {
                spec["having"] = json!(h);
            }
            Rule::parse(&json!({ if neg { "not_performed" } else { "performed" }: spec }), super::Dialect::Segkit)
                .unwrap()
        });
    let step = prop_oneof![
        (0..KINDS.len()).prop_map(|k| json!({"attribute": "kind", "op": "eq", "value": KINDS[k]})),
        Just(json!({"attribute": "amt", "op": "gt", "value": 0})),
        Just(json!({"and": []})),
        // A step that looks at the profile the event links to (a subquery inside the step).
        (-3i64..4).prop_map(|v| json!({"linked": {"via": "uid", "where": {"attribute": "i", "op": "gt", "value": v}}})),
    ];
    let sequence = (
        step.clone(),
        step.clone(),
        prop::option::of(prop_oneof![
            (0i64..6).prop_map(|d| json!(format!("{d} days"))),
            (1i64..30).prop_map(|h| json!(format!("{h} hours")))
        ]),
        prop::option::of(step),
        prop::option::of((0i64..40).prop_map(|d| json!(format!("{d} days")))),
        prop::bool::ANY,
    )
        .prop_map(|(first, then, within, without, last, neg)| {
            let mut spec = json!({"event": "ev", "first": first, "then": then});
            if let Some(w) = within {
                spec["within"] = w;
            }
            if let Some(w) = without {
                spec["without"] = w;
            }
            if let Some(w) = last {
                spec["within_last"] = w;
            }
            Rule::parse(&json!({ if neg { "not_sequence" } else { "sequence" }: spec }), super::Dialect::Segkit)
                .unwrap()
        });
    prop_oneof![
        3 => performed,
        2 => sequence,
        2 => related(),
        1 => prop::bool::ANY.prop_map(|neg| Rule::parse(&json!({ if neg { "not_in_segment" } else { "in_segment" }: "base" }), super::Dialect::Segkit).unwrap()),
    ]
}

fn rule_with_behaviour() -> impl Strategy<Value = Rule> {
    prop_oneof![2 => condition(), 1 => behaviour()].prop_recursive(3, 10, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Rule::And),
            prop::collection::vec(inner.clone(), 0..4).prop_map(Rule::Or),
            inner.prop_map(Rule::not),
        ]
    })
}

fn rule() -> impl Strategy<Value = Rule> {
    condition().prop_recursive(3, 12, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Rule::And),
            prop::collection::vec(inner.clone(), 0..4).prop_map(Rule::Or),
            inner.prop_map(Rule::not),
        ]
    })
}

/// Members the reference interpreter selects.
fn expected(rule: &Rule, data: &RecordBatch) -> Vec<i64> {
    let checked = check(rule, &entity()).expect("generated rules type-check");
    let now = chrono::DateTime::parse_from_rfc3339(NOW).unwrap().with_timezone(&chrono::Utc);
    let ids = data.column_by_name("id").unwrap().as_primitive::<Int64Type>();
    let mut out: Vec<i64> = reference::eval(&checked, data, now)
        .iter()
        .enumerate()
        .filter(|(_, v)| **v == Some(true))
        .map(|(i, _)| ids.value(i))
        .collect();
    out.sort();
    out
}

async fn actual(rows: &[Row], rules: &[Rule]) -> (Vec<Vec<i64>>, RecordBatch) {
    let (out, stored, _) = actual_with_events(rows, &[], &[], rules, &[]).await;
    (out, stored)
}

/// Evaluates `rules` (on `t`) and `order_rules` (on `o`) over `rows`, `events` and `orders`; also returns each
/// rule's reference members (the rules on `t` first).
async fn actual_with_events(
    rows: &[Row],
    events: &[Event],
    orders: &[Order],
    rules: &[Rule],
    order_rules: &[Rule],
) -> (Vec<Vec<i64>>, RecordBatch, Vec<Vec<i64>>) {
    let dir = tempfile::tempdir().unwrap();
    let ws = Workspace::open(dir.path()).await.unwrap();
    ws.set_clock(Arc::new(FixedClock::parse(NOW).unwrap()));
    ws.define_entity(entity()).await.unwrap();
    ws.define_entity(events_entity()).await.unwrap();
    ws.define_entity(orders_entity()).await.unwrap();
    for (name, batch) in [("t", batch(rows)), ("ev", events_batch(events)), ("o", orders_batch(orders))] {
        if batch.num_rows() > 0 {
            let r = ws.ingest_batches(name, vec![batch], IngestOptions::default()).await.unwrap();
            assert_eq!(r.rows_quarantined, 0, "{name}: {:?}", r.quarantine_sample);
        }
    }
    let base = Rule::parse(&json!({"attribute": "i", "op": "gt", "value": 0}), super::Dialect::Segkit).unwrap();
    ws.define_segment(SegmentDefinition::new("base", "t", base)).await.unwrap();
    let read = |sql: &'static str, schema: arrow::datatypes::SchemaRef| {
        let ws = &ws;
        async move { arrow::compute::concat_batches(&schema, &ws.sql(sql).await.unwrap()).unwrap() }
    };
    let stored = read("SELECT * FROM t ORDER BY id", entity().schema()).await;
    let tables: std::collections::HashMap<String, RecordBatch> = [
        ("ev".to_string(), read("SELECT * FROM ev", events_entity().schema()).await),
        ("o".to_string(), read("SELECT * FROM o ORDER BY oid", orders_entity().schema()).await),
        ("t".to_string(), stored.clone()),
    ]
    .into();
    let mut out = vec![];
    let mut want = vec![];
    let now = chrono::DateTime::parse_from_rfc3339(NOW).unwrap().with_timezone(&chrono::Utc);
    let on_t = rules.iter().map(|r| (r, entity(), "id"));
    let on_o = order_rules.iter().map(|r| (r, orders_entity(), "oid"));
    for (i, (r, ent, key)) in on_t.chain(on_o).enumerate() {
        let name = format!("r{i}");
        ws.define_segment(SegmentDefinition::new(&name, &ent.name, r.clone())).await.unwrap();
        let run = ws.evaluate(&name).await.unwrap();
        assert_eq!(ws.count(&name).await.unwrap(), run.count, "count() and evaluate() disagree for {r:?}");
        out.push(run.members.column(0).as_primitive::<Int64Type>().values().to_vec());
        let checked = super::check_with(r, &ent, &ws, std::slice::from_ref(&name)).unwrap();
        let table = &tables[&ent.name];
        let ids = table.column_by_name(key).unwrap().as_primitive::<Int64Type>();
        let mut w: Vec<i64> = reference::eval_with(&checked, table, now, key, &tables)
            .iter()
            .enumerate()
            .filter(|(_, v)| **v == Some(true))
            .map(|(i, _)| ids.value(i))
            .collect();
        w.sort();
        want.push(w);
    }
    (out, stored, want)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn compiled_rules_match_the_reference(rows in prop::collection::vec(row(), 0..40), rules in prop::collection::vec(rule(), 1..6)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let (got, stored) = rt.block_on(actual(&rows, &rules));
        for (r, g) in rules.iter().zip(got) {
            let want = expected(r, &stored);
            prop_assert_eq!(&g, &want, "rule {}", r.to_json());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Behavioural conditions (filters, windows, aggregates, holds-without-events, sequences), conditions over
    /// related profile entities, segment references, and `linked` conditions from the related entity's side.
    #[test]
    fn behavioural_rules_match_the_reference(
        rows in prop::collection::vec(row(), 0..30),
        events in prop::collection::vec(event(), 0..80),
        orders in prop::collection::vec(order(), 0..30),
        rules in prop::collection::vec(rule_with_behaviour(), 1..5),
        order_rules in prop::collection::vec(order_rule(), 0..3),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let (got, _, want) = rt.block_on(actual_with_events(&rows, &events, &orders, &rules, &order_rules));
        for ((r, g), w) in rules.iter().chain(&order_rules).zip(got).zip(want) {
            prop_assert_eq!(&g, &w, "rule {}", r.to_json());
        }
    }
}

#[test]
fn stored_data_round_trips_for_the_reference() {
    // The reference reads the stored table; make sure what is stored is what was ingested.
    let rows: Vec<Row> = (0..7)
        .map(|k| Row {
            s: Some(k % STRINGS.len()),
            i: Some(k as i32 - 3),
            l: None,
            f: Some(k % FLOATS.len()),
            b: Some(k % 2 == 0),
            d: Some(k as i32 - 4),
            ts: Some(k as i64 - 5),
            tags: Some(vec![Some(k % 3), None]),
        })
        .collect();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (_, stored) = rt.block_on(actual(&rows, &[]));
    let original = batch(&rows);
    assert_eq!(stored.num_rows(), 7);
    for c in ["s", "i", "l", "b", "d", "ts", "tags"] {
        assert_eq!(
            stored.column_by_name(c).unwrap().to_data(),
            original.column_by_name(c).unwrap().to_data(),
            "column {c}"
        );
    }
    let f = stored.column_by_name("f").unwrap().as_primitive::<arrow::datatypes::Float64Type>();
    assert_eq!(f.len(), 7);
    assert!(f.is_null(5), "NaN is stored as null");
    assert_eq!(f.value(4), 1e300);
}
