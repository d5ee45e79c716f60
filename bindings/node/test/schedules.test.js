'use strict';
// The scheduler, dry runs and the system tables from Node, against a real catalog, real Parquet data and a real
// HTTP receiver on 127.0.0.1 (which verifies the HMAC signature itself). Time is a fixed workspace clock; runDue
// gets explicit instants; serve is stopped by an AbortController.
const { test } = require('node:test');
const assert = require('node:assert/strict');
const { DefinitionError, InvalidArgumentError, NotFoundError } = require('..');
const helpers = require('./helpers');

const T0 = Date.parse('2026-06-30T00:00:00Z');
const SECRET = 'whsec-node-schedules';
const at = (ms) => new Date(T0 + ms);
const HOUR = 3600 * 1000;

/** A workspace at T0 with users, a `cn` segment (users 1 and 3) and an entered workflow `welcome` sending a
 * rendered webhook to `rx`. */
async function setup(rx) {
  process.env.SEGKIT_NODE_SCHED_SECRET = SECRET;
  const { ws } = await helpers.usersWorkspace('schedules', at(0));
  await ws.defineSegment('cn', { entity: 'user', rule: { attribute: 'country', op: 'eq', value: 'CN' } });
  ws.registerAction('hook', { type: 'webhook', url: rx ? rx.url : 'http://127.0.0.1:9/', secret: 'env:SEGKIT_NODE_SCHED_SECRET' });
  await ws.defineTemplate('welcome', { channel: 'webhook', entity: 'user', parts: { body: '{"email": "{{ entity.email }}"}' } });
  await ws.defineWorkflow('welcome', {
    trigger: { type: 'entered', segment: 'cn' },
    steps: [{ type: 'action', name: 'send', action: 'hook', template: 'welcome' }],
  });
  return ws;
}

async function statusCounts(ws) {
  const out = {};
  for (const r of await helpers.rows(ws, 'SELECT status, count(*) AS n FROM segkit.deliveries GROUP BY status')) out[r.status] = r.n;
  return out;
}

test('a schedule in a time zone runs when due, and a missed window runs once', async () => {
  const rx = await helpers.receiver(SECRET);
  try {
    const ws = await setup(rx);
    // 02:30 in Berlin is 00:30 UTC in summer (CEST, UTC+2).
    const info = await ws.schedule('nightly', { cron: '30 2 * * *', timezone: 'Europe/Berlin', job: { type: 'evaluate', segment: 'cn' } });
    assert.deepEqual(info.spec, { name: 'nightly', cron: '30 2 * * *', timezone: 'Europe/Berlin', job: { type: 'evaluate', segment: 'cn' } });
    assert.equal(info.nextDue, '2026-06-30T00:30:00Z');
    assert.equal(info.runs, 0);
    assert.equal(info.lastRunAt, null);
    assert.deepEqual(ws.schedules().map((s) => s.spec.name), ['nightly']);

    let report = await ws.runDue('2026-06-30T00:29:59Z');
    assert.deepEqual(report.jobs, []);
    assert.equal(report.dispatch.claimed, 0);

    report = await ws.runDue(at(HOUR / 2));
    assert.equal(report.jobs.length, 1);
    const [job] = report.jobs;
    assert.deepEqual([job.schedule, job.ok, job.due, job.nextDue], ['nightly', true, '2026-06-30T00:30:00Z', '2026-07-01T00:30:00Z']);
    assert.match(job.outcome, /2 entered/);
    assert.equal(report.dispatch.delivered, 2);
    assert.ok(rx.requests.every((r) => r.signatureOk));
    assert.deepEqual(rx.requests.map((r) => r.body.email).sort(), ['a@x.io', 'c@x.io']);
    assert.deepEqual(await statusCounts(ws), { delivered: 2 });

    // Down for three nights: the job runs once, for the latest missed due instant.
    report = await ws.runDue(new Date(Date.parse('2026-07-03T12:00:00Z')));
    assert.deepEqual(report.jobs.map((j) => [j.due, j.nextDue]), [['2026-07-03T00:30:00Z', '2026-07-04T00:30:00Z']]);
    assert.deepEqual((await ws.runDue('2026-07-03T12:00:00Z')).jobs, []);
    const after = ws.scheduleInfo('nightly');
    assert.deepEqual([after.runs, after.failures, after.lastDue], [2, 0, '2026-07-03T00:30:00Z']);
    const sched = await helpers.rows(ws, 'SELECT name, job_type, timezone, runs, failing FROM segkit.schedules');
    assert.deepEqual(sched, [{ name: 'nightly', job_type: 'evaluate', timezone: 'Europe/Berlin', runs: 2, failing: false }]);

    ws.deleteSchedule('nightly');
    assert.deepEqual(ws.schedules(), []);
    assert.throws(() => ws.scheduleInfo('nightly'), NotFoundError);
  } finally {
    await rx.close();
  }
});

