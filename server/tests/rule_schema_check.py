"""Validates rules against the `Rule` schema of a running server's OpenAPI document (JSON Schema 2020-12, with
the `jsonschema` package that Schemathesis brings): every rule of tests/fixtures/dialects.json in all three
dialects and every rule form of docs/rules.md must be valid; malformed rules (which the parser rejects too, see
core/src/rules/dialect.rs tests) must not be.

    python rule_schema_check.py OPENAPI_JSON_FILE FIXTURES_DIALECTS_JSON
"""
import json
import sys

import jsonschema

doc = json.load(open(sys.argv[1]))
schema = {"$ref": "#/components/schemas/Rule", "components": doc["components"]}
validator = jsonschema.Draft202012Validator(schema)
jsonschema.Draft202012Validator.check_schema(schema)
seg = doc["components"]["schemas"]["SegmentSpec"]["properties"]["rule"]
assert "Rule" in json.dumps(seg), f"SegmentSpec.rule does not name the Rule schema: {seg}"

good = []
for case in json.load(open(sys.argv[2])):
    for dialect in ("segkit", "querybuilder", "jsonlogic"):
        if dialect in case:
            good.append((f"{case['name']} ({dialect})", case[dialect]))
assert len(good) >= 30, len(good)
forms = [
    {"and": []},
    {"attribute": "age", "op": "BETWEEN", "value": [25, 40]},
    {"field": "age", "operator": ">=", "value": 18},
    {"attribute": "joined", "op": "within_last", "value": {"amount": 30, "unit": "days"}},
    {"attribute": "score", "op": "is_null"},
    {"performed": {"event": "orders", "where": {"attribute": "amount", "op": "gt", "value": 10},
                   "within_last": "30 days", "having": [{"count": {"ge": 3}}, {"count": None, "ge": 1},
                                                        {"sum": "amount", "gt": 200}]}},
    {"not_performed": {"event": "orders", "between": ["2026-01-01", "2026-02-01"]}},
    {"sequence": {"event": "e", "first": {"attribute": "t", "op": "eq", "value": "view"},
                  "then": {"attribute": "t", "op": "eq", "value": "buy"}, "within": "1 hours",
                  "without": {"attribute": "t", "op": "eq", "value": "x"}, "within_last": 7}},
    {"in_segment": "vip"},
    {"not_in_segment": {"segment": "vip", "stored": True}},
    {"linked": {"via": "company", "where": {"attribute": "size", "op": "gt", "value": 100}}},
    {"combinator": "and", "not": True, "id": "g", "rules": [
        {"field": "a", "operator": "beginsWith", "value": "x"}, "or",
        {"id": "r", "field": "b", "operator": "notBetween", "value": "1,5"}]},
    {"!": {"startsWith": [{"var": "job"}, "Prog"]}},
    {"<": [1, {"var": ["age"]}, 9]},
    {"and": {"==": [{"var": "a"}, None]}},
]
good += [(json.dumps(f), f) for f in forms]
bad = [
    42,
    {"and": {"attribute": "a", "op": "eq", "value": 1}},
    {"and": [], "or": []},
    {"attribute": "a", "op": "starts_wth", "value": "x"},
    {"attribute": "a", "op": "eq", "value": 1, "extra": True},
    {"attribute": 3, "op": "eq", "value": 1},
    {"performed": {"where": {"and": []}}},
    {"performed": {"event": "o", "within_last": 3, "since": "joined"}},
    {"performed": {"event": "o", "having": [{"sum": "amount", "avg": "amount", "gt": 1}]}},
    {"sequence": {"event": "e", "first": {"and": []}}},
    {"in_segment": 7},
    {"not_in_segment": {"segment": "s", "stored": "yes"}},
    {"linked": {"via": "company"}},
    {"combinator": "and", "rules": {"field": "a"}},
    {"==": [{"var": "a"}]},
    {"xor": [{"var": "a"}, 1]},
]
failed = 0
for name, rule in good:
    errs = [f"{e.message} at {list(e.absolute_path)}" for e in validator.iter_errors(rule)]
    if errs:
        failed += 1
        print(f"rule schema rejects a valid rule: {name}: {errs[:3]}", file=sys.stderr)
for rule in bad:
    if validator.is_valid(rule):
        failed += 1
        print(f"rule schema accepts a malformed rule: {json.dumps(rule)}", file=sys.stderr)
print(f"rule schema: {len(good)} valid rules accepted, {len(bad)} malformed rejected, {failed} failures")
sys.exit(1 if failed else 0)
