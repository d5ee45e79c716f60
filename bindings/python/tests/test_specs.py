"""The shared request-model fixtures (tests/fixtures/specs.json), run from Python: the same spec gives the same
entity or members as from Rust and Node, or the same error — class, kind and message, path included."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest

import segkit

FIXTURES = Path(__file__).resolve().parents[3] / "tests" / "fixtures"
CASES = json.loads((FIXTURES / "specs.json").read_text())

CLASSES = {
    "definition": segkit.DefinitionError,
    "rule": segkit.RuleError,
    "invalid_argument": segkit.InvalidArgumentError,
}

PEOPLE = {
    "id": "int64",
    "name": {"type": "string", "pii": True},
    "country": "string",
    "age": "int32",
    "plan": "string",
    "score": "float64",
    "vip": "bool",
    "joined": "timestamp",
    "tags": "list<string>",
}


@pytest.fixture(scope="module")
def people(tmp_path_factory):
    ws = segkit.Workspace.open(tmp_path_factory.mktemp("ws"))
    ws.set_clock("2026-06-30T00:00:00Z")
    ws.define_entity("people", key="id", attributes=PEOPLE)
    assert ws.ingest("people", str(FIXTURES / "people.csv")).rows_written == 8
    return ws


def spec_of(case):
    spec = dict(case["spec"])
    if "deep_not" in case:
        rule = {"attribute": "age", "op": "gt", "value": 30}
        for _ in range(1, case["deep_not"]):
            rule = {"not": rule}
        spec["rule"] = rule
    return spec


def run(ws, case):
    spec = spec_of(case)
    if case["kind"] == "entity":
        e = ws.define_entity(**spec)
        return {"attributes": [[a.name, a.type, a.nullable, a.pii] for a in e.attributes]}
    if case["kind"] == "segment":
        s = ws.define_segment(**spec)
        run = ws.evaluate(s.name)
        return {"members": pa.table(run.members()).column(0).to_pylist(), "keep_runs": spec.get("keep_runs")}
    report = ws.ingest("people", str(FIXTURES / "people.csv"), **spec)
    return {"rows_written": report.rows_written}


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_shared_spec_cases(people, case):
    if "error" in case:
        want = case["error"]
        with pytest.raises(CLASSES[want["kind"]]) as info:
            run(people, case)
        assert info.value.kind == want["kind"]
        assert info.value.causes[0] == want["message"]
        assert str(info.value).startswith(want["message"])
    else:
        got = run(people, case)
        for key in ("attributes", "members", "keep_runs", "rows_written"):
            if key in case:
                assert got[key] == case[key], key


def test_attribute_objects_and_links_are_plain_spec_fields(ws):
    ws.define_entity("acct", key="id", attributes={"id": "int64"})
    e = ws.define_entity(
        "order",
        kind="event",
        timestamp="at",
        attributes=[segkit.Attribute("at", "timestamp"), segkit.Attribute("acct_id", "int64", pii=True)],
        links={"acct_id": "acct"},
    )
    assert [a.name for a in e.attributes] == ["at", "acct_id"]
    assert e.attribute("acct_id").pii
    assert [(x.attribute, x.entity) for x in e.links] == [("acct_id", "acct")]
    with pytest.raises(segkit.DefinitionError) as info:
        ws.define_entity("bad", key="id", attributes={"id": segkit.Attribute("other", "int64")})
    assert info.value.causes[0] == (
        "invalid definition of entity.attributes: attribute `id` is given an object named `other`; drop `name` or "
        "make it equal"
    )


def test_a_spec_nested_past_the_limit_is_refused_not_a_crash(ws):
    deep = "x"
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(segkit.InvalidArgumentError, match=r"nesting in the entity spec goes deeper .*MAX_RULE_DEPTH"):
        ws.define_entity("deep", key="id", attributes={"id": "int64"}, description=deep)
    ws.define_entity("deep", key="id", attributes={"id": "int64"})
    with pytest.raises(segkit.InvalidArgumentError, match=r"ingest options field `mapping` goes deeper .*MAX_RULE_DEPTH"):
        ws.ingest("deep", {"type": "csv", "path": "nowhere.csv"}, mapping={"id": deep})
