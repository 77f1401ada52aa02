/**
 * TensorProto ⇄ Tensor. Raw little-endian data is viewed in place when aligned and copied once
 * otherwise; external data is read straight from its file into the tensor's storage.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DTYPES, dtypeFromOnnx, type DType, type TensorData } from '../../core/dtype.js';
import { Q8Error, check } from '../../core/errors.js';
import { Reader, Writer, Wire } from '../../core/protobuf.js';
import { checkShape, sizeOf } from '../../core/shape.js';
import { Tensor } from '../../tensor/tensor.js';
import { EntryF, TensorF } from './schema.js';

const td = new TextDecoder('utf-8');

export interface TensorProtoOptions {
  /** Folder that external-data locations are relative to; external data is refused without it. */
  baseDir?: string | undefined;
}

export interface NamedTensor {
  name: string;
  tensor: Tensor;
}

export function decodeTensorProto(r: Reader, opts: TensorProtoOptions = {}): NamedTensor {
  const dims: number[] = [];
  let dataType = 0;
  let name = '';
  let raw: Uint8Array | undefined;
  const floats: number[] = [];
  const int32s: number[] = [];
  const int64s: bigint[] = [];
  const doubles: number[] = [];
  const uint64s: bigint[] = [];
  const strings: string[] = [];
  const external: Record<string, string> = {};
  let location = 0;
  while (!r.done) {
    const [f, w] = r.key();
    switch (f) {
      case TensorF.dims: r.repeated(w, Wire.Varint, (x) => x.varint(), dims); break;
      case TensorF.dataType: dataType = r.varint(); break;
      case TensorF.name: name = r.string(); break;
      case TensorF.rawData: raw = r.bytes(); break;
      case TensorF.floatData: r.repeated(w, Wire.I32, (x) => x.float(), floats); break;
      case TensorF.int32Data: r.repeated(w, Wire.Varint, (x) => x.varint(), int32s); break;
      case TensorF.int64Data: r.repeated(w, Wire.Varint, (x) => x.varintBig(), int64s); break;
      case TensorF.doubleData: r.repeated(w, Wire.I64, (x) => x.double(), doubles); break;
      case TensorF.uint64Data: r.repeated(w, Wire.Varint, (x) => BigInt.asUintN(64, x.varintBig()), uint64s); break;
      case TensorF.stringData: strings.push(td.decode(r.bytes())); break;
      case TensorF.externalData: {
        const e = r.message();
        let k = '';
        let v = '';
        while (!e.done) {
          const [ef, ew] = e.key();
          if (ef === EntryF.key) k = e.string();
          else if (ef === EntryF.value) v = e.string();
          else e.skip(ew);
        }
        external[k] = v;
        break;
      }
      case TensorF.dataLocation: location = r.varint(); break;
      default: r.skip(w);
    }
  }
  const what = name ? `tensor '${name}'` : 'tensor';
  const dtype = dtypeFromOnnx(dataType);
  if (!dtype) throw new Q8Error(`${what} has data type ${dataType}, which q8 does not support`);
  checkShape(dims, `${what} shape`);
  const n = sizeOf(dims);
  const info = DTYPES[dtype];
  let data: TensorData;
  if (location === 1) {
    data = readExternal(external, dtype, n, what, opts.baseDir);
  } else if (raw !== undefined && dtype !== 'string') {
    check(raw.length === n * info.bytes, () => `${what} of shape [${dims.join(',')}] needs ${n * info.bytes} bytes of raw_data, found ${raw!.length}`);
    data = fromLittleEndian(raw, dtype, n);
  } else {
    data = info.make(n);
    const src: ArrayLike<number | bigint | string> =
      dtype === 'string' ? strings
      : dtype === 'float32' ? floats
      : dtype === 'float64' ? doubles
      : dtype === 'int64' ? int64s
      : dtype === 'uint64' || dtype === 'uint32' ? uint64s
      : int32s;
    check(src.length === n, () => `${what} of shape [${dims.join(',')}] needs ${n} values, found ${src.length}`);
    if (dtype === 'uint32') for (let i = 0; i < n; i++) (data as Uint32Array)[i] = Number(src[i]);
    else if (dtype === 'string') for (let i = 0; i < n; i++) (data as string[])[i] = src[i] as string;
    else for (let i = 0; i < n; i++) (data as Float64Array)[i] = src[i] as number;
  }
  return { name, tensor: new Tensor(dtype, dims, data) };
}

