/**
 * Load-time rewrite: a DequantizeLinear of a constant int8 weight feeding Conv / Gemm / MatMul (q8's
 * saved form, and the weight half of standard QDQ models) becomes one Q8Conv / Q8Gemm that runs on
 * the stored int8 values (no re-quantization), with a following Relu/Clip fused into it.
 *
 * Recognised weight chains (zero point absent or all zeros, values in [-127, 127]):
 *   Conv:   DQ(int8 [M,C/g,kh(,kw)], per-tensor or axis=0)            → Conv.W
 *           DQ(int8 [M,K], per-tensor, axis=0, or axis=1 block_size B) → Reshape(const) → Conv.W
 *   Gemm:   DQ(int8 [N,K]) → Gemm.B (transB=1);  DQ(int8 [K,N]) → Gemm.B (transB=0) (transA=0, C ∈ {absent, [N]-broadcast const})
 *   MatMul: DQ(int8 [K,N], per-tensor, axis=1, or axis=0 block_size B) → MatMul.B
 *   LSTM/GRU/RNN: DQ(int8 [dirs·G·H, K], per-tensor, axis=0, or axis=1 block_size B) → Reshape(const
 *           [dirs, G·H, K]) → W and/or R (or DQ(int8 [dirs, G·H, K], per-tensor) directly): an int8 W
 *           becomes a Q8Gemm computing X·Wᵀ of all steps, an int8 R a q8.Q8LSTM/Q8GRU/Q8RNN whose
 *           recurrent product runs int8 (quant/rnn-int8.ts)
 * Anything else is left as it is and runs in float (still correct, just not int8).
 */
import { Q8Error } from '../core/errors.js';
import type { AttrValue, Graph, Model, Node } from '../graph/ir.js';
import { opsetOf, registerRewrite } from '../graph/passes.js';
import { Tensor } from '../tensor/tensor.js';
import { constResolver } from './consts.js';
import { R_SCALE_INPUT } from './rnn-int8.js';

export const ACT_WINDOW_KEY = 'q8.activation_window';

/** parseActWindow's value for 'tap' windows (Q8Conv act_tap = 1; other ops treat it as a whole row). */
export const TAP_WINDOW = -1;

/** The act_block / act_tap attributes of a Q8 op for a parsed window (TAP_WINDOW only means taps for Conv). */
export function actAttrs(ab: number, conv: boolean): { act_block: number; act_tap?: number } {
  if (ab === TAP_WINDOW) return conv ? { act_block: 0, act_tap: 1 } : { act_block: 0 };
  return { act_block: ab };
}

/** Parse an activation window setting: 'row' | 'patch' | 'tap' | N → act_block (0 = whole row/patch, TAP_WINDOW). */
export function parseActWindow(v: string | number | undefined): number {
  if (v === 'tap') return TAP_WINDOW;
  if (v === undefined || v === '' || v === 'row' || v === 'patch' || v === 0 || v === '0') return 0;
  const n = typeof v === 'number' ? v : Number(v);
  if (!Number.isInteger(n) || n < 1 || (n & (n - 1)) !== 0) {
    throw new Q8Error(`activation window should be 'row', 'patch', 'tap' or a power of two, got '${v}'`);
  }
  return n;
}

const WEIGHT_BLOCKS = new Set([32, 64, 128, 256]);

interface Canon {
  /** Stored weight shape for Q8Conv ([M, C/g, k...]); [N, K] otherwise. */
  shape?: number[];
  q: Int8Array;      // [N, K]
  scales: Float32Array; // [N, nb]
  N: number;
  K: number;
  block: number;
}

let resolve: (name: string | undefined) => Tensor | undefined = () => undefined;

function constOf(_g: Graph, _fed: Set<string>, name: string): Tensor | undefined {
  return resolve(name);
}

function intAttr(n: Node, k: string, d: number): number {
  const a = n.attrs[k];
  return a && (a.type === 'int' || a.type === 'float') ? a.value : d;
}

