/**
 * The quantization pass: `quantizeModel(model, options)` returns a new model whose Conv / Gemm /
 * MatMul weights are int8 with local windows, written the standard ONNX way (int8 initializer +
 * float scales → DequantizeLinear → the original op), plus a per-layer report. q8 runs that form
 * with int8 kernels (src/quant/rewrite.ts recognises it at load); other runtimes run it as ONNX.
 *
 *   const { model: q, report } = quantizeModel(loadOnnxFile('vgg16.onnx'));
 *   saveOnnxFile(q, 'vgg16-int8.onnx');
 *   console.log(formatReport(report));
 */
import { Q8Error } from '../core/errors.js';
import type { Graph, Model, Node } from '../graph/ir.js';
import { Session, type Feeds } from '../runtime/session.js';
import { cloneModel } from '../graph/clone.js';
import { runOp } from '../runtime/invoke.js';
import { Tensor } from '../tensor/tensor.js';
import { constResolver } from './consts.js';
import { ensureOpset } from './opset.js';
import { ACT_WINDOW_KEY, actAttrs, parseActWindow, TAP_WINDOW } from './rewrite.js';
import { runRnnLayerInt8 } from './rnn-int8.js';
import { cosine, quantType, type QuantizedWeights } from './types.js';
import './register.js';

/** Re-exported for callers that clone before quantizing (one implementation: graph/clone.ts). */
export { cloneModel };

export type WeightWindow = 'channel' | 32 | 64 | 128 | 256;
export type ActivationWindow = 'row' | 'patch' | 'tap' | number;

export interface QuantizeOptions {
  /** Weight window: one output channel (default) or blocks of 32/64/128/256 input values. */
  weightWindow?: WeightWindow;
  /**
   * Activation window: a whole row / im2col patch (default), 'tap' (ungrouped Conv with channel weight
   * windows: the C values one input pixel gives a patch, so each image is quantized once instead of
   * once per patch; other layers: a row), or blocks of N values. Tap windows are not the default: the
   * native kernel measured 1-5% slower with them than with patches, except on very large maps (8%
   * faster on 64 channels at 224x224).
   */
  activationWindow?: ActivationWindow;
  /** Activation window for depthwise convolutions (K = kh·kw is tiny). Default: 'patch'. */
  depthwiseActivationWindow?: ActivationWindow;
  /** Layers kept in fp32: node names, output names, or op types ('Conv', 'Gemm', 'MatMul', 'depthwise'). */
  exclude?: readonly string[];
  /** Sample inputs for the report's output cosines and for the accuracy-aware mode. */
  samples?: readonly Feeds[];
  /** Compute per-layer output cosines (needs samples; a random input is synthesised when none given). */
  report?: boolean;
  /**
   * Accuracy-aware mode: keep the most damaging layers in fp32 until every model output on every
   * sample has cosine ≥ minCosine against fp32 (default 0.999). Needs samples.
   */
  accuracy?: boolean | { minCosine?: number };
}

export interface LayerReport {
  name: string;
  opType: 'Conv' | 'Gemm' | 'MatMul' | 'LSTM' | 'GRU' | 'RNN';
  /**
   * 'rnn': an LSTM/GRU/RNN weight (W or R), stored int8 per gate row. q8 computes with it in int8 at
   * load: W as a Q8Gemm over all steps' X rows, R inside q8.Q8LSTM/Q8GRU/Q8RNN per step's H rows.
   */
  kind: 'conv' | 'depthwise' | 'gemm' | 'matmul' | 'rnn';
  /** Weight as [N outputs, K inputs per output]. */
  N: number;
  K: number;
  quantized: boolean;
  /** Why a layer stayed fp32 ('excluded', 'accuracy', ...). */
  reason?: string;
  quantType: string;
  activationWindow: string;
  /** Weight signal-to-quantization-noise ratio (dB). */
  sqnrDb: number;
  /** Cosine of the layer's int8 output vs its fp32 output, on fp32 inputs (NaN without samples). */
  cosine: number;
  bytesFp32: number;
  bytesInt8: number;
  worst: boolean;
}

