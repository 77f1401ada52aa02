/**
 * int8 LSTM / GRU / RNN: quantize → save → load runs the input projection as a q8.Q8Gemm and the
 * recurrent product in int8 (q8.Q8LSTM / Q8GRU / Q8RNN). The expected outputs come from a separate
 * implementation written here from the scheme (quantize each left row to int8 with amax/127 and ties
 * to even, exact integer dots, dequantize with row scale × weight scale) and from the ONNX equations,
 * using only the int8 values and scales stored in the saved file.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeOnnx, encodeOnnx } from '../../src/formats/onnx/index.js';
import type { Model } from '../../src/graph/ir.js';
import '../../src/quant/index.js';
import { cloneModel, quantize, quantizeModel, type QuantizeOptions } from '../../src/quant/quantize.js';
import { q8RecurrentKernels, rnnInt8Stats } from '../../src/quant/rnn-int8.js';
import { getBackend, type BackendName } from '../../src/kernels/registry.js';
import '../../src/kernels/native/index.js';
import '../../src/kernels/wasm/index.js';
import { getOp } from '../../src/ops/registry.js';
import { invokeKernel, makeContext } from '../../src/runtime/invoke.js';
import { Session } from '../../src/runtime/session.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { Q8Error } from '../../src/core/errors.js';
import { attrsFrom } from '../../src/runtime/invoke.js';
import { Builder } from './models.js';
import { randomArray, rng, type Rng } from './util.js';

type Op = 'LSTM' | 'GRU' | 'RNN';
const GATES: Record<Op, number> = { LSTM: 4, GRU: 3, RNN: 1 };
const fr = Math.fround;

interface Case {
  op: Op; T: number; N: number; I: number; H: number;
  direction?: 'forward' | 'reverse' | 'bidirectional';
  layout?: 0 | 1;
  lens?: number[];
  initial?: boolean;
  peep?: boolean;
  lbr?: 0 | 1;
  clip?: number;
  opts?: QuantizeOptions;
}

interface Built { model: Model; feeds: Record<string, Tensor>; outputs: string[] }

/** An ONNX model with one recurrent node, random (normal) weights and inputs, all outputs exposed. */
function build(c: Case, r: Rng): Built {
  const b = new Builder(r, c.layout ? 14 : 13);
  const G = GATES[c.op], D = c.direction === 'bidirectional' ? 2 : 1;
  const xShape = c.layout ? [c.N, c.T, c.I] : [c.T, c.N, c.I];
  const sShape = c.layout ? [c.N, D, c.H] : [D, c.N, c.H];
  const feeds: Record<string, Tensor> = { x: Tensor.from('float32', xShape, randomArray(r, c.T * c.N * c.I)) };
  b.input('x', xShape);
  const ins = ['x', b.weight('W', [D, G * c.H, c.I], 0.6 / Math.sqrt(c.I)), b.weight('R', [D, G * c.H, c.H], 1.2 / Math.sqrt(c.H)), b.weight('B', [D, 2 * G * c.H], 0.2)];
  ins.push(c.lens ? b.init('lens', Tensor.from('int32', [c.N], c.lens)) : '');
  if (c.initial) {
    ins.push(b.input('h0', sShape));
    feeds['h0'] = Tensor.from('float32', sShape, randomArray(r, D * c.N * c.H, 0.5));
    if (c.op === 'LSTM') {
      ins.push(b.input('c0', sShape));
      feeds['c0'] = Tensor.from('float32', sShape, randomArray(r, D * c.N * c.H, 0.5));
    }
  } else if (c.op === 'LSTM') ins.push('', '');
  else ins.push('');
  if (c.peep) ins.push(b.weight('P', [D, 3 * c.H], 0.3));
  while (ins[ins.length - 1] === '') ins.pop();
  const attrs: Record<string, unknown> = { hidden_size: c.H, direction: c.direction ?? 'forward' };
  if (c.layout) attrs['layout'] = 1;
  if (c.lbr !== undefined) attrs['linear_before_reset'] = c.lbr;
  if (c.clip !== undefined) attrs['clip'] = c.clip;
  const outs = b.node(c.op, ins, attrs, c.op === 'LSTM' ? 3 : 2, 'rec');
  for (const o of outs) b.output(o);
  return { model: b.model, feeds, outputs: outs };
}

