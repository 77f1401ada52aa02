/**
 * Normalization operators: BatchNormalization (all opsets, inference and training mode),
 * InstanceNormalization, LayerNormalization, MeanVarianceNormalization, LRN.
 * Statistics are accumulated in float64 and results rounded once on store.
 */
import { DTYPES, isHalf } from '../core/dtype.js';
import { Q8Error } from '../core/errors.js';
import { shapeStr } from '../core/shape.js';
import { Tensor } from '../tensor/tensor.js';
import type { KernelContext, OpSchema } from './registry.js';
import { broadcastIndex } from './util/broadcast.js';
import { axisOf, normAxes, spanSize } from './util/axes.js';
import { need } from './tensor-helpers.js';

/* eslint-disable @typescript-eslint/no-explicit-any */
type Arr = any;
type Inputs = readonly (Tensor | undefined)[];

function floatInput(t: Tensor, what: string): void {
  if (!DTYPES[t.dtype].float) throw new Q8Error(`${what} must be a float tensor, got ${t.dtype}`);
}

/** Number of outputs the node asks for (trailing omitted outputs are not counted). */
function outputsWanted(ctx: KernelContext): number {
  const outs = ctx.node.outputs;
  let n = outs.length;
  while (n > 1 && !outs[n - 1]) n--;
  return n;
}

// =====================================================================================================
// BatchNormalization
// =====================================================================================================

const batchNorm: OpSchema = {
  opType: 'BatchNormalization',
  run(inputs, ctx) {
    const x = need(inputs, 0, 'X');
    floatInput(x, 'X');
    const scale = need(inputs, 1, 'scale');
    const bias = need(inputs, 2, 'B');
    const mean = need(inputs, 3, 'input_mean');
    const vari = need(inputs, 4, 'input_var');
    if (x.rank < 1) throw new Q8Error(`X must have rank >= 1 ([N, C, ...]), got a scalar`);
    const eps = ctx.attrs.float('epsilon', 1e-5);
    const momentum = ctx.attrs.float('momentum', 0.9);
    const N = x.shape[0]!;
    // A 1-D input [N] has one channel (spec, opset 9+).
    const C = x.rank === 1 ? 1 : x.shape[1]!;
    const S = spanSize(x.shape, 2, x.rank);
    // spatial=0 (opset < 9): one statistic per activation, i.e. per element of X.shape[1:].
    const spatial = ctx.opset >= 9 ? true : ctx.attrs.int('spatial', 1) !== 0;
    const perAct = !spatial && scale.size === C * S && S !== 1;
    const P = perAct ? C * S : C;
    for (const [t, name] of [[scale, 'scale'], [bias, 'B'], [mean, 'input_mean'], [vari, 'input_var']] as const) {
      if (t.size !== P) throw new Q8Error(`${name} should have ${P} elements (${perAct ? 'per activation' : 'per channel'}), got shape ${shapeStr(t.shape)}`);
    }
    const training = ctx.opset >= 14
      ? ctx.attrs.int('training_mode', 0) !== 0
      : outputsWanted(ctx) > 1 && (ctx.opset >= 7 || ctx.attrs.int('is_test', 0) === 0);
    const sc = scale.toNumbers(), bs = bias.toNumbers();
    let mu: ArrayLike<number> = mean.toNumbers();
    let va: ArrayLike<number> = vari.toNumbers();
    const xd = x.data as Arr;
    // Element (n, c, s) of X; parameter index p = c (spatial) or c*S + s (per activation).
    const inner = perAct ? 1 : S;
    const groups = perAct ? C * S : C;
    let curMean: Float64Array | undefined;
    let curVar: Float64Array | undefined;
    if (training) {
      const cnt = N * inner;
      curMean = new Float64Array(groups);
      curVar = new Float64Array(groups);
      for (let n = 0; n < N; n++) {
        for (let g = 0; g < groups; g++) {
          const base = (n * groups + g) * inner;
          let s = 0;
          for (let i = 0; i < inner; i++) s += xd[base + i];
          curMean[g] += s;
        }
      }
      for (let g = 0; g < groups; g++) curMean[g] /= cnt;
      for (let n = 0; n < N; n++) {
        for (let g = 0; g < groups; g++) {
          const base = (n * groups + g) * inner;
          const m = curMean[g]!;
          let s = 0;
          for (let i = 0; i < inner; i++) { const d = xd[base + i] - m; s += d * d; }
          curVar[g] += s;
        }
      }
      for (let g = 0; g < groups; g++) curVar[g] /= cnt;
      mu = curMean;
      va = curVar;
    }
    const y = ctx.alloc(x.dtype, x.shape);
    const yd = y.data as Arr;
    const a = new Float64Array(groups);
    const b = new Float64Array(groups);
    for (let g = 0; g < groups; g++) {
      a[g] = sc[g]! / Math.sqrt(va[g]! + eps);
      b[g] = bs[g]! - mu[g]! * a[g]!;
    }
    for (let n = 0; n < N; n++) {
      for (let g = 0; g < groups; g++) {
        const base = (n * groups + g) * inner;
        const ag = a[g]!, bg = b[g]!;
        for (let i = 0; i < inner; i++) yd[base + i] = xd[base + i] * ag + bg;
      }
    }
    if (!training) return [y];
    const m0 = mean.toNumbers(), v0 = vari.toNumbers();
    const runMean = ctx.alloc(mean.dtype, mean.shape);
    const runVar = ctx.alloc(vari.dtype, vari.shape);
    const rm = runMean.data as Arr, rv = runVar.data as Arr;
    for (let g = 0; g < groups; g++) {
      rm[g] = m0[g]! * momentum + curMean![g]! * (1 - momentum);
      rv[g] = v0[g]! * momentum + curVar![g]! * (1 - momentum);
    }
    if (ctx.opset >= 14) return [y, runMean, runVar];
    // Opsets 1-13 also output the batch statistics (saved_mean, saved_var).
    const savedMean = ctx.alloc(mean.dtype, mean.shape);
    const savedVar = ctx.alloc(vari.dtype, vari.shape);
    (savedMean.data as Arr).set(curMean!);
    (savedVar.data as Arr).set(curVar!);
    return [y, runMean, runVar, savedMean, savedVar];
  },
};

