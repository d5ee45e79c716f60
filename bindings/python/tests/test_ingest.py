from __future__ import annotations

import pathlib

import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import segkit

ATTRS = {"user_id": "int64", "country": "string", "age": "int64", "tags": "list<string>"}


@pytest.fixture
def ws_user(ws):
    ws.define_entity("user", key="user_id", attributes=ATTRS)
    return ws


def _rows(ws):
    return ws.sql("select user_id, country, age from user order by user_id").to_pylist()


EXPECTED = [
    {"user_id": 1, "country": "CN", "age": 20},
    {"user_id": 2, "country": "US", "age": None},
]


def test_ingest_pyarrow_table(ws_user):
    r = ws_user.ingest("user", pa.table({"user_id": [1, 2], "country": ["CN", "US"], "age": [20, None], "tags": [["a"], []]}))
    assert isinstance(r, segkit.IngestReport)
    assert (r.rows_read, r.rows_written, r.rows_inserted, r.rows_updated, r.rows_quarantined) == (2, 2, 2, 0, 0)
    assert r.snapshot == 1 and r.mode == "upsert" and r.entity == "user"
    assert r.source == "arrow:pyarrow.Table"
    assert r.duration_ms >= 0 and r.id
    assert r.quarantine_sample == () and r.ignored_fields == ()
    assert _rows(ws_user) == EXPECTED
    with pytest.raises(AttributeError):
        r.rows_read = 5  # frozen


def test_ingest_record_batch_reader_and_batch(ws_user):
    batch = pa.record_batch({"user_id": [1], "country": ["CN"], "age": [20]})
    r = ws_user.ingest("user", batch)  # __arrow_c_array__
    assert r.rows_written == 1
    reader = pa.RecordBatchReader.from_batches(
        batch.schema, iter([pa.record_batch({"user_id": [2], "country": ["US"], "age": pa.array([None], pa.int64())})])
    )
    r = ws_user.ingest("user", reader)  # __arrow_c_stream__ from a Python generator
    assert r.rows_written == 1 and r.snapshot == 2
    assert _rows(ws_user) == EXPECTED


def test_ingest_polars(ws_user):
    df = pl.DataFrame({"user_id": [1, 2], "country": ["CN", "US"], "age": [20, None], "tags": [["a"], ["b", "c"]]})
    r = ws_user.ingest("user", df)
    assert r.rows_written == 2 and r.source == "arrow:polars.DataFrame"
    assert _rows(ws_user) == EXPECTED
    tags = ws_user.sql("select tags from user order by user_id").to_polars()["tags"].to_list()
    assert tags == [["a"], ["b", "c"]]


def test_ingest_pandas(ws_user):
    df = pd.DataFrame({"user_id": [1, 2], "country": ["CN", "US"], "age": [20, None]})
    r = ws_user.ingest("user", df)  # age is float64 with NaN in pandas: coerced to int64, NaN → null
    assert r.rows_written == 2 and r.rows_quarantined == 0
    assert _rows(ws_user) == EXPECTED


def test_ingest_old_pandas_is_a_clear_error(ws_user):
    fake = type("DataFrame", (), {"__module__": "pandas.core.frame"})()
    with pytest.raises(TypeError, match=r"does not implement the Arrow PyCapsule interface .*pandas >= 2.2"):
        ws_user.ingest("user", fake)
    with pytest.raises(TypeError, match="cannot ingest from builtins.int"):
        ws_user.ingest("user", 42)


def test_ingest_csv_path_and_pathlike(ws_user, tmp_path):
    p = tmp_path / "users.csv"
    p.write_text("user_id,country,age\n1,CN,20\n2,US,\n")
    r = ws_user.ingest("user", str(p))
    assert r.rows_written == 2 and r.source.startswith("csv:")
    assert _rows(ws_user) == EXPECTED
    r = ws_user.ingest("user", pathlib.Path(p))
    assert r.rows_updated == 2 and r.rows_inserted == 0


def test_ingest_parquet_and_config(ws_user, tmp_path):
    p = tmp_path / "users.parquet"
    pq.write_table(pa.table({"user_id": [1, 2], "country": ["CN", "US"], "age": [20, None]}), p)
    r = ws_user.ingest("user", {"type": "parquet", "path": str(p)})
    assert r.rows_written == 2
    assert _rows(ws_user) == EXPECTED


def test_missing_file_is_an_ingest_or_storage_error(ws_user, tmp_path):
    with pytest.raises(segkit.SegkitError) as info:
        ws_user.ingest("user", str(tmp_path / "nope.csv"))
    assert "nope.csv" in str(info.value)


def test_mapping_and_modes(ws_user):
    src = pa.table({"ID": [1, 2, 3], "cc": [" cn ", "us", "de"], "years": [20, 30, 40]})
    r = ws_user.ingest(
        "user",
        src,
        mapping={"user_id": "ID", "country": {"source": "cc", "transforms": ["trim", "upper"]}, "age": "years"},
    )
    assert r.rows_written == 3
    assert ws_user.sql("select country from user order by user_id").column("country") == ["CN", "US", "DE"]
    r = ws_user.ingest("user", pa.table({"user_id": [9], "country": ["FR"]}), mode="full_refresh")
    assert r.mode == "full_refresh"
    assert ws_user.sql("select user_id from user").column("user_id") == [9]
    with pytest.raises(segkit.InvalidArgumentError, match="unknown ingest mode `sideways`"):
        ws_user.ingest("user", src, mode="sideways")  # type: ignore[arg-type]
    with pytest.raises(segkit.IngestError, match="profiles ingest with mode upsert or full_refresh, not append"):
        ws_user.ingest("user", src, mode="append")
    with pytest.raises(segkit.DefinitionError, match="mapping.country"):
        ws_user.ingest("user", src, mapping={"country": {"src": "cc"}})


