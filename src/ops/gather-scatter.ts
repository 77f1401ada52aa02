/**
 * Indexing operators: Gather GatherElements GatherND ScatterElements (and the deprecated Scatter)
 * ScatterND OneHot NonZero TopK, plus the small generators EyeLike Range Trilu.
 * Indices may be int32 or int64 and negative (counted from the end); out-of-range indices are a
 * Q8Error, never a silent read outside the tensor.
 */
import { DTYPES, type DType, type TensorData } from '../core/dtype.js';
import { Q8Error, check } from '../core/errors.js';
import { checkShape, normAxis, shapeStr, sizeOf, stridesOf, type Shape } from '../core/shape.js';
import { Tensor, setValue } from '../tensor/tensor.js';
import type { KernelContext, OpSchema } from './registry.js';
import { dtypeAttr, isIntType, need, perElementType, scalarOf } from './tensor-helpers.js';

function alloc(ctx: KernelContext, dtype: DType, shape: Shape): Tensor {
  checkShape(shape, 'output shape');
  return ctx.alloc(dtype, shape);
}

/** Indices as numbers, each checked against [-dim, dim) and made non-negative. */
function indexList(t: Tensor, dim: number, what: string): Float64Array {
  check(t.dtype === 'int32' || t.dtype === 'int64', () => `${what} must be int32 or int64, got ${t.dtype}`);
  const out = new Float64Array(t.size);
  for (let i = 0; i < out.length; i++) {
    let v = t.num(i);
    if (v < 0) v += dim;
    if (!(v >= 0 && v < dim)) throw new Q8Error(`${what} value ${t.num(i)} is out of range for a dimension of ${dim}`);
    out[i] = v;
  }
  return out;
}

/** Copy n consecutive elements (block copy for typed arrays). */
function copyRun(dst: TensorData, d: number, src: TensorData, s: number, n: number): void {
  if (n >= 16 && !Array.isArray(src)) (dst as Float32Array).set((src as Float32Array).subarray(s, s + n), d);
  else { const D = dst as unknown[], S = src as unknown[]; for (let i = 0; i < n; i++) D[d + i] = S[s + i]; }
}

function copyOf(ctx: KernelContext, x: Tensor): Tensor {
  const out = alloc(ctx, x.dtype, x.shape);
  copyRun(out.data, 0, x.data, 0, x.size);
  return out;
}

// ---------------------------------------------------------------- Gather family

const Gather: OpSchema = {
  opType: 'Gather', half: 'native',
  run(inputs, ctx) {
    const x = need(inputs, 0, 'data');
    const ind = need(inputs, 1, 'indices');
    check(x.rank >= 1, 'Gather data must have rank >= 1');
    const axis = normAxis(ctx.attrs.int('axis', 0), x.rank);
    const dim = x.shape[axis]!;
    const idx = indexList(ind, dim, 'Gather indices');
    const outShape = [...x.shape.slice(0, axis), ...ind.shape, ...x.shape.slice(axis + 1)];
    const out = alloc(ctx, x.dtype, outShape);
    const outer = sizeOf(x.shape.slice(0, axis)), inner = sizeOf(x.shape.slice(axis + 1));
    const n = idx.length;
    if (inner >= 16 && !Array.isArray(x.data)) {
      let d = 0;
      for (let o = 0; o < outer; o++) {
        const base = o * dim * inner;
        for (let j = 0; j < n; j++, d += inner) copyRun(out.data, d, x.data, base + idx[j]! * inner, inner);
      }
    } else gatherRowsFor(x.data)(out.data, x.data, idx, outer, dim, inner);
    return [out];
  },
};

/** Gather's element loop for short rows; self-contained so perElementType can specialise it. */
function gatherRows(dst: Float64Array, src: Float64Array, idx: Float64Array, outer: number, dim: number, inner: number): void {
  const n = idx.length;
  let d = 0;
  for (let o = 0; o < outer; o++) {
    const base = o * dim * inner;
    for (let j = 0; j < n; j++) {
      const s = base + idx[j]! * inner;
      for (let i = 0; i < inner; i++) dst[d++] = src[s + i]!;
    }
  }
}
const gatherRowsFor = perElementType(gatherRows as (...a: never[]) => void) as unknown as
  (data: TensorData) => (dst: TensorData, src: TensorData, idx: Float64Array, outer: number, dim: number, inner: number) => void;

