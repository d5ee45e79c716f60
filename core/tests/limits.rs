//! Hostile rule input: rules at the depth limit work through every entry point on a 2 MiB thread (the tokio
//! worker default) in whatever build runs the tests; rules past it, even 100,000 deep, fail with an error naming
//! the limit.

mod common;

use common::*;
use segkit::limits::{parse_rule_text, MAX_RULE_DEPTH};
use segkit::rules::{Dialect, Rule};
use segkit::SegmentDefinition;
use serde_json::{json, Value};

const STACK: usize = 2 * 1024 * 1024;

/// Runs `f` on a fresh runtime whose threads (the caller's included) have 2 MiB stacks.
fn on_small_stack<F: std::future::Future<Output = ()> + Send + 'static>(f: impl FnOnce() -> F + Send + 'static) {
    std::thread::Builder::new()
        .stack_size(STACK)
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_stack_size(STACK)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(f());
        })
        .unwrap()
        .join()
        .expect("thread panicked or overflowed");
}

/// JSON depth of a value (objects and arrays on the deepest path).
fn depth(v: &Value) -> usize {
    match v {
        Value::Array(a) => 1 + a.iter().map(depth).max().unwrap_or(0),
        Value::Object(m) => 1 + m.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// `age > 30` wrapped until the JSON is `target` deep, in each dialect; also returns whether the wrapping negates.
fn deep(dialect: &str, wrapper: &str, target: usize) -> (Value, bool) {
    let mut v = match dialect {
        "jsonlogic" => json!({">": [{"var": "age"}, 30]}),
        "querybuilder" => json!({"combinator": "and", "rules": [{"field": "age", "operator": ">", "value": 30}]}),
        _ => json!({"attribute": "age", "op": "gt", "value": 30}),
    };
    let mut negated = false;
    loop {
        let next = match (dialect, wrapper) {
            ("segkit", "not") => json!({ "not": v }),
            ("segkit", _) => json!({ "and": [v] }),
            ("jsonlogic", "not") => json!({ "!": v }),
            ("jsonlogic", _) => json!({ "and": [v] }),
            (_, "not") => json!({"combinator": "and", "not": true, "rules": [v]}),
            _ => json!({"combinator": "or", "rules": [v]}),
        };
        if depth(&next) > target {
            break;
        }
        negated ^= wrapper == "not";
        v = next;
    }
    (v, negated)
}

#[test]
fn rules_at_the_depth_limit_work_everywhere_on_a_2mib_stack() {
    on_small_stack(|| async {
        let (_dir, ws) = people_workspace().await;
        let mut i = 0;
        for dialect in ["segkit", "querybuilder", "jsonlogic"] {
            for wrapper in ["not", "and"] {
                let probe: Option<usize> = std::env::var("SEGKIT_PROBE_DEPTH").ok().map(|s| s.parse().unwrap());
                for target in probe.map(|p| vec![p]).unwrap_or(vec![MAX_RULE_DEPTH, MAX_RULE_DEPTH - 1]) {
                    let (v, negated) = deep(dialect, wrapper, target);
                    assert!(depth(&v) >= target - 1 && depth(&v) <= target, "{dialect} {wrapper} {}", depth(&v));
                    let want: Vec<i64> = if negated { vec![4, 5, 6] } else { vec![1, 2, 7, 8] };
                    let what = format!("{dialect}/{wrapper}/{target}");
                    i += 1;
                    let name = format!("deep{i}");
                    let rule = Rule::parse(&v, Dialect::Auto).unwrap_or_else(|e| panic!("{what}: {e}"));
                    let text_rule = Rule::parse_str(&v.to_string()).unwrap();
                    assert_eq!(rule, text_rule, "{what}");
                    eprintln!("{what}: parsed");
                    let def = SegmentDefinition::new(&name, "people", rule);
                    let dry = ws.dry_run(def.clone()).await.unwrap_or_else(|e| panic!("{what}: {e}"));
                    assert_eq!(dry.count as usize, want.len(), "{what}");
                    eprintln!("{what}: dry run");
                    ws.define_segment(def).await.unwrap();
                    assert_eq!(ws.count(&name).await.unwrap() as usize, want.len(), "{what}");
                    assert_eq!(ids(&ws.evaluate(&name).await.unwrap().members), want, "{what}");
                    eprintln!("{what}: evaluated");
                    let ex = ws.explain(&name, "1").await.unwrap_or_else(|e| panic!("{what}: {e}"));
                    assert_eq!(ex.member, !negated, "{what}");
                    // the stored rule reloads (serde path) and serialises
                    assert!(serde_json::to_string(&ws.segment(&name).unwrap().rule).unwrap().len() > 10);
                }
            }
        }
    });
}

#[test]
fn rules_past_the_depth_limit_fail_naming_it() {
    on_small_stack(|| async {
        for dialect in ["segkit", "querybuilder", "jsonlogic"] {
            for wrapper in ["not", "and"] {
                // one level too deep, as a value and as text
                let (v, _) = deep(dialect, wrapper, MAX_RULE_DEPTH + 2);
                assert!(depth(&v) > MAX_RULE_DEPTH);
                let e = Rule::parse(&v, Dialect::Auto).unwrap_err();
                assert!(e.to_string().contains("MAX_RULE_DEPTH"), "{dialect}/{wrapper}: {e}");
                let e = Rule::parse_str(&v.to_string()).unwrap_err();
                assert!(e.to_string().contains("MAX_RULE_DEPTH"), "{dialect}/{wrapper}: {e}");
            }
        }
        // 100,000 deep, only ever as text (a Value that deep would overflow on drop)
        for (open, close) in [
            ("{\"not\":", "}"),
            ("{\"and\":[", "]}"),
            ("{\"combinator\":\"and\",\"rules\":[", "]}"),
            ("{\"!\":", "}"),
            ("[", "]"),
        ] {
            let text = format!(
                "{}{{\"attribute\":\"age\",\"op\":\"gt\",\"value\":1}}{}",
                open.repeat(100_000),
                close.repeat(100_000)
            );
            let e = Rule::parse_str(&text).unwrap_err();
            assert!(e.to_string().contains("MAX_RULE_DEPTH"), "{open}: {e}");
            let e = parse_rule_text(&text).unwrap_err();
            assert!(e.to_string().contains("MAX_RULE_DEPTH"), "{open}: {e}");
        }
    });
}

#[test]
fn a_1m_value_in_list_is_within_the_limits() {
    let list: Vec<i64> = (0..1_000_000).collect();
    let rule = Rule::parse(&json!({"attribute": "age", "op": "in", "value": list}), Dialect::Segkit).unwrap();
    assert!(matches!(rule, Rule::Condition(_)));
}

#[test]
fn regex_patterns_are_bounded_before_datafusion_sees_them() {
    use segkit::limits::MAX_REGEX_PATTERN_BYTES;
    let entity = people_entity();
    let check = |pattern: String| {
        let rule = Rule::parse(&json!({"attribute": "name", "op": "matches", "value": pattern}), Dialect::Segkit)?;
        segkit::rules::check(&rule, &entity).map(|_| ())
    };
    let e = check("a".repeat(MAX_REGEX_PATTERN_BYTES + 1)).unwrap_err();
    assert!(e.to_string().contains("MAX_REGEX_PATTERN_BYTES"), "{e}");
    // short but huge once compiled (counted repetition of a Unicode class)
    let e = check(r"\w{1000}\w{1000}\w{1000}".to_string()).unwrap_err();
    assert!(e.to_string().contains("MAX_REGEX_PROGRAM_BYTES"), "{e}");
    let e = check("(unclosed".to_string()).unwrap_err();
    assert!(e.to_string().contains("invalid regular expression"), "{e}");
    check("^A.*n$".to_string()).unwrap();
}

#[test]
fn a_regex_just_within_the_limits_selects_members() {
    on_small_stack(|| async {
        let (_dir, ws) = people_workspace().await;
        let pattern = format!("^(A|G){}", ".".repeat(2));
        let got = members(&ws, "re", "people", json!({"attribute": "name", "op": "matches", "value": pattern})).await;
        assert_eq!(got.unwrap(), vec![1, 7]);
    });
}

/// A flat group of `MAX_RULE_NODES` objects (found from Python: a left-deep chain of 100,000 `or`s overflowed the
/// stack in DataFusion's expression walks). Groups compile to balanced trees now. (`explain` of such a rule is
/// not tested here: it projects one column per node and DataFusion's filter pushdown is quadratic in columns.)
#[test]
fn a_group_at_the_node_limit_evaluates_on_a_2mib_stack() {
    use segkit::limits::MAX_RULE_NODES;
    on_small_stack(|| async {
        let (_dir, ws) = people_workspace().await;
        for (op, want) in [("or", vec![1, 6]), ("and", vec![])] {
            // age = 31 or age = 30 or age = 1000 + i …: exactly MAX_RULE_NODES objects.
            let mut conds = vec![
                json!({"attribute": "age", "op": "eq", "value": 31}),
                json!({"attribute": "age", "op": "eq", "value": 30}),
            ];
            conds.extend((0..MAX_RULE_NODES - 3).map(|i| json!({"attribute": "age", "op": "eq", "value": 1000 + i})));
            let rule = json!({ op: conds });
            segkit::limits::check_rule_value(&rule).unwrap();
            let got = members(&ws, op, "people", rule).await.unwrap();
            assert_eq!(got, want, "{op}");
            assert_eq!(ws.count(op).await.unwrap(), want.len() as u64);
        }
    });
}

/// `explain` evaluates its conditions a bounded number of columns per query, so a wide rule explains in
/// reasonable time; past `MAX_EXPLAIN_CONDITIONS` it is refused with the limit named (count still works).
#[test]
fn explain_of_wide_rules_works_up_to_its_limit_and_names_it_beyond() {
    use segkit::limits::MAX_EXPLAIN_CONDITIONS;
    on_small_stack(|| async {
        let (_dir, ws) = people_workspace().await;
        let wide = |n: usize| {
            let mut conds = vec![json!({"attribute": "age", "op": "eq", "value": 31})];
            conds.extend((1..n).map(|i| json!({"attribute": "age", "op": "eq", "value": 1000 + i})));
            json!({ "or": conds })
        };
        assert_eq!(members(&ws, "wide", "people", wide(1000)).await.unwrap(), vec![1]);
        let ex = ws.explain("wide", "1").await.unwrap();
        assert!(ex.member);
        assert_eq!(ex.root.children.len(), 1000);
        assert_eq!(ex.root.children.iter().filter(|c| c.value == Some(true)).count(), 1);
        assert_eq!(ex.root.children[0].detail.as_deref(), Some("age = 31"), "{:?}", ex.root.children[0]);

        members(&ws, "too_wide", "people", wide(MAX_EXPLAIN_CONDITIONS + 1)).await.unwrap();
        assert_eq!(ws.count("too_wide").await.unwrap(), 1);
        let e = ws.explain("too_wide", "1").await.unwrap_err();
        assert_eq!(e.kind(), segkit::ErrorKind::InvalidArgument, "{e}");
        assert!(e.to_string().contains("MAX_EXPLAIN_CONDITIONS = 10000"), "{e}");
    });
}
