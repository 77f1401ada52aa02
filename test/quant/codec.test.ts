/**
 * The quantized-type table and its reference codecs, held to named error budgets on random, all-zero,
 * tiny, ±max, outlier and NaN windows.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Q8Error } from '../../src/core/errors.js';
import { QUANT_TYPES, quantType, quantizeWindow, serializeWindows, sqnrDb } from '../../src/quant/types.js';
import { roundHalfEven } from '../../src/quant/round.js';
import { rng } from './util.js';

/** Error budgets, named so a failure says which promise broke. */
const BUDGET = {
  /** Round-to-nearest: |x - deq(q(x))| ≤ scale/2, plus float32 slack on the scale and product. */
  halfStep: (scale: number) => scale * 0.5 * (1 + 2 ** -18) + 1e-45,
  /** Uniform windows: theory gives 10·log10(4·127²) = 48.1 dB; allow for short windows. */
  uniformSqnrDb: 44,
  /** Gaussian windows of ≥ 64 values (amax ≈ 2.5–4σ): ≥ 38 dB. */
  gaussianSqnrDb: 36,
};

const f = Math.fround;

function roundTrip(x: Float32Array, block: 0 | 32 | 64 | 128 | 256, N: number, K: number) {
  const t = quantType(block === 0 ? 'channel' : block);
  const qw = t.quantize(x, N, K);
  return { qw, y: t.dequantize(qw), t };
}

function checkHalfStep(x: Float32Array, N: number, K: number, block: 0 | 32 | 64 | 128 | 256, label: string): void {
  const { qw, y } = roundTrip(x, block, N, K);
  const B = block || K;
  const nb = Math.ceil(K / B);
  for (let n = 0; n < N; n++) {
    for (let k = 0; k < K; k++) {
      const s = qw.scales[n * nb + Math.floor(k / B)]!;
      const i = n * K + k;
      assert.ok(Math.abs(x[i]! - y[i]!) <= BUDGET.halfStep(s), `${label}: halfStep budget broken at [${n},${k}]: x=${x[i]} y=${y[i]} scale=${s}`);
      assert.ok(qw.q[i]! >= -127 && qw.q[i]! <= 127, `${label}: q out of [-127,127]`);
      assert.ok(Number.isFinite(y[i]!), `${label}: non-finite reconstruction`);
    }
  }
}

test('the table has one row per type with its byte count and pairing', () => {
  assert.deepEqual(QUANT_TYPES.map((t) => t.name), ['q8_channel', 'q8_b32', 'q8_b64', 'q8_b128', 'q8_b256']);
  for (const t of QUANT_TYPES) {
    const B = t.weightBlock || 1000;
    assert.equal(t.bytes(3, 1000), 3 * 1000 + 4 * 3 * Math.ceil(1000 / B));
    assert.equal(t.windowBytes(17), 21);
    assert.equal(t.activationPairing, t.weightBlock);
  }
});

test('serialized byte layout: per window a float32 LE scale then its int8 values (last block short)', () => {
  const r = rng(7);
  const N = 3, K = 70; // 70 = 64 + 6: a short last block for B=64, three for B=32
  const x = new Float32Array(N * K).map(() => r.normal());
  for (const t of QUANT_TYPES) {
    const qw = t.quantize(x, N, K);
    const bytes = serializeWindows(qw);
    assert.equal(bytes.length, t.bytes(N, K), t.name);
    const dv = new DataView(bytes.buffer);
    const B = t.weightBlock || K;
    let o = 0;
    for (let n = 0; n < N; n++) {
      for (let k0 = 0; k0 < K; k0 += B) {
        const len = Math.min(B, K - k0);
        assert.equal(dv.getFloat32(o, true), qw.scales[n * Math.ceil(K / B) + k0 / B], `${t.name} scale at byte ${o}`);
        o += 4;
        for (let i = 0; i < len; i++, o++) assert.equal(dv.getInt8(o), qw.q[n * K + k0 + i], `${t.name} value at byte ${o}`);
      }
    }
    assert.equal(o, bytes.length);
  }
});