function floatAttr(n: Node, k: string, d: number): number {
  const a = n.attrs[k];
  return a && (a.type === 'int' || a.type === 'float') ? a.value : d;
}

/**
 * Read a DQ node's int8 weight into canonical [N, K] output-major form. `outAxis` says which axis of
 * the (2-D view of the) stored tensor is the output channel; `rows`×`cols` is that 2-D view.
 */
function canonical(model: Model, dq: Node, fed: Set<string>, rows: number, cols: number, outAxis: 0 | 1): Canon | null {
  const g = model.graph;
  const x = constOf(g, fed, dq.inputs[0] ?? '');
  const s = constOf(g, fed, dq.inputs[1] ?? '');
  const z = dq.inputs[2] ? constOf(g, fed, dq.inputs[2]) : undefined;
  if (!x || !s || x.dtype !== 'int8' || s.dtype !== 'float32' || x.size !== rows * cols) return null;
  if (dq.inputs[2] && !z) return null;
  if (z && (z.dtype !== 'int8' || z.toNumbers().some((v) => v !== 0))) return null;
  const xd = x.data as Int8Array;
  for (let i = 0; i < xd.length; i++) if (xd[i] === -128) return null; // outside the symmetric range
  const opset = opsetOf(model, '');
  const rank = x.rank;
  const axisRaw = opset >= 13 ? intAttr(dq, 'axis', 1) : 1;
  const axis = axisRaw < 0 ? axisRaw + rank : axisRaw;
  const block = opset >= 21 ? intAttr(dq, 'block_size', 0) : 0;
  const N = outAxis === 0 ? rows : cols;
  const K = outAxis === 0 ? cols : rows;
  const sv = s.data as Float32Array;
  let scales: Float32Array;
  let wb = 0;
  if (s.size === 1 && block === 0) {
    scales = new Float32Array(N).fill(sv[0]!);
  } else if (block === 0) {
    // Per-axis: the axis must be the output channel (axis 0 of a [N,...] weight, or axis 1 of [K,N]).
    const outDimAxis = outAxis === 0 ? 0 : rank - 1;
    if (axis !== outDimAxis || s.size !== N || (outAxis === 1 && rank !== 2)) return null;
    scales = sv.slice();
  } else {
    // Blocked: along K, i.e. axis 1 of a 2-D [N,K] or axis 0 of a 2-D [K,N].
    if (rank !== 2 || axis !== 1 - outAxis) return null;
    if (!WEIGHT_BLOCKS.has(block) && block < K) return null;
    const nb = Math.ceil(K / block);
    if (s.size !== N * nb) return null;
    if (block >= K) { scales = new Float32Array(N); for (let n = 0; n < N; n++) scales[n] = sv[n]!; }
    else {
      wb = block;
      scales = new Float32Array(N * nb);
      // stored scale shape is [N, nb] for outAxis 0, [nb, N] for outAxis 1
      for (let n = 0; n < N; n++) for (let b = 0; b < nb; b++) scales[n * nb + b] = outAxis === 0 ? sv[n * nb + b]! : sv[b * N + n]!;
    }
  }
  let q: Int8Array;
  if (outAxis === 0) q = xd;
  else {
    q = new Int8Array(N * K);
    for (let k = 0; k < K; k++) for (let n = 0; n < N; n++) q[n * K + k] = xd[k * N + n]!;
  }
  return { q, scales, N, K, block: wb };
}

function uniqueName(g: Graph, base: string, taken: Set<string>): string {
  let name = base;
  for (let i = 1; g.initializers.has(name) || taken.has(name); i++) name = `${base}_${i}`;
  taken.add(name);
  return name;
}

