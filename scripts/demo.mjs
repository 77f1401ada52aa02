#!/usr/bin/env node
// The main job: for each Fashion-MNIST model trained by scripts/train_fashion.py, evaluate fp32 on
// the 10,000 test images, quantize it with default options (no calibration data), evaluate int8,
// and print accuracy, file size and speed side by side. Speed is measured interleaved (fp32 and
// int8 alternate) on the same batch. Run after `npm install` (which builds dist/ and the addon).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const { load, readIdx, imageBatches, backendInfo } = await import(path.join(root, 'dist/src/index.js'));

const DATA = '/usr/share/datasets/fashion-mnist';
if (!fs.existsSync(path.join(DATA, 't10k-images-idx3-ubyte.gz'))) {
  console.error(`demo: ${DATA} is missing: run scripts/setup.sh (installs dataset-fashion-mnist)`);
  process.exit(1);
}
const ref = JSON.parse(fs.readFileSync(path.join(root, 'models/fashion-reference.json'), 'utf8'));
const images = readIdx(path.join(DATA, 't10k-images-idx3-ubyte.gz'));
const labels = readIdx(path.join(DATA, 't10k-labels-idx1-ubyte.gz'));
const scale = ref.dataset.scale;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'q8-demo-'));
const only = process.argv.slice(2);

async function throughput(models, batch, rounds = 5) {
  const x = imageBatches(images, labels, batch, { scale }).next().value.input;
  const times = models.map(() => []);
  for (const m of models) await m.run({ input: x }); // warm-up
  for (let r = 0; r < rounds; r++) {
    for (let i = 0; i < models.length; i++) {
      const t0 = performance.now();
      await models[i].run({ input: x });
      times[i].push(performance.now() - t0);
    }
  }
  return times.map((t) => { t.sort((a, b) => a - b); return (batch * 1000) / t[t.length >> 1]; });
}

const info = backendInfo();
console.log(`q8 demo: Fashion-MNIST, 10,000 test images; backend ${info.selected} (${info.available.map((b) => b.description).join('; ')}); ${os.availableParallelism()} cores\n`);
const rows = [];
for (const [name, m] of Object.entries(ref.models)) {
  if (only.length && !only.some((o) => name.includes(o))) continue;
  const file = path.join(root, 'models', m.onnx);
  const fp32 = await load(file);
  const t0 = performance.now();
  const int8 = await fp32.quantize();
  const qsecs = (performance.now() - t0) / 1000;
  const out = path.join(tmp, `${name}.int8.onnx`);
  await int8.save(out);
  const int8Loaded = await load(out); // what a user gets back from the saved file
  const data = () => imageBatches(images, labels, 250, { scale, inputShape: fp32.inputs[0].shape });
  const a = await fp32.evaluate(data());
  const b = await int8Loaded.evaluate(data());
  const [s32, s8] = await throughput([fp32, int8Loaded], 100);
  const size32 = fs.statSync(file).size, size8 = fs.statSync(out).size;
  rows.push([name, (100 * m.top1).toFixed(2), (100 * a.top1).toFixed(2), (100 * b.top1).toFixed(2), (100 * (b.top1 - a.top1)).toFixed(2),
    `${(size32 / 1024).toFixed(0)} KiB`, `${(size8 / 1024).toFixed(0)} KiB`, (size32 / size8).toFixed(2) + 'x',
    s32.toFixed(0), s8.toFixed(0), (s8 / s32).toFixed(2) + 'x', qsecs.toFixed(2)]);
  console.error(`  ${name} done`);
}
const head = ['model', 'PyTorch top-1', 'q8 fp32', 'q8 int8', 'Δ pts', 'fp32 size', 'int8 size', 'size ratio', 'fp32 img/s', 'int8 img/s', 'speed-up', 'quantize s'];
const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
const line = (r) => r.map((c, i) => (i ? c.padStart(w[i]) : c.padEnd(w[i]))).join('  ');
console.log(line(head));
console.log(w.map((n) => '-'.repeat(n)).join('  '));
for (const r of rows) console.log(line(r));
console.log('\nimg/s: batch 100, median of 5 interleaved runs. Accuracy in %; Δ = int8 − fp32.');
fs.rmSync(tmp, { recursive: true, force: true });
