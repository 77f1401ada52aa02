/**
 * Einsum: a plain loop nest over the label space. Every distinct label (and every ellipsis
 * dimension) gets one loop variable; an operand's offset is Σ idx[label] × stride, with the strides
 * of a label repeated inside one operand added up (which walks its diagonal) and size-1 dims
 * broadcast by stride 0. Output labels are the outer loops, summed labels the inner ones.
 */
import { DTYPES } from '../core/dtype.js';
import { Q8Error, check } from '../core/errors.js';
import { checkShape, sizeOf, stridesOf } from '../core/shape.js';
import type { OpSchema } from './registry.js';

/** Parsed term: labels as numbers; ellipsis dims get negative ids -1, -2, ... counted from the right. */
type Term = number[];

function parseTerm(s: string, rank: number | undefined, what: string): { term: Term; hasEllipsis: boolean } {
  const parts = s.split('...');
  check(parts.length <= 2, () => `Einsum ${what} '${s}' has more than one ellipsis`);
  const letters = (p: string): number[] => [...p].map((c) => {
    check(/^[A-Za-z]$/.test(c), () => `Einsum ${what} '${s}' has an invalid label '${c}'`);
    return c.charCodeAt(0);
  });
  if (parts.length === 1) {
    const t = letters(parts[0]!);
    if (rank !== undefined) check(t.length === rank, () => `Einsum ${what} '${s}' has ${t.length} labels for a rank-${rank} input`);
    return { term: t, hasEllipsis: false };
  }
  const head = letters(parts[0]!), tail = letters(parts[1]!);
  const k = rank === undefined ? -1 : rank - head.length - tail.length;
  if (rank !== undefined) check(k >= 0, () => `Einsum ${what} '${s}' has more labels than the input's rank ${rank}`);
  const ell: number[] = [];
  for (let i = k; i >= 1; i--) ell.push(-i); // -k .. -1: right-aligned ellipsis dims
  return { term: rank === undefined ? [...head, 0, ...tail] : [...head, ...ell, ...tail], hasEllipsis: true };
}

