/**
 * The WebAssembly SIMD kernels against the TypeScript reference kernels (src/ops for Conv/Gemm/MatMul,
 * src/quant for Q8Gemm/Q8Conv) on random shapes: odd sizes, M=1, K not a multiple of any block, every
 * weight/activation window pairing. Skipped (with the reason) when dist/wasm/q8.wasm is not built.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { wasmBackend, wasmKernels, wasmLoadError } from '../../src/kernels/wasm/index.js';
import { getBackend } from '../../src/kernels/registry.js';
import { Tensor } from '../../src/tensor/tensor.js';
import {
  againstReference, checkConvF32, checkGemmAndMatMul, checkResidualConvs, close, CONV_CASES, floats, int8s, node, q8ConvCase, q8GemmCase, rng, scales, type ConvCase,
} from './kernel-test-util.js';

const kernels = wasmKernels();
const skip = kernels ? false : `wasm kernels not built: ${wasmLoadError}`;
const both = againstReference(wasmBackend);

/** The int8 kernels follow the contract's arithmetic order, so they match the reference bit for bit. */
function identical(got: Tensor, want: Tensor, what: string): void {
  assert.deepEqual(got.shape, want.shape, `${what}: shape`);
  const g = got.data as Float32Array, w = want.data as Float32Array;
  for (let i = 0; i < w.length; i++) {
    if (!Object.is(g[i], w[i]) && !(g[i] === 0 && w[i] === 0)) assert.fail(`${what}: element ${i} is ${g[i]}, reference ${w[i]}`);
  }
}

