/**
 * Element-wise operators: unary math, activations, broadcasting binary/variadic ops, Where, Cast.
 * Reference kernels: flat typed-array loops over a BroadcastPlan (src/ops/util/broadcast.ts).
 *
 * float16/bfloat16 reach these kernels already widened to float32 (schema `half: 'upcast'`), except
 * Cast/CastLike which convert half bits themselves. int64/uint64 use bigint arithmetic; other integer
 * results wrap like C because typed-array stores wrap.
 */
import {
  DTYPES, type DType, f16ToF32, f32ToF16, bf16ToF32, f32ToBf16, dtypeFromOnnx,
} from '../core/dtype.js';
import { Q8Error } from '../core/errors.js';
import { shapeStr, sameShape, type Shape } from '../core/shape.js';
import { Tensor } from '../tensor/tensor.js';
import type { KernelContext, OpSchema } from './registry.js';
import { broadcastPlan, broadcastsTo, legacyBroadcastShape, type BroadcastPlan } from './util/broadcast.js';
import { need } from './tensor-helpers.js';

/* eslint-disable @typescript-eslint/no-explicit-any */
/** Storage arrays are indexed generically inside the loops below. */
type Arr = any;
type Inputs = readonly (Tensor | undefined)[];

// ---- dtype classes ----
type Kind = 'float' | 'int' | 'big' | 'bool' | 'string';
function kindOf(d: DType): Kind {
  if (d === 'bool') return 'bool';
  if (d === 'string') return 'string';
  if (DTYPES[d].float) return 'float';
  return DTYPES[d].big ? 'big' : 'int';
}

function checkKind(t: Tensor, allowed: readonly Kind[], what: string): Kind {
  const k = kindOf(t.dtype);
  if (!allowed.includes(k)) throw new Q8Error(`${what} has dtype ${t.dtype}; expected one of: ${allowed.join(', ')} types`);
  return k;
}

function sameDtype(a: Tensor, b: Tensor, what: string): void {
  if (a.dtype !== b.dtype) throw new Q8Error(`${what}: inputs must have the same dtype, got ${a.dtype} and ${b.dtype}`);
}

// =====================================================================================================
// Unary
// =====================================================================================================

interface UnarySpec {
  /** float32/float64 (and half via upcast). */
  f?: (x: number) => number;
  /** Integer types stored as numbers (int8..uint32). */
  i?: (x: number) => number;
  /** int64/uint64. */
  b?: (x: bigint) => bigint;
  /** bool → bool. */
  bool?: (x: number) => number;
  /** Output is bool (IsNaN, IsInf). */
  outBool?: boolean;
}

/** Generic path: one call per element (hot float ops take fastUnary instead). */
function mapLoop(x: Arr, y: Arr, n: number, f: (v: any) => any): void {
  for (let i = 0; i < n; i++) y[i] = f(x[i]);
}

/** A unary op; `fast` (attribute parameters) routes float inputs through fastUnary's literal loops. */
function unaryOp(opType: string, specOf: (ctx: KernelContext) => UnarySpec, fast?: (ctx: KernelContext) => [number, number]): OpSchema {
  return {
    opType,
    run(inputs, ctx) {
      const x = need(inputs, 0, 'X');
      const k = kindOf(x.dtype);
      if (fast && k === 'float') {
        const [pa, pb] = fast(ctx);
        const y = ctx.alloc(x.dtype, x.shape);
        if (fastUnary(opType, x.data, y.data, x.size, pa, pb)) return [y];
      }
      const spec = specOf(ctx);
      const f = k === 'float' ? spec.f : k === 'int' ? spec.i : k === 'big' ? spec.b : k === 'bool' ? spec.bool : undefined;
      if (!f) throw new Q8Error(`input dtype ${x.dtype} is not supported by ${opType}`);
      const y = ctx.alloc(spec.outBool ? 'bool' : x.dtype, x.shape);
      mapLoop(x.data, y.data, x.size, f);
      return [y];
    },
  };
}

const same = (s: UnarySpec) => () => s;
const noParams = (): [number, number] => [0, 0];

/**
 * Hot activations written out as literal loops: V8 then compiles straight arithmetic instead of an
 * indirect call per element (the shared map loop's call site sees every op and goes megamorphic).
 * Returns false for ops without a fast loop. Parameters a, b are the op's attributes.
 */
