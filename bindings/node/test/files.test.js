'use strict';
// File sources through config objects (issue 8 points 7-8, issue 11): null markers, encodings, a BOM, JSON
// arrays, spreadsheets, globs, gzip, and inferEntity.
const { test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const zlib = require('node:zlib');
const { tableFromIPC } = require('apache-arrow');

const { Workspace, DefinitionError, IngestError, InvalidArgumentError, inferEntity } = require('..');

const FILES = path.join(__dirname, '..', '..', '..', 'tests', 'fixtures', 'files');
const tmpdir = () => fs.mkdtempSync(path.join(os.tmpdir(), 'segkit-files-'));
const CSV = '客户编号,姓名,城市,年龄\n1,张三,北京,34\n2,李四,上海,NA\n3,王五,北京,45\n4,赵六,广州,不详\n';

async function column(ws, sql) {
  const t = tableFromIPC(await ws.sql(sql));
  return t.getChildAt(0).toArray();
}

const CUSTOMER = {
  name: '客户',
  key: '客户编号',
  attributes: { 客户编号: 'int64', 姓名: 'string', 城市: 'string', 年龄: 'int32' },
};

test('a Chinese-header CSV (plain, BOM, UTF-16 BOM) ingests without a mapping', async () => {
  const dir = tmpdir();
  const cases = {
    'plain.csv': Buffer.from(CSV),
    'bom.csv': Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(CSV)]),
    'utf16.csv': Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(CSV, 'utf16le')]),
  };
  for (const [name, bytes] of Object.entries(cases)) {
    fs.writeFileSync(path.join(dir, name), bytes);
    const ws = await Workspace.open(path.join(dir, `ws-${name}`));
    await ws.defineEntity(CUSTOMER);
    const r = await ws.ingest('客户', { type: 'csv', path: path.join(dir, name) });
    assert.equal(r.rowsWritten, 3, name);
    assert.equal(r.rowsQuarantined, 1, name);
    assert.match(r.quarantineSample[0].reason, /attribute `年龄`/);
    await ws.defineSegment('北京', { entity: '客户', rule: { attribute: '城市', op: 'eq', value: '北京' } });
    assert.equal(await ws.count('北京'), 2, name);
  }
});

test('null markers, an undecodable byte with its position, and an encoding name', async () => {
  const dir = tmpdir();
  const p = path.join(dir, 'n.csv');
  fs.writeFileSync(p, Buffer.concat([Buffer.from('id,v\n1,NA\n2,-\n3,'), Buffer.from([0x81, 0x20]), Buffer.from('\n')]));
  const ws = await Workspace.open(path.join(dir, 'ws'));
  await ws.defineEntity({ name: 't', key: 'id', attributes: { id: 'int64', v: 'string' } });
  const r = await ws.ingest('t', { type: 'csv', path: p, encoding: 'gbk', null_values: ['-'] });
  assert.equal(r.rowsWritten, 2);
  assert.equal(r.quarantineSample[0].reason, 'malformed record: n.csv line 4, byte 14: field 2 has bytes that are not valid GBK');
  assert.deepEqual([...(await column(ws, 'SELECT v FROM t ORDER BY id'))], ['NA', null]);
  await assert.rejects(ws.ingest('t', { type: 'csv', path: p, encoding: 'klingon' }), DefinitionError);
});

test('JSON arrays, a record path, a glob with a file column and gzip', async () => {
  const dir = tmpdir();
  fs.mkdirSync(path.join(dir, 'in'));
  fs.writeFileSync(path.join(dir, 'in', 'a.json'), '[{"id": 1}, {"id": 2}]');
  fs.writeFileSync(path.join(dir, 'in', 'b.json.gz'), zlib.gzipSync('{"data": [{"id": 3}]}'));
  const ws = await Workspace.open(path.join(dir, 'ws'));
  await ws.defineEntity({ name: 't', key: 'id', attributes: { id: 'int64', f: 'string' } });
  let r = await ws.ingest('t', { type: 'json', path: path.join(dir, 'in', '*.json'), file_column: 'f' });
  assert.equal(r.rowsWritten, 2);
  r = await ws.ingest('t', { type: 'json', path: path.join(dir, 'in', 'b.json.gz'), record_path: 'data' });
  assert.equal(r.rowsWritten, 1);
  assert.deepEqual([...(await column(ws, 'SELECT id FROM t ORDER BY id'))].map(Number), [1, 2, 3]);
  const f = [...(await column(ws, 'SELECT f FROM t WHERE f IS NOT NULL ORDER BY id'))].map((x) => path.basename(x));
  assert.deepEqual(f, ['a.json', 'a.json']);
  await assert.rejects(ws.ingest('t', { type: 'json', path: path.join(dir, 'in', '*.xml') }), IngestError);
});

test('Excel through a config, and inferEntity', async () => {
  const config = { type: 'excel', path: path.join(FILES, 'customers.xlsx'), sheet: '客户', header_row: 1 };
  const p = await inferEntity(config, '客户');
  assert.equal(p.entity.key, '客户编号');
  assert.equal(p.sampledRows, 5);
  const types = Object.fromEntries(p.entity.attributes.map((a) => [a.name, a.type]));
  assert.equal(types['注册日期'], 'date');
  assert.equal(types['登录时间'], 'timestamp');
  assert.equal(types['余额'], 'float64');
  const dir = tmpdir();
  const ws = await Workspace.open(path.join(dir, 'ws'));
  await ws.defineEntity(p.entity);
  const r = await ws.ingest('客户', config, { mapping: p.mapping });
  assert.equal(r.rowsWritten, 5);
  const sales = await inferEntity({ path: path.join(FILES, 'sales.xlsx'), header_row: 1, merged_headers: 'join' }, 's');
  assert.deepEqual(sales.entity.attributes.map((a) => a.name), ['id', 'Q1_north', 'Q1_south', 'Q2_north', 'Q2_south']);
  const csv = path.join(dir, 'o.csv');
  fs.writeFileSync(csv, 'order no.,n\nA,1\nB,2\n');
  const o = await inferEntity(csv, 'o');
  assert.deepEqual(o.mapping, { order_no: 'order no.' });
  await assert.rejects(inferEntity(csv, 'o', { key: 'nope' }), InvalidArgumentError);
  await assert.rejects(inferEntity(42, 'o'), InvalidArgumentError);
});
