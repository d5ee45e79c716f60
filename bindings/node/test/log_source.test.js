'use strict';
// The log connector from Node through its source config: the nginx preset, a bad line quarantined with its
// position, a second sync after appending reads only the new lines, and a bad config's error kind and path.
const { test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { Workspace, DefinitionError } = require('..');

const nginx = (i) =>
  `10.0.0.${i} - - [10/Oct/2026:13:55:${String(i).padStart(2, '0')} +0200] "GET /p/${i} HTTP/1.1" 200 ${100 + i} "-" "curl/8"\n`;

async function setup() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'segkit-log-'));
  const ws = await Workspace.open(path.join(dir, 'ws'));
  await ws.defineEntity({ name: 'visitor', key: 'remote_addr', attributes: { remote_addr: 'string' } });
  await ws.defineEntity({
    name: 'request',
    kind: 'event',
    timestamp: 'time_local',
    attributes: { time_local: 'timestamp', remote_addr: 'string', path: 'string', status: 'int64', body_bytes_sent: 'int64' },
    links: [{ attribute: 'remote_addr', entity: 'visitor' }],
  });
  return { dir, ws };
}

async function paths(ws) {
  const arrow = require('apache-arrow');
  const t = arrow.tableFromIPC(await ws.sql('SELECT path FROM request ORDER BY path'));
  return t.numRows === 0 ? [] : Array.from(t.getChild('path').toArray());
}

test('nginx preset: a bad line is quarantined, a second sync reads only the appended lines', async () => {
  const { dir, ws } = await setup();
  const log = path.join(dir, 'access.log');
  fs.writeFileSync(log, nginx(1) + 'garbage line\n' + nginx(2));
  await ws.defineSource('web', 'request', { type: 'log', path: log, format: 'nginx' });
  let r = await ws.sync('web');
  assert.equal(r.rowsWritten, 2);
  assert.equal(r.rowsQuarantined, 1);
  assert.match(r.quarantineSample[0].reason, /access\.log line 2, byte 83: does not match the nginx combined format/);
  fs.appendFileSync(log, nginx(3) + nginx(4).slice(0, 15));
  r = await ws.sync('web');
  assert.equal(r.rowsRead, 1, 'only the new complete line');
  fs.appendFileSync(log, nginx(4).slice(15));
  assert.equal((await ws.sync('web')).rowsWritten, 1);
  assert.equal((await ws.sync('web')).rowsRead, 0);
  assert.deepEqual(await paths(ws), ['/p/1', '/p/2', '/p/3', '/p/4']);
  const s = await ws.source('web');
  assert.equal(s.cursor.files[0].offset, fs.statSync(log).size);
});

test('a bad config is a DefinitionError naming the field', async () => {
  const { dir, ws } = await setup();
  const log = path.join(dir, 'a.log');
  await assert.rejects(ws.defineSource('bad', 'request', { type: 'log', path: log, pattern: '(?P<a>x' }), (e) => {
    assert.ok(e instanceof DefinitionError);
    assert.equal(e.kind, 'definition');
    assert.match(e.message, /source\.pattern: invalid regex/);
    return true;
  });
  await assert.rejects(
    ws.defineSource('bad', 'request', { type: 'log', path: log, format: 'json' }),
    /source\.fields: the json format needs `fields`/,
  );
  assert.deepEqual(await ws.sources(), []);
});