function fastUnary(op: string, x: Arr, y: Arr, n: number, a: number, b: number): boolean {
  switch (op) {
    case 'Relu': for (let i = 0; i < n; i++) { const v = x[i]; y[i] = v > 0 ? v : v === v ? 0 : v; } return true;
    case 'LeakyRelu': for (let i = 0; i < n; i++) { const v = x[i]; y[i] = v >= 0 ? v : a * v; } return true;
    case 'Clip': for (let i = 0; i < n; i++) { const v = x[i]; y[i] = v < a ? (a > b ? b : a) : v > b ? b : v; } return true;
    case 'Sigmoid':
      for (let i = 0; i < n; i++) {
        const v = x[i];
        if (v >= 0) y[i] = 1 / (1 + Math.exp(-v));
        else { const e = Math.exp(v); y[i] = e / (1 + e); }
      }
      return true;
    case 'Tanh': for (let i = 0; i < n; i++) y[i] = Math.tanh(x[i]); return true;
    case 'Exp': for (let i = 0; i < n; i++) y[i] = Math.exp(x[i]); return true;
    case 'Sqrt': for (let i = 0; i < n; i++) y[i] = Math.sqrt(x[i]); return true;
    case 'Neg': for (let i = 0; i < n; i++) y[i] = -x[i]; return true;
    case 'Abs': for (let i = 0; i < n; i++) y[i] = Math.abs(x[i]); return true;
    case 'HardSigmoid': for (let i = 0; i < n; i++) { const v = a * x[i] + b; y[i] = v > 1 ? 1 : v > 0 ? v : v === v ? 0 : v; } return true;
    case 'HardSwish': for (let i = 0; i < n; i++) { const v = x[i]; const g = v / 6 + 0.5; y[i] = g >= 1 ? v : g > 0 ? v * g : v === v ? 0 : v; } return true;
    default: return false;
  }
}