export interface QuantReport {
  layers: LayerReport[];
  /** Names of the worst quantized layers (lowest output cosine, else lowest SQNR). */
  worst: string[];
  weightBytesFp32: number;
  weightBytesInt8: number;
  /** Lowest cosine of any model output on any sample, int8 vs fp32 (NaN without samples). */
  outputCosine: number;
  samples: number;
  weightWindow: string;
  activationWindow: string;
  /** Layers the accuracy-aware mode kept in fp32. */
  keptFp32: string[];
  seconds: number;
}

export interface QuantizeResult {
  model: Model;
  report: QuantReport;
}

interface Layer {
  name: string;
  node: Node;
  opType: LayerReport['opType'];
  /** Which node input holds the weight (1, or 2 for an RNN's R). */
  input: number;
  kind: LayerReport['kind'];
  N: number;
  K: number;
  /** fp32 weight as [N, K] output-major (alpha folded in for Gemm). */
  w: Float32Array;
  bias?: Float32Array | undefined;
  /** Conv weight shape [M, C/group, k...]. */
  wShape?: readonly number[];
  actBlock: number;
  actWindow: string;
  excluded: string | undefined;
  qw?: QuantizedWeights;
  sqnr: number;
  cos: number;
}

export const Q8_FORMAT_VERSION = '1';

/** Quantize and return only the model. */
export function quantize(model: Model, options: QuantizeOptions = {}): Model {
  return quantizeModel(model, options).model;
}

export function quantizeModel(model: Model, options: QuantizeOptions = {}): QuantizeResult {
  const t0 = performance.now();
  const weightWindow = options.weightWindow ?? 'channel';
  const type = quantType(weightWindow);
  const actWindow = options.activationWindow ?? 'row';
  const actBlock = parseActWindow(actWindow);
  const dwWindow = options.depthwiseActivationWindow ?? 'patch';
  const dwBlock = parseActWindow(dwWindow);
  const layers = findLayers(model, options.exclude ?? [], actBlock, String(actWindow), dwBlock, String(dwWindow));
  // 'tap' only means something for ungrouped Conv with channel weight windows; elsewhere it is a row.
  for (const l of layers) {
    if (l.actBlock !== TAP_WINDOW) continue;
    if (l.opType !== 'Conv' || intAttr(l.node, 'group', 1) !== 1 || weightWindow !== 'channel') {
      l.actBlock = 0;
      l.actWindow = l.opType === 'Conv' ? 'patch' : 'row';
    }
  }
  for (const l of layers) {
    if (l.excluded) continue;
    l.qw = type.quantize(l.w, l.N, l.K, `${model.source ? model.source + ': ' : ''}node '${l.name}' (${l.opType})`);
    l.sqnr = l.qw.sqnrDb!;
  }
  const wantCos = options.report || options.accuracy || (options.samples && options.samples.length > 0);
  let samples = options.samples ?? [];
  let fp32Outputs: Record<string, Tensor>[] = [];
  let wantCosines = !!wantCos;
  if (wantCosines && !samples.length) {
    try {
      samples = [synthesizeFeeds(model)];
    } catch (e) {
      // A report can do without output cosines (e.g. integer token inputs); the accuracy mode cannot.
      if (options.accuracy) throw e;
      wantCosines = false;
    }
  }
  if (wantCosines) fp32Outputs = layerCosines(model, layers, samples);
  const keptFp32: string[] = [];
  let outputCos = NaN;
  let q = writeQuantized(model, layers, weightWindow, actWindow);
  if (wantCosines) {
    outputCos = outputCosine(q, samples, fp32Outputs);
    const acc = options.accuracy;
    if (acc) {
      const minCos = typeof acc === 'object' && acc.minCosine !== undefined ? acc.minCosine : 0.999;
      if (!(outputCos >= minCos)) {
        // Two orders in which to give layers back to fp32: most damaging first (by the layer's own
        // output error), and network order (errors in early layers grow through deep networks).
        // For each, the fewest layers that meet the tolerance (doubling, then bisection); the order
        // that keeps fewer fp32 weight bytes wins.
        const active = layers.filter((l) => !l.excluded);
        const byDamage = [...active].sort((a, b) => (damage(b) - damage(a)) || (a.sqnr - b.sqnr));
        const evaluate = (order: Layer[], k: number) => {
          for (const l of active) l.excluded = undefined;
          for (const l of order.slice(0, k)) l.excluded = 'accuracy';
          const m = writeQuantized(model, layers, weightWindow, actWindow);
          return { m, c: outputCosine(m, samples, fp32Outputs), k, order };
        };
        const search = (order: Layer[]) => {
          let hi = 1, best = evaluate(order, 1);
          while (!(best.c >= minCos) && hi < order.length) { hi = Math.min(order.length, hi * 2); best = evaluate(order, hi); }
          let lo = Math.floor(hi / 2);
          while (hi - lo > 1) {
            const mid = (lo + hi) >> 1;
            const r = evaluate(order, mid);
            if (r.c >= minCos) { hi = mid; best = r; } else lo = mid;
          }
          return best.k === hi ? best : evaluate(order, hi);
        };
        const bytes = (r: { order: Layer[]; k: number }) => r.order.slice(0, r.k).reduce((a, l) => a + l.N * l.K, 0);
        const a1 = search(byDamage), a2 = search(active);
        const ok1 = a1.c >= minCos, ok2 = a2.c >= minCos;
        const fin = ok1 && (!ok2 || bytes(a1) <= bytes(a2)) ? a1 : ok2 ? a2 : a1.c >= a2.c ? a1 : a2;
        for (const l of active) l.excluded = fin.order.indexOf(l) < fin.k && fin.order.includes(l) ? 'accuracy' : undefined;
        q = fin.m;
        outputCos = fin.c;
        keptFp32.push(...fin.order.slice(0, fin.k).map((l) => l.name));
      }
    }
  }
  const report = makeReport(layers, type.name, String(actWindow), outputCos, wantCosines ? samples.length : 0, keptFp32, weightWindow, (performance.now() - t0) / 1000);
  return { model: q, report };
}

