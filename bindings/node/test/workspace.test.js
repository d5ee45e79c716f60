'use strict';
const { test, describe, before } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { tableFromIPC, tableToIPC, tableFromArrays } = require('apache-arrow');

const segkit = require('..');
const {
  Workspace,
  SegmentRun,
  SegkitError,
  DefinitionError,
  NotFoundError,
  RuleError,
  InvalidArgumentError,
  IngestError,
  EngineError,
  ConflictError,
} = segkit;

function tmpdir() {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'segkit-node-'));
}

const USER = {
  name: 'user',
  key: 'user_id',
  kind: 'profile',
  description: 'people',
  attributes: {
    user_id: 'int64',
    age: 'int32',
    country: 'string',
    email: { type: 'string', pii: true },
    signup_at: 'timestamp',
  },
};

const PEOPLE = [
  { user_id: 1, age: 17, country: 'CN', email: 'a@example.com', signup_at: '2026-06-25T00:00:00Z' },
  { user_id: 2, age: 25, country: 'US', email: 'b@example.com', signup_at: '2026-01-01T00:00:00Z' },
  { user_id: 3, age: 40, country: 'CN', email: 'c@example.com', signup_at: '2026-06-01T00:00:00Z' },
  { user_id: 4, age: 'not a number', country: 'FR', email: 'd@example.com' },
  { user_id: 5, age: 61, country: 'DE', email: null, signup_at: '2025-12-31T00:00:00Z' },
];

async function workspaceWithUsers() {
  const ws = await Workspace.open(tmpdir());
  await ws.defineEntity(USER);
  const report = await ws.ingest('user', PEOPLE);
  return { ws, report };
}

function column(ipc, name) {
  const t = tableFromIPC(ipc);
  return t.getChild(name).toArray();
}

describe('entities', () => {
  test('defineEntity returns a plain object; entity/entities read it back in storage order', async () => {
    const ws = await Workspace.open(tmpdir());
    assert.ok(fs.existsSync(ws.path));
    const e = await ws.defineEntity(USER);
    assert.equal(e.name, 'user');
    assert.equal(e.kind, 'profile');
    assert.equal(e.key, 'user_id');
    assert.equal(e.description, 'people');
    assert.deepEqual(Object.keys(e.attributes), ['user_id', 'age', 'country', 'email', 'signup_at']);
    assert.equal(e.attributes.age.type, 'int32');
    assert.equal(e.attributes.email.pii, true);
    assert.equal(e.attributes.user_id.nullable, false);
    assert.deepEqual(ws.entity('user'), e);
    assert.deepEqual(ws.entities().map((x) => x.name), ['user']);
    // The returned definition round-trips.
    assert.deepEqual(await ws.defineEntity(e), e);
  });

  test('events with links; the array form of attributes', async () => {
    const ws = await Workspace.open(tmpdir());
    await ws.defineEntity(USER);
    const ev = await ws.defineEntity({
      name: 'purchase',
      kind: 'event',
      timestamp: 'at',
      attributes: [
        { name: 'user_id', type: 'int64' },
        { name: 'at', type: 'timestamp' },
        { name: 'amount', type: 'float64' },
        { name: 'tags', type: 'list<string>' },
      ],
      links: [{ attribute: 'user_id', entity: 'user' }],
    });
    assert.equal(ev.kind, 'event');
    assert.equal(ev.timestamp, 'at');
    assert.equal(ev.key, null);
    assert.deepEqual(ev.links, [{ attribute: 'user_id', entity: 'user' }]);
    assert.equal(ev.attributes.tags.type, 'list<string>');
    assert.deepEqual(ws.entities().map((x) => x.name).sort(), ['purchase', 'user']);
  });

  test('an incompatible change is a DefinitionError', async () => {
    const { ws } = await workspaceWithUsers();
    await assert.rejects(
      ws.defineEntity({ ...USER, attributes: { ...USER.attributes, age: 'string' } }),
      (e) => {
        assert.ok(e instanceof DefinitionError, `got ${e && e.name}: ${e && e.message}`);
        assert.ok(e instanceof SegkitError);
        assert.ok(e instanceof Error);
        assert.equal(e.kind, 'definition');
        assert.equal(e.code, 'SEGKIT_DEFINITION');
        assert.match(e.message, /incompatible change/);
        assert.match(e.message, /age/);
        assert.ok(Array.isArray(e.causes) && e.causes.length >= 1);
        return true;
      },
    );
    // Adding a nullable attribute is fine.
    const evolved = await ws.defineEntity({ ...USER, attributes: { ...USER.attributes, plan: 'string' } });
    assert.ok('plan' in evolved.attributes);
  });

  test('bad definitions are DefinitionErrors naming the field', async () => {
    const ws = await Workspace.open(tmpdir());
    await assert.rejects(ws.defineEntity({ name: 'x', key: 'id', attributes: { id: 'int33' } }), (e) => {
      assert.ok(e instanceof DefinitionError, e.message);
      assert.match(e.message, /int33/);
      return true;
    });
    await assert.rejects(ws.defineEntity({ name: 'x', attributes: { id: 'int64' } }), (e) => {
      assert.ok(e instanceof DefinitionError, e.message);
      assert.match(e.message, /key/);
      return true;
    });
    await assert.rejects(ws.defineEntity('user'), InvalidArgumentError);
  });

  test('unknown entity is a NotFoundError with a suggestion', async () => {
    const { ws } = await workspaceWithUsers();
    assert.throws(() => ws.entity('usr'), (e) => {
      assert.ok(e instanceof NotFoundError);
      assert.equal(e.kind, 'not_found');
      assert.match(e.message, /entity `usr` not found/);
      assert.match(e.message, /did you mean `user`/);
      return true;
    });
  });
});