function roundHalfEven(x: number): number {
  const r = Math.round(x); // rounds .5 up
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** erf to ~1e-15: Taylor series near 0, continued fraction for erfc in the tails. */
export function erf(x: number): number {
  if (Number.isNaN(x) || x === 0) return x;  // erf(±0) = ±0 (the series' 0 * -0 loses the sign)
  const ax = Math.abs(x);
  if (ax > 6) return Math.sign(x);
  if (ax < 2.5) {
    let term = x;
    let sum = x;
    const x2 = x * x;
    for (let n = 1; n < 200; n++) {
      term *= -x2 / n;
      const t = term / (2 * n + 1);
      sum += t;
      if (Math.abs(t) < 1e-17 * Math.abs(sum)) break;
    }
    return (2 / Math.sqrt(Math.PI)) * sum;
  }
  // erfc(x) = exp(-x^2)/sqrt(pi) * 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + 2/(x + ...))))), evaluated bottom-up.
  let f = ax;
  for (let k = 60; k >= 1; k--) f = ax + (k / 2) / f;
  const erfc = Math.exp(-ax * ax) / Math.sqrt(Math.PI) / f;
  return Math.sign(x) * (1 - erfc);
}

const absB = (x: bigint) => (x < 0n ? -x : x);
const signB = (x: bigint) => (x > 0n ? 1n : x < 0n ? -1n : 0n);
const floatOnly = (f: (x: number) => number): UnarySpec => ({ f });

const unaryOps: OpSchema[] = [
  unaryOp('Abs', same({ f: Math.abs, i: Math.abs, b: absB }), noParams),
  unaryOp('Neg', same({ f: (x) => -x, i: (x) => -x, b: (x) => -x }), noParams),
  unaryOp('Sign', same({ f: (x) => (x > 0 ? 1 : x < 0 ? -1 : x === 0 ? 0 : NaN), i: Math.sign, b: signB })),
  unaryOp('Ceil', same({ f: Math.ceil })),
  unaryOp('Floor', same({ f: Math.floor })),
  unaryOp('Round', same({ f: roundHalfEven })),
  unaryOp('Reciprocal', same(floatOnly((x) => 1 / x))),
  unaryOp('Sqrt', same(floatOnly(Math.sqrt)), noParams),
  unaryOp('Exp', same(floatOnly(Math.exp)), noParams),
  unaryOp('Log', same(floatOnly(Math.log))),
  unaryOp('Sin', same(floatOnly(Math.sin))),
  unaryOp('Cos', same(floatOnly(Math.cos))),
  unaryOp('Tan', same(floatOnly(Math.tan))),
  unaryOp('Asin', same(floatOnly(Math.asin))),
  unaryOp('Acos', same(floatOnly(Math.acos))),
  unaryOp('Atan', same(floatOnly(Math.atan))),
  unaryOp('Sinh', same(floatOnly(Math.sinh))),
  unaryOp('Cosh', same(floatOnly(Math.cosh))),
  unaryOp('Tanh', same(floatOnly(Math.tanh)), noParams),
  unaryOp('Asinh', same(floatOnly(Math.asinh))),
  unaryOp('Acosh', same(floatOnly(Math.acosh))),
  unaryOp('Atanh', same(floatOnly(Math.atanh))),
  unaryOp('Erf', same({ f: erf, i: (x) => Math.trunc(erf(x)) })),
  unaryOp('Not', same({ bool: (x) => (x ? 0 : 1) })),
  unaryOp('IsNaN', same({ f: (x) => (Number.isNaN(x) ? 1 : 0), outBool: true })),
  unaryOp('IsInf', (ctx) => {
    const neg = ctx.attrs.int('detect_negative', 1) !== 0;
    const pos = ctx.attrs.int('detect_positive', 1) !== 0;
    return { f: (x) => ((pos && x === Infinity) || (neg && x === -Infinity) ? 1 : 0), outBool: true };
  }),
  // ---- activations ----
  unaryOp('Relu', same({ f: (x) => (x > 0 ? x : x === x ? 0 : x), i: (x) => (x > 0 ? x : 0), b: (x) => (x > 0n ? x : 0n) }), noParams),
  unaryOp('LeakyRelu', (ctx) => {
    const a = ctx.attrs.float('alpha', 0.01);
    return { f: (x) => (x >= 0 ? x : a * x) };
  }, (ctx) => [ctx.attrs.float('alpha', 0.01), 0]),
  unaryOp('Elu', (ctx) => {
    const a = ctx.attrs.float('alpha', 1);
    return { f: (x) => (x >= 0 ? x : a * (Math.exp(x) - 1)) };
  }),
  unaryOp('Selu', (ctx) => {
    const a = ctx.attrs.float('alpha', 1.67326319217681884765625);
    const g = ctx.attrs.float('gamma', 1.05070102214813232421875);
    return { f: (x) => (x > 0 ? g * x : g * (a * Math.exp(x) - a)) };
  }),
  unaryOp('Celu', (ctx) => {
    const a = ctx.attrs.float('alpha', 1);
    return { f: (x) => Math.max(0, x) + Math.min(0, a * (Math.exp(x / a) - 1)) };
  }),
  unaryOp('HardSigmoid', (ctx) => {
    const a = ctx.attrs.float('alpha', 0.2);
    const b = ctx.attrs.float('beta', 0.5);
    return { f: (x) => Math.max(0, Math.min(1, a * x + b)) };
  }, (ctx) => [ctx.attrs.float('alpha', 0.2), ctx.attrs.float('beta', 0.5)]),
  unaryOp('HardSwish', same({ f: (x) => x * Math.max(0, Math.min(1, x / 6 + 0.5)) }), noParams),
  unaryOp('Sigmoid', same({ f: (x) => (x >= 0 ? 1 / (1 + Math.exp(-x)) : Math.exp(x) / (1 + Math.exp(x))) }), noParams),
  unaryOp('Softplus', same({ f: (x) => (x > 0 ? x + Math.log1p(Math.exp(-x)) : Math.log1p(Math.exp(x))) })),
  unaryOp('Softsign', same({ f: (x) => x / (1 + Math.abs(x)) })),
  unaryOp('ThresholdedRelu', (ctx) => {
    const a = ctx.attrs.float('alpha', 1);
    return { f: (x) => (x > a ? x : 0) };
  }),
  unaryOp('Shrink', (ctx) => {
    const bias = ctx.attrs.float('bias', 0);
    const l = ctx.attrs.float('lambd', 0.5);
    const f = (x: number) => (x < -l ? x + bias : x > l ? x - bias : 0);
    const bb = BigInt(Math.trunc(bias));
    return { f, i: f, b: (x: bigint) => (Number(x) < -l ? x + bb : Number(x) > l ? x - bb : 0n) };
  }),
];

// ---- Clip: min/max attributes before opset 11, optional scalar inputs after ----
const FLT_MAX = 3.4028234663852886e38;
const clipOp: OpSchema = {
  opType: 'Clip',
  run(inputs, ctx) {
    const x = need(inputs, 0, 'input');
    const k = checkKind(x, ['float', 'int', 'big'], 'input');
    let lo: number | bigint | undefined;
    let hi: number | bigint | undefined;
    if (ctx.opset < 11) {
      if (k !== 'float') throw new Q8Error(`Clip before opset 11 takes float inputs, got ${x.dtype}`);
      lo = ctx.attrs.float('min', -FLT_MAX);
      hi = ctx.attrs.float('max', FLT_MAX);
    } else {
      for (const [i, name] of [[1, 'min'], [2, 'max']] as const) {
        const t = inputs[i];
        if (!t) continue;
        if (t.size !== 1) throw new Q8Error(`Clip ${name} must be a scalar, got shape ${shapeStr(t.shape)}`);
        sameDtype(x, t, `Clip ${name}`);
        const v = t.data[0] as number | bigint;
        if (i === 1) lo = v; else hi = v;
      }
    }
    const y = ctx.alloc(x.dtype, x.shape);
    // When min > max every value becomes max (spec).
    if (k !== 'big') {
      fastUnary('Clip', x.data, y.data, x.size, (lo ?? -Infinity) as number, (hi ?? Infinity) as number);
      return [y];
    }
    const l = lo as bigint | undefined, h = hi as bigint | undefined;
    mapLoop(x.data, y.data, x.size, (v: bigint) => {
      if (l !== undefined && v < l) v = l;
      if (h !== undefined && v > h) v = h;
      return v;
    });
    return [y];
  },
};

// ---- PRelu: slope broadcast to X (unidirectional); opset < 7 also takes a per-channel 1-D slope ----
const preluOp: OpSchema = {
  opType: 'PRelu',
  run(inputs, ctx) {
    const x = need(inputs, 0, 'X');
    const s = need(inputs, 1, 'slope');
    const k = checkKind(x, ['float', 'int', 'big'], 'X');
    sameDtype(x, s, 'PRelu');
    let sShape: Shape = s.shape;
    if (ctx.opset < 7 && s.rank === 1 && x.rank >= 2 && s.shape[0] === x.shape[1] && s.size !== 1) {
      sShape = [s.shape[0]!, ...new Array<number>(x.rank - 2).fill(1)];
    }
    if (!broadcastsTo(sShape, x.shape)) throw new Q8Error(`slope ${shapeStr(s.shape)} does not broadcast to X ${shapeStr(x.shape)}`);
    const p = broadcastPlan([x.shape, sShape], x.shape);
    const y = ctx.alloc(x.dtype, x.shape);
    if (k === 'big') binaryLoop(p, x.data, s.data, y.data, (a: bigint, b: bigint) => (a < 0n ? a * b : a));
    else fastBinary('PRelu', p, x.data, s.data, y.data);
    return [y];
  },
};

// =====================================================================================================
// Binary with broadcasting
// =====================================================================================================

function binaryLoop(p: BroadcastPlan, a: Arr, b: Arr, y: Arr, f: (a: any, b: any) => any): void {
  const oa = p.offs[0]!, ob = p.offs[1]!;
  const sa = p.steps[0]!, sb = p.steps[1]!;
  const inner = p.inner;
  for (let o = 0, k = 0; o < p.outer; o++) {
    let ia = oa[o]!, ib = ob[o]!;
    for (let j = 0; j < inner; j++, k++, ia += sa, ib += sb) y[k] = f(a[ia], b[ib]);
  }
}

/**
 * Hot binary ops as literal loops over a plan (see fastUnary for why). Integer stores truncate and
 * wrap, so the same loops serve int8/16/32 Add/Sub/Div and small-int Mul. Max/Min propagate NaN.
 */
function fastBinary(op: string, p: BroadcastPlan, a: Arr, b: Arr, y: Arr): boolean {
  const oa = p.offs[0]!, ob = p.offs[1]!;
  const sa = p.steps[0]!, sb = p.steps[1]!;
  const inner = p.inner, outer = p.outer;
  switch (op) {
    case 'Add':
      for (let o = 0, k = 0; o < outer; o++) { let ia = oa[o]!, ib = ob[o]!; for (let j = 0; j < inner; j++, k++, ia += sa, ib += sb) y[k] = a[ia] + b[ib]; }
      return true;
    case 'Sub':
      for (let o = 0, k = 0; o < outer; o++) { let ia = oa[o]!, ib = ob[o]!; for (let j = 0; j < inner; j++, k++, ia += sa, ib += sb) y[k] = a[ia] - b[ib]; }
      return true;
    case 'Mul':
      for (let o = 0, k = 0; o < outer; o++) { let ia = oa[o]!, ib = ob[o]!; for (let j = 0; j < inner; j++, k++, ia += sa, ib += sb) y[k] = a[ia] * b[ib]; }
      return true;
    case 'Div':
      for (let o = 0, k = 0; o < outer; o++) { let ia = oa[o]!, ib = ob[o]!; for (let j = 0; j < inner; j++, k++, ia += sa, ib += sb) y[k] = a[ia] / b[ib]; }
      return true;
    case 'Mean':
      for (let o = 0, k = 0; o < outer; o++) { let ia = oa[o]!, ib = ob[o]!; for (let j = 0; j < inner; j++, k++, ia += sa, ib += sb) y[k] = (a[ia] + b[ib]) / 2; }
      return true;
    case 'PRelu':
      for (let o = 0, k = 0; o < outer; o++) {
        let ia = oa[o]!, ib = ob[o]!;
        for (let j = 0; j < inner; j++, k++, ia += sa, ib += sb) { const u = a[ia]; y[k] = u < 0 ? u * b[ib] : u; }
      }
      return true;
    case 'Max':
      for (let o = 0, k = 0; o < outer; o++) {
        let ia = oa[o]!, ib = ob[o]!;
        for (let j = 0; j < inner; j++, k++, ia += sa, ib += sb) { const u = a[ia], v = b[ib]; y[k] = u !== u ? u : v > u || v !== v ? v : u; }
      }
      return true;
    case 'Min':
      for (let o = 0, k = 0; o < outer; o++) {
        let ia = oa[o]!, ib = ob[o]!;
        for (let j = 0; j < inner; j++, k++, ia += sa, ib += sb) { const u = a[ia], v = b[ib]; y[k] = u !== u ? u : v < u || v !== v ? v : u; }
      }
      return true;
    default: return false;
  }
}

/** B's effective shape: legacy `broadcast`/`axis` attributes before opset 7, numpy broadcasting after. */
function binaryShapes(a: Tensor, b: Tensor, ctx: KernelContext): Shape {
  if (ctx.opset >= 7) return b.shape;
  if (ctx.attrs.int('broadcast', 0)) return legacyBroadcastShape(a.shape, b.shape, ctx.attrs.int('axis'));
  if (!sameShape(a.shape, b.shape)) {
    throw new Q8Error(`inputs ${shapeStr(a.shape)} and ${shapeStr(b.shape)} differ and attribute broadcast is not set (opset ${ctx.opset})`);
  }
  return b.shape;
}

interface BinarySpec {
  kinds: readonly Kind[];
  /** Element function for number storage; `dtype` lets integer ops pick C semantics. */
  num?: (dtype: DType, ctx: KernelContext) => (a: number, b: number) => number;
  big?: (dtype: DType, ctx: KernelContext) => (a: bigint, b: bigint) => bigint | number;
  str?: (a: string, b: string) => number;
  outBool?: boolean;
}

function binaryOp(opType: string, spec: BinarySpec): OpSchema {
  return {
    opType,
    run(inputs, ctx) {
      if (inputs.length !== 2) throw new Q8Error(`expects 2 inputs, got ${inputs.length}`);
      const a = need(inputs, 0, 'A');
      const b = need(inputs, 1, 'B');
      const k = checkKind(a, spec.kinds, 'A');
      sameDtype(a, b, opType);
      const p = broadcastPlan([a.shape, binaryShapes(a, b, ctx)]);
      const y = ctx.alloc(spec.outBool ? 'bool' : a.dtype, p.shape);
      if ((k === 'float' || (k === 'int' && !(opType === 'Mul' && isInt32(a.dtype)))) && fastBinary(opType, p, a.data, b.data, y.data)) return [y];
      const f = k === 'big' ? spec.big!(a.dtype, ctx) : k === 'string' ? spec.str! : spec.num!(a.dtype, ctx);
      binaryLoop(p, a.data, b.data, y.data, f);
      return [y];
    },
  };
}

const NUM: readonly Kind[] = ['float', 'int', 'big'];
const isInt32 = (d: DType) => d === 'int32' || d === 'uint32';

const binaryOps: OpSchema[] = [
  binaryOp('Add', { kinds: NUM, num: () => (a, b) => a + b, big: () => (a, b) => a + b }),
  binaryOp('Sub', { kinds: NUM, num: () => (a, b) => a - b, big: () => (a, b) => a - b }),
  binaryOp('Mul', {
    kinds: NUM,
    // 32-bit products can exceed 2^53; Math.imul keeps the low 32 bits exactly.
    num: (d) => (isInt32(d) ? Math.imul : (a, b) => a * b),
    big: () => (a, b) => a * b,
  }),
  binaryOp('Div', {
    kinds: NUM,
    // Integer division truncates (the typed-array store truncates); x/0 stores 0.
    num: () => (a, b) => a / b,
    big: () => (a, b) => (b === 0n ? 0n : a / b),
  }),
  binaryOp('Mod', {
    kinds: NUM,
    num: (d, ctx) => {
      const fmod = ctx.attrs.int('fmod', 0) !== 0;
      if (DTYPES[d].float) {
        if (!fmod) throw new Q8Error(`Mod on ${d} needs attribute fmod=1`);
        return (a, b) => a % b;
      }
      if (fmod) return (a, b) => (b === 0 ? 0 : a % b);
      return (a, b) => {
        if (b === 0) return 0;
        const r = a % b;
        return r !== 0 && (r < 0) !== (b < 0) ? r + b : r;
      };
    },
    big: (_d, ctx) => {
      const fmod = ctx.attrs.int('fmod', 0) !== 0;
      return (a, b) => {
        if (b === 0n) return 0n;
        const r = a % b;
        return !fmod && r !== 0n && (r < 0n) !== (b < 0n) ? r + b : r;
      };
    },
  }),
  binaryOp('And', { kinds: ['bool'], num: () => (a, b) => (a && b ? 1 : 0), outBool: true }),
  binaryOp('Or', { kinds: ['bool'], num: () => (a, b) => (a || b ? 1 : 0), outBool: true }),
  binaryOp('Xor', { kinds: ['bool'], num: () => (a, b) => (!a !== !b ? 1 : 0), outBool: true }),
  binaryOp('Equal', {
    kinds: ['float', 'int', 'big', 'bool', 'string'],
    num: () => (a, b) => (a === b ? 1 : 0), big: () => (a, b) => (a === b ? 1 : 0), str: (a, b) => (a === b ? 1 : 0), outBool: true,
  }),
  binaryOp('Greater', { kinds: NUM, num: () => (a, b) => (a > b ? 1 : 0), big: () => (a, b) => (a > b ? 1 : 0), outBool: true }),
  binaryOp('GreaterOrEqual', { kinds: NUM, num: () => (a, b) => (a >= b ? 1 : 0), big: () => (a, b) => (a >= b ? 1 : 0), outBool: true }),
  binaryOp('Less', { kinds: NUM, num: () => (a, b) => (a < b ? 1 : 0), big: () => (a, b) => (a < b ? 1 : 0), outBool: true }),
  binaryOp('LessOrEqual', { kinds: NUM, num: () => (a, b) => (a <= b ? 1 : 0), big: () => (a, b) => (a <= b ? 1 : 0), outBool: true }),
];

// ---- Pow: base and exponent dtypes may differ (opset 12+); the result has the base's dtype ----
function powBig(a: bigint, e: bigint): bigint {
  if (e < 0n) return a === 1n ? 1n : a === -1n ? (e % 2n === 0n ? 1n : -1n) : 0n;
  let r = 1n;
  let base = BigInt.asIntN(64, a);
  while (e > 0n) {
    if (e & 1n) r = BigInt.asIntN(64, r * base);
    base = BigInt.asIntN(64, base * base);
    e >>= 1n;
  }
  return r;
}

const powOp: OpSchema = {
  opType: 'Pow',
  run(inputs, ctx) {
    const a = need(inputs, 0, 'X');
    const b = need(inputs, 1, 'Y');
    const ka = checkKind(a, NUM, 'X');
    const kb = checkKind(b, NUM, 'Y');
    if (ctx.opset < 12) sameDtype(a, b, 'Pow');
    const p = broadcastPlan([a.shape, binaryShapes(a, b, ctx)]);
    const y = ctx.alloc(a.dtype, p.shape);
    if (ka === 'float' && kb === 'float' && (a.dtype === 'float32' || a.dtype === 'float64') && b.size === 1 && b.rank <= a.rank && b.num(0) === 2) {
      // x², as in LayerNorm's variance: one product, exact in float64 for float32 x, so no Math.pow.
      const x = a.data as Float32Array | Float64Array, out = y.data as Float32Array | Float64Array;
      for (let i = 0; i < x.length; i++) out[i] = x[i]! * x[i]!;
      return [y];
    }
    let f: (x: any, e: any) => any;
    if (ka === 'big' && kb === 'big') f = powBig;
    else if (ka === 'big') f = (x: bigint, e: number) => { const r = Math.trunc(Number(x) ** e); return Number.isFinite(r) ? BigInt(r) : 0n; };
    else if (kb === 'big') f = (x: number, e: bigint) => x ** Number(e);
    else if (ka === 'int' && isInt32(a.dtype) && kb === 'int') {
      // Exact for 32-bit results: repeated multiplication with wrap-around, like C.
      f = (x: number, e: number) => {
        if (e < 0) return x === 1 ? 1 : x === -1 ? (e % 2 === 0 ? 1 : -1) : 0;
        let r = 1;
        for (let base = x; e > 0; e = Math.floor(e / 2), base = Math.imul(base, base)) if (e % 2) r = Math.imul(r, base);
        return r;
      };
    } else f = (x: number, e: number) => x ** e;
    binaryLoop(p, a.data, b.data, y.data, f);
    return [y];
  },
};

// ---- Variadic Max/Min/Sum/Mean (broadcasting; older opsets required equal shapes, a special case) ----
function variadicOp(opType: 'Max' | 'Min' | 'Sum' | 'Mean'): OpSchema {
  return {
    opType,
    run(inputs, ctx) {
      if (inputs.length < 1) throw new Q8Error('expects at least one input');
      const xs = inputs.map((_, i) => need(inputs, i, `input ${i}`));
      const x0 = xs[0]!;
      checkKind(x0, opType === 'Mean' ? ['float'] : NUM, 'input 0');
      for (const t of xs) sameDtype(x0, t, opType);
      const p = broadcastPlan(xs.map((t) => t.shape));
      const y = ctx.alloc(x0.dtype, p.shape);
      const n = xs.length;
      const kind = kindOf(x0.dtype);
      if (n === 2 && (kind === 'float' || kind === 'int')) {
        if (fastBinary(opType === 'Sum' ? 'Add' : opType, p, xs[0]!.data, xs[1]!.data, y.data)) return [y];
      }
      const datas = xs.map((t) => t.data as Arr);
      const yd = y.data as Arr;
      const cur = p.offs.map(() => 0);
      const isMax = opType === 'Max', isMin = opType === 'Min';
      for (let o = 0, q = 0; o < p.outer; o++) {
        for (let i = 0; i < n; i++) cur[i] = p.offs[i]![o]!;
        for (let j = 0; j < p.inner; j++, q++) {
          let acc = datas[0][cur[0]!];
          for (let i = 1; i < n; i++) {
            const v = datas[i][cur[i]!];
            if (isMax) { if (v > acc || v !== v) acc = acc !== acc ? acc : v; }
            else if (isMin) { if (v < acc || v !== v) acc = acc !== acc ? acc : v; }
            else acc = acc + v;
          }
          yd[q] = opType === 'Mean' ? acc / n : acc;
          for (let i = 0; i < n; i++) cur[i]! += p.steps[i]!;
        }
      }
      return [y];
    },
  };
}

// ---- Where ----
const whereOp: OpSchema = {
  opType: 'Where',
  run(inputs, ctx) {
    const c = need(inputs, 0, 'condition');
    const x = need(inputs, 1, 'X');
    const yIn = need(inputs, 2, 'Y');
    if (c.dtype !== 'bool') throw new Q8Error(`condition must be bool, got ${c.dtype}`);
    sameDtype(x, yIn, 'Where');
    const p = broadcastPlan([c.shape, x.shape, yIn.shape]);
    const out = ctx.alloc(x.dtype, p.shape);
    const cd = c.data as Uint8Array, xd = x.data as Arr, yd = yIn.data as Arr, od = out.data as Arr;
    const [oc, ox, oy] = p.offs as [Int32Array, Int32Array, Int32Array];
    const [sc, sx, sy] = p.steps as [number, number, number];
    for (let o = 0, k = 0; o < p.outer; o++) {
      let ic = oc[o]!, ix = ox[o]!, iy = oy[o]!;
      for (let j = 0; j < p.inner; j++, k++, ic += sc, ix += sx, iy += sy) od[k] = cd[ic] ? xd[ix] : yd[iy];
    }
    return [out];
  },
};

// =====================================================================================================
// Cast / CastLike
// =====================================================================================================

/** ONNX string → number parsing: decimal/scientific, "NaN", "INF"/"-INF"/"inf"/"infinity". */
function parseNumber(s: string): number {
  const t = s.trim().toLowerCase();
  if (t === 'nan' || t === '+nan' || t === '-nan') return NaN;
  if (t === 'inf' || t === '+inf' || t === 'infinity' || t === '+infinity') return Infinity;
  if (t === '-inf' || t === '-infinity') return -Infinity;
  const v = Number(t);
  if (t === '' || Number.isNaN(v)) throw new Q8Error(`Cast: cannot parse string '${s}' as a number`);
  return v;
}

/** Number → string as a float32 prints with the shortest round-trip digits (numpy-like: 'NaN', 'INF'). */
function formatNumber(v: number, from: DType): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return 'INF';
  if (v === -Infinity) return '-INF';
  if (from === 'float32' || from === 'float16' || from === 'bfloat16') return shortestF32(v);
  return String(v);
}

