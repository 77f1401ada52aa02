/**
 * ONNX's quantized operators (affine uint8/int8 with zero points), so models quantized by other tools
 * run: QuantizeLinear / DequantizeLinear (per-tensor, per-axis, opset-21 blocked), DynamicQuantizeLinear,
 * MatMulInteger, ConvInteger, QLinearConv, QLinearMatMul. Integer products are computed exactly in
 * float64 (every partial sum of int8 products is far below 2^53), requantization in float32.
 */
import type { DType } from '../core/dtype.js';
import { Q8Error, check } from '../core/errors.js';
import { shapeStr, sizeOf } from '../core/shape.js';
import { gemmF64Ref } from '../kernels/ref/gemm.js';
import { im2colNdRef, type ConvNDGeom } from '../kernels/ref/im2col.js';
import { roundHalfEven } from '../quant/round.js';
import { Tensor } from '../tensor/tensor.js';
import { slidingGeometry } from './conv.js';
import type { KernelContext, OpSchema } from './registry.js';
import { broadcastIndex } from './util/broadcast.js';

const RANGES: Partial<Record<DType, [number, number]>> = {
  uint8: [0, 255], int8: [-128, 127], uint16: [0, 65535], int16: [-32768, 32767], int32: [-2147483648, 2147483647],
};

function rangeOf(d: DType, what: string): [number, number] {
  const r = RANGES[d];
  if (!r) throw new Q8Error(`${what} has unsupported type ${d} (expected uint8, int8, uint16, int16)`);
  return r;
}

/**
 * Where the scale/zero point of each element of x lives: per-tensor (scalar or one element), per-axis
 * (1-D of x.shape[axis]) or blocked (same rank as x, shape[axis] = ceil(x.shape[axis] / block)).
 */
function paramIndex(x: readonly number[], p: readonly number[], axisAttr: number, block: number, what: string): (i: number) => number {
  if (sizeOf(p) === 1 && p.length <= 1) return () => 0;
  const rank = x.length;
  const axis = axisAttr < 0 ? axisAttr + rank : axisAttr;
  check(axis >= 0 && axis < rank, () => `${what}: axis ${axisAttr} is out of range for input rank ${rank}`);
  const D = x[axis]!;
  let inner = 1;
  for (let d = axis + 1; d < rank; d++) inner *= x[d]!;
  if (block <= 0) {
    check(p.length === 1 && p[0] === D, () => `${what} should be a scalar or 1-D of length ${D} (input ${shapeStr(x)}, axis ${axis}), got ${shapeStr(p)}`);
    return (i) => Math.floor(i / inner) % D;
  }
  const nb = Math.ceil(D / block);
  check(p.length === rank && p.every((s, d) => (d === axis ? s === nb : s === x[d])),
    () => `${what} should have shape ${shapeStr(x.map((s, d) => (d === axis ? nb : s)))} for block_size ${block} on axis ${axis}, got ${shapeStr(p)}`);
  return (i) => {
    const j = i % inner;
    const rest = Math.floor(i / inner);
    const d = rest % D;
    const o = Math.floor(rest / D);
    return (o * nb + Math.floor(d / block)) * inner + j;
  };
}

function runQuantizeLinear(inputs: readonly (Tensor | undefined)[], ctx: KernelContext): Tensor[] {
  const [x, s, zp] = inputs;
  check(x && s, 'QuantizeLinear needs inputs x and y_scale');
  const outType: DType = zp ? zp.dtype : (ctx.attrs.int('output_dtype', 0) ? outDtypeAttr(ctx) : 'uint8');
  const [lo, hi] = rangeOf(outType, 'QuantizeLinear output');
  const axis = ctx.opset >= 13 ? ctx.attrs.int('axis', 1) : 1;
  const block = ctx.attrs.int('block_size', 0);
  const si = paramIndex(x.shape, s.shape, axis, block, 'QuantizeLinear y_scale');
  if (zp) check(sizeOf(zp.shape) === sizeOf(s.shape), () => `QuantizeLinear y_zero_point shape ${shapeStr(zp.shape)} should match y_scale ${shapeStr(s.shape)}`);
  const xf = x.toFloat32();
  const sf = s.toFloat32();
  const y = ctx.alloc(outType, x.shape);
  const out = y.data as Int8Array;
  for (let i = 0; i < xf.length; i++) {
    const k = si(i);
    const z = zp ? zp.num(k) : 0;
    const v = roundHalfEven(Math.fround(xf[i]! / sf[k]!)) + z;
    out[i] = Number.isNaN(v) ? z : v < lo ? lo : v > hi ? hi : v;
  }
  return [y];
}

