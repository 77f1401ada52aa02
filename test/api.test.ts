/** The library API as a user meets it: load, run, predict, predictClass, evaluate, save, worker mode. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { load, Q8Error, Tensor, readIdx, imageBatches } from '../src/index.js';
import { firstNaN } from '../src/api.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const vgg = path.join(root, 'models/fashion-vgg.onnx');
const DATA = '/usr/share/datasets/fashion-mnist';
const haveData = fs.existsSync(path.join(DATA, 't10k-images-idx3-ubyte.gz'));

function fashionBatch(n: number): { x: Tensor; labels: Uint8Array } {
  const images = readIdx(path.join(DATA, 't10k-images-idx3-ubyte.gz'));
  const labels = readIdx(path.join(DATA, 't10k-labels-idx1-ubyte.gz'));
  const b = imageBatches(images, labels, n, { scale: 1 / 255 }).next().value!;
  return { x: b.input as Tensor, labels: b.labels };
}

test('load / inputs / outputs / run / predict / predictClass', { skip: haveData ? false : `${DATA} is absent` }, async () => {
  const model = await load(vgg);
  assert.deepEqual(model.inputNames, ['input']);
  assert.deepEqual(model.outputNames, ['logits']);
  assert.equal(model.inputs[0]!.dtype, 'float32');
  const { x, labels } = fashionBatch(32);
  const out = await model.run({ input: x });
  assert.deepEqual(out['logits']!.shape, [32, 10]);
  const y = await model.predict(x);
  assert.deepEqual(y.data, out['logits']!.data);
  const cls = await model.predictClass(x);
  assert.equal(cls.length, 32);
  const right = cls.filter((c, i) => c === labels[i]).length;
  assert.ok(right >= 26, `only ${right}/32 right`); // the model scores 91.7% on the full set
});

test('evaluate gives top-1/top-5 and per-example predictions', { skip: haveData ? false : `${DATA} is absent` }, async () => {
  const model = await load(vgg);
  const images = readIdx(path.join(DATA, 't10k-images-idx3-ubyte.gz'));
  const labels = readIdx(path.join(DATA, 't10k-labels-idx1-ubyte.gz'));
  const r = await model.evaluate(imageBatches(images, labels, 100, { scale: 1 / 255 }, 500));
  assert.equal(r.n, 500);
  assert.equal(r.predictions.length, 500);
  assert.ok(r.top1 > 0.85 && r.top1 <= r.top5 && r.top5 <= 1, `top1 ${r.top1} top5 ${r.top5}`);
  const hits = [...r.predictions].filter((p, i) => p === labels.data[i]).length;
  assert.equal(hits / 500, r.top1);
});

test('save writes ONNX that loads back with the same outputs', { skip: haveData ? false : `${DATA} is absent` }, async () => {
  const model = await load(vgg);
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'q8-api-')), 'copy.onnx');
  await model.save(file);
  const again = await load(file);
  const { x } = fashionBatch(4);
  assert.deepEqual((await again.predict(x)).data, (await model.predict(x)).data);
});

test('load from bytes; a one-input helper refuses a multi-input call shape', async () => {
  const model = await load(fs.readFileSync(vgg));
  await assert.rejects(model.predict(Tensor.zeros('float32', [1, 1, 28, 27])), (e: unknown) => e instanceof Q8Error && /shape/.test(e.message));
  await assert.rejects(load(path.join(root, 'no-such-model.onnx')), (e: unknown) => e instanceof Q8Error && /no such file/.test(e.message));
});

test('worker mode: run() leaves the event loop free and returns the same outputs', { skip: haveData ? false : `${DATA} is absent` }, async () => {
  const inThread = await load(vgg);
  const inWorker = await load(vgg, { worker: true });
  try {
    const { x } = fashionBatch(200);
    await inWorker.run({ input: x }); // start-up
    let ticks = 0;
    const iv = setInterval(() => ticks++, 1);
    const t0 = performance.now();
    const out = await inWorker.run({ input: x });
    const ms = performance.now() - t0;
    clearInterval(iv);
    assert.deepEqual(out['logits']!.data, (await inThread.run({ input: x }))['logits']!.data);
    // A blocked loop would fire the interval at most once; a free one fires about every ms.
    assert.ok(ticks >= Math.min(5, ms / 4), `event loop ticked ${ticks} times during a ${ms.toFixed(0)} ms run`);
    await assert.rejects(inWorker.run({ input: Tensor.zeros('float32', [1, 1, 28, 27]) }), (e: unknown) => e instanceof Q8Error && /must have shape/.test(e.message));
  } finally {
    await inWorker.close();
  }
});

test('NaN in an input is refused naming the input (int8 and fused kernels would hide it); allowNaN runs it', async () => {
  const file = path.join(root, 'models/fashion-vgg.onnx');
  const d = new Float32Array(784).map((_, i) => ((i * 37) % 255) / 255);
  d[300] = NaN;
  const x = new Tensor('float32', [1, 1, 28, 28], d);
  const m = await load(file);
  for (const model of [m, await m.quantize()]) {
    await assert.rejects(model.run({ input: x }), (e: unknown) => e instanceof Q8Error && /input 'input' holds NaN \(first at flat index 300/.test(e.message) && e.message.includes('fashion-vgg.onnx'));
    assert.throws(() => model.runSync({ input: x }), Q8Error);
  }
  const lax = await load(file, { allowNaN: true });
  const out = Object.values(await lax.run({ input: x }))[0]!;
  assert.equal(out.size, 10);
  d[300] = 0.5;
  assert.equal((await m.predict(x)).size, 10);
});

test('the NaN scan (native for float32 where the addon is built) finds the first NaN in every position, ignores Inf - Inf, and handles float64 and float16', () => {
  for (const n of [0, 1, 3, 4, 5, 8, 13, 255, 256, 257, 513, 1001]) {  // the addon tests blocks of 256
    for (const dtype of ['float32', 'float64'] as const) {
      const d = dtype === 'float32' ? new Float32Array(n) : new Float64Array(n);
      for (let i = 0; i < n; i++) d[i] = i % 3 === 0 ? Infinity : i % 3 === 1 ? -Infinity : i / 7;  // sums of 4 hit Inf - Inf
      assert.equal(firstNaN(new Tensor(dtype, [n], d)), -1, `${dtype} n=${n}: no NaN`);
      for (const at of [0, n - 1, n >> 1, Math.min(n - 1, 6)]) {
        if (at < 0 || at >= n) continue;
        const e = d.slice();
        e[at] = NaN;
        if (at + 2 < n) e[at + 2] = NaN;
        assert.equal(firstNaN(new Tensor(dtype, [n], e)), at, `${dtype} n=${n}: NaN at ${at}`);
      }
    }
  }
  assert.equal(firstNaN(Tensor.from('float16', [3], [1, NaN, 2])), 1);
});
