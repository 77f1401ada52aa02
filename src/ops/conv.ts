/**
 * Conv and ConvTranspose (any number of spatial dims, groups, dilations, strides, pads, auto_pad).
 * float32 runs as im2col + the blocked GEMM of src/kernels/ref (pointwise convs skip im2col,
 * depthwise convs have their own direct loop); float64 uses the same layout with a plain GEMM.
 */
import { Q8Error, check } from '../core/errors.js';
import { shapeStr } from '../core/shape.js';
import { gemmF32Ref, gemmF64Ref } from '../kernels/ref/gemm.js';
import { col2imNdAddRef, col2imRef, im2colNdRef, im2colRef, type Conv2DGeom, type ConvNDGeom } from '../kernels/ref/im2col.js';
import type { Attrs } from './attrs.js';
import type { KernelContext, OpSchema } from './registry.js';
import type { Tensor } from '../tensor/tensor.js';

/** Spatial geometry shared by Conv and the pools: per spatial dim sizes, strides, pads. */
export interface SpatialGeom {
  nd: number;
  inDims: number[];
  kDims: number[];
  strides: number[];
  dilations: number[];
  padsBegin: number[];
  padsEnd: number[];
  outDims: number[];
}

function listAttr(attrs: Attrs, name: string, nd: number, dflt: number, min: number): number[] {
  const v = attrs.ints(name) ?? new Array<number>(nd).fill(dflt);
  check(v.length === nd, () => `attribute '${name}' should have ${nd} values (one per spatial dim), got [${v.join(',')}]`);
  for (const x of v) check(Number.isInteger(x) && x >= min, () => `attribute '${name}' has an invalid value ${x} in [${v.join(',')}]`);
  return v;
}

export function autoPadOf(attrs: Attrs): 'NOTSET' | 'SAME_UPPER' | 'SAME_LOWER' | 'VALID' {
  const a = attrs.string('auto_pad', 'NOTSET');
  if (a === '' || a === 'NOTSET') return 'NOTSET';
  if (a === 'SAME_UPPER' || a === 'SAME_LOWER' || a === 'VALID') return a;
  throw new Q8Error(`attribute 'auto_pad' should be NOTSET, SAME_UPPER, SAME_LOWER or VALID, got '${a}'`);
}

/**
 * Output size and pads of a sliding window op (ONNX Conv / pool rules). `ceilMode` rounds the
 * output size up, dropping a last window that would start in the end padding.
 */
export function slidingGeometry(
  attrs: Attrs, inDims: readonly number[], kDims: readonly number[], ceilMode = false, useDilations = true,
): SpatialGeom {
  const nd = inDims.length;
  const strides = listAttr(attrs, 'strides', nd, 1, 1);
  const dilations = useDilations ? listAttr(attrs, 'dilations', nd, 1, 1) : new Array<number>(nd).fill(1);
  const autoPad = autoPadOf(attrs);
  const padsBegin = new Array<number>(nd).fill(0);
  const padsEnd = new Array<number>(nd).fill(0);
  const outDims = new Array<number>(nd).fill(0);
  if (autoPad === 'NOTSET') {
    const pads = attrs.ints('pads') ?? new Array<number>(2 * nd).fill(0);
    check(pads.length === 2 * nd, () => `attribute 'pads' should have ${2 * nd} values, got [${pads.join(',')}]`);
    for (const p of pads) check(Number.isInteger(p) && p >= 0, () => `attribute 'pads' has an invalid value ${p}`);
    for (let d = 0; d < nd; d++) { padsBegin[d] = pads[d]; padsEnd[d] = pads[nd + d]; }
  }
  for (let d = 0; d < nd; d++) {
    const dk = (kDims[d] - 1) * dilations[d] + 1;
    const s = strides[d];
    const n = inDims[d];
    if (autoPad === 'SAME_UPPER' || autoPad === 'SAME_LOWER') {
      outDims[d] = Math.ceil(n / s);
      const total = Math.max(0, (outDims[d] - 1) * s + dk - n);
      const small = Math.floor(total / 2);
      padsBegin[d] = autoPad === 'SAME_UPPER' ? small : total - small;
      padsEnd[d] = total - padsBegin[d];
    } else {
      const span = n + padsBegin[d] + padsEnd[d] - dk;
      check(span >= 0, () => `input spatial size ${n} (+ pads ${padsBegin[d]}, ${padsEnd[d]}) is smaller than the window ${dk} in spatial dim ${d}`);
      if (ceilMode) {
        let o = Math.ceil(span / s) + 1;
        if ((o - 1) * s >= n + padsBegin[d]) o--;
        outDims[d] = o;
      } else outDims[d] = Math.floor(span / s) + 1;
    }
  }
  return { nd, inDims: [...inDims], kDims: [...kDims], strides, dilations, padsBegin, padsEnd, outDims };
}

