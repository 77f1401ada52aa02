/**
 * The 'native' backend: fast kernels from the N-API addon build/Release/q8_native.node (native/,
 * built by `npm install` when a C++ compiler is present). Importing this module never throws: when
 * the addon is missing or fails to load, the backend reports itself unavailable and the session
 * falls back to the next backend.
 *
 * Weights are packed once at compile time into the addon's layout (an opaque handle); each call
 * hands the addon the run-time inputs and a preallocated output. Nodes the addon does not cover
 * (dtypes, ranks, non-constant weights, non-nesting windows) compile to null: the reference runs.
 *
 * Q8_NATIVE_ISA=avx512vnni|avxvnni|avx2|scalar forces a lower instruction set (never a higher one
 * than the CPU has), so tests cover every path the machine can run.
 */
import { createRequire } from 'node:module';
import {
  biasOf, convF32Plan, convResidual, dynamicMatMulKernel, fusedAct, convKernel, fastKernels, gemmKernel, gemmPlan, matMulPlan, maxPoolGeometry, q8ConvPlan, q8GemmPlan, reference,
  rowsKernel, windowsNest, type ActCode,
} from '../compile-helpers.js';
import { findPackageFile } from '../package-file.js';
import { Attrs } from '../../ops/attrs.js';
import { broadcastPlan, type BroadcastPlan } from '../../ops/util/broadcast.js';
import { sameShape, stridesOf } from '../../core/shape.js';
import type { Kernel } from '../../ops/registry.js';
import { registerBackend, type Backend, type CompileArgs, type FastKernel } from '../registry.js';

export type { ActCode } from '../compile-helpers.js';

/** An opaque packed-weights handle owned by the addon. */
export type Packed = { readonly __packed: unique symbol };

export type NativeIsa = 'avx512vnni' | 'avxvnni' | 'avx2' | 'scalar';

/** binaryF32's op codes. */
const BINARY_OPS = { Add: 0, Sub: 1, Mul: 2, Div: 3 } as const;
type BinaryOp = (typeof BINARY_OPS)[keyof typeof BINARY_OPS];