/** Quantize, save, load: the file as another process would read it. */
function saveAndLoad(m: Model, opts: QuantizeOptions = {}): Model {
  return decodeOnnx(encodeOnnx(quantize(m, opts)));
}

function runAll(m: Model, feeds: Record<string, Tensor>): { outs: Record<string, Tensor>; session: Session } {
  const session = Session.create(cloneModel(m)); // sessions rewrite their model in place
  return { outs: session.runSync(feeds), session };
}

// ---- the independent reference -------------------------------------------------------------

function roundEven(x: number): number {
  const f = Math.floor(x), d = x - f;
  return d > 0.5 ? f + 1 : d < 0.5 ? f : f % 2 === 0 ? f : f + 1;
}

/** Symmetric int8 of one row: float32 math throughout, as the scheme says. */
function qrow(v: ArrayLike<number>): { q: number[]; s: number } {
  let amax = 0;
  for (let i = 0; i < v.length; i++) amax = Math.max(amax, Math.abs(fr(v[i]!)));
  amax = fr(amax);
  if (amax === 0) return { q: Array.from(v, () => 0), s: 0 };
  const inv = fr(127 / amax);
  return { q: Array.from(v, (x) => Math.max(-127, Math.min(127, roundEven(fr(fr(x) * inv))))), s: fr(amax / 127) };
}

/** Stored int8 weight [N, K] with per-row (nb = 1) or per-block scales, read back from the file. */
interface QW { q: Int8Array; s: Float32Array; N: number; K: number; nb: number; block: number }

function storedWeight(m: Model, input: number): QW {
  const g = m.graph;
  const rec = g.nodes.find((n) => n.name === 'rec')!;
  const reshape = g.nodes.find((n) => n.outputs[0] === rec.inputs[input])!;
  assert.equal(reshape.opType, 'Reshape');
  const dq = g.nodes.find((n) => n.outputs[0] === reshape.inputs[0])!;
  assert.equal(dq.opType, 'DequantizeLinear');
  const q = g.initializers.get(dq.inputs[0]!)!, s = g.initializers.get(dq.inputs[1]!)!;
  assert.equal(q.dtype, 'int8');
  const [N, K] = q.shape as [number, number];
  const bs = dq.attrs['block_size'];
  const block = bs?.type === 'int' ? bs.value : K;
  assert.equal(s.size, N * Math.ceil(K / block));
  return { q: q.data as Int8Array, s: s.data as Float32Array, N, K, nb: s.size / N, block };
}

/** Row x (length K) times rows row0..row0+n of w: per combined block, exact integer dot, dequantized. */
function int8Dot(x: ArrayLike<number>, w: QW, row0: number, n: number): number[] {
  const { q: xa, s: sx } = qrow(x);
  const B = w.block;
  const out: number[] = [];
  for (let j = 0; j < n; j++) {
    const row = row0 + j;
    let acc = 0;
    for (let b = 0; b < w.nb; b++) {
      let dot = 0;
      for (let k = b * B; k < Math.min(w.K, (b + 1) * B); k++) dot += xa[k]! * w.q[row * w.K + k]!;
      acc = fr(acc + fr(fr(sx * w.s[row * w.nb + b]!) * dot));
    }
    out.push(acc);
  }
  return out;
}

const sig = (x: number) => 1 / (1 + Math.exp(-x));

