/**
 * TensorFlow op semantics lowered to ONNX operators (NHWC handled with Transposes around NCHW ops).
 * Shared by the GraphDef loader (src/formats/tensorflow) and the TF.js graph-model loader
 * (src/formats/tfjs): both parse their files into TfNodes and call lowerTensorFlowNodes, so neither
 * loader imports the other.
 */
import type { DType } from '../../core/dtype.js';
import { Q8Error } from '../../core/errors.js';
import { emptyGraph, type AttrValue, type Dim, type Graph, type Model, type Node } from '../../graph/ir.js';
import { Tensor } from '../../tensor/tensor.js';
import { transpose } from '../../ops/tensor-helpers.js';
import { tfDtype, type TfAttr, type TfNode } from './node.js';

export interface TensorFlowOptions {
  /** Graph input names (Placeholders or any tensor to feed instead of computing it). Default: the Placeholders the outputs need. */
  inputs?: string[];
  /** Output tensor names ("node" or "node:1"). Default: every node nobody consumes. */
  outputs?: string[];
  /** Override input shapes (e.g. unknown dims in Placeholders). */
  inputShapes?: Record<string, number[]>;
  /** File name for error messages. */
  file?: string;
}

/** TensorFlow ops q8 lowers (the README table is generated from this). */
export const TENSORFLOW_OPS: readonly string[] = [
  'Placeholder', 'PlaceholderWithDefault', 'Const', 'Identity', 'StopGradient', 'Snapshot', 'NoOp', 'MatMul', 'BatchMatMul', 'BatchMatMulV2',
  'BiasAdd', 'Add', 'AddV2', 'AddN', 'Sub', 'Mul', 'RealDiv', 'Div', 'Maximum', 'Minimum', 'SquaredDifference', 'Pow', 'Neg', 'Abs',
  'Exp', 'Log', 'Floor', 'Ceil', 'Conv2D', 'DepthwiseConv2dNative', 'Conv2DBackpropInput', 'MaxPool', 'AvgPool', 'Relu',
  'Relu6', 'LeakyRelu', 'Elu', 'Selu', 'Softplus', 'Sigmoid', 'Tanh', 'Softmax', 'LogSoftmax', 'FusedBatchNorm', 'FusedBatchNormV2',
  'FusedBatchNormV3', 'Reshape', 'Squeeze', 'ExpandDims', 'ConcatV2', 'Concat', 'Pad', 'PadV2', 'MirrorPad', 'Mean', 'Sum', 'Max', 'Min',
  'Prod', 'Transpose', 'Shape', 'StridedSlice', 'Slice', 'Pack', 'Cast', 'Rsqrt', 'Square', 'Sqrt', 'Reciprocal', 'ResizeBilinear',
  'ResizeNearestNeighbor', 'ArgMax', 'ArgMin', 'Fill', 'Tile', 'GatherV2', 'Greater', 'Less', 'Equal', 'Select', 'SelectV2', 'Erf',
  '_FusedConv2D', 'FusedDepthwiseConv2dNative', '_FusedMatMul',
];

const INT64_MAX = 9223372036854775807n;
const INT64_MIN = -9223372036854775808n;

/**
 * Lower already-parsed TF NodeDefs (shared with TF.js graph models, whose topology is a GraphDef in
 * JSON; constants may also come as `extraConsts`, e.g. TF.js weights).
 */
export function lowerTensorFlowNodes(nodes: TfNode[], opts: TensorFlowOptions = {}): Model {
  if (!nodes.length) throw new Q8Error('the TensorFlow graph has no nodes', { file: opts.file });
  return new TfLowering(nodes, opts).run();
}



const parseRef = (s: string): { node: string; port: number; control: boolean } => {
  if (s.startsWith('^')) return { node: s.slice(1), port: 0, control: true };
  const m = /^(.*):(\d+)$/.exec(s);
  return m ? { node: m[1]!, port: Number(m[2]), control: false } : { node: s, port: 0, control: false };
};
const valueName = (node: string, port: number) => (port === 0 ? node : `${node}:${port}`);

const ai = (v: number): AttrValue => ({ type: 'int', value: v });
const af = (v: number): AttrValue => ({ type: 'float', value: v });
const ais = (v: number[]): AttrValue => ({ type: 'ints', value: v });
const as = (v: string): AttrValue => ({ type: 'string', value: v });

const ONNX_DTYPE: Partial<Record<DType, number>> = {
  float32: 1, uint8: 2, int8: 3, uint16: 4, int16: 5, int32: 6, int64: 7, string: 8, bool: 9, float16: 10, float64: 11, uint32: 12, uint64: 13, bfloat16: 16,
};

