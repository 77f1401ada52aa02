/**
 * Q8Gemm / Q8Conv reference kernels: (1) against a naive, independent emulation of the contract
 * (int8 windows, integer block dots, float32 combination) — tight; (2) against the fp32 operators —
 * within the quantization error budget. Random shapes, odd sizes, every window pairing.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import '../../src/ops/index.js';
import '../../src/quant/register.js';
import { runOp } from '../../src/runtime/invoke.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { cosine, quantType, quantizeWindow } from '../../src/quant/types.js';
import { randomArray, rng } from './util.js';

const f = Math.fround;

/** The contract, written out plainly: rows [P, K] · weights [N, K] → [P, N]. */
function emulate(rows: Float32Array, P: number, K: number, wq: Int8Array, ws: Float32Array, N: number, wb: number, ab: number, bias?: Float32Array): Float64Array {
  const Ba = ab || K, Bw = wb || K, cb = Math.min(Ba, Bw);
  const nbA = Math.ceil(K / Ba), nbW = Math.ceil(K / Bw);
  const qa = new Int8Array(P * K), sa = new Float32Array(P * nbA);
  for (let p = 0; p < P; p++) for (let b = 0; b < nbA; b++) sa[p * nbA + b] = quantizeWindow(rows, p * K + b * Ba, Math.min(Ba, K - b * Ba), qa, p * K + b * Ba);
  const out = new Float64Array(P * N);
  for (let p = 0; p < P; p++) {
    for (let n = 0; n < N; n++) {
      let acc = 0;
      for (let k0 = 0; k0 < K; k0 += cb) {
        let dot = 0;
        for (let k = k0; k < Math.min(K, k0 + cb); k++) dot += qa[p * K + k]! * wq[n * K + k]!;
        assert.ok(Math.abs(dot) < 2 ** 31, 'int32 accumulation');
        acc = f(acc + f(f(sa[p * nbA + Math.floor(k0 / Ba)]! * ws[n * nbW + Math.floor(k0 / Bw)]!) * dot));
      }
      out[p * N + n] = bias ? f(acc + bias[n]!) : acc;
    }
  }
  return out;
}

function assertClose(got: ArrayLike<number>, want: ArrayLike<number>, rel: number, label: string): void {
  assert.equal(got.length, want.length, `${label}: length`);
  let scale = 0;
  for (let i = 0; i < want.length; i++) scale = Math.max(scale, Math.abs(want[i]!));
  for (let i = 0; i < want.length; i++) {
    assert.ok(Math.abs(got[i]! - want[i]!) <= rel * scale + 1e-30, `${label}: [${i}] got ${got[i]}, want ${want[i]} (scale ${scale})`);
  }
}

const WINDOWS: [number, number][] = [[0, 0], [32, 0], [64, 32], [0, 64], [128, 128], [256, 32], [32, 256]];

test('Q8Gemm equals the contract emulation and tracks fp32 Gemm (odd sizes, all window pairings, > 1024 K)', () => {
  const r = rng(21);
  for (const [rowsShape, N, K] of [[[1], 1, 1], [[3], 5, 7], [[2, 3], 17, 33], [[4], 9, 300], [[2], 3, 1030], [[1], 64, 2500]] as [number[], number, number][]) {
    const P = rowsShape.reduce((a, b) => a * b, 1);
    const a = randomArray(r, P * K);
    const w = randomArray(r, N * K, 0.1);
    const bias = randomArray(r, N);
    const fp = runOp('Gemm', [Tensor.from('float32', [P, K], a), Tensor.from('float32', [N, K], w), Tensor.from('float32', [N], bias)], { transB: 1 })[0]!;
    for (const [wb, ab] of WINDOWS) {
      const qw = quantType(wb === 0 ? 'channel' : wb).quantize(w, N, K);
      const scales = Tensor.from('float32', wb ? [N, Math.ceil(K / wb)] : [N], qw.scales);
      const [y] = runOp('Q8Gemm', [Tensor.from('float32', [...rowsShape, K], a), Tensor.from('int8', [N, K], qw.q), scales, Tensor.from('float32', [N], bias)],
        { weight_block: wb, act_block: ab }, 1, 'q8');
      const label = `Gemm P=${P} N=${N} K=${K} wb=${wb} ab=${ab}`;
      assert.deepEqual(y!.shape, [...rowsShape, N], label);
      assertClose(y!.data as Float32Array, emulate(a, P, K, qw.q, qw.scales, N, wb, ab, bias), 2e-6, `${label} vs contract`);
      const c = cosine(fp.data as Float32Array, y!.data as Float32Array);
      assert.ok(c > 0.9995, `${label}: cosine vs fp32 ${c}`);
      // Quantization error budget: each product errs by at most |a||w|·(1/254 + 1/254) (+ rounding).
      const yd = y!.data as Float32Array, fd = fp.data as Float32Array;
      for (let p = 0; p < P; p++) for (let n = 0; n < N; n++) {
        let bound = 1e-5;
        for (let k = 0; k < K; k++) bound += Math.abs(a[p * K + k]! * w[n * K + k]!) * (2 / 254 + 1e-6);
        assert.ok(Math.abs(yd[p * N + n]! - fd[p * N + n]!) <= bound, `${label}: error over budget at [${p},${n}]`);
      }
    }
  }
});

