/**
 * TensorFlow.js loader: `model.json` plus its binary weight shards, for both formats tfjs writes:
 * graph models (a TF GraphDef in JSON; lowered by the TensorFlow GraphDef lowering, since the
 * topology *is* a GraphDef) and layers models (a Keras model config; lowered here, NHWC kept as in
 * tfjs with Transposes around NCHW ops). tfjs weight quantization (uint8/uint16 affine, float16) is
 * undone at load exactly as tfjs does it: value = q * scale + min.
 *
 *   const model = loadTfjs('web_model/model.json');
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { DType } from '../../core/dtype.js';
import { f16ToF32 } from '../../core/dtype.js';
import { Q8Error } from '../../core/errors.js';
import { emptyGraph, type AttrValue, type Dim, type Graph, type Model } from '../../graph/ir.js';
import { Tensor } from '../../tensor/tensor.js';
import { transpose } from '../../ops/tensor-helpers.js';
import { lowerTensorFlowNodes } from '../tf-ops/lower.js';
import type { TfAttr, TfNode } from '../tf-ops/node.js';

export interface TfjsOptions {
  /** Graph models: input and output tensor names (default: Placeholders / signature outputs). */
  inputs?: string[];
  outputs?: string[];
}

/** Keras layer classes q8 lowers from TF.js layers models (graph models use TENSORFLOW_OPS). */
export const TFJS_LAYERS: readonly string[] = [
  'InputLayer', 'Dense', 'Conv2D', 'DepthwiseConv2D', 'MaxPooling2D', 'AveragePooling2D', 'GlobalAveragePooling2D',
  'GlobalMaxPooling2D', 'Flatten', 'Dropout', 'Activation', 'ReLU', 'Softmax', 'BatchNormalization', 'Reshape', 'Add',
  'Concatenate', 'ZeroPadding2D',
];

interface WeightSpec { name: string; shape: number[]; dtype: string; quantization?: { dtype: string; scale?: number; min?: number; original_dtype?: string } }
interface Manifest { paths: string[]; weights: WeightSpec[] }

type Json = Record<string, unknown>;

export function loadTfjs(modelJsonPath: string, opts: TfjsOptions = {}): Model {
  const file = modelJsonPath;
  let j: Json;
  try {
    j = JSON.parse(readFileSync(modelJsonPath, 'utf8')) as Json;
  } catch (e) {
    throw new Q8Error(`not a readable TF.js model.json: ${e instanceof Error ? e.message : String(e)}`, { file });
  }
  if (!j || typeof j !== 'object' || !j.modelTopology) throw new Q8Error('not a TF.js model.json: no modelTopology', { file });
  const manifests = (j.weightsManifest ?? []) as Manifest[];
  if (!Array.isArray(manifests)) throw new Q8Error('weightsManifest should be a list', { file });
  const weights = readWeights(manifests, dirname(modelJsonPath), file);
  const topo = j.modelTopology as Json;
  const isGraph = j.format === 'graph-model' || Array.isArray(topo.node);
  const model = isGraph ? graphModel(topo, weights, j, opts, file) : new LayersLowering(weights, file).run(topo);
  model.metadata.set('source_format', 'tfjs');
  model.source = file;
  return model;
}

