'use strict';
// Entity lifecycle (addAttribute, entityDependents, deleteEntity), compaction, the group-commit Appender, the
// monitoring readers (syncs, auditEntries, workflowRuns), pii masking of render / dryRunWorkflow and Arrow IPC file
// sources — against a real workspace directory (its data in real Parquet files), real CSV and Arrow IPC files,
// and a fixed clock.
const { test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const arrow = require('apache-arrow');
const {
  Appender,
  ConflictError,
  DefinitionError,
  InvalidArgumentError,
  NotFoundError,
  SegkitError,
} = require('..');

const helpers = require('./helpers');

const T0 = '2026-06-30T00:00:00Z';
const TS = '2026-06-30T12:00:00Z';

const users = () => helpers.usersWorkspace('admin', T0);

async function clicks() {
  const { ws, dir } = await users();
  await ws.defineEntity({
    name: 'click',
    kind: 'event',
    timestamp: 'ts',
    attributes: { user_id: 'int64', ts: 'timestamp', n: 'int32' },
    links: { user_id: 'user' },
  });
  return { ws, dir };
}

const events = (start, n) => Array.from({ length: n }, (_, i) => ({ user_id: start + i, ts: TS, n: (start + i) % 7 }));

function parquetFiles(root) {
  const out = new Set();
  const walk = (d) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.parquet')) out.add(p);
    }
  };
  walk(root);
  return out;
}

// ---------------------------------------------------------------------------------------------- entities

test('addAttribute evolves the entity; bad specs name the field', async () => {
  const { ws } = await users();
  let e = await ws.addAttribute('user', 'score', 'float64');
  assert.deepEqual(e.attributes.score, { type: 'float64', nullable: true, filterable: true, pii: false, indexed: false });
  e = await ws.addAttribute('user', 'phone', { type: 'string', pii: true, description: 'mobile' });
  assert.equal(e.attributes.phone.pii, true);
  assert.deepEqual(Object.keys(e.attributes), ['user_id', 'country', 'email', 'score', 'phone']);
  assert.deepEqual(ws.entity('user'), e);
  assert.deepEqual(await helpers.rows(ws, 'SELECT user_id, score FROM user ORDER BY user_id'), [
    { user_id: 1, score: null },
    { user_id: 2, score: null },
    { user_id: 3, score: null },
  ]);
  await assert.rejects(ws.addAttribute('user', 'country', 'string'), (err) => err instanceof ConflictError && /exists already/.test(err.message));
  await assert.rejects(ws.addAttribute('user', 'x', 'int65'), (err) => err instanceof DefinitionError && /int65/.test(err.message));
  await assert.rejects(ws.addAttribute('user', 'x', { type: 'string', piii: true }), (err) => err instanceof DefinitionError && /piii/.test(err.message));
  await assert.rejects(ws.addAttribute('user', 'x', { type: 'string', nullable: false }), DefinitionError);
  await assert.rejects(ws.addAttribute('usr', 'x', 'string'), (err) => err instanceof NotFoundError && /entity `usr`/.test(err.message));
  await assert.rejects(ws.addAttribute('user', 'x', 3), InvalidArgumentError);
  assert.equal('x' in ws.entity('user').attributes, false);
});

