'use strict';
// Config-as-code from Node: plan / apply / export over a real workspace (the logic is core's; this checks the
// conversions and the error mapping).
const { test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { Workspace, DefinitionError } = require('..');

const PROJECT = `
[entities.user]
key = "user_id"
attributes = { user_id = "int64", country = "string" }

[segments.cn]
entity = "user"
rule = { attribute = "country", op = "eq", value = "CN" }
`;

test('plan, apply and export round-trip; errors name the file and field', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'segkit-project-'));
  const ws = await Workspace.open(path.join(dir, 'ws'));
  const plan = await ws.plan(PROJECT);
  assert.deepEqual(plan.changes.map((c) => [c.kind, c.name, c.action]), [['entity', 'user', 'create'], ['segment', 'cn', 'create']]);
  assert.equal(plan.applied, false);
  const applied = await ws.apply(PROJECT);
  assert.equal(applied.applied, true);
  await ws.ingest('user', [{ user_id: 1, country: 'CN' }, { user_id: 2, country: 'US' }]);
  assert.equal((await ws.evaluate('cn')).count, 1);

  const file = path.join(dir, 'exported.yaml');
  fs.writeFileSync(file, ws.export({ format: 'yaml' }));
  const again = await ws.plan(file);
  assert.ok(again.changes.every((c) => c.action === 'unchanged'), JSON.stringify(again));

  const dropped = PROJECT.replace(', country = "string"', '').split('[segments.cn]')[0];
  const blocked = await ws.plan(dropped);
  assert.equal(blocked.blocked, true);
  await assert.rejects(ws.apply(dropped), (e) => e instanceof DefinitionError && /allow_destructive/.test(e.message));

  fs.writeFileSync(path.join(dir, 'bad.toml'), '[segments.cn]\nentity = "user"\nrule = { attribute = "country", op = "equals", value = "CN" }\n');
  await assert.rejects(ws.plan(path.join(dir, 'bad.toml')), (e) => e instanceof DefinitionError && /bad\.toml: segments\.cn\.rule/.test(e.message));
  fs.rmSync(dir, { recursive: true, force: true });
});
