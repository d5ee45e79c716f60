'use strict';
// The shared dialect fixtures (tests/fixtures): the same rule in three dialects selects the same members.
const { test, before } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { tableFromIPC } = require('apache-arrow');
const { Workspace } = require('..');

const FIXTURES = path.join(__dirname, '..', '..', '..', 'tests', 'fixtures');
const CASES = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'dialects.json'), 'utf8'));
let ws;

before(async () => {
  ws = await Workspace.open(fs.mkdtempSync(path.join(os.tmpdir(), 'segkit-fixtures-')));
  ws.setClock('2026-06-30T00:00:00Z');
  await ws.defineEntity({
    name: 'people',
    key: 'id',
    attributes: {
      id: 'int64', name: { type: 'string', pii: true }, country: 'string', age: 'int32', plan: 'string',
      score: 'float64', vip: 'bool', joined: 'timestamp', tags: 'list<string>',
    },
  });
  const report = await ws.ingest('people', path.join(FIXTURES, 'people.csv'));
  assert.deepEqual([report.rowsWritten, report.rowsQuarantined], [8, 0]);
});

CASES.forEach((c, i) => {
  for (const dialect of ['segkit', 'querybuilder', 'jsonlogic']) {
    test(`${c.name} (${dialect})`, async () => {
      const name = `${dialect}_${i}`;
      await ws.defineSegment(name, { entity: 'people', rule: c[dialect], dialect });
      const run = await ws.evaluate(name);
      assert.deepEqual(run.memberKeys(), c.members);
      const ipc = tableFromIPC(run.membersIpc());
      assert.deepEqual(Array.from(ipc.getChildAt(0).toArray(), Number), c.members);
      assert.equal(await ws.count(name), c.members.length);
    });
  }
  if (c.same_ast !== false) {
    test(`${c.name}: one canonical stored rule`, async () => {
      const stored = [];
      for (const d of ['segkit', 'querybuilder', 'jsonlogic']) {
        stored.push((await ws.defineSegment(`ast_${d}`, { entity: 'people', rule: c[d] })).rule);
      }
      assert.deepEqual(stored[0], stored[1]);
      assert.deepEqual(stored[0], stored[2]);
    });
  }
});

test('behavioural conditions and segment references', async () => {
  const w = await Workspace.open(fs.mkdtempSync(path.join(os.tmpdir(), 'segkit-behaviour-')));
  w.setClock('2026-06-30T00:00:00Z');
  await w.defineEntity({ name: 'user', key: 'user_id', attributes: { user_id: 'int64', plan: 'string' } });
  await w.defineEntity({
    name: 'purchase', kind: 'event', timestamp: 'at',
    attributes: { user_id: 'int64', at: 'timestamp', amount: 'float64' },
    links: [{ attribute: 'user_id', entity: 'user' }],
  });
  await w.ingest('user', [{ user_id: 1, plan: 'pro' }, { user_id: 2, plan: 'free' }, { user_id: 3, plan: 'pro' }]);
  await w.ingest('purchase', [
    { user_id: 1, at: '2026-06-20T00:00:00Z', amount: 50 },
    { user_id: 1, at: '2026-06-21T00:00:00Z', amount: 70 },
    { user_id: 2, at: '2026-06-22T00:00:00Z', amount: 500 },
    { user_id: 3, at: '2025-01-01T00:00:00Z', amount: 10 },
  ]);
  await w.defineSegment('spenders', {
    entity: 'user',
    rule: { performed: { event: 'purchase', within_last: '30 days', having: [{ sum: 'amount', gt: 100 }] } },
  });
  assert.deepEqual((await w.evaluate('spenders')).memberKeys(), [1, 2]);
  await w.defineSegment('big_after_small', { entity: 'user', rule: { sequence: {
    event: 'purchase', first: { attribute: 'amount', op: 'lt', value: 60 },
    then: { attribute: 'amount', op: 'gt', value: 60 }, within: '2 days' } } });
  assert.deepEqual((await w.evaluate('big_after_small')).memberKeys(), [1]);
  await w.defineSegment('quiet', { entity: 'user', rule: { not_in_segment: 'spenders' } });
  assert.deepEqual((await w.evaluate('quiet')).memberKeys(), [3]);
  await assert.rejects(
    w.defineSegment('spenders', { entity: 'user', rule: { in_segment: 'quiet' } }),
    (e) => e.name === 'RuleError' && /segment references form a cycle: spenders → quiet → spenders/.test(e.message),
  );
});