function floatInput(t: Tensor, what: string): void {
  if (t.dtype !== 'float32' && t.dtype !== 'float64')
    throw new Q8Error(`${what} should be float32, float64 or float16, got ${t.dtype}`);
}

function prod(a: readonly number[]): number {
  let n = 1;
  for (const x of a) n *= x;
  return n;
}

// ---------------------------------------------------------------------------------------------
// Conv

function kernelDims(attrs: Attrs, W: Tensor, nd: number): number[] {
  const fromW = W.shape.slice(2);
  check(fromW.every((k) => k >= 1), () => `weight W shape ${shapeStr(W.shape)} has an empty kernel dimension`);
  const ks = attrs.ints('kernel_shape');
  if (ks) {
    check(ks.length === nd && ks.every((k, i) => k === fromW[i]),
      () => `attribute 'kernel_shape' [${ks.join(',')}] does not match the weight shape ${shapeStr(W.shape)}`);
  }
  return fromW;
}

/** Largest im2col buffer (elements) per tile: big enough to amortise packing, small enough for cache. */
const COL_TILE = 1 << 20;

// One im2col buffer reused across calls (kernels are synchronous): allocating megabytes per Conv
// costs more in garbage collection than the im2col itself.
let colScratch = new Float32Array(0);
function colBuffer(n: number): Float32Array {
  if (colScratch.length < n) colScratch = new Float32Array(n);
  return colScratch;
}

function runConv(inputs: readonly (Tensor | undefined)[], ctx: KernelContext): Tensor[] {
  const [X, W, B] = inputs;
  check(X && W, 'Conv needs inputs X and W');
  floatInput(X, 'Conv input X');
  check(W.dtype === X.dtype, () => `Conv weight W should be ${X.dtype} like X, got ${W.dtype}`);
  check(X.rank >= 3, () => `Conv input X should have rank >= 3 (N, C, spatial...), got shape ${shapeStr(X.shape)}`);
  check(W.rank === X.rank, () => `Conv weight W should have rank ${X.rank}, got shape ${shapeStr(W.shape)}`);
  const nd = X.rank - 2;
  const group = ctx.attrs.int('group', 1);
  const [N, C] = X.shape;
  const M = W.shape[0];
  check(Number.isInteger(group) && group >= 1 && C % group === 0 && M % group === 0,
    () => `Conv group ${group} should divide input channels ${C} and output channels ${M}`);
  const Cg = C / group;
  check(W.shape[1] === Cg, () => `Conv weight W shape ${shapeStr(W.shape)} should have ${Cg} input channels per group (X has ${C}, group ${group})`);
  if (B) {
    check(B.dtype === X.dtype && B.rank === 1 && B.shape[0] === M, () => `Conv bias B should be ${X.dtype} of shape [${M}], got ${B.dtype} ${shapeStr(B.shape)}`);
  }
  const geom = slidingGeometry(ctx.attrs, X.shape.slice(2), kernelDims(ctx.attrs, W, nd));
  const Y = ctx.alloc(X.dtype, [N, M, ...geom.outDims]);
  if (X.dtype === 'float32') {
    convF32(X.data as Float32Array, W.data as Float32Array, B?.data as Float32Array | undefined, N, C, M, group, geom, Y.data as Float32Array);
  } else {
    convF64(X.data as Float64Array, W.data as Float64Array, B?.data as Float64Array | undefined, N, C, M, group, geom, Y.data as Float64Array);
  }
  return [Y];
}

