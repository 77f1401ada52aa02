/**
 * BigDL model loader: BigDL's protobuf module format (BigDLModule, field numbers from BigDL's
 * serialization/bigdl.proto), as written by `Module.saveModule`. Containers (Sequential, StaticGraph)
 * are flattened; layers `com.intel.analytics.bigdl.nn.*` are lowered to ONNX ops (opset 13).
 * Weights may be inline or, as BigDL 0.5+ writes them, in a `global_storage` attribute of the top
 * module that the layers' tensors point into by storage id.
 *
 *   const model = loadBigDL(readFileSync('lenet.model'));
 */
import { Q8Error } from '../../core/errors.js';
import { ProtobufError, Reader, Wire } from '../../core/protobuf.js';
import { emptyGraph, type AttrValue, type Dim, type Graph, type Model } from '../../graph/ir.js';
import { Tensor } from '../../tensor/tensor.js';

export interface BigDLOptions {
  file?: string;
  /** Input shape without the batch dimension (default: from the first Reshape, else unknown). */
  inputShape?: number[];
}

/** BigDL module types q8 lowers (short names of com.intel.analytics.bigdl.nn.*). */
export const BIGDL_MODULES: readonly string[] = [
  'Sequential', 'StaticGraph', 'Graph', 'Input', 'Linear', 'SpatialConvolution', 'SpatialMaxPooling', 'SpatialAveragePooling', 'Reshape',
  'View', 'Tanh', 'ReLU', 'ReLU6', 'Sigmoid', 'LogSoftMax', 'SoftMax', 'Dropout', 'Identity', 'SpatialBatchNormalization',
  'BatchNormalization', 'CAddTable', 'JoinTable', 'Abs', 'ELU', 'LeakyReLU', 'SoftPlus',
];

// --- decoded protobuf -------------------------------------------------------------------------

interface BTensor { size: number[]; stride: number[]; offset: number; storageId: number; id: number; data?: Float32Array; scalar: boolean }
interface BAttr { dataType: number; i?: number; f?: number; s?: string; b?: boolean; tensor?: BTensor; module?: BModule; array?: BArray; nameAttr?: { name: string; attr: Map<string, BAttr> } }
interface BArray { i32: number[]; i64: number[]; flt: number[]; dbl: number[]; str: string[]; bool: boolean[]; tensor: BTensor[]; module: BModule[] }
interface BModule { name: string; sub: BModule[]; weight?: BTensor; bias?: BTensor; pre: string[]; next: string[]; type: string; attr: Map<string, BAttr>; params: BTensor[] }

class Decoder {
  readonly storages = new Map<number, Float32Array>();
  private depth = 0;

  module(r: Reader): BModule {
    if (++this.depth > 100) throw new Q8Error('modules nested too deeply');
    const m: BModule = { name: '', sub: [], pre: [], next: [], type: '', attr: new Map(), params: [] };
    while (!r.done) {
      const [f, w] = r.key();
      if (w !== Wire.Len) { r.skip(w); continue; }
      switch (f) {
        case 1: m.name = r.string(); break;
        case 2: m.sub.push(this.module(r.message())); break;
        case 3: m.weight = this.tensor(r.message()); break;
        case 4: m.bias = this.tensor(r.message()); break;
        case 5: m.pre.push(r.string()); break;
        case 6: m.next.push(r.string()); break;
        case 7: m.type = r.string(); break;
        case 8: { const [k, v] = this.entry(r.message()); m.attr.set(k, v); break; }
        case 16: m.params.push(this.tensor(r.message())); break;
        default: r.skip(w);
      }
    }
    this.depth--;
    return m;
  }

  private entry(r: Reader): [string, BAttr] {
    let k = '';
    let v: BAttr = { dataType: -1 };
    while (!r.done) {
      const [f, w] = r.key();
      if (f === 1 && w === Wire.Len) k = r.string();
      else if (f === 2 && w === Wire.Len) v = this.attr(r.message());
      else r.skip(w);
    }
    return [k, v];
  }

  private attr(r: Reader): BAttr {
    const a: BAttr = { dataType: 0 };
    while (!r.done) {
      const [f, w] = r.key();
      switch (f) {
        case 1: a.dataType = r.varint(); break;
        case 3: a.i = int32(r.varint()); break;
        case 4: a.i = r.varint(); break;
        case 5: a.f = r.float(); break;
        case 6: a.f = r.double(); break;
        case 7: a.s = r.string(); break;
        case 8: a.b = r.varint() !== 0; break;
        case 10: a.tensor = this.tensor(r.message()); break;
        case 13: a.module = this.module(r.message()); break;
        case 14: {
          const s = r.message();
          const na = { name: '', attr: new Map<string, BAttr>() };
          while (!s.done) {
            const [sf, sw] = s.key();
            if (sf === 1 && sw === Wire.Len) na.name = s.string();
            else if (sf === 2 && sw === Wire.Len) { const [k, v] = this.entry(s.message()); na.attr.set(k, v); }
            else s.skip(sw);
          }
          a.nameAttr = na;
          break;
        }
        case 15: a.array = this.array(r.message()); break;
        default: r.skip(w);
      }
    }
    return a;
  }

