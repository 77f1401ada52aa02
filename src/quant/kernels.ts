/**
 * Reference kernels of q8's internal int8 operators (domain 'q8'): Q8Gemm and Q8Conv, the executable
 * specification of notes/quant-contract.md that native/wasm kernels are tested against.
 *
 * Activations are quantized per window at run time (a row of A, an im2col patch for Conv, or a block
 * of act_block values of it), weights arrive quantized. The int8·int8 dot of each combined block (the
 * finer of the two windows) is exact: it is computed by the float32 GEMM on integer-valued operands in
 * chunks of ≤ 1024 products (|sum| ≤ 1024·127² < 2^24, so float32 holds it exactly) summed in doubles.
 * Then out = Σ_b fround(fround(sa·sw)·dot_b) in float32, + bias, then Relu/Clip.
 */
import { Q8Error, check } from '../core/errors.js';
import { shapeStr, sizeOf } from '../core/shape.js';
import { gemmF32Ref } from '../kernels/ref/gemm.js';
import { im2rowRef, type Conv2DGeom } from '../kernels/ref/im2col.js';
import { slidingGeometry } from '../ops/conv.js';
import { withResidual } from '../ops/fused.js';
import type { Attrs } from '../ops/attrs.js';
import type { KernelContext, OpSchema } from '../ops/registry.js';
import { Tensor } from '../tensor/tensor.js';
import { quantizeWindow } from './types.js';

const f = Math.fround;
/** Largest K chunk whose int8 dot is exact in float32. */
const EXACT_CHUNK = 1024;

export interface Q8Attrs {
  weightBlock: number;
  actBlock: number;
  /** Q8Conv only: one activation window per kernel tap (the C/group values of one input pixel). */
  actTap: boolean;
  activation: '' | 'Relu' | 'Clip';
  clipMin: number;
  clipMax: number;
}

export function q8AttrsOf(a: Attrs): Q8Attrs {
  const weightBlock = a.int('weight_block', 0);
  const actBlock = a.int('act_block', 0);
  const activation = a.string('activation', '');
  const actTap = a.int('act_tap', 0);
  check(actTap === 0 || (actTap === 1 && actBlock === 0 && weightBlock === 0),
    () => `act_tap should be 0, or 1 with act_block 0 and weight_block 0, got act_tap ${actTap} (act_block ${actBlock}, weight_block ${weightBlock})`);
  check(weightBlock >= 0 && Number.isInteger(weightBlock), () => `weight_block should be 0 or a block size, got ${weightBlock}`);
  check(actBlock >= 0 && Number.isInteger(actBlock), () => `act_block should be 0 or a block size, got ${actBlock}`);
  if (activation !== '' && activation !== 'Relu' && activation !== 'Clip') throw new Q8Error(`activation should be '', 'Relu' or 'Clip', got '${activation}'`);
  return { weightBlock, actBlock, actTap: actTap === 1, activation, clipMin: a.float('clip_min', -Infinity), clipMax: a.float('clip_max', Infinity) };
}

/** Combined block: the finer of the two windows (0 = whole row). */
function combinedBlock(K: number, wb: number, ab: number): number {
  const w = wb || K, a = ab || K;
  const c = Math.min(w, a);
  check(c === K || (w % c === 0 && a % c === 0) || Math.max(w, a) >= K,
    () => `weight_block ${wb} and act_block ${ab} do not nest`);
  return Math.max(c, 1);
}

/**
 * Quantize P rows of length K (stride K) into integer-valued floats; scales [P, nbA]. The same
 * arithmetic as quantizeWindow (the contract), inlined because it runs on every activation.
 */
export function quantizeRows(src: Float32Array, P: number, K: number, actBlock: number, dst: Float32Array, scales: Float32Array): void {
  const B = actBlock || K;
  const nb = Math.ceil(K / B);
  for (let p = 0; p < P; p++) {
    for (let b = 0; b < nb; b++) {
      const o = p * K + b * B;
      const end = o + Math.min(B, K - b * B);
      let amax = 0;
      for (let i = o; i < end; i++) { const a = Math.abs(src[i]!); if (a > amax) amax = a; }
      amax = f(amax);
      if (amax === 0) { dst.fill(0, o, end); scales[p * nb + b] = 0; continue; }
      const inv = f(127 / amax);
      for (let i = o; i < end; i++) {
        const v = f(src[i]! * inv);
        let r = Math.round(v);
        if (r - v === 0.5 && (r & 1) !== 0) r -= 1;
        dst[i] = r > 127 ? 127 : r < -127 ? -127 : r || 0;
      }
      let sc = f(amax / 127);
      while (f(sc * 127) === Infinity) sc = f(sc - sc * 2 ** -23);
      scales[p * nb + b] = sc;
    }
  }
}

