/**
 * TensorFlow GraphDef reading (binary protobuf and text format) into plain NodeDefs. Field numbers
 * follow tensorflow/core/framework/{graph,node_def,attr_value,tensor,tensor_shape,types}.proto.
 */
import type { DType } from '../../core/dtype.js';
import { Q8Error } from '../../core/errors.js';
import { Reader, Wire } from '../../core/protobuf.js';
import { Tensor } from '../../tensor/tensor.js';
import { latin1Bytes, parseTextProto, TextMessage } from '../text-proto.js';
import { tfDtype, type TfAttr, type TfList, type TfNode, type TfShape } from '../tf-ops/node.js';
export { TF_DTYPES, tfDtype, type TfAttr, type TfList, type TfNode, type TfShape } from '../tf-ops/node.js';

const TF_TYPE_NAMES: Record<string, number> = {
  DT_FLOAT: 1, DT_DOUBLE: 2, DT_INT32: 3, DT_UINT8: 4, DT_INT16: 5, DT_INT8: 6, DT_STRING: 7, DT_INT64: 9, DT_BOOL: 10,
  DT_BFLOAT16: 14, DT_UINT16: 17, DT_HALF: 19, DT_UINT32: 22, DT_UINT64: 23,
};

// ---------------------------------------------------------------------------------------------
// Binary

export function decodeGraphDef(bytes: Uint8Array): TfNode[] {
  const r = new Reader(bytes);
  const nodes: TfNode[] = [];
  while (!r.done) {
    const [f, w] = r.key();
    if (f === 1 && w === Wire.Len) nodes.push(decodeNode(r.message()));
    else r.skip(w);
  }
  return nodes;
}

function decodeNode(r: Reader): TfNode {
  const n: TfNode = { name: '', op: '', inputs: [], attrs: new Map() };
  while (!r.done) {
    const [f, w] = r.key();
    if (w !== Wire.Len) { r.skip(w); continue; }
    if (f === 1) n.name = r.string();
    else if (f === 2) n.op = r.string();
    else if (f === 3) n.inputs.push(r.string());
    else if (f === 5) {
      const e = r.message();
      let key = '';
      let val: TfAttr = {};
      while (!e.done) {
        const [ef, ew] = e.key();
        if (ef === 1 && ew === Wire.Len) key = e.string();
        else if (ef === 2 && ew === Wire.Len) val = decodeAttr(e.message());
        else e.skip(ew);
      }
      n.attrs.set(key, val);
    } else r.skip(w);
  }
  return n;
}

function decodeAttr(r: Reader): TfAttr {
  const a: TfAttr = {};
  while (!r.done) {
    const [f, w] = r.key();
    switch (f) {
      case 1: a.list = decodeList(r.message()); break;
      case 2: a.s = r.bytes(); break;
      case 3: a.i = r.varint(); break;
      case 4: a.f = r.float(); break;
      case 5: a.b = r.varint() !== 0; break;
      case 6: a.type = r.varint(); break;
      case 7: a.shape = decodeShape(r.message()); break;
      case 8: a.tensor = decodeTensor(r.message()); break;
      default: r.skip(w);
    }
  }
  return a;
}

function emptyList(): TfList { return { s: [], i: [], f: [], b: [], type: [], shape: [], tensor: [] }; }

function decodeList(r: Reader): TfList {
  const l = emptyList();
  while (!r.done) {
    const [f, w] = r.key();
    switch (f) {
      case 2: l.s.push(r.bytes()); break;
      case 3: r.repeated(w, Wire.Varint, (x) => x.varint(), l.i); break;
      case 4: r.repeated(w, Wire.I32, (x) => x.float(), l.f); break;
      case 5: { const t: number[] = []; r.repeated(w, Wire.Varint, (x) => x.varint(), t); l.b.push(...t.map((v) => v !== 0)); break; }
      case 6: r.repeated(w, Wire.Varint, (x) => x.varint(), l.type); break;
      case 7: l.shape.push(decodeShape(r.message())); break;
      case 8: l.tensor.push(decodeTensor(r.message())); break;
      default: r.skip(w);
    }
  }
  return l;
}