  private array(r: Reader): BArray {
    const a: BArray = { i32: [], i64: [], flt: [], dbl: [], str: [], bool: [], tensor: [], module: [] };
    while (!r.done) {
      const [f, w] = r.key();
      switch (f) {
        case 3: { const t: number[] = []; r.repeated(w, Wire.Varint, (x) => int32(x.varint()), t); a.i32.push(...t); break; }
        case 4: r.repeated(w, Wire.Varint, (x) => x.varint(), a.i64); break;
        case 5: r.repeated(w, Wire.I32, (x) => x.float(), a.flt); break;
        case 6: r.repeated(w, Wire.I64, (x) => x.double(), a.dbl); break;
        case 7: a.str.push(r.string()); break;
        case 8: { const t: number[] = []; r.repeated(w, Wire.Varint, (x) => x.varint(), t); a.bool.push(...t.map((v) => v !== 0)); break; }
        case 10: a.tensor.push(this.tensor(r.message())); break;
        case 13: a.module.push(this.module(r.message())); break;
        default: r.skip(w);
      }
    }
    return a;
  }

  tensor(r: Reader): BTensor {
    const t: BTensor = { size: [], stride: [], offset: 1, storageId: -1, id: -1, scalar: false };
    while (!r.done) {
      const [f, w] = r.key();
      switch (f) {
        case 2: r.repeated(w, Wire.Varint, (x) => int32(x.varint()), t.size); break;
        case 3: r.repeated(w, Wire.Varint, (x) => int32(x.varint()), t.stride); break;
        case 4: t.offset = int32(r.varint()); break;
        case 7: t.scalar = r.varint() !== 0; break;
        case 8: {
          const s = r.message();
          let id = -1;
          let floats: number[] | undefined;
          let bytes: Float32Array | undefined;
          while (!s.done) {
            const [sf, sw] = s.key();
            if (sf === 2) {
              if (sw === Wire.Len) {
                const b = s.bytes();
                if (b.length % 4) throw new Q8Error('float storage length is not a multiple of 4');
                bytes = new Float32Array(b.length / 4);
                new Uint8Array(bytes.buffer).set(b);
              } else { floats ??= []; s.repeated(sw, Wire.I32, (x) => x.float(), floats); }
            } else if (sf === 3) { floats ??= []; s.repeated(sw, Wire.I64, (x) => x.double(), floats); }
            else if (sf === 9 && sw === Wire.Varint) id = int32(s.varint());
            else s.skip(sw);
          }
          t.storageId = id;
          const data = bytes ?? (floats ? Float32Array.from(floats) : undefined);
          if (data && data.length) { t.data = data; if (id !== -1) this.storages.set(id, data); }
          break;
        }
        case 9: t.id = int32(r.varint()); break;
        default: r.skip(w);
      }
    }
    return t;
  }
}

const int32 = (v: number) => (v >= 2 ** 31 && v < 2 ** 32 ? v - 2 ** 32 : v > 2 ** 53 ? Number(BigInt.asIntN(32, BigInt(v))) : v);

// --- lowering ---------------------------------------------------------------------------------

const ai = (v: number): AttrValue => ({ type: 'int', value: v });
const af = (v: number): AttrValue => ({ type: 'float', value: v });
const ais = (v: number[]): AttrValue => ({ type: 'ints', value: v });

export function loadBigDL(bytes: Uint8Array, opts: BigDLOptions = {}): Model {
  const file = opts.file;
  const dec = new Decoder();
  let top: BModule;
  try {
    top = dec.module(new Reader(bytes));
  } catch (e) {
    if (e instanceof Q8Error) throw e.withContext({ file });
    throw new Q8Error(`not a readable BigDL model (BigDLModule protobuf): ${e instanceof ProtobufError || e instanceof Error ? e.message : String(e)}`, { file });
  }
  if (!top.type.includes('.')) throw new Q8Error(`not a BigDL model: top module has no type (got '${top.type}')`, { file });
  return new Lower(dec, file, opts).run(top);
}

