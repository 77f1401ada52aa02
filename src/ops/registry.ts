/**
 * The operator registry is data: one OpSchema per (domain, opType), each with its reference kernel
 * in TypeScript (the executable specification). Fast kernels (native, wasm) live in
 * src/kernels/registry.ts and are checked against these.
 *
 * A kernel gets its inputs (undefined for an omitted optional input), the node's attributes and the
 * opset version of the node's domain, and returns its outputs in order.
 */
import type { DType } from '../core/dtype.js';
import type { Shape } from '../core/shape.js';
import type { Node } from '../graph/ir.js';
import { Tensor } from '../tensor/tensor.js';
import type { Attrs } from './attrs.js';

export interface KernelContext {
  readonly node: Node;
  readonly attrs: Attrs;
  /** Opset version in force for the node's domain. */
  readonly opset: number;
  /** Allocate a zeroed output tensor; the runtime may hand out a reused buffer. */
  alloc(dtype: DType, shape: Shape): Tensor;
  /**
   * Allocate an output the kernel overwrites entirely, so a reused buffer is not cleared first and
   * its contents are unspecified (clearing a 12 MB conv output costs a pass over memory per run).
   */
  allocOutput(dtype: DType, shape: Shape): Tensor;
  /**
   * Whether the kernel may write its output over this input's storage: the value dies at this node,
   * no other input or live value shares the storage, and the runtime owns it. Absent: never.
   */
  consumable?(t: Tensor): boolean;
}

export type Kernel = (inputs: readonly (Tensor | undefined)[], ctx: KernelContext) => Tensor[];

export interface OpSchema {
  readonly opType: string;
  /** '' for the ONNX default domain. */
  readonly domain?: string;
  /** Lowest opset version this schema implements (default 1). */
  readonly since?: number;
  /**
   * How float16/bfloat16 inputs are treated: 'upcast' (default) converts them to float32 before
   * the kernel runs and converts float outputs back; 'native' hands them over as they are.
   */
  readonly half?: 'upcast' | 'native';
  readonly run: Kernel;
}

const OPS = new Map<string, OpSchema>();

const key = (domain: string, opType: string) => `${domain}::${opType}`;

export function registerOps(schemas: readonly OpSchema[]): void {
  for (const s of schemas) {
    const k = key(s.domain ?? '', s.opType);
    if (OPS.has(k)) throw new Error(`operator ${k} registered twice`);
    OPS.set(k, s);
  }
}

export function getOp(domain: string, opType: string): OpSchema | undefined {
  return OPS.get(key(domain, opType));
}

export function listOps(): OpSchema[] {
  return [...OPS.values()].sort((a, b) => (a.domain ?? '').localeCompare(b.domain ?? '') || a.opType.localeCompare(b.opType));
}
