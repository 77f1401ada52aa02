/**
 * ONNX ModelProto bytes → q8 Model. Every failure becomes a Q8Error naming the file (and the node
 * where one is involved); protobuf-level damage (truncation, bad lengths) is reported with its offset.
 */
import * as path from 'node:path';
import * as fs from 'node:fs';
import { dtypeFromOnnx } from '../../core/dtype.js';
import { Q8Error, toQ8Error } from '../../core/errors.js';
import { ProtobufError, Reader, Wire } from '../../core/protobuf.js';
import { emptyGraph, normDomain, type AttrValue, type Dim, type Graph, type Model, type Node, type ValueInfo } from '../../graph/ir.js';
import type { Tensor } from '../../tensor/tensor.js';
import { AttrF, AttrType, DimF, EntryF, GraphF, ModelF, NodeF, OpsetF, ShapeF, TensorTypeF, TypeF, ValueInfoF } from './schema.js';
import { decodeTensorProto, type TensorProtoOptions } from './tensor-proto.js';

export interface DecodeOptions extends TensorProtoOptions {
  /** File name for error messages. */
  file?: string | undefined;
}

export function decodeOnnx(bytes: Uint8Array, opts: DecodeOptions = {}): Model {
  try {
    return decodeModel(new Reader(bytes), opts);
  } catch (e) {
    if (e instanceof ProtobufError) throw new Q8Error(`not a valid ONNX model (${e.message})`, { file: opts.file });
    throw toQ8Error(e, { file: opts.file });
  }
}

/** Load an .onnx file; external data is resolved relative to its folder. */
export function loadOnnxFile(file: string): Model {
  let bytes: Uint8Array;
  try {
    bytes = fs.readFileSync(file);
  } catch (e) {
    throw new Q8Error(`cannot read model: ${(e as Error).message}`, { file });
  }
  return decodeOnnx(bytes, { file, baseDir: path.dirname(path.resolve(file)) });
}

function decodeModel(r: Reader, opts: DecodeOptions): Model {
  const model: Model = {
    graph: emptyGraph(), opsets: new Map(), irVersion: 0, producerName: '', producerVersion: '',
    metadata: new Map(), source: opts.file,
  };
  let sawGraph = false;
  while (!r.done) {
    const [f, w] = r.key();
    switch (f) {
      case ModelF.irVersion: model.irVersion = r.varint(); break;
      case ModelF.producerName: model.producerName = r.string(); break;
      case ModelF.producerVersion: model.producerVersion = r.string(); break;
      case ModelF.domain: model.domain = r.string(); break;
      case ModelF.modelVersion: model.modelVersion = r.varint(); break;
      case ModelF.doc: model.doc = r.string(); break;
      case ModelF.graph: model.graph = decodeGraph(r.message(), opts); sawGraph = true; break;
      case ModelF.opsetImport: {
        const o = r.message();
        let domain = '';
        let version = 1;
        while (!o.done) {
          const [of, ow] = o.key();
          if (of === OpsetF.domain) domain = o.string();
          else if (of === OpsetF.version) version = o.varint();
          else o.skip(ow);
        }
        model.opsets.set(normDomain(domain), version);
        break;
      }
      case ModelF.metadata: {
        const [k, v] = decodeEntry(r.message());
        model.metadata.set(k, v);
        break;
      }
      case ModelF.functions:
        // Model-local functions are not supported; a node that calls one fails later with its name.
        r.skip(w);
        break;
      default: r.skip(w);
    }
  }
  if (!sawGraph) throw new Q8Error('not a valid ONNX model (no graph)');
  // IR version 3 and earlier may omit opset_import: ONNX says opset 1 is then implied.
  if (!model.opsets.has('')) model.opsets.set('', 1);
  return model;
}

function decodeEntry(r: Reader): [string, string] {
  let k = '';
  let v = '';
  while (!r.done) {
    const [f, w] = r.key();
    if (f === EntryF.key) k = r.string();
    else if (f === EntryF.value) v = r.string();
    else r.skip(w);
  }
  return [k, v];
}

function decodeGraph(r: Reader, opts: DecodeOptions): Graph {
  const g = emptyGraph('');
  while (!r.done) {
    const [f, w] = r.key();
    switch (f) {
      case GraphF.node: g.nodes.push(decodeNode(r.message(), opts, g.nodes.length)); break;
      case GraphF.name: g.name = r.string(); break;
      case GraphF.initializer: {
        const t = decodeTensorProto(r.message(), opts);
        g.initializers.set(t.name, t.tensor);
        break;
      }
      case GraphF.sparseInitializer: throw new Q8Error('sparse initializers are not supported');
      case GraphF.doc: g.doc = r.string(); break;
      case GraphF.input: g.inputs.push(decodeValueInfo(r.message())); break;
      case GraphF.output: g.outputs.push(decodeValueInfo(r.message())); break;
      case GraphF.valueInfo: {
        const v = decodeValueInfo(r.message());
        g.valueInfo.set(v.name, v);
        break;
      }
      default: r.skip(w);
    }
  }
  return g;
}