/** How much a layer hurts: 1 - output cosine, or the weight noise-to-signal ratio without samples. */
function damage(l: { cos: number; sqnr: number }): number {
  return Number.isNaN(l.cos) ? Math.pow(10, -l.sqnr / 10) : 1 - l.cos;
}

function kernelSize(shape: readonly number[]): number {
  return shape.slice(2).reduce((a, b) => a * b, 1);
}

function findLayers(model: Model, exclude: readonly string[], actBlock: number, actWindow: string, dwBlock: number, dwWindow: string): Layer[] {
  const g = model.graph;
  const cst = constResolver(g);
  const ex = new Set(exclude);
  const layers: Layer[] = [];
  for (const n of g.nodes) {
    if (n.domain !== '') continue;
    const name = n.name || n.outputs[0] || '';
    let layer: Layer | undefined;
    const base = { name, node: n, input: 1, actBlock, actWindow, excluded: undefined as string | undefined, sqnr: NaN, cos: NaN };
    if (n.opType === 'Conv') {
      const W = cst(n.inputs[1]);
      if (!W || W.dtype !== 'float32' || (W.rank !== 3 && W.rank !== 4)) continue;
      const B = cst(n.inputs[2]);
      if (n.inputs[2] && (!B || B.dtype !== 'float32')) continue;
      const group = intAttr(n, 'group', 1);
      const depthwise = group > 1 && W.shape[1] === 1;
      const N = W.shape[0]!, K = W.size / N;
      layer = { ...base, opType: 'Conv', kind: depthwise ? 'depthwise' : 'conv', N, K, w: W.data as Float32Array, bias: B?.data as Float32Array | undefined, wShape: W.shape };
      if (depthwise) { layer.actBlock = dwBlock; layer.actWindow = dwWindow; }
      if (kernelSize(W.shape) === 0) continue;
    } else if (n.opType === 'Gemm') {
      const W = cst(n.inputs[1]);
      if (!W || W.dtype !== 'float32' || W.rank !== 2 || intAttr(n, 'transA', 0) !== 0) continue;
      const transB = intAttr(n, 'transB', 0) !== 0;
      const [r, c] = W.shape as [number, number];
      const N = transB ? r : c, K = transB ? c : r;
      const alpha = floatAttr(n, 'alpha', 1), beta = floatAttr(n, 'beta', 1);
      let bias: Float32Array | undefined;
      if (n.inputs[2]) {
        const C = cst(n.inputs[2]);
        if (!C || C.dtype !== 'float32' || !(C.size === N || C.size === 1) || (C.rank === 2 && C.shape[0] !== 1)) continue;
        bias = new Float32Array(N);
        for (let i = 0; i < N; i++) bias[i] = Math.fround(beta * C.num(C.size === 1 ? 0 : i));
      }
      layer = { ...base, opType: 'Gemm', kind: 'gemm', N, K, w: toNK(W.data as Float32Array, r, c, transB, alpha), bias };
    } else if (n.opType === 'MatMul') {
      const W = cst(n.inputs[1]);
      if (!W || W.dtype !== 'float32' || W.rank !== 2) continue;
      const [K, N] = W.shape as [number, number];
      layer = { ...base, opType: 'MatMul', kind: 'matmul', N, K, w: toNK(W.data as Float32Array, K, N, false, 1) };
    }
    else if (n.opType === 'LSTM' || n.opType === 'GRU' || n.opType === 'RNN') {
      // Both weight matrices, each [dirs, gates·H, K]: one output row per (direction, gate unit).
      for (const input of [1, 2]) {
        const W = cst(n.inputs[input]);
        if (!W || W.dtype !== 'float32' || W.rank !== 3) continue;
        const N = W.shape[0]! * W.shape[1]!, K = W.shape[2]!;
        const l: Layer = { ...base, name: `${name}.${input === 1 ? 'W' : 'R'}`, input, opType: n.opType, kind: 'rnn', N, K, w: W.data as Float32Array, wShape: W.shape };
        if (ex.has(name) || ex.has(l.name) || ex.has(n.opType) || ex.has('rnn')) l.excluded = 'excluded';
        layers.push(l);
      }
      continue;
    }
    if (!layer) continue;
    if (ex.has(name) || ex.has(n.outputs[0] ?? '') || ex.has(n.opType) || ex.has(layer.kind)) layer.excluded = 'excluded';
    layers.push(layer);
  }
  return layers;
}

