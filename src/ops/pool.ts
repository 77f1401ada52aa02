/**
 * MaxPool (with the optional Indices output), AveragePool, GlobalAveragePool, GlobalMaxPool over any
 * number of spatial dims. 1-D and 2-D share a direct loop; 3-D and up use an odometer over the window.
 */
import { Q8Error, check } from '../core/errors.js';
import type { NumericArray } from '../core/dtype.js';
import { shapeStr } from '../core/shape.js';
import type { KernelContext, OpSchema } from './registry.js';
import type { Tensor } from '../tensor/tensor.js';
import { slidingGeometry, type SpatialGeom } from './conv.js';

const POOL_DTYPES = new Set(['float32', 'float64', 'int8', 'uint8', 'int16', 'uint16', 'int32', 'uint32']);

function poolInput(X: Tensor | undefined, op: string, floatOnly: boolean): Tensor {
  check(X, `${op} needs input X`);
  check(X.rank >= 3, () => `${op} input X should have rank >= 3 (N, C, spatial...), got shape ${shapeStr(X.shape)}`);
  const ok = floatOnly ? X.dtype === 'float32' || X.dtype === 'float64' : POOL_DTYPES.has(X.dtype);
  if (!ok) throw new Q8Error(`${op} does not support input dtype ${X.dtype}`);
  return X;
}

function poolGeometry(X: Tensor, ctx: KernelContext, op: string, useDilations: boolean): SpatialGeom {
  const nd = X.rank - 2;
  const ks = ctx.attrs.ints('kernel_shape');
  check(ks && ks.length === nd, () => `${op} attribute 'kernel_shape' should have ${nd} values, got ${ks ? `[${ks.join(',')}]` : 'none'}`);
  for (const k of ks) check(Number.isInteger(k) && k >= 1, () => `${op} attribute 'kernel_shape' has an invalid value ${k}`);
  const ceil = ctx.attrs.int('ceil_mode', 0) !== 0;
  return slidingGeometry(ctx.attrs, X.shape.slice(2), ks, ceil, useDilations);
}

/** Per spatial dim and output index: first window element index in the input, and the valid range of taps. */
interface Taps { start: Int32Array; lo: Int32Array; hi: Int32Array; padHi: Int32Array }

function tapsOf(g: SpatialGeom, d: number): Taps {
  const O = g.outDims[d], n = g.inDims[d], k = g.kDims[d], s = g.strides[d], dl = g.dilations[d];
  const t: Taps = { start: new Int32Array(O), lo: new Int32Array(O), hi: new Int32Array(O), padHi: new Int32Array(O) };
  for (let o = 0; o < O; o++) {
    const st = o * s - g.padsBegin[d];
    t.start[o] = st;
    // Closed forms, not tap-by-tap loops: kernel_shape is an attribute and may be absurdly large.
    const firstAtOrAbove = (limit: number) => Math.max(0, Math.ceil((limit - st) / dl));
    const lo = Math.min(k, firstAtOrAbove(0));
    const hi = Math.max(lo, Math.min(k, firstAtOrAbove(n)));
    // Taps inside the explicit end padding count for count_include_pad; ceil-mode overhang does not.
    const padHi = Math.max(hi, Math.min(k, firstAtOrAbove(n + g.padsEnd[d])));
    t.lo[o] = lo; t.hi[o] = hi; t.padHi[o] = padHi;
  }
  return t;
}

/**
 * The common case (float32, 2-D, no dilation, no Indices) in a loop of its own: one element type
 * keeps V8's property accesses monomorphic, which the shared loop above cannot (it serves every
 * numeric type). Same window rules (taps) and NaN propagation as the general path.
 */
function maxPool2dF32(x: Float32Array, y: Float32Array, planes: number, H: number, W: number, OH: number, OW: number, tH: Taps, tW: Taps): void {
  for (let p = 0; p < planes; p++) {
    const xb = p * H * W;
    let o = p * OH * OW;
    for (let oy = 0; oy < OH; oy++) {
      const kyLo = tH.lo[oy]!, kyHi = tH.hi[oy]!, y0 = tH.start[oy]!;
      if (kyHi - kyLo === 2) {
        // Two rows in the window (2x2 and 3x3-at-the-edge pools): the rows are walked together.
        const r0 = xb + (y0 + kyLo) * W, r1 = r0 + W;
        for (let ox = 0; ox < OW; ox++, o++) {
          const kxLo = tW.lo[ox]!, kxHi = tW.hi[ox]!, x0 = tW.start[ox]!;
          let best = NaN, any = false;
          for (let c = x0 + kxLo; c < x0 + kxHi; c++) {
            const a = x[r0 + c]!, b = x[r1 + c]!;
            if (!any) { best = a; any = true; } else if (a > best || a !== a) { if (best === best) best = a; }
            if (b > best || b !== b) { if (best === best) best = b; }
          }
          y[o] = any ? best : 0;
        }
        continue;
      }
      for (let ox = 0; ox < OW; ox++, o++) {
        const kxLo = tW.lo[ox]!, kxHi = tW.hi[ox]!, x0 = tW.start[ox]!;
        let best = NaN, any = false;
        for (let ky = kyLo; ky < kyHi; ky++) {
          const r = xb + (y0 + ky) * W + x0;
          for (let kx = kxLo; kx < kxHi; kx++) {
            const v = x[r + kx]!;
            if (!any) { best = v; any = true; } else if (v > best || v !== v) { if (best === best) best = v; }
          }
        }
        y[o] = any ? best : 0;
      }
    }
  }
}