test('deleteEntity refuses while dependents exist and deletes definition and data with force', async () => {
  const { ws, dir } = await users();
  const csv = path.join(dir, 'more.csv');
  fs.writeFileSync(csv, 'user_id,country,email\n9,FR,f@x.io\n');
  await ws.defineSource('more_users', 'user', { type: 'csv', path: csv });
  await ws.defineSegment('cn', { entity: 'user', rule: { attribute: 'country', op: 'eq', value: 'CN' } });
  await ws.defineTemplate('hi', { channel: 'sms', entity: 'user', parts: { text: 'hi {{ key }}' } });
  assert.deepEqual(await ws.entityDependents('user'), {
    segments: ['cn'],
    sources: ['more_users'],
    workflows: [],
    templates: ['hi'],
    linkedFrom: [],
  });
  await assert.rejects(ws.deleteEntity('user'), (err) => err instanceof ConflictError && /segments `cn`; sources `more_users`; templates `hi`/.test(err.message));
  await assert.rejects(ws.deleteEntity('user', { force: true }), (err) => err instanceof ConflictError && /templates `hi`/.test(err.message));
  assert.equal(ws.segment('cn').entity, 'user');

  await ws.defineEntity({ name: 'account', key: 'id', attributes: { id: 'int64', plan: 'string' } });
  await ws.ingest('account', [{ id: 1, plan: 'a' }, { id: 2, plan: 'b' }, { id: 3, plan: 'a' }]);
  await ws.defineSegment('plan_a', { entity: 'account', rule: { attribute: 'plan', op: 'eq', value: 'a' } });
  assert.equal((await ws.evaluate('plan_a')).count, 2);
  const before = parquetFiles(ws.path);
  await assert.rejects(ws.deleteEntity('account'), ConflictError);
  assert.deepEqual(await ws.deleteEntity('account', { force: true }), { segments: ['plan_a'], sources: [], workflows: [], templates: [], linkedFrom: [] });
  assert.throws(() => ws.entity('account'), NotFoundError);
  assert.throws(() => ws.segment('plan_a'), NotFoundError);
  await assert.rejects(ws.sql('SELECT * FROM account'), SegkitError);
  const after = parquetFiles(ws.path);
  const removed = [...before].filter((f) => !after.has(f)).sort();
  const expected = [...before]
    .filter((f) => f.includes(`${path.sep}data${path.sep}account${path.sep}`) || f.includes(`${path.sep}segments${path.sep}plan_a${path.sep}`))
    .sort();
  // Exactly the entity's data files and its segment's membership files are gone.
  assert.ok(expected.some((f) => f.includes(`${path.sep}data${path.sep}`)) && expected.some((f) => f.includes(`${path.sep}segments${path.sep}`)));
  assert.deepEqual(removed, expected);
  assert.deepEqual(ws.entities().map((e) => e.name), ['user']);
  await assert.rejects(ws.deleteEntity('account'), NotFoundError);
  await assert.rejects(ws.entityDependents('nobody'), NotFoundError);
  await assert.rejects(ws.deleteEntity('user', { force: 'yes' }), InvalidArgumentError);
});

test('a linked-to entity refuses deletion until the linking one is gone', async () => {
  const { ws } = await clicks();
  assert.deepEqual((await ws.entityDependents('user')).linkedFrom, ['click']);
  await assert.rejects(ws.deleteEntity('user', { force: true }), (err) => err instanceof ConflictError && /linking entities `click`/.test(err.message));
  await ws.deleteEntity('click');
  assert.deepEqual(await ws.deleteEntity('user'), { segments: [], sources: [], workflows: [], templates: [], linkedFrom: [] });
  assert.deepEqual(ws.entities(), []);
});

// ---------------------------------------------------------------------------------------------- appender

