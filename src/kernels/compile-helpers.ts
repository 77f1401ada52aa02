/**
 * What the native and wasm backends do alike when compiling a node to a fast kernel: read the fused
 * activation and the int8 windows, plan a Conv and build the geometry array both kernel ABIs take,
 * fold Gemm's transA/transB/alpha/beta, and fall back to the reference kernel at run time. The
 * backends differ only in how they pack and call, which stays in each backend.
 *
 * No Node imports here: the wasm backend (a browser entry) uses this module too.
 */
import type { Node } from '../graph/ir.js';
import { Attrs } from '../ops/attrs.js';
import { slidingGeometry } from '../ops/conv.js';
import { residualIndex } from '../ops/fused.js';
import { sameShape } from '../core/shape.js';
import { getOp, type Kernel, type KernelContext } from '../ops/registry.js';
import { Tensor } from '../tensor/tensor.js';
import type { CompileArgs, FastKernel } from './registry.js';
import { q8RecurrentKernels } from '../quant/rnn-int8.js';
import { f32RecurrentKernels } from './rnn-f32.js';

const f = Math.fround;

/** Activation fused into the kernels' store: 0 none, 1 Relu, 2 Clip(lo, hi). */
export type ActCode = 0 | 1 | 2;

export interface Act { code: ActCode; lo: number; hi: number }

/** The fused activation of a Q8Gemm/Q8Conv node, or null when the kernels do not fuse it. */
function q8Act(a: Attrs): Act | null {
  const act = a.string('activation', '');
  if (act === '') return { code: 0, lo: 0, hi: 0 };
  if (act === 'Relu') return { code: 1, lo: 0, hi: 0 };
  if (act === 'Clip') return { code: 2, lo: f(a.float('clip_min', -Infinity)), hi: f(a.float('clip_max', Infinity)) };
  return null;
}

/** The activation a float q8.ConvAct fuses (none for a plain Conv), or null when not fusable. */
export function fusedAct(node: Node): Act | null {
  return q8Act(new Attrs(node.attrs));
}

/** Weight and activation windows that are each 0 or a multiple of `multiple`, and that nest. */
export function windowsNest(wb: number, ab: number, multiple: number): boolean {
  const ok = (b: number) => Number.isInteger(b) && b >= 0 && b % multiple === 0;
  if (!ok(wb) || !ok(ab)) return false;
  return !(wb && ab) || wb % ab === 0 || ab % wb === 0;
}

interface Q8Attrs { wb: number; ab: number; act: Act; /** Q8Conv: one activation window per kernel tap */ tap: boolean }

/** A Q8 node's windows and activation, or null when the activation is not fused or the windows fail `windowsOk`. */
function q8Attrs(node: Node, windowsOk: (wb: number, ab: number) => boolean): Q8Attrs | null {
  const a = new Attrs(node.attrs);
  const wb = a.int('weight_block', 0), ab = a.int('act_block', 0);
  const act = q8Act(a), tap = a.int('act_tap', 0);
  if (!act || !windowsOk(wb, ab) || (tap !== 0 && (tap !== 1 || wb !== 0 || ab !== 0))) return null;
  return { wb, ab, act, tap: tap === 1 };
}

/** Whether the scales hold one per row and weight window of a [rows, K] int8 weight. */
function scalesFit(Ws: Tensor, rows: number, K: number, wb: number): boolean {
  return Ws.size === rows * (wb ? Math.ceil(K / wb) : 1);
}

/** A Q8Gemm with constant int8 Wq [N, K] and its scales, or null. */
export interface Q8GemmPlan extends Q8Attrs { N: number; K: number; Wq: Int8Array; Ws: Float32Array }