/** ONNX LSTM/GRU/RNN with int8 products: outputs in layout 0 (Y [T, D, N, H], states [D, N, H]). */
function reference(c: Case, m: Model, feeds: Record<string, Tensor>): Float64Array[] {
  const { op, T, N, I, H } = c;
  const G = GATES[op], D = c.direction === 'bidirectional' ? 2 : 1, GH = G * H;
  const W = storedWeight(m, 1), R = storedWeight(m, 2);
  const Bv = (m.graph.initializers.get('B')!.data as Float32Array);
  const P = c.peep ? (m.graph.initializers.get('P')!.data as Float32Array) : undefined;
  const xv = feeds['x']!.data as Float32Array;
  const X = (t: number, n: number) => (c.layout ? xv.subarray((n * T + t) * I, (n * T + t + 1) * I) : xv.subarray((t * N + n) * I, (t * N + n + 1) * I));
  const st = (name: string, d: number, n: number, h: number) => {
    const v = feeds[name]; if (!v) return 0;
    return (v.data as Float32Array)[(c.layout ? (n * D + d) : (d * N + n)) * H + h]!;
  };
  const clip = (v: number) => (c.clip === undefined ? v : Math.max(-c.clip, Math.min(c.clip, v)));
  const Y = new Float64Array(T * D * N * H), Yh = new Float64Array(D * N * H), Yc = new Float64Array(D * N * H);
  for (let d = 0; d < D; d++) {
    const rev = c.direction === 'reverse' || d === 1;
    for (let n = 0; n < N; n++) {
      const len = c.lens ? c.lens[n]! : T;
      let h = Array.from({ length: H }, (_, j) => st('h0', d, n, j));
      let cs = Array.from({ length: H }, (_, j) => st('c0', d, n, j));
      for (let s = 0; s < len; s++) {
        const t = rev ? len - 1 - s : s;
        const xw = int8Dot(X(t, n), W, d * GH, GH);
        const wb = (k: number, j: number) => Bv[d * 2 * GH + k * H + j]!, rb = (k: number, j: number) => Bv[d * 2 * GH + GH + k * H + j]!;
        if (op === 'RNN') {
          const hr = int8Dot(h, R, d * GH, H);
          h = h.map((_, j) => Math.tanh(clip(xw[j]! + wb(0, j) + hr[j]! + rb(0, j))));
        } else if (op === 'GRU') {
          const hr = int8Dot(h, R, d * GH, c.lbr ? GH : 2 * H);
          const z = h.map((_, j) => sig(clip(xw[j]! + wb(0, j) + hr[j]! + rb(0, j))));
          const rr = h.map((_, j) => sig(clip(xw[H + j]! + wb(1, j) + hr[H + j]! + rb(1, j))));
          let hh: number[];
          if (c.lbr) hh = h.map((_, j) => rr[j]! * (hr[2 * H + j]! + rb(2, j)));
          else { const rh = int8Dot(h.map((v, j) => rr[j]! * v), R, d * GH + 2 * H, H); hh = rh.map((v, j) => v + rb(2, j)); }
          h = h.map((v, j) => { const cand = Math.tanh(clip(xw[2 * H + j]! + wb(2, j) + hh[j]!)); return (1 - z[j]!) * cand + z[j]! * v; });
        } else {
          const hr = int8Dot(h, R, d * GH, GH);
          const pre = (k: number, j: number) => xw[k * H + j]! + wb(k, j) + hr[k * H + j]! + rb(k, j);
          const p = (k: number, j: number) => (P ? P[d * 3 * H + k * H + j]! : 0); // peepholes i, o, f
          const cNew = cs.map((cp, j) => {
            const ig = sig(clip(pre(0, j) + p(0, j) * cp)), fg = sig(clip(pre(2, j) + p(2, j) * cp));
            return fg * cp + ig * Math.tanh(clip(pre(3, j)));
          });
          h = cNew.map((cn, j) => sig(clip(pre(1, j) + p(1, j) * cn)) * Math.tanh(cn));
          cs = cNew;
        }
        for (let j = 0; j < H; j++) Y[((t * D + d) * N + n) * H + j] = h[j]!;
      }
      for (let j = 0; j < H; j++) { Yh[(d * N + n) * H + j] = h[j]!; Yc[(d * N + n) * H + j] = cs[j]!; }
    }
  }
  return op === 'LSTM' ? [Y, Yh, Yc] : [Y, Yh];
}

