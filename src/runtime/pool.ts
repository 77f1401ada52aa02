/**
 * Reuse of intermediate tensor memory between nodes and between runs. Buffers handed out by the
 * pool are tracked by their ArrayBuffer; a buffer returns to the pool only when no live value uses
 * it any more (Reshape/Identity outputs share their input's storage) and it was not given to the
 * caller as a graph output.
 */
import { DTYPES, type DType, type TypedArray } from '../core/dtype.js';
import { sizeOf, type Shape } from '../core/shape.js';
import { Tensor } from '../tensor/tensor.js';
import type { Allocator } from './invoke.js';

export class BufferPool implements Allocator {
  /** Buffers free for reuse, in the order they were released (the last one is the most recent). */
  private readonly free: ArrayBuffer[] = [];
  private readonly owned = new WeakSet<ArrayBuffer>();
  private readonly refs = new Map<ArrayBuffer, number>();
  /** Bytes currently held for reuse. */
  heldBytes = 0;

  alloc(dtype: DType, shape: Shape): Tensor {
    return this.take(dtype, shape, true);
  }

  /** Like alloc, but a reused buffer keeps whatever it held: for kernels that write every element. */
  allocOutput(dtype: DType, shape: Shape): Tensor {
    return this.take(dtype, shape, false);
  }

  /**
   * The most recently released buffer of `bytes` to 2·`bytes` (the last node's input, likely still
   * in cache, rather than the same-sized buffer of the previous run), else a new one.
   */
  private take(dtype: DType, shape: Shape, clear: boolean): Tensor {
    const info = DTYPES[dtype];
    const n = sizeOf(shape);
    if (dtype === 'string' || n === 0) return Tensor.zeros(dtype, shape);
    const bytes = n * info.bytes;
    let buf: ArrayBuffer | undefined;
    for (let i = this.free.length - 1; i >= 0; i--) {
      const b = this.free[i]!;
      if (b.byteLength >= bytes && b.byteLength <= 2 * bytes) {
        buf = b;
        this.free.splice(i, 1);
        break;
      }
    }
    if (buf) {
      this.heldBytes -= buf.byteLength;
      if (clear) new Uint8Array(buf, 0, bytes).fill(0);
    } else {
      buf = new ArrayBuffer(bytes);
      this.owned.add(buf);
    }
    return new Tensor(dtype, shape, info.view!(buf, 0, n));
  }

  /** A value now refers to this tensor's storage. */
  retain(t: Tensor): void {
    const b = bufferOf(t);
    if (b && this.owned.has(b)) this.refs.set(b, (this.refs.get(b) ?? 0) + 1);
  }

  /** Whether this tensor's storage is the pool's and only one value refers to it. */
  exclusive(t: Tensor): boolean {
    const b = bufferOf(t);
    return !!b && this.owned.has(b) && this.refs.get(b) === 1;
  }

  /** A value that referred to this tensor's storage is dead. */
  release(t: Tensor): void {
    const b = bufferOf(t);
    if (!b || !this.owned.has(b)) return;
    const c = (this.refs.get(b) ?? 1) - 1;
    if (c > 0) { this.refs.set(b, c); return; }
    this.refs.delete(b);
    this.free.push(b);
    this.heldBytes += b.byteLength;
  }

  /**
   * The caller keeps this tensor: its storage never comes back to the pool. A tensor on part of a
   * larger pool buffer is handed out as an exact copy instead, and the buffer stays in the pool.
   */
  disown(t: Tensor): Tensor {
    const b = bufferOf(t);
    if (!b || !this.owned.has(b)) return t;
    const d = t.data as TypedArray;
    if (d.byteLength !== b.byteLength) {
      const copy = new Tensor(t.dtype, t.shape, d.slice());
      this.release(t);
      return copy;
    }
    this.owned.delete(b);
    this.refs.delete(b);
    return t;
  }
}

function bufferOf(t: Tensor): ArrayBuffer | undefined {
  if (Array.isArray(t.data)) return undefined;
  const buf = (t.data as TypedArray).buffer;
  return buf instanceof ArrayBuffer ? buf : undefined;
}
