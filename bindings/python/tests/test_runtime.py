"""The runtime bridge: GIL released during blocking calls, Ctrl-C gets through, fork() is survived."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

import pyarrow as pa
import pytest

import segkit

SLOW = "select count(*) as n from generate_series(1, {n}) where value % 7 = 3"


def test_gil_is_released_during_queries(ws):
    ticks = 0
    stop = threading.Event()

    def spin():
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            time.sleep(0.001)

    t = threading.Thread(target=spin)
    t.start()
    try:
        time.sleep(0.05)
        before = ticks
        started = time.monotonic()
        ws.sql(SLOW.format(n=20_000_000))
        elapsed = time.monotonic() - started
        during = ticks - before
    finally:
        stop.set()
        t.join()
    # the other thread kept running while the native call was in progress
    assert elapsed > 0.1, "query too fast to measure"
    assert during > 10, (during, elapsed)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_ctrl_c_interrupts_a_blocking_call(ws):
    # A shell starts background jobs with SIGINT ignored, and Python then installs no KeyboardInterrupt handler;
    # install it for this test so it behaves the same in a terminal, in CI and under `cmd &`.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    timer = threading.Timer(0.5, lambda: os.kill(os.getpid(), signal.SIGINT))
    timer.start()
    started = time.monotonic()
    try:
        with pytest.raises(KeyboardInterrupt):
            ws.sql(SLOW.format(n=100_000_000_000))
    finally:
        timer.cancel()
        signal.signal(signal.SIGINT, previous)
    assert time.monotonic() - started < 20
    # the workspace is still usable afterwards
    assert ws.sql("select 1 as one").to_pylist() == [{"one": 1}]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_survives_fork(ws):
    ws.define_entity("user", key="user_id", attributes={"user_id": "int64"})
    ws.ingest("user", pa.table({"user_id": [1, 2, 3]}))
    ws.define_segment("all", entity="user", rule={"attribute": "user_id", "op": "gt", "value": 0})
    assert ws.count("all") == 3  # the parent's runtime exists now
    pid = os.fork()
    if pid == 0:  # child: a fresh runtime must be made, not the parent's threadless one
        code = 1
        try:
            code = 0 if ws.count("all") == 3 and ws.evaluate("all").count == 3 else 2
        finally:
            os._exit(code)
    deadline = time.monotonic() + 60
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail("the forked child hung")
        time.sleep(0.05)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    assert ws.count("all") == 3  # and the parent still works


def test_threads_share_a_workspace(ws):
    ws.define_entity("user", key="user_id", attributes={"user_id": "int64"})
    ws.ingest("user", pa.table({"user_id": list(range(100))}))
    ws.define_segment("even", entity="user", rule={"attribute": "user_id", "op": "in", "value": list(range(0, 100, 2))})
    results = []

    def work():
        results.append(ws.count("even"))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [50] * 4
