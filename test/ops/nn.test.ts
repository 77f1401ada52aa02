/**
 * Conv, ConvTranspose, pools, Gemm, MatMul. Expected values marked "torch" were computed once with
 * PyTorch 1.13 in float64 from the same `seq` inputs (asymmetric pads via F.pad, MaxPool indices
 * offset by plane to ONNX's flat indexing) and pasted here; the rest come from naive loops written
 * in this file (a different algorithm from the kernels' im2col + blocked GEMM).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import '../../src/ops/index.js';
import { runOp } from '../../src/runtime/invoke.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { Q8Error } from '../../src/core/errors.js';
import { gemmF32Ref } from '../../src/kernels/ref/gemm.js';
import { im2colRef, im2rowRef, type Conv2DGeom } from '../../src/kernels/ref/im2col.js';

/** Deterministic, non-constant test data (the python generator used the same formula). */
function seq(n: number, a = 37, m = 17, off = 8, div = 4): number[] {
  return Array.from({ length: n }, (_, i) => (((i * a) % m) - off) / div);
}
const f32 = (shape: number[], v: number[]) => Tensor.from('float32', shape, v);
const size = (s: number[]) => s.reduce((a, b) => a * b, 1);
const sq = (shape: number[], a = 37, m = 17, off = 8) => f32(shape, seq(size(shape), a, m, off));

function close(t: Tensor, shape: number[], want: ArrayLike<number>, tol = 1e-5): void {
  assert.deepEqual([...t.shape], shape);
  const got = t.toNumbers();
  assert.equal(got.length, want.length);
  for (let i = 0; i < got.length; i++) {
    const w = want[i]!;
    assert.ok(Math.abs(got[i]! - w) <= tol * Math.max(1, Math.abs(w)), `element ${i}: got ${got[i]}, want ${w}`);
  }
}

/** A small PRNG so random tests are reproducible. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => { s = (Math.imul(s, 1664525) + 1013904223) >>> 0; return s / 2 ** 32 - 0.5; };
}
const rand = (shape: number[], r: () => number) => f32(shape, Array.from({ length: size(shape) }, r));

/** Naive direct 2-D convolution (NCHW) with explicit pads, for cross-checks. */
function naiveConv2d(
  x: Tensor, w: Tensor, b: Tensor | undefined, stride: number[], pads: number[], dil: number[], group: number,
): { shape: number[]; data: number[] } {
  const [N, C, H, W] = x.shape as number[];
  const [M, Cg, kh, kw] = w.shape as number[];
  const OH = Math.floor((H + pads[0]! + pads[2]! - (dil[0]! * (kh - 1) + 1)) / stride[0]!) + 1;
  const OW = Math.floor((W + pads[1]! + pads[3]! - (dil[1]! * (kw - 1) + 1)) / stride[1]!) + 1;
  const out: number[] = [];
  const Mg = M / group;
  for (let n = 0; n < N; n++) for (let m = 0; m < M; m++) for (let oy = 0; oy < OH; oy++) for (let ox = 0; ox < OW; ox++) {
    let s = b ? b.num(m) : 0;
    const g = Math.floor(m / Mg);
    for (let c = 0; c < Cg; c++) for (let ky = 0; ky < kh; ky++) for (let kx = 0; kx < kw; kx++) {
      const iy = oy * stride[0]! - pads[0]! + ky * dil[0]!, ix = ox * stride[1]! - pads[1]! + kx * dil[1]!;
      if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
      s += x.num(((n * C + g * Cg + c) * H + iy) * W + ix) * w.num(((m * Cg + c) * kh + ky) * kw + kx);
    }
    out.push(s);
  }
  return { shape: [N, M, OH, OW], data: out };
}

test('gemmF32Ref matches a naive product for odd sizes, transposes, offsets, alpha and beta', () => {
  const r = rng(1);
  for (const [M, N, K] of [[1, 7, 5], [3, 1, 9], [5, 9, 300], [17, 33, 7], [130, 6, 260], [6, 2101, 3]] as const) {
    for (const transA of [false, true]) for (const transB of [false, true]) {
      const lda = (transA ? M : K) + 2, ldb = (transB ? K : N) + 1, ldc = N + 3;
      const A = new Float32Array(3 + (transA ? K : M) * lda).map(r);
      const B = new Float32Array(1 + (transB ? N : K) * ldb).map(r);
      const C = new Float32Array(2 + M * ldc).map(r);
      const C0 = C.slice();
      gemmF32Ref(M, N, K, A, lda, B, ldb, C, ldc, { transA, transB, alpha: 0.75, beta: -0.5, aOffset: 3, bOffset: 1, cOffset: 2 });
      for (let i = 0; i < M; i++) for (let j = 0; j < N; j++) {
        let s = 0;
        for (let k = 0; k < K; k++) s += A[3 + (transA ? k * lda + i : i * lda + k)]! * B[1 + (transB ? j * ldb + k : k * ldb + j)]!;
        const want = 0.75 * s - 0.5 * C0[2 + i * ldc + j]!;
        assert.ok(Math.abs(C[2 + i * ldc + j]! - want) < 1e-4, `M${M} N${N} K${K} tA${transA} tB${transB} at ${i},${j}`);
      }
      // Padding columns of C are untouched.
      for (let i = 0; i < M; i++) assert.equal(C[2 + i * ldc + N], C0[2 + i * ldc + N]);
    }
  }
});