/** The 2-D im2col geometry of a 1-D or 2-D window (1-D becomes height 1) for C channels per group. */
export function to2D(g: SpatialGeom, C: number): Conv2DGeom {
  if (g.nd === 1) {
    return { C, H: 1, W: g.inDims[0], kh: 1, kw: g.kDims[0], sh: 1, sw: g.strides[0], dh: 1, dw: g.dilations[0],
      padTop: 0, padLeft: g.padsBegin[0], OH: 1, OW: g.outDims[0] };
  }
  return { C, H: g.inDims[0], W: g.inDims[1], kh: g.kDims[0], kw: g.kDims[1], sh: g.strides[0], sw: g.strides[1],
    dh: g.dilations[0], dw: g.dilations[1], padTop: g.padsBegin[0], padLeft: g.padsBegin[1], OH: g.outDims[0], OW: g.outDims[1] };
}

function ndGeom(g: SpatialGeom, C: number): ConvNDGeom {
  return { C, inDims: g.inDims, kDims: g.kDims, strides: g.strides, dilations: g.dilations, padsBegin: g.padsBegin, outDims: g.outDims };
}

/** Exported for the int8 engineer's tests and benchmarks: float32 Conv on raw arrays (NCHW). */
export function convF32(
  x: Float32Array, w: Float32Array, bias: Float32Array | undefined,
  N: number, C: number, M: number, group: number, g: SpatialGeom, y: Float32Array,
): void {
  const Cg = C / group, Mg = M / group;
  const kSize = prod(g.kDims);
  const K = Cg * kSize;
  const inSize = prod(g.inDims);
  const P = prod(g.outDims);
  if (P === 0 || N === 0 || M === 0) return;
  if (bias) for (let n = 0; n < N; n++) for (let m = 0; m < M; m++) y.fill(bias[m], (n * M + m) * P, (n * M + m + 1) * P);
  else y.fill(0, 0, N * M * P);
  if (g.nd <= 2 && Cg === 1) {
    depthwise2D(x, w, y, N, C, Mg, to2D(g, 1));
    return;
  }
  const pointwise = g.kDims.every((k, d) => k === 1 && g.strides[d] === 1 && g.padsBegin[d] === 0 && g.padsEnd[d] === 0);
  const pTile = Math.max(16, Math.min(P, Math.floor(COL_TILE / Math.max(K, 1))));
  const col = pointwise ? colScratch : colBuffer(K * pTile);
  const g2 = g.nd <= 2 ? to2D(g, Cg) : undefined;
  const gN = ndGeom(g, Cg);
  for (let n = 0; n < N; n++) {
    for (let gi = 0; gi < group; gi++) {
      const xOff = (n * C + gi * Cg) * inSize;
      const yOff = (n * M + gi * Mg) * P;
      const wOff = gi * Mg * K;
      if (pointwise) {
        gemmF32Ref(Mg, P, K, w, K, x, P, y, P, { aOffset: wOff, bOffset: xOff, cOffset: yOff, beta: 1 });
        continue;
      }
      for (let p0 = 0; p0 < P; p0 += pTile) {
        const pc = Math.min(pTile, P - p0);
        if (g2) im2colRef(x, xOff, g2, col, p0, pc, pc);
        else im2colNdRef(x, xOff, gN, col, p0, pc, pc);
        gemmF32Ref(Mg, pc, K, w, K, col, pc, y, P, { aOffset: wOff, cOffset: yOff + p0, beta: 1 });
      }
    }
  }
}

/**
 * One input channel per group: a direct loop, no GEMM (im2col would only add traffic). y holds the
 * bias. Windows fully inside the input skip the bounds work, and 3×3 kernels (MobileNet's) keep
 * their nine weights in locals.
 */
