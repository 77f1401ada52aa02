/**
 * Node entry of the 'wasm' backend (see ./backend.ts): loads dist/wasm/q8.wasm, built by
 * `node wasm/build.mjs` at install. Importing this never throws: without the module (or without
 * wasm SIMD in the engine) the backend reports itself unavailable and sessions use the next one.
 */
import { readFileSync } from 'node:fs';
import { findPackageFile } from '../package-file.js';
import { loadWasmKernels, setWasmLoadError, wasmLoadError as loadError } from './backend.js';

export { loadWasmKernels, wasmBackend, wasmFastKernels, wasmKernels, WasmKernels, type WasmPacked, type ActCode } from './backend.js';

try {
  // dist/src/kernels/wasm/index.js: the module is dist/wasm/q8.wasm under the package root.
  const path = findPackageFile(import.meta.url, 'dist', 'wasm', 'q8.wasm');
  if (!path) setWasmLoadError('dist/wasm/q8.wasm not found (WebAssembly kernels not built: node wasm/build.mjs needs clang and wasm-ld)');
  else loadWasmKernels(readFileSync(path));
} catch (e) {
  setWasmLoadError(`WebAssembly kernels failed to load (does the engine support wasm SIMD?): ${(e as Error).message}`);
}

/** Why the wasm kernels are unavailable (null when they loaded). */
export const wasmLoadError: string | null = loadError();
