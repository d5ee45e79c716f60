from __future__ import annotations

import json
from datetime import datetime, timezone

import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

import segkit

ADULTS_CN_OR_US = {
    "segkit": {"and": [{"attribute": "age", "op": "ge", "value": 18}, {"attribute": "country", "op": "in", "value": ["CN", "US"]}]},
    "querybuilder": {
        "combinator": "and",
        "rules": [{"field": "age", "operator": ">=", "value": 18}, {"field": "country", "operator": "in", "value": ["CN", "US"]}],
    },
    "jsonlogic": {"and": [{">=": [{"var": "age"}, 18]}, {"in": [{"var": "country"}, ["CN", "US"]]}]},
}


def test_define_list_delete_segment(users):
    s = users.define_segment("adults", entity="user", rule={"attribute": "age", "op": "ge", "value": 18}, description="grown-ups")
    assert isinstance(s, segkit.Segment)
    assert (s.name, s.entity, s.description) == ("adults", "user", "grown-ups")
    assert s.rule == {"attribute": "age", "op": "ge", "value": 18}
    assert users.segment("adults") == s
    assert [x.name for x in users.segments()] == ["adults"]
    users.delete_segment("adults")
    assert users.segments() == []
    with pytest.raises(segkit.NotFoundError, match="segment `adults` not found"):
        users.segment("adults")


@pytest.mark.parametrize("dialect", ["segkit", "querybuilder", "jsonlogic"])
def test_three_dialects_same_members(users, dialect):
    rule = ADULTS_CN_OR_US[dialect]
    users.define_segment("explicit", entity="user", rule=rule, dialect=dialect)
    users.define_segment("auto", entity="user", rule=rule)
    users.define_segment("text", entity="user", rule=json.dumps(rule))
    for name in ("explicit", "auto", "text"):
        assert users.evaluate(name).members().column("user_id") == [2, 3]
    # stored in segkit's own dialect whatever it came in
    assert users.segment("auto").rule == users.segment("explicit").rule


def test_evaluate_entered_exited_members_runs(users):
    users.define_segment("cn", entity="user", rule={"attribute": "country", "op": "eq", "value": "CN"})
    run = users.evaluate("cn")
    assert isinstance(run, segkit.SegmentRun)
    assert (run.segment, run.run, run.count, run.snapshot) == ("cn", 1, 2, 1)
    assert run.duration_ms >= 0
    assert isinstance(run.started_at, datetime) and run.started_at.tzinfo is not None
    assert run.entered.column("user_id") == [1, 3]
    assert run.exited.num_rows == 0
    assert "SegmentRun" in repr(run)

    users.ingest("user", pa.table({"user_id": [1, 4], "country": ["US", "CN"]}))
    run2 = users.evaluate("cn")
    assert (run2.run, run2.count, run2.snapshot) == (2, 2, 2)
    assert run2.entered.column("user_id") == [4]
    assert run2.exited.column("user_id") == [1]
    assert run2.members().column("user_id") == [3, 4]

    assert users.members("cn").column("user_id") == [3, 4]
    assert users.members("cn", run=1).column("user_id") == [1, 3]
    with pytest.raises(segkit.NotFoundError, match="run `cn#7` not found"):
        users.members("cn", run=7)

    runs = users.runs("cn")
    assert [r["run"] for r in runs] == [1, 2]
    assert [r["member_count"] for r in runs] == [2, 2]
    assert [(r["entered"], r["exited"]) for r in runs] == [(2, 0), (1, 1)]


def test_members_page(ws):
    ws.define_entity("u", key="id", attributes={"id": "int64", "n": "int64"})
    ws.ingest("u", pa.table({"id": list(range(0, 3000, 3)), "n": [i % 4 for i in range(1000)]}))
    ws.define_segment("most", entity="u", rule={"attribute": "n", "op": "ne", "value": 0})
    want = ws.evaluate("most").members().column("id")
    assert len(want) == 750
    for size in (1, 7, 749, 750, 1000):
        got, offset = [], 0
        while True:
            page = ws.members_page("most", offset=offset, limit=size)
            assert isinstance(page, segkit.MembersPage) and page.run == 1
            rows = page.members.column("id")
            assert len(rows) <= size
            got += rows
            offset += len(rows)
            if not page.more:
                break
        assert got == want, size
    past = ws.members_page("most", run=1, offset=5000, limit=10)
    assert (past.members.num_rows, past.more, past.members.column_names) == (0, False, ["id"])
    assert pa.table(ws.members_page("most", offset=2, limit=3).members).column("id").to_pylist() == want[2:5]
    with pytest.raises(segkit.NotFoundError, match="run `most#9` not found"):
        ws.members_page("most", run=9)
    with pytest.raises(segkit.InvalidArgumentError, match="MAX_PAGE_ROWS"):
        ws.members_page("most", limit=0)