test('the contract formula: scale = amax/127, q = round_half_even(fround(x * fround(127/amax)))', () => {
  const x = new Float32Array([0.3, -1.7, 2.54, 0.01, -0.5]);
  const q = new Int8Array(5);
  const s = quantizeWindow(x, 0, 5, q, 0);
  const amax = f(2.54);
  assert.equal(s, f(amax / 127));
  const inv = f(127 / amax);
  for (let i = 0; i < 5; i++) assert.equal(q[i], roundHalfEven(f(x[i]! * inv)));
  assert.equal(q[2], 127);
  // ties go to even: with amax = 127, x = 2.5 gives exactly 2.5 → 2, and 3.5 → 4
  const t = new Float32Array([127, 2.5, 3.5, -2.5, -3.5]);
  quantizeWindow(t, 0, 5, q, 0);
  assert.deepEqual([...q], [127, 2, 4, -2, -4]);
});

test('random windows stay within the half-step budget and the SQNR budgets, every window type, odd K', () => {
  const r = rng(11);
  for (const [N, K] of [[1, 1], [2, 31], [5, 33], [4, 257], [3, 1000]] as const) {
    const u = new Float32Array(N * K).map(() => r.uniform(-3, 3));
    const g = new Float32Array(N * K).map(() => r.normal() * 0.05);
    for (const block of [0, 32, 64, 128, 256] as const) {
      checkHalfStep(u, N, K, block, `uniform ${N}x${K} b${block}`);
      checkHalfStep(g, N, K, block, `gaussian ${N}x${K} b${block}`);
      if (K >= 64) {
        assert.ok(sqnrDb(u, roundTrip(u, block, N, K).y) >= BUDGET.uniformSqnrDb, `uniformSqnrDb ${N}x${K} b${block}`);
        assert.ok(sqnrDb(g, roundTrip(g, block, N, K).y) >= BUDGET.gaussianSqnrDb, `gaussianSqnrDb ${N}x${K} b${block}`);
      }
    }
  }
});

test('finer windows never lose to coarser ones on the same data', () => {
  const r = rng(3);
  const N = 8, K = 512;
  // Per-block magnitudes vary over 3 decades: the case local windows exist for.
  const x = new Float32Array(N * K).map((_, i) => r.normal() * 10 ** (((i % K) >> 6) % 4 - 2));
  const s = [0, 256, 128, 64, 32].map((b) => sqnrDb(x, roundTrip(x, b as 0, N, K).y));
  for (let i = 1; i < s.length; i++) assert.ok(s[i]! >= s[i - 1]! - 0.01, `SQNR should not drop from window ${i - 1} to ${i}: ${s.join(', ')}`);
  // On the smallest-magnitude quarter of each channel, local windows are what keeps any precision.
  const small = (y: Float32Array) => {
    const a: number[] = [], b: number[] = [];
    for (let i = 0; i < x.length; i++) if (((i % K) >> 6) % 4 === 0) { a.push(x[i]!); b.push(y[i]!); }
    return sqnrDb(a, b);
  };
  const sm = [0, 32].map((b) => small(roundTrip(x, b as 0, N, K).y));
  assert.ok(sm[1]! > 35 && sm[1]! > sm[0]! + 30, `32-blocks should keep the small values, channel windows not: ${sm.join(', ')}`);
});

test('all-zero windows: scale 0, exact zeros back, never NaN', () => {
  const x = new Float32Array(2 * 40);
  x.fill(0.25, 40, 45); // channel 1 not zero: channel 0 is
  for (const block of [0, 32] as const) {
    const { qw, y } = roundTrip(x, block, 2, 40);
    assert.equal(qw.scales[0], 0);
    for (let k = 0; k < 40; k++) assert.ok(Object.is(y[k], 0), `zero window must dequantize to +0, got ${y[k]}`);
    if (block === 32) assert.equal(qw.scales[3], 0, 'the all-zero second block of channel 1');
    checkHalfStep(x, 2, 40, block, `zero b${block}`);
  }
});

