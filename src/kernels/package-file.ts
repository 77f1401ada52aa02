/**
 * Node-only: find a build artefact (the native addon, the wasm module) under the package root. Kept
 * apart from compile-helpers.ts so the browser entry of the wasm backend never imports node:*.
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The path of `parts` under the nearest directory above `fromUrl` (the caller's import.meta.url:
 * dist/src/kernels/... or src/kernels/...) that has it, searching up to the package root and at most
 * six levels; null when absent.
 */
export function findPackageFile(fromUrl: string, ...parts: string[]): string | null {
  let dir = dirname(fileURLToPath(fromUrl));
  for (let i = 0; i < 6; i++) {
    const p = join(dir, ...parts);
    if (existsSync(p)) return p;
    if (existsSync(join(dir, 'package.json'))) break;
    dir = dirname(dir);
  }
  return null;
}
