'use strict';
// The `http` source from Node: a real HTTP server (http.createServer) that paginates by Link header, answers
// 429 + Retry-After once and checks an API key header; defineSource + sync twice (incremental); bad configs.
const { test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const http = require('node:http');
const os = require('node:os');
const path = require('node:path');
const { Workspace, DefinitionError } = require('..');

async function startApi(state) {
  const server = http.createServer((req, res) => {
    const u = new URL(req.url, 'http://x');
    state.requests.push(Object.fromEntries(u.searchParams));
    const reply = (status, body, headers = {}) => {
      res.writeHead(status, { 'content-type': 'application/json', ...headers });
      res.end(JSON.stringify(body));
    };
    if (req.headers['x-api-key'] !== 'node-secret') return reply(401, {});
    if (state.throttle) {
      state.throttle = false;
      return reply(429, {}, { 'retry-after': '1' });
    }
    const since = Number(u.searchParams.get('since') ?? 0);
    const page = Number(u.searchParams.get('p') ?? 1);
    const rows = state.rows.filter((r) => r.updated > since);
    const pageRows = rows.slice((page - 1) * 2, page * 2);
    const headers = {};
    if (page * 2 < rows.length) {
      const next = new URLSearchParams(u.searchParams);
      next.set('p', String(page + 1));
      headers.link = `<${u.pathname}?${next}>; rel="next"`;
    }
    reply(200, pageRows, headers);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, url: `http://127.0.0.1:${server.address().port}/users` };
}

function config(url, extra = {}) {
  return {
    type: 'http',
    url,
    auth: { type: 'api_key', name: 'X-API-Key', in: 'header', api_key: 'env:SEGKIT_NODE_HTTP_KEY' },
    pagination: { type: 'link' },
    incremental: { field: 'updated', param: 'since' },
    backoff_ms: 10,
    ...extra,
  };
}

test('an http source syncs incrementally through its config', async () => {
  process.env.SEGKIT_NODE_HTTP_KEY = 'node-secret';
  const state = {
    requests: [],
    throttle: true,
    rows: [1, 2, 3, 4, 5].map((i) => ({ id: i, name: `u${i}`, updated: i * 10 })),
  };
  const { server, url } = await startApi(state);
  try {
    const ws = await Workspace.open(path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'segkit-http-')), 'ws'));
    await ws.defineEntity({ name: 'user', key: 'id', attributes: { id: 'int64', name: 'string', updated: 'int64' } });
    await ws.defineSource('users_api', 'user', config(url));
    let r = await ws.sync('users_api');
    assert.deepEqual([r.rowsWritten, r.rowsQuarantined], [5, 0]);
    assert.deepEqual(ws.source('users_api').cursor, { since: 50 });
    state.rows.push({ id: 6, name: 'u6', updated: 60 });
    const before = state.requests.length;
    r = await ws.sync('users_api');
    assert.deepEqual([r.rowsInserted, r.rowsUpdated], [1, 0]);
    // The source is built anew: schema discovery reads the first page without a cursor, then the scan sends `since`.
    const scan = state.requests.slice(before + 1);
    assert.ok(scan.length > 0 && scan.every((q) => q.since === '50'), JSON.stringify(state.requests));
    assert.deepEqual(ws.source('users_api').cursor, { since: 60 });
    assert.ok(!JSON.stringify(ws.source('users_api').config).includes('node-secret'));
  } finally {
    server.close();
  }
});

test('bad http configs are DefinitionErrors naming the field', async () => {
  const ws = await Workspace.open(path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'segkit-http-')), 'ws'));
  await ws.defineEntity({ name: 'user', key: 'id', attributes: { id: 'int64' } });
  const url = 'http://127.0.0.1:9/users';
  await assert.rejects(ws.defineSource('s', 'user', config(url, { pagination: { type: 'cursor', token_pointer: 'next', param: 'c' } })), (e) => {
    assert.ok(e instanceof DefinitionError, String(e));
    assert.match(e.message, /source\.pagination\.token_pointer: a JSON pointer/);
    return true;
  });
  await assert.rejects(
    ws.defineSource('s', 'user', config(url, { auth: { type: 'api_key', name: 'k', api_key: 'hunter2' } })),
    (e) => {
      assert.ok(e instanceof DefinitionError, String(e));
      assert.match(e.message, /source\.auth\.api_key: `api_key` looks like a secret/);
      assert.ok(!e.message.includes('hunter2'));
      return true;
    },
  );
  await assert.rejects(ws.defineSource('s', 'user', config(url, { url: 'ftp://h/x' })), (e) => {
    assert.ok(e instanceof DefinitionError, String(e));
    assert.match(e.message, /source\.url: scheme `ftp` is not http or https/);
    return true;
  });
});
