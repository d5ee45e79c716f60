"""The scheduler, dry runs and the system tables from Python, against a real catalog, real Parquet data and a real
HTTP receiver on 127.0.0.1 (test_workflows.Receiver, which verifies signatures). Time is a fixed workspace clock;
`run_due` gets explicit instants."""

from __future__ import annotations

import _thread
import os
import signal
import threading
from datetime import datetime, timedelta, timezone

import pytest

import segkit
from test_workflows import SECRET, T0, Receiver


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def welcome(users, receiver, monkeypatch):
    """`users` with a fixed clock at T0, a `cn` segment (users 1 and 3) and an `entered` workflow sending a
    rendered webhook to the receiver."""
    monkeypatch.setenv("SEGKIT_PY_HOOK_SECRET", SECRET)
    ws = users
    ws.set_clock(T0)
    ws.define_segment("cn", entity="user", rule={"attribute": "country", "op": "eq", "value": "CN"})
    ws.register_action("hook", {"type": "webhook", "url": receiver.url, "secret": "env:SEGKIT_PY_HOOK_SECRET"})
    ws.define_template("welcome", channel="webhook", entity="user", parts={"body": '{"email": "{{ entity.email }}"}'})
    ws.define_workflow(
        "welcome",
        trigger={"type": "entered", "segment": "cn"},
        steps=[{"type": "action", "name": "send", "action": "hook", "template": "welcome"}],
    )
    return ws


def status_counts(ws) -> dict[str, int]:
    rows = ws.sql("SELECT status, count(*) AS n FROM segkit.deliveries GROUP BY status").to_pylist()
    return {r["status"]: r["n"] for r in rows}


def test_a_schedule_in_a_time_zone_runs_when_due_and_a_missed_window_runs_once(welcome, receiver):
    ws = welcome
    # 02:30 in Berlin is 00:30 UTC in summer (CEST, UTC+2).
    info = ws.schedule("nightly", "30 2 * * *", {"type": "evaluate", "segment": "cn"}, timezone="Europe/Berlin")
    assert info["spec"] == {
        "name": "nightly",
        "cron": "30 2 * * *",
        "timezone": "Europe/Berlin",
        "job": {"type": "evaluate", "segment": "cn"},
    }
    assert info["next_due"] == "2026-06-30T00:30:00Z"
    assert info["runs"] == 0 and info["last_run_at"] is None
    assert [s["spec"]["name"] for s in ws.schedules()] == ["nightly"]

    # Not yet due: nothing runs, and the dispatch pass finds nothing.
    report = ws.run_due("2026-06-30T00:29:59Z")
    assert report["jobs"] == [] and report["dispatch"]["claimed"] == 0
    assert status_counts(ws) == {}

    # Due: the evaluation writes the ledger rows, the dispatch pass that follows sends them.
    report = ws.run_due(T0 + timedelta(minutes=30))
    (job,) = report["jobs"]
    assert job["schedule"] == "nightly" and job["ok"] is True, job
    assert job["due"] == "2026-06-30T00:30:00Z" and job["next_due"] == "2026-07-01T00:30:00Z"
    assert "2 entered" in job["outcome"]
    assert report["dispatch"]["delivered"] == 2
    assert sorted(r["body"]["email"] for r in receiver.requests) == ["a@x.io", "c@x.io"]
    assert status_counts(ws) == {"delivered": 2}

    # The process was down for three nights: the job runs once, for the latest missed due instant.
    report = ws.run_due(datetime(2026, 7, 3, 12, 0, tzinfo=timezone.utc))
    (job,) = report["jobs"]
    assert job["due"] == "2026-07-03T00:30:00Z" and job["next_due"] == "2026-07-04T00:30:00Z"
    assert ws.run_due(datetime(2026, 7, 3, 12, 0, tzinfo=timezone.utc))["jobs"] == []
    info = ws.schedule_info("nightly")
    assert info["runs"] == 2 and info["failures"] == 0 and info["last_due"] == "2026-07-03T00:30:00Z"
    (row,) = ws.sql("SELECT name, job_type, timezone, runs, failing FROM segkit.schedules").to_pylist()
    assert row == {"name": "nightly", "job_type": "evaluate", "timezone": "Europe/Berlin", "runs": 2, "failing": False}

    ws.delete_schedule("nightly")
    assert ws.schedules() == []
    with pytest.raises(segkit.NotFoundError, match="nightly"):
        ws.schedule_info("nightly")


