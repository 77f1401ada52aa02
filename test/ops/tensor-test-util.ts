/** Helpers shared by the tensor-operator tests (shape ops, indexing, resize, einsum). */
import assert from 'node:assert/strict';
import { getOp } from '../../src/ops/registry.js';
import { attrsFrom, invokeKernel, makeContext } from '../../src/runtime/invoke.js';
import { Tensor } from '../../src/tensor/tensor.js';

/** ((i*37 + k*11) % 19 - 9) / 4: quarter steps in [-2.25, 2.25], exact in float32, never constant. */
export function seq(shape: number[], k = 0): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return Tensor.from('float32', shape, Array.from({ length: n }, (_, i) => (((i * 37 + k * 11) % 19) - 9) / 4));
}

/** Run an op whose node declares `nOut` outputs (Split, Dropout with mask). */
export function runMulti(op: string, inputs: (Tensor | undefined)[], attrs: Record<string, unknown>, opset: number, nOut: number): Tensor[] {
  const schema = getOp('', op)!;
  const node = { name: op, opType: op, domain: '', inputs: inputs.map((_, i) => `i${i}`), outputs: Array.from({ length: nOut }, (_, i) => `o${i}`), attrs: attrsFrom(attrs) };
  return invokeKernel(schema, schema.run, inputs, makeContext(node, opset));
}

/** Exact shape and values. */
export function same(t: Tensor, shape: number[], values: readonly (number | bigint)[]): void {
  assert.deepEqual([...t.shape], shape);
  assert.deepEqual(Array.from(t.data as ArrayLike<number | bigint>), [...values]);
}

/** Shape and values within atol + rtol·|expected|. */
export function close(t: Tensor, shape: number[], expected: readonly number[], rtol = 1e-5, atol = 1e-5): void {
  assert.deepEqual([...t.shape], shape);
  const a = t.toNumbers();
  assert.equal(a.length, expected.length);
  expected.forEach((e, i) => assert.ok(Math.abs(a[i]! - e) <= atol + rtol * Math.abs(e), `[${i}] expected ${e}, got ${a[i]}`));
}