function decodeNode(r: Reader, opts: DecodeOptions, index: number): Node {
  const n: Node = { name: '', opType: '', domain: '', inputs: [], outputs: [], attrs: {} };
  const pending: Reader[] = [];
  while (!r.done) {
    const [f, w] = r.key();
    switch (f) {
      case NodeF.input: n.inputs.push(r.string()); break;
      case NodeF.output: n.outputs.push(r.string()); break;
      case NodeF.name: n.name = r.string(); break;
      case NodeF.opType: n.opType = r.string(); break;
      case NodeF.domain: n.domain = normDomain(r.string()); break;
      case NodeF.attribute: pending.push(r.message()); break;
      case NodeF.doc: n.doc = r.string(); break;
      default: r.skip(w);
    }
  }
  if (!n.name) n.name = `${n.opType || 'node'}_${index}`;
  try {
    for (const a of pending) {
      const [name, v] = decodeAttribute(a, opts);
      if (v) n.attrs[name] = v;
    }
  } catch (e) {
    throw toQ8Error(e, { node: n.name, opType: n.opType });
  }
  if (!n.opType) throw new Q8Error('node has no op_type', { node: n.name });
  return n;
}

function decodeAttribute(r: Reader, opts: DecodeOptions): [string, AttrValue | undefined] {
  let name = '';
  let type = 0;
  let f_: number | undefined;
  let i_: number | undefined;
  let s_: Uint8Array | undefined;
  let t_: Tensor | undefined;
  let g_: Graph | undefined;
  const floats: number[] = [];
  const ints: number[] = [];
  const strings: string[] = [];
  const tensors: Tensor[] = [];
  const graphs: Graph[] = [];
  let refAttr = '';
  while (!r.done) {
    const [f, w] = r.key();
    switch (f) {
      case AttrF.name: name = r.string(); break;
      case AttrF.type: type = r.varint(); break;
      case AttrF.f: f_ = r.float(); break;
      case AttrF.i: i_ = r.varint(); break;
      case AttrF.s: s_ = r.bytes(); break;
      case AttrF.t: t_ = decodeTensorProto(r.message(), opts).tensor; break;
      case AttrF.g: g_ = decodeGraph(r.message(), opts); break;
      case AttrF.floats: r.repeated(w, Wire.I32, (x) => x.float(), floats); break;
      case AttrF.ints: r.repeated(w, Wire.Varint, (x) => x.varint(), ints); break;
      case AttrF.strings: strings.push(new TextDecoder().decode(r.bytes())); break;
      case AttrF.tensors: tensors.push(decodeTensorProto(r.message(), opts).tensor); break;
      case AttrF.graphs: graphs.push(decodeGraph(r.message(), opts)); break;
      case AttrF.refAttrName: refAttr = r.string(); break;
      default: r.skip(w);
    }
  }
  if (refAttr) throw new Q8Error(`attribute '${name}' refers to a function attribute, which is only valid inside functions`);
  if (type === 0) {
    // IR < 2 files may omit the type: infer it from the field that is present.
    type = f_ !== undefined ? AttrType.FLOAT : i_ !== undefined ? AttrType.INT : s_ !== undefined ? AttrType.STRING
      : t_ ? AttrType.TENSOR : g_ ? AttrType.GRAPH : floats.length ? AttrType.FLOATS : ints.length ? AttrType.INTS
      : strings.length ? AttrType.STRINGS : tensors.length ? AttrType.TENSORS : graphs.length ? AttrType.GRAPHS : 0;
  }
  switch (type) {
    case AttrType.FLOAT: return [name, { type: 'float', value: f_ ?? 0 }];
    case AttrType.INT: return [name, { type: 'int', value: i_ ?? 0 }];
    case AttrType.STRING: return [name, { type: 'string', value: new TextDecoder().decode(s_ ?? new Uint8Array()) }];
    case AttrType.TENSOR:
      if (!t_) throw new Q8Error(`attribute '${name}' has no tensor`);
      return [name, { type: 'tensor', value: t_ }];
    case AttrType.GRAPH:
      if (!g_) throw new Q8Error(`attribute '${name}' has no graph`);
      return [name, { type: 'graph', value: g_ }];
    case AttrType.FLOATS: return [name, { type: 'floats', value: floats }];
    case AttrType.INTS: return [name, { type: 'ints', value: ints }];
    case AttrType.STRINGS: return [name, { type: 'strings', value: strings }];
    case AttrType.TENSORS: return [name, { type: 'tensors', value: tensors }];
    case AttrType.GRAPHS: return [name, { type: 'graphs', value: graphs }];
    case 0: return [name, undefined]; // an empty list attribute without a type
    default: throw new Q8Error(`attribute '${name}' has type ${type}, which q8 does not support`);
  }
}

function decodeValueInfo(r: Reader): ValueInfo {
  const v: ValueInfo = { name: '' };
  while (!r.done) {
    const [f, w] = r.key();
    switch (f) {
      case ValueInfoF.name: v.name = r.string(); break;
      case ValueInfoF.doc: v.doc = r.string(); break;
      case ValueInfoF.type: decodeType(r.message(), v); break;
      default: r.skip(w);
    }
  }
  return v;
}

function decodeType(r: Reader, v: ValueInfo): void {
  while (!r.done) {
    const [f, w] = r.key();
    if (f !== TypeF.tensor) { r.skip(w); continue; }
    const t = r.message();
    while (!t.done) {
      const [tf, tw] = t.key();
      if (tf === TensorTypeF.elemType) v.dtype = dtypeFromOnnx(t.varint());
      else if (tf === TensorTypeF.shape) v.shape = decodeShape(t.message());
      else t.skip(tw);
    }
  }
}

function decodeShape(r: Reader): Dim[] {
  const dims: Dim[] = [];
  while (!r.done) {
    const [f, w] = r.key();
    if (f !== ShapeF.dim) { r.skip(w); continue; }
    const d = r.message();
    let dim: Dim = null;
    while (!d.done) {
      const [df, dw] = d.key();
      if (df === DimF.value) dim = d.varint();
      else if (df === DimF.param) dim = d.string() || null;
      else d.skip(dw);
    }
    dims.push(dim);
  }
  return dims;
}