test('concurrent appends share group commits; rows, IPC and apache-arrow tables append', async () => {
  const { ws } = await clicks();
  const a = await ws.appender('click');
  assert.ok(a instanceof Appender);
  assert.throws(() => new Appender({}), InvalidArgumentError);
  assert.equal(a.entity, 'click');
  const receipts = await Promise.all(Array.from({ length: 20 }, (_, i) => a.append(events(i * 10, 10))));
  assert.equal(receipts.length, 20);
  assert.ok(receipts.every((r) => r.entity === 'click' && r.rows === 10 && r.snapshot !== null && r.groupQuarantined === 0));
  assert.ok(receipts.some((r) => r.groupAppends > 1), 'appends waiting together are committed together');
  const history = new Set(ws.ingestHistory('click').map((r) => r.id));
  assert.ok(receipts.every((r) => history.has(r.ingestId)));
  assert.ok(history.size < 20, `${history.size} ingests for 20 appends`);

  const table = arrow.tableFromArrays({
    user_id: BigInt64Array.from([500n, 501n]),
    ts: [new Date(TS), new Date(TS)],
    n: Int32Array.from([1, 2]),
  });
  const r1 = await a.append(table);
  const r2 = await a.append(arrow.tableToIPC(table, 'stream'));
  assert.deepEqual([r1.rows, r2.rows], [2, 2]);
  const pending = a.append(events(900, 3));
  assert.equal(a.pending, 1);
  const flushed = await a.close();
  assert.deepEqual(flushed.map((r) => r.rows), [3]);
  assert.equal((await pending).rows, 3);
  assert.deepEqual(await helpers.rows(ws, 'SELECT count(*) AS n FROM click'), [{ n: 207 }]);
  await assert.rejects(a.append(events(0, 1)), (err) => err instanceof InvalidArgumentError && /appender of `click` is closed/.test(err.message));
});

test('appender bad input is refused with the path', async () => {
  const { ws } = await clicks();
  await assert.rejects(ws.appender('clik'), (err) => err instanceof NotFoundError && /entity `clik`/.test(err.message));
  await assert.rejects(ws.appender('user'), (err) => err instanceof InvalidArgumentError && /`user` is a profile entity/.test(err.message));
  const a = await ws.appender('click');
  await assert.rejects(a.append([events(0, 1)[0], { user_id: 1.5, ts: TS }]), (err) =>
    err instanceof InvalidArgumentError && /rows\[1\]\.user_id: expected an integer \(int64\), got 1.5/.test(err.message));
  await assert.rejects(a.append([{ user_id: 1 }]), /rows\[0\]\.ts: is required/);
  await assert.rejects(a.append([{ user_id: 1, ts: TS, colour: 'red' }]), /rows\[0\]\.colour: entity `click` has no attribute/);
  await assert.rejects(a.append([]), (err) => err instanceof InvalidArgumentError && /no events/.test(err.message));
  await assert.rejects(a.append(events(0, 10_001)), /MAX_EVENT_BATCH/);
  await assert.rejects(a.append({ user_id: 1 }), InvalidArgumentError);
  await assert.rejects(a.append(Buffer.from('not arrow')), SegkitError);
  assert.deepEqual(await a.close(), []);
  assert.deepEqual(await helpers.rows(ws, 'SELECT count(*) AS n FROM click'), [{ n: 0 }]);
});

// ---------------------------------------------------------------------------------------------- compaction

test('compact merges small event files into one', async () => {
  const { ws } = await clicks();
  for (let i = 0; i < 10; i++) await ws.ingest('click', [{ user_id: i, ts: TS, n: i }, { user_id: i + 100, ts: TS, n: i }]);
  const before = await helpers.rows(ws, 'SELECT user_id, n FROM click ORDER BY user_id');
  const report = await ws.compact('click');
  assert.equal(report.filesMerged, 10);
  assert.equal(report.filesWritten, 1);
  assert.equal(report.rows, 20);
  assert.notEqual(report.snapshot, null);
  assert.deepEqual(await helpers.rows(ws, 'SELECT user_id, n FROM click ORDER BY user_id'), before);
  assert.deepEqual(await ws.compact('click'), { filesMerged: 0, filesWritten: 0, rows: 0, snapshot: null });
  assert.equal((await ws.compact('user')).filesMerged, 0);
  await assert.rejects(ws.compact('clicks'), NotFoundError);
});

// ---------------------------------------------------------------------------------------------- monitoring