class Lower {
  private readonly g: Graph = emptyGraph('bigdl');
  private readonly used = new Set<string>();
  private inputShape: Dim[] | undefined;

  constructor(private readonly dec: Decoder, private readonly file: string | undefined, private readonly opts: BigDLOptions) {}

  private err(detail: string, m?: BModule): Q8Error {
    return new Q8Error(detail, { file: this.file, node: m?.name, opType: m ? short(m.type) : undefined });
  }

  run(top: BModule): Model {
    const input = 'input';
    this.used.add(input);
    const out = this.module(top, [input]);
    if (out.length !== 1) throw this.err(`the model has ${out.length} outputs; q8 expects one`, top);
    const shape = this.opts.inputShape ? ['batch', ...this.opts.inputShape] : this.inputShape;
    this.g.inputs.push({ name: input, dtype: 'float32', shape });
    const final = out[0]!;
    if (final === input) throw this.err('the model computes nothing', top);
    this.g.outputs.push({ name: final, dtype: 'float32' });
    return {
      graph: this.g, opsets: new Map([['', 13]]), irVersion: 8, producerName: 'q8-bigdl', producerVersion: '0.1.0',
      metadata: new Map([['source_format', 'bigdl']]), source: this.file,
    };
  }

  private fresh(base: string): string {
    let n = base || 'v';
    for (let k = 1; this.used.has(n); k++) n = `${base}_${k}`;
    this.used.add(n);
    return n;
  }

  private init(base: string, t: Tensor): string {
    const n = this.fresh(base);
    this.g.initializers.set(n, t);
    return n;
  }

  private op(m: BModule, opType: string, inputs: string[], attrs: Record<string, AttrValue> = {}, suffix = ''): string {
    const out = this.fresh(m.name + suffix);
    this.g.nodes.push({ name: out, opType, domain: '', inputs, outputs: [out], attrs });
    return out;
  }

  private int(m: BModule, k: string, d?: number): number {
    const a = m.attr.get(k);
    if (a?.i !== undefined) return a.i;
    if (a?.b !== undefined) return a.b ? 1 : 0;
    if (d === undefined) throw this.err(`attribute '${k}' is missing`, m);
    return d;
  }

  private flt(m: BModule, k: string, d: number): number { return m.attr.get(k)?.f ?? d; }

  private bool(m: BModule, k: string, d: boolean): boolean {
    const a = m.attr.get(k);
    return a?.b ?? (a?.i !== undefined ? a.i !== 0 : d);
  }

  /** Resolve a module tensor's values (inline or from the global storage), honouring offset/stride. */
  private values(t: BTensor | undefined, m: BModule, what: string): { shape: number[]; data: Float32Array } {
    if (!t) throw this.err(`has no ${what}`, m);
    const store = t.data ?? this.dec.storages.get(t.storageId);
    if (!store) throw this.err(`${what} points to storage ${t.storageId}, which the file does not contain`, m);
    const shape = t.size;
    const n = shape.reduce((a, c) => a * c, 1);
    const off = t.offset - 1;
    const contiguous = shape.every((_, i) => t.stride[i] === undefined || t.stride[i] === shape.slice(i + 1).reduce((a, c) => a * c, 1));
    if (off < 0 || shape.some((d) => d < 0)) throw this.err(`${what} has a bad offset or size`, m);
    if (contiguous) {
      if (off + n > store.length) throw this.err(`${what} of ${n} values at offset ${off} runs past its storage of ${store.length}`, m);
      return { shape, data: store.slice(off, off + n) };
    }
    const out = new Float32Array(n);
    const idx = new Array<number>(shape.length).fill(0);
    for (let i = 0; i < n; i++) {
      let p = off;
      for (let d = 0; d < shape.length; d++) p += idx[d]! * (t.stride[d] ?? 0);
      if (p >= store.length) throw this.err(`${what} runs past its storage`, m);
      out[i] = store[p]!;
      for (let d = shape.length - 1; d >= 0; d--) { if (++idx[d]! < shape[d]!) break; idx[d] = 0; }
    }
    return { shape, data: out };
  }

  private weights(m: BModule): [BTensor | undefined, BTensor | undefined] {
    if (m.params.length) return [m.params[0], m.params[1]];
    return [m.weight, m.bias];
  }

