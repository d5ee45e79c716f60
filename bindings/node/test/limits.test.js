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

test('a panic in a synchronous native call is an InternalError, not an abort', () => {
  const { InternalError, __panicSync } = require('..');
  for (let k = 0; k < 2; k++) {
    assert.throws(() => __panicSync('boom in a sync call'), (e) => {
      assert.ok(e instanceof InternalError, `got ${e && e.name}: ${e && e.message}`);
      assert.equal(e.kind, 'internal');
      assert.match(e.message, /^internal error \(a Rust panic inside segkit; please report it\): boom in a sync call$/);
      assert.deepEqual(e.causes, [e.message]);
      return true;
    });
  }
});

// ---- the other rule limits (core: MAX_RULE_NODES, MAX_RULE_LIST_VALUES, MAX_RULE_STRING_BYTES, regex sizes)

function limitError(name, pattern) {
  return (e) => {
    assert.ok(e instanceof RuleError, `got ${e && e.name}: ${e && e.message}`);
    assert.equal(e.kind, 'rule');
    assert.match(e.message, pattern);
    assert.match(e.message, new RegExp(name));
    return true;
  };
}

/** A rule of exactly `nodes` objects: one `or` group and `nodes - 1` conditions (age = 0, 1, 2, …). */
const orOf = (nodes) => ({ or: Array.from({ length: nodes - 1 }, (_, i) => ({ attribute: 'age', op: 'eq', value: i })) });
const inList = (values) => ({ attribute: 'age', op: 'in', value: Array.from({ length: values }, (_, i) => i) });
const eqString = (n) => ({ attribute: 'name', op: 'eq', value: 'C'.repeat(n) });
const matches = (pattern) => ({ attribute: 'name', op: 'matches', value: pattern });

test('rule nodes: at and below the limit work, past it is a RuleError naming MAX_RULE_NODES', async () => {
  const ws = await users();
  for (const n of [limits.maxRuleNodes - 1, limits.maxRuleNodes]) {
    await ws.defineSegment('wide', { entity: 'user', rule: orOf(n) });
    assert.equal(await ws.count('wide'), 5);
  }
  for (const n of [limits.maxRuleNodes + 1, 10 * limits.maxRuleNodes]) {
    const err = limitError('MAX_RULE_NODES', new RegExp(`more than ${limits.maxRuleNodes} conditions`));
    await assert.rejects(ws.defineSegment('wide2', { entity: 'user', rule: orOf(n) }), err);
    await assert.rejects(ws.dryRun('wide2', { entity: 'user', rule: JSON.stringify(orOf(n)) }), err);
  }
});

test('list values: at and below the limit work, past it is a RuleError naming MAX_RULE_LIST_VALUES', async () => {
  const ws = await users();
  for (const n of [limits.maxRuleListValues - 1, limits.maxRuleListValues]) {
    await ws.defineSegment('long', { entity: 'user', rule: inList(n) });
    assert.equal(await ws.count('long'), 5);
  }
  for (const n of [limits.maxRuleListValues + 1, limits.maxRuleListValues + 2000000]) {
    const err = limitError('MAX_RULE_LIST_VALUES', new RegExp(`more than ${limits.maxRuleListValues} list values`));
    await assert.rejects(ws.defineSegment('long2', { entity: 'user', rule: inList(n) }), err);
  }
});

test('strings: at and below the limit pass it, past it is a RuleError naming MAX_RULE_STRING_BYTES', async () => {
  const ws = await users();
  await ws.defineEntity({ name: 'person', key: 'id', attributes: { id: 'int64', name: 'string' } });
  await ws.ingest('person', [{ id: 1, name: 'CN' }, { id: 2, name: 'DE' }, { id: 3, name: 'US' }]);
  for (const n of [limits.maxRuleStringBytes - 1, limits.maxRuleStringBytes]) {
    await ws.defineSegment('str', { entity: 'person', rule: { attribute: 'name', op: 'eq', value: 'C'.repeat(n) } });
    assert.equal(await ws.count('str'), 0);
  }
  for (const n of [limits.maxRuleStringBytes + 1, 100 * limits.maxRuleStringBytes]) {
    const err = limitError('MAX_RULE_STRING_BYTES', new RegExp(`bytes, longer than ${limits.maxRuleStringBytes}`));
    await assert.rejects(ws.defineSegment('str2', { entity: 'person', rule: eqString(n) }), err);
    await assert.rejects(ws.defineSegment('str2', { entity: 'person', rule: JSON.stringify(eqString(n)) }), err);
  }
  // Regex patterns: verbose mode ignores the padding, so the pattern is exactly n bytes and matches CN and DE.
  for (const n of [limits.maxRegexPatternBytes - 1, limits.maxRegexPatternBytes]) {
    const pattern = '(?x)^(CN|DE)$'.padEnd(n);
    assert.equal(Buffer.byteLength(pattern), n);
    await ws.defineSegment('re', { entity: 'person', rule: matches(pattern) });
    assert.equal(await ws.count('re'), 2);
  }
  for (const n of [limits.maxRegexPatternBytes + 1, 60 * limits.maxRegexPatternBytes]) {
    const err = limitError('MAX_REGEX_PATTERN_BYTES', new RegExp(`longer than ${limits.maxRegexPatternBytes}`));
    await assert.rejects(ws.defineSegment('re2', { entity: 'person', rule: matches('a'.repeat(n)) }), err);
  }
  // Regex programs: short patterns that compile huge (counted repetitions of a Unicode class).
  for (const pattern of ['\\w{1000}\\w{1000}\\w{1000}', '\\w{1000}'.repeat(20), '\\w{100000}']) {
    const err = limitError('MAX_REGEX_PROGRAM_BYTES', new RegExp(`more than ${limits.maxRegexProgramBytes} bytes`));
    await assert.rejects(ws.defineSegment('re3', { entity: 'person', rule: matches(pattern) }), err);
  }
  await ws.defineSegment('re4', { entity: 'person', rule: matches('^\\w{2}$') });
  assert.equal(await ws.count('re4'), 3);
});
