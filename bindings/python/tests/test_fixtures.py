"""The shared dialect fixtures (tests/fixtures): the same rule in three dialects selects the same members."""
from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest

import segkit

FIXTURES = Path(__file__).resolve().parents[3] / "tests" / "fixtures"
CASES = json.loads((FIXTURES / "dialects.json").read_text())


@pytest.fixture(scope="module")
def people(tmp_path_factory):
    ws = segkit.Workspace.open(tmp_path_factory.mktemp("ws"))
    ws.set_clock("2026-06-30T00:00:00Z")
    ws.define_entity(
        "people",
        key="id",
        attributes={
            "id": "int64",
            "name": {"type": "string", "pii": True},
            "country": "string",
            "age": "int32",
            "plan": "string",
            "score": "float64",
            "vip": "bool",
            "joined": "timestamp",
            "tags": "list<string>",
        },
    )
    report = ws.ingest("people", str(FIXTURES / "people.csv"))
    assert (report.rows_written, report.rows_quarantined) == (8, 0)
    return ws


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
@pytest.mark.parametrize("dialect", ["segkit", "querybuilder", "jsonlogic"])
def test_dialects_select_the_same_members(people, case, dialect):
    name = f"{dialect}_{CASES.index(case)}"
    people.define_segment(name, entity="people", rule=case[dialect], dialect=dialect)
    run = people.evaluate(name)
    assert pa.table(run.members()).column(0).to_pylist() == case["members"]
    assert run.count == len(case["members"]) == people.count(name)


@pytest.mark.parametrize("case", [c for c in CASES if c.get("same_ast", True)], ids=lambda c: c["name"])
def test_dialects_store_the_same_canonical_rule(people, case):
    stored = [
        people.define_segment(f"ast_{d}", entity="people", rule=case[d]).rule
        for d in ("segkit", "querybuilder", "jsonlogic")
    ]
    assert stored[0] == stored[1] == stored[2]
