/**
 * q8 fp32 vs PyTorch on the random-weight model zoo made by scripts/export_zoo.py (VGG16, VGG19,
 * ResNet50, MobileNetV2, SSD300 with and without post-processing, a BERT-base-sized encoder):
 * runs each model on its saved input and compares every output with PyTorch's, requiring
 * max |diff| ≤ 1e-4 × max |reference|.
 *
 *   node dist/bench/zoo-check.js [--dir bench/models] [--backend auto|native|ref] [--models a,b]
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { load } from '../src/api.js';
import { decodeNpy } from '../src/data/npy.js';
import type { BackendChoice } from '../src/kernels/registry.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const args = process.argv.slice(2);
const opt = (k: string) => { const i = args.indexOf(k); return i >= 0 ? args[i + 1] : undefined; };
const dir = path.resolve(opt('--dir') ?? path.join(root, 'bench/models'));
const backend = (opt('--backend') ?? 'auto') as BackendChoice;
const only = opt('--models')?.split(',');
const TOL = 1e-4;

if (!fs.existsSync(dir)) {
  console.error(`zoo-check: ${dir} does not exist: run /usr/bin/python3 scripts/export_zoo.py first`);
  process.exit(1);
}
const names = fs.readdirSync(dir).filter((f) => f.endsWith('.onnx') && fs.existsSync(path.join(dir, f.replace(/\.onnx$/, '.input.npy'))))
  .map((f) => f.replace(/\.onnx$/, '')).filter((n) => !only || only.includes(n)).sort();
const rows: { model: string; outputs: number; worst: number; ms: number; ok: boolean }[] = [];
for (const name of names) {
  const model = await load(path.join(dir, `${name}.onnx`), { backend });
  const x = decodeNpy(fs.readFileSync(path.join(dir, `${name}.input.npy`)));
  const t0 = performance.now();
  const outs = await model.run({ [model.inputNames[0]!]: x });
  const ms = performance.now() - t0;
  let worst = 0, n = 0;
  for (let i = 0; ; i++) {
    const f = path.join(dir, `${name}.output_${i}.npy`);
    if (!fs.existsSync(f)) break;
    const want = decodeNpy(fs.readFileSync(f));
    const got = outs[model.outputNames[i]!]!;
    if (got.shape.join(',') !== want.shape.join(',')) {
      console.log(`${name} output ${i}: shape [${got.shape}] vs PyTorch [${want.shape}]`);
      worst = Infinity;
      continue;
    }
    const a = got.toFloat32(), b = want.toFloat32();
    let maxRef = 0, maxDiff = 0;
    for (let k = 0; k < b.length; k++) { maxRef = Math.max(maxRef, Math.abs(b[k]!)); maxDiff = Math.max(maxDiff, Math.abs(a[k]! - b[k]!)); }
    worst = Math.max(worst, maxRef ? maxDiff / maxRef : maxDiff);
    n++;
  }
  rows.push({ model: name, outputs: n, worst, ms, ok: worst <= TOL });
  console.log(`${name.padEnd(16)} outputs ${n}  max|diff|/max|ref| ${worst.toExponential(2)}  ${worst <= TOL ? 'ok' : 'FAIL'}  (${ms.toFixed(0)} ms, backend ${model.backend})`);
}
fs.mkdirSync(path.join(root, 'bench/results'), { recursive: true });
fs.writeFileSync(path.join(root, 'bench/results/zoo-check.json'), JSON.stringify({ date: new Date().toISOString(), tolerance: TOL, rows }, null, 2));
if (!rows.length) { console.error('zoo-check: no models found'); process.exit(1); }
if (rows.some((r) => !r.ok)) process.exit(1);