/** Check a q8 output against the scheme to 1e-5 of the largest value; returns the relative error. */
function matchesScheme(c: Case, t: Tensor, want: Float64Array, k: number, what: string): number {
  const got = toLayout0(c, t, k === 0);
  assert.equal(got.length, want.length);
  let maxAbs = 0, maxErr = 0;
  for (let i = 0; i < want.length; i++) { maxAbs = Math.max(maxAbs, Math.abs(want[i]!)); maxErr = Math.max(maxErr, Math.abs(got[i]! - want[i]!)); }
  assert.ok(maxAbs > 0.05, `${what} should not be trivially small`);
  assert.ok(maxErr <= 1e-5 * maxAbs, `${what}: max error ${maxErr} vs max |value| ${maxAbs}`);
  return maxErr / maxAbs;
}

/** A q8 output (layout c.layout) read in layout 0 order. */
function toLayout0(c: Case, t: Tensor, isY: boolean): Float64Array {
  const v = t.data as Float32Array;
  if (!c.layout) return Float64Array.from(v);
  const D = c.direction === 'bidirectional' ? 2 : 1, { T, N, H } = c;
  const out = new Float64Array(v.length);
  if (isY) {
    for (let n = 0; n < N; n++) for (let s = 0; s < T; s++) for (let d = 0; d < D; d++) for (let h = 0; h < H; h++)
      out[((s * D + d) * N + n) * H + h] = v[((n * T + s) * D + d) * H + h]!;
  } else {
    for (let n = 0; n < N; n++) for (let d = 0; d < D; d++) for (let h = 0; h < H; h++) out[(d * N + n) * H + h] = v[(n * D + d) * H + h]!;
  }
  return out;
}

function cos(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let ab = 0, aa = 0, bb = 0;
  for (let i = 0; i < a.length; i++) { ab += a[i]! * b[i]!; aa += a[i]! * a[i]!; bb += b[i]! * b[i]!; }
  return ab / Math.sqrt(aa * bb);
}

const CASES: [string, Case][] = [
  ['LSTM bidirectional, batch 3, sequence_lens, initial h/c, peepholes', { op: 'LSTM', T: 7, N: 3, I: 40, H: 32, direction: 'bidirectional', lens: [7, 4, 1], initial: true, peep: true }],
  ['LSTM layout=1, initial states, 32-value weight blocks', { op: 'LSTM', T: 6, N: 2, I: 72, H: 48, layout: 1, initial: true, opts: { weightWindow: 32 } }],
  ['LSTM reverse, clip', { op: 'LSTM', T: 5, N: 2, I: 24, H: 16, direction: 'reverse', clip: 1.5 }],
  ['GRU bidirectional, linear_before_reset=0, sequence_lens', { op: 'GRU', T: 6, N: 3, I: 32, H: 24, direction: 'bidirectional', lens: [3, 6, 5], initial: true }],
  ['GRU layout=1, linear_before_reset=1', { op: 'GRU', T: 5, N: 2, I: 20, H: 40, layout: 1, lbr: 1, initial: true }],
  ['RNN bidirectional, layout=1, sequence_lens', { op: 'RNN', T: 6, N: 3, I: 28, H: 36, direction: 'bidirectional', layout: 1, lens: [2, 6, 4], initial: true }],
];

for (const [title, c] of CASES) {
  test(`int8 ${title}: runs Q8Gemm + Q8${c.op}, matches the scheme, close to fp32`, (t) => {
    const r = rng(1000 + CASES.findIndex(([t]) => t === title));
    const { model, feeds, outputs } = build(c, r);
    const q = saveAndLoad(model, c.opts);
    const before = rnnInt8Stats.recurrentProducts;
    const { outs, session } = runAll(q, feeds);
    // (1) the session's graph runs the int8 forms, and the int8 recurrence really ran.
    const kinds = session.model.graph.nodes.map((n) => `${n.domain}.${n.opType}`);
    assert.deepEqual(kinds, ['q8.Q8Gemm', `q8.Q8${c.op}`], `${title}: ${kinds.join(', ')}`);
    const D = c.direction === 'bidirectional' ? 2 : 1;
    const perStep = c.op === 'GRU' && !c.lbr ? 2 : 1;
    assert.ok(rnnInt8Stats.recurrentProducts - before === D * c.T * perStep, `recurrent int8 products: ${rnnInt8Stats.recurrentProducts - before}`);
    // (2) equal to the scheme computed here from the file's int8 values.
    const want = reference(c, q, feeds);
    outputs.forEach((name, k) => t.diagnostic(`${name}: max |q8 - scheme| / max |scheme| = ${matchesScheme(c, outs[name]!, want[k]!, k, `${title} ${name}`).toExponential(2)}`));
    // (3) close to fp32, but not equal (int8 really changed something).
    const fp = runAll(model, feeds).outs;
    for (const name of outputs) {
      const a = fp[name]!.data as Float32Array, b = outs[name]!.data as Float32Array;
      const cs = cos(a, b);
      assert.ok(cs >= 0.999 && cs < 1 - 1e-9, `${title} ${name}: cosine vs fp32 ${cs}`);
      t.diagnostic(`${name}: cosine vs fp32 ${cs.toFixed(6)}`);
      assert.ok(a.some((v, i) => v !== b[i]));
    }
  });
}

