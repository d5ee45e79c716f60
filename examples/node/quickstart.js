// The quickstart in Node: ingest the sample customers, define segments, evaluate, update, evaluate again.
//
//   (cd bindings/node && npm install && npm run build)   # once
//   node examples/node/quickstart.js
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { Workspace } = require('../../bindings/node');

const DATA = path.join(__dirname, '..', 'data');

async function main() {
  const dir = process.argv[2] || 'quickstart-workspace-node';
  fs.rmSync(dir, { recursive: true, force: true });
  const ws = await Workspace.open(dir);
  ws.setClock('2026-06-30T12:00:00Z');
  await ws.defineEntity({
    name: 'customer',
    key: 'customer_id',
    attributes: {
      customer_id: 'int64', email: { type: 'string', pii: true }, country: 'string', plan: 'string',
      ltv: 'float64', signed_up: 'date', last_seen: 'timestamp', tags: 'list<string>',
    },
  });
  const report = await ws.ingest('customer', path.join(DATA, 'customers.csv'));
  console.log(`${report.rowsWritten} written, ${report.rowsQuarantined} quarantined`);

  await ws.defineSegment('vip_cn', { entity: 'customer', rule: { and: [
    { attribute: 'country', op: 'eq', value: 'CN' },
    { attribute: 'tags', op: 'has_any', value: ['vip'] },
  ] } });
  await ws.defineSegment('active_this_week', { entity: 'customer', rule: { and: [
    { '>=': [{ var: 'last_seen' }, '2026-06-23T12:00:00Z'] },
    { '!': { '==': [{ var: 'plan' }, 'free'] } },
  ] } });

  for (const step of ['first', 'after update']) {
    if (step === 'after update') await ws.ingest('customer', path.join(DATA, 'customers_update.csv'));
    for (const name of ['vip_cn', 'active_this_week']) {
      const run = await ws.evaluate(name);
      console.log(`${step.padStart(12)} ${name.padEnd(16)} ${run.count} members; entered ${JSON.stringify(run.entered)}; exited ${JSON.stringify(run.exited)}`);
    }
  }
  console.log(await ws.previewRows('vip_cn', 2));
}

main().catch((e) => { console.error(e); process.exit(1); });
