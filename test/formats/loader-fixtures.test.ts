/**
 * The loaders against real files made by other tools (../shared/fixtures): BVLC Caffe LeNet on
 * MNIST, BigDL's TensorFlow frozen graphs (vs an independent numpy evaluation), BigDL's LeNet (vs an
 * independent torch evaluation), BigDL's small legacy-input Caffe net, and format detection.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { Q8Error } from '../../src/core/errors.js';
import { detectFormat, loadModel } from '../../src/formats/detect.js';
import { loadCaffeFiles } from '../../src/formats/caffe/index.js';
import { decodeOnnx, encodeOnnx } from '../../src/formats/onnx/index.js';
import type { Model } from '../../src/graph/ir.js';
import { quantize } from '../../src/quant/quantize.js';
import { Session } from '../../src/runtime/session.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { argmaxRows, fixture, maxAbsDiff, mnist, needFixtures, needPython, pyReference, randn, rng } from './loader-helpers.js';

test('Caffe LeNet (BVLC) top-1 on the MNIST test set is 0.9914 with input = pixel × 0.00390625', {
  skip: needFixtures('lenet.prototxt', 'lenet_iter_10000.caffemodel', 'mnist-t10k-images-idx3-ubyte.gz'),
}, (t) => {
  const model = loadModel(fixture('lenet_iter_10000.caffemodel'), { prototxt: fixture('lenet.prototxt') });
  assert.deepEqual(model.graph.inputs.map((i) => i.name), ['data']);
  assert.deepEqual(model.graph.outputs.map((o) => o.name), ['prob']);
  const n = 10000, B = 1000;
  const { images, labels } = mnist(n);
  const top1 = (m: Model) => {
    const s = Session.create(m);
    let ok = 0;
    for (let i = 0; i < n; i += B) {
      const x = new Float32Array(B * 784);
      for (let j = 0; j < x.length; j++) x[j] = images[i * 784 + j]! * 0.00390625;
      const p = s.runSync({ data: Tensor.from('float32', [B, 1, 28, 28], x) }).prob!;
      argmaxRows(p.toFloat32(), B, 10).forEach((c, k) => { if (c === labels[i + k]) ok++; });
    }
    return ok / n;
  };
  const fp32 = top1(model);
  assert.equal(fp32, 0.9914);
  // As `q8 convert --from caffe --quantize` does: quantize, write standard ONNX, read it back.
  const onnx = encodeOnnx(quantize(loadModel(fixture('lenet_iter_10000.caffemodel'), { prototxt: fixture('lenet.prototxt') })));
  const int8 = top1(decodeOnnx(onnx));
  t.diagnostic(`Caffe LeNet top-1: fp32 ${fp32}, int8 (converted to ONNX) ${int8}`);
  assert.ok(fp32 - int8 <= 0.001, `int8 drop ${(fp32 - int8) * 100} points`);
});

test('TensorFlow frozen graphs (BigDL test resources) equal an independent numpy evaluation (max abs err ≤ 1e-5)', {
  skip: needFixtures('bigdl-tf-test.pb', 'bigdl-tfnet-frozen_inference_graph.pb') || needPython(),
}, (t) => {
  const r = rng(7);
  const cases = [
    { file: 'bigdl-tf-test.pb', input: 'Placeholder', output: 'output', shape: [16, 1] },
    { file: 'bigdl-tfnet-frozen_inference_graph.pb', input: 'Placeholder', output: 'dense_1/Sigmoid', shape: [16, 4] },
  ];
  for (const c of cases) {
    const m = loadModel(fixture(c.file), { tfInputs: [c.input], tfOutputs: [c.output] });
    // Pruning: the gradient nodes of the tfnet graph are gone.
    assert.ok(m.graph.nodes.every((n) => !n.name.startsWith('gradients/')), `${c.file} keeps gradient nodes`);
    const x = randn(r, c.shape[0]! * c.shape[1]!, 2);
    const got = Session.create(m).runSync({ [c.input]: Tensor.from('float32', c.shape, x) })[c.output]!;
    const ref = pyReference(['tf', fixture(c.file), c.input, c.output], { shape: c.shape, data: Array.from(x) });
    assert.deepEqual([...got.shape], ref.shape);
    const err = maxAbsDiff(got.toFloat32(), ref.data);
    t.diagnostic(`${c.file}: max abs error vs numpy = ${err.toExponential(2)}`);
    assert.ok(err <= 1e-5, `${c.file}: max abs error ${err}`);
  }
});

test('TensorFlow graph with gradient ops fails to load without tfOutputs, naming the unsupported op', {
  skip: needFixtures('bigdl-tfnet-frozen_inference_graph.pb'),
}, () => {
  assert.throws(() => loadModel(fixture('bigdl-tfnet-frozen_inference_graph.pb')), (e: unknown) => e instanceof Q8Error && /SigmoidGrad|ReluGrad|BiasAddGrad/.test(e.message));
});

test('BigDL LeNet loads, equals an independent torch evaluation, and predicts MNIST', {
  skip: needFixtures('bigdl_lenet.model', 'mnist-t10k-images-idx3-ubyte.gz') || needPython(),
}, (t) => {
  const m = loadModel(fixture('bigdl_lenet.model'));
  const weighted = m.graph.nodes.filter((n) => n.opType === 'Conv' || n.opType === 'Gemm');
  assert.equal(weighted.length, 4, '4 layers with weights');
  const n = 10000;
  const { images, labels } = mnist(n);
  const s = Session.create(m);
  const x = Float32Array.from(images, (p) => p / 255);
  const out = s.runSync({ input: Tensor.from('float32', [n, 1, 28, 28], x) });
  const y = Object.values(out)[0]!;
  const classes = y.shape[1]!;
  const ref = pyReference(['bigdl', fixture('bigdl_lenet.model'), fixture('mnist-t10k-images-idx3-ubyte.gz'), '200']);
  const err = maxAbsDiff(y.toFloat32().subarray(0, 200 * classes), ref.data);
  assert.ok(err <= 1e-5, `max abs error vs torch ${err}`);
  const pred = argmaxRows(y.toFloat32(), n, classes);
  const top1 = pred.filter((p, i) => p === labels[i]).length / n;
  t.diagnostic(`BigDL LeNet: ${classes} output classes, top-1 on MNIST t10k (pixel/255) = ${top1}; max abs error vs torch = ${err.toExponential(2)}`);
  assert.ok(top1 >= 0 && top1 <= 1);
});

test('BigDL legacy-input Caffe net: the custom layer is named in the error; as identity it equals a direct evaluation', {
  skip: needFixtures('bigdl-caffe-test.prototxt', 'bigdl-caffe-test.caffemodel'),
}, () => {
  assert.throws(() => loadCaffeFiles(fixture('bigdl-caffe-test.prototxt'), fixture('bigdl-caffe-test.caffemodel')),
    (e: unknown) => e instanceof Q8Error && /customized/.test(e.message) && /Dummy/.test(e.message));
  const m = loadCaffeFiles(fixture('bigdl-caffe-test.prototxt'), fixture('bigdl-caffe-test.caffemodel'), { identityTypes: ['Dummy'] });
  assert.deepEqual(m.graph.inputs.map((i) => [i.name, i.shape]), [['data', ['batch', 3, 5, 5]]]);
  assert.deepEqual(m.graph.outputs.map((o) => o.name), ['prob']);
  // Direct evaluation from the initializers: conv(2x2)+bias → conv(2x2)+bias → ip (no bias) → softmax.
  const g = m.graph;
  const W = (k: string) => g.initializers.get(k)!.toFloat32();
  const x = randn(rng(3), 75);
  const conv = (inp: Float32Array, c: number, h: number, w: Float32Array, b: Float32Array | undefined, o: number) => {
    const oh = h - 1, out = new Float32Array(o * oh * oh);
    for (let f = 0; f < o; f++) for (let i = 0; i < oh; i++) for (let j = 0; j < oh; j++) {
      let s = b ? b[f]! : 0;
      for (let ch = 0; ch < c; ch++) for (let di = 0; di < 2; di++) for (let dj = 0; dj < 2; dj++) s += inp[(ch * h + i + di) * h + j + dj]! * w[((f * c + ch) * 2 + di) * 2 + dj]!;
      out[(f * oh + i) * oh + j] = s;
    }
    return out;
  };
  const c1 = conv(x, 3, 5, W('conv.weight'), W('conv.bias'), 4);
  const c2 = conv(c1, 4, 4, W('conv2.weight'), g.initializers.has('conv2.bias') ? W('conv2.bias') : undefined, 3);
  const ipw = W('ip.weight');
  const logits = [0, 1].map((o) => c2.reduce((a, v, i) => a + v * ipw[o * 27 + i]!, 0));
  const mx = Math.max(...logits);
  const e = logits.map((v) => Math.exp(v - mx));
  const ref = e.map((v) => v / (e[0]! + e[1]!));
  const got = Session.create(m).runSync({ data: Tensor.from('float32', [1, 3, 5, 5], x) }).prob!;
  assert.ok(maxAbsDiff(got.toFloat32(), ref) < 1e-5);
});

test('format detection of the shared fixtures', { skip: needFixtures('lenet.prototxt', 'bigdl_lenet.model', 'bigdl-tf-test.pb') }, () => {
  assert.equal(detectFormat(fixture('lenet.prototxt')), 'caffe');
  assert.equal(detectFormat(fixture('lenet_iter_10000.caffemodel')), 'caffe');
  assert.equal(detectFormat(fixture('bigdl_lenet.model')), 'bigdl');
  assert.equal(detectFormat(fixture('bigdl-tf-test.pb')), 'tensorflow');
  assert.equal(detectFormat(fixture('bigdl-tfnet-frozen_inference_graph.pb')), 'tensorflow');
  // A .prototxt finds its snapshot beside it.
  assert.equal(loadModel(fixture('lenet.prototxt')).graph.outputs[0]!.name, 'prob');
  void readFileSync;
});