def test_run_due_defaults_to_the_workspace_clock_and_reports_a_failing_job(welcome):
    ws = welcome
    ws.define_workflow(
        "weekly",
        trigger={"type": "schedule", "segment": "cn"},
        steps=[{"type": "action", "name": "send", "action": "hook", "template": "welcome"}],
    )
    ws.schedule("digest", "0 * * * *", {"type": "workflow", "workflow": "weekly"})
    ws.set_clock(T0 + timedelta(hours=1))
    # `cn` was never evaluated: the job fails, is recorded, and is not raised.
    (job,) = ws.run_due()["jobs"]
    assert job["ok"] is False and "has not been evaluated yet" in job["outcome"], job
    info = ws.schedule_info("digest")
    assert info["failures"] == 1 and "has not been evaluated yet" in info["last_error"]
    (row,) = ws.sql("SELECT failing FROM segkit.schedules WHERE name = 'digest'").to_pylist()
    assert row["failing"] is True


def test_bad_schedules_name_the_field(welcome):
    ws = welcome
    job = {"type": "evaluate", "segment": "cn"}
    with pytest.raises(segkit.DefinitionError, match=r"schedule n\.cron"):
        ws.schedule("n", "61 * * * *", job)
    with pytest.raises(segkit.DefinitionError, match=r"schedule n\.timezone"):
        ws.schedule("n", "0 * * * *", job, timezone="Mars/Olympus")
    with pytest.raises(segkit.DefinitionError, match=r"schedule n\.job\.source.*nope"):
        ws.schedule("n", "0 * * * *", {"type": "sync", "source": "nope"})
    with pytest.raises(segkit.DefinitionError, match=r"schedule n\.job\.workflow.*not started by schedules"):
        ws.schedule("n", "0 * * * *", {"type": "workflow", "workflow": "welcome"})
    with pytest.raises(segkit.DefinitionError, match=r"schedule\.job.*unknown variant `sink`"):
        ws.schedule("n", "0 * * * *", {"type": "sink"})
    with pytest.raises(segkit.InvalidArgumentError, match=r"\"yesterday\" is not RFC 3339"):
        ws.run_due("yesterday")
    with pytest.raises(segkit.InvalidArgumentError, match="poll_interval"):
        ws.serve_forever(poll_interval=0)
    assert ws.schedules() == []


def test_dry_run_lists_rendered_content_without_writing_the_ledger(welcome):
    ws = welcome
    rows = ws.dry_run_workflow("welcome", keys=[1, 3])
    assert [(r["entity_key"], r["step"], r["channel"], r["status"]) for r in rows] == [
        ("1", "send", "hook", "send"),
        ("3", "send", "hook", "send"),
    ]
    assert rows[0]["content"] == {"body": '{"email": "a@x.io"}'}
    assert len(ws.dry_run_workflow("welcome", keys=[1, 3], limit=1)) == 1
    assert ws.sql("SELECT count(*) AS n FROM segkit.deliveries").to_pylist() == [{"n": 0}]
    assert ws.deliveries() == []
    with pytest.raises(segkit.NotFoundError, match="nope"):
        ws.dry_run_workflow("nope")

    ws.evaluate("cn")
    assert status_counts(ws) == {"pending": 2}
    assert ws.dispatch_due()["delivered"] == 2
    assert status_counts(ws) == {"delivered": 2}


@pytest.mark.parametrize("stop", ["ctrl_c", "sigterm"])
def test_ctrl_c_or_sigterm_stops_serve_gracefully_and_leaves_no_row_running(welcome, stop):
    """serve_forever runs the due evaluation and dispatches; Ctrl-C or SIGTERM (arriving while a delivery hangs)
    stops it: the hanging deliveries get the grace period, then their claims are released back to pending and the
    report is returned instead of KeyboardInterrupt. SIGTERM's previous handler is back afterwards."""
    ws = welcome
    before = signal.getsignal(signal.SIGTERM)
    release = threading.Event()
    calls = []

    class Blocking:
        def execute(self, d):
            calls.append(d.entity_key)
            if len(calls) == 1:
                if stop == "ctrl_c":
                    _thread.interrupt_main()  # the operator presses Ctrl-C while a receiver hangs
                else:
                    os.kill(os.getpid(), signal.SIGTERM)  # the service manager stops the process
            release.wait(30)
            return segkit.Delivered()

    ws.register_action("slow", Blocking())
    ws.define_workflow(
        "welcome",
        trigger={"type": "entered", "segment": "cn"},
        steps=[{"type": "action", "name": "send", "action": "slow"}],
    )
    ws.schedule("hourly", "0 * * * *", {"type": "evaluate", "segment": "cn"})
    ws.set_clock(T0 + timedelta(hours=1))
    try:
        report = ws.serve_forever(poll_interval=0.05, grace=0.2)
    finally:
        release.set()
    assert signal.getsignal(signal.SIGTERM) is before
    assert report["jobs"] == 1 and report["failed_jobs"] == 0 and report["passes"] >= 1, report
    assert report["delivered"] == 0 and report["released"] == 2, report
    assert status_counts(ws) == {"pending": 2}
    assert all(r["attempts"] == 0 for r in ws.deliveries())
    # Another dispatcher sends them at once, without waiting for a lease to expire.
    assert ws.dispatch_due()["delivered"] == 2
    assert status_counts(ws) == {"delivered": 2}