class TfLowering {
  private readonly byName = new Map<string, TfNode>();
  private readonly g: Graph = emptyGraph('tensorflow');
  private readonly consts = new Map<string, Tensor>(); // value name → constant
  private readonly used = new Set<string>();
  private readonly file: string | undefined;
  private cur: TfNode | undefined;

  constructor(private readonly nodes: TfNode[], private readonly opts: TensorFlowOptions) {
    this.file = opts.file;
    for (const n of nodes) {
      if (this.byName.has(n.name)) throw new Q8Error(`node '${n.name}' is defined twice`, { file: this.file });
      this.byName.set(n.name, n);
      this.used.add(n.name);
    }
  }

  private err(detail: string, n = this.cur): Q8Error {
    return new Q8Error(detail, { file: this.file, node: n?.name, opType: n?.op });
  }

  run(): Model {
    const consumed = new Set<string>();
    for (const n of this.nodes) for (const i of n.inputs) consumed.add(parseRef(i).node);
    const outputs = this.opts.outputs?.length ? this.opts.outputs
      : this.nodes.filter((n) => !consumed.has(n.name) && !['NoOp', 'Assert', 'SaveV2', 'RestoreV2', 'Const', 'Placeholder'].includes(n.op)).map((n) => n.name);
    if (!outputs.length) throw new Q8Error('no outputs: name them (tfOutputs)', { file: this.file });
    const inputNames = new Set((this.opts.inputs ?? []).map((i) => valueName(parseRef(i).node, parseRef(i).port)));
    for (const i of inputNames) if (!this.byName.has(parseRef(i).node)) throw new Q8Error(`input '${i}' is not a node of the graph`, { file: this.file });
    for (const o of outputs) if (!this.byName.has(parseRef(o).node)) throw new Q8Error(`output '${o}' is not a node of the graph`, { file: this.file });

    // Prune: nodes the outputs need through data edges, stopping at the inputs. Iterative DFS in post-order.
    const order: TfNode[] = [];
    const state = new Map<string, number>(); // 1 visiting, 2 done
    for (const o of outputs) {
      const stack: { n: TfNode; k: number }[] = [];
      const start = this.byName.get(parseRef(o).node)!;
      if (state.get(start.name) === 2) continue;
      stack.push({ n: start, k: 0 });
      state.set(start.name, 1);
      while (stack.length) {
        const top = stack[stack.length - 1]!;
        const isInput = inputNames.has(top.n.name);
        const ins = isInput ? [] : top.n.inputs.map(parseRef).filter((r) => !r.control && !inputNames.has(valueName(r.node, r.port)));
        if (top.k < ins.length) {
          const r = ins[top.k++]!;
          const dep = this.byName.get(r.node);
          if (!dep) throw this.err(`input '${r.node}' is not a node of the graph`, top.n);
          const st = state.get(dep.name);
          if (st === 1) throw this.err(`the graph has a cycle through '${dep.name}' (control flow is not supported)`, top.n);
          if (st !== 2) { state.set(dep.name, 1); stack.push({ n: dep, k: 0 }); }
        } else {
          stack.pop();
          state.set(top.n.name, 2);
          order.push(top.n);
        }
      }
    }
    // Graph inputs: named inputs first (in the order given), then Placeholders reached.
    for (const i of inputNames) this.addInput(i, this.byName.get(parseRef(i).node)!);
    for (const n of order) {
      if (inputNames.has(n.name)) continue;
      this.cur = n;
      try {
        if (n.op === 'Placeholder') this.addInput(n.name, n);
        else this.lower(n);
      } catch (e) {
        if (e instanceof Q8Error) throw e.withContext({ file: this.file, node: n.name, opType: n.op });
        throw this.err(e instanceof Error ? e.message : String(e), n);
      }
    }
    this.cur = undefined;
    this.g.outputs = outputs.map((o) => {
      const r = parseRef(o);
      const name = valueName(r.node, r.port);
      if (this.consts.has(name) && !this.g.nodes.some((n) => n.outputs.includes(name))) {
        this.g.nodes.push({ name: `${name}/out`, opType: 'Identity', domain: '', inputs: [this.fresh(`${name}/const`, this.consts.get(name)!)], outputs: [name], attrs: {} });
      }
      return { name };
    });
    return {
      graph: this.g, opsets: new Map([['', 13]]), irVersion: 8, producerName: 'q8-tensorflow', producerVersion: '0.1.0',
      metadata: new Map([['source_format', 'tensorflow']]), source: this.file,
    };
  }

