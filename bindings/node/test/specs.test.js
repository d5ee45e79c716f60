'use strict';
// The shared request-model fixtures (tests/fixtures/specs.json), run from Node: the same spec gives the same
// entity or members as from Rust and Python, or the same error — class, kind and message, path included.
const { test, before } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const segkit = require('..');

const { Workspace } = segkit;
const FIXTURES = path.join(__dirname, '..', '..', '..', 'tests', 'fixtures');
const CASES = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'specs.json'), 'utf8'));
const CLASSES = { definition: segkit.DefinitionError, rule: segkit.RuleError, invalid_argument: segkit.InvalidArgumentError };
let ws;

before(async () => {
  ws = await Workspace.open(fs.mkdtempSync(path.join(os.tmpdir(), 'segkit-specs-')));
  ws.setClock('2026-06-30T00:00:00Z');
  await ws.defineEntity({
    name: 'people',
    key: 'id',
    attributes: {
      id: 'int64', name: { type: 'string', pii: true }, country: 'string', age: 'int32', plan: 'string',
      score: 'float64', vip: 'bool', joined: 'timestamp', tags: 'list<string>',
    },
  });
  assert.equal((await ws.ingest('people', path.join(FIXTURES, 'people.csv'))).rowsWritten, 8);
});

function specOf(c) {
  const spec = { ...c.spec };
  if (c.deep_not !== undefined) {
    let rule = { attribute: 'age', op: 'gt', value: 30 };
    for (let i = 1; i < c.deep_not; i++) rule = { not: rule };
    spec.rule = rule;
  }
  return spec;
}

async function run(c) {
  const spec = specOf(c);
  if (c.kind === 'entity') {
    const e = await ws.defineEntity(spec);
    return { attributes: Object.entries(e.attributes).map(([n, a]) => [n, a.type, a.nullable, a.pii]) };
  }
  if (c.kind === 'segment') {
    const { name, ...options } = spec;
    const s = await ws.defineSegment(name, options);
    const r = await ws.evaluate(s.name);
    return { members: r.memberKeys(), keep_runs: spec.keep_runs };
  }
  const report = await ws.ingest('people', path.join(FIXTURES, 'people.csv'), spec);
  return { rows_written: report.rowsWritten };
}

for (const c of CASES) {
  test(c.name, async () => {
    if (c.error) {
      await assert.rejects(run(c), (e) => {
        assert.ok(e instanceof CLASSES[c.error.kind], `${e.name}: ${e.message}`);
        assert.equal(e.kind, c.error.kind);
        assert.equal(e.causes[0], c.error.message);
        assert.ok(e.message.startsWith(c.error.message));
        return true;
      });
    } else {
      const got = await run(c);
      for (const key of ['attributes', 'members', 'keep_runs', 'rows_written']) {
        if (key in c) assert.deepEqual(got[key], c[key], key);
      }
    }
  });
}

test('unknown top-level spec fields are refused with their path (Node passes options through)', async () => {
  await assert.rejects(ws.defineEntity({ name: 'x', key: 'id', attributes: { id: 'int64' }, colour: 'red' }), {
    name: 'DefinitionError',
    message: /^invalid definition of entity\.colour: unknown field `colour`, expected one of `name`, `kind`/,
  });
  await assert.rejects(ws.ingest('people', path.join(FIXTURES, 'people.csv'), { mappings: {} }), {
    name: 'InvalidArgumentError',
    message: /^invalid argument: ingest options\.mappings: unknown field `mappings`, expected `mapping` or `mode`/,
  });
});

test('records nested past the limit are refused naming the rows, not a rule', async () => {
  let deep = 'x';
  for (let i = 0; i < segkit.limits.maxRuleDepth; i++) deep = [deep];
  const message = `invalid argument: nesting in the ingested rows goes deeper than ${segkit.limits.maxRuleDepth} levels (limit MAX_RULE_DEPTH = ${segkit.limits.maxRuleDepth})`;
  await assert.rejects(ws.ingest('people', [{ id: 1, tags: deep }]), { name: 'InvalidArgumentError', message });
  for (let i = 0; i < 200; i++) deep = [deep];
  await assert.rejects(ws.ingest('people', [{ id: 1, tags: deep }]), { name: 'InvalidArgumentError', message });
  for (let i = 0; i < 100000; i++) deep = [deep];
  await assert.rejects(ws.ingest('people', [{ id: 1, tags: deep }]), { name: 'InvalidArgumentError', message });
});