/** Read and concatenate the shards of each group, then cut and dequantize each weight. */
export function readWeights(manifests: Manifest[], dir: string, file?: string): Map<string, Tensor> {
  const out = new Map<string, Tensor>();
  for (const g of manifests) {
    if (!Array.isArray(g.paths) || !Array.isArray(g.weights)) throw new Q8Error('weightsManifest group needs paths and weights', { file });
    const parts = g.paths.map((p) => {
      if (typeof p !== 'string' || p.includes('..') || p.startsWith('/')) throw new Q8Error(`weight shard path '${String(p)}' is not a plain relative path`, { file });
      try { return readFileSync(join(dir, p)); } catch (e) { throw new Q8Error(`cannot read weight shard '${p}': ${(e as Error).message}`, { file }); }
    });
    const total = parts.reduce((a, p) => a + p.length, 0);
    const buf = new Uint8Array(total);
    let o = 0;
    for (const p of parts) { buf.set(p, o); o += p.length; }
    let off = 0;
    for (const w of g.weights) {
      if (!Array.isArray(w.shape) || w.shape.some((d) => !Number.isSafeInteger(d) || d < 0)) throw new Q8Error(`weight '${w.name}' has a bad shape`, { file });
      const n = w.shape.reduce((a, c) => a * c, 1);
      const q = w.quantization;
      const storeType = q?.dtype ?? w.dtype;
      const bpe = ({ float32: 4, int32: 4, uint8: 1, uint16: 2, float16: 2, bool: 1 } as Record<string, number>)[storeType];
      if (!bpe) throw new Q8Error(`weight '${w.name}' has unsupported dtype ${storeType}`, { file });
      if (off + n * bpe > total) throw new Q8Error(`weight '${w.name}' runs past the end of its shards (${total} bytes)`, { file });
      const bytes = buf.slice(off, off + n * bpe);
      off += n * bpe;
      const outType = (q?.original_dtype ?? w.dtype) as string;
      let t: Tensor;
      if (q) {
        const f = new Float32Array(n);
        if (q.dtype === 'float16') {
          const h = new Uint16Array(bytes.buffer);
          for (let i = 0; i < n; i++) f[i] = f16ToF32(h[i]!);
        } else if (q.dtype === 'uint8' || q.dtype === 'uint16') {
          const src = q.dtype === 'uint8' ? bytes : new Uint16Array(bytes.buffer);
          const scale = Number(q.scale), min = Number(q.min);
          if (!Number.isFinite(scale) || !Number.isFinite(min)) throw new Q8Error(`weight '${w.name}' quantization needs numeric scale and min`, { file });
          for (let i = 0; i < n; i++) f[i] = src[i]! * scale + min;
        } else throw new Q8Error(`weight '${w.name}' has unsupported quantization ${q.dtype}`, { file });
        t = outType === 'int32' ? Tensor.from('int64', w.shape, Array.from(f, (v) => BigInt(Math.round(v)))) : Tensor.from('float32', w.shape, f);
      } else if (w.dtype === 'float32') t = new Tensor('float32', w.shape, new Float32Array(bytes.buffer));
      else if (w.dtype === 'int32') t = new Tensor('int64', w.shape, BigInt64Array.from(new Int32Array(bytes.buffer), (v) => BigInt(v)));
      else if (w.dtype === 'bool') t = new Tensor('bool', w.shape, bytes);
      else throw new Q8Error(`weight '${w.name}' has unsupported dtype ${w.dtype}`, { file });
      out.set(w.name, t);
    }
  }
  return out;
}

// --- graph models ------------------------------------------------------------------------------

const TYPE_NUM: Record<string, number> = { DT_FLOAT: 1, DT_DOUBLE: 2, DT_INT32: 3, DT_UINT8: 4, DT_INT16: 5, DT_INT8: 6, DT_STRING: 7, DT_INT64: 9, DT_BOOL: 10, DT_HALF: 19 };