  /** Lower one module applied to `ins`; returns its outputs. */
  private module(m: BModule, ins: string[]): string[] {
    const t = short(m.type);
    switch (t) {
      case 'Sequential': {
        let v = ins;
        for (const s of m.sub) v = this.module(s, v);
        return v;
      }
      case 'StaticGraph': case 'Graph': return this.graph(m, ins);
      default: break;
    }
    if (ins.length !== 1 && !['CAddTable', 'JoinTable'].includes(t)) throw this.err(`expects one input, got ${ins.length}`, m);
    const x = ins[0]!;
    switch (t) {
      case 'Input': case 'Identity': case 'Dropout': return [x];
      case 'Tanh': return [this.op(m, 'Tanh', [x])];
      case 'ReLU': return [this.op(m, 'Relu', [x])];
      case 'Sigmoid': return [this.op(m, 'Sigmoid', [x])];
      case 'Abs': return [this.op(m, 'Abs', [x])];
      case 'SoftPlus': return [this.op(m, 'Softplus', [x])];
      case 'ELU': return [this.op(m, 'Elu', [x], { alpha: af(this.flt(m, 'alpha', 1)) })];
      case 'LeakyReLU': return [this.op(m, 'LeakyRelu', [x], { alpha: af(this.flt(m, 'negval', 0.01)) })];
      case 'ReLU6': return [this.op(m, 'Clip', [x, this.init(`${m.name}.min`, Tensor.scalar('float32', 0)), this.init(`${m.name}.max`, Tensor.scalar('float32', 6))])];
      case 'LogSoftMax': return [this.op(m, 'LogSoftmax', [x], { axis: ai(-1) })];
      case 'SoftMax': return [this.op(m, 'Softmax', [x], { axis: ai(-1) })];
      case 'CAddTable': return [this.op(m, 'Sum', ins)];
      case 'JoinTable': {
        // BigDL's dimension is 1-based and counts the batch when nInputDims says so; with batched NCHW input, dim d → axis d.
        const dim = this.int(m, 'dimension');
        return [this.op(m, 'Concat', ins, { axis: ai(dim) })];
      }
      case 'Reshape': case 'View': {
        const a = m.attr.get('size') ?? m.attr.get('sizes');
        const size = a?.array?.i32 ?? [];
        if (!size.length) throw this.err('has no size', m);
        if (!this.g.nodes.length && !this.inputShape) this.inputShape = ['batch', ...size];
        return [this.op(m, 'Reshape', [x, this.init(`${m.name}.shape`, Tensor.from('int64', [size.length + 1], [-1, ...size].map(BigInt)))])];
      }
      case 'Linear': {
        const [wt, bt] = this.weights(m);
        const w = this.values(wt, m, 'weight');
        const outN = this.int(m, 'outputSize', w.shape[0]), inN = this.int(m, 'inputSize', w.shape[1]);
        if (w.data.length !== outN * inN) throw this.err(`weight has ${w.data.length} values, expected ${outN}x${inN}`, m);
        const ws = [x, this.init(`${m.name}.weight`, Tensor.from('float32', [outN, inN], w.data))];
        if (this.bool(m, 'withBias', true) && bt) {
          const b = this.values(bt, m, 'bias');
          if (b.data.length !== outN) throw this.err(`bias has ${b.data.length} values, expected ${outN}`, m);
          ws.push(this.init(`${m.name}.bias`, Tensor.from('float32', [outN], b.data)));
        }
        return [this.op(m, 'Gemm', ws, { transB: ai(1) })];
      }
      case 'SpatialConvolution': {
        const [wt, bt] = this.weights(m);
        const w = this.values(wt, m, 'weight');
        const cin = this.int(m, 'nInputPlane'), cout = this.int(m, 'nOutputPlane');
        const kw = this.int(m, 'kernelW'), kh = this.int(m, 'kernelH');
        const sw = this.int(m, 'strideW', 1), sh = this.int(m, 'strideH', 1);
        const pw = this.int(m, 'padW', 0), ph = this.int(m, 'padH', 0);
        const g = this.int(m, 'nGroup', 1);
        const fmt = m.attr.get('format');
        if (fmt && (fmt.i ?? 0) !== 0 && fmt.dataType === 16) throw this.err('NHWC SpatialConvolution is not supported', m);
        if (!(g > 0) || cin % g || cout % g) throw this.err(`bad group ${g} for ${cin}→${cout} channels`, m);
        const n = cout * (cin / g) * kh * kw;
        if (w.data.length !== n) throw this.err(`weight has ${w.data.length} values, expected ${n}`, m);
        const ws = [x, this.init(`${m.name}.weight`, Tensor.from('float32', [cout, cin / g, kh, kw], w.data))];
        if (this.bool(m, 'withBias', true) && bt) {
          const b = this.values(bt, m, 'bias');
          if (b.data.length !== cout) throw this.err(`bias has ${b.data.length} values, expected ${cout}`, m);
          ws.push(this.init(`${m.name}.bias`, Tensor.from('float32', [cout], b.data)));
        }
        const pads: Record<string, AttrValue> = pw === -1 || ph === -1 ? { auto_pad: { type: 'string', value: 'SAME_UPPER' } } : { pads: ais([ph, pw, ph, pw]) };
        return [this.op(m, 'Conv', ws, { kernel_shape: ais([kh, kw]), strides: ais([sh, sw]), group: ai(g), ...pads })];
      }
      case 'SpatialMaxPooling': case 'SpatialAveragePooling': {
        const kw = this.int(m, 'kW'), kh = this.int(m, 'kH');
        const dw = this.int(m, 'dW', 1), dh = this.int(m, 'dH', 1);
        const pw = this.int(m, 'padW', 0), ph = this.int(m, 'padH', 0);
        const ceil = this.bool(m, 'ceil_mode', false) || this.bool(m, 'ceilMode', false);
        const avg = t === 'SpatialAveragePooling';
        if (avg && this.bool(m, 'globalPooling', false)) return [this.op(m, 'GlobalAveragePool', [x])];
        const attrs: Record<string, AttrValue> = { kernel_shape: ais([kh, kw]), strides: ais([dh, dw]), ceil_mode: ai(ceil ? 1 : 0) };
        attrs[pw === -1 || ph === -1 ? 'auto_pad' : 'pads'] = pw === -1 || ph === -1 ? { type: 'string', value: 'SAME_UPPER' } : ais([ph, pw, ph, pw]);
        if (avg) attrs.count_include_pad = ai(this.bool(m, 'countIncludePad', true) ? 1 : 0);
        return [this.op(m, avg ? 'AveragePool' : 'MaxPool', [x], attrs)];
      }
      case 'SpatialBatchNormalization': case 'BatchNormalization': {
        const [wt, bt] = this.weights(m);
        const rm = m.attr.get('runningMean')?.tensor, rv = m.attr.get('runningVar')?.tensor;
        const mean = this.values(rm, m, 'runningMean').data, vr = this.values(rv, m, 'runningVar').data;
        const c = mean.length;
        const sc = wt ? this.values(wt, m, 'weight').data : new Float32Array(c).fill(1);
        const bi = bt ? this.values(bt, m, 'bias').data : new Float32Array(c);
        const eps = this.flt(m, 'eps', 1e-5);
        const f = (d: Float32Array) => this.init(`${m.name}.p`, Tensor.from('float32', [c], d));
        return [this.op(m, 'BatchNormalization', [x, f(sc), f(bi), f(mean), f(vr)], { epsilon: af(eps) })];
      }
      default:
        throw this.err(`unsupported BigDL module type '${m.type}' (module '${m.name}')`, m);
    }
  }

