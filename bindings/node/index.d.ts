// Type declarations for segkit (Node.js). Hand-written; kept in step with index.js.
/// <reference types="node" />

/** Attribute types: string, int32, int64 (int), float64 (float), bool, date, timestamp, json, list<T>. */
export type DataTypeName =
  | 'string'
  | 'int32'
  | 'int64'
  | 'int'
  | 'float64'
  | 'float'
  | 'double'
  | 'bool'
  | 'boolean'
  | 'date'
  | 'timestamp'
  | 'json'
  | `list<${string}>`
  | (string & {});

export interface AttributeSpec {
  type: DataTypeName;
  /** Default true; keys are never nullable. */
  nullable?: boolean;
  /** Whether rules may filter on it (default true). */
  filterable?: boolean;
  /** Personal data: masked in previews, errors and logs. */
  pii?: boolean;
  /** Rules often filter on it: stored files are sorted by it. */
  indexed?: boolean;
  description?: string;
}

export interface LinkSpec {
  /** Attribute of this entity holding the foreign key. */
  attribute: string;
  /** The profile entity it points to. */
  entity: string;
  /** Attribute of the target (default: its key). */
  target?: string;
}

export interface EntityDefinition {
  name: string;
  /** Default "profile". */
  kind?: 'profile' | 'event';
  /** Key attribute (required for profiles). */
  key?: string;
  /** Event time attribute (events only). */
  timestamp?: string;
  /** Attribute name → type name or full spec, in storage order. */
  attributes: Record<string, DataTypeName | AttributeSpec> | Array<AttributeSpec & { name: string }>;
  links?: LinkSpec[];
  description?: string;
}

export interface Attribute {
  type: string;
  nullable: boolean;
  filterable: boolean;
  pii: boolean;
  indexed: boolean;
  description?: string;
}

export interface Entity {
  name: string;
  kind: 'profile' | 'event';
  key: string | null;
  timestamp: string | null;
  /** In storage order. */
  attributes: Record<string, Attribute>;
  links: LinkSpec[];
  description: string | null;
}

/** Where one attribute's values come from. */
export type FieldMappingSpec =
  | string
  | {
      source?: string;
      constant?: unknown;
      transforms?: Array<
        'trim' | 'lower' | 'upper' | { parse_timestamp: string } | { cast: string } | { split: string } | string | object
      >;
    };

export interface IngestOptions {
  /** Attribute name → source field name or mapping. */
  mapping?: Record<string, FieldMappingSpec>;
  /** Default: upsert for profiles, append for events. */
  mode?: 'append' | 'upsert' | 'full_refresh';
  /** Called with the progress (at most every 200 ms, and once at the end with `done`). */
  onProgress?: (progress: SyncProgress) => void;
  /** Aborting it cancels the ingest: the promise rejects with CancelledError; the snapshot stays. */
  signal?: AbortSignal;
}

/** A connector config tagged by `type`, e.g. `{type: "csv", path: "users.csv", delimiter: ";"}`. */
export interface SourceConfig {
  type?:
    | 'csv' | 'tsv' | 'ndjson' | 'jsonl' | 'json' | 'parquet'
    | 'arrow_ipc' | 'arrow' | 'ipc' | 'feather'
    | 'postgres' | 'postgresql' | 'mysql' | 'mariadb' | 'sqlite' | 'sqlite3'
    | (string & {});
  path?: string;
  url?: string;
  delimiter?: string;
  header?: boolean;
  options?: Record<string, string | number | boolean>;
  batch_size?: number;
  /** Databases: the password as a reference `env:NAME` (never the password itself). */
  password?: string;
  /** Databases: a table (`name` or `schema.name`) or a `query`, not both. */
  table?: string;
  query?: string;
  /** Databases: incremental reads by a cursor column and a unique tie-breaker. */
  cursor?: { column: string; tie_breaker?: string };
  /** Databases: casts done by the database for columns whose type does not map to Arrow. */
  casts?: Record<string, 'string' | 'float64' | 'int64'>;
  [key: string]: unknown;
}

/**
 * What to ingest: a path or URL (format from the extension), an Arrow IPC stream/file in a Buffer or
 * Uint8Array (e.g. `tableToIPC(table)`), an array of plain objects, or a source config.
 */
/** A page of a JavaScript source: Arrow IPC bytes, an apache-arrow Table or RecordBatch, or plain objects. */
export type SourcePage = Uint8Array | ArrayBuffer | import('apache-arrow').Table | import('apache-arrow').RecordBatch | Array<Record<string, unknown>>;