function jsonAttr(v: Json): TfAttr {
  const a: TfAttr = {};
  const num = (x: unknown) => Number(x);
  if ('s' in v) a.s = Uint8Array.from(Buffer.from(String(v.s), 'base64'));
  if ('i' in v) a.i = num(v.i);
  if ('f' in v) a.f = num(v.f);
  if ('b' in v) a.b = Boolean(v.b);
  if ('type' in v) a.type = TYPE_NUM[String(v.type)] ?? num(v.type);
  if ('shape' in v) {
    const s = v.shape as Json;
    a.shape = { dims: s.unknownRank ? undefined : ((s.dim ?? []) as Json[]).map((d) => num(d.size ?? 0)) };
  }
  if ('list' in v) {
    const l = v.list as Json;
    a.list = {
      s: ((l.s ?? []) as string[]).map((x) => Uint8Array.from(Buffer.from(x, 'base64'))), i: ((l.i ?? []) as unknown[]).map(num),
      f: ((l.f ?? []) as unknown[]).map(num), b: ((l.b ?? []) as unknown[]).map(Boolean),
      type: ((l.type ?? []) as string[]).map((t) => TYPE_NUM[t] ?? 0), shape: [], tensor: [],
    };
  }
  if ('tensor' in v) {
    // Small inline constants (tfjs puts real weights in the manifest).
    const t = v.tensor as Json;
    const dims = (((t.tensorShape as Json | undefined)?.dim ?? []) as Json[]).map((d) => Number(d.size ?? 0));
    const dt = String(t.dtype ?? 'DT_FLOAT');
    const n = dims.reduce((x, y) => x * y, 1);
    const vals = ((t.floatVal ?? t.intVal ?? t.int64Val ?? []) as unknown[]).map(Number);
    const fill = Array.from({ length: n }, (_, i) => vals[Math.min(i, vals.length - 1)] ?? 0);
    a.tensor = dt === 'DT_FLOAT' ? Tensor.from('float32', dims, fill) : Tensor.from('int64', dims, fill.map((x) => BigInt(Math.trunc(x))));
  }
  return a;
}

function graphModel(topo: Json, weights: Map<string, Tensor>, j: Json, opts: TfjsOptions, file: string): Model {
  const nodes: TfNode[] = ((topo.node ?? []) as Json[]).map((n) => {
    const attrs = new Map<string, TfAttr>();
    for (const [k, v] of Object.entries((n.attr ?? {}) as Record<string, Json>)) attrs.set(k, jsonAttr(v));
    const node: TfNode = { name: String(n.name ?? ''), op: String(n.op ?? ''), inputs: ((n.input ?? []) as string[]).map(String), attrs };
    const w = weights.get(node.name);
    if (w && node.op === 'Const') attrs.set('value', { tensor: w });
    return node;
  });
  for (const n of nodes) {
    if (n.op === 'Const' && !n.attrs.get('value')?.tensor) throw new Q8Error(`constant '${n.name}' has no value in the weights manifest`, { file, node: n.name, opType: 'Const' });
  }
  // Default ends: the signature's, when present.
  const sig = (j.signature ?? (j.userDefinedMetadata as Json | undefined)?.signature) as Json | undefined;
  const names = (o: unknown) => Object.values((o ?? {}) as Record<string, Json>).map((v) => String(v.name ?? '')).filter(Boolean).map((s) => s.replace(/:0$/, ''));
  const inputs = opts.inputs ?? (sig ? names(sig.inputs) : undefined);
  const outputs = opts.outputs ?? (sig ? names(sig.outputs) : undefined);
  return lowerTensorFlowNodes(nodes, { inputs: inputs?.length ? inputs : undefined, outputs: outputs?.length ? outputs : undefined, file });
}

// --- layers models -----------------------------------------------------------------------------

const ai = (v: number): AttrValue => ({ type: 'int', value: v });
const af = (v: number): AttrValue => ({ type: 'float', value: v });
const ais = (v: number[]): AttrValue => ({ type: 'ints', value: v });
const as = (v: string): AttrValue => ({ type: 'string', value: v });

class LayersLowering {
  private readonly g: Graph = emptyGraph('tfjs');
  private readonly used = new Set<string>();
  private readonly out = new Map<string, string>(); // layer name → value
  private readonly shapes = new Map<string, (number | null)[]>();

  constructor(private readonly weights: Map<string, Tensor>, private readonly file: string) {}

  private err(d: string, layer?: string, cls?: string): Q8Error { return new Q8Error(d, { file: this.file, node: layer, opType: cls }); }

  private fresh(b: string): string {
    let n = b;
    for (let k = 1; this.used.has(n); k++) n = `${b}_${k}`;
    this.used.add(n);
    return n;
  }

