'use strict';
// Workflows from Node: templates, workflows, the ledger and the dispatcher against a real catalog, real Parquet
// data and a real HTTP receiver on 127.0.0.1 (which verifies the HMAC signature and the Idempotency-Key itself);
// custom actions (async functions) driven by the same dispatcher, retries and ledger; the action conformance
// suite. Time is a fixed clock moved by hand.
const { test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { testing, DefinitionError, InvalidArgumentError, NotFoundError } = require('..');

const T0 = Date.parse('2026-06-30T00:00:00Z');
const SECRET = 'whsec-node-test';
// The dispatch report's counts of policies these tests do not use.
const QUIET = { capped: 0, held: 0, rateLimited: 0, waiting: 0 };
const at = (ms) => new Date(T0 + ms);
const helpers = require('./helpers');

async function setup() {
  const { ws } = await helpers.usersWorkspace('workflows', at(0), [
    ...helpers.USERS,
    { user_id: 4, country: 'DE', email: null },
  ]);
  await ws.defineSegment('cn', { entity: 'user', rule: { attribute: 'country', op: 'eq', value: 'CN' } });
  return ws;
}

function manual(ws, name, action, { template, policies } = {}) {
  const step = { type: 'action', name: 'send', action };
  if (template) step.template = template;
  return ws.defineWorkflow(name, { trigger: { type: 'manual', entity: 'user' }, steps: [step], policies });
}

const byKey = (rows) => Object.fromEntries(rows.map((r) => [r.entityKey, r]));

test('an entered workflow sends signed webhooks the receiver verifies', async () => {
  process.env.SEGKIT_NODE_HOOK_SECRET = SECRET;
  const ws = await setup();
  const rx = await helpers.receiver(SECRET);
  try {
    const config = { type: 'webhook', url: rx.url, secret: 'env:SEGKIT_NODE_HOOK_SECRET' };
    await ws.defineTemplate('welcome', {
      channel: 'webhook',
      entity: 'user',
      parts: { body: '{"user": "{{ key }}", "email": "{{ entity.email }}"}' },
    });
    const wf = await ws.defineWorkflow('welcome', {
      trigger: { type: 'entered', segment: 'cn' },
      // An inline action config, built by the workspace's action factory (all built-in families).
      steps: [{ type: 'action', name: 'send', action: config, template: 'welcome' }],
    });
    assert.deepEqual(wf.steps[0].action, config);
    assert.deepEqual(wf.trigger, { type: 'entered', segment: 'cn' });
    assert.deepEqual(ws.workflow('welcome'), wf);
    assert.deepEqual(ws.workflows().map((w) => w.name), ['welcome']);
    assert.equal(ws.template('welcome').entity, 'user');

    await ws.evaluate('cn');
    const pending = ws.deliveries({ workflow: 'welcome' });
    assert.deepEqual(pending.map((r) => [r.entityKey, r.status]).sort(), [['1', 'pending'], ['3', 'pending']]);
    assert.equal(rx.requests.length, 0);

    const report = await ws.dispatchDue({ limit: 10, concurrency: 2 });
    assert.deepEqual(report, { claimed: 2, delivered: 2, done: 0, retried: 0, dead: 0, suppressed: 0, ...QUIET });
    const rows = byKey(ws.deliveries({ workflow: 'welcome', status: 'delivered' }));
    assert.deepEqual(Object.keys(rows).sort(), ['1', '3']);
    assert.ok(Object.values(rows).every((r) => r.receipt === 'HTTP 200' && r.attempts === 1 && r.lastError === null));
    assert.ok(rx.requests.every((r) => r.signatureOk));
    const got = Object.fromEntries(rx.requests.map((r) => [r.key, r.body]));
    assert.deepEqual(got, {
      [rows['1'].idempotencyKey]: { user: '1', email: 'a@x.io' },
      [rows['3'].idempotencyKey]: { user: '3', email: 'c@x.io' },
    });
    assert.equal((await ws.dispatchDue()).claimed, 0);

    ws.deleteWorkflow('welcome');
    assert.deepEqual(ws.workflows(), []);
    assert.equal(ws.deliveries({ workflow: 'welcome' }).length, 2);
    assert.throws(() => ws.workflow('welcome'), NotFoundError);
  } finally {
    await rx.close();
  }
});

test('a custom async action retries then delivers, honouring retryAfter, with the same key', async () => {
  const ws = await setup();
  const seen = [];
  let fail = 1;
  ws.registerAction(
    'sms',
    async function sendSms(delivery) {
      seen.push(delivery);
      if (fail-- > 0) return { status: 'retryable', reason: 'receiver busy', retryAfter: 120 };
      return { status: 'delivered', receipt: `sent ${delivery.entityKey}` };
    },
    { parts: ['text'] },
  );
  await ws.defineTemplate('hi', { channel: 'sms', entity: 'user', parts: { text: 'Hi {{ entity.country }} {{ key }}' } });
  await manual(ws, 'greet', 'sms', { template: 'hi' });
  assert.equal(await ws.trigger('greet', [1]), 1);
  assert.deepEqual(await ws.dispatchDue(), { claimed: 1, delivered: 0, done: 0, retried: 1, dead: 0, suppressed: 0, ...QUIET });
  let [row] = ws.deliveries({ workflow: 'greet' });
  assert.deepEqual([row.status, row.attempts, row.lastError], ['pending', 1, 'receiver busy']);
  ws.setClock(at(60_000));
  assert.equal((await ws.dispatchDue()).claimed, 0);
  ws.setClock(at(121_000));
  assert.equal((await ws.dispatchDue()).delivered, 1);
  [row] = ws.deliveries({ workflow: 'greet' });
  assert.deepEqual([row.status, row.attempts, row.receipt], ['delivered', 2, 'sent 1']);
  assert.equal(seen.length, 2);
  assert.deepEqual(
    seen.map((d) => [d.idempotencyKey, d.attempt]),
    [
      [row.idempotencyKey, 1],
      [row.idempotencyKey, 2],
    ],
  );
  const d = seen[0];
  assert.deepEqual([d.origin, d.step, d.channel, d.entity, d.entityKey], ['greet', 'send', 'sms', 'user', '1']);
  assert.equal(d.content.text, 'Hi CN 1');
  assert.equal(d.attributes.email, 'a@x.io');
});

test('dispatchBacklog claims batch after batch until nothing is due', async () => {
  process.env.SEGKIT_NODE_HOOK_SECRET = SECRET;
  const ws = await setup();
  const rx = await helpers.receiver(SECRET);
  try {
    await manual(ws, 'ping', { type: 'webhook', url: rx.url, secret: 'env:SEGKIT_NODE_HOOK_SECRET' });
    assert.equal(await ws.trigger('ping'), 4);
    // One pass claims one batch; the backlog claims batch after batch while each claim comes back full.
    assert.equal((await ws.dispatchDue({ limit: 1, concurrency: 1 })).claimed, 1);
    const report = await ws.dispatchBacklog({ batch: 2, concurrency: 2 });
    assert.deepEqual(report, { claimed: 3, delivered: 3, done: 0, retried: 0, dead: 0, suppressed: 0, ...QUIET });
    const rows = ws.deliveries({ workflow: 'ping' });
    assert.deepEqual(rows.map((r) => r.entityKey).sort(), ['1', '2', '3', '4']);
    assert.ok(rows.every((r) => r.status === 'delivered'));
    assert.deepEqual(rx.keys().sort(), rows.map((r) => r.idempotencyKey).sort());
    assert.ok(rx.requests.every((r) => r.signatureOk));
    assert.equal((await ws.dispatchBacklog()).claimed, 0);
    for (const bad of [{ batch: 0 }, { concurrency: -1 }, { batch: 2 ** 32 }, { concurrency: 1.5 }, { batch: '2' }]) {
      await assert.rejects(ws.dispatchBacklog(bad), (e) => {
        assert.ok(e instanceof InvalidArgumentError);
        assert.match(e.message, /dispatchBacklog: (batch|concurrency) must be/);
        return true;
      });
    }
    assert.equal(rx.requests.length, 4);
  } finally {
    await rx.close();
  }
});

test('a thrown error is retryable; a permanent failure is dead-lettered then replayed', async () => {
  const ws = await setup();
  const outcomes = [
    () => {
      throw new TypeError('socket hang up');
    },
    () => ({ status: 'permanent', reason: 'mailbox does not exist' }),
    () => undefined,
    () => ({ status: 'delivered' }),
  ];
  const keys = [];
  ws.registerAction('mail', async (d) => {
    keys.push(d.idempotencyKey);
    return outcomes.shift()();
  });
  await manual(ws, 'mailing', 'mail', { policies: { backoff_ms: 1000 } });
  await ws.trigger('mailing', ['4']);
  assert.equal((await ws.dispatchDue()).retried, 1);
  assert.equal(ws.deliveries({ workflow: 'mailing' })[0].lastError, 'execute threw TypeError: socket hang up');
  ws.setClock(at(3_600_000));
  assert.equal((await ws.dispatchDue()).dead, 1);
  let [dead] = ws.deliveries({ status: 'dead' });
  assert.equal(dead.lastError, 'permanent failure: mailbox does not exist');
  assert.equal(await ws.replay({ ids: [dead.id] }), 1);
  assert.equal((await ws.dispatchDue()).dead, 1);
  [dead] = ws.deliveries({ status: 'dead' });
  assert.match(dead.lastError, /execute returned undefined; return \{status:/);
  assert.equal(await ws.replay({ workflow: 'mailing' }), 1);
  assert.equal(await ws.replay({ workflow: 'mailing' }), 0);
  assert.equal((await ws.dispatchDue()).delivered, 1);
  assert.equal(keys.length, 4);
  assert.equal(new Set(keys).size, 1);
  assert.deepEqual(ws.deliveries({ status: 'dead' }), []);
});

test('suppressed keys are skipped per channel', async () => {
  const ws = await setup();
  const sent = [];
  ws.registerAction('sms', async (d) => {
    sent.push(d.entityKey);
    return { status: 'delivered' };
  });
  await manual(ws, 'promo', 'sms');
  assert.equal(await ws.suppress('sms', [1, '3']), 2);
  assert.equal(await ws.suppress('sms', [1]), 0);
  assert.equal(await ws.trigger('promo', [1, 2, 3]), 3);
  const report = await ws.dispatchDue();
  assert.deepEqual([report.delivered, report.suppressed], [1, 2]);
  assert.deepEqual(sent, ['2']);
  assert.deepEqual(
    Object.fromEntries(ws.deliveries({ workflow: 'promo' }).map((r) => [r.entityKey, r.status])),
    { 1: 'suppressed', 2: 'delivered', 3: 'suppressed' },
  );
  assert.equal(await ws.unsuppress('sms', [1, 5]), 1);
});

test('render previews one entity with HTML escaping', async () => {
  const ws = await setup();
  await ws.defineTemplate('card', {
    channel: 'email',
    entity: 'user',
    parts: { subject: 'Hello {{ entity.country }}', html: "<p>{{ entity.email ~ ' <&>' }}</p>" },
  });
  assert.deepEqual(await ws.render('card', 1), { subject: 'Hello CN', html: '<p>a@x.io &lt;&amp;&gt;</p>' });
  await assert.rejects(ws.render('card', 99), (e) => e instanceof NotFoundError && /with key 99/.test(e.message));
  await assert.rejects(ws.render('nope', 1), NotFoundError);
});

test('bad specs and actions name the field path', async () => {
  const ws = await setup();
  ws.registerAction('sms', async () => ({ status: 'delivered' }));
  const rejects = (p, re) => assert.rejects(p, (e) => e instanceof DefinitionError && re.test(e.message));
  await rejects(
    ws.defineTemplate('t', { channel: 'sms', entity: 'user', parts: { text: '{{ entity.countri }}' } }),
    /template t\.parts\.text[\s\S]*unknown attribute `countri`/,
  );
  await rejects(manual(ws, 'w', 'smss'), /workflow w\.steps\[0\]\.action[\s\S]*no action named `smss`/);
  await rejects(ws.defineWorkflow('w', { trigger: { type: 'entred', segment: 'cn' }, steps: [] }), /unknown variant `entred`/);
  await rejects(manual(ws, 'w', 'sms', { policies: { max_attempts: 'three' } }), /workflow\.policies\.max_attempts/);
  await rejects(manual(ws, 'w', 'sms', { policies: { max_attempts: 0 } }), /workflow w\.policies\.max_attempts/);
  await rejects(
    ws.defineWorkflow('w', { trigger: { type: 'entered', segment: 'nope' }, steps: [{ type: 'exit', name: 'e' }] }),
    /workflow w\.trigger\.segment/,
  );
  assert.throws(() => ws.registerAction('bad', { type: 'webhook', url: 'not a url' }), (e) => e instanceof DefinitionError && /action\.url/.test(e.message));
  assert.throws(
    () => ws.registerAction('bad', { type: 'webhok', url: 'http://127.0.0.1:1/' }),
    (e) => e instanceof DefinitionError && /did you mean `webhook`/.test(e.message),
  );
  assert.throws(
    () => ws.registerAction('bad', async () => ({}), { parts: Array.from({ length: 17 }, (_, i) => `p${i}`) }),
    (e) => e instanceof DefinitionError && /MAX_ACTION_PARTS/.test(e.message),
  );
  assert.throws(() => ws.registerAction('bad', async () => ({}), { maxRatePerSecond: 0 }), DefinitionError);
  assert.throws(() => ws.registerAction('bad', 42), InvalidArgumentError);
  assert.throws(() => ws.deliveries({ status: 'sent' }), (e) => e instanceof InvalidArgumentError && /unknown delivery status `sent`/.test(e.message));
  await assert.rejects(ws.trigger('nope'), NotFoundError);
  assert.deepEqual(ws.workflows(), []);
  // A built-in action registered by its config, named by a step.
  const out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'segkit-jsonl-')), 'sent.jsonl');
  ws.registerAction('file', { type: 'jsonl', path: out });
  await manual(ws, 'ok', 'file');
  await ws.trigger('ok', [2]);
  assert.equal((await ws.dispatchDue()).delivered, 1);
  const [line] = fs.readFileSync(out, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  assert.deepEqual([line.entity_key, line.idempotency_key], ['2', ws.deliveries({ workflow: 'ok' })[0].idempotencyKey]);
});