test('the in-memory quantized model runs the same int8 path as the saved one', () => {
  const c = CASES[3]![1];
  const { model, feeds, outputs } = build(c, rng(84));
  const mem = quantize(model), saved = decodeOnnx(encodeOnnx(mem));
  const a = runAll(mem, feeds), b = runAll(saved, feeds);
  assert.deepEqual(a.session.model.graph.nodes.map((n) => n.opType), ['Q8Gemm', 'Q8GRU']);
  for (const o of outputs) assert.deepEqual([...(a.outs[o]!.data as Float32Array)], [...(b.outs[o]!.data as Float32Array)], o);
});

test('only R int8 (W excluded): the float projection feeds an int8 recurrence', () => {
  const c: Case = { op: 'LSTM', T: 4, N: 2, I: 16, H: 20, initial: true };
  const { model, feeds, outputs } = build(c, rng(77));
  const q = saveAndLoad(model, { exclude: ['rec.W'] });
  const { outs, session } = runAll(q, feeds);
  assert.deepEqual(session.model.graph.nodes.map((n) => n.opType), ['Q8LSTM']);
  const fp = runAll(model, feeds).outs;
  for (const o of outputs) assert.ok(cos(fp[o]!.data as Float32Array, outs[o]!.data as Float32Array) >= 0.999);
});

test('the report measures each LSTM/GRU weight\'s own output cosine, int8 vs fp32', () => {
  for (const c of [CASES[0]![1], CASES[3]![1]]) {
    const { model, feeds } = build(c, rng(90));
    const { report } = quantizeModel(model, { samples: [feeds] });
    assert.deepEqual(report.layers.map((l) => l.name), ['rec.W', 'rec.R']);
    for (const l of report.layers) assert.ok(l.cosine >= 0.999 && l.cosine < 1, `${c.op} ${l.name}: ${l.cosine}`);
    assert.ok(report.outputCosine >= 0.999 && report.outputCosine < 1);
    // Each layer alone loses less than both together.
    assert.ok(Math.min(...report.layers.map((l) => l.cosine)) >= report.outputCosine - 1e-6);
  }
});

test('finer windows (32-value weight blocks, 16-value activation blocks) reach both products', () => {
  const c: Case = { op: 'LSTM', T: 5, N: 2, I: 64, H: 48, direction: 'bidirectional', initial: true };
  const { model, feeds, outputs } = build(c, rng(83));
  const q = saveAndLoad(model, { weightWindow: 32, activationWindow: 16 });
  const { outs, session } = runAll(q, feeds);
  const at = session.model.graph.nodes.map((n) => [n.opType, n.attrs['weight_block']?.value, n.attrs['act_block']?.value]);
  assert.deepEqual(at, [['Q8Gemm', 32, 16], ['Q8LSTM', 32, 16]]);
  const row = runAll(saveAndLoad(model, { weightWindow: 32 }), feeds).outs, fp = runAll(model, feeds).outs;
  for (const o of outputs) {
    const a = fp[o]!.data as Float32Array, b = outs[o]!.data as Float32Array, r = row[o]!.data as Float32Array;
    assert.ok(cos(a, b) >= 0.999, o);
    assert.ok(b.some((v, i) => v !== r[i]), `${o}: the activation window should change the result`);
  }
});

