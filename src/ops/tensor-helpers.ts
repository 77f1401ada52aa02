/**
 * Helpers shared by the tensor-operator group files (shape-ops, gather-scatter, resize): input and
 * attribute access, and the strided-copy / table-gather element loops, compiled once per storage type.
 */
import { dtypeFromOnnx, type DType, type TensorData } from '../core/dtype.js';
import { Q8Error, check } from '../core/errors.js';
import { normAxis, shapeStr, sizeOf, stridesOf, type Shape } from '../core/shape.js';
import { Tensor } from '../tensor/tensor.js';
import type { KernelContext } from './registry.js';

/** The input at `i`, or a Q8Error naming it. */
export function need(inputs: readonly (Tensor | undefined)[], i: number, what = `input ${i}`): Tensor {
  const t = inputs[i];
  if (!t) throw new Q8Error(`missing required input ${i} (${what})`);
  return t;
}

export function isIntType(d: DType): boolean {
  return d === 'int8' || d === 'int16' || d === 'int32' || d === 'int64' || d === 'uint8' || d === 'uint16' || d === 'uint32' || d === 'uint64';
}

/** A small integer tensor (shape, axes, indices) as plain numbers, checking its type. */
export function intList(t: Tensor, what: string): number[] {
  check(isIntType(t.dtype), () => `${what} must be an integer tensor, got ${t.dtype}`);
  return t.toNumbers();
}

/** One number from a scalar or one-element tensor. */
export function scalarOf(t: Tensor, what: string): number {
  check(t.size === 1, () => `${what} must hold exactly one value, got shape ${shapeStr(t.shape)}`);
  return t.num(0);
}

/** Normalise a list of axes (negative allowed), rejecting duplicates. */
export function normAxes(axes: readonly number[], rank: number, what = 'axes'): number[] {
  const out = axes.map((a) => normAxis(a, rank, what));
  check(new Set(out).size === out.length, () => `${what} [${axes.join(',')}] has duplicates`);
  return out;
}

/**
 * Copy a strided view of `src` into `dst`: for every index i of `shape`,
 * dst[dOff + Σ i_k dStr_k] = src[sOff + Σ i_k sStr_k]. Strides may be negative or zero.
 * Innermost runs with unit strides use TypedArray.set.
 */
export function copyStrided(
  shape: Shape, dst: TensorData, dOff: number, dStr: readonly number[], src: TensorData, sOff: number, sStr: readonly number[],
): void {
  const r = shape.length;
  if (sizeOf(shape) === 0) return;
  if (r === 0) { (dst as unknown[])[dOff] = (src as unknown[])[sOff]; return; }
  // Merge adjacent dims that are contiguous in both views (makes reshape-like copies one block).
  const sh: number[] = [shape[0]!];
  const ds: number[] = [dStr[0]!];
  const ss: number[] = [sStr[0]!];
  for (let k = 1; k < r; k++) {
    const j = sh.length - 1;
    if (ds[j] === dStr[k]! * shape[k]! && ss[j] === sStr[k]! * shape[k]!) {
      sh[j] = sh[j]! * shape[k]!; ds[j] = dStr[k]!; ss[j] = sStr[k]!;
    } else if (shape[k] !== 1) { sh.push(shape[k]!); ds.push(dStr[k]!); ss.push(sStr[k]!); }
  }
  const m = sh.length;
  const block = ds[m - 1] === 1 && ss[m - 1] === 1 && sh[m - 1]! >= 8 && !Array.isArray(src);
  stridedLoopFor(src)(sh, dst, dOff, ds, src, sOff, ss, block);
}

/**
 * The element loop of copyStrided. Self-contained (no outer references) so `perElementType` can
 * compile one private copy per storage type.
 */
function stridedLoop(
  sh: number[], dst: Float64Array, dOff: number, ds: number[], src: Float64Array, sOff: number, ss: number[], block: boolean,
): void {
  const m = sh.length;
  const n = sh[m - 1]!, di = ds[m - 1]!, si = ss[m - 1]!;
  const idx = new Array<number>(m).fill(0);
  let d = dOff, s = sOff;
  for (;;) {
    if (block) dst.set(src.subarray(s, s + n), d);
    else if (si === 0) { const v = src[s]!; for (let i = 0, dd = d; i < n; i++, dd += di) dst[dd] = v; }
    else for (let i = 0, dd = d, q = s; i < n; i++, dd += di, q += si) dst[dd] = src[q]!;
    // advance the outer odometer
    let k = m - 2;
    for (; k >= 0; k--) {
      d += ds[k]!; s += ss[k]!;
      if (++idx[k]! < sh[k]!) break;
      d -= ds[k]! * sh[k]!; s -= ss[k]! * sh[k]!; idx[k] = 0;
    }
    if (k < 0) return;
  }
}