function toNK(w: Float32Array, r: number, c: number, alreadyNK: boolean, alpha: number): Float32Array {
  if (alreadyNK && alpha === 1) return w;
  const out = new Float32Array(r * c);
  if (alreadyNK) { for (let i = 0; i < w.length; i++) out[i] = Math.fround(alpha * w[i]!); return out; }
  // w is [K=r, N=c] → [N, K]
  for (let k = 0; k < r; k++) for (let n = 0; n < c; n++) out[n * r + k] = alpha === 1 ? w[k * c + n]! : Math.fround(alpha * w[k * c + n]!);
  return out;
}

function intAttr(n: Node, k: string, d: number): number {
  const a = n.attrs[k];
  return a && (a.type === 'int' || a.type === 'float') ? a.value : d;
}
const floatAttr = intAttr;


/** Build the standard-ONNX quantized model for the layers not excluded. */
function writeQuantized(model: Model, layers: Layer[], weightWindow: WeightWindow, actWindow: ActivationWindow): Model {
  const m = cloneModel(model);
  const g = m.graph;
  const byNode = new Map<Node, Layer[]>();
  model.graph.nodes.forEach((n, i) => {
    const ls = layers.filter((x) => x.node === n && !x.excluded);
    if (ls.length) byNode.set(m.graph.nodes[i]!, ls);
  });
  const taken = new Set<string>(g.initializers.keys());
  for (const n of g.nodes) for (const o of n.outputs) taken.add(o);
  for (const i of g.inputs) taken.add(i.name);
  const fresh = (b: string) => { let s = b; for (let i = 1; taken.has(s); i++) s = `${b}_${i}`; taken.add(s); return s; };
  const blocked = weightWindow !== 'channel';
  const out: Node[] = [];
  const perLayerAct: Record<string, string> = {};
  for (const n of g.nodes) {
    for (const l of byNode.get(n) ?? []) {
    if (!l.qw) continue;
    const qw = l.qw;
    const base = l.name.replace(/[^A-Za-z0-9_.-]/g, '_');
    const qName = fresh(`${base}.weight_int8`), sName = fresh(`${base}.weight_scale`);
    const dqOut = fresh(`${base}.weight_dq`);
    const nb = qw.scales.length / qw.N;
    if (l.kind === 'rnn') {
      // [dirs·gates·H, K] int8 → DQ (per row, or blocks along K) → Reshape to [dirs, gates·H, K].
      g.initializers.set(qName, Tensor.from('int8', [qw.N, qw.K], qw.q));
      g.initializers.set(sName, Tensor.from('float32', blocked ? [qw.N, nb] : [qw.N], qw.scales));
      const flat = fresh(`${base}.weight_dq2d`);
      out.push(dq(fresh(`${base}_weight_dq`), qName, sName, flat, blocked ? 1 : 0, blocked ? qw.block : 0));
      const shp = fresh(`${base}.weight_shape`);
      g.initializers.set(shp, Tensor.from('int64', [3], l.wShape!.map((d) => BigInt(d))));
      out.push({ name: fresh(`${base}_weight_reshape`), opType: 'Reshape', domain: '', inputs: [flat, shp], outputs: [dqOut], attrs: {} });
      n.inputs[l.input] = dqOut;
    } else if (l.opType === 'Conv') {
      const W = { shape: l.wShape!, rank: l.wShape!.length };
      if (!blocked) {
        g.initializers.set(qName, Tensor.from('int8', W.shape, qw.q));
        g.initializers.set(sName, Tensor.from('float32', [qw.N], qw.scales));
        out.push(dq(fresh(`${base}_weight_dq`), qName, sName, dqOut, 0, 0));
        n.inputs[1] = dqOut;
      } else {
        g.initializers.set(qName, Tensor.from('int8', [qw.N, qw.K], qw.q));
        g.initializers.set(sName, Tensor.from('float32', [qw.N, nb], qw.scales));
        const flat = fresh(`${base}.weight_dq2d`);
        out.push(dq(fresh(`${base}_weight_dq`), qName, sName, flat, 1, qw.block));
        const shp = fresh(`${base}.weight_shape`);
        g.initializers.set(shp, Tensor.from('int64', [W.rank], W.shape.map((d) => BigInt(d))));
        out.push({ name: fresh(`${base}_weight_reshape`), opType: 'Reshape', domain: '', inputs: [flat, shp], outputs: [dqOut], attrs: {} });
        n.inputs[1] = dqOut;
      }
    } else if (l.opType === 'Gemm') {
      g.initializers.set(qName, Tensor.from('int8', [qw.N, qw.K], qw.q));
      g.initializers.set(sName, Tensor.from('float32', blocked ? [qw.N, nb] : [qw.N], qw.scales));
      out.push(dq(fresh(`${base}_weight_dq`), qName, sName, dqOut, blocked ? 1 : 0, blocked ? qw.block : 0));
      n.inputs[1] = dqOut;
      n.attrs['transB'] = { type: 'int', value: 1 };
      delete n.attrs['alpha'];
      delete n.attrs['beta'];
      if (l.bias) {
        const bName = fresh(`${base}.bias`);
        g.initializers.set(bName, Tensor.from('float32', [qw.N], l.bias));
        n.inputs[2] = bName;
      }
    } else {
      // MatMul keeps its [K, N] weight: the output channel is axis 1, blocks run along axis 0.
      const { N, K } = qw;
      const t = new Int8Array(K * N);
      for (let nn = 0; nn < N; nn++) for (let k = 0; k < K; k++) t[k * N + nn] = qw.q[nn * K + k]!;
      g.initializers.set(qName, Tensor.from('int8', [K, N], t));
      if (blocked) {
        const s = new Float32Array(nb * N);
        for (let nn = 0; nn < N; nn++) for (let b = 0; b < nb; b++) s[b * N + nn] = qw.scales[nn * nb + b]!;
        g.initializers.set(sName, Tensor.from('float32', [nb, N], s));
      } else g.initializers.set(sName, Tensor.from('float32', [N], qw.scales));
      out.push(dq(fresh(`${base}_weight_dq`), qName, sName, dqOut, blocked ? 0 : 1, blocked ? qw.block : 0));
      n.inputs[1] = dqOut;
    }
    if (l.actBlock !== parseActWindow(actWindow)) perLayerAct[n.name] = l.actWindow;
    }
    out.push(n);
  }
  g.nodes = out;
  pruneInitializers(g);
  const count = layers.filter((l) => !l.excluded && l.qw).length;
  if (count) ensureOpset(m, blocked ? 21 : 13);
  m.metadata.set('q8.version', Q8_FORMAT_VERSION);
  m.metadata.set('q8.weight_window', String(weightWindow));
  m.metadata.set(ACT_WINDOW_KEY, String(actWindow));
  if (Object.keys(perLayerAct).length) m.metadata.set('q8.layer_activation_windows', JSON.stringify(perLayerAct));
  else m.metadata.delete('q8.layer_activation_windows');
  m.metadata.set('q8.quantized_layers', String(count));
  const kept = layers.filter((l) => l.excluded).map((l) => l.name);
  if (kept.length) m.metadata.set('q8.fp32_layers', JSON.stringify(kept));
  else m.metadata.delete('q8.fp32_layers');
  return m;
}