export function q8GemmPlan(args: CompileArgs, windowsOk: (wb: number, ab: number) => boolean): Q8GemmPlan | null {
  const [, Wq, Ws] = args.consts;
  if (!Wq || Wq.dtype !== 'int8' || Wq.rank !== 2 || !f32(Ws)) return null;
  const q = q8Attrs(args.node, windowsOk);
  if (!q || q.tap) return null;
  const [N, K] = Wq.shape as [number, number];
  if (N === 0 || K === 0) return null;
  if (!scalesFit(Ws, N, K, q.wb)) return null;
  return { ...q, N, K, Wq: Wq.data as Int8Array, Ws: Ws.data as Float32Array };
}

/** A Q8Conv with constant int8 Wq [M, Kg] (Kg = C/group·kh·kw) and its scales, or null. */
export interface Q8ConvPlan extends Q8Attrs { plan: ConvPlan; Kg: number; Wq: Int8Array; Ws: Float32Array }

export function q8ConvPlan(args: CompileArgs, windowsOk: (wb: number, ab: number) => boolean): Q8ConvPlan | null {
  const [, Wq, Ws] = args.consts;
  if (!Wq || Wq.dtype !== 'int8' || !f32(Ws)) return null;
  const q = q8Attrs(args.node, windowsOk);
  if (!q) return null;
  const plan = convPlan(args.node, Wq);
  if (!plan) return null;
  const Kg = Wq.size / plan.M;
  if (!scalesFit(Ws, plan.M, Kg, q.wb)) return null;
  return { ...q, plan, Kg, Wq: Wq.data as Int8Array, Ws: Ws.data as Float32Array };
}

function f32(t: Tensor | undefined): t is Tensor {
  return !!t && t.dtype === 'float32';
}

/** Run-time fallback to the reference kernel (unexpected dtype/shape at run time). */
export function reference(node: Node): Kernel {
  const op = getOp(node.domain, node.opType);
  return (inputs, ctx) => {
    if (!op) throw new Error(`no reference kernel for ${node.domain}::${node.opType}`);
    return op.run(inputs, ctx);
  };
}

/** A bias input: float32 [M] (or absent: null); undefined when it does not fit. */
export function biasOf(t: Tensor | undefined, M: number): Float32Array | null | undefined {
  if (!t) return null;
  if (t.dtype !== 'float32' || t.size !== M) return undefined;
  return t.data as Float32Array;
}

export interface ConvPlan { nd: 1 | 2; M: number; Cg: number; kDims: number[]; group: number }

/** A 1-D or 2-D Conv with a constant weight W [M, C/group, ...k], or null. */
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

/** A Conv with constant float32 W [M, Kg] (Kg = C/group·kh·kw), or null. */
export function convF32Plan(args: CompileArgs): { plan: ConvPlan; Kg: number; W: Float32Array } | null {
  const W = args.consts[1];
  if (!f32(W)) return null;
  const plan = convPlan(args.node, W);
  if (!plan) return null;
  return { plan, Kg: W.size / plan.M, W: W.data as Float32Array };
}

/**
 * The kernels' geometry array [batch, C, H, W, kh, kw, sh, sw, dh, dw, padTop, padLeft, OH, OW]
 * (1-D as H = 1) and the output shape, or null when X does not fit the plan.
 */
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

/**
 * The run-time side of a compiled Conv/Q8Conv: X NCHW (or NCW), bias at input `biasIndex`, and a
 * fused residual (graph/passes.ts fuseResiduals) of the output's shape, handed to `run` as `res`.
 * A backend whose kernels cannot add `res` in their store compiles `run` with the activation
 * `post.act` left out and gets `out = act(out + res)` done here after the kernel instead.
 */
