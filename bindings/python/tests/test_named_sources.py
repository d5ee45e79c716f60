"""Named sources from Python: define / list / delete / sync, incremental cursors committed with the snapshot,
secrets as references, progress (callable and bar) and cancellation (Ctrl-C, a raising callback)."""

from __future__ import annotations

import _thread
import io
import json
import os

import pytest

import segkit
from segkit._sources import LineProgress, SyncProgress


def write_part(d, n, ids):
    lines = [json.dumps({"id": i, "ts": "2026-01-01T00:00:00Z", "name": f"用户{i}"}) for i in ids]
    tmp = d / f".part-{n:05}.tmp"
    tmp.write_text("\n".join(lines) + "\n")
    os.rename(tmp, d / f"part-{n:05}.ndjson")


def parts_config(d, delay_ms=0):
    return {"type": "testing_parts", "dir": str(d), "fields": ["id", "ts", "name"], "delay_ms": delay_ms}


@pytest.fixture
def parts(tmp_path):
    d = tmp_path / "parts"
    d.mkdir()
    return d


@pytest.fixture
def sw(ws):
    ws.define_entity("客户", key="id", attributes={"id": "int64", "name": "string"})
    ws.define_entity(
        "click", kind="event", timestamp="ts", attributes={"id": "int64", "ts": "timestamp"}, links={"id": "客户"}
    )
    return ws


def ids(ws, table):
    return ws.sql(f'SELECT id FROM "{table}" ORDER BY id').to_pyarrow().column("id").to_pylist()


def test_define_list_get_delete_and_incremental_sync(sw, parts):
    write_part(parts, 1, range(0, 3))
    s = sw.define_source("点击", entity="click", config=parts_config(parts), mode="append")
    assert isinstance(s, segkit.NamedSource)
    assert (s.name, s.entity, s.mode, s.cursor, s.snapshot) == ("点击", "click", "append", None, None)
    r = sw.sync("点击")
    assert (r.rows_read, r.rows_written, r.snapshot) == (3, 3, 1)
    assert sw.source("点击").cursor == {"file": "part-00001.ndjson"}
    write_part(parts, 2, range(3, 5))
    r = sw.sync("点击")
    assert (r.rows_read, r.rows_written) == (2, 2)
    assert ids(sw, "click") == [0, 1, 2, 3, 4]
    assert sw.sync("点击").rows_read == 0

    sw.define_source("客户源", entity="客户", config=parts_config(parts), mapping={"name": "name"})
    assert sw.sync("客户源").rows_written == 5
    assert [s.name for s in sw.sources()] == ["客户源", "点击"]
    sw.delete_source("客户源")
    with pytest.raises(segkit.NotFoundError, match="source `客户源` not found"):
        sw.source("客户源")
    assert ids(sw, "客户") == [0, 1, 2, 3, 4], "the data stays"


def test_definition_errors_name_the_field(sw, parts):
    with pytest.raises(segkit.DefinitionError, match=r"source\.password: `password` looks like a secret") as e:
        sw.define_source("s", entity="click", config={**parts_config(parts), "password": "hunter2"})
    assert "hunter2" not in str(e.value)
    with pytest.raises(segkit.DefinitionError, match=r"source\.delay_ms: invalid type: string"):
        sw.define_source("s", entity="click", config={**parts_config(parts), "delay_ms": "soon"})
    with pytest.raises(segkit.DefinitionError, match=r"unknown source type `cvs`"):
        sw.define_source("s", entity="click", config={"type": "cvs", "path": "x.csv"})
    with pytest.raises(segkit.DefinitionError, match=r"source s\.mode: `客户` is a profile entity"):
        sw.define_source("s", entity="客户", config=parts_config(parts), mode="append")
    with pytest.raises(segkit.DefinitionError, match="differ only by case"):
        sw.define_source("Orders", entity="click", config=parts_config(parts))
        sw.define_source("ORDERS", entity="click", config=parts_config(parts))
    with pytest.raises(TypeError, match="config: expected a dict"):
        sw.define_source("s", entity="click", config="x.csv")  # type: ignore[arg-type]
    assert [s.name for s in sw.sources()] == ["Orders"]


def test_secrets_are_references_resolved_at_build_time(sw, tmp_path, monkeypatch):
    csv = tmp_path / "c.csv"
    csv.write_text("id,name\n1,a\n")
    cfg = {"type": "csv", "path": str(csv), "options": {"aws_secret_access_key": "env:SEGKIT_PY_TEST_SECRET"}}
    with pytest.raises(segkit.InvalidArgumentError, match="SEGKIT_PY_TEST_SECRET"):
        sw.define_source("c", entity="客户", config=cfg)
    monkeypatch.setenv("SEGKIT_PY_TEST_SECRET", "s3cr3t-python")
    s = sw.define_source("c", entity="客户", config=cfg)
    assert s.config["options"]["aws_secret_access_key"] == "env:SEGKIT_PY_TEST_SECRET"
    assert "s3cr3t" not in repr(sw.sources())
    assert sw.sync("c").rows_written == 1
    db = (tmp_path / "ws" / "segkit.db").read_bytes() + (tmp_path / "ws" / "segkit.db-wal").read_bytes()
    assert b"s3cr3t" not in db