// =====================================================================================================
// InstanceNormalization
// =====================================================================================================

const instanceNorm: OpSchema = {
  opType: 'InstanceNormalization',
  run(inputs, ctx) {
    const x = need(inputs, 0, 'input');
    floatInput(x, 'input');
    const scale = need(inputs, 1, 'scale');
    const bias = need(inputs, 2, 'B');
    if (x.rank < 2) throw new Q8Error(`input must have rank >= 2 ([N, C, ...]), got ${shapeStr(x.shape)}`);
    const eps = ctx.attrs.float('epsilon', 1e-5);
    const N = x.shape[0]!, C = x.shape[1]!;
    const S = spanSize(x.shape, 2, x.rank);
    if (scale.size !== C || bias.size !== C) {
      throw new Q8Error(`scale and B need ${C} elements, got ${shapeStr(scale.shape)} and ${shapeStr(bias.shape)}`);
    }
    const sc = scale.toNumbers(), bs = bias.toNumbers();
    const xd = x.data as Arr;
    const y = ctx.alloc(x.dtype, x.shape);
    const yd = y.data as Arr;
    for (let n = 0; n < N; n++) {
      for (let c = 0; c < C; c++) {
        const base = (n * C + c) * S;
        let s = 0;
        for (let i = 0; i < S; i++) s += xd[base + i];
        const m = s / S;
        let v = 0;
        for (let i = 0; i < S; i++) { const d = xd[base + i] - m; v += d * d; }
        const a = sc[c]! / Math.sqrt(v / S + eps);
        const b = bs[c]! - m * a;
        for (let i = 0; i < S; i++) yd[base + i] = xd[base + i] * a + b;
      }
    }
    return [y];
  },
};

// =====================================================================================================
// LayerNormalization (opset 17)
// =====================================================================================================