function outDtypeAttr(ctx: KernelContext): DType {
  const code = ctx.attrs.int('output_dtype', 0);
  const byCode: Record<number, DType> = { 2: 'uint8', 3: 'int8', 4: 'uint16', 5: 'int16' };
  const d = byCode[code];
  if (!d) throw new Q8Error(`QuantizeLinear output_dtype ${code} is not supported (uint8, int8, uint16, int16)`);
  return d;
}

function runDequantizeLinear(inputs: readonly (Tensor | undefined)[], ctx: KernelContext): Tensor[] {
  const [x, s, zp] = inputs;
  check(x && s, 'DequantizeLinear needs inputs x and x_scale');
  rangeOf(x.dtype, 'DequantizeLinear input x');
  if (x.dtype === 'int32' && zp) check(zp.toNumbers().every((v) => v === 0), 'DequantizeLinear: an int32 input needs zero points of 0');
  const axis = ctx.opset >= 13 ? ctx.attrs.int('axis', 1) : 1;
  const block = ctx.attrs.int('block_size', 0);
  const si = paramIndex(x.shape, s.shape, axis, block, 'DequantizeLinear x_scale');
  if (zp) check(zp.dtype === x.dtype && sizeOf(zp.shape) === sizeOf(s.shape), () => `DequantizeLinear x_zero_point should be ${x.dtype} shaped like x_scale ${shapeStr(s.shape)}, got ${zp.dtype} ${shapeStr(zp.shape)}`);
  const xd = x.data as Int8Array;
  const sf = s.toFloat32();
  const zd = zp?.data as Int8Array | undefined;
  const y = ctx.alloc('float32', x.shape);
  const out = y.data as Float32Array;
  for (let i = 0; i < xd.length; i++) {
    const k = si(i);
    out[i] = (xd[i]! - (zd ? zd[k]! : 0)) * sf[k]!;
  }
  return s.dtype === 'float32' ? [y] : [Tensor.from(s.dtype, y.shape, out)];
}

function runDynamicQuantizeLinear(inputs: readonly (Tensor | undefined)[], ctx: KernelContext): Tensor[] {
  const [x] = inputs;
  check(x, 'DynamicQuantizeLinear needs input x');
  const xf = x.toFloat32();
  let mn = 0, mx = 0;
  for (let i = 0; i < xf.length; i++) { const v = xf[i]!; if (v < mn) mn = v; if (v > mx) mx = v; }
  const scale = Math.fround(Math.fround(mx - mn) / 255);
  const zpv = scale === 0 ? 0 : Math.min(255, Math.max(0, roundHalfEven(Math.fround(0 - Math.fround(mn / scale)))));
  const y = ctx.alloc('uint8', x.shape);
  const out = y.data as Uint8Array;
  if (scale !== 0) {
    for (let i = 0; i < xf.length; i++) {
      const v = roundHalfEven(Math.fround(xf[i]! / scale)) + zpv;
      out[i] = v < 0 ? 0 : v > 255 ? 255 : v;
    }
  }
  return [y, Tensor.from('float32', [], [scale]), Tensor.from('uint8', [], [zpv])];
}

// ---------------------------------------------------------------------------------------------
// Integer matrix products

function intOperand(t: Tensor, what: string): void {
  check(t.dtype === 'uint8' || t.dtype === 'int8', () => `${what} should be uint8 or int8, got ${t.dtype}`);
}

/**
 * Batched (A - za) · (B - zb) as float64 with MatMul broadcasting. za: scalar or per row of A (its
 * last-but-one dim), zb: scalar or per column of B. Returns the product and output shape.
 */
function intMatMul(A: Tensor, B: Tensor, za: Tensor | undefined, zb: Tensor | undefined, what: string): { y: Float64Array; shape: number[]; M: number; N: number } {
  check(A.rank >= 1 && B.rank >= 1, () => `${what}: inputs must have rank >= 1`);
  const a = A.rank === 1 ? [1, A.shape[0]!] : [...A.shape];
  const b = B.rank === 1 ? [B.shape[0]!, 1] : [...B.shape];
  const M = a[a.length - 2]!, K = a[a.length - 1]!, N = b[b.length - 1]!;
  check(b[b.length - 2] === K, () => `${what}: A ${shapeStr(A.shape)} and B ${shapeStr(B.shape)} have different inner dimensions`);
  const ab = a.slice(0, -2), bb = b.slice(0, -2);
  const batchShape = broadcastBatch(ab, bb, what);
  const batch = sizeOf(batchShape);
  const ia = broadcastIndex(ab, batchShape), ib = broadcastIndex(bb, batchShape);
  const zaOf = zeroPoints(za, M, `${what} a_zero_point`), zbOf = zeroPoints(zb, N, `${what} b_zero_point`);
  const Ad = A.data as Int8Array, Bd = B.data as Int8Array;
  const af = new Float64Array(M * K), bf = new Float64Array(K * N);
  const y = new Float64Array(batch * M * N);
  for (let t = 0; t < batch; t++) {
    const ao = ia[t]! * M * K, bo = ib[t]! * K * N;
    for (let i = 0; i < M; i++) for (let k = 0; k < K; k++) af[i * K + k] = Ad[ao + i * K + k]! - zaOf(i);
    for (let k = 0; k < K; k++) for (let j = 0; j < N; j++) bf[k * N + j] = Bd[bo + k * N + j]! - zbOf(j);
    gemmF64Ref(M, N, K, af, K, bf, N, y, N, { cOffset: t * M * N });
  }
  const shape = [...batchShape];
  if (A.rank > 1) shape.push(M);
  if (B.rank > 1) shape.push(N);
  return { y, shape, M, N };
}