describe('ingest', () => {
  test('clearQuarantine forgets raw records; vacuum deletes files only old snapshots use', async () => {
    const { ws, report } = await workspaceWithUsers();
    assert.equal(report.rowsQuarantined, 1);
    assert.equal(await ws.clearQuarantine('user'), 1);
    assert.equal(tableFromIPC(await ws.quarantine('user')).numRows, 0);
    const h = ws.ingestHistory('user')[0];
    assert.deepEqual([h.rowsQuarantined, h.quarantineFile, h.quarantineSample], [1, null, []]);
    await ws.ingest('user', [{ user_id: 1, age: 33 }]);
    await ws.ingest('user', [{ user_id: 1, age: 34 }]);
    await assert.rejects(ws.vacuum(0), (e) => e instanceof InvalidArgumentError && /at least 1 snapshot/.test(e.message));
    await assert.rejects(ws.vacuum(-1), (e) => e instanceof InvalidArgumentError && /non-negative integer/.test(e.message));
    const v = await ws.vacuum(1);
    assert.equal(v.snapshotsRemoved, 2);
    assert.ok(v.filesDeleted > 0 && v.bytesFreed > 0);
    assert.deepEqual(await ws.vacuum(), { snapshotsRemoved: 0, filesDeleted: 0, orphansDeleted: 0, bytesFreed: 0 });
    const ages = tableFromIPC(await ws.sql('SELECT age FROM "user" WHERE user_id = 1'));
    assert.equal(ages.getChild('age').get(0), 34);
  });

  test('from plain objects: report and quarantine', async () => {
    const { ws, report } = await workspaceWithUsers();
    assert.equal(report.entity, 'user');
    assert.equal(report.mode, 'upsert');
    assert.equal(report.rowsRead, 5);
    assert.equal(report.rowsWritten, 4);
    assert.equal(report.rowsInserted, 4);
    assert.equal(report.rowsUpdated, 0);
    assert.equal(report.rowsQuarantined, 1);
    assert.equal(report.snapshot, 1);
    assert.equal(typeof report.id, 'string');
    assert.equal(typeof report.durationMs, 'number');
    assert.ok(Array.isArray(report.ignoredFields));
    assert.equal(report.quarantineSample.length, 1);
    assert.equal(report.quarantineSample[0].row, 4);
    assert.match(report.quarantineSample[0].reason, /age/);

    const q = tableFromIPC(await ws.quarantine('user'));
    assert.equal(q.numRows, 1);
    assert.deepEqual(q.schema.fields.map((f) => f.name).slice(0, 3), ['ingest_id', 'row', 'reason']);
    assert.equal(q.getChild('ingest_id').get(0), report.id);
    assert.match(q.getChild('reason').get(0), /not a number/);

    // Upsert: one update, one insert.
    const r2 = await ws.ingest('user', [
      { user_id: 2, age: 26, country: 'US' },
      { user_id: 6, age: 33, country: 'CN' },
    ]);
    assert.equal(r2.rowsUpdated, 1);
    assert.equal(r2.rowsInserted, 1);
    assert.equal(r2.snapshot, 2);
    assert.equal(ws.ingestHistory('user').length, 2);

    const t = tableFromIPC(await ws.sql('SELECT count(*) AS n FROM "user"'));
    assert.equal(Number(t.getChild('n').get(0)), 5);
  });

  test('from an Arrow IPC stream and an IPC file built with apache-arrow', async () => {
    const ws = await Workspace.open(tmpdir());
    await ws.defineEntity(USER);
    const table = tableFromArrays({
      user_id: new BigInt64Array([10n, 11n, 12n]),
      age: new Int32Array([20, 30, 40]),
      country: ['CN', 'US', 'CN'],
    });
    const r = await ws.ingest('user', tableToIPC(table, 'stream'));
    assert.equal(r.rowsRead, 3);
    assert.equal(r.rowsWritten, 3);
    assert.equal(r.rowsQuarantined, 0);

    const file = tableToIPC(tableFromArrays({ user_id: new BigInt64Array([13n]), age: new Int32Array([50]) }), 'file');
    const r2 = await ws.ingest('user', new Uint8Array(file));
    assert.equal(r2.rowsInserted, 1);

    const t = tableFromIPC(await ws.sql('SELECT user_id, age FROM "user" ORDER BY user_id'));
    assert.deepEqual(Array.from(t.getChild('user_id').toArray(), Number), [10, 11, 12, 13]);
    assert.deepEqual(Array.from(t.getChild('age').toArray()), [20, 30, 40, 50]);
  });

  test('from a CSV file: by path and by source config, with a mapping', async () => {
    const dir = tmpdir();
    const ws = await Workspace.open(path.join(dir, 'ws'));
    await ws.defineEntity(USER);
    const csv = path.join(dir, 'users.csv');
    fs.writeFileSync(csv, 'user_id,age,Country\n1,17,cn\n2,25,us\n3,abc,fr\n');
    const r = await ws.ingest('user', csv, { mapping: { country: { source: 'Country', transforms: ['upper'] } } });
    assert.equal(r.rowsRead, 3);
    assert.equal(r.rowsWritten, 2);
    assert.equal(r.rowsQuarantined, 1);
    assert.equal(r.quarantineSample[0].row, 3);

    const semi = path.join(dir, 'more.txt');
    fs.writeFileSync(semi, 'user_id;age;country\n7;70;JP\n');
    const r2 = await ws.ingest('user', { type: 'csv', path: semi, delimiter: ';' });
    assert.equal(r2.rowsInserted, 1);

    const t = tableFromIPC(await ws.sql('SELECT country FROM "user" ORDER BY user_id'));
    assert.deepEqual(t.getChild('country').toArray(), ['CN', 'US', 'JP']);
    assert.equal(tableFromIPC(await ws.quarantine('user')).numRows, 1);

    // full_refresh replaces everything.
    const r3 = await ws.ingest('user', [{ user_id: 100, age: 1 }], { mode: 'full_refresh' });
    assert.equal(r3.mode, 'full_refresh');
    const n = tableFromIPC(await ws.sql('SELECT count(*) AS n FROM "user"'));
    assert.equal(Number(n.getChild('n').get(0)), 1);
  });

  test('bad sources and options are clear errors', async () => {
    const ws = await Workspace.open(tmpdir());
    await ws.defineEntity(USER);
    await assert.rejects(ws.ingest('user', 42), InvalidArgumentError);
    await assert.rejects(ws.ingest('user', new Map()), InvalidArgumentError);
    await assert.rejects(ws.ingest('user', []), InvalidArgumentError);
    await assert.rejects(ws.ingest('user', [{ user_id: 1 }], { mode: 'sideways' }), (e) => {
      assert.ok(e instanceof InvalidArgumentError);
      assert.match(e.message, /sideways/);
      return true;
    });
    await assert.rejects(ws.ingest('user', [{ user_id: 1 }], { mapping: { age: 5 } }), DefinitionError);
    await assert.rejects(ws.ingest('usr', [{ user_id: 1 }]), NotFoundError);
    await assert.rejects(ws.ingest('user', '/no/such/file.csv'), (e) => {
      assert.ok(e instanceof IngestError, `${e.name}: ${e.message}`);
      assert.match(e.message, /file\.csv/);
      assert.match(e.message, /Caused by:/);
      assert.ok(e.causes.length >= 2, 'the Rust cause chain');
      return true;
    });
    await assert.rejects(ws.ingest('user', { type: 'csv' }), (e) => {
      assert.ok(e instanceof DefinitionError, `${e.name}: ${e.message}`);
      assert.match(e.message, /path/);
      return true;
    });
    await assert.rejects(ws.ingest('user', Buffer.from('not arrow at all')), (e) => {
      assert.ok(e instanceof EngineError, `${e.name}: ${e.message}`);
      return true;
    });
  });
});

