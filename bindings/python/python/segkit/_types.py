"""Typed, frozen views of segkit's definitions and reports."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Mapping

EntityKind = Literal["profile", "event"]
IngestMode = Literal["append", "upsert", "full_refresh"]


@dataclass(frozen=True)
class Attribute:
    """A typed attribute of an entity. ``type`` is ``string``, ``int32``, ``int64``, ``float64``, ``bool``,
    ``date``, ``timestamp``, ``json`` or ``list<T>``."""

    name: str
    type: str
    nullable: bool = True
    filterable: bool = True
    pii: bool = False
    indexed: bool = False
    description: str | None = None

    @classmethod
    def _from_dict(cls, d: Mapping[str, Any]) -> Attribute:
        return cls(
            name=d["name"],
            type=d["type"],
            nullable=d.get("nullable", True),
            filterable=d.get("filterable", True),
            pii=d.get("pii", False),
            indexed=d.get("indexed", False),
            description=d.get("description"),
        )

    def to_dict(self) -> dict[str, Any]:
        """segkit's JSON form."""
        d: dict[str, Any] = {"name": self.name, "type": self.type}
        if not self.nullable:
            d["nullable"] = False
        if not self.filterable:
            d["filterable"] = False
        if self.pii:
            d["pii"] = True
        if self.indexed:
            d["indexed"] = True
        if self.description is not None:
            d["description"] = self.description
        return d


@dataclass(frozen=True)
class Link:
    """A relationship ``attribute → entity.target`` (target defaults to the entity's key)."""

    attribute: str
    entity: str
    target: str | None = None

    @classmethod
    def _from_dict(cls, d: Mapping[str, Any]) -> Link:
        return cls(attribute=d["attribute"], entity=d["entity"], target=d.get("target"))

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"attribute": self.attribute, "entity": self.entity}
        if self.target is not None:
            d["target"] = self.target
        return d


@dataclass(frozen=True)
class Entity:
    """An entity definition as stored in the catalog."""

    name: str
    kind: EntityKind
    key: str | None
    attributes: tuple[Attribute, ...]
    timestamp: str | None = None
    links: tuple[Link, ...] = ()
    description: str | None = None

    @classmethod
    def _from_dict(cls, d: Mapping[str, Any]) -> Entity:
        return cls(
            name=d["name"],
            kind=d.get("kind", "profile"),
            key=d.get("key"),
            attributes=tuple(Attribute._from_dict(a) for a in d.get("attributes", [])),
            timestamp=d.get("timestamp"),
            links=tuple(Link._from_dict(x) for x in d.get("links", [])),
            description=d.get("description"),
        )

    def attribute(self, name: str) -> Attribute:
        """The attribute called ``name``."""
        for a in self.attributes:
            if a.name == name:
                return a
        raise KeyError(name)

    @property
    def attribute_names(self) -> list[str]:
        return [a.name for a in self.attributes]

    def to_dict(self) -> dict[str, Any]:
        """segkit's JSON form."""
        d: dict[str, Any] = {"name": self.name, "kind": self.kind, "attributes": [a.to_dict() for a in self.attributes]}
        if self.key is not None:
            d["key"] = self.key
        if self.timestamp is not None:
            d["timestamp"] = self.timestamp
        if self.links:
            d["links"] = [x.to_dict() for x in self.links]
        if self.description is not None:
            d["description"] = self.description
        return d


@dataclass(frozen=True)
class Segment:
    """A segment definition. ``rule`` is in segkit's own dialect, whatever dialect it was defined in."""

    name: str
    entity: str
    rule: Any
    description: str | None = None
    split: Any = None

    @classmethod
    def _from_dict(cls, d: Mapping[str, Any]) -> Segment:
        return cls(
            name=d["name"], entity=d["entity"], rule=d["rule"], description=d.get("description"), split=d.get("split")
        )


@dataclass(frozen=True)
class QuarantinedRow:
    """One quarantined row: its 1-based source row number and why."""

    row: int
    reason: str


@dataclass(frozen=True)
class IngestReport:
    """What one ingest did."""

    id: str
    entity: str
    source: str
    mode: IngestMode
    rows_read: int
    rows_written: int
    rows_inserted: int
    rows_updated: int
    rows_quarantined: int
    snapshot: int | None
    quarantine_file: str | None
    quarantine_sample: tuple[QuarantinedRow, ...]
    ignored_fields: tuple[str, ...]
    duration_ms: float

    @classmethod
    def _from_dict(cls, d: Mapping[str, Any]) -> IngestReport:
        return cls(
            id=d["id"],
            entity=d["entity"],
            source=d["source"],
            mode=d["mode"],
            rows_read=d["rows_read"],
            rows_written=d["rows_written"],
            rows_inserted=d["rows_inserted"],
            rows_updated=d["rows_updated"],
            rows_quarantined=d["rows_quarantined"],
            snapshot=d.get("snapshot"),
            quarantine_file=d.get("quarantine_file"),
            quarantine_sample=tuple(QuarantinedRow(row=q["row"], reason=q["reason"]) for q in d.get("quarantine_sample", [])),
            ignored_fields=tuple(d.get("ignored_fields", [])),
            duration_ms=float(d.get("duration_ms", 0.0)),
        )


def _parse_instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@dataclass(frozen=True)
class EntityDependents:
    """What depends on an entity (:meth:`Workspace.entity_dependents`), or what was deleted along with it
    (:meth:`Workspace.delete_entity`): segment, source, workflow and template names, and the entities linking to
    it."""

    segments: tuple[str, ...]
    sources: tuple[str, ...]
    workflows: tuple[str, ...]
    templates: tuple[str, ...]
    linked_from: tuple[str, ...]

    def __bool__(self) -> bool:
        return any((self.segments, self.sources, self.workflows, self.templates, self.linked_from))

    @classmethod
    def _from_dict(cls, d: Mapping[str, Any]) -> EntityDependents:
        return cls(**{f: tuple(d.get(f, ())) for f in ("segments", "sources", "workflows", "templates", "linked_from")})


@dataclass(frozen=True)
class SyncRecord:
    """One recorded sync or ingest (:meth:`Workspace.syncs`, the ``segkit.syncs`` system table): the named
    source it synced (``None`` for a direct ingest), when it was recorded (RFC 3339) and its report."""

    named_source: str | None
    created_at: str
    report: IngestReport

    @classmethod
    def _from_dict(cls, d: Mapping[str, Any]) -> SyncRecord:
        return cls(named_source=d.get("named_source"), created_at=d["created_at"], report=IngestReport._from_dict(d))


__all__ = [
    "Attribute",
    "Entity",
    "EntityDependents",
    "EntityKind",
    "IngestMode",
    "IngestReport",
    "Link",
    "QuarantinedRow",
    "Segment",
    "SyncRecord",
]


@dataclass(frozen=True)
class StaticListReport:
    """What a change of a static segment's key list did."""

    segment: str
    version: int
    operation: Literal["replace", "add", "remove"]
    keys_read: int
    key_count: int
    matched: int
    unmatched: int

    @classmethod
    def _from_dict(cls, d: Mapping[str, Any]) -> StaticListReport:
        return cls(**{k: d[k] for k in ("segment", "version", "operation", "keys_read", "key_count", "matched", "unmatched")})
