/**
 * TensorFlow op coverage: a graph using the ops the loader lowers (NHWC convolutions, pools,
 * resizes, batch norm, slicing, reductions...) is written by the test as a binary GraphDef, as
 * .pbtxt and as a TF.js graph model, loaded by q8 each way, and compared with tfjs executing the
 * same graph (tfjs implements TensorFlow's op semantics; it is the independent reference here).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadModel } from '../../src/formats/detect.js';
import { loadTensorFlow } from '../../src/formats/tensorflow/index.js';
import { loadTfjs } from '../../src/formats/tfjs/index.js';
import type { Model } from '../../src/graph/ir.js';
import { Session } from '../../src/runtime/session.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { maxAbsDiff, randn, rng } from './loader-helpers.js';
import { TfGraph } from './tf-graph-writer.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Tfjs = any;
async function tfjs(): Promise<Tfjs | undefined> {
  const name = '@tensorflow/tfjs';
  try { return await import(name); } catch { return undefined; }
}

const F = { type: 'DT_FLOAT' } as const;
const I32 = { type: 'DT_INT32' } as const;

function buildGraph(seed: number): { g: TfGraph; outputs: string[] } {
  const r = rng(seed);
  const g = new TfGraph();
  const w = (name: string, shape: number[], scale = 0.5) => g.constF(name, shape, randn(r, shape.reduce((a, c) => a * c, 1), scale));
  g.node('x', 'Placeholder', [], { dtype: F, shape: { shape: [-1, 8, 8, 3] } });
  const s4 = (a: number, b: number) => ({ ints: [1, a, b, 1] });
  g.node('c1', 'Conv2D', ['x', w('W1', [3, 3, 3, 4])], { T: F, strides: s4(2, 2), padding: { s: 'SAME' }, data_format: { s: 'NHWC' }, dilations: s4(1, 1) });
  g.node('b1', 'BiasAdd', ['c1', w('B1', [4])], { T: F, data_format: { s: 'NHWC' } });
  g.constF('bn_scale', [4], randn(r, 4, 0.3).map((v) => 1 + v));
  g.constF('bn_var', [4], randn(r, 4, 0.3).map((v) => 1 + Math.abs(v)));
  g.node('bn', 'FusedBatchNormV3', ['b1', 'bn_scale', w('bn_offset', [4]), w('bn_mean', [4]), 'bn_var'], { T: F, U: F, epsilon: { f: 0.001 }, is_training: { b: false }, data_format: { s: 'NHWC' } });
  g.node('r6', 'Relu6', ['bn'], { T: F });
  g.node('dw', 'DepthwiseConv2dNative', ['r6', w('DW', [3, 3, 4, 2])], { T: F, strides: s4(1, 1), padding: { s: 'VALID' }, data_format: { s: 'NHWC' }, dilations: s4(1, 1) });
  g.node('mp', 'MaxPool', ['r6'], { T: F, ksize: s4(2, 2), strides: s4(2, 2), padding: { s: 'SAME' }, data_format: { s: 'NHWC' } });
  g.node('ap', 'AvgPool', ['r6'], { T: F, ksize: s4(3, 3), strides: s4(1, 1), padding: { s: 'SAME' }, data_format: { s: 'NHWC' } });
  g.constI('de_sizes', [4], [2, 8, 8, 5]);
  g.node('de', 'Conv2DBackpropInput', ['de_sizes', w('DE', [3, 3, 5, 4]), 'ap'], { T: F, strides: s4(2, 2), padding: { s: 'SAME' }, data_format: { s: 'NHWC' }, dilations: s4(1, 1) });
  g.constI('rz_size', [2], [5, 7]);
  g.node('rz', 'ResizeBilinear', ['mp', 'rz_size'], { T: F, align_corners: { b: false }, half_pixel_centers: { b: true } });
  g.constI('rn_size', [2], [4, 4]);
  g.node('rn', 'ResizeNearestNeighbor', ['mp', 'rn_size'], { T: F, align_corners: { b: false }, half_pixel_centers: { b: false } });
  g.constI('axis3', [], [3]);
  g.node('cat', 'ConcatV2', ['ap', 'rn', 'axis3'], { T: F, N: { i: 2 }, Tidx: I32 });
  g.constI('pads', [4, 2], [0, 0, 1, 0, 0, 2, 0, 0]);
  g.node('pad', 'Pad', ['cat', 'pads'], { T: F, Tpaddings: I32 });
  g.constI('ss_b', [4], [0, 1, 0, 0]);
  g.constI('ss_e', [4], [0, 5, 6, 8]);
  g.constI('ss_s', [4], [1, 1, 2, 1]);
  g.node('ss', 'StridedSlice', ['pad', 'ss_b', 'ss_e', 'ss_s'], { T: F, Index: I32, begin_mask: { i: 1 }, end_mask: { i: 1 }, ellipsis_mask: { i: 0 }, new_axis_mask: { i: 0 }, shrink_axis_mask: { i: 0 } });
  g.constI('ax12', [2], [1, 2]);
  g.node('mean', 'Mean', ['ss', 'ax12'], { T: F, Tidx: I32, keep_dims: { b: false } });
  g.node('mm', 'MatMul', ['mean', w('W2', [8, 6])], { T: F, transpose_a: { b: false }, transpose_b: { b: false } });
  g.node('add', 'AddV2', ['mm', w('b2', [6])], { T: F });
  g.node('sm', 'Softmax', ['add'], { T: F });
  g.node('lsm', 'LogSoftmax', ['add'], { T: F });
  g.constI('dim1', [], [1]);
  g.node('am', 'ArgMax', ['add', 'dim1'], { T: F, Tidx: I32, output_type: { type: 'DT_INT32' } });
  g.constI('perm', [4], [0, 3, 1, 2]);
  g.node('dwT', 'Transpose', ['dw', 'perm'], { T: F, Tperm: I32 });
  g.constI('rshape', [2], [-1, 32]);
  g.node('resh', 'Reshape', ['dw', 'rshape'], { T: F, Tshape: I32 });
  g.node('shp', 'Shape', ['dw'], { T: F, out_type: I32 });
  g.node('shapef', 'Cast', ['shp'], { SrcT: I32, DstT: F });
  g.node('pk', 'Pack', ['mean', 'mean'], { T: F, N: { i: 2 }, axis: { i: 1 } });
  g.node('ed', 'ExpandDims', ['mean', 'dim1'], { T: F, Tdim: I32 });
  g.node('sq', 'Squeeze', ['ed'], { T: F, squeeze_dims: { ints: [1] } });
  g.node('sqr', 'Square', ['sq'], { T: F });
  g.constF('one', [], [1]);
  g.node('sqr1', 'AddV2', ['sqr', 'one'], { T: F });
  g.node('rs', 'Rsqrt', ['sqr1'], { T: F });
  g.node('sqt', 'Sqrt', ['sqr1'], { T: F });
  g.node('sub', 'Sub', ['sqt', 'rs'], { T: F });
  g.node('mul', 'Mul', ['sub', 'mean'], { T: F });
  g.node('div', 'RealDiv', ['mul', 'sqt'], { T: F });
  g.node('mx', 'Maximum', ['div', 'mean'], { T: F });
  g.node('mn', 'Minimum', ['mx', 'sub'], { T: F });
  g.node('th', 'Tanh', ['mn'], { T: F });
  g.node('el', 'Elu', ['th'], { T: F });
  g.node('sg', 'Sigmoid', ['el'], { T: F });
  g.node('rl', 'Relu', ['de'], { T: F });
  g.node('sum', 'Sum', ['rl', 'ax12'], { T: F, Tidx: I32, keep_dims: { b: true } });
  g.node('max', 'Max', ['rz', 'ax12'], { T: F, Tidx: I32, keep_dims: { b: false } });
  g.node('bmm', 'BatchMatMulV2', ['pk', 'pk'], { T: F, adj_x: { b: false }, adj_y: { b: true } });
  g.node('id', 'Identity', ['bmm'], { T: F });
  g.constF('pv', [], [-0.5]);
  g.node('pad2', 'PadV2', ['rz', 'pads', 'pv'], { T: F, Tpaddings: I32 });
  // Grappler/tfjs-converter fused ops.
  g.node('fc', '_FusedConv2D', ['x', w('FW1', [3, 3, 3, 4]), w('FB1', [4])], { T: F, strides: s4(1, 1), padding: { s: 'SAME' }, data_format: { s: 'NHWC' }, dilations: s4(1, 1), fused_ops: { strs: ['BiasAdd', 'Relu'] }, num_args: { i: 1 }, epsilon: { f: 0 } });
  g.node('fdw', 'FusedDepthwiseConv2dNative', ['fc', w('FDW', [3, 3, 4, 1]), w('FB2', [4])], { T: F, strides: s4(2, 2), padding: { s: 'VALID' }, data_format: { s: 'NHWC' }, dilations: s4(1, 1), fused_ops: { strs: ['BiasAdd', 'Relu6'] }, num_args: { i: 1 } });
  g.node('fmm', '_FusedMatMul', ['mean', w('FW3', [8, 5]), w('FB3', [5])], { T: F, transpose_a: { b: false }, transpose_b: { b: false }, fused_ops: { strs: ['BiasAdd', 'LeakyRelu'] }, num_args: { i: 1 }, leakyrelu_alpha: { f: 0.3 }, epsilon: { f: 0 } });
  // Gradient-like junk that pruning must drop (an op q8 does not know).
  g.node('junk', 'SigmoidGrad', ['sg', 'sg'], { T: F });
  return { g, outputs: ['sm', 'lsm', 'am', 'de', 'rz', 'dwT', 'resh', 'shapef', 'sg', 'sum', 'max', 'id', 'pad2', 'rn', 'fdw', 'fmm'] };
}

function runQ8(m: Model, x: Float32Array, outputs: string[]): Record<string, Tensor> {
  const res = Session.create(m).runSync({ x: Tensor.from('float32', [2, 8, 8, 3], x) });
  for (const o of outputs) assert.ok(res[o], `q8 did not produce ${o}`);
  return res;
}

test('TensorFlow ops: binary GraphDef, .pbtxt and TF.js graph model agree with tfjs executing the same graph', async (t) => {
  const tf = await tfjs();
  if (!tf) { t.skip('@tensorflow/tfjs is not installed (npm i --no-save @tensorflow/tfjs)'); return; }
  await tf.setBackend('cpu');
  const { g, outputs } = buildGraph(11);
  const x = randn(rng(12), 2 * 8 * 8 * 3);
  const dir = mkdtempSync(join(tmpdir(), 'q8-tfops-'));
  const bin = g.toBinary();
  writeFileSync(join(dir, 'graph.pb'), bin);
  writeFileSync(join(dir, 'graph.pbtxt'), g.toText());
  const tj = g.toTfjs();
  writeFileSync(join(dir, 'model.json'), JSON.stringify(tj.modelJson));
  writeFileSync(join(dir, 'weights.bin'), tj.weights);

  // Reference: tfjs runs the graph model.
  const gm = await tf.loadGraphModel({
    load: async () => ({ modelTopology: tj.topology, weightSpecs: tj.weightSpecs, weightData: tj.weights.slice().buffer, format: 'graph-model' }),
  });
  const refT = gm.execute({ x: tf.tensor4d(x, [2, 8, 8, 3]) }, outputs);
  const ref: Record<string, { shape: number[]; data: Float32Array }> = {};
  for (let k = 0; k < outputs.length; k++) ref[outputs[k]!] = { shape: refT[k].shape, data: Float32Array.from(await refT[k].data()) };
  // The reference must be informative: no output is constant-filled.
  for (const o of outputs) if (o !== 'am') assert.ok(new Set(ref[o]!.data).size > 1, `reference ${o} is constant`);

  const opts = { inputs: ['x'], outputs };
  const models: [string, Model][] = [
    ['binary', loadTensorFlow(bin, opts)],
    ['pbtxt', loadModel(join(dir, 'graph.pbtxt'), { tfInputs: ['x'], tfOutputs: outputs })],
    ['binary via loadModel', loadModel(join(dir, 'graph.pb'), { tfInputs: ['x'], tfOutputs: outputs })],
    ['tfjs graph model', loadTfjs(join(dir, 'model.json'), opts)],
  ];
  for (const [label, m] of models) {
    assert.ok(!m.graph.nodes.some((n) => n.name.startsWith('junk')), `${label}: pruning kept the junk node`);
    const res = runQ8(m, x, outputs);
    for (const o of outputs) {
      const got = res[o]!;
      assert.deepEqual([...got.shape], ref[o]!.shape, `${label} ${o} shape`);
      const err = maxAbsDiff(got.toFloat32(), ref[o]!.data);
      const scale = Math.max(1, ...Array.from(ref[o]!.data, Math.abs));
      assert.ok(err <= 1e-5 * scale, `${label} ${o}: max abs diff ${err}`);
    }
  }
});

test('TensorFlow NCHW data_format: Conv2D/BiasAdd/pools/FusedBatchNorm in NCHW equal the (tfjs-checked) NHWC graph', () => {
  const r = rng(41);
  const W = randn(r, 3 * 3 * 3 * 4, 0.5), Bv = randn(r, 4), sc = randn(r, 4, 0.2).map((v) => 1 + v), off = randn(r, 4), mean = randn(r, 4), vr = randn(r, 4, 0.2).map((v) => 1 + Math.abs(v));
  const make = (fmt: 'NHWC' | 'NCHW') => {
    const g = new TfGraph();
    const s4 = (a: number, b: number) => ({ ints: fmt === 'NHWC' ? [1, a, b, 1] : [1, 1, a, b] });
    const df = { data_format: { s: fmt } };
    g.node('x', 'Placeholder', [], { dtype: F });
    g.node('c', 'Conv2D', ['x', g.constF('w', [3, 3, 3, 4], W)], { T: F, strides: s4(2, 1), padding: { s: 'SAME' }, dilations: s4(1, 1), ...df });
    g.node('b', 'BiasAdd', ['c', g.constF('bias', [4], Bv)], { T: F, ...df });
    g.node('bn', 'FusedBatchNorm', ['b', g.constF('s', [4], sc), g.constF('o', [4], off), g.constF('m', [4], mean), g.constF('v', [4], vr)], { T: F, epsilon: { f: 0.01 }, is_training: { b: false }, ...df });
    g.node('mp', 'MaxPool', ['bn'], { T: F, ksize: s4(2, 2), strides: s4(2, 2), padding: { s: 'VALID' }, ...df });
    g.node('ap', 'AvgPool', ['bn'], { T: F, ksize: s4(3, 3), strides: s4(2, 2), padding: { s: 'SAME' }, ...df });
    return loadTensorFlow(g.toBinary(), { inputs: ['x'], outputs: ['mp', 'ap'] });
  };
  const x = randn(rng(42), 2 * 7 * 6 * 3);
  const xT = new Float32Array(x.length); // NHWC [2,7,6,3] → NCHW [2,3,7,6]
  for (let n = 0; n < 2; n++) for (let h = 0; h < 7; h++) for (let w = 0; w < 6; w++) for (let c = 0; c < 3; c++) xT[((n * 3 + c) * 7 + h) * 6 + w] = x[((n * 7 + h) * 6 + w) * 3 + c]!;
  const a = Session.create(make('NHWC')).runSync({ x: Tensor.from('float32', [2, 7, 6, 3], x) });
  const b = Session.create(make('NCHW')).runSync({ x: Tensor.from('float32', [2, 3, 7, 6], xT) });
  for (const o of ['mp', 'ap']) {
    const [n, h, w, c] = a[o]!.shape as [number, number, number, number];
    assert.deepEqual([...b[o]!.shape], [n, c, h, w]);
    const ad = a[o]!.toFloat32(), bd = b[o]!.toFloat32();
    let err = 0;
    for (let i = 0; i < n; i++) for (let y = 0; y < h; y++) for (let z = 0; z < w; z++) for (let k = 0; k < c; k++) err = Math.max(err, Math.abs(ad[((i * h + y) * w + z) * c + k]! - bd[((i * c + k) * h + y) * w + z]!));
    assert.ok(err < 1e-5, `${o}: ${err}`);
  }
});
