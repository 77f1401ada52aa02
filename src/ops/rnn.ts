/**
 * RNN, GRU and LSTM (ONNX opsets 1..22): directions forward/reverse/bidirectional, per-direction
 * activations with activation_alpha/beta, clip, LSTM input_forget and peepholes, GRU
 * linear_before_reset, layout 0/1, sequence_lens, initial states, every optional output.
 *
 * Everything is computed in float64 (inputs widened once) so float32 results round only at the
 * end: this is the specification, RNNs are not on a hot path here. The input projection X·Wᵀ of all
 * time steps is one GEMM; each step then adds H·Rᵀ.
 *
 * The two products go through an RnnForm: the float one here, int8 ones in quant/rnn-int8.ts (q8's
 * Q8LSTM/Q8GRU/Q8RNN), so the gate code below exists once for both.
 */
import { Q8Error, check } from '../core/errors.js';
import { shapeStr } from '../core/shape.js';
import { gemmF64Ref } from '../kernels/ref/gemm.js';
import type { KernelContext, OpSchema } from './registry.js';
import { Tensor } from '../tensor/tensor.js';

type Act = (x: number) => number;

const sigmoid: Act = (x) => (x >= 0 ? 1 / (1 + Math.exp(-x)) : Math.exp(x) / (1 + Math.exp(x)));

/** Activation functions the RNN ops name, with the default alpha/beta of each (undefined = unused). */
const ACTS: Record<string, { alpha?: number; beta?: number; make: (a: number, b: number) => Act }> = {
  relu: { make: () => (x) => (x > 0 ? x : 0) },
  tanh: { make: () => Math.tanh },
  sigmoid: { make: () => sigmoid },
  affine: { alpha: 1, beta: 0, make: (a, b) => (x) => a * x + b },
  leakyrelu: { alpha: 0.01, make: (a) => (x) => (x >= 0 ? x : a * x) },
  thresholdedrelu: { alpha: 1, make: (a) => (x) => (x > a ? x : 0) },
  scaledtanh: { alpha: 1, beta: 1, make: (a, b) => (x) => a * Math.tanh(b * x) },
  hardsigmoid: { alpha: 0.2, beta: 0.5, make: (a, b) => (x) => Math.max(0, Math.min(1, a * x + b)) },
  elu: { alpha: 1, make: (a) => (x) => (x >= 0 ? x : a * (Math.exp(x) - 1)) },
  softsign: { make: () => (x) => x / (1 + Math.abs(x)) },
  softplus: { make: () => (x) => (x > 0 ? x + Math.log1p(Math.exp(-x)) : Math.log1p(Math.exp(x))) },
};

/**
 * The activation list for all directions. alpha/beta values are consumed in order by the
 * functions that take them (as onnxruntime does); missing values fall back to the defaults.
 */
function activations(ctx: KernelContext, defaults: string[], numDir: number): Act[] {
  const names = ctx.attrs.strings('activations') ?? [];
  const want = defaults.length * numDir;
  let list: string[];
  if (names.length === 0) list = Array.from({ length: want }, (_, i) => defaults[i % defaults.length]);
  else if (names.length === want) list = names;
  else if (names.length === defaults.length && numDir === 2) list = [...names, ...names];
  else throw new Q8Error(`attribute 'activations' should list ${want} functions, got [${names.join(', ')}]`);
  const alphas = ctx.attrs.floats('activation_alpha') ?? [];
  const betas = ctx.attrs.floats('activation_beta') ?? [];
  let ai = 0, bi = 0;
  return list.map((n) => {
    const spec = ACTS[n.toLowerCase()];
    if (!spec) throw new Q8Error(`activation '${n}' is not one of Relu, Tanh, Sigmoid, Affine, LeakyRelu, ThresholdedRelu, ScaledTanh, HardSigmoid, Elu, Softsign, Softplus`);
    const a = spec.alpha === undefined ? 0 : ai < alphas.length ? alphas[ai++] : spec.alpha;
    const b = spec.beta === undefined ? 0 : bi < betas.length ? betas[bi++] : spec.beta;
    return spec.make(a, b);
  });
}