export interface NativeAddon {
  /** packedBytes: packed weights alive in the addon (also reported to V8 as external memory). */
  /** residual: convF32/convQ8 add a residual in their store (absent in older builds). */
  info(): { isa: NativeIsa; best: NativeIsa; compiler: string; threads: number; packedBytes: number; residual?: boolean };
  setThreads(n: number): void;
  /** Use a lower ISA than the best one (capped at what the CPU has); returns the ISA now in use. */
  setIsa(isa: NativeIsa): NativeIsa;
  /** W [N, K] (out = A·Wᵀ). */
  packF32(W: Float32Array, N: number, K: number): Packed;
  gemmF32(A: Float32Array, M: number, K: number, packed: Packed, bias: Float32Array | null,
    act: ActCode, clipMin: number, clipMax: number, out: Float32Array): void;
  /** Wq [N, K] int8, Wscale [N] (weightBlock 0) or [N, ceil(K/weightBlock)]. */
  packI8(Wq: Int8Array, Wscale: Float32Array, N: number, K: number, weightBlock: number, actBlock: number): Packed;
  gemmQ8(A: Float32Array, M: number, K: number, packed: Packed, actBlock: number, bias: Float32Array | null,
    act: ActCode, clipMin: number, clipMax: number, out: Float32Array): void;
  /** W [M, Kg] with Kg = (C/group)*kh*kw in ONNX order. */
  packConvF32(W: Float32Array, M: number, Kg: number, group: number, khw?: number): Packed;
  /** khw = kh*kw (optional) lets the addon reorder K tap-major when one window spans the patch. */
  packConvI8(Wq: Int8Array, Wscale: Float32Array, M: number, Kg: number, group: number, weightBlock: number, actBlock: number, khw?: number, actTap?: number): Packed;
  /** geometry: [batch, C, H, W, kh, kw, sh, sw, dh, dw, padTop, padLeft, OH, OW]; X, out NCHW. */
  /** residual (optional, out's shape, not overlapping it): out = act(conv + bias + residual). */
  convF32(X: Float32Array, geometry: Int32Array, packed: Packed, bias: Float32Array | null,
    act: ActCode, clipMin: number, clipMax: number, out: Float32Array, residual?: Float32Array | null): void;
  convQ8(X: Float32Array, geometry: Int32Array, packed: Packed, bias: Float32Array | null,
    act: ActCode, clipMin: number, clipMax: number, out: Float32Array, residual?: Float32Array | null): void;
  /**
   * Benchmark only (bench/gemm.ts): one phase of convQ8's panel kernel, 1 = pack (channel max,
   * im2col, quantization), 2 = GEMM on stale panels (out is garbage). Absent in older builds.
   */
  convQ8Phase?(X: Float32Array, geometry: Int32Array, packed: Packed, phase: 1 | 2, out: Float32Array): void;
  /** 2-D MaxPool over NCHW X; geometry as convF32's with dh = dw = 1. NaN in a window gives NaN. */
  maxPoolF32(X: Float32Array, geometry: Int32Array, out: Float32Array): void;
  /**
   * Broadcasting Add/Sub/Mul/Div (op 0..3) over a BroadcastPlan: run o of `inner` outputs reads A
   * from offsA[o] with step stepA (0 or 1), B likewise. act 1 (Add only): then v < 0 ? 0 : v.
   */
  binaryF32(A: Float32Array, B: Float32Array, op: BinaryOp, act: 0 | 1, offsA: Int32Array, stepA: number,
    offsB: Int32Array, stepB: number, inner: number, out: Float32Array): void;
  /** out[i] = A[i]·B[i] (A [M, K], B [K, N], out [M, N]) for i < batches; bShared 1: one B for all. */
  matmulF32(A: Float32Array, B: Float32Array, batches: number, M: number, K: number, N: number, bShared: 0 | 1, out: Float32Array): void;
  /** q8.LayerNorm over rows of gamma.length values. */
  layerNormF32(X: Float32Array, gamma: Float32Array, beta: Float32Array, epsilon: number, out: Float32Array): void;
  /** out (row-major over shape) = X at sum(index·strides), 4-byte elements copied bit for bit. */
  transpose32(X: Float32Array, shape: Int32Array, strides: Int32Array, out: Float32Array): void;
  /** Softmax over each row of `cols` contiguous values. */
  softmaxF32(X: Float32Array, cols: number, out: Float32Array): void;
  /** ONNX Relu over out.length values. */
  reluF32(X: Float32Array, out: Float32Array): void;
  erfF32?(X: Float32Array, out: Float32Array): void;
  /** GlobalAveragePool: out[p] = mean of the `size` values of plane p (float64 sum in order). */
  globalAvgF32?(X: Float32Array, size: number, out: Float32Array): void;
  /** q8.Gelu: out = (x * (erf(x / div) + add)) * mul in float32 steps (the native erf). */
  geluF32?(X: Float32Array, div: number, add: number, mul: number, out: Float32Array): void;
  /** Index of the first NaN in X, or -1 (the input check of Model.run). */
  firstNaNF32?(X: Float32Array): number;
  /** A register-only loop of the int8 dot ('int8') or FMA ('f32') on the calling thread. */
  peak(kind: 'int8' | 'f32', iterations: number): { ops: number; seconds: number };
}

let addon: NativeAddon | null = null;
/** Why the addon is unavailable (null when it loaded). */
export let nativeLoadError: string | null = null;
try {
  // dist/src/kernels/native/index.js or src/kernels/native/index.ts: the addon is under the package root.
  const path = findPackageFile(import.meta.url, 'build', 'Release', 'q8_native.node');
  if (!path) nativeLoadError = 'build/Release/q8_native.node not found (native addon not built)';
  else addon = createRequire(import.meta.url)(path) as NativeAddon;
} catch (e) {
  nativeLoadError = `native addon failed to load: ${(e as Error).message}`;
}

/** The loaded addon, or null. */
export function nativeAddon(): NativeAddon | null {
  return addon;
}

// ---------------------------------------------------------------------------------------------

/** Windows the addon handles: 0 or a multiple of 4, and the two nest. */
const windowsOk = (wb: number, ab: number) => windowsNest(wb, ab, 4);

/** Whether convF32/convQ8 take a residual (argument 8): an addon built before that ignores it. */
const residualInStore = () => addon!.info().residual === true;

