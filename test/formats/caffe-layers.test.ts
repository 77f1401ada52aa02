/**
 * Caffe layer coverage: nets written by the test (a .prototxt and a binary .caffemodel encoded with
 * q8's protobuf Writer, seeded random weights) using every layer the loader lowers, including
 * in-place layers, Caffe's pooling rounding, the SSD layers and the legacy V1 format, compared with
 * an independent forward pass written from Caffe's layer definitions (scripts/caffe_reference.py).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { Writer } from '../../src/core/protobuf.js';
import { Q8Error } from '../../src/core/errors.js';
import { CAFFE_LAYERS, loadCaffe } from '../../src/formats/caffe/index.js';
import { Session } from '../../src/runtime/session.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { maxAbsDiff, needPython, PYTHON, randn, REPO, rng } from './loader-helpers.js';

type P = Record<string, unknown>;
interface L { name: string; type: string; bottom: string[]; top: string[]; params?: Record<string, P>; blobs?: { shape: number[]; data: Float32Array }[] }

const ident = (s: string) => `#${s}`;

function textValue(k: string, v: unknown, ind: string): string[] {
  if (Array.isArray(v)) return v.flatMap((x) => textValue(k, x, ind));
  if (v && typeof v === 'object') return [`${ind}${k} {`, ...Object.entries(v as P).flatMap(([kk, vv]) => textValue(kk, vv, ind + '  ')), `${ind}}`];
  if (typeof v === 'string') return [`${ind}${k}: ${v.startsWith('#') ? v.slice(1) : JSON.stringify(v)}`];
  return [`${ind}${k}: ${String(v)}`];
}

function prototxt(inputs: Record<string, number[]>, layers: L[]): string {
  const out = ['name: "coverage"'];
  for (const [n, s] of Object.entries(inputs)) out.push(...textValue('layer', { name: n, type: 'Input', top: n, input_param: { shape: { dim: s } } }, ''));
  for (const l of layers) out.push(...textValue('layer', { name: l.name, type: l.type, bottom: l.bottom, top: l.top, ...(l.params ?? {}) }, ''));
  return out.join('\n');
}

function blobProto(b: { shape: number[]; data: Float32Array }): Writer {
  return new Writer().message(7, new Writer().packedVarints(1, b.shape)).packedFloats(5, b.data);
}

function caffemodel(layers: L[]): Uint8Array {
  const w = new Writer().string(1, 'coverage');
  for (const l of layers) {
    if (!l.blobs?.length) continue;
    const lw = new Writer().string(1, l.name).string(2, l.type);
    for (const b of l.blobs) lw.message(7, blobProto(b));
    w.message(100, lw);
  }
  return w.finish();
}

function reference(inputs: Record<string, { shape: number[]; data: Float32Array }>, layers: L[], outputs: string[]): Record<string, { shape: number[]; data: number[] }> {
  const net = {
    inputs: Object.fromEntries(Object.entries(inputs).map(([k, v]) => [k, { shape: v.shape, data: Array.from(v.data) }])),
    layers: layers.map((l) => ({ name: l.name, type: l.type, bottom: l.bottom, top: l.top, ...(l.params ?? {}), blobs: (l.blobs ?? []).map((b) => ({ shape: b.shape, data: Array.from(b.data) })) })),
    outputs,
  };
  const out = execFileSync(PYTHON, [join(REPO, 'scripts/caffe_reference.py')], { input: JSON.stringify(net), maxBuffer: 1 << 28, encoding: 'utf8' });
  return JSON.parse(out) as Record<string, { shape: number[]; data: number[] }>;
}

function coverageNet(seed: number): { layers: L[]; outputs: string[] } {
  const r = rng(seed);
  const B = (shape: number[], scale = 0.4, offset = 0) => ({ shape, data: randn(r, shape.reduce((a, c) => a * c, 1), scale).map((v) => v + offset) });
  const pos = (shape: number[]) => ({ shape, data: Float32Array.from({ length: shape.reduce((a, c) => a * c, 1) }, () => 0.5 + r()) });
  const L = (name: string, type: string, bottom: string[], top: string[], params?: Record<string, P>, blobs?: L['blobs']): L => ({ name, type, bottom, top, params, blobs });
  const layers: L[] = [
    L('conv1', 'Convolution', ['data'], ['conv1'], { convolution_param: { num_output: 6, kernel_size: 3, pad: 1, stride: 1 } }, [B([6, 3, 3, 3]), B([6])]),
    L('bn1', 'BatchNorm', ['conv1'], ['conv1'], { batch_norm_param: { eps: 0.001 } }, [B([6]), pos([6]), { shape: [1], data: Float32Array.of(2.5) }]),
    L('sc1', 'Scale', ['conv1'], ['conv1'], { scale_param: { bias_term: true } }, [B([6], 0.3, 1), B([6])]),
    L('relu1', 'ReLU', ['conv1'], ['conv1'], { relu_param: { negative_slope: 0.1 } }),
    L('pool1', 'Pooling', ['conv1'], ['pool1'], { pooling_param: { pool: ident('MAX'), kernel_size: 3, stride: 2 } }),
    L('pool2', 'Pooling', ['conv1'], ['pool2'], { pooling_param: { pool: ident('AVE'), kernel_size: 3, stride: 2, pad: 1 } }),
    L('convg', 'Convolution', ['pool2'], ['convg'], { convolution_param: { num_output: 4, kernel_h: 3, kernel_w: 2, pad_h: 2, pad_w: 1, dilation: 2, group: 2 } }, [B([4, 3, 3, 2]), B([4])]),
    L('lrn1', 'LRN', ['convg'], ['lrn1'], { lrn_param: { local_size: 3, alpha: 0.5, beta: 0.75, k: 2 } }),
    L('lrn2', 'LRN', ['convg'], ['lrn2'], { lrn_param: { local_size: 3, alpha: 0.3, beta: 0.6, norm_region: ident('WITHIN_CHANNEL') } }),
    L('prelu', 'PReLU', ['lrn2'], ['prelu'], {}, [B([4], 0.3)]),
    L('deconv', 'Deconvolution', ['pool1'], ['deconv'], { convolution_param: { num_output: 4, kernel_size: 2, stride: 2, group: 2 } }, [B([6, 2, 2, 2]), B([4])]),
    L('crop', 'Crop', ['deconv', 'prelu'], ['crop'], { crop_param: { axis: 2, offset: [1, 2] } }),
    L('esum', 'Eltwise', ['prelu', 'crop', 'lrn1'], ['esum'], { eltwise_param: { operation: ident('SUM'), coeff: [1, -0.5, 2] } }),
    L('eprod', 'Eltwise', ['esum', 'lrn1'], ['eprod'], { eltwise_param: { operation: ident('PROD') } }),
    L('emax', 'Eltwise', ['eprod', 'crop'], ['emax'], { eltwise_param: { operation: ident('MAX') } }),
    L('cat', 'Concat', ['emax', 'esum'], ['cat'], { concat_param: { axis: 1 } }),
    L('slice', 'Slice', ['cat'], ['s1', 's2', 's3'], { slice_param: { axis: 1, slice_point: [2, 5] } }),
    L('split', 'Split', ['s2'], ['s2a', 's2b']),
    L('sig', 'Sigmoid', ['s2a'], ['sig']),
    L('tanh', 'TanH', ['s2b'], ['tanh']),
    L('abs', 'AbsVal', ['s3'], ['abs']),
    L('pow', 'Power', ['abs'], ['pow'], { power_param: { power: 2, scale: 0.5, shift: 1 } }),
    L('exp', 'Exp', ['tanh'], ['exp'], { exp_param: { base: 2, scale: 0.5, shift: 0.1 } }),
    L('log', 'Log', ['pow'], ['log'], { log_param: { base: 10, shift: 0.5 } }),
    L('bnll', 'BNLL', ['s1'], ['bnll']),
    L('elu', 'ELU', ['s1'], ['elu'], { elu_param: { alpha: 0.7 } }),
    L('drop', 'Dropout', ['elu'], ['elu'], { dropout_param: { dropout_ratio: 0.5 } }),
    L('cat2', 'Concat', ['sig', 'exp', 'log', 'bnll', 'elu'], ['cat2']),
    L('bias', 'Bias', ['cat2'], ['cat2'], { bias_param: { axis: 1 } }, [B([13])]),
    L('thr', 'Threshold', ['cat2'], ['thr'], { threshold_param: { threshold: 0.6 } }),
    L('norm', 'Normalize', ['cat2'], ['norm'], { norm_param: { across_spatial: false, channel_shared: false } }, [pos([13])]),
    L('perm', 'Permute', ['norm'], ['perm'], { permute_param: { order: [0, 2, 3, 1] } }),
    L('flat', 'Flatten', ['perm'], ['flat']),
    L('resh', 'Reshape', ['norm'], ['resh'], { reshape_param: { shape: { dim: [0, -1, 3] } } }),
    L('ip', 'InnerProduct', ['flat'], ['ip'], { inner_product_param: { num_output: 10 } }, [B([10, 468], 0.1), B([10])]),
    L('ip2', 'InnerProduct', ['resh'], ['ip2'], { inner_product_param: { num_output: 4, axis: 2 } }, [B([4, 3]), B([4])]),
    L('prob', 'Softmax', ['ip'], ['prob']),
    L('sm2', 'Softmax', ['ip2'], ['sm2'], { softmax_param: { axis: 2 } }),
    L('am', 'ArgMax', ['ip'], ['am'], { argmax_param: { top_k: 3, out_max_val: true } }),
    L('am2', 'ArgMax', ['ip2'], ['am2'], { argmax_param: { top_k: 2, axis: 2 } }),
    // SSD head on the 6x6 map: 4 priors per cell, 3 classes.
    L('pb', 'PriorBox', ['prelu', 'data'], ['pb'], { prior_box_param: { min_size: 3, max_size: 6, aspect_ratio: 2, flip: true, clip: true, variance: [0.1, 0.1, 0.2, 0.2] } }),
    L('loc', 'Convolution', ['prelu'], ['loc'], { convolution_param: { num_output: 16, kernel_size: 3, pad: 1 } }, [B([16, 4, 3, 3], 0.3), B([16], 0.1)]),
    L('loc_p', 'Permute', ['loc'], ['loc_p'], { permute_param: { order: [0, 2, 3, 1] } }),
    L('loc_f', 'Flatten', ['loc_p'], ['loc_f']),
    L('conf', 'Convolution', ['prelu'], ['conf'], { convolution_param: { num_output: 12, kernel_size: 3, pad: 1 } }, [B([12, 4, 3, 3], 0.6), B([12])]),
    L('conf_p', 'Permute', ['conf'], ['conf_p'], { permute_param: { order: [0, 2, 3, 1] } }),
    L('conf_r', 'Reshape', ['conf_p'], ['conf_r'], { reshape_param: { shape: { dim: [0, -1, 3] } } }),
    L('conf_s', 'Softmax', ['conf_r'], ['conf_s'], { softmax_param: { axis: 2 } }),
    L('conf_f', 'Flatten', ['conf_s'], ['conf_f']),
    L('det', 'DetectionOutput', ['loc_f', 'conf_f', 'pb'], ['det'], {
      detection_output_param: { num_classes: 3, share_location: true, background_label_id: 0, nms_param: { nms_threshold: 0.45, top_k: 40 }, code_type: ident('CENTER_SIZE'), keep_top_k: 25, confidence_threshold: 0.4 },
    }),
    L('loss', 'SoftmaxWithLoss', ['ip', 'label'], ['loss']),
  ];
  return { layers, outputs: ['prob', 'sm2', 'am', 'am2', 'det', 'thr'] };
}

test('every Caffe layer (V2 prototxt + caffemodel) matches an independent forward pass', { skip: needPython() }, () => {
  const { layers, outputs } = coverageNet(21);
  const covered = new Set(['Input', ...layers.map((l) => l.type)]);
  assert.deepEqual(CAFFE_LAYERS.filter((t) => !covered.has(t)), [], 'layers without coverage');
  const x = { shape: [2, 3, 10, 10], data: randn(rng(22), 600) };
  const ref = reference({ data: x }, layers.filter((l) => l.type !== 'SoftmaxWithLoss'), outputs);
  const model = loadCaffe(prototxt({ data: x.shape }, layers), caffemodel(layers));
  assert.deepEqual(model.graph.outputs.map((o) => o.name).sort(), [...outputs].sort());
  const res = Session.create(model).runSync({ data: Tensor.from('float32', x.shape, x.data) });
  for (const o of outputs) {
    const got = res[o]!;
    assert.deepEqual([...got.shape], ref[o]!.shape, `${o} shape`);
    const scale = Math.max(1, ...ref[o]!.data.map(Math.abs));
    const err = maxAbsDiff(got.toFloat32(), ref[o]!.data);
    assert.ok(err <= 2e-5 * scale, `${o}: max abs diff ${err}`);
  }
  assert.ok(ref.det!.shape[2]! > 1, 'the detection test should detect something');
});

test('legacy V1 `layers` nets with input_dim, text and binary, match the reference', { skip: needPython() }, () => {
  const r = rng(31);
  const B = (shape: number[]) => ({ shape, data: randn(r, shape.reduce((a, c) => a * c, 1), 0.3) });
  const v1: [string, string, number, string[], string[], Record<string, P>, L['blobs']][] = [
    ['conv', 'CONVOLUTION', 4, ['data'], ['conv'], { convolution_param: { num_output: 5, kernel_size: 3, stride: 2 } }, [B([5, 2, 3, 3]), B([5])]],
    ['relu', 'RELU', 18, ['conv'], ['conv'], {}, []],
    ['pool', 'POOLING', 17, ['conv'], ['pool'], { pooling_param: { pool: ident('AVE'), kernel_size: 2, stride: 2 } }, []],
    ['ip', 'INNER_PRODUCT', 14, ['pool'], ['ip'], { inner_product_param: { num_output: 3 } }, [B([3, 20]), B([3])]],
    ['prob', 'SOFTMAX', 20, ['ip'], ['prob'], {}, []],
  ];
  const text = ['name: "v1"', 'input: "data"', 'input_dim: 2', 'input_dim: 2', 'input_dim: 9', 'input_dim: 9',
    ...v1.flatMap(([name, type, , bottom, top, params]) => textValue('layers', { name, type: ident(type), bottom, top, ...params }, ''))].join('\n');
  // Binary V1: NetParameter.layers (2), V1LayerParameter name 4, type 5, blobs 6 with legacy num/channels/height/width.
  const bin = new Writer().string(1, 'v1').string(3, 'data');
  for (const d of [2, 2, 9, 9]) bin.varint(4, d);
  for (const [name, , code, bottom, top, , blobs] of v1) {
    const lw = new Writer().string(4, name).varint(5, code);
    for (const b of bottom) lw.string(2, b);
    for (const t of top) lw.string(3, t);
    for (const b of blobs ?? []) {
      const dims = [1, 1, 1, 1, ...b.shape].slice(-4);
      const bw = new Writer();
      dims.forEach((d, i) => bw.varint(i + 1, d));
      lw.message(6, bw.packedFloats(5, b.data));
    }
    if (name === 'conv') lw.message(10, new Writer().varint(1, 5).varint(4, 3).varint(6, 2));
    if (name === 'pool') lw.message(19, new Writer().varint(1, 1).varint(2, 2).varint(3, 2));
    if (name === 'ip') lw.message(17, new Writer().varint(1, 3));
    bin.message(2, lw);
  }
  const bytes = bin.finish();
  const x = { shape: [2, 2, 9, 9], data: randn(rng(32), 324) };
  const v2: L[] = v1.map(([name, , , bottom, top, params, blobs]) => ({ name, type: { conv: 'Convolution', relu: 'ReLU', pool: 'Pooling', ip: 'InnerProduct', prob: 'Softmax' }[name]!, bottom, top, params, blobs }));
  const ref = reference({ data: x }, v2, ['prob']);
  for (const [label, m] of [['text + binary', loadCaffe(text, bytes)], ['binary only', loadCaffe(undefined, bytes)]] as const) {
    const got = Session.create(m).runSync({ data: Tensor.from('float32', x.shape, x.data) }).prob!;
    assert.deepEqual([...got.shape], ref.prob!.shape, label);
    assert.ok(maxAbsDiff(got.toFloat32(), ref.prob!.data) < 1e-5, label);
  }
});

test('Caffe errors name the layer: unknown type, missing blobs, unknown bottom', () => {
  const net = (body: string) => `input: "data"\ninput_shape { dim: 1 dim: 2 dim: 4 dim: 4 }\n${body}`;
  const cases: [string, RegExp][] = [
    ['layer { name: "weird" type: "Frobnicate" bottom: "data" top: "y" }', /weird.*Frobnicate|Frobnicate.*weird/],
    ['layer { name: "c" type: "Convolution" bottom: "data" top: "y" convolution_param { num_output: 2 kernel_size: 3 } }', /'c'.*weight blob/],
    ['layer { name: "r" type: "ReLU" bottom: "nothing" top: "y" }', /'r'.*nothing/],
    ['layer { name: "p" type: "Pooling" bottom: "data" top: "y" pooling_param { pool: MAX kernel_size: 9 } }', /'p'/],
  ];
  for (const [body, re] of cases) assert.throws(() => loadCaffe(net(body), undefined), (e: unknown) => e instanceof Q8Error && re.test(e.message), body);
});