export interface PackedWeights {
  N: number;
  K: number;
  block: number;
  /** int8 values [N, K]. */
  q: Int8Array;
  /** The same values as integer-valued float32 (for the float GEMM); null: converted tile by tile. */
  wf: Float32Array | null;
  scales: Float32Array;
}

/** Float copies of small weight tensors, kept per tensor (constants are immutable). */
const FLOAT_COPIES = new WeakMap<Tensor, Float32Array>();
const CACHE_LIMIT = 1 << 22;

export function packWeights(Wq: Tensor, Ws: Tensor, N: number, K: number, block: number, what: string): PackedWeights {
  check(Wq.dtype === 'int8' && Wq.size === N * K, () => `${what}: quantized weight should be int8 with ${N}x${K} values, got ${Wq.dtype} ${shapeStr(Wq.shape)}`);
  const nb = K === 0 ? 0 : block ? Math.ceil(K / block) : 1;
  check(Ws.dtype === 'float32' && Ws.size === N * nb, () => `${what}: weight scales should be float32 with ${N}x${nb} values, got ${Ws.dtype} ${shapeStr(Ws.shape)}`);
  const q = Wq.data as Int8Array;
  let wf = FLOAT_COPIES.get(Wq) ?? null;
  if (!wf && q.length <= CACHE_LIMIT) {
    wf = Float32Array.from(q);
    FLOAT_COPIES.set(Wq, wf);
  }
  return { N, K, block, q, wf, scales: Ws.data as Float32Array };
}

function activate(v: number, at: Q8Attrs): number {
  if (at.activation === 'Relu') return v < 0 ? 0 : v;
  if (at.activation === 'Clip') return v < at.clipMin ? at.clipMin : v > at.clipMax ? at.clipMax : v;
  return v;
}

let tmp = new Float32Array(0);
let acc64 = new Float64Array(0);
let wTile = new Float32Array(0);

/**
 * Core: P quantized activation rows qa [P, K] (scales sa [P, nbA]) times weight rows wOff..wOff+N.
 * Writes out[outOff + p*ldo + n] (layout 'pn', Gemm) or out[outOff + n*ldo + p] ('np', Conv NCHW),
 * with bias and activation.
 */
export function q8Product(
  qa: Float32Array, sa: Float32Array, P: number, W: PackedWeights, wOff: number, N: number, at: Q8Attrs,
  bias: Float32Array | undefined, biasOff: number, out: Float32Array, outOff: number, layout: 'pn' | 'np', ldo: number,
): void {
  const K = W.K;
  const NT = W.wf ? N : Math.max(1, Math.min(N, Math.floor(CACHE_LIMIT / K)));
  for (let n0 = 0; n0 < N; n0 += NT) {
    const nt = Math.min(NT, N - n0);
    let wf: Float32Array, wRow: number;
    if (W.wf) { wf = W.wf; wRow = wOff + n0; }
    else {
      if (wTile.length < nt * K) wTile = new Float32Array(nt * K);
      const base = (wOff + n0) * K;
      for (let i = 0; i < nt * K; i++) wTile[i] = W.q[base + i]!;
      wf = wTile; wRow = 0;
    }
    productTile(qa, sa, P, W, wf, wRow, wOff + n0, nt, at, bias, biasOff + n0, out, layout === 'pn' ? outOff + n0 : outOff + n0 * ldo, layout, ldo);
  }
}

