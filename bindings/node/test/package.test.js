'use strict';
// Package shape: every runtime export is declared in index.d.ts and vice versa; error classes behave.
const { test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');

const segkit = require('..');
const pkg = require('../package.json');

test('index.d.ts declares exactly the public exports of index.js', () => {
  const dts = fs.readFileSync(path.join(__dirname, '..', 'index.d.ts'), 'utf8');
  const declared = new Set([...dts.matchAll(/export declare (?:class|function|const) (\w+)/g)].map((m) => m[1]));
  const exported = new Set(Object.keys(segkit).filter((k) => k !== 'convertError'));
  assert.deepEqual([...declared].sort(), [...exported].sort());
});

test('package.json points at the wrapper, the types and apache-arrow as a peer', () => {
  assert.equal(pkg.name, 'segkit');
  assert.equal(pkg.main, 'index.js');
  assert.equal(pkg.types, 'index.d.ts');
  assert.match(pkg.peerDependencies['apache-arrow'], /^\^21/);
});

test('error classes: hierarchy, kind, code, causes', () => {
  const e = new segkit.RuleError('boom', { kind: 'rule', causes: ['boom'] });
  assert.ok(e instanceof segkit.SegkitError && e instanceof Error);
  assert.equal(e.name, 'RuleError');
  assert.equal(e.code, 'SEGKIT_RULE');
  assert.deepEqual(e.causes, ['boom']);
  // Native error payloads become the matching class with the whole chain in the message.
  const native = new Error('__segkit_error__:' + JSON.stringify({ kind: 'storage', causes: ['i/o error: x', 'x'] }));
  const converted = segkit.convertError(native);
  assert.ok(converted instanceof segkit.StorageError);
  assert.equal(converted.kind, 'storage');
  assert.match(converted.message, /^i\/o error: x\nCaused by:\n {2}0: x$/);
  // Anything else passes through untouched.
  const other = new RangeError('nope');
  assert.equal(segkit.convertError(other), other);
});