def test_quarantine_and_history(ws_user):
    src = pa.table({"user_id": [1, 2, 3, 3], "age": ["20", "two", "30", "40"], "extra": [1, 2, 3, 4]})
    r = ws_user.ingest("user", src)
    assert r.rows_read == 4 and r.rows_written == 2 and r.rows_quarantined == 2
    assert r.ignored_fields == ("extra",)
    assert [q.row for q in r.quarantine_sample] == [2, 4]
    assert all(isinstance(q, segkit.QuarantinedRow) and q.reason for q in r.quarantine_sample)
    q = ws_user.quarantine("user")
    assert q.column_names == ["ingest_id", "row", "reason", "record"]
    t = q.to_pyarrow()
    assert t.column("row").to_pylist() == [2, 4]
    assert set(t.column("ingest_id").to_pylist()) == {r.id}
    assert '"two"' in t.column("record")[0].as_py()
    assert "duplicate key" in t.column("reason")[1].as_py()
    history = ws_user.ingest_history("user")
    assert [h.id for h in history] == [r.id]
    assert history[0] == r


def test_clear_quarantine_and_vacuum(ws_user):
    ws_user.ingest("user", pa.table({"user_id": [1, 2], "age": ["20", "two"]}))
    assert "two" in ws_user.ingest_history("user")[0].quarantine_sample[0].reason
    assert ws_user.clear_quarantine("user") == 1
    assert len(ws_user.quarantine("user")) == 0
    h = ws_user.ingest_history("user")[0]
    assert (h.rows_quarantined, h.quarantine_file, h.quarantine_sample) == (1, None, ())
    for age in (30, 40, 50):
        ws_user.ingest("user", pa.table({"user_id": [1], "age": [age]}))
    data = pathlib.Path(ws_user.path)
    before = len(list(data.rglob("*.parquet")))
    with pytest.raises(segkit.InvalidArgumentError, match="at least 1 snapshot"):
        ws_user.vacuum(0)
    report = ws_user.vacuum(keep_snapshots=1)
    assert report["snapshots_removed"] == 3 and report["bytes_freed"] > 0
    assert len(list(data.rglob("*.parquet"))) == before - report["files_deleted"]
    assert _rows(ws_user) == [{"user_id": 1, "country": None, "age": 50}]
    assert ws_user.vacuum() == {"snapshots_removed": 0, "files_deleted": 0, "orphans_deleted": 0, "bytes_freed": 0}


def test_empty_quarantine_is_typed(ws_user):
    q = ws_user.quarantine("user")
    assert len(q) == 0
    assert pa.table(q).schema.names == ["ingest_id", "row", "reason", "record"]
    assert pl.DataFrame(q).schema["row"] == pl.Int64


def test_ingest_into_unknown_entity(ws_user):
    with pytest.raises(segkit.NotFoundError, match="entity `users` not found"):
        ws_user.ingest("users", pa.table({"user_id": [1]}))


def test_bad_key_is_quarantined(ws_user):
    r = ws_user.ingest("user", pa.table({"user_id": ["1", "two", "3", None]}))
    assert (r.rows_written, r.rows_quarantined) == (2, 2)
    assert [q.row for q in r.quarantine_sample] == [2, 4]
    assert ws_user.sql("select user_id from user order by user_id").column("user_id") == [1, 3]


def test_any_capsule_exporter(ws_user):
    """Only the PyCapsule protocol is used: a bare object exposing __arrow_c_stream__ works."""
    table = pa.table({"user_id": [1, 2], "country": ["CN", "US"], "age": pa.array([20, None], pa.int64())})

    class Exporter:
        def __arrow_c_stream__(self, requested_schema=None):
            return table.__arrow_c_stream__(requested_schema)

    r = ws_user.ingest("user", Exporter())
    assert r.rows_written == 2
    assert r.source.startswith("arrow:") and r.source.endswith("Exporter")
    assert _rows(ws_user) == EXPECTED


def test_store_url_and_options(tmp_path):
    data = tmp_path / "elsewhere"
    data.mkdir()
    ws = segkit.Workspace.open(tmp_path / "ws", store_url=data.as_uri())
    ws.define_entity("user", key="user_id", attributes={"user_id": "int64"})
    ws.ingest("user", pa.table({"user_id": [1, 2]}))
    assert any(p.suffix == ".parquet" for p in data.rglob("*"))
    assert ws.sql("select count(*) as n from user").to_pylist() == [{"n": 2}]
    with pytest.raises(segkit.InvalidArgumentError, match="SEGKIT_SURELY_UNSET"):
        segkit.Workspace.open(
            tmp_path / "ws3", store_url="s3://bucket/prefix", store_options={"aws_secret_access_key": "env:SEGKIT_SURELY_UNSET"}
        )