  private op(op: string, base: string, ins: string[], attrs: Record<string, AttrValue> = {}): string {
    const o = this.fresh(base);
    this.g.nodes.push({ name: o, opType: op, domain: '', inputs: ins, outputs: [o], attrs });
    return o;
  }

  private init(base: string, t: Tensor): string {
    const n = this.fresh(base);
    this.g.initializers.set(n, t);
    return n;
  }

  private weight(layer: string, kind: string, required = true): Tensor | undefined {
    for (const [k, t] of this.weights) if (k === `${layer}/${kind}` || k.endsWith(`/${layer}/${kind}`)) return t;
    if (required) throw this.err(`weight '${layer}/${kind}' is not in the weights manifest`, layer);
    return undefined;
  }

  run(topo: Json): Model {
    const mc = ((topo.model_config ?? topo) as Json);
    const cls = String(mc.class_name ?? '');
    const cfg = mc.config as Json | Json[];
    const layers = (Array.isArray(cfg) ? cfg : (cfg?.layers ?? [])) as Json[];
    if (!layers.length) throw this.err(`layers model has no layers (class ${cls})`);
    if (cls === 'Sequential') {
      let prev: string | undefined;
      for (const l of layers) {
        const c = (l.config ?? {}) as Json;
        if (prev === undefined) {
          const shape = (c.batch_input_shape ?? c.batchInputShape ?? (c.input_shape ? [null, ...(c.input_shape as number[])] : undefined)) as (number | null)[] | undefined;
          if (!shape) throw this.err('the first layer needs batch_input_shape', String(c.name));
          prev = this.addInput('input', shape);
          if (l.class_name === 'InputLayer') continue;
        }
        prev = this.layer(l, [prev]);
      }
      this.g.outputs.push({ name: prev!, dtype: 'float32' });
    } else {
      for (const l of layers) {
        const name = String(l.name ?? (l.config as Json)?.name);
        if (l.class_name === 'InputLayer') {
          const c = l.config as Json;
          this.out.set(name, this.addInput(name, (c.batch_input_shape ?? c.batchInputShape) as (number | null)[]));
          continue;
        }
        const inbound = (l.inbound_nodes ?? []) as unknown[][];
        if (inbound.length !== 1) throw this.err(`layer is used ${inbound.length} times; shared layers are not supported`, name, String(l.class_name));
        const ins = (inbound[0] as unknown[]).map((e) => {
          const src = Array.isArray(e) ? String(e[0]) : String((e as Json).name ?? '');
          const v = this.out.get(src);
          if (!v) throw this.err(`input layer '${src}' is not defined before it is used`, name);
          return v;
        });
        this.out.set(name, this.layer(l, ins));
      }
      const outs = ((cfg as Json).output_layers ?? []) as unknown[][];
      for (const o of outs) {
        const v = this.out.get(String(o[0]));
        if (!v) throw this.err(`output layer '${String(o[0])}' is unknown`);
        this.g.outputs.push({ name: v, dtype: 'float32' });
      }
    }
    return {
      graph: this.g, opsets: new Map([['', 13]]), irVersion: 8, producerName: 'q8-tfjs', producerVersion: '0.1.0', metadata: new Map(),
    };
  }

  private addInput(name: string, shape: (number | null)[]): string {
    const n = this.fresh(name);
    const dims: Dim[] = shape.map((d, i) => (d === null || d === undefined ? (i === 0 ? 'batch' : null) : d));
    this.g.inputs.push({ name: n, dtype: 'float32', shape: dims });
    this.shapes.set(n, shape);
    return n;
  }