function productTile(
  qa: Float32Array, sa: Float32Array, P: number, W: PackedWeights, wf: Float32Array, wRow: number, sRow: number, N: number,
  at: Q8Attrs, bias: Float32Array | undefined, biasOff: number, out: Float32Array, outOff: number, layout: 'pn' | 'np', ldo: number,
): void {
  const K = W.K;
  const cb = combinedBlock(K, W.block, at.actBlock);
  const nbA = Math.ceil(K / (at.actBlock || K)), Ba = at.actBlock || K;
  const nbW = W.block ? Math.ceil(K / W.block) : 1, Bw = W.block || K;
  if (tmp.length < P * N) tmp = new Float32Array(P * N);
  if (acc64.length < P * N) acc64 = new Float64Array(P * N);
  const res = new Float32Array(P * N); // float32 running sums over blocks, [p, n]
  for (let k0 = 0; k0 < K; k0 += cb) {
    const len = Math.min(cb, K - k0);
    let dots: Float32Array | Float64Array = tmp;
    if (len <= EXACT_CHUNK) {
      gemmF32Ref(P, N, len, qa, K, wf, K, tmp, N, { transB: true, aOffset: k0, bOffset: wRow * K + k0 });
    } else {
      acc64.fill(0, 0, P * N);
      for (let c0 = k0; c0 < k0 + len; c0 += EXACT_CHUNK) {
        const cl = Math.min(EXACT_CHUNK, k0 + len - c0);
        gemmF32Ref(P, N, cl, qa, K, wf, K, tmp, N, { transB: true, aOffset: c0, bOffset: wRow * K + c0 });
        for (let i = 0; i < P * N; i++) acc64[i] += tmp[i]!;
      }
      dots = acc64;
    }
    const ia = Math.floor(k0 / Ba), iw = Math.floor(k0 / Bw);
    for (let p = 0; p < P; p++) {
      const s = sa[p * nbA + ia]!;
      for (let n = 0; n < N; n++) {
        const i = p * N + n;
        res[i] = f(res[i]! + f(f(s * W.scales[(sRow + n) * nbW + iw]!) * dots[i]!));
      }
    }
  }
  for (let p = 0; p < P; p++) {
    for (let n = 0; n < N; n++) {
      let v = res[p * N + n]!;
      if (bias) v = f(v + bias[biasOff + n]!);
      v = activate(v, at);
      if (layout === 'pn') out[outOff + p * ldo + n] = v;
      else out[outOff + n * ldo + p] = v;
    }
  }
}

function runQ8Gemm(inputs: readonly (Tensor | undefined)[], ctx: KernelContext): Tensor[] {
  const [A, Wq, Ws, Bias] = inputs;
  check(A && Wq && Ws, 'Q8Gemm needs inputs A, Wq and Wscale');
  check(A.dtype === 'float32', () => `Q8Gemm input A should be float32, got ${A.dtype}`);
  check(Wq.rank === 2, () => `Q8Gemm Wq should be [N, K], got ${shapeStr(Wq.shape)}`);
  const [N, K] = Wq.shape as [number, number];
  check(A.rank >= 1 && A.shape[A.rank - 1] === K, () => `Q8Gemm input A ${shapeStr(A.shape)} should end in K = ${K}`);
  const at = q8AttrsOf(ctx.attrs);
  check(!at.actTap, 'Q8Gemm has no kernel taps: act_tap applies to Q8Conv only');
  const W = packWeights(Wq, Ws, N, K, at.weightBlock, 'Q8Gemm');
  if (Bias) check(Bias.dtype === 'float32' && Bias.size === N, () => `Q8Gemm bias should be float32 [${N}], got ${shapeStr(Bias.shape)}`);
  const rows = K === 0 ? sizeOf(A.shape.slice(0, -1)) : A.size / K;
  const Y = ctx.alloc('float32', [...A.shape.slice(0, -1), N]);
  const y = Y.data as Float32Array;
  if (K === 0) {
    for (let r = 0; r < rows; r++) for (let n = 0; n < N; n++) y[r * N + n] = activate(Bias ? Bias.num(n) : 0, at);
    return [Y];
  }
  const x = A.data as Float32Array;
  const nbA = Math.ceil(K / (at.actBlock || K));
  const tile = Math.max(1, Math.min(rows, Math.floor((1 << 20) / Math.max(K, N))));
  const qa = new Float32Array(tile * K);
  const sa = new Float32Array(tile * nbA);
  for (let r0 = 0; r0 < rows; r0 += tile) {
    const P = Math.min(tile, rows - r0);
    quantizeRows(x.subarray(r0 * K, (r0 + P) * K), P, K, at.actBlock, qa, sa);
    q8Product(qa, sa, P, W, 0, N, at, Bias?.data as Float32Array | undefined, 0, y, r0 * N, 'pn', N);
  }
  return [Y];
}

