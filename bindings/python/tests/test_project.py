"""Config-as-code from Python: plan / apply / export over a real workspace (the logic is core's; these check the
conversions and the error mapping)."""

from __future__ import annotations

import pyarrow as pa
import pytest

import segkit

PROJECT = """
[entities.user]
key = "user_id"
attributes = { user_id = "int64", email = { type = "string", pii = true }, country = "string" }

[segments.cn]
entity = "user"
rule = { attribute = "country", op = "eq", value = "CN" }
"""


def test_plan_apply_export_round_trip(tmp_path):
    ws = segkit.Workspace.open(tmp_path / "ws")
    plan = ws.plan(PROJECT)
    assert [(c["kind"], c["name"], c["action"]) for c in plan["changes"]] == [
        ("entity", "user", "create"),
        ("segment", "cn", "create"),
    ]
    assert plan["applied"] is False and ws.entities() == []
    applied = ws.apply(PROJECT)
    assert applied["applied"] is True
    ws.ingest("user", pa.table({"user_id": pa.array([1, 2], pa.int64()), "email": ["a@x", "b@x"], "country": ["CN", "US"]}))
    assert ws.evaluate("cn").count == 1

    path = tmp_path / "exported.yaml"
    text = ws.export(path)
    assert path.read_text() == text and "entities:" in text
    assert all(c["action"] == "unchanged" for c in ws.plan(path)["changes"])
    other = segkit.Workspace.open(tmp_path / "other")
    assert [c["action"] for c in other.apply(ws.export())["changes"]] == ["create", "create"]

    # Dropping an attribute of an entity with data is destructive: refused, then allowed.
    dropped = PROJECT.replace(', country = "string"', "").replace("[segments.cn]", "[segments.gone]").split("[segments.gone]")[0]
    plan = ws.plan(dropped)
    assert plan["blocked"] is True and [c["name"] for c in plan["changes"] if c["destructive"]] == ["user"]
    with pytest.raises(segkit.DefinitionError, match="allow_destructive"):
        ws.apply(dropped)
    assert len(ws.entity("user").attributes) == 3


def test_errors_carry_the_file_and_field_path(tmp_path):
    ws = segkit.Workspace.open(tmp_path / "ws")
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "segments.toml").write_text(
        '[segments.cn]\nentity = "user"\nrule = { attribute = "country", op = "equals", value = "CN" }\n'
    )
    with pytest.raises(segkit.DefinitionError, match=r"segments\.toml: segments\.cn\.rule"):
        ws.plan(tmp_path / "p")