/**
 * GatherElements' loop: out[i] = src[offset of i with the axis coordinate replaced by idx[i]].
 * Self-contained for perElementType.
 */
function gatherElements(dst: Float64Array, src: Float64Array, idx: Float64Array, shape: readonly number[], strides: readonly number[], axis: number): void {
  const r = shape.length;
  const total = dst.length;
  const pos = new Array<number>(r).fill(0);
  const sa = strides[axis]!;
  let off = 0;
  for (let f = 0; f < total; f++) {
    dst[f] = src[off + (idx[f]! - pos[axis]!) * sa]!;
    for (let a = r - 1; a >= 0; a--) {
      off += strides[a]!;
      if (++pos[a]! < shape[a]!) break;
      off -= strides[a]! * shape[a]!;
      pos[a] = 0;
    }
  }
}
const gatherElementsFor = perElementType(gatherElements as (...a: never[]) => void) as unknown as
  (data: TensorData) => (dst: TensorData, src: TensorData, idx: Float64Array, shape: readonly number[], strides: readonly number[], axis: number) => void;

/** Visit every index of `shape` with its offset under `strides` and its flat position. */
function forEachOffset(shape: Shape, strides: readonly number[], fn: (flat: number, off: number, idx: number[]) => void): void {
  const r = shape.length;
  const total = sizeOf(shape);
  const idx = new Array<number>(r).fill(0);
  let off = 0;
  for (let f = 0; f < total; f++) {
    fn(f, off, idx);
    for (let a = r - 1; a >= 0; a--) {
      off += strides[a]!;
      if (++idx[a]! < shape[a]!) break;
      off -= strides[a]! * shape[a]!;
      idx[a] = 0;
    }
  }
}

const GatherElements: OpSchema = {
  opType: 'GatherElements', half: 'native',
  run(inputs, ctx) {
    const x = need(inputs, 0, 'data');
    const ind = need(inputs, 1, 'indices');
    check(ind.rank === x.rank && x.rank >= 1, () => `GatherElements indices rank ${ind.rank} must equal data rank ${x.rank}`);
    const axis = normAxis(ctx.attrs.int('axis', 0), x.rank);
    const dim = x.shape[axis]!;
    const idx = indexList(ind, dim, 'GatherElements indices');
    for (let a = 0; a < x.rank; a++) {
      check(a === axis || ind.shape[a]! <= x.shape[a]!,
        () => `GatherElements indices ${shapeStr(ind.shape)} exceed data ${shapeStr(x.shape)} on axis ${a}`);
    }
    const out = alloc(ctx, x.dtype, ind.shape);
    const xs = stridesOf(x.shape);
    if (out.size > 0) gatherElementsFor(x.data)(out.data, x.data, idx, ind.shape, xs, axis);
    return [out];
  },
};

const GatherND: OpSchema = {
  opType: 'GatherND', half: 'native',
  run(inputs, ctx) {
    const x = need(inputs, 0, 'data');
    const ind = need(inputs, 1, 'indices');
    const b = ctx.opset >= 12 ? ctx.attrs.int('batch_dims', 0) : 0;
    check(ind.rank >= 1 && x.rank >= 1, 'GatherND data and indices must have rank >= 1');
    check(b >= 0 && b < Math.min(x.rank, ind.rank), () => `GatherND batch_dims ${b} too large`);
    const k = ind.shape[ind.rank - 1]!;
    check(k >= 1 && k <= x.rank - b, () => `GatherND index tuples of length ${k} do not fit data ${shapeStr(x.shape)} with batch_dims ${b}`);
    for (let a = 0; a < b; a++) check(x.shape[a] === ind.shape[a], () => `GatherND batch dimension ${a} differs: ${shapeStr(x.shape)} vs ${shapeStr(ind.shape)}`);
    check(ind.dtype === 'int64' || ind.dtype === 'int32', () => `GatherND indices must be int64, got ${ind.dtype}`);
    const outShape = [...ind.shape.slice(0, -1), ...x.shape.slice(b + k)];
    const out = alloc(ctx, x.dtype, outShape);
    const batch = sizeOf(x.shape.slice(0, b));
    const perBatchData = sizeOf(x.shape.slice(b));
    const tuples = sizeOf(ind.shape.slice(b, -1));
    const block = sizeOf(x.shape.slice(b + k));
    const xs = stridesOf(x.shape);
    const I = ind.toNumbers();
    let d = 0, t = 0;
    for (let bi = 0; bi < batch; bi++) {
      for (let j = 0; j < tuples; j++, t++) {
        let off = bi * perBatchData;
        for (let q = 0; q < k; q++) {
          const dim = x.shape[b + q]!;
          let v = I[t * k + q]!;
          if (v < 0) v += dim;
          if (!(v >= 0 && v < dim)) throw new Q8Error(`GatherND index ${I[t * k + q]} out of range for dimension ${dim}`);
          off += v * xs[b + q]!;
        }
        copyRun(out.data, d, x.data, off, block);
        d += block;
      }
    }
    return [out];
  },
};