def test_progress_callback_and_line_display(sw, parts, capsys):
    for n in range(3):
        write_part(parts, n, range(n * 10, n * 10 + 10))
    sw.define_source("clicks", entity="click", config=parts_config(parts))
    seen: list[SyncProgress] = []
    r = sw.sync("clicks", progress=seen.append)
    assert r.rows_written == 30
    assert seen and seen[-1].done and seen[-1].rows_read == 30 and seen[-1].rows_rejected == 0
    assert all(isinstance(p, SyncProgress) for p in seen) and seen[-1].bytes_read > 0
    assert not any(p.done for p in seen[:-1])

    write_part(parts, 3, range(30, 35))
    # The bar: tqdm if installed, else a stderr line.
    try:
        import tqdm  # noqa: F401

        has_tqdm = True
    except ImportError:
        has_tqdm = False
    sw.sync("clicks", progress=True)
    err = capsys.readouterr().err
    if has_tqdm:
        assert "sync clicks" in err and "rows" in err
    else:
        assert "sync clicks: 5 rows (0 rejected)" in err, err
    with pytest.raises(TypeError, match="progress"):
        sw.sync("clicks", progress="yes")  # type: ignore[arg-type]


def test_line_progress_redraws_on_a_terminal():
    class Tty(io.StringIO):
        def isatty(self):
            return True

    out = Tty()
    bar = LineProgress("sync x", out)
    bar(SyncProgress(rows_read=1500, rows_rejected=2, bytes_read=2_000_000, batches=1, elapsed_ms=1000, done=False))
    bar(SyncProgress(rows_read=3000, rows_rejected=2, bytes_read=4_000_000, batches=2, elapsed_ms=2000, done=True))
    text = out.getvalue()
    assert text.startswith("\rsync x: 1,500 rows (2 rejected), 2.0 MB, 1,500 rows/s\rsync x: 3,000 rows")
    assert text.endswith("\n")


def test_ctrl_c_cancels_and_keeps_the_snapshot_and_cursor(sw, parts):
    write_part(parts, 0, range(0, 5))
    sw.define_source("clicks", entity="click", config=parts_config(parts, delay_ms=100))
    sw.sync("clicks")
    before = sw.source("clicks")
    for n in range(1, 8):
        write_part(parts, n, range(n * 10, n * 10 + 5))

    def interrupt(p):
        if not p.done:
            _thread.interrupt_main()  # what Ctrl-C does

    with pytest.raises(KeyboardInterrupt):
        sw.sync("clicks", progress=interrupt)
    after = sw.source("clicks")
    assert (after.cursor, after.snapshot) == (before.cursor, before.snapshot)
    assert ids(sw, "click") == [0, 1, 2, 3, 4]
    assert sw.sync("clicks").rows_written == 35


def test_a_raising_progress_callback_cancels_the_sync(sw, parts):
    write_part(parts, 0, range(0, 5))
    write_part(parts, 1, range(5, 9))
    sw.define_source("clicks", entity="click", config=parts_config(parts, delay_ms=20))

    def boom(p):
        raise RuntimeError("stop here")

    with pytest.raises(RuntimeError, match="stop here"):
        sw.sync("clicks", progress=boom)
    assert sw.source("clicks").cursor is None
    assert ids(sw, "click") == []


def test_file_sources_sync_incrementally(sw, tmp_path):
    """A CSV glob in append mode: a re-sync reads nothing twice, new files and appended lines are read, a file
    changed in place is an error naming it (nothing committed), and on_change="reread" reads it again."""
    d = tmp_path / "in"
    d.mkdir()
    (d / "a.csv").write_text("id,ts,name\n1,2026-01-01T00:00:00Z,a\n2,2026-01-01T00:00:00Z,b\n")
    sw.define_source("files", entity="click", config={"type": "csv", "path": str(d / "*.csv")}, mode="append")
    assert sw.sync("files").rows_written == 2
    assert sw.sync("files").rows_read == 0
    with open(d / "a.csv", "a") as f:
        f.write("3,2026-01-02T00:00:00Z,c\n")
    (d / "b.csv").write_text("id,ts,name\n4,2026-01-03T00:00:00Z,d\n")
    r = sw.sync("files")
    assert (r.rows_read, r.rows_written) == (2, 2)
    assert ids(sw, "click") == [1, 2, 3, 4]
    cursor = sw.source("files").cursor
    assert [(f["path"].rsplit("/", 1)[1], f["lines"]) for f in cursor["files"]] == [("a.csv", 4), ("b.csv", 2)]

    (d / "b.csv").write_text("id,ts,name\n9,2026-01-09T00:00:00Z,z\n")
    with pytest.raises(segkit.IngestError, match=r"b\.csv` changed in place since the last sync: its first"):
        sw.sync("files")
    assert sw.source("files").cursor == cursor
    assert ids(sw, "click") == [1, 2, 3, 4]

    sw.define_source("客户文件", entity="客户", config={"type": "csv", "path": str(d / "b.csv"), "on_change": "reread"})
    assert sw.sync("客户文件").rows_written == 1
    (d / "b.csv").write_text("id,ts,name\n10,2026-01-09T00:00:00Z,y\n")
    assert sw.sync("客户文件").rows_inserted == 1
    assert ids(sw, "客户") == [9, 10]
    with pytest.raises(segkit.DefinitionError, match=r"source\.on_change: unknown value `never`"):
        sw.define_source("x", entity="客户", config={"type": "csv", "path": str(d / "b.csv"), "on_change": "never"})