test('syncs list direct ingests and named-source syncs', async () => {
  const { ws, dir } = await users();
  const csv = path.join(dir, 'fr.csv');
  fs.writeFileSync(csv, 'user_id,country,email\n7,FR,g@x.io\n8,FR,h@x.io\n');
  await ws.defineSource('fr', 'user', { type: 'csv', path: csv });
  await ws.sync('fr');
  const records = await ws.syncs();
  assert.deepEqual(records.map((r) => [r.namedSource, r.entity, r.rowsWritten]), [[null, 'user', 3], ['fr', 'user', 2]]);
  assert.ok(records.every((r) => !Number.isNaN(Date.parse(r.createdAt))));
  assert.equal(records[1].id, ws.ingestHistory('user').at(-1).id);
  assert.deepEqual((await ws.syncs({ limit: 1 })).map((r) => r.namedSource), [null]);
  await assert.rejects(ws.syncs({ limit: -1 }), InvalidArgumentError);
});

test('auditEntries filter and page', async () => {
  const { ws } = await users();
  await ws.audit('alice', 'segment.update', 'cn', 'rule changed');
  await ws.audit('bob', 'pii.read', 'user');
  await ws.audit('alice', 'entity.delete', 'account', 'x'.repeat(5000));
  const all = await ws.auditEntries();
  assert.deepEqual(all.map((r) => [r.actor, r.action, r.target]), [
    ['alice', 'segment.update', 'cn'],
    ['bob', 'pii.read', 'user'],
    ['alice', 'entity.delete', 'account'],
  ]);
  assert.equal(all[0].detail, 'rule changed');
  assert.equal(all[1].detail, null);
  assert.equal(all[2].detail.length, 4096);
  assert.ok(all.every((r) => Date.parse(r.at) === Date.parse(T0)));
  const ids = all.map((r) => r.id);
  assert.deepEqual((await ws.auditEntries({ actor: 'alice' })).map((r) => r.target), ['cn', 'account']);
  assert.deepEqual((await ws.auditEntries({ action: 'pii.read' })).map((r) => r.target), ['user']);
  assert.deepEqual((await ws.auditEntries({ newestFirst: true })).map((r) => r.id), [...ids].reverse());
  assert.deepEqual((await ws.auditEntries({ afterId: ids[0], limit: 1 })).map((r) => r.id), [ids[1]]);
  assert.deepEqual((await ws.auditEntries({ beforeId: ids[2], newestFirst: true })).map((r) => r.id), [ids[1], ids[0]]);
  assert.deepEqual(await ws.auditEntries({ actor: 'nobody' }), []);
  await assert.rejects(ws.auditEntries({ actr: 'alice' }), (err) => err instanceof InvalidArgumentError && /actr/.test(err.message));
});

test('workflowRuns count each trigger version’s rows by status', async () => {
  const { ws } = await users();
  ws.registerAction('sms', async (d) => ({ status: 'delivered', receipt: d.entityKey }));
  await ws.defineWorkflow('greet', {
    trigger: { type: 'manual', entity: 'user' },
    steps: [{ type: 'action', name: 'send', action: 'sms' }],
    policies: { reentry: { type: 'always' } },
  });
  assert.deepEqual(await ws.workflowRuns('greet'), []);
  assert.equal(await ws.trigger('greet', [1, 3]), 2);
  const [run] = await ws.workflowRuns('greet');
  assert.deepEqual([run.entities, run.rows, run.statuses], [2, 2, { pending: 2 }]);
  assert.equal(run.startedAt, Date.parse(T0));
  assert.equal((await ws.dispatchDue()).delivered, 2);
  ws.setClock('2026-06-30T00:01:00Z'); // runs are ordered by their start: a later one
  assert.equal(await ws.trigger('greet', [2]), 1);
  const [newest, first] = await ws.workflowRuns('greet');
  assert.deepEqual([newest.entities, newest.statuses], [1, { pending: 1 }]);
  assert.deepEqual([first.trigger, first.statuses], [run.trigger, { delivered: 2 }]);
  assert.deepEqual(await ws.workflowRuns('greet', { limit: 1 }), [newest]);
  await assert.rejects(ws.workflowRuns('gret'), (err) => err instanceof NotFoundError && /workflow `gret`/.test(err.message));
});

