/**
 * q8 Model → ONNX ModelProto bytes. Tensors go out as raw_data; with `externalData`, tensors of at
 * least `threshold` bytes are written to a side file instead (needed past protobuf's 2 GiB limit).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DTYPES } from '../../core/dtype.js';
import { Q8Error } from '../../core/errors.js';
import { Writer } from '../../core/protobuf.js';
import type { AttrValue, Graph, Model, Node, ValueInfo } from '../../graph/ir.js';
import { AttrF, AttrType, DimF, EntryF, GraphF, ModelF, NodeF, OpsetF, ShapeF, TensorTypeF, TypeF, ValueInfoF } from './schema.js';
import { encodeTensorProto } from './tensor-proto.js';

export interface EncodeOptions {
  /** Write large tensors to an external data file next to the model. */
  externalData?: { file: string; threshold?: number } | undefined;
}

type ExternalSink = (bytes: Uint8Array) => { location: string; offset: number; length: number } | null;

export function encodeOnnx(model: Model, opts: EncodeOptions = {}): Uint8Array {
  return encodeModelWriter(model, opts).finish();
}

/** Write a model to a file, streaming its chunks (no single giant buffer). */
export function saveOnnxFile(model: Model, file: string, opts: EncodeOptions = {}): void {
  const w = encodeModelWriter(model, opts);
  const fd = fs.openSync(file, 'w');
  try {
    for (const p of w.parts()) fs.writeSync(fd, p);
  } finally {
    fs.closeSync(fd);
  }
}

function encodeModelWriter(model: Model, opts: EncodeOptions): Writer {
  let sink: ExternalSink | undefined;
  let extFd: number | undefined;
  if (opts.externalData) {
    const ext = opts.externalData;
    const location = path.basename(ext.file);
    const threshold = ext.threshold ?? 1024;
    extFd = fs.openSync(ext.file, 'w');
    let offset = 0;
    sink = (bytes) => {
      if (bytes.length < threshold) return null;
      const pad = (64 - (offset % 64)) % 64; // keep every tensor 64-byte aligned in the side file
      if (pad) { fs.writeSync(extFd!, new Uint8Array(pad)); offset += pad; }
      fs.writeSync(extFd!, bytes);
      const at = offset;
      offset += bytes.length;
      return { location, offset: at, length: bytes.length };
    };
  }
  try {
    const w = new Writer();
    w.varint(ModelF.irVersion, model.irVersion || 10);
    for (const [domain, version] of model.opsets) {
      const o = new Writer();
      if (domain) o.string(OpsetF.domain, domain);
      o.varint(OpsetF.version, version);
      w.message(ModelF.opsetImport, o);
    }
    w.string(ModelF.producerName, model.producerName || 'q8');
    if (model.producerVersion) w.string(ModelF.producerVersion, model.producerVersion);
    if (model.domain) w.string(ModelF.domain, model.domain);
    if (model.modelVersion) w.varint(ModelF.modelVersion, model.modelVersion);
    if (model.doc) w.string(ModelF.doc, model.doc);
    w.message(ModelF.graph, encodeGraph(model.graph, sink));
    for (const [k, v] of model.metadata) w.message(ModelF.metadata, new Writer().string(EntryF.key, k).string(EntryF.value, v));
    return w;
  } finally {
    if (extFd !== undefined) fs.closeSync(extFd);
  }
}

function encodeGraph(g: Graph, sink?: ExternalSink): Writer {
  const w = new Writer();
  for (const n of g.nodes) w.message(GraphF.node, encodeNode(n, sink));
  w.string(GraphF.name, g.name || 'main');
  for (const [name, t] of g.initializers) w.message(GraphF.initializer, encodeTensorProto(name, t, sink));
  if (g.doc) w.string(GraphF.doc, g.doc);
  for (const v of g.inputs) w.message(GraphF.input, encodeValueInfo(v));
  for (const v of g.outputs) w.message(GraphF.output, encodeValueInfo(v));
  for (const v of g.valueInfo.values()) w.message(GraphF.valueInfo, encodeValueInfo(v));
  return w;
}

function encodeNode(n: Node, sink?: ExternalSink): Writer {
  const w = new Writer();
  for (const i of n.inputs) w.string(NodeF.input, i);
  for (const o of n.outputs) w.string(NodeF.output, o);
  if (n.name) w.string(NodeF.name, n.name);
  w.string(NodeF.opType, n.opType);
  if (n.domain) w.string(NodeF.domain, n.domain);
  for (const [name, a] of Object.entries(n.attrs)) w.message(NodeF.attribute, encodeAttribute(name, a, sink));
  if (n.doc) w.string(NodeF.doc, n.doc);
  return w;
}

function encodeAttribute(name: string, a: AttrValue, sink?: ExternalSink): Writer {
  const w = new Writer().string(AttrF.name, name);
  switch (a.type) {
    case 'float': w.float(AttrF.f, a.value).varint(AttrF.type, AttrType.FLOAT); break;
    case 'int': w.varint(AttrF.i, a.value).varint(AttrF.type, AttrType.INT); break;
    case 'string': w.string(AttrF.s, a.value).varint(AttrF.type, AttrType.STRING); break;
    case 'tensor': w.message(AttrF.t, encodeTensorProto('', a.value, sink)).varint(AttrF.type, AttrType.TENSOR); break;
    case 'graph': w.message(AttrF.g, encodeGraph(a.value, sink)).varint(AttrF.type, AttrType.GRAPH); break;
    case 'floats': w.packedFloats(AttrF.floats, a.value).varint(AttrF.type, AttrType.FLOATS); break;
    case 'ints': w.packedVarints(AttrF.ints, a.value).varint(AttrF.type, AttrType.INTS); break;
    case 'strings': for (const s of a.value) w.string(AttrF.strings, s); w.varint(AttrF.type, AttrType.STRINGS); break;
    case 'tensors': for (const t of a.value) w.message(AttrF.tensors, encodeTensorProto('', t, sink)); w.varint(AttrF.type, AttrType.TENSORS); break;
    case 'graphs': for (const g of a.value) w.message(AttrF.graphs, encodeGraph(g, sink)); w.varint(AttrF.type, AttrType.GRAPHS); break;
    default: throw new Q8Error(`cannot encode attribute '${name}'`);
  }
  return w;
}

function encodeValueInfo(v: ValueInfo): Writer {
  const w = new Writer().string(ValueInfoF.name, v.name);
  if (v.dtype || v.shape) {
    const tt = new Writer();
    if (v.dtype) tt.varint(TensorTypeF.elemType, DTYPES[v.dtype].onnx);
    if (v.shape) {
      const s = new Writer();
      for (const d of v.shape) {
        const dw = new Writer();
        if (typeof d === 'number') dw.varint(DimF.value, d);
        else if (typeof d === 'string') dw.string(DimF.param, d);
        s.message(ShapeF.dim, dw);
      }
      tt.message(TensorTypeF.shape, s);
    }
    w.message(ValueInfoF.type, new Writer().message(TypeF.tensor, tt));
  }
  if (v.doc) w.string(ValueInfoF.doc, v.doc);
  return w;
}
