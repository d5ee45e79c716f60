//! The three JSON dialects rules arrive in: segkit's own, react-querybuilder and JsonLogic.
//!
//! # segkit's dialect
//!
//! A rule is one of
//! - `{"and": [rule, …]}`, `{"or": [rule, …]}`, `{"not": rule}`
//! - `{"attribute": "age", "op": "between", "value": [25, 40]}` (`field` and `operator` are accepted as aliases)
//!
//! Operators: `eq ne lt le gt ge` (also `= != < <= > >=`), `between not_between` (value `[lo, hi]`, inclusive),
//! `in not_in` (a list), `contains not_contains starts_with ends_with matches` (strings; `contains` on a list
//! attribute tests for an element), `is_null not_null` (no value), `has_any has_all has_none` (lists),
//! `before after` (dates and timestamps, strict), `within_last not_within_last` (value `{"amount": 30, "unit":
//! "days"}` or `"30 days"`; units minutes, hours, days, weeks, months).
//!
//! ```
//! use segkit::rules::{Dialect, Rule};
//! let native = Rule::parse(&serde_json::json!({"and": [{"attribute": "age", "op": "ge", "value": 18}]}), Dialect::Auto).unwrap();
//! let rqb = Rule::parse(&serde_json::json!({"combinator": "and", "rules": [{"field": "age", "operator": ">=", "value": 18}]}), Dialect::Auto).unwrap();
//! let logic = Rule::parse(&serde_json::json!({"and": [{">=": [{"var": "age"}, 18]}]}), Dialect::Auto).unwrap();
//! assert_eq!(native, rqb);
//! assert_eq!(native, logic);
//! ```

use std::str::FromStr;

use serde_json::{Map, Value};

use super::ast::{AggFn, Aggregate, Behavior, BehaviorWindow, Condition, LinkedRule, Op, Rule, SegmentRef, Sequence};
use crate::error::{Error, Result};

/// Which JSON dialect a rule is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Dialect {
    /// Detect: react-querybuilder if the top has `combinator`/`rules`, JsonLogic if any `var` appears, else segkit.
    #[default]
    Auto,
    /// segkit's own dialect.
    Segkit,
    /// react-querybuilder's `{combinator, not, rules: [{field, operator, value}]}`.
    QueryBuilder,
    /// JsonLogic (the subset that maps to conditions on attributes).
    JsonLogic,
}

impl FromStr for Dialect {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().replace(['-', '_'], "").as_str() {
            "auto" | "" => Ok(Dialect::Auto),
            "segkit" | "native" => Ok(Dialect::Segkit),
            "querybuilder" | "reactquerybuilder" | "rqb" => Ok(Dialect::QueryBuilder),
            "jsonlogic" => Ok(Dialect::JsonLogic),
            _ => Err(Error::InvalidArgument(format!(
                "unknown rule dialect `{s}`; expected auto, segkit, querybuilder or jsonlogic"
            ))),
        }
    }
}

impl Dialect {
    /// Guesses the dialect of a JSON rule.
    pub fn detect(v: &Value) -> Dialect {
        if let Value::Object(m) = v {
            if m.contains_key("combinator") || m.contains_key("rules") {
                return Dialect::QueryBuilder;
            }
        }
        if mentions_var(v) {
            Dialect::JsonLogic
        } else {
            Dialect::Segkit
        }
    }
}

/// Whether any object in `v` has a `var` key (iterative: safe on JSON of any depth).
fn mentions_var(v: &Value) -> bool {
    let mut stack = vec![v];
    while let Some(v) = stack.pop() {
        match v {
            Value::Object(m) => {
                if m.contains_key("var") {
                    return true;
                }
                stack.extend(m.values());
            }
            Value::Array(a) => stack.extend(a.iter()),
            _ => {}
        }
    }
    false
}

