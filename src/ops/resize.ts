/**
 * Resize (opsets 10-19) and Upsample (opsets 1-9).
 *
 * Resampling is separable: each resized axis gets a table of taps (input index, weight) per output
 * position, and the axes are processed one after another. Nearest mode is a pure index gather
 * (exact for every dtype, int64 included); linear and cubic work in float64 and store once.
 *
 * Coordinate mapping follows the spec's formulas (x_resized -> x_original), with `scale` the given
 * scale (or output/input when `sizes` is given) and the resized length taken as scale * input
 * length, as ONNX's reference does. Taps outside the input read the edge value unless
 * exclude_outside drops them; tf_crop_and_resize points outside the input give extrapolation_value.
 */
import { DTYPES } from '../core/dtype.js';
import { check } from '../core/errors.js';
import { checkShape, normAxis, shapeStr, sizeOf, stridesOf, type Shape } from '../core/shape.js';
import { setValue, type Tensor } from '../tensor/tensor.js';
import type { KernelContext, OpSchema } from './registry.js';
import { intList, mapGatherFor, need } from './tensor-helpers.js';

type Mode = 'nearest' | 'linear' | 'cubic';
type NearestMode = 'round_prefer_floor' | 'round_prefer_ceil' | 'floor' | 'ceil' | 'simple';

const COORD_MODES = ['half_pixel', 'half_pixel_symmetric', 'pytorch_half_pixel', 'align_corners', 'asymmetric',
  'tf_half_pixel_for_nn', 'tf_crop_and_resize'] as const;
type CoordMode = typeof COORD_MODES[number];

export interface ResizeParams {
  mode: Mode;
  coord: CoordMode;
  nearest: NearestMode;
  cubicA: number;
  excludeOutside: boolean;
  extrapolation: number;
  antialias: boolean;
  /** Per input axis: output length, scale, roi start/end (fractions of the input, for tf_crop_and_resize). */
  outShape: number[];
  scales: number[];
  /** Axes whose output length was given exactly (sizes, stretch policy): their resized length is that integer. */
  exact?: boolean[];
  roiStart: number[];
  roiEnd: number[];
}

/** Map an output coordinate to the input coordinate space for one axis. */
function toOriginal(p: ResizeParams, a: number, x: number, inLen: number): number {
  const scale = p.scales[a]!;
  // The resized length: scale × input (possibly fractional, as the reference uses it), or the given size.
  const outLenF = p.exact?.[a] ? p.outShape[a]! : scale * inLen;
  switch (p.coord) {
    case 'half_pixel': return (x + 0.5) / scale - 0.5;
    case 'half_pixel_symmetric': {
      const adjustment = p.outShape[a]! / outLenF;
      const offset = (inLen / 2) * (1 - adjustment);
      return offset + (x + 0.5) / scale - 0.5;
    }
    case 'pytorch_half_pixel': return outLenF > 1 ? (x + 0.5) / scale - 0.5 : 0;
    case 'align_corners': return outLenF === 1 ? 0 : (x * (inLen - 1)) / (outLenF - 1);
    case 'asymmetric': return x / scale;
    case 'tf_half_pixel_for_nn': return (x + 0.5) / scale;
    case 'tf_crop_and_resize': {
      const s = p.roiStart[a]!, e = p.roiEnd[a]!;
      return outLenF > 1
        ? s * (inLen - 1) + (x * (e - s) * (inLen - 1)) / (outLenF - 1)
        : 0.5 * (s + e) * (inLen - 1);
    }
  }
}

function nearestIndex(x: number, mode: NearestMode, downsampling: boolean): number {
  switch (mode) {
    case 'round_prefer_floor': return Math.ceil(x - 0.5);
    case 'round_prefer_ceil': return Math.floor(x + 0.5);
    case 'floor': return Math.floor(x);
    case 'ceil': return Math.ceil(x);
    // Resize-10 / Upsample: truncate when enlarging, round up when shrinking (as runtimes of that era did).
    case 'simple': return downsampling ? Math.ceil(x) : Math.floor(x);
  }
}