test('im2colRef and im2rowRef hold the same patches (k = (c*kh + ky)*kw + kx), tiles included', () => {
  const r = rng(2);
  const g: Conv2DGeom = { C: 3, H: 5, W: 7, kh: 2, kw: 3, sh: 2, sw: 1, dh: 2, dw: 1, padTop: 1, padLeft: 2, OH: 3, OW: 7 };
  const x = new Float32Array(1 + 3 * 5 * 7).map(r);
  const K = 3 * 2 * 3, P = 21;
  const col = new Float32Array(K * P), row = new Float32Array(P * K);
  im2colRef(x, 1, g, col);
  im2rowRef(x, 1, g, row);
  for (let p = 0; p < P; p++) for (let k = 0; k < K; k++) {
    const c = Math.floor(k / 6), ky = Math.floor(k / 3) % 2, kx = k % 3;
    const iy = Math.floor(p / 7) * 2 - 1 + ky * 2, ix = (p % 7) - 2 + kx;
    const want = iy >= 0 && iy < 5 && ix >= 0 && ix < 7 ? x[1 + (c * 5 + iy) * 7 + ix]! : 0;
    assert.equal(col[k * P + p], want);
    assert.equal(row[p * K + k], want);
  }
  // A tile [p0, p0 + n) equals the same columns of the full matrix.
  const tile = new Float32Array(K * 10);
  im2colRef(x, 1, g, tile, 5, 10);
  for (let k = 0; k < K; k++) for (let q = 0; q < 10; q++) assert.equal(tile[k * 10 + q], col[k * P + 5 + q]);
});

test('Conv 2-D: groups, strides, dilations, asymmetric pads, bias (torch)', () => {
  const [y] = runOp('Conv', [sq([2, 4, 5, 6]), sq([6, 2, 2, 3], 29, 13, 6), sq([6], 7, 5, 2)],
    { group: 2, strides: [2, 1], dilations: [1, 2], pads: [1, 0, 0, 2], kernel_shape: [2, 3] });
  close(y!, [2, 6, 3, 4], [-3.6875, -3.875, 0.6875, 1.0625, -2.5625, 0.9375, -0.75, -8.25, -3.0625, 0.4375, -1.5, 0.5625, 0.25, 1.5625, 4.1875, 4.75, -1.8125, -8.375, 1.875, -2.0625, -1.9375, 1.0625, 1.375, 2.75, 5.8125, 6.1875, -1.25, -0.5, 2.1875, -0.625, 3.6875, 5.75, 2.4375, 4.9375, 5.0625, -5.625, -2.8125, 0.875, -2.1875, 2.6875, -0.6875, -2.9375, 4.625, 4.625, -3.25, -1.25, 4.625, 2.5, -2.9375, 6.1875, 4.25, -1.3125, 7.1875, 6.25, 2.4375, 0.375, 6.5625, -0.75, 1.0625, 0.0625, 6.25, -4.375, -2.75, -2.5, -1.625, 1.1875, -4.25, -3.5, 1.3125, 0.9375, -3.75, 1.25, -3.875, 2.3125, 1.0625, 0.375, 0.9375, 0.1875, -8.25, 0.1875, 0.4375, -0.3125, 0.5625, -0.5625, 1.5625, 1.8125, 4.75, -3.1875, -8.375, 1, -2.0625, 2.5, 1.0625, 0.875, 2.75, 2, 6.1875, -1.9375, -0.5, -1.875, -0.625, 5.0625, 5.75, -4.9375, 4.9375, 5.3125, -5.625, -3.5625, 0.875, 0.3125, 2.6875, 1.1875, -2.9375, 5.4375, 4.625, -3.875, -1.25, 6.0625, 2.5, -3.875, 6.1875, 4.6875, -1.3125, -2.625, 6.25, -2.125, 0.375, -3.8125, -0.75, -2.75, 0.0625, -5.1875, -4.375, -4.375, -2.5, -1.1875, 1.1875, -7.6875, -3.5, 1.5, 0.9375, -7.9375, 1.25, 2]);
});

test('Conv 1-D with auto_pad SAME_LOWER and stride 2 (torch)', () => {
  const [y] = runOp('Conv', [sq([1, 3, 7]), sq([2, 3, 4], 29, 13, 6)], { auto_pad: 'SAME_LOWER', strides: [2] });
  close(y!, [1, 2, 4], [-0.625, 1.1875, 5, 0.8125, 2.1875, -1.625, -0.9375, -1.875]);
});

test('Conv 3-D with pads and strides (torch)', () => {
  const [y] = runOp('Conv', [sq([1, 2, 4, 3, 5]), sq([3, 2, 2, 2, 3], 29, 13, 6)], { pads: [1, 1, 1, 1, 1, 1], strides: [2, 2, 2] });
  close(y!, [1, 3, 3, 2, 3], [-0.5625, 1.6875, -1.75, -0.5625, -6.25, 7.9375, -2.4375, 0.8125, -2, -3.25, 2.125, 1.0625, 6.1875, -3.5625, 0.375, -1.9375, 3.5625, 2.1875, 0.875, -2.75, 1.375, -2.9375, 5.9375, -5.9375, -0.375, -3.375, -3.875, 2.0625, 3.5, -3, -1.3125, -1.6875, 3.375, 6.8125, -1.5625, -1.25, -0.9375, 1.75, -2, 0.375, -6.25, 7, -4, 3, -0.0625, 0.875, -2.4375, 6.75, -3.125, 4.25, -2.5625, -4.75, 4.6875, 2.625]);
});