impl Rule {
    /// Parses a rule from JSON in the given dialect.
    ///
    /// The JSON is first checked against [`crate::limits`] (depth, size), without recursing.
    pub fn parse(v: &Value, dialect: Dialect) -> Result<Rule> {
        crate::limits::check_rule_value(v)?;
        let dialect = if dialect == Dialect::Auto { Dialect::detect(v) } else { dialect };
        match dialect {
            Dialect::Auto | Dialect::Segkit => parse_native(v, ""),
            Dialect::QueryBuilder => parse_rqb(v, ""),
            Dialect::JsonLogic => parse_logic(v, ""),
        }
    }

    /// Parses a rule from JSON text, detecting the dialect.
    pub fn parse_str(text: &str) -> Result<Rule> {
        let v = crate::limits::parse_rule_text(text)?;
        Rule::parse(&v, Dialect::Auto)
    }
}

fn join(path: &str, part: impl std::fmt::Display) -> String {
    if path.is_empty() {
        part.to_string()
    } else {
        format!("{path}.{part}")
    }
}

fn at(path: &str) -> String {
    if path.is_empty() {
        "<root>".to_string()
    } else {
        path.to_string()
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

// ------------------------------------------------------------------------------------------------ segkit

pub(crate) fn parse_native(v: &Value, path: &str) -> Result<Rule> {
    let Value::Object(m) = v else {
        return Err(Error::rule(at(path), format!("expected a rule object, found {}", kind(v))));
    };
    for (key, ctor) in [("and", Rule::And as fn(Vec<Rule>) -> Rule), ("or", Rule::Or)] {
        if let Some(children) = m.get(key) {
            only_keys(m, &[key], path)?;
            let Value::Array(items) = children else {
                return Err(Error::rule(
                    at(path),
                    format!("`{key}` expects an array of rules, found {}", kind(children)),
                ));
            };
            let parsed = items
                .iter()
                .enumerate()
                .map(|(i, c)| parse_native(c, &join(path, format!("{key}[{i}]"))))
                .collect::<Result<Vec<_>>>()?;
            return Ok(ctor(parsed));
        }
    }
    for key in ["performed", "not_performed"] {
        if let Some(spec) = m.get(key) {
            only_keys(m, &[key], path)?;
            return parse_behavior(spec, key == "not_performed", &join(path, key));
        }
    }
    for key in ["sequence", "not_sequence"] {
        if let Some(spec) = m.get(key) {
            only_keys(m, &[key], path)?;
            let p = join(path, key);
            let Value::Object(o) = spec else {
                return Err(Error::rule(
                    p,
                    format!("expected an object with `event`, `first` and `then`, found {}", kind(spec)),
                ));
            };
            only_keys(o, &["event", "first", "then", "within", "without", "within_last"], &p)?;
            let Some(Value::String(event)) = o.get("event") else {
                return Err(Error::rule(join(&p, "event"), "expected the name of an event entity"));
            };
            let step = |k: &str| -> Result<Rule> {
                match o.get(k) {
                    Some(v) => parse_native(v, &join(&p, k)),
                    None => Err(Error::rule(join(&p, k), "expected a rule over the event's attributes")),
                }
            };
            return Ok(Rule::Sequence(Box::new(Sequence {
                event: event.clone(),
                first: step("first")?,
                then: step("then")?,
                within: o.get("within").cloned(),
                without: o.get("without").map(|v| parse_native(v, &join(&p, "without"))).transpose()?,
                within_last: o.get("within_last").cloned(),
                negated: key == "not_sequence",
            })));
        }
    }
    if let Some(spec) = m.get("linked") {
        only_keys(m, &["linked"], path)?;
        let p = join(path, "linked");
        let Value::Object(o) = spec else {
            return Err(Error::rule(
                p,
                format!("expected {{\"via\": attribute, \"where\": rule}}, found {}", kind(spec)),
            ));
        };
        only_keys(o, &["via", "where"], &p)?;
        let Some(Value::String(via)) = o.get("via") else {
            return Err(Error::rule(join(&p, "via"), "expected the name of a link attribute"));
        };
        let Some(w) = o.get("where") else { return Err(Error::rule(join(&p, "where"), "expected a rule")) };
        let rule = parse_native(w, &join(&p, "where"))?;
        return Ok(Rule::Linked(Box::new(LinkedRule { via: via.clone(), rule })));
    }
    for key in ["in_segment", "not_in_segment"] {
        if let Some(spec) = m.get(key) {
            only_keys(m, &[key], path)?;
            let p = join(path, key);
            let (segment, stored) = match spec {
                Value::String(s) => (s.clone(), false),
                Value::Object(o) => {
                    only_keys(o, &["segment", "stored"], &p)?;
                    let Some(Value::String(s)) = o.get("segment") else {
                        return Err(Error::rule(join(&p, "segment"), "expected a segment name"));
                    };
                    let stored = match o.get("stored") {
                        None => false,
                        Some(Value::Bool(b)) => *b,
                        Some(other) => {
                            return Err(Error::rule(
                                join(&p, "stored"),
                                format!("expected true or false, found {}", kind(other)),
                            ))
                        }
                    };
                    (s.clone(), stored)
                }
                other => return Err(Error::rule(p, format!("expected a segment name, found {}", kind(other)))),
            };
            return Ok(Rule::InSegment(SegmentRef { segment, negated: key == "not_in_segment", stored }));
        }
    }
    if let Some(child) = m.get("not") {
        only_keys(m, &["not"], path)?;
        return Ok(Rule::not(parse_native(child, &join(path, "not"))?));
    }
    let attribute = m.get("attribute").or_else(|| m.get("field"));
    let op = m.get("op").or_else(|| m.get("operator"));
    match (attribute, op) {
        (Some(Value::String(a)), Some(Value::String(o))) => {
            only_keys(m, &["attribute", "field", "op", "operator", "value"], path)?;
            let op = Op::from_str(o).map_err(|e| relocate(e, &join(path, "op")))?;
            Ok(Rule::Condition(Condition {
                attribute: a.clone(),
                op,
                value: m.get("value").cloned().unwrap_or(Value::Null),
            }))
        }
        (Some(a), _) if !a.is_string() => {
            Err(Error::rule(join(path, "attribute"), format!("expected a string, found {}", kind(a))))
        }
        (_, Some(o)) if !o.is_string() => {
            Err(Error::rule(join(path, "op"), format!("expected a string, found {}", kind(o))))
        }
        (None, _) => Err(Error::rule(
            at(path),
            format!(
                "expected `and`, `or`, `not` or a condition with `attribute` and `op`; found keys {:?}",
                m.keys().collect::<Vec<_>>()
            ),
        )),
        _ => Err(Error::rule(at(path), "condition has no `op`")),
    }
}

fn parse_behavior(v: &Value, negated: bool, path: &str) -> Result<Rule> {
    let Value::Object(m) = v else {
        return Err(Error::rule(at(path), format!("expected an object with `event`, found {}", kind(v))));
    };
    only_keys(m, &["event", "where", "within_last", "between", "since", "having"], path)?;
    let Some(Value::String(event)) = m.get("event") else {
        return Err(Error::rule(join(path, "event"), "expected the name of an event entity"));
    };
    let filter = m.get("where").map(|w| parse_native(w, &join(path, "where"))).transpose()?;
    let windows: Vec<&str> = ["within_last", "between", "since"].into_iter().filter(|k| m.contains_key(*k)).collect();
    if windows.len() > 1 {
        return Err(Error::rule(at(path), format!("give one time window, not {}", windows.join(" and "))));
    }
    let window = if let Some(v) = m.get("within_last") {
        Some(BehaviorWindow::Last(v.clone()))
    } else if let Some(v) = m.get("between") {
        match v {
            Value::Array(a) if a.len() == 2 => Some(BehaviorWindow::Between(a[0].clone(), a[1].clone())),
            _ => return Err(Error::rule(join(path, "between"), "expected [from, to]")),
        }
    } else if let Some(v) = m.get("since") {
        match v {
            Value::String(s) => Some(BehaviorWindow::Since(s.clone())),
            _ => return Err(Error::rule(join(path, "since"), "expected the name of a profile attribute")),
        }
    } else {
        None
    };
    let mut having = vec![];
    match m.get("having") {
        None => {}
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                having.push(parse_aggregate(item, &join(path, format!("having[{i}]")))?);
            }
        }
        Some(other) => {
            return Err(Error::rule(
                join(path, "having"),
                format!("expected an array of thresholds, found {}", kind(other)),
            ))
        }
    }
    Ok(Rule::Performed(Box::new(Behavior { event: event.clone(), filter, window, having, negated })))
}