function broadcastBatch(a: number[], b: number[], what: string): number[] {
  const r = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < r; i++) {
    const x = a[a.length - r + i] ?? 1, y = b[b.length - r + i] ?? 1;
    check(x === y || x === 1 || y === 1, () => `${what}: batch dims [${a.join(',')}] and [${b.join(',')}] do not broadcast`);
    out.push(Math.max(x, y));
  }
  return out;
}

function zeroPoints(z: Tensor | undefined, n: number, what: string): (i: number) => number {
  if (!z) return () => 0;
  const v = z.toNumbers();
  if (v.length === 1) return () => v[0]!;
  check(v.length === n, () => `${what} should be a scalar or have ${n} values, got shape ${shapeStr(z.shape)}`);
  return (i) => v[i]!;
}

function runMatMulInteger(inputs: readonly (Tensor | undefined)[], ctx: KernelContext): Tensor[] {
  const [A, B, za, zb] = inputs;
  check(A && B, 'MatMulInteger needs inputs A and B');
  intOperand(A, 'MatMulInteger A');
  intOperand(B, 'MatMulInteger B');
  const { y, shape } = intMatMul(A, B, za, zb, 'MatMulInteger');
  const out = ctx.alloc('int32', shape);
  (out.data as Int32Array).set(y);
  return [out];
}

function requantize(v: Float64Array, scaleOf: (i: number) => number, ys: number, yzp: Tensor | undefined, shape: number[], ctx: KernelContext): Tensor {
  const dtype: DType = yzp ? yzp.dtype : 'uint8';
  const [lo, hi] = rangeOf(dtype, 'output zero point');
  const z = yzp ? yzp.num(0) : 0;
  const out = ctx.alloc(dtype, shape);
  const d = out.data as Uint8Array;
  for (let i = 0; i < v.length; i++) {
    const q = roundHalfEven(Math.fround(Math.fround(v[i]! * scaleOf(i)) / ys)) + z;
    d[i] = q < lo ? lo : q > hi ? hi : q;
  }
  return out;
}

function scalarOf(t: Tensor | undefined, what: string): number {
  check(t && t.size === 1, () => `${what} should be a scalar`);
  return t.num(0);
}

function runQLinearMatMul(inputs: readonly (Tensor | undefined)[], ctx: KernelContext): Tensor[] {
  const [A, as, az, B, bs, bz, ys, yz] = inputs;
  check(A && as && B && bs && ys, 'QLinearMatMul needs a, a_scale, a_zero_point, b, b_scale, b_zero_point, y_scale, y_zero_point');
  intOperand(A, 'QLinearMatMul a');
  intOperand(B, 'QLinearMatMul b');
  const { y, shape, M, N } = intMatMul(A, B, az, bz, 'QLinearMatMul');
  const sa = as.toFloat32(), sb = bs.toFloat32();
  check(sa.length === 1 || sa.length === M, 'QLinearMatMul a_scale should be a scalar or per row');
  check(sb.length === 1 || sb.length === N, 'QLinearMatMul b_scale should be a scalar or per column');
  const scaleOf = (i: number) => {
    const j = i % N, r = Math.floor(i / N) % M;
    return Math.fround(sa[sa.length === 1 ? 0 : r]! * sb[sb.length === 1 ? 0 : j]!);
  };
  return [requantize(y, scaleOf, scalarOf(ys, 'QLinearMatMul y_scale'), yz, shape, ctx)];
}

