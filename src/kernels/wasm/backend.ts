/**
 * The 'wasm' backend: WebAssembly SIMD128 kernels (wasm/q8.c, built into dist/wasm/q8.wasm by
 * `node wasm/build.mjs` when clang and wasm-ld are present), for where the native addon is missing.
 * This module has no Node imports so a browser bundle can use it: hand it the module bytes with
 * loadWasmKernels(bytes). ./index.ts is the Node entry that finds dist/wasm/q8.wasm on disk.
 *
 * One wasm Memory per backend instance. Weights are packed once at compile time and stay resident
 * in wasm memory (freed when the compiled kernel is garbage collected); each call copies the run-time
 * input in, runs, and copies the output out. Nodes the kernels do not cover (dtypes, ranks,
 * non-constant weights, odd or non-nesting windows) compile to null: the reference runs. Until
 * kernels are loaded the backend reports itself unavailable.
 */
import { Q8Error } from '../../core/errors.js';
import type { Node } from '../../graph/ir.js';
import { Attrs } from '../../ops/attrs.js';
import { slidingGeometry } from '../../ops/conv.js';
import { getOp, type Kernel, type KernelContext } from '../../ops/registry.js';
import type { Tensor } from '../../tensor/tensor.js';
import { registerBackend, type Backend, type CompileArgs, type FastKernel } from '../registry.js';

/** A pointer to packed weights in wasm memory. */
export type WasmPacked = number & { readonly __wasmPacked: unique symbol };

/** Activation fused into the kernels' store: 0 none, 1 Relu, 2 Clip(lo, hi). */
export type ActCode = 0 | 1 | 2;

// The few WebAssembly JS API members used here (the project's TypeScript libs do not declare them).
interface WasmModule { readonly __wasmModule: unique symbol }
interface WasmApi {
  Module: new (bytes: Uint8Array) => WasmModule;
  Instance: new (module: WasmModule, imports: object) => { exports: unknown };
}
const WA = (globalThis as unknown as { WebAssembly?: WasmApi }).WebAssembly;

interface Exports {
  memory: { readonly buffer: ArrayBuffer };
  q8_malloc(n: number): number;
  q8_free(p: number): void;
  q8_pack_free(p: number): void;
  q8_pack_f32(W: number, N: number, K: number): number;
  q8_pack_conv_f32(W: number, M: number, Kg: number, group: number): number;
  q8_pack_i8(Wq: number, Ws: number, N: number, K: number, wb: number): number;
  q8_pack_conv_i8(Wq: number, Ws: number, M: number, Kg: number, group: number, wb: number): number;
  q8_gemm_f32(A: number, M: number, K: number, p: number, bias: number, act: number, lo: number, hi: number, out: number): number;
  q8_gemm_q8(A: number, M: number, K: number, p: number, ab: number, bias: number, act: number, lo: number, hi: number, out: number): number;
  q8_conv_f32(X: number, geo: number, p: number, bias: number, act: number, lo: number, hi: number, out: number): number;
  q8_conv_q8(X: number, geo: number, p: number, ab: number, bias: number, act: number, lo: number, hi: number, out: number): number;
}

type Typed = Float32Array | Int8Array | Int32Array;

/**
 * The kernels of one wasm instance (one linear memory). Arrays are copied into wasm memory per call;
 * a pack stays there until free().
 */
export class WasmKernels {
  private readonly x: Exports;
  // Grow-only argument buffers in wasm memory: 0 input, 1 output, 2 bias, 3 geometry.
  private readonly bufPtr = [0, 0, 0, 0];
  private readonly bufLen = [0, 0, 0, 0];

  constructor(module: WasmModule) {
    this.x = new WA!.Instance(module, {}).exports as unknown as Exports;
  }

  /** Bytes of wasm memory in use (grows, never shrinks). */
  get memoryBytes(): number {
    return this.x.memory.buffer.byteLength;
  }

  private malloc(bytes: number): number {
    // Pointers are wasm i32s: JS sees those past 2 GiB as negative unless made unsigned.
    const p = this.x.q8_malloc(Math.max(bytes, 1)) >>> 0;
    if (!p) throw new Q8Error(`wasm backend: out of WebAssembly memory allocating ${bytes} bytes`);
    return p;
  }