  private addInput(name: string, n: TfNode): void {
    const dt = n.attrs.get('dtype')?.type ?? n.attrs.get('T')?.type ?? 1;
    const dtype = tfDtype(dt, `input '${name}'`);
    const override = this.opts.inputShapes?.[name] ?? this.opts.inputShapes?.[n.name];
    // An empty shape on a Placeholder is how old TF wrote "unknown": treat it as unknown, not scalar.
    const sa = n.attrs.get('shape')?.shape?.dims;
    const shapeAttr = sa && sa.length ? sa : undefined;
    const shape: Dim[] | undefined = override ?? shapeAttr?.map((d, k) => (d < 0 ? `${n.name.replace(/[^A-Za-z0-9_]/g, '_')}_d${k}` : d));
    if (dtype === 'int32') {
      // Fed as int32, carried as int64.
      const raw = `${name}`;
      const inner = this.freshName(`${name}/int64`);
      this.g.inputs.push({ name: raw, dtype: 'int32', shape });
      this.node('Cast', [raw], [inner], { to: ai(7) }, `${name}/cast`);
      this.alias.set(raw, inner);
    } else this.g.inputs.push({ name, dtype, shape });
  }

  /** TF value names whose ONNX value is under another name (int32 inputs cast to int64). */
  private readonly alias = new Map<string, string>();

  private freshName(base: string): string {
    let n = base;
    for (let k = 1; this.used.has(n); k++) n = `${base}_${k}`;
    this.used.add(n);
    return n;
  }

  private fresh(base: string, t: Tensor): string {
    const n = this.freshName(base);
    this.g.initializers.set(n, t);
    this.consts.set(n, t);
    return n;
  }

  private i64(base: string, v: (number | bigint)[]): string {
    return this.fresh(base, Tensor.from('int64', [v.length], v.map((x) => BigInt(x))));
  }

  private node(op: string, inputs: string[], outputs: string[], attrs: Record<string, AttrValue> = {}, name?: string): Node {
    const n: Node = { name: name ?? outputs[0] ?? op, opType: op, domain: '', inputs, outputs, attrs };
    this.g.nodes.push(n);
    return n;
  }

  private tmp(op: string, inputs: string[], attrs: Record<string, AttrValue> = {}, base?: string): string {
    const o = this.freshName(`${base ?? this.cur?.name ?? 'tmp'}/${op}`);
    this.node(op, inputs, [o], attrs);
    return o;
  }

  private in(n: TfNode, k: number): string {
    const data = n.inputs.filter((i) => !i.startsWith('^'));
    const ref = data[k];
    if (ref === undefined) throw this.err(`needs at least ${k + 1} inputs, has ${data.length}`, n);
    const r = parseRef(ref);
    const v = valueName(r.node, r.port);
    return this.alias.get(v) ?? v;
  }

  private nIn(n: TfNode): number { return n.inputs.filter((i) => !i.startsWith('^')).length; }

  private constOf(v: string, what: string): Tensor {
    const t = this.consts.get(v);
    if (!t) throw this.err(`${what} must be a constant (input '${v}' is computed at run time)`);
    return t;
  }

  private constInts(v: string, what: string): number[] { return this.constOf(v, what).toNumbers(); }

  private attrI(n: TfNode, k: string, d: number): number { return n.attrs.get(k)?.i ?? d; }
  private attrF(n: TfNode, k: string, d: number): number { return n.attrs.get(k)?.f ?? d; }
  private attrB(n: TfNode, k: string, d: boolean): boolean { return n.attrs.get(k)?.b ?? d; }
  private attrS(n: TfNode, k: string, d: string): string {
    const s = n.attrs.get(k)?.s;
    return s ? new TextDecoder().decode(s) : d;
  }
  private attrInts(n: TfNode, k: string): number[] | undefined { return n.attrs.get(k)?.list?.i; }

  private nhwc(n: TfNode): boolean {
    const f = this.attrS(n, 'data_format', 'NHWC');
    if (f !== 'NHWC' && f !== 'NCHW') throw this.err(`data_format ${f} is not supported`, n);
    return f === 'NHWC';
  }

  private toNCHW(x: string, nhwc: boolean): string { return nhwc ? this.tmp('Transpose', [x], { perm: ais([0, 3, 1, 2]) }, `${this.cur!.name}/to_nchw`) : x; }

  /** Emit an NCHW op between layout transposes; its final output is the TF value `out`. */
  private nchwOp(op: string, ins: string[], out: string, attrs: Record<string, AttrValue>, nhwc: boolean): void {
    const x = this.toNCHW(ins[0]!, nhwc);
    if (!nhwc) { this.node(op, [x, ...ins.slice(1)], [out], attrs, this.cur!.name); return; }
    const y = this.tmp(op, [x, ...ins.slice(1)], attrs);
    this.node('Transpose', [y], [out], { perm: ais([0, 2, 3, 1]) }, `${out}/to_nhwc`);
  }

  private hw(n: TfNode, k: string, nhwc: boolean): number[] {
    const v = this.attrInts(n, k) ?? [1, 1, 1, 1];
    if (v.length !== 4) throw this.err(`attribute ${k} should have 4 values, has ${v.length}`, n);
    return nhwc ? [v[1]!, v[2]!] : [v[2]!, v[3]!];
  }