/** Integer convolution (x - zx) * (w - zw[m]) in float64, with Conv's geometry attributes. */
function intConv(X: Tensor, W: Tensor, zx: Tensor | undefined, zw: Tensor | undefined, ctx: KernelContext, what: string): { y: Float64Array; shape: number[]; M: number; P: number } {
  intOperand(X, `${what} x`);
  intOperand(W, `${what} w`);
  check(X.rank >= 3 && W.rank === X.rank, () => `${what}: x ${shapeStr(X.shape)} and w ${shapeStr(W.shape)} should be N,C,spatial... of the same rank`);
  const group = ctx.attrs.int('group', 1);
  const [N, C] = X.shape as [number, number];
  const M = W.shape[0]!;
  check(group >= 1 && C % group === 0 && M % group === 0 && W.shape[1] === C / group,
    () => `${what}: weight ${shapeStr(W.shape)} does not fit input channels ${C} with group ${group}`);
  const geom = slidingGeometry(ctx.attrs, X.shape.slice(2), W.shape.slice(2));
  const Cg = C / group, Mg = M / group;
  const kSize = sizeOf(geom.kDims), K = Cg * kSize;
  const inSize = sizeOf(geom.inDims), P = sizeOf(geom.outDims);
  const zxv = zx ? scalarOf(zx, `${what} x_zero_point`) : 0;
  const zwOf = zeroPoints(zw, M, `${what} w_zero_point`);
  const xf = new Float64Array(X.size);
  const xd = X.data as Int8Array;
  for (let i = 0; i < xf.length; i++) xf[i] = xd[i]! - zxv;
  const wf = new Float64Array(W.size);
  const wd = W.data as Int8Array;
  for (let i = 0; i < wf.length; i++) wf[i] = wd[i]! - zwOf(Math.floor(i / K));
  // Padding must contribute (x - zx) = 0, which im2col's zeros of the shifted input give.
  const g: ConvNDGeom = { C: Cg, inDims: geom.inDims, kDims: geom.kDims, strides: geom.strides, dilations: geom.dilations, padsBegin: geom.padsBegin, outDims: geom.outDims };
  const col = new Float64Array(K * P);
  const y = new Float64Array(N * M * P);
  for (let n = 0; n < N; n++) {
    for (let gi = 0; gi < group; gi++) {
      im2colNdRef(xf, (n * C + gi * Cg) * inSize, g, col);
      gemmF64Ref(Mg, P, K, wf, K, col, P, y, P, { aOffset: gi * Mg * K, cOffset: (n * M + gi * Mg) * P });
    }
  }
  return { y, shape: [N, M, ...geom.outDims], M, P };
}

function runConvInteger(inputs: readonly (Tensor | undefined)[], ctx: KernelContext): Tensor[] {
  const [X, W, zx, zw] = inputs;
  check(X && W, 'ConvInteger needs inputs x and w');
  const { y, shape } = intConv(X, W, zx, zw, ctx, 'ConvInteger');
  const out = ctx.alloc('int32', shape);
  (out.data as Int32Array).set(y);
  return [out];
}

function runQLinearConv(inputs: readonly (Tensor | undefined)[], ctx: KernelContext): Tensor[] {
  const [X, xs, xz, W, ws, wz, ys, yz, B] = inputs;
  check(X && xs && W && ws && ys, 'QLinearConv needs x, x_scale, x_zero_point, w, w_scale, w_zero_point, y_scale, y_zero_point');
  const { y, shape, M, P } = intConv(X, W, xz, wz, ctx, 'QLinearConv');
  if (B) {
    check(B.dtype === 'int32' && B.size === M, () => `QLinearConv B should be int32 of shape [${M}], got ${B.dtype} ${shapeStr(B.shape)}`);
    const b = B.data as Int32Array;
    for (let i = 0; i < y.length; i++) y[i] += b[Math.floor(i / P) % M]!;
  }
  const sx = scalarOf(xs, 'QLinearConv x_scale');
  const sw = ws.toFloat32();
  check(sw.length === 1 || sw.length === M, () => `QLinearConv w_scale should be a scalar or have ${M} values`);
  const scaleOf = (i: number) => Math.fround(sx * sw[sw.length === 1 ? 0 : Math.floor(i / P) % M]!);
  return [requantize(y, scaleOf, scalarOf(ys, 'QLinearConv y_scale'), yz, shape, ctx)];
}

export const ops: OpSchema[] = [
  { opType: 'QuantizeLinear', since: 10, run: runQuantizeLinear },
  { opType: 'DequantizeLinear', since: 10, run: runDequantizeLinear },
  { opType: 'DynamicQuantizeLinear', since: 11, run: runDynamicQuantizeLinear },
  { opType: 'MatMulInteger', since: 10, run: runMatMulInteger },
  { opType: 'ConvInteger', since: 10, run: runConvInteger },
  { opType: 'QLinearConv', since: 10, run: runQLinearConv },
  { opType: 'QLinearMatMul', since: 10, run: runQLinearMatMul },
];
