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
  assert.ok(s.model.graph.nodes.some((n) => n.domain === 'q8' && n.opType.startsWith('Q8')), `${label}: q8 should run int8 kernels`);
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

test('the ORT static-QDQ writer: onnxruntime-node runs it close to fp32, and so does q8', { skip }, async () => {
  const { writeOrtQdq } = await import('../../src/quant/ort-qdq.js');
  const fp = smallCnn(5, { channels: 16, fc: 32 });
  const calibration = [0, 1, 2, 3].map((i) => ({ image: randomImages(40 + i, 2) }));
  const qdq = writeOrtQdq(fp, { calibration });
  const ops = qdq.graph.nodes.map((n) => n.opType);
  // image, conv1+Relu, dw+Clip, grouped, pointwise+Relu, Flatten (fc1's input), fc1+Relu (fc2's input),
  // fc2 (MatMul): one Q per value; fc2's weight is per-tensor int8
  assert.equal(ops.filter((o) => o === 'QuantizeLinear').length, 8, ops.join(' '));
  const fc2 = qdq.graph.nodes.find((n) => n.name === 'fc2')!;
  const fc2w = qdq.graph.nodes.find((n) => n.outputs[0] === fc2.inputs[1])!;
  assert.equal(fc2w.opType, 'DequantizeLinear');
  assert.equal(qdq.graph.initializers.get(fc2w.inputs[0]!)!.dtype, 'int8');
  assert.ok(!ops.includes('Relu') || ops.indexOf('Relu') < ops.indexOf('QuantizeLinear', ops.indexOf('Relu')), 'Relu sits before its Q');
  const o = ort as Ort;
  const x = randomImages(99, 2);
  const sess = await o.InferenceSession.create(encodeOnnx(qdq));
  const theirs = (await sess.run({ image: new o.Tensor('float32', x.data as Float32Array, x.shape) }))[sess.outputNames[0]!]!;
  const s = Session.create(cloneModel(fp));
  const ref = Object.values(s.runSync({ image: x }))[0]!.data as Float32Array;
  const c = cosine(ref, theirs.data);
  assert.ok(c > 0.99 && c < 1, `ORT static int8 vs fp32 cosine ${c}`);
  const mine = Object.values(Session.create(cloneModel(qdq)).runSync({ image: x }))[0]!.data as Float32Array;
  assert.ok(cosine(mine, theirs.data) > 0.995, `q8 vs ORT on the QDQ file: ${cosine(mine, theirs.data)}`);
});