/**
 * A source written in JavaScript — an HTTP API read page by page, say. Pages are converted to the declared schema
 * (JavaScript numbers to int64, for example); a value that does not convert is an error, never a silent null.
 */
export interface Source {
  /** Names the source in reports and errors (default `js:<constructor name>`). */
  name?: string;
  /** The fields every page has: an apache-arrow Schema or Table, or Arrow IPC bytes. */
  schema(): Promise<import('apache-arrow').Schema | import('apache-arrow').Table | Uint8Array> | import('apache-arrow').Schema | import('apache-arrow').Table | Uint8Array;
  /** The pages: an (async) iterable such as an async generator, or one Table / IPC buffer. Called once per scan. */
  scan(): AsyncIterable<SourcePage> | Iterable<SourcePage> | SourcePage | Promise<AsyncIterable<SourcePage> | Iterable<SourcePage> | SourcePage>;
}

export type IngestSource = string | Uint8Array | ArrayBuffer | Array<Record<string, unknown>> | SourceConfig | Source;

/** Conformance checks for sources written in JavaScript. */
/** A proposed entity from {@link inferEntity}. */
export interface InferredEntity {
  entity: { name: string; kind: 'profile'; key: string; attributes: Array<{ name: string; type: string }> };
  /** attribute → source field, for attributes whose name differs from the field's. */
  mapping: Record<string, string>;
  fields: Array<{ source: string; attribute: string; type: string; nulls: number; unique: boolean }>;
  sampledRows: number;
  notes: string[];
}
/** Proposes an entity from a sample of a path/URL or a source config; never defines anything. */
export declare function inferEntity(
  source: string | Record<string, unknown>,
  name: string,
  options?: { key?: string; sampleRows?: number },
): Promise<InferredEntity>;

export declare const testing: {
  /** Rejects with an IngestError describing the first violation of segkit's Source contract. */
  checkSource(source: Source): Promise<void>;
  /** Rejects with a DefinitionError describing the first violation of segkit's Action contract. */
  checkAction(action: ActionFunction | ActionConfig, options?: CheckActionOptions): Promise<void>;
};

/** What `vacuum` removed. */
export interface VacuumReport {
  snapshotsRemoved: number;
  filesDeleted: number;
  /** Files no snapshot, ingest or run refers to (left by a crash), older than an hour. */
  orphansDeleted: number;
  bytesFreed: number;
}

export interface QuarantinedRow {
  /** 1-based row number in the source. */
  row: number;
  reason: string;
}

export interface IngestReport {
  id: string;
  entity: string;
  source: string;
  mode: 'append' | 'upsert' | 'full_refresh';
  rowsRead: number;
  rowsWritten: number;
  rowsInserted: number;
  rowsUpdated: number;
  rowsQuarantined: number;
  /** Snapshot committed, or null if nothing changed. */
  snapshot: number | null;
  quarantineFile: string | null;
  quarantineSample: QuarantinedRow[];
  ignoredFields: string[];
  durationMs: number;
}

/** A named source: its definition and sync state. */
export interface NamedSource {
  name: string;
  entity: string;
  /** The connector config, tagged by `type`; secrets only as `env:NAME` references. */
  config: Record<string, unknown>;
  mapping: Record<string, unknown>;
  mode: 'append' | 'upsert' | 'full_refresh' | null;
  /** The cursor committed by the last sync (incremental sources). */
  cursor?: unknown;
  /** The entity snapshot the last committing sync produced. */
  snapshot?: number | null;
  updatedAt?: string;
}

export interface SourceOptions {
  mapping?: Record<string, unknown>;
  mode?: 'append' | 'upsert' | 'full_refresh';
}

/** How far a sync has got. */
export interface SyncProgress {
  rowsRead: number;
  /** Rows quarantined so far. */
  rowsRejected: number;
  /** Arrow bytes read so far. */
  bytesRead: number;
  batches: number;
  elapsedMs: number;
  /** True on the last call (everything read; the commit follows). */
  done: boolean;
}

export interface SyncOptions {
  onProgress?: (progress: SyncProgress) => void;
  /** Aborting it cancels the sync: the promise rejects with CancelledError; snapshot and cursor stay. */
  signal?: AbortSignal;
}
/** What a change of a static-list segment's keys did. */
export interface StaticListReport {
  segment: string;
  version: number;
  operation: 'replace' | 'add' | 'remove';
  /** Keys read from the upload (duplicates included). */
  keysRead: number;
  /** Distinct keys in the list now. */
  keyCount: number;
  /** Keys of the list an entity has now. */
  matched: number;
  /** Keys of the list no entity has now (kept; members once such an entity is ingested). */
  unmatched: number;
}

