"""Entity lifecycle (add_attribute, entity_dependents, delete_entity), compaction, the group-commit Appender,
the monitoring readers (syncs, audit_entries, workflow_runs), pii masking of render / dry_run_workflow, and the
Arrow IPC file source — against a real workspace directory, real Parquet and Arrow IPC files, and a fixed
clock."""

from __future__ import annotations

import os
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import segkit

T0 = datetime(2026, 6, 30, tzinfo=timezone.utc)
TS = "2026-06-30T12:00:00Z"


def parquet_files(root: str | Path) -> set[str]:
    return {os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs if f.endswith(".parquet")}


def rows_of(ws: segkit.Workspace, query: str) -> list[dict]:
    return ws.sql(query).to_pylist()


@pytest.fixture
def clicks(ws) -> segkit.Workspace:
    """A workspace with a `user` profile and a `click` event entity linking to it."""
    ws.define_entity("user", key="user_id", attributes={"user_id": "int64", "country": "string"})
    ws.define_entity(
        "click",
        kind="event",
        timestamp="ts",
        attributes={"user_id": "int64", "ts": "timestamp", "n": "int32"},
        links={"user_id": "user"},
    )
    return ws


def events(start: int, n: int) -> list[dict]:
    return [{"user_id": i, "ts": TS, "n": i % 7} for i in range(start, start + n)]


# ------------------------------------------------------------------------------------------ entities


def test_add_attribute_evolves_the_entity_and_bad_specs_name_the_field(users):
    ws = users
    e = ws.add_attribute("user", "score", "float64")
    assert e.attribute("score") == segkit.Attribute("score", "float64")
    e = ws.add_attribute("user", "phone", {"type": "string", "pii": True, "description": "mobile"})
    assert (e.attribute("phone").pii, e.attribute("phone").description) == (True, "mobile")
    e = ws.add_attribute("user", "visits", segkit.Attribute("visits", "int32", indexed=True))
    assert e.attribute_names[-3:] == ["score", "phone", "visits"]
    assert ws.entity("user") == e
    # The table has the new (empty) columns for the rows already stored.
    got = rows_of(ws, "SELECT user_id, score, visits FROM user ORDER BY user_id")
    assert [(r["user_id"], r["score"], r["visits"]) for r in got] == [(i, None, None) for i in range(1, 6)]

    with pytest.raises(segkit.ConflictError, match="attribute `age` of entity `user`.*exists already"):
        ws.add_attribute("user", "age", "int64")
    with pytest.raises(segkit.DefinitionError, match="type") as bad_type:
        ws.add_attribute("user", "x", "int65")
    assert "int65" in str(bad_type.value)
    with pytest.raises(segkit.DefinitionError, match="piii"):
        ws.add_attribute("user", "x", {"type": "string", "piii": True})
    # A required attribute cannot be added to an entity holding rows.
    with pytest.raises(segkit.DefinitionError, match="x"):
        ws.add_attribute("user", "x", {"type": "string", "nullable": False})
    with pytest.raises(segkit.NotFoundError, match="entity `usr`"):
        ws.add_attribute("usr", "x", "string")
    with pytest.raises(segkit.InvalidArgumentError, match="named `y`, not `x`"):
        ws.add_attribute("user", "x", segkit.Attribute("y", "string"))
    with pytest.raises(TypeError, match="expected a type string"):
        ws.add_attribute("user", "x", 3)  # type: ignore[arg-type]
    assert "x" not in ws.entity("user").attribute_names