def test_count_preview_sql(users):
    users.define_segment("vip", entity="user", rule={"attribute": "tags", "op": "contains", "value": "vip"})
    assert users.count("vip") == 2
    assert users.runs("vip") == []  # count does not store a run
    p = users.preview("vip", n=1)
    assert p.column_names == ["user_id", "country", "age", "email", "tags"]
    rows = p.to_pylist()
    assert rows == [{"user_id": 1, "country": "CN", "age": 17, "email": "***", "tags": ["vip"]}]  # pii masked
    assert users.preview("vip").num_rows == 2
    t = users.sql("select country, count(*) as n from user group by country order by country nulls last")
    assert t.to_pylist() == [
        {"country": "CN", "n": 2},
        {"country": "DE", "n": 1},
        {"country": "US", "n": 1},
        {"country": None, "n": 1},
    ]
    with pytest.raises(segkit.EngineError, match="nope"):
        users.sql("select * from nope")


def test_results_read_with_pyarrow_polars_pandas(users):
    users.define_segment("cn", entity="user", rule={"attribute": "country", "op": "eq", "value": "CN"})
    members = users.evaluate("cn").members()
    # pyarrow
    t = pa.table(members)
    assert t.schema == pa.schema([pa.field("user_id", pa.int64(), nullable=False)])
    assert t.column("user_id").to_pylist() == [1, 3]
    assert members.to_pyarrow().equals(t)
    # polars (pl.DataFrame reads the stream; see TOOLCHAIN about pl.from_arrow)
    df = pl.DataFrame(members)
    assert df.schema == {"user_id": pl.Int64}
    assert df["user_id"].to_list() == [1, 3]
    assert members.to_polars().equals(df)
    # pl.from_arrow reads any Arrow stream too; for a non-pyarrow stream polars 2.1 returns one struct Series
    # (a struct per row), which unnests to the same frame.
    assert pl.from_arrow(members).struct.unnest().equals(df)
    # pandas
    pdf = members.to_pandas()
    assert isinstance(pdf, pd.DataFrame)
    assert pdf["user_id"].tolist() == [1, 3]
    # the same table can be read more than once
    assert pa.table(members).num_rows == 2


def test_empty_results_stay_typed(users):
    users.define_segment("none", entity="user", rule={"attribute": "age", "op": "gt", "value": 1000})
    run = users.evaluate("none")
    assert run.count == 0
    for table in (run.members(), run.entered, run.exited, users.members("none")):
        assert len(table) == 0
        assert pa.table(table).schema.field("user_id").type == pa.int64()
        assert pl.DataFrame(table).schema == {"user_id": pl.Int64}
    p = users.preview("none")
    assert p.num_rows == 0 and p.column_names == ["user_id", "country", "age", "email", "tags"]
    assert pa.table(p).schema.field("tags").type == pa.list_(pa.string())
    s = users.sql("select user_id, age from user where false")
    assert pa.table(s).schema.names == ["user_id", "age"]
    assert pl.DataFrame(s).schema == {"user_id": pl.Int64, "age": pl.Int64}
    assert s.to_pandas().columns.tolist() == ["user_id", "age"]


