/**
 * Caffe loader: a .prototxt (protobuf text) net definition plus a binary .caffemodel with the
 * weights, lowered into q8's graph with ONNX operator semantics (opset 13). Both the V2 `layer`
 * and the legacy V1 `layers` formats are read, as are the legacy `input`/`input_dim`/`input_shape`
 * net inputs. Blob shapes are tracked statically so layers whose ONNX form needs a size (Caffe's
 * pooling rounding, Crop, Slice, PriorBox, partial Reshape/Flatten) get exact constants; the batch
 * dimension of the inputs is left symbolic so any batch size runs.
 *
 *   const model = loadCaffe('lenet.prototxt', readFileSync('lenet.caffemodel'));
 */
import { existsSync, readFileSync } from 'node:fs';
import { Q8Error } from '../../core/errors.js';
import { ProtobufError, Reader } from '../../core/protobuf.js';
import { emptyGraph, type Model } from '../../graph/ir.js';
import { Tensor } from '../../tensor/tensor.js';
import { parseTextProto, TextMessage, type TextValue } from '../text-proto.js';
import { af, ai, ais, Builder, type A } from './builder.js';
import { decodeMessage, layerBlobs, NetParameter, V1_IDENTS, V1_TYPES, type Blob } from './schema.js';
import { priorBoxes } from './ssd-ops.js';

export interface CaffeOptions {
  /** File names for error messages. */
  prototxtFile?: string;
  caffemodelFile?: string;
  /** Keep the declared batch size instead of a symbolic batch dimension (default false). */
  fixedBatch?: boolean;
  /** Layer types to lower to Identity (custom layers a user knows to be pass-through). */
  identityTypes?: string[];
}

/** Caffe layer types q8 lowers (the README table is generated from this). */
export const CAFFE_LAYERS: readonly string[] = [
  'Input', 'Convolution', 'Deconvolution', 'InnerProduct', 'Pooling', 'ReLU', 'PReLU', 'ELU', 'Sigmoid', 'TanH',
  'AbsVal', 'Power', 'Exp', 'Log', 'BNLL', 'LRN', 'BatchNorm', 'Scale', 'Bias', 'Eltwise', 'Concat', 'Slice', 'Split',
  'Flatten', 'Reshape', 'Crop', 'Softmax', 'Dropout', 'ArgMax', 'Threshold', 'Permute', 'Normalize', 'PriorBox',
  'DetectionOutput',
];

/** Layers that only matter in training (data sources, losses, accuracy): dropped at load. */
const TRAINING_ONLY = new Set([
  'Data', 'ImageData', 'HDF5Data', 'HDF5Output', 'MemoryData', 'WindowData', 'DummyData', 'AnnotatedData', 'Accuracy',
  'SoftmaxWithLoss', 'EuclideanLoss', 'HingeLoss', 'InfogainLoss', 'MultinomialLogisticLoss', 'SigmoidCrossEntropyLoss',
  'ContrastiveLoss', 'MultiBoxLoss', 'Silence', 'DetectionEvaluate',
]);

/**
 * Load a Caffe net. `prototxt` is a path or the text itself (or undefined to take the structure from
 * the caffemodel alone); `caffemodel` the binary weights (or undefined: a weightless definition,
 * only for nets whose layers have no blobs).
 */
export function loadCaffe(prototxt: string | undefined, caffemodel: Uint8Array | undefined, opts: CaffeOptions = {}): Model {
  let protoFile = opts.prototxtFile;
  let text: string | undefined;
  if (prototxt !== undefined) {
    if (!/[{\n:]/.test(prototxt) && existsSync(prototxt)) {
      protoFile ??= prototxt;
      text = readFileSync(prototxt, 'utf8');
    } else text = prototxt;
  }
  const binFile = opts.caffemodelFile;
  let bin: TextMessage | undefined;
  if (caffemodel) {
    try {
      bin = decodeMessage(new Reader(caffemodel), NetParameter);
    } catch (e) {
      const why = e instanceof ProtobufError || e instanceof Error ? e.message : String(e);
      throw new Q8Error(`not a readable Caffe model (NetParameter protobuf): ${why}`, { file: binFile });
    }
  }
  const net = text !== undefined ? parseTextProto(text, protoFile) : bin;
  if (!net) throw new Q8Error('a Caffe model needs a .prototxt, a .caffemodel or both');
  const file = protoFile ?? binFile;
  const weights = new Map<string, Blob[]>();
  if (bin) {
    for (const l of [...bin.all('layer'), ...bin.all('layers')]) {
      const b = layerBlobs.get(l);
      if (b?.length) weights.set(l.str('name', ''), b);
    }
  }
  const lw = new Lowering(net, weights, file, opts);
  return lw.run();
}

/** Load from files: `caffemodel` may be omitted for weightless nets. */
export function loadCaffeFiles(prototxtPath: string | undefined, caffemodelPath?: string, opts: CaffeOptions = {}): Model {
  const bytes = caffemodelPath ? readFileSync(caffemodelPath) : undefined;
  return loadCaffe(prototxtPath, bytes ? new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length) : undefined,
    { prototxtFile: prototxtPath, caffemodelFile: caffemodelPath, ...opts });
}

interface Layer { name: string; type: string; bottoms: string[]; tops: string[]; msg: TextMessage; v1: boolean }

/** Enum field that may be a number (binary) or an identifier (text). */
function enumOf(m: TextMessage | undefined, field: string, names: string[], dflt: number): number {
  const v: TextValue | undefined = m?.values(field).at(-1);
  if (!v || v instanceof TextMessage) return dflt;
  if (v.kind === 'number') return v.value;
  const k = names.indexOf(v.value);
  if (k < 0) throw new Q8Error(`unknown value '${v.value}' for ${field} (expected ${names.filter(Boolean).join(', ')})`);
  return k;
}

