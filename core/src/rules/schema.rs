//! The JSON Schema of a rule's JSON form ([`Rule`]'s `schemars::JsonSchema`): segkit's own dialect fully described
//! (`and` / `or` / `not`, conditions with their operators and value shapes, behaviour, sequences, segment
//! references and linked rules), react-querybuilder and JsonLogic as documented alternatives (`anyOf`).
//!
//! The schema accepts everything [`Rule::parse`] accepts in any dialect (a test checks every fixture and generated
//! rule against it); what depends on the entity (attribute names and types, window units) is checked afterwards
//! by [`crate::rules::check`] and cannot be in a static schema.

use std::borrow::Cow;

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde_json::{json, Value};

use super::{AggFn, Op, Rule};

/// The symbols accepted for comparison operators besides their names (`Op::from_str`).
const OP_SYMBOLS: [&str; 8] = ["=", "==", "!=", "<>", "<", "<=", ">", ">="];

/// A regular expression matching `word` in any letter case (operator names are case-insensitive).
fn any_case(word: &str) -> String {
    word.chars()
        .map(|c| {
            if c.is_ascii_alphabetic() {
                format!("[{}{}]", c.to_ascii_lowercase(), c.to_ascii_uppercase())
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// The schema of an operator name: the canonical names and symbols, or a name in another letter case.
fn op_schema() -> Value {
    let names: Vec<&str> = Op::ALL.iter().map(|o| o.name()).collect();
    let mut listed: Vec<&str> = names.clone();
    listed.extend(OP_SYMBOLS);
    let pattern = format!("^(?:{})$", names.iter().map(|n| any_case(n)).collect::<Vec<_>>().join("|"));
    json!({
        "description": "An operator: `eq ne lt le gt ge` (also `= == != <> < <= > >=`), `between not_between` (value \
            `[lo, hi]`, inclusive), `in not_in` (a list), `contains not_contains starts_with ends_with matches` \
            (strings; `contains` on a list attribute tests for an element), `is_null not_null` (no value), \
            `has_any has_all has_none` (lists), `before after` (dates and timestamps), `within_last \
            not_within_last` (a window). Names are case-insensitive.",
        "anyOf": [
            {"enum": listed},
            {"type": "string", "pattern": pattern}
        ]
    })
}

/// The schema of a time window: `{"amount": 30, "unit": "days"}`, `"30 days"`, `30` (days) or `[30, "days"]`.
fn window_schema() -> Value {
    json!({
        "description": "A time window: {\"amount\": 30, \"unit\": \"days\"}, \"30 days\", 30 (days) or [30, \"days\"]; \
            units minutes, hours, days, weeks, months; amount 0..=1000000 (checked against the entity).",
        "anyOf": [
            {"type": "integer"},
            {"type": "string"},
            {"type": "object", "properties": {
                "amount": {"anyOf": [{"type": "integer"}, {"type": "string"}]},
                "unit": {"type": "string", "examples": ["minutes", "hours", "days", "weeks", "months"]}
            }, "required": ["amount"]},
            {"type": "array", "prefixItems": [{"type": "integer"}, {"type": "string"}], "minItems": 2, "maxItems": 2}
        ]
    })
}

fn reference<T: JsonSchema>(generator: &mut SchemaGenerator) -> Value {
    generator.subschema_for::<T>().to_value()
}

/// An object with exactly the key `key` holding `value`.
fn single(key: &str, value: Value, description: &str) -> Value {
    json!({
        "type": "object",
        "description": description,
        "properties": {key: value},
        "required": [key],
        "additionalProperties": false
    })
}

impl JsonSchema for Rule {
    fn schema_name() -> Cow<'static, str> {
        "Rule".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let native = reference::<SegkitRule>(generator);
        let rqb = reference::<QueryBuilderRule>(generator);
        let logic = reference::<JsonLogicRule>(generator);
        json_schema!({
            "description": "A segment rule as JSON, in segkit's dialect or as react-querybuilder or JsonLogic (the \
                segment's `dialect` picks one; `auto` detects it: a `combinator` or `rules` key means \
                react-querybuilder, a `var` anywhere JsonLogic, anything else segkit's).",
            "anyOf": [native, rqb, logic]
        })
    }
}

/// A rule in segkit's own dialect (schema only).
pub(crate) struct SegkitRule;

impl JsonSchema for SegkitRule {
    fn schema_name() -> Cow<'static, str> {
        "SegkitRule".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let rule = reference::<SegkitRule>(generator);
        let rules = json!({"type": "array", "items": rule});
        let op = op_schema();
        let window = window_schema();
        let agg_names: Vec<&str> = AggFn::ALL.iter().map(|f| f.name()).collect();
        let op_names = op["anyOf"].clone();
        let op_key = json!({"anyOf": op_names});
        let comparison = json!({"type": "object", "minProperties": 1, "maxProperties": 1, "propertyNames": op_key});
        let other_aggs = |except: &str| -> Value {
            let others: Vec<Value> =
                agg_names.iter().filter(|n| **n != except).map(|n| json!({"required": [n]})).collect();
            json!({"anyOf": others})
        };
        let mut aggregates = vec![json!({
            "type": "object",
            "description": "`{\"count\": {\"ge\": 3}}`",
            "properties": {"count": comparison},
            "required": ["count"],
            "not": other_aggs("count")
        })];
        for name in &agg_names {
            let arg = if *name == "count" { json!({"type": "null"}) } else { json!({"type": "string"}) };
            aggregates.push(json!({
                "type": "object",
                "description": format!("`{{\"{name}\": {}, \"gt\": 200}}`", if *name == "count" { "null" } else { "\"amount\"" }),
                "properties": {*name: arg},
                "required": [name],
                "minProperties": 2,
                "maxProperties": 2,
                "propertyNames": {"anyOf": [{"const": name}, op_key.clone()]}
            }));
        }
        let behavior = json!({
            "type": "object",
            "description": "Members who performed (or not) an event: `event` names an event entity linked to this \
                one, `where` filters its rows, one time window at most, and `having` thresholds on aggregates.",
            "properties": {
                "event": {"type": "string", "description": "The event entity."},
                "where": rule,
                "within_last": window,
                "between": {"type": "array", "minItems": 2, "maxItems": 2, "description": "[from, to]"},
                "since": {"type": "string", "description": "A profile attribute holding the start."},
                "having": {"type": "array", "items": {"anyOf": aggregates},
                    "description": "Thresholds: {\"count\": {\"ge\": 3}}, {\"count\": null, \"ge\": 3}, \
                        {\"sum\": \"amount\", \"gt\": 200} (aggregates count, count_distinct, sum, avg, min, max)."}
            },
            "required": ["event"],
            "additionalProperties": false,
            "not": {"anyOf": [
                {"required": ["within_last", "between"]},
                {"required": ["within_last", "since"]},
                {"required": ["between", "since"]}
            ]}
        });
        let sequence = json!({
            "type": "object",
            "description": "Members with an event matching `first` followed by one matching `then` (within \
                `within` of it, with no event matching `without` between them, in the last `within_last`).",
            "properties": {
                "event": {"type": "string", "description": "The event entity."},
                "first": rule,
                "then": rule,
                "within": window,
                "without": rule,
                "within_last": window
            },
            "required": ["event", "first", "then"],
            "additionalProperties": false
        });
        let segment_ref = json!({
            "description": "A segment by name, or {\"segment\": name, \"stored\": true} for its last stored run.",
            "anyOf": [
                {"type": "string"},
                {"type": "object", "properties": {"segment": {"type": "string"}, "stored": {"type": "boolean"}},
                    "required": ["segment"], "additionalProperties": false}
            ]
        });
        let linked = json!({
            "type": "object",
            "properties": {"via": {"type": "string", "description": "A link attribute."}, "where": rule},
            "required": ["via", "where"],
            "additionalProperties": false
        });
        let condition = json!({
            "type": "object",
            "description": "A condition on an attribute (`field` and `operator` are accepted as aliases).",
            "properties": {
                "attribute": {"type": "string"},
                "field": {"type": "string"},
                "op": op,
                "operator": op,
                "value": {
                    "description": "The operand: a literal, `[lo, hi]` for between, a list for in / has_*, a \
                        window for within_last; none for is_null / not_null. Its type is checked against the \
                        attribute's.",
                    "anyOf": [
                        {"type": ["null", "boolean", "number", "string"]},
                        {"type": "array"},
                        window
                    ]
                }
            },
            "allOf": [
                {"anyOf": [{"required": ["attribute"]}, {"required": ["field"]}]},
                {"anyOf": [{"required": ["op"]}, {"required": ["operator"]}]}
            ],
            "additionalProperties": false
        });
        json_schema!({
            "description": "A rule in segkit's dialect.",
            "anyOf": [
                single("and", rules.clone(), "All of the rules (an empty list matches everyone)."),
                single("or", rules, "Any of the rules (an empty list matches no one)."),
                single("not", rule, "Not the rule (unknown stays unknown)."),
                condition,
                single("performed", behavior.clone(), "Performed an event."),
                single("not_performed", behavior, "Did not perform an event."),
                single("sequence", sequence.clone(), "Performed events in order."),
                single("not_sequence", sequence, "Did not perform events in order."),
                single("in_segment", segment_ref.clone(), "A member of another segment."),
                single("not_in_segment", segment_ref, "Not a member of another segment."),
                single("linked", linked, "Has a linked profile matching a rule.")
            ]
        })
    }
}

/// A react-querybuilder rule or group (schema only).
pub(crate) struct QueryBuilderRule;

impl JsonSchema for QueryBuilderRule {
    fn schema_name() -> Cow<'static, str> {
        "QueryBuilderRule".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let rule = reference::<QueryBuilderRule>(generator);
        let mut operators: Vec<Value> = [
            "=",
            "!=",
            "<",
            "<=",
            ">",
            ">=",
            "contains",
            "beginsWith",
            "endsWith",
            "doesNotContain",
            "doesNotBeginWith",
            "doesNotEndWith",
            "null",
            "notNull",
            "in",
            "notIn",
            "between",
            "notBetween",
        ]
        .into_iter()
        .map(Value::from)
        .collect();
        operators.sort_by_key(|v| v.to_string());
        let op = op_schema();
        json_schema!({
            "description": "A react-querybuilder query (its JSON export): a group `{combinator, not, rules}` or a \
                rule `{field, operator, value}`. Other keys (`id`, …) are ignored; `valueSource` must be `value`.",
            "anyOf": [
                {
                    "type": "object",
                    "properties": {
                        "combinator": {"type": "string", "description": "`and` (default) or `or`, any case."},
                        "not": {"description": "true negates the group."},
                        "rules": {"type": "array", "items": {"anyOf": [
                            rule,
                            {"type": "string", "description": "Independent combinators between rules: \
                                `and` or `or`."}
                        ]}}
                    },
                    "required": ["rules"]
                },
                {
                    "type": "object",
                    "properties": {
                        "field": {"type": "string"},
                        "operator": {"anyOf": [{"enum": operators}, op]},
                        "value": {"description": "The operand; lists may be comma-separated text."},
                        "valueSource": {"description": "Only `value` (literal operands) is supported."}
                    },
                    "required": ["field", "operator"]
                }
            ]
        })
    }
}

/// A JsonLogic rule (schema only).
pub(crate) struct JsonLogicRule;

impl JsonSchema for JsonLogicRule {
    fn schema_name() -> Cow<'static, str> {
        "JsonLogicRule".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let rule = reference::<JsonLogicRule>(generator);
        let var = json!({
            "type": "object",
            "properties": {"var": {"anyOf": [
                {"type": "string"},
                {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 1}
            ], "description": "An attribute name (no nested paths, no defaults)."}},
            "required": ["var"]
        });
        let literal = json!({"anyOf": [
            {"type": ["null", "boolean", "number", "string"]},
            {"type": "array", "items": {"not": {"type": "object"}}}
        ]});
        let operand = json!({"anyOf": [var, literal]});
        let args = |min: u32, max: u32| json!({"type": "array", "items": operand, "minItems": min, "maxItems": max});
        let mut ops = vec![
            single("and", json!({"anyOf": [{"type": "array", "items": rule}, rule]}), "All of the rules."),
            single("or", json!({"anyOf": [{"type": "array", "items": rule}, rule]}), "Any of the rules."),
            single(
                "!",
                json!({"anyOf": [rule, {"type": "array", "items": rule, "minItems": 1, "maxItems": 1}]}),
                "Not the rule.",
            ),
        ];
        for op in ["==", "===", "!=", "!=="] {
            ops.push(single(op, args(2, 2), "Compares {\"var\": attribute} with a literal."));
        }
        for op in [">", ">="] {
            ops.push(single(op, args(2, 2), "Compares {\"var\": attribute} with a literal."));
        }
        for op in ["<", "<="] {
            ops.push(single(op, args(2, 3), "Compares; with 3 arguments, a range with the attribute in the middle."));
        }
        for op in ["in", "startsWith", "endsWith"] {
            ops.push(single(op, args(2, 2), "{\"var\": attribute} and a list (in) or a string."));
        }
        json_schema!({
            "description": "A JsonLogic rule over the attributes ({\"var\": name}); operators and, or, !, ==, \
                ===, !=, !==, <, <=, >, >=, in, and react-querybuilder's startsWith / endsWith.",
            "anyOf": ops
        })
    }
}

/// The schema of a rule field that takes a rule as JSON or the JSON text of one (`SegmentSpec::rule`).
pub fn rule_or_text(generator: &mut SchemaGenerator) -> Schema {
    let rule = reference::<Rule>(generator);
    json_schema!({
        "anyOf": [rule, {"type": "string", "description": "The JSON text of a rule."}]
    })
}