function dq(name: string, x: string, s: string, y: string, axis: number, block: number): Node {
  const attrs: Node['attrs'] = { axis: { type: 'int', value: axis } };
  if (block) attrs['block_size'] = { type: 'int', value: block };
  return { name, opType: 'DequantizeLinear', domain: '', inputs: [x, s], outputs: [y], attrs };
}

/** Drop initializers nothing reads any more (the fp32 weights), and their IR<4 graph-input twins. */
function pruneInitializers(g: Graph): void {
  const used = new Set<string>();
  for (const n of g.nodes) for (const i of n.inputs) used.add(i);
  for (const o of g.outputs) used.add(o.name);
  for (const k of [...g.initializers.keys()]) {
    if (used.has(k)) continue;
    g.initializers.delete(k);
    g.inputs = g.inputs.filter((i) => i.name !== k);
  }
}

/** A deterministic pseudo-random input for each feed (uniform [0,1)), symbolic dims as 1. */
export function synthesizeFeeds(model: Model): Feeds {
  const g = model.graph;
  let s = 0x9e3779b9;
  const rnd = () => { s ^= s << 13; s ^= s >>> 17; s ^= s << 5; return ((s >>> 0) % 1000003) / 1000003; };
  const feeds: Feeds = {};
  for (const i of g.inputs) {
    if (g.initializers.has(i.name)) continue;
    const shape = (i.shape ?? []).map((d) => (typeof d === 'number' && d > 0 ? d : 1));
    const dtype = i.dtype ?? 'float32';
    if (dtype !== 'float32') throw new Q8Error(`cannot synthesise a sample for input '${i.name}' of type ${dtype}; pass samples`, { file: model.source });
    const n = shape.reduce((a, b) => a * b, 1);
    const d = new Float32Array(n);
    for (let k = 0; k < n; k++) d[k] = rnd();
    feeds[i.name] = Tensor.from('float32', shape, d);
  }
  return feeds;
}

