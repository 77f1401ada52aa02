/**
 * NumPy .npy (format versions 1–3, little-endian, C order) ⇄ Tensor.
 * https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html
 */
import { DTYPES, type DType, type TensorData } from '../core/dtype.js';
import { Q8Error, check } from '../core/errors.js';
import { checkShape, sizeOf } from '../core/shape.js';
import { Tensor } from '../tensor/tensor.js';

const DESCR: Readonly<Record<string, DType>> = {
  '<f4': 'float32', '<f8': 'float64', '<f2': 'float16', '|i1': 'int8', '<i2': 'int16', '<i4': 'int32', '<i8': 'int64',
  '|u1': 'uint8', '<u2': 'uint16', '<u4': 'uint32', '<u8': 'uint64', '|b1': 'bool',
};
const DESCR_OF = Object.fromEntries(Object.entries(DESCR).map(([k, v]) => [v, k])) as Record<DType, string>;

export function decodeNpy(bytes: Uint8Array, file = 'npy'): Tensor {
  const fail = (why: string) => new Q8Error(`not a valid .npy file: ${why}`, { file });
  if (bytes.length < 10 || bytes[0] !== 0x93 || String.fromCharCode(...bytes.subarray(1, 6)) !== 'NUMPY') throw fail('bad magic');
  const major = bytes[6]!;
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const hlen = major === 1 ? dv.getUint16(8, true) : dv.getUint32(8, true);
  const hstart = major === 1 ? 10 : 12;
  if (hstart + hlen > bytes.length) throw fail('truncated header');
  const header = new TextDecoder(major === 3 ? 'utf-8' : 'latin1').decode(bytes.subarray(hstart, hstart + hlen));
  const descr = /'descr'\s*:\s*'([^']+)'/.exec(header)?.[1];
  const fortran = /'fortran_order'\s*:\s*(True|False)/.exec(header)?.[1];
  const shapeText = /'shape'\s*:\s*\(([^)]*)\)/.exec(header)?.[1];
  if (!descr || !fortran || shapeText === undefined) throw fail(`cannot parse header ${header.trim()}`);
  if (fortran === 'True') throw fail('Fortran-order arrays are not supported; save with np.ascontiguousarray');
  const dtype = DESCR[descr.replace('=', '<')];
  if (!dtype) throw fail(`dtype '${descr}' is not supported`);
  const shape = shapeText.split(',').map((s) => s.trim()).filter((s) => s.length).map(Number);
  checkShape(shape, `${file} shape`);
  const n = sizeOf(shape);
  const start = hstart + hlen;
  const need = n * DTYPES[dtype].bytes;
  if (bytes.length - start < need) throw fail(`needs ${need} data bytes for shape [${shape}], has ${bytes.length - start}`);
  const copy = new Uint8Array(need); // aligned copy (Buffer.slice would be a view into a pooled buffer)
  copy.set(bytes.subarray(start, start + need));
  return new Tensor(dtype, shape, DTYPES[dtype].view!(copy.buffer, 0, n));
}

export function encodeNpy(t: Tensor): Uint8Array {
  check(t.dtype !== 'string' && t.dtype !== 'bfloat16', `cannot write ${t.dtype} tensors as .npy`);
  const shape = t.shape.length === 1 ? `(${t.shape[0]},)` : `(${t.shape.join(', ')})`;
  let header = `{'descr': '${DESCR_OF[t.dtype]}', 'fortran_order': False, 'shape': ${shape}, }`;
  const total = 10 + header.length + 1;
  header += ' '.repeat((64 - (total % 64)) % 64) + '\n';
  const d = t.data as Exclude<TensorData, string[]>;
  const out = new Uint8Array(10 + header.length + d.byteLength);
  out.set([0x93, ...'NUMPY'.split('').map((c) => c.charCodeAt(0)), 1, 0]);
  new DataView(out.buffer).setUint16(8, header.length, true);
  for (let i = 0; i < header.length; i++) out[10 + i] = header.charCodeAt(i);
  out.set(new Uint8Array(d.buffer, d.byteOffset, d.byteLength), 10 + header.length);
  return out;
}
