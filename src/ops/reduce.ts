/**
 * Reductions (Reduce*, ArgMax/ArgMin), Softmax/LogSoftmax/Hardmax and CumSum.
 *
 * Reduce* kernels map every input element to its output slot with a broadcast plan of the
 * keepdims-shape onto the input shape, so any set of axes is one flat pass. Accumulation is in
 * float64 (bigint for int64/uint64) and rounded once on store.
 */
import { DTYPES, type DType } from '../core/dtype.js';
import { Q8Error } from '../core/errors.js';
import { normAxis, shapeStr } from '../core/shape.js';
import { Tensor } from '../tensor/tensor.js';
import type { KernelContext, OpSchema } from './registry.js';
import { broadcastPlan } from './util/broadcast.js';
import { intsOf, normAxes, readAxes, spanSize } from './util/axes.js';
import { need } from './tensor-helpers.js';

/* eslint-disable @typescript-eslint/no-explicit-any */
type Arr = any;
type Inputs = readonly (Tensor | undefined)[];

function numericOnly(t: Tensor, what: string): void {
  if (t.dtype === 'bool' || t.dtype === 'string') throw new Q8Error(`${what} must be numeric, got ${t.dtype}`);
}

// =====================================================================================================
// Reduce*
// =====================================================================================================

type ReduceKind = 'Sum' | 'SumSquare' | 'L1' | 'L2' | 'LogSum' | 'LogSumExp' | 'Max' | 'Min' | 'Mean' | 'Prod';

interface ReducePrep {
  /** Reduced axes, sorted (empty: identity). */
  axes: number[];
  keepShape: number[];
  outShape: number[];
}

/** Resolve axes/keepdims/noop_with_empty_axes; `inputSince` is the opset where `axes` became an input. */
export function reduceShapes(x: Tensor, inputs: Inputs, ctx: KernelContext, inputSince: number): ReducePrep {
  const keep = ctx.attrs.int('keepdims', 1) !== 0;
  let axes = readAxes(inputs, ctx, 1, inputSince);
  if (!axes || axes.length === 0) {
    const noop = ctx.opset >= inputSince && ctx.attrs.int('noop_with_empty_axes', 0) !== 0;
    axes = noop ? [] : x.shape.map((_, i) => i);
    if (noop) return { axes, keepShape: [...x.shape], outShape: [...x.shape] };
  }
  const ax = normAxes(axes, x.rank);
  const keepShape = x.shape.map((d, i) => (ax.includes(i) ? 1 : d));
  const outShape = keep ? keepShape : x.shape.filter((_, i) => !ax.includes(i));
  return { axes: ax, keepShape, outShape };
}

function reduceOp(kind: ReduceKind): OpSchema {
  // ReduceSum took axes as an input from opset 13; the others from opset 18.
  const inputSince = kind === 'Sum' ? 13 : 18;
  return {
    opType: `Reduce${kind}`,
    run(inputs, ctx) {
      const x = need(inputs, 0, 'data');
      // ReduceMax/ReduceMin accept bool from opset 20.
      if (!(x.dtype === 'bool' && (kind === 'Max' || kind === 'Min'))) numericOnly(x, 'data');
      const pr = reduceShapes(x, inputs, ctx, inputSince);
      if (pr.axes.length === 0 && sameLen(pr.keepShape, x.shape)) {
        // noop_with_empty_axes: the input is returned unchanged.
        return [x];
      }
      return [reduceTensor(x, kind, pr, ctx)];
    },
  };
}