test('an opset-13 model ignores a stray layout attribute after the rewrite too', () => {
  const c: Case = { op: 'GRU', T: 4, N: 2, I: 12, H: 8, initial: true };
  const { model, feeds, outputs } = build(c, rng(78));
  model.graph.nodes[0]!.attrs['layout'] = { type: 'int', value: 1 }; // not in GRU-7: must not be applied
  const q = saveAndLoad(model);
  const fp = runAll(model, feeds).outs, qo = runAll(q, feeds).outs;
  for (const o of outputs) assert.ok(cos(fp[o]!.data as Float32Array, qo[o]!.data as Float32Array) >= 0.999, o);
});

test('other QDQ forms: a 3-D per-tensor DequantizeLinear is run int8, a per-direction scale (axis 0) stays float (folded to fp32 weights)', () => {
  const c: Case = { op: 'GRU', T: 5, N: 2, I: 12, H: 10, direction: 'bidirectional', initial: true };
  const { model, feeds, outputs } = build(c, rng(82));
  const fp = runAll(model, feeds).outs;
  for (const [axis, perTensor, want] of [[0, true, ['Q8Gemm', 'Q8GRU']], [0, false, ['GRU']]] as const) {
    const m = cloneModel(model);
    const rec = m.graph.nodes[0]!;
    const dqs = [1, 2].map((i) => {
      const w = m.graph.initializers.get(rec.inputs[i]!)!;
      const v = w.data as Float32Array;
      // Scale per tensor, or one per direction along axis 0 (not per gate row: q8 keeps it float).
      const D = w.shape[0]!, per = v.length / D;
      const sc = Array.from({ length: perTensor ? 1 : D }, (_, d) => Math.fround(v.slice(perTensor ? 0 : d * per, perTensor ? v.length : (d + 1) * per).reduce((a, x) => Math.max(a, Math.abs(x)), 0) / 127));
      const q = Int8Array.from(v, (x, k) => Math.max(-127, Math.min(127, Math.round(x / sc[perTensor ? 0 : Math.floor(k / per)]!))));
      m.graph.initializers.set(`${rec.inputs[i]}_q`, Tensor.from('int8', w.shape, q));
      m.graph.initializers.set(`${rec.inputs[i]}_s`, Tensor.from('float32', perTensor ? [] : [D], sc));
      m.graph.initializers.delete(rec.inputs[i]!);
      return { name: `dq${i}`, opType: 'DequantizeLinear', domain: '', inputs: [`${rec.inputs[i]}_q`, `${rec.inputs[i]}_s`], outputs: [rec.inputs[i]!], attrs: attrsFrom({ axis }) as never };
    });
    m.graph.nodes.unshift(...dqs);
    const { outs, session } = runAll(m, feeds);
    assert.deepEqual(session.model.graph.nodes.map((n) => n.opType).filter((t) => t !== 'Reshape'), [...want]);
    for (const o of outputs) assert.ok(cos(fp[o]!.data as Float32Array, outs[o]!.data as Float32Array) >= 0.999, `${o} (per tensor ${perTensor})`);
  }
});

test('a wrong-shaped int8 R fails at load with a Q8Error naming the node', () => {
  const c: Case = { op: 'LSTM', T: 3, N: 2, I: 8, H: 6 };
  const { model } = build(c, rng(79));
  const q = saveAndLoad(model);
  // Store R as [4·H, H+1] int8 values behind a Reshape to [1, 4·H, H+1]: not an LSTM R for hidden 6.
  const rec = q.graph.nodes.find((n) => n.name === 'rec')!;
  const reshape = q.graph.nodes.find((n) => n.outputs[0] === rec.inputs[2])!;
  const dq = q.graph.nodes.find((n) => n.outputs[0] === reshape.inputs[0])!;
  const r = rng(5);
  q.graph.initializers.set(dq.inputs[0]!, Tensor.from('int8', [24, 7], new Int8Array(24 * 7).map(() => r.int(-127, 127))));
  q.graph.initializers.set(reshape.inputs[1]!, Tensor.from('int64', [3], [1n, 24n, 7n]));
  assert.throws(() => Session.create(q), (e: unknown) => e instanceof Q8Error && e.node === 'rec' && /int8 R/.test(e.message) && /\[1, ?24, ?6\]/.test(e.message));
});