const Einsum: OpSchema = {
  opType: 'Einsum',
  run(inputs, ctx) {
    const eq = ctx.attrs.string('equation', '').replace(/\s+/g, '');
    check(eq.length > 0, 'Einsum needs an equation');
    const xs = inputs.map((t, i) => { if (!t) throw new Q8Error(`Einsum input ${i} is missing`); return t; });
    const arrow = eq.indexOf('->');
    const lhs = arrow >= 0 ? eq.slice(0, arrow) : eq;
    const termsS = lhs.split(',');
    check(termsS.length === xs.length, () => `Einsum equation '${eq}' names ${termsS.length} operands, got ${xs.length} inputs`);
    const dtype = xs[0]!.dtype;
    check(dtype !== 'string' && dtype !== 'bool', () => `Einsum needs numeric inputs, got ${dtype}`);
    for (const x of xs) check(x.dtype === dtype, () => `Einsum inputs must share a type: ${dtype} vs ${x.dtype}`);

    const terms = termsS.map((s, i) => parseTerm(s, xs[i]!.rank, `operand ${i}`));
    const anyEllipsis = terms.some((t) => t.hasEllipsis);
    // Label sizes; ellipsis dims broadcast numpy-style.
    const size = new Map<number, number>();
    terms.forEach(({ term }, i) => term.forEach((l, k) => {
      const d = xs[i]!.shape[k]!;
      const prev = size.get(l);
      if (prev === undefined || prev === 1) size.set(l, d);
      else check(d === prev || d === 1, () => `Einsum label '${l < 0 ? '...' : String.fromCharCode(l)}' has sizes ${prev} and ${d}`);
    }));
    const ellRank = Math.max(0, ...terms.map(({ term }) => term.filter((l) => l < 0).length));
    const ellLabels: number[] = [];
    for (let i = ellRank; i >= 1; i--) ellLabels.push(-i);

    let out: Term;
    if (arrow >= 0) {
      const rhs = eq.slice(arrow + 2);
      const p = parseTerm(rhs, undefined, 'output');
      out = p.term.flatMap((l) => (l === 0 && p.hasEllipsis ? ellLabels : [l]));
      check(!p.hasEllipsis || anyEllipsis || ellRank === 0, 'Einsum output has an ellipsis but no operand does');
      check(new Set(out).size === out.length, () => `Einsum output '${rhs}' repeats a label`);
      for (const l of out) check(size.has(l) || l < 0, () => `Einsum output label '${String.fromCharCode(l)}' does not appear in any operand`);
    } else {
      // Implicit output: ellipsis dims, then labels used exactly once, in alphabetical (ASCII) order.
      const count = new Map<number, number>();
      for (const { term } of terms) for (const l of term) if (l >= 0) count.set(l, (count.get(l) ?? 0) + 1);
      out = [...ellLabels, ...[...count.entries()].filter(([, c]) => c === 1).map(([l]) => l).sort((a, b) => a - b)];
    }
    for (const l of ellLabels) if (!size.has(l)) size.set(l, 1);
    const summed = [...size.keys()].filter((l) => !out.includes(l));
    const loops = [...out, ...summed];
    const dims = loops.map((l) => size.get(l)!);
    const outShape = out.map((l) => size.get(l)!);
    checkShape(outShape, 'Einsum output shape');
    // Per operand, per loop: stride (repeated labels add up; broadcast dims read stride 0).
    const strides = terms.map(({ term }, i) => {
      const x = xs[i]!;
      const st = stridesOf(x.shape);
      return loops.map((l) => term.reduce((acc, tl, k) => (tl === l && x.shape[k] !== 1 ? acc + st[k]! : acc), 0));
    });
    const result = ctx.alloc(dtype, outShape);
    const nOut = sizeOf(outShape);
    const inner = sizeOf(dims.slice(out.length));
    if (nOut === 0) return [result];
    // A plain loop nest: refuse index spaces that would run for hours rather than hang.
    check(nOut * inner <= 1e10, () => `Einsum '${eq}' would visit ${nOut * inner} index combinations (limit 1e10)`);
    const big = DTYPES[dtype].big;
    const datas = xs.map((x) => x.data as unknown as ArrayLike<number>);
    const nIn = xs.length;
    const L = loops.length, nO = out.length;
    const idx = new Array<number>(L).fill(0);
    const offs = new Array<number>(nIn).fill(0);
    const R = result.data as unknown as number[];
    const advance = (from: number, to: number): void => {
      for (let a = from; a >= to; a--) {
        for (let j = 0; j < nIn; j++) offs[j]! += strides[j]![a]!;
        if (++idx[a]! < dims[a]!) break;
        for (let j = 0; j < nIn; j++) offs[j]! -= strides[j]![a]! * dims[a]!;
        idx[a] = 0;
      }
    };
    if (!big && nIn <= 2) {
      // One or two number operands: the innermost summed label runs as a tight dot-product loop.
      const A = datas[0]!, B = datas[1];
      const hasSum = L > nO, last = L - 1;
      const n = hasSum ? dims[last]! : 1;
      const sa = hasSum ? strides[0]![last]! : 0, sb = hasSum && B ? strides[1]![last]! : 0;
      const outerSum = inner / n;
      for (let o = 0; o < nOut; o++) {
        let acc = 0;
        for (let q = 0; q < outerSum; q++) {
          let pa = offs[0]!;
          if (B) { let pb = offs[1]!; for (let i = 0; i < n; i++, pa += sa, pb += sb) acc += A[pa]! * B[pb]!; }
          else for (let i = 0; i < n; i++, pa += sa) acc += A[pa]!;
          advance(last - 1, nO);
        }
        R[o] = acc;
        advance(nO - 1, 0);
      }
      return [result];
    }
    for (let o = 0; o < nOut; o++) {
      let acc: number | bigint = big ? 0n : 0;
      for (let s = 0; s < inner; s++) {
        let prod: number | bigint = big ? 1n : 1;
        for (let j = 0; j < nIn; j++) prod = (prod as number) * (datas[j]![offs[j]!] as number);
        acc = (acc as number) + (prod as number);
        // advance the summed loops (innermost last)
        for (let a = L - 1; a >= nO; a--) {
          for (let j = 0; j < nIn; j++) offs[j]! += strides[j]![a]!;
          if (++idx[a]! < dims[a]!) break;
          for (let j = 0; j < nIn; j++) offs[j]! -= strides[j]![a]! * dims[a]!;
          idx[a] = 0;
        }
      }
      R[o] = acc as number;
      for (let a = nO - 1; a >= 0; a--) {
        for (let j = 0; j < nIn; j++) offs[j]! += strides[j]![a]!;
        if (++idx[a]! < dims[a]!) break;
        for (let j = 0; j < nIn; j++) offs[j]! -= strides[j]![a]! * dims[a]!;
        idx[a] = 0;
      }
    }
    return [result];
  },
};

export const ops: OpSchema[] = [Einsum];
