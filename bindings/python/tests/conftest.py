from __future__ import annotations

import signal

import pyarrow as pa
import pytest

import segkit

# The Ctrl-C tests press Ctrl-C with `_thread.interrupt_main()`, which does nothing while SIGINT is ignored — and
# a shell starts background jobs (`cmd &`) with SIGINT ignored, so Python installs no KeyboardInterrupt handler
# in them. Put Python's default handler back so those tests test segkit, not how the test run was started
# (without this, a backgrounded run fails the sync Ctrl-C test and hangs in the serve_forever one).
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture
def ws(tmp_path) -> segkit.Workspace:
    return segkit.Workspace.open(tmp_path / "ws")


USERS = pa.table(
    {
        "user_id": pa.array([1, 2, 3, 4, 5], pa.int64()),
        "country": ["CN", "US", "CN", "DE", None],
        "age": pa.array([17, 25, 40, 33, 61], pa.int64()),
        "email": ["a@x.io", "b@x.io", "c@x.io", None, "e@x.io"],
        "tags": [["vip"], [], ["vip", "new"], ["new"], None],
    }
)


USER_ATTRIBUTES = {
    "user_id": "int64",
    "country": "string",
    "age": {"type": "int64", "indexed": True},
    "email": {"type": "string", "pii": True, "description": "contact"},
    "tags": "list<string>",
}


@pytest.fixture
def users(ws) -> segkit.Workspace:
    """A workspace with a `user` profile entity holding USERS."""
    ws.define_entity("user", key="user_id", attributes=USER_ATTRIBUTES)
    report = ws.ingest("user", USERS)
    assert report.rows_written == 5
    return ws