function runMaxPool(inputs: readonly (Tensor | undefined)[], ctx: KernelContext): Tensor[] {
  const X = poolInput(inputs[0], 'MaxPool', false);
  const g = poolGeometry(X, ctx, 'MaxPool', ctx.opset >= 10);
  const storageOrder = ctx.attrs.int('storage_order', 0);
  check(storageOrder === 0 || storageOrder === 1, () => `MaxPool attribute 'storage_order' should be 0 or 1, got ${storageOrder}`);
  const wantIdx = ctx.node.outputs.length > 1 && ctx.node.outputs[1] !== '';
  const [N, C] = X.shape;
  const Y = ctx.alloc(X.dtype, [N, C, ...g.outDims]);
  const I = wantIdx ? ctx.alloc('int64', [N, C, ...g.outDims]) : undefined;
  const x = X.data as NumericArray, y = Y.data as NumericArray;
  const idx = I?.data as BigInt64Array | undefined;
  const inSize = g.inDims.reduce((a, b) => a * b, 1);
  const outSize = g.outDims.reduce((a, b) => a * b, 1);
  const nd = g.nd;
  const taps = g.outDims.map((_, d) => tapsOf(g, d));
  // Flat index of a spatial position in the requested storage order (column-major when 1).
  const colStrides = new Array<number>(nd);
  const rowStrides = new Array<number>(nd);
  for (let d = 0, a = 1; d < nd; d++) { colStrides[d] = a; a *= g.inDims[d]; }
  for (let d = nd - 1, a = 1; d >= 0; d--) { rowStrides[d] = a; a *= g.inDims[d]; }
  const oIdx = new Array<number>(nd).fill(0);
  const kIdx = new Array<number>(nd).fill(0);
  if (nd === 2 && !idx && x instanceof Float32Array && g.dilations[0] === 1 && g.dilations[1] === 1) {
    maxPool2dF32(x, y as Float32Array, N * C, g.inDims[0]!, g.inDims[1]!, g.outDims[0]!, g.outDims[1]!, taps[0]!, taps[1]!);
    return I ? [Y, I] : [Y];
  }
  for (let nc = 0; nc < N * C; nc++) {
    const xb = nc * inSize;
    const yb = nc * outSize;
    if (nd <= 2 && !idx) {
      // Fast path: rows × columns (1-D is one row).
      const tH = nd === 2 ? taps[0] : undefined, tW = taps[nd - 1];
      const OH = nd === 2 ? g.outDims[0] : 1, OW = g.outDims[nd - 1];
      const Wd = g.inDims[nd - 1], dh = nd === 2 ? g.dilations[0] : 1, dw = g.dilations[nd - 1];
      for (let oy = 0; oy < OH; oy++) {
        const y0 = tH ? tH.start[oy] : 0, kyLo = tH ? tH.lo[oy] : 0, kyHi = tH ? tH.hi[oy] : 1;
        for (let ox = 0; ox < OW; ox++) {
          const x0 = tW.start[ox], kxLo = tW.lo[ox], kxHi = tW.hi[ox];
          let best = -Infinity, any = false;
          for (let ky = kyLo; ky < kyHi; ky++) {
            const r = xb + (y0 + ky * dh) * Wd + x0;
            for (let kx = kxLo; kx < kxHi; kx++) {
              const v = x[r + kx * dw];
              if (!any || v > best || (v !== v && best === best)) { best = v; any = true; }
            }
          }
          y[yb + oy * OW + ox] = any ? best : 0;
        }
      }
      continue;
    }
    for (let o = 0; o < outSize; o++) {
      let q = o;
      for (let d = nd - 1; d >= 0; d--) { oIdx[d] = q % g.outDims[d]; q = Math.floor(q / g.outDims[d]); }
      let empty = false;
      for (let d = 0; d < nd; d++) { kIdx[d] = taps[d].lo[oIdx[d]]; if (kIdx[d] >= taps[d].hi[oIdx[d]]) empty = true; }
      let best = -Infinity, bestAt = -1, any = false;
      while (!empty) {
        let off = 0, colOff = 0;
        for (let d = 0; d < nd; d++) {
          const i = taps[d].start[oIdx[d]] + kIdx[d] * g.dilations[d];
          off += i * rowStrides[d];
          colOff += i * colStrides[d];
        }
        const v = x[xb + off];
        if (!any || v > best || (v !== v && best === best)) { best = v; bestAt = storageOrder ? colOff : off; any = true; }
        let d = nd - 1;
        for (; d >= 0; d--) {
          if (++kIdx[d] < taps[d].hi[oIdx[d]]) break;
          kIdx[d] = taps[d].lo[oIdx[d]];
        }
        if (d < 0) break;
      }
      y[yb + o] = any ? best : 0;
      if (idx) idx[yb + o] = any ? BigInt(xb + bestAt) : -1n;
    }
  }
  return I ? [Y, I] : [Y];
}