/// `{"count": {"ge": 3}}`, `{"count": null, "ge": 3}`, `{"sum": "amount", "gt": 200}`.
fn parse_aggregate(v: &Value, path: &str) -> Result<Aggregate> {
    let Value::Object(m) = v else {
        return Err(Error::rule(
            at(path),
            format!("expected a threshold such as {{\"sum\": \"amount\", \"gt\": 200}}, found {}", kind(v)),
        ));
    };
    let funcs: Vec<AggFn> = AggFn::ALL.into_iter().filter(|f| m.contains_key(f.name())).collect();
    let [func] = funcs[..] else {
        return Err(Error::rule(
            at(path),
            "name exactly one aggregate: count, count_distinct, sum, avg, min or max".to_string(),
        ));
    };
    let arg = &m[func.name()];
    let (attribute, mut rest): (Option<String>, serde_json::Map<String, Value>) = match (func, arg) {
        (AggFn::Count, Value::Object(o)) => (None, o.clone()),
        (AggFn::Count, Value::Null) => (None, m.clone()),
        (_, Value::String(a)) => (Some(a.clone()), m.clone()),
        (f, _) => {
            return Err(Error::rule(
                join(path, f.name()),
                if f == AggFn::Count { "expected {\"ge\": 3} or null" } else { "expected an attribute name" },
            ))
        }
    };
    rest.remove(func.name());
    if rest.len() != 1 {
        return Err(Error::rule(at(path), "expected one comparison, e.g. {\"ge\": 3}"));
    }
    let (op_name, value) = rest.into_iter().next().expect("len 1");
    let op = Op::from_str(&op_name).map_err(|e| relocate(e, &join(path, &op_name)))?;
    Ok(Aggregate { func, attribute, op, value })
}