/** One committed version of a static list. */
export interface StaticListVersion {
  segment: string;
  version: number;
  file: string;
  keyCount: number;
  bytes: number;
  operation: 'replace' | 'add' | 'remove';
  createdAt: string;
}

/** Keys of a static-list segment: an array, or an Arrow IPC stream/file (one column, or one named after the key). */
export type StaticKeys = Array<number | bigint | string> | Buffer | Uint8Array | ArrayBuffer;

export type RuleDialect = 'auto' | 'segkit' | 'querybuilder' | 'jsonlogic';

export interface SegmentOptions {
  entity: string;
  /** Rule tree (object or JSON text) in segkit's, react-querybuilder's or JsonLogic's dialect. */
  rule: object | string;
  /** Default "auto" (detected). */
  dialect?: RuleDialect;
  description?: string;
  /** Deterministic split of the members; each run's members then carry a `variant` column. */
  split?: SplitSpec;
  /** Keep only this many runs (membership versions); default: all. */
  keepRuns?: number;
}

export interface ExplainNode {
  label: string;
  /** true, false, or null for unknown. */
  value: boolean | null;
  detail: string | null;
  children: ExplainNode[];
}

export interface Explanation {
  segment: string;
  key: string;
  member: boolean;
  root: ExplainNode;
  /** A readable tree. */
  text: string;
}

/** A page of `Workspace.membersPage`. */
export interface MembersPage {
  /** The run read; pass it back to keep paging the same run. */
  run: number;
  /** The page's member keys, in stored order, as an Arrow IPC stream. */
  membersIpc: Buffer;
  /** Whether rows follow this page. */
  more: boolean;
}

export interface DryRunResult {
  count: number;
  /** The run compared with; null when the segment was never evaluated. */
  againstRun: number | null;
  wouldEnter: Key[];
  wouldExit: Key[];
  membersIpc: Buffer;
}

/** A holdout and named variants by percent (summing to 100), assigned by a stable hash of (key, segment, salt). */
export interface SplitSpec {
  holdout?: number;
  variants: { name: string; percent: number }[];
  salt?: string;
}

export interface SegmentDefinition {
  name: string;
  entity: string;
  /** The rule in segkit's dialect, whatever dialect it was defined in. */
  rule: object;
  description: string | null;
  split: SplitSpec | null;
  keep_runs?: number;
}

export interface RunRecord {
  segment: string;
  run: number;
  startedAt: string;
  durationMs: number;
  memberCount: number;
  entered: number;
  exited: number;
  membershipFile: string;
  snapshot: number;
}

/** An entity key: a number, a BigInt when an int64 key is beyond ±2^53, or a string. */
export type Key = number | bigint | string;

export interface WorkspaceOptions {
  /** Keep entity data at this URL (`s3://bucket/prefix`, `file:///…`) instead of the workspace directory. */
  storeUrl?: string;
  /** object_store options; secrets as `env:NAME` references. */
  storeOptions?: Record<string, string>;
  /** Query parallelism (default: number of cores). */
  targetPartitions?: number;
  /**
   * Every catalog commit waits until it is on disk, and every Parquet file it references is synced first, so a
   * power loss cannot undo a commit (default false: commits survive a crash of the process, not of the machine).
   */
  durableCommits?: boolean;
  /**
   * The most claimed deliveries a dispatch processes at once, so the most a killed process may send again
   * (1 to 65,536; default 2 × concurrency, at least 1,024 with `durableCommits`; see `deliveryWindow()`).
   */
  deliveryWindow?: number;
  /**
   * How long a dispatcher's claim on a delivery lasts, in milliseconds (default 60,000, at least 200, at most 86,400,000; every
   * process sharing the workspace should use the same).
   */
  leaseMs?: number;
  /** Bytes an ingest sorts in memory before it spills to temporary files (default 64 MiB, at least 16 MiB). */
  ingestMemory?: number;
}