function compileConv(args: CompileArgs): Kernel | null {
  const n = addon!;
  const c = convF32Plan(args);
  const fused = fusedAct(args.node);
  if (!c || !fused) return null;
  const { plan } = c;
  const { act, residual } = convResidual(args.node, fused, residualInStore());
  const packed = n.packConvF32(c.W, plan.M, c.Kg, plan.group, plan.kDims.reduce((x, y) => x * y, 1));
  return convKernel(plan, 2, reference(args.node),
    (X, geo, bias, out, res) => n.convF32(X, geo, packed, bias, act.code, act.lo, act.hi, out, res), residual);
}

function compileQ8Conv(args: CompileArgs): Kernel | null {
  const n = addon!;
  const q = q8ConvPlan(args, windowsOk);
  if (!q) return null;
  const { plan, wb, ab, tap } = q;
  // Tap windows run natively for ungrouped convs (the reference runs the rest).
  if (tap && plan.group !== 1) return null;
  const { act, residual } = convResidual(args.node, q.act, residualInStore());
  const khw = plan.kDims.reduce((x, y) => x * y, 1);
  const packed = n.packConvI8(q.Wq, q.Ws, plan.M, q.Kg, plan.group, wb, ab, khw, tap ? 1 : 0);
  return convKernel(plan, 3, reference(args.node),
    (X, geo, bias, out, res) => n.convQ8(X, geo, packed, bias, act.code, act.lo, act.hi, out, res), residual);
}

function compileQ8Gemm(args: CompileArgs): Kernel | null {
  const n = addon!;
  const q = q8GemmPlan(args, windowsOk);
  if (!q) return null;
  const { N, K, wb, ab, act } = q;
  const packed = n.packI8(q.Wq, q.Ws, N, K, wb, ab);
  return rowsKernel(K, N, reference(args.node), 1,
    (A, M, bias, out) => n.gemmQ8(A, M, K, packed, ab, bias, act.code, act.lo, act.hi, out),
    (inputs) => biasOf(inputs[3], N));
}

function compileGemm(args: CompileArgs): Kernel | null {
  const n = addon!;
  const g = gemmPlan(args);
  if (!g) return null;
  const packed = n.packF32(g.W, g.N, g.K);
  return gemmKernel(g, reference(args.node), (A, M, out) => n.gemmF32(A, M, g.K, packed, g.bias, 0, 0, 0, out));
}

function compileMatMul(args: CompileArgs): Kernel | null {
  const n = addon!;
  if (!args.consts[1]) {
    // B known only at run time: the addon packs each slice (O(K·N)) and runs the GEMM (O(M·K·N)).
    return dynamicMatMulKernel(reference(args.node), (A, B, batches, M, K, N, shared, out) => n.matmulF32(A, B, batches, M, K, N, shared ? 1 : 0, out));
  }
  const m = matMulPlan(args);
  if (!m) return null;
  const { K, N } = m;
  const packed = n.packF32(m.W, N, K);
  return rowsKernel(K, N, reference(args.node), 2,
    (A, M, _bias, out) => n.gemmF32(A, M, K, packed, null, 0, 0, 0, out),
    () => null);
}

function compileMaxPool(args: CompileArgs): Kernel | null {
  const n = addon!;
  const ref = reference(args.node);
  return (inputs, ctx) => {
    const g = maxPoolGeometry(inputs[0], ctx);
    if (!g) return ref(inputs, ctx);
    const Y = ctx.allocOutput('float32', g.outShape);
    n.maxPoolF32(inputs[0]!.data as Float32Array, g.geo, Y.data as Float32Array);
    return [Y];
  };
}

/** An element-wise float32 op run by `fn(X, out)`; other dtypes run the reference. */
function unaryF32(args: CompileArgs, fn: (X: Float32Array, out: Float32Array) => void): Kernel {
  const ref = reference(args.node);
  return (inputs, ctx) => {
    const X = inputs[0];
    if (!X || X.dtype !== 'float32') return ref(inputs, ctx);
    const Y = ctx.allocOutput('float32', X.shape);
    if (Y.size) fn(X.data as Float32Array, Y.data as Float32Array);
    return [Y];
  };
}

function compileRelu(args: CompileArgs): Kernel | null {
  const n = addon!;
  return unaryF32(args, (X, out) => n.reluF32(X, out));
}