class Lowering {
  private readonly model: Model;
  private readonly b: Builder;
  /** Caffe blob name → current graph value name (in-place layers rebind it). */
  private readonly cur = new Map<string, string>();
  private readonly shapes = new Map<string, number[]>(); // by graph value name
  private readonly consumed = new Set<string>();
  private readonly produced: string[] = [];
  private usesQ8 = false;
  private layerStart = 0;

  constructor(private readonly net: TextMessage, private readonly weights: Map<string, Blob[]>,
    private readonly file: string | undefined, private readonly opts: CaffeOptions) {
    const g = emptyGraph(net.str('name', 'caffe'));
    this.model = {
      graph: g, opsets: new Map([['', 13]]), irVersion: 8, producerName: 'q8-caffe', producerVersion: '0.1.0',
      metadata: new Map([['source_format', 'caffe']]), source: file,
    };
    this.b = new Builder(g);
  }

  private err(detail: string, l?: Layer): Q8Error {
    return new Q8Error(detail, { file: this.file, node: l?.name, opType: l?.type });
  }

  run(): Model {
    const net = this.net;
    // Legacy net inputs: input + input_dim (4 per input) or input_shape.
    const legacy = net.strs('input');
    const dims = net.nums('input_dim');
    const ishapes = net.all('input_shape');
    legacy.forEach((name, k) => {
      let shape: number[];
      if (ishapes[k]) shape = ishapes[k]!.nums('dim');
      else if (dims.length >= 4 * (k + 1)) shape = dims.slice(4 * k, 4 * k + 4);
      else throw this.err(`net input '${name}' has no input_dim or input_shape`);
      this.addInput(name, shape);
    });
    const v2 = net.all('layer');
    const v1 = net.all('layers');
    const layers: Layer[] = v2.length
      ? v2.map((m) => ({ name: m.str('name', ''), type: m.str('type', ''), bottoms: m.strs('bottom'), tops: m.strs('top'), msg: m, v1: false }))
      : v1.map((m) => ({ name: m.str('name', ''), type: this.v1Type(m), bottoms: m.strs('bottom'), tops: m.strs('top'), msg: m, v1: true }));
    if (!layers.length && !legacy.length) throw this.err('the net has no layers');
    for (const l of layers) {
      if (this.skipPhase(l.msg) || TRAINING_ONLY.has(l.type)) continue;
      try {
        this.layerStart = this.model.graph.nodes.length;
        this.lower(l);
      } catch (e) {
        if (e instanceof Q8Error) throw e.withContext({ file: this.file, node: l.name, opType: l.type });
        throw this.err(e instanceof Error ? e.message : String(e), l);
      }
    }
    const g = this.model.graph;
    const outs = new Set<string>();
    for (const v of this.produced) if (!this.consumed.has(v)) outs.add(v);
    if (!outs.size) throw this.err('the net produces no output');
    g.outputs = [...outs].map((name) => ({ name, dtype: 'float32', shape: this.outShape(name) }));
    if (this.usesQ8) this.model.opsets.set('q8', 1);
    return this.model;
  }

  private outShape(name: string): (number | string)[] | undefined {
    const s = this.shapes.get(name);
    if (!s) return undefined;
    return this.opts.fixedBatch ? s : s.map((d, i) => (i === 0 ? 'batch' : d));
  }

  private v1Type(m: TextMessage): string {
    const v = m.values('type').at(-1);
    if (!v || v instanceof TextMessage) return '';
    if (v.kind === 'number') return V1_TYPES[v.value] ?? `V1 type ${v.value}`;
    return V1_IDENTS[v.value] ?? v.value;
  }

  private skipPhase(m: TextMessage): boolean {
    const phase = (r: TextMessage) => enumOf(r, 'phase', ['TRAIN', 'TEST'], -1);
    if (m.has('phase') && enumOf(m, 'phase', ['TRAIN', 'TEST'], 1) === 0) return true;
    if (m.all('include').some((r) => phase(r) === 0)) return true;
    if (m.all('exclude').some((r) => phase(r) === 1)) return true;
    return false;
  }

  private addInput(name: string, shape: number[]): void {
    if (shape.some((d) => !Number.isSafeInteger(d) || d < 0 || d > 2 ** 31)) throw this.err(`input '${name}' has an invalid shape [${shape.join(',')}]`);
    const g = this.model.graph;
    this.b.reserve(name);
    g.inputs.push({ name, dtype: 'float32', shape: this.opts.fixedBatch ? shape : shape.map((d, i) => (i === 0 ? 'batch' : d)) });
    this.cur.set(name, name);
    this.shapes.set(name, shape);
  }

  private input(l: Layer, k: number): string {
    const blob = l.bottoms[k];
    if (blob === undefined) throw this.err(`needs at least ${k + 1} bottom blob(s)`, l);
    const v = this.cur.get(blob);
    if (!v) throw this.err(`bottom blob '${blob}' is not produced by any earlier layer or input`, l);
    this.consumed.add(v);
    return v;
  }

  private shapeOf(v: string): number[] {
    const s = this.shapes.get(v);
    if (!s) throw new Q8Error(`shape of '${v}' is unknown`);
    return s;
  }