test('checkAction passes good actions and names each violation', async () => {
  const keys = [];
  async function good(d) {
    if (d.content.text === undefined) return { status: 'permanent', reason: 'no text to send' };
    keys.push(d.idempotencyKey);
    return { status: 'delivered', receipt: 'ok' };
  }
  await testing.checkAction(good, { parts: ['text'], received: () => keys });
  await testing.checkAction(good, {
    parts: ['text'],
    delivery: { idempotencyKey: 'k-1', origin: 'o', entity: 'user', entityKey: '1', attributes: {}, content: { text: 'hi' } },
    received: async () => keys,
  });
  assert.equal(keys.filter((k) => k === 'k-1').length, 2);
  await testing.checkAction(good.bind(null), { parts: ['text'] }); // kind `js:bound_good`, no space

  process.env.SEGKIT_NODE_HOOK_SECRET = SECRET;
  const rx = await helpers.receiver(SECRET);
  try {
    await testing.checkAction(
      { type: 'webhook', url: rx.url, secret: 'env:SEGKIT_NODE_HOOK_SECRET' },
      { secrets: [SECRET], received: rx.keys },
    );
    assert.ok(rx.requests.length >= 2 && rx.requests.every((r) => r.signatureOk));
  } finally {
    await rx.close();
  }

  const fails = (p, re) => assert.rejects(p, (e) => e instanceof DefinitionError && re.test(e.message));
  await fails(
    testing.checkAction(async (d) => (d.content.text ? { status: 'delivered' } : { status: 'retryable', reason: 'later' }), { parts: ['text'] }),
    /without content must be delivered or permanent/,
  );
  await fails(
    testing.checkAction(async function once(d) {
      return d.attempt === 1 ? { status: 'delivered' } : { status: 'permanent', reason: 'duplicate' };
    }),
    /action js:once: conformance: re-executing the same idempotency key must be accepted/,
  );
  await fails(testing.checkAction(async () => ({ status: 'delivered', receipt: 'token=tok-9' }), { secrets: ['tok-9'] }), /shows a secret/);
  await fails(testing.checkAction(() => new Promise(() => {}), { timeoutMs: 200 }), /did not return within 0\.2 s/);
  await fails(testing.checkAction(good, { parts: ['text'], received: () => [] }), /never saw idempotency key/);
  await fails(
    testing.checkAction(async () => {
      throw new Error('no route');
    }),
    /must be delivered, got retryable: execute threw Error: no route/,
  );
  await fails(testing.checkAction(good, { parts: ['text', 'text'] }), /listed twice/);
  await assert.rejects(testing.checkAction(good, { parst: ['text'] }), InvalidArgumentError);
});

test('custom actions run concurrently up to the dispatch concurrency', async () => {
  // Each call waits until all three have started: this completes only if the dispatcher runs them at once.
  const ws = await setup();
  let started = 0;
  let release;
  const allIn = new Promise((resolve) => {
    release = resolve;
  });
  ws.registerAction('barrier', async () => {
    started += 1;
    if (started === 3) release();
    await allIn;
    return { status: 'delivered' };
  });
  await manual(ws, 'fanout', 'barrier');
  await ws.trigger('fanout', [1, 2, 3]);
  assert.equal((await ws.dispatchDue({ concurrency: 3 })).delivered, 3);
});
