"""Conformance checks for sources and actions written in Python (or anything ``Workspace.ingest`` /
``Workspace.register_action`` accepts).

A source is an object with ``schema()`` — returning an Arrow schema (``pyarrow.Schema`` or any
``__arrow_c_schema__`` exporter) — and ``scan()`` — returning Arrow data (any ``__arrow_c_stream__`` /
``__arrow_c_array__`` exporter) or an iterable of such pieces, for example a generator over the pages of an
HTTP API — and optionally a ``name``. Run the same checks segkit's Rust connectors pass::

    from segkit.testing import check_source
    check_source(MyApiSource(fixture))   # raises segkit.IngestError("... conformance: ...") on a violation

An action is a custom action object (``execute(delivery)``, sync or async) or a built-in config dict. Run the
checks segkit's built-in actions pass, against a receiver that accepts deliveries::

    from segkit.testing import check_action
    check_action(MyAction(url), secrets=[token], received=lambda: receiver.keys)
    # raises segkit.DefinitionError("invalid definition of action ...: conformance: ...") on a violation
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping

from segkit._actions import Delivery, _declared
from segkit._segkit import check_action as _check_action
from segkit._segkit import check_source as _check_source

__all__ = ["check_action", "check_source"]


def check_source(source: Any) -> None:
    """Checks that ``source`` has a stable non-empty name, a stable schema, scans that match the schema, and
    repeatable scans. Give it a source over a small fixture with at least one row."""
    _check_source(source)


def check_action(
    action: Any,
    delivery: Delivery | Mapping[str, Any] | None = None,
    *,
    secrets: Iterable[str] = (),
    timeout: float = 30.0,
    received: Callable[[], Iterable[str]] | None = None,
) -> None:
    """Runs segkit's action conformance suite (``segkit::testing::action_conformance``) on ``action``:

    - its declarations are sane (distinct ``parts``, a positive finite ``max_rate_per_second``);
    - ``delivery`` (default: a generic one filling every declared part) is delivered within ``timeout`` seconds,
      without an exception escaping as anything but a reasoned outcome;
    - executing it again with the same idempotency key (attempt 2, as after a crash) is delivered too;
    - a delivery without content is delivered or permanent, never retryable;
    - no value of ``secrets`` shows in the action's repr (built-in actions) or in any reason or receipt;
    - with ``received`` (a callable listing the idempotency keys the receiver saw), the key reached it.

    Raises :class:`segkit.DefinitionError` naming the first violation. The receiver must accept deliveries."""
    parts, rate = _declared(action)
    if isinstance(action, Mapping):
        action = dict(action)
    if isinstance(delivery, Delivery):
        delivery = delivery.to_dict()
    keys = None if received is None else (lambda: [str(k) for k in received()])
    _check_action(
        action,
        parts,
        rate,
        None if delivery is None else dict(delivery),
        list(secrets),
        float(timeout),
        keys,
    )