/** The result of one segment evaluation. */
export declare class SegmentRun {
  private constructor();
  readonly segment: string;
  readonly run: number;
  readonly count: number;
  readonly durationMs: number;
  readonly snapshot: number;
  readonly startedAt: string;
  /** Keys that entered since the previous run, ascending. */
  readonly entered: Key[];
  /** Keys that exited since the previous run, ascending. */
  readonly exited: Key[];
  /** Member keys, ascending. */
  memberKeys(): Key[];
  /** Member keys as an Arrow IPC stream (read with apache-arrow's `tableFromIPC`). */
  membersIpc(): Buffer;
  enteredIpc(): Buffer;
  exitedIpc(): Buffer;
  toJSON(): object;
}

export declare class Workspace {
  private constructor();
  /** Opens (creating if needed) the workspace in directory `path`. */
  static open(path: string, options?: WorkspaceOptions): Promise<Workspace>;
  readonly path: string;
  /** Whether every commit waits until it is on disk (the `durableCommits` option). */
  readonly durableCommits: boolean;
  /**
   * How many claimed deliveries a dispatch with `concurrency` send slots (default 8) processes at once: the
   * `deliveryWindow` option, else 2 × concurrency (at least 1,024 with `durableCommits`, where each outcome waits
   * for a sync to disk). At most this many are sent with their outcome not yet committed, which is what a process
   * killed mid-dispatch may send again (with the same idempotency keys).
   */
  deliveryWindow(concurrency?: number): number;
  /** Fixes "now" at an instant (RFC 3339 text or Date), or restores the system clock with null. */
  setClock(instant: string | Date | null): void;
  /** Sets the IANA time zone ('Europe/Berlin') that calendar windows and "today" count in (default UTC). */
  setTimeZone(name: string): void;
  /** "Now" by the workspace clock, RFC 3339. */
  now(): string;

  defineEntity(definition: EntityDefinition): Promise<Entity>;
  entity(name: string): Entity;
  entities(): Entity[];
  /**
   * Adds attribute `name` (a type string or `{type, pii, nullable, …}`) to `entity`; resolves to the entity.
   * ConflictError if it exists; DefinitionError naming the field for a bad spec.
   */
  addAttribute(entity: string, name: string, attribute: string | Omit<AttributeSpec, 'name'>): Promise<Entity>;
  /** What depends on an entity (NotFoundError if there is none). */
  entityDependents(name: string): Promise<EntityDependents>;
  /**
   * Deletes an entity with its data; ConflictError while anything depends on it (with `force`, its segments and
   * sources go first). Resolves to what was deleted along with it.
   */
  deleteEntity(name: string, options?: { force?: boolean }): Promise<EntityDependents>;
  /** A group-commit appender for an event entity. */
  appender(entity: string): Promise<Appender>;
  /** Merges the first run of small files of an event entity into one (a new snapshot reading the same rows). */
  compact(entity: string): Promise<CompactReport>;

  // ---- monitoring
  /** Every sync and ingest, oldest first, at most `limit` (default 1000). */
  syncs(options?: { limit?: number }): Promise<SyncRecord[]>;
  /** Audit rows matching every filter given, oldest first (or `newestFirst`), at most `limit` (default 1000). */
  auditEntries(filter?: AuditFilter): Promise<AuditEntry[]>;
  /** Appends a row to the audit log (never put a secret or a pii value in `detail`). */
  audit(actor: string, action: string, target: string, detail?: string | null): Promise<void>;
  /** The starts of a workflow (one per trigger version), newest first, at most `limit` (default 100). */
  workflowRuns(name: string, options?: { limit?: number }): Promise<WorkflowRun[]>;

  ingest(entity: string, source: IngestSource, options?: IngestOptions): Promise<IngestReport>;
  ingestHistory(entity: string): IngestReport[];

  /** Defines (or replaces) a named source; inline secrets are refused (use `env:NAME`). */
  defineSource(name: string, entity: string, config: Record<string, unknown>, options?: SourceOptions): Promise<NamedSource>;
  source(name: string): NamedSource;
  sources(): NamedSource[];
  deleteSource(name: string): Promise<void>;
  /** Syncs a named source incrementally; the cursor commits with the snapshot. */
  sync(name: string, options?: SyncOptions): Promise<IngestReport>;
  /** Quarantined rows (ingest_id, row, reason, record) as an Arrow IPC stream. */
  quarantine(entity: string): Promise<Buffer>;
  /** Forgets an entity's quarantined rows (raw records and report samples; counts stay); resolves to how many. */
  clearQuarantine(entity: string): Promise<number>;
  /** Deletes data files only snapshots older than each entity's latest `keepSnapshots` (default 2) use. */
  vacuum(keepSnapshots?: number): Promise<VacuumReport>;

