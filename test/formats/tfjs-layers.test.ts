/**
 * TF.js layers models: a small CNN is built and trained with @tensorflow/tfjs on MNIST digits
 * (first 2,000 of the t10k file), saved by tfjs through a save handler into model.json + two weight
 * shards, then loaded by q8 and compared with tfjs's own predictions on the next 2,000 digits —
 * also with tfjs's uint8/uint16/float16 weight quantization (tfjs loads the same quantized files
 * as the reference). Finally q8's int8 quantization of the loaded model is measured.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { f32ToF16 } from '../../src/core/dtype.js';
import { loadModel } from '../../src/formats/detect.js';
import { loadTfjs } from '../../src/formats/tfjs/index.js';
import type { Model } from '../../src/graph/ir.js';
import { quantize } from '../../src/quant/quantize.js';
import { Session } from '../../src/runtime/session.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { argmaxRows, maxAbsDiff, mnist, needFixtures } from './loader-helpers.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Tfjs = any;
async function tfjs(): Promise<Tfjs | undefined> {
  const name = '@tensorflow/tfjs';
  try { return await import(name); } catch { return undefined; }
}

interface Spec { name: string; shape: number[]; dtype: string; quantization?: Record<string, unknown> }

/** Re-encode float32 weights the way tfjs-converter's weight quantization stores them. */
function quantizeWeights(specs: Spec[], data: ArrayBuffer, kind: 'uint8' | 'uint16' | 'float16'): { specs: Spec[]; data: Uint8Array } {
  const f = new Float32Array(data);
  const outSpecs: Spec[] = [];
  const parts: Uint8Array[] = [];
  let off = 0;
  for (const s of specs) {
    const n = s.shape.reduce((a, c) => a * c, 1);
    const w = f.subarray(off, off + n);
    off += n;
    if (kind === 'float16') {
      parts.push(new Uint8Array(Uint16Array.from(w, (v) => f32ToF16(v)).buffer));
      outSpecs.push({ ...s, quantization: { dtype: 'float16', original_dtype: 'float32' } });
      continue;
    }
    const levels = kind === 'uint8' ? 255 : 65535;
    let lo = Math.min(...w), hi = Math.max(...w);
    if (hi === lo) hi = lo + 1e-6;
    const scale = (hi - lo) / levels;
    const q = kind === 'uint8' ? new Uint8Array(n) : new Uint16Array(n);
    for (let i = 0; i < n; i++) q[i] = Math.max(0, Math.min(levels, Math.round((w[i]! - lo) / scale)));
    parts.push(new Uint8Array(q.buffer));
    outSpecs.push({ ...s, quantization: { dtype: kind, scale, min: lo, original_dtype: 'float32' } });
  }
  const total = parts.reduce((a, p) => a + p.length, 0);
  const out = new Uint8Array(total);
  let o = 0;
  for (const p of parts) { out.set(p, o); o += p.length; }
  return { specs: outSpecs, data: out };
}

function writeModel(dir: string, topology: unknown, specs: Spec[], data: Uint8Array): string {
  // Two shards, split mid-weight, as tfjs does for large models.
  const cut = Math.floor(data.length / 2);
  writeFileSync(join(dir, 'group1-shard1of2.bin'), data.subarray(0, cut));
  writeFileSync(join(dir, 'group1-shard2of2.bin'), data.subarray(cut));
  const path = join(dir, 'model.json');
  writeFileSync(path, JSON.stringify({
    format: 'layers-model', generatedBy: 'TensorFlow.js tfjs-layers', convertedBy: null, modelTopology: topology,
    weightsManifest: [{ paths: ['group1-shard1of2.bin', 'group1-shard2of2.bin'], weights: specs }],
  }));
  return path;
}

function q8Predict(m: Model, x: Float32Array, n: number): Float32Array {
  const s = Session.create(m);
  const out = s.runSync({ [s.inputs[0]!.name]: Tensor.from('float32', [n, 28, 28, 1], x) });
  return Object.values(out)[0]!.toFloat32();
}