/** Run a (cloned) model and keep the named intermediate values too. */
export function runCapturing(model: Model, names: readonly string[], samples: readonly Feeds[]): Record<string, Tensor>[] {
  const m = cloneModel(model);
  const have = new Set(m.graph.outputs.map((o) => o.name));
  for (const n of names) if (!have.has(n)) { m.graph.outputs.push({ name: n }); have.add(n); }
  const s = Session.create(m);
  return samples.map((f) => s.runSync(f));
}

/** Per-layer cosine of the int8 kernel vs fp32 on the fp32 layer inputs; returns the fp32 runs. */
function layerCosines(model: Model, layers: Layer[], samples: readonly Feeds[]): Record<string, Tensor>[] {
  const names: string[] = [];
  const cst = constResolver(model.graph);
  for (const l of layers) {
    if (l.kind !== 'rnn') names.push(l.node.inputs[0]!, l.node.outputs[0]!);
    else names.push(...[...l.node.inputs, ...l.node.outputs].filter((v) => v && !cst(v)));
  }
  const runs = runCapturing(model, names, samples);
  for (const l of layers) {
    if (!l.qw) continue;
    let worst = 1;
    for (const r of runs) {
      if (l.kind === 'rnn') { worst = Math.min(worst, rnnLayerCosine(model, l, r, cst)); continue; }
      const x = r[l.node.inputs[0]!], y = r[l.node.outputs[0]!];
      if (!x || !y) continue;
      const yq = runLayerInt8(l, x, l.actBlock);
      worst = Math.min(worst, cosine(y.data as Float32Array, yq.data as Float32Array));
    }
    l.cos = worst;
  }
  return runs;
}