test('Q8Gemm fuses Relu and Clip, and handles a missing bias', () => {
  const r = rng(4);
  const P = 6, N = 5, K = 40;
  const a = randomArray(r, P * K), w = randomArray(r, N * K);
  const qw = quantType('channel').quantize(w, N, K);
  const ins = [Tensor.from('float32', [P, K], a), Tensor.from('int8', [N, K], qw.q), Tensor.from('float32', [N], qw.scales)];
  const [plain] = runOp('Q8Gemm', ins, {}, 1, 'q8');
  const [relu] = runOp('Q8Gemm', ins, { activation: 'Relu' }, 1, 'q8');
  const [clip] = runOp('Q8Gemm', ins, { activation: 'Clip', clip_min: { type: 'float', value: -1 }, clip_max: { type: 'float', value: 0.5 } }, 1, 'q8');
  const pd = plain!.data as Float32Array;
  assert.ok(pd.some((v) => v < -1) && pd.some((v) => v > 0.5), 'test data should exercise both bounds');
  assert.deepEqual([...(relu!.data as Float32Array)], [...pd].map((v) => Math.max(0, v)));
  assert.deepEqual([...(clip!.data as Float32Array)], [...pd].map((v) => Math.min(0.5, Math.max(-1, v))));
  assertClose(pd, emulate(a, P, K, qw.q, qw.scales, N, 0, 0), 2e-6, 'no bias');
});

interface ConvCase { x: number[]; w: number[]; attrs: Record<string, unknown>; label: string }

const CONV_CASES: ConvCase[] = [
  { label: '2-D plain', x: [1, 3, 7, 9], w: [4, 3, 3, 3], attrs: {} },
  { label: '2-D strided padded', x: [2, 5, 11, 8], w: [6, 5, 3, 3], attrs: { strides: [2, 2], pads: [1, 1, 1, 1] } },
  { label: '2-D dilated asymmetric pads', x: [1, 4, 10, 10], w: [3, 4, 3, 2], attrs: { dilations: [2, 1], pads: [2, 0, 1, 1] } },
  { label: '2-D grouped', x: [1, 6, 9, 7], w: [4, 3, 3, 3], attrs: { group: 2, pads: [1, 1, 1, 1] } },
  { label: 'depthwise', x: [2, 8, 9, 9], w: [8, 1, 3, 3], attrs: { group: 8, pads: [1, 1, 1, 1], strides: [2, 2] } },
  { label: 'depthwise multiplier 2', x: [1, 3, 6, 6], w: [6, 1, 3, 3], attrs: { group: 3, pads: [1, 1, 1, 1] } },
  { label: 'pointwise', x: [1, 37, 5, 5], w: [11, 37, 1, 1], attrs: {} },
  { label: 'SAME_UPPER', x: [1, 2, 8, 7], w: [3, 2, 4, 4], attrs: { auto_pad: 'SAME_UPPER', strides: [2, 2] } },
  { label: '1-D', x: [2, 5, 30], w: [7, 5, 5], attrs: { pads: [2, 2], strides: [3] } },
  { label: '1-D dilated', x: [1, 4, 25], w: [2, 4, 3], attrs: { dilations: [4] } },
  { label: 'big K', x: [1, 130, 5, 5], w: [4, 130, 3, 3], attrs: { pads: [1, 1, 1, 1] } },
];

/** Patches of the conv, plainly: [P, K] rows per group, k = (c*kh + ky)*kw + kx. */
function patches(x: Float32Array, xs: number[], ws: number[], group: number, gi: number, n: number, oh: number, ow: number,
  st: number[], dl: number[], pb: number[]): Float32Array {
  const [, C, H, W] = xs.length === 4 ? xs : [xs[0]!, xs[1]!, 1, xs[2]!];
  const [, Cg, kh, kw] = ws.length === 4 ? ws : [ws[0]!, ws[1]!, 1, ws[2]!];
  const K = Cg! * kh! * kw!;
  const out = new Float32Array(oh * ow * K);
  for (let oy = 0; oy < oh; oy++) for (let ox = 0; ox < ow; ox++) {
    const p = oy * ow + ox;
    for (let c = 0; c < Cg!; c++) for (let ky = 0; ky < kh!; ky++) for (let kx = 0; kx < kw!; kx++) {
      const iy = oy * st[0]! - pb[0]! + ky * dl[0]!, ix = ox * st[1]! - pb[1]! + kx * dl[1]!;
      const inside = iy >= 0 && iy < H! && ix >= 0 && ix < W!;
      out[p * K + (c * kh! + ky) * kw! + kx] = inside ? x[((n * C! + gi * Cg! + c) * H! + iy) * W! + ix]! : 0;
    }
  }
  return out;
}