test('Conv depthwise with channel multiplier 2, stride 2, pad 1 (torch)', () => {
  const [y] = runOp('Conv', [sq([1, 3, 6, 5]), sq([6, 1, 3, 3], 29, 13, 6), sq([6], 7, 5, 2)], { group: 3, strides: [2, 2], pads: [1, 1, 1, 1] });
  close(y!, [1, 6, 3, 3], [-3.5625, -2.8125, 1.5, 0.3125, -0.0625, -1, -1.1875, 6.875, -2.3125, 2.625, -1.8125, -0.875, -1.875, 4.0625, -1.0625, -0.5625, 2.4375, 0.4375, 0.9375, -2.5625, 6.875, 7.5, -0.875, -1.125, -3.25, 1.6875, -1.125, -0.4375, -2.5625, 6.6875, 5.75, -2.1875, -0.5625, -3.3125, -0.8125, -2.0625, -0.875, 1.6875, -0.3125, 0.125, -3.5625, 3.5625, -0.875, 0.9375, -0.4375, -1, -3.4375, 1.625, 2.4375, -4.75, -3.6875, 3.1875, 1.8125, -2.75]);
});

test('Conv agrees with a naive loop on bigger random layers (tiling, pointwise, dilated depthwise)', () => {
  const r = rng(3);
  const cases: [number[], number[], number[], number[], number[], number][] = [
    // x shape, w shape, strides, pads, dilations, group
    [[2, 5, 13, 11], [7, 5, 3, 3], [1, 1], [1, 1, 1, 1], [1, 1], 1],
    [[1, 64, 20, 20], [16, 64, 3, 3], [2, 1], [0, 2, 1, 0], [1, 1], 1],
    [[1, 8, 9, 10], [12, 8, 1, 1], [1, 1], [0, 0, 0, 0], [1, 1], 1],
    [[1, 8, 9, 10], [16, 1, 3, 5], [1, 2], [2, 1, 0, 3], [2, 1], 8],
    [[1, 6, 7, 8], [9, 2, 2, 2], [3, 2], [1, 1, 1, 1], [2, 3], 3],
    [[2, 4, 11, 12], [4, 1, 3, 3], [1, 2], [2, 1, 2, 2], [2, 1], 4],
    [[1, 3, 9, 9], [3, 1, 1, 1], [1, 1], [1, 1, 0, 0], [1, 1], 3],
  ];
  for (const [xs, ws, st, pads, dil, group] of cases) {
    const x = rand(xs, r), w = rand(ws, r), b = rand([ws[0]!], r);
    const [y] = runOp('Conv', [x, w, b], { strides: st, pads, dilations: dil, group });
    const want = naiveConv2d(x, w, b, st, pads, dil, group);
    close(y!, want.shape, want.data, 1e-4);
  }
});

test('Conv float64 and float16 inputs', () => {
  const r = rng(4);
  const x = rand([1, 2, 5, 5], r), w = rand([3, 2, 3, 3], r);
  const want = naiveConv2d(x, w, undefined, [1, 1], [1, 1, 1, 1], [1, 1], 1);
  const [y64] = runOp('Conv', [Tensor.from('float64', x.shape, x.toNumbers()), Tensor.from('float64', w.shape, w.toNumbers())], { pads: [1, 1, 1, 1] });
  assert.equal(y64!.dtype, 'float64');
  close(y64!, want.shape, want.data, 1e-6);
  const [y16] = runOp('Conv', [Tensor.from('float16', x.shape, x.toNumbers()), Tensor.from('float16', w.shape, w.toNumbers())], { pads: [1, 1, 1, 1] });
  assert.equal(y16!.dtype, 'float16');
  close(y16!, want.shape, want.data, 1e-2);
});

test('Conv auto_pad SAME_UPPER / VALID output shapes and pads', () => {
  const r = rng(5);
  const x = rand([1, 1, 5, 6], r), w = rand([1, 1, 3, 2], r);
  const [same] = runOp('Conv', [x, w], { auto_pad: 'SAME_UPPER', strides: [2, 2] });
  // out = ceil(5/2) x ceil(6/2) = 3 x 3; total pads: rows (3-1)*2+3-5 = 2 -> 1,1; cols (3-1)*2+2-6 = 0.
  const want = naiveConv2d(x, w, undefined, [2, 2], [1, 0, 1, 0], [1, 1], 1);
  close(same!, [1, 1, 3, 3], want.data);
  const [valid] = runOp('Conv', [x, w], { auto_pad: 'VALID', pads: [5, 5, 5, 5] });
  close(valid!, [1, 1, 3, 5], naiveConv2d(x, w, undefined, [1, 1], [0, 0, 0, 0], [1, 1], 1).data);
});

test('Conv rejects bad inputs with Q8Error', () => {
  const x = sq([1, 4, 5, 5]), w = sq([6, 2, 3, 3]);
  assert.throws(() => runOp('Conv', [x, w], { group: 3 }), Q8Error);
  assert.throws(() => runOp('Conv', [x, w], {}), /input channels per group/);
  assert.throws(() => runOp('Conv', [x, w], { group: 2, kernel_shape: [2, 2] }), /kernel_shape/);
  assert.throws(() => runOp('Conv', [x, w], { group: 2, pads: [1, 1] }), /pads/);
  assert.throws(() => runOp('Conv', [sq([1, 4, 2, 2]), w], { group: 2 }), /smaller than the window/);
  assert.throws(() => runOp('Conv', [x, w, sq([5])], { group: 2 }), /bias/);
  assert.throws(() => runOp('Conv', [Tensor.from('int32', [1, 4, 5, 5], seq(100)), w], { group: 2 }), /float32/);
  assert.throws(() => runOp('Conv', [x, w], { group: 2, auto_pad: 'SAME' }), /auto_pad/);
});