// ---------------------------------------------------------------- Scatter family

type Reduce = 'none' | 'add' | 'mul' | 'max' | 'min';

function reduction(ctx: KernelContext, since: number): Reduce {
  const r = ctx.opset >= since ? ctx.attrs.string('reduction', 'none') : 'none';
  check(['none', 'add', 'mul', 'max', 'min'].includes(r), () => `reduction '${r}' is not none, add, mul, max or min`);
  return r as Reduce;
}

/** Combine an existing output element with an update under a reduction (number or bigint alike). */
function combiner(red: Reduce, dtype: DType): (a: never, b: never) => unknown {
  const bool = dtype === 'bool';
  switch (red) {
    case 'add': return bool ? (a: number, b: number) => (a || b ? 1 : 0) : (a: number, b: number) => a + b;
    case 'mul': return bool ? (a: number, b: number) => (a && b ? 1 : 0) : (a: number, b: number) => a * b;
    // NaN propagates, as numpy's maximum/minimum do (bigints are never NaN).
    case 'max': return (a: number, b: number) => (a !== a || b !== b ? NaN : b > a ? b : a);
    case 'min': return (a: number, b: number) => (a !== a || b !== b ? NaN : b < a ? b : a);
    default: return (_a: unknown, b: unknown) => b;
  }
}

function scatterElements(inputs: readonly (Tensor | undefined)[], ctx: KernelContext, red: Reduce): Tensor[] {
  const x = need(inputs, 0, 'data');
  const ind = need(inputs, 1, 'indices');
  const upd = need(inputs, 2, 'updates');
  check(ind.rank === x.rank && x.rank >= 1, () => `ScatterElements indices rank ${ind.rank} must equal data rank ${x.rank}`);
  check(upd.dtype === x.dtype, () => `ScatterElements updates type ${upd.dtype} differs from data ${x.dtype}`);
  check(upd.shape.length === ind.rank && upd.shape.every((d, i) => d === ind.shape[i]),
    () => `ScatterElements updates ${shapeStr(upd.shape)} must match indices ${shapeStr(ind.shape)}`);
  const axis = normAxis(ctx.attrs.int('axis', 0), x.rank);
  for (let a = 0; a < x.rank; a++) {
    check(a === axis || ind.shape[a]! <= x.shape[a]!, () => `ScatterElements indices ${shapeStr(ind.shape)} exceed data ${shapeStr(x.shape)}`);
  }
  const idx = indexList(ind, x.shape[axis]!, 'ScatterElements indices');
  const out = copyOf(ctx, x);
  const xs = stridesOf(x.shape);
  const sa = xs[axis]!;
  const O = out.data as unknown[], U = upd.data as unknown[];
  const f = combiner(red, x.dtype) as (a: unknown, b: unknown) => unknown;
  forEachOffset(ind.shape, xs, (k, off, i) => {
    const p = off + (idx[k]! - i[axis]!) * sa;
    O[p] = f(O[p], U[k]);
  });
  return [out];
}

const ScatterElements: OpSchema = {
  opType: 'ScatterElements',
  run: (inputs, ctx) => scatterElements(inputs, ctx, reduction(ctx, 16)),
};

/** Scatter (opsets 9-10) is ScatterElements without reduction. */
const Scatter: OpSchema = { opType: 'Scatter', run: (inputs, ctx) => scatterElements(inputs, ctx, 'none') };

