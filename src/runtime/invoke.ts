/**
 * Invoking one node's kernel: attribute wrapping, float16/bfloat16 up-casting, error context. The
 * session uses this for every node; tests use `runOp` to exercise a single operator.
 */
import { isHalf, type DType } from '../core/dtype.js';
import { Q8Error, toQ8Error } from '../core/errors.js';
import type { Shape } from '../core/shape.js';
import type { AttrValue, Node } from '../graph/ir.js';
import { Attrs } from '../ops/attrs.js';
import { getOp, type Kernel, type KernelContext, type OpSchema } from '../ops/registry.js';
import { Tensor } from '../tensor/tensor.js';

export interface Allocator {
  alloc(dtype: DType, shape: Shape): Tensor;
  /** A tensor whose contents the caller overwrites; without this, `alloc` serves. */
  allocOutput?(dtype: DType, shape: Shape): Tensor;
}

export const plainAllocator: Allocator = { alloc: (dtype, shape) => Tensor.zeros(dtype, shape) };

export function makeContext(node: Node, opset: number, allocator: Allocator = plainAllocator): { -readonly [K in keyof KernelContext]: KernelContext[K] } {
  return {
    node, attrs: new Attrs(node.attrs), opset,
    alloc: (d, s) => allocator.alloc(d, s),
    allocOutput: (d, s) => (allocator.allocOutput ?? allocator.alloc).call(allocator, d, s),
  };
}

function toFloat32(t: Tensor): Tensor {
  return new Tensor('float32', t.shape, t.toFloat32());
}

function fromFloat32(t: Tensor, dtype: DType): Tensor {
  return Tensor.from(dtype, t.shape, t.data as Float32Array);
}

/**
 * Run a kernel with the schema's float16 policy: when any input is float16/bfloat16 and the schema
 * does not handle halves natively, inputs are widened to float32 and float32 outputs narrowed back.
 */
export function invokeKernel(schema: OpSchema, run: Kernel, inputs: readonly (Tensor | undefined)[], ctx: KernelContext): Tensor[] {
  const half = schema.half !== 'native' ? inputs.find((t) => t && isHalf(t.dtype))?.dtype : undefined;
  if (!half) return run(inputs, ctx);
  const wide = inputs.map((t) => (t && isHalf(t.dtype) ? toFloat32(t) : t));
  const outs = run(wide, ctx);
  return outs.map((o) => (o && o.dtype === 'float32' ? fromFloat32(o, half) : o));
}

/** Turn a plain JS attribute bag into typed AttrValues (numbers → int if integral else float). */
export function attrsFrom(bag: Record<string, unknown>): Record<string, AttrValue> {
  const out: Record<string, AttrValue> = {};
  for (const [k, v] of Object.entries(bag)) {
    if (v === undefined) continue;
    if (typeof v === 'number') out[k] = Number.isInteger(v) ? { type: 'int', value: v } : { type: 'float', value: v };
    else if (typeof v === 'string') out[k] = { type: 'string', value: v };
    else if (v instanceof Tensor) out[k] = { type: 'tensor', value: v };
    else if (Array.isArray(v) && v.every((x) => typeof x === 'string')) out[k] = { type: 'strings', value: v as string[] };
    else if (Array.isArray(v) && v.every((x) => typeof x === 'number'))
      out[k] = (v as number[]).every(Number.isInteger) ? { type: 'ints', value: v as number[] } : { type: 'floats', value: v as number[] };
    else if (v && typeof v === 'object' && 'type' in v && 'value' in v) out[k] = v as AttrValue;
    else throw new Q8Error(`cannot use attribute '${k}' = ${String(v)}`);
  }
  return out;
}

/**
 * Run a single registered operator (for tests and constant folding):
 *   runOp('Add', [a, b])                    // opset defaults to 21
 *   runOp('Softmax', [x], { axis: 1 }, 11)
 * Float attribute values that happen to be integral must be passed as { type: 'float', value }.
 */
export function runOp(
  opType: string, inputs: readonly (Tensor | undefined)[], attrs: Record<string, unknown> = {}, opset = 21, domain = '',
): Tensor[] {
  const schema = getOp(domain, opType);
  if (!schema) throw new Q8Error(`operator ${domain ? domain + '.' : ''}${opType} is not supported`);
  const node: Node = {
    name: opType, opType, domain,
    inputs: inputs.map((_, i) => `in${i}`), outputs: ['out0'], attrs: attrsFrom(attrs),
  };
  try {
    return invokeKernel(schema, schema.run, inputs, makeContext(node, opset));
  } catch (e) {
    throw toQ8Error(e, { node: node.name, opType });
  }
}


