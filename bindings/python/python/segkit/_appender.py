"""Group-commit appends to an event entity: :class:`Appender`, from :meth:`segkit.Workspace.appender`."""

from __future__ import annotations

from types import TracebackType
from typing import Any

from segkit import _segkit


class Appender:
    """Appends small batches of events to one event entity with group commit (core's
    ``segkit::appender::Appender``): appends waiting while the writer commits the previous group are committed
    together as ONE ingest — one Parquet file, one catalog commit — and small files are compacted after each
    commit.

    :meth:`append` converts and queues its data without waiting; :meth:`flush` waits (GIL released) until every
    append queued so far is committed and returns their receipts; :meth:`close` flushes and closes. Use it as a
    context manager to close it on the way out::

        with ws.appender("click") as a:
            for page in pages:
                a.append(page)               # a list of dicts, or pyarrow / polars / any Arrow PyCapsule data
        # every append is committed here

    Rows given as dicts are decoded strictly against the entity (integers without a fraction, timestamps as
    RFC 3339 text, the key and timestamp present); the first bad value raises :class:`InvalidArgumentError`
    naming its path (``rows[3].amount``). One append holds at most ``MAX_EVENT_BATCH`` rows; at most
    ``MAX_APPEND_QUEUE`` appends are in flight (one more waits for the oldest).
    """

    __slots__ = ("_a",)

    def __init__(self, native: _segkit.Appender) -> None:
        self._a = native

    @property
    def entity(self) -> str:
        """The event entity appended to."""
        return self._a.entity

    @property
    def pending(self) -> int:
        """Appends queued and not yet flushed."""
        return self._a.pending

    def append(self, data: Any) -> None:
        """Queues ``data`` — a list of dicts (one per event) or Arrow data (``pyarrow.Table`` /
        ``RecordBatch``, a polars ``DataFrame``, anything with ``__arrow_c_stream__`` / ``__arrow_c_array__``) —
        for the next group commit. Bad rows raise here; a failed commit raises from :meth:`flush`."""
        self._a.append(data)

    def flush(self) -> list[dict[str, Any]]:
        """Waits until every queued append is committed; returns one receipt per append, in order: ``entity``,
        ``rows``, ``snapshot``, ``ingest_id`` and ``group_rows`` / ``group_appends`` / ``group_quarantined`` of the
        group commit that held it. Raises the first error among them (a failed group commits none of its rows)."""
        return list(self._a.flush())

    def close(self) -> list[dict[str, Any]]:
        """Flushes (see :meth:`flush`) and closes: later appends raise :class:`InvalidArgumentError`. Closing
        again returns an empty list."""
        return list(self._a.close())

    def __enter__(self) -> Appender:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.close()
            return
        # Leaving on an exception: still wait for what was queued, but let the original exception propagate.
        try:
            self.close()
        except _segkit.SegkitError:
            pass

    def __repr__(self) -> str:
        return f"segkit.Appender({self.entity!r}, pending={self.pending})"


__all__ = ["Appender"]