/** Run the rewrite on a model; returns how many layers now run in int8. */
export function rewriteQuantized(model: Model): number {
  const g = model.graph;
  const fed = new Set(g.inputs.map((i) => i.name));
  resolve = constResolver(g);
  const producer = new Map<string, Node>();
  for (const n of g.nodes) for (const o of n.outputs) if (o) producer.set(o, n);
  const consumers = new Map<string, Node[]>();
  for (const n of g.nodes) for (const i of n.inputs) if (i) { const l = consumers.get(i) ?? []; l.push(n); consumers.set(i, l); }
  const graphOutputs = new Set(g.outputs.map((o) => o.name));
  const actBlock = parseActWindow(model.metadata.get(ACT_WINDOW_KEY));
  const perLayer = parseLayerActs(model.metadata.get('q8.layer_activation_windows'));
  const taken = new Set<string>();
  const replaced = new Map<Node, Node>();
  const before = new Map<Node, Node[]>();
  let count = 0;

  for (const n of g.nodes) {
    if (n.domain === '' && RNN_GATES[n.opType]) {
      const r = rewriteRnn(model, n, producer, fed, taken, actAttrs(perLayer.get(n.name) ?? actBlock, false).act_block);
      if (r) { replaced.set(n, r.node); before.set(n, r.before); count++; }
      continue;
    }
    if (n.domain !== '' || (n.opType !== 'Conv' && n.opType !== 'Gemm' && n.opType !== 'MatMul')) continue;
    const wName = n.inputs[1] ?? '';
    let src = producer.get(wName);
    let reshapeTo: number[] | undefined;
    if (src && src.opType === 'Reshape' && src.domain === '' && n.opType === 'Conv') {
      const shp = constOf(g, fed, src.inputs[1] ?? '');
      if (!shp) continue;
      reshapeTo = shp.toNumbers();
      src = producer.get(src.inputs[0] ?? '');
    }
    if (!src || src.opType !== 'DequantizeLinear' || src.domain !== '') continue;
    const x = constOf(g, fed, src.inputs[0] ?? '');
    if (!x) continue;
    let canon: Canon | null = null;
    let bias: Tensor | undefined;
    const attrs: Record<string, AttrValue> = {};
    if (n.opType === 'Conv') {
      const shape = reshapeTo ? resolveReshape(x.shape, reshapeTo) : [...x.shape];
      if (!shape || (shape.length !== 3 && shape.length !== 4)) continue;
      const N = shape[0]!, K = shape.slice(1).reduce((a, b) => a * b, 1);
      if (reshapeTo && x.rank !== 2) continue;
      canon = canonical(model, src, fed, N, K, 0);
      if (!canon) continue;
      if (n.inputs[2]) { const b = constOf(g, fed, n.inputs[2]); if (b && b.dtype !== 'float32') continue; bias = b; }
      for (const k of ['auto_pad', 'dilations', 'group', 'kernel_shape', 'pads', 'strides']) if (n.attrs[k]) attrs[k] = n.attrs[k]!;
      attrs['kernel_shape'] = { type: 'ints', value: shape.slice(2) };
      canon.shape = shape;
    } else {
      if (x.rank !== 2) continue;
      let transB = 0;
      if (n.opType === 'Gemm') {
        if (intAttr(n, 'transA', 0) !== 0) continue;
        transB = intAttr(n, 'transB', 0);
      }
      const [r, c] = x.shape as [number, number];
      canon = canonical(model, src, fed, r, c, transB ? 0 : 1);
      if (!canon) continue;
      if (n.opType === 'Gemm') {
        const alpha = floatAttr(n, 'alpha', 1), beta = floatAttr(n, 'beta', 1);
        if (alpha !== 1) canon = { ...canon, scales: canon.scales.map((v) => Math.fround(v * alpha)) };
        if (n.inputs[2]) {
          const C = constOf(g, fed, n.inputs[2]);
          if (!C || C.dtype !== 'float32' || !(C.size === canon.N || C.size === 1) || (C.rank === 2 && C.shape[0] !== 1)) continue;
          const cv = C.data as Float32Array;
          const b = new Float32Array(canon.N);
          for (let i = 0; i < canon.N; i++) b[i] = Math.fround(beta * cv[C.size === 1 ? 0 : i]!);
          bias = Tensor.from('float32', [canon.N], b);
        }
      }
    }
    const base = n.name || n.outputs[0] || 'layer';
    const wq = uniqueName(g, `${base}__q8_w`, taken);
    const ws = uniqueName(g, `${base}__q8_scale`, taken);
    const shape = canon.shape ?? [canon.N, canon.K];
    g.initializers.set(wq, Tensor.from('int8', shape, canon.q));
    g.initializers.set(ws, Tensor.from('float32', canon.block ? [canon.N, canon.scales.length / canon.N] : [canon.N], canon.scales));
    const inputs = [n.inputs[0]!, wq, ws];
    if (n.opType === 'Conv' && n.inputs[2]) inputs.push(n.inputs[2]);
    else if (bias) {
      const bn = uniqueName(g, `${base}__q8_bias`, taken);
      g.initializers.set(bn, bias);
      inputs.push(bn);
    }
    attrs['weight_block'] = { type: 'int', value: canon.block };
    // Tap windows need channel weight windows and one group (the quantizer only writes them so).
    let ab = perLayer.get(n.name) ?? actBlock;
    if (ab === TAP_WINDOW && (canon.block !== 0 || intAttr(n, 'group', 1) !== 1)) ab = 0;
    for (const [k, v] of Object.entries(actAttrs(ab, n.opType === 'Conv'))) attrs[k] = { type: 'int', value: v };
    const q8: Node = { name: n.name, opType: n.opType === 'Conv' ? 'Q8Conv' : 'Q8Gemm', domain: 'q8', inputs, outputs: [n.outputs[0]!], attrs };
    replaced.set(n, q8);
    count++;
  }
  if (!count) return 0;
  g.nodes = g.nodes.flatMap((n) => { const r = replaced.get(n); return r ? [...(before.get(n) ?? []), r] : [n]; });
  fuseActivations(model, consumers, graphOutputs, fed);
  if (!model.opsets.has('q8')) model.opsets.set('q8', 1);
  return count;
}