test('related profile entities and linked rules', async () => {
  const w = await Workspace.open(fs.mkdtempSync(path.join(os.tmpdir(), 'segkit-linked-')));
  await w.defineEntity({ name: 'user', key: 'user_id', attributes: { user_id: 'int64', country: 'string' } });
  await w.defineEntity({
    name: 'order', key: 'order_id',
    attributes: { order_id: 'int64', buyer: 'int64', status: 'string', amount: 'float64' },
    links: [{ attribute: 'buyer', entity: 'user' }],
  });
  await w.ingest('user', [{ user_id: 1, country: 'CN' }, { user_id: 2, country: 'US' }, { user_id: 3, country: 'CN' }]);
  await w.ingest('order', [
    { order_id: 10, buyer: 1, status: 'paid', amount: 150 },
    { order_id: 11, buyer: 2, status: 'paid', amount: 90 },
    { order_id: 12, buyer: 3, status: 'open', amount: 500 },
    { order_id: 13, buyer: null, status: 'paid', amount: 700 },
  ]);
  const paidBig = { and: [{ attribute: 'status', op: 'eq', value: 'paid' }, { attribute: 'amount', op: 'gt', value: 100 }] };
  await w.defineSegment('big_buyers', { entity: 'user', rule: { performed: { event: 'order', where: paidBig } } });
  assert.deepEqual((await w.evaluate('big_buyers')).memberKeys(), [1]);
  const cn = { attribute: 'country', op: 'eq', value: 'CN' };
  await w.defineSegment('cn_orders', { entity: 'order', rule: { linked: { via: 'buyer', where: cn } } });
  assert.deepEqual((await w.evaluate('cn_orders')).memberKeys(), [10, 12]);
  await w.defineSegment('other_orders', { entity: 'order', rule: { not: { linked: { via: 'buyer', where: cn } } } });
  assert.deepEqual((await w.evaluate('other_orders')).memberKeys(), [11], 'order 13 has no buyer');
  await assert.rejects(
    w.defineSegment('bad', { entity: 'order', rule: { linked: { via: 'status', where: cn } } }),
    (e) => e.name === 'RuleError' && /linked\.via/.test(e.message),
  );
});

test('splits carry a variant column', async () => {
  const w = await Workspace.open(fs.mkdtempSync(path.join(os.tmpdir(), 'segkit-split-')));
  await w.defineEntity({ name: 'user', key: 'user_id', attributes: { user_id: 'int64' } });
  await w.ingest('user', Array.from({ length: 500 }, (_, i) => ({ user_id: i })));
  const split = { holdout: 20, variants: [{ name: 'A', percent: 40 }, { name: 'B', percent: 40 }] };
  const def = await w.defineSegment('all', { entity: 'user', rule: { and: [] }, split });
  assert.equal(def.split.holdout, 20);
  const run = await w.evaluate('all');
  const table = tableFromIPC(run.membersIpc());
  const variants = new Set(Array.from(table.getChild('variant').toArray()));
  assert.deepEqual([...variants].sort(), ['A', 'B', 'holdout']);
  await assert.rejects(
    w.defineSegment('bad', { entity: 'user', rule: { and: [] }, split: { variants: [{ name: 'A', percent: 50 }] } }),
    (e) => e.name === 'DefinitionError' && /segment bad\.split/.test(e.message),
  );
});

