/**
 * Writer of the static-QDQ form onnxruntime accelerates (for the benchmark against ORT's int8):
 * per-channel symmetric int8 weights, int32 biases (scale = s_x·s_w), and calibrated uint8 activations
 * with QuantizeLinear→DequantizeLinear on the input and on the output of every Conv/Gemm/MatMul (MatMul
 * with a constant 2-D right side: one weight scale). A following
 * Relu or Clip is left before the output Q (with zero point 0 / a range inside the Clip bounds), so ORT
 * drops it and fuses DQ→Conv→Q into QLinearConv.
 *
 *   const qdq = writeOrtQdq(model, { calibration: [{ input: x1 }, { input: x2 }] });
 *   saveOnnxFile(qdq, 'model.qdq.onnx');
 */
import { Q8Error } from '../core/errors.js';
import type { Model, Node } from '../graph/ir.js';
import type { Feeds } from '../runtime/session.js';
import { Tensor } from '../tensor/tensor.js';
import { constResolver } from './consts.js';
import { ensureOpset } from './opset.js';
import { cloneModel, runCapturing } from './quantize.js';
import { roundHalfEven } from './round.js';
import { quantType } from './types.js';

export interface OrtQdqOptions {
  /** Calibration inputs (MinMax ranges over all of them). */
  calibration: readonly Feeds[];
  /** Layers left in fp32 (node names or op types). */
  exclude?: readonly string[];
}

interface UInt8Q { scale: number; zp: number }

function uint8Params(lo: number, hi: number): UInt8Q {
  lo = Math.min(lo, 0);
  hi = Math.max(hi, 0);
  const scale = Math.fround((hi - lo) / 255) || 1;
  const zp = Math.min(255, Math.max(0, roundHalfEven(-lo / scale)));
  return { scale, zp };
}

