#!/usr/bin/env node
// Builds dist/wasm/q8.wasm (the WebAssembly SIMD fallback kernels) from wasm/q8.c with clang's wasm32
// target and wasm-ld. Never fails the install: without clang or wasm-ld the module is simply absent
// and the 'wasm' backend reports itself unavailable.
import { spawnSync } from 'node:child_process';
import { mkdirSync, existsSync, renameSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const src = join(root, 'wasm', 'q8.c');
// Not build/: node-gyp's rebuild of the native addon deletes that directory.
const outDir = join(root, 'dist', 'wasm');
const out = join(outDir, 'q8.wasm');

function which(cmds) {
  for (const c of cmds) {
    if (spawnSync('sh', ['-c', `command -v ${c}`], { stdio: 'ignore' }).status === 0) return c;
  }
  return null;
}

// clang finds wasm-ld on PATH (or next to itself); a versioned name alone is passed with -fuse-ld.
const clang = process.env.Q8_WASM_CC || which(['clang', 'clang-18', 'clang-17', 'clang-16', 'clang-15', 'clang-14']);
const ld = which(['wasm-ld', 'wasm-ld-18', 'wasm-ld-17', 'wasm-ld-16', 'wasm-ld-15', 'wasm-ld-14']);
if (process.env.Q8_SKIP_WASM) {
  console.log('q8: Q8_SKIP_WASM set, WebAssembly kernels not built');
} else if (!clang || !ld) {
  console.log(`q8: ${!clang ? 'clang' : 'wasm-ld (lld)'} not found; WebAssembly kernels not built (q8 falls back to TypeScript kernels)`);
} else {
  mkdirSync(outDir, { recursive: true });
  const tmp = `${out}.tmp`;
  const args = [
    '--target=wasm32', '-msimd128', '-O3', '-nostdlib', '-ffreestanding', '-fno-builtin',
    '-Wall', '-Wno-unused-function',
    ld === 'wasm-ld' ? null : `-fuse-ld=${ld}`,
    '-Wl,--no-entry', '-Wl,--export-dynamic',
    // 64 KiB of stack; memory starts small and grows on demand up to the 4 GiB wasm32 limit.
    '-Wl,-z,stack-size=65536', '-Wl,--initial-memory=1048576', '-Wl,--max-memory=4294967296',
    '-o', tmp, src,
  ].filter((a) => a !== null);
  const r = spawnSync(clang, args, { cwd: root, stdio: 'inherit' });
  if (r.status !== 0 || !existsSync(tmp)) {
    console.log(`q8: WebAssembly kernel build failed (${clang}); q8 falls back to TypeScript kernels`);
  } else {
    renameSync(tmp, out);
    console.log(`q8: WebAssembly kernels built with ${clang} (${out})`);
  }
}
process.exit(0);