  defineSegment(name: string, options: SegmentOptions): Promise<SegmentDefinition>;
  /** Evaluates an edited (or new) segment without saving anything. */
  dryRun(name: string, options: Omit<SegmentOptions, 'description'>): Promise<DryRunResult>;
  /** Stored members of the latest run that started at or before `instant`, as an Arrow IPC stream. */
  membersAsOf(name: string, instant: string | Date): Promise<Buffer>;
  /** The per-run log of entered / exited keys (`run`, `started_at`, key, `change`), as an Arrow IPC stream. */
  changes(name: string): Promise<Buffer>;
  /** Why entity `key` is or is not a member of segment `name` now. */
  explain(name: string, key: Key): Promise<Explanation>;
  segment(name: string): SegmentDefinition;
  segments(): SegmentDefinition[];
  deleteSegment(name: string): Promise<void>;
  evaluate(name: string): Promise<SegmentRun>;
  /** Defines (or replaces) a static-list segment of `entity`; rules reference it like any segment. */
  defineStaticSegment(name: string, options: { entity: string; keys: StaticKeys }): Promise<StaticListReport>;
  addStaticKeys(name: string, keys: StaticKeys): Promise<StaticListReport>;
  removeStaticKeys(name: string, keys: StaticKeys): Promise<StaticListReport>;
  /** The current keys of a static-list segment, ascending, as an Arrow IPC stream. */
  staticKeys(name: string): Promise<Buffer>;
  staticListVersions(name: string): StaticListVersion[];
  count(name: string): Promise<number>;
  /** Up to `n` (default 10) member rows, pii masked, as an Arrow IPC stream. */
  preview(name: string, n?: number): Promise<Buffer>;
  /** Up to `n` (default 10) member rows, pii masked, as plain objects (int64 beyond 2^53 loses precision). */
  previewRows(name: string, n?: number): Promise<Array<Record<string, unknown>>>;
  /** Stored member keys of the latest run, or of run number `run`, as an Arrow IPC stream. */
  members(name: string, run?: number | null): Promise<Buffer>;
  /** One page of a run's stored member keys (the latest run unless `run`), from `offset` (default 0), at most `limit` (default 1000, at most MAX_PAGE_ROWS). */
  membersPage(name: string, options?: { run?: number | null; offset?: number; limit?: number }): Promise<MembersPage>;
  runs(name: string): RunRecord[];
  /** SQL over the entity tables, as an Arrow IPC stream. */
  sql(query: string): Promise<Buffer>;

  // ---- workflows
  /**
   * Registers an action steps can name: a custom (async) function or a built-in config `{type: 'webhook', …}`.
   * A thrown error or rejected promise counts as retryable.
   */
  registerAction(name: string, action: ActionFunction | ActionConfig, options?: ActionOptions): void;
  /** What `apply` would do, changing nothing; `project` is a path to a project file or directory, or TOML / YAML text. */
  plan(project: string, options?: ApplyOptions): Promise<ProjectPlan>;
  /** Applies a project in one catalog transaction (all changes or none). */
  apply(project: string, options?: ApplyOptions): Promise<ProjectPlan>;
  /** The workspace's definitions as project text. */
  export(options?: { format?: 'toml' | 'yaml' }): string;
  defineTemplate(name: string, options: { channel: string; parts: Record<string, string>; entity?: string }): Promise<TemplateSpec>;
  template(name: string): TemplateSpec;
  /** The rendered parts of a template for one entity (nothing is sent); `maskPii` renders pii values as `***`. */
  render(template: string, key: string | number | bigint, options?: { maskPii?: boolean }): Promise<Record<string, string>>;
  defineWorkflow(
    name: string,
    options: { trigger: TriggerSpec; steps: StepSpec[]; policies?: PoliciesSpec },
  ): Promise<WorkflowSpec>;
  workflow(name: string): WorkflowSpec;
  workflows(): WorkflowSpec[];
  deleteWorkflow(name: string): void;
  /** Starts a workflow for `keys` (default: every member / entity); resolves to the ledger rows added. */
  trigger(name: string, keys?: Array<string | number | bigint> | null): Promise<number>;
  dispatchDue(options?: { limit?: number; concurrency?: number }): Promise<DispatchReport>;
  /** Dispatches the whole due backlog, `batch` rows per claim; resolves to the report summed over the claims. */
  dispatchBacklog(options?: { batch?: number; concurrency?: number }): Promise<DispatchReport>;
  deliveries(filter?: { workflow?: string; status?: DeliveryStatus; ids?: number[]; limit?: number }): LedgerRow[];
  /** Sends dead deliveries again (by ids and / or workflow; all dead ones without a filter). */
  replay(filter?: { ids?: number[]; workflow?: string }): Promise<number>;
  suppress(channel: string, keys: Array<string | number | bigint>): Promise<number>;
  unsuppress(channel: string, keys: Array<string | number | bigint>): Promise<number>;
  /** Who would receive what if the workflow were triggered now; nothing is sent or written. */
  dryRunWorkflow(
    name: string,
    keys?: Array<string | number | bigint> | null,
    limit?: number,
    options?: { maskPii?: boolean },
  ): Promise<DryRunRow[]>;