test('ConvTranspose with groups, stride, dilation, pads, output_padding, bias (torch)', () => {
  const [y] = runOp('ConvTranspose', [sq([1, 4, 3, 2]), sq([4, 3, 2, 2], 29, 13, 6), sq([6], 7, 5, 2)],
    { group: 2, strides: [2, 2], pads: [1, 1, 1, 1], output_padding: [1, 1], dilations: [2, 2] });
  close(y!, [1, 6, 6, 4], [-0.5, -0.5, -0.5, -0.5, -0.5, -0.375, -0.5, -2.375, -0.5, -0.5, -0.5, -0.5, -0.5, -4.5, -0.5, -4.625, -0.5, -0.5, -0.5, -0.5, -0.5, -1.25, -0.5, 0.8125, 0, 0, 0, 0, 0, 1.625, 0, 0.125, 0, 0, 0, 0, 0, 4.25, 0, 1.25, 0, 0, 0, 0, 0, -2.25, 0, 0.375, 0.5, 0.5, 0.5, 0.5, 0.5, 3.625, 0.5, 1, 0.5, 0.5, 0.5, 0.5, 0.5, 3.25, 0.5, 0.625, 0.5, 0.5, 0.5, 0.5, 0.5, -3.25, 0.5, -0.0625, -0.25, -0.25, -0.25, -0.25, -0.25, 3.125, -0.25, 2.0625, -0.25, -0.25, -0.25, -0.25, -0.25, 1.5625, -0.25, -4.75, -0.25, -0.25, -0.25, -0.25, -0.25, -2.75, -0.25, 3.875, 0.25, 0.25, 0.25, 0.25, 0.25, -2.375, 0.25, 0.8125, 0.25, 0.25, 0.25, 0.25, 0.25, 4.9375, 0.25, -0.5, 0.25, 0.25, 0.25, 0.25, 0.25, -2.9375, 0.25, -0.375, -0.5, -0.5, -0.5, -0.5, -0.5, -2.625, -0.5, -0.0625, -0.5, -0.5, -0.5, -0.5, -0.5, 3.8125, -0.5, -0.75, -0.5, -0.5, -0.5, -0.5, -0.5, -3.5625, -0.5, -0.1875]);
});

test('ConvTranspose output_shape and SAME_UPPER derive the pads; 1-D works', () => {
  const x = sq([1, 1, 3]), w = f32([1, 1, 3], [1, 2, 4]);
  // Full output (no pads) is length 2*(3-1)+3 = 7: y[2i+k] += x[i]*w[k].
  const xs = x.toNumbers();
  const full = new Array(7).fill(0);
  for (let i = 0; i < 3; i++) for (let k = 0; k < 3; k++) full[2 * i + k] += xs[i]! * [1, 2, 4][k]!;
  close(runOp('ConvTranspose', [x, w], { strides: [2] })[0]!, [1, 1, 7], full);
  // output_shape 6: total pad 1, NOTSET puts the larger half first -> drop 1 at the start.
  close(runOp('ConvTranspose', [x, w], { strides: [2], output_shape: [6] })[0]!, [1, 1, 6], full.slice(1));
  // SAME_UPPER: output 3*2 = 6, pad 1 goes at the end.
  close(runOp('ConvTranspose', [x, w], { strides: [2], auto_pad: 'SAME_UPPER' })[0]!, [1, 1, 6], full.slice(0, 6));
  close(runOp('ConvTranspose', [x, w], { strides: [2], auto_pad: 'SAME_LOWER' })[0]!, [1, 1, 6], full.slice(1));
});

test('MaxPool ceil_mode, dilations, pads and the Indices output (torch)', () => {
  const x = f32([1, 2, 5, 7], seq(70, 31, 23, 11));
  const outs = runOpWithOutputs('MaxPool', [x], { kernel_shape: [2, 3], strides: [2, 2], pads: [1, 1, 1, 1], dilations: [2, 1], ceil_mode: 1 }, 2);
  close(outs[0]!, [1, 2, 3, 4], [1.75, 1.75, 2, 0.25, 1.75, 1.75, 2, 0.25, 1, 1, 1.25, -0.5, 2.75, 2.75, 1, 1.25, 2.75, 2.75, 2.25, 1.25, 2, 2, 2.25, 0.5]);
  assert.equal(outs[1]!.dtype, 'int64');
  assert.deepEqual(outs[1]!.toNumbers(), [8, 8, 11, 13, 8, 8, 11, 13, 22, 22, 25, 27, 43, 43, 45, 48, 43, 43, 60, 48, 57, 57, 60, 62]);
});

test('MaxPool storage_order 1 gives column-major indices; int8/uint8 inputs keep their dtype', () => {
  const x = f32([1, 1, 2, 3], [1, 9, 2, 7, 3, 8]);
  const outs = runOpWithOutputs('MaxPool', [x], { kernel_shape: [2, 2], storage_order: 1 }, 2);
  close(outs[0]!, [1, 1, 1, 2], [9, 9]);
  assert.deepEqual(outs[1]!.toNumbers(), [2, 2]); // (h=0,w=1) -> 0 + 1*2
  const outs0 = runOpWithOutputs('MaxPool', [x], { kernel_shape: [2, 2] }, 2);
  assert.deepEqual(outs0[1]!.toNumbers(), [1, 1]);
  const [y8] = runOp('MaxPool', [Tensor.from('int8', [1, 1, 2, 3], [-5, -9, 2, -7, -3, -8])], { kernel_shape: [2, 2] });
  assert.equal(y8!.dtype, 'int8');
  assert.deepEqual(y8!.toNumbers(), [-3, 2]);
  const [yu] = runOp('MaxPool', [Tensor.from('uint8', [1, 1, 2, 3], [5, 250, 2, 7, 3, 8])], { kernel_shape: [1, 2], strides: [1, 1] });
  assert.deepEqual(yu!.toNumbers(), [250, 250, 7, 8]);
});