test('dry run, members as of an instant, change log', async () => {
  const w = await Workspace.open(fs.mkdtempSync(path.join(os.tmpdir(), 'segkit-history-')));
  await w.defineEntity({ name: 'user', key: 'user_id', attributes: { user_id: 'int64', country: 'string' } });
  await w.ingest('user', [{ user_id: 1, country: 'CN' }, { user_id: 2, country: 'US' }, { user_id: 3, country: 'CN' }]);
  await w.defineSegment('cn', { entity: 'user', rule: { attribute: 'country', op: 'eq', value: 'CN' } });
  w.setClock('2026-07-01T00:00:00Z');
  await w.evaluate('cn');
  const d = await w.dryRun('cn', { entity: 'user', rule: { attribute: 'country', op: 'in', value: ['CN', 'US'] } });
  assert.deepEqual([d.count, d.againstRun, d.wouldEnter, d.wouldExit], [3, 1, [2], []]);
  assert.deepEqual(w.segment('cn').rule, { attribute: 'country', op: 'eq', value: 'CN' });
  await w.ingest('user', [{ user_id: 1, country: 'US' }]);
  w.setClock('2026-07-02T00:00:00Z');
  await w.evaluate('cn');
  const asOf = tableFromIPC(await w.membersAsOf('cn', '2026-07-01T12:00:00Z'));
  assert.deepEqual(Array.from(asOf.getChildAt(0).toArray(), Number), [1, 3]);
  const log = tableFromIPC(await w.changes('cn'));
  assert.deepEqual(Array.from(log.getChild('change').toArray()), ['entered', 'entered', 'exited']);
  await assert.rejects(w.membersAsOf('cn', new Date('2020-01-01T00:00:00Z')), (e) => e.name === 'NotFoundError');
});

test('explain', async () => {
  const w = await Workspace.open(fs.mkdtempSync(path.join(os.tmpdir(), 'segkit-explain-')));
  await w.defineEntity({ name: 'user', key: 'user_id', attributes: { user_id: 'int64', country: 'string', age: 'int32' } });
  await w.ingest('user', [{ user_id: 1, country: 'CN', age: 35 }, { user_id: 2, country: 'CN', age: null }]);
  await w.defineSegment('s', { entity: 'user', rule: { and: [
    { attribute: 'country', op: 'eq', value: 'CN' }, { attribute: 'age', op: 'gt', value: 30 }] } });
  const e1 = await w.explain('s', 1);
  assert.equal(e1.member, true);
  const e2 = await w.explain('s', 2);
  assert.deepEqual([e2.member, e2.root.value, e2.root.children[1].detail], [false, null, 'age is null']);
  assert.match(e2.text, /\[unknown\] age gt 30/);
  await assert.rejects(w.explain('s', 3), (e) => e.name === 'NotFoundError');
});

test('keepRuns', async () => {
  const w = await Workspace.open(fs.mkdtempSync(path.join(os.tmpdir(), 'segkit-keep-')));
  await w.defineEntity({ name: 'user', key: 'user_id', attributes: { user_id: 'int64' } });
  await w.ingest('user', [{ user_id: 1 }]);
  await w.defineSegment('all', { entity: 'user', rule: { and: [] }, keepRuns: 2 });
  for (let i = 0; i < 3; i++) await w.evaluate('all');
  assert.deepEqual(w.runs('all').map((r) => r.run), [2, 3]);
});

test('time zone windows', async () => {
  const w = await Workspace.open(fs.mkdtempSync(path.join(os.tmpdir(), 'segkit-tz-')));
  await w.defineEntity({ name: 't', key: 'id', attributes: { id: 'int64', at: 'timestamp' } });
  await w.ingest('t', [{ id: 1, at: '2026-03-28T12:30:00Z' }, { id: 2, at: '2026-03-28T13:00:00Z' }]);
  w.setClock('2026-03-29T12:00:00Z');
  await w.defineSegment('day', { entity: 't', rule: { attribute: 'at', op: 'within_last', value: '1 day' } });
  assert.deepEqual((await w.evaluate('day')).memberKeys(), [1, 2]);
  w.setTimeZone('Europe/Berlin');
  assert.deepEqual((await w.evaluate('day')).memberKeys(), [2]);
  assert.throws(() => w.setTimeZone('Mars/Olympus'), (e) => e.name === 'InvalidArgumentError');
});