function sameLen(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

export function reduceTensor(x: Tensor, kind: ReduceKind, pr: ReducePrep, ctx: KernelContext): Tensor {
  const y = ctx.alloc(x.dtype, pr.outShape);
  const m = y.size;
  const count = m === 0 ? 0 : x.size / m;
  const xd = x.data as Arr;
  const p = broadcastPlan([pr.keepShape], x.shape);
  const offs = p.offs[0]!;
  const st = p.steps[0]!;
  const inner = p.inner;
  if (DTYPES[x.dtype].big && (kind === 'L2' || kind === 'LogSum' || kind === 'LogSumExp')) {
    // Results are not integers anyway: reduce in float64, then truncate back to the integer type.
    const wide = reduceTensor(new Tensor('float64', x.shape, Float64Array.from(xd as BigInt64Array, Number)), kind, pr, ctx);
    const w = wide.data as Float64Array;
    const yd = y.data as Arr;
    for (let q = 0; q < m; q++) yd[q] = Number.isFinite(w[q]!) ? BigInt(Math.trunc(w[q]!)) : 0n;
    return y;
  }
  if (DTYPES[x.dtype].big) {
    const acc: bigint[] = new Array<bigint>(m).fill(kind === 'Prod' ? 1n : 0n);
    const seen = new Uint8Array(m);
    for (let o = 0, i = 0; o < p.outer; o++) {
      let q = offs[o]!;
      for (let j = 0; j < inner; j++, i++, q += st) {
        const v = xd[i] as bigint;
        switch (kind) {
          case 'Max': if (!seen[q] || v > acc[q]!) acc[q] = v; seen[q] = 1; break;
          case 'Min': if (!seen[q] || v < acc[q]!) acc[q] = v; seen[q] = 1; break;
          case 'Prod': acc[q]! *= v; break;
          case 'SumSquare': acc[q]! += v * v; break;
          case 'L1': acc[q]! += v < 0n ? -v : v; break;
          case 'Sum': case 'Mean': acc[q]! += v; break;
          default: throw new Q8Error(`Reduce${kind} does not support ${x.dtype}`);
        }
      }
    }
    const yd = y.data as Arr;
    for (let q = 0; q < m; q++) yd[q] = kind === 'Mean' ? (count ? acc[q]! / BigInt(count) : 0n) : acc[q]!;
    return y;
  }
  const acc = new Float64Array(m);
  const init = kind === 'Prod' ? 1 : kind === 'Max' || kind === 'LogSumExp' ? -Infinity : kind === 'Min' ? Infinity : 0;
  if (init !== 0) acc.fill(init);
  if (kind === 'LogSumExp') {
    // Stable: max first, then sum of exp(x - max).
    for (let o = 0, i = 0; o < p.outer; o++) {
      let q = offs[o]!;
      for (let j = 0; j < inner; j++, i++, q += st) { const v = xd[i]; if (v > acc[q]! || v !== v) acc[q] = v; }
    }
    const mx = acc.slice();
    acc.fill(0);
    for (let o = 0, i = 0; o < p.outer; o++) {
      let q = offs[o]!;
      for (let j = 0; j < inner; j++, i++, q += st) {
        const c = mx[q]!;
        acc[q]! += c === -Infinity || c === Infinity ? Math.exp(xd[i]) : Math.exp(xd[i] - c);
      }
    }
    const yd = y.data as Arr;
    for (let q = 0; q < m; q++) {
      const c = mx[q]!;
      yd[q] = c === -Infinity || c === Infinity ? Math.log(acc[q]!) : Math.log(acc[q]!) + c;
    }
    return y;
  }
  for (let o = 0, i = 0; o < p.outer; o++) {
    let q = offs[o]!;
    switch (kind) {
      case 'Sum': case 'Mean': case 'LogSum':
        for (let j = 0; j < inner; j++, i++, q += st) acc[q]! += xd[i];
        break;
      case 'SumSquare': case 'L2':
        for (let j = 0; j < inner; j++, i++, q += st) { const v = xd[i]; acc[q]! += v * v; }
        break;
      case 'L1':
        for (let j = 0; j < inner; j++, i++, q += st) acc[q]! += Math.abs(xd[i]);
        break;
      case 'Prod':
        for (let j = 0; j < inner; j++, i++, q += st) acc[q]! *= xd[i];
        break;
      case 'Max':
        for (let j = 0; j < inner; j++, i++, q += st) { const v = xd[i]; if (v > acc[q]! || v !== v) acc[q] = acc[q] !== acc[q] ? acc[q]! : v; }
        break;
      case 'Min':
        for (let j = 0; j < inner; j++, i++, q += st) { const v = xd[i]; if (v < acc[q]! || v !== v) acc[q] = acc[q] !== acc[q] ? acc[q]! : v; }
        break;
    }
  }
  const yd = y.data as Arr;
  const isFloat = DTYPES[x.dtype].float;
  for (let q = 0; q < m; q++) {
    let v = acc[q]!;
    if (kind === 'Mean') v = v / count;
    else if (kind === 'L2') v = Math.sqrt(v);
    else if (kind === 'LogSum') v = Math.log(v);
    if (!isFloat && !Number.isFinite(v)) v = kind === 'Max' ? intMin(x.dtype) : kind === 'Min' ? intMax(x.dtype) : 0;
    yd[q] = isFloat ? v : Math.trunc(v);
  }
  return y;
}

function intMin(d: DType): number { return DTYPES[d].signed ? -(2 ** (DTYPES[d].bytes * 8 - 1)) : 0; }
function intMax(d: DType): number { return DTYPES[d].signed ? 2 ** (DTYPES[d].bytes * 8 - 1) - 1 : 2 ** (DTYPES[d].bytes * 8) - 1; }

const reduceOps: OpSchema[] = (['L1', 'L2', 'LogSum', 'LogSumExp', 'Max', 'Mean', 'Min', 'Prod', 'Sum', 'SumSquare'] as const).map(reduceOp);

// =====================================================================================================
// ArgMax / ArgMin
// =====================================================================================================

function argOp(opType: 'ArgMax' | 'ArgMin'): OpSchema {
  const isMax = opType === 'ArgMax';
  return {
    opType,
    run(inputs, ctx) {
      const x = need(inputs, 0, 'data');
      numericOnly(x, 'data');
      const axis = normAxis(ctx.attrs.int('axis', 0), x.rank);
      const keep = ctx.attrs.int('keepdims', 1) !== 0;
      const last = ctx.opset >= 12 && ctx.attrs.int('select_last_index', 0) !== 0;
      const outer = spanSize(x.shape, 0, axis);
      const len = x.shape[axis]!;
      const inner = spanSize(x.shape, axis + 1, x.rank);
      if (len === 0) throw new Q8Error(`${opType} over an empty axis ${axis} of shape ${shapeStr(x.shape)}`);
      const outShape = keep ? x.shape.map((d, i) => (i === axis ? 1 : d)) : x.shape.filter((_, i) => i !== axis);
      const y = ctx.alloc('int64', outShape);
      const yd = y.data as BigInt64Array;
      const xd = x.data as Arr;
      for (let o = 0; o < outer; o++) {
        for (let k = 0; k < inner; k++) {
          const base = o * len * inner + k;
          let best = xd[base];
          let bi = 0;
          for (let j = 1; j < len; j++) {
            const v = xd[base + j * inner];
            const better = isMax ? (last ? v >= best : v > best) : (last ? v <= best : v < best);
            if (better) { best = v; bi = j; }
          }
          yd[o * inner + k] = BigInt(bi);
        }
      }
      return [y];
    },
  };
}

// =====================================================================================================
// Softmax / LogSoftmax / Hardmax
// =====================================================================================================

type SoftKind = 'Softmax' | 'LogSoftmax' | 'Hardmax';

function softOp(kind: SoftKind): OpSchema {
  return {
    opType: kind,
    run(inputs, ctx) {
      const x = need(inputs, 0, 'input');
      if (!DTYPES[x.dtype].float) throw new Q8Error(`${kind} needs a float input, got ${x.dtype}`);
      let outer: number, len: number, inner: number;
      if (ctx.opset < 13) {
        // Before opset 13 the input is coerced to 2-D [prod(d<axis), prod(d>=axis)].
        const axis = x.rank === 0 ? 0 : normAxis(ctx.attrs.int('axis', 1), x.rank);
        outer = spanSize(x.shape, 0, axis);
        len = spanSize(x.shape, axis, x.rank);
        inner = 1;
      } else {
        const axis = x.rank === 0 ? 0 : normAxis(ctx.attrs.int('axis', -1), x.rank);
        outer = spanSize(x.shape, 0, axis);
        len = x.rank === 0 ? 1 : x.shape[axis]!;
        inner = spanSize(x.shape, axis + 1, x.rank);
      }
      const y = ctx.alloc(x.dtype, x.shape);
      softmaxInto(x.data as Arr, y.data as Arr, outer, len, inner, kind);
      return [y];
    },
  };
}

/** Softmax-family along a strided axis: element (o, j, k) at o*len*inner + j*inner + k. */
export function softmaxInto(xd: Arr, yd: Arr, outer: number, len: number, inner: number, kind: SoftKind): void {
  if (inner > 1 && kind !== 'Hardmax') { softmaxStrided(xd, yd, outer, len, inner, kind); return; }
  for (let o = 0; o < outer; o++) {
    for (let k = 0; k < inner; k++) {
      const base = o * len * inner + k;
      let mx = -Infinity;
      let arg = 0;
      for (let j = 0, i = base; j < len; j++, i += inner) { const v = xd[i]; if (v > mx) { mx = v; arg = j; } }
      if (kind === 'Hardmax') {
        for (let j = 0, i = base; j < len; j++, i += inner) yd[i] = j === arg ? 1 : 0;
        continue;
      }
      let sum = 0;
      for (let j = 0, i = base; j < len; j++, i += inner) {
        const e = Math.exp(xd[i] - mx);
        sum += e;
        if (kind === 'Softmax') yd[i] = e;
      }
      if (kind === 'Softmax') {
        const inv = 1 / sum;
        for (let j = 0, i = base; j < len; j++, i += inner) yd[i] *= inv;
      } else {
        const lse = Math.log(sum) + mx;
        for (let j = 0, i = base; j < len; j++, i += inner) yd[i] = xd[i] - lse;
      }
    }
  }
}

/** inner > 1: sweep whole rows of `inner` contiguous elements so memory is read sequentially. */
function softmaxStrided(xd: Arr, yd: Arr, outer: number, len: number, inner: number, kind: SoftKind): void {
  const mx = new Float64Array(inner);
  const sum = new Float64Array(inner);
  for (let o = 0; o < outer; o++) {
    const base = o * len * inner;
    mx.fill(-Infinity);
    sum.fill(0);
    for (let j = 0; j < len; j++) {
      const r = base + j * inner;
      for (let k = 0; k < inner; k++) { const v = xd[r + k]; if (v > mx[k]!) mx[k] = v; }
    }
    for (let j = 0; j < len; j++) {
      const r = base + j * inner;
      for (let k = 0; k < inner; k++) {
        const e = Math.exp(xd[r + k] - mx[k]!);
        sum[k] += e;
        if (kind === 'Softmax') yd[r + k] = e;
      }
    }
    if (kind === 'Softmax') {
      for (let k = 0; k < inner; k++) sum[k] = 1 / sum[k]!;
      for (let j = 0; j < len; j++) {
        const r = base + j * inner;
        for (let k = 0; k < inner; k++) yd[r + k] *= sum[k]!;
      }
    } else {
      for (let k = 0; k < inner; k++) sum[k] = Math.log(sum[k]!) + mx[k]!;
      for (let j = 0; j < len; j++) {
        const r = base + j * inner;
        for (let k = 0; k < inner; k++) yd[r + k] = xd[r + k] - sum[k]!;
      }
    }
  }
}

// =====================================================================================================
// CumSum
// =====================================================================================================

const cumSumOp: OpSchema = {
  opType: 'CumSum',
  run(inputs, ctx) {
    const x = need(inputs, 0, 'x');
    numericOnly(x, 'x');
    const at = need(inputs, 1, 'axis');
    const av = intsOf(at, 'axis');
    if (av.length !== 1) throw new Q8Error(`axis must hold one value, got ${av.length}`);
    const axis = normAxis(av[0]!, x.rank);
    const exclusive = ctx.attrs.int('exclusive', 0) !== 0;
    const reverse = ctx.attrs.int('reverse', 0) !== 0;
    const outer = spanSize(x.shape, 0, axis);
    const len = x.shape[axis]!;
    const inner = spanSize(x.shape, axis + 1, x.rank);
    const y = ctx.alloc(x.dtype, x.shape);
    const xd = x.data as Arr, yd = y.data as Arr;
    const big = DTYPES[x.dtype].big;
    for (let o = 0; o < outer; o++) {
      for (let k = 0; k < inner; k++) {
        const base = o * len * inner + k;
        let acc: any = big ? 0n : 0;
        for (let t = 0; t < len; t++) {
          const j = reverse ? len - 1 - t : t;
          const i = base + j * inner;
          if (exclusive) { yd[i] = acc; acc += xd[i]; } else { acc += xd[i]; yd[i] = acc; }
        }
      }
    }
    return [y];
  },
};

export const ops: OpSchema[] = [
  ...reduceOps, argOp('ArgMax'), argOp('ArgMin'),
  softOp('Softmax'), softOp('LogSoftmax'), softOp('Hardmax'), cumSumOp,
];
