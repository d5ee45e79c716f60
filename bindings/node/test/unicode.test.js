'use strict';
// Names in the users' own language (issue 11), end to end from Node: a Chinese entity ingested from a CSV with a
// Chinese header and no mapping, segments in all three dialects, results, explain, memberships, SQL with keyword
// columns, quarantine reasons, did-you-mean, NFC and case collisions.
const { test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { tableFromIPC } = require('apache-arrow');
const { Workspace, RuleError, NotFoundError, DefinitionError } = require('..');

const ATTRIBUTES = {
  客户编号: 'int64',
  姓名: { type: 'string', pii: true },
  城市: 'string',
  年龄: 'int32',
  select: 'string',
  order: 'int64',
};
const CSV = '客户编号,姓名,城市,年龄,select,order\n1,张三,上海,34,a,10\n2,李四,北京,28,b,20\n3,王五,上海,45,c,30\n4,赵六,广州,老,d,40\n';
const RULES = {
  segkit: [{ and: [{ attribute: '城市', op: 'eq', value: '上海' }, { attribute: '年龄', op: 'gt', value: 30 }] }, [1, 3]],
  querybuilder: [
    { combinator: 'and', rules: [{ field: '城市', operator: '=', value: '上海' }, { field: 'order', operator: '>', value: '10' }] },
    [3],
  ],
  jsonlogic: [{ or: [{ in: [{ var: '城市' }, ['北京', '广州']] }, { '==': [{ var: 'select' }, 'a'] }] }, [1, 2]],
};

async function chinese(bom) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'segkit-unicode-'));
  const ws = await Workspace.open(path.join(dir, 'ws'));
  await ws.defineEntity({ name: '客户', key: '客户编号', attributes: ATTRIBUTES });
  const file = path.join(dir, '客户.csv');
  fs.writeFileSync(file, Buffer.concat([Buffer.from(bom ? '\ufeff' : ''), Buffer.from(CSV)]));
  const report = await ws.ingest('客户', file); // no mapping: the header names are the attribute names
  return { ws, report };
}

const column = (ipc, name) => Array.from(tableFromIPC(ipc).getChild(name).toArray(), (v) => (typeof v === 'bigint' ? Number(v) : v));

for (const bom of [false, true]) {
  test(`Chinese names end to end (${bom ? 'UTF-8 BOM' : 'no BOM'})`, async () => {
    const { ws, report } = await chinese(bom);
    assert.deepEqual([report.rowsRead, report.rowsWritten, report.rowsQuarantined], [4, 3, 1]);
    assert.deepEqual(report.ignoredFields, []);
    const e = ws.entity('客户');
    assert.deepEqual(Object.keys(e.attributes), Object.keys(ATTRIBUTES));
    assert.equal(e.attributes['客户编号'].nullable, false);

    const q = tableFromIPC(await ws.quarantine('客户'));
    assert.deepEqual(Array.from(q.getChild('row').toArray(), Number), [4]);
    assert.match(q.getChild('reason').get(0), /年龄/);

    for (const [dialect, [rule, want]] of Object.entries(RULES)) {
      const name = `上海_${dialect}`;
      const seg = await ws.defineSegment(name, { entity: '客户', rule, dialect });
      assert.equal(seg.entity, '客户');
      assert.equal(await ws.count(name), want.length);
      const run = await ws.evaluate(name);
      assert.deepEqual(run.memberKeys(), want);
      assert.deepEqual(tableFromIPC(run.membersIpc()).schema.fields.map((f) => f.name), ['客户编号']);
      assert.deepEqual(column(await ws.members(name), '客户编号'), want);
    }

    const rows = await ws.previewRows('上海_segkit');
    assert.deepEqual(Object.keys(rows[0]), Object.keys(ATTRIBUTES));
    assert.deepEqual(rows.map((r) => r['城市']), ['上海', '上海']);
    assert.ok(rows.every((r) => r['姓名'] !== '张三' && r['姓名'] !== '王五'), 'pii masked');
    assert.deepEqual(tableFromIPC(await ws.preview('上海_segkit')).schema.fields.map((f) => f.name), Object.keys(ATTRIBUTES));

    const ex = await ws.explain('上海_segkit', 1);
    assert.equal(ex.member, true);
    assert.match(ex.text, /城市/);
    assert.match(ex.text, /年龄/);
    assert.equal((await ws.explain('上海_segkit', 2)).member, false);
    assert.ok(tableFromIPC(await ws.changes('上海_jsonlogic')).schema.fields.some((f) => f.name === '客户编号'));

    const t = await ws.sql('SELECT "客户编号", "城市", "order" FROM "客户" WHERE "order" > 10 ORDER BY "order"');
    assert.deepEqual(column(t, '客户编号'), [2, 3]);
    assert.deepEqual(column(t, 'order'), [20, 30]);
    assert.deepEqual(column(await ws.sql('SELECT "select" FROM "客户" ORDER BY "客户编号"'), 'select'), ['a', 'b', 'c']);
  });
}

test('did-you-mean on a misspelt Chinese name', async () => {
  const { ws } = await chinese(false);
  await assert.rejects(ws.defineSegment('错', { entity: '客户', rule: { attribute: '城巿', op: 'eq', value: '上海' } }), (e) => {
    assert.ok(e instanceof RuleError);
    assert.equal(e.causes[0], 'rule error at <root>.attribute: entity `客户` has no attribute `城巿` (did you mean `城市`?)');
    return true;
  });
  assert.throws(() => ws.entity('客尸'), (e) => e instanceof NotFoundError && /did you mean `客户`/.test(e.message));
});

test('NFD and NFC are one name', async () => {
  const ws = await Workspace.open(fs.mkdtempSync(path.join(os.tmpdir(), 'segkit-nfc-')));
  const nfd = (s) => s.normalize('NFD');
  assert.notEqual(nfd('café'), 'café');
  await ws.defineEntity({ name: nfd('café客户'), key: nfd('编号é'), attributes: { [nfd('编号é')]: 'int64', [nfd('prénom')]: 'string' } });
  const e = ws.entity('café客户');
  assert.equal(e.name, 'café客户');
  assert.deepEqual(Object.keys(e.attributes), ['编号é', 'prénom']);
  await ws.ingest('café客户', [{ 编号é: 1, prénom: 'Zoé' }, { 编号é: 2, prénom: 'Noël' }]);
  await ws.defineSegment('noël', { entity: nfd('café客户'), rule: { attribute: 'prénom', op: 'eq', value: 'Noël' } });
  assert.equal(await ws.count(nfd('noël')), 1);
  await ws.defineEntity({ name: 'café客户', key: '编号é', attributes: { 编号é: 'int64', prénom: 'string' } });
  assert.equal(ws.entities().length, 1);
});

test('names differing only by case are refused', async () => {
  const ws = await Workspace.open(fs.mkdtempSync(path.join(os.tmpdir(), 'segkit-case-')));
  await assert.rejects(
    ws.defineEntity({ name: 'ä客户', key: 'id', attributes: { id: 'int64', Ärger: 'string', ärger: 'string' } }),
    (e) => e instanceof DefinitionError && /differ only by case/.test(e.message),
  );
  await ws.defineEntity({ name: 'Kunde', key: 'id', attributes: { id: 'int64' } });
  await assert.rejects(
    ws.defineEntity({ name: 'kunde', key: 'id', attributes: { id: 'int64' } }),
    (e) => e instanceof DefinitionError && /differ only by case/.test(e.message),
  );
});