def test_rule_errors(users):
    with pytest.raises(segkit.RuleError) as info:
        users.define_segment("x", entity="user", rule={"and": [{"attribute": "age", "op": "gt", "value": 1}, {"attribute": "contry", "op": "eq", "value": "CN"}]})
    msg = str(info.value)
    assert "and[1].attribute" in msg
    assert "no attribute `contry`" in msg
    assert "did you mean `country`?" in msg
    assert info.value.kind == "rule"

    with pytest.raises(segkit.RuleError, match=r"<root>.value: \"abc\" is not a valid int64"):
        users.define_segment("x", entity="user", rule={"attribute": "age", "op": "gt", "value": "abc"})
    with pytest.raises(segkit.RuleError, match="not valid JSON"):
        users.define_segment("x", entity="user", rule='{"attribute": ')
    with pytest.raises(segkit.DefinitionError, match=r"segment\.dialect: unknown rule dialect `sql`"):
        users.define_segment("x", entity="user", rule={}, dialect="sql")
    with pytest.raises(segkit.DefinitionError, match=r"entity `usr` not found \(did you mean `user`\?\)"):
        users.define_segment("x", entity="usr", rule={"attribute": "age", "op": "gt", "value": 1})
    with pytest.raises(segkit.RuleError, match="^rule error at <root>: expected a rule object, found a number$"):
        users.define_segment("x", entity="user", rule=5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="cannot convert object at <root> to JSON"):
        users.define_segment("x", entity="user", rule=object())  # type: ignore[arg-type]
    assert users.segments() == []


def test_missing_segment_errors(users):
    users.define_segment("adults", entity="user", rule={"attribute": "age", "op": "ge", "value": 18})
    for call in (users.evaluate, users.count, users.preview, users.members, users.runs, users.segment):
        with pytest.raises(segkit.NotFoundError, match=r"segment `adultz` not found \(did you mean `adults`\?\)"):
            call("adultz")


def test_set_clock_moves_within_last(ws):
    ws.define_entity("user", key="user_id", attributes={"user_id": "int64", "last_seen": "timestamp"})
    ws.ingest(
        "user",
        pa.table(
            {
                "user_id": [1, 2, 3],
                "last_seen": pa.array(
                    [datetime(2026, 6, 1, tzinfo=timezone.utc), datetime(2026, 6, 20, tzinfo=timezone.utc), datetime(2026, 6, 29, tzinfo=timezone.utc)],
                    pa.timestamp("us", tz="UTC"),
                ),
            }
        ),
    )
    ws.define_segment("active", entity="user", rule={"attribute": "last_seen", "op": "within_last", "value": "7 days"})
    ws.set_clock("2026-06-30T00:00:00Z")
    assert ws.now() == datetime(2026, 6, 30, tzinfo=timezone.utc)
    assert ws.evaluate("active").members().column("user_id") == [3]
    ws.set_clock(datetime(2026, 6, 25))  # naive = UTC
    assert ws.evaluate("active").members().column("user_id") == [2]
    ws.set_clock(datetime(2026, 6, 5, 8, 0, tzinfo=timezone.utc))
    run = ws.evaluate("active")
    assert run.members().column("user_id") == [1]
    assert run.started_at == datetime(2026, 6, 5, 8, 0, tzinfo=timezone.utc)
    ws.set_clock(None)  # back to the system clock
    assert abs((ws.now() - datetime.now(timezone.utc)).total_seconds()) < 60
    with pytest.raises(segkit.InvalidArgumentError, match="not RFC 3339"):
        ws.set_clock("yesterday")


def test_table_wrapper(users):
    t = users.sql("select user_id, country from user order by user_id limit 2")
    assert isinstance(t, segkit.Table)
    assert (t.num_rows, t.num_columns, t.column_names) == (2, 2, ["user_id", "country"])
    assert t.column("country") == ["CN", "US"]
    assert "user_id" in repr(t)
    assert hasattr(t, "__arrow_c_stream__") and hasattr(t, "__arrow_c_schema__")
    assert pa.schema(t).names == ["user_id", "country"]


