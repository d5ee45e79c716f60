"""The typed Python API over the native module."""

from __future__ import annotations

import os
import signal
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable, Mapping, Protocol, Sequence, Union, runtime_checkable

from segkit import _segkit
from segkit._actions import _declared
from segkit._appender import Appender
from segkit._sources import NamedSource, ProgressSpec, SyncProgress, progress_display
from segkit._table import Table
from segkit._types import (
    Attribute,
    Entity,
    EntityDependents,
    EntityKind,
    IngestMode,
    IngestReport,
    Link,
    Segment,
    StaticListReport,
    SyncRecord,
    _parse_instant,
)

AttributeSpec = Union[str, Mapping[str, Any], Attribute]
"""An attribute given as a type string (``"int64"``, ``"list<string>"``), a dict with ``type`` and flags
(``pii``, ``nullable``, ``indexed``, ``filterable``, ``description``), or an :class:`Attribute`."""

LinkSpec = Union[Mapping[str, str], Link]
RuleSpec = Union[Mapping[str, Any], Sequence[Any], str]
"""A rule as a dict/list, or as JSON text."""

SourceSpec = Any
"""A path or URL (``str`` / ``os.PathLike``), a connector config ``dict`` tagged by ``type``, any object
implementing ``__arrow_c_stream__`` / ``__arrow_c_array__`` (pyarrow, polars, pandas >= 2.2, nanoarrow…), or a
:class:`Source`."""


@runtime_checkable
class Source(Protocol):
    """A source written in Python: ``schema()`` returns an Arrow schema (``pyarrow.Schema`` or any
    ``__arrow_c_schema__`` exporter); ``scan()`` returns Arrow data (any ``__arrow_c_stream__`` /
    ``__arrow_c_array__`` exporter) or an iterable of such pieces — a generator over the pages of an HTTP API,
    say. An optional ``name`` attribute names it in reports and errors. Check one with
    :func:`segkit.testing.check_source`."""

    def schema(self) -> Any: ...

    def scan(self) -> Any: ...

def _plain(x: Any) -> Any:
    """:class:`Attribute` / :class:`Link` objects as their dicts; everything else as given (core parses it)."""
    return x.to_dict() if isinstance(x, (Attribute, Link)) else x


def _spec(**fields: Any) -> dict[str, Any]:
    """The fields that were given (None means "not given")."""
    return {k: v for k, v in fields.items() if v is not None}


def _instant(instant: str | datetime) -> str:
    if isinstance(instant, datetime):
        if instant.tzinfo is None:  # naive datetimes are taken as UTC
            instant = instant.replace(tzinfo=timezone.utc)
        return instant.isoformat()
    return instant


class SegmentRun:
    """The result of :meth:`Workspace.evaluate`: members (sorted keys) and who entered and exited since the
    previous run."""

    __slots__ = ("_run",)

    def __init__(self, native: _segkit.SegmentRun) -> None:
        self._run = native

    @property
    def segment(self) -> str:
        return self._run.segment

    @property
    def run(self) -> int:
        """Run number (1 for the first evaluation)."""
        return self._run.run

    @property
    def count(self) -> int:
        """Number of members."""
        return self._run.count

    @property
    def duration_ms(self) -> float:
        return self._run.duration_ms

    @property
    def snapshot(self) -> int:
        """The entity snapshot evaluated."""
        return self._run.snapshot

    @property
    def started_at(self) -> datetime:
        """When the evaluation started, by the workspace clock."""
        return _parse_instant(self._run.started_at)

    @property
    def entered(self) -> Table:
        """Keys that are members now and were not in the previous run."""
        return Table(self._run.entered)

    @property
    def exited(self) -> Table:
        """Keys that were members in the previous run and are not now."""
        return Table(self._run.exited)

    def members(self) -> Table:
        """Member keys, ascending."""
        return Table(self._run.members())

    def __repr__(self) -> str:
        return repr(self._run)


@dataclass(frozen=True)
class Explanation:
    """Why one entity is or is not a member of a segment. ``root`` is the annotated rule tree: nested dicts with
    ``label``, ``value`` (True / False / None), ``detail`` and ``children``."""

    segment: str
    key: str
    member: bool
    root: dict[str, Any]
    text: str

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class DryRun:
    """What evaluating an edited segment would do (nothing is saved)."""

    count: int
    members: Table
    would_enter: Table
    would_exit: Table
    against_run: int | None


@dataclass(frozen=True)
class MembersPage:
    """One page of a run's stored member keys (see :meth:`Workspace.members_page`): ``members`` in stored
    order, the ``run`` read (pass it back to keep paging the same run) and whether rows follow (``more``)."""

    run: int
    members: Table
    more: bool


