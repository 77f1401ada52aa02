#!/usr/bin/env node
// Builds the native addon at install time. Prefers clang++ (it keeps the 24-accumulator AVX-512
// tile in registers where g++ 12 spills), falls back to g++. Never fails the install: without a
// compiler or headers the addon is simply absent and q8 uses its other backends.
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const has = (cmd) => spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;

function nodeGyp() {
  // Under `npm install`, npm tells scripts where its bundled node-gyp is.
  if (process.env.npm_config_node_gyp && existsSync(process.env.npm_config_node_gyp)) return process.env.npm_config_node_gyp;
  const require = createRequire(import.meta.url);
  for (const id of ['node-gyp/bin/node-gyp.js']) {
    try { return require.resolve(id); } catch { /* try next */ }
  }
  const npmBundled = join(dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');
  for (const p of [npmBundled, '/usr/lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js', '/usr/share/nodejs/node-gyp/bin/node-gyp.js']) {
    if (existsSync(p)) return p;
  }
  return null;
}

const env = { ...process.env };
if (!env.CXX && !env.CC) {
  if (has('clang++') && has('clang')) { env.CC = 'clang'; env.CXX = 'clang++'; }
}
const gyp = nodeGyp();
// Build against the running node's own headers when they are installed next to it (e.g. Debian's
// /usr/include/node), so no header download is needed.
const args = [gyp, 'rebuild'];
const prefix = join(dirname(process.execPath), '..');
if (!env.npm_config_nodedir && existsSync(join(prefix, 'include', 'node', 'node_api.h'))) args.push(`--nodedir=${prefix}`);
if (process.env.Q8_SKIP_NATIVE) {
  console.log('q8: Q8_SKIP_NATIVE set, native addon not built');
} else if (!gyp) {
  console.log('q8: node-gyp not found; native addon not built (q8 falls back to WebAssembly / TypeScript kernels)');
} else {
  const r = spawnSync(process.execPath, args, { cwd: root, env, stdio: 'inherit' });
  if (r.status !== 0) {
    console.log(`q8: native addon build failed (${env.CXX ?? 'default compiler'}); q8 falls back to WebAssembly / TypeScript kernels`);
  } else {
    console.log(`q8: native addon built with ${env.CXX ?? 'the default C++ compiler'}`);
  }
}
process.exit(0);
