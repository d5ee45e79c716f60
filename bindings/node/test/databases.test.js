'use strict';
// Database sources (PostgreSQL, MariaDB) through plain config objects passed to ws.ingest, against the real
// servers of scripts/db-servers.sh (SEGKIT_TEST_PG_URL / SEGKIT_TEST_MYSQL_URL).
const { test, after } = require('node:test');
const assert = require('node:assert/strict');
const { execFileSync } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { Workspace, IngestError, DefinitionError } = require('..');

const HOW = 'start them with `eval "$(scripts/db-servers.sh start)"` or run scripts/test-all.sh';

function server(name) {
  const url = process.env[name];
  if (!url) throw new Error(`${name} is not set: these tests need real PostgreSQL and MariaDB servers; ${HOW}`);
  return new URL(url);
}

function withoutPassword(u) {
  const v = new URL(u.href);
  v.password = '';
  return v.href;
}

function psql(sql) {
  execFileSync('psql', ['-v', 'ON_ERROR_STOP=1', '-q', server('SEGKIT_TEST_PG_URL').href, '-c', sql]);
}

function mariadb(sql) {
  const u = server('SEGKIT_TEST_MYSQL_URL');
  execFileSync('mariadb', ['--no-defaults', '-h', u.hostname, '-P', u.port, '-u', u.username,
    `-p${decodeURIComponent(u.password)}`, u.pathname.slice(1), '-e', sql]);
}

const dirs = [];
after(() => dirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

async function workspace() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'segkit-db-'));
  dirs.push(dir);
  const ws = await Workspace.open(dir);
  await ws.defineEntity({
    name: 'customer',
    key: 'id',
    kind: 'profile',
    attributes: { id: 'int64', name: 'string', score: 'float64', active: 'bool', signed_up: 'timestamp' },
  });
  await ws.defineSegment('active_high', {
    entity: 'customer',
    rule: { and: [{ attribute: 'active', op: 'eq', value: true }, { attribute: 'score', op: 'gt', value: 50 }] },
  });
  return ws;
}

async function checkIngested(ws, report) {
  assert.equal(report.rowsWritten, 10);
  assert.equal(report.rowsQuarantined, 0);
  await ws.evaluate('active_high');
  assert.equal(await ws.count('active_high'), 3);
}

const name = (p) => `${p}_${crypto.randomBytes(4).toString('hex')}`;

test('PostgreSQL: a table through a config object, password from the environment', async () => {
  const u = server('SEGKIT_TEST_PG_URL');
  const t = name('js_pg');
  psql(`CREATE TABLE ${t} (id int8 PRIMARY KEY, name text, score float8, active bool, signed_up timestamptz);
        INSERT INTO ${t} SELECT i, 'user ' || i, i * 10, i % 2 = 0, '2024-01-01+00'::timestamptz + i * interval '1 day'
        FROM generate_series(1, 10) AS i;`);
  process.env.SEGKIT_JS_PGPASS = decodeURIComponent(u.password);
  const ws = await workspace();
  const report = await ws.ingest('customer', {
    type: 'postgres', url: withoutPassword(u), password: 'env:SEGKIT_JS_PGPASS', table: t, batch_size: 3,
  });
  assert.ok(report.source.startsWith('postgres:postgres://segkit@127.0.0.1'), report.source);
  await checkIngested(ws, report);
  const q = await ws.ingest('customer', { type: 'postgres', url: u.href, query: `select id, 'q' as name from ${t} where id = 1` });
  assert.equal(q.rowsWritten, 1);
});

test('PostgreSQL: a wrong password and a missing table are IngestErrors without the password', async () => {
  const u = server('SEGKIT_TEST_PG_URL');
  const ws = await workspace();
  const wrong = new URL(u.href);
  wrong.password = 'Wrong-Js-Secret-1';
  await assert.rejects(ws.ingest('customer', { type: 'postgres', url: wrong.href, table: 'x' }), (e) => {
    assert.ok(e instanceof IngestError, String(e));
    assert.match(e.message, /password authentication failed/);
    assert.ok(!e.message.includes('Wrong-Js-Secret-1') && !JSON.stringify(e).includes('Wrong-Js-Secret-1'));
    return true;
  });
  await assert.rejects(ws.ingest('customer', { type: 'postgres', url: u.href, table: 'no_such_table' }),
    (e) => e instanceof IngestError && /relation "no_such_table" does not exist/.test(e.message));
  await assert.rejects(ws.ingest('customer', { type: 'postgres', url: withoutPassword(u), password: 'hunter2', table: 'x' }),
    (e) => e instanceof DefinitionError && /source\.password/.test(e.message) && !e.message.includes('hunter2'));
});

test('MariaDB: a table through a config object; a wrong password is an IngestError', async () => {
  const u = server('SEGKIT_TEST_MYSQL_URL');
  const t = name('js_my');
  mariadb(`CREATE TABLE ${t} (id BIGINT PRIMARY KEY, name VARCHAR(20), score DOUBLE, active BOOLEAN, signed_up DATETIME(6));
           INSERT INTO ${t} SELECT seq, CONCAT('user ', seq), seq * 10, seq % 2 = 0, TIMESTAMPADD(DAY, seq, '2024-01-01')
           FROM seq_1_to_10`);
  const ws = await workspace();
  await checkIngested(ws, await ws.ingest('customer', { type: 'mariadb', url: u.href, table: t, batch_size: 4 }));
  const wrong = new URL(u.href);
  wrong.password = 'Wrong-Js-Secret-2';
  await assert.rejects(ws.ingest('customer', { type: 'mysql', url: wrong.href, table: t }),
    (e) => e instanceof IngestError && /Access denied/.test(e.message) && !e.message.includes('Wrong-Js-Secret-2'));
});