function cubicKernel(t: number, A: number): number {
  t = Math.abs(t);
  if (t <= 1) return ((A + 2) * t - (A + 3)) * t * t + 1;
  if (t < 2) return ((A * t - 5 * A) * t + 8 * A) * t - 4 * A;
  return 0;
}

/**
 * Taps for one axis, `n` per output position: input indices and weights in flat arrays
 * (position o uses entries o*n .. o*n+n-1); `extrapolate[o]` marks tf_crop_and_resize points outside.
 */
interface AxisTaps { n: number; idx: Int32Array; w: Float64Array; extrapolate: Uint8Array; identity: boolean }

function axisTaps(p: ResizeParams, a: number, inLen: number): AxisTaps {
  const outLen = p.outShape[a]!;
  const scale = p.scales[a]!;
  const support = p.mode === 'linear' ? 1 : 2;
  const s = p.antialias ? Math.min(scale, 1) : 1;
  const iStart = p.mode === 'nearest' ? 0 : Math.floor(-support / s) + 1;
  const n = p.mode === 'nearest' ? 1 : 2 - 2 * iStart;
  check(outLen * n <= 2 ** 28, () => `Resize: ${outLen} outputs × ${n} taps on axis ${a} is too large`);
  const idx = new Int32Array(outLen * n), w = new Float64Array(outLen * n);
  const extrapolate = new Uint8Array(outLen);
  let identity = outLen === inLen;
  for (let o = 0; o < outLen; o++) {
    const x = toOriginal(p, a, o, inLen);
    const at = o * n;
    if (p.coord === 'tf_crop_and_resize' && (x < 0 || x > inLen - 1)) { extrapolate[o] = 1; identity = false; continue; }
    if (p.mode === 'nearest') {
      const i = Math.min(Math.max(nearestIndex(x, p.nearest, scale < 1), 0), inLen - 1);
      if (i !== o) identity = false;
      idx[at] = i; w[at] = 1;
      continue;
    }
    const x0 = Math.floor(x);
    const r = x - x0;
    let sum = 0;
    for (let k = 0; k < n; k++) {
      const i = iStart + k;
      const t = s * (i - r);
      let wt = p.mode === 'linear' ? Math.max(0, 1 - Math.abs(t)) : cubicKernel(t, p.cubicA);
      const src = x0 + i;
      if (p.excludeOutside && (src < 0 || src >= inLen)) wt = 0;
      idx[at + k] = Math.min(Math.max(src, 0), inLen - 1);
      w[at + k] = wt;
      sum += wt;
    }
    if (p.antialias || p.excludeOutside) {
      check(sum !== 0, 'Resize: all interpolation weights are zero');
      for (let k = 0; k < n; k++) w[at + k] = w[at + k]! / sum;
    }
    if (r !== 0 || x0 !== o) identity = false;
  }
  return { n, idx, w, extrapolate, identity };
}

/** Nearest: one gather over all axes, exact for every dtype. */
function resizeNearest(x: Tensor, p: ResizeParams, out: Tensor): void {
  const r = x.rank;
  const xs = stridesOf(x.shape);
  const maps = p.outShape.map((m, a) => {
    const t = axisTaps(p, a, x.shape[a]!);
    const map = new Float64Array(m);
    for (let o = 0; o < m; o++) map[o] = t.extrapolate[o] ? -Infinity : t.idx[o]! * xs[a]!;
    return map;
  });
  const O = out.data as unknown[], X = x.data as unknown[];
  const total = out.size;
  if (total === 0) return;
  const ext = DTYPES[x.dtype].make(1);
  setValue(ext, x.dtype, 0, x.dtype === 'int64' || x.dtype === 'uint64' ? BigInt(Math.trunc(p.extrapolation)) : p.extrapolation);
  const extV = (ext as unknown[])[0];
  if (r === 0) { O[0] = X[0]; return; }
  mapGatherFor(x.data)(out.data, x.data, maps, p.outShape, 0, extV);
}

/**
 * Linear / cubic: separable passes, accumulated in float64 and stored once per pass. Leading axes
 * that are not resized are walked slice by slice, so intermediates stay small and are reused.
 */
