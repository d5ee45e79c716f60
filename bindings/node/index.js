'use strict';
// segkit for Node.js: a thin, Promise-based wrapper over the native module (segkit.node).
// Bulk data moves as Arrow IPC buffers (read them with apache-arrow's `tableFromIPC`); small results are
// plain objects. Errors are `SegkitError` subclasses carrying the Rust cause chain.

const path = require('node:path');

function loadNative() {
  const candidates = [
    process.env.SEGKIT_NODE_NATIVE,
    path.join(__dirname, 'segkit.node'),
    path.join(__dirname, 'index.node'),
  ].filter(Boolean);
  let firstError;
  for (const file of candidates) {
    try {
      return require(file);
    } catch (e) {
      if (e && e.code === 'MODULE_NOT_FOUND' && !firstError) {
        continue;
      }
      firstError = firstError || e;
    }
  }
  const err = new Error(
    `segkit: could not load the native module (${candidates.join(', ')}). ` +
      'Build it with `npm run build` in bindings/node.' +
      (firstError ? ` Cause: ${firstError.message}` : ''),
  );
  err.cause = firstError;
  throw err;
}

const native = loadNative();

// ------------------------------------------------------------------------------------------------ errors

const ERROR_PREFIX = '__segkit_error__:';

/** Base class of every error raised by segkit. */
class SegkitError extends Error {
  constructor(message, { kind = 'engine', causes = [], cause } = {}) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = new.target.name;
    /** Stable category, e.g. `"rule"`, `"not_found"`. */
    this.kind = kind;
    /** `SEGKIT_<KIND>`, e.g. `SEGKIT_NOT_FOUND`. */
    this.code = `SEGKIT_${kind.toUpperCase()}`;
    /** The Rust error chain, outermost first. */
    this.causes = causes;
  }
}
/** An entity, attribute, link, segment, mapping or source definition is invalid, or an incompatible change. */
class DefinitionError extends SegkitError {}
/** A named object (entity, segment, run, attribute) does not exist. */
class NotFoundError extends SegkitError {}
/** A rule does not parse or does not type-check; the message has the path into the rule tree. */
class RuleError extends SegkitError {}
/** An ingest or a source failed as a whole (single bad rows are quarantined instead). */
class IngestError extends SegkitError {}
/** Another writer committed first; retry. */
class ConflictError extends SegkitError {}
/** An argument is out of range or malformed. */
class InvalidArgumentError extends SegkitError {}
/** The catalog, object store, Parquet or local I/O failed. */
class StorageError extends SegkitError {}
/** Arrow, DataFusion or JSON failed. */
class EngineError extends SegkitError {}
/** A bug in segkit: a Rust panic, reported as an error instead of aborting the process. */
class InternalError extends SegkitError {}
/** An operation was cancelled (an aborted AbortSignal) before it committed; nothing it did is visible. */
class CancelledError extends SegkitError {}

const CLASSES = {
  definition: DefinitionError,
  not_found: NotFoundError,
  rule: RuleError,
  ingest: IngestError,
  conflict: ConflictError,
  invalid_argument: InvalidArgumentError,
  storage: StorageError,
  engine: EngineError,
  internal: InternalError,
  cancelled: CancelledError,
};

function formatChain(chain) {
  const [head, ...rest] = chain;
  if (rest.length === 0) return head;
  return `${head}\nCaused by:\n${rest.map((c, i) => `  ${i}: ${c}`).join('\n')}`;
}

/** The single point where native errors become SegkitError subclasses. */
function convertError(e) {
  if (e instanceof SegkitError) return e;
  const message = e && typeof e.message === 'string' ? e.message : String(e);
  const at = message.indexOf(ERROR_PREFIX);
  if (at >= 0) {
    let payload;
    try {
      payload = JSON.parse(message.slice(at + ERROR_PREFIX.length));
    } catch {
      payload = undefined;
    }
    if (payload && Array.isArray(payload.causes)) {
      const Cls = CLASSES[payload.kind] || SegkitError;
      const err = new Cls(formatChain(payload.causes), { kind: payload.kind, causes: payload.causes });
      if (e && e.stack) {
        // Keep the JS call site of the wrapper; the native frame adds nothing.
        err.stack = `${err.name}: ${err.message}\n${String(e.stack).split('\n').slice(1).join('\n')}`;
      }
      return err;
    }
  }
  // napi turns a panic in an async native call into this rejection (the panic message stays on stderr).
  if (e && e.code === 'GenericFailure' && /^Panic in (async|sync) function/.test(message)) {
    const text = `internal error (a Rust panic inside segkit; please report it): ${message}`;
    return new InternalError(text, { kind: 'internal', causes: [text], cause: e });
  }
  // Argument conversion failures raised by napi itself (wrong JS type for a parameter).
  if (e && (e.code === 'InvalidArg' || e.code === 'NumberExpected' || e.code === 'StringExpected' || e instanceof TypeError)) {
    return new InvalidArgumentError(message, { kind: 'invalid_argument', causes: [message], cause: e });
  }
  return e;
}

async function call(fn) {
  try {
    return await fn();
  } catch (e) {
    throw convertError(e);
  }
}

function callSync(fn) {
  try {
    return fn();
  } catch (e) {
    throw convertError(e);
  }
}

function invalid(message) {
  return new InvalidArgumentError(message, { kind: 'invalid_argument', causes: [message] });
}

// ------------------------------------------------------------------------------------------------ helpers