function decodeShape(r: Reader): TfShape {
  const dims: number[] = [];
  let unknown = false;
  while (!r.done) {
    const [f, w] = r.key();
    if (f === 2 && w === Wire.Len) {
      const d = r.message();
      let size = 0;
      while (!d.done) {
        const [df, dw] = d.key();
        if (df === 1 && dw === Wire.Varint) size = d.varint();
        else d.skip(dw);
      }
      dims.push(size);
    } else if (f === 3 && w === Wire.Varint) unknown = r.varint() !== 0;
    else r.skip(w);
  }
  return { dims: unknown ? undefined : dims };
}

interface RawTensor {
  dtype: number; shape: number[]; content?: Uint8Array;
  floats: number[]; doubles: number[]; ints: number[]; int64s: bigint[]; bools: number[]; halfs: number[]; strings: Uint8Array[];
}

function rawTensor(): RawTensor { return { dtype: 0, shape: [], floats: [], doubles: [], ints: [], int64s: [], bools: [], halfs: [], strings: [] }; }

function decodeTensor(r: Reader): Tensor {
  const t = rawTensor();
  while (!r.done) {
    const [f, w] = r.key();
    switch (f) {
      case 1: t.dtype = r.varint(); break;
      case 2: t.shape = decodeShape(r.message()).dims ?? []; break;
      case 4: t.content = r.bytes(); break;
      case 5: r.repeated(w, Wire.I32, (x) => x.float(), t.floats); break;
      case 6: r.repeated(w, Wire.I64, (x) => x.double(), t.doubles); break;
      case 7: r.repeated(w, Wire.Varint, (x) => x.varint(), t.ints); break;
      case 8: t.strings.push(r.bytes()); break;
      case 10: r.repeated(w, Wire.Varint, (x) => x.varintBig(), t.int64s); break;
      case 11: r.repeated(w, Wire.Varint, (x) => x.varint(), t.bools); break;
      case 13: r.repeated(w, Wire.Varint, (x) => x.varint(), t.halfs); break;
      default: r.skip(w);
    }
  }
  return buildTensor(t);
}