/** Gate count of the recurrent ops. */
const RNN_GATES: Record<string, number> = { LSTM: 4, GRU: 3, RNN: 1 };

/**
 * An LSTM/GRU/RNN with int8 W and/or R becomes [Q8Gemm(X, W) →] q8.Q8<op>. A recognised int8 weight
 * whose shape cannot be the op's fails here, naming the node (the float op would fail at run time).
 */
function rewriteRnn(model: Model, n: Node, producer: Map<string, Node>, fed: Set<string>, taken: Set<string>, actBlock: number): { node: Node; before: Node[] } | null {
  const g = model.graph;
  const G = RNN_GATES[n.opType]!;
  const dirAttr = n.attrs['direction'];
  const numDir = dirAttr?.type === 'string' && dirAttr.value === 'bidirectional' ? 2 : 1;
  const where = { file: model.source, node: n.name, opType: n.opType };
  /** The int8 weight behind input i as [dirs·G·H, K] rows, or null when it is not q8's int8 form. */
  const int8Weight = (i: number): { canon: Canon; shape: number[] } | null => {
    let src = producer.get(n.inputs[i] ?? '');
    let shape: number[] | null = null;
    if (src && src.opType === 'Reshape' && src.domain === '') {
      const shp = constOf(g, fed, src.inputs[1] ?? '');
      const x = src.inputs[0] ? producer.get(src.inputs[0]) : undefined;
      const xq = x && x.opType === 'DequantizeLinear' && x.domain === '' ? constOf(g, fed, x.inputs[0] ?? '') : undefined;
      if (!shp || !xq) return null;
      shape = resolveReshape(xq.shape, shp.toNumbers());
      // Rows of the stored int8 tensor must be the op's rows (a block or row scale must not straddle two).
      if (!shape || shape.length !== 3 || xq.rank !== 2 || xq.shape[0] !== shape[0]! * shape[1]!) return null;
      src = x;
    } else if (src && src.opType === 'DequantizeLinear' && src.domain === '') {
      const xq = constOf(g, fed, src.inputs[0] ?? '');
      if (!xq || xq.rank !== 3) return null;
      shape = [...xq.shape];
    } else return null;
    const [dirs, GH, K] = shape as [number, number, number];
    const canon = canonical(model, src!, fed, dirs * GH, K, 0);
    if (!canon) return null;
    const what = i === 1 ? 'W' : 'R';
    if (dirs !== numDir || GH % G !== 0 || GH === 0) {
      throw new Q8Error(`int8 ${what} of shape ${JSON.stringify(shape)} does not fit ${n.opType} (${numDir} direction(s), ${G} gate(s)): expected [${numDir}, ${G}·hidden, ${i === 1 ? 'input' : 'hidden'}]`, where);
    }
    return { canon, shape };
  };
  const w = int8Weight(1), r = int8Weight(2);
  if (!w && !r) return null;
  const hAttr = n.attrs['hidden_size'];
  const hidden = hAttr?.type === 'int' ? hAttr.value : (w ?? r)!.shape[1]! / G;
  for (const [x, what] of [[w, 'W'], [r, 'R']] as const) {
    if (x && x.shape[1] !== G * hidden) throw new Q8Error(`int8 ${what} of shape ${JSON.stringify(x.shape)} does not fit hidden_size ${hidden}: expected ${G}·${hidden} = ${G * hidden} rows per direction`, where);
  }
  if (r && r.shape[2] !== hidden) throw new Q8Error(`int8 R of shape ${JSON.stringify(r.shape)} should be [${numDir}, ${G * hidden}, ${hidden}]: its last dimension is the hidden size`, where);
  const base = n.name || n.outputs[0] || 'rnn';
  const attrs: Record<string, AttrValue> = { ...n.attrs };
  // Before opset 14 ONNX has no layout attribute; the q8 op reads it, so it must not see a stray one.
  if (opsetOf(model, '') < 14) delete attrs['layout'];
  attrs['hidden_size'] = { type: 'int', value: hidden };
  attrs['act_block'] = { type: 'int', value: actBlock };
  const inputs = Array.from({ length: 8 }, (_, i) => n.inputs[i] ?? '');
  const before: Node[] = [];
  if (w) {
    const wq = uniqueName(g, `${base}__q8_w`, taken), ws = uniqueName(g, `${base}__q8_w_scale`, taken);
    g.initializers.set(wq, Tensor.from('int8', [w.canon.N, w.canon.K], w.canon.q));
    g.initializers.set(ws, Tensor.from('float32', w.canon.block ? [w.canon.N, w.canon.scales.length / w.canon.N] : [w.canon.N], w.canon.scales));
    const xw = uniqueName(g, `${base}__q8_xw`, taken);
    before.push({
      name: uniqueName(g, `${base}__q8_projection`, taken), opType: 'Q8Gemm', domain: 'q8', inputs: [inputs[0]!, wq, ws], outputs: [xw],
      attrs: { weight_block: { type: 'int', value: w.canon.block }, act_block: { type: 'int', value: actBlock } },
    });
    inputs[0] = xw;
    inputs[1] = '';
    attrs['projected'] = { type: 'int', value: 1 };
  }
  if (r) {
    const rq = uniqueName(g, `${base}__q8_r`, taken), rs = uniqueName(g, `${base}__q8_r_scale`, taken);
    g.initializers.set(rq, Tensor.from('int8', r.shape, r.canon.q));
    g.initializers.set(rs, Tensor.from('float32', r.canon.block ? [r.canon.N, r.canon.scales.length / r.canon.N] : [r.canon.N], r.canon.scales));
    inputs[2] = rq;
    inputs[R_SCALE_INPUT] = rs;
    attrs['weight_block'] = { type: 'int', value: r.canon.block };
  }
  while (inputs.length && inputs[inputs.length - 1] === '') inputs.pop();
  return { node: { name: n.name, opType: `Q8${n.opType}`, domain: 'q8', inputs, outputs: [...n.outputs], attrs }, before };
}