fn only_keys(m: &Map<String, Value>, allowed: &[&str], path: &str) -> Result<()> {
    if let Some(extra) = m.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(Error::rule(at(path), format!("unexpected key `{extra}` (allowed here: {})", allowed.join(", "))));
    }
    Ok(())
}

fn relocate(e: Error, path: &str) -> Error {
    match e {
        Error::Rule { message, .. } => Error::rule(path, message),
        other => other,
    }
}

// ------------------------------------------------------------------------------------------------ react-querybuilder

fn parse_rqb(v: &Value, path: &str) -> Result<Rule> {
    let Value::Object(m) = v else {
        return Err(Error::rule(at(path), format!("expected a rule or group object, found {}", kind(v))));
    };
    if let Some(rules) = m.get("rules") {
        let Value::Array(items) = rules else {
            return Err(Error::rule(join(path, "rules"), format!("expected an array, found {}", kind(rules))));
        };
        let combinator = match m.get("combinator") {
            None => None,
            Some(Value::String(c)) => Some(c.to_ascii_lowercase()),
            Some(other) => {
                return Err(Error::rule(
                    join(path, "combinator"),
                    format!("expected \"and\" or \"or\", found {}", kind(other)),
                ))
            }
        };
        // Independent combinators: [rule, "and", rule, "or", rule] — `and` binds tighter than `or`.
        let independent = items.iter().any(Value::is_string);
        let group = if independent {
            let mut ors: Vec<Vec<Rule>> = vec![vec![]];
            for (i, item) in items.iter().enumerate() {
                let p = join(path, format!("rules[{i}]"));
                if i % 2 == 1 {
                    match item.as_str().map(str::to_ascii_lowercase).as_deref() {
                        Some("and") => {}
                        Some("or") => ors.push(vec![]),
                        _ => return Err(Error::rule(p, "expected the combinator \"and\" or \"or\" between rules")),
                    }
                } else {
                    ors.last_mut().expect("non-empty").push(parse_rqb(item, &p)?);
                }
            }
            let mut terms: Vec<Rule> = ors
                .into_iter()
                .map(|mut v| if v.len() == 1 { v.pop().expect("len 1") } else { Rule::And(v) })
                .collect();
            if terms.len() == 1 {
                terms.pop().expect("len 1")
            } else {
                Rule::Or(terms)
            }
        } else {
            let children = items
                .iter()
                .enumerate()
                .map(|(i, c)| parse_rqb(c, &join(path, format!("rules[{i}]"))))
                .collect::<Result<Vec<_>>>()?;
            match combinator.as_deref() {
                Some("and") | None => Rule::And(children),
                Some("or") => Rule::Or(children),
                Some(other) => {
                    return Err(Error::rule(
                        join(path, "combinator"),
                        format!("unknown combinator `{other}`; expected and/or"),
                    ))
                }
            }
        };
        return Ok(if m.get("not").and_then(Value::as_bool).unwrap_or(false) { Rule::not(group) } else { group });
    }
    let field = match m.get("field") {
        Some(Value::String(f)) => f.clone(),
        Some(other) => {
            return Err(Error::rule(join(path, "field"), format!("expected a string, found {}", kind(other))))
        }
        None => return Err(Error::rule(at(path), "expected a group with `rules` or a rule with `field`")),
    };
    if let Some(Value::String(src)) = m.get("valueSource") {
        if src != "value" {
            return Err(Error::rule(
                join(path, "valueSource"),
                format!("valueSource `{src}` is not supported; compare with literal values"),
            ));
        }
    }
    let operator = match m.get("operator") {
        Some(Value::String(o)) => o.clone(),
        _ => return Err(Error::rule(join(path, "operator"), "expected an operator string")),
    };
    let value = m.get("value").cloned().unwrap_or(Value::Null);
    let cond = |op: Op| Rule::Condition(Condition { attribute: field.clone(), op, value: value.clone() });
    let rule = match operator.as_str() {
        "=" => cond(Op::Eq),
        "!=" => cond(Op::Ne),
        "<" => cond(Op::Lt),
        "<=" => cond(Op::Le),
        ">" => cond(Op::Gt),
        ">=" => cond(Op::Ge),
        "contains" => cond(Op::Contains),
        "beginsWith" => cond(Op::StartsWith),
        "endsWith" => cond(Op::EndsWith),
        "doesNotContain" => cond(Op::NotContains),
        "doesNotBeginWith" => Rule::not(cond(Op::StartsWith)),
        "doesNotEndWith" => Rule::not(cond(Op::EndsWith)),
        "null" => Rule::Condition(Condition { attribute: field.clone(), op: Op::IsNull, value: Value::Null }),
        "notNull" => Rule::Condition(Condition { attribute: field.clone(), op: Op::NotNull, value: Value::Null }),
        "in" => cond(Op::In),
        "notIn" => cond(Op::NotIn),
        "between" => cond(Op::Between),
        "notBetween" => cond(Op::NotBetween),
        other => cond(Op::from_str(other).map_err(|e| relocate(e, &join(path, "operator")))?),
    };
    Ok(rule)
}