test('a q8.Q8LSTM whose int8 R does not match its scales or hidden size names the node', () => {
  const b = new Builder(rng(80), 14);
  b.input('x', [3, 1, 4]);
  const H = 5;
  const r = rng(81);
  b.init('W', Tensor.from('float32', [1, 4 * H, 4], randomArray(r, 4 * H * 4)));
  b.init('Rq', Tensor.from('int8', [1, 4 * H, H + 1], new Int8Array(4 * H * (H + 1)).map(() => r.int(-127, 127))));
  b.init('Rs', Tensor.from('float32', [4 * H], randomArray(r, 4 * H, 0.01)));
  b.model.graph.nodes.push({ name: 'bad_lstm', opType: 'Q8LSTM', domain: 'q8', inputs: ['x', 'W', 'Rq', '', '', '', '', '', 'Rs'], outputs: ['y'], attrs: attrsFrom({ hidden_size: H }) as never });
  b.model.opsets.set('q8', 1);
  b.output('y');
  const s = Session.create(b.model);
  const x = Tensor.from('float32', [3, 1, 4], randomArray(r, 12));
  assert.throws(() => s.runSync({ x }), (e: unknown) => e instanceof Q8Error && e.node === 'bad_lstm' && /input R should have shape \[1, 20, 5\]/.test(e.message));
  // Right shape, scales missing.
  b.model.graph.initializers.set('Rq', Tensor.from('int8', [1, 4 * H, H], new Int8Array(4 * H * H).map(() => r.int(-127, 127))));
  b.model.graph.nodes[0]!.inputs = ['x', 'W', 'Rq'];
  assert.throws(() => Session.create(b.model).runSync({ x }), (e: unknown) => e instanceof Q8Error && e.node === 'bad_lstm' && /scales/.test(e.message));
});

for (const backend of ['native', 'wasm'] as BackendName[]) {
  test(`${backend} backend: the recurrent products run through its Q8Gemm kernel and still match the scheme`, (t) => {
    const b = getBackend(backend);
    if (!b?.available()) { t.skip(`${backend} backend not available`); return; }
    const q8gemm = b.kernels.find((k) => k.opType === 'Q8Gemm' && k.domain === 'q8')!;
    const fast = q8RecurrentKernels((a) => q8gemm.compile(a));
    for (const k of [0, 1, 3, 4, 5]) {
      const [title, c] = CASES[k]!;
      const { model, feeds, outputs } = build(c, rng(2000 + k));
      const q = saveAndLoad(model, c.opts);
      const s = Session.create(cloneModel(q), { backend: 'ref' }); // its graph: [Q8Gemm, Q8<op>]
      const [proj, rec] = s.model.graph.nodes as [typeof s.model.graph.nodes[0], typeof s.model.graph.nodes[0]];
      const value = (n: string) => (n ? feeds[n] ?? s.model.graph.initializers.get(n) : undefined);
      const gemm = getOp('q8', 'Q8Gemm')!;
      const xw = invokeKernel(gemm, gemm.run, proj.inputs.map(value), makeContext(proj, 1))[0]!;
      const consts = rec.inputs.map((n) => (n ? s.model.graph.initializers.get(n) : undefined));
      const kernel = fast.find((f) => f.opType === rec.opType)!.compile({ node: rec, consts, opset: 1, threads: 0 });
      assert.ok(kernel, `${title}: ${backend} should compile ${rec.opType}`);
      const before = rnnInt8Stats.recurrentProducts;
      const outs = kernel(rec.inputs.map((n) => (n === proj.outputs[0] ? xw : value(n))), makeContext(rec, 1));
      assert.ok(rnnInt8Stats.recurrentProducts > before);
      const want = reference(c, q, feeds);
      outputs.forEach((name, i) => t.diagnostic(`${title} ${name}: ${backend} vs scheme ${matchesScheme(c, outs[i]!, want[i]!, i, `${backend} ${title} ${name}`).toExponential(2)}`));
    }
  });
}