function runAveragePool(inputs: readonly (Tensor | undefined)[], ctx: KernelContext): Tensor[] {
  const X = poolInput(inputs[0], 'AveragePool', true);
  const g = poolGeometry(X, ctx, 'AveragePool', ctx.opset >= 19);
  const includePad = ctx.attrs.int('count_include_pad', 0) !== 0;
  const [N, C] = X.shape;
  const Y = ctx.alloc(X.dtype, [N, C, ...g.outDims]);
  const x = X.data as Float32Array | Float64Array, y = Y.data as Float32Array | Float64Array;
  const inSize = g.inDims.reduce((a, b) => a * b, 1);
  const outSize = g.outDims.reduce((a, b) => a * b, 1);
  const nd = g.nd;
  const taps = g.outDims.map((_, d) => tapsOf(g, d));
  const rowStrides = new Array<number>(nd);
  for (let d = nd - 1, a = 1; d >= 0; d--) { rowStrides[d] = a; a *= g.inDims[d]; }
  const oIdx = new Array<number>(nd).fill(0);
  const kIdx = new Array<number>(nd).fill(0);
  for (let nc = 0; nc < N * C; nc++) {
    const xb = nc * inSize, yb = nc * outSize;
    for (let o = 0; o < outSize; o++) {
      let q = o;
      for (let d = nd - 1; d >= 0; d--) { oIdx[d] = q % g.outDims[d]; q = Math.floor(q / g.outDims[d]); }
      let count = 1, empty = false;
      for (let d = 0; d < nd; d++) {
        const t = taps[d], od = oIdx[d];
        kIdx[d] = t.lo[od];
        if (t.lo[od] >= t.hi[od]) empty = true;
        // With count_include_pad the divisor counts taps in the explicit padding too (not ceil overhang).
        count *= includePad ? t.padHi[od] : t.hi[od] - t.lo[od];
      }
      let s = 0;
      if (nd === 2 && !empty) {
        const t0 = taps[0], t1 = taps[1], o0 = oIdx[0], o1 = oIdx[1];
        const Wd = g.inDims[1], dh = g.dilations[0], dw = g.dilations[1];
        for (let ky = t0.lo[o0]; ky < t0.hi[o0]; ky++) {
          const r = xb + (t0.start[o0] + ky * dh) * Wd + t1.start[o1];
          for (let kx = t1.lo[o1]; kx < t1.hi[o1]; kx++) s += x[r + kx * dw];
        }
      } else {
        while (!empty) {
          let off = 0;
          for (let d = 0; d < nd; d++) off += (taps[d].start[oIdx[d]] + kIdx[d] * g.dilations[d]) * rowStrides[d];
          s += x[xb + off];
          let d = nd - 1;
          for (; d >= 0; d--) {
            if (++kIdx[d] < taps[d].hi[oIdx[d]]) break;
            kIdx[d] = taps[d].lo[oIdx[d]];
          }
          if (d < 0) break;
        }
      }
      y[yb + o] = count > 0 ? s / count : NaN;
    }
  }
  return [Y];
}

function runGlobal(inputs: readonly (Tensor | undefined)[], ctx: KernelContext, max: boolean): Tensor[] {
  const op = max ? 'GlobalMaxPool' : 'GlobalAveragePool';
  const X = poolInput(inputs[0], op, !max);
  const [N, C] = X.shape;
  const S = X.shape.slice(2).reduce((a, b) => a * b, 1);
  const Y = ctx.alloc(X.dtype, [N, C, ...X.shape.slice(2).map(() => 1)]);
  const x = X.data as NumericArray, y = Y.data as NumericArray;
  for (let nc = 0; nc < N * C; nc++) {
    const b = nc * S;
    if (max) {
      let m = S > 0 ? x[b] : NaN;
      for (let i = 1; i < S; i++) { const v = x[b + i]; if (v > m || (v !== v && m === m)) m = v; }
      y[nc] = m;
    } else {
      let s = 0;
      for (let i = 0; i < S; i++) s += x[b + i];
      y[nc] = s / S;
    }
  }
  return [Y];
}

export const ops: OpSchema[] = [
  { opType: 'MaxPool', run: runMaxPool },
  { opType: 'AveragePool', run: runAveragePool },
  { opType: 'GlobalAveragePool', run: (i, c) => runGlobal(i, c, false) },
  { opType: 'GlobalMaxPool', run: (i, c) => runGlobal(i, c, true) },
];
