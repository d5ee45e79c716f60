"""Custom actions written in Python: the :class:`Delivery` they receive, the outcomes they return
(:class:`Delivered`, :class:`Retryable`, :class:`Permanent`), and the bridge the native dispatcher calls.

A custom action is any object with ``execute(delivery)`` — a plain method or ``async def`` — registered with
:meth:`segkit.Workspace.register_action`. The dispatcher calls it from a worker thread (sync methods hold the
GIL while they run Python code; release it in I/O as usual); coroutines run on one event loop segkit keeps in a
daemon thread, so ``aiohttp``/``httpx.AsyncClient`` objects created inside ``execute`` belong to that loop.

What ``execute`` returns decides the ledger row:

- :class:`Delivered` (``receipt`` optional) → ``delivered``;
- :class:`Retryable` (``reason``, ``retry_after`` seconds optional) → retried with backoff, dead after the last
  attempt;
- :class:`Permanent` (``reason``) → dead-lettered at once (``replay`` sends it again);
- a dict of the same shape (``{"status": "delivered" | "retryable" | "permanent", …}``) works too;
- **an exception counts as retryable** with ``"execute() raised <Type>: <message>"`` as the reason (keep personal
  data out of exception messages: reasons are stored in the ledger);
- anything else (``None`` included) is a permanent failure saying what was expected: retrying the same code
  cannot fix it.

A coroutine that has not finished after 30 seconds is cancelled and the attempt counts as retryable.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import os
import threading
from dataclasses import dataclass, field
from typing import Any, Awaitable, Mapping, Protocol, Union, runtime_checkable


@dataclass(frozen=True)
class Delivery:
    """One delivery to perform. ``idempotency_key`` is the same on every attempt and after a replay: pass it to
    the receiver so it can drop duplicates (dispatch is at-least-once)."""

    idempotency_key: str
    origin: str
    step: str
    channel: str
    entity: str
    entity_key: str
    attributes: dict[str, Any] = field(default_factory=dict)
    content: dict[str, str] = field(default_factory=dict)
    attempt: int = 1

    def part(self, name: str) -> str | None:
        """The rendered template part ``name`` (``subject``, ``text``, ``html``, ``body``…), if any."""
        return self.content.get(name)

    @classmethod
    def _from_dict(cls, d: Mapping[str, Any]) -> Delivery:
        return cls(
            idempotency_key=d["idempotency_key"],
            origin=d["origin"],
            step=d.get("step", ""),
            channel=d.get("channel", ""),
            entity=d["entity"],
            entity_key=d["entity_key"],
            attributes=dict(d.get("attributes") or {}),
            content=dict(d.get("content") or {}),
            attempt=int(d.get("attempt", 1)),
        )

    def to_dict(self) -> dict[str, Any]:
        """The delivery as a plain dict (core's field names), e.g. for :func:`segkit.testing.check_action`."""
        return {
            "idempotency_key": self.idempotency_key,
            "origin": self.origin,
            "step": self.step,
            "channel": self.channel,
            "entity": self.entity,
            "entity_key": self.entity_key,
            "attributes": dict(self.attributes),
            "content": dict(self.content),
            "attempt": self.attempt,
        }


@dataclass(frozen=True)
class Delivered:
    """The receiver accepted the delivery; ``receipt`` is its reference (a message id, ``HTTP 202``…)."""

    receipt: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The outcome dict core parses."""
        return {"status": "delivered", "receipt": self.receipt}


@dataclass(frozen=True)
class Retryable:
    """Failed, may succeed later (429, 503, a timeout); ``retry_after`` in seconds when the receiver said."""

    reason: str
    retry_after: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """The outcome dict core parses."""
        return {"status": "retryable", "reason": self.reason, "retry_after": self.retry_after}


@dataclass(frozen=True)
class Permanent:
    """Failed for good (an invalid address, a rejected payload): dead-lettered without further attempts."""

    reason: str

    def to_dict(self) -> dict[str, Any]:
        """The outcome dict core parses."""
        return {"status": "permanent", "reason": self.reason}


Outcome = Union[Delivered, Retryable, Permanent]


@runtime_checkable
class Action(Protocol):
    """A custom action: ``execute(delivery)`` (sync or ``async``) returning an :data:`Outcome`. Optional
    attributes: ``parts`` (the template parts it reads; core's ``Action::parts``, which the conformance suite fills
    in its sample delivery) and ``max_rate_per_second`` (the receiver's limit; core's
    ``Action::max_rate_per_second``)."""

    def execute(self, delivery: Delivery) -> Outcome | Awaitable[Outcome]: ...


_loop_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_loop_pid: int | None = None


def _event_loop() -> asyncio.AbstractEventLoop:
    """The event loop coroutine actions run on: one per process, in a daemon thread (made again after fork)."""
    global _loop, _loop_pid
    with _loop_lock:
        if _loop is None or _loop_pid != os.getpid() or _loop.is_closed():
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="segkit-actions", daemon=True).start()
            _loop, _loop_pid = loop, os.getpid()
        return _loop


def _declared(action: Any) -> tuple[list[str] | None, float | None]:
    """``parts`` and ``max_rate_per_second`` of a custom action (attributes or methods), if it declares them."""
    if isinstance(action, Mapping):
        return None, None
    parts = getattr(action, "parts", None)
    parts = parts() if callable(parts) else parts
    if isinstance(parts, str):
        parts = [parts]
    rate = getattr(action, "max_rate_per_second", None)
    rate = rate() if callable(rate) else rate
    return (None if parts is None else [str(p) for p in parts]), rate


async def _await(awaitable: Awaitable[Any]) -> Any:
    return await awaitable


def _outcome(result: Any) -> dict[str, Any]:
    if isinstance(result, (Delivered, Retryable, Permanent)):
        return result.to_dict()
    if isinstance(result, Mapping):
        return dict(result)
    return {
        "status": "permanent",
        "reason": f"execute() returned {type(result).__name__}; return segkit.Delivered(), segkit.Retryable(reason) "
        "or segkit.Permanent(reason)",
    }


def _execute(action: Any, delivery: Mapping[str, Any], timeout: float) -> dict[str, Any]:
    """Called by the native dispatcher on a worker thread: runs ``action.execute`` and returns the outcome dict
    core parses (``Outcome::from_json``)."""
    try:
        result = action.execute(Delivery._from_dict(delivery))
        if inspect.isawaitable(result):
            coro = result if inspect.iscoroutine(result) else _await(result)
            future = asyncio.run_coroutine_threadsafe(coro, _event_loop())
            try:
                result = future.result(timeout)
            except concurrent.futures.TimeoutError:
                future.cancel()
                return {"status": "retryable", "reason": f"execute() did not finish within {timeout:g} s"}
        return _outcome(result)
    except Exception as e:  # noqa: BLE001 - an exception in user code is a retryable failure, by contract
        return {"status": "retryable", "reason": f"execute() raised {type(e).__name__}: {e}"}


__all__ = ["Action", "Delivered", "Delivery", "Outcome", "Permanent", "Retryable"]