function resizeInterp(x: Tensor, p: ResizeParams, out: Tensor): void {
  const active: number[] = [];
  const taps: AxisTaps[] = [];
  for (let a = 0; a < x.rank; a++) {
    const t = axisTaps(p, a, x.shape[a]!);
    if (!t.identity) { active.push(a); taps.push(t); }
  }
  const src: Float32Array | Float64Array = x.dtype === 'float32' || x.dtype === 'float64'
    ? (x.data as Float32Array) : Float64Array.from({ length: x.size }, (_, i) => x.num(i));
  const direct = out.dtype === 'float32' || out.dtype === 'float64';
  const final: Float32Array | Float64Array = direct ? (out.data as Float32Array) : new Float64Array(out.size);
  if (active.length === 0) final.set(src);
  else {
    const a0 = active[0]!;
    const batch = sizeOf(x.shape.slice(0, a0));
    const inPlane = sizeOf(x.shape.slice(a0)), outPlane = sizeOf(p.outShape.slice(a0));
    // Per pass: the slice shape before it, and a reusable buffer for its result (except the last).
    const shapes: number[][] = [];
    const bufs: Float64Array[] = [];
    let sh = x.shape.slice(a0);
    active.forEach((a, ai) => {
      shapes.push(sh);
      sh = sh.slice();
      sh[a - a0] = p.outShape[a]!;
      if (ai < active.length - 1) bufs.push(new Float64Array(sizeOf(sh)));
    });
    const row = new Float64Array(Math.max(1, ...shapes.map((s, ai) => sizeOf(s.slice(active[ai]! - a0 + 1)))));
    for (let b = 0; b < batch; b++) {
      let cur: Float32Array | Float64Array = src.subarray(b * inPlane, (b + 1) * inPlane);
      active.forEach((a, ai) => {
        const last = ai === active.length - 1;
        const next = last ? final.subarray(b * outPlane, (b + 1) * outPlane) : bufs[ai]!;
        resizePass(cur, shapes[ai]!, a - a0, p.outShape[a]!, taps[ai]!, p.extrapolation, next, row);
        cur = next;
      });
    }
  }
  if (!direct) storeInto(out, final);
}

/** One axis: next[.., o, ..] = Σ_k w[o,k] · cur[.., idx[o,k], ..]. */
function resizePass(
  cur: ArrayLike<number>, shape: readonly number[], a: number, outLen: number, t: AxisTaps, extrapolation: number,
  next: Float32Array | Float64Array, row: Float64Array,
): void {
  const inLen = shape[a]!;
  const outer = sizeOf(shape.slice(0, a)), inner = sizeOf(shape.slice(a + 1));
  const { n, idx, w, extrapolate } = t;
  if (inner === 1) {
    for (let b = 0; b < outer; b++) {
      const src = b * inLen, dst = b * outLen;
      for (let o = 0, at = 0; o < outLen; o++, at += n) {
        if (extrapolate[o]) { next[dst + o] = extrapolation; continue; }
        let acc = 0;
        for (let k = 0; k < n; k++) acc += w[at + k]! * cur[src + idx[at + k]!]!;
        next[dst + o] = acc;
      }
    }
    return;
  }
  const r = row.subarray(0, inner);
  for (let b = 0; b < outer; b++) {
    const src = b * inLen * inner, dst = b * outLen * inner;
    for (let o = 0, at = 0; o < outLen; o++, at += n) {
      const d = dst + o * inner;
      if (extrapolate[o]) { next.fill(extrapolation, d, d + inner); continue; }
      r.fill(0);
      for (let k = 0; k < n; k++) {
        const wk = w[at + k]!;
        if (wk === 0) continue;
        const s = src + idx[at + k]! * inner;
        for (let i = 0; i < inner; i++) r[i] += wk * cur[s + i]!;
      }
      next.set(r, d);
    }
  }
}

/** Store float64 results into an integer/bool output (truncating, as a cast does). */
function storeInto(out: Tensor, v: ArrayLike<number>): void {
  if (DTYPES[out.dtype].big) { const O = out.data as BigInt64Array; for (let i = 0; i < v.length; i++) O[i] = BigInt(Math.trunc(v[i]!)); }
  else if (out.dtype === 'bool') { const O = out.data as Uint8Array; for (let i = 0; i < v.length; i++) O[i] = v[i] ? 1 : 0; }
  else (out.data as Float32Array).set(v);
}