def test_delete_entity_refuses_while_dependents_exist_and_deletes_data_with_force(users, tmp_path):
    ws = users
    pq.write_table(pa.table({"user_id": pa.array([9], pa.int64()), "country": ["FR"]}), tmp_path / "more.parquet")
    ws.define_source("more_users", entity="user", config={"type": "parquet", "path": str(tmp_path / "more.parquet")})
    ws.define_segment("cn", entity="user", rule={"attribute": "country", "op": "eq", "value": "CN"})
    ws.define_template("hi", channel="sms", entity="user", parts={"text": "hi {{ key }}"})
    deps = ws.entity_dependents("user")
    assert deps == segkit.EntityDependents(("cn",), ("more_users",), (), ("hi",), ())
    assert deps
    with pytest.raises(segkit.ConflictError, match="segments `cn`; sources `more_users`; templates `hi`") as refused:
        ws.delete_entity("user")
    assert "force" in str(refused.value)
    # force deletes segments and sources, but a template still refuses: nothing is deleted.
    with pytest.raises(segkit.ConflictError, match="templates `hi`"):
        ws.delete_entity("user", force=True)
    assert ws.segment("cn").entity == "user" and ws.count("cn") >= 0

    # An entity with data and a segment, nothing else: force deletes segment, definition, table and files.
    ws.define_entity("account", key="id", attributes={"id": "int64", "plan": "string"})
    ws.ingest("account", pa.table({"id": pa.array([1, 2, 3], pa.int64()), "plan": ["a", "b", "a"]}))
    ws.define_segment("plan_a", entity="account", rule={"attribute": "plan", "op": "eq", "value": "a"})
    assert ws.evaluate("plan_a").count == 2
    before = parquet_files(ws.path)
    with pytest.raises(segkit.ConflictError, match="segments `plan_a`"):
        ws.delete_entity("account")
    gone = ws.delete_entity("account", force=True)
    assert gone == segkit.EntityDependents(("plan_a",), (), (), (), ())
    with pytest.raises(segkit.NotFoundError):
        ws.entity("account")
    with pytest.raises(segkit.NotFoundError):
        ws.segment("plan_a")
    with pytest.raises(segkit.SegkitError, match="account"):
        ws.sql("SELECT * FROM account")
    account_files = {f for f in before if f"{os.sep}data{os.sep}account{os.sep}" in f}
    segment_files = {f for f in before if f"{os.sep}segments{os.sep}plan_a{os.sep}" in f}
    assert account_files and segment_files
    # Exactly the entity's data files and its segment's membership files are gone.
    assert before - parquet_files(ws.path) == account_files | segment_files
    assert [e.name for e in ws.entities()] == ["user"]
    with pytest.raises(segkit.NotFoundError, match="entity `account`"):
        ws.delete_entity("account")
    with pytest.raises(segkit.NotFoundError):
        ws.entity_dependents("nobody")


def test_an_entity_linked_to_refuses_deletion_until_the_linking_one_is_gone(clicks):
    ws = clicks
    assert ws.entity_dependents("user").linked_from == ("click",)
    with pytest.raises(segkit.ConflictError, match="linking entities `click`"):
        ws.delete_entity("user", force=True)
    assert not ws.delete_entity("click")
    assert not ws.entity_dependents("user")
    assert ws.delete_entity("user") == segkit.EntityDependents((), (), (), (), ())
    assert ws.entities() == []


# ------------------------------------------------------------------------------------------ appender


def test_appender_group_commits_rows_and_arrow_and_closes_as_a_context_manager(clicks):
    ws = clicks
    with ws.appender("click") as a:
        assert (a.entity, a.pending) == ("click", 0)
        a.append(events(0, 10))
        a.append(pa.table({"user_id": pa.array([100, 101], pa.int64()), "ts": pa.array([T0, T0], pa.timestamp("us", "UTC")),
                           "n": pa.array([1, 2], pa.int32())}))
        assert a.pending == 2
        receipts = a.flush()
        assert a.pending == 0
        assert [(r["entity"], r["rows"]) for r in receipts] == [("click", 10), ("click", 2)]
        history = {r.id for r in ws.ingest_history("click")}
        assert {r["ingest_id"] for r in receipts} <= history
        assert all(r["snapshot"] is not None and r["group_quarantined"] == 0 for r in receipts)
        a.append(events(200, 5))
    # Leaving the block committed the last append.
    assert rows_of(ws, "SELECT count(*) AS n FROM click") == [{"n": 17}]
    assert a.close() == []
    with pytest.raises(segkit.InvalidArgumentError, match="appender of `click` is closed"):
        a.append(events(0, 1))