const f32buf = new Float32Array(1);
function shortestF32(v: number): string {
  for (let p = 1; p <= 17; p++) {
    const s = v.toPrecision(p);
    f32buf[0] = Number(s);
    if (f32buf[0] === v) return String(Number(s));
  }
  return String(v);
}

function castTensor(x: Tensor, to: DType, ctx: KernelContext): Tensor {
  if (x.dtype === to) return x;
  const n = x.size;
  const y = ctx.alloc(to, x.shape);
  const src = x.data as Arr;
  const dst = y.data as Arr;
  const fromK = kindOf(x.dtype);
  // Read element i as a number or bigint.
  const read: (i: number) => number | bigint =
    x.dtype === 'float16' ? (i) => f16ToF32(src[i]) :
      x.dtype === 'bfloat16' ? (i) => bf16ToF32(src[i]) :
        x.dtype === 'string' ? (i) => parseNumber(src[i]) :
          (i) => src[i];
  if (to === 'string') {
    for (let i = 0; i < n; i++) {
      const v = read(i);
      dst[i] = typeof v === 'bigint' ? v.toString() : fromK === 'bool' ? (v ? 'true' : 'false') : fromK === 'float' ? formatNumber(v, x.dtype) : String(v);
    }
    return y;
  }
  if (x.dtype === 'string' && (to === 'int64' || to === 'uint64')) {
    // Parse integers exactly as bigints when they are written as integers.
    for (let i = 0; i < n; i++) {
      const s = String(src[i]).trim();
      if (/^[+-]?\d+$/.test(s)) dst[i] = BigInt(s);
      else { const v = parseNumber(s); dst[i] = Number.isFinite(v) ? BigInt(Math.trunc(v)) : 0n; }
    }
    return y;
  }
  if (x.dtype === 'string' && to === 'bool') {
    for (let i = 0; i < n; i++) {
      const s = String(src[i]).trim().toLowerCase();
      dst[i] = s === 'true' ? 1 : s === 'false' ? 0 : parseNumber(s) !== 0 ? 1 : 0;
    }
    return y;
  }
  switch (to) {
    case 'float16': case 'bfloat16': {
      const enc = to === 'float16' ? f32ToF16 : f32ToBf16;
      const dec = to === 'float16' ? f16ToF32 : bf16ToF32;
      const wide = x.dtype === 'float64' || fromK === 'big' || x.dtype === 'int32' || x.dtype === 'uint32';
      for (let i = 0; i < n; i++) {
        const v = Number(read(i));
        dst[i] = wide ? halfFromWide(v, enc, dec, to === 'float16' ? 65520 : Infinity) : enc(v);
      }
      break;
    }
    case 'bool': for (let i = 0; i < n; i++) { const v = read(i); dst[i] = v ? 1 : 0; } break; // NaN → false? see below
    case 'int64': case 'uint64':
      for (let i = 0; i < n; i++) {
        const v = read(i);
        if (typeof v === 'bigint') dst[i] = v;
        else dst[i] = Number.isFinite(v) ? BigInt(Math.trunc(v)) : 0n;
      }
      break;
    default:
      // float32/64 round; integer stores truncate toward zero and wrap like C.
      for (let i = 0; i < n; i++) { const v = read(i); dst[i] = typeof v === 'bigint' ? Number(v) : v; }
      if (!DTYPES[to].float && fromK === 'big') {
        // Number(bigint) can lose low bits before the wrap; wrap exactly instead.
        const bits = DTYPES[to].bytes * 8;
        const signed = DTYPES[to].signed;
        for (let i = 0; i < n; i++) {
          const v = src[i] as bigint;
          dst[i] = Number(signed ? BigInt.asIntN(bits, v) : BigInt.asUintN(bits, v));
        }
      }
  }
  if (to === 'bool' && fromK === 'float') {
    // NaN is truthy in C/numpy casts (non-zero).
    for (let i = 0; i < n; i++) { const v = read(i) as number; if (v !== v) dst[i] = 1; }
  }
  return y;
}