  private padding(n: TfNode): Record<string, AttrValue> {
    const p = this.attrS(n, 'padding', 'VALID');
    if (p === 'SAME') return { auto_pad: as('SAME_UPPER') };
    if (p === 'VALID') return { pads: ais([0, 0, 0, 0]) };
    if (p === 'EXPLICIT') {
      const e = this.attrInts(n, 'explicit_paddings') ?? [];
      if (e.length !== 8) throw this.err('explicit_paddings needs 8 values', n);
      const nhwc = this.nhwc(n);
      const [t, bm, l, r] = nhwc ? [e[2]!, e[3]!, e[4]!, e[5]!] : [e[4]!, e[5]!, e[6]!, e[7]!];
      return { pads: ais([t, l, bm, r]) };
    }
    throw this.err(`padding ${p} is not supported`, n);
  }

  private simple(n: TfNode, op: string, attrs: Record<string, AttrValue> = {}): void {
    const ins = Array.from({ length: this.nIn(n) }, (_, k) => this.in(n, k));
    this.node(op, ins, [n.name], attrs, n.name);
  }

  private lower(n: TfNode): void {
    const out = n.name;
    switch (n.op) {
      case 'Const': {
        const t = n.attrs.get('value')?.tensor;
        if (!t) throw this.err('Const has no value', n);
        this.g.initializers.set(out, t);
        this.consts.set(out, t);
        return;
      }
      case 'Identity': case 'StopGradient': case 'Snapshot': case 'PlaceholderWithDefault': case 'PreventGradient': {
        const x = this.in(n, 0);
        const c = this.consts.get(x);
        if (c) { this.g.initializers.set(out, c); this.consts.set(out, c); return; }
        return this.simple(n, 'Identity');
      }
      case 'NoOp': return;
      case 'MatMul': {
        let a = this.in(n, 0), b = this.in(n, 1);
        if (this.attrB(n, 'transpose_a', false)) a = this.tmp('Transpose', [a], { perm: ais([1, 0]) });
        if (this.attrB(n, 'transpose_b', false)) b = this.transposeConst(b, [1, 0]);
        this.node('MatMul', [a, b], [out]);
        return;
      }
      case 'BatchMatMul': case 'BatchMatMulV2': case 'BatchMatMulV3': {
        const adjX = this.attrB(n, 'adj_x', false), adjY = this.attrB(n, 'adj_y', false);
        const a = this.in(n, 0), b = this.in(n, 1);
        if (!adjX && !adjY) { this.node('MatMul', [a, b], [out]); return; }
        this.node('Einsum', [a, b], [out], { equation: as(`...${adjX ? 'ji' : 'ij'},...${adjY ? 'kj' : 'jk'}->...ik`) });
        return;
      }
      case 'BiasAdd': case 'BiasAddV1': {
        const x = this.in(n, 0);
        let b = this.in(n, 1);
        if (!this.nhwc(n)) {
          const bt = this.constOf(b, 'bias of an NCHW BiasAdd');
          b = this.fresh(`${out}/bias`, bt.reshape([bt.size, 1, 1]));
        }
        this.node('Add', [x, b], [out]);
        return;
      }
      case 'Add': case 'AddV2': return this.simple(n, 'Add');
      case 'AddN': return this.simple(n, 'Sum');
      case 'Sub': return this.simple(n, 'Sub');
      case 'Mul': return this.simple(n, 'Mul');
      case 'RealDiv': case 'Div': return this.simple(n, 'Div');
      case 'Maximum': return this.simple(n, 'Max');
      case 'Minimum': return this.simple(n, 'Min');
      case 'Pow': return this.simple(n, 'Pow');
      case 'Greater': return this.simple(n, 'Greater');
      case 'Less': return this.simple(n, 'Less');
      case 'Equal': return this.simple(n, 'Equal');
      case 'Select': case 'SelectV2': return this.simple(n, 'Where');
      case 'SquaredDifference': {
        const d = this.tmp('Sub', [this.in(n, 0), this.in(n, 1)]);
        this.node('Mul', [d, d], [out]);
        return;
      }
      case 'Neg': case 'Abs': case 'Exp': case 'Log': case 'Floor': case 'Ceil': case 'Sqrt': case 'Relu': case 'Sigmoid':
      case 'Tanh': case 'Elu': case 'Selu': case 'Softplus': case 'Reciprocal': case 'Erf':
        return this.simple(n, n.op === 'Reciprocal' ? 'Reciprocal' : n.op);
      case 'Square': { const x = this.in(n, 0); this.node('Mul', [x, x], [out]); return; }
      case 'Rsqrt': { this.node('Reciprocal', [this.tmp('Sqrt', [this.in(n, 0)])], [out]); return; }
      case 'Relu6': {
        this.node('Clip', [this.in(n, 0), this.fresh(`${out}/min`, Tensor.scalar('float32', 0)), this.fresh(`${out}/max`, Tensor.scalar('float32', 6))], [out]);
        return;
      }
      case 'LeakyRelu': return this.simple(n, 'LeakyRelu', { alpha: af(this.attrF(n, 'alpha', 0.2)) });
      case 'Softmax': return this.simple(n, 'Softmax', { axis: ai(-1) });
      case 'LogSoftmax': return this.simple(n, 'LogSoftmax', { axis: ai(-1) });
      case '_FusedConv2D': case 'FusedDepthwiseConv2dNative': case '_FusedMatMul': {
        // TF grappler / tfjs-converter fusions: the op, then fused_ops applied in order to extra args.
        const base = this.freshName(`${out}/fused_base`);
        const plain = n.op === '_FusedConv2D' ? 'Conv2D' : n.op === '_FusedMatMul' ? 'MatMul' : 'DepthwiseConv2dNative';
        this.lower({ ...n, op: plain, name: base, inputs: n.inputs.filter((i) => !i.startsWith('^')).slice(0, 2) });
        this.fused(n, base, out);
        return;
      }
      case 'Conv2D': case 'DepthwiseConv2dNative': {
        const nhwc = this.nhwc(n);
        const x = this.in(n, 0);
        const f = this.constOf(this.in(n, 1), 'the filter');
        if (f.rank !== 4) throw this.err(`filter should be 4-D, got [${f.shape.join(',')}]`, n);
        const [kh, kw, ci, co] = f.shape as [number, number, number, number];
        let w: Tensor;
        let group = 1;
        if (n.op === 'Conv2D') w = transpose(f, [3, 2, 0, 1]); // HWIO → OIHW
        else {
          // [H, W, C, M] → [C*M, 1, H, W], output channel c*M+m, group C.
          w = transpose(f, [2, 3, 0, 1]).reshape([ci * co, 1, kh, kw]);
          group = ci;
        }
        const inC = this.staticChannels(x, nhwc);
        if (n.op === 'Conv2D' && inC !== undefined && inC !== ci) {
          if (inC % ci) throw this.err(`input has ${inC} channels, filter expects ${ci}`, n);
          group = inC / ci;
        }
        const attrs = { strides: ais(this.hw(n, 'strides', nhwc)), dilations: ais(this.hw(n, 'dilations', nhwc)), group: ai(group), kernel_shape: ais([kh, kw]), ...this.padding(n) };
        this.nchwOp('Conv', [x, this.fresh(`${out}/weight`, w)], out, attrs, nhwc);
        return;
      }
      case 'Conv2DBackpropInput': {
        const nhwc = this.nhwc(n);
        const sizes = this.constInts(this.in(n, 0), 'input_sizes');
        const f = this.constOf(this.in(n, 1), 'the filter');
        const x = this.in(n, 2);
        if (f.rank !== 4 || sizes.length !== 4) throw this.err('needs a 4-D filter and 4 input_sizes', n);
        const [kh, kw] = f.shape as [number, number, number, number];
        const w = transpose(f, [3, 2, 0, 1]); // [H, W, out, in] → [in, out, H, W]
        const st = this.hw(n, 'strides', nhwc), dl = this.hw(n, 'dilations', nhwc);
        const [H, W] = nhwc ? [sizes[1]!, sizes[2]!] : [sizes[2]!, sizes[3]!];
        const p = this.attrS(n, 'padding', 'VALID');
        const pads = [0, 0, 0, 0], outPad = [0, 0];
        [H, W].forEach((size, d) => {
          const k = dl[d]! * ((d ? kw : kh) - 1) + 1;
          const s = st[d]!;
          const inb = p === 'SAME' ? Math.ceil(size / s) : Math.floor((size - k) / s) + 1;
          const total = p === 'SAME' ? Math.max((inb - 1) * s + k - size, 0) : 0;
          const before = Math.floor(total / 2);
          pads[d] = before;
          pads[d + 2] = total - before;
          outPad[d] = size - ((inb - 1) * s + k - total);
        });
        if (outPad.some((v) => v < 0 || v >= Math.max(...st))) throw this.err('input_sizes do not fit the strides and padding', n);
        this.nchwOp('ConvTranspose', [x, this.fresh(`${out}/weight`, w)], out, {
          strides: ais(st), dilations: ais(dl), kernel_shape: ais([kh, kw]), pads: ais(pads), output_padding: ais(outPad),
        }, nhwc);
        return;
      }
      case 'MaxPool': case 'AvgPool': {
        const nhwc = this.nhwc(n);
        const attrs: Record<string, AttrValue> = { kernel_shape: ais(this.hw(n, 'ksize', nhwc)), strides: ais(this.hw(n, 'strides', nhwc)), ...this.padding(n) };
        if (n.op === 'AvgPool') attrs.count_include_pad = ai(0);
        this.nchwOp(n.op === 'MaxPool' ? 'MaxPool' : 'AveragePool', [this.in(n, 0)], out, attrs, nhwc);
        return;
      }
      case 'FusedBatchNorm': case 'FusedBatchNormV2': case 'FusedBatchNormV3': {
        if (this.attrB(n, 'is_training', false)) {
          // Frozen graphs sometimes keep is_training=true; then TF normalises with batch statistics.
          throw this.err('is_training=true (batch statistics) is not supported; freeze the graph for inference', n);
        }
        const nhwc = this.nhwc(n);
        const eps = this.attrF(n, 'epsilon', 1e-4);
        const [sc, of, mn, vr] = [1, 2, 3, 4].map((k) => this.constOf(this.in(n, k), 'scale/offset/mean/variance').toFloat32());
        const c = sc!.length;
        const mul = new Float32Array(c), add = new Float32Array(c);
        for (let i = 0; i < c; i++) {
          mul[i] = sc![i]! / Math.sqrt(vr![i]! + eps);
          add[i] = of![i]! - mn![i]! * mul[i]!;
        }
        const shape = nhwc ? [c] : [c, 1, 1];
        const y = this.tmp('Mul', [this.in(n, 0), this.fresh(`${out}/mul`, Tensor.from('float32', shape, mul))]);
        this.node('Add', [y, this.fresh(`${out}/add`, Tensor.from('float32', shape, add))], [out]);
        return;
      }
      case 'Reshape': return this.simple(n, 'Reshape');
      case 'Squeeze': {
        const dims = this.attrInts(n, 'squeeze_dims') ?? this.attrInts(n, 'axis') ?? [];
        if (!dims.length) { this.node('Squeeze', [this.in(n, 0)], [out]); return; }
        this.node('Squeeze', [this.in(n, 0), this.i64(`${out}/axes`, dims)], [out]);
        return;
      }
      case 'ExpandDims': {
        const d = this.in(n, 1);
        const axes = this.consts.has(d) ? this.i64(`${out}/axes`, this.constInts(d, 'dim')) : this.tmp('Reshape', [d, this.i64(`${out}/one`, [1])]);
        this.node('Unsqueeze', [this.in(n, 0), axes], [out]);
        return;
      }
      case 'ConcatV2': case 'Concat': {
        const k = this.nIn(n);
        const axisIn = n.op === 'ConcatV2' ? k - 1 : 0;
        const axis = this.constInts(this.in(n, axisIn), 'the concat axis')[0]!;
        const vals = Array.from({ length: k - 1 }, (_, i) => this.in(n, n.op === 'ConcatV2' ? i : i + 1));
        this.node('Concat', vals, [out], { axis: ai(axis) });
        return;
      }
      case 'Pad': case 'PadV2': case 'MirrorPad': {
        const p = this.in(n, 1);
        let pads: string;
        if (this.consts.has(p)) {
          const v = this.constInts(p, 'paddings');
          const r = v.length / 2;
          pads = this.i64(`${out}/pads`, [...Array.from({ length: r }, (_, i) => v[2 * i]!), ...Array.from({ length: r }, (_, i) => v[2 * i + 1]!)]);
        } else pads = this.tmp('Reshape', [this.tmp('Transpose', [p], { perm: ais([1, 0]) }), this.i64(`${out}/flat`, [-1])]);
        const ins = [this.in(n, 0), pads];
        if (n.op === 'PadV2') ins.push(this.in(n, 2));
        const attrs: Record<string, AttrValue> = {};
        if (n.op === 'MirrorPad') {
          const mode = this.attrS(n, 'mode', 'REFLECT');
          if (mode !== 'REFLECT') throw this.err(`MirrorPad mode ${mode} is not supported (only REFLECT)`, n);
          attrs.mode = as('reflect');
        }
        this.node('Pad', ins, [out], attrs);
        return;
      }
      case 'Mean': case 'Sum': case 'Max': case 'Min': case 'Prod': {
        const keep = this.attrB(n, 'keep_dims', false) ? 1 : 0;
        const axes = this.constInts(this.in(n, 1), 'reduction_indices');
        const op = { Mean: 'ReduceMean', Sum: 'ReduceSum', Max: 'ReduceMax', Min: 'ReduceMin', Prod: 'ReduceProd' }[n.op]!;
        if (!axes.length) { this.node('Identity', [this.in(n, 0)], [out]); return; }
        if (op === 'ReduceSum') this.node(op, [this.in(n, 0), this.i64(`${out}/axes`, axes)], [out], { keepdims: ai(keep) });
        else this.node(op, [this.in(n, 0)], [out], { axes: ais(axes), keepdims: ai(keep) });
        return;
      }
      case 'Transpose': {
        const perm = this.constInts(this.in(n, 1), 'perm');
        this.node('Transpose', [this.in(n, 0)], [out], { perm: ais(perm) });
        return;
      }
      case 'Shape': return this.simple(n, 'Shape');
      case 'Slice': {
        const begin = this.in(n, 1), size = this.in(n, 2);
        const b = this.constInts(begin, 'begin'), s = this.constInts(size, 'size');
        const ends = s.map((z, i) => (z === -1 ? INT64_MAX : BigInt(b[i]! + z)));
        this.node('Slice', [this.in(n, 0), this.i64(`${out}/starts`, b), this.i64(`${out}/ends`, ends)], [out]);
        return;
      }
      case 'StridedSlice': return this.stridedSlice(n);
      case 'Pack': {
        const axis = this.attrI(n, 'axis', 0);
        const k = this.nIn(n);
        const ax = this.i64(`${out}/axis`, [axis]);
        const parts = Array.from({ length: k }, (_, i) => this.tmp('Unsqueeze', [this.in(n, i), ax]));
        this.node('Concat', parts, [out], { axis: ai(axis) });
        return;
      }
      case 'Cast': {
        const to = tfDtype(n.attrs.get('DstT')?.type ?? 1, 'Cast');
        this.node('Cast', [this.in(n, 0)], [out], { to: ai(ONNX_DTYPE[to === 'int32' ? 'int64' : to]!) });
        return;
      }
      case 'ResizeBilinear': case 'ResizeNearestNeighbor': {
        const align = this.attrB(n, 'align_corners', false), half = this.attrB(n, 'half_pixel_centers', false);
        const bil = n.op === 'ResizeBilinear';
        const x = this.tmp('Transpose', [this.in(n, 0)], { perm: ais([0, 3, 1, 2]) });
        const nc = this.tmp('Slice', [this.tmp('Shape', [x]), this.i64(`${out}/s0`, [0]), this.i64(`${out}/s2`, [2])]);
        const sizes = this.tmp('Concat', [nc, this.in(n, 1)], { axis: ai(0) });
        const attrs: Record<string, AttrValue> = {
          mode: as(bil ? 'linear' : 'nearest'),
          coordinate_transformation_mode: as(align ? 'align_corners' : half ? (bil ? 'half_pixel' : 'tf_half_pixel_for_nn') : 'asymmetric'),
        };
        if (!bil) attrs.nearest_mode = as(align ? 'round_prefer_ceil' : 'floor');
        const y = this.tmp('Resize', [x, '', '', sizes], attrs);
        this.node('Transpose', [y], [out], { perm: ais([0, 2, 3, 1]) });
        return;
      }
      case 'ArgMax': case 'ArgMin': {
        const axis = this.constInts(this.in(n, 1), 'dimension')[0]!;
        this.node(n.op, [this.in(n, 0)], [out], { axis: ai(axis), keepdims: ai(0) });
        return;
      }
      case 'Fill': {
        const v = this.constOf(this.in(n, 1), 'the fill value');
        this.node('ConstantOfShape', [this.in(n, 0)], [out], { value: { type: 'tensor', value: v.reshape([1]) } });
        return;
      }
      case 'Tile': return this.simple(n, 'Tile');
      case 'GatherV2': {
        const axis = this.constInts(this.in(n, 2), 'axis')[0]!;
        this.node('Gather', [this.in(n, 0), this.in(n, 1)], [out], { axis: ai(axis) });
        return;
      }
      default:
        throw this.err(`unsupported TensorFlow op '${n.op}' in node '${n.name}'`, n);
    }
  }

