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
import type { Kernel } from '../../ops/registry.js';
import {
  biasOf, convF32Plan, convResidual, fusedAct, convKernel, fastKernels, gemmKernel, gemmPlan, matMulPlan, q8ConvPlan, q8GemmPlan, reference, rowsKernel,
  windowsNest, type ActCode,
} from '../compile-helpers.js';
import { registerBackend, type Backend, type CompileArgs, type FastKernel } from '../registry.js';
import { tapMajorWeights } from '../../quant/kernels.js';

/** A pointer to packed weights in wasm memory. */
export type WasmPacked = number & { readonly __wasmPacked: unique symbol };

export type { ActCode } from '../compile-helpers.js';

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

/** Windows the kernels handle: 0 or even (int8 pairs never straddle a window), and the two nest. */
const windowsOk = (wb: number, ab: number) => windowsNest(wb, ab, 2);

// Packs are freed with the compiled kernel that owns them.
const packOwners = new FinalizationRegistry<{ k: WasmKernels; p: WasmPacked }>(({ k, p }) => k.free(p));
function owning(k: WasmKernels, p: WasmPacked, kernel: Kernel): Kernel {
  packOwners.register(kernel, { k, p });
  return kernel;
}

function compileConv(args: CompileArgs): Kernel | null {
  const w = kernels!;
  const c = convF32Plan(args);
  const fused = fusedAct(args.node);
  if (!c || !fused) return null;
  const { plan } = c;
  // The wasm kernels' store has no residual: convKernel adds it after them.
  const { act, residual } = convResidual(args.node, fused, false);
  const packed = w.packConvF32(c.W, plan.M, c.Kg, plan.group);
  return owning(w, packed, convKernel(plan, 2, reference(args.node),
    (X, geo, bias, out) => w.convF32(X, geo, packed, bias, act.code, act.lo, act.hi, out), residual));
}

function compileQ8Conv(args: CompileArgs): Kernel | null {
  const w = kernels!;
  const q = q8ConvPlan(args, windowsOk);
  if (!q) return null;
  const { plan, wb, ab, tap } = q;
  const { act, residual } = convResidual(args.node, q.act, false);
  // Tap windows (ungrouped, an even number of channels: the kernel pairs K values): weights
  // tap-major, and a negative act_block tells the kernel to lay im2col out the same way.
  if (tap && (plan.group !== 1 || plan.Cg % 2 !== 0)) return null;
  const khw = q.Kg / plan.Cg;
  const Wq = tap ? tapMajorWeights(args.consts[1]!, plan.M, plan.Cg, khw).data as Int8Array : q.Wq;
  const packed = w.packConvI8(Wq, q.Ws, plan.M, q.Kg, plan.group, wb);
  const kab = tap ? -plan.Cg : ab;
  return owning(w, packed, convKernel(plan, 3, reference(args.node),
    (X, geo, bias, out) => w.convQ8(X, geo, packed, kab, bias, act.code, act.lo, act.hi, out), residual));
}

function compileQ8Gemm(args: CompileArgs): Kernel | null {
  const w = kernels!;
  const q = q8GemmPlan(args, windowsOk);
  if (!q) return null;
  const { N, K, wb, ab, act } = q;
  const packed = w.packI8(q.Wq, q.Ws, N, K, wb);
  return owning(w, packed, rowsKernel(K, N, reference(args.node), 1,
    (A, M, bias, out) => w.gemmQ8(A, M, K, packed, N, ab, bias, act.code, act.lo, act.hi, out),
    (inputs) => biasOf(inputs[3], N)));
}

function compileGemm(args: CompileArgs): Kernel | null {
  const w = kernels!;
  const g = gemmPlan(args);
  if (!g) return null;
  const packed = w.packF32(g.W, g.N, g.K);
  return owning(w, packed, gemmKernel(g, reference(args.node),
    (A, M, out) => w.gemmF32(A, M, g.K, packed, g.N, g.bias, 0, 0, 0, out)));
}

function compileMatMul(args: CompileArgs): Kernel | null {
  const w = kernels!;
  const m = matMulPlan(args);
  if (!m) return null;
  const { K, N } = m;
  const packed = w.packF32(m.W, N, K);
  return owning(w, packed, rowsKernel(K, N, reference(args.node), 2,
    (A, M, _bias, out) => w.gemmF32(A, M, K, packed, N, null, 0, 0, 0, out),
    () => null));
}

export const wasmFastKernels: readonly FastKernel[] = fastKernels(() => kernels !== null, {
  Conv: compileConv, Gemm: compileGemm, MatMul: compileMatMul, Q8Gemm: compileQ8Gemm, Q8Conv: compileQ8Conv,
});

export const wasmBackend: Backend = {
  name: 'wasm',
  get description() {
    return kernels ? 'wasm (SIMD128, single thread)' : `wasm (unavailable: ${loadError ?? 'unknown'})`;
  },
  available: () => kernels !== null,
  kernels: wasmFastKernels,
};

registerBackend(wasmBackend);