function compileGlobalAveragePool(args: CompileArgs): Kernel | null {
  const n = addon!;
  const gap = n.globalAvgF32;
  if (!gap) return null;  // an addon built before it existed
  const ref = reference(args.node);
  return (inputs, ctx) => {
    const X = inputs[0];
    if (!X || X.dtype !== 'float32' || X.rank < 3 || X.size === 0) return ref(inputs, ctx);
    const S = X.shape.slice(2).reduce((a, b) => a * b, 1);
    const Y = ctx.allocOutput('float32', [X.shape[0]!, X.shape[1]!, ...X.shape.slice(2).map(() => 1)]);
    gap.call(n, X.data as Float32Array, S, Y.data as Float32Array);
    return [Y];
  };
}

function compileErf(args: CompileArgs): Kernel | null {
  const n = addon!;
  const erf = n.erfF32;
  if (!erf) return null;  // an addon built before Erf existed
  return unaryF32(args, (X, out) => erf.call(n, X, out));
}

function compileGelu(args: CompileArgs): Kernel | null {
  const n = addon!;
  const gelu = n.geluF32;
  if (!gelu) return null;  // an addon built before Gelu existed
  const a = new Attrs(args.node.attrs);
  const div = a.float('div', Math.SQRT2), add = a.float('add', 1), mul = a.float('mul', 0.5);
  return unaryF32(args, (X, out) => gelu.call(n, X, div, add, mul, out));
}

/**
 * Add/Sub/Mul/Div, or q8.AddAct with Relu (act 1), on float32 operands with numpy broadcasting.
 * Other dtypes, and the legacy broadcast/axis attributes before opset 7, run the reference.
 */
function compileBinary(args: CompileArgs, op: BinaryOp, act: 0 | 1): Kernel | null {
  const n = addon!;
  if (args.node.domain !== 'q8' && args.opset < 7) return null;
  const ref = reference(args.node);
  let last: { a: readonly number[]; b: readonly number[]; plan: BroadcastPlan } | null = null;
  return (inputs, ctx) => {
    const [a, b] = inputs;
    if (!a || !b || a.dtype !== 'float32' || b.dtype !== 'float32') return ref(inputs, ctx);
    // A node sees the same shapes call after call: keep the plan (its offset tables) for them.
    if (!last || !sameShape(last.a, a.shape) || !sameShape(last.b, b.shape)) last = { a: a.shape, b: b.shape, plan: broadcastPlan([a.shape, b.shape]) };
    const p = last.plan;
    const Y = ctx.allocOutput('float32', p.shape);
    if (p.size) {
      n.binaryF32(a.data as Float32Array, b.data as Float32Array, op, act, p.offs[0]!, p.steps[0]!, p.offs[1]!, p.steps[1]!,
        p.inner, Y.data as Float32Array);
    }
    return [Y];
  };
}

/** q8.LayerNorm on float32 (anything the addon does not take runs the reference, which names the problem). */
function compileLayerNorm(args: CompileArgs): Kernel | null {
  const n = addon!;
  const ref = reference(args.node);
  return (inputs, ctx) => {
    const [X, G, B] = inputs;
    if (!X || !G || !B || X.dtype !== 'float32' || G.dtype !== 'float32' || B.dtype !== 'float32' || X.rank < 1) return ref(inputs, ctx);
    const C = X.shape[X.rank - 1]!;
    if (C === 0 || G.size !== C || B.size !== C) return ref(inputs, ctx);
    const Y = ctx.allocOutput('float32', X.shape);
    if (Y.size) n.layerNormF32(X.data as Float32Array, G.data as Float32Array, B.data as Float32Array, ctx.attrs.float('epsilon', 1e-5), Y.data as Float32Array);
    return [Y];
  };
}

/** A Float32Array over the same bytes (the addon copies 4-byte elements bit for bit). */
const bits32 = (d: Float32Array | Int32Array | Uint32Array) => (d instanceof Float32Array ? d : new Float32Array(d.buffer, d.byteOffset, d.length));

/**
 * Transpose of 4-byte elements (float32, int32, uint32); small tensors and other dtypes run the
 * reference (which also names a bad perm). Unit dims are dropped and output dims that stay adjacent
 * in the input are merged, so BERT's head split is a run copy and Kᵀ one tiled 2-D transpose; a
 * transpose that only moves unit dims is a reshape (a view, no copy).
 */