function parseLayerActs(v: string | undefined): Map<string, number> {
  const m = new Map<string, number>();
  if (!v) return m;
  try {
    const o = JSON.parse(v) as Record<string, string | number>;
    for (const [k, w] of Object.entries(o)) m.set(k, parseActWindow(w));
  } catch { /* a malformed hint is ignored: defaults apply */ }
  return m;
}

/** ONNX Reshape target (0 copies the input dim, -1 infers); null when it does not resolve. */
function resolveReshape(from: readonly number[], to: number[]): number[] | null {
  const total = from.reduce((a, b) => a * b, 1);
  const out = to.map((d, i) => (d === 0 ? from[i] ?? 0 : d));
  const neg = out.indexOf(-1);
  if (neg >= 0) {
    const rest = out.reduce((a, b, i) => (i === neg ? a : a * b), 1);
    if (!rest || total % rest) return null;
    out[neg] = total / rest;
  }
  return out.reduce((a, b) => a * b, 1) === total && out.every((d) => d > 0) ? out : null;
}

/**
 * Fold what alone consumes a Q8 node's output into it: for a Q8Gemm without bias, an Add of a
 * constant float32 bias [N] (exported MatMuls keep the bias in a separate Add; the kernels add it in
 * their store, as fround(y + b) like the Add), then a Relu / Clip with constant bounds.
 */
