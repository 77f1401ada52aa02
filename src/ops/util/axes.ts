/**
 * Axis handling shared by kernels: negative axes, duplicate checks, and reading an `axes` list that
 * is an attribute in old opsets and an optional input in newer ones.
 */
import { Q8Error } from '../../core/errors.js';
import { normAxis } from '../../core/shape.js';
import type { Tensor } from '../../tensor/tensor.js';
import type { KernelContext } from '../registry.js';

/** Normalise axes against a rank: negatives wrapped, range checked, duplicates rejected, sorted. */
export function normAxes(axes: readonly number[], rank: number, what = 'axes'): number[] {
  const out = axes.map((a) => {
    const n = a < 0 ? a + rank : a;
    if (!Number.isInteger(n) || n < 0 || n >= rank) throw new Q8Error(`${what} [${axes.join(',')}]: ${a} is out of range for rank ${rank}`);
    return n;
  });
  out.sort((x, y) => x - y);
  for (let i = 1; i < out.length; i++) {
    if (out[i] === out[i - 1]) throw new Q8Error(`${what} [${axes.join(',')}] repeats axis ${out[i]}`);
  }
  return out;
}

/** One axis, negative allowed. */
export function axisOf(axis: number, rank: number, what = 'axis'): number {
  return normAxis(axis, rank, what);
}

/** Integer values of a 0-D/1-D int32/int64 tensor (e.g. an `axes` or `axis` input). */
export function intsOf(t: Tensor, what: string): number[] {
  if (t.dtype !== 'int64' && t.dtype !== 'int32') throw new Q8Error(`${what} must be int64 or int32, got ${t.dtype}`);
  if (t.rank > 1) throw new Q8Error(`${what} must be a scalar or 1-D, got rank ${t.rank}`);
  return t.toNumbers();
}

/**
 * The axes of a node whose `axes` moved from an attribute to input `inputIndex` at opset `inputSince`.
 * Returns undefined when no axes are given (attribute absent, input omitted).
 */
export function readAxes(
  inputs: readonly (Tensor | undefined)[], ctx: KernelContext, inputIndex: number, inputSince: number, attr = 'axes',
): number[] | undefined {
  if (ctx.opset >= inputSince) {
    const t = inputs[inputIndex];
    return t ? intsOf(t, attr) : undefined;
  }
  return ctx.attrs.ints(attr);
}

/** Product of shape[from..to). */
export function spanSize(shape: readonly number[], from: number, to: number): number {
  let n = 1;
  for (let i = from; i < to; i++) n *= shape[i]!;
  return n;
}