export function resizeTensor(x: Tensor, p: ResizeParams, ctx: KernelContext): Tensor {
  checkShape(p.outShape, 'Resize output shape');
  const out = ctx.alloc(x.dtype, p.outShape);
  if (out.size === 0) return out;
  check(x.size > 0, () => `Resize: cannot resize an empty input ${shapeStr(x.shape)} to ${shapeStr(p.outShape)}`);
  if (p.mode === 'nearest') resizeNearest(x, p, out);
  else {
    check(x.dtype !== 'string', 'Resize: linear/cubic modes need a numeric input');
    resizeInterp(x, p, out);
  }
  return out;
}

function floats(t: Tensor | undefined): number[] | undefined {
  if (!t || t.size === 0) return undefined;
  return t.toNumbers();
}

function modeAttr(ctx: KernelContext, allowed: readonly string[]): Mode {
  let m = ctx.attrs.string('mode', 'nearest');
  if (m === 'bilinear' || m === 'trilinear') m = 'linear';
  check(allowed.includes(m), () => `mode '${ctx.attrs.string('mode', '')}' is not one of ${allowed.join(', ')}`);
  return m as Mode;
}

/** Output shape from scales: floor(input × scale) (× roi extent for tf_crop_and_resize). */
function sizesFromScales(inShape: Shape, scales: readonly number[], roiS: readonly number[], roiE: readonly number[], crop: boolean): number[] {
  return inShape.map((d, a) => {
    const s = scales[a]!;
    check(Number.isFinite(s) && s > 0, () => `scales [${scales.join(',')}] must be positive`);
    const ext = crop ? roiE[a]! - roiS[a]! : 1;
    return Math.floor(d * ext * s);
  });
}