export function writeOrtQdq(model: Model, options: OrtQdqOptions): Model {
  if (!options.calibration.length) throw new Q8Error('writeOrtQdq needs at least one calibration input', { file: model.source });
  const m = cloneModel(model);
  const g = m.graph;
  const cst = constResolver(g);
  const ex = new Set(options.exclude ?? []);
  const consumers = new Map<string, Node[]>();
  for (const n of g.nodes) for (const i of n.inputs) if (i) { const l = consumers.get(i) ?? []; l.push(n); consumers.set(i, l); }
  const outputs = new Set(g.outputs.map((o) => o.name));

  // Layers: Conv (2-D/1-D) and Gemm (transA = 0) with constant float weights.
  const layers: { node: Node; out: string; clip?: [number, number] }[] = [];
  for (const n of g.nodes) {
    if (n.domain !== '' || ex.has(n.name) || ex.has(n.opType)) continue;
    const W = cst(n.inputs[1]);
    if (!W || W.dtype !== 'float32') continue;
    if (n.opType === 'Conv' && (W.rank === 3 || W.rank === 4)) { /* ok */ }
    else if (n.opType === 'Gemm' && W.rank === 2 && !(n.attrs['transA']?.value)) { /* ok */ }
    else if (n.opType === 'MatMul' && W.rank === 2 && !cst(n.inputs[0])) { /* ok: A·W, W [K, N] */ }
    else continue;
    if (n.inputs[2] && !cst(n.inputs[2])) continue;
    // Output value to quantize: after a sole Relu / Clip consumer, so ORT can drop the activation.
    let out = n.outputs[0]!;
    let clip: [number, number] | undefined;
    const users = consumers.get(out) ?? [];
    if (!outputs.has(out) && users.length === 1 && users[0]!.domain === '' && users[0]!.inputs[0] === out) {
      const a = users[0]!;
      if (a.opType === 'Relu') { out = a.outputs[0]!; clip = [0, Infinity]; }
      else if (a.opType === 'Clip') {
        const lo = a.inputs[1] ? cst(a.inputs[1])?.num(0) : -Infinity, hi = a.inputs[2] ? cst(a.inputs[2])?.num(0) : Infinity;
        if (lo !== undefined && hi !== undefined) { out = a.outputs[0]!; clip = [lo, hi]; }
      }
    }
    layers.push({ node: n, out, ...(clip ? { clip } : {}) });
  }

  // MinMax calibration of every activation that gets a Q/DQ pair.
  const values = new Set<string>();
  for (const l of layers) { values.add(l.node.inputs[0]!); values.add(l.out); }
  const runs = runCapturing(model, [...values], options.calibration);
  const qp = new Map<string, UInt8Q>();
  for (const v of values) {
    let lo = Infinity, hi = -Infinity;
    for (const r of runs) {
      const t = r[v];
      if (!t) continue;
      const d = t.data as Float32Array;
      for (let i = 0; i < d.length; i++) { const x = d[i]!; if (x < lo) lo = x; if (x > hi) hi = x; }
    }
    if (lo > hi) continue;
    qp.set(v, uint8Params(lo, hi));
  }
  for (const l of layers) if (l.clip && l.clip[0] === 0 && qp.has(l.out)) qp.set(l.out, { ...qp.get(l.out)!, zp: 0 }); // Relu: range [0, max]

  const taken = new Set<string>([...g.initializers.keys(), ...g.inputs.map((i) => i.name)]);
  for (const n of g.nodes) for (const o of n.outputs) taken.add(o);
  const fresh = (b: string) => { let s = b.replace(/[^A-Za-z0-9_.-]/g, '_'); const base = s; for (let i = 1; taken.has(s); i++) s = `${base}_${i}`; taken.add(s); return s; };
  const init = (b: string, t: Tensor) => { const n = fresh(b); g.initializers.set(n, t); return n; };
  const dqOf = new Map<string, string>();
  const pre = new Map<Node, Node[]>(); // nodes to insert before a node
  const post = new Map<string, Node[]>(); // Q/DQ to insert after the producer of a value

  for (const v of qp.keys()) {
    const p = qp.get(v)!;
    const s = init(`${v}_scale`, Tensor.from('float32', [], [p.scale]));
    const z = init(`${v}_zero_point`, Tensor.from('uint8', [], [p.zp]));
    const q = fresh(`${v}_quantized`), d = fresh(`${v}_dequantized`);
    const pair: Node[] = [
      { name: fresh(`${v}_QuantizeLinear`), opType: 'QuantizeLinear', domain: '', inputs: [v, s, z], outputs: [q], attrs: {} },
      { name: fresh(`${v}_DequantizeLinear`), opType: 'DequantizeLinear', domain: '', inputs: [q, s, z], outputs: [d], attrs: {} },
    ];
    dqOf.set(v, d);
    post.set(v, pair);
  }
  // Every consumer of a quantized value reads its dequantized twin.
  for (const n of g.nodes) n.inputs = n.inputs.map((i) => dqOf.get(i) ?? i);
  // Graph outputs keep naming the float value (its Q/DQ twin only feeds consumers).

  const wType = quantType('channel');
  for (const l of layers) {
    const n = l.node;
    const W = cst(n.inputs[1])!;
    if (n.opType === 'MatMul') {
      // One int8 scale for the whole weight (the MatMul form ORT's QDQ fusions take), no bias.
      const qw = wType.quantize(W.data as Float32Array, 1, W.size, `node '${n.name}' (MatMul)`);
      const wq = init(`${n.name}.weight_int8`, Tensor.from('int8', W.shape, qw.q));
      const ws = init(`${n.name}.weight_scale`, Tensor.from('float32', [], [qw.scales[0]!]));
      const wz = init(`${n.name}.weight_zero_point`, Tensor.from('int8', [], [0]));
      const wd = fresh(`${n.name}.weight_dq`);
      pre.set(n, [{ name: fresh(`${n.name}_weight_DequantizeLinear`), opType: 'DequantizeLinear', domain: '', inputs: [wq, ws, wz], outputs: [wd], attrs: {} }]);
      n.inputs[1] = wd;
      continue;
    }
    let N: number, K: number, w: Float32Array;
    if (n.opType === 'Conv') { N = W.shape[0]!; K = W.size / N; w = W.data as Float32Array; }
    else {
      const transB = !!n.attrs['transB']?.value;
      const [r, c] = W.shape as [number, number];
      N = transB ? r : c; K = transB ? c : r;
      w = transB ? (W.data as Float32Array) : transpose(W.data as Float32Array, r, c);
      const alpha = Number(n.attrs['alpha']?.value ?? 1);
      if (alpha !== 1) w = w.map((v) => Math.fround(alpha * v));
      n.attrs['transB'] = { type: 'int', value: 1 };
      delete n.attrs['alpha'];
    }
    const qw = wType.quantize(w, N, K, `node '${n.name}' (${n.opType})`);
    const shape = n.opType === 'Conv' ? W.shape : [N, K];
    const wq = init(`${n.name}.weight_int8`, Tensor.from('int8', shape, qw.q));
    const ws = init(`${n.name}.weight_scale`, Tensor.from('float32', [N], qw.scales));
    const wz = init(`${n.name}.weight_zero_point`, Tensor.from('int8', [N], new Int8Array(N)));
    const wd = fresh(`${n.name}.weight_dq`);
    const before: Node[] = [{ name: fresh(`${n.name}_weight_DequantizeLinear`), opType: 'DequantizeLinear', domain: '', inputs: [wq, ws, wz], outputs: [wd], attrs: { axis: { type: 'int', value: 0 } } }];
    n.inputs[1] = wd;
    const xIn = [...qp.keys()].find((v) => dqOf.get(v) === n.inputs[0]);
    const B = n.inputs[2] ? cst(n.inputs[2]) : undefined;
    if (B && xIn) {
      // int32 bias at scale s_x·s_w[n], as ORT's quantizer writes it.
      const sx = qp.get(xIn)!.scale;
      const beta = n.opType === 'Gemm' ? Number(n.attrs['beta']?.value ?? 1) : 1;
      if (B.size !== N) { /* a broadcast Gemm C: keep the float bias */ }
      else {
        const bs = new Float32Array(N), bq = new Int32Array(N);
        for (let i = 0; i < N; i++) {
          bs[i] = Math.fround(sx * qw.scales[i]!);
          bq[i] = bs[i] ? Math.max(-2147483647, Math.min(2147483647, roundHalfEven(beta * B.num(i) / bs[i]!))) : 0;
        }
        const bqn = init(`${n.name}.bias_int32`, Tensor.from('int32', [N], bq));
        const bsn = init(`${n.name}.bias_scale`, Tensor.from('float32', [N], bs));
        const bzn = init(`${n.name}.bias_zero_point`, Tensor.from('int32', [N], new Int32Array(N)));
        const bd = fresh(`${n.name}.bias_dq`);
        before.push({ name: fresh(`${n.name}_bias_DequantizeLinear`), opType: 'DequantizeLinear', domain: '', inputs: [bqn, bsn, bzn], outputs: [bd], attrs: { axis: { type: 'int', value: 0 } } });
        n.inputs[2] = bd;
        if (n.opType === 'Gemm') delete n.attrs['beta'];
      }
    }
    pre.set(n, before);
  }

  const out: Node[] = [];
  for (const v of g.inputs.map((i) => i.name)) out.push(...(post.get(v) ?? []));
  for (const n of g.nodes) {
    out.push(...(pre.get(n) ?? []));
    out.push(n);
    for (const o of n.outputs) out.push(...(post.get(o) ?? []));
  }
  g.nodes = out;
  const used = new Set<string>();
  for (const n of g.nodes) for (const i of n.inputs) used.add(i);
  for (const k of [...g.initializers.keys()]) if (!used.has(k) && !outputs.has(k)) { g.initializers.delete(k); g.inputs = g.inputs.filter((i) => i.name !== k); }
  ensureOpset(m, 13);
  m.metadata.set('q8.ort_qdq', '1');
  return m;
}

function transpose(w: Float32Array, r: number, c: number): Float32Array {
  const o = new Float32Array(r * c);
  for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) o[j * r + i] = w[i * c + j]!;
  return o;
}
