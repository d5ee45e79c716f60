'use strict';
const { test, describe } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { tableFromIPC, tableToIPC, tableFromArrays } = require('apache-arrow');

const { Workspace, InvalidArgumentError, NotFoundError, DefinitionError } = require('..');

function tmpdir() {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'segkit-node-static-'));
}

async function users() {
  const ws = await Workspace.open(tmpdir());
  await ws.defineEntity({ name: 'user', key: 'user_id', attributes: { user_id: 'int64', country: 'string' } });
  await ws.ingest('user', [
    { user_id: 1, country: 'CN' },
    { user_id: 2, country: 'US' },
    { user_id: 3, country: 'CN' },
    { user_id: 4, country: 'DE' },
  ]);
  return ws;
}

describe('static-list segments', () => {
  test('an array of keys: evaluated, counted, referenced, changed, explained', async () => {
    const ws = await users();
    const r = await ws.defineStaticSegment('picked', { entity: 'user', keys: [3, 1, 3, 99] });
    assert.deepEqual(
      [r.version, r.operation, r.keysRead, r.keyCount, r.matched, r.unmatched],
      [1, 'replace', 4, 3, 2, 1],
    );
    const run = await ws.evaluate('picked');
    assert.deepEqual(run.memberKeys(), [1, 3]);
    assert.deepEqual(run.entered, [1, 3]);
    assert.equal(await ws.count('picked'), 2);
    assert.deepEqual(Array.from(tableFromIPC(await ws.staticKeys('picked')).getChild('user_id').toArray()), [1n, 3n, 99n]);
    await ws.defineSegment('picked_cn', {
      entity: 'user',
      rule: { and: [{ in_segment: 'picked' }, { attribute: 'country', op: 'eq', value: 'CN' }] },
    });
    assert.deepEqual((await ws.evaluate('picked_cn')).memberKeys(), [1, 3]);
    await ws.defineSegment('rest', { entity: 'user', rule: { not_in_segment: 'picked' } });
    assert.deepEqual((await ws.evaluate('rest')).memberKeys(), [2, 4]);
    const e = await ws.explain('picked', 3);
    assert.equal(e.member, true);
    assert.match(e.text, /static list/);

    assert.equal((await ws.addStaticKeys('picked', [2n])).keyCount, 4);
    assert.equal((await ws.removeStaticKeys('picked', [1])).version, 3);
    const again = await ws.evaluate('picked');
    assert.deepEqual([again.memberKeys(), again.entered, again.exited], [[2, 3], [2], [1]]);
    assert.deepEqual(ws.staticListVersions('picked').map((v) => v.operation), ['replace', 'add', 'remove']);
  });

  test('keys as an Arrow IPC buffer, and string keys', async () => {
    const ws = await users();
    const ipc = tableToIPC(tableFromArrays({ user_id: new BigInt64Array([4n, 2n]) }));
    const r = await ws.defineStaticSegment('from_ipc', { entity: 'user', keys: ipc });
    assert.deepEqual([r.keyCount, r.matched], [2, 2]);
    assert.deepEqual((await ws.evaluate('from_ipc')).memberKeys(), [2, 4]);

    await ws.defineEntity({ name: 'acct', key: 'code', attributes: { code: 'string' } });
    await ws.ingest('acct', [{ code: 'a' }, { code: 'b' }]);
    const s = await ws.defineStaticSegment('codes', { entity: 'acct', keys: ['b', 'zz'] });
    assert.deepEqual([s.keyCount, s.matched, s.unmatched], [2, 1, 1]);
    assert.deepEqual((await ws.evaluate('codes')).memberKeys(), ['b']);
  });

  test('bad keys are refused with clear errors', async () => {
    const ws = await users();
    await assert.rejects(ws.defineStaticSegment('bad', { entity: 'user', keys: [1, null] }), (e) => {
      assert.ok(e instanceof InvalidArgumentError, `${e.name}: ${e.message}`);
      assert.match(e.message, /row 2 is null; a static list holds keys of `user`, never null/);
      return true;
    });
    await assert.rejects(ws.defineStaticSegment('bad', { entity: 'user', keys: ['1'] }), (e) => {
      assert.ok(e instanceof InvalidArgumentError);
      assert.match(e.message, /the key column has type Utf8, but the key `user_id` of `user` is int64/);
      return true;
    });
    await assert.rejects(ws.defineStaticSegment('bad', { entity: 'user', keys: [1, 'x'] }), (e) => {
      assert.ok(e instanceof InvalidArgumentError);
      assert.match(e.message, /keys\[0\] is a number; keys must be all numbers or all strings/);
      return true;
    });
    await assert.rejects(ws.defineStaticSegment('bad', { entity: 'user', keys: [1.5] }), (e) => {
      assert.ok(e instanceof InvalidArgumentError);
      assert.match(e.message, /keys\[0\] = 1.5 is not a safe integer/);
      return true;
    });
    await assert.rejects(ws.defineStaticSegment('bad', { entity: 'user', keys: 'nope' }), (e) => {
      assert.ok(e instanceof InvalidArgumentError);
      assert.match(e.message, /static list keys must be an array/);
      return true;
    });
    await assert.rejects(ws.defineStaticSegment('bad', { entity: 'nobody', keys: [1] }), DefinitionError);
    await assert.rejects(ws.addStaticKeys('missing', [1]), NotFoundError);
    assert.throws(() => ws.segment('bad'), NotFoundError);
  });
});
