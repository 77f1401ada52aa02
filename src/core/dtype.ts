/**
 * The element types q8 stores, one row each. ONNX codes are TensorProto.DataType values.
 * float16 and bfloat16 are stored as raw bits in a Uint16Array; bool as 0/1 in a Uint8Array;
 * int64/uint64 as BigInt64Array/BigUint64Array (exact, as ONNX requires).
 */
export type DType =
  | 'float32' | 'float64' | 'float16' | 'bfloat16'
  | 'int8' | 'int16' | 'int32' | 'int64'
  | 'uint8' | 'uint16' | 'uint32' | 'uint64'
  | 'bool' | 'string';

export type NumericArray =
  | Float32Array | Float64Array | Int8Array | Int16Array | Int32Array | Uint8Array | Uint16Array | Uint32Array;
export type BigArray = BigInt64Array | BigUint64Array;
export type TypedArray = NumericArray | BigArray;
export type TensorData = TypedArray | string[];

interface DTypeInfo {
  readonly name: DType;
  /** TensorProto.DataType code. */
  readonly onnx: number;
  /** Bytes per element in storage (0 for string). */
  readonly bytes: number;
  readonly float: boolean;
  /** Values are bigint (int64/uint64). */
  readonly big: boolean;
  readonly signed: boolean;
  readonly make: (n: number) => TensorData;
  readonly view: ((buf: ArrayBuffer, byteOffset: number, length: number) => TypedArray) | null;
}

const row = (
  name: DType, onnx: number, bytes: number, float: boolean, big: boolean, signed: boolean,
  ctor: { new (n: number): TypedArray; new (b: ArrayBuffer, o: number, l: number): TypedArray } | null,
): DTypeInfo => ({
  name, onnx, bytes, float, big, signed,
  make: ctor ? (n) => new ctor(n) : (n) => new Array<string>(n).fill(''),
  view: ctor ? (b, o, l) => new ctor(b, o, l) : null,
});

export const DTYPES: Readonly<Record<DType, DTypeInfo>> = {
  float32: row('float32', 1, 4, true, false, true, Float32Array),
  uint8: row('uint8', 2, 1, false, false, false, Uint8Array),
  int8: row('int8', 3, 1, false, false, true, Int8Array),
  uint16: row('uint16', 4, 2, false, false, false, Uint16Array),
  int16: row('int16', 5, 2, false, false, true, Int16Array),
  int32: row('int32', 6, 4, false, false, true, Int32Array),
  int64: row('int64', 7, 8, false, true, true, BigInt64Array as never),
  string: row('string', 8, 0, false, false, false, null),
  bool: row('bool', 9, 1, false, false, false, Uint8Array),
  float16: row('float16', 10, 2, true, false, true, Uint16Array),
  float64: row('float64', 11, 8, true, false, true, Float64Array),
  uint32: row('uint32', 12, 4, false, false, false, Uint32Array),
  uint64: row('uint64', 13, 8, false, true, false, BigUint64Array as never),
  bfloat16: row('bfloat16', 16, 2, true, false, true, Uint16Array),
};

const BY_ONNX = new Map<number, DType>(Object.values(DTYPES).map((d) => [d.onnx, d.name]));

/** DType for an ONNX TensorProto.DataType code, or undefined when q8 cannot store it. */
export function dtypeFromOnnx(code: number): DType | undefined {
  return BY_ONNX.get(code);
}

export function isFloat(d: DType): boolean { return DTYPES[d].float; }
export function isBig(d: DType): boolean { return DTYPES[d].big; }

/** Float types that are stored as 16-bit patterns and computed in float32. */
export function isHalf(d: DType): boolean { return d === 'float16' || d === 'bfloat16'; }

// ---- 16-bit float conversions (IEEE 754 binary16 and bfloat16), round to nearest even ----
const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

export function f32ToF16(v: number): number {
  f32[0] = v;
  const x = u32[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0); // Inf / NaN
  let e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00; // overflow to Inf
  if (e <= 0) {
    if (e < -10) return sign; // underflow to zero
    mant |= 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    const rest = mant & ((1 << shift) - 1);
    let m = mant >>> shift;
    if (rest > half || (rest === half && (m & 1))) m++;
    return sign | m;
  }
  const rest = mant & 0x1fff;
  let m = mant >>> 13;
  if (rest > 0x1000 || (rest === 0x1000 && (m & 1))) {
    m++;
    if (m === 0x400) { m = 0; e++; if (e >= 0x1f) return sign | 0x7c00; }
  }
  return sign | (e << 10) | m;
}

export function f16ToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const e = (h >>> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return sign * m * 2 ** -24;
  if (e === 0x1f) return m ? NaN : sign * Infinity;
  return sign * (1 + m / 1024) * 2 ** (e - 15);
}

export function f32ToBf16(v: number): number {
  f32[0] = v;
  const x = u32[0]!;
  if ((x & 0x7f800000) === 0x7f800000 && (x & 0x7fffff)) return ((x >>> 16) | 0x40) & 0xffff; // quiet NaN
  const lsb = (x >>> 16) & 1;
  return ((x + 0x7fff + lsb) >>> 16) & 0xffff;
}

export function bf16ToF32(h: number): number {
  u32[0] = (h & 0xffff) << 16;
  return f32[0]!;
}