  private fused(n: TfNode, v: string, out: string): void {
    const ops = (n.attrs.get('fused_ops')?.list?.s ?? []).map((b) => new TextDecoder().decode(b));
    const nhwc = n.op === '_FusedMatMul' || this.nhwc(n);
    let arg = 2;
    const next = () => this.in(n, arg++);
    for (const op of ops) {
      switch (op) {
        case 'BiasAdd': {
          let b = next();
          if (!nhwc) { const bt = this.constOf(b, 'the fused bias'); b = this.fresh(`${out}/bias`, bt.reshape([bt.size, 1, 1])); }
          v = this.tmp('Add', [v, b], {}, out);
          break;
        }
        case 'FusedBatchNorm': {
          const eps = this.attrF(n, 'epsilon', 1e-4);
          const [sc, of, mn, vr] = [next(), next(), next(), next()].map((x) => this.constOf(x, 'fused batch-norm parameters').toFloat32());
          const c = sc!.length;
          const mul = new Float32Array(c), add = new Float32Array(c);
          for (let i = 0; i < c; i++) { mul[i] = sc![i]! / Math.sqrt(vr![i]! + eps); add[i] = of![i]! - mn![i]! * mul[i]!; }
          const shape = nhwc ? [c] : [c, 1, 1];
          v = this.tmp('Mul', [v, this.fresh(`${out}/bn_mul`, Tensor.from('float32', shape, mul))], {}, out);
          v = this.tmp('Add', [v, this.fresh(`${out}/bn_add`, Tensor.from('float32', shape, add))], {}, out);
          break;
        }
        case 'Relu': case 'Elu': case 'Sigmoid': case 'Tanh': v = this.tmp(op, [v], {}, out); break;
        case 'Relu6':
          v = this.tmp('Clip', [v, this.fresh(`${out}/min`, Tensor.scalar('float32', 0)), this.fresh(`${out}/max`, Tensor.scalar('float32', 6))], {}, out);
          break;
        case 'LeakyRelu': v = this.tmp('LeakyRelu', [v], { alpha: af(this.attrF(n, 'leakyrelu_alpha', 0.2)) }, out); break;
        case 'Prelu': {
          let a = next();
          if (!nhwc) { const at = this.constOf(a, 'the fused PReLU alpha'); a = this.fresh(`${out}/alpha`, at.reshape([at.size, 1, 1])); }
          v = this.tmp('PRelu', [v, a], {}, out);
          break;
        }
        default: throw this.err(`fused op '${op}' is not supported`, n);
      }
    }
    this.node('Identity', [v], [out], {}, n.name);
  }