def test_behavioural_conditions_and_segment_references(tmp_path):
    ws = segkit.Workspace.open(tmp_path / "ws")
    ws.set_clock("2026-06-30T00:00:00Z")
    ws.define_entity("user", key="user_id", attributes={"user_id": "int64", "plan": "string"})
    ws.define_entity(
        "purchase",
        kind="event",
        timestamp="at",
        attributes={"user_id": "int64", "at": "timestamp", "amount": "float64"},
        links={"user_id": "user"},
    )
    ws.ingest("user", pa.table({"user_id": [1, 2, 3], "plan": ["pro", "free", "pro"]}))
    ws.ingest(
        "purchase",
        pa.table(
            {
                "user_id": [1, 1, 2, 3],
                "at": ["2026-06-20T00:00:00Z", "2026-06-21T00:00:00Z", "2026-06-22T00:00:00Z", "2025-01-01T00:00:00Z"],
                "amount": [50.0, 70.0, 500.0, 10.0],
            }
        ),
    )
    ws.define_segment(
        "spenders",
        entity="user",
        rule={"performed": {"event": "purchase", "within_last": "30 days", "having": [{"sum": "amount", "gt": 100}]}},
    )
    assert pa.table(ws.evaluate("spenders").members()).column(0).to_pylist() == [1, 2]
    ws.define_segment("pro_spenders", entity="user", rule={"and": [{"in_segment": "spenders"}, {"attribute": "plan", "op": "eq", "value": "pro"}]})
    assert pa.table(ws.evaluate("pro_spenders").members()).column(0).to_pylist() == [1]
    ws.define_segment(
        "big_after_small",
        entity="user",
        rule={"sequence": {"event": "purchase", "first": {"attribute": "amount", "op": "lt", "value": 60},
                           "then": {"attribute": "amount", "op": "gt", "value": 60}, "within": "2 days"}},
    )
    assert pa.table(ws.evaluate("big_after_small").members()).column(0).to_pylist() == [1]
    with pytest.raises(segkit.RuleError, match="segment references form a cycle"):
        ws.define_segment("spenders", entity="user", rule={"in_segment": "pro_spenders"})
    with pytest.raises(segkit.RuleError, match=r"performed.having\[0\]"):
        ws.define_segment("bad", entity="user", rule={"performed": {"event": "purchase", "having": [{"sum": "amount"}]}})


def test_related_profile_entities_and_linked_rules(tmp_path):
    ws = segkit.Workspace.open(tmp_path / "ws")
    ws.define_entity("user", key="user_id", attributes={"user_id": "int64", "country": "string"})
    ws.define_entity(
        "order",
        key="order_id",
        attributes={"order_id": "int64", "buyer": "int64", "status": "string", "amount": "float64"},
        links={"buyer": "user"},
    )
    ws.ingest("user", pa.table({"user_id": [1, 2, 3], "country": ["CN", "US", "CN"]}))
    ws.ingest(
        "order",
        pa.table(
            {
                "order_id": [10, 11, 12, 13],
                "buyer": [1, 2, 3, None],
                "status": ["paid", "paid", "open", "paid"],
                "amount": [150.0, 90.0, 500.0, 700.0],
            }
        ),
    )
    paid_big = {"and": [{"attribute": "status", "op": "eq", "value": "paid"}, {"attribute": "amount", "op": "gt", "value": 100}]}
    ws.define_segment("big_buyers", entity="user", rule={"performed": {"event": "order", "where": paid_big}})
    assert pa.table(ws.evaluate("big_buyers").members()).column(0).to_pylist() == [1]
    cn = {"attribute": "country", "op": "eq", "value": "CN"}
    ws.define_segment("cn_orders", entity="order", rule={"linked": {"via": "buyer", "where": cn}})
    assert pa.table(ws.evaluate("cn_orders").members()).column(0).to_pylist() == [10, 12]
    ws.define_segment("other_orders", entity="order", rule={"not": {"linked": {"via": "buyer", "where": cn}}})
    assert pa.table(ws.evaluate("other_orders").members()).column(0).to_pylist() == [11]  # 13 has no buyer
    e = ws.explain("other_orders", 13)
    assert (e.member, e.root["value"]) == (False, None)
    assert "buyer is null" in str(e)
    with pytest.raises(segkit.RuleError, match=r"linked\.via"):
        ws.define_segment("bad", entity="order", rule={"linked": {"via": "status", "where": cn}})


def test_split_variants(tmp_path):
    ws = segkit.Workspace.open(tmp_path / "ws")
    ws.define_entity("user", key="user_id", attributes={"user_id": "int64"})
    ws.ingest("user", pa.table({"user_id": list(range(1000))}))
    split = {"holdout": 10, "variants": [{"name": "A", "percent": 45}, {"name": "B", "percent": 45}], "salt": "q3"}
    seg = ws.define_segment("all", entity="user", rule={"and": []}, split=split)
    assert seg.split["variants"][0]["name"] == "A"
    members = pa.table(ws.evaluate("all").members())
    assert members.column_names == ["user_id", "variant"]
    assert set(members.column("variant").to_pylist()) == {"holdout", "A", "B"}
    assert pa.table(ws.evaluate("all").members()).equals(members)
    assert pa.table(ws.members("all")).equals(members)
    with pytest.raises(segkit.DefinitionError, match=r"segment bad\.split"):
        ws.define_segment("bad", entity="user", rule={"and": []}, split={"holdout": 10, "variants": [{"name": "A", "percent": 50}]})