def test_concurrent_appends_from_threads_all_commit(clicks):
    ws = clicks
    a = ws.appender("click")
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            for j in range(5):
                a.append(events(1000 * i + 10 * j, 10))
        except BaseException as e:  # noqa: BLE001 - surfaced by the assertion below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    receipts = a.close()
    assert len(receipts) == 30 and all(r["rows"] == 10 for r in receipts)
    assert sum(r["rows"] for r in receipts) == 300
    assert rows_of(ws, "SELECT count(DISTINCT user_id) AS n FROM click") == [{"n": 300}]


def test_appender_bad_input_is_refused_with_the_path(clicks):
    ws = clicks
    with pytest.raises(segkit.NotFoundError, match="entity `clik`"):
        ws.appender("clik")
    with pytest.raises(segkit.InvalidArgumentError, match="`user` is a profile entity"):
        ws.appender("user")
    a = ws.appender("click")
    with pytest.raises(segkit.InvalidArgumentError, match=r"rows\[1\]\.user_id: expected an integer \(int64\), got 1.5"):
        a.append([events(0, 1)[0], {"user_id": 1.5, "ts": TS}])
    with pytest.raises(segkit.InvalidArgumentError, match=r"rows\[0\]\.ts: is required"):
        a.append([{"user_id": 1}])
    with pytest.raises(segkit.InvalidArgumentError, match=r"rows\[0\]\.colour: entity `click` has no attribute"):
        a.append([{"user_id": 1, "ts": TS, "colour": "red"}])
    with pytest.raises(segkit.InvalidArgumentError, match="MAX_EVENT_BATCH"):
        a.append(events(0, segkit._segkit.MAX_EVENT_BATCH + 1))
    with pytest.raises(TypeError, match="cannot append a dict"):
        a.append({"user_id": 1})
    # An empty append is refused by core when it is committed.
    a.append([])
    with pytest.raises(segkit.InvalidArgumentError, match="no events"):
        a.flush()
    assert a.close() == []
    assert rows_of(ws, "SELECT count(*) AS n FROM click") == [{"n": 0}]


def test_leaving_the_block_on_an_exception_still_commits_what_was_appended(clicks):
    ws = clicks
    with pytest.raises(RuntimeError, match="boom"):
        with ws.appender("click") as a:
            a.append(events(0, 3))
            raise RuntimeError("boom")
    assert rows_of(ws, "SELECT count(*) AS n FROM click") == [{"n": 3}]


# ------------------------------------------------------------------------------------------ compaction


def test_compact_merges_small_event_files_into_one(clicks):
    ws = clicks
    for i in range(10):
        ws.ingest("click", pa.table({"user_id": pa.array([i, i + 100], pa.int64()), "ts": [TS, TS], "n": [i, i]}))
    before = rows_of(ws, "SELECT user_id, n FROM click ORDER BY user_id")
    report = ws.compact("click")
    assert report["files_merged"] == 10 and report["files_written"] == 1 and report["rows"] == 20
    assert report["snapshot"] is not None
    assert rows_of(ws, "SELECT user_id, n FROM click ORDER BY user_id") == before
    assert ws.compact("click") == {"files_merged": 0, "files_written": 0, "rows": 0, "snapshot": None}
    # Profiles need none; unknown entities are NotFound.
    assert ws.compact("user")["files_merged"] == 0
    with pytest.raises(segkit.NotFoundError, match="entity `clicks`"):
        ws.compact("clicks")


# ------------------------------------------------------------------------------------------ monitoring