class Workspace:
    """A segkit workspace: a directory (or store URL) with a catalog, entity data and segment memberships.

    Every method that does I/O releases the GIL, and Ctrl-C interrupts it.
    """

    __slots__ = ("_ws",)

    def __init__(self, native: _segkit.Workspace) -> None:
        self._ws = native

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        *,
        store_url: str | None = None,
        store_options: Mapping[str, str] | None = None,
        durable_commits: bool = False,
        delivery_window: int | None = None,
        lease: float | timedelta | None = None,
        ingest_memory: int | None = None,
    ) -> Workspace:
        """Opens (creating if needed) the workspace in directory ``path``. ``store_url`` keeps entity data
        elsewhere (``s3://bucket/prefix``); ``store_options`` configure it (secrets as ``env:NAME``).
        ``durable_commits``: every catalog commit waits until it is on disk and every Parquet file it references
        is synced first, so a power loss cannot undo a commit (default: commits survive a crash of the process,
        not of the machine).

        ``delivery_window``: the most claimed deliveries a dispatch processes at once, so the most a killed
        process may send again (1 to ``MAX_DELIVERY_WINDOW`` = 65,536; default ``2 × concurrency``, at least 1,024 with
        ``durable_commits``; see :meth:`delivery_window`). ``lease``: how long a dispatcher's claim on a delivery
        lasts, in seconds or a ``timedelta`` (default 60 s, at least 0.2 s, at most a day; every process sharing the workspace
        should use the same). ``ingest_memory``: bytes an ingest sorts in memory before it spills to temporary
        files (default 64 MiB, at least 16 MiB)."""
        for what, n, low, high in (
            ("delivery_window", delivery_window, 1, _segkit.MAX_DELIVERY_WINDOW),
            ("ingest_memory", ingest_memory, 1, 2**63 - 1),
        ):
            if n is not None and (isinstance(n, bool) or not isinstance(n, int) or not low <= n <= high):
                raise _segkit.InvalidArgumentError(f"Workspace.open: {what} must be a whole number from {low} to {high}, got {n!r}")
        if isinstance(lease, timedelta):
            lease = lease.total_seconds()
        if lease is not None and (isinstance(lease, bool) or not isinstance(lease, (int, float))):
            raise _segkit.InvalidArgumentError(f"Workspace.open: lease must be seconds or a timedelta, got {lease!r}")
        return cls(
            _segkit.Workspace.open(
                os.fspath(path),
                store_url,
                dict(store_options) if store_options else None,
                bool(durable_commits),
                delivery_window,
                None if lease is None else float(lease),
                ingest_memory,
            )
        )

    def delivery_window(self, concurrency: int = 8) -> int:
        """How many claimed deliveries a dispatch with ``concurrency`` send slots processes at once: the
        ``delivery_window`` given to :meth:`open`, else ``2 × concurrency`` (at least 1,024 with
        ``durable_commits``, where each outcome waits for a sync to disk). At most this many deliveries are sent
        with their outcome not yet committed, which is what a process killed mid-dispatch may send again (with the
        same idempotency keys)."""
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or not 1 <= concurrency < 2**32:
            raise _segkit.InvalidArgumentError(f"delivery_window: concurrency must be a whole number from 1 to 2^32-1, got {concurrency!r}")
        return self._ws.delivery_window(concurrency)

    @property
    def path(self) -> str:
        return str(self._ws.path)

    @property
    def durable_commits(self) -> bool:
        """Whether every commit waits until it is on disk (the ``durable_commits`` option of :meth:`open`)."""
        return self._ws.durable_commits

    def set_clock(self, instant: str | datetime | None) -> None:
        """Fixes "now" for relative time windows (``within_last``…) at ``instant`` (RFC 3339 text or a
        datetime; naive datetimes are UTC), or goes back to the system clock with ``None``."""
        self._ws.set_clock(None if instant is None else _instant(instant))

    def set_time_zone(self, name: str) -> None:
        """Sets the IANA time zone (``"Europe/Berlin"``) that calendar windows (days, weeks, months) and "today"
        count in; the default is UTC."""
        self._ws.set_time_zone(name)

    def now(self) -> datetime:
        """The workspace clock's current instant."""
        return _parse_instant(self._ws.now())

    # ------------------------------------------------------------------------------------------ entities

    def define_entity(
        self,
        name: str,
        *,
        key: str | None = None,
        kind: EntityKind = "profile",
        attributes: Mapping[str, AttributeSpec] | Iterable[Attribute] | None = None,
        timestamp: str | None = None,
        links: Mapping[str, str] | Iterable[LinkSpec] | None = None,
        description: str | None = None,
    ) -> Entity:
        """Defines an entity, or evolves an existing one (adding nullable attributes, changing flags).
        Incompatible changes raise :class:`DefinitionError`."""
        if isinstance(attributes, Mapping):
            attributes = {n: _plain(a) for n, a in attributes.items()}
        elif isinstance(attributes, (list, tuple)):
            attributes = [_plain(a) for a in attributes]
        if isinstance(links, (list, tuple)):
            links = [_plain(x) for x in links]
        definition = _spec(
            name=name, kind=kind, key=key, attributes=attributes, timestamp=timestamp, links=links, description=description
        )
        return Entity._from_dict(self._ws.define_entity(definition))

    def entity(self, name: str) -> Entity:
        """The entity ``name`` (:class:`NotFoundError` if there is none)."""
        return Entity._from_dict(self._ws.entity(name))

    def entities(self) -> list[Entity]:
        return [Entity._from_dict(e) for e in self._ws.entities()]

    def add_attribute(self, entity: str, name: str, attribute: AttributeSpec) -> Entity:
        """Adds attribute ``name`` to ``entity`` and returns the entity: ``attribute`` is a type string
        (``"float64"``), a dict with ``type`` and flags (``pii``, ``nullable``, ``indexed``, ``filterable``,
        ``description``) or an :class:`Attribute`. It must be new (:class:`ConflictError` otherwise) and nullable
        when the entity holds rows; a bad spec raises :class:`DefinitionError` naming the field
        (``attribute.type``)."""
        if isinstance(attribute, Attribute):
            if attribute.name != name:
                raise _segkit.InvalidArgumentError(f"add_attribute: the Attribute is named `{attribute.name}`, not `{name}`")
            spec: dict[str, Any] = attribute.to_dict()
        elif isinstance(attribute, str):
            spec = {"name": name, "type": attribute}
        elif isinstance(attribute, Mapping):
            spec = {"name": name, **attribute}
        else:
            raise TypeError(f"attribute: expected a type string, a dict or an Attribute, got {type(attribute).__name__}")
        return Entity._from_dict(self._ws.add_attribute(entity, spec))

    def entity_dependents(self, name: str) -> EntityDependents:
        """What depends on entity ``name``: segments over it, sources feeding it, workflows and templates about
        it, entities linking to it (:class:`NotFoundError` if there is no such entity)."""
        return EntityDependents._from_dict(self._ws.entity_dependents(name))

    def delete_entity(self, name: str, *, force: bool = False) -> EntityDependents:
        """Deletes entity ``name`` with its data and ingest history. Raises :class:`ConflictError` (naming them)
        while anything depends on it (:meth:`entity_dependents`); with ``force``, its segments and sources are
        deleted first (workflows, templates and linking entities still refuse). Returns what was deleted along
        with it."""
        return EntityDependents._from_dict(self._ws.delete_entity(name, force))

    def appender(self, entity: str) -> Appender:
        """A group-commit :class:`Appender` for the event entity ``entity`` (:class:`NotFoundError` if there is
        none, :class:`InvalidArgumentError` for a profile)."""
        return Appender(self._ws.appender(entity))

    def compact(self, entity: str) -> dict[str, Any]:
        """Merges the first run of small files of event entity ``entity`` (many small appends leave them) into one
        file, committed as a new snapshot that reads the same rows; profiles need none. Returns
        ``files_merged`` (0: nothing to do), ``files_written``, ``rows`` and ``snapshot``. The merged files stay
        for older snapshots until :meth:`vacuum`."""
        return self._ws.compact(entity)

    # ------------------------------------------------------------------------------------------ ingest

    def ingest(
        self,
        entity: str,
        source: SourceSpec,
        *,
        mapping: Mapping[str, Any] | None = None,
        mode: IngestMode | None = None,
    ) -> IngestReport:
        """Ingests ``source`` into ``entity``. Bad rows are quarantined (see :meth:`quarantine`); good rows
        commit atomically as a new snapshot.

        ``mapping``: attribute → source field name, or ``{"source": ..., "constant": ..., "transforms": [...]}``.
        ``mode``: ``upsert`` (profiles' default), ``append`` (events' default) or ``full_refresh``.
        """
        if isinstance(source, os.PathLike):
            source = os.fspath(source)
        return IngestReport._from_dict(self._ws.ingest(entity, source, _spec(mapping=mapping, mode=mode)))

    def quarantine(self, entity: str) -> Table:
        """Quarantined rows across all ingests: ``ingest_id``, ``row``, ``reason``, ``record`` (raw JSON)."""
        return Table(self._ws.quarantine(entity))

    def ingest_history(self, entity: str) -> list[IngestReport]:
        """Past ingest reports of ``entity``, oldest first."""
        return [IngestReport._from_dict(r) for r in self._ws.ingest_history(entity)]

    # ------------------------------------------------------------------------------------------ monitoring

    def syncs(self, *, limit: int = 1000) -> list[SyncRecord]:
        """Every sync and ingest of every entity, oldest first, at most ``limit`` (the ``segkit.syncs`` system
        table as records)."""
        return [SyncRecord._from_dict(r) for r in self._ws.syncs(limit)]

    def audit(self, actor: str, action: str, target: str, detail: str | None = None) -> None:
        """Appends a row to the audit log at the workspace clock's now: ``actor`` did ``action``
        (``segment.update``, ``pii.read``…) to ``target``. ``detail`` is cut at 4 KiB and must never hold a secret
        or a ``pii`` value."""
        self._ws.audit(actor, action, target, detail)

    def audit_entries(
        self,
        *,
        actor: str | None = None,
        action: str | None = None,
        target: str | None = None,
        after_id: int | None = None,
        before_id: int | None = None,
        newest_first: bool = False,
        limit: int = 1000,
    ) -> list[dict[str, Any]]:
        """Audit rows matching every filter given (``actor``, ``action``, ``target``, ids after / before one seen
        for paging), oldest first (or ``newest_first``), at most ``limit``: ``id``, ``at`` (RFC 3339), ``actor``,
        ``action``, ``target``, ``detail``."""
        return list(self._ws.audit_entries(actor, action, target, after_id, before_id, newest_first, limit))

    def clear_quarantine(self, entity: str) -> int:
        """Forgets the quarantined rows of ``entity`` (the raw records and the samples in the ingest reports;
        the counts stay). Returns how many rows were forgotten."""
        return self._ws.clear_quarantine(entity)

    def vacuum(self, keep_snapshots: int = 2) -> dict[str, int]:
        """Deletes the data files only snapshots older than each entity's latest ``keep_snapshots`` use.

        Ingests never overwrite files, so replaced and deleted records stay on disk until this runs: call it after
        erasing someone's data, or on a schedule. Files the catalog does not know (left by a crash) go too once
        they are an hour old. Returns ``snapshots_removed``, ``files_deleted``, ``orphans_deleted`` and
        ``bytes_freed``."""
        return self._ws.vacuum(keep_snapshots)

    # ------------------------------------------------------------------------------------------ named sources

    def define_source(
        self,
        name: str,
        *,
        entity: str,
        config: Mapping[str, Any],
        mapping: Mapping[str, Any] | None = None,
        mode: IngestMode | None = None,
    ) -> NamedSource:
        """Defines (or replaces) a named source feeding ``entity``: ``config`` is a connector config tagged by
        ``type`` (``{"type": "csv", "path": "orders.csv"}``), ``mapping`` and ``mode`` as for :meth:`ingest`.

        The config is validated now (the connector is built; errors name the field). Secrets must be references
        such as ``"password": "env:PG_PASSWORD"``, read when the source is built and never stored; a secret
        given inline raises :class:`DefinitionError`. Names follow the entity-name rules. Redefining with the same
        entity and config keeps the sync cursor; any other change restarts from the beginning."""
        if not isinstance(config, Mapping):
            raise TypeError(f"config: expected a dict tagged by `type`, got {type(config).__name__}")
        return NamedSource._from_dict(self._ws.define_source(name, entity, dict(config), mapping, mode))

    def source(self, name: str) -> NamedSource:
        """The named source ``name`` with its sync state (:class:`NotFoundError` if there is none)."""
        return NamedSource._from_dict(self._ws.source(name))

    def sources(self) -> list[NamedSource]:
        """All named sources, by name."""
        return [NamedSource._from_dict(s) for s in self._ws.sources()]

    def delete_source(self, name: str) -> None:
        """Deletes a named source and its cursor; the data it ingested stays."""
        self._ws.delete_source(name)

    def sync(self, name: str, *, progress: ProgressSpec = False) -> IngestReport:
        """Syncs the named source: reads what is new since the last sync (incremental sources) or everything,
        ingests it with the source's mapping and mode, and commits the snapshot together with the source's
        cursor, so a sync interrupted at any point and run again neither loses nor doubles rows.

        ``progress=True`` shows a progress bar (tqdm if installed — a widget in notebooks — else a line on
        stderr); a callable receives each :class:`SyncProgress`. Ctrl-C raises ``KeyboardInterrupt`` and leaves
        the previous snapshot and cursor intact; so does an exception raised by the callable (it propagates)."""
        display = None
        callback = None
        if progress is True:
            display = progress_display(f"sync {name}")
            callback = display
        elif callable(progress):
            callback = progress
        elif progress not in (False, None):
            raise TypeError("progress: expected True, False, None or a callable")
        native_cb = None if callback is None else (lambda d: callback(SyncProgress._from_dict(d)))
        try:
            return IngestReport._from_dict(self._ws.sync(name, native_cb))
        finally:
            if display is not None:
                display.close()

    # ------------------------------------------------------------------------------------------ segments

    def define_segment(
        self,
        name: str,
        *,
        entity: str,
        rule: RuleSpec,
        dialect: str = "auto",
        description: str | None = None,
        split: Mapping[str, Any] | None = None,
        keep_runs: int | None = None,
    ) -> Segment:
        """Defines (or replaces) a segment. ``rule`` is a dict/list or JSON text in segkit's dialect,
        react-querybuilder's or JsonLogic (``dialect``: ``auto``, ``segkit``, ``querybuilder``, ``jsonlogic``).
        Rule problems raise :class:`RuleError` with the path into the rule. ``split`` divides the members
        deterministically into a holdout and variants, e.g. ``{"holdout": 10, "variants": [{"name": "A",
        "percent": 45}, {"name": "B", "percent": 45}]}``; each run's members then carry a ``variant`` column.
        ``keep_runs`` keeps only that many runs (membership versions); by default every run is kept."""
        spec = _spec(
            name=name, entity=entity, rule=rule, dialect=dialect, description=description, split=split, keep_runs=keep_runs
        )
        return Segment._from_dict(self._ws.define_segment(spec))

    def segment(self, name: str) -> Segment:
        return Segment._from_dict(self._ws.segment(name))

    def segments(self) -> list[Segment]:
        return [Segment._from_dict(s) for s in self._ws.segments()]

    def delete_segment(self, name: str) -> None:
        """Deletes a segment and its membership history."""
        self._ws.delete_segment(name)

    # -------------------------------------------------------------------------- static-list segments

    def define_static_segment(self, name: str, *, entity: str, keys: Any) -> StaticListReport:
        """Defines (or replaces) segment ``name`` of ``entity`` as a static list of keys: "these customers".

        ``keys``: a list/tuple of ints or strs, a pyarrow Array/ChunkedArray/Table, a polars or pandas Series or
        DataFrame (one column, or a column named after the entity key), any Arrow PyCapsule exporter, or a path /
        URL / source config as for :meth:`ingest`. The list is stored durably and versioned; rules reference it
        like any segment (``{"in_segment": name}``) and it is evaluated, counted and explained like any segment.
        Keys no entity has are kept (``unmatched``) and become members once such an entity is ingested. Null keys
        and keys of another type raise :class:`InvalidArgumentError`."""
        if isinstance(keys, os.PathLike):
            keys = os.fspath(keys)
        return StaticListReport._from_dict(self._ws.define_static_segment(name, entity, keys))

    def add_static_keys(self, name: str, keys: Any) -> StaticListReport:
        """Adds keys (same forms as :meth:`define_static_segment`) to a static segment."""
        if isinstance(keys, os.PathLike):
            keys = os.fspath(keys)
        return StaticListReport._from_dict(self._ws.add_static_keys(name, keys))

    def remove_static_keys(self, name: str, keys: Any) -> StaticListReport:
        """Removes keys from a static segment (keys not listed are ignored)."""
        if isinstance(keys, os.PathLike):
            keys = os.fspath(keys)
        return StaticListReport._from_dict(self._ws.remove_static_keys(name, keys))

    def static_keys(self, name: str) -> Table:
        """The current keys of a static segment, ascending (also those no entity has)."""
        return Table(self._ws.static_keys(name))

    def static_list_versions(self, name: str) -> list[dict[str, Any]]:
        """The committed versions of a static segment's list, oldest first."""
        return self._ws.static_list_versions(name)

    def evaluate(self, name: str) -> SegmentRun:
        """Computes the segment's members, stores them as a new run and returns who entered and exited."""
        return SegmentRun(self._ws.evaluate(name))

    def count(self, name: str) -> int:
        """Counts current members without storing a run."""
        return self._ws.count(name)

    def preview(self, name: str, n: int = 10) -> Table:
        """Up to ``n`` current member rows with every attribute (``pii`` attributes masked)."""
        return Table(self._ws.preview(name, n))

    def members(self, name: str, run: int | None = None, *, as_of: str | datetime | None = None) -> Table:
        """The stored member keys of the latest run, of run ``run``, or of the latest run that started at or
        before ``as_of`` (workspace clock)."""
        if as_of is not None:
            if run is not None:
                raise ValueError("give run or as_of, not both")
            return Table(self._ws.members_as_of(name, _instant(as_of)))
        return Table(self._ws.members(name, run))

    def members_page(self, name: str, run: int | None = None, offset: int = 0, limit: int = 1000) -> MembersPage:
        """Up to ``limit`` (1 to ``MAX_PAGE_ROWS``) stored member keys of the latest run (or of run ``run``) from
        position ``offset``, read from the run's file without reading the rest. Page through a run with
        ``offset += page.members.num_rows`` while ``page.more``, passing ``run=page.run``."""
        run_read, table, more = self._ws.members_page(name, run, offset, limit)
        return MembersPage(run_read, Table(table), more)

    def explain(self, name: str, key: int | str) -> Explanation:
        """Why entity ``key`` is or is not a member of segment ``name`` now: the rule tree with each node's value
        (True / False / None for unknown), the values compared and, for behavioural conditions, the aggregates.
        ``str(explanation)`` is a readable tree."""
        text, tree = self._ws.explain(name, key)
        return Explanation(segment=tree["segment"], key=tree["key"], member=tree["member"], root=tree["root"], text=text)

    def changes(self, name: str) -> Table:
        """The log of membership changes: ``run``, ``started_at``, the key and ``change`` (entered / exited)."""
        return Table(self._ws.changes(name))

    def dry_run(
        self,
        name: str,
        *,
        entity: str,
        rule: RuleSpec,
        dialect: str = "auto",
        split: Mapping[str, Any] | None = None,
    ) -> DryRun:
        """Evaluates an edited (or new) segment without saving it: how many and which keys would be members, and
        which would enter and exit compared with the latest stored run of ``name``."""
        spec = _spec(name=name, entity=entity, rule=rule, dialect=dialect, split=split)
        count, members, enter, exit_, against = self._ws.dry_run(spec)
        return DryRun(count=count, members=Table(members), would_enter=Table(enter), would_exit=Table(exit_), against_run=against)

    def runs(self, name: str) -> list[dict[str, Any]]:
        """The run history of a segment, oldest first."""
        return list(self._ws.runs(name))

    def sql(self, query: str) -> Table:
        """Runs SQL over the entity tables (each entity is a table named after it)."""
        return Table(self._ws.sql(query))

    # ------------------------------------------------------------------------------------------ workflows

    def register_action(self, name: str, action: Any) -> None:
        """Registers an action workflow steps can name in ``action``: a config dict of a built-in family
        (``{"type": "webhook", "url": ..., "secret": "env:HOOK_SECRET"}``; also ``smtp``, ``wecom``,
        ``dingtalk``, ``feishu``, ``sms``, ``jsonl``) or a custom action — an object with ``execute(delivery)``,
        sync or ``async def``, returning :class:`segkit.Delivered`, :class:`segkit.Retryable` or
        :class:`segkit.Permanent` (an exception counts as retryable; see :mod:`segkit._actions`). Optional
        attributes ``parts`` (template parts it reads) and ``max_rate_per_second``. Registrations live as long as
        this workspace object: register again after reopening."""
        parts, rate = _declared(action)
        if isinstance(action, Mapping):
            action = dict(action)
        self._ws.register_action(name, action, parts, rate)

    # ------------------------------------------------------------------------------------ config-as-code

    def plan(
        self, project: str | os.PathLike[str], *, allow_destructive: bool = False, prune: bool = False
    ) -> dict[str, Any]:
        """What :meth:`apply` would do, changing nothing. ``project``: a path to a project file or directory, or
        TOML / YAML text (see ``docs/project.md``). Returns ``{"changes": [{"kind", "name", "action",
        "destructive", "detail"}], "blocked", "applied"}``."""
        return self._ws.reconcile(os.fspath(project), False, allow_destructive, prune)

    def apply(
        self, project: str | os.PathLike[str], *, allow_destructive: bool = False, prune: bool = False
    ) -> dict[str, Any]:
        """Applies a project in one catalog transaction (all changes or none) and returns the plan applied.
        Destructive entity changes raise :class:`DefinitionError` unless ``allow_destructive``; with ``prune``
        objects the project does not define are deleted."""
        return self._ws.reconcile(os.fspath(project), True, allow_destructive, prune)

    def export(self, path: str | os.PathLike[str] | None = None, *, format: str | None = None) -> str:
        """The workspace's definitions as project text (``format`` ``"toml"`` or ``"yaml"``; default: from
        ``path``'s extension, else TOML). Written to ``path`` when given; the text is returned either way."""
        if format is None:
            suffix = os.path.splitext(os.fspath(path))[1].lower() if path is not None else ""
            format = "yaml" if suffix in (".yaml", ".yml") else "toml"
        text = self._ws.export(format)
        if path is not None:
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
        return text

    def define_template(
        self, name: str, *, channel: str, parts: Mapping[str, str], entity: str | None = None
    ) -> dict[str, Any]:
        """Defines (or replaces) a message template: named ``parts`` (``subject``, ``text``, ``html``, ``body``…)
        in minijinja syntax over ``entity`` (attributes), ``key``, ``workflow``, ``step`` and ``segment``. With
        ``entity``, every ``entity.<attribute>`` must exist (checked now) and :meth:`render` can preview it."""
        return self._ws.define_template(_spec(name=name, channel=channel, parts=dict(parts), entity=entity))

    def template(self, name: str) -> dict[str, Any]:
        """The stored template ``name``."""
        return self._ws.template(name)

    def render(self, template: str, key: int | str, *, mask_pii: bool = False) -> dict[str, str]:
        """Previews ``template`` for the entity with key ``key``: the rendered parts (nothing is sent). With
        ``mask_pii``, the values of ``pii`` attributes render as ``***`` (for viewers not allowed to read them)."""
        return self._ws.render(template, str(key), mask_pii)

    def define_workflow(
        self,
        name: str,
        *,
        trigger: Mapping[str, Any],
        steps: Sequence[Mapping[str, Any]],
        policies: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Defines (or replaces) a workflow. ``trigger``: ``{"type": "entered" | "exited", "segment": ...}`` or
        ``{"type": "manual", "entity": ...}``; ``steps``: ``{"type": "action", "name", "action" (a registered
        name or a config dict), "template", "channel"}``, ``{"type": "wait", "name", "seconds"}``, ``{"type":
        "exit", "name"}``; ``policies``: ``{"reentry": {"type": "never" | "cooldown" | "always", ...},
        "max_attempts", "backoff_ms"}``. Errors name the field path (``workflow.steps[0].action``)."""
        return self._ws.define_workflow(
            _spec(name=name, trigger=dict(trigger), steps=[dict(s) for s in steps], policies=policies)
        )

    def workflow(self, name: str) -> dict[str, Any]:
        """The stored workflow ``name``."""
        return self._ws.workflow(name)

    def workflows(self) -> list[dict[str, Any]]:
        """All workflows, by name."""
        return list(self._ws.workflows())

    def delete_workflow(self, name: str) -> None:
        """Deletes a workflow; its ledger rows stay (pending ones are dead-lettered when claimed)."""
        self._ws.delete_workflow(name)

    def trigger(self, name: str, keys: Iterable[int | str] | None = None) -> int:
        """Starts workflow ``name`` for ``keys`` (default: every current member of its segment, or every entity of
        a manual workflow) as one new trigger version; returns how many ledger rows were added (the re-entry
        policy may skip keys)."""
        return self._ws.trigger(name, None if keys is None else [str(k) for k in keys])

    def dispatch_due(self, *, limit: int = 1000, concurrency: int = 8) -> dict[str, int]:
        """One dispatch pass at the workspace clock's now: claims up to ``limit`` due deliveries, executes them
        ``concurrency`` at a time and records each outcome. Returns ``claimed``, ``delivered``, ``done``,
        ``retried``, ``dead``, ``suppressed``, ``capped``, ``held``, ``rate_limited`` and ``waiting`` counts."""
        return self._ws.dispatch_due(limit, concurrency)

    def dispatch_backlog(self, *, batch: int = 1000, concurrency: int = 8) -> dict[str, int]:
        """Dispatches the whole due backlog: claims ``batch`` due deliveries at a time and claims the next batch
        while the previous one's last deliveries are still in flight, for as long as each claim was full; returns
        once a claim comes back short and every claimed delivery is recorded. At most ``concurrency`` actions run
        at once. The report (the same counts as :meth:`dispatch_due`) sums every claim. Blocks until done; the
        GIL is released meanwhile and Ctrl-C stops it (rows claimed but not recorded are claimed again once their
        lease expires, with the same idempotency keys)."""
        for what, n in (("batch", batch), ("concurrency", concurrency)):
            if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n < 2**32:
                raise _segkit.InvalidArgumentError(f"dispatch_backlog: {what} must be a whole number from 1 to 2^32-1, got {n!r}")
        return self._ws.dispatch_backlog(batch, concurrency)

    def deliveries(
        self,
        *,
        workflow: str | None = None,
        status: str | None = None,
        ids: Iterable[int] | None = None,
        limit: int = 1000,
    ) -> list[dict[str, Any]]:
        """Ledger rows, oldest first: ``id``, ``idempotency_key``, ``workflow``, ``trigger``, ``step``,
        ``entity``, ``entity_key``, ``status`` (``pending``, ``running``, ``delivered``, ``done``,
        ``suppressed``, ``dead``), ``attempts``, ``last_error``, ``receipt``, and ``due_at`` / ``created_at`` /
        ``updated_at`` in milliseconds since the Unix epoch."""
        return list(self._ws.deliveries(workflow, status, None if ids is None else list(ids), limit))

    def replay(self, ids: Iterable[int] | None = None, *, workflow: str | None = None) -> int:
        """Sends dead-lettered deliveries again — those with ``ids`` and / or of ``workflow``, or every dead one
        when neither is given: pending, due now, attempts reset, same idempotency key. Returns how many."""
        return self._ws.replay(workflow, None if ids is None else list(ids))

    def suppress(self, channel: str, keys: Iterable[int | str]) -> int:
        """Puts ``keys`` on ``channel``'s suppression list (unsubscribed, bounced): their deliveries on it are
        skipped with status ``suppressed``. Returns how many were new."""
        return self._ws.suppress(channel, [str(k) for k in keys])

    def unsuppress(self, channel: str, keys: Iterable[int | str]) -> int:
        """Takes ``keys`` off ``channel``'s suppression list; returns how many were on it."""
        return self._ws.unsuppress(channel, [str(k) for k in keys])

    def dry_run_workflow(
        self, name: str, keys: Iterable[int | str] | None = None, *, limit: int = 100, mask_pii: bool = False
    ) -> list[dict[str, Any]]:
        """Who would receive what if workflow ``name`` were triggered now, without sending anything or writing
        the ledger: per entity (``keys``, default the members of its segment or the entities of a manual
        workflow; at most ``limit``) ``entity_key``, ``step``, ``channel``, ``status`` (``send``, ``held``,
        ``suppressed``, …), ``content`` (the rendered template parts) and ``detail`` (why, and the path taken).
        With ``mask_pii``, ``pii`` values render as ``***`` in ``content`` (branches and policies still see the
        real values)."""
        keys = None if keys is None else [str(k) for k in keys]
        return list(self._ws.dry_run_workflow(name, keys, limit, mask_pii))

    def workflow_runs(self, name: str, *, limit: int = 100) -> list[dict[str, Any]]:
        """The starts of workflow ``name`` (one per trigger version: a segment run, a manual trigger, a schedule's
        due instant), newest first, at most ``limit``: ``trigger`` (``run:3``, ``manual:2``…), ``started_at`` /
        ``updated_at`` (ms since the epoch), ``entities``, ``rows`` and ``statuses`` (ledger rows by status)."""
        return list(self._ws.workflow_runs(name, limit))

    # ------------------------------------------------------------------------------------------ schedules

    def schedule(
        self, name: str, cron: str, job: Mapping[str, Any], *, timezone: str | None = None
    ) -> dict[str, Any]:
        """Defines (or replaces) a cron schedule and returns it with its state. ``cron``: ``min hour day month
        weekday`` (an optional leading seconds field); ``timezone``: the IANA zone it is read in (default: the
        workspace's); ``job``: ``{"type": "sync", "source": ...}``, ``{"type": "evaluate", "segment": ...}``,
        ``{"type": "workflow", "workflow": ...}`` (a workflow with a ``schedule`` trigger) or ``{"type":
        "dispatch"}``. Errors name the field (``schedule nightly.job.source``)."""
        return self._ws.schedule(_spec(name=name, cron=cron, timezone=timezone, job=dict(job)))

    def schedule_info(self, name: str) -> dict[str, Any]:
        """A schedule with its state: ``spec``, ``next_due``, ``last_due``, ``last_run_at``, ``last_duration_ms``,
        ``last_error``, ``runs``, ``failures``."""
        return self._ws.schedule_info(name)

    def schedules(self) -> list[dict[str, Any]]:
        """All schedules with their state, by name."""
        return list(self._ws.schedules())

    def delete_schedule(self, name: str) -> None:
        """Deletes a schedule."""
        self._ws.delete_schedule(name)

    def run_due(self, now: str | datetime | None = None) -> dict[str, Any]:
        """Performs every job due at or before ``now`` (default: the workspace clock's now) — once each, however
        many due times were missed — then one dispatch pass. Returns ``jobs`` (``schedule``, ``due``, ``ok``,
        ``outcome``, ``next_due`` each) and ``dispatch`` (the pass's counts). A failing job is reported (and
        recorded as the schedule's ``last_error``), not raised."""
        return self._ws.run_due(None if now is None else _instant(now))

    def serve_forever(self, *, poll_interval: float = 1.0, grace: float = 10.0) -> dict[str, int]:
        """Runs the scheduler (due jobs, then dispatch passes, sleeping at most ``poll_interval`` seconds between
        passes) until Ctrl-C or SIGTERM, then stops claiming, lets deliveries in flight finish for up to
        ``grace`` seconds, releases the claims it still holds and returns ``passes``, ``jobs``,
        ``failed_jobs``, ``delivered`` and ``released``. SIGTERM is handled only when called from the main
        thread (its previous handler is restored on return)."""
        if poll_interval <= 0 or grace < 0:
            raise _segkit.InvalidArgumentError("serve_forever: poll_interval must be > 0 and grace >= 0 (seconds)")
        restore = None
        if threading.current_thread() is threading.main_thread():
            def on_term(signum: int, frame: Any) -> None:
                raise KeyboardInterrupt("SIGTERM")

            restore = signal.signal(signal.SIGTERM, on_term)
        try:
            return self._ws.serve_forever(int(poll_interval * 1000), int(grace * 1000))
        finally:
            if restore is not None:
                signal.signal(signal.SIGTERM, restore)

    def __repr__(self) -> str:
        return f"segkit.Workspace({self.path!r})"


__all__ = ["AttributeSpec", "LinkSpec", "RuleSpec", "SegmentRun", "SourceSpec", "Workspace"]
