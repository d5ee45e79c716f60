"""The log connector from Python through its source config: the nginx preset, a bad line quarantined with its
position, a second sync after appending reads only the new lines, rotation, and bad configs."""

from __future__ import annotations

import gzip
import os

import pytest

import segkit


def nginx(i: int) -> str:
    return (
        f'10.0.0.{i} - - [10/Oct/2026:13:55:{i:02} +0200] "GET /p/{i} HTTP/1.1" 200 {100 + i} "-" "curl/8"\n'
    )


@pytest.fixture
def lw(ws):
    ws.define_entity("visitor", key="remote_addr", attributes={"remote_addr": "string"})
    ws.define_entity(
        "request",
        kind="event",
        timestamp="time_local",
        attributes={
            "time_local": "timestamp",
            "remote_addr": "string",
            "path": "string",
            "status": "int64",
            "body_bytes_sent": "int64",
        },
        links={"remote_addr": "visitor"},
    )
    return ws


def paths(ws):
    return sorted(ws.sql("SELECT path FROM request").to_pyarrow().column("path").to_pylist())


def test_nginx_preset_quarantine_and_tail(lw, tmp_path):
    log = tmp_path / "access.log"
    log.write_text(nginx(1) + "garbage line\n" + nginx(2))
    lw.define_source("web", entity="request", config={"type": "log", "path": str(log), "format": "nginx"})
    r = lw.sync("web")
    assert (r.rows_written, r.rows_quarantined) == (2, 1)
    assert "access.log line 2, byte 83: does not match the nginx combined format" in r.quarantine_sample[0].reason
    t = lw.sql("SELECT CAST(time_local AS VARCHAR) AS t FROM request ORDER BY path").to_pyarrow()
    assert t.column("t").to_pylist()[0] == "2026-10-10T11:55:01Z"

    with open(log, "a") as f:
        f.write(nginx(3) + nginx(4)[:15])
    r = lw.sync("web")
    assert (r.rows_read, r.rows_written) == (1, 1), "only the new complete line"
    with open(log, "a") as f:
        f.write(nginx(4)[15:])
    assert lw.sync("web").rows_written == 1
    assert lw.sync("web").rows_read == 0
    assert paths(lw) == ["/p/1", "/p/2", "/p/3", "/p/4"]
    cursor = lw.source("web").cursor
    assert cursor["files"][0]["offset"] == os.path.getsize(log)


def test_rename_rotation_and_gzip(lw, tmp_path):
    log = tmp_path / "access.log"
    log.write_text(nginx(1))
    cfg = {"type": "log", "path": str(tmp_path / "access.log*"), "format": "nginx"}
    lw.define_source("web", entity="request", config=cfg)
    assert lw.sync("web").rows_written == 1
    with open(log, "a") as f:
        f.write(nginx(2))
    os.rename(log, tmp_path / "access.log.1")
    log.write_text(nginx(3))
    assert lw.sync("web").rows_written == 2
    data = (tmp_path / "access.log.1").read_bytes()
    (tmp_path / "access.log.1.gz").write_bytes(gzip.compress(data))
    os.remove(tmp_path / "access.log.1")
    assert lw.sync("web").rows_written == 0
    assert paths(lw) == ["/p/1", "/p/2", "/p/3"]


def test_bad_configs_are_definition_errors_with_the_path(lw, tmp_path):
    log = str(tmp_path / "a.log")
    with pytest.raises(segkit.DefinitionError, match=r"source\.pattern: invalid regex") as e:
        lw.define_source("bad", entity="request", config={"type": "log", "path": log, "pattern": "(?P<a>x"})
    assert e.value.kind == "definition"
    with pytest.raises(segkit.DefinitionError, match=r"source\.format: unknown log format `nginks`"):
        lw.define_source("bad", entity="request", config={"type": "log", "path": log, "format": "nginks"})
    with pytest.raises(segkit.DefinitionError, match=r"source\.max_line_bytes: 1 is out of range"):
        lw.define_source("bad", entity="request", config={"type": "log", "path": log, "format": "nginx", "max_line_bytes": 1})
    assert lw.sources() == []