def test_syncs_list_direct_ingests_and_named_source_syncs(users, tmp_path):
    ws = users
    pq.write_table(pa.table({"user_id": pa.array([7, 8], pa.int64()), "country": ["FR", "FR"]}), tmp_path / "fr.parquet")
    ws.define_source("fr", entity="user", config={"type": "parquet", "path": str(tmp_path / "fr.parquet")})
    ws.sync("fr")
    records = ws.syncs()
    assert [(r.named_source, r.report.entity, r.report.rows_written) for r in records] == [
        (None, "user", 5),
        ("fr", "user", 2),
    ]
    assert all(isinstance(r, segkit.SyncRecord) and datetime.fromisoformat(r.created_at) for r in records)
    assert records[1].report.id == ws.ingest_history("user")[-1].id
    assert [r.named_source for r in ws.syncs(limit=1)] == [None]
    assert ws.syncs(limit=0) == []


def test_audit_entries_filter_and_page(ws):
    ws.set_clock(T0)
    ws.audit("alice", "segment.update", "cn", "rule changed")
    ws.audit("bob", "pii.read", "user")
    ws.audit("alice", "entity.delete", "account", "x" * 5000)
    rows = ws.audit_entries()
    assert [(r["actor"], r["action"], r["target"]) for r in rows] == [
        ("alice", "segment.update", "cn"),
        ("bob", "pii.read", "user"),
        ("alice", "entity.delete", "account"),
    ]
    assert rows[0]["detail"] == "rule changed" and rows[1]["detail"] is None
    assert len(rows[2]["detail"]) == 4096  # cut at MAX_AUDIT_DETAIL_BYTES
    assert all(datetime.fromisoformat(r["at"]) == T0 for r in rows)
    ids = [r["id"] for r in rows]
    assert ids == sorted(ids)
    assert [r["target"] for r in ws.audit_entries(actor="alice")] == ["cn", "account"]
    assert [r["target"] for r in ws.audit_entries(action="pii.read")] == ["user"]
    assert [r["target"] for r in ws.audit_entries(actor="alice", target="account")] == ["account"]
    assert [r["id"] for r in ws.audit_entries(newest_first=True)] == ids[::-1]
    assert [r["id"] for r in ws.audit_entries(after_id=ids[0], limit=1)] == [ids[1]]
    assert [r["id"] for r in ws.audit_entries(before_id=ids[2], newest_first=True)] == [ids[1], ids[0]]
    assert ws.audit_entries(actor="nobody") == []
    with pytest.raises(OverflowError):
        ws.audit_entries(limit=-1)


class Recorder:
    """A custom action recording what it is asked to send."""

    def __init__(self) -> None:
        self.sent: list[segkit.Delivery] = []

    def execute(self, delivery: segkit.Delivery):
        self.sent.append(delivery)
        return {"status": "delivered", "receipt": delivery.entity_key}


def test_workflow_runs_count_each_trigger_versions_rows_by_status(users):
    ws = users
    ws.set_clock(T0)
    ws.register_action("sms", Recorder())
    ws.define_workflow(
        "greet",
        trigger={"type": "manual", "entity": "user"},
        steps=[{"type": "action", "name": "send", "action": "sms"}],
        policies={"reentry": {"type": "always"}},
    )
    assert ws.workflow_runs("greet") == []
    assert ws.trigger("greet", [1, 3]) == 2
    (run,) = ws.workflow_runs("greet")
    assert (run["entities"], run["rows"], run["statuses"]) == (2, 2, {"pending": 2})
    assert run["started_at"] == int(T0.timestamp() * 1000)
    assert ws.dispatch_due()["delivered"] == 2
    ws.set_clock(T0 + timedelta(minutes=1))  # runs are ordered by their start: a later one
    assert ws.trigger("greet", [2]) == 1
    newest, first = ws.workflow_runs("greet")
    assert (newest["entities"], newest["statuses"]) == (1, {"pending": 1})
    assert (first["trigger"], first["statuses"]) == (run["trigger"], {"delivered": 2})
    assert newest["trigger"] != first["trigger"]
    assert ws.workflow_runs("greet", limit=1) == [newest]
    with pytest.raises(segkit.NotFoundError, match="workflow `gret`"):
        ws.workflow_runs("gret")


