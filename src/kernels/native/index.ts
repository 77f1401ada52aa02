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
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Node } from '../../graph/ir.js';
import { Attrs } from '../../ops/attrs.js';
import { slidingGeometry } from '../../ops/conv.js';
import { getOp, type Kernel, type KernelContext } from '../../ops/registry.js';
import type { Tensor } from '../../tensor/tensor.js';
import { registerBackend, type Backend, type CompileArgs, type FastKernel } from '../registry.js';

/** An opaque packed-weights handle owned by the addon. */
export type Packed = { readonly __packed: unique symbol };

export type NativeIsa = 'avx512vnni' | 'avxvnni' | 'avx2' | 'scalar';

/** Activation fused into the kernels' store: 0 none, 1 Relu, 2 Clip(clipMin, clipMax). */
export type ActCode = 0 | 1 | 2;

export interface NativeAddon {
  info(): { isa: NativeIsa; best: NativeIsa; compiler: string; threads: number };
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
  packConvI8(Wq: Int8Array, Wscale: Float32Array, M: number, Kg: number, group: number, weightBlock: number, actBlock: number, khw?: number): Packed;
  /** geometry: [batch, C, H, W, kh, kw, sh, sw, dh, dw, padTop, padLeft, OH, OW]; X, out NCHW. */
  convF32(X: Float32Array, geometry: Int32Array, packed: Packed, bias: Float32Array | null,
    act: ActCode, clipMin: number, clipMax: number, out: Float32Array): void;
  convQ8(X: Float32Array, geometry: Int32Array, packed: Packed, bias: Float32Array | null,
    act: ActCode, clipMin: number, clipMax: number, out: Float32Array): void;
  /** A register-only loop of the int8 dot ('int8') or FMA ('f32') on the calling thread. */
  peak(kind: 'int8' | 'f32', iterations: number): { ops: number; seconds: number };
}

function findAddon(): string | null {
  // dist/src/kernels/native/index.js or src/kernels/native/index.ts: walk up to the package root.
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const p = join(dir, 'build', 'Release', 'q8_native.node');
    if (existsSync(p)) return p;
    if (existsSync(join(dir, 'package.json'))) break;
    dir = dirname(dir);
  }
  return null;
}

