"""Workflows from Python: templates, workflows, the ledger and the dispatcher, against a real catalog, real
Parquet data and a real HTTP receiver on 127.0.0.1 (which verifies the HMAC signature and the Idempotency-Key
header itself); custom actions (sync and async) driven by the same dispatcher, retries and ledger; the action
conformance suite. Time is a fixed clock moved by hand."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

import segkit
from segkit.testing import check_action

T0 = datetime(2026, 6, 30, tzinfo=timezone.utc)
SECRET = "whsec-python-test"
# The dispatch report's counts of policies these tests do not use.
QUIET = {"capped": 0, "held": 0, "rate_limited": 0, "waiting": 0}


class Receiver:
    """A webhook receiver on 127.0.0.1 that checks what a real one checks: the signature over
    ``timestamp + "." + body`` and an Idempotency-Key; it answers ``statuses`` in turn, then 200."""

    def __init__(self, statuses=()):
        self.requests: list[dict] = []
        self.statuses = list(statuses)
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                sig = self.headers.get("X-Segkit-Signature", "")
                t, _, v1 = sig.removeprefix("t=").partition(",v1=")
                expected = hmac.new(SECRET.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
                record = {
                    "key": self.headers.get("Idempotency-Key"),
                    "body": json.loads(body),
                    "signature_ok": bool(v1) and hmac.compare_digest(v1, expected),
                }
                with receiver.lock:
                    receiver.requests.append(record)
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                if not record["signature_ok"] or not record["key"]:
                    status = 401
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def keys(self) -> list[str]:
        with self.lock:
            return [r["key"] for r in self.requests]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def flows(users, monkeypatch):
    """The `user` workspace with a `cn` segment (users 1 and 3) and a fixed clock."""
    monkeypatch.setenv("SEGKIT_PY_HOOK_SECRET", SECRET)
    users.set_clock(T0)
    users.define_segment("cn", entity="user", rule={"attribute": "country", "op": "eq", "value": "CN"})
    return users


def by_key(rows):
    return {r["entity_key"]: r for r in rows}


def manual(ws, name, action, *, template=None, policies=None):
    step = {"type": "action", "name": "send", "action": action}
    if template:
        step["template"] = template
    return ws.define_workflow(name, trigger={"type": "manual", "entity": "user"}, steps=[step], policies=policies)


def test_entered_workflow_sends_signed_webhooks_the_receiver_verifies(flows, receiver):
    ws = flows
    ws.register_action("hook", {"type": "webhook", "url": receiver.url, "secret": "env:SEGKIT_PY_HOOK_SECRET"})
    ws.define_template(
        "welcome",
        channel="webhook",
        entity="user",
        parts={"body": '{"user": "{{ key }}", "email": "{{ entity.email }}", "html": false}'},
    )
    wf = ws.define_workflow(
        "welcome",
        trigger={"type": "entered", "segment": "cn"},
        steps=[{"type": "action", "name": "send", "action": "hook", "template": "welcome"}],
    )
    assert wf["trigger"] == {"type": "entered", "segment": "cn"}
    assert [w["name"] for w in ws.workflows()] == ["welcome"]
    assert ws.workflow("welcome") == wf
    assert ws.template("welcome")["entity"] == "user"

    # The evaluation writes the ledger rows in the same transaction as the run; nothing is sent yet.
    run = ws.evaluate("cn")
    assert run.count == 2
    pending = ws.deliveries(workflow="welcome")
    assert sorted(r["entity_key"] for r in pending) == ["1", "3"]
    assert {r["status"] for r in pending} == {"pending"}
    assert receiver.requests == []

    report = ws.dispatch_due(limit=10, concurrency=2)
    assert report == {"claimed": 2, "delivered": 2, "done": 0, "retried": 0, "dead": 0, "suppressed": 0, **QUIET}
    rows = by_key(ws.deliveries(workflow="welcome", status="delivered"))
    assert set(rows) == {"1", "3"}
    assert all(r["receipt"] == "HTTP 200" and r["attempts"] == 1 for r in rows.values())
    # The receiver verified every signature, and got each ledger row's idempotency key with its body.
    assert all(r["signature_ok"] for r in receiver.requests)
    got = {r["key"]: r["body"] for r in receiver.requests}
    assert got == {
        rows["1"]["idempotency_key"]: {"user": "1", "email": "a@x.io", "html": False},
        rows["3"]["idempotency_key"]: {"user": "3", "email": "c@x.io", "html": False},
    }
    # Nothing is due any more; a second evaluation with the same members adds nobody.
    assert ws.dispatch_due()["claimed"] == 0
    ws.evaluate("cn")
    assert ws.dispatch_due()["claimed"] == 0
    assert len(receiver.requests) == 2
    # Deleting the workflow keeps its ledger.
    ws.delete_workflow("welcome")
    assert ws.workflows() == []
    assert len(ws.deliveries(workflow="welcome")) == 2
    with pytest.raises(segkit.NotFoundError):
        ws.workflow("welcome")


def test_receiver_errors_are_retried_with_the_same_key(flows):
    ws = flows
    receiver = Receiver(statuses=[503])
    try:
        # An inline action config in the step, built by the workspace's action factory (all built-in families).
        config = {"type": "webhook", "url": receiver.url, "secret": "env:SEGKIT_PY_HOOK_SECRET"}
        manual(ws, "ping", config, policies={"backoff_ms": 1000})
        assert ws.workflow("ping")["steps"][0]["action"] == config
        assert ws.trigger("ping", [2]) == 1
        assert ws.dispatch_due()["retried"] == 1
        (row,) = ws.deliveries(workflow="ping")
        assert row["status"] == "pending" and "503" in row["last_error"]
        assert ws.dispatch_due()["claimed"] == 0  # backing off
        ws.set_clock(T0 + timedelta(hours=1))
        assert ws.dispatch_due()["delivered"] == 1
        assert receiver.keys() == [row["idempotency_key"]] * 2
    finally:
        receiver.close()


def test_dispatch_backlog_claims_batch_after_batch_until_nothing_is_due(flows, receiver):
    ws = flows
    manual(ws, "ping", {"type": "webhook", "url": receiver.url, "secret": "env:SEGKIT_PY_HOOK_SECRET"})
    assert ws.trigger("ping") == 5
    # One pass claims one batch; the backlog claims batch after batch while each claim comes back full.
    assert ws.dispatch_due(limit=2, concurrency=2)["claimed"] == 2
    report = ws.dispatch_backlog(batch=2, concurrency=2)
    assert report == {"claimed": 3, "delivered": 3, "done": 0, "retried": 0, "dead": 0, "suppressed": 0, **QUIET}
    rows = ws.deliveries(workflow="ping")
    assert sorted(r["entity_key"] for r in rows) == ["1", "2", "3", "4", "5"]
    assert {r["status"] for r in rows} == {"delivered"}
    assert sorted(receiver.keys()) == sorted(r["idempotency_key"] for r in rows)
    assert all(r["signature_ok"] for r in receiver.requests)
    assert ws.dispatch_backlog()["claimed"] == 0
    for bad in ({"batch": 0}, {"concurrency": -1}, {"batch": True}, {"batch": 2**32}, {"concurrency": 1.5}):
        with pytest.raises(segkit.InvalidArgumentError, match="dispatch_backlog: (batch|concurrency) must be"):
            ws.dispatch_backlog(**bad)
    assert len(receiver.requests) == 5


class Flaky:
    """A sync custom action: fails `fail` times with a retryable outcome, then delivers."""

    parts = ["text"]

    def __init__(self, fail: int):
        self.fail = fail
        self.seen: list[segkit.Delivery] = []

    def execute(self, delivery: segkit.Delivery):
        self.seen.append(delivery)
        if self.fail > 0:
            self.fail -= 1
            return segkit.Retryable("receiver busy", retry_after=120)
        return segkit.Delivered(receipt=f"sent {delivery.entity_key}")


class AsyncFlaky:
    """An async custom action: raises on its first attempt (retryable by contract), then delivers."""

    def __init__(self):
        self.calls = 0
        self.threads: set[str] = set()

    async def execute(self, delivery):
        import asyncio

        await asyncio.sleep(0)
        self.threads.add(threading.current_thread().name)
        self.calls += 1
        if self.calls == 1:
            raise RuntimeError("connection reset")
        return {"status": "delivered", "receipt": f"async {delivery.idempotency_key[:6]}"}


def test_sync_custom_action_retries_then_delivers(flows):
    ws = flows
    action = Flaky(fail=1)
    ws.register_action("sms", action)
    ws.define_template("hi", channel="sms", entity="user", parts={"text": "Hi {{ entity.country }} {{ key }}"})
    manual(ws, "greet", "sms", template="hi")
    assert ws.trigger("greet", [1]) == 1
    assert ws.dispatch_due() == {"claimed": 1, "delivered": 0, "done": 0, "retried": 1, "dead": 0, "suppressed": 0, **QUIET}
    (row,) = ws.deliveries(workflow="greet")
    assert row["last_error"] == "receiver busy" and row["attempts"] == 1
    # retry_after (120 s) is honoured: nothing is due a minute later, it is two minutes later.
    ws.set_clock(T0 + timedelta(seconds=60))
    assert ws.dispatch_due()["claimed"] == 0
    ws.set_clock(T0 + timedelta(seconds=121))
    assert ws.dispatch_due()["delivered"] == 1
    (row,) = ws.deliveries(workflow="greet")
    assert (row["status"], row["attempts"], row["receipt"]) == ("delivered", 2, "sent 1")
    first, second = action.seen
    assert isinstance(first, segkit.Delivery)
    assert (first.idempotency_key, first.attempt, second.attempt) == (row["idempotency_key"], 1, 2)
    assert second.idempotency_key == first.idempotency_key
    assert first.part("text") == "Hi CN 1" and first.attributes["email"] == "a@x.io"
    assert (first.origin, first.step, first.channel, first.entity) == ("greet", "send", "sms", "user")


def test_async_custom_action_runs_on_segkits_loop_and_an_exception_is_retryable(flows):
    ws = flows
    action = AsyncFlaky()
    ws.register_action("push", action)
    manual(ws, "notify", "push", policies={"backoff_ms": 1000})
    ws.trigger("notify", ["2"])
    assert ws.dispatch_due()["retried"] == 1
    (row,) = ws.deliveries(workflow="notify")
    assert row["last_error"] == "execute() raised RuntimeError: connection reset"
    ws.set_clock(T0 + timedelta(hours=1))
    assert ws.dispatch_due()["delivered"] == 1
    (row,) = ws.deliveries(workflow="notify")
    assert row["receipt"] == f"async {row['idempotency_key'][:6]}"
    assert action.threads == {"segkit-actions"}


def test_permanent_failure_is_dead_lettered_then_replayed_with_the_same_key(flows):
    ws = flows
    outcomes = [segkit.Permanent("mailbox does not exist"), None, segkit.Delivered("ok")]
    keys = []

    class Mailer:
        def execute(self, d):
            keys.append(d.idempotency_key)
            return outcomes.pop(0)

    ws.register_action("mail", Mailer())
    manual(ws, "mailing", "mail")
    ws.trigger("mailing", [4])
    assert ws.dispatch_due()["dead"] == 1
    (dead,) = ws.deliveries(status="dead")
    assert dead["last_error"] == "permanent failure: mailbox does not exist"
    # Returning None is a bug in the action: a permanent failure that says what to return.
    assert ws.replay(ids=[dead["id"]]) == 1
    assert ws.dispatch_due()["dead"] == 1
    (dead,) = ws.deliveries(status="dead")
    assert "execute() returned NoneType" in dead["last_error"] and "segkit.Delivered()" in dead["last_error"]
    assert ws.replay(workflow="mailing") == 1
    assert ws.replay(workflow="mailing") == 0  # nothing dead any more
    assert ws.dispatch_due()["delivered"] == 1
    assert len(set(keys)) == 1 and len(keys) == 3
    assert ws.deliveries(status="dead") == []


def test_suppressed_keys_are_skipped_per_channel(flows):
    ws = flows
    action = Flaky(fail=0)
    ws.register_action("sms", action)
    manual(ws, "promo", "sms")
    assert ws.suppress("sms", [1, "3"]) == 2
    assert ws.suppress("sms", [1]) == 0
    assert ws.trigger("promo", [1, 2, 3]) == 3
    report = ws.dispatch_due()
    assert (report["delivered"], report["suppressed"]) == (1, 2)
    assert [d.entity_key for d in action.seen] == ["2"]
    assert {r["entity_key"]: r["status"] for r in ws.deliveries(workflow="promo")} == {
        "1": "suppressed",
        "2": "delivered",
        "3": "suppressed",
    }
    assert ws.unsuppress("sms", [1, 5]) == 1


def test_render_previews_one_entity_with_html_escaping(flows):
    ws = flows
    ws.define_template(
        "card",
        channel="email",
        entity="user",
        parts={"subject": "Hello {{ entity.country }}", "html": "<p>{{ entity.email ~ ' <&>' }}</p>"},
    )
    assert ws.render("card", 1) == {"subject": "Hello CN", "html": "<p>a@x.io &lt;&amp;&gt;</p>"}
    with pytest.raises(segkit.NotFoundError, match="with key 99"):
        ws.render("card", 99)
    with pytest.raises(segkit.NotFoundError):
        ws.render("nope", 1)


def test_bad_specs_name_the_field_path(flows):
    ws = flows
    ws.register_action("sms", Flaky(0))
    with pytest.raises(segkit.DefinitionError, match=r"template t\.parts\.text.*unknown attribute `countri`"):
        ws.define_template("t", channel="sms", entity="user", parts={"text": "{{ entity.countri }}"})
    with pytest.raises(segkit.DefinitionError, match=r"workflow w\.steps\[0\]\.action.*no action named `smss`"):
        manual(ws, "w", "smss")
    with pytest.raises(segkit.DefinitionError, match=r"unknown variant `entred`"):
        ws.define_workflow("w", trigger={"type": "entred", "segment": "cn"}, steps=[])
    with pytest.raises(segkit.DefinitionError, match=r"workflow\.policies\.max_attempts"):
        manual(ws, "w", "sms", policies={"max_attempts": "three"})
    with pytest.raises(segkit.DefinitionError, match=r"workflow w\.policies\.max_attempts"):
        manual(ws, "w", "sms", policies={"max_attempts": 0})
    with pytest.raises(segkit.DefinitionError, match=r"workflow w\.trigger\.segment"):
        ws.define_workflow("w", trigger={"type": "entered", "segment": "nope"}, steps=[{"type": "exit", "name": "e"}])
    with pytest.raises(segkit.DefinitionError, match=r"action\.url"):
        ws.register_action("bad", {"type": "webhook", "url": "not a url"})
    with pytest.raises(segkit.DefinitionError, match=r"action\.type.*did you mean `webhook`"):
        ws.register_action("bad", {"type": "webhok", "url": "http://127.0.0.1:1/"})
    with pytest.raises(segkit.InvalidArgumentError, match="execute"):
        ws.register_action("bad", object())

    class TooManyParts:
        parts = [f"p{i}" for i in range(segkit._segkit.MAX_ACTION_PARTS + 1)]

        def execute(self, d):
            return segkit.Delivered()

    with pytest.raises(segkit.DefinitionError, match="MAX_ACTION_PARTS"):
        ws.register_action("bad", TooManyParts())
    with pytest.raises(segkit.InvalidArgumentError, match="unknown delivery status `sent`"):
        ws.deliveries(status="sent")
    with pytest.raises(segkit.NotFoundError):
        ws.trigger("nope")
    assert ws.workflows() == []


class GoodAction:
    """Passes the conformance suite: delivers, accepts repeats, refuses a delivery without content for good."""

    parts = ["text"]

    def __init__(self):
        self.keys: list[str] = []

    async def execute(self, d):
        if d.part("text") is None:
            return segkit.Permanent("no text to send")
        self.keys.append(d.idempotency_key)
        return segkit.Delivered("ok")


def test_check_action_passes_good_actions_and_names_violations(receiver, monkeypatch):
    good = GoodAction()
    check_action(good, received=lambda: good.keys)
    check_action(
        good,
        segkit.Delivery("k-1", "o", "s", "sms", "user", "1", content={"text": "hi"}),
        received=lambda: good.keys,
    )
    assert good.keys.count("k-1") == 2

    class OnePart(GoodAction):
        parts = "text"  # one part as a plain string

    check_action(OnePart())

    # A built-in action by its config, against the real receiver (which checks the signature).
    monkeypatch.setenv("SEGKIT_PY_HOOK_SECRET", SECRET)
    check_action(
        {"type": "webhook", "url": receiver.url, "secret": "env:SEGKIT_PY_HOOK_SECRET"},
        secrets=[SECRET],
        received=receiver.keys,
    )

    class RetriesEmpty(GoodAction):
        async def execute(self, d):
            if d.part("text") is None:
                return segkit.Retryable("nothing to send yet")
            return segkit.Delivered()

    with pytest.raises(segkit.DefinitionError, match="without content must be delivered or permanent"):
        check_action(RetriesEmpty())

    class RefusesRepeats(GoodAction):
        def execute(self, d):
            return segkit.Delivered() if d.attempt == 1 else segkit.Permanent("duplicate")

    with pytest.raises(segkit.DefinitionError, match="re-executing the same idempotency key must be accepted"):
        check_action(RefusesRepeats())

    class Leaks(GoodAction):
        def execute(self, d):
            return segkit.Delivered(receipt="token=tok-999")

    with pytest.raises(segkit.DefinitionError, match=r"action python:.*Leaks: conformance: an outcome .* secret"):
        check_action(Leaks(), secrets=["tok-999"])

    class Slow(GoodAction):
        async def execute(self, d):
            import asyncio

            await asyncio.sleep(5)
            return segkit.Delivered()

    with pytest.raises(segkit.DefinitionError, match="did not return within 0.2 s"):
        check_action(Slow(), timeout=0.2)

    with pytest.raises(segkit.DefinitionError, match="never saw idempotency key"):
        check_action(GoodAction(), received=lambda: [])

    class Broken:
        def execute(self, d):
            raise ValueError("no route")

    with pytest.raises(segkit.DefinitionError, match=r"must be delivered, got retryable: execute\(\) raised ValueError: no route"):
        check_action(Broken())
    with pytest.raises(segkit.DefinitionError, match=r"delivery\.entity_key"):
        check_action(GoodAction(), {"idempotency_key": "k", "origin": "o", "entity": "u", "entity_key": 1, "attributes": {}})


def test_ctrl_c_interrupts_dispatch_and_the_lease_brings_the_delivery_back(flows):
    """Ctrl-C during dispatch_due raises KeyboardInterrupt at once, even while a custom action blocks; the claimed
    row keeps its lease and is sent again, with the same key, once the lease has expired."""
    import _thread

    ws = flows
    release = threading.Event()
    calls = []

    class Blocking:
        def execute(self, d):
            calls.append((d.idempotency_key, d.attempt))
            if len(calls) == 1:
                _thread.interrupt_main()  # the user presses Ctrl-C while the receiver hangs
                release.wait(30)
            return segkit.Delivered()

    ws.register_action("slow", Blocking())
    manual(ws, "hang", "slow")
    ws.trigger("hang", [1])
    with pytest.raises(KeyboardInterrupt):
        ws.dispatch_due()
    release.set()
    (row,) = ws.deliveries(workflow="hang")
    assert row["status"] == "running"
    assert ws.dispatch_due()["claimed"] == 0  # still leased
    ws.set_clock(T0 + timedelta(minutes=2))
    assert ws.dispatch_due()["delivered"] == 1
    assert calls == [(row["idempotency_key"], 1), (row["idempotency_key"], 2)]


def test_custom_actions_run_concurrently_up_to_the_dispatch_concurrency(flows):
    """Three deliveries with concurrency 3: each execute waits until all three have started (a barrier), which
    only completes if the dispatcher runs them at the same time — sync ones on worker threads, async ones on
    segkit's event loop."""
    import asyncio

    ws = flows
    barrier = threading.Barrier(3, timeout=20)

    class SyncBarrier:
        def execute(self, d):
            barrier.wait()
            return segkit.Delivered()

    class AsyncBarrier:
        def __init__(self):
            self.started = 0
            self.all_in: asyncio.Event | None = None

        async def execute(self, d):
            if self.all_in is None:
                self.all_in = asyncio.Event()
            self.started += 1
            if self.started == 3:
                self.all_in.set()
            await asyncio.wait_for(self.all_in.wait(), 20)
            return segkit.Delivered()

    for name, action in [("sync_barrier", SyncBarrier()), ("async_barrier", AsyncBarrier())]:
        ws.register_action(name, action)
        manual(ws, name, name)
        ws.trigger(name, [1, 2, 3])
        assert ws.dispatch_due(concurrency=3)["delivered"] == 3, name
