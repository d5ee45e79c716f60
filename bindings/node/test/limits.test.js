'use strict';
// Hostile rule input: depth limits from JS objects and JSON text, through every entry point.
const { test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const { Workspace, RuleError, SegkitError, limits } = require('..');

const LIMIT = limits.maxRuleDepth;

function depth(v) {
  let d = 0;
  const stack = [[v, 1]];
  while (stack.length) {
    const [x, n] = stack.pop();
    if (x !== null && typeof x === 'object') {
      d = Math.max(d, n);
      for (const y of Object.values(x)) stack.push([y, n + 1]);
    }
  }
  return d;
}

/** `age > 30` wrapped until its nesting is `target`; returns [rule, negated]. */
function deep(dialect, wrapper, target) {
  let v = {
    segkit: { attribute: 'age', op: 'gt', value: 30 },
    jsonlogic: { '>': [{ var: 'age' }, 30] },
    querybuilder: { combinator: 'and', rules: [{ field: 'age', operator: '>', value: 30 }] },
  }[dialect];
  let d = depth(v);
  let negated = false;
  const step = wrapper === 'not' && dialect !== 'querybuilder' ? 1 : 2;
  while (d + step <= target) {
    if (dialect === 'segkit') v = wrapper === 'not' ? { not: v } : { and: [v] };
    else if (dialect === 'jsonlogic') v = wrapper === 'not' ? { '!': v } : { and: [v] };
    else v = wrapper === 'not' ? { combinator: 'and', not: true, rules: [v] } : { combinator: 'or', rules: [v] };
    d += step;
    if (wrapper === 'not') negated = !negated;
  }
  assert.equal(depth(v), d);
  return [v, negated];
}

async function users() {
  const ws = await Workspace.open(fs.mkdtempSync(path.join(os.tmpdir(), 'segkit-limits-')));
  await ws.defineEntity({ name: 'user', key: 'user_id', attributes: { user_id: 'int64', age: 'int32' } });
  await ws.ingest('user', [17, 25, 40, 33, 61].map((age, i) => ({ user_id: i + 1, age })));
  return ws;
}

const CASES = [];
for (const d of ['segkit', 'querybuilder', 'jsonlogic']) for (const w of ['not', 'and']) CASES.push([d, w]);

function isDepthError(e) {
  assert.ok(e instanceof RuleError, `got ${e && e.name}: ${e && e.message}`);
  assert.ok(e instanceof SegkitError);
  assert.equal(e.kind, 'rule');
  assert.match(e.message, /MAX_RULE_DEPTH/);
  return true;
}

test('the limit comes from the native module', () => {
  assert.ok(Number.isInteger(LIMIT) && LIMIT >= 16 && LIMIT <= 1000);
});

test('rules at and just below the limit work through every entry point', async () => {
  const ws = await users();
  let i = 0;
  for (const [dialect, wrapper] of CASES) {
    for (const asText of [false, true]) {
      for (const target of [LIMIT, LIMIT - 1]) {
        const [rule, negated] = deep(dialect, wrapper, target);
        const want = negated ? [1, 2] : [3, 4, 5];
        const sent = asText ? JSON.stringify(rule) : rule;
        const name = `deep${i++}`;
        const what = `${dialect}/${wrapper}/${target}/${asText}`;
        const dry = await ws.dryRun(name, { entity: 'user', rule: sent });
        assert.equal(dry.count, want.length, what);
        await ws.defineSegment(name, { entity: 'user', rule: sent });
        assert.equal(await ws.count(name), want.length, what);
        assert.deepEqual((await ws.evaluate(name)).memberKeys(), want, what);
        assert.equal((await ws.explain(name, 3)).member, !negated, what);
      }
    }
  }
});

test('rules past the limit, up to 100,000 deep, are RuleErrors naming it', async () => {
  const ws = await users();
  for (const [dialect, wrapper] of CASES) {
    const [rule] = deep(dialect, wrapper, LIMIT + 2);
    assert.ok(depth(rule) > LIMIT);
    for (const sent of [rule, JSON.stringify(rule)]) {
      await assert.rejects(ws.defineSegment('too_deep', { entity: 'user', rule: sent }), isDepthError);
      await assert.rejects(ws.dryRun('too_deep', { entity: 'user', rule: sent }), isDepthError);
    }
  }
  let huge = { attribute: 'age', op: 'gt', value: 30 };
  for (let k = 0; k < 100000; k++) huge = { not: huge };
  const hugeText = '{"and":['.repeat(100000) + '{"attribute":"age","op":"gt","value":30}' + ']}'.repeat(100000);
  for (const sent of [huge, hugeText]) {
    await assert.rejects(ws.defineSegment('too_deep', { entity: 'user', rule: sent }), isDepthError);
    await assert.rejects(ws.dryRun('too_deep', { entity: 'user', rule: sent }), isDepthError);
  }
  assert.ok(!ws.segments().some((s) => s.name === 'too_deep'));
});

test('a panic in an async native call is an InternalError, not an abort', async () => {
  const { InternalError, __panicInTask } = require('..');
  for (let k = 0; k < 2; k++) {
    await assert.rejects(__panicInTask('boom'), (e) => {
      assert.ok(e instanceof InternalError, `got ${e && e.name}: ${e && e.message}`);
      assert.ok(e instanceof SegkitError);
      assert.equal(e.kind, 'internal');
      assert.match(e.message, /Rust panic/);
      return true;
    });
  }
  // the process and the runtime survive
  const ws = await users();
  assert.equal(ws.entities().length, 1);
});