function depthwise2D(x: Float32Array, w: Float32Array, y: Float32Array, N: number, C: number, Mg: number, g: Conv2DGeom): void {
  const { H, W, kh, kw, sh, sw, dh, dw, padTop, padLeft, OH, OW } = g;
  const M = C * Mg;
  const is3x3 = kh === 3 && kw === 3;
  for (let n = 0; n < N; n++) {
    for (let m = 0; m < M; m++) {
      const c = Math.floor(m / Mg);
      const plane = (n * C + c) * H * W;
      const wBase = m * kh * kw;
      // (Only read for 3×3: a smaller kernel must not read past the end of w.)
      const k9 = is3x3 ? 1 : 0;
      const w0 = w[wBase], w1 = w[wBase + k9], w2 = w[wBase + 2 * k9], w3 = w[wBase + 3 * k9], w4 = w[wBase + 4 * k9];
      const w5 = w[wBase + 5 * k9], w6 = w[wBase + 6 * k9], w7 = w[wBase + 7 * k9], w8 = w[wBase + 8 * k9];
      let yi = (n * M + m) * OH * OW;
      for (let oy = 0; oy < OH; oy++) {
        const iy0 = oy * sh - padTop;
        const kyLo = iy0 >= 0 ? 0 : Math.ceil(-iy0 / dh);
        const kyHi = Math.min(kh, Math.floor((H - 1 - iy0) / dh) + 1);
        const fast3 = is3x3 && kyLo === 0 && kyHi === 3;
        for (let ox = 0; ox < OW; ox++, yi++) {
          const ix0 = ox * sw - padLeft;
          if (fast3 && ix0 >= 0 && ix0 + 2 * dw < W) {
            const r0 = plane + iy0 * W + ix0, r1 = r0 + dh * W, r2 = r1 + dh * W;
            y[yi] += x[r0] * w0 + x[r0 + dw] * w1 + x[r0 + 2 * dw] * w2
              + x[r1] * w3 + x[r1 + dw] * w4 + x[r1 + 2 * dw] * w5
              + x[r2] * w6 + x[r2 + dw] * w7 + x[r2 + 2 * dw] * w8;
            continue;
          }
          const kxLo = ix0 >= 0 ? 0 : Math.ceil(-ix0 / dw);
          const kxHi = Math.min(kw, Math.floor((W - 1 - ix0) / dw) + 1);
          let s = 0;
          for (let ky = kyLo; ky < kyHi; ky++) {
            const r = plane + (iy0 + ky * dh) * W + ix0;
            const wr = wBase + ky * kw;
            for (let kx = kxLo; kx < kxHi; kx++) s += x[r + kx * dw] * w[wr + kx];
          }
          y[yi] += s;
        }
      }
    }
  }
}

function convF64(
  x: Float64Array, w: Float64Array, bias: Float64Array | undefined,
  N: number, C: number, M: number, group: number, g: SpatialGeom, y: Float64Array,
): void {
  const Cg = C / group, Mg = M / group;
  const K = Cg * prod(g.kDims);
  const inSize = prod(g.inDims);
  const P = prod(g.outDims);
  const col = new Float64Array(K * P);
  const gN = ndGeom(g, Cg);
  for (let n = 0; n < N; n++) {
    for (let gi = 0; gi < group; gi++) {
      const yOff = (n * M + gi * Mg) * P;
      for (let m = 0; m < Mg; m++) y.fill(bias ? bias[gi * Mg + m] : 0, yOff + m * P, yOff + (m + 1) * P);
      im2colNdRef(x, (n * C + gi * Cg) * inSize, gN, col);
      gemmF64Ref(Mg, P, K, w, K, col, P, y, P, { aOffset: gi * Mg * K, cOffset: yOff, beta: 1 });
    }
  }
}

// ---------------------------------------------------------------------------------------------
// ConvTranspose