def test_dry_run_history_and_as_of(tmp_path):
    ws = segkit.Workspace.open(tmp_path / "ws")
    ws.define_entity("user", key="user_id", attributes={"user_id": "int64", "country": "string"})
    ws.ingest("user", pa.table({"user_id": [1, 2, 3], "country": ["CN", "US", "CN"]}))
    ws.define_segment("cn", entity="user", rule={"attribute": "country", "op": "eq", "value": "CN"})
    ws.set_clock("2026-07-01T00:00:00Z")
    ws.evaluate("cn")
    d = ws.dry_run("cn", entity="user", rule={"attribute": "country", "op": "in", "value": ["CN", "US"]})
    assert (d.count, d.against_run) == (3, 1)
    assert pa.table(d.would_enter).column(0).to_pylist() == [2]
    assert ws.segment("cn").rule == {"attribute": "country", "op": "eq", "value": "CN"}
    ws.ingest("user", pa.table({"user_id": [1], "country": ["US"]}))
    ws.set_clock("2026-07-02T00:00:00Z")
    ws.evaluate("cn")
    assert pa.table(ws.members("cn", as_of="2026-07-01T12:00:00Z")).column(0).to_pylist() == [1, 3]
    assert pa.table(ws.members("cn", as_of=datetime(2026, 7, 3, tzinfo=timezone.utc))).column(0).to_pylist() == [3]
    log = pa.table(ws.changes("cn"))
    assert log.column("change").to_pylist() == ["entered", "entered", "exited"]
    assert log.column("run").to_pylist() == [1, 1, 2]
    with pytest.raises(segkit.NotFoundError):
        ws.members("cn", as_of="2020-01-01T00:00:00Z")


def test_explain(tmp_path):
    ws = segkit.Workspace.open(tmp_path / "ws")
    ws.define_entity("user", key="user_id", attributes={"user_id": "int64", "country": "string", "age": "int32"})
    ws.ingest("user", pa.table({"user_id": [1, 2], "country": ["CN", "CN"], "age": pa.array([35, None], pa.int32())}))
    ws.define_segment("s", entity="user", rule={"and": [{"attribute": "country", "op": "eq", "value": "CN"}, {"attribute": "age", "op": "gt", "value": 30}]})
    e = ws.explain("s", 1)
    assert e.member and e.root["value"] is True
    assert [c["value"] for c in e.root["children"]] == [True, True]
    e = ws.explain("s", "2")
    assert not e.member and e.root["value"] is None
    assert e.root["children"][1]["detail"] == "age is null"
    assert "[unknown] age gt 30" in str(e)
    with pytest.raises(segkit.NotFoundError):
        ws.explain("s", 3)


def test_keep_runs(tmp_path):
    ws = segkit.Workspace.open(tmp_path / "ws")
    ws.define_entity("user", key="user_id", attributes={"user_id": "int64"})
    ws.ingest("user", pa.table({"user_id": [1, 2]}))
    ws.define_segment("all", entity="user", rule={"and": []}, keep_runs=1)
    for _ in range(3):
        ws.evaluate("all")
    assert [r["run"] for r in ws.runs("all")] == [3]


def test_time_zone_windows(tmp_path):
    ws = segkit.Workspace.open(tmp_path / "ws")
    ws.define_entity("t", key="id", attributes={"id": "int64", "at": "timestamp"})
    ws.ingest("t", pa.table({"id": [1, 2], "at": ["2026-03-28T12:30:00Z", "2026-03-28T13:00:00Z"]}))
    ws.set_clock("2026-03-29T12:00:00Z")
    ws.define_segment("day", entity="t", rule={"attribute": "at", "op": "within_last", "value": "1 day"})
    assert pa.table(ws.evaluate("day").members()).column(0).to_pylist() == [1, 2]
    ws.set_time_zone("Europe/Berlin")
    assert pa.table(ws.evaluate("day").members()).column(0).to_pylist() == [2]
    with pytest.raises(segkit.InvalidArgumentError):
        ws.set_time_zone("Mars/Olympus")