  /** Bind top k to a value; in-place tops get a fresh value name. */
  private output(l: Layer, k: number, shape: number[]): string {
    const top = l.tops[k];
    if (top === undefined) throw this.err(`needs at least ${k + 1} top blob(s)`, l);
    const name = this.cur.has(top) ? this.b.fresh(`${top}/${l.name}`) : this.b.fresh(top);
    this.cur.set(top, name);
    this.shapes.set(name, shape);
    this.produced.push(name);
    return name;
  }

  private blobs(l: Layer, min: number): Blob[] {
    const b = this.weights.get(l.name) ?? layerBlobs.get(l.msg) ?? [];
    if (b.length < min) throw this.err(`needs ${min} weight blob(s) from the caffemodel, found ${b.length}`, l);
    return b;
  }

  private tensor(blob: Blob, shape: number[], l: Layer, what: string): Tensor {
    const n = shape.reduce((a, c) => a * c, 1);
    if (blob.data.length !== n) throw this.err(`${what} blob has ${blob.data.length} values, expected ${n} for shape [${shape.join(',')}]`, l);
    return Tensor.from('float32', shape, blob.data);
  }

  private param(l: Layer, name: string): TextMessage {
    return l.msg.msg(name) ?? new TextMessage();
  }

  private unary(l: Layer, op: string, attrs: A = {}): void {
    const x = this.input(l, 0);
    const out = this.output(l, 0, this.shapeOf(x));
    this.b.node(op, l.name, [x], [out], attrs);
  }