let addon: NativeAddon | null = null;
/** Why the addon is unavailable (null when it loaded). */
export let nativeLoadError: string | null = null;
try {
  const path = findAddon();
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

const f = Math.fround;

interface Act { code: ActCode; lo: number; hi: number }

function q8Act(a: Attrs): Act | null {
  const act = a.string('activation', '');
  if (act === '') return { code: 0, lo: 0, hi: 0 };
  if (act === 'Relu') return { code: 1, lo: 0, hi: 0 };
  if (act === 'Clip') return { code: 2, lo: f(a.float('clip_min', -Infinity)), hi: f(a.float('clip_max', Infinity)) };
  return null;
}

/** Windows the addon handles: 0 or a multiple of 4, and the two nest. */
function windowsOk(wb: number, ab: number): boolean {
  const ok = (b: number) => Number.isInteger(b) && b >= 0 && b % 4 === 0;
  if (!ok(wb) || !ok(ab)) return false;
  return !(wb && ab) || wb % ab === 0 || ab % wb === 0;
}

function f32(t: Tensor | undefined): t is Tensor {
  return !!t && t.dtype === 'float32';
}

/** Run-time fallback to the reference kernel (unexpected dtype/shape at run time). */
function reference(node: Node): Kernel {
  const op = getOp(node.domain, node.opType);
  return (inputs, ctx) => {
    if (!op) throw new Error(`no reference kernel for ${node.domain}::${node.opType}`);
    return op.run(inputs, ctx);
  };
}

/** A bias input: the constant (or the run-time tensor) when it is float32 [M]. */
function biasOf(t: Tensor | undefined, M: number): Float32Array | null | undefined {
  if (!t) return null;
  if (t.dtype !== 'float32' || t.size !== M) return undefined;
  return t.data as Float32Array;
}

interface ConvPlan {
  nd: 1 | 2;
  M: number;
  Cg: number;
  kDims: number[];
  group: number;
}

function convPlan(node: Node, W: Tensor): ConvPlan | null {
  const nd = W.rank - 2;
  if (nd !== 1 && nd !== 2) return null;
  const a = new Attrs(node.attrs);
  const group = a.int('group', 1);
  const M = W.shape[0]!, Cg = W.shape[1]!;
  if (!Number.isInteger(group) || group < 1 || M % group !== 0 || M === 0 || Cg === 0) return null;
  const ks = a.ints('kernel_shape');
  const kDims = W.shape.slice(2);
  if (ks && (ks.length !== nd || ks.some((k, i) => k !== kDims[i]))) return null;
  if (kDims.some((k) => k === 0)) return null;
  return { nd, M, Cg, kDims, group };
}

/** Geometry array for the addon, or null when X does not fit the plan. */
function convGeometry(X: Tensor, plan: ConvPlan, ctx: KernelContext): { geo: Int32Array; outShape: number[] } | null {
  if (X.dtype !== 'float32' || X.rank !== plan.nd + 2) return null;
  const [B, C] = X.shape as [number, number];
  if (C !== plan.Cg * plan.group) return null;
  const g = slidingGeometry(ctx.attrs, X.shape.slice(2), plan.kDims);
  if (g.outDims.some((d) => d <= 0) || g.inDims.some((d) => d <= 0)) return null;
  const geo = plan.nd === 1
    ? [B, C, 1, g.inDims[0]!, 1, g.kDims[0]!, 1, g.strides[0]!, 1, g.dilations[0]!, 0, g.padsBegin[0]!, 1, g.outDims[0]!]
    : [B, C, g.inDims[0]!, g.inDims[1]!, g.kDims[0]!, g.kDims[1]!, g.strides[0]!, g.strides[1]!, g.dilations[0]!, g.dilations[1]!,
      g.padsBegin[0]!, g.padsBegin[1]!, g.outDims[0]!, g.outDims[1]!];
  return { geo: Int32Array.from(geo), outShape: [B, plan.M, ...g.outDims] };
}

function compileConv(args: CompileArgs): Kernel | null {
  const n = addon!;
  const W = args.consts[1];
  if (!f32(W)) return null;
  const plan = convPlan(args.node, W);
  if (!plan) return null;
  const Kg = W.size / plan.M;
  const packed = n.packConvF32(W.data as Float32Array, plan.M, Kg, plan.group, plan.kDims.reduce((x, y) => x * y, 1));
  const ref = reference(args.node);
  return (inputs, ctx) => {
    const X = inputs[0];
    const bias = biasOf(inputs[2], plan.M);
    const g = X ? convGeometry(X, plan, ctx) : null;
    if (!g || bias === undefined) return ref(inputs, ctx);
    const Y = ctx.alloc('float32', g.outShape);
    if (Y.size) n.convF32(X!.data as Float32Array, g.geo, packed, bias, 0, 0, 0, Y.data as Float32Array);
    return [Y];
  };
}

function compileQ8Conv(args: CompileArgs): Kernel | null {
  const n = addon!;
  const [, Wq, Ws] = args.consts;
  if (!Wq || Wq.dtype !== 'int8' || !f32(Ws)) return null;
  const a = new Attrs(args.node.attrs);
  const wb = a.int('weight_block', 0), ab = a.int('act_block', 0);
  const act = q8Act(a);
  if (!act || !windowsOk(wb, ab)) return null;
  const plan = convPlan(args.node, Wq);
  if (!plan) return null;
  const Kg = Wq.size / plan.M;
  const nwb = wb ? Math.ceil(Kg / wb) : 1;
  if (Ws.size !== plan.M * nwb) return null;
  const khw = plan.kDims.reduce((x, y) => x * y, 1);
  const packed = n.packConvI8(Wq.data as Int8Array, Ws.data as Float32Array, plan.M, Kg, plan.group, wb, ab, khw);
  const ref = reference(args.node);
  return (inputs, ctx) => {
    const X = inputs[0];
    const bias = biasOf(inputs[3], plan.M);
    const g = X ? convGeometry(X, plan, ctx) : null;
    if (!g || bias === undefined) return ref(inputs, ctx);
    const Y = ctx.alloc('float32', g.outShape);
    if (Y.size) n.convQ8(X!.data as Float32Array, g.geo, packed, bias, act.code, act.lo, act.hi, Y.data as Float32Array);
    return [Y];
  };
}

/** out[..., N] = A[..., K]·Wᵀ(+bias) for a packed [N, K] weight; A's leading dims are kept. */
function rowsKernel(
  K: number, N: number, ref: Kernel, minRank: number,
  run: (A: Float32Array, M: number, bias: Float32Array | null, out: Float32Array) => void,
  biasFrom: (inputs: readonly (Tensor | undefined)[]) => Float32Array | null | undefined,
): Kernel {
  return (inputs, ctx) => {
    const A = inputs[0];
    const bias = biasFrom(inputs);
    if (!A || A.dtype !== 'float32' || A.rank < minRank || A.shape[A.rank - 1] !== K || bias === undefined) return ref(inputs, ctx);
    const M = A.size / K;
    const Y = ctx.alloc('float32', [...A.shape.slice(0, -1), N]);
    if (M > 0) run(A.data as Float32Array, M, bias, Y.data as Float32Array);
    return [Y];
  };
}

function compileQ8Gemm(args: CompileArgs): Kernel | null {
  const n = addon!;
  const [, Wq, Ws] = args.consts;
  if (!Wq || Wq.dtype !== 'int8' || Wq.rank !== 2 || !f32(Ws)) return null;
  const a = new Attrs(args.node.attrs);
  const wb = a.int('weight_block', 0), ab = a.int('act_block', 0);
  const act = q8Act(a);
  if (!act || !windowsOk(wb, ab)) return null;
  const [N, K] = Wq.shape as [number, number];
  if (N === 0 || K === 0) return null;
  if (Ws.size !== N * (wb ? Math.ceil(K / wb) : 1)) return null;
  const packed = n.packI8(Wq.data as Int8Array, Ws.data as Float32Array, N, K, wb, ab);
  return rowsKernel(K, N, reference(args.node), 1,
    (A, M, bias, out) => n.gemmQ8(A, M, K, packed, ab, bias, act.code, act.lo, act.hi, out),
    (inputs) => biasOf(inputs[3], N));
}

/** Transpose a row-major [R, C] matrix. */
function transpose(src: Float32Array, R: number, C: number, scale = 1): Float32Array {
  const out = new Float32Array(R * C);
  for (let r = 0; r < R; r++) for (let c = 0; c < C; c++) out[c * R + r] = scale === 1 ? src[r * C + c]! : f(scale * src[r * C + c]!);
  return out;
}

function compileGemm(args: CompileArgs): Kernel | null {
  const n = addon!;
  const B = args.consts[1];
  if (!f32(B) || B.rank !== 2) return null;
  const a = new Attrs(args.node.attrs);
  const transA = a.int('transA', 0) !== 0, transB = a.int('transB', 0) !== 0;
  const alpha = a.float('alpha', 1), beta = a.float('beta', 1);
  const K = transB ? B.shape[1]! : B.shape[0]!, N = transB ? B.shape[0]! : B.shape[1]!;
  if (N === 0 || K === 0 || !Number.isFinite(alpha) || !Number.isFinite(beta)) return null;
  // C folds into the bias when it is a constant broadcasting along rows ([N], [1, N] or a scalar).
  let bias: Float32Array | null = null;
  const C = args.node.inputs[2] ? args.consts[2] : undefined;
  if (args.node.inputs[2] && beta !== 0) {
    if (!f32(C)) return null;
    const cs = C.rank === 2 ? C.shape : C.rank === 1 ? [1, C.shape[0]!] : C.rank === 0 ? [1, 1] : null;
    if (!cs || cs[0] !== 1 || (cs[1] !== 1 && cs[1] !== N)) return null;
    bias = new Float32Array(N);
    for (let j = 0; j < N; j++) bias[j] = f(beta * (C.data as Float32Array)[cs[1] === 1 ? 0 : j]!);
  }
  // alpha folds into the packed weights: out = A·(alpha·op(B)).
  const Bd = B.data as Float32Array;
  const W = transB ? (alpha === 1 ? Bd : Bd.map((v) => f(alpha * v))) : transpose(Bd, K, N, alpha);
  const packed = n.packF32(W, N, K);
  const ref = reference(args.node);
  return (inputs, ctx) => {
    const A = inputs[0];
    if (!f32(A) || A.rank !== 2) return ref(inputs, ctx);
    const M = transA ? A.shape[1]! : A.shape[0]!;
    if ((transA ? A.shape[0] : A.shape[1]) !== K) return ref(inputs, ctx);
    const Ad = transA ? transpose(A.data as Float32Array, K, M) : (A.data as Float32Array);
    const Y = ctx.alloc('float32', [M, N]);
    if (M > 0) n.gemmF32(Ad, M, K, packed, bias, 0, 0, 0, Y.data as Float32Array);
    return [Y];
  };
}

function compileMatMul(args: CompileArgs): Kernel | null {
  const n = addon!;
  const B = args.consts[1];
  if (!f32(B) || B.rank !== 2) return null;
  const [K, N] = B.shape as [number, number];
  if (N === 0 || K === 0) return null;
  const packed = n.packF32(transpose(B.data as Float32Array, K, N), N, K);
  return rowsKernel(K, N, reference(args.node), 2,
    (A, M, _bias, out) => n.gemmF32(A, M, K, packed, null, 0, 0, 0, out),
    () => null);
}

function guarded(opType: string, domain: string, compile: (a: CompileArgs) => Kernel | null): FastKernel {
  return { opType, domain, compile: (a) => (addon ? compile(a) : null) };
}

export const nativeKernels: readonly FastKernel[] = [
  guarded('Conv', '', compileConv),
  guarded('Gemm', '', compileGemm),
  guarded('MatMul', '', compileMatMul),
  guarded('Q8Gemm', 'q8', compileQ8Gemm),
  guarded('Q8Conv', 'q8', compileQ8Conv),
];

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