/** TensorProto → Tensor. Fewer values than elements repeat the last one (TF's rule for splat constants). */
function buildTensor(t: RawTensor): Tensor {
  const dtype = tfDtype(t.dtype, 'tensor');
  const shape = t.shape;
  if (shape.some((d) => d < 0)) throw new Q8Error(`constant tensor has an unknown dimension in [${shape.join(',')}]`);
  const n = shape.reduce((a, c) => a * c, 1);
  if (n > 2 ** 31 - 1) throw new Q8Error(`constant tensor of shape [${shape.join(',')}] is too large`);
  if (dtype === 'string') {
    if (n > 2 ** 20) throw new Q8Error(`string constant of shape [${shape.join(',')}] is implausibly large`);
    const vals = t.strings.map((s) => new TextDecoder().decode(s));
    return Tensor.from('string', shape, Array.from({ length: n }, (_, i) => vals[Math.min(i, vals.length - 1)] ?? ''));
  }
  const outType: DType = dtype === 'int32' ? 'int64' : dtype;
  if (t.content && t.content.length) {
    const bpe: Record<string, number> = { float32: 4, float64: 8, int32: 4, uint8: 1, int16: 2, int8: 1, int64: 8, bool: 1, bfloat16: 2, uint16: 2, float16: 2, uint32: 4, uint64: 8 };
    const size = bpe[dtype]!;
    if (t.content.length !== n * size) throw new Q8Error(`constant tensor content has ${t.content.length} bytes, expected ${n * size} for ${dtype}[${shape.join(',')}]`);
    const buf = new Uint8Array(t.content).buffer; // aligned copy (Buffer.slice would be a view)
    switch (dtype) {
      case 'float32': return new Tensor('float32', shape, new Float32Array(buf));
      case 'float64': return new Tensor('float64', shape, new Float64Array(buf));
      case 'int32': return new Tensor('int64', shape, BigInt64Array.from(new Int32Array(buf), (v) => BigInt(v)));
      case 'int64': return new Tensor('int64', shape, new BigInt64Array(buf));
      case 'uint8': case 'bool': return new Tensor(dtype, shape, new Uint8Array(buf));
      case 'int8': return new Tensor('int8', shape, new Int8Array(buf));
      case 'int16': return new Tensor('int16', shape, new Int16Array(buf));
      case 'uint16': case 'float16': case 'bfloat16': return new Tensor(dtype, shape, new Uint16Array(buf));
      case 'uint32': return new Tensor('uint32', shape, new Uint32Array(buf));
      case 'uint64': return new Tensor('uint64', shape, new BigUint64Array(buf));
      default: break;
    }
  }
  const src: (number | bigint)[] =
    dtype === 'float32' ? t.floats : dtype === 'float64' ? t.doubles : dtype === 'int64' ? t.int64s
      : dtype === 'bool' ? t.bools : dtype === 'float16' || dtype === 'bfloat16' ? t.halfs : t.ints;
  // A splat constant is stored as one value; a corrupt shape must not become a runaway allocation.
  if (n > 2 ** 27) throw new Q8Error(`constant tensor of shape [${shape.join(',')}] is implausibly large for a ${src.length}-value constant`);
  if (n > 0 && !src.length) return Tensor.zeros(outType, shape);
  if (src.length > n) throw new Q8Error(`constant tensor has ${src.length} values for shape [${shape.join(',')}]`);
  const out = Tensor.zeros(dtype === 'float16' || dtype === 'bfloat16' ? dtype : outType, shape);
  const d = out.data as unknown as (number | bigint)[];
  const big = outType === 'int64' || outType === 'uint64';
  for (let i = 0; i < n; i++) {
    const v = src[Math.min(i, src.length - 1)]!;
    d[i] = big ? BigInt(v) : Number(v);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Text (.pbtxt)

export function parseGraphDefText(text: string, file?: string): TfNode[] {
  const g = parseTextProto(text, file);
  return g.all('node').map((m) => {
    const n: TfNode = { name: m.str('name', ''), op: m.str('op', ''), inputs: m.strs('input'), attrs: new Map() };
    for (const e of m.all('attr')) {
      const v = e.msg('value');
      n.attrs.set(e.str('key', ''), v ? textAttr(v) : {});
    }
    return n;
  });
}

function typeOf(m: TextMessage, field: string): number | undefined {
  const v = m.values(field).at(-1);
  if (!v || v instanceof TextMessage) return undefined;
  if (v.kind === 'number') return v.value;
  const t = TF_TYPE_NAMES[v.value];
  if (t === undefined) throw new Q8Error(`unknown TensorFlow type ${v.value}`);
  return t;
}

function textShape(m: TextMessage): TfShape {
  if (m.bool('unknown_rank', false)) return { dims: undefined };
  return { dims: m.all('dim').map((d) => d.num('size', 0)) };
}

function textTensor(m: TextMessage): Tensor {
  const t = rawTensor();
  t.dtype = typeOf(m, 'dtype') ?? 0;
  const s = m.msg('tensor_shape');
  t.shape = s ? textShape(s).dims ?? [] : [];
  if (m.has('tensor_content')) t.content = latin1Bytes(m.str('tensor_content', ''));
  t.floats = m.nums('float_val');
  t.doubles = m.nums('double_val');
  t.ints = m.nums('int_val');
  t.int64s = m.strs('int64_val').map((v) => BigInt(v));
  t.bools = m.nums('bool_val');
  t.halfs = m.nums('half_val');
  t.strings = m.strs('string_val').map(latin1Bytes);
  return buildTensor(t);
}

function textAttr(m: TextMessage): TfAttr {
  const a: TfAttr = {};
  if (m.has('s')) a.s = latin1Bytes(m.str('s', ''));
  if (m.has('i')) a.i = m.num('i', 0);
  if (m.has('f')) a.f = m.num('f', 0);
  if (m.has('b')) a.b = m.bool('b', false);
  if (m.has('type')) a.type = typeOf(m, 'type');
  const sh = m.msg('shape');
  if (sh) a.shape = textShape(sh);
  const te = m.msg('tensor');
  if (te) a.tensor = textTensor(te);
  const l = m.msg('list');
  if (l) {
    a.list = emptyList();
    a.list.s = l.strs('s').map(latin1Bytes);
    a.list.i = l.nums('i');
    a.list.f = l.nums('f');
    a.list.b = l.values('b').map((_, k) => l.nums('b')[k] !== 0);
    a.list.type = l.values('type').map((v) => (v instanceof TextMessage ? 0 : v.kind === 'number' ? v.value : TF_TYPE_NAMES[v.value] ?? 0));
    a.list.shape = l.all('shape').map(textShape);
    a.list.tensor = l.all('tensor').map(textTensor);
  }
  return a;
}