  private activation(v: string, act: string | undefined, name: string): string {
    switch (act ?? 'linear') {
      case 'linear': return v;
      case 'relu': return this.op('Relu', `${name}/relu`, [v]);
      case 'relu6': return this.op('Clip', `${name}/relu6`, [v, this.init(`${name}/zero`, Tensor.scalar('float32', 0)), this.init(`${name}/six`, Tensor.scalar('float32', 6))]);
      case 'sigmoid': return this.op('Sigmoid', `${name}/sigmoid`, [v]);
      case 'tanh': return this.op('Tanh', `${name}/tanh`, [v]);
      case 'softmax': return this.op('Softmax', `${name}/softmax`, [v], { axis: ai(-1) });
      case 'elu': return this.op('Elu', `${name}/elu`, [v]);
      case 'selu': return this.op('Selu', `${name}/selu`, [v]);
      case 'softplus': return this.op('Softplus', `${name}/softplus`, [v]);
      default: throw this.err(`activation '${act}' is not supported`, name);
    }
  }

  private nchw(op: string, name: string, x: string, ins: string[], attrs: Record<string, AttrValue>, channelsFirst: boolean): string {
    if (channelsFirst) return this.op(op, name, [x, ...ins], attrs);
    const t = this.op('Transpose', `${name}/to_nchw`, [x], { perm: ais([0, 3, 1, 2]) });
    const y = this.op(op, `${name}/${op}`, [t, ...ins], attrs);
    return this.op('Transpose', name, [y], { perm: ais([0, 2, 3, 1]) });
  }

  private padAttrs(c: Json): Record<string, AttrValue> {
    return c.padding === 'same' ? { auto_pad: as('SAME_UPPER') } : { pads: ais([0, 0, 0, 0]) };
  }