describe('segments', () => {
  let ws;
  before(async () => {
    ({ ws } = await workspaceWithUsers());
  });

  test('the three rule dialects select the same members', async () => {
    const native = { and: [{ attribute: 'age', op: 'ge', value: 25 }, { attribute: 'country', op: 'in', value: ['CN', 'US'] }] };
    const rqb = {
      combinator: 'and',
      rules: [
        { field: 'age', operator: '>=', value: 25 },
        { field: 'country', operator: 'in', value: 'CN,US' },
      ],
    };
    const logic = { and: [{ '>=': [{ var: 'age' }, 25] }, { in: [{ var: 'country' }, ['CN', 'US']] }] };
    await ws.defineSegment('adults_native', { entity: 'user', rule: native, dialect: 'segkit' });
    await ws.defineSegment('adults_rqb', { entity: 'user', rule: rqb, dialect: 'querybuilder' });
    await ws.defineSegment('adults_logic', { entity: 'user', rule: JSON.stringify(logic), dialect: 'jsonlogic' });
    await ws.defineSegment('adults_auto', { entity: 'user', rule: rqb, description: 'auto-detected' });
    const keys = [];
    for (const name of ['adults_native', 'adults_rqb', 'adults_logic', 'adults_auto']) {
      const run = await ws.evaluate(name);
      keys.push(run.memberKeys());
    }
    assert.deepEqual(keys[0], [2, 3]);
    for (const k of keys) assert.deepEqual(k, keys[0]);
    // Stored in segkit's dialect whatever it arrived in.
    const s = ws.segment('adults_auto');
    assert.equal(s.entity, 'user');
    assert.equal(s.description, 'auto-detected');
    assert.deepEqual(ws.segment('adults_native').rule, ws.segment('adults_logic').rule);
    assert.ok(ws.segments().map((x) => x.name).includes('adults_native'));
  });

  test('evaluate: count, entered/exited, members IPC, runs', async () => {
    const { ws } = await workspaceWithUsers();
    await ws.defineSegment('cn', { entity: 'user', rule: { attribute: 'country', op: 'eq', value: 'CN' } });
    const r1 = await ws.evaluate('cn');
    assert.ok(r1 instanceof SegmentRun);
    assert.equal(r1.segment, 'cn');
    assert.equal(r1.run, 1);
    assert.equal(r1.count, 2);
    assert.equal(r1.snapshot, 1);
    assert.equal(typeof r1.durationMs, 'number');
    assert.deepEqual(r1.entered, [1, 3]);
    assert.deepEqual(r1.exited, []);
    const m = tableFromIPC(r1.membersIpc());
    assert.deepEqual(m.schema.fields.map((f) => f.name), ['user_id']);
    assert.deepEqual(Array.from(m.getChild('user_id').toArray(), Number), [1, 3]);

    await ws.ingest('user', [
      { user_id: 1, country: 'US' },
      { user_id: 6, country: 'CN' },
    ]);
    assert.equal(await ws.count('cn'), 2);
    const r2 = await ws.evaluate('cn');
    assert.equal(r2.run, 2);
    assert.deepEqual(r2.entered, [6]);
    assert.deepEqual(r2.exited, [1]);
    assert.deepEqual(tableFromIPC(r2.enteredIpc()).getChild('user_id').toArray(), new BigInt64Array([6n]));
    assert.deepEqual(JSON.parse(JSON.stringify(r2)).exited, [1]);

    const latest = tableFromIPC(await ws.members('cn'));
    assert.deepEqual(Array.from(latest.getChild('user_id').toArray(), Number), [3, 6]);
    const first = tableFromIPC(await ws.members('cn', 1));
    assert.deepEqual(Array.from(first.getChild('user_id').toArray(), Number), [1, 3]);
    await assert.rejects(ws.members('cn', 99), NotFoundError);

    const runs = ws.runs('cn');
    assert.equal(runs.length, 2);
    assert.deepEqual(
      runs.map((r) => [r.run, r.memberCount, r.entered, r.exited]),
      [
        [1, 2, 2, 0],
        [2, 2, 1, 1],
      ],
    );
    assert.equal(typeof runs[0].startedAt, 'string');
  });

  test('membersPage pages through a run', async () => {
    const ws = await Workspace.open(tmpdir());
    await ws.defineEntity({ name: 'u', key: 'id', kind: 'profile', attributes: { id: 'int64', n: 'int64' } });
    const rows = Array.from({ length: 1000 }, (_, i) => ({ id: i * 3, n: i % 4 }));
    await ws.ingest('u', rows);
    await ws.defineSegment('most', { entity: 'u', rule: { attribute: 'n', op: 'ne', value: 0 } });
    const want = (await ws.evaluate('most')).memberKeys();
    assert.equal(want.length, 750);
    const ids = (p) => Array.from(tableFromIPC(p.membersIpc).getChild('id').toArray(), Number);
    for (const limit of [1, 7, 749, 750, 1000]) {
      const got = [];
      let offset = 0;
      for (;;) {
        const page = await ws.membersPage('most', { offset, limit });
        assert.equal(page.run, 1);
        const keys = ids(page);
        assert.ok(keys.length <= limit);
        got.push(...keys);
        offset += keys.length;
        if (!page.more) break;
      }
      assert.deepEqual(got, want, `pages of ${limit}`);
    }
    const past = await ws.membersPage('most', { run: 1, offset: 5000, limit: 10 });
    assert.equal(past.more, false);
    assert.equal(tableFromIPC(past.membersIpc).numRows, 0);
    assert.deepEqual(tableFromIPC(past.membersIpc).schema.fields.map((f) => f.name), ['id']);
    assert.deepEqual(ids(await ws.membersPage('most', { offset: 2, limit: 3 })), want.slice(2, 5));
    await assert.rejects(ws.membersPage('most', { run: 9 }), NotFoundError);
    await assert.rejects(ws.membersPage('most', { limit: 0 }), /MAX_PAGE_ROWS/);
    await assert.rejects(ws.membersPage('most', { offset: -1 }), /must not be negative/);
  });

  test('an empty segment keeps its schema', async () => {
    const { ws } = await workspaceWithUsers();
    await ws.defineSegment('nobody', { entity: 'user', rule: { attribute: 'age', op: 'gt', value: 1000 } });
    const run = await ws.evaluate('nobody');
    assert.equal(run.count, 0);
    assert.deepEqual(run.memberKeys(), []);
    const t = tableFromIPC(run.membersIpc());
    assert.equal(t.numRows, 0);
    assert.deepEqual(t.schema.fields.map((f) => f.name), ['user_id']);
    const stored = tableFromIPC(await ws.members('nobody'));
    assert.equal(stored.numRows, 0);
    assert.deepEqual(stored.schema.fields.map((f) => f.name), ['user_id']);
    const empty = tableFromIPC(await ws.sql('SELECT user_id, country FROM "user" WHERE false'));
    assert.equal(empty.numRows, 0);
    assert.deepEqual(empty.schema.fields.map((f) => f.name), ['user_id', 'country']);
  });

  test('preview (IPC and rows) masks pii', async () => {
    const { ws } = await workspaceWithUsers();
    await ws.defineSegment('adults', { entity: 'user', rule: { attribute: 'age', op: 'ge', value: 18 } });
    const t = tableFromIPC(await ws.preview('adults', 2));
    assert.equal(t.numRows, 2);
    assert.deepEqual(t.schema.fields.map((f) => f.name), ['user_id', 'age', 'country', 'email', 'signup_at']);
    assert.deepEqual(t.getChild('email').toArray(), ['***', '***']);
    const rows = await ws.previewRows('adults', 10);
    assert.equal(rows.length, 3);
    assert.deepEqual(Object.keys(rows[0]), ['user_id', 'age', 'country', 'email', 'signup_at']);
    assert.deepEqual(rows.map((r) => r.user_id), [2, 3, 5]);
    assert.deepEqual(rows.map((r) => r.email), ['***', '***', null]);
  });

  test('deleteSegment, then NotFoundError', async () => {
    const { ws } = await workspaceWithUsers();
    await ws.defineSegment('tmp', { entity: 'user', rule: { attribute: 'age', op: 'gt', value: 1 } });
    await ws.evaluate('tmp');
    await ws.deleteSegment('tmp');
    assert.ok(!ws.segments().some((s) => s.name === 'tmp'));
    assert.throws(() => ws.segment('tmp'), NotFoundError);
    await assert.rejects(ws.evaluate('tmp'), NotFoundError);
  });

  test('missing segment is a NotFoundError for every operation', async () => {
    const { ws } = await workspaceWithUsers();
    await ws.defineSegment('adults', { entity: 'user', rule: { attribute: 'age', op: 'ge', value: 18 } });
    await assert.rejects(ws.evaluate('adutls'), (e) => {
      assert.ok(e instanceof NotFoundError);
      assert.equal(e.code, 'SEGKIT_NOT_FOUND');
      assert.match(e.message, /segment `adutls` not found/);
      assert.match(e.message, /did you mean `adults`/);
      return true;
    });
    await assert.rejects(ws.count('nope'), NotFoundError);
    await assert.rejects(ws.preview('nope', 1), NotFoundError);
    await assert.rejects(ws.members('nope'), NotFoundError);
    assert.throws(() => ws.runs('nope'), NotFoundError);
  });

  test('an unknown attribute is a RuleError with the path and a suggestion', async () => {
    const { ws } = await workspaceWithUsers();
    const rule = { and: [{ attribute: 'country', op: 'eq', value: 'CN' }, { attribute: 'agee', op: 'gt', value: 3 }] };
    await assert.rejects(ws.defineSegment('bad', { entity: 'user', rule }), (e) => {
      assert.ok(e instanceof RuleError, `${e.name}: ${e.message}`);
      assert.equal(e.kind, 'rule');
      assert.match(e.message, /and\[1\]/);
      assert.match(e.message, /agee/);
      assert.match(e.message, /did you mean `age`/);
      assert.equal(e.causes[0], e.message.split('\n')[0]);
      return true;
    });
    await assert.rejects(
      ws.defineSegment('bad2', { entity: 'user', rule: { attribute: 'age', op: 'gt', value: 'old' } }),
      RuleError,
    );
    await assert.rejects(ws.defineSegment('bad3', { entity: 'user', rule: '{not json' }), RuleError);
    await assert.rejects(ws.defineSegment('bad4', { entity: 'user', rule: 5 }), {
      name: 'RuleError',
      message: 'rule error at <root>: expected a rule object, found a number',
    });
    await assert.rejects(
      ws.defineSegment('bad5', { entity: 'user', rule: { attribute: 'age', op: 'gt', value: 1 }, dialect: 'sql' }),
      {
        name: 'DefinitionError',
        message: 'invalid definition of segment.dialect: unknown rule dialect `sql`; expected auto, segkit, querybuilder or jsonlogic',
      },
    );
    await assert.rejects(ws.defineSegment('bad7', { entity: 'user', rule: { attribute: 'age', op: 'gt', value: 1 }, keepRun: 2 }), {
      name: 'DefinitionError',
      message: /^invalid definition of segment\.keepRun: unknown field `keepRun`/,
    });
    await assert.rejects(ws.defineSegment('bad6', { entity: 'usr', rule: { attribute: 'age', op: 'gt', value: 1 } }), DefinitionError);
    assert.ok(!ws.segments().some((s) => s.name.startsWith('bad')));
  });

  test('setClock drives within_last', async () => {
    const { ws } = await workspaceWithUsers();
    await ws.defineSegment('recent', {
      entity: 'user',
      rule: { attribute: 'signup_at', op: 'within_last', value: { amount: 7, unit: 'days' } },
    });
    ws.setClock('2026-06-30T00:00:00Z');
    assert.equal(ws.now(), '2026-06-30T00:00:00+00:00');
    assert.deepEqual((await ws.evaluate('recent')).memberKeys(), [1]);
    ws.setClock(new Date('2026-06-05T00:00:00Z'));
    assert.equal(await ws.count('recent'), 1);
    const r = await ws.evaluate('recent');
    assert.deepEqual(r.entered, [3]);
    assert.deepEqual(r.exited, [1]);
    ws.setClock('2026-01-05T00:00:00Z');
    assert.deepEqual((await ws.evaluate('recent')).memberKeys(), [2, 5]);
    ws.setClock(null);
    assert.ok(Math.abs(Date.parse(ws.now()) - Date.now()) < 60_000, 'null restores the system clock');
    assert.throws(() => ws.setClock('yesterday'), InvalidArgumentError);
    assert.throws(() => ws.setClock(42), InvalidArgumentError);
  });
});

