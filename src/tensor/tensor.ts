/**
 * A Tensor is a dtype, a row-major shape and a flat storage array. Tensors are immutable by
 * convention once handed to the runtime: kernels write only the outputs they allocate.
 *
 *   const t = Tensor.from('float32', [2, 2], [1, 2, 3, 4]);
 *   t.data            // Float32Array [1, 2, 3, 4]
 */
import {
  DTYPES, type DType, type TensorData, type TypedArray,
  f16ToF32, f32ToF16, bf16ToF32, f32ToBf16,
} from '../core/dtype.js';
import { Q8Error, check } from '../core/errors.js';
import { checkShape, sizeOf, type Shape } from '../core/shape.js';

export class Tensor {
  readonly dtype: DType;
  readonly shape: readonly number[];
  readonly data: TensorData;

  constructor(dtype: DType, shape: Shape, data: TensorData) {
    checkShape(shape);
    const n = sizeOf(shape);
    check(data.length === n, () => `tensor of shape [${shape.join(',')}] needs ${n} elements, got ${data.length}`);
    this.dtype = dtype;
    this.shape = Object.freeze([...shape]);
    this.data = data;
  }

  get size(): number { return this.data.length; }
  get rank(): number { return this.shape.length; }

  /** A zero-filled tensor. */
  static zeros(dtype: DType, shape: Shape): Tensor {
    checkShape(shape);
    return new Tensor(dtype, shape, DTYPES[dtype].make(sizeOf(shape)));
  }

  /**
   * Build a tensor from values. Typed arrays of the storage type are used as they are (no copy);
   * plain arrays are converted (numbers for float16 are encoded; numbers become bigints for int64).
   */
  static from(dtype: DType, shape: Shape, values: ArrayLike<number | bigint | boolean | string> | TensorData): Tensor {
    const info = DTYPES[dtype];
    if (dtype !== 'string' && isStorageOf(dtype, values)) return new Tensor(dtype, shape, values as TensorData);
    const n = values.length;
    const out = info.make(n);
    for (let i = 0; i < n; i++) setValue(out, dtype, i, values[i] as number | bigint | boolean | string);
    return new Tensor(dtype, shape, out);
  }

  static scalar(dtype: DType, v: number | bigint | boolean | string): Tensor {
    return Tensor.from(dtype, [], [v]);
  }

  /** Same storage, new shape (sizes must match). */
  reshape(shape: Shape): Tensor {
    return new Tensor(this.dtype, shape, this.data);
  }

  /** Element i as a JS number (bigints converted, float16 decoded, bool as 0/1). */
  num(i: number): number {
    return getNumber(this.data, this.dtype, i);
  }

  /** All elements as numbers (copy). Fine for shapes, indices and small tensors. */
  toNumbers(): number[] {
    const out = new Array<number>(this.size);
    for (let i = 0; i < out.length; i++) out[i] = getNumber(this.data, this.dtype, i);
    return out;
  }

  /**
   * Elements as a Float32Array: the storage itself for float32, a decoded copy otherwise.
   * Do not write into the result.
   */
  toFloat32(): Float32Array {
    if (this.dtype === 'float32') return this.data as Float32Array;
    const out = new Float32Array(this.size);
    for (let i = 0; i < out.length; i++) out[i] = getNumber(this.data, this.dtype, i);
    return out;
  }

  toString(): string {
    return `Tensor(${this.dtype}, [${this.shape.join(',')}])`;
  }
}

function isStorageOf(dtype: DType, v: unknown): boolean {
  switch (dtype) {
    case 'float32': return v instanceof Float32Array;
    case 'float64': return v instanceof Float64Array;
    case 'float16': case 'bfloat16': case 'uint16': return v instanceof Uint16Array;
    case 'int8': return v instanceof Int8Array;
    case 'int16': return v instanceof Int16Array;
    case 'int32': return v instanceof Int32Array;
    case 'int64': return v instanceof BigInt64Array;
    case 'uint8': case 'bool': return v instanceof Uint8Array;
    case 'uint32': return v instanceof Uint32Array;
    case 'uint64': return v instanceof BigUint64Array;
    default: return false;
  }
}

/** Read element i of storage as a number. */
export function getNumber(data: TensorData, dtype: DType, i: number): number {
  const v = data[i];
  switch (dtype) {
    case 'float16': return f16ToF32(v as number);
    case 'bfloat16': return bf16ToF32(v as number);
    case 'int64': case 'uint64': return Number(v as bigint);
    case 'string': throw new Q8Error('string tensor used where numbers are needed');
    default: return v as number;
  }
}

/** Write a JS value into element i of storage, converting as a Cast would (truncation for ints). */
export function setValue(data: TensorData, dtype: DType, i: number, v: number | bigint | boolean | string): void {
  switch (dtype) {
    case 'string': (data as string[])[i] = String(v); return;
    case 'float16': (data as Uint16Array)[i] = f32ToF16(Number(v)); return;
    case 'bfloat16': (data as Uint16Array)[i] = f32ToBf16(Number(v)); return;
    case 'bool': (data as Uint8Array)[i] = v ? 1 : 0; return;
    case 'int64': case 'uint64': {
      if (typeof v === 'bigint') (data as BigInt64Array)[i] = v;
      else {
        const n = Number(v);
        (data as BigInt64Array)[i] = Number.isFinite(n) ? BigInt(Math.trunc(n)) : 0n;
      }
      return;
    }
    default: (data as TypedArray as Float64Array)[i] = typeof v === 'bigint' ? Number(v) : Number(v);
  }
}