  // ---- schedules
  /** Defines (or replaces) a cron schedule; errors name the field (`schedule nightly.job.source`). */
  schedule(name: string, options: { cron: string; job: JobSpec; timezone?: string | null }): Promise<ScheduleInfo>;
  scheduleInfo(name: string): ScheduleInfo;
  schedules(): ScheduleInfo[];
  deleteSchedule(name: string): void;
  /** Runs the jobs due at or before `now` (default: the workspace clock's now) once each, then one dispatch pass. */
  runDue(now?: Date | string | null): Promise<RunDueReport>;
  /**
   * Runs the scheduler until `signal` aborts (wire it to `process.once('SIGTERM', () => ac.abort())`), then
   * shuts down gracefully: in-flight deliveries get `graceMs`, claims still held are released.
   */
  serve(options: { signal: AbortSignal; pollIntervalMs?: number; graceMs?: number }): Promise<ServeReport>;
}

/** What depends on an entity, or what was deleted along with it (names). */
export interface EntityDependents {
  segments: string[];
  sources: string[];
  workflows: string[];
  templates: string[];
  linkedFrom: string[];
}

/** What one `compact` did (`filesMerged` 0: nothing to do). */
export interface CompactReport {
  filesMerged: number;
  filesWritten: number;
  rows: number;
  snapshot: number | null;
}

/** One recorded sync or ingest: the ingest report's fields plus its named source and when it was recorded. */
export interface SyncRecord extends IngestReport {
  /** The named source synced, or null for a direct ingest. */
  namedSource: string | null;
  /** RFC 3339. */
  createdAt: string;
}

/** Which audit rows `auditEntries` selects. */
export interface AuditFilter {
  actor?: string | null;
  action?: string | null;
  target?: string | null;
  /** Only ids greater than this (the next page after the last id seen). */
  afterId?: number | null;
  /** Only ids less than this. */
  beforeId?: number | null;
  newestFirst?: boolean;
  limit?: number;
}

/** One row of the audit log. */
export interface AuditEntry {
  id: number;
  /** RFC 3339, workspace clock. */
  at: string;
  actor: string;
  action: string;
  target: string;
  detail: string | null;
}

/** One start of a workflow (a trigger version) and how its ledger rows stand now. */
export interface WorkflowRun {
  /** `run:3`, `manual:2`, `schedule:nightly:…`. */
  trigger: string;
  /** Ms since the epoch. */
  startedAt: number;
  updatedAt: number;
  entities: number;
  rows: number;
  /** Ledger rows by status. */
  statuses: Record<string, number>;
}

/** The answer to one append, given once its rows are committed. */
export interface AppendReceipt {
  entity: string;
  rows: number;
  snapshot: number | null;
  /** The ingest (in `ingestHistory`) that committed them. */
  ingestId: string;
  /** Rows, appends and quarantined rows of the whole group commit. */
  groupRows: number;
  groupAppends: number;
  groupQuarantined: number;
}

/**
 * Group-commit appends to one event entity (from `ws.appender(entity)`): concurrent appends share one file and
 * one catalog commit.
 */
export declare class Appender {
  private constructor();
  readonly entity: string;
  /** Appends in flight. */
  readonly pending: number;
  /**
   * One append of at most MAX_EVENT_BATCH rows: plain objects (decoded strictly; errors name `rows[i].field`),
   * Arrow IPC bytes, or an apache-arrow Table / RecordBatch. Resolves once committed.
   */
  append(data: Array<Record<string, unknown>> | Uint8Array | ArrayBuffer | object): Promise<AppendReceipt>;
  /** Waits for every append in flight; resolves to their receipts or rejects with the first error. */
  flush(): Promise<AppendReceipt[]>;
  /** Flushes, then refuses later appends. */
  close(): Promise<AppendReceipt[]>;
}