  private lower(l: Layer): void {
    const b = this.b;
    switch (l.type) {
      case 'Input': {
        const shapes = this.param(l, 'input_param').all('shape');
        l.tops.forEach((t, k) => {
          const s = shapes[k] ?? shapes[0];
          if (!s) throw this.err('Input layer has no input_param.shape', l);
          this.addInput(t, s.nums('dim'));
        });
        return;
      }
      case 'Convolution': case 'Deconvolution': return this.conv(l, l.type === 'Deconvolution');
      case 'InnerProduct': return this.innerProduct(l);
      case 'Pooling': return this.pooling(l);
      case 'ReLU': {
        const slope = this.param(l, 'relu_param').num('negative_slope', 0);
        return slope ? this.unary(l, 'LeakyRelu', { alpha: af(slope) }) : this.unary(l, 'Relu');
      }
      case 'PReLU': {
        const x = this.input(l, 0);
        const s = this.shapeOf(x);
        const [w] = this.blobs(l, 1);
        const shared = this.param(l, 'prelu_param').bool('channel_shared', false);
        const c = shared ? 1 : s[1] ?? 1;
        const slopeShape = s.length > 2 ? [c, ...s.slice(2).map(() => 1)] : [c];
        const slope = b.const(`${l.name}.slope`, this.tensor(w!, slopeShape, l, 'slope'));
        b.node('PRelu', l.name, [x, slope], [this.output(l, 0, s)]);
        return;
      }
      case 'ELU': return this.unary(l, 'Elu', { alpha: af(this.param(l, 'elu_param').num('alpha', 1)) });
      case 'Sigmoid': return this.unary(l, 'Sigmoid');
      case 'TanH': return this.unary(l, 'Tanh');
      case 'AbsVal': return this.unary(l, 'Abs');
      case 'BNLL': return this.unary(l, 'Softplus');
      case 'Dropout': case 'Split': {
        const x = this.input(l, 0);
        l.tops.forEach((_, k) => b.node('Identity', l.tops.length > 1 ? `${l.name}_${k}` : l.name, [x], [this.output(l, k, this.shapeOf(x))]));
        return;
      }
      case 'Threshold': {
        const x = this.input(l, 0);
        const t = b.f32(`${l.name}.threshold`, [], [this.param(l, 'threshold_param').num('threshold', 0)]);
        const gt = b.op('Greater', `${l.name}/gt`, [x, t]);
        b.node('Cast', l.name, [gt], [this.output(l, 0, this.shapeOf(x))], { to: ai(1) });
        return;
      }
      case 'Power': {
        const p = this.param(l, 'power_param');
        const power = p.num('power', 1), scale = p.num('scale', 1), shift = p.num('shift', 0);
        let v = this.input(l, 0);
        const s = this.shapeOf(v);
        v = this.affine(l, v, scale, shift);
        if (power !== 1) v = b.op('Pow', `${l.name}/pow`, [v, b.f32(`${l.name}.power`, [], [power])]);
        this.finish(l, v, s);
        return;
      }
      case 'Exp': case 'Log': {
        const p = this.param(l, l.type === 'Exp' ? 'exp_param' : 'log_param');
        const base = p.num('base', -1), scale = p.num('scale', 1), shift = p.num('shift', 0);
        if (base !== -1 && !(base > 0)) throw this.err(`base must be positive or -1 (e), got ${base}`, l);
        const lnb = base === -1 ? 1 : Math.log(base);
        let v = this.input(l, 0);
        const s = this.shapeOf(v);
        if (l.type === 'Exp') {
          v = this.affine(l, v, scale * lnb, shift * lnb);
          v = b.op('Exp', `${l.name}/exp`, [v]);
        } else {
          v = this.affine(l, v, scale, shift);
          v = b.op('Log', `${l.name}/log`, [v]);
          if (lnb !== 1) v = b.op('Mul', `${l.name}/base`, [v, b.f32(`${l.name}.inv_ln_base`, [], [1 / lnb])]);
        }
        this.finish(l, v, s);
        return;
      }
      case 'LRN': return this.lrn(l);
      case 'BatchNorm': {
        const x = this.input(l, 0);
        const s = this.shapeOf(x);
        const bl = this.blobs(l, 2);
        const c = s[1] ?? 1;
        const sf = bl[2]?.data[0] ?? 1;
        const f = sf === 0 ? 0 : 1 / sf;
        const mean = Float32Array.from(this.tensor(bl[0]!, [c], l, 'mean').data as Float32Array, (v) => v * f);
        const vr = Float32Array.from(this.tensor(bl[1]!, [c], l, 'variance').data as Float32Array, (v) => v * f);
        const eps = this.param(l, 'batch_norm_param').num('eps', 1e-5);
        const ins = [x, b.f32(`${l.name}.scale`, [c], new Float32Array(c).fill(1)), b.f32(`${l.name}.bias`, [c], new Float32Array(c)),
          b.f32(`${l.name}.mean`, [c], mean), b.f32(`${l.name}.var`, [c], vr)];
        b.node('BatchNormalization', l.name, ins, [this.output(l, 0, s)], { epsilon: af(eps) });
        return;
      }
      case 'Scale': case 'Bias': return this.scale(l);
      case 'Eltwise': {
        const p = this.param(l, 'eltwise_param');
        const op = enumOf(p, 'operation', ['PROD', 'SUM', 'MAX'], 1);
        const xs = l.bottoms.map((_, k) => this.input(l, k));
        const s = this.shapeOf(xs[0]!);
        const coeff = p.nums('coeff');
        if (coeff.length && coeff.length !== xs.length) throw this.err(`has ${coeff.length} coeff values for ${xs.length} bottoms`, l);
        let ins = xs;
        if (op === 1 && coeff.length) ins = xs.map((x, k) => (coeff[k] === 1 ? x : b.op('Mul', `${l.name}/coeff${k}`, [x, b.f32(`${l.name}.coeff${k}`, [], [coeff[k]!])])));
        const onnx = op === 0 ? 'Mul' : op === 1 ? 'Sum' : op === 2 ? 'Max' : '';
        if (!onnx) throw this.err(`unknown Eltwise operation ${op}`, l);
        if (onnx === 'Mul') {
          let v = ins[0]!;
          for (let k = 1; k < ins.length; k++) v = b.op('Mul', `${l.name}/mul${k}`, [v, ins[k]!]);
          this.finish(l, v, s);
        } else b.node(onnx, l.name, ins, [this.output(l, 0, s)]);
        return;
      }
      case 'Concat': {
        const p = this.param(l, 'concat_param');
        const xs = l.bottoms.map((_, k) => this.input(l, k));
        const s0 = this.shapeOf(xs[0]!);
        const axis = this.axis(p.has('concat_dim') && !p.has('axis') ? p.num('concat_dim', 1) : p.num('axis', 1), s0.length, l);
        const s = [...s0];
        s[axis] = xs.reduce((a, x) => a + this.shapeOf(x)[axis]!, 0);
        b.node('Concat', l.name, xs, [this.output(l, 0, s)], { axis: ai(axis) });
        return;
      }
      case 'Slice': {
        const p = this.param(l, 'slice_param');
        const x = this.input(l, 0);
        const s = this.shapeOf(x);
        const axis = this.axis(p.has('slice_dim') && !p.has('axis') ? p.num('slice_dim', 1) : p.num('axis', 1), s.length, l);
        const points = p.nums('slice_point');
        const n = l.tops.length;
        let sizes: number[];
        if (points.length) {
          if (points.length !== n - 1) throw this.err(`has ${points.length} slice points for ${n} tops`, l);
          const edges = [0, ...points, s[axis]!];
          sizes = edges.slice(1).map((e, k) => e - edges[k]!);
        } else {
          if (s[axis]! % n) throw this.err(`cannot split axis of size ${s[axis]} evenly into ${n}`, l);
          sizes = new Array(n).fill(s[axis]! / n);
        }
        if (sizes.some((z) => z <= 0)) throw this.err(`slice points [${points.join(',')}] do not fit an axis of size ${s[axis]}`, l);
        const outs = sizes.map((z, k) => { const o = [...s]; o[axis] = z; return this.output(l, k, o); });
        b.node('Split', l.name, [x, b.i64(`${l.name}.split`, sizes)], outs, { axis: ai(axis) });
        return;
      }
      case 'Flatten': {
        const p = this.param(l, 'flatten_param');
        const x = this.input(l, 0);
        const s = this.shapeOf(x);
        const axis = this.axis(p.num('axis', 1), s.length, l);
        const end = this.axis(p.num('end_axis', -1), s.length, l);
        const o = [...s.slice(0, axis), s.slice(axis, end + 1).reduce((a, c) => a * c, 1), ...s.slice(end + 1)];
        if (end === s.length - 1 && axis === 1) b.node('Flatten', l.name, [x], [this.output(l, 0, o)], { axis: ai(1) });
        else this.reshapeTo(l, x, o, axis);
        return;
      }
      case 'Reshape': {
        const p = this.param(l, 'reshape_param');
        const x = this.input(l, 0);
        const s = this.shapeOf(x);
        const spec = p.msg('shape')?.nums('dim') ?? [];
        const axis0 = p.num('axis', 0);
        const axis = axis0 < 0 ? s.length + 1 + axis0 : axis0;
        const numAxes = p.num('num_axes', -1);
        const end = numAxes === -1 ? s.length : axis + numAxes;
        if (axis < 0 || axis > s.length || end > s.length) throw this.err(`axis ${axis0}/num_axes ${numAxes} out of range for rank ${s.length}`, l);
        const mid = spec.map((d, i) => (d === 0 ? s[axis + i]! : d));
        const known = [...s.slice(0, axis), ...mid.filter((d) => d !== -1), ...s.slice(end)].reduce((a, c) => a * c, 1);
        const total = s.reduce((a, c) => a * c, 1);
        const inf = mid.filter((d) => d === -1).length;
        if (inf > 1) throw this.err('has more than one -1 dimension', l);
        const full = mid.map((d) => (d === -1 ? total / known : d));
        const o = [...s.slice(0, axis), ...full, ...s.slice(end)];
        if (o.reduce((a, c) => a * c, 1) !== total || o.some((d) => !Number.isInteger(d) || d < 0)) throw this.err(`cannot reshape [${s.join(',')}] to [${spec.join(',')}]`, l);
        this.reshapeTo(l, x, o, axis === 0 && spec[0] === 0 ? 1 : axis === 0 ? 0 : 1);
        return;
      }
      case 'Crop': {
        const p = this.param(l, 'crop_param');
        const x = this.input(l, 0);
        const ref = this.input(l, 1);
        const s = this.shapeOf(x), rs = this.shapeOf(ref);
        const axis = this.axis(p.num('axis', 2), s.length, l);
        const offs = p.nums('offset');
        const o = [...s];
        const axes: number[] = [], starts: number[] = [], ends: number[] = [];
        for (let d = axis; d < s.length; d++) {
          const off = offs.length === 0 ? 0 : offs.length === 1 ? offs[0]! : offs[d - axis];
          if (off === undefined) throw this.err(`needs 1 or ${s.length - axis} offsets, got ${offs.length}`, l);
          if (off + rs[d]! > s[d]!) throw this.err(`crop of size ${rs[d]} at offset ${off} exceeds axis ${d} of size ${s[d]}`, l);
          axes.push(d); starts.push(off); ends.push(off + rs[d]!); o[d] = rs[d]!;
        }
        b.node('Slice', l.name, [x, b.i64(`${l.name}.starts`, starts), b.i64(`${l.name}.ends`, ends), b.i64(`${l.name}.axes`, axes)], [this.output(l, 0, o)]);
        return;
      }
      case 'Softmax': {
        const x = this.input(l, 0);
        const s = this.shapeOf(x);
        const axis = this.axis(this.param(l, 'softmax_param').num('axis', 1), s.length, l);
        b.node('Softmax', l.name, [x], [this.output(l, 0, s)], { axis: ai(axis) });
        return;
      }
      case 'ArgMax': return this.argmax(l);
      case 'Permute': {
        const x = this.input(l, 0);
        const s = this.shapeOf(x);
        const order = this.param(l, 'permute_param').nums('order');
        const perm = [...order];
        for (let d = 0; d < s.length; d++) if (!perm.includes(d)) perm.push(d);
        if (perm.length !== s.length || perm.some((d) => d < 0 || d >= s.length)) throw this.err(`order [${order.join(',')}] does not fit rank ${s.length}`, l);
        b.node('Transpose', l.name, [x], [this.output(l, 0, perm.map((d) => s[d]!))], { perm: ais(perm) });
        return;
      }
      case 'Normalize': {
        const p = this.param(l, 'norm_param');
        const x = this.input(l, 0);
        const s = this.shapeOf(x);
        const across = p.bool('across_spatial', true);
        const shared = p.bool('channel_shared', true);
        const eps = p.num('eps', 1e-10);
        const axes = across ? s.map((_, i) => i).slice(1) : [1];
        const ss = b.op('ReduceSumSquare', `${l.name}/sumsq`, [x], { axes: ais(axes), keepdims: ai(1) });
        const norm = b.op('Sqrt', `${l.name}/norm`, [b.op('Add', `${l.name}/eps`, [ss, b.f32(`${l.name}.eps`, [], [eps])])]);
        const y = b.op('Div', `${l.name}/div`, [x, norm]);
        const [w] = this.blobs(l, 1);
        const c = shared ? 1 : s[1]!;
        const sc = b.const(`${l.name}.scale`, this.tensor(w!, shared ? [1] : [c, ...s.slice(2).map(() => 1)], l, 'scale'));
        b.node('Mul', l.name, [y, sc], [this.output(l, 0, s)]);
        return;
      }
      case 'PriorBox': {
        const f = this.input(l, 0);
        const img = this.input(l, 1);
        const fs = this.shapeOf(f), is = this.shapeOf(img);
        const pb = priorBoxes(this.param(l, 'prior_box_param'), fs[2]!, fs[3]!, is[2]!, is[3]!);
        const out = this.output(l, 0, [1, 2, pb.length / 2]);
        b.node('Identity', l.name, [b.f32(`${l.name}.priors`, [1, 2, pb.length / 2], pb)], [out]);
        return;
      }
      case 'DetectionOutput': {
        const p = this.param(l, 'detection_output_param');
        const xs = [0, 1, 2].map((k) => this.input(l, k));
        const nms = p.msg('nms_param') ?? new TextMessage();
        const attrs: A = {
          num_classes: ai(p.num('num_classes', 0)), share_location: ai(p.bool('share_location', true) ? 1 : 0),
          background_label_id: ai(p.num('background_label_id', 0)), nms_threshold: af(nms.num('nms_threshold', 0.3)),
          top_k: ai(nms.num('top_k', -1)), eta: af(nms.num('eta', 1)),
          code_type: ai(enumOf(p, 'code_type', ['', 'CORNER', 'CENTER_SIZE', 'CORNER_SIZE'], 1)),
          keep_top_k: ai(p.num('keep_top_k', -1)), variance_encoded_in_target: ai(p.bool('variance_encoded_in_target', false) ? 1 : 0),
          confidence_threshold: af(p.num('confidence_threshold', -Infinity)),
        };
        if (!(p.num('num_classes', 0) > 0)) throw this.err('detection_output_param.num_classes must be positive', l);
        this.usesQ8 = true;
        b.node('CaffeDetectionOutput', l.name, xs, [this.output(l, 0, [1, 1, -1, 7])], attrs, 'q8');
        return;
      }
      default:
        if (this.opts.identityTypes?.includes(l.type)) {
          const x = this.input(l, 0);
          b.node('Identity', l.name, [x], [this.output(l, 0, this.shapeOf(x))]);
          return;
        }
        throw this.err(`unsupported Caffe layer type '${l.type || '(none)'}' in layer '${l.name}'`, l);
    }
  }