  /** Channel count of x when known statically (from a Placeholder shape), else undefined. */
  private staticChannels(x: string, nhwc: boolean): number | undefined {
    const i = this.g.inputs.find((v) => v.name === x);
    const d = i?.shape?.[nhwc ? 3 : 1];
    return typeof d === 'number' ? d : undefined;
  }

  private transposeConst(v: string, perm: number[]): string {
    const t = this.consts.get(v);
    if (t) return this.fresh(`${v}/T`, transpose(t, perm));
    return this.tmp('Transpose', [v], { perm: ais(perm) });
  }

  private stridedSlice(n: TfNode): void {
    const out = n.name;
    const begin = this.constInts(this.in(n, 1), 'begin');
    const end = this.constInts(this.in(n, 2), 'end');
    const strides = this.constInts(this.in(n, 3), 'strides');
    const bm = this.attrI(n, 'begin_mask', 0), em = this.attrI(n, 'end_mask', 0);
    const sm = this.attrI(n, 'shrink_axis_mask', 0), nm = this.attrI(n, 'new_axis_mask', 0), elm = this.attrI(n, 'ellipsis_mask', 0);
    if (elm) throw this.err('ellipsis_mask is not supported', n);
    if (nm && (sm || bm || em)) {
      // Keep it simple: new axes only together with plain slices is rare in frozen inference graphs.
    }
    const starts: bigint[] = [], ends: bigint[] = [], axes: number[] = [], steps: number[] = [];
    const squeeze: number[] = [], unsq: number[] = [];
    let axis = 0;
    for (let i = 0; i < begin.length; i++) {
      const bit = 1 << i;
      const s = strides[i] ?? 1;
      if (s === 0) throw this.err('stride 0', n);
      if (nm & bit) { unsq.push(i); continue; }
      if (sm & bit) {
        const b0 = begin[i]!;
        starts.push(BigInt(b0)); ends.push(b0 === -1 ? INT64_MAX : BigInt(b0 + 1)); axes.push(axis); steps.push(1);
        squeeze.push(axis);
      } else {
        starts.push(bm & bit ? (s > 0 ? 0n : INT64_MAX) : BigInt(begin[i]!));
        ends.push(em & bit ? (s > 0 ? INT64_MAX : INT64_MIN) : BigInt(end[i]!));
        axes.push(axis); steps.push(s);
      }
      axis++;
    }
    let v = this.in(n, 0);
    const tail = squeeze.length || unsq.length;
    const sliced = tail ? this.freshName(`${out}/slice`) : out;
    this.node('Slice', [v, this.i64(`${out}/starts`, starts), this.i64(`${out}/ends`, ends), this.i64(`${out}/axes`, axes), this.i64(`${out}/steps`, steps)], [sliced]);
    v = sliced;
    if (squeeze.length) {
      const o = unsq.length ? this.freshName(`${out}/squeeze`) : out;
      this.node('Squeeze', [v, this.i64(`${out}/sq_axes`, squeeze)], [o]);
      v = o;
    }
    if (unsq.length) this.node('Unsqueeze', [v, this.i64(`${out}/unsq_axes`, unsq)], [out]);
  }
}