test('TF.js layers CNN saved by tfjs: q8 matches tfjs predictions, also with uint8/uint16/float16 weights', {
  skip: needFixtures('mnist-t10k-images-idx3-ubyte.gz'),
}, async (t) => {
  const tf = await tfjs();
  if (!tf) { t.skip('@tensorflow/tfjs is not installed (npm i --no-save @tensorflow/tfjs)'); return; }
  await tf.setBackend('cpu');
  tf.util.seedrandom?.('q8');
  const { images, labels } = mnist(4000);
  const nTrain = 2000, nEval = 2000;
  const xs = Float32Array.from(images, (p) => p / 255);
  const xTrain = tf.tensor4d(xs.subarray(0, nTrain * 784), [nTrain, 28, 28, 1]);
  const yTrain = tf.oneHot(tf.tensor1d(Array.from(labels.subarray(0, nTrain)), 'int32'), 10);
  const model = tf.sequential({
    layers: [
      tf.layers.conv2d({ inputShape: [28, 28, 1], filters: 8, kernelSize: 3, strides: 2, activation: 'relu', padding: 'same', kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }) }),
      tf.layers.maxPooling2d({ poolSize: 2 }),
      tf.layers.batchNormalization({ momentum: 0.5 }),
      tf.layers.depthwiseConv2d({ kernelSize: 3, depthMultiplier: 2, activation: 'relu', depthwiseInitializer: tf.initializers.glorotUniform({ seed: 2 }) }),
      tf.layers.averagePooling2d({ poolSize: 2 }),
      tf.layers.flatten(),
      tf.layers.dropout({ rate: 0.1 }),
      tf.layers.dense({ units: 10, activation: 'softmax', kernelInitializer: tf.initializers.glorotUniform({ seed: 3 }) }),
    ],
  });
  model.compile({ optimizer: tf.train.adam(0.01), loss: 'categoricalCrossentropy' });
  await model.fit(xTrain, yTrain, { epochs: 3, batchSize: 50, shuffle: false, verbose: 0 });

  let saved: { modelTopology: unknown; weightSpecs: Spec[]; weightData: ArrayBuffer } | undefined;
  await model.save(tf.io.withSaveHandler(async (a: typeof saved) => { saved = a; return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } }; }));
  assert.ok(saved);
  const evalX = xs.subarray(nTrain * 784, (nTrain + nEval) * 784);
  const evalY = labels.subarray(nTrain, nTrain + nEval);
  const top1 = (p: ArrayLike<number>) => argmaxRows(p, nEval, 10).filter((c, i) => c === evalY[i]).length / nEval;

  const results: string[] = [];
  for (const kind of ['float32', 'uint8', 'uint16', 'float16'] as const) {
    const dir = mkdtempSync(join(tmpdir(), `q8-tfjs-${kind}-`));
    const enc = kind === 'float32' ? { specs: saved.weightSpecs, data: new Uint8Array(saved.weightData) } : quantizeWeights(saved.weightSpecs, saved.weightData, kind);
    const path = writeModel(dir, saved.modelTopology, enc.specs, enc.data);
    // tfjs loads the very same files (its own dequantization) as the reference.
    const ref = await tf.loadLayersModel({ load: async () => ({ modelTopology: saved!.modelTopology, weightSpecs: enc.specs, weightData: enc.data.slice().buffer }) });
    const refP = Float32Array.from(await ref.predict(tf.tensor4d(evalX, [nEval, 28, 28, 1])).data());
    const m = kind === 'float32' ? loadModel(dir) : loadTfjs(path);
    const got = q8Predict(m, evalX, nEval);
    const err = maxAbsDiff(got, refP);
    const disagree = argmaxRows(got, nEval, 10).filter((c, i) => c !== argmaxRows(refP, nEval, 10)[i]).length;
    results.push(`${kind}: q8 top-1 ${top1(got)} tfjs top-1 ${top1(refP)} max|diff| ${err.toExponential(2)} disagreements ${disagree}`);
    assert.ok(err <= 1e-4, `${kind}: max abs diff vs tfjs ${err}`);
    assert.ok(disagree <= 2, `${kind}: ${disagree} class disagreements with tfjs`);
    if (kind === 'float32') {
      assert.ok(top1(got) > 0.8, `the trained CNN should be useful (top-1 ${top1(got)})`);
      // q8's own int8 quantization of the tfjs model: the accuracy drop on the held-out digits.
      const qm = quantize(loadTfjs(path));
      const q = q8Predict(qm, evalX, nEval);
      results.push(`q8 int8: top-1 ${top1(q)} (fp32 ${top1(got)}, drop ${((top1(got) - top1(q)) * 100).toFixed(2)} points)`);
      assert.ok(top1(got) - top1(q) <= 0.01, 'int8 drop above 1 point');
    }
  }
  for (const r of results) t.diagnostic(r);
});

