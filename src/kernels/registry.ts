/**
 * Fast kernels: optimisations of reference kernels (src/ops), grouped by backend. The session asks
 * the active backend's kernels, in order, to compile each node once at load, with the node's constant
 * inputs (weights) in hand so they can be packed into the kernel's layout. A kernel that does not
 * handle a node (shape, attribute, dtype) returns null and the reference kernel runs instead.
 *
 * Backends: 'native' (N-API addon: AVX-512 VNNI / AVX-VNNI / AVX2 picked by cpuid), 'wasm'
 * (WebAssembly SIMD), 'ref' (TypeScript reference kernels only). 'auto' picks the first available.
 */
import type { Node } from '../graph/ir.js';
import type { Kernel } from '../ops/registry.js';
import type { Tensor } from '../tensor/tensor.js';

export type BackendName = 'native' | 'wasm' | 'ref';
export type BackendChoice = BackendName | 'auto';

export interface CompileArgs {
  readonly node: Node;
  /** Inputs known at load (initializers / folded constants), undefined where only known at run time. */
  readonly consts: readonly (Tensor | undefined)[];
  /** Static input shapes where known (null: unknown). */
  readonly shapes?: readonly (readonly number[] | null)[];
  readonly opset: number;
  readonly threads: number;
}

export interface FastKernel {
  readonly opType: string;
  /** '' for ONNX default domain, 'q8' for q8's internal quantized ops. */
  readonly domain?: string;
  compile(args: CompileArgs): Kernel | null;
}

export interface Backend {
  readonly name: BackendName;
  /** Human-readable detail, e.g. 'native (avx512-vnni, clang)'. */
  readonly description: string;
  /** Is it usable on this machine/build? */
  available(): boolean;
  readonly kernels: readonly FastKernel[];
  /** Set worker-thread count inside the backend (native thread pool). */
  setThreads?(n: number): void;
}

const BACKENDS = new Map<BackendName, Backend>();

export function registerBackend(b: Backend): void {
  BACKENDS.set(b.name, b);
}

export function getBackend(name: BackendName): Backend | undefined {
  return BACKENDS.get(name);
}

export function listBackends(): Backend[] {
  return [...BACKENDS.values()];
}

/** The backend used for a choice: 'auto' is native, then wasm, then ref, whichever is available first. */
export function resolveBackend(choice: BackendChoice = 'auto'): BackendName {
  const env = process.env['Q8_BACKEND'] as BackendChoice | undefined;
  const c = choice === 'auto' && env ? env : choice;
  if (c !== 'auto') return c;
  for (const n of ['native', 'wasm'] as const) if (BACKENDS.get(n)?.available()) return n;
  return 'ref';
}
