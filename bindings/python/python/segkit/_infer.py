"""Type inference for a quick start: propose an entity from a sample of a source."""

from __future__ import annotations

from typing import Any

from segkit._segkit import infer_entity as _infer_entity

__all__ = ["infer_entity"]


def infer_entity(source: Any, name: str, *, key: str | None = None, sample_rows: int = 10_000) -> dict[str, Any]:
    """Reads up to ``sample_rows`` rows of ``source`` (a path, a source config dict such as
    ``{"type": "csv", "path": "customers.csv", "encoding": "gbk"}``, Arrow data or a source object) and *proposes*
    an entity named ``name``. Nothing is defined: check and edit the proposal, then::

        p = segkit.infer_entity(config, "customer")
        e = p["entity"]
        ws.define_entity(e["name"], key=e["key"], attributes={a["name"]: a["type"] for a in e["attributes"]})
        ws.ingest("customer", config, mapping=p["mapping"])

    Returns ``{"entity": {name, kind, key, attributes: [{name, type}, ...]}, "mapping": {attribute: field},
    "fields": [{source, attribute, type, nulls, unique}, ...], "sampled_rows": n, "notes": [...]}``. Field names
    that are not valid attribute names (spaces, punctuation, duplicates) get sanitised names, listed in
    ``mapping``; Unicode names such as ``客户编号`` are kept as they are."""
    return _infer_entity(source, name, key, sample_rows)