test('MaxPool 3-D and 1-D against naive maxima', () => {
  const r = rng(6);
  const x = rand([1, 2, 4, 5, 3], r);
  const [y] = runOp('MaxPool', [x], { kernel_shape: [2, 3, 2], strides: [2, 1, 1], pads: [0, 1, 1, 0, 1, 0] });
  const v = x.toNumbers(), want: number[] = [];
  for (let c = 0; c < 2; c++) for (let a = 0; a < 2; a++) for (let b = 0; b < 5; b++) for (let d = 0; d < 3; d++) {
    let m = -Infinity;
    for (let i = 0; i < 2; i++) for (let j = 0; j < 3; j++) for (let k = 0; k < 2; k++) {
      const p = a * 2 + i, q = b - 1 + j, s = d - 1 + k;
      if (q >= 0 && q < 5 && s >= 0 && s < 3) m = Math.max(m, v[((c * 4 + p) * 5 + q) * 3 + s]!);
    }
    want.push(m);
  }
  close(y!, [1, 2, 2, 5, 3], want);
  const [y1] = runOp('MaxPool', [f32([1, 1, 5], [3, 1, 4, 1, 5])], { kernel_shape: [2], auto_pad: 'SAME_UPPER' });
  close(y1!, [1, 1, 5], [3, 4, 4, 5, 5]);
  // ceil_mode drops a last window that would start in the end padding: 3 windows by the formula, 2 kept.
  const [yc] = runOp('MaxPool', [f32([1, 1, 5], [3, 1, 4, 1, 5])], { kernel_shape: [3], strides: [3], pads: [1, 1], ceil_mode: 1 });
  close(yc!, [1, 1, 2], [3, 5]);
  const [ya] = runOp('AveragePool', [f32([1, 1, 5], [3, 1, 4, 1, 5])], { kernel_shape: [3], strides: [3], pads: [1, 1], ceil_mode: 1, count_include_pad: 1 });
  close(ya!, [1, 1, 2], [4 / 3, 10 / 3]);
});

test('AveragePool ceil_mode with and without count_include_pad (torch)', () => {
  const x = f32([1, 1, 5, 6], seq(30, 31, 23, 11));
  const a = { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1], ceil_mode: 1 };
  close(runOp('AveragePool', [x], { ...a, count_include_pad: 1 })[0]!, [1, 1, 3, 4],
    [-0.666667, -0.277778, -0.166667, 0.583333, -0.5, 0.333333, -0.138889, 0.291667, 0, 0.0833333, -0.444444, -0.833333]);
  close(runOp('AveragePool', [x], a)[0]!, [1, 1, 3, 4],
    [-1.5, -0.416667, -0.25, 1.75, -0.75, 0.333333, -0.138889, 0.583333, 0, 0.125, -0.666667, -2.5]);
});

test('AveragePool dilations (opset 19) and SAME_LOWER', () => {
  const x = f32([1, 1, 1, 6], [1, 2, 4, 8, 16, 32]);
  // Taps 0 and 2 of each window.
  close(runOp('AveragePool', [x], { kernel_shape: [1, 2], dilations: [1, 2] }, 19)[0]!, [1, 1, 1, 4], [2.5, 5, 10, 20]);
  // SAME_LOWER, k=2: one pad at the start, excluded from the count.
  close(runOp('AveragePool', [x], { kernel_shape: [1, 2], auto_pad: 'SAME_LOWER' })[0]!, [1, 1, 1, 6], [1, 1.5, 3, 6, 12, 24]);
  close(runOp('AveragePool', [x], { kernel_shape: [1, 2], auto_pad: 'SAME_LOWER', count_include_pad: 1 })[0]!, [1, 1, 1, 6], [0.5, 1.5, 3, 6, 12, 24]);
});

test('GlobalAveragePool and GlobalMaxPool keep rank', () => {
  const x = f32([2, 2, 1, 3], [1, 2, 6, -1, -2, -6, 0, 5, 1, 3, 3, 3]);
  close(runOp('GlobalAveragePool', [x])[0]!, [2, 2, 1, 1], [3, -3, 2, 3]);
  close(runOp('GlobalMaxPool', [x])[0]!, [2, 2, 1, 1], [6, -1, 5, 3]);
  close(runOp('GlobalAveragePool', [f32([1, 2, 4], [1, 2, 3, 4, 5, 6, 7, 9])])[0]!, [1, 2, 1], [2.5, 6.75]);
  assert.throws(() => runOp('GlobalAveragePool', [f32([2, 3], seq(6))]), /rank >= 3/);
});

test('Gemm transA, transB, alpha, beta and a [M,1] C (torch)', () => {
  const [y] = runOp('Gemm', [sq([4, 3]), sq([5, 4], 29, 13, 6), sq([3, 1], 7, 5, 2)],
    { transA: 1, transB: 1, alpha: 0.5, beta: { type: 'float', value: 2 } });
  close(y!, [3, 5], [0.59375, -2.28125, -1.90625, -1.53125, -0.75, 1.03125, -1, -1, -1, 0.625, 1.46875, 0.28125, -0.09375, -0.46875, 2]);
});

