'use strict';
// Named sources from Node: defineSource / sources / source / deleteSource / sync, incremental cursors committed
// with the snapshot, secrets as references, progress callbacks and cancellation with an AbortSignal.
const { test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { Workspace, DefinitionError, NotFoundError, CancelledError, InvalidArgumentError } = require('..');

function tmpdir() {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'segkit-sources-'));
}

function writePart(dir, n, ids) {
  const text = ids.map((i) => JSON.stringify({ id: i, ts: '2026-01-01T00:00:00Z', name: `用户${i}` })).join('\n') + '\n';
  const tmp = path.join(dir, `.part-${String(n).padStart(5, '0')}.tmp`);
  fs.writeFileSync(tmp, text);
  fs.renameSync(tmp, path.join(dir, `part-${String(n).padStart(5, '0')}.ndjson`));
}

const range = (a, b) => Array.from({ length: b - a }, (_, i) => a + i);

async function setup() {
  const dir = tmpdir();
  const parts = path.join(dir, 'parts');
  fs.mkdirSync(parts);
  const ws = await Workspace.open(path.join(dir, 'ws'));
  await ws.defineEntity({ name: '客户', key: 'id', attributes: { id: 'int64', name: 'string' } });
  await ws.defineEntity({
    name: 'click',
    kind: 'event',
    timestamp: 'ts',
    attributes: { id: 'int64', ts: 'timestamp' },
    links: [{ attribute: 'id', entity: '客户' }],
  });
  const config = (delayMs = 0) => ({ type: 'testing_parts', dir: parts, fields: ['id', 'ts', 'name'], delay_ms: delayMs });
  return { dir, parts, ws, config };
}

async function ids(ws, table) {
  const arrow = require('apache-arrow');
  const t = arrow.tableFromIPC(await ws.sql(`SELECT id FROM "${table}" ORDER BY id`));
  return t.numRows === 0 ? [] : Array.from(t.getChild('id').toArray(), Number);
}

test('define, list, get, delete and incremental syncs', async () => {
  const { ws, parts, config } = await setup();
  writePart(parts, 1, range(0, 3));
  const s = await ws.defineSource('点击', 'click', config(), { mode: 'append' });
  assert.deepEqual([s.name, s.entity, s.mode], ['点击', 'click', 'append']);
  let r = await ws.sync('点击');
  assert.deepEqual([r.rowsRead, r.rowsWritten, r.snapshot], [3, 3, 1]);
  assert.deepEqual(ws.source('点击').cursor, { file: 'part-00001.ndjson' });
  writePart(parts, 2, range(3, 5));
  r = await ws.sync('点击');
  assert.equal(r.rowsRead, 2);
  assert.deepEqual(await ids(ws, 'click'), [0, 1, 2, 3, 4]);
  assert.equal(ws.source('点击').snapshot, 2);
  assert.ok(typeof ws.source('点击').updatedAt === 'string');

  await ws.defineSource('客户源', '客户', config(), { mapping: { name: 'name' } });
  assert.equal((await ws.sync('客户源')).rowsWritten, 5);
  assert.deepEqual(ws.sources().map((x) => x.name), ['客户源', '点击']);
  await ws.deleteSource('客户源');
  assert.throws(() => ws.source('客户源'), NotFoundError);
  await assert.rejects(ws.sync('客户源'), (e) => e instanceof NotFoundError && /source `客户源` not found/.test(e.message));
});

test('definition errors name the field; inline secrets are refused', async () => {
  const { ws, config } = await setup();
  await assert.rejects(ws.defineSource('s', 'click', { ...config(), password: 'hunter2' }), (e) => {
    assert.ok(e instanceof DefinitionError);
    assert.match(e.message, /source\.password: `password` looks like a secret/);
    assert.ok(!e.message.includes('hunter2'));
    return true;
  });
  await assert.rejects(ws.defineSource('s', 'click', { ...config(), delay_ms: 'soon' }), /source\.delay_ms: invalid type/);
  await assert.rejects(ws.defineSource('s', '客户', config(), { mode: 'append' }), /source s\.mode: `客户` is a profile entity/);
  await assert.rejects(ws.defineSource('s', 'click', 'x.csv'), InvalidArgumentError);
  await assert.rejects(ws.defineSource('s', 'click', config(), { mdoe: 'append' }), /unknown option\(s\) mdoe/);
  await assert.rejects(ws.sync('s', { onProgress: 1 }), /onProgress must be a function/);
  assert.deepEqual(ws.sources(), []);
});

test('secrets are stored as env references and resolved when built', async () => {
  const { dir, ws } = await setup();
  const csv = path.join(dir, 'c.csv');
  fs.writeFileSync(csv, 'id,name\n1,a\n');
  const cfg = { type: 'csv', path: csv, options: { aws_secret_access_key: 'env:SEGKIT_NODE_TEST_SECRET' } };
  await assert.rejects(ws.defineSource('c', '客户', cfg), /SEGKIT_NODE_TEST_SECRET/);
  process.env.SEGKIT_NODE_TEST_SECRET = 's3cr3t-node';
  const s = await ws.defineSource('c', '客户', cfg);
  assert.equal(s.config.options.aws_secret_access_key, 'env:SEGKIT_NODE_TEST_SECRET');
  assert.equal((await ws.sync('c')).rowsWritten, 1);
  assert.ok(!JSON.stringify(ws.sources()).includes('s3cr3t'));
  const db = Buffer.concat([fs.readFileSync(path.join(dir, 'ws', 'segkit.db')), fs.readFileSync(path.join(dir, 'ws', 'segkit.db-wal'))]);
  assert.ok(!db.includes('s3cr3t'));
});