describe('keys', () => {
  test('int64 keys beyond 2^53 come back as BigInt', async () => {
    const ws = await Workspace.open(tmpdir());
    await ws.defineEntity({ name: 'device', key: 'id', attributes: { id: 'int64', on: 'bool' } });
    const big = 2n ** 60n + 1n;
    const table = tableFromArrays({ id: new BigInt64Array([7n, big]), on: [true, true] });
    await ws.ingest('device', tableToIPC(table));
    // Plain objects carry BigInts as decimal text, which ingest coerces to int64.
    await ws.ingest('device', [{ id: big + 1n, on: true }]);
    await ws.defineSegment('on', { entity: 'device', rule: { attribute: 'on', op: 'eq', value: true } });
    const run = await ws.evaluate('on');
    assert.deepEqual(run.memberKeys(), [7, big, big + 1n]);
    assert.equal(typeof run.entered[0], 'number');
    assert.equal(typeof run.entered[1], 'bigint');
  });

  test('string keys', async () => {
    const ws = await Workspace.open(tmpdir());
    await ws.defineEntity({ name: 'acct', key: 'code', attributes: { code: 'string', tier: 'int32' } });
    await ws.ingest('acct', [
      { code: 'b', tier: 2 },
      { code: 'a', tier: 3 },
      { code: 'c', tier: 1 },
    ]);
    await ws.defineSegment('gold', { entity: 'acct', rule: { attribute: 'tier', op: 'ge', value: 2 } });
    const run = await ws.evaluate('gold');
    assert.deepEqual(run.memberKeys(), ['a', 'b']);
    assert.deepEqual(tableFromIPC(await ws.members('gold')).getChild('code').toArray(), ['a', 'b']);
  });
});