const ScatterND: OpSchema = {
  opType: 'ScatterND',
  run(inputs, ctx) {
    const x = need(inputs, 0, 'data');
    const ind = need(inputs, 1, 'indices');
    const upd = need(inputs, 2, 'updates');
    const red = reduction(ctx, 16);
    check(ind.rank >= 1, 'ScatterND indices must have rank >= 1');
    check(ind.dtype === 'int64' || ind.dtype === 'int32', () => `ScatterND indices must be int64, got ${ind.dtype}`);
    check(upd.dtype === x.dtype, () => `ScatterND updates type ${upd.dtype} differs from data ${x.dtype}`);
    const k = ind.shape[ind.rank - 1]!;
    check(k >= 1 && k <= x.rank, () => `ScatterND index tuples of length ${k} do not fit data ${shapeStr(x.shape)}`);
    const want = [...ind.shape.slice(0, -1), ...x.shape.slice(k)];
    check(want.length === upd.rank && want.every((d, i) => d === upd.shape[i]),
      () => `ScatterND updates ${shapeStr(upd.shape)} should be ${shapeStr(want)}`);
    const out = copyOf(ctx, x);
    const xs = stridesOf(x.shape);
    const block = sizeOf(x.shape.slice(k));
    const tuples = sizeOf(ind.shape.slice(0, -1));
    const I = ind.toNumbers();
    const O = out.data as unknown[], U = upd.data as unknown[];
    const f = combiner(red, x.dtype) as (a: unknown, b: unknown) => unknown;
    for (let t = 0; t < tuples; t++) {
      let off = 0;
      for (let q = 0; q < k; q++) {
        const dim = x.shape[q]!;
        let v = I[t * k + q]!;
        if (v < 0) v += dim;
        if (!(v >= 0 && v < dim)) throw new Q8Error(`ScatterND index ${I[t * k + q]} out of range for dimension ${dim}`);
        off += v * xs[q]!;
      }
      if (red === 'none') copyRun(out.data, off, upd.data, t * block, block);
      else for (let i = 0; i < block; i++) O[off + i] = f(O[off + i], U[t * block + i]);
    }
    return [out];
  },
};

// ---------------------------------------------------------------- OneHot / NonZero / TopK

const OneHot: OpSchema = {
  opType: 'OneHot', half: 'native',
  run(inputs, ctx) {
    const ind = need(inputs, 0, 'indices');
    const depthT = need(inputs, 1, 'depth');
    const values = need(inputs, 2, 'values');
    check(values.size === 2 && values.rank <= 1, () => `OneHot values must be [off, on], got shape ${shapeStr(values.shape)}`);
    const depth = Math.trunc(scalarOf(depthT, 'depth'));
    check(depth >= 1, () => `OneHot depth must be >= 1, got ${depth}`);
    const r = ind.rank + 1;
    const axis = normAxis(ctx.attrs.int('axis', -1), r);
    const outShape = [...ind.shape.slice(0, axis), depth, ...ind.shape.slice(axis)];
    const out = alloc(ctx, values.dtype, outShape);
    const O = out.data as unknown as { fill(v: unknown): void } & unknown[];
    const V = values.data as unknown[];
    O.fill(V[0]);
    const outer = sizeOf(ind.shape.slice(0, axis)), inner = sizeOf(ind.shape.slice(axis));
    for (let o = 0; o < outer; o++) {
      for (let i = 0; i < inner; i++) {
        let v = Math.trunc(ind.num(o * inner + i));
        if (v < 0) v += depth;
        if (v >= 0 && v < depth) O[(o * depth + v) * inner + i] = V[1];
      }
    }
    return [out];
  },
};