test('progress callbacks report rows, rejects and bytes', async () => {
  const { ws, parts, config } = await setup();
  for (let n = 0; n < 3; n++) writePart(parts, n, range(n * 10, n * 10 + 10));
  fs.writeFileSync(path.join(parts, 'part-00009.ndjson'), '{"id": "x", "ts": "2026-01-01T00:00:00Z"}\n');
  await ws.defineSource('clicks', 'click', config(5));
  const seen = [];
  const r = await ws.sync('clicks', { onProgress: (p) => seen.push(p) });
  assert.deepEqual([r.rowsWritten, r.rowsQuarantined], [30, 1]);
  // Progress calls are queued to the JS thread without blocking: let them all arrive.
  await new Promise((resolve) => setImmediate(resolve));
  const last = seen[seen.length - 1];
  assert.ok(last.done, JSON.stringify(seen));
  assert.deepEqual([last.rowsRead, last.rowsRejected, last.batches], [31, 1, 4]);
  assert.ok(last.bytesRead > 0 && typeof last.elapsedMs === 'number');
});

test('an AbortSignal cancels the sync and keeps the snapshot and cursor', async () => {
  const { ws, parts, config } = await setup();
  writePart(parts, 0, range(0, 5));
  await ws.defineSource('clicks', 'click', config(50));
  await ws.sync('clicks');
  const before = ws.source('clicks');
  for (let n = 1; n < 10; n++) writePart(parts, n, range(n * 10, n * 10 + 5));
  const ac = new AbortController();
  // Abort on the first progress report (not on a timer): the sync is then in the middle of its parts.
  const onProgress = (p) => {
    if (!p.done) ac.abort();
  };
  await assert.rejects(ws.sync('clicks', { signal: ac.signal, onProgress }), (e) => {
    assert.ok(e instanceof CancelledError, String(e));
    assert.equal(e.kind, 'cancelled');
    assert.equal(e.message, 'sync of source `clicks` was cancelled; nothing was committed');
    return true;
  });
  const after = ws.source('clicks');
  assert.deepEqual([after.cursor, after.snapshot], [before.cursor, before.snapshot]);
  assert.deepEqual(await ids(ws, 'click'), [0, 1, 2, 3, 4]);
  // An already aborted signal cancels at once; then a plain sync reads everything once.
  await assert.rejects(ws.sync('clicks', { signal: AbortSignal.abort() }), CancelledError);
  assert.equal((await ws.sync('clicks')).rowsWritten, 45);
});

test('ingest takes onProgress and signal too', async () => {
  const { ws } = await setup();
  const seen = [];
  const records = range(0, 50).map((i) => ({ id: i, name: `n${i}` }));
  const r = await ws.ingest('客户', records, { mode: 'upsert', onProgress: (p) => seen.push(p) });
  assert.equal(r.rowsWritten, 50);
  await new Promise((resolve) => setImmediate(resolve));
  assert.ok(seen.length >= 1 && seen[seen.length - 1].done && seen[seen.length - 1].rowsRead === 50, JSON.stringify(seen));
  const before = (await ws.ingestHistory('客户')).length;
  await assert.rejects(ws.ingest('客户', records, { signal: AbortSignal.abort() }), CancelledError);
  assert.equal((await ws.ingestHistory('客户')).length, before, 'nothing recorded');
  await assert.rejects(ws.ingest('客户', records, { signal: 'no' }), /signal must be an AbortSignal/);
});

test('file sources sync incrementally through their configs', async () => {
  const { dir, ws } = await setup();
  const d = path.join(dir, 'in');
  fs.mkdirSync(d);
  fs.writeFileSync(path.join(d, 'a.csv'), 'id,ts,name\n1,2026-01-01T00:00:00Z,a\n2,2026-01-01T00:00:00Z,b\n');
  await ws.defineSource('files', 'click', { type: 'csv', path: path.join(d, '*.csv') }, { mode: 'append' });
  assert.equal((await ws.sync('files')).rowsWritten, 2);
  assert.equal((await ws.sync('files')).rowsRead, 0);
  fs.appendFileSync(path.join(d, 'a.csv'), '3,2026-01-02T00:00:00Z,c\n');
  fs.writeFileSync(path.join(d, 'b.csv'), 'id,ts,name\n4,2026-01-03T00:00:00Z,d\n');
  const r = await ws.sync('files');
  assert.deepEqual([r.rowsRead, r.rowsWritten], [2, 2]);
  assert.deepEqual(await ids(ws, 'click'), [1, 2, 3, 4]);
  const cursor = ws.source('files').cursor;
  assert.deepEqual(cursor.files.map((f) => [path.basename(f.path), f.lines]), [['a.csv', 4], ['b.csv', 2]]);
  fs.writeFileSync(path.join(d, 'a.csv'), 'id,ts,name\n');
  await assert.rejects(ws.sync('files'), (e) => {
    assert.equal(e.kind, 'ingest');
    assert.match(e.message, /a\.csv` changed in place since the last sync: it shrank from/);
    return true;
  });
  assert.deepEqual(ws.source('files').cursor, cursor);
});