  /** StaticGraph: sub-modules with preModules links; inputs/outputs named by attributes. */
  private graph(m: BModule, ins: string[]): string[] {
    const byName = new Map(m.sub.map((s) => [s.name, s]));
    const names = (k: string) => {
      const a = m.attr.get(k);
      return a?.array?.str ?? (a?.s ? [a.s] : []);
    };
    let inputs = names('inputNames');
    let outputs = names('outputNames');
    if (!inputs.length) inputs = m.sub.filter((s) => !s.pre.length).map((s) => s.name);
    if (!outputs.length) {
      const hasNext = new Set(m.sub.flatMap((s) => s.pre));
      outputs = m.sub.filter((s) => !hasNext.has(s.name)).map((s) => s.name);
    }
    if (inputs.length !== ins.length) throw this.err(`graph has ${inputs.length} inputs, given ${ins.length}`, m);
    const done = new Map<string, string>();
    const visiting = new Set<string>();
    const evalNode = (name: string): string => {
      const hit = done.get(name);
      if (hit) return hit;
      const s = byName.get(name);
      if (!s) throw this.err(`graph refers to module '${name}', which it does not contain`, m);
      if (visiting.has(name)) throw this.err(`graph has a cycle through '${name}'`, m);
      visiting.add(name);
      const k = inputs.indexOf(name);
      // Dedupe preModules: BigDL can list an edge once per direction.
      const pre = [...new Set(s.pre)];
      const args = k >= 0 ? [ins[k]!] : pre.map(evalNode);
      const outs = this.module(s, args);
      if (outs.length !== 1) throw this.err('multi-output modules inside graphs are not supported', s);
      visiting.delete(name);
      done.set(name, outs[0]!);
      return outs[0]!;
    };
    return outputs.map(evalNode);
  }
}

function short(t: string): string { return t.slice(t.lastIndexOf('.') + 1); }
