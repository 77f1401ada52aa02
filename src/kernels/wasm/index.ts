/**
 * Node entry of the 'wasm' backend (see ./backend.ts): loads dist/wasm/q8.wasm, built by
 * `node wasm/build.mjs` at install. Importing this never throws: without the module (or without
 * wasm SIMD in the engine) the backend reports itself unavailable and sessions use the next one.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadWasmKernels, setWasmLoadError, wasmLoadError as loadError } from './backend.js';

export { loadWasmKernels, wasmBackend, wasmFastKernels, wasmKernels, WasmKernels, type WasmPacked, type ActCode } from './backend.js';

function findModule(): string | null {
  // dist/src/kernels/wasm/index.js: walk up to the package root, then dist/wasm/q8.wasm.
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const p = join(dir, 'dist', 'wasm', 'q8.wasm');
    if (existsSync(p)) return p;
    if (existsSync(join(dir, 'package.json'))) break;
    dir = dirname(dir);
  }
  return null;
}

try {
  const path = findModule();
  if (!path) setWasmLoadError('dist/wasm/q8.wasm not found (WebAssembly kernels not built: node wasm/build.mjs needs clang and wasm-ld)');
  else loadWasmKernels(readFileSync(path));
} catch (e) {
  setWasmLoadError(`WebAssembly kernels failed to load (does the engine support wasm SIMD?): ${(e as Error).message}`);
}

/** Why the wasm kernels are unavailable (null when they loaded). */
export const wasmLoadError: string | null = loadError();