/** The two matrix products of a recurrent op for one bound set of inputs. */
export interface RnnProducts {
  /** X·W[d]ᵀ of every step of direction d, without bias: [seq*batch, G*hidden] in layout-0 row order. */
  project(d: number): Float64Array;
  /** out[r*ldo + j] = Σ_k h[r*hidden + k]·R[d, row0 + j, k] for r < rows, j < n (G*hidden rows per direction). */
  recur(d: number, h: Float64Array, rows: number, row0: number, n: number, out: Float64Array, ldo: number): void;
}

/**
 * The row ranges [row0, n] of R that the gate code below asks `recur` for, per direction: all G·H
 * rows, except GRU without linear_before_reset, which asks for z,r (2H rows) and h (H rows) apart.
 * Fast forms compile one product per range.
 */
export function recurRanges(op: 'LSTM' | 'GRU' | 'RNN', linearBeforeReset: boolean, hidden: number): [number, number][] {
  const G = op === 'LSTM' ? 4 : op === 'GRU' ? 3 : 1;
  return op === 'GRU' && !linearBeforeReset ? [[0, 2 * hidden], [2 * hidden, hidden]] : [[0, G * hidden]];
}

/** What a form sees when it binds: X already in layout 0 as float64 [seq*batch, xWidth]. */
export interface RnnBindArgs {
  op: string; G: number; numDir: number; seq: number; batch: number;
  x: Float64Array; xWidth: number;
  inputs: readonly (Tensor | undefined)[];
  ctx: KernelContext;
  dtype: 'float32' | 'float64';
}

/** How an op variant reads its weight inputs (W at 1, R at 2) and computes the two products. */
export interface RnnForm {
  bind(a: RnnBindArgs): { hidden: number; products: RnnProducts };
}

/** X·W[d]ᵀ in float64 for a float W [numDir, G*hidden, input] (already widened). */
export function floatProjection(a: RnnBindArgs, W: Float64Array, GH: number): (d: number) => Float64Array {
  return (d) => {
    const rows = a.seq * a.batch, K = a.xWidth;
    const xw = new Float64Array(rows * GH);
    gemmF64Ref(rows, GH, K, a.x, K, W, K, xw, GH, { transB: true, bOffset: d * GH * K });
    return xw;
  };
}

/** H·R[d]ᵀ rows in float64 for a float R [numDir, G*hidden, hidden] (already widened). */
export function floatRecurrence(R: Float64Array, GH: number, hidden: number): RnnProducts['recur'] {
  return (d, h, rows, row0, n, out, ldo) =>
    gemmF64Ref(rows, n, hidden, h, hidden, R, hidden, out, ldo, { transB: true, bOffset: (d * GH + row0) * hidden });
}

/** ONNX's form: float W and R of X's dtype. */
export const floatForm: RnnForm = {
  bind(a) {
    const { op, G, numDir, inputs } = a;
    const [X, W, R] = inputs as [Tensor, Tensor | undefined, Tensor | undefined];
    check(W && R, `${op} needs inputs X, W and R`);
    for (const [t, n] of [[W, 'W'], [R, 'R']] as const)
      check(t.dtype === X.dtype, () => `${op} input ${n} should be ${X.dtype} like X, got ${t.dtype}`);
    const input = a.xWidth;
    check(W.rank === 3 && W.shape[0] === numDir && W.shape[2] === input && W.shape[1] % G === 0,
      () => `${op} input W should have shape [${numDir}, ${G}*hidden, ${input}], got ${shapeStr(W.shape)}`);
    const hidden = a.ctx.attrs.int('hidden_size', W.shape[1] / G);
    check(W.shape[1] === G * hidden, () => `${op} input W shape ${shapeStr(W.shape)} does not match hidden_size ${hidden}`);
    check(R.rank === 3 && R.shape[0] === numDir && R.shape[1] === G * hidden && R.shape[2] === hidden,
      () => `${op} input R should have shape [${numDir}, ${G * hidden}, ${hidden}], got ${shapeStr(R.shape)}`);
    return { hidden, products: { project: floatProjection(a, f64(W), G * hidden), recur: floatRecurrence(f64(R), G * hidden, hidden) } };
  },
};