test('runDue defaults to the workspace clock and reports a failing job without throwing', async () => {
  const ws = await setup(null);
  await ws.defineWorkflow('digest', {
    trigger: { type: 'schedule', segment: 'cn' },
    steps: [{ type: 'action', name: 'send', action: 'hook', template: 'welcome' }],
  });
  await ws.schedule('hourly', { cron: '0 * * * *', job: { type: 'workflow', workflow: 'digest' } });
  ws.setClock(at(HOUR));
  const { jobs } = await ws.runDue();
  assert.equal(jobs.length, 1);
  assert.equal(jobs[0].ok, false);
  assert.match(jobs[0].outcome, /has not been evaluated yet/);
  const info = ws.scheduleInfo('hourly');
  assert.equal(info.failures, 1);
  assert.match(info.lastError, /has not been evaluated yet/);
});

test('bad schedules give errors naming the field', async () => {
  const ws = await setup(null);
  const job = { type: 'evaluate', segment: 'cn' };
  await assert.rejects(ws.schedule('n', { cron: '61 * * * *', job }), (e) => e instanceof DefinitionError && /schedule n\.cron/.test(e.message));
  await assert.rejects(
    ws.schedule('n', { cron: '0 * * * *', job, timezone: 'Mars/Olympus' }),
    (e) => e instanceof DefinitionError && /schedule n\.timezone/.test(e.message),
  );
  await assert.rejects(
    ws.schedule('n', { cron: '0 * * * *', job: { type: 'sync', source: 'nope' } }),
    (e) => e instanceof DefinitionError && /schedule n\.job\.source/.test(e.message) && /nope/.test(e.message),
  );
  await assert.rejects(
    ws.schedule('n', { cron: '0 * * * *', job: { type: 'sink' } }),
    (e) => e instanceof DefinitionError && /schedule\.job/.test(e.message) && /unknown variant `sink`/.test(e.message),
  );
  await assert.rejects(ws.runDue(42), InvalidArgumentError);
  await assert.rejects(ws.runDue('yesterday'), (e) => e instanceof InvalidArgumentError && /"yesterday" is not RFC 3339/.test(e.message));
  await assert.rejects(ws.serve({}), (e) => e instanceof InvalidArgumentError && /AbortSignal/.test(e.message));
  await assert.rejects(ws.serve({ signal: new AbortController().signal, pollIntervalMs: 0 }), /pollIntervalMs/);
  assert.deepEqual(ws.schedules(), []);
});

test('dryRunWorkflow lists the rendered content without writing the ledger', async () => {
  const rx = await helpers.receiver(SECRET);
  try {
    const ws = await setup(rx);
    const dry = await ws.dryRunWorkflow('welcome', [1, 3n]);
    assert.deepEqual(
      dry.map((r) => [r.entityKey, r.step, r.channel, r.status]),
      [
        ['1', 'send', 'hook', 'send'],
        ['3', 'send', 'hook', 'send'],
      ],
    );
    assert.deepEqual(dry[1].content, { body: '{"email": "c@x.io"}' });
    assert.equal((await ws.dryRunWorkflow('welcome', [1, 3], 1)).length, 1);
    assert.deepEqual(await helpers.rows(ws, 'SELECT count(*) AS n FROM segkit.deliveries'), [{ n: 0 }]);
    assert.equal(rx.requests.length, 0);
    await assert.rejects(ws.dryRunWorkflow('nope'), NotFoundError);

    await ws.evaluate('cn');
    assert.deepEqual(await statusCounts(ws), { pending: 2 });
    assert.equal((await ws.dispatchDue()).delivered, 2);
    assert.deepEqual(await statusCounts(ws), { delivered: 2 });
  } finally {
    await rx.close();
  }
});

test('serve stops on abort, releases the claims of hanging deliveries and leaves no row running', async () => {
  const ws = await setup(null);
  const ac = new AbortController();
  const started = [];
  let release;
  const gate = new Promise((resolve) => {
    release = resolve;
  });
  ws.registerAction('slow', async (d) => {
    started.push(d.entityKey);
    if (started.length === 1) ac.abort(); // SIGTERM arrives while a receiver hangs
    await gate;
    return { status: 'delivered' };
  });
  await ws.defineWorkflow('welcome', {
    trigger: { type: 'entered', segment: 'cn' },
    steps: [{ type: 'action', name: 'send', action: 'slow' }],
  });
  await ws.schedule('hourly', { cron: '0 * * * *', job: { type: 'evaluate', segment: 'cn' } });
  ws.setClock(at(HOUR));
  let report;
  try {
    report = await ws.serve({ signal: ac.signal, pollIntervalMs: 50, graceMs: 200 });
  } finally {
    release();
  }
  assert.equal(report.jobs, 1);
  assert.equal(report.failedJobs, 0);
  assert.ok(report.passes >= 1, JSON.stringify(report));
  assert.equal(report.delivered, 0);
  assert.equal(report.released, 2);
  assert.deepEqual(await statusCounts(ws), { pending: 2 });
  assert.ok(ws.deliveries().every((r) => r.attempts === 0));
  // Another dispatcher sends them at once, without waiting for a lease to expire.
  assert.equal((await ws.dispatchDue()).delivered, 2);
  assert.deepEqual(await statusCounts(ws), { delivered: 2 });

  // An already-aborted signal: serve returns at once without a pass.
  const done = new AbortController();
  done.abort();
  assert.deepEqual(await ws.serve({ signal: done.signal }), { passes: 0, jobs: 0, failedJobs: 0, delivered: 0, released: 0 });
});