const Resize: OpSchema = {
  opType: 'Resize',
  half: 'upcast',
  run(inputs, ctx) {
    const x = need(inputs, 0, 'X');
    const r = x.rank;
    const attrs = ctx.attrs;
    if (ctx.opset < 11) {
      // Resize-10: scales only, asymmetric mapping, nearest or linear.
      const scales = floats(need(inputs, 1, 'scales'));
      check(scales && scales.length === r, () => `Resize scales must have ${r} entries`);
      const mode = modeAttr(ctx, ['nearest', 'linear']);
      const p: ResizeParams = {
        mode, coord: 'asymmetric', nearest: 'simple', cubicA: -0.75, excludeOutside: false, extrapolation: 0, antialias: false,
        outShape: sizesFromScales(x.shape, scales, [], [], false), scales, roiStart: [], roiEnd: [],
      };
      return [resizeTensor(x, p, ctx)];
    }
    const mode = modeAttr(ctx, ['nearest', 'linear', 'cubic']);
    const coord = attrs.string('coordinate_transformation_mode', 'half_pixel');
    check((COORD_MODES as readonly string[]).includes(coord), () => `coordinate_transformation_mode '${coord}' is not one of ${COORD_MODES.join(', ')}`);
    const nearest = attrs.string('nearest_mode', 'round_prefer_floor');
    check(['round_prefer_floor', 'round_prefer_ceil', 'floor', 'ceil'].includes(nearest), () => `nearest_mode '${nearest}' is not valid`);
    const policy = ctx.opset >= 18 ? attrs.string('keep_aspect_ratio_policy', 'stretch') : 'stretch';
    check(['stretch', 'not_larger', 'not_smaller'].includes(policy), () => `keep_aspect_ratio_policy '${policy}' is not valid`);
    const axesRaw = ctx.opset >= 18 ? attrs.ints('axes') : undefined;
    const axes = axesRaw ? axesRaw.map((a) => normAxis(a, r, 'axes')) : x.shape.map((_, i) => i);
    check(new Set(axes).size === axes.length, () => `Resize axes [${axesRaw!.join(',')}] has duplicates`);
    const na = axes.length;
    const crop = coord === 'tf_crop_and_resize';
    const roiStart = new Array<number>(r).fill(0), roiEnd = new Array<number>(r).fill(1);
    const roi = crop ? floats(inputs[1]) : undefined;
    if (crop) {
      check(roi && roi.length === 2 * na, () => `Resize with tf_crop_and_resize needs roi of ${2 * na} values`);
      axes.forEach((a, i) => { roiStart[a] = roi[i]!; roiEnd[a] = roi[na + i]!; });
    }
    const scalesIn = floats(inputs[2]);
    const sizesIn = inputs[3] && inputs[3].size > 0 ? intList(inputs[3], 'sizes') : undefined;
    check(!(scalesIn && sizesIn), 'Resize: give either scales or sizes, not both');
    check(scalesIn || sizesIn, 'Resize needs scales or sizes');
    const scales = new Array<number>(r).fill(1);
    let outShape: number[];
    const exact = new Array<boolean>(r).fill(false);
    if (scalesIn) {
      check(scalesIn.length === na, () => `Resize scales has ${scalesIn.length} entries, expected ${na}`);
      axes.forEach((a, i) => { scales[a] = scalesIn[i]!; });
      outShape = sizesFromScales(x.shape, scales, roiStart, roiEnd, crop);
    } else {
      const sizes = sizesIn!;
      check(sizes.length === na, () => `Resize sizes has ${sizes.length} entries, expected ${na}`);
      check(sizes.every((s) => Number.isSafeInteger(s) && s >= 0), () => `Resize sizes [${sizes.join(',')}] must be >= 0`);
      outShape = x.shape.slice();
      axes.forEach((a, i) => { outShape[a] = sizes[i]!; scales[a] = sizes[i]! / x.shape[a]!; exact[a] = true; });
      if (policy !== 'stretch') {
        const ss = axes.map((a) => scales[a]!);
        const s = policy === 'not_larger' ? Math.min(...ss) : Math.max(...ss);
        for (const a of axes) { scales[a] = s; outShape[a] = Math.floor(s * x.shape[a]! + 0.5); exact[a] = false; }
      }
    }
    const p: ResizeParams = {
      mode, coord: coord as CoordMode, nearest: nearest as NearestMode,
      cubicA: attrs.float('cubic_coeff_a', -0.75),
      excludeOutside: attrs.int('exclude_outside', 0) !== 0,
      extrapolation: attrs.float('extrapolation_value', 0),
      antialias: ctx.opset >= 18 && attrs.int('antialias', 0) !== 0 && mode !== 'nearest',
      outShape, scales, roiStart, roiEnd, exact,
    };
    return [resizeTensor(x, p, ctx)];
  },
};

const Upsample: OpSchema = {
  opType: 'Upsample',
  run(inputs, ctx) {
    const x = need(inputs, 0, 'X');
    let scales: number[];
    if (ctx.opset >= 9) scales = floats(need(inputs, 1, 'scales')) ?? [];
    else if (ctx.opset >= 7) scales = ctx.attrs.floats('scales', []);
    else {
      // Upsample-1: NCHW with height_scale / width_scale.
      check(x.rank === 4, () => `Upsample-1 needs a 4-D input, got ${shapeStr(x.shape)}`);
      scales = [1, 1, ctx.attrs.float('height_scale', 1), ctx.attrs.float('width_scale', 1)];
    }
    check(scales.length === x.rank, () => `Upsample scales has ${scales.length} entries for rank ${x.rank}`);
    check(scales.every((s) => s >= 1), () => `Upsample scales [${scales.join(',')}] must be >= 1`);
    const mode = modeAttr(ctx, ['nearest', 'linear']);
    const p: ResizeParams = {
      mode, coord: 'asymmetric', nearest: 'simple', cubicA: -0.75, excludeOutside: false, extrapolation: 0, antialias: false,
      outShape: sizesFromScales(x.shape, scales, [], [], false), scales, roiStart: [], roiEnd: [],
    };
    return [resizeTensor(x, p, ctx)];
  },
};

export const ops: OpSchema[] = [Resize, Upsample];