test('Gemm C broadcasting, optional C, legacy broadcast attribute, integer types', () => {
  const A = f32([2, 3], [1, 2, 3, 4, 5, 6]), B = f32([3, 2], [1, -1, 0, 2, 3, 1]);
  // A·B = [[10, 6], [22, 12]]
  close(runOp('Gemm', [A, B])[0]!, [2, 2], [10, 6, 22, 12]);
  close(runOp('Gemm', [A, B, f32([2], [1, -1])])[0]!, [2, 2], [11, 5, 23, 11]);
  close(runOp('Gemm', [A, B, f32([], [3])])[0]!, [2, 2], [13, 9, 25, 15]);
  close(runOp('Gemm', [A, B, f32([2], [1, -1])], { broadcast: 1 }, 6)[0]!, [2, 2], [11, 5, 23, 11]);
  assert.throws(() => runOp('Gemm', [A, B, f32([2], [1, -1])], {}, 6), /broadcast=0/);
  assert.throws(() => runOp('Gemm', [A, B], {}, 9), /needs input C/);
  assert.throws(() => runOp('Gemm', [A, A]), /inner dimensions/);
  assert.throws(() => runOp('Gemm', [A, B, f32([3], [1, 2, 3])]), /does not broadcast/);
  const [yi] = runOp('Gemm', [Tensor.from('int32', [2, 3], [1, 2, 3, 4, 5, 6]), Tensor.from('int32', [3, 2], [1, -1, 0, 2, 3, 1]),
    Tensor.from('int32', [1], [100])]);
  assert.equal(yi!.dtype, 'int32');
  assert.deepEqual(yi!.toNumbers(), [110, 106, 122, 112]);
  const [yl] = runOp('Gemm', [Tensor.from('int64', [1, 2], [2n ** 40n, 3n]), Tensor.from('int64', [2, 1], [2n ** 20n, 5n])], { beta: 0 });
  assert.deepEqual([...(yl!.data as BigInt64Array)], [2n ** 60n + 15n]);
});

test('MatMul N-D broadcast and 1-D operands (torch)', () => {
  const A = sq([2, 1, 3, 4]), B = sq([3, 4, 2], 29, 13, 6), v = sq([4], 7, 5, 2);
  close(runOp('MatMul', [A, B])[0]!, [2, 3, 3, 2], [2.1875, 1.1875, -3.875, 1.8125, 1.75, 0.3125, -2.5625, 2.9375, -0.625, 1.8125, -0.8125, -1.4375, -0.8125, -3.4375, -0.625, -0.625, -2.5625, 0.0625, 2.0625, 0.9375, -4, -1.625, 2.6875, -2.0625, -2.0625, 1.6875, 2, -0.5, 2.875, -2.6875, -1.3125, -2.4375, 3.125, 1.4375, 2.25, 3.1875]);
  close(runOp('MatMul', [A, v])[0]!, [2, 1, 3], [0.6875, -1.125, 0.25, 0.5625, -1.25, 1.1875]);
  close(runOp('MatMul', [v, B])[0]!, [3, 2], [1.5625, -0.25, 0.0625, -0.125, 0.1875, 0]);
  close(runOp('MatMul', [v, v])[0]!, [], [v.toNumbers().reduce((s, x) => s + x * x, 0)]);
  assert.throws(() => runOp('MatMul', [A, sq([3, 3, 2])]), /inner dimensions/);
  assert.throws(() => runOp('MatMul', [sq([2, 3, 4]), sq([3, 4, 2])]), /broadcast/);
});

test('MatMul large float32 (blocked path) and integer types wrap like C', () => {
  const r = rng(7);
  const A = rand([2, 37, 70], r), B = rand([70, 45], r);
  const [y] = runOp('MatMul', [A, B]);
  const a = A.toNumbers(), b = B.toNumbers(), want: number[] = [];
  for (let i = 0; i < 74; i++) for (let j = 0; j < 45; j++) { let s = 0; for (let k = 0; k < 70; k++) s += a[i * 70 + k]! * b[k * 45 + j]!; want.push(s); }
  close(y!, [2, 37, 45], want, 1e-5);
  const [yi] = runOp('MatMul', [Tensor.from('int32', [1, 2], [65536, 3]), Tensor.from('int32', [2, 1], [65536, -4])]);
  assert.deepEqual(yi!.toNumbers(), [-12]); // 2^32 wraps to 0
  const [yu] = runOp('MatMul', [Tensor.from('uint8', [1, 2], [200, 3]), Tensor.from('uint8', [2, 1], [2, 1])]);
  assert.deepEqual(yu!.toNumbers(), [(403) % 256]);
  const [yl] = runOp('MatMul', [Tensor.from('int64', [2], [3n, 2n ** 62n]), Tensor.from('int64', [2, 1], [5n, 4n])]);
  assert.deepEqual([...(yl!.data as BigInt64Array)], [15n]); // 2^64 wraps to 0
  const [y64] = runOp('MatMul', [Tensor.from('float64', [1, 2], [0.1, 0.2]), Tensor.from('float64', [2], [3, 4])]);
  assert.equal(y64!.dtype, 'float64');
  assert.equal(y64!.num(0), 0.1 * 3 + 0.2 * 4);
});

/** runOp only declares one output; MaxPool's Indices needs the node to name two. */
function runOpWithOutputs(op: string, inputs: Tensor[], attrs: Record<string, unknown>, nOut: number, opset = 21): Tensor[] {
  return runOpN(op, inputs, attrs, nOut, opset);
}
import { getOp } from '../../src/ops/registry.js';
import { attrsFrom, invokeKernel, makeContext } from '../../src/runtime/invoke.js';
function runOpN(op: string, inputs: Tensor[], attrs: Record<string, unknown>, nOut: number, opset: number): Tensor[] {
  const schema = getOp('', op)!;
  const node = { name: op, opType: op, domain: '', inputs: inputs.map((_, i) => `in${i}`), outputs: Array.from({ length: nOut }, (_, i) => `out${i}`), attrs: attrsFrom(attrs) };
  return invokeKernel(schema, schema.run, inputs, makeContext(node, opset));
}