/** An LSTM/GRU/RNN with only this layer's weight (W or R) int8 vs its fp32 outputs (all of them, worst). */
function rnnLayerCosine(model: Model, l: Layer, r: Record<string, Tensor>, cst: (n: string | undefined) => Tensor | undefined): number {
  const inputs = l.node.inputs.map((v) => (v ? r[v] ?? cst(v) : undefined));
  const qw = l.qw!;
  const outs = runRnnLayerInt8(l.node, model.opsets.get('') ?? 1, inputs, l.input as 1 | 2, l.wShape!, qw.q, qw.scales, qw.block, actAttrs(l.actBlock, false).act_block);
  let worst = 1;
  l.node.outputs.forEach((o, i) => {
    const y = o ? r[o] : undefined, yq = outs[i];
    if (y && yq && y.dtype === 'float32' && yq.size === y.size) worst = Math.min(worst, cosine(y.data as Float32Array, yq.data as Float32Array));
  });
  return worst;
}

function runLayerInt8(l: Layer, x: Tensor, actBlock: number): Tensor {
  const qw = l.qw!;
  const wb = qw.block;
  const nb = qw.scales.length / qw.N;
  const scales = Tensor.from('float32', wb ? [qw.N, nb] : [qw.N], qw.scales);
  const attrs: Record<string, unknown> = { weight_block: wb, ...actAttrs(actBlock, l.opType === 'Conv') };
  if (l.opType === 'Conv') {
    for (const k of ['auto_pad', 'dilations', 'group', 'kernel_shape', 'pads', 'strides']) if (l.node.attrs[k]) attrs[k] = l.node.attrs[k];
    const shape = l.wShape!;
    const B = l.bias ? Tensor.from('float32', [qw.N], l.bias) : undefined;
    return runOp('Q8Conv', [x, Tensor.from('int8', shape, qw.q), scales, B], attrs, 1, 'q8')[0]!;
  }
  const B = l.bias ? Tensor.from('float32', [qw.N], l.bias) : undefined;
  return runOp('Q8Gemm', [x, Tensor.from('int8', [qw.N, qw.K], qw.q), scales, B], attrs, 1, 'q8')[0]!;
}

function outputCosine(q: Model, samples: readonly Feeds[], fp32: Record<string, Tensor>[]): number {
  const m = cloneModel(q);
  const s = Session.create(m);
  let worst = 1;
  samples.forEach((f, i) => {
    const r = s.runSync(f);
    for (const o of s.outputs) {
      const a = fp32[i]![o.name], b = r[o.name];
      if (!a || !b || a.dtype !== 'float32') continue;
      worst = Math.min(worst, cosine(a.data as Float32Array, b.data as Float32Array));
    }
  });
  return worst;
}

