/**
 * Shapes are plain number arrays, row-major (C order). Strides are in elements.
 * Limits keep absurd shapes from turning into runaway allocations: MAX_ELEMENTS caps one tensor.
 */
import { check } from './errors.js';

export type Shape = readonly number[];

/** One tensor may hold at most 2^31 - 1 elements (typed-array limit for most element types). */
export const MAX_ELEMENTS = 2 ** 31 - 1;

export function sizeOf(shape: Shape): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Validate that a shape is a list of non-negative safe integers with a bounded element count. */
export function checkShape(shape: Shape, what = 'shape'): void {
  let n = 1;
  for (const d of shape) {
    check(Number.isSafeInteger(d) && d >= 0, () => `${what} [${shape.join(',')}] has an invalid dimension ${d}`);
    n *= d;
  }
  check(n <= MAX_ELEMENTS, () => `${what} [${shape.join(',')}] has ${n} elements, more than the limit ${MAX_ELEMENTS}`);
}

export function stridesOf(shape: Shape): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i]!;
  }
  return s;
}

export function sameShape(a: Shape, b: Shape): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** Numpy-style multidirectional broadcast of any number of shapes. */
export function broadcastShapes(...shapes: Shape[]): number[] {
  const rank = Math.max(0, ...shapes.map((s) => s.length));
  const out = new Array<number>(rank).fill(1);
  for (const s of shapes) {
    for (let i = 0; i < s.length; i++) {
      const j = rank - s.length + i;
      const d = s[i]!;
      const o = out[j]!;
      if (o === 1) out[j] = d;
      else check(d === 1 || d === o, () => `shapes [${shapes.map((x) => x.join(',')).join('] and [')}] do not broadcast`);
    }
  }
  return out;
}

/** Normalise a possibly negative axis against a rank; throws when out of range. */
export function normAxis(axis: number, rank: number, what = 'axis'): number {
  const a = axis < 0 ? axis + rank : axis;
  check(Number.isInteger(a) && a >= 0 && a < Math.max(rank, 1), () => `${what} ${axis} is out of range for rank ${rank}`);
  return a;
}

export function shapeStr(shape: Shape): string {
  return `[${shape.join(',')}]`;
}