test('TF.js functional (non-sequential) layers model with branches, Add, Concatenate, padding and pooling matches tfjs', async (t) => {
  const tf = await tfjs();
  if (!tf) { t.skip('@tensorflow/tfjs is not installed (npm i --no-save @tensorflow/tfjs)'); return; }
  await tf.setBackend('cpu');
  const init = (seed: number) => tf.initializers.randomNormal({ stddev: 0.3, seed });
  const inp = tf.input({ shape: [12, 12, 3] });
  const pad = tf.layers.zeroPadding2d({ padding: [[1, 0], [2, 1]] }).apply(inp);
  const a = tf.layers.conv2d({ filters: 6, kernelSize: 3, activation: 'relu6', kernelInitializer: init(1), biasInitializer: init(2) }).apply(pad);
  const b = tf.layers.conv2d({ filters: 6, kernelSize: [3, 3], strides: 1, activation: 'tanh', kernelInitializer: init(3), biasInitializer: init(4) }).apply(pad);
  const sum = tf.layers.add().apply([a, b]);
  const mp = tf.layers.maxPooling2d({ poolSize: 3, strides: 2, padding: 'same' }).apply(sum);
  const ap = tf.layers.averagePooling2d({ poolSize: 2, strides: 2, padding: 'same' }).apply(sum);
  const cat = tf.layers.concatenate({ axis: -1 }).apply([mp, ap]);
  const gap = tf.layers.globalAveragePooling2d({}).apply(cat);
  const gmp = tf.layers.globalMaxPooling2d({}).apply(cat);
  const both = tf.layers.concatenate().apply([gap, gmp]);
  const d = tf.layers.dense({ units: 5, activation: 'sigmoid', kernelInitializer: init(5), biasInitializer: init(6) }).apply(both);
  const r = tf.layers.reshape({ targetShape: [5, 1] }).apply(d);
  const model = tf.model({ inputs: inp, outputs: r });
  let saved: { modelTopology: unknown; weightSpecs: Spec[]; weightData: ArrayBuffer } | undefined;
  await model.save(tf.io.withSaveHandler(async (x: typeof saved) => { saved = x; return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } }; }));
  const dir = mkdtempSync(join(tmpdir(), 'q8-tfjs-fn-'));
  const path = writeModel(dir, saved!.modelTopology, saved!.weightSpecs, new Uint8Array(saved!.weightData));
  const x = Float32Array.from({ length: 4 * 12 * 12 * 3 }, (_, i) => Math.sin(i * 0.37) + Math.cos(i * 0.011));
  const ref = Float32Array.from(await model.predict(tf.tensor4d(x, [4, 12, 12, 3])).data());
  const m = loadTfjs(path);
  const s = Session.create(m);
  const got = Object.values(s.runSync({ [s.inputs[0]!.name]: Tensor.from('float32', [4, 12, 12, 3], x) }))[0]!;
  assert.deepEqual([...got.shape], [4, 5, 1]);
  assert.ok(new Set(ref).size > 4);
  assert.ok(maxAbsDiff(got.toFloat32(), ref) <= 1e-5, `max abs diff ${maxAbsDiff(got.toFloat32(), ref)}`);
});
