#!/usr/bin/env node
// Builds the native module with plain cargo and copies it to ./segkit.node.
//
// Deliberately not `napi build`: the napi CLI always passes `--target <triple>`, which puts the output in a
// separate target tree and rebuilds Arrow/DataFusion from scratch. `cargo build -p segkit-node` reuses the
// workspace's build of the core.
//
// Usage: node scripts/build.js [--release] [--if-missing]
//   --release      build with the release profile (slow; CI and local work use debug)
//   --if-missing   do nothing if ./segkit.node already exists (used by `npm test`)
// Honours CARGO_TARGET_DIR and cargo config through `cargo metadata`.
'use strict';

const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const pkgDir = path.resolve(__dirname, '..');
const repoRoot = path.resolve(pkgDir, '..', '..');
const out = path.join(pkgDir, 'segkit.node');
const args = process.argv.slice(2);
const release = args.includes('--release');

if (args.includes('--if-missing') && fs.existsSync(out)) {
  process.exit(0);
}

function run(cmd, cmdArgs, opts = {}) {
  const r = spawnSync(cmd, cmdArgs, { cwd: repoRoot, stdio: 'inherit', ...opts });
  if (r.error) throw r.error;
  if (r.status !== 0) {
    console.error(`${cmd} ${cmdArgs.join(' ')} failed with exit code ${r.status}`);
    process.exit(r.status || 1);
  }
  return r;
}

const started = Date.now();
// Debug builds (tests) register segkit's test sources (`testing_parts`); release builds never do.
run('cargo', ['build', '-p', 'segkit-node', ...(release ? ['--release'] : ['--features', 'test-sources'])]);

const meta = spawnSync('cargo', ['metadata', '--format-version', '1', '--no-deps'], {
  cwd: repoRoot,
  encoding: 'utf8',
  maxBuffer: 64 * 1024 * 1024,
});
if (meta.status !== 0) {
  console.error(meta.stderr);
  process.exit(meta.status || 1);
}
const targetDir = JSON.parse(meta.stdout).target_directory;
const libName = {
  darwin: 'libsegkit_node.dylib',
  win32: 'segkit_node.dll',
}[process.platform] || 'libsegkit_node.so';
const built = path.join(targetDir, release ? 'release' : 'debug', libName);
if (!fs.existsSync(built)) {
  console.error(`cargo succeeded but ${built} does not exist`);
  process.exit(1);
}
// Copy to a temporary name and rename, so a running process never loads a half-written file.
const tmp = `${out}.tmp-${process.pid}`;
fs.copyFileSync(built, tmp);
fs.renameSync(tmp, out);
console.log(`segkit: ${path.relative(process.cwd(), built)} -> ${path.relative(process.cwd(), out)} (${((Date.now() - started) / 1000).toFixed(1)} s)`);
