from __future__ import annotations

import re
from datetime import timedelta

import pyarrow as pa
import pytest

import segkit
from segkit import Attribute, Link

from conftest import USER_ATTRIBUTES


def test_define_and_read_entity(ws):
    e = ws.define_entity(
        "user",
        key="user_id",
        description="people",
        attributes={
            "user_id": "int64",
            "email": {"type": "string", "pii": True, "nullable": True, "description": "contact"},
            "tags": "list<string>",
            "score": {"type": "float64", "filterable": False, "indexed": False},
        },
    )
    assert isinstance(e, segkit.Entity)
    assert e.name == "user" and e.kind == "profile" and e.key == "user_id" and e.description == "people"
    assert e.attribute_names == ["user_id", "email", "tags", "score"]
    assert e.attribute("email").pii is True
    assert e.attribute("email").description == "contact"
    assert e.attribute("tags").type == "list<string>"
    assert e.attribute("score").filterable is False
    assert e.attribute("user_id").nullable is False  # keys are never nullable
    assert ws.entity("user") == e
    assert [x.name for x in ws.entities()] == ["user"]
    # idempotent re-definition
    assert ws.define_entity("user", key="user_id", description="people", attributes=[*e.attributes]) == e


def test_event_entity_with_links(ws):
    ws.define_entity("user", key="user_id", attributes={"user_id": "int64"})
    order = ws.define_entity(
        "order",
        kind="event",
        timestamp="at",
        attributes={"order_id": "string", "user_id": "int64", "at": "timestamp", "amount": "float64"},
        links={"user_id": "user"},
    )
    assert order.kind == "event" and order.timestamp == "at"
    assert order.links == (Link(attribute="user_id", entity="user"),)
    again = ws.define_entity(
        "order",
        kind="event",
        timestamp="at",
        attributes={"order_id": "string", "user_id": "int64", "at": "timestamp", "amount": "float64"},
        links=[{"attribute": "user_id", "entity": "user"}],
    )
    assert again == order


def test_link_to_unknown_entity(ws):
    ws.define_entity("user", key="user_id", attributes={"user_id": "int64"})
    with pytest.raises(segkit.DefinitionError, match=r"linked entity `usr` is not defined \(did you mean `user`\?\)"):
        ws.define_entity(
            "order", kind="event", timestamp="at", attributes={"user_id": "int64", "at": "timestamp"}, links={"user_id": "usr"}
        )


def test_incompatible_change_is_definition_error(users):
    with pytest.raises(segkit.DefinitionError) as info:
        users.define_entity(
            "user", key="user_id", attributes={"user_id": "int64", "country": "int64", "age": "int64", "email": "string", "tags": "list<string>"}
        )
    assert "incompatible change to entity user.attribute country: type cannot change from string to int64" in str(info.value)
    assert info.value.kind == "definition"
    assert isinstance(info.value, segkit.SegkitError)

    with pytest.raises(segkit.DefinitionError, match="the key cannot change"):
        users.define_entity("user", key="country", attributes={"user_id": "int64", "country": "string"})


def test_evolution_adds_nullable_attribute(users):
    e = users.define_entity("user", key="user_id", attributes={**USER_ATTRIBUTES, "plan": "string"})
    assert e.attribute_names[-1] == "plan"
    assert users.sql("select count(*) as n from user where plan is null").to_pylist() == [{"n": 5}]


def test_bad_definitions(ws):
    with pytest.raises(segkit.DefinitionError, match="unknown type `integr`"):
        ws.define_entity("user", key="id", attributes={"id": "integr"})
    with pytest.raises(segkit.DefinitionError, match=r"entity\.attributes\.email\.pi: unknown field `pi`, expected one of"):
        ws.define_entity("user", key="id", attributes={"id": "int64", "email": {"type": "string", "pi": True}})
    with pytest.raises(segkit.DefinitionError, match="entity.attributes.email: missing field `type`"):
        ws.define_entity("user", key="id", attributes={"id": "int64", "email": {"pii": True}})
    with pytest.raises(segkit.DefinitionError):
        ws.define_entity("user", key="missing", attributes={"id": "int64"})
    with pytest.raises(segkit.DefinitionError, match=r"entity\.attributes\.id: invalid type: integer `5`, expected a type string"):
        ws.define_entity("user", key="id", attributes={"id": 5})
    with pytest.raises(segkit.DefinitionError):
        ws.define_entity("user", key="id", attributes=[Attribute("id", "int64")], kind="thing")  # type: ignore[arg-type]