test('wasm kernels load and register as the wasm backend', { skip }, () => {
  assert.equal(getBackend('wasm'), wasmBackend);
  assert.ok(wasmBackend.available());
  assert.match(wasmBackend.description, /^wasm \(SIMD128/);
});

test('Q8Gemm: wasm vs reference on random shapes and windows', { skip }, () => {
  const r = rng(11);
  const shapes: [number, number, number][] = [
    [1, 1, 1], [1, 3, 5], [5, 31, 17], [13, 100, 33], [2, 257, 64], [40, 96, 100], [1, 600, 300], [17, 200, 32], [25, 64, 7],
    [3, 1100, 9], [6, 2085, 10],
  ];
  const windows = [[0, 0], [32, 0], [0, 32], [64, 128], [128, 64], [256, 32], [32, 256], [64, 64], [2, 0], [0, 6]];
  for (const [M, K, N] of shapes) {
    for (const [wb, ab] of windows) {
      const q = q8GemmCase(r, M, K, N, wb, ab);
      const { got, want } = both(q.n, q.inputs, q.constMask);
      identical(got, want, q.what);
    }
  }
});

// The shared cases, then a large C, a single channel, and depthwise convs (batched, strided and dilated, 1-D).
const WASM_CONV_CASES: ConvCase[] = [
  ...CONV_CASES,
  { B: 1, C: 130, H: 4, W: 21, M: 6, group: 1, k: [3, 3], pads: [0, 1, 0, 1] },
  { B: 1, C: 1, H: 28, W: 28, M: 8, group: 1, k: [3, 3] },
  { B: 2, C: 24, H: 30, W: 33, M: 24, group: 24, k: [3, 3], pads: [1, 1, 1, 1] },
  { B: 1, C: 8, H: 21, W: 40, M: 16, group: 8, k: [3, 3], strides: [2, 2], dilations: [1, 2], pads: [1, 2, 1, 2] },
  { B: 1, C: 5, H: 1, W: 37, M: 5, group: 5, k: [1, 5], oneD: true, pads: [2, 2], strides: [2] },
];

test('Q8Conv: wasm vs reference (groups, depthwise, strides, dilations, pads, 1-D, all windows)', { skip }, () => {
  const r = rng(12);
  const windows = [[0, 0], [32, 0], [0, 32], [64, 32], [32, 128], [128, 64], [256, 256], [2, 4]];
  WASM_CONV_CASES.forEach((c, ci) => {
    for (const [wb, ab] of windows) {
      const q = q8ConvCase(c, ci, r, wb, ab);
      const { got, want } = both(q.n, q.inputs, q.constMask);
      identical(got, want, q.what);
    }
  });
});

test('Conv and Q8Conv with a fused residual join: wasm (the join after the kernel) vs reference', { skip }, () => {
  checkResidualConvs(wasmBackend, rng(15), WASM_CONV_CASES, false);
});

test('Q8Conv with one activation window per tap: wasm vs reference (even C; odd C declined)', { skip }, () => {
  const r = rng(13);
  const cases = WASM_CONV_CASES.filter((c) => c.group === 1 && c.C % 2 === 0);
  assert.ok(cases.length >= 5);
  cases.forEach((c, ci) => {
    const q = q8ConvCase(c, ci, r, 0, 0, true);
    const { got, want } = both(q.n, q.inputs, q.constMask);
    identical(got, want, q.what);
  });
  const odd = q8ConvCase({ B: 1, C: 7, H: 5, W: 5, M: 3, group: 1, k: [3, 3] }, 0, r, 0, 0, true);
  const fk = wasmBackend.kernels.find((k) => k.opType === 'Q8Conv')!;
  assert.equal(fk.compile({ node: odd.n, consts: [undefined, odd.inputs[1], odd.inputs[2], odd.inputs[3]], opset: 13, threads: 0 }), null);
});

test('Conv float32: wasm vs reference', { skip }, () => {
  const r = rng(13);
  checkConvF32(both, r, WASM_CONV_CASES);
});

test('Gemm and MatMul float32: wasm vs reference (transA/transB/alpha/beta folding, batched A, M=1)', { skip }, () => {
  const r = rng(14);
  checkGemmAndMatMul(both, r, [[1, 1, 1], [7, 33, 65], [30, 100, 17], [1, 300, 200], [13, 64, 32], [9, 5, 3]]);
});

test('wasm kernels decline what they do not handle', { skip }, () => {
  const Wq = Tensor.from('int8', [4, 40], int8s(rng(15), 160));
  const Ws = Tensor.from('float32', [4, 1], scales(rng(16), 4));
  const fk = wasmBackend.kernels.find((k) => k.opType === 'Q8Gemm')!;
  const compile = (attrs: Record<string, unknown>, w: Tensor | undefined) =>
    fk.compile({ node: node('Q8Gemm', 'q8', ['a', 'w', 's'], attrs), consts: [undefined, w, Ws], opset: 1, threads: 0 });
  assert.equal(compile({ weight_block: 48, act_block: 32 }, Wq), null, 'windows that do not nest');
  assert.equal(compile({ act_block: 5 }, Wq), null, 'odd window');
  assert.equal(compile({}, undefined), null, 'weights known only at run time');
  assert.notEqual(compile({}, Wq), null);
  const conv = wasmBackend.kernels.find((k) => k.opType === 'Conv')!;
  const W3 = Tensor.from('float32', [2, 2, 2, 2, 2], floats(rng(17), 32));
  assert.equal(conv.compile({ node: node('Conv', '', ['x', 'w'], {}), consts: [undefined, W3], opset: 13, threads: 0 }), null, '3-D conv');
});

test('wasm memory is reused: packing and running many kernels does not grow it without bound', { skip }, () => {
  const r = rng(18);
  const fk = wasmBackend.kernels.find((k) => k.opType === 'Q8Gemm')!;
  const n = node('Q8Gemm', 'q8', ['a', 'w', 's'], {});
  const Wq = Tensor.from('int8', [256, 512], int8s(r, 256 * 512));
  const Ws = Tensor.from('float32', [256], scales(r, 256));
  const A = Tensor.from('float32', [8, 512], floats(r, 8 * 512));
  let before = 0;
  for (let i = 0; i < 60; i++) {
    const pk = kernels!.packI8(Wq.data as Int8Array, Ws.data as Float32Array, 256, 512, 0);
    const out = new Float32Array(8 * 256);
    kernels!.gemmQ8(A.data as Float32Array, 8, 512, pk, 256, 0, null, 0, 0, 0, out);
    kernels!.free(pk);
    if (i === 0) before = kernels!.memoryBytes;
  }
  assert.ok(kernels!.memoryBytes <= before + (1 << 20), `memory grew from ${before} to ${kernels!.memoryBytes}`);
  assert.ok(fk.compile({ node: n, consts: [undefined, Wq, Ws], opset: 1, threads: 0 }));
});

test('Sessions on the wasm backend match the reference on the Fashion-MNIST models, fp32 and int8', { skip }, async () => {
  const { load } = await import('../../src/api.js');
  const { existsSync } = await import('node:fs');
  const r = rng(19);
  for (const name of ['fashion-vgg', 'fashion-resnet', 'fashion-mobilenet', 'fashion-mlp']) {
    const file = `models/${name}.onnx`;
    if (!existsSync(file)) continue;
    const x = Tensor.from('float32', [3, 1, 28, 28], Float32Array.from({ length: 3 * 784 }, () => r()));
    for (const int8 of [false, true]) {
      const mk = async (backend: 'wasm' | 'ref') => {
        const m = await load(file, { backend });
        return int8 ? m.quantize() : m;
      };
      const w = await mk('wasm'), ref = await mk('ref');
      assert.equal(w.backend, 'wasm');
      assert.ok(w.session.kernelSummary.fast > 0, `${name}: no node compiled to a wasm kernel`);
      const got = await w.predict(x), want = await ref.predict(x);
      if (int8) identical(got, want, `${name} int8 session`);
      else close(got, want, 1e-4, `${name} fp32 session`, 1e-4);
    }
  }
});

test('Q8Gemm and Q8Conv: NaN and ±Infinity in activations quantize as the reference does', { skip }, () => {
  const r = rng(20);
  const [M, K, N] = [4, 70, 9];
  const a = floats(r, M * K, 16);
  a[3] = NaN; a[K + 5] = Infinity; a[2 * K + 40] = -Infinity; a[3 * K + 1] = 3e38; a[3 * K + 2] = -3.4e38;
  const A = Tensor.from('float32', [M, K], a);
  const Wq = Tensor.from('int8', [N, K], int8s(r, N * K));
  for (const [wb, ab] of [[0, 0], [32, 16]]) {
    const nwb = wb ? Math.ceil(K / wb) : 1;
    const Ws = Tensor.from('float32', wb ? [N, nwb] : [N], scales(r, N * nwb));
    const n = node('Q8Gemm', 'q8', ['a', 'w', 's'], { weight_block: wb, act_block: ab });
    const { got, want } = both(n, [A, Wq, Ws], [false, true, true]);
    identical(got, want, `Q8Gemm with NaN/Inf wb=${wb} ab=${ab}`);
  }
  const X = Tensor.from('float32', [1, 2, 5, 7], floats(r, 70, 7));
  (X.data as Float32Array)[9] = NaN; (X.data as Float32Array)[40] = Infinity;
  const Wc = Tensor.from('int8', [3, 2, 3, 3], int8s(r, 54));
  const Wsc = Tensor.from('float32', [3], scales(r, 3));
  const n = node('Q8Conv', 'q8', ['x', 'w', 's'], { kernel_shape: [3, 3], pads: [1, 1, 1, 1] });
  const { got, want } = both(n, [X, Wc, Wsc], [false, true, true]);
  identical(got, want, 'Q8Conv with NaN/Inf');
});