const NonZero: OpSchema = {
  opType: 'NonZero', half: 'native',
  run(inputs, ctx) {
    const x = need(inputs, 0, 'X');
    check(x.dtype !== 'string', 'NonZero needs a numeric input');
    const X = x.data as ArrayLike<number | bigint>;
    const hits: number[] = [];
    if (x.dtype === 'float16' || x.dtype === 'bfloat16') { for (let i = 0; i < x.size; i++) if ((X[i] as number) & 0x7fff) hits.push(i); }
    else for (let i = 0; i < x.size; i++) if (X[i] != 0) hits.push(i); // eslint-disable-line eqeqeq
    const r = x.rank;
    const out = alloc(ctx, 'int64', [r, hits.length]);
    const O = out.data as BigInt64Array;
    const xs = stridesOf(x.shape);
    const n = hits.length;
    hits.forEach((h, j) => {
      let rem = h;
      for (let a = 0; a < r; a++) { const q = Math.floor(rem / xs[a]!); O[a * n + j] = BigInt(q); rem -= q * xs[a]!; }
    });
    return [out];
  },
};

const TopK: OpSchema = {
  opType: 'TopK',
  run(inputs, ctx) {
    const x = need(inputs, 0, 'X');
    check(x.rank >= 1, 'TopK input must have rank >= 1');
    const k = ctx.opset >= 10 ? scalarOf(need(inputs, 1, 'K'), 'K') : ctx.attrs.int('k', -1);
    const axis = normAxis(ctx.attrs.int('axis', -1), x.rank);
    const largest = ctx.opset >= 11 ? ctx.attrs.int('largest', 1) !== 0 : true;
    const dim = x.shape[axis]!;
    check(Number.isInteger(k) && k >= 0 && k <= dim, () => `TopK k=${k} must be in [0, ${dim}] for axis ${axis} of ${shapeStr(x.shape)}`);
    check(x.dtype !== 'string' && x.dtype !== 'bool', () => `TopK needs a numeric input, got ${x.dtype}`);
    const outShape = x.shape.slice();
    outShape[axis] = k;
    const vals = alloc(ctx, x.dtype, outShape);
    const inds = alloc(ctx, 'int64', outShape);
    const outer = sizeOf(x.shape.slice(0, axis)), inner = sizeOf(x.shape.slice(axis + 1));
    const X = x.data as unknown as ArrayLike<number>, V = vals.data as unknown as number[], I = inds.data as BigInt64Array;
    const order = new Array<number>(dim);
    const sign = largest ? -1 : 1;
    // NaN sorts as the largest value (first when largest, last otherwise); ties keep the lower index first.
    let base = 0;
    const cmp = (a: number, b: number): number => {
      const va = X[base + a * inner]!, vb = X[base + b * inner]!;
      if (va !== vb) {
        if (va !== va) return largest ? -1 : 1;
        if (vb !== vb) return largest ? 1 : -1;
        return va < vb ? -sign : sign;
      }
      return a - b;
    };
    // Few wanted out of many (e.g. detection post-processing): keep the k best in a heap, O(n log k).
    const useHeap = k * 8 < dim;
    const heap = new Array<number>(k);
    const siftDown = (h: number[], n: number, at: number): void => {
      // heap root = the worst of the kept entries (the one cmp orders last)
      for (;;) {
        const l = 2 * at + 1, r = l + 1;
        let m = at;
        if (l < n && cmp(h[l]!, h[m]!) > 0) m = l;
        if (r < n && cmp(h[r]!, h[m]!) > 0) m = r;
        if (m === at) return;
        const t = h[at]!; h[at] = h[m]!; h[m] = t; at = m;
      }
    };
    for (let o = 0; o < outer; o++) {
      for (let i = 0; i < inner; i++) {
        base = o * dim * inner + i;
        let best: number[];
        if (useHeap && k > 0) {
          let n = 0;
          for (let j = 0; j < dim; j++) {
            if (n < k) {
              let at = n++;
              heap[at] = j;
              while (at > 0) { const up = (at - 1) >> 1; if (cmp(heap[at]!, heap[up]!) <= 0) break; const t = heap[at]!; heap[at] = heap[up]!; heap[up] = t; at = up; }
            } else if (cmp(j, heap[0]!) < 0) { heap[0] = j; siftDown(heap, n, 0); }
          }
          best = heap.slice(0, k).sort(cmp);
        } else {
          for (let j = 0; j < dim; j++) order[j] = j;
          best = order.sort(cmp);
        }
        for (let j = 0; j < k; j++) {
          const p = (o * k + j) * inner + i;
          V[p] = X[base + best[j]! * inner]!;
          I[p] = BigInt(best[j]!);
        }
      }
    }
    return [vals, inds];
  },
};