test('render and dryRunWorkflow mask pii on request', async () => {
  const { ws } = await users();
  ws.registerAction('mail', async () => ({ status: 'delivered' }));
  await ws.defineTemplate('note', { channel: 'mail', entity: 'user', parts: { text: '{{ entity.email }} in {{ entity.country }}' } });
  assert.deepEqual(await ws.render('note', 1), { text: 'a@x.io in CN' });
  assert.deepEqual(await ws.render('note', 1, { maskPii: true }), { text: '*** in CN' });
  await ws.defineWorkflow('tell', {
    trigger: { type: 'manual', entity: 'user' },
    steps: [{ type: 'action', name: 'send', action: 'mail', template: 'note' }],
  });
  const [plain] = await ws.dryRunWorkflow('tell', [3]);
  const [masked] = await ws.dryRunWorkflow('tell', [3], 100, { maskPii: true });
  assert.deepEqual([plain.status, plain.content], ['send', { text: 'c@x.io in CN' }]);
  assert.deepEqual([masked.status, masked.content], ['send', { text: '*** in CN' }]);
  assert.deepEqual(ws.deliveries(), []);
  await assert.rejects(ws.render('nope', 1, { maskPii: true }), NotFoundError);
  await assert.rejects(ws.render('note', 42, { maskPii: true }), (err) => err instanceof NotFoundError && /key 42/.test(err.message));
  await assert.rejects(ws.dryRunWorkflow('tel', null, 100, { maskPii: true }), NotFoundError);
});

// ---------------------------------------------------------------------------------------------- Arrow IPC

test('Arrow IPC files ingest by path, by config and as a named source', async () => {
  const { ws, dir } = await users();
  const t1 = arrow.tableFromArrays({ user_id: BigInt64Array.from([6n, 7n]), country: ['FR', 'JP'], email: ['f@x.io', 'j@x.io'] });
  const t2 = arrow.tableFromArrays({ user_id: BigInt64Array.from([8n]), country: ['BR'], email: ['b@x.io'] });
  const file = path.join(dir, 'more.arrow');
  const stream = path.join(dir, 'more2.arrows');
  fs.writeFileSync(file, arrow.tableToIPC(t1, 'file'));
  fs.writeFileSync(stream, arrow.tableToIPC(t2, 'stream'));
  assert.equal((await ws.ingest('user', file)).rowsWritten, 2);
  assert.equal((await ws.ingest('user', { type: 'arrow_ipc', path: stream })).rowsWritten, 1);
  await ws.defineSource('ipc', 'user', { type: 'arrow_ipc', path: file, name: 'export' });
  const report = await ws.sync('ipc');
  assert.deepEqual([report.source, report.rowsWritten], ['export', 2]);
  assert.deepEqual(await helpers.rows(ws, 'SELECT user_id, country FROM user WHERE user_id > 5 ORDER BY user_id'), [
    { user_id: 6, country: 'FR' },
    { user_id: 7, country: 'JP' },
    { user_id: 8, country: 'BR' },
  ]);
  await assert.rejects(ws.ingest('user', { type: 'arrow_ipc', path: file, delimiter: ',' }), (err) =>
    err instanceof DefinitionError && /source\.delimiter/.test(err.message) && /unknown key/.test(err.message));
  await assert.rejects(ws.ingest('user', { type: 'arrow_ipc' }), (err) => err instanceof DefinitionError && /source\.path/.test(err.message));
  await assert.rejects(ws.ingest('user', { type: 'arrow_ipc', path: 's3://bucket/x.arrow' }), /local disk only/);
  const fake = path.join(dir, 'fake.arrow');
  fs.writeFileSync(fake, 'user_id,country\n1,CN\n');
  await assert.rejects(ws.ingest('user', fake), (err) => err instanceof SegkitError && /not a readable Arrow IPC stream or file/.test(err.message));
  assert.deepEqual(await helpers.rows(ws, 'SELECT count(*) AS n FROM user'), [{ n: 6 }]);
});