export function convKernel(
  plan: ConvPlan, biasIndex: number, ref: Kernel,
  run: (X: Float32Array, geo: Int32Array, bias: Float32Array | null, out: Float32Array, res: Float32Array | null) => void,
  residual?: { index: number; post?: Act },
): Kernel {
  const zi = residual?.index ?? -1;
  // The geometry of the last input shape (a session sees the same shape run after run).
  let lastShape: readonly number[] | null = null;
  let lastGeo: ReturnType<typeof convGeometry> = null;
  return (inputs, ctx) => {
    const X = inputs[0];
    const bias = biasOf(inputs[biasIndex], plan.M);
    let g: ReturnType<typeof convGeometry> = null;
    if (X && X.dtype === 'float32' && lastShape && sameShape(X.shape, lastShape)) g = lastGeo;
    else if (X) {
      g = convGeometry(X, plan, ctx);
      if (X.dtype === 'float32') { lastShape = X.shape; lastGeo = g; }
    }
    if (!g || bias === undefined) return ref(inputs, ctx);
    const Z = zi >= 0 ? inputs[zi] : undefined;
    let res: Float32Array | null = null;
    if (zi >= 0) {
      if (!Z || Z.dtype !== 'float32' || !sameShape(Z.shape, g.outShape)) return ref(inputs, ctx);
      res = Z.data as Float32Array;
    }
    // A residual that dies here takes the output in place when the kernel adds it in its store:
    // each element is read just before it is overwritten, and no other memory is touched.
    const Y = res && !residual?.post && ctx.consumable?.(Z!) ? new Tensor('float32', g.outShape, res) : ctx.allocOutput('float32', g.outShape);
    const y = Y.data as Float32Array;
    if (!Y.size) return [Y];
    if (residual?.post && res) {
      run(X!.data as Float32Array, g.geo, bias, y, null);
      addResidual(y, res, residual.post);
    } else {
      run(X!.data as Float32Array, g.geo, bias, y, res);
    }
    return [Y];
  };
}

/**
 * A conv node's fused residual (attribute `residual`) for a backend: the activation its kernel
 * applies, and convKernel's `residual` argument. `inStore`: the kernel adds `res` in its store
 * (then it applies the activation too); otherwise the kernel runs without activation and
 * convKernel adds the residual and applies `act` after it.
 */
export function convResidual(node: Node, act: Act, inStore: boolean): { act: Act; residual?: { index: number; post?: Act } } {
  const index = residualIndex(new Attrs(node.attrs));
  if (index < 0) return { act };
  return inStore ? { act, residual: { index } } : { act: { code: 0, lo: 0, hi: 0 }, residual: { index, post: act } };
}

/** out[i] = act(out[i] + res[i]): the residual join after a kernel that did not fuse it. */
function addResidual(out: Float32Array, res: Float32Array, act: Act): void {
  const lo = act.code === 0 ? -Infinity : act.code === 1 ? 0 : act.lo, hi = act.code === 2 ? act.hi : Infinity;
  for (let i = 0; i < out.length; i++) {
    const v = f(out[i]! + res[i]!);
    out[i] = v < lo ? lo : v > hi ? hi : v;
  }
}

/** out[..., N] = A[..., K]·Wᵀ(+bias) for a packed [N, K] weight; A's leading dims are kept. */
export function rowsKernel(
  K: number, N: number, ref: Kernel, minRank: number,
  run: (A: Float32Array, M: number, bias: Float32Array | null, out: Float32Array) => void,
  biasFrom: (inputs: readonly (Tensor | undefined)[]) => Float32Array | null | undefined,
): Kernel {
  return (inputs, ctx) => {
    const A = inputs[0];
    const bias = biasFrom(inputs);
    if (!A || A.dtype !== 'float32' || A.rank < minRank || A.shape[A.rank - 1] !== K || bias === undefined) return ref(inputs, ctx);
    const M = A.size / K;
    const Y = ctx.allocOutput('float32', [...A.shape.slice(0, -1), N]);
    if (M > 0) run(A.data as Float32Array, M, bias, Y.data as Float32Array);
    return [Y];
  };
}

/** Transpose a row-major [R, C] matrix, optionally scaling each value (rounded to float32). */
function transpose(src: Float32Array, R: number, C: number, scale = 1): Float32Array {
  const out = new Float32Array(R * C);
  for (let r = 0; r < R; r++) for (let c = 0; c < C; c++) out[c * R + r] = scale === 1 ? src[r * C + c]! : f(scale * src[r * C + c]!);
  return out;
}