describe('workspace', () => {
  test('reopening sees the same definitions and data', async () => {
    const dir = tmpdir();
    const ws = await Workspace.open(dir);
    await ws.defineEntity(USER);
    await ws.ingest('user', PEOPLE);
    await ws.defineSegment('cn', { entity: 'user', rule: { attribute: 'country', op: 'eq', value: 'CN' } });
    const again = await Workspace.open(dir, { targetPartitions: 2 });
    assert.deepEqual(again.entity('user'), ws.entity('user'));
    assert.equal(await again.count('cn'), 2);
  });

  test('durableCommits is passed to the workspace, and a durable workspace commits and reopens', async () => {
    const dir = tmpdir();
    assert.equal((await Workspace.open(tmpdir())).durableCommits, false);
    const ws = await Workspace.open(dir, { durableCommits: true });
    assert.equal(ws.durableCommits, true);
    await ws.defineEntity(USER);
    await ws.ingest('user', PEOPLE);
    await ws.defineSegment('cn', { entity: 'user', rule: { attribute: 'country', op: 'eq', value: 'CN' } });
    const again = await Workspace.open(dir, { durableCommits: false });
    assert.equal(again.durableCommits, false);
    assert.equal(await again.count('cn'), 2);
    await assert.rejects(Workspace.open(tmpdir(), { durableCommits: 'yes' }), (e) => {
      assert.ok(e instanceof InvalidArgumentError, e.name);
      assert.match(e.message, /durableCommits: boolean/);
      return true;
    });
  });

  test('deliveryWindow, leaseMs and ingestMemory are passed to the workspace', async () => {
    const plain = await Workspace.open(tmpdir());
    assert.deepEqual([plain.deliveryWindow(), plain.deliveryWindow(64)], [16, 128]);
    const durable = await Workspace.open(tmpdir(), { durableCommits: true });
    assert.deepEqual([durable.deliveryWindow(8), durable.deliveryWindow(1000)], [1024, 2000]);
    const set = await Workspace.open(tmpdir(), { durableCommits: true, deliveryWindow: 3, leaseMs: 5000 });
    assert.equal(set.deliveryWindow(64), 3);
    const small = await Workspace.open(tmpdir(), { ingestMemory: 32 * 1024 * 1024, leaseMs: 500 });
    await small.defineEntity(USER);
    await small.ingest('user', PEOPLE);
    const n = tableFromIPC(await small.sql('SELECT count(*) AS n FROM "user"'));
    assert.equal(Number(n.getChild('n').get(0)), 4, 'one of PEOPLE is quarantined');
    const bad = [
      [{ deliveryWindow: 0 }, /deliveryWindow must be a positive whole number, got 0/],
      [{ deliveryWindow: 65537 }, /the delivery window is 65537 deliveries; it must be between 1 and 65536/],
      [{ deliveryWindow: 2.5 }, /deliveryWindow must be a positive whole number, got 2.5/],
      [{ deliveryWindow: 2 ** 40 }, /the delivery window is 1099511627776 deliveries; it must be between 1 and 65536/],
      [{ deliveryWindow: '8' }, /deliveryWindow: number/],
      [{ leaseMs: -1 }, /leaseMs must be a positive whole number, got -1/],
      [{ leaseMs: 100 }, /the delivery lease is 100 ms, shorter than 200 ms \(MIN_LEASE\)/],
      [{ leaseMs: 2 ** 53 }, /longer than 86400000 ms \(MAX_LEASE\)/],
      [{ ingestMemory: 0 }, /ingestMemory must be a positive whole number, got 0/],
    ];
    for (const [options, message] of bad) {
      await assert.rejects(Workspace.open(tmpdir(), options), (e) => {
        assert.ok(e instanceof InvalidArgumentError, `${JSON.stringify(options)}: ${e.name}`);
        assert.match(e.message, message);
        return true;
      });
    }
    for (const c of [0, -1, 2 ** 32, 1.5, '8']) {
      assert.throws(() => plain.deliveryWindow(c), (e) => e instanceof InvalidArgumentError && /concurrency must be a whole number/.test(e.message));
    }
  });

  test('bad open options and direct construction are InvalidArgumentErrors', async () => {
    await assert.rejects(Workspace.open(tmpdir(), { targetPartitions: -1 }), InvalidArgumentError);
    await assert.rejects(Workspace.open(tmpdir(), { bogus: 1 }), InvalidArgumentError);
    await assert.rejects(Workspace.open(42), InvalidArgumentError);
    assert.throws(() => new Workspace({}), InvalidArgumentError);
  });

  test('sql errors are EngineErrors with the DataFusion cause chain', async () => {
    const { ws } = await workspaceWithUsers();
    await assert.rejects(ws.sql('SELECT nope FROM "user"'), (e) => {
      assert.ok(e instanceof EngineError, `${e.name}: ${e.message}`);
      assert.match(e.message, /nope/);
      assert.ok(e.causes.length >= 1);
      return true;
    });
  });

  test('concurrent calls on one workspace', async () => {
    const { ws } = await workspaceWithUsers();
    await ws.defineSegment('cn', { entity: 'user', rule: { attribute: 'country', op: 'eq', value: 'CN' } });
    const results = await Promise.allSettled([
      ...Array.from({ length: 4 }, (_, i) => ws.ingest('user', [{ user_id: 100 + i, country: 'CN' }])),
      ...Array.from({ length: 4 }, () => ws.count('cn')),
      ...Array.from({ length: 4 }, () => ws.evaluate('cn')),
    ]);
    // Ingests and counts all succeed; concurrent evaluations of one segment may lose a race with ConflictError.
    for (const r of results.slice(0, 8)) assert.equal(r.status, 'fulfilled', r.reason && r.reason.message);
    const evals = results.slice(8);
    for (const r of evals.filter((x) => x.status === 'rejected')) {
      assert.ok(r.reason instanceof ConflictError, `${r.reason.name}: ${r.reason.message}`);
      assert.equal(r.reason.code, 'SEGKIT_CONFLICT');
    }
    const ok = evals.filter((x) => x.status === 'fulfilled').length;
    assert.ok(ok >= 1);
    assert.equal(await ws.count('cn'), 6);
    assert.equal(ws.runs('cn').length, ok);
    await ws.evaluate('cn');
    assert.equal(ws.runs('cn').length, ok + 1);
  });

  test('version', () => {
    assert.match(segkit.version(), /^\d+\.\d+\.\d+/);
  });
});