function fuseActivations(model: Model, _old: Map<string, Node[]>, graphOutputs: Set<string>, fed: Set<string>): void {
  const g = model.graph;
  const consumers = new Map<string, Node[]>();
  for (const n of g.nodes) for (const i of n.inputs) if (i) { const l = consumers.get(i) ?? []; l.push(n); consumers.set(i, l); }
  const drop = new Set<Node>();
  const opset = opsetOf(model, '');
  const soleUser = (out: string): Node | undefined => {
    if (graphOutputs.has(out)) return undefined;
    const users = consumers.get(out) ?? [];
    return users.length === 1 && users[0]!.domain === '' ? users[0] : undefined;
  };
  for (const n of g.nodes) {
    if (n.domain !== 'q8' || (n.opType !== 'Q8Gemm' && n.opType !== 'Q8Conv')) continue;
    let a = soleUser(n.outputs[0]!);
    if (a && a.opType === 'Add' && n.opType === 'Q8Gemm' && n.inputs.length === 3 && a.inputs.length === 2) {
      const out = n.outputs[0]!;
      const other = a.inputs[0] === out ? a.inputs[1] : a.inputs[1] === out ? a.inputs[0] : undefined;
      const b = other && other !== out ? constOf(g, fed, other) : undefined;
      const N = g.initializers.get(n.inputs[1]!)?.shape[0];
      if (b && b.dtype === 'float32' && b.rank === 1 && b.size === N) {
        n.inputs.push(other!);
        n.outputs = [a.outputs[0]!];
        drop.add(a);
        a = soleUser(n.outputs[0]!);
      }
    }
    const out = n.outputs[0]!;
    if (!a || a.inputs[0] !== out) continue;
    if (a.opType === 'Relu') {
      n.attrs['activation'] = { type: 'string', value: 'Relu' };
    } else if (a.opType === 'Clip') {
      let lo = -Infinity, hi = Infinity;
      if (opset >= 11) {
        const mn = a.inputs[1] ? constOf(g, fed, a.inputs[1]) : undefined;
        const mx = a.inputs[2] ? constOf(g, fed, a.inputs[2]) : undefined;
        if ((a.inputs[1] && !mn) || (a.inputs[2] && !mx)) continue;
        if (mn) lo = mn.num(0);
        if (mx) hi = mx.num(0);
      } else {
        lo = floatAttr(a, 'min', -3.4028234663852886e38);
        hi = floatAttr(a, 'max', 3.4028234663852886e38);
      }
      n.attrs['activation'] = { type: 'string', value: 'Clip' };
      n.attrs['clip_min'] = { type: 'float', value: lo };
      n.attrs['clip_max'] = { type: 'float', value: hi };
    } else continue;
    n.outputs = [a.outputs[0]!];
    drop.add(a);
  }
  g.nodes = g.nodes.filter((n) => !drop.has(n));
}

registerRewrite({ name: 'q8-int8-weights', run: (m) => { rewriteQuantized(m); } });