/** What a schedule does when it is due. */
export type JobSpec =
  | { type: 'sync'; source: string }
  | { type: 'evaluate'; segment: string }
  | { type: 'workflow'; workflow: string }
  | { type: 'dispatch' };

/** A schedule's definition (core's field names). */
export interface ScheduleSpec {
  name: string;
  cron: string;
  timezone: string | null;
  job: JobSpec;
}

/** A schedule with its state; instants are RFC 3339 text. */
export interface ScheduleInfo {
  spec: ScheduleSpec;
  nextDue: string | null;
  lastDue: string | null;
  lastRunAt: string | null;
  lastDurationMs: number | null;
  lastError: string | null;
  runs: number;
  failures: number;
}

/** One job `runDue` performed: `outcome` is what it did, or why it failed when `ok` is false. */
export interface JobRun {
  schedule: string;
  due: string;
  ok: boolean;
  outcome: string;
  nextDue: string | null;
}

export interface RunDueReport {
  jobs: JobRun[];
  dispatch: DispatchReport;
}

export interface ServeReport {
  passes: number;
  jobs: number;
  failedJobs: number;
  delivered: number;
  /** Claims given back at shutdown (not started, or still running after the grace period). */
  released: number;
}

/** One row of a dry run. */
export interface DryRunRow {
  entityKey: string;
  step: string | null;
  channel: string | null;
  status: 'send' | 'held' | 'suppressed' | 'capped' | 'reentry' | 'exit' | 'failed';
  /** Rendered template parts (for `send` and `held`). */
  content: Record<string, string>;
  detail: string | null;
}

/** A delivery as a custom action receives it. Pass `idempotencyKey` on: dispatch is at-least-once. */
export interface Delivery {
  readonly idempotencyKey: string;
  readonly origin: string;
  readonly step: string;
  readonly channel: string;
  readonly entity: string;
  readonly entityKey: string;
  readonly attributes: Record<string, unknown>;
  /** Rendered template parts by name (subject, text, html, body, …). */
  readonly content: Record<string, string>;
  /** From 1. */
  readonly attempt: number;
}

/** What a custom action returns. */
export type Outcome =
  | { status: 'delivered'; receipt?: string | null }
  | { status: 'retryable'; reason: string; /** seconds */ retryAfter?: number | null }
  | { status: 'permanent'; reason: string };

export type ActionFunction = (delivery: Delivery) => Outcome | Promise<Outcome>;

/** A built-in action config tagged by `type` (webhook, smtp, wecom, dingtalk, feishu, sms, jsonl); secrets as `env:NAME`. */
export interface ActionConfig {
  type: string;
  [field: string]: unknown;
}

export interface ActionOptions {
  /** Template parts the action reads (core's `Action::parts`; checkAction fills them in its sample delivery). */
  parts?: string[];
  /** The receiver's rate limit (core's `Action::max_rate_per_second`), in deliveries per second. */
  maxRatePerSecond?: number;
}

export interface TemplateSpec {
  name: string;
  channel: string;
  entity?: string | null;
  parts: Record<string, string>;
}

export type TriggerSpec =
  | { type: 'schedule'; segment: string }
  | { type: 'entered'; segment: string }
  | { type: 'exited'; segment: string }
  | { type: 'manual'; entity: string };

export type StepSpec =
  | { type: 'action'; name: string; action: string | ActionConfig; channel?: string | null; template?: string | null }
  | { type: 'wait'; name: string; seconds: number }
  | { type: 'exit'; name: string }
  | { type: string; name: string; [field: string]: unknown };

export interface PoliciesSpec {
  reentry?: { type: 'never' } | { type: 'cooldown'; seconds: number } | { type: 'always' };
  max_attempts?: number | null;
  backoff_ms?: number | null;
  [policy: string]: unknown;
}

export interface WorkflowSpec {
  name: string;
  trigger: TriggerSpec;
  steps: StepSpec[];
  policies: PoliciesSpec;
}

export interface DispatchReport {
  claimed: number;
  delivered: number;
  done: number;
  retried: number;
  dead: number;
  suppressed: number;
  /** Skipped because a frequency cap was reached. */
  capped: number;
  /** Held (back to pending) until quiet hours end. */
  held: number;
  /** Left pending because a rate limit was reached this pass. */
  rateLimited: number;
  /** Wait `until` rows whose instant was resolved. */
  waiting: number;
}