function runQ8Conv(inputs: readonly (Tensor | undefined)[], ctx: KernelContext): Tensor[] {
  const [X, Wq, Ws, Bias] = inputs;
  check(X && Wq && Ws, 'Q8Conv needs inputs X, Wq and Wscale');
  check(X.dtype === 'float32', () => `Q8Conv input X should be float32, got ${X.dtype}`);
  check((X.rank === 3 || X.rank === 4) && Wq.rank === X.rank, () => `Q8Conv supports 1-D and 2-D convolution: X ${shapeStr(X.shape)}, Wq ${shapeStr(Wq.shape)}`);
  const at = q8AttrsOf(ctx.attrs);
  const group = ctx.attrs.int('group', 1);
  const [Nb, C] = X.shape as [number, number];
  const M = Wq.shape[0]!;
  check(group >= 1 && C % group === 0 && M % group === 0 && Wq.shape[1] === C / group,
    () => `Q8Conv weight ${shapeStr(Wq.shape)} does not fit ${C} input channels with group ${group}`);
  const Cg = C / group, Mg = M / group;
  const geom = slidingGeometry(ctx.attrs, X.shape.slice(2), Wq.shape.slice(2));
  const g: Conv2DGeom = geom.nd === 1
    ? { C: Cg, H: 1, W: geom.inDims[0]!, kh: 1, kw: geom.kDims[0]!, sh: 1, sw: geom.strides[0]!, dh: 1, dw: geom.dilations[0]!, padTop: 0, padLeft: geom.padsBegin[0]!, OH: 1, OW: geom.outDims[0]! }
    : { C: Cg, H: geom.inDims[0]!, W: geom.inDims[1]!, kh: geom.kDims[0]!, kw: geom.kDims[1]!, sh: geom.strides[0]!, sw: geom.strides[1]!,
      dh: geom.dilations[0]!, dw: geom.dilations[1]!, padTop: geom.padsBegin[0]!, padLeft: geom.padsBegin[1]!, OH: geom.outDims[0]!, OW: geom.outDims[1]! };
  const K = Cg * g.kh * g.kw;
  const P = g.OH * g.OW;
  const khw = g.kh * g.kw;
  // Tap windows: reorder K tap-major (k' = tap·Cg + c) in the weights and in each im2col row, so a
  // tap's Cg values are one contiguous block of act_block = Cg. The int8 dots are exact, so only the
  // order of the float32 sum over blocks follows the tap order.
  const tap = at.actTap;
  const W = tap
    ? packWeights(tapMajorWeights(Wq, M, Cg, khw), Ws, M, K, 0, 'Q8Conv')
    : packWeights(Wq, Ws, M, K, at.weightBlock, 'Q8Conv');
  const rowAt: Q8Attrs = tap ? { ...at, actBlock: Cg } : at;
  if (Bias) check(Bias.dtype === 'float32' && Bias.size === M, () => `Q8Conv bias should be float32 [${M}], got ${shapeStr(Bias.shape)}`);
  const Y = ctx.alloc('float32', [Nb, M, ...geom.outDims]);
  const y = Y.data as Float32Array;
  const x = X.data as Float32Array;
  const nbA = Math.ceil(K / (rowAt.actBlock || K));
  const tile = Math.max(1, Math.min(P, Math.floor((1 << 20) / Math.max(K, Mg))));
  const rowsBuf = new Float32Array(tile * K);
  const tapBuf = tap ? new Float32Array(tile * K) : rowsBuf;
  const qa = new Float32Array(tile * K);
  const sa = new Float32Array(tile * nbA);
  const inSize = g.H * g.W;
  for (let n = 0; n < Nb; n++) {
    for (let gi = 0; gi < group; gi++) {
      const xOff = (n * C + gi * Cg) * inSize;
      for (let p0 = 0; p0 < P; p0 += tile) {
        const pc = Math.min(tile, P - p0);
        im2rowRef(x, xOff, g, rowsBuf, p0, pc, K);
        if (tap) {
          for (let p = 0; p < pc; p++)
            for (let c = 0; c < Cg; c++)
              for (let t = 0; t < khw; t++) tapBuf[p * K + t * Cg + c] = rowsBuf[p * K + c * khw + t]!;
        }
        quantizeRows(tapBuf, pc, K, rowAt.actBlock, qa, sa);
        q8Product(qa, sa, pc, W, gi * Mg, Mg, rowAt, Bias?.data as Float32Array | undefined, gi * Mg, y, (n * M + gi * Mg) * P + p0, 'np', P);
      }
    }
  }
  return [Y];
}

/** Int8 conv weights [M, Cg, taps] reordered to [M, taps, Cg] (cached per tensor). */
const TAP_MAJOR = new WeakMap<Tensor, Tensor>();
export function tapMajorWeights(Wq: Tensor, M: number, Cg: number, khw: number): Tensor {
  let t = TAP_MAJOR.get(Wq);
  if (t) return t;
  const src = Wq.data as Int8Array, dst = new Int8Array(src.length);
  for (let m = 0; m < M; m++)
    for (let c = 0; c < Cg; c++)
      for (let k = 0; k < khw; k++) dst[(m * khw + k) * Cg + c] = src[(m * Cg + c) * khw + k]!;
  t = new Tensor('int8', Wq.shape, dst);
  TAP_MAJOR.set(Wq, t);
  return t;
}

export const Q8_OPS: OpSchema[] = [
  { opType: 'Q8Gemm', domain: 'q8', run: runQ8Gemm },
  // Q8Conv may carry a fused residual join (graph/passes.ts fuseResiduals).
  { opType: 'Q8Conv', domain: 'q8', run: withResidual(runQ8Conv) },
];