interface Common {
  seq: number; batch: number; hidden: number; numDir: number;
  reverse: boolean[];
  layout: number;
  prod: RnnProducts;
  B: Float64Array; // [numDir, 2*G*hidden] (zeros when absent)
  lens: Int32Array; // per batch
  h0: Float64Array; // [numDir, batch, hidden]
  clip: number;
  dtype: 'float32' | 'float64';
}

export const f64 = (t: Tensor) => Float64Array.from(t.dtype === 'float64' ? (t.data as Float64Array) : t.toFloat32());

/** Read a [numDir, batch, hidden] state (or [batch, numDir, hidden] with layout 1) into layout 0. */
function state(t: Tensor | undefined, c: { numDir: number; batch: number; hidden: number; layout: number }, what: string): Float64Array {
  const { numDir, batch, hidden, layout } = c;
  const out = new Float64Array(numDir * batch * hidden);
  if (!t) return out;
  const want = layout ? [batch, numDir, hidden] : [numDir, batch, hidden];
  check(t.rank === 3 && t.shape.every((d, i) => d === want[i]), () => `${what} should have shape ${shapeStr(want)}, got ${shapeStr(t.shape)}`);
  const v = f64(t);
  if (!layout) return v;
  for (let b = 0; b < batch; b++) for (let d = 0; d < numDir; d++) for (let h = 0; h < hidden; h++)
    out[(d * batch + b) * hidden + h] = v[(b * numDir + d) * hidden + h];
  return out;
}

function common(op: string, G: number, inputs: readonly (Tensor | undefined)[], ctx: KernelContext, form: RnnForm): Common {
  const [X, , , B, L, H0] = inputs;
  check(X, `${op} needs inputs X, W and R`);
  check(X.dtype === 'float32' || X.dtype === 'float64', () => `${op} input X should be a float tensor, got ${X.dtype}`);
  for (const [t, n] of [[B, 'B'], [H0, 'initial_h']] as const)
    if (t) check(t.dtype === X.dtype, () => `${op} input ${n} should be ${X.dtype} like X, got ${t.dtype}`);
  const layout = ctx.opset >= 14 || ctx.node.domain === 'q8' ? ctx.attrs.int('layout', 0) : 0;
  check(layout === 0 || layout === 1, () => `attribute 'layout' should be 0 or 1, got ${layout}`);
  check(X.rank === 3, () => `${op} input X should be 3-D, got ${shapeStr(X.shape)}`);
  const [seq, batch] = layout ? [X.shape[1], X.shape[0]] : [X.shape[0], X.shape[1]];
  const width = X.shape[2];
  const direction = ctx.attrs.string('direction', 'forward');
  check(['forward', 'reverse', 'bidirectional'].includes(direction), () => `attribute 'direction' should be forward, reverse or bidirectional, got '${direction}'`);
  const numDir = direction === 'bidirectional' ? 2 : 1;
  let x = f64(X);
  if (layout) {
    const t = new Float64Array(x.length);
    for (let s = 0; s < seq; s++) for (let n = 0; n < batch; n++) for (let i = 0; i < width; i++)
      t[(s * batch + n) * width + i] = x[(n * seq + s) * width + i];
    x = t;
  }
  const { hidden, products } = form.bind({ op, G, numDir, seq, batch, x, xWidth: width, inputs, ctx, dtype: X.dtype });
  let b = new Float64Array(numDir * 2 * G * hidden);
  if (B) {
    check(B.rank === 2 && B.shape[0] === numDir && B.shape[1] === 2 * G * hidden,
      () => `${op} input B should have shape [${numDir}, ${2 * G * hidden}], got ${shapeStr(B.shape)}`);
    b = f64(B);
  }
  const lens = new Int32Array(batch).fill(seq);
  if (L) {
    check(L.rank === 1 && L.shape[0] === batch && (L.dtype === 'int32' || L.dtype === 'int64'),
      () => `${op} input sequence_lens should be int32 of shape [${batch}], got ${L.dtype} ${shapeStr(L.shape)}`);
    for (let i = 0; i < batch; i++) {
      const v = L.num(i);
      check(Number.isInteger(v) && v >= 0 && v <= seq, () => `${op} sequence_lens[${i}] = ${v} is outside [0, ${seq}]`);
      lens[i] = v;
    }
  }
  const clip = ctx.attrs.float('clip', Infinity);
  check(clip > 0, () => `attribute 'clip' should be positive, got ${clip}`);
  const reverse = numDir === 2 ? [false, true] : [direction === 'reverse'];
  return {
    seq, batch, hidden, numDir, reverse, layout, prod: products, B: b, lens,
    h0: state(H0, { numDir, batch, hidden, layout }, `${op} input initial_h`), clip, dtype: X.dtype,
  };
}

