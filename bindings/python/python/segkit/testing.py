"""Conformance checks for sources written in Python (or any source ``Workspace.ingest`` accepts).

A source is an object with ``schema()`` — returning an Arrow schema (``pyarrow.Schema`` or any
``__arrow_c_schema__`` exporter) — and ``scan()`` — returning Arrow data (any ``__arrow_c_stream__`` /
``__arrow_c_array__`` exporter) or an iterable of such pieces, for example a generator over the pages of an
HTTP API — and optionally a ``name``. Run the same checks segkit's Rust connectors pass::

    from segkit.testing import check_source
    check_source(MyApiSource(fixture))   # raises segkit.IngestError("... conformance: ...") on a violation
"""

from __future__ import annotations

from typing import Any

from segkit._segkit import check_source as _check_source

__all__ = ["check_source"]


def check_source(source: Any) -> None:
    """Checks that ``source`` has a stable non-empty name, a stable schema, scans that match the schema, and
    repeatable scans. Give it a source over a small fixture with at least one row."""
    _check_source(source)