/** A Gemm with constant B folded for an out = A·Wᵀ + bias kernel: W [N, K] = alpha·op(B), bias = beta·C. */
export interface GemmPlan { transA: boolean; K: number; N: number; W: Float32Array; bias: Float32Array | null }

export function gemmPlan(args: CompileArgs): GemmPlan | null {
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
  return { transA, K, N, W, bias };
}

/** A MatMul with constant B [K, N], as W = Bᵀ [N, K]; or null. */
export function matMulPlan(args: CompileArgs): { K: number; N: number; W: Float32Array } | null {
  const B = args.consts[1];
  if (!f32(B) || B.rank !== 2) return null;
  const [K, N] = B.shape as [number, number];
  if (N === 0 || K === 0) return null;
  return { K, N, W: transpose(B.data as Float32Array, K, N) };
}

/**
 * MatMul whose right side is computed at run time (attention's Q·Kᵀ and P·V): float32 A [..., M, K]
 * and B [..., K, N] with the same leading dims, or B without them (broadcast, bShared). `run` gets
 * the whole batch as it lies in memory and packs each B slice itself; anything else runs the reference.
 */
export function dynamicMatMulKernel(ref: Kernel, run: (A: Float32Array, B: Float32Array, batches: number, M: number, K: number, N: number, bShared: boolean, out: Float32Array) => void): Kernel {
  return (inputs, ctx) => {
    const [A, B] = inputs;
    if (!f32(A) || !f32(B) || A.rank < 2 || B.rank < 2) return ref(inputs, ctx);
    const M = A.shape[A.rank - 2]!, K = A.shape[A.rank - 1]!, N = B.shape[B.rank - 1]!;
    if (B.shape[B.rank - 2] !== K || M * K * N === 0) return ref(inputs, ctx);
    const lead = A.shape.slice(0, -2), bLead = B.shape.slice(0, -2);
    const bCount = bLead.reduce((a, b) => a * b, 1);
    const sameLead = bLead.length === lead.length && bLead.every((d, i) => d === lead[i]);
    if (!sameLead && bCount !== 1) return ref(inputs, ctx);
    if (!sameLead && bLead.length > lead.length) return ref(inputs, ctx);
    const batches = lead.reduce((a, b) => a * b, 1);
    const Y = ctx.allocOutput('float32', [...lead, M, N]);
    run(A.data as Float32Array, B.data as Float32Array, batches, M, K, N, !sameLead, Y.data as Float32Array);
    return [Y];
  };
}

/** The run-time side of a compiled Gemm: A [M, K] (or [K, M] with transA) → out [M, N]. */
export function gemmKernel(plan: GemmPlan, ref: Kernel, run: (A: Float32Array, M: number, out: Float32Array) => void): Kernel {
  const { transA, K, N } = plan;
  return (inputs, ctx) => {
    const A = inputs[0];
    if (!f32(A) || A.rank !== 2) return ref(inputs, ctx);
    const M = transA ? A.shape[1]! : A.shape[0]!;
    if ((transA ? A.shape[0] : A.shape[1]) !== K) return ref(inputs, ctx);
    const Ad = transA ? transpose(A.data as Float32Array, K, M) : (A.data as Float32Array);
    const Y = ctx.allocOutput('float32', [M, N]);
    if (M > 0) run(Ad, M, Y.data as Float32Array);
    return [Y];
  };
}

type Compile = (a: CompileArgs) => Kernel | null;

/** Ops a backend may add to the five every fast backend has, with their domains. */
const OPTIONAL = [
  ['MaxPool', ''], ['GlobalAveragePool', ''], ['Relu', ''], ['Erf', ''], ['Add', ''], ['Sub', ''], ['Mul', ''], ['Div', ''], ['Softmax', ''], ['Transpose', ''], ['AddAct', 'q8'], ['LayerNorm', 'q8'], ['Gelu', 'q8'],
] as const;