export type DeliveryStatus = 'pending' | 'running' | 'delivered' | 'done' | 'suppressed' | 'dead';

/** A row of the delivery ledger; times in ms since the Unix epoch. */
export interface LedgerRow {
  id: number;
  idempotencyKey: string;
  workflow: string;
  trigger: string;
  step: string;
  entity: string;
  entityKey: string;
  status: DeliveryStatus;
  attempts: number;
  dueAt: number;
  lastError: string | null;
  receipt: string | null;
  createdAt: number;
  updatedAt: number;
}

export interface CheckActionOptions extends ActionOptions {
  /** A delivery the receiver accepts (default: a generic one filling every declared part). */
  delivery?: Partial<Delivery>;
  /** Values that must never show in an outcome. */
  secrets?: string[];
  /** Per execute (default 30000). */
  timeoutMs?: number;
  /** Lists the idempotency keys the receiver saw. */
  received?: () => Iterable<string> | Promise<Iterable<string>>;
}

export type ErrorKind =
  | 'definition'
  | 'not_found'
  | 'rule'
  | 'ingest'
  | 'conflict'
  | 'invalid_argument'
  | 'storage'
  | 'engine'
  | 'internal';

/** Base class of segkit errors. The message includes the Rust cause chain. */
export declare class SegkitError extends Error {
  constructor(message: string, options?: { kind?: ErrorKind; causes?: string[]; cause?: unknown });
  readonly kind: ErrorKind;
  /** `SEGKIT_<KIND>`, e.g. `SEGKIT_NOT_FOUND`. */
  readonly code: string;
  /** The Rust error chain, outermost first. */
  readonly causes: string[];
}
export declare class DefinitionError extends SegkitError {}
export declare class NotFoundError extends SegkitError {}
export declare class RuleError extends SegkitError {}
export declare class IngestError extends SegkitError {}
export declare class ConflictError extends SegkitError {}
export declare class InvalidArgumentError extends SegkitError {}
export declare class StorageError extends SegkitError {}
export declare class EngineError extends SegkitError {}
/** A bug in segkit: a Rust panic, reported as an error instead of aborting the process. */
export declare class InternalError extends SegkitError {}
export declare class CancelledError extends SegkitError {}

/** Version of the native module. */
export declare function version(): string;
/** Bounds core enforces on rules (see docs/limits.md). */
export declare const limits: {
  /** Deepest nesting (objects and arrays) of a rule: `MAX_RULE_DEPTH`. */
  readonly maxRuleDepth: number;
  /** Most objects (conditions, groups) in one rule: `MAX_RULE_NODES`. */
  readonly maxRuleNodes: number;
  /** Most attribute conditions `explain` shows: `MAX_EXPLAIN_CONDITIONS`. */
  readonly maxExplainConditions: number;
  /** Most array elements in one rule, all lists together: `MAX_RULE_LIST_VALUES`. */
  readonly maxRuleListValues: number;
  /** Longest string in a rule, in UTF-8 bytes: `MAX_RULE_STRING_BYTES`. */
  readonly maxRuleStringBytes: number;
  /** Longest `matches` pattern, in bytes: `MAX_REGEX_PATTERN_BYTES`. */
  readonly maxRegexPatternBytes: number;
  /** Largest compiled `matches` program, in bytes: `MAX_REGEX_PROGRAM_BYTES`. */
  readonly maxRegexProgramBytes: number;
};
/** @internal Test hook: a real panic inside an async native call; rejects with InternalError. */
export declare function __panicInTask(message: string): Promise<never>;
/** @internal test hook: a real panic inside a synchronous native call (throws `InternalError`). */
export declare function __panicSync(message: string): never;

/** Options of `Workspace.plan` / `Workspace.apply` (see docs/project.md). */
export interface ApplyOptions {
  /** Apply destructive entity changes (they drop data); refused otherwise. */
  allowDestructive?: boolean;
  /** Delete objects the project does not define. */
  prune?: boolean;
}

/** One object's entry in a project plan. */
export interface ProjectChange {
  kind: 'entity' | 'source' | 'static_segment' | 'segment' | 'template' | 'workflow' | 'schedule';
  name: string;
  action: 'create' | 'update' | 'delete' | 'unchanged';
  destructive: boolean;
  detail: string;
}

/** What applying a project does (or did). */
export interface ProjectPlan {
  changes: ProjectChange[];
  /** Destructive changes are present and not allowed: apply refuses. */
  blocked: boolean;
  applied: boolean;
}