// ------------------------------------------------------------------------------------------------ JsonLogic

const LOGIC_OPS: &str = "and, or, !, ==, ===, !=, !==, <, <=, >, >=, in, startsWith, endsWith, var";

fn parse_logic(v: &Value, path: &str) -> Result<Rule> {
    let Value::Object(m) = v else {
        return Err(Error::rule(at(path), format!("expected a JsonLogic operation, found {}", kind(v))));
    };
    if m.len() != 1 {
        return Err(Error::rule(at(path), format!("a JsonLogic operation has exactly one key, found {}", m.len())));
    }
    let (op, args) = m.iter().next().expect("len 1");
    let p = join(path, op);
    let list: Vec<&Value> = match args {
        Value::Array(a) => a.iter().collect(),
        other => vec![other],
    };
    match op.as_str() {
        "and" | "or" => {
            let children = list
                .iter()
                .enumerate()
                .map(|(i, c)| parse_logic(c, &join(path, format!("{op}[{i}]"))))
                .collect::<Result<Vec<_>>>()?;
            Ok(if op == "and" { Rule::And(children) } else { Rule::Or(children) })
        }
        "!" => {
            if list.len() != 1 {
                return Err(Error::rule(p, "`!` takes one argument"));
            }
            Ok(Rule::not(parse_logic(list[0], &p)?))
        }
        "==" | "===" | "!=" | "!==" | "<" | "<=" | ">" | ">=" => {
            let cmp = match op.as_str() {
                "==" | "===" => Op::Eq,
                "!=" | "!==" => Op::Ne,
                "<" => Op::Lt,
                "<=" => Op::Le,
                ">" => Op::Gt,
                _ => Op::Ge,
            };
            match list.len() {
                2 => {
                    let (attribute, value, flipped) = match (var_name(list[0], &p)?, var_name(list[1], &p)?) {
                        (Some(a), None) => (a, list[1].clone(), false),
                        (None, Some(a)) => (a, list[0].clone(), true),
                        (Some(_), Some(_)) => return Err(Error::rule(p, "comparing two attributes is not supported")),
                        (None, None) => {
                            return Err(Error::rule(p, "one side of the comparison must be {\"var\": attribute}"))
                        }
                    };
                    literal_only(&value, &p)?;
                    let op = if flipped { flip(cmp) } else { cmp };
                    Ok(match (op, value.is_null()) {
                        (Op::Eq, true) => Rule::condition(attribute, Op::IsNull, Value::Null),
                        (Op::Ne, true) => Rule::condition(attribute, Op::NotNull, Value::Null),
                        (_, true) => {
                            return Err(Error::rule(p, "ordering comparison with null is never true; use == null"))
                        }
                        (op, false) => Rule::condition(attribute, op, value),
                    })
                }
                3 if matches!(cmp, Op::Lt | Op::Le) => {
                    let Some(attribute) = var_name(list[1], &p)? else {
                        return Err(Error::rule(
                            p,
                            "the middle argument of a three-argument comparison must be {\"var\": attribute}",
                        ));
                    };
                    literal_only(list[0], &p)?;
                    literal_only(list[2], &p)?;
                    if cmp == Op::Le {
                        Ok(Rule::condition(
                            attribute,
                            Op::Between,
                            Value::Array(vec![list[0].clone(), list[2].clone()]),
                        ))
                    } else {
                        Ok(Rule::and([
                            Rule::condition(attribute.clone(), Op::Gt, list[0].clone()),
                            Rule::condition(attribute, Op::Lt, list[2].clone()),
                        ]))
                    }
                }
                n => Err(Error::rule(p, format!("`{op}` takes 2 arguments (or 3 for < and <=), found {n}"))),
            }
        }
        "in" => {
            if list.len() != 2 {
                return Err(Error::rule(p, "`in` takes 2 arguments"));
            }
            match (var_name(list[0], &p)?, var_name(list[1], &p)?) {
                (Some(a), None) => match list[1] {
                    Value::Array(_) => {
                        literal_only(list[1], &p)?;
                        Ok(Rule::condition(a, Op::In, list[1].clone()))
                    }
                    _ => Err(Error::rule(p, "`in` with an attribute first needs an array of values second")),
                },
                (None, Some(a)) => {
                    literal_only(list[0], &p)?;
                    Ok(Rule::condition(a, Op::Contains, list[0].clone()))
                }
                _ => Err(Error::rule(p, "`in` needs exactly one {\"var\": attribute} argument")),
            }
        }
        // react-querybuilder's documented JsonLogic extensions for beginsWith / endsWith (its `formatQuery(q,
        // "jsonlogic")` emits them, negated as `{"!": {"startsWith": …}}`).
        "startsWith" | "endsWith" => {
            if list.len() != 2 {
                return Err(Error::rule(p, format!("`{op}` takes 2 arguments: {{\"var\": attribute}} and a string")));
            }
            let Some(attribute) = var_name(list[0], &p)? else {
                return Err(Error::rule(p, format!("the first argument of `{op}` must be {{\"var\": attribute}}")));
            };
            if var_name(list[1], &p)?.is_some() {
                return Err(Error::rule(p, "comparing two attributes is not supported"));
            }
            literal_only(list[1], &p)?;
            let op = if op == "startsWith" { Op::StartsWith } else { Op::EndsWith };
            Ok(Rule::condition(attribute, op, list[1].clone()))
        }
        "var" => {
            Err(Error::rule(p, "a bare `var` is not a condition; compare it, e.g. {\"==\": [{\"var\": \"x\"}, 1]}"))
        }
        other => Err(Error::rule(p, format!("JsonLogic operator `{other}` is not supported (supported: {LOGIC_OPS})"))),
    }
}