/**
 * One compiled copy of a self-contained function per storage type. V8 keeps type feedback per
 * function, so a single element loop that sees Float32Array, BigInt64Array, Uint8Array, ... goes
 * megamorphic and runs ~15x slower (measured on a 800K-element transpose: 7 ms vs 145 ms).
 */
export function perElementType<F extends (...args: never[]) => unknown>(fn: F): (data: TensorData) => F {
  const copies = new Map<unknown, F>();
  const source = fn.toString();
  return (data) => {
    const key = Array.isArray(data) ? Array : data.constructor;
    let f = copies.get(key);
    if (!f) {
      f = new Function(`return (${source.startsWith('function') ? source : 'function ' + source})`)() as F;
      copies.set(key, f);
    }
    return f;
  };
}

const stridedLoopFor = perElementType(stridedLoop as (...a: never[]) => void) as unknown as
  (data: TensorData) => (sh: number[], dst: TensorData, dOff: number, ds: number[], src: TensorData, sOff: number, ss: number[], block: boolean) => void;

/**
 * Gather through per-axis offset tables: out[i_0, .., i_{r-1}] = src[base + Σ_a maps[a][i_a]]; a
 * negative total (a -Infinity entry) writes `fill` instead. Self-contained for perElementType.
 */
function mapGather(dst: Float64Array, src: Float64Array, maps: Float64Array[], outShape: readonly number[], base0: number, fill: number): void {
  const r = outShape.length;
  const total = dst.length;
  const idx = new Array<number>(r).fill(0);
  const inner = outShape[r - 1]!, last = maps[r - 1]!;
  for (let o = 0; o < total; o += inner) {
    let base = base0;
    for (let a = 0; a < r - 1; a++) base += maps[a]![idx[a]!]!;
    for (let i = 0; i < inner; i++) {
      const off = base + last[i]!;
      dst[o + i] = off >= 0 ? src[off]! : fill;
    }
    for (let a = r - 2; a >= 0; a--) { if (++idx[a]! < outShape[a]!) break; idx[a] = 0; }
  }
}

/** mapGather compiled per storage type (rank >= 1, non-empty output). */
export const mapGatherFor = perElementType(mapGather as (...a: never[]) => void) as unknown as
  (data: TensorData) => (dst: TensorData, src: TensorData, maps: Float64Array[], outShape: readonly number[], base0: number, fill: unknown) => void;

/** Transpose `x` by `perm` (output dim i = input dim perm[i]). */
export function transpose(x: Tensor, perm: readonly number[], ctx?: KernelContext): Tensor {
  const r = x.rank;
  check(perm.length === r && new Set(perm).size === r && perm.every((p) => Number.isInteger(p) && p >= 0 && p < r),
    () => `perm [${perm.join(',')}] is not a permutation of ${r} axes`);
  const outShape = perm.map((p) => x.shape[p]!);
  const out = ctx ? ctx.alloc(x.dtype, outShape) : Tensor.zeros(x.dtype, outShape);
  const xs = stridesOf(x.shape);
  copyStrided(outShape, out.data, 0, stridesOf(outShape), x.data, 0, perm.map((p) => xs[p]!));
  return out;
}

/** A fresh tensor of `shape` filled with `x` broadcast numpy-style (x's shape must broadcast to it). */
export function broadcastTo(x: Tensor, shape: Shape, ctx?: KernelContext): Tensor {
  const r = shape.length;
  check(x.rank <= r, () => `cannot broadcast ${shapeStr(x.shape)} to ${shapeStr(shape)}`);
  const xs = stridesOf(x.shape);
  const sStr = new Array<number>(r).fill(0);
  for (let i = 0; i < x.rank; i++) {
    const j = r - x.rank + i;
    const d = x.shape[i]!;
    check(d === shape[j] || d === 1, () => `cannot broadcast ${shapeStr(x.shape)} to ${shapeStr(shape)}`);
    sStr[j] = d === 1 ? 0 : xs[i]!;
  }
  const out = ctx ? ctx.alloc(x.dtype, shape) : Tensor.zeros(x.dtype, shape);
  copyStrided(shape, out.data, 0, stridesOf(shape), x.data, 0, sStr);
  return out;
}

/** ONNX `dtype` attribute code → DType, with a clear error. */
export function dtypeAttr(code: number, what: string): DType {
  const d = dtypeFromOnnx(code);
  if (!d) throw new Q8Error(`${what}: unsupported data type code ${code}`);
  return d;
}