def test_missing_entity(ws):
    ws.define_entity("user", key="id", attributes={"id": "int64"})
    with pytest.raises(segkit.NotFoundError, match=r"entity `usr` not found \(did you mean `user`\?\)") as info:
        ws.entity("usr")
    assert info.value.kind == "not_found"
    assert info.value.causes == ["entity `usr` not found (did you mean `user`?)"]


def test_reopen_keeps_definitions(tmp_path):
    a = segkit.Workspace.open(tmp_path / "w")
    a.define_entity("user", key="id", attributes={"id": "int64"})
    b = segkit.Workspace.open(str(tmp_path / "w"))
    assert b.entity("user").key == "id"
    assert b.path.endswith("w")
    assert "Workspace" in repr(b)


def test_durable_commits_option(tmp_path):
    assert segkit.Workspace.open(tmp_path / "plain").durable_commits is False
    ws = segkit.Workspace.open(tmp_path / "w", durable_commits=True)
    assert ws.durable_commits is True
    ws.define_entity("user", key="id", attributes={"id": "int64"})
    ws.ingest("user", pa.table({"id": pa.array([1, 2], pa.int64())}))
    again = segkit.Workspace.open(tmp_path / "w")
    assert again.durable_commits is False
    assert again.sql("select count(*) as n from user").to_pylist() == [{"n": 2}]


def test_workspace_options_delivery_window_lease_and_ingest_memory(tmp_path):
    plain = segkit.Workspace.open(tmp_path / "plain")
    assert (plain.delivery_window(), plain.delivery_window(concurrency=64)) == (16, 128)
    durable = segkit.Workspace.open(tmp_path / "durable", durable_commits=True)
    assert (durable.delivery_window(8), durable.delivery_window(1000)) == (1024, 2000)
    set_ = segkit.Workspace.open(tmp_path / "set", durable_commits=True, delivery_window=3, lease=timedelta(seconds=5))
    assert set_.delivery_window(64) == 3
    small = segkit.Workspace.open(tmp_path / "small", ingest_memory=32 * 1024 * 1024, lease=0.5)
    small.define_entity("user", key="id", attributes={"id": "int64"})
    small.ingest("user", pa.table({"id": pa.array([2, 1, 3], pa.int64())}))
    assert small.sql("select count(*) as n from user").to_pylist() == [{"n": 3}]
    bad = [
        ({"delivery_window": 0}, "delivery_window must be a whole number from 1 to 65536, got 0"),
        ({"delivery_window": 65_537}, "delivery_window must be a whole number from 1 to 65536, got 65537"),
        ({"delivery_window": 2.5}, "delivery_window must be a whole number from 1 to 65536, got 2.5"),
        ({"delivery_window": True}, "delivery_window must be a whole number from 1 to 65536, got True"),
        ({"ingest_memory": -1}, "ingest_memory must be a whole number"),
        ({"lease": "60"}, "lease must be seconds or a timedelta, got '60'"),
        ({"lease": -1.0}, "lease must be a finite, non-negative number of seconds, got -1"),
        ({"lease": float("nan")}, "lease must be a finite, non-negative number of seconds, got NaN"),
        ({"lease": 0.1}, "the delivery lease is 100 ms, shorter than 200 ms (MIN_LEASE)"),
        ({"lease": 1e17}, "longer than 86400000 ms (MAX_LEASE)"),
    ]
    for kwargs, message in bad:
        with pytest.raises(segkit.InvalidArgumentError, match=re.escape(message)):
            segkit.Workspace.open(tmp_path / "bad", **kwargs)
    for concurrency in (0, -1, 2**32, 1.5):
        with pytest.raises(segkit.InvalidArgumentError, match="concurrency must be a whole number"):
            plain.delivery_window(concurrency)


def test_exception_hierarchy():
    for cls in (
        segkit.DefinitionError,
        segkit.NotFoundError,
        segkit.RuleError,
        segkit.IngestError,
        segkit.ConflictError,
        segkit.InvalidArgumentError,
        segkit.StorageError,
        segkit.EngineError,
    ):
        assert issubclass(cls, segkit.SegkitError)
        assert cls.__module__ == "segkit"
    assert issubclass(segkit.InvalidArgumentError, ValueError)
    assert issubclass(segkit.SegkitError, Exception)