function runConvTranspose(inputs: readonly (Tensor | undefined)[], ctx: KernelContext): Tensor[] {
  const [X, W, B] = inputs;
  check(X && W, 'ConvTranspose needs inputs X and W');
  floatInput(X, 'ConvTranspose input X');
  check(W.dtype === X.dtype, () => `ConvTranspose weight W should be ${X.dtype} like X, got ${W.dtype}`);
  check(X.rank >= 3, () => `ConvTranspose input X should have rank >= 3, got shape ${shapeStr(X.shape)}`);
  check(W.rank === X.rank, () => `ConvTranspose weight W should have rank ${X.rank}, got shape ${shapeStr(W.shape)}`);
  const nd = X.rank - 2;
  const attrs = ctx.attrs;
  const group = attrs.int('group', 1);
  const [N, C] = X.shape;
  check(Number.isInteger(group) && group >= 1 && C % group === 0 && W.shape[0] === C,
    () => `ConvTranspose weight W shape ${shapeStr(W.shape)} should start with the ${C} input channels, divisible by group ${group}`);
  const Cg = C / group;
  const Mg = W.shape[1];
  const M = Mg * group;
  if (B) check(B.dtype === X.dtype && B.rank === 1 && B.shape[0] === M, () => `ConvTranspose bias B should be ${X.dtype} of shape [${M}], got ${shapeStr(B.shape)}`);
  const inDims = X.shape.slice(2);
  const kDims = kernelDims(attrs, W, nd);
  const strides = listAttr(attrs, 'strides', nd, 1, 1);
  const dilations = listAttr(attrs, 'dilations', nd, 1, 1);
  const outPad = listAttr(attrs, 'output_padding', nd, 0, 0);
  const autoPad = autoPadOf(attrs);
  let outShape = attrs.ints('output_shape');
  if (outShape && outShape.length === nd + 2) outShape = outShape.slice(2);
  check(!outShape || outShape.length === nd, () => `attribute 'output_shape' should have ${nd} values, got [${outShape!.join(',')}]`);
  const explicitPads = attrs.ints('pads');
  const padsBegin = new Array<number>(nd).fill(0);
  const padsEnd = new Array<number>(nd).fill(0);
  const outDims = new Array<number>(nd).fill(0);
  const full = (d: number) => strides[d] * (inDims[d] - 1) + outPad[d] + (kDims[d] - 1) * dilations[d] + 1;
  // Explicit pads win (as in ONNX's reference, even next to output_shape); otherwise output_shape or
  // SAME_* fix the output size and the pads follow from it.
  const usePads = explicitPads !== undefined && autoPad === 'NOTSET';
  const derivePads = !usePads && (outShape !== undefined || autoPad === 'SAME_UPPER' || autoPad === 'SAME_LOWER');
  if (!derivePads) {
    const pads = usePads ? explicitPads : new Array<number>(2 * nd).fill(0);
    check(pads.length === 2 * nd, () => `attribute 'pads' should have ${2 * nd} values, got [${pads.join(',')}]`);
    for (let d = 0; d < nd; d++) {
      padsBegin[d] = pads[d];
      padsEnd[d] = pads[nd + d];
      outDims[d] = outShape ? outShape[d] : full(d) - padsBegin[d] - padsEnd[d];
    }
  } else {
    // Pads derived from the requested output size (output_shape, or input × stride for SAME_*).
    for (let d = 0; d < nd; d++) {
      outDims[d] = outShape ? outShape[d] : inDims[d] * strides[d];
      const total = full(d) - outDims[d];
      const small = Math.floor(total / 2);
      padsBegin[d] = autoPad === 'SAME_UPPER' ? small : total - small;
      padsEnd[d] = total - padsBegin[d];
    }
  }
  for (let d = 0; d < nd; d++) check(outDims[d] >= 0 && Number.isInteger(outDims[d]), () => `ConvTranspose output size ${outDims[d]} in spatial dim ${d} is invalid`);
  const Y = ctx.alloc(X.dtype, [N, M, ...outDims]);
  const P = prod(inDims);
  const outSize = prod(outDims);
  const Kt = Mg * prod(kDims);
  const f32 = X.dtype === 'float32';
  const col = f32 ? new Float32Array(Kt * P) : new Float64Array(Kt * P);
  const y = Y.data as Float32Array | Float64Array;
  // Positions of the source grid play "output" for the scatter; the written image plays "input".
  const g: ConvNDGeom = { C: Mg, inDims: outDims, kDims, strides, dilations, padsBegin, outDims: inDims };
  const g2 = f32 && nd <= 2 ? to2D({ nd, inDims: outDims, kDims, strides, dilations, padsBegin, padsEnd, outDims: inDims }, Mg) : undefined;
  for (let n = 0; n < N; n++) {
    for (let gi = 0; gi < group; gi++) {
      const yOff = (n * M + gi * Mg) * outSize;
      for (let m = 0; m < Mg; m++) y.fill(B ? B.num(gi * Mg + m) : 0, yOff + m * outSize, yOff + (m + 1) * outSize);
      // col[Kt × P] = W_gᵀ · X_g, with W_g the [Cg × Kt] slice of W.
      const o = { transA: true, aOffset: gi * Cg * Kt, bOffset: (n * C + gi * Cg) * P };
      if (f32) gemmF32Ref(Kt, P, Cg, W.data as Float32Array, Kt, X.data as Float32Array, P, col as Float32Array, P, o);
      else gemmF64Ref(Kt, P, Cg, W.data as Float64Array, Kt, X.data as Float64Array, P, col as Float64Array, P, o);
      if (g2) col2imRef(col as Float32Array, g2, y as Float32Array, yOff);
      else col2imNdAddRef(col, g, y, yOff);
    }
  }
  return [Y];
}

export const ops: OpSchema[] = [
  { opType: 'Conv', run: runConv },
  { opType: 'ConvTranspose', run: runConvTranspose },
];