  private buf(slot: number, bytes: number): number {
    if (this.bufLen[slot]! < bytes) {
      if (this.bufPtr[slot]) this.x.q8_free(this.bufPtr[slot]!);
      this.bufPtr[slot] = 0;
      this.bufLen[slot] = 0;
      this.bufPtr[slot] = this.malloc(bytes);
      this.bufLen[slot] = bytes;
    }
    return this.bufPtr[slot]!;
  }

  /** Copy into wasm memory at p (views are made per call: memory growth detaches old buffers). */
  private put(p: number, a: Typed): void {
    new Uint8Array(this.x.memory.buffer, p, a.byteLength).set(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
  }

  private arg(slot: number, a: Typed | null): number {
    if (!a) return 0;
    const p = this.buf(slot, a.byteLength);
    this.put(p, a);
    return p;
  }

  private withTemp<T>(arrays: Typed[], fn: (ptrs: number[]) => T): T {
    const ptrs: number[] = [];
    try {
      for (const a of arrays) { const p = this.malloc(a.byteLength); ptrs.push(p); this.put(p, a); }
      return fn(ptrs);
    } finally {
      for (const p of ptrs) this.x.q8_free(p);
    }
  }

  private packed(ptr: number, what: string): WasmPacked {
    const p = ptr >>> 0;
    if (!p) throw new Q8Error(`wasm backend: out of WebAssembly memory packing ${what}`);
    return p as WasmPacked;
  }

  free(p: WasmPacked): void {
    this.x.q8_pack_free(p);
  }

  /** W [N, K] (out = A·Wᵀ). */
  packF32(W: Float32Array, N: number, K: number): WasmPacked {
    return this.packed(this.withTemp([W], ([w]) => this.x.q8_pack_f32(w!, N, K)), 'float32 weights');
  }

  /** W [M, Kg], Kg = (C/group)*kh*kw in ONNX order. */
  packConvF32(W: Float32Array, M: number, Kg: number, group: number): WasmPacked {
    return this.packed(this.withTemp([W], ([w]) => this.x.q8_pack_conv_f32(w!, M, Kg, group)), 'float32 conv weights');
  }

  /** Wq [N, K] int8, Wscale [N] (weightBlock 0) or [N, ceil(K/weightBlock)]. */
  packI8(Wq: Int8Array, Ws: Float32Array, N: number, K: number, weightBlock: number): WasmPacked {
    return this.packed(this.withTemp([Wq, Ws], ([w, s]) => this.x.q8_pack_i8(w!, s!, N, K, weightBlock)), 'int8 weights');
  }

  packConvI8(Wq: Int8Array, Ws: Float32Array, M: number, Kg: number, group: number, weightBlock: number): WasmPacked {
    return this.packed(this.withTemp([Wq, Ws], ([w, s]) => this.x.q8_pack_conv_i8(w!, s!, M, Kg, group, weightBlock)), 'int8 conv weights');
  }

  private run(A: Float32Array, outLen: number, bias: Float32Array | null, out: Float32Array, call: (a: number, b: number, o: number) => number): void {
    const a = this.arg(0, A);
    const o = this.buf(1, outLen * 4);
    const b = this.arg(2, bias);
    if (call(a, b, o) !== 0) throw new Q8Error('wasm backend: out of WebAssembly memory for a kernel\'s scratch buffers');
    out.set(new Float32Array(this.x.memory.buffer, o, outLen));
  }

  gemmF32(A: Float32Array, M: number, K: number, p: WasmPacked, N: number, bias: Float32Array | null,
    act: ActCode, lo: number, hi: number, out: Float32Array): void {
    this.run(A.subarray(0, M * K), M * N, bias, out, (a, b, o) => this.x.q8_gemm_f32(a, M, K, p, b, act, lo, hi, o));
  }

  gemmQ8(A: Float32Array, M: number, K: number, p: WasmPacked, N: number, actBlock: number, bias: Float32Array | null,
    act: ActCode, lo: number, hi: number, out: Float32Array): void {
    this.run(A.subarray(0, M * K), M * N, bias, out, (a, b, o) => this.x.q8_gemm_q8(a, M, K, p, actBlock, b, act, lo, hi, o));
  }

  /** geometry: [batch, C, H, W, kh, kw, sh, sw, dh, dw, padTop, padLeft, OH, OW]; X, out NCHW. */
  convF32(X: Float32Array, geo: Int32Array, p: WasmPacked, bias: Float32Array | null,
    act: ActCode, lo: number, hi: number, out: Float32Array): void {
    const g = this.arg(3, geo);
    this.run(X, out.length, bias, out, (x, b, o) => this.x.q8_conv_f32(x, g, p, b, act, lo, hi, o));
  }

  convQ8(X: Float32Array, geo: Int32Array, p: WasmPacked, actBlock: number, bias: Float32Array | null,
    act: ActCode, lo: number, hi: number, out: Float32Array): void {
    const g = this.arg(3, geo);
    this.run(X, out.length, bias, out, (x, b, o) => this.x.q8_conv_q8(x, g, p, actBlock, b, act, lo, hi, o));
  }
}

let kernels: WasmKernels | null = null;
/** Why the wasm kernels are unavailable (null when they loaded). */
let loadError: string | null = 'WebAssembly kernels not loaded';

export function wasmLoadError(): string | null {
  return loadError;
}

/** Record why the kernels could not be loaded (the Node entry calls this when q8.wasm is missing). */
export function setWasmLoadError(why: string): void {
  if (!kernels) loadError = why;
}

/** Compile and instantiate q8.wasm from its bytes (synchronously) and make the backend available. */
export function loadWasmKernels(bytes: Uint8Array): WasmKernels {
  if (!WA) throw new Q8Error('WebAssembly is not available in this JavaScript engine');
  kernels = new WasmKernels(new WA.Module(bytes));
  loadError = null;
  return kernels;
}

/** The loaded kernels, or null. */
export function wasmKernels(): WasmKernels | null {
  return kernels;
}

// ---------------------------------------------------------------------------------------------
// Fast kernels

const f = Math.fround;

interface Act { code: ActCode; lo: number; hi: number }

function q8Act(a: Attrs): Act | null {
  const act = a.string('activation', '');
  if (act === '') return { code: 0, lo: 0, hi: 0 };
  if (act === 'Relu') return { code: 1, lo: 0, hi: 0 };
  if (act === 'Clip') return { code: 2, lo: f(a.float('clip_min', -Infinity)), hi: f(a.float('clip_max', Infinity)) };
  return null;
}

/** Windows the kernels handle: 0 or even (int8 pairs never straddle a window), and the two nest. */
function windowsOk(wb: number, ab: number): boolean {
  const ok = (b: number) => Number.isInteger(b) && b >= 0 && b % 2 === 0;
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

/** A bias input: float32 [M] (or absent); undefined when it does not fit. */
function biasOf(t: Tensor | undefined, M: number): Float32Array | null | undefined {
  if (!t) return null;
  if (t.dtype !== 'float32' || t.size !== M) return undefined;
  return t.data as Float32Array;
}

// Packs are freed with the compiled kernel that owns them.
const packOwners = new FinalizationRegistry<{ k: WasmKernels; p: WasmPacked }>(({ k, p }) => k.free(p));
function owning(k: WasmKernels, p: WasmPacked, kernel: Kernel): Kernel {
  packOwners.register(kernel, { k, p });
  return kernel;
}

interface ConvPlan { nd: 1 | 2; M: number; Cg: number; kDims: number[]; group: number }

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
  const w = kernels!;
  const W = args.consts[1];
  if (!f32(W)) return null;
  const plan = convPlan(args.node, W);
  if (!plan) return null;
  const Kg = W.size / plan.M;
  const packed = w.packConvF32(W.data as Float32Array, plan.M, Kg, plan.group);
  const ref = reference(args.node);
  return owning(w, packed, (inputs, ctx) => {
    const X = inputs[0];
    const bias = biasOf(inputs[2], plan.M);
    const g = X ? convGeometry(X, plan, ctx) : null;
    if (!g || bias === undefined) return ref(inputs, ctx);
    const Y = ctx.alloc('float32', g.outShape);
    if (Y.size) w.convF32(X!.data as Float32Array, g.geo, packed, bias, 0, 0, 0, Y.data as Float32Array);
    return [Y];
  });
}

function compileQ8Conv(args: CompileArgs): Kernel | null {
  const w = kernels!;
  const [, Wq, Ws] = args.consts;
  if (!Wq || Wq.dtype !== 'int8' || !f32(Ws)) return null;
  const a = new Attrs(args.node.attrs);
  const wb = a.int('weight_block', 0), ab = a.int('act_block', 0);
  const act = q8Act(a);
  if (!act || !windowsOk(wb, ab)) return null;
  const plan = convPlan(args.node, Wq);
  if (!plan) return null;
  const Kg = Wq.size / plan.M;
  if (Ws.size !== plan.M * (wb ? Math.ceil(Kg / wb) : 1)) return null;
  const packed = w.packConvI8(Wq.data as Int8Array, Ws.data as Float32Array, plan.M, Kg, plan.group, wb);
  const ref = reference(args.node);
  return owning(w, packed, (inputs, ctx) => {
    const X = inputs[0];
    const bias = biasOf(inputs[3], plan.M);
    const g = X ? convGeometry(X, plan, ctx) : null;
    if (!g || bias === undefined) return ref(inputs, ctx);
    const Y = ctx.alloc('float32', g.outShape);
    if (Y.size) w.convQ8(X!.data as Float32Array, g.geo, packed, ab, bias, act.code, act.lo, act.hi, Y.data as Float32Array);
    return [Y];
  });
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
  const w = kernels!;
  const [, Wq, Ws] = args.consts;
  if (!Wq || Wq.dtype !== 'int8' || Wq.rank !== 2 || !f32(Ws)) return null;
  const a = new Attrs(args.node.attrs);
  const wb = a.int('weight_block', 0), ab = a.int('act_block', 0);
  const act = q8Act(a);
  if (!act || !windowsOk(wb, ab)) return null;
  const [N, K] = Wq.shape as [number, number];
  if (N === 0 || K === 0) return null;
  if (Ws.size !== N * (wb ? Math.ceil(K / wb) : 1)) return null;
  const packed = w.packI8(Wq.data as Int8Array, Ws.data as Float32Array, N, K, wb);
  return owning(w, packed, rowsKernel(K, N, reference(args.node), 1,
    (A, M, bias, out) => w.gemmQ8(A, M, K, packed, N, ab, bias, act.code, act.lo, act.hi, out),
    (inputs) => biasOf(inputs[3], N)));
}

function transpose(src: Float32Array, R: number, C: number, scale = 1): Float32Array {
  const out = new Float32Array(R * C);
  for (let r = 0; r < R; r++) for (let c = 0; c < C; c++) out[c * R + r] = scale === 1 ? src[r * C + c]! : f(scale * src[r * C + c]!);
  return out;
}

function compileGemm(args: CompileArgs): Kernel | null {
  const w = kernels!;
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
  const packed = w.packF32(W, N, K);
  const ref = reference(args.node);
  return owning(w, packed, (inputs, ctx) => {
    const A = inputs[0];
    if (!f32(A) || A.rank !== 2) return ref(inputs, ctx);
    const M = transA ? A.shape[1]! : A.shape[0]!;
    if ((transA ? A.shape[0] : A.shape[1]) !== K) return ref(inputs, ctx);
    const Ad = transA ? transpose(A.data as Float32Array, K, M) : (A.data as Float32Array);
    const Y = ctx.alloc('float32', [M, N]);
    if (M > 0) w.gemmF32(Ad, M, K, packed, N, bias, 0, 0, 0, Y.data as Float32Array);
    return [Y];
  });
}

function compileMatMul(args: CompileArgs): Kernel | null {
  const w = kernels!;
  const B = args.consts[1];
  if (!f32(B) || B.rank !== 2) return null;
  const [K, N] = B.shape as [number, number];
  if (N === 0 || K === 0) return null;
  const packed = w.packF32(transpose(B.data as Float32Array, K, N), N, K);
  return owning(w, packed, rowsKernel(K, N, reference(args.node), 2,
    (A, M, _bias, out) => w.gemmF32(A, M, K, packed, N, null, 0, 0, 0, out),
    () => null));
}

function guarded(opType: string, domain: string, compile: (a: CompileArgs) => Kernel | null): FastKernel {
  return { opType, domain, compile: (a) => (kernels ? compile(a) : null) };
}

export const wasmFastKernels: readonly FastKernel[] = [
  guarded('Conv', '', compileConv),
  guarded('Gemm', '', compileGemm),
  guarded('MatMul', '', compileMatMul),
  guarded('Q8Gemm', 'q8', compileQ8Gemm),
  guarded('Q8Conv', 'q8', compileQ8Conv),
];

export const wasmBackend: Backend = {
  name: 'wasm',
  get description() {
    return kernels ? 'wasm (SIMD128, single thread)' : `wasm (unavailable: ${loadError ?? 'unknown'})`;
  },
  available: () => kernels !== null,
  kernels: wasmFastKernels,
};

registerBackend(wasmBackend);