test('Q8Conv equals the contract emulation on explicit patches and tracks fp32 Conv (1-D/2-D, strided, padded, dilated, grouped, depthwise)', () => {
  const r = rng(33);
  for (const c of CONV_CASES) {
    const x = randomArray(r, c.x.reduce((a, b) => a * b, 1));
    const w = randomArray(r, c.w.reduce((a, b) => a * b, 1), 0.2);
    const M = c.w[0]!, K = w.length / M;
    const bias = randomArray(r, M);
    const [fp] = runOp('Conv', [Tensor.from('float32', c.x, x), Tensor.from('float32', c.w, w), Tensor.from('float32', [M], bias)], c.attrs);
    for (const [wb, ab] of [[0, 0], [32, 32], [0, 32], [64, 0]] as [number, number][]) {
      const qw = quantType(wb === 0 ? 'channel' : wb).quantize(w, M, K);
      const scales = Tensor.from('float32', wb ? [M, Math.ceil(K / wb)] : [M], qw.scales);
      const [y] = runOp('Q8Conv', [Tensor.from('float32', c.x, x), Tensor.from('int8', c.w, qw.q), scales, Tensor.from('float32', [M], bias)],
        { ...c.attrs, weight_block: wb, act_block: ab }, 1, 'q8');
      const label = `${c.label} wb=${wb} ab=${ab}`;
      assert.deepEqual(y!.shape, fp!.shape, label);
      const cs = cosine(fp!.data as Float32Array, y!.data as Float32Array);
      assert.ok(cs > 0.999, `${label}: cosine vs fp32 ${cs}`);
      // Exact emulation from explicit patches (output geometry taken from fp32 Conv's output).
      const nd = c.x.length - 2;
      const oh = nd === 2 ? fp!.shape[2]! : 1, ow = fp!.shape[nd === 2 ? 3 : 2]!;
      const a = c.attrs as { strides?: number[]; dilations?: number[]; pads?: number[]; group?: number; auto_pad?: string };
      const st = nd === 2 ? a.strides ?? [1, 1] : [1, a.strides?.[0] ?? 1];
      const dl = nd === 2 ? a.dilations ?? [1, 1] : [1, a.dilations?.[0] ?? 1];
      let pb = nd === 2 ? [a.pads?.[0] ?? 0, a.pads?.[1] ?? 0] : [0, a.pads?.[0] ?? 0];
      if (a.auto_pad === 'SAME_UPPER') pb = [0, 1].map((d) => Math.floor(Math.max(0, (([oh, ow][d]! - 1) * st[d]! + c.w[2 + d]! - c.x[2 + d]!)) / 2));
      const group = a.group ?? 1, Mg = M / group, P = oh * ow;
      const yd = y!.data as Float32Array;
      for (let n = 0; n < c.x[0]!; n++) for (let gi = 0; gi < group; gi++) {
        const rows = patches(x, c.x, c.w, group, gi, n, oh, ow, st, dl, pb);
        const nbW = qw.scales.length / M;
        const want = emulate(rows, P, K, qw.q.subarray(gi * Mg * K, (gi + 1) * Mg * K), qw.scales.subarray(gi * Mg * nbW, (gi + 1) * Mg * nbW), Mg, wb, ab, bias.subarray(gi * Mg));
        const got = new Float64Array(P * Mg);
        for (let m = 0; m < Mg; m++) for (let p = 0; p < P; p++) got[p * Mg + m] = yd[(n * M + gi * Mg + m) * P + p]!;
        assertClose(got, want, 2e-6, `${label} n=${n} g=${gi} vs contract`);
      }
    }
  }
});

test('Q8Conv rejects malformed inputs with clear errors', () => {
  const x = Tensor.from('float32', [1, 4, 5, 5], randomArray(rng(1), 100));
  const wq = Tensor.from('int8', [2, 4, 3, 3], new Int8Array(72).map((_, i) => (i % 7) - 3));
  assert.throws(() => runOp('Q8Conv', [x, wq, Tensor.from('float32', [3], [1, 1, 1])], {}, 1, 'q8'), /scales should be float32 with 2x1/);
  assert.throws(() => runOp('Q8Conv', [x, wq, Tensor.from('float32', [2], [1, 1])], { group: 3 }, 1, 'q8'), /does not fit 4 input channels/);
  assert.throws(() => runOp('Q8Gemm', [Tensor.from('float32', [2, 5], new Float32Array(10)), Tensor.from('int8', [3, 4], new Int8Array(12)), Tensor.from('float32', [3], [1, 1, 1])], {}, 1, 'q8'), /should end in K = 4/);
});
