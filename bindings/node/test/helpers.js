'use strict';
// Shared by the admin, schedules and workflows tests (not a test file itself: it defines no tests).
const crypto = require('node:crypto');
const fs = require('node:fs');
const http = require('node:http');
const os = require('node:os');
const path = require('node:path');
const { tableFromIPC } = require('apache-arrow');
const { Workspace } = require('..');

/** The three users most tests start from (`email` is pii). */
const USERS = [
  { user_id: 1, country: 'CN', email: 'a@x.io' },
  { user_id: 2, country: 'US', email: 'b@x.io' },
  { user_id: 3, country: 'CN', email: 'c@x.io' },
];

/** A new temporary directory named `segkit-<prefix>-…`. */
function tmpdir(prefix) {
  return fs.mkdtempSync(path.join(os.tmpdir(), `segkit-${prefix}-`));
}

/** A new workspace (in `dir/ws`) at the fixed clock `clock`, with the `user` entity (`user_id`, `country`, pii
 * `email`) holding `users`. */
async function usersWorkspace(prefix, clock, users = USERS) {
  const dir = tmpdir(prefix);
  const ws = await Workspace.open(path.join(dir, 'ws'));
  ws.setClock(clock);
  await ws.defineEntity({
    name: 'user',
    key: 'user_id',
    attributes: { user_id: 'int64', country: 'string', email: { type: 'string', pii: true } },
  });
  await ws.ingest('user', users);
  return { ws, dir };
}

/** The rows of a SQL query as plain objects (int64 values as numbers). */
async function rows(ws, sql) {
  return tableFromIPC(await ws.sql(sql)).toArray().map((r) => {
    const o = r.toJSON();
    for (const [k, v] of Object.entries(o)) if (typeof v === 'bigint') o[k] = Number(v);
    return o;
  });
}

/** A webhook receiver on 127.0.0.1 that checks the HMAC signature over `t + "." + body` with `secret` and the
 * Idempotency-Key itself; a request failing either gets 401, the others `statuses` in turn, then 200. Each
 * request is recorded as `{key, body, signatureOk}`. */
async function receiver(secret, statuses = []) {
  const requests = [];
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const m = /^t=(\d+),v1=([0-9a-f]+)$/.exec(req.headers['x-segkit-signature'] || '');
      const expected = m && crypto.createHmac('sha256', secret).update(`${m[1]}.`).update(body).digest('hex');
      const signatureOk = Boolean(m) && crypto.timingSafeEqual(Buffer.from(m[2]), Buffer.from(expected));
      const key = req.headers['idempotency-key'];
      requests.push({ key, body: JSON.parse(body.toString('utf8')), signatureOk });
      const status = !signatureOk || !key ? 401 : statuses.length ? statuses.shift() : 200;
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end('{}');
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}/hook`,
    requests,
    keys: () => requests.map((r) => r.key),
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

module.exports = { USERS, tmpdir, usersWorkspace, rows, receiver };