/** X·Wᵀ for all steps of direction d plus the input bias: [seq*batch, G*hidden]. */
function project(c: Common, G: number, d: number): Float64Array {
  const GH = G * c.hidden;
  const rows = c.seq * c.batch;
  const xw = c.prod.project(d);
  const wb = d * 2 * GH;
  for (let r = 0; r < rows; r++) for (let j = 0; j < GH; j++) xw[r * GH + j] += c.B[wb + j];
  return xw;
}

/** Time index of step s for batch row n (reverse directions walk each row's own length backwards). */
const timeOf = (c: Common, d: number, s: number, n: number) => (c.reverse[d] ? c.lens[n] - 1 - s : s);

const clipTo = (v: number, clip: number) => (v > clip ? clip : v < -clip ? -clip : v);

/** Output tensors from layout-0 buffers (Y: [seq, numDir, batch, hidden], states: [numDir, batch, hidden]). */
function outputs(c: Common, ctx: KernelContext, y: Float64Array, states: Float64Array[]): Tensor[] {
  const { seq, numDir, batch, hidden, layout } = c;
  const outs: Tensor[] = [];
  const want = (i: number) => ctx.node.outputs.length > i && ctx.node.outputs[i] !== '';
  const make = (shape: number[], v: Float64Array) => Tensor.from(c.dtype, shape, c.dtype === 'float64' ? v : Float32Array.from(v));
  if (want(0)) {
    if (!layout) outs[0] = make([seq, numDir, batch, hidden], y);
    else {
      const t = new Float64Array(y.length);
      for (let s = 0; s < seq; s++) for (let d = 0; d < numDir; d++) for (let n = 0; n < batch; n++) for (let h = 0; h < hidden; h++)
        t[((n * seq + s) * numDir + d) * hidden + h] = y[((s * numDir + d) * batch + n) * hidden + h];
      outs[0] = make([batch, seq, numDir, hidden], t);
    }
  }
  states.forEach((st, k) => {
    if (!want(k + 1)) return;
    if (!layout) outs[k + 1] = make([numDir, batch, hidden], st);
    else {
      const t = new Float64Array(st.length);
      for (let d = 0; d < numDir; d++) for (let n = 0; n < batch; n++) for (let h = 0; h < hidden; h++)
        t[(n * numDir + d) * hidden + h] = st[(d * batch + n) * hidden + h];
      outs[k + 1] = make([batch, numDir, hidden], t);
    }
  });
  // Keep positions: an omitted earlier output is an empty slot the runtime ignores.
  for (let i = 0; i < outs.length; i++) if (!outs[i]) outs[i] = Tensor.zeros(c.dtype, [0]);
  return outs;
}

