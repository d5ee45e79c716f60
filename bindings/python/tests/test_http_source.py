"""The `http` source from Python: a real HTTP server (http.server in a thread) that paginates, answers 503 once
and checks the bearer token; define_source + sync twice (incremental by `since`); bad configs."""

from __future__ import annotations

import json
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

import segkit

ROWS = [{"id": i, "name": f"u{i}", "updated": i * 10} for i in range(1, 6)]


@pytest.fixture
def api(monkeypatch):
    monkeypatch.setenv("SEGKIT_PY_HTTP_TOKEN", "py-secret")
    state = {"rows": list(ROWS), "requests": [], "fail_next": True}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            u = urllib.parse.urlparse(self.path)
            q = dict(urllib.parse.parse_qsl(u.query))
            state["requests"].append(q)
            if self.headers.get("Authorization") != "Bearer py-secret":
                return self.reply(401, {})
            if state["fail_next"]:
                state["fail_next"] = False
                return self.reply(503, {})
            since, page = int(q.get("since", 0)), int(q["page"])
            rows = [r for r in state["rows"] if r["updated"] > since]
            self.reply(200, {"data": {"items": rows[(page - 1) * 2 : page * 2]}})

        def reply(self, status, body):
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    state["url"] = f"http://127.0.0.1:{server.server_address[1]}/users"
    yield state
    server.shutdown()
    server.server_close()


def config(api, **extra):
    return {
        "type": "http",
        "url": api["url"],
        "records": "/data/items",
        "auth": {"type": "bearer", "token": "env:SEGKIT_PY_HTTP_TOKEN"},
        "pagination": {"type": "page", "param": "page", "size_param": "per_page", "size": 2},
        "incremental": {"field": "updated", "param": "since"},
        "backoff_ms": 10,
        **extra,
    }


def test_http_source_syncs_incrementally(ws, api):
    ws.define_entity("user", key="id", attributes={"id": "int64", "name": "string", "updated": "int64"})
    ws.define_source("users_api", entity="user", config=config(api))
    r = ws.sync("users_api")
    assert (r.rows_written, r.rows_quarantined) == (5, 0)
    assert ws.source("users_api").cursor == {"since": 50}
    api["rows"][1] = {"id": 2, "name": "bobby", "updated": 60}
    before = len(api["requests"])
    r = ws.sync("users_api")
    assert (r.rows_inserted, r.rows_updated) == (0, 1)
    # the source is built anew: schema discovery reads page 1 without a cursor, then the scan sends `since`
    scan = api["requests"][before + 1 :]
    assert scan and all(q.get("since") == "50" for q in scan), api["requests"][before:]
    assert ws.source("users_api").cursor == {"since": 60}
    t = ws.sql("SELECT id, name FROM user ORDER BY id").to_pyarrow()
    assert t.column("name").to_pylist() == ["u1", "bobby", "u3", "u4", "u5"]
    assert "py-secret" not in json.dumps(ws.source("users_api").config)


def test_http_source_bad_configs(ws, api):
    ws.define_entity("user", key="id", attributes={"id": "int64"})
    with pytest.raises(segkit.DefinitionError, match=r"source\.auth\.token: `token` looks like a secret") as e:
        ws.define_source("s", entity="user", config={**config(api), "auth": {"type": "bearer", "token": "hunter2"}})
    assert "hunter2" not in str(e.value)
    with pytest.raises(segkit.DefinitionError, match=r"source\.pagination\.size: must be at least 1"):
        ws.define_source("s", entity="user", config=config(api, pagination={"type": "page", "size": 0}))
    with pytest.raises(segkit.DefinitionError, match=r"source\.max_pages: invalid type"):
        ws.define_source("s", entity="user", config=config(api, max_pages="many"))