/**
 * A backend's fast kernels; each compiles to null (the reference runs) until `ready()`. The
 * memory-bound ops in OPTIONAL (MaxPool, GlobalAveragePool, Relu, Erf, the binary arithmetic, Softmax, Transpose,
 * q8.AddAct, q8.LayerNorm, q8.Gelu) are optional: a backend without them leaves them to the reference.
 */
export function fastKernels(
  ready: () => boolean,
  c: {
    Conv: Compile; Gemm: Compile; MatMul: Compile; Q8Gemm: Compile; Q8Conv: Compile;
  } & Partial<Record<(typeof OPTIONAL)[number][0], Compile>>,
): readonly FastKernel[] {
  const guarded = (opType: string, domain: string, compile: Compile): FastKernel =>
    ({ opType, domain, compile: (a) => (ready() ? compile(a) : null) });
  const optional = OPTIONAL.flatMap(([op, domain]) => { const compile = c[op]; return compile ? [guarded(op, domain, compile)] : []; });
  return [
    guarded('Conv', '', c.Conv),
    guarded('ConvAct', 'q8', c.Conv), // Conv + Relu/Clip fused at load: same kernel, activation in the store
    guarded('Gemm', '', c.Gemm),
    guarded('MatMul', '', c.MatMul),
    guarded('Q8Gemm', 'q8', c.Q8Gemm),
    guarded('Q8Conv', 'q8', c.Q8Conv),
    // LSTM/GRU/RNN in int8: each step's H·Rᵀ through this backend's Q8Gemm
    ...q8RecurrentKernels((a) => (ready() ? c.Q8Gemm(a) : null)),
    // and in float32: X·Wᵀ and each step's H·Rᵀ through its Gemm
    ...f32RecurrentKernels((a) => (ready() ? c.Gemm(a) : null)),
    ...optional,
  ];
}

/**
 * A 2-D float32 MaxPool without Indices and with dilations 1, as the kernels' geometry array
 * [batch, C, H, W, kh, kw, sh, sw, 1, 1, padTop, padLeft, OH, OW] and output shape; null when the
 * node or X does not fit (the reference runs).
 */
export function maxPoolGeometry(X: Tensor | undefined, ctx: KernelContext): { geo: Int32Array; outShape: number[] } | null {
  if (!X || X.dtype !== 'float32' || X.rank !== 4) return null;
  if (ctx.node.outputs.length > 1 && ctx.node.outputs[1] !== '') return null;
  const ks = ctx.attrs.ints('kernel_shape');
  if (!ks || ks.length !== 2 || ks.some((k) => !Number.isInteger(k) || k < 1)) return null;
  if (ctx.attrs.int('storage_order', 0) !== 0) return null;
  let g;
  try {
    g = slidingGeometry(ctx.attrs, X.shape.slice(2), ks, ctx.attrs.int('ceil_mode', 0) !== 0, ctx.opset >= 10);
  } catch {
    return null; // bad attributes: the reference reports them
  }
  if (g.dilations.some((d) => d !== 1) || g.padsBegin.some((p) => p < 0) || g.strides.some((s) => s < 1)) return null;
  if (g.outDims.some((d) => d <= 0) || g.inDims.some((d) => d <= 0)) return null;
  const [B, C] = X.shape as [number, number];
  if (B * C === 0) return null;
  const geo = Int32Array.from([B, C, g.inDims[0]!, g.inDims[1]!, g.kDims[0]!, g.kDims[1]!, g.strides[0]!, g.strides[1]!, 1, 1,
    g.padsBegin[0]!, g.padsBegin[1]!, g.outDims[0]!, g.outDims[1]!]);
  return { geo, outShape: [B, C, g.outDims[0]!, g.outDims[1]!] };
}