function makeReport(layers: Layer[], typeName: string, actWindow: string, outputCos: number, samples: number, keptFp32: string[], ww: WeightWindow, seconds: number): QuantReport {
  const type = quantType(ww);
  const rows: LayerReport[] = layers.map((l) => ({
    name: l.name, opType: l.opType, kind: l.kind, N: l.N, K: l.K,
    quantized: !l.excluded, ...(l.excluded ? { reason: l.excluded } : {}),
    quantType: typeName, activationWindow: l.actWindow,
    sqnrDb: l.sqnr, cosine: l.cos,
    bytesFp32: 4 * l.N * l.K, bytesInt8: l.excluded ? 4 * l.N * l.K : type.bytes(l.N, l.K),
    worst: false,
  }));
  const q = rows.filter((r) => r.quantized);
  const sorted = [...q].sort((a, b) => damage({ cos: b.cosine, sqnr: b.sqnrDb }) - damage({ cos: a.cosine, sqnr: a.sqnrDb }) || a.sqnrDb - b.sqnrDb);
  const nWorst = Math.min(3, Math.max(1, Math.ceil(q.length / 10)));
  const worst = sorted.slice(0, q.length ? nWorst : 0).map((r) => r.name);
  for (const r of rows) r.worst = worst.includes(r.name);
  return {
    layers: rows, worst,
    weightBytesFp32: rows.reduce((a, r) => a + r.bytesFp32, 0),
    weightBytesInt8: rows.reduce((a, r) => a + r.bytesInt8, 0),
    outputCosine: outputCos, samples, weightWindow: String(ww), activationWindow: actWindow, keptFp32, seconds,
  };
}

/** The report as a terminal table (or JSON text with { json: true }). */
export function formatReport(report: QuantReport, opts: { json?: boolean } = {}): string {
  if (opts.json) return JSON.stringify(report, (_k, v) => (typeof v === 'number' && !Number.isFinite(v) ? (Number.isNaN(v) ? null : String(v)) : v));
  const head = ['layer', 'op', 'N×K', 'window', 'act', 'SQNR dB', 'cosine', 'int8', ''];
  const body = report.layers.map((r) => [
    r.name, r.kind, `${r.N}×${r.K}`, r.quantized ? r.quantType.replace('q8_', '') : 'fp32', r.quantized ? r.activationWindow : '-',
    r.quantized ? fmt(r.sqnrDb, 1) : '-', r.quantized ? fmt(r.cosine, 5) : '-', r.quantized ? 'yes' : `no (${r.reason})`, r.worst ? '<- worst' : '',
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i >= 5 && i <= 6 ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  ').trimEnd();
  const out = [line(head), widths.map((w) => '-'.repeat(w)).join('  '), ...body.map(line)];
  const ratio = report.weightBytesFp32 / Math.max(1, report.weightBytesInt8);
  out.push('');
  out.push(`weights: ${mb(report.weightBytesFp32)} fp32 -> ${mb(report.weightBytesInt8)} int8 (${ratio.toFixed(2)}x); ` +
    `${report.layers.filter((r) => r.quantized).length}/${report.layers.length} layers int8; output cosine vs fp32: ${fmt(report.outputCosine, 6)} on ${report.samples} sample(s)`);
  if (report.worst.length) out.push(`worst layers: ${report.worst.join(', ')}`);
  if (report.keptFp32.length) out.push(`kept in fp32 by the accuracy-aware mode: ${report.keptFp32.join(', ')}`);
  return out.join('\n');
}

function fmt(v: number, d: number): string {
  return Number.isNaN(v) ? 'n/a' : v === Infinity ? 'inf' : v.toFixed(d);
}

function mb(b: number): string {
  return b >= 1 << 20 ? `${(b / (1 << 20)).toFixed(2)} MiB` : `${(b / 1024).toFixed(1)} KiB`;
}