function isPlainObject(v) {
  if (v === null || typeof v !== 'object') return false;
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

/** JSON text of an array of records; BigInt values become their decimal text (ingest coerces it to int64). */
function recordsToJson(records) {
  try {
    return JSON.stringify(records, (_key, value) => {
      if (typeof value === 'bigint') return value.toString();
      if (value instanceof Date) return value.toISOString();
      return value;
    });
  } catch (e) {
    // JSON.stringify recurses: absurdly deep records overflow it. Report the limit core enforces on rows.
    if (!(e instanceof RangeError)) throw e;
    const limit = native.maxRuleDepth();
    throw invalid(`invalid argument: nesting in the ingested rows goes deeper than ${limit} levels (limit MAX_RULE_DEPTH = ${limit})`);
  }
}

/** The `keys` of the static-list methods as the native layer takes them (a Buffer or an array). */
function staticKeys(keys) {
  if (keys instanceof Uint8Array) return toBuffer(keys);
  if (keys instanceof ArrayBuffer) return Buffer.from(keys);
  if (Array.isArray(keys)) return keys.map((k) => (k === undefined ? null : k));
  throw invalid('static list keys must be an array of numbers, BigInts or strings, or an Arrow IPC Buffer/Uint8Array');
}

function toBuffer(u8) {
  return Buffer.isBuffer(u8) ? u8 : Buffer.from(u8.buffer, u8.byteOffset, u8.byteLength);
}

function clockArg(instant) {
  if (instant === null || instant === undefined) return null;
  if (instant instanceof Date) return instant.toISOString();
  if (typeof instant === 'string') return instant;
  throw invalid('setClock expects an RFC 3339 string, a Date, or null');
}

/**
 * A spec object as JSON text for core's request model (`segkit::spec`): text keeps the key order of attribute
 * maps (the storage order). `JSON.stringify` recurses, so an absurdly deep object overflows it: reported as the
 * depth limit core enforces.
 */
function specText(spec) {
  try {
    return JSON.stringify(spec, (_key, value) => (typeof value === 'bigint' ? value.toString() : value));
  } catch (e) {
    if (!(e instanceof RangeError)) throw e;
    const limit = native.maxRuleDepth();
    const message = `rule error at <root>: the rule is nested more than ${limit} levels deep (limit MAX_RULE_DEPTH = ${limit})`;
    throw new RuleError(message, { kind: 'rule', causes: [message] });
  }
}

function optionsText(options) {
  return options === null || options === undefined ? null : specText(options);
}

/** Native entity (attributes as an ordered array) → attributes as an object keyed by name, in storage order. */
function entityFromNative(e) {
  const attributes = {};
  for (const { name, ...rest } of e.attributes) attributes[name] = rest;
  const { name, kind, key, timestamp, links, description } = e;
  return { name, kind, key, timestamp, attributes, links, description };
}

/**
 * Runs `start(progress, token)` (a native ingest or sync) with `onProgress` (progress objects with `elapsedMs`)
 * and `signal` (an AbortSignal tied to a native cancellation token) bridged to native.
 */
async function withControl(what, { onProgress, signal }, start) {
  if (onProgress !== undefined && typeof onProgress !== 'function') throw invalid(`${what}: onProgress must be a function`);
  if (signal !== undefined && (!signal || typeof signal.addEventListener !== 'function')) {
    throw invalid(`${what}: signal must be an AbortSignal`);
  }
  const progress = onProgress
    ? (p) => {
        const { elapsed, ...fields } = p;
        onProgress({ ...fields, elapsedMs: elapsed });
      }
    : undefined;
  let token;
  const onAbort = () => native.cancelTokenCancel(token);
  if (signal !== undefined) {
    token = native.cancelTokenNew();
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
  }
  try {
    return await call(() => start(progress, token));
  } finally {
    if (token !== undefined) {
      signal.removeEventListener('abort', onAbort);
      native.cancelTokenRelease(token);
    }
  }
}

// ------------------------------------------------------------------------------------------------ classes

/** The result of one segment evaluation. */
class SegmentRun {
  #native;
  constructor(nativeRun) {
    this.#native = nativeRun;
    /** Segment name. */
    this.segment = nativeRun.segment;
    /** Run number (1 for the first evaluation). */
    this.run = nativeRun.run;
    /** Number of members. */
    this.count = nativeRun.count;
    /** Wall time of the evaluation in milliseconds. */
    this.durationMs = nativeRun.durationMs;
    /** Entity snapshot evaluated. */
    this.snapshot = nativeRun.snapshot;
    /** When the evaluation started, by the workspace clock (RFC 3339). */
    this.startedAt = nativeRun.startedAt;
    /** Keys that are members now and were not in the previous run, ascending. */
    this.entered = nativeRun.entered;
    /** Keys that were members in the previous run and are not now, ascending. */
    this.exited = nativeRun.exited;
  }
  /** Member keys, ascending: numbers, BigInts beyond 2^53, or strings. */
  memberKeys() {
    return callSync(() => this.#native.memberKeys());
  }
  /** Member keys as an Arrow IPC stream (one column named after the entity key; typed even when empty). */
  membersIpc() {
    return callSync(() => this.#native.membersIpc());
  }
  /** Entered keys as an Arrow IPC stream. */
  enteredIpc() {
    return callSync(() => this.#native.enteredIpc());
  }
  /** Exited keys as an Arrow IPC stream. */
  exitedIpc() {
    return callSync(() => this.#native.exitedIpc());
  }
  toJSON() {
    const { segment, run, count, durationMs, snapshot, startedAt } = this;
    const big = (k) => (typeof k === 'bigint' ? k.toString() : k);
    return { segment, run, count, durationMs, snapshot, startedAt, entered: this.entered.map(big), exited: this.exited.map(big) };
  }
}

/** A segkit workspace: a directory (or store URL) with a catalog, entity data and segments. */
class Workspace {
  #native;
  constructor(nativeWorkspace) {
    if (!(nativeWorkspace instanceof native.NativeWorkspace)) {
      throw invalid('use `await Workspace.open(path)` to get a Workspace');
    }
    this.#native = nativeWorkspace;
  }

  /** Opens (creating if needed) the workspace in directory `path`. */
  static async open(path, options = {}) {
    if (typeof path !== 'string') throw invalid('Workspace.open expects a directory path');
    const nw = await call(() => native.openWorkspace(path, options ?? null));
    return new Workspace(nw);
  }

  /** The workspace directory. */
  get path() {
    return this.#native.path;
  }

  /** Whether every commit waits until it is on disk (the `durableCommits` option). */
  get durableCommits() {
    return this.#native.durableCommits;
  }

  /**
   * How many claimed deliveries a dispatch with `concurrency` send slots processes at once: the `deliveryWindow`
   * option, else 2 × concurrency (at least 1,024 with `durableCommits`). At most this many are sent with their
   * outcome not yet committed, which is what a process killed mid-dispatch may send again.
   */
  deliveryWindow(concurrency = 8) {
    if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 0xffffffff) {
      throw invalid(`deliveryWindow: concurrency must be a whole number from 1 to 2^32-1, got ${concurrency}`);
    }
    return callSync(() => this.#native.deliveryWindow(concurrency));
  }

  /** Fixes "now" (for relative time windows) at an instant, or restores the system clock with `null`. */
  setClock(instant) {
    callSync(() => this.#native.setClock(clockArg(instant)));
  }
  /** Sets the IANA time zone ('Europe/Berlin') that calendar windows and "today" count in (default UTC). */
  setTimeZone(name) {
    callSync(() => this.#native.setTimeZone(name));
  }


  /** "Now" by the workspace clock, RFC 3339. */
  now() {
    return this.#native.now();
  }

  // ---- entities

  async defineEntity(definition) {
    if (!isPlainObject(definition)) throw invalid('defineEntity expects an object {name, key, kind, attributes, ...}');
    return entityFromNative(await call(() => this.#native.defineEntity(specText(definition))));
  }

  entity(name) {
    return entityFromNative(callSync(() => this.#native.entity(name)));
  }

  entities() {
    return callSync(() => this.#native.entities()).map(entityFromNative);
  }

  /**
   * Adds attribute `name` to `entity`; resolves to the entity. `attribute`: a type string (`"float64"`) or an
   * object with `type` and flags (`pii`, `nullable`, `indexed`, `filterable`, `description`). It must be new
   * (ConflictError otherwise) and nullable when the entity holds rows; a bad spec rejects with a DefinitionError
   * naming the field (`attribute.type`).
   */
  async addAttribute(entity, name, attribute) {
    let spec;
    if (typeof attribute === 'string') spec = { name, type: attribute };
    else if (isPlainObject(attribute)) spec = { ...attribute, name };
    else throw invalid('addAttribute: attribute must be a type string or an object {type, pii, nullable, ...}');
    return entityFromNative(await call(() => this.#native.addAttribute(entity, specText(spec))));
  }

  /**
   * What depends on entity `name`: `{segments, sources, workflows, templates, linkedFrom}` (names). Rejects with a
   * NotFoundError if there is no such entity.
   */
  async entityDependents(name) {
    return call(() => this.#native.entityDependents(name));
  }

  /**
   * Deletes entity `name` with its data and ingest history. Rejects with a ConflictError (naming them) while
   * anything depends on it (see `entityDependents`); with `force`, its segments and sources are deleted first
   * (workflows, templates and linking entities still refuse). Resolves to what was deleted along with it.
   */
  async deleteEntity(name, { force = false } = {}) {
    if (typeof force !== 'boolean') throw invalid('deleteEntity: force must be a boolean');
    return call(() => this.#native.deleteEntity(name, force));
  }

  /**
   * A group-commit `Appender` for the event entity `entity` (NotFoundError if there is none, InvalidArgumentError
   * for a profile).
   */
  async appender(entity) {
    return new Appender(await call(() => this.#native.appender(entity)));
  }

  /**
   * Merges the first run of small files of an event entity (many small appends leave them) into one file,
   * committed as a new snapshot reading the same rows; profiles need none. Resolves to `{filesMerged,
   * filesWritten, rows, snapshot}` (`filesMerged` 0: nothing to do).
   */
  async compact(entity) {
    return call(() => this.#native.compact(entity));
  }

  // ---- monitoring

  /**
   * Every sync and ingest of every entity, oldest first, at most `limit` (default 1000): the ingest report's fields
   * (`id`, `entity`, `rowsWritten`, …) plus `namedSource` (null for a direct ingest) and `createdAt`.
   */
  async syncs({ limit = 1000 } = {}) {
    return call(() => this.#native.syncs(limitArg('syncs', limit)));
  }

  /**
   * Audit rows matching every filter given (`actor`, `action`, `target`, `afterId` / `beforeId` for paging),
   * oldest first (or `newestFirst`), at most `limit` (default 1000): `{id, at, actor, action, target, detail}`.
   */
  async auditEntries({ actor, action, target, afterId, beforeId, newestFirst = false, limit = 1000, ...rest } = {}) {
    const unknown = Object.keys(rest);
    if (unknown.length) {
      throw invalid(`auditEntries: unknown option(s) ${unknown.join(', ')} (expected actor, action, target, afterId, beforeId, newestFirst, limit)`);
    }
    return call(() =>
      this.#native.auditEntries(actor ?? null, action ?? null, target ?? null, afterId ?? null, beforeId ?? null, Boolean(newestFirst), limitArg('auditEntries', limit)),
    );
  }

  /**
   * Appends a row to the audit log at the workspace clock's now: `actor` did `action` (`segment.update`,
   * `pii.read`, …) to `target`. `detail` is cut at 4 KiB and must never hold a secret or a pii value.
   */
  async audit(actor, action, target, detail) {
    return call(() => this.#native.audit(actor, action, target, detail ?? null));
  }

  /**
   * The starts of workflow `name` (one per trigger version), newest first, at most `limit` (default 100):
   * `{trigger, startedAt, updatedAt, entities, rows, statuses}` (times in ms since the epoch; `statuses`: ledger
   * rows by status).
   */
  async workflowRuns(name, { limit = 100 } = {}) {
    return call(() => this.#native.workflowRuns(name, limitArg('workflowRuns', limit)));
  }

  // ---- ingest

  /**
   * Ingests into `entity` from: a path or URL string (format from the extension); a Buffer/Uint8Array holding
   * an Arrow IPC stream or file; an array of plain objects; or a source config object such as
   * `{type: "csv", path}`.
   */
  async ingest(entity, source, options = {}) {
    const { onProgress, signal, ...rest } = options ?? {};
    const opts = options == null ? null : optionsText(rest);
    const ctl = { onProgress, signal };
    if (typeof source === 'string') {
      return withControl('ingest', ctl, (p, t) => this.#native.ingestLocation(entity, source, opts, p, t));
    }
    if (source instanceof Uint8Array) {
      return withControl('ingest', ctl, (p, t) => this.#native.ingestIpc(entity, toBuffer(source), opts, p, t));
    }
    if (source instanceof ArrayBuffer) {
      return withControl('ingest', ctl, (p, t) => this.#native.ingestIpc(entity, Buffer.from(source), opts, p, t));
    }
    if (Array.isArray(source)) {
      return withControl('ingest', ctl, (p, t) => this.#native.ingestRecords(entity, recordsToJson(source), opts, p, t));
    }
    if (isJsSource(source)) {
      const a = sourceAdapter(source);
      return withControl('ingest', ctl, (p, t) =>
        this.#native.ingestJsSource(entity, a.name, a.schemaFn, a.openFn, a.nextFn, opts, p, t),
      );
    }
    if (isPlainObject(source)) {
      return withControl('ingest', ctl, (p, t) => this.#native.ingestConfig(entity, source, opts, p, t));
    }
    throw invalid(
      'ingest source must be a path/URL string, an Arrow IPC Buffer/Uint8Array, an array of plain objects, ' +
        'a source config object such as {type: "csv", path: "users.csv"}, or a source with schema() and scan()',
    );
  }

  // ---- named sources

  /**
   * Defines (or replaces) a named source feeding `entity` from a connector `config` tagged by `type`
   * (`{type: "csv", path: "orders.csv"}`); `options`: `{mapping, mode}` as for `ingest`. Secrets must be
   * references such as `password: "env:PG_PASSWORD"`; an inline secret is refused with a DefinitionError.
   */
  async defineSource(name, entity, config, options = {}) {
    if (!isPlainObject(config)) throw invalid('defineSource: config must be a plain object tagged by `type`');
    const { mapping, mode, ...rest } = options ?? {};
    const unknown = Object.keys(rest);
    if (unknown.length) throw invalid(`defineSource: unknown option(s) ${unknown.join(', ')} (expected mapping, mode)`);
    return call(() => this.#native.defineSource(name, entity, config, optionsText({ mapping, mode })));
  }

  /** A named source with its sync state (`cursor`, `snapshot`, `updatedAt`). */
  source(name) {
    return callSync(() => this.#native.source(name));
  }

  /** All named sources, by name. */
  sources() {
    return callSync(() => this.#native.sources());
  }

  /** Deletes a named source and its cursor; the data it ingested stays. */
  async deleteSource(name) {
    return call(() => this.#native.deleteSource(name));
  }

  /**
   * Syncs a named source: reads what is new since the last sync (incremental sources), ingests it, and commits
   * the snapshot together with the cursor. `options.onProgress(progress)` receives `{rowsRead, rowsRejected,
   * bytesRead, batches, elapsedMs, done}`; `options.signal` (an AbortSignal) cancels: the promise rejects with
   * a CancelledError and the previous snapshot and cursor stay.
   */
  async sync(name, options = {}) {
    const { onProgress, signal, ...rest } = options ?? {};
    const unknown = Object.keys(rest);
    if (unknown.length) throw invalid(`sync: unknown option(s) ${unknown.join(', ')} (expected onProgress, signal)`);
    return withControl('sync', { onProgress, signal }, (progress, token) => this.#native.sync(name, progress, token));
  }

  /** Past ingest reports of an entity, oldest first. */
  ingestHistory(entity) {
    return callSync(() => this.#native.ingestHistory(entity));
  }

  /** Quarantined rows of an entity (ingest_id, row, reason, record) as an Arrow IPC stream. */
  async quarantine(entity) {
    return call(() => this.#native.quarantine(entity));
  }

  /** Forgets an entity's quarantined rows (raw records and report samples; counts stay). Resolves to how many. */
  async clearQuarantine(entity) {
    return call(() => this.#native.clearQuarantine(entity));
  }

  /**
   * Deletes the data files only snapshots older than each entity's latest `keepSnapshots` (default 2) use.
   * Ingests never overwrite files, so replaced and deleted records stay on disk until this runs.
   */
  async vacuum(keepSnapshots = 2) {
    if (!Number.isInteger(keepSnapshots) || keepSnapshots < 0) {
      throw invalid(`keepSnapshots must be a non-negative integer, got ${keepSnapshots}`);
    }
    return call(() => this.#native.vacuum(keepSnapshots));
  }

  // ---- segments

  /** Defines (or replaces) a segment. `rule` is an object or JSON text in the segkit, querybuilder or jsonlogic dialect. */
  async defineSegment(name, options = {}) {
    const text = specText({ name, ...options });
    return JSON.parse(await call(() => this.#native.defineSegment(text)));
  }

  segment(name) {
    return JSON.parse(callSync(() => this.#native.segment(name)));
  }

  segments() {
    return JSON.parse(callSync(() => this.#native.segments()));
  }

  async deleteSegment(name) {
    await call(() => this.#native.deleteSegment(name));
  }

  /** Evaluates a segment, stores the membership and returns who entered and exited. */
  async evaluate(name) {
    return new SegmentRun(await call(() => this.#native.evaluate(name)));
  }

  // ---- static-list segments

  /**
   * Defines (or replaces) segment `name` of `entity` as a static list of keys. `keys`: an array of numbers,
   * BigInts or strings, or a Buffer/Uint8Array holding an Arrow IPC stream or file (one column, or a column named
   * after the entity key). Rules reference it like any segment; keys no entity has are kept (`unmatched`).
   */
  async defineStaticSegment(name, { entity, keys } = {}) {
    return call(() => this.#native.defineStaticSegment(name, entity, staticKeys(keys)));
  }

  /** Adds keys (same forms as `defineStaticSegment`) to a static-list segment. */
  async addStaticKeys(name, keys) {
    return call(() => this.#native.addStaticKeys(name, staticKeys(keys)));
  }

  /** Removes keys from a static-list segment (keys not listed are ignored). */
  async removeStaticKeys(name, keys) {
    return call(() => this.#native.removeStaticKeys(name, staticKeys(keys)));
  }

  /** The current keys of a static-list segment, ascending, as an Arrow IPC stream. */
  async staticKeys(name) {
    return call(() => this.#native.staticKeys(name));
  }

  /** The committed versions of a static-list segment's keys, oldest first. */
  staticListVersions(name) {
    return callSync(() => this.#native.staticListVersions(name));
  }

  /** Counts the current members without storing them. */
  async count(name) {
    return call(() => this.#native.count(name));
  }

  /** Up to `n` current member rows (pii masked) as an Arrow IPC stream. */
  async preview(name, n = 10) {
    return call(() => this.#native.preview(name, n));
  }

  /** Up to `n` current member rows (pii masked) as plain objects. */
  async previewRows(name, n = 10) {
    return JSON.parse(await call(() => this.#native.previewRows(name, n)));
  }

  /** Stored member keys of the latest run (or of run number `run`) as an Arrow IPC stream. */
  async members(name, run) {
    return call(() => this.#native.members(name, run ?? null));
  }

  /**
   * Up to `limit` (default 1000) stored member keys of the latest run (or run `run`) from position `offset`:
   * `{run, membersIpc, more}`. Page with `offset += rows` while `more`, passing `run` back.
   */
  async membersPage(name, { run = null, offset = 0, limit = 1000 } = {}) {
    return call(() => this.#native.membersPage(name, run, offset, limit));
  }

  /** Stored members of the latest run that started at or before `instant` (ISO text or Date), Arrow IPC. */
  async membersAsOf(name, instant) {
    const text = instant instanceof Date ? instant.toISOString() : instant;
    return call(() => this.#native.membersAsOf(name, text));
  }

  /** Why entity `key` is or is not a member now: {segment, key, member, root: {label, value, detail, children}, text}. */
  async explain(name, key) {
    return call(() => this.#native.explain(name, String(key)));
  }

  /** The per-run log of entered / exited keys (`run`, `started_at`, key, `change`), Arrow IPC. */
  async changes(name) {
    return call(() => this.#native.changes(name));
  }

  /** Evaluates an edited (or new) segment without saving: {count, againstRun, wouldEnter, wouldExit, membersIpc}. */
  async dryRun(name, options = {}) {
    const text = specText({ name, ...options });
    return call(() => this.#native.dryRun(text));
  }

  /** The run history of a segment, oldest first. */
  runs(name) {
    return callSync(() => this.#native.runs(name));
  }

  /** Runs SQL over the entity tables; the result as an Arrow IPC stream. */
  async sql(query) {
    return call(() => this.#native.sql(query));
  }

  // ---- workflows (specs use core's snake_case field names, so a spec read back defines the same thing again)

  /**
   * Registers an action workflow steps can name in `action`: a built-in config object (`{type: "webhook", url,
   * secret: "env:HOOK_SECRET"}`; also smtp, wecom, dingtalk, feishu, sms, jsonl) or a custom action, an (async)
   * function `(delivery) => outcome` where outcome is `{status: "delivered", receipt?}`, `{status: "retryable",
   * reason, retryAfter?}` (seconds) or `{status: "permanent", reason}`; a thrown error or rejected promise counts
   * as retryable. `options`: `{parts, maxRatePerSecond}`. Registrations last as long as this Workspace object.
   */
  registerAction(name, action, options = {}) {
    if (typeof action === 'function') {
      const { parts, maxRatePerSecond, ...rest } = options ?? {};
      const unknown = Object.keys(rest);
      if (unknown.length) throw invalid(`registerAction: unknown option(s) ${unknown.join(', ')} (expected parts, maxRatePerSecond)`);
      const a = actionAdapter(action);
      callSync(() => this.#native.registerJsAction(name, a.kind, a.execute, parts ?? null, maxRatePerSecond ?? null));
      return;
    }
    if (isPlainObject(action)) {
      callSync(() => this.#native.registerActionConfig(name, action));
      return;
    }
    throw invalid('registerAction: action must be an (async) function (delivery) => outcome, or a config object tagged by `type`');
  }

  /**
   * Defines (or replaces) a message template: named `parts` (subject, text, html, body…) in minijinja syntax over
   * `entity` (attributes), `key`, `workflow`, `step` and `segment`. With `entity`, every `entity.<attribute>` is
   * checked now and `render` can preview it.
   */
  /**
   * What `apply` would do, changing nothing. `project`: a path to a project file or directory, or TOML / YAML text
   * (see docs/project.md). Resolves to `{ changes: [{ kind, name, action, destructive, detail }], blocked, applied }`.
   */
  async plan(project, { allowDestructive = false, prune = false } = {}) {
    return call(() => this.#native.reconcile(String(project), false, allowDestructive, prune));
  }

  /** Applies a project in one catalog transaction (all changes or none); resolves to the plan applied. */
  async apply(project, { allowDestructive = false, prune = false } = {}) {
    return call(() => this.#native.reconcile(String(project), true, allowDestructive, prune));
  }

  /** The workspace's definitions as project text (`format` `toml`, the default, or `yaml`). */
  export({ format = 'toml' } = {}) {
    return callSync(() => this.#native.exportProject(format));
  }

  async defineTemplate(name, { channel, parts, entity } = {}) {
    return call(() => this.#native.defineTemplate(specText({ name, channel, parts, entity: entity ?? undefined })));
  }

  /** A stored template. */
  template(name) {
    return callSync(() => this.#native.template(name));
  }

  /**
   * Previews a template for the entity with key `key`: the rendered parts (nothing is sent). With `{maskPii:
   * true}`, the values of pii attributes render as `***`.
   */
  async render(template, key, { maskPii = false } = {}) {
    return call(() => this.#native.render(template, String(key), Boolean(maskPii)));
  }

  /**
   * Defines (or replaces) a workflow: `trigger` (`{type: "entered" | "exited", segment}` or `{type: "manual",
   * entity}`), `steps` (`{type: "action", name, action, template?, channel?}`, `{type: "wait", name, seconds}`,
   * `{type: "exit", name}`) and `policies` (`{reentry: {type: "never" | "cooldown" | "always", seconds?},
   * max_attempts, backoff_ms}`). Errors name the field path (`workflow.steps[0].action`).
   */
  async defineWorkflow(name, { trigger, steps, policies } = {}) {
    return call(() => this.#native.defineWorkflow(specText({ name, trigger, steps, policies: policies ?? undefined })));
  }

  /** A stored workflow. */
  workflow(name) {
    return callSync(() => this.#native.workflow(name));
  }

  /** All workflows, by name. */
  workflows() {
    return callSync(() => this.#native.workflows());
  }

  /** Deletes a workflow; its ledger rows stay (pending ones are dead-lettered when claimed). */
  deleteWorkflow(name) {
    callSync(() => this.#native.deleteWorkflow(name));
  }

  /**
   * Starts a workflow for `keys` (numbers, BigInts or strings; default: every current member of its segment, or
   * every entity of a manual workflow) as one new trigger version. Resolves to the ledger rows added.
   */
  async trigger(name, keys) {
    if (keys !== undefined && keys !== null && !Array.isArray(keys)) throw invalid('trigger: keys must be an array');
    return call(() => this.#native.trigger(name, keys == null ? null : keys.map(String)));
  }

  /**
   * One dispatch pass at the workspace clock's now: claims up to `limit` (default 1000) due deliveries, runs them
   * `concurrency` (default 8) at a time, records each outcome. Resolves to `{claimed, delivered, done, retried,
   * dead, suppressed, capped, held, rateLimited, waiting}`.
   */
  async dispatchDue({ limit = 1000, concurrency = 8 } = {}) {
    return call(() => this.#native.dispatchDue(limit, concurrency));
  }

  /**
   * Dispatches the whole due backlog: claims `batch` (default 1000) due deliveries at a time and claims the next
   * batch while the previous one's last deliveries are in flight, for as long as each claim was full; resolves
   * once a claim comes back short and every claimed delivery is recorded, to the summed report (the same counts
   * as `dispatchDue`). At most `concurrency` (default 8) actions run at once.
   */
  async dispatchBacklog({ batch = 1000, concurrency = 8 } = {}) {
    for (const [what, n] of [['batch', batch], ['concurrency', concurrency]]) {
      if (!Number.isInteger(n) || n < 1 || n > 0xffffffff) {
        throw invalid(`dispatchBacklog: ${what} must be a whole number from 1 to 2^32-1, got ${n}`);
      }
    }
    return call(() => this.#native.dispatchBacklog(batch, concurrency));
  }

  /**
   * Ledger rows, oldest first: `{id, idempotencyKey, workflow, trigger, step, entity, entityKey, status,
   * attempts, dueAt, lastError, receipt, createdAt, updatedAt}` (times in ms since the epoch).
   */
  deliveries({ workflow, status, ids, limit = 1000 } = {}) {
    return callSync(() => this.#native.deliveries(workflow ?? null, status ?? null, ids ?? null, limit));
  }

  /**
   * Sends dead-lettered deliveries again — those with `ids` and / or of `workflow`, or every dead one when neither
   * is given: pending, due now, attempts reset, same idempotency key. Resolves to how many.
   */
  async replay({ ids, workflow } = {}) {
    return call(() => this.#native.replay(workflow ?? null, ids ?? null));
  }

  /** Puts keys on a channel's suppression list (their deliveries on it are skipped); resolves to how many were new. */
  async suppress(channel, keys) {
    if (!Array.isArray(keys)) throw invalid('suppress: keys must be an array');
    return call(() => this.#native.suppress(channel, keys.map(String)));
  }

  /** Takes keys off a channel's suppression list; resolves to how many were on it. */
  async unsuppress(channel, keys) {
    if (!Array.isArray(keys)) throw invalid('unsuppress: keys must be an array');
    return call(() => this.#native.unsuppress(channel, keys.map(String)));
  }

  /**
   * Who would receive what if workflow `name` were triggered now, without sending or writing the ledger: per
   * entity (`keys`, default the members of its segment or the entities of a manual workflow; at most `limit`,
   * default 100) `{entityKey, step, channel, status, content, detail}`. With `{maskPii: true}`, pii values render
   * as `***` in `content` (branches and policies still see the real values).
   */
  async dryRunWorkflow(name, keys, limit = 100, { maskPii = false } = {}) {
    if (keys !== undefined && keys !== null && !Array.isArray(keys)) throw invalid('dryRunWorkflow: keys must be an array');
    return call(() => this.#native.dryRunWorkflow(name, keys == null ? null : keys.map(String), limit, Boolean(maskPii)));
  }

  // ---- schedules

  /**
   * Defines (or replaces) a cron schedule: `cron` (`min hour day month weekday`, optional leading seconds),
   * `job` (`{type: "sync", source}`, `{type: "evaluate", segment}`, `{type: "workflow", workflow}` or `{type:
   * "dispatch"}`), `timezone` (IANA; default the workspace's). Resolves to `{spec, nextDue, lastDue, lastRunAt,
   * lastDurationMs, lastError, runs, failures}`. Errors name the field (`schedule nightly.job.source`).
   */
  async schedule(name, { cron, job, timezone } = {}) {
    return call(() => this.#native.schedule(specText({ name, cron, timezone: timezone ?? undefined, job })));
  }

  /** A schedule with its state. */
  scheduleInfo(name) {
    return callSync(() => this.#native.scheduleInfo(name));
  }

  /** All schedules with their state, by name. */
  schedules() {
    return callSync(() => this.#native.schedules());
  }

  /** Deletes a schedule. */
  deleteSchedule(name) {
    callSync(() => this.#native.deleteSchedule(name));
  }

  /**
   * Runs every job due at or before `now` (a Date or RFC 3339 text; default the workspace clock's now) once —
   * however many due times were missed — then one dispatch pass. Resolves to `{jobs: [{schedule, due, ok,
   * outcome, nextDue}], dispatch}`; a failing job is reported (and recorded), not thrown.
   */
  async runDue(now) {
    let instant = null;
    if (now instanceof Date) instant = now.toISOString();
    else if (typeof now === 'string') instant = now;
    else if (now !== undefined && now !== null) throw invalid('runDue: now must be a Date or an RFC 3339 string');
    return call(() => this.#native.runDue(instant));
  }

  /**
   * Runs the scheduler (due jobs, then dispatch passes, sleeping at most `pollIntervalMs`, default 1000, between
   * passes) until `signal` (an AbortSignal, required) aborts; then it stops claiming, lets deliveries in flight
   * finish for up to `graceMs` (default 10000), releases the claims it still holds and resolves to `{passes,
   * jobs, failedJobs, delivered, released}`. Wire it to the process signals:
   *
   *     const ac = new AbortController();
   *     process.once('SIGTERM', () => ac.abort());
   *     process.once('SIGINT', () => ac.abort());
   *     const report = await ws.serve({ signal: ac.signal });
   */
  async serve({ pollIntervalMs = 1000, graceMs = 10000, signal, ...rest } = {}) {
    const unknown = Object.keys(rest);
    if (unknown.length) throw invalid(`serve: unknown option(s) ${unknown.join(', ')} (expected pollIntervalMs, graceMs, signal)`);
    if (!signal || typeof signal.addEventListener !== 'function') {
      throw invalid('serve: signal must be an AbortSignal (it is how serve is stopped)');
    }
    for (const [k, v] of [['pollIntervalMs', pollIntervalMs], ['graceMs', graceMs]]) {
      if (!Number.isInteger(v) || v < 0 || v > 0xffffffff || (k === 'pollIntervalMs' && v === 0)) {
        throw invalid(`serve: ${k} must be a whole number of milliseconds${k === 'pollIntervalMs' ? ' > 0' : ''}`);
      }
    }
    const token = native.cancelTokenNew();
    const onAbort = () => native.cancelTokenCancel(token);
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
    try {
      return await call(() => this.#native.serve(pollIntervalMs, graceMs, token));
    } finally {
      signal.removeEventListener('abort', onAbort);
      native.cancelTokenRelease(token);
    }
  }
}

// ------------------------------------------------------------------------------------------ Appender

/** A `limit` option: a whole number 0..2^32-1. */
function limitArg(what, limit) {
  if (!Number.isInteger(limit) || limit < 0 || limit > 0xffffffff) {
    throw invalid(`${what}: limit must be a non-negative whole number, got ${limit}`);
  }
  return limit;
}

/**
 * Appends small batches of events to one event entity with group commit (core's `segkit::appender::Appender`):
 * appends waiting while the writer commits the previous group are committed together as ONE ingest — one file,
 * one catalog commit — and small files are compacted after each commit. Get one from `ws.appender(entity)`.
 *
 *     const a = await ws.appender('click');
 *     await Promise.all(pages.map((rows) => a.append(rows)));   // concurrent appends share commits
 *     await a.close();
 */
class Appender {
  #native;
  #inflight = new Set();
  #closed = false;
  constructor(nativeAppender) {
    if (!(nativeAppender instanceof native.NativeAppender)) {
      throw invalid('use `await ws.appender(entity)` to get an Appender');
    }
    this.#native = nativeAppender;
  }

  /** The event entity appended to. */
  get entity() {
    return this.#native.entity;
  }

  /** Appends in flight (handed over, not yet committed or failed). */
  get pending() {
    return this.#inflight.size;
  }

  /**
   * Appends `data` — an array of plain objects (decoded strictly against the entity: errors name the path,
   * `rows[3].amount`), Arrow IPC bytes (Buffer / Uint8Array / ArrayBuffer) or an apache-arrow Table /
   * RecordBatch — as one append of at most MAX_EVENT_BATCH rows. Resolves to its receipt `{entity, rows,
   * snapshot, ingestId, groupRows, groupAppends, groupQuarantined}` once the group commit holding it is done.
   */
  async append(data) {
    if (this.#closed) throw invalid(`the appender of \`${this.entity}\` is closed`);
    let start;
    if (Array.isArray(data)) {
      const json = recordsToJson(data);
      start = () => this.#native.appendRows(json);
    } else if (isBytes(data)) {
      const buf = toBuffer(data instanceof ArrayBuffer ? new Uint8Array(data) : data);
      start = () => this.#native.appendIpc(buf);
    } else if (data !== null && typeof data === 'object' && 'schema' in data) {
      const arrow = apacheArrow('appending an apache-arrow Table');
      const table = data instanceof arrow.RecordBatch ? new arrow.Table(data) : data;
      if (!(table instanceof arrow.Table)) throw invalid('append: expected an apache-arrow Table or RecordBatch');
      const buf = toBuffer(arrow.tableToIPC(table, 'stream'));
      start = () => this.#native.appendIpc(buf);
    } else {
      throw invalid('append: data must be an array of plain objects, Arrow IPC bytes, or an apache-arrow Table / RecordBatch');
    }
    const p = call(start);
    this.#inflight.add(p);
    try {
      return await p;
    } finally {
      this.#inflight.delete(p);
    }
  }

  /**
   * Waits until every append in flight when called has settled; resolves to their receipts, or rejects with the
   * first error among them (the others are committed or failed all the same).
   */
  async flush() {
    const settled = await Promise.allSettled([...this.#inflight]);
    const failed = settled.find((s) => s.status === 'rejected');
    if (failed) throw failed.reason;
    return settled.map((s) => s.value);
  }

  /** Flushes (see `flush`), then closes: later appends reject with an InvalidArgumentError. */
  async close() {
    this.#closed = true;
    try {
      return await this.flush();
    } finally {
      callSync(() => this.#native.close());
    }
  }
}

if (typeof Symbol.asyncDispose === 'symbol') {
  /** `await using a = await ws.appender('click')` closes it on the way out. */
  Appender.prototype[Symbol.asyncDispose] = function asyncDispose() {
    return this.close();
  };
}

// ------------------------------------------------------------------------------------------ JS actions

/** A delivery as the custom action sees it (camelCase; `idempotencyKey` travels to the receiver). */
function deliveryFromNative(d) {
  return Object.freeze({
    idempotencyKey: d.idempotency_key,
    origin: d.origin,
    step: d.step,
    channel: d.channel,
    entity: d.entity,
    entityKey: d.entity_key,
    attributes: d.attributes,
    content: d.content,
    attempt: d.attempt,
  });
}

/** The outcome object core parses (`Outcome::from_json`); anything else becomes an explained permanent failure. */
function outcomeToNative(out) {
  if (out === null || typeof out !== 'object') {
    return {
      status: 'permanent',
      reason: `execute returned ${out === null ? 'null' : typeof out}; return {status: "delivered" | "retryable" | "permanent", ...}`,
    };
  }
  const { retryAfter, ...rest } = out;
  return retryAfter === undefined ? rest : { ...rest, retry_after: retryAfter };
}

/** The function the native adapter calls: delivery JSON text in, outcome JSON text out; never rejects. */
function actionAdapter(fn) {
  const kind = `js:${(fn.name || 'anonymous').replace(/\s+/g, '_')}`; // `bound f` → `js:bound_f`
  return {
    kind,
    execute: async (deliveryJson) => {
      try {
        const out = await fn(deliveryFromNative(JSON.parse(deliveryJson)));
        return JSON.stringify(outcomeToNative(out));
      } catch (e) {
        const what = e && e.name ? `${e.name}: ${e.message}` : String(e);
        return JSON.stringify({ status: 'retryable', reason: `execute threw ${what}` });
      }
    },
  };
}

/** A delivery given to checkAction (camelCase, as actions receive it) → core's snake_case JSON text. */
function deliveryToNative(d) {
  if (d === undefined || d === null) return null;
  if (!isPlainObject(d)) throw invalid('checkAction: delivery must be a plain object');
  const map = { idempotencyKey: 'idempotency_key', entityKey: 'entity_key' };
  const out = {};
  for (const [k, v] of Object.entries(d)) out[map[k] ?? k] = v;
  return JSON.stringify(out);
}

// ------------------------------------------------------------------------------------------ JS sources

/** An object implementing segkit's Source protocol: `schema()` and `scan()` (see index.d.ts `Source`). */
function isJsSource(s) {
  return s !== null && typeof s === 'object' && typeof s.schema === 'function' && typeof s.scan === 'function';
}

function apacheArrow(what) {
  try {
    return require('apache-arrow');
  } catch (e) {
    throw invalid(`${what} needs the apache-arrow package (npm install apache-arrow): ${e.message}`);
  }
}

function isBytes(x) {
  return x instanceof Uint8Array || x instanceof ArrayBuffer;
}

/** A schema (apache-arrow Schema or Table, or Arrow IPC bytes) as Arrow IPC. */
function schemaToIpc(schema) {
  if (isBytes(schema)) return toBuffer(schema instanceof ArrayBuffer ? new Uint8Array(schema) : schema);
  const arrow = apacheArrow('a JavaScript source');
  if (schema instanceof arrow.Table) schema = schema.schema;
  if (!(schema instanceof arrow.Schema)) {
    throw invalid('schema() must return an apache-arrow Schema or Table, or Arrow IPC bytes');
  }
  return toBuffer(arrow.tableToIPC(new arrow.Table(schema), 'stream'));
}

/**
 * One page of a scan as bytes: Arrow IPC (bytes, an apache-arrow Table or RecordBatch) or, for an array of plain
 * objects, their JSON text.
 */
function pageToIpc(page) {
  if (isBytes(page)) return toBuffer(page instanceof ArrayBuffer ? new Uint8Array(page) : page);
  if (Array.isArray(page)) return Buffer.from(recordsToJson(page)); // decoded against the declared schema natively
  const arrow = apacheArrow('a JavaScript source');
  if (page instanceof arrow.RecordBatch) page = new arrow.Table(page);
  if (!(page instanceof arrow.Table)) {
    const what = page === null ? 'null' : typeof page === 'object' ? page.constructor?.name ?? 'object' : typeof page;
    throw invalid(`scan() yielded ${what}, not a page (Arrow IPC bytes, an apache-arrow Table or RecordBatch, or an array of objects)`);
  }
  return toBuffer(arrow.tableToIPC(page, 'stream'));
}

/** The three functions the native adapter calls: the schema, open a scan, the next page of a scan. */
function sourceAdapter(source) {
  const name =
    typeof source.name === 'string' && source.name ? source.name : `js:${source.constructor?.name ?? 'Object'}`;
  const scans = new Map();
  let nextId = 1;
  return {
    name,
    schemaFn: async () => schemaToIpc(await source.schema()),
    openFn: async () => {
      let out = await source.scan();
      if (isBytes(out) || (out !== null && typeof out === 'object' && !out[Symbol.asyncIterator] && !Array.isArray(out) && 'schema' in out)) {
        out = [out]; // a single page
      }
      const iterator = out?.[Symbol.asyncIterator]?.() ?? out?.[Symbol.iterator]?.();
      if (!iterator) throw invalid('scan() must return pages: an (async) iterable, or one Table or IPC buffer');
      const id = nextId++;
      scans.set(id, iterator);
      return id;
    },
    nextFn: async (id) => {
      const iterator = scans.get(id);
      const step = await iterator.next();
      if (step.done) {
        scans.delete(id);
        return null;
      }
      return pageToIpc(step.value);
    },
  };
}

/** Conformance checks for sources written in JavaScript (the suite segkit's Rust connectors pass). */
/**
 * Proposes an entity named `name` from a sample of `source` (a path/URL string or a source config object such
 * as `{type: "csv", path: "customers.csv", encoding: "gbk"}`). Nothing is defined: check and edit the proposal,
 * then `ws.defineEntity(p.entity)` and `ws.ingest(name, source, {mapping: p.mapping})`.
 * Resolves to `{entity, mapping, fields: [{source, attribute, type, nulls, unique}], sampledRows, notes}`.
 */
async function inferEntity(source, name, options = {}) {
  const { key = null, sampleRows = null } = options ?? {};
  if (typeof source === 'string') {
    return call(() => native.inferEntity(source, null, name, key, sampleRows));
  }
  if (isPlainObject(source)) {
    return call(() => native.inferEntity(null, source, name, key, sampleRows));
  }
  throw invalid('inferEntity source must be a path/URL string or a source config object such as {type: "csv", path}');
}

const testing = {
  /**
   * Checks that `source` has a stable non-empty name, a stable schema, scans that match the schema and repeatable
   * scans; rejects with an IngestError describing the first violation. Give it a small fixture with rows.
   */
  async checkSource(source) {
    if (!isJsSource(source)) throw invalid('checkSource needs an object with schema() and scan()');
    const a = sourceAdapter(source);
    return call(() => native.checkJsSource(a.name, a.schemaFn, a.openFn, a.nextFn));
  },

  /**
   * Runs segkit's action conformance suite on `action` (an (async) function or a built-in config object):
   * declarations are sane; `options.delivery` (default: a generic one filling every declared part) is delivered
   * within `timeoutMs` (default 30000); executing it again with the same idempotency key is delivered too; a
   * delivery without content is delivered or permanent, never retryable; no value of `secrets` shows in an
   * outcome; with `received` (an (async) function listing the idempotency keys the receiver saw), the key reached
   * it. Rejects with a DefinitionError naming the first violation. `options`: `{parts, maxRatePerSecond,
   * delivery, secrets, timeoutMs, received}`.
   */
  async checkAction(action, options = {}) {
    const { parts, maxRatePerSecond, delivery, secrets = [], timeoutMs, received, ...rest } = options ?? {};
    const unknown = Object.keys(rest);
    if (unknown.length) throw invalid(`checkAction: unknown option(s) ${unknown.join(', ')}`);
    if (received !== undefined && typeof received !== 'function') throw invalid('checkAction: received must be a function');
    const d = deliveryToNative(delivery);
    let kind;
    let key;
    if (typeof action === 'function') {
      const a = actionAdapter(action);
      kind = a.kind;
      key = await call(() =>
        native.checkJsAction(a.kind, a.execute, parts ?? null, maxRatePerSecond ?? null, d, secrets, timeoutMs ?? null),
      );
    } else if (isPlainObject(action)) {
      kind = String(action.type);
      key = await call(() => native.checkActionConfig(action, d, secrets, timeoutMs ?? null));
    } else {
      throw invalid('checkAction: action must be an (async) function or a config object tagged by `type`');
    }
    if (received !== undefined) {
      const keys = Array.from(await received(), String);
      callSync(() => native.checkKeyReceived(kind, key, keys));
    }
  },
};

module.exports = {
  Workspace,
  SegmentRun,
  Appender,
  SegkitError,
  DefinitionError,
  NotFoundError,
  RuleError,
  IngestError,
  ConflictError,
  InvalidArgumentError,
  StorageError,
  EngineError,
  InternalError,
  CancelledError,
  testing,
  inferEntity,
  version: native.version,
  /** Bounds core enforces on rules (from the native module; see docs/limits.md). */
  limits: Object.freeze(native.ruleLimits()),
  /** @internal */
  convertError,
  /** @internal test hook: a real panic inside an async native call */
  __panicInTask: (message) => call(() => native.__panicInTask(message)),
  /** @internal test hook: a real panic inside a synchronous native call */
  __panicSync: (message) => callSync(() => native.__panicSync(message)),
};