test('tiny windows (1e-30, and denormal amax) quantize without Inf/NaN', () => {
  const r = rng(5);
  const x = new Float32Array(64).map(() => f(r.uniform(-1, 1) * 1e-30));
  checkHalfStep(x, 1, 64, 0, 'tiny');
  // amax below 127/FLT_MAX: 127/amax overflows float32, values clamp; the absolute error stays sub-denormal-scale.
  const d = new Float32Array([1e-40, -5e-41, 0, 2e-41]);
  const { y, qw } = roundTrip(d, 0, 1, 4);
  for (let i = 0; i < 4; i++) {
    assert.ok(Number.isFinite(y[i]!) && Math.abs(y[i]! - d[i]!) <= 2e-40, `denormal window element ${i}: ${y[i]}`);
    assert.ok(qw.q[i]! >= -127 && qw.q[i]! <= 127);
  }
  assert.equal(qw.q[2], 0);
});

test('±max windows (±FLT_MAX) give ±127 and finite scales', () => {
  const max = 3.4028234663852886e38;
  const x = new Float32Array([max, -max, max / 2, 0, -max / 3]);
  const { qw, y } = roundTrip(x, 0, 1, 5);
  assert.ok(Number.isFinite(qw.scales[0]!));
  assert.equal(qw.q[0], 127);
  assert.equal(qw.q[1], -127);
  checkHalfStep(x, 1, 5, 0, '±max');
  assert.ok(y.every(Number.isFinite));
});

test('outlier windows: the outlier is kept, small values lose precision within the half-step budget; blocks contain the damage', () => {
  const r = rng(9);
  const K = 256;
  const x = new Float32Array(K).map(() => r.normal() * 0.01);
  x[200] = 50;
  checkHalfStep(x, 1, K, 0, 'outlier channel');
  const ch = roundTrip(x, 0, 1, K);
  assert.equal(ch.y[200], f(ch.qw.scales[0]! * 127));
  // Values outside the outlier's 32-block keep their precision with block windows.
  const b32 = roundTrip(x, 32, 1, K);
  const head = (y: Float32Array) => sqnrDb(x.subarray(0, 192), y.subarray(0, 192));
  assert.ok(head(b32.y) > 35, `32-block SQNR away from the outlier: ${head(b32.y)}`);
  assert.ok(head(ch.y) < 10, `channel window SQNR under an outlier should be poor: ${head(ch.y)}`);
});

test('NaN / Inf weights are refused with an error naming the position', () => {
  for (const bad of [NaN, Infinity, -Infinity]) {
    const x = new Float32Array(12).map((_, i) => i * 0.1);
    x[7] = bad;
    for (const t of QUANT_TYPES) {
      assert.throws(() => t.quantize(x, 3, 4, 'conv1.weight'), (e: unknown) =>
        e instanceof Q8Error && /conv1\.weight/.test(e.message) && /\[1, 3\]/.test(e.message) && /NaN\/Inf/.test(e.message));
    }
  }
});

test('NaN activations (run-time windows) quantize to 0 instead of poisoning the window', () => {
  const x = new Float32Array([NaN, 1, -2, 0.5]);
  const q = new Int8Array(4);
  const s = quantizeWindow(x, 0, 4, q, 0);
  assert.equal(s, f(f(2) / 127));
  assert.deepEqual([...q], [0, 64, -127, 32]);
});

test('the SQNR measured while quantizing equals the SQNR of the reconstruction', () => {
  const r = rng(17);
  const x = new Float32Array(6 * 100).map(() => r.normal());
  for (const t of QUANT_TYPES) {
    const qw = t.quantize(x, 6, 100);
    const direct = sqnrDb(x, t.dequantize(qw));
    assert.ok(Math.abs(qw.sqnrDb! - direct) < 1e-6, `${t.name}: ${qw.sqnrDb} vs ${direct}`);
  }
});
