/**
 * The native addon's kernels against the TypeScript reference kernels (src/ops for Conv/Gemm/MatMul,
 * src/quant for Q8Gemm/Q8Conv), on random shapes, for every ISA this machine can run.
 * Skipped (with the reason) when the addon is not built.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Worker } from 'node:worker_threads';
import { nativeAddon, nativeBackend, nativeLoadError, type NativeIsa } from '../../src/kernels/native/index.js';
import { getBackend } from '../../src/kernels/registry.js';
import { Tensor } from '../../src/tensor/tensor.js';
import {
  againstReference, checkConvF32, checkGemmAndMatMul, close, CONV_CASES, convTensors, floats, int8s, node, q8ConvCase, q8GemmCase, rng, scales, type ConvCase,
} from './kernel-test-util.js';

const addon = nativeAddon();
const skip = addon ? false : `native addon not built: ${nativeLoadError}`;
const ALL_ISAS: NativeIsa[] = ['scalar', 'avx2', 'avxvnni', 'avx512vnni'];
const ISAS = addon ? ALL_ISAS.slice(0, ALL_ISAS.indexOf(addon.info().best) + 1) : [];
const both = againstReference(nativeBackend);

function forEachIsa(fn: (isa: NativeIsa) => void): void {
  const best = addon!.info().best;
  try {
    for (const isa of ISAS) {
      assert.equal(addon!.setIsa(isa), isa);
      fn(isa);
    }
  } finally {
    addon!.setIsa(best);
  }
}

test('native addon loads, reports its ISA and is registered as a backend', { skip }, () => {
  const i = addon!.info();
  assert.ok(ALL_ISAS.includes(i.isa) && ALL_ISAS.includes(i.best));
  assert.ok(i.threads >= 1);
  assert.equal(getBackend('native'), nativeBackend);
  assert.ok(nativeBackend.available());
  assert.match(nativeBackend.description, /^native \(/);
  assert.throws(() => addon!.setIsa('sse9' as NativeIsa), /unknown ISA/);
});

test('Q8Gemm: native vs reference on random shapes and windows', { skip }, () => {
  const r = rng(1);
  const shapes: [number, number, number][] = [
    [1, 1, 1], [1, 3, 5], [5, 31, 17], [13, 100, 33], [2, 257, 64], [40, 96, 100], [1, 600, 300], [17, 200, 32], [25, 64, 7],
  ];
  const windows = [[0, 0], [32, 0], [0, 32], [64, 128], [128, 64], [256, 32], [32, 256], [64, 64]];
  forEachIsa((isa) => {
    let c = 0;
    for (const [M, K, N] of shapes) {
      for (const [wb, ab] of windows) {
        if ((wb || ab) && K < 32 && c++ % 2) continue;
        const q = q8GemmCase(r, M, K, N, wb, ab);
        const { got, want } = both(q.n, q.inputs, q.constMask);
        close(got, want, 1e-5, `${isa} ${q.what}`);
      }
    }
  });
});

test('Q8Conv: native vs reference (groups, depthwise, strides, dilations, pads, 1-D, windows)', { skip }, () => {
  const r = rng(2);
  const windows = [[0, 0], [32, 0], [0, 32], [64, 32], [32, 128]];
  forEachIsa((isa) => {
    CONV_CASES.forEach((c, ci) => {
      for (const [wb, ab] of windows) {
        const q = q8ConvCase(c, ci, r, wb, ab);
        if ((wb || ab) && q.K < 32 && ci % 2) continue;
        const { got, want } = both(q.n, q.inputs, q.constMask);
        close(got, want, 1e-5, `${isa} ${q.what}`);
      }
    });
  });
});

test('Conv float32: native vs reference', { skip }, () => {
  const r = rng(3);
  forEachIsa((isa) => {
    checkConvF32(both, r, CONV_CASES, `${isa} `);
    // A large-K conv crosses the addon's K chunking.
    const c: ConvCase = { B: 1, C: 70, H: 6, W: 9, M: 12, group: 1, k: [3, 3], pads: [1, 1, 1, 1] };
    const { X, W, bias, attrs } = convTensors(c, r, false, 0);
    const { got, want } = both(node('Conv', '', ['x', 'w', bias ? 'b' : ''], attrs), [X, W, bias], [false, true, true]);
    close(got, want, 1e-4, `${isa} Conv K=630`, 1e-5);
  });
});

test('Gemm and MatMul float32: native vs reference (transA/transB/alpha/beta folding, batched A)', { skip }, () => {
  const r = rng(4);
  forEachIsa((isa) => {
    checkGemmAndMatMul(both, r, [[1, 1, 1], [7, 33, 65], [30, 100, 17], [1, 300, 200], [13, 64, 32]], `${isa} `);
  });
});

test('native kernels decline what they do not handle', { skip }, () => {
  const Wq = Tensor.from('int8', [4, 40], int8s(rng(5), 160));
  const Ws = Tensor.from('float32', [4, 1], scales(rng(6), 4));
  const fk = nativeBackend.kernels.find((k) => k.opType === 'Q8Gemm')!;
  // weight windows that do not nest with the activation windows
  const bad = node('Q8Gemm', 'q8', ['a', 'w', 's'], { weight_block: 48, act_block: 32 });
  assert.equal(fk.compile({ node: bad, consts: [undefined, Wq, Ws], opset: 1, threads: 0 }), null);
  // non-constant weights
  const ok = node('Q8Gemm', 'q8', ['a', 'w', 's'], {});
  assert.equal(fk.compile({ node: ok, consts: [undefined, undefined, Ws], opset: 1, threads: 0 }), null);
  const conv = nativeBackend.kernels.find((k) => k.opType === 'Conv')!;
  const W3 = Tensor.from('float32', [2, 2, 2, 2, 2], floats(rng(7), 32));
  assert.equal(conv.compile({ node: node('Conv', '', ['x', 'w'], {}), consts: [undefined, W3], opset: 13, threads: 0 }), null);
});

test('native addon validates its arguments', { skip }, () => {
  const n = addon!;
  const pf = n.packF32(floats(rng(8), 12), 3, 4);
  assert.throws(() => n.gemmQ8(new Float32Array(8), 2, 4, pf, 0, null, 0, 0, 0, new Float32Array(6)), /wrong kind/);
  const pq = n.packI8(int8s(rng(9), 12), scales(rng(10), 3), 3, 4, 0, 0);
  assert.throws(() => n.gemmQ8(new Float32Array(7), 2, 4, pq, 0, null, 0, 0, 0, new Float32Array(6)), /too short/);
  assert.throws(() => n.gemmQ8(new Float32Array(8), 2, 4, pq, 32, null, 0, 0, 0, new Float32Array(6)), /actBlock/);
  assert.throws(() => n.packI8(int8s(rng(9), 12), scales(rng(10), 3), 3, 4, 48, 32), /nest/);
});

test('thread counts give the same results', { skip }, () => {
  const n = addon!;
  const r = rng(11);
  const before = n.info().threads;
  const M = 50, K = 130, N = 70;
  const A = floats(r, M * K, K), W = int8s(r, N * K), S = scales(r, N);
  // A small image: few pixel panels, so the conv splits output channels across tasks.
  const X = floats(r, 40 * 9 * 9, 9), Wc = int8s(r, 24 * 40 * 9), Sc = scales(r, 24);
  const geo = Int32Array.from([1, 40, 9, 9, 3, 3, 1, 1, 1, 1, 1, 1, 9, 9]);
  const outs: Float32Array[] = [], couts: Float32Array[] = [];
  try {
    for (const t of [1, 2, 3]) {
      n.setThreads(t);
      assert.equal(n.info().threads, t);
      const out = new Float32Array(M * N);
      n.gemmQ8(A, M, K, n.packI8(W, S, N, K, 0, 0), 0, null, 0, 0, 0, out);
      outs.push(out);
      const cout = new Float32Array(24 * 81);
      n.convQ8(X, geo, n.packConvI8(Wc, Sc, 24, 360, 1, 0, 0, 9), null, 0, 0, 0, cout);
      couts.push(cout);
    }
  } finally {
    n.setThreads(before);
  }
  assert.deepEqual(outs[1], outs[0]);
  assert.deepEqual(outs[2], outs[0]);
  assert.deepEqual(couts[1], couts[0]);
  assert.deepEqual(couts[2], couts[0]);
});

test('the addon loads and runs inside a worker thread', { skip }, async () => {
  const url = new URL('../../src/kernels/native/index.js', import.meta.url).href;
  const code = `
    const { parentPort } = require('node:worker_threads');
    import(${JSON.stringify(url)}).then((m) => {
      const n = m.nativeAddon();
      const W = new Int8Array(64 * 3).map((_, i) => ((i * 37) % 255) - 127);
      const A = new Float32Array(2 * 64).map((_, i) => Math.sin(i));
      const out = new Float32Array(2 * 3);
      n.gemmQ8(A, 2, 64, n.packI8(W, new Float32Array([0.01, 0.02, 0.03]), 3, 64, 0, 0), 0, null, 0, 0, 0, out);
      parentPort.postMessage(Array.from(out));
    }).catch((e) => parentPort.postMessage(String(e)));`;
  const fromWorker = await new Promise<unknown>((resolve, reject) => {
    const w = new Worker(code, { eval: true });
    w.once('message', (m) => { resolve(m); void w.terminate(); });
    w.once('error', reject);
  });
  const n = addon!;
  const W = new Int8Array(64 * 3).map((_, i) => ((i * 37) % 255) - 127);
  const A = new Float32Array(2 * 64).map((_, i) => Math.sin(i));
  const out = new Float32Array(2 * 3);
  n.gemmQ8(A, 2, 64, n.packI8(W, new Float32Array([0.01, 0.02, 0.03]), 3, 64, 0, 0), 0, null, 0, 0, 0, out);
  assert.deepEqual(fromWorker, Array.from(out));
});

// ---------------------------------------------------------------------------------------------
// Whole models through Session: native backend vs the reference backend, fp32 and int8.

import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { loadGraph } from '../../src/api.js';
import { quantizeModel } from '../../src/quant/quantize.js';
import { Session } from '../../src/runtime/session.js';

const MODELS = ['fashion-vgg', 'fashion-resnet', 'fashion-mobilenet', 'fashion-mlp']
  .map((m) => fileURLToPath(new URL(`../../../models/${m}.onnx`, import.meta.url)))
  .filter((p) => existsSync(p));

test('models run on the native backend like on the reference backend (fp32 and int8 windows)', { skip: skip || (MODELS.length ? false : 'models/ not found') }, () => {
  const r = rng(12);
  for (const path of MODELS) {
    for (const q of [null, { weightWindow: 'channel', activationWindow: 'row' }, { weightWindow: 64, activationWindow: 32 }] as const) {
      const mk = () => {
        const m = loadGraph(path);
        return q ? quantizeModel(m, q as Parameters<typeof quantizeModel>[1]).model : m;
      };
      const nat = Session.create(mk(), { backend: 'native' });
      const ref = Session.create(mk(), { backend: 'ref' });
      const inp = nat.inputs[0]!;
      const shape = (inp.shape ?? []).map((d) => (typeof d === 'number' && d > 0 ? d : 2));
      const x = Tensor.from('float32', shape, floats(r, shape.reduce((a, b) => a * b, 1)).map(Math.abs));
      const got = nat.runSync({ [inp.name]: x }), want = ref.runSync({ [inp.name]: x });
      assert.ok(nat.kernelSummary.fast > 0, `${path}: no node ran a native kernel`);
      if (q) assert.ok(nat.model.graph.nodes.some((n) => n.domain === 'q8' && n.opType.startsWith('Q8')), `${path}: quantized model has no q8 nodes`);
      for (const o of nat.outputs) {
        close(got[o.name]!, want[o.name]!, q ? 1e-4 : 1e-3, `${path} ${q ? JSON.stringify(q) : 'fp32'} output ${o.name}`, q ? 1e-5 : 1e-4);
      }
    }
  }
});