  private axis(a: number, rank: number, l: Layer): number {
    const r = a < 0 ? a + rank : a;
    if (!(r >= 0 && r < rank)) throw this.err(`axis ${a} is out of range for a blob of rank ${rank}`, l);
    return r;
  }

  /** scale*x + shift without no-op nodes. */
  private affine(l: Layer, v: string, scale: number, shift: number): string {
    const b = this.b;
    if (scale !== 1) v = b.op('Mul', `${l.name}/scale`, [v, b.f32(`${l.name}.scale`, [], [scale])]);
    if (shift !== 0) v = b.op('Add', `${l.name}/shift`, [v, b.f32(`${l.name}.shift`, [], [shift])]);
    return v;
  }

  /** Bind the layer's top to value v via an Identity only when v is the raw input. */
  private finish(l: Layer, v: string, s: number[]): void {
    const g = this.model.graph;
    const last = g.nodes.at(-1);
    if (last && g.nodes.length > this.layerStart && last.outputs.length === 1 && last.outputs[0] === v) {
      const out = this.output(l, 0, s);
      last.outputs[0] = out;
      last.name = l.name;
    } else this.b.node('Identity', l.name, [v], [this.output(l, 0, s)]);
  }

  private reshapeTo(l: Layer, x: string, o: number[], keepLead: number): void {
    // Leading batch dim copied (0) so any batch size runs.
    const spec = o.map((d, i) => (i < keepLead ? 0 : d));
    this.b.node('Reshape', l.name, [x, this.b.i64(`${l.name}.shape`, spec)], [this.output(l, 0, o)]);
  }