test('NonMaxSuppression: IoU suppression, score threshold, limits, flipped corners, center boxes, batches and classes', () => {
  // Unit boxes along x; IoU of boxes shifted by 0.1 is 0.9/1.1 ≈ 0.82, far ones do not overlap.
  const corners = [[0, 0, 1, 1], [0, 0.1, 1, 1.1], [1, 0.9, 0, -0.1], [0, 10, 1, 11], [0, 10.1, 1, 11.1], [0, 100, 1, 101]];
  const scores = [0.9, 0.75, 0.6, 0.95, 0.5, 0.3];
  const boxes = f32([1, 6, 4], corners.flat());
  const sc = f32([1, 1, 6], scores);
  const i64 = (v: number) => Tensor.from('int64', [1], [BigInt(v)]);
  const sel = (t: Tensor) => { assert.equal(t.dtype, 'int64'); assert.equal(t.shape[1], 3); return t.toNumbers(); };
  const nms = (extra: (Tensor | undefined)[], attrs: Record<string, unknown> = {}, b = boxes, s = sc) =>
    sel(runOp('NonMaxSuppression', [b, s, ...extra], attrs)[0]!);
  assert.deepEqual(nms([i64(10), f32([1], [0.5])]), [0, 0, 3, 0, 0, 0, 0, 0, 5]);
  assert.deepEqual(nms([i64(2), f32([1], [0.5])]), [0, 0, 3, 0, 0, 0]);
  assert.deepEqual(nms([i64(10), f32([1], [0.5]), f32([1], [0.3])]), [0, 0, 3, 0, 0, 0]); // strictly above
  assert.deepEqual(nms([i64(3), f32([1], [0.9])]), [0, 0, 3, 0, 0, 0, 0, 0, 1]);
  assert.deepEqual(nms([]), []); // max_output_boxes_per_class defaults to 0
  // Center format: (xc, yc, w, h) of the same boxes.
  const centers = corners.map(([y1, x1, y2, x2]) => [(x1! + x2!) / 2, (y1! + y2!) / 2, Math.abs(x2! - x1!), Math.abs(y2! - y1!)]);
  assert.deepEqual(nms([i64(10), f32([1], [0.5])], { center_point_box: 1 }, f32([1, 6, 4], centers.flat())), [0, 0, 3, 0, 0, 0, 0, 0, 5]);
  // Two batches × two classes: grouped by batch, then class.
  const b2 = f32([2, 6, 4], [...corners.flat(), ...corners.flat()]);
  const s2 = f32([2, 2, 6], [...scores, ...scores.map((x) => 1 - x), ...scores.map((x, i) => (i === 5 ? 0.99 : x)), ...scores]);
  assert.deepEqual(nms([i64(1), f32([1], [0.5])], {}, b2, s2), [0, 0, 3, 0, 1, 5, 1, 0, 5, 1, 1, 3]);
  assert.throws(() => runOp('NonMaxSuppression', [boxes, f32([1, 1, 5], scores.slice(0, 5))]), /scores/);
  assert.throws(() => runOp('NonMaxSuppression', [boxes, sc, i64(1), f32([1], [1.5])]), /iou_threshold/);
});

test('ConvTranspose 2-D and 3-D agree with a naive scatter (groups, strides, dilations, pads)', () => {
  const r = rng(8);
  // x [1, C, ...in], w [C, Mg, ...k]; y[m, o] += x[c, i] * w[c, m, k] at o = i*s - pad + k*d.
  const cases: [number[], number[], number[], number[], number[], number][] = [
    [[1, 4, 3, 5], [4, 3, 3, 2], [2, 3], [1, 0, 0, 2], [1, 2], 2],
    [[1, 2, 2, 3, 2], [2, 2, 2, 2, 3], [2, 1, 2], [0, 1, 1, 1, 0, 0], [1, 2, 1], 1],
  ];
  for (const [xs, ws, st, pads, dil, group] of cases) {
    const nd = xs.length - 2;
    const x = rand(xs, r), w = rand(ws, r);
    const [y] = runOp('ConvTranspose', [x, w], { strides: st, pads, dilations: dil, group });
    const C = xs[1]!, Cg = C / group, Mg = ws[1]!, M = Mg * group;
    const inD = xs.slice(2), kD = ws.slice(2);
    const outD = inD.map((n, d) => st[d]! * (n - 1) + (kD[d]! - 1) * dil[d]! + 1 - pads[d]! - pads[nd + d]!);
    const want = new Array<number>(M * size(outD)).fill(0);
    const xv = x.toNumbers(), wv = w.toNumbers();
    const unflat = (i: number, dims: number[]) => dims.map((_, d) => Math.floor(i / size(dims.slice(d + 1))) % dims[d]!);
    for (let c = 0; c < C; c++) for (let i = 0; i < size(inD); i++) for (let m = 0; m < Mg; m++) for (let k = 0; k < size(kD); k++) {
      const ii = unflat(i, inD), kk = unflat(k, kD);
      const o = ii.map((v, d) => v * st[d]! - pads[d]! + kk[d]! * dil[d]!);
      if (o.some((v, d) => v < 0 || v >= outD[d]!)) continue;
      const oi = o.reduce((a, v, d) => a * outD[d]! + v, 0);
      const mo = Math.floor(c / Cg) * Mg + m;
      want[mo * size(outD) + oi] += xv[c * size(inD) + i]! * wv[(c * Mg + m) * size(kD) + k]!;
    }
    close(y!, [1, M, ...outD], want, 1e-5);
  }
});