def test_render_and_dry_run_mask_pii_on_request(users):
    ws = users
    ws.set_clock(T0)
    ws.register_action("mail", Recorder())
    ws.define_template("note", channel="mail", entity="user", parts={"text": "{{ entity.email }} in {{ entity.country }}"})
    assert ws.render("note", 1) == {"text": "a@x.io in CN"}
    assert ws.render("note", 1, mask_pii=True) == {"text": "*** in CN"}
    ws.define_workflow(
        "tell",
        trigger={"type": "manual", "entity": "user"},
        steps=[{"type": "action", "name": "send", "action": "mail", "template": "note"}],
    )
    (plain,) = ws.dry_run_workflow("tell", [3])
    (masked,) = ws.dry_run_workflow("tell", [3], mask_pii=True)
    assert (plain["status"], plain["content"]) == ("send", {"text": "c@x.io in CN"})
    assert (masked["status"], masked["content"]) == ("send", {"text": "*** in CN"})
    assert ws.deliveries() == []  # a dry run writes nothing
    with pytest.raises(segkit.NotFoundError, match="template `nope`"):
        ws.render("nope", 1, mask_pii=True)
    with pytest.raises(segkit.NotFoundError, match="key 42"):
        ws.render("note", 42, mask_pii=True)
    with pytest.raises(segkit.NotFoundError, match="workflow `tel`"):
        ws.dry_run_workflow("tel", mask_pii=True)


# ------------------------------------------------------------------------------------------ Arrow IPC source


def test_arrow_ipc_files_ingest_by_path_by_config_and_as_a_named_source(users, tmp_path):
    ws = users
    more = pa.table({"user_id": pa.array([6, 7], pa.int64()), "country": ["FR", "JP"]})
    file_path = tmp_path / "more.arrow"
    with pa.ipc.new_file(file_path, more.schema) as w:
        w.write_table(more)
    stream_path = tmp_path / "more2.arrows"
    more2 = pa.table({"user_id": pa.array([8], pa.int64()), "country": ["BR"]})
    with pa.ipc.new_stream(stream_path, more2.schema) as w:
        w.write_table(more2)

    assert ws.ingest("user", file_path).rows_written == 2  # os.PathLike, format from the extension
    assert ws.ingest("user", {"type": "arrow_ipc", "path": str(stream_path)}).rows_written == 1
    # The aliases of the type, and file:// URLs.
    assert ws.ingest("user", {"type": "feather", "path": f"file://{file_path}"}).rows_written == 2
    assert ws.ingest("user", {"path": str(stream_path)}).rows_written == 1  # type from the extension
    ws.define_source("ipc", entity="user", config={"type": "arrow_ipc", "path": str(file_path), "name": "export"})
    report = ws.sync("ipc")
    assert (report.source, report.rows_written) == ("export", 2)
    got = rows_of(ws, "SELECT user_id, country FROM user WHERE user_id > 5 ORDER BY user_id")
    assert got == [{"user_id": 6, "country": "FR"}, {"user_id": 7, "country": "JP"}, {"user_id": 8, "country": "BR"}]

    with pytest.raises(segkit.DefinitionError, match=r"source\.delimiter.*unknown key"):
        ws.ingest("user", {"type": "arrow_ipc", "path": str(file_path), "delimiter": ","})
    with pytest.raises(segkit.DefinitionError, match=r"source\.path"):
        ws.ingest("user", {"type": "arrow_ipc"})
    with pytest.raises(segkit.DefinitionError, match="local disk only"):
        ws.ingest("user", {"type": "arrow_ipc", "path": "s3://bucket/x.arrow"})
    not_arrow = tmp_path / "fake.arrow"
    not_arrow.write_text("user_id,country\n1,CN\n")
    with pytest.raises(segkit.SegkitError, match="not a readable Arrow IPC stream or file"):
        ws.ingest("user", not_arrow)
    assert rows_of(ws, "SELECT count(*) AS n FROM user") == [{"n": 8}]