  private spatial(p: TextMessage, name: string, hName: string, wName: string, dflt: number, nsp: number, l: Layer): number[] {
    const h = p.num(hName), w = p.num(wName);
    if (h !== undefined || w !== undefined) {
      if (nsp !== 2) throw this.err(`${hName}/${wName} need a 2D spatial blob`, l);
      return [h ?? dflt, w ?? dflt];
    }
    const v = p.nums(name);
    if (!v.length) return new Array(nsp).fill(dflt);
    if (v.length === 1) return new Array(nsp).fill(v[0]);
    if (v.length !== nsp) throw this.err(`${name} has ${v.length} values for ${nsp} spatial axes`, l);
    return v;
  }

  private conv(l: Layer, deconv: boolean): void {
    const b = this.b;
    const p = this.param(l, 'convolution_param');
    const x = this.input(l, 0);
    const s = this.shapeOf(x);
    if (s.length < 3) throw this.err(`expects a blob with spatial axes, got [${s.join(',')}]`, l);
    const nsp = s.length - 2;
    const k = this.spatial(p, 'kernel_size', 'kernel_h', 'kernel_w', 0, nsp, l);
    const st = this.spatial(p, 'stride', 'stride_h', 'stride_w', 1, nsp, l);
    const pad = this.spatial(p, 'pad', 'pad_h', 'pad_w', 0, nsp, l);
    const dil = this.spatial(p, 'dilation', '_', '_', 1, nsp, l);
    const group = p.num('group', 1);
    const cout = p.num('num_output', 0);
    const cin = s[1]!;
    if (k.some((v) => !(v > 0)) || st.some((v) => !(v > 0)) || dil.some((v) => !(v > 0)) || !(cout > 0) || !(group > 0) || cin % group || cout % group) {
      throw this.err(`invalid parameters: kernel [${k}], stride [${st}], dilation [${dil}], num_output ${cout}, group ${group}, channels ${cin}`, l);
    }
    const bl = this.blobs(l, 1);
    const wShape = deconv ? [cin, cout / group, ...k] : [cout, cin / group, ...k];
    const w = b.const(`${l.name}.weight`, this.tensor(bl[0]!, wShape, l, 'weight'));
    const ins = [x, w];
    if (p.bool('bias_term', true)) {
      if (!bl[1]) throw this.err('has bias_term but no bias blob', l);
      ins.push(b.const(`${l.name}.bias`, this.tensor(bl[1], [cout], l, 'bias')));
    }
    const o = [s[0]!, cout];
    for (let d = 0; d < nsp; d++) {
      const ek = dil[d]! * (k[d]! - 1) + 1;
      const z = deconv ? st[d]! * (s[d + 2]! - 1) + ek - 2 * pad[d]! : Math.floor((s[d + 2]! + 2 * pad[d]! - ek) / st[d]!) + 1;
      if (!(z > 0)) throw this.err(`output size ${z} along spatial axis ${d} is not positive (input [${s.join(',')}])`, l);
      o.push(z);
    }
    b.node(deconv ? 'ConvTranspose' : 'Conv', l.name, ins, [this.output(l, 0, o)], {
      kernel_shape: ais(k), strides: ais(st), pads: ais([...pad, ...pad]), dilations: ais(dil), group: ai(group),
    });
  }