const layerNorm: OpSchema = {
  opType: 'LayerNormalization',
  // Native halves: Mean/InvStdDev stay in the stash type (float32) while Y keeps X's 16-bit type.
  half: 'native',
  run(inputs, ctx) {
    const x = need(inputs, 0, 'X');
    floatInput(x, 'X');
    const scale = need(inputs, 1, 'Scale');
    const bias = inputs[2];
    const axis = axisOf(ctx.attrs.int('axis', -1), x.rank);
    const eps = ctx.attrs.float('epsilon', 1e-5);
    const stash = ctx.attrs.int('stash_type', 1);
    if (stash !== 1 && stash !== 11) throw new Q8Error(`stash_type ${stash} is not supported (1 = float32, 11 = float64)`);
    const outer = spanSize(x.shape, 0, axis);
    const len = spanSize(x.shape, axis, x.rank);
    const normShape = x.shape.slice(axis);
    // Scale and B broadcast to the normalized shape X.shape[axis:].
    const si = broadcastIndex(scale.shape, normShape);
    const bi = bias ? broadcastIndex(bias.shape, normShape) : undefined;
    const sd = scale.toNumbers();
    const bd = bias ? bias.toNumbers() : undefined;
    const half = isHalf(x.dtype);
    const xd = (half ? x.toFloat32() : x.data) as Arr;
    let y = ctx.alloc(half ? 'float32' : x.dtype, x.shape);
    const yd = y.data as Arr;
    const statShape = x.shape.map((d, i) => (i < axis ? d : 1));
    const statType = stash === 11 ? 'float64' : 'float32';
    const meanT = ctx.alloc(statType, statShape);
    const invT = ctx.alloc(statType, statShape);
    const md = meanT.data as Arr, id = invT.data as Arr;
    for (let o = 0; o < outer; o++) {
      const base = o * len;
      let s = 0;
      for (let i = 0; i < len; i++) s += xd[base + i];
      const m = s / len;
      let v = 0;
      for (let i = 0; i < len; i++) { const d = xd[base + i] - m; v += d * d; }
      const inv = 1 / Math.sqrt(v / len + eps);
      md[o] = m;
      id[o] = inv;
      for (let i = 0; i < len; i++) {
        const z = (xd[base + i] - m) * inv * sd[si[i]!]!;
        yd[base + i] = bd ? z + bd[bi![i]!]! : z;
      }
    }
    if (half) y = Tensor.from(x.dtype, x.shape, yd as Float32Array);
    return [y, meanT, invT];
  },
};

// =====================================================================================================
// MeanVarianceNormalization: (X - E[X]) / (sqrt(E[(X - E[X])^2]) + 1e-9) over `axes`
// =====================================================================================================

const mvn: OpSchema = {
  opType: 'MeanVarianceNormalization',
  run(inputs, ctx) {
    const x = need(inputs, 0, 'X');
    floatInput(x, 'X');
    const axes = normAxes(ctx.attrs.ints('axes', [0, 2, 3]), x.rank);
    const keepShape = x.shape.map((d, i) => (axes.includes(i) ? 1 : d));
    const idx = broadcastIndex(keepShape, x.shape);
    const m = spanSize(keepShape, 0, keepShape.length);
    const cnt = m === 0 ? 0 : x.size / m;
    const xd = x.data as Arr;
    const sum = new Float64Array(m);
    for (let i = 0; i < x.size; i++) sum[idx[i]!] += xd[i];
    for (let q = 0; q < m; q++) sum[q] /= cnt;
    const sq = new Float64Array(m);
    for (let i = 0; i < x.size; i++) { const d = xd[i] - sum[idx[i]!]!; sq[idx[i]!] += d * d; }
    for (let q = 0; q < m; q++) sq[q] = Math.sqrt(sq[q]! / cnt) + 1e-9;
    const y = ctx.alloc(x.dtype, x.shape);
    const yd = y.data as Arr;
    for (let i = 0; i < x.size; i++) { const q = idx[i]!; yd[i] = (xd[i] - sum[q]!) / sq[q]!; }
    return [y];
  },
};

// =====================================================================================================
// LRN: y = x / (bias + alpha/size * sum of x^2 over nearby channels)^beta
// =====================================================================================================

const lrn: OpSchema = {
  opType: 'LRN',
  run(inputs, ctx) {
    const x = need(inputs, 0, 'X');
    floatInput(x, 'X');
    if (x.rank < 2) throw new Q8Error(`X must have rank >= 2 ([N, C, ...]), got ${shapeStr(x.shape)}`);
    const size = ctx.attrs.int('size');
    if (size === undefined || size < 1) throw new Q8Error('LRN needs a positive attribute size');
    const alpha = ctx.attrs.float('alpha', 1e-4);
    const beta = ctx.attrs.float('beta', 0.75);
    const bias = ctx.attrs.float('bias', 1);
    const N = x.shape[0]!, C = x.shape[1]!;
    const S = spanSize(x.shape, 2, x.rank);
    const lo = Math.floor((size - 1) / 2);
    const hi = Math.ceil((size - 1) / 2);
    const xd = x.data as Arr;
    const y = ctx.alloc(x.dtype, x.shape);
    const yd = y.data as Arr;
    const k = alpha / size;
    for (let n = 0; n < N; n++) {
      for (let c = 0; c < C; c++) {
        const c0 = Math.max(0, c - lo), c1 = Math.min(C - 1, c + hi);
        const base = (n * C + c) * S;
        for (let s = 0; s < S; s++) {
          let sq = 0;
          for (let cc = c0; cc <= c1; cc++) { const v = xd[(n * C + cc) * S + s]; sq += v * v; }
          yd[base + s] = xd[base + s] / Math.pow(bias + k * sq, beta);
        }
      }
    }
    return [y];
  },
};

export const ops: OpSchema[] = [batchNorm, instanceNorm, layerNorm, mvn, lrn];