export function runRNN(inputs: readonly (Tensor | undefined)[], ctx: KernelContext, form: RnnForm = floatForm): Tensor[] {
  const c = common('RNN', 1, inputs, ctx, form);
  const acts = activations(ctx, ['Tanh'], c.numDir);
  const { seq, batch, hidden: Hd, numDir } = c;
  const y = new Float64Array(seq * numDir * batch * Hd);
  const hT = new Float64Array(numDir * batch * Hd);
  const hr = new Float64Array(batch * Hd);
  for (let d = 0; d < numDir; d++) {
    const f = acts[d];
    const xw = project(c, 1, d);
    const h = c.h0.slice(d * batch * Hd, (d + 1) * batch * Hd);
    const rb = d * 2 * Hd + Hd;
    for (let s = 0; s < seq; s++) {
      c.prod.recur(d, h, batch, 0, Hd, hr, Hd);
      for (let n = 0; n < batch; n++) {
        if (s >= c.lens[n]) continue;
        const t = timeOf(c, d, s, n);
        for (let j = 0; j < Hd; j++) {
          const v = f(clipTo(xw[(t * batch + n) * Hd + j] + hr[n * Hd + j] + c.B[rb + j], c.clip));
          h[n * Hd + j] = v;
          y[((t * numDir + d) * batch + n) * Hd + j] = v;
        }
      }
    }
    hT.set(h, d * batch * Hd);
  }
  return outputs(c, ctx, y, [hT]);
}

export function runGRU(inputs: readonly (Tensor | undefined)[], ctx: KernelContext, form: RnnForm = floatForm): Tensor[] {
  const c = common('GRU', 3, inputs, ctx, form);
  const acts = activations(ctx, ['Sigmoid', 'Tanh'], c.numDir);
  const lbr = ctx.attrs.int('linear_before_reset', 0) !== 0;
  const { seq, batch, hidden: Hd, numDir } = c;
  const GH = 3 * Hd;
  const y = new Float64Array(seq * numDir * batch * Hd);
  const hT = new Float64Array(numDir * batch * Hd);
  const hr = new Float64Array(batch * GH);
  const rh = new Float64Array(batch * Hd);
  const z = new Float64Array(batch * Hd);
  for (let d = 0; d < numDir; d++) {
    const f = acts[2 * d], g = acts[2 * d + 1];
    const xw = project(c, 3, d);
    const h = c.h0.slice(d * batch * Hd, (d + 1) * batch * Hd);
    const rb = d * 2 * GH + GH; // Rb: z, r, h
    for (let s = 0; s < seq; s++) {
      // z and r parts of H·Rᵀ; with linear_before_reset also the h part (H·Rhᵀ, reset applied after).
      c.prod.recur(d, h, batch, 0, lbr ? GH : 2 * Hd, hr, GH);
      for (let n = 0; n < batch; n++) {
        if (s >= c.lens[n]) continue;
        const t = timeOf(c, d, s, n);
        const xo = (t * batch + n) * GH;
        for (let j = 0; j < Hd; j++) {
          z[n * Hd + j] = f(clipTo(xw[xo + j] + hr[n * GH + j] + c.B[rb + j], c.clip));
          const r = f(clipTo(xw[xo + Hd + j] + hr[n * GH + Hd + j] + c.B[rb + Hd + j], c.clip));
          if (lbr) rh[n * Hd + j] = r * (hr[n * GH + 2 * Hd + j] + c.B[rb + 2 * Hd + j]);
          else rh[n * Hd + j] = r * h[n * Hd + j];
        }
      }
      if (!lbr) {
        // (r ⊙ H)·Rhᵀ, then + Rbh.
        const tmp = new Float64Array(batch * Hd);
        c.prod.recur(d, rh, batch, 2 * Hd, Hd, tmp, Hd);
        for (let i = 0; i < batch * Hd; i++) rh[i] = tmp[i] + c.B[rb + 2 * Hd + (i % Hd)];
      }
      for (let n = 0; n < batch; n++) {
        if (s >= c.lens[n]) continue;
        const t = timeOf(c, d, s, n);
        const xo = (t * batch + n) * GH + 2 * Hd;
        for (let j = 0; j < Hd; j++) {
          const cand = g(clipTo(xw[xo + j] + rh[n * Hd + j], c.clip));
          const zz = z[n * Hd + j];
          const v = (1 - zz) * cand + zz * h[n * Hd + j];
          h[n * Hd + j] = v;
          y[((t * numDir + d) * batch + n) * Hd + j] = v;
        }
      }
    }
    hT.set(h, d * batch * Hd);
  }
  return outputs(c, ctx, y, [hT]);
}