/** Little-endian bytes → typed array: a view when aligned (no copy), else one copy. */
function fromLittleEndian(raw: Uint8Array, dtype: DType, n: number): TensorData {
  const info = DTYPES[dtype];
  if (raw.byteOffset % info.bytes === 0) return info.view!(raw.buffer as ArrayBuffer, raw.byteOffset, n);
  const copy = new Uint8Array(raw.length);
  copy.set(raw);
  return info.view!(copy.buffer, 0, n);
}

function readExternal(ext: Record<string, string>, dtype: DType, n: number, what: string, baseDir: string | undefined): TensorData {
  const loc = ext['location'];
  check(loc, `${what} has external data without a location`);
  check(baseDir !== undefined, `${what} refers to external data '${loc}', but the model was not loaded from a file`);
  check(dtype !== 'string', `${what}: string tensors cannot use external data`);
  const base = path.resolve(baseDir);
  const file = path.resolve(base, loc);
  check(file === base || file.startsWith(base + path.sep), `${what}: external data location '${loc}' points outside the model's folder`);
  const offset = ext['offset'] ? Number(ext['offset']) : 0;
  const info = DTYPES[dtype];
  const want = n * info.bytes;
  if (ext['length'] !== undefined) check(Number(ext['length']) === want, `${what} needs ${want} bytes but its external length is ${ext['length']}`);
  check(Number.isSafeInteger(offset) && offset >= 0, `${what}: bad external data offset ${ext['offset']}`);
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch (e) {
    throw new Q8Error(`${what}: cannot open external data file ${file}: ${(e as Error).message}`);
  }
  try {
    const size = fs.fstatSync(fd).size;
    check(offset + want <= size, `${what}: external data ${loc} has ${size} bytes, needs ${offset + want} (offset ${offset} + ${want})`);
    const data = info.make(n) as Exclude<TensorData, string[]>;
    const bytes = new Uint8Array(data.buffer, data.byteOffset, want);
    let done = 0;
    while (done < want) {
      const k = fs.readSync(fd, bytes, done, Math.min(want - done, 1 << 30), offset + done);
      check(k > 0, `${what}: external data ${loc} ended early`);
      done += k;
    }
    return data;
  } finally {
    fs.closeSync(fd);
  }
}

/** Decode a standalone serialized TensorProto (e.g. ONNX test data input_0.pb). */
export function decodeTensorBytes(bytes: Uint8Array, opts: TensorProtoOptions = {}): NamedTensor {
  return decodeTensorProto(new Reader(bytes), opts);
}

/** Encode a tensor as TensorProto (raw_data for numbers, string_data for strings). */
export function encodeTensorProto(name: string, t: Tensor, external?: (bytes: Uint8Array) => { location: string; offset: number; length: number } | null): Writer {
  const w = new Writer();
  for (const d of t.shape) w.varint(TensorF.dims, d);
  w.varint(TensorF.dataType, DTYPES[t.dtype].onnx);
  if (name) w.string(TensorF.name, name);
  if (t.dtype === 'string') {
    for (const s of t.data as string[]) w.string(TensorF.stringData, s);
    return w;
  }
  const d = t.data as Exclude<TensorData, string[]>;
  const bytes = new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
  const ext = external?.(bytes);
  if (ext) {
    for (const [k, v] of [['location', ext.location], ['offset', String(ext.offset)], ['length', String(ext.length)]] as const) {
      w.message(TensorF.externalData, new Writer().string(EntryF.key, k).string(EntryF.value, v));
    }
    w.varint(TensorF.dataLocation, 1);
  } else {
    w.bytes(TensorF.rawData, bytes);
  }
  return w;
}