function compileTranspose(args: CompileArgs): Kernel | null {
  const n = addon!;
  const ref = reference(args.node);
  return (inputs, ctx) => {
    const x = inputs[0];
    if (!x || !(x.dtype === 'float32' || x.dtype === 'int32' || x.dtype === 'uint32') || x.size < 1024) return ref(inputs, ctx);
    const perm = ctx.attrs.ints('perm') ?? x.shape.map((_, i) => x.rank - 1 - i);
    if (perm.length !== x.rank || new Set(perm).size !== x.rank || perm.some((p) => !Number.isInteger(p) || p < 0 || p >= x.rank)) return ref(inputs, ctx);
    const xs = stridesOf(x.shape);
    const dims: number[] = [], strides: number[] = [];
    for (const p of perm) {
      const d = x.shape[p]!, st = xs[p]!;
      if (d === 1) continue;
      const k = dims.length - 1;
      if (k >= 0 && strides[k] === st * d) { dims[k]! *= d; strides[k] = st; } else { dims.push(d); strides.push(st); }
    }
    // Only unit dims move (BERT's [1,128,768] <-> [128,1,768]): the same values in the same order.
    if (dims.length === 0 || (dims.length === 1 && strides[0] === 1)) return [x.reshape(perm.map((p) => x.shape[p]!))];
    const Y = ctx.allocOutput(x.dtype, perm.map((p) => x.shape[p]!));
    n.transpose32(bits32(x.data as Float32Array), Int32Array.from(dims), Int32Array.from(strides), bits32(Y.data as Float32Array));
    return [Y];
  };
}

/** Softmax of float32 along the last axis (opset >= 13), or over the 2-D coercion of opsets < 13. */
function compileSoftmax(args: CompileArgs): Kernel | null {
  const n = addon!;
  const ref = reference(args.node);
  return (inputs, ctx) => {
    const x = inputs[0];
    if (!x || x.dtype !== 'float32' || x.rank === 0 || x.size === 0) return ref(inputs, ctx);
    const a = ctx.attrs.int('axis', ctx.opset < 13 ? 1 : -1);
    if (a < -x.rank || a >= x.rank) return ref(inputs, ctx);  // the reference names the bad axis
    const axis = a < 0 ? a + x.rank : a;
    if (ctx.opset >= 13 && axis !== x.rank - 1) return ref(inputs, ctx);
    const cols = x.shape.slice(axis).reduce((p, d) => p * d, 1);
    const Y = ctx.allocOutput('float32', x.shape);
    n.softmaxF32(x.data as Float32Array, cols, Y.data as Float32Array);
    return [Y];
  };
}

function compileAddAct(args: CompileArgs): Kernel | null {
  const act = args.node.attrs['activation'];
  if (act?.type !== 'string' || act.value !== 'Relu') return null;
  return compileBinary(args, BINARY_OPS.Add, 1);
}

export const nativeKernels: readonly FastKernel[] = fastKernels(() => addon !== null, {
  Conv: compileConv, Gemm: compileGemm, MatMul: compileMatMul, Q8Gemm: compileQ8Gemm, Q8Conv: compileQ8Conv,
  MaxPool: compileMaxPool, GlobalAveragePool: compileGlobalAveragePool, Relu: compileRelu, Erf: compileErf, AddAct: compileAddAct, Softmax: compileSoftmax, LayerNorm: compileLayerNorm, Gelu: compileGelu, Transpose: compileTranspose,
  ...Object.fromEntries(Object.entries(BINARY_OPS).map(([op, code]) => [op, (a: CompileArgs) => compileBinary(a, code, 0)])),
});

function describe(): string {
  if (!addon) return `native (unavailable: ${nativeLoadError ?? 'unknown'})`;
  const i = addon.info();
  return `native (${i.isa}, ${i.compiler.trim()}, ${i.threads} threads)`;
}

export const nativeBackend: Backend = {
  name: 'native',
  get description() { return describe(); },
  available: () => addon !== null,
  kernels: nativeKernels,
  setThreads: (t: number) => { if (addon && t > 0) addon.setThreads(t); },
};

registerBackend(nativeBackend);
