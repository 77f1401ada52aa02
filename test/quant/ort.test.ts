/**
 * onnxruntime-node opens q8's quantized ONNX files and agrees with q8 (cosine ≥ 0.999). Skips, saying
 * so, when onnxruntime-node is not installed (`npm i --no-save onnxruntime-node`; CPU binaries ship in
 * the package; the project's .npmrc skips its GPU download step).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import { encodeOnnx, loadOnnxFile } from '../../src/formats/onnx/index.js';
import type { Model } from '../../src/graph/ir.js';
import '../../src/quant/index.js';
import { cloneModel, quantizeModel, type QuantizeOptions } from '../../src/quant/quantize.js';
import { cosine } from '../../src/quant/types.js';
import { Session } from '../../src/runtime/session.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { loadFashion } from './fashion-data.js';
import { randomImages, smallCnn } from './models.js';

interface OrtTensor { data: Float32Array; dims: readonly number[] }
interface Ort {
  Tensor: new (type: 'float32', data: Float32Array, dims: readonly number[]) => OrtTensor;
  InferenceSession: { create(bytes: Uint8Array): Promise<{ run(feeds: Record<string, OrtTensor>): Promise<Record<string, OrtTensor>>; outputNames: readonly string[] }> };
}

function loadOrt(): Ort | string {
  try {
    return createRequire(import.meta.url)('onnxruntime-node') as Ort;
  } catch (e) {
    return `onnxruntime-node is not installed (npm i --no-save onnxruntime-node): ${(e as Error).message.split('\n')[0]}`;
  }
}

const ort = loadOrt();
const skip = typeof ort === 'string' ? ort : false;

async function compare(q: Model, x: Tensor, label: string): Promise<number> {
  const o = ort as Ort;
  const sess = await o.InferenceSession.create(encodeOnnx(q));
  const s = Session.create(cloneModel(q));
  assert.ok(s.model.graph.nodes.some((n) => n.domain === 'q8'), `${label}: q8 should run int8 kernels`);
  const name = s.inputs[0]!.name;
  const mine = Object.values(s.runSync({ [name]: x }))[0]!.data as Float32Array;
  const theirs = (await sess.run({ [name]: new o.Tensor('float32', x.data as Float32Array, x.shape) }))[sess.outputNames[0]!]!;
  assert.equal(theirs.data.length, mine.length, label);
  const c = cosine(theirs.data, mine);
  assert.ok(c >= 0.999, `${label}: onnxruntime vs q8 cosine ${c}`);
  return c;
}

for (const opts of [{}, { weightWindow: 32 }, { weightWindow: 128, activationWindow: 64 }] as QuantizeOptions[]) {
  test(`onnxruntime-node loads q8's quantized file and agrees (${JSON.stringify(opts)})`, { skip }, async () => {
    const { model } = quantizeModel(smallCnn(2, { channels: 32, fc: 64 }), opts);
    await compare(model, randomImages(3, 4), `small CNN ${JSON.stringify(opts)}`);
  });
}

test('onnxruntime-node agrees with q8 on the quantized Fashion-MNIST models', { skip: skip || (!fs.existsSync('models/fashion-mlp.onnx') && 'models/fashion-*.onnx not built') }, async () => {
  const { images } = loadFashion(64);
  const x = Tensor.from('float32', [64, 1, 28, 28], images);
  for (const name of ['mlp', 'vgg', 'mobilenet', 'resnet']) {
    const file = `models/fashion-${name}.onnx`;
    if (!fs.existsSync(file)) continue;
    const { model } = quantizeModel(loadOnnxFile(file));
    await compare(model, x, name);
  }
});