fn flip(op: Op) -> Op {
    match op {
        Op::Lt => Op::Gt,
        Op::Le => Op::Ge,
        Op::Gt => Op::Lt,
        Op::Ge => Op::Le,
        o => o,
    }
}

fn var_name(v: &Value, path: &str) -> Result<Option<String>> {
    let Value::Object(m) = v else { return Ok(None) };
    let Some(inner) = m.get("var") else {
        return Ok(None);
    };
    let name = match inner {
        Value::String(s) => s.clone(),
        Value::Array(a) if a.len() == 1 && a[0].is_string() => a[0].as_str().expect("string").to_string(),
        _ => return Err(Error::rule(join(path, "var"), "expected an attribute name (defaults are not supported)")),
    };
    if name.contains('.') {
        return Err(Error::rule(
            join(path, "var"),
            format!("nested path `{name}` is not supported; name an attribute"),
        ));
    }
    Ok(Some(name))
}

fn literal_only(v: &Value, path: &str) -> Result<()> {
    match v {
        Value::Object(_) => Err(Error::rule(path, "expected a literal value, found an operation")),
        Value::Array(a) => a.iter().try_for_each(|x| literal_only(x, path)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn p(v: Value) -> Result<Rule> {
        Rule::parse(&v, Dialect::Auto)
    }

    #[test]
    fn detects_dialects() {
        assert_eq!(Dialect::detect(&json!({"combinator": "and", "rules": []})), Dialect::QueryBuilder);
        assert_eq!(Dialect::detect(&json!({"and": [{"==": [{"var": "a"}, 1]}]})), Dialect::JsonLogic);
        assert_eq!(Dialect::detect(&json!({"and": [{"attribute": "a", "op": "eq", "value": 1}]})), Dialect::Segkit);
    }

    #[test]
    fn native_round_trip() {
        let v = json!({"or": [{"not": {"attribute": "a", "op": "is_null"}}, {"attribute": "b", "op": "in", "value": [1, 2]}]});
        let r = p(v.clone()).unwrap();
        assert_eq!(r.to_json(), v);
        let back: Rule = serde_json::from_value(serde_json::to_value(&r).unwrap()).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn native_errors_have_paths() {
        let e = p(
            json!({"and": [{"attribute": "a", "op": "eq", "value": 1}, {"or": [{"attribute": "b", "op": "equals"}]}]}),
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "rule error at and[1].or[0].op: unknown operator `equals` (did you mean `eq`?)");
        let e = p(json!({"and": {"attribute": "a"}})).unwrap_err();
        assert!(e.to_string().contains("`and` expects an array"), "{e}");
        let e = p(json!({"and": [], "or": []})).unwrap_err();
        assert!(e.to_string().contains("unexpected key `or`"), "{e}");
        let e = p(json!([1])).unwrap_err();
        assert!(e.to_string().contains("<root>"), "{e}");
        let e = p(json!({"attribute": "a", "op": "starts_wth", "value": "x"})).unwrap_err();
        assert!(e.to_string().contains("did you mean `starts_with`"), "{e}");
    }

    #[test]
    fn querybuilder_operators() {
        let r = p(json!({"combinator": "or", "not": true, "rules": [
            {"field": "a", "operator": "doesNotBeginWith", "value": "x"},
            {"field": "b", "operator": "null", "value": ""},
            {"combinator": "and", "rules": [{"field": "c", "operator": "between", "value": "1,5"}]}
        ]}))
        .unwrap();
        assert_eq!(
            r,
            Rule::not(Rule::or([
                Rule::not(Rule::condition("a", Op::StartsWith, "x")),
                Rule::condition("b", Op::IsNull, Value::Null),
                Rule::and([Rule::condition("c", Op::Between, "1,5")]),
            ]))
        );
        let r = p(json!({"rules": [{"field": "a", "operator": "=", "value": 1}, "and", {"field": "b", "operator": "=", "value": 2}, "or", {"field": "c", "operator": "=", "value": 3}]})).unwrap();
        assert_eq!(
            r,
            Rule::or([
                Rule::and([Rule::condition("a", Op::Eq, 1), Rule::condition("b", Op::Eq, 2)]),
                Rule::condition("c", Op::Eq, 3)
            ])
        );
        let e = p(json!({"combinator": "xor", "rules": []})).unwrap_err();
        assert!(e.to_string().contains("combinator"), "{e}");
        let e = p(json!({"combinator": "and", "rules": [{"field": "a", "operator": "=", "value": "b", "valueSource": "field"}]})).unwrap_err();
        assert!(e.to_string().contains("rules[0].valueSource"), "{e}");
    }

    #[test]
    fn jsonlogic_prefix_suffix_extensions() {
        assert_eq!(
            p(json!({"startsWith": [{"var": "job"}, "Prog"]})).unwrap(),
            Rule::condition("job", Op::StartsWith, "Prog")
        );
        assert_eq!(
            p(json!({"!": {"endsWith": [{"var": "email"}, "fr"]}})).unwrap(),
            Rule::not(Rule::condition("email", Op::EndsWith, "fr"))
        );
        for (bad, msg) in [
            (json!({"startsWith": [{"var": "job"}]}), "takes 2 arguments"),
            (json!({"endsWith": ["com", {"var": "email"}]}), "first argument of `endsWith`"),
            (json!({"startsWith": [{"var": "job"}, {"var": "prefix"}]}), "two attributes"),
            (json!({"startsWith": [{"var": "job"}, {"==": [1, 1]}]}), "literal value"),
        ] {
            let e = p(bad.clone()).unwrap_err().to_string();
            assert!(e.contains(msg), "{bad}: {e}");
        }
    }

    #[test]
    fn jsonlogic_operators() {
        assert_eq!(p(json!({"<": [18, {"var": "age"}]})).unwrap(), Rule::condition("age", Op::Gt, 18));
        assert_eq!(
            p(json!({"<=": [18, {"var": "age"}, 30]})).unwrap(),
            Rule::condition("age", Op::Between, json!([18, 30]))
        );
        assert_eq!(
            p(json!({"<": [18, {"var": "age"}, 30]})).unwrap(),
            Rule::and([Rule::condition("age", Op::Gt, 18), Rule::condition("age", Op::Lt, 30)])
        );
        assert_eq!(p(json!({"==": [{"var": "a"}, null]})).unwrap(), Rule::condition("a", Op::IsNull, Value::Null));
        assert_eq!(
            p(json!({"!": {"!=": [{"var": ["a"]}, null]}})).unwrap(),
            Rule::not(Rule::condition("a", Op::NotNull, Value::Null))
        );
        assert_eq!(
            p(json!({"in": [{"var": "c"}, ["CN", "US"]]})).unwrap(),
            Rule::condition("c", Op::In, json!(["CN", "US"]))
        );
        assert_eq!(p(json!({"in": ["vip", {"var": "tags"}]})).unwrap(), Rule::condition("tags", Op::Contains, "vip"));
        let e = p(json!({"and": [{"+": [{"var": "a"}, 1]}]})).unwrap_err();
        assert!(e.to_string().contains("at and[0].+") && e.to_string().contains("not supported"), "{e}");
        let e = p(json!({"==": [{"var": "a"}, {"var": "b"}]})).unwrap_err();
        assert!(e.to_string().contains("two attributes"), "{e}");
        let e = p(json!({"==": [{"var": "a.b"}, 1]})).unwrap_err();
        assert!(e.to_string().contains("nested path"), "{e}");
    }
}