  private layer(l: Json, ins: string[]): string {
    const cls = String(l.class_name);
    const c = (l.config ?? {}) as Json;
    const name = String(c.name ?? l.name ?? cls);
    const x = ins[0]!;
    const cf = c.data_format === 'channels_first';
    const pair = (v: unknown, d: number): number[] => (Array.isArray(v) ? v.map(Number) : v === undefined || v === null ? [d, d] : [Number(v), Number(v)]);
    try {
      switch (cls) {
        case 'Dense': {
          const k = this.weight(name, 'kernel')!;
          let v = this.op('MatMul', `${name}/matmul`, [x, this.init(`${name}/kernel`, k)]);
          if (c.use_bias !== false) v = this.op('Add', `${name}/bias_add`, [v, this.init(`${name}/bias`, this.weight(name, 'bias')!)]);
          return this.activation(v, c.activation as string, name);
        }
        case 'Conv2D': case 'DepthwiseConv2D': {
          const dw = cls === 'DepthwiseConv2D';
          const k = this.weight(name, dw ? 'depthwise_kernel' : 'kernel')!;
          const [kh, kw, ci, co] = k.shape as [number, number, number, number];
          const w = dw ? permute(k, [2, 3, 0, 1]).reshape([ci * co, 1, kh, kw]) : permute(k, [3, 2, 0, 1]);
          const ws = [this.init(`${name}/weight`, w)];
          if (c.use_bias !== false) ws.push(this.init(`${name}/bias`, this.weight(name, 'bias')!));
          const groups = dw ? ci : Number(c.groups ?? 1);
          const v = this.nchw('Conv', `${name}/conv`, x, ws, {
            kernel_shape: ais([kh, kw]), strides: ais(pair(c.strides, 1)), dilations: ais(pair(c.dilation_rate, 1)), group: ai(groups), ...this.padAttrs(c),
          }, cf);
          return this.activation(v, c.activation as string, name);
        }
        case 'MaxPooling2D': case 'AveragePooling2D': {
          const pool = pair(c.pool_size, 2);
          const attrs: Record<string, AttrValue> = { kernel_shape: ais(pool), strides: ais(c.strides ? pair(c.strides, 1) : pool), ...this.padAttrs(c) };
          if (cls === 'AveragePooling2D') attrs.count_include_pad = ai(0);
          return this.nchw(cls === 'MaxPooling2D' ? 'MaxPool' : 'AveragePool', name, x, [], attrs, cf);
        }
        case 'GlobalAveragePooling2D': case 'GlobalMaxPooling2D':
          return this.op(cls === 'GlobalAveragePooling2D' ? 'ReduceMean' : 'ReduceMax', name, [x], { axes: ais(cf ? [2, 3] : [1, 2]), keepdims: ai(0) });
        case 'Flatten': return this.op('Flatten', name, [x], { axis: ai(1) });
        case 'Dropout': case 'SpatialDropout2D': case 'GaussianNoise': return x;
        case 'Activation': return this.activation(x, c.activation as string, name);
        case 'ReLU': {
          if (c.max_value !== undefined && c.max_value !== null) return this.op('Clip', name, [x, this.init(`${name}/zero`, Tensor.scalar('float32', 0)), this.init(`${name}/max`, Tensor.scalar('float32', Number(c.max_value)))]);
          return this.op('Relu', name, [x]);
        }
        case 'Softmax': return this.op('Softmax', name, [x], { axis: ai(Number(c.axis ?? -1)) });
        case 'BatchNormalization': {
          const eps = Number(c.epsilon ?? 1e-3);
          const mean = this.weight(name, 'moving_mean')!.toFloat32(), vr = this.weight(name, 'moving_variance')!.toFloat32();
          const n = mean.length;
          const gamma = c.scale !== false ? this.weight(name, 'gamma')!.toFloat32() : new Float32Array(n).fill(1);
          const beta = c.center !== false ? this.weight(name, 'beta')!.toFloat32() : new Float32Array(n);
          const mul = new Float32Array(n), add = new Float32Array(n);
          for (let i = 0; i < n; i++) { mul[i] = gamma[i]! / Math.sqrt(vr[i]! + eps); add[i] = beta[i]! - mean[i]! * mul[i]!; }
          const axis = Number(c.axis ?? -1);
          if (axis !== -1 && axis !== 3 && !(axis === 1 && cf)) throw this.err(`BatchNormalization axis ${axis} is not supported`, name, cls);
          const shape = axis === 1 ? [n, 1, 1] : [n];
          const m = this.op('Mul', `${name}/mul`, [x, this.init(`${name}/scale`, Tensor.from('float32', shape, mul))]);
          return this.op('Add', name, [m, this.init(`${name}/shift`, Tensor.from('float32', shape, add))]);
        }
        case 'Reshape': {
          const t = (c.target_shape ?? c.targetShape) as number[];
          return this.op('Reshape', name, [x, this.init(`${name}/shape`, Tensor.from('int64', [t.length + 1], [0, ...t].map(BigInt)))]);
        }
        case 'Add': return this.op('Sum', name, ins);
        case 'Concatenate': return this.op('Concat', name, ins, { axis: ai(Number(c.axis ?? -1)) });
        case 'ZeroPadding2D': {
          const p = c.padding as unknown;
          const [[t, b], [lft, r]] = Array.isArray(p) ? (Array.isArray(p[0]) ? p as number[][] : [[p[0], p[0]], [p[1], p[1]]]) as number[][] : [[Number(p), Number(p)], [Number(p), Number(p)]];
          const pads = cf ? [0, 0, t!, lft!, 0, 0, b!, r!] : [0, t!, lft!, 0, 0, b!, r!, 0];
          return this.op('Pad', name, [x, this.init(`${name}/pads`, Tensor.from('int64', [8], pads.map(BigInt)))]);
        }
        default: throw this.err(`unsupported TF.js layer class '${cls}' (layer '${name}')`, name, cls);
      }
    } catch (e) {
      if (e instanceof Q8Error) throw e.withContext({ file: this.file, node: name, opType: cls });
      throw this.err(e instanceof Error ? e.message : String(e), name, cls);
    }
  }
}

/** Transpose a constant weight at load, as float32 (tfjs weights may arrive dequantized from uint8/16). */
function permute(t: Tensor, perm: number[]): Tensor {
  return transpose(new Tensor('float32', t.shape, t.toFloat32()), perm);
}