// ---------------------------------------------------------------- EyeLike / Range / Trilu

const EyeLike: OpSchema = {
  opType: 'EyeLike', half: 'native',
  run(inputs, ctx) {
    const x = need(inputs, 0, 'input');
    check(x.rank === 2, () => `EyeLike needs a 2-D input, got ${shapeStr(x.shape)}`);
    const dtype = ctx.attrs.has('dtype') ? dtypeAttr(ctx.attrs.int('dtype', 1), 'EyeLike dtype') : x.dtype;
    const k = ctx.attrs.int('k', 0);
    const [n, m] = x.shape as [number, number];
    const out = alloc(ctx, dtype, [n, m]);
    for (let i = 0; i < n; i++) {
      const j = i + k;
      if (j >= 0 && j < m) setValue(out.data, dtype, i * m + j, 1);
    }
    return [out];
  },
};

const Range: OpSchema = {
  opType: 'Range',
  run(inputs, ctx) {
    const [s, l, d] = [need(inputs, 0, 'start'), need(inputs, 1, 'limit'), need(inputs, 2, 'delta')];
    check(s.dtype === l.dtype && s.dtype === d.dtype, () => `Range inputs must share a type: ${s.dtype}, ${l.dtype}, ${d.dtype}`);
    check(s.dtype !== 'string' && s.dtype !== 'bool', () => `Range needs numeric inputs, got ${s.dtype}`);
    const dtype = s.dtype;
    if (DTYPES[dtype].big) {
      const a = (s.data as BigInt64Array)[0]!, b = (l.data as BigInt64Array)[0]!, c = (d.data as BigInt64Array)[0]!;
      check(s.size === 1 && l.size === 1 && d.size === 1, 'Range inputs must be scalars');
      check(c !== 0n, 'Range delta must not be 0');
      const diff = b - a;
      let n = diff / c; // ceil for positive quotients
      if (n * c !== diff && (diff > 0n) === (c > 0n)) n += 1n;
      const count = n > 0n ? Number(n) : 0;
      const out = alloc(ctx, dtype, [count]);
      const O = out.data as BigInt64Array;
      for (let i = 0; i < count; i++) O[i] = a + BigInt(i) * c;
      return [out];
    }
    const a = scalarOf(s, 'start'), b = scalarOf(l, 'limit'), c = scalarOf(d, 'delta');
    check(c !== 0 && Number.isFinite(a) && Number.isFinite(b) && Number.isFinite(c), `Range needs finite start/limit and a non-zero delta`);
    const count = Math.max(Math.ceil((b - a) / c), 0);
    const out = alloc(ctx, dtype, [count]);
    const O = out.data as Float64Array;
    if (isIntType(dtype)) for (let i = 0; i < count; i++) O[i] = a + i * c;
    else {
      // Accumulate in the output precision, as the spec's loop (and the reference) does.
      let v = a;
      for (let i = 0; i < count; i++) { O[i] = v; v = O[i]! + c; }
    }
    return [out];
  },
};

const Trilu: OpSchema = {
  opType: 'Trilu', half: 'native',
  run(inputs, ctx) {
    const x = need(inputs, 0, 'input');
    check(x.rank >= 2, () => `Trilu needs rank >= 2, got ${shapeStr(x.shape)}`);
    const k = inputs[1] ? scalarOf(inputs[1], 'k') : 0;
    const upper = ctx.attrs.int('upper', 1) !== 0;
    const n = x.shape[x.rank - 2]!, m = x.shape[x.rank - 1]!;
    const out = alloc(ctx, x.dtype, x.shape);
    const O = out.data as unknown[], X = x.data as unknown[];
    const mats = sizeOf(x.shape.slice(0, -2));
    for (let b = 0; b < mats; b++) {
      for (let i = 0; i < n; i++) {
        const row = (b * n + i) * m;
        for (let j = 0; j < m; j++) if (upper ? j - i >= k : j - i <= k) O[row + j] = X[row + j];
      }
    }
    return [out];
  },
};

export const ops: OpSchema[] = [
  Gather, GatherElements, GatherND, ScatterElements, Scatter, ScatterND, OneHot, NonZero, TopK, EyeLike, Range, Trilu,
];