export function runLSTM(inputs: readonly (Tensor | undefined)[], ctx: KernelContext, form: RnnForm = floatForm): Tensor[] {
  const c = common('LSTM', 4, inputs, ctx, form);
  const [, , , , , , C0, P] = inputs;
  const acts = activations(ctx, ['Sigmoid', 'Tanh', 'Tanh'], c.numDir);
  const inputForget = ctx.attrs.int('input_forget', 0) !== 0;
  const { seq, batch, hidden: Hd, numDir } = c;
  const GH = 4 * Hd;
  if (C0) check(C0.dtype === c.dtype, () => `LSTM input initial_c should be ${c.dtype}, got ${C0.dtype}`);
  const c0 = state(C0, c, 'LSTM input initial_c');
  let p = new Float64Array(numDir * 3 * Hd);
  if (P) {
    check(P.dtype === c.dtype && P.rank === 2 && P.shape[0] === numDir && P.shape[1] === 3 * Hd,
      () => `LSTM input P should be ${c.dtype} of shape [${numDir}, ${3 * Hd}], got ${P.dtype} ${shapeStr(P.shape)}`);
    p = f64(P);
  }
  const y = new Float64Array(seq * numDir * batch * Hd);
  const hT = new Float64Array(numDir * batch * Hd);
  const cT = new Float64Array(numDir * batch * Hd);
  const hr = new Float64Array(batch * GH);
  const hNew = new Float64Array(batch * Hd);
  for (let d = 0; d < numDir; d++) {
    const f = acts[3 * d], g = acts[3 * d + 1], hAct = acts[3 * d + 2];
    const xw = project(c, 4, d);
    const h = c.h0.slice(d * batch * Hd, (d + 1) * batch * Hd);
    const cs = c0.slice(d * batch * Hd, (d + 1) * batch * Hd);
    const rb = d * 2 * GH + GH; // gate order i, o, f, c
    const pi = d * 3 * Hd, po = pi + Hd, pf = pi + 2 * Hd; // peephole order i, o, f
    for (let s = 0; s < seq; s++) {
      c.prod.recur(d, h, batch, 0, GH, hr, GH);
      hNew.set(h);
      for (let n = 0; n < batch; n++) {
        if (s >= c.lens[n]) continue;
        const t = timeOf(c, d, s, n);
        const xo = (t * batch + n) * GH, ho = n * GH;
        for (let j = 0; j < Hd; j++) {
          const pre = (k: number) => xw[xo + k * Hd + j] + hr[ho + k * Hd + j] + c.B[rb + k * Hd + j];
          const cPrev = cs[n * Hd + j];
          const ig = f(clipTo(pre(0) + p[pi + j] * cPrev, c.clip));
          const fg = inputForget ? 1 - ig : f(clipTo(pre(2) + p[pf + j] * cPrev, c.clip));
          const cc = g(clipTo(pre(3), c.clip));
          const cNew = fg * cPrev + ig * cc;
          const og = f(clipTo(pre(1) + p[po + j] * cNew, c.clip));
          const v = og * hAct(cNew);
          cs[n * Hd + j] = cNew;
          hNew[n * Hd + j] = v;
          y[((t * numDir + d) * batch + n) * Hd + j] = v;
        }
      }
      h.set(hNew);
    }
    hT.set(h, d * batch * Hd);
    cT.set(cs, d * batch * Hd);
  }
  return outputs(c, ctx, y, [hT, cT]);
}

export const ops: OpSchema[] = [
  { opType: 'RNN', run: (i, c) => runRNN(i, c) },
  { opType: 'GRU', run: (i, c) => runGRU(i, c) },
  { opType: 'LSTM', run: (i, c) => runLSTM(i, c) },
];
