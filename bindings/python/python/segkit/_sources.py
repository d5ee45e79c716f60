"""Named sources and sync progress: :class:`NamedSource`, :class:`SyncProgress` and the progress displays."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping, TextIO, Union

from segkit._types import IngestMode


@dataclass(frozen=True)
class NamedSource:
    """A named source: its definition (``config`` holds secrets as ``env:NAME`` references only) and its sync
    state (the committed ``cursor`` and the ``snapshot`` the last committing sync produced)."""

    name: str
    entity: str
    config: dict[str, Any]
    mapping: dict[str, Any]
    mode: IngestMode | None
    cursor: Any
    snapshot: int | None
    updated_at: str | None

    @classmethod
    def _from_dict(cls, d: Mapping[str, Any]) -> NamedSource:
        return cls(
            name=d["name"],
            entity=d["entity"],
            config=dict(d["config"]),
            mapping=dict(d.get("mapping") or {}),
            mode=d.get("mode"),
            cursor=d.get("cursor"),
            snapshot=d.get("snapshot"),
            updated_at=d.get("updated_at"),
        )


@dataclass(frozen=True)
class SyncProgress:
    """How far a sync has got: records read and rejected (quarantined) so far, Arrow bytes read, batches,
    elapsed milliseconds, and ``done`` on the last call (every record read; the commit follows)."""

    rows_read: int
    rows_rejected: int
    bytes_read: int
    batches: int
    elapsed_ms: float
    done: bool

    @property
    def rows_per_second(self) -> float:
        return self.rows_read / (self.elapsed_ms / 1000.0) if self.elapsed_ms > 0 else 0.0

    @classmethod
    def _from_dict(cls, d: Mapping[str, Any]) -> SyncProgress:
        return cls(
            rows_read=d["rows_read"],
            rows_rejected=d["rows_rejected"],
            bytes_read=d["bytes_read"],
            batches=d["batches"],
            elapsed_ms=float(d["elapsed"]),
            done=bool(d["done"]),
        )


ProgressSpec = Union[bool, None, Callable[[SyncProgress], Any]]
"""``True``: a progress bar (tqdm — its notebook widget in Jupyter — if installed, else a line on stderr);
``False`` / ``None``: none; a callable: called with each :class:`SyncProgress`."""


def _human_bytes(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


class LineProgress:
    """A one-line progress display on a text stream (stderr by default): redrawn in place with ``\\r`` on a
    terminal, one line per update (at most every 2 s) elsewhere (logs, notebooks without tqdm)."""

    def __init__(self, label: str, stream: TextIO | None = None) -> None:
        self._label = label
        self._stream = stream if stream is not None else sys.stderr
        self._tty = bool(getattr(self._stream, "isatty", lambda: False)())
        self._last = 0.0

    def __call__(self, p: SyncProgress) -> None:
        now = time.monotonic()
        if not self._tty and not p.done and now - self._last < 2.0:
            return
        self._last = now
        line = (
            f"{self._label}: {p.rows_read:,} rows ({p.rows_rejected:,} rejected), {_human_bytes(p.bytes_read)}, "
            f"{p.rows_per_second:,.0f} rows/s"
        )
        if self._tty:
            self._stream.write("\r" + line + ("\n" if p.done else ""))
        else:
            self._stream.write(line + "\n")
        self._stream.flush()

    def close(self) -> None:
        pass


class TqdmProgress:
    """A tqdm bar (``tqdm.auto``: a widget in notebooks, text in terminals) counting rows."""

    def __init__(self, label: str) -> None:
        from tqdm.auto import tqdm  # type: ignore[import-not-found]

        self._bar = tqdm(desc=label, unit=" rows", unit_scale=True, leave=True)

    def __call__(self, p: SyncProgress) -> None:
        self._bar.update(p.rows_read - self._bar.n)
        self._bar.set_postfix(rejected=p.rows_rejected, data=_human_bytes(p.bytes_read), refresh=False)

    def close(self) -> None:
        self._bar.close()


def progress_display(label: str) -> LineProgress | TqdmProgress:
    """The best available display: tqdm if importable, else :class:`LineProgress` on stderr."""
    try:
        return TqdmProgress(label)
    except ImportError:
        return LineProgress(label)


__all__ = ["LineProgress", "NamedSource", "ProgressSpec", "SyncProgress", "TqdmProgress", "progress_display"]
