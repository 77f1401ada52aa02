/** Shared helpers for the loader tests: fixture paths, a seeded RNG, MNIST reading, the python reference. */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';

const here = dirname(fileURLToPath(import.meta.url));
/** Repository root (tests run from dist/test/formats). */
export const REPO = resolve(here, '../../..');
export const FIXTURES = resolve(REPO, '../shared/fixtures');
export const PYTHON = '/usr/bin/python3';

export function fixture(name: string): string { return join(FIXTURES, name); }

/** A node:test skip reason when fixtures are missing, else false. */
export function needFixtures(...names: string[]): string | false {
  const missing = names.filter((n) => !existsSync(fixture(n)));
  return missing.length ? `fixtures absent in ${FIXTURES}: ${missing.join(', ')}` : false;
}

export function needPython(): string | false {
  return existsSync(PYTHON) ? false : `${PYTHON} (Debian python3 with numpy/torch) is absent`;
}

export { rng } from '../rng.js';

export function randn(r: () => number, n: number, scale = 1): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const u = Math.max(r(), 1e-12), v = r();
    out[i] = scale * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }
  return out;
}

export function mnist(n: number): { images: Uint8Array; labels: Uint8Array } {
  const img = gunzipSync(readFileSync(fixture('mnist-t10k-images-idx3-ubyte.gz')));
  const lab = gunzipSync(readFileSync(fixture('mnist-t10k-labels-idx1-ubyte.gz')));
  return { images: img.subarray(16, 16 + n * 784), labels: lab.subarray(8, 8 + n) };
}

/** Run scripts/loader_reference.py; returns its JSON answer. */
export function pyReference(args: string[], stdin?: unknown): { shape: number[]; data: number[] } {
  const out = execFileSync(PYTHON, [join(REPO, 'scripts/loader_reference.py'), ...args], {
    input: stdin === undefined ? undefined : JSON.stringify(stdin), maxBuffer: 1 << 28, encoding: 'utf8',
  });
  return JSON.parse(out) as { shape: number[]; data: number[] };
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

export function argmaxRows(d: ArrayLike<number>, rows: number, cols: number): number[] {
  const out: number[] = [];
  for (let r = 0; r < rows; r++) {
    let b = 0;
    for (let c = 1; c < cols; c++) if (d[r * cols + c]! > d[r * cols + b]!) b = c;
    out.push(b);
  }
  return out;
}