/**
 * Round a float64 to a 16-bit float directly: going through float32 first can round twice and land
 * one step off when the float32 value sits exactly halfway between two 16-bit values.
 */
function halfFromWide(v: number, enc: (x: number) => number, dec: (h: number) => number, overflow: number): number {
  const h = enc(v);
  if (!Number.isFinite(v) || Math.fround(v) === v) return h;
  if (Math.abs(v) >= overflow) return h;
  let best = h;
  let bestErr = Math.abs(dec(h) - v);
  for (const c of [h - 1, h + 1]) {
    if ((c & 0x7fff) === 0x7fff || ((c ^ h) & 0x8000)) continue; // stay within the same sign, skip NaN
    const d = dec(c);
    if (!Number.isFinite(d)) continue;
    const err = Math.abs(d - v);
    if (err < bestErr || (err === bestErr && (c & 1) === 0)) { best = c; bestErr = err; }
  }
  return best;
}

function castTarget(ctx: KernelContext): DType {
  const s = ctx.attrs.raw('to');
  // Opset 1 spelled `to` as a string ("FLOAT", "INT64", ...).
  if (s && s.type === 'string') {
    const name = s.value.toLowerCase() === 'float' ? 'float32' : s.value.toLowerCase() === 'double' ? 'float64' : s.value.toLowerCase();
    if (name in DTYPES) return name as DType;
    throw new Q8Error(`Cast: unknown target type '${s.value}'`);
  }
  const to = ctx.attrs.int('to');
  if (to === undefined) throw new Q8Error('Cast needs attribute to');
  const d = dtypeFromOnnx(to);
  if (!d) throw new Q8Error(`Cast: target type code ${to} is not supported`);
  return d;
}

const castOps: OpSchema[] = [
  {
    opType: 'Cast', half: 'native',
    run(inputs, ctx) {
      const x = need(inputs, 0, 'input');
      return [castTensor(x, castTarget(ctx), ctx)];
    },
  },
  {
    opType: 'CastLike', half: 'native',
    run(inputs, ctx) {
      const x = need(inputs, 0, 'input');
      const t = need(inputs, 1, 'target_type');
      return [castTensor(x, t.dtype, ctx)];
    },
  },
];

export { castTensor, kindOf };

export const ops: OpSchema[] = [
  ...unaryOps, clipOp, preluOp, ...binaryOps, powOp,
  variadicOp('Max'), variadicOp('Min'), variadicOp('Sum'), variadicOp('Mean'),
  whereOp, ...castOps,
];