  private innerProduct(l: Layer): void {
    const b = this.b;
    const p = this.param(l, 'inner_product_param');
    const x = this.input(l, 0);
    const s = this.shapeOf(x);
    const axis = this.axis(p.num('axis', 1), s.length, l);
    const n = p.num('num_output', 0);
    const kdim = s.slice(axis).reduce((a, c) => a * c, 1);
    const transpose = p.bool('transpose', false);
    const bl = this.blobs(l, 1);
    if (!(n > 0)) throw this.err('num_output must be positive', l);
    const w = b.const(`${l.name}.weight`, this.tensor(bl[0]!, transpose ? [kdim, n] : [n, kdim], l, 'weight'));
    const bias = p.bool('bias_term', true);
    if (bias && !bl[1]) throw this.err('has bias_term but no bias blob', l);
    const bv = bias ? b.const(`${l.name}.bias`, this.tensor(bl[1]!, [n], l, 'bias')) : undefined;
    const o = [...s.slice(0, axis), n];
    if (axis === 1) {
      const flat = s.length === 2 ? x : b.op('Flatten', `${l.name}/flatten`, [x], { axis: ai(1) });
      const ins = [flat, w];
      if (bv) ins.push(bv);
      b.node('Gemm', l.name, ins, [this.output(l, 0, o)], { transB: ai(transpose ? 0 : 1) });
      return;
    }
    const flat = b.op('Reshape', `${l.name}/reshape`, [x, b.i64(`${l.name}.shape`, [...s.slice(0, axis).map(() => 0), kdim])]);
    const wt = transpose ? w : b.op('Transpose', `${l.name}/wT`, [w], { perm: ais([1, 0]) });
    if (bv) {
      const mm = b.op('MatMul', `${l.name}/matmul`, [flat, wt]);
      b.node('Add', l.name, [mm, bv], [this.output(l, 0, o)]);
    } else b.node('MatMul', l.name, [flat, wt], [this.output(l, 0, o)]);
  }

  private pooling(l: Layer): void {
    const b = this.b;
    const p = this.param(l, 'pooling_param');
    const x = this.input(l, 0);
    const s = this.shapeOf(x);
    if (s.length !== 4) throw this.err(`expects a 4-D blob, got [${s.join(',')}]`, l);
    const method = enumOf(p, 'pool', ['MAX', 'AVE', 'STOCHASTIC'], 0);
    if (method === 2) throw this.err('STOCHASTIC pooling is training-only; at test time Caffe uses a weighted average that q8 does not implement', l);
    const H = s[2]!, W = s[3]!;
    if (p.bool('global_pooling', false)) {
      b.node(method === 0 ? 'GlobalMaxPool' : 'GlobalAveragePool', l.name, [x], [this.output(l, 0, [s[0]!, s[1]!, 1, 1])]);
      return;
    }
    const k = this.spatial(p, 'kernel_size', 'kernel_h', 'kernel_w', 0, 2, l);
    const st = this.spatial(p, 'stride', 'stride_h', 'stride_w', 1, 2, l);
    const pad = this.spatial(p, 'pad', 'pad_h', 'pad_w', 0, 2, l);
    if (k.some((v) => !(v > 0)) || st.some((v) => !(v > 0)) || pad.some((v, i) => v < 0 || v >= k[i]!)) {
      throw this.err(`invalid kernel [${k}], stride [${st}] or pad [${pad}]`, l);
    }
    const floor = enumOf(p, 'round_mode', ['CEIL', 'FLOOR'], 0) === 1;
    // Caffe: ceil((H + 2p - k) / s) + 1, minus one if the last window starts inside the padding only.
    const outDim = (n: number, d: number) => {
      let o = (floor ? Math.floor((n + 2 * pad[d]! - k[d]!) / st[d]!) : Math.ceil((n + 2 * pad[d]! - k[d]!) / st[d]!)) + 1;
      if (pad[d]! > 0 && (o - 1) * st[d]! >= n + pad[d]!) o--;
      return o;
    };
    const oh = outDim(H, 0), ow = outDim(W, 1);
    if (!(oh > 0 && ow > 0)) throw this.err(`output size ${oh}x${ow} is not positive for input ${H}x${W}`, l);
    // Extra end padding makes ONNX's floor rounding give Caffe's output size.
    const endH = Math.max(0, (oh - 1) * st[0]! + k[0]! - H - pad[0]!);
    const endW = Math.max(0, (ow - 1) * st[1]! + k[1]! - W - pad[1]!);
    const o = [s[0]!, s[1]!, oh, ow];
    if (method === 0) {
      b.node('MaxPool', l.name, [x], [this.output(l, 0, o)], { kernel_shape: ais(k), strides: ais(st), pads: ais([pad[0]!, pad[1]!, endH, endW]) });
      return;
    }
    // Caffe's average divides by the window clipped to the padded image [−pad, n+pad): pad with
    // real zeros, then exclude only the extra end padding from the count.
    let src = x;
    const eh = Math.max(0, endH - pad[0]!), ew = Math.max(0, endW - pad[1]!);
    if (pad[0]! || pad[1]!) {
      src = b.op('Pad', `${l.name}/pad`, [x, b.i64(`${l.name}.pads`, [0, 0, pad[0]!, pad[1]!, 0, 0, Math.min(pad[0]!, endH), Math.min(pad[1]!, endW)])]);
    }
    b.node('AveragePool', l.name, [src], [this.output(l, 0, o)], {
      kernel_shape: ais(k), strides: ais(st), pads: ais([0, 0, eh, ew]), count_include_pad: ai(0),
    });
  }