test('NonMaxSuppression on many random boxes equals an all-pairs greedy selection', () => {
  const r = rng(9);
  const n = 1500;
  const b: number[] = [], s: number[] = [];
  for (let i = 0; i < n; i++) {
    const big = i % 97 === 0; // a few boxes wider than the grid cell limit
    const y = (r() + 0.5) * 200, x = (r() + 0.5) * 200, h = big ? 400 : (r() + 0.5) * 30, w = big ? 300 : (r() + 0.5) * 30;
    if (i % 50 === 1) b.push(y, x, y, x + w); // zero-area box: never suppresses, never suppressed
    else b.push(y, x, y + h, x + w);
    s.push(Math.round((r() + 0.5) * 100) / 100); // ties exercise the index order
  }
  for (let i = 0; i < b.length; i++) b[i] = Math.fround(b[i]!); // the kernel sees float32 corners
  const [sel] = runOp('NonMaxSuppression', [f32([1, n, 4], b), f32([1, 1, n], s), Tensor.from('int64', [1], [100000n]), f32([1], [0.3])]);
  const area = (i: number) => (b[i * 4 + 2]! - b[i * 4]!) * (b[i * 4 + 3]! - b[i * 4 + 1]!);
  const iou = (i: number, j: number) => {
    const ih = Math.min(b[i * 4 + 2]!, b[j * 4 + 2]!) - Math.max(b[i * 4]!, b[j * 4]!);
    const iw = Math.min(b[i * 4 + 3]!, b[j * 4 + 3]!) - Math.max(b[i * 4 + 1]!, b[j * 4 + 1]!);
    if (ih <= 0 || iw <= 0 || area(i) <= 0 || area(j) <= 0) return 0;
    return (ih * iw) / (area(i) + area(j) - ih * iw);
  };
  const order = [...Array(n).keys()].sort((p, q) => Math.fround(s[q]!) - Math.fround(s[p]!) || p - q);
  const kept: number[] = [];
  for (const i of order) if (!kept.some((k) => iou(i, k) > 0.3)) kept.push(i);
  assert.ok(kept.length > 100 && kept.length < n - 100);
  assert.deepEqual(sel!.toNumbers().filter((_, i) => i % 3 === 2), kept);
});

test('pools and matrix ops reject bad inputs with Q8Error', () => {
  const x = sq([1, 2, 4, 4]);
  assert.throws(() => runOp('MaxPool', [x], {}), /kernel_shape/);
  assert.throws(() => runOp('MaxPool', [x], { kernel_shape: [2] }), /kernel_shape/);
  assert.throws(() => runOp('MaxPool', [x], { kernel_shape: [2, 2], strides: [0, 1] }), /strides/);
  assert.throws(() => runOp('MaxPool', [x], { kernel_shape: [2, 2], storage_order: 2 }), /storage_order/);
  assert.throws(() => runOp('MaxPool', [x], { kernel_shape: [5, 5] }), /smaller than the window/);
  assert.throws(() => runOp('AveragePool', [Tensor.from('int32', [1, 1, 2, 2], [1, 2, 3, 4])], { kernel_shape: [2, 2] }), /dtype int32/);
  assert.throws(() => runOp('MaxPool', [Tensor.from('int64', [1, 1, 2, 2], [1n, 2n, 3n, 4n])], { kernel_shape: [2, 2] }), /dtype int64/);
  assert.throws(() => runOp('Gemm', [sq([2, 3]), Tensor.from('float64', [3, 2], seq(6))]), /same dtype/);
  assert.throws(() => runOp('Gemm', [sq([2, 3, 1]), sq([3, 2])]), /2-D/);
  assert.throws(() => runOp('MatMul', [Tensor.from('bool', [2, 2], [1, 0, 1, 1]), Tensor.from('bool', [2, 2], [1, 0, 1, 1])]), /dtype bool/);
  for (const bad of [() => runOp('MaxPool', [x], {}), () => runOp('MatMul', [sq([2, 3]), sq([2, 3])])]) {
    assert.throws(bad, (e: unknown) => e instanceof Q8Error && /node 'MaxPool'|node 'MatMul'/.test((e as Error).message));
  }
});

test('Conv 1-D (depthwise and grouped) equals the 2-D computation with a unit height', () => {
  const r = rng(10);
  for (const [C, M, group, k] of [[4, 8, 4, 3], [6, 4, 2, 2]] as const) {
    const x = rand([2, C, 9], r), w = rand([M, C / group, k], r), b = rand([M], r);
    const [y] = runOp('Conv', [x, w, b], { group, strides: [2], pads: [1, 2], dilations: [2] });
    const want = naiveConv2d(x.reshape([2, C, 1, 9]), w.reshape([M, C / group, 1, k]), b, [1, 2], [0, 1, 0, 2], [1, 2], group);
    close(y!, [want.shape[0]!, want.shape[1]!, want.shape[3]!], want.data, 1e-5);
  }
});

test('pool windows are bounded by the input, not by kernel_shape (huge kernels stay fast)', () => {
  const x = f32([1, 1, 3, 1], [3, 6, 9]);
  const k = 1e6;
  // Window o covers rows [o - k + 1, o]: the running mean/max of the input.
  const t0 = Date.now();
  close(runOp('AveragePool', [x], { kernel_shape: [k, 1], pads: [k - 1, 0, 0, 0] })[0]!, [1, 1, 3, 1], [3, 4.5, 6]);
  close(runOp('MaxPool', [x], { kernel_shape: [k, 1], pads: [k - 1, 0, 0, 0] })[0]!, [1, 1, 3, 1], [3, 6, 9]);
  close(runOp('AveragePool', [x], { kernel_shape: [k, 1], pads: [k - 1, 0, 0, 0], count_include_pad: 1 })[0]!, [1, 1, 3, 1], [3 / k, 9 / k, 18 / k]);
  assert.ok(Date.now() - t0 < 1000);
});
