'use strict';
// Sources written in JavaScript: pages from an async generator, conversion to the declared schema, errors that
// name the source, and the conformance checks.
const { test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const arrow = require('apache-arrow');
const { Workspace, IngestError, InvalidArgumentError, testing } = require('..');

const SCHEMA = new arrow.Schema([
  new arrow.Field('user_id', new arrow.Int64(), true),
  new arrow.Field('country', new arrow.Utf8(), true),
]);

/** Stands in for an HTTP API read page by page. */
class PagedApi {
  constructor(pages, { failAt = -1, name = 'api:users' } = {}) {
    this.pages = pages;
    this.failAt = failAt;
    this.name = name;
    this.scans = 0;
  }
  async schema() {
    return SCHEMA;
  }
  async *scan() {
    this.scans += 1;
    for (const [i, page] of this.pages.entries()) {
      if (i === this.failAt) throw new Error(`page ${i}: HTTP 503`);
      await new Promise((r) => setImmediate(r));
      yield page;
    }
  }
}

const PAGES = [
  [{ user_id: 1, country: 'CN' }, { user_id: 2, country: 'US' }],
  arrow.tableFromArrays({ user_id: BigInt64Array.from([3n]), country: ['DE'] }),
  [{ user_id: 4, country: null }],
];

async function workspace() {
  const ws = await Workspace.open(fs.mkdtempSync(path.join(os.tmpdir(), 'segkit-source-')));
  await ws.defineEntity({ name: 'user', key: 'user_id', attributes: { user_id: 'int64', country: 'string' } });
  return ws;
}

test('a JavaScript source streams its pages into an ingest', async () => {
  const ws = await workspace();
  const r = await ws.ingest('user', new PagedApi(PAGES));
  assert.deepEqual([r.source, r.rowsRead, r.rowsWritten, r.rowsQuarantined], ['api:users', 4, 4, 0]);
  const t = arrow.tableFromIPC(await ws.sql('SELECT user_id, country FROM "user" ORDER BY user_id'));
  assert.deepEqual(Array.from(t.getChild('country').toArray()), ['CN', 'US', 'DE', null]);
});

test('a failing source commits nothing and names itself', async () => {
  const ws = await workspace();
  await ws.ingest('user', new PagedApi(PAGES.slice(0, 1)));
  await assert.rejects(
    ws.ingest('user', new PagedApi(PAGES, { failAt: 1 })),
    (e) => e instanceof IngestError && /api:users/.test(e.message) && /page 1: HTTP 503/.test(e.message),
  );
  const n = arrow.tableFromIPC(await ws.sql('SELECT count(*) AS n FROM "user"'));
  assert.equal(Number(n.getChild('n').get(0)), 2);
});

test('pages that are not data or do not convert are clear errors', async () => {
  const ws = await workspace();
  await assert.rejects(
    ws.ingest('user', new PagedApi([42])),
    (e) => e instanceof IngestError && /scan\(\) yielded number, not a page/.test(e.message),
  );
  await assert.rejects(
    ws.ingest('user', new PagedApi([[{ user_id: 1.5, country: 'CN' }]])),
    (e) => e instanceof IngestError && /row 1 of a page: `user_id` is 1.5, not an integer as schema\(\) declares/.test(e.message),
  );
  await assert.rejects(
    ws.ingest('user', new PagedApi([[{ user_id: 1, country: 'CN', age: 3 }]])),
    (e) => e instanceof IngestError && /a page of objects does not fit schema\(\): .*'age'/.test(e.message),
  );
  // An Arrow page with a field schema() does not declare.
  await assert.rejects(
    ws.ingest('user', new PagedApi([arrow.tableFromArrays({ user_id: BigInt64Array.from([1n]), age: Int32Array.from([3]) })])),
    (e) => e instanceof IngestError && /scan\(\) yielded field `age`, which schema\(\) does not declare/.test(e.message),
  );
});

test('the conformance checks pass a good source and explain a bad one', async () => {
  const good = new PagedApi(PAGES);
  await testing.checkSource(good);
  assert.ok(good.scans >= 3, 'the checks scan more than once');
  class Flaky extends PagedApi {
    scan() {
      this.scans += 1;
      return this.pages.slice(0, 1 + (this.scans % 2));
    }
  }
  await assert.rejects(
    testing.checkSource(new Flaky(PAGES)),
    (e) => e instanceof IngestError && /conformance: two scans gave different row counts: 3 then 2/.test(e.message),
  );
  await assert.rejects(testing.checkSource({ scan() {} }), InvalidArgumentError);
});

test('scan() may return one Table or a sync iterable; the name defaults to the class', async () => {
  const ws = await workspace();
  class OneTable {
    schema() {
      return arrow.tableToIPC(new arrow.Table(SCHEMA), 'stream'); // IPC bytes work as a schema too
    }
    scan() {
      return arrow.tableFromArrays({ user_id: BigInt64Array.from([7n]), country: ['FR'] });
    }
  }
  const r = await ws.ingest('user', new OneTable());
  assert.deepEqual([r.source, r.rowsWritten], ['js:OneTable', 1]);
  const sync = {
    name: 'sync',
    schema: () => SCHEMA,
    *scan() {
      yield [{ user_id: 8, country: 'IT' }];
      yield [{ user_id: 9, country: 'ES' }];
    },
  };
  assert.equal((await ws.ingest('user', sync)).rowsWritten, 2);
  await assert.rejects(
    ws.ingest('user', { schema: () => 'nope', scan: () => [] }),
    (e) => e instanceof IngestError && /schema\(\) must return an apache-arrow Schema or Table, or Arrow IPC bytes/.test(e.message),
  );
});