  private lrn(l: Layer): void {
    const b = this.b;
    const p = this.param(l, 'lrn_param');
    const x = this.input(l, 0);
    const s = this.shapeOf(x);
    const size = p.num('local_size', 5), alpha = p.num('alpha', 1), beta = p.num('beta', 0.75), k = p.num('k', 1);
    if (!(size > 0) || size % 2 === 0) throw this.err(`local_size must be a positive odd number, got ${size}`, l);
    const region = enumOf(p, 'norm_region', ['ACROSS_CHANNELS', 'WITHIN_CHANNEL'], 0);
    if (region === 0) {
      b.node('LRN', l.name, [x], [this.output(l, 0, s)], { size: ai(size), alpha: af(alpha), beta: af(beta), bias: af(k) });
      return;
    }
    // Within channel: x * (1 + alpha * avgpool(x², size, pad (size-1)/2, padding counted))^-beta
    const pad = (size - 1) / 2;
    const sq = b.op('Mul', `${l.name}/sq`, [x, x]);
    const avg = b.op('AveragePool', `${l.name}/avg`, [sq], { kernel_shape: ais([size, size]), pads: ais([pad, pad, pad, pad]), count_include_pad: ai(1) });
    const sc = this.affine(l, avg, alpha, 1);
    const pw = b.op('Pow', `${l.name}/pow`, [sc, b.f32(`${l.name}.negbeta`, [], [-beta])]);
    b.node('Mul', l.name, [x, pw], [this.output(l, 0, s)]);
  }

  private scale(l: Layer): void {
    const b = this.b;
    const isBias = l.type === 'Bias';
    const p = this.param(l, isBias ? 'bias_param' : 'scale_param');
    const x = this.input(l, 0);
    const s = this.shapeOf(x);
    const axis = this.axis(p.num('axis', 1), s.length, l);
    const bl = this.weights.get(l.name) ?? [];
    let factorShape: number[];
    let factor: string;
    let bk = 0;
    if (l.bottoms.length > 1) {
      const f = this.input(l, 1);
      factorShape = this.shapeOf(f);
      const full = [...factorShape, ...s.slice(axis + factorShape.length).map(() => 1)];
      factor = b.op('Reshape', `${l.name}/factor`, [f, b.i64(`${l.name}.fshape`, full)]);
    } else {
      const numAxes = p.num('num_axes', 1);
      factorShape = numAxes === -1 ? s.slice(axis) : s.slice(axis, axis + numAxes);
      const full = [...factorShape, ...s.slice(axis + factorShape.length).map(() => 1)];
      if (!bl[0]) throw this.err(`needs a ${isBias ? 'bias' : 'scale'} blob from the caffemodel`, l);
      factor = b.const(`${l.name}.${isBias ? 'bias' : 'scale'}`, this.tensor(bl[0], full, l, isBias ? 'bias' : 'scale'));
      bk = 1;
    }
    let v = b.op(isBias ? 'Add' : 'Mul', `${l.name}/${isBias ? 'add' : 'mul'}`, [x, factor]);
    if (!isBias && p.bool('bias_term', false)) {
      const bb = bl[bk];
      if (!bb) throw this.err('has bias_term but no bias blob', l);
      const full = [...factorShape, ...s.slice(axis + factorShape.length).map(() => 1)];
      v = b.op('Add', `${l.name}/bias`, [v, b.const(`${l.name}.bias`, this.tensor(bb, full, l, 'bias'))]);
    }
    this.finish(l, v, s);
  }

  private argmax(l: Layer): void {
    const b = this.b;
    const p = this.param(l, 'argmax_param');
    const x = this.input(l, 0);
    const s = this.shapeOf(x);
    const topK = p.num('top_k', 1);
    const outMax = p.bool('out_max_val', false);
    const kT = b.i64(`${l.name}.k`, [topK]);
    if (p.has('axis')) {
      const axis = this.axis(p.num('axis', 0), s.length, l);
      if (topK > s[axis]!) throw this.err(`top_k ${topK} exceeds axis size ${s[axis]}`, l);
      const vals = b.fresh(`${l.name}/values`), idx = b.fresh(`${l.name}/indices`);
      b.node('TopK', `${l.name}/topk`, [x, kT], [vals, idx], { axis: ai(axis) });
      const o = [...s];
      o[axis] = topK;
      if (outMax) this.finish(l, vals, o);
      else b.node('Cast', l.name, [idx], [this.output(l, 0, o)], { to: ai(1) });
      return;
    }
    const inner = s.slice(1).reduce((a, c) => a * c, 1);
    if (topK > inner) throw this.err(`top_k ${topK} exceeds ${inner} values per item`, l);
    const flat = b.op('Flatten', `${l.name}/flatten`, [x], { axis: ai(1) });
    const vals = b.fresh(`${l.name}/values`), idx = b.fresh(`${l.name}/indices`);
    b.node('TopK', `${l.name}/topk`, [flat, kT], [vals, idx], { axis: ai(1) });
    const fi = b.op('Cast', `${l.name}/cast`, [idx], { to: ai(1) });
    const ax1 = b.i64(`${l.name}.axis1`, [1]);
    const ui = b.op('Unsqueeze', `${l.name}/unsq_i`, [fi, ax1]);
    if (!outMax) { this.finish(l, ui, [s[0]!, 1, topK]); return; }
    const uv = b.op('Unsqueeze', `${l.name}/unsq_v`, [vals, ax1]);
    b.node('Concat', l.name, [ui, uv], [this.output(l, 0, [s[0]!, 2, topK])], { axis: ai(1) });
  }
}

