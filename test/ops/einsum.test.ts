// Einsum. Inputs come from `seq` (same formula in numpy); expected arrays were computed once with
// numpy 1.x np.einsum via /usr/bin/python3 and pasted.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import '../../src/ops/index.js';
import { runOp } from '../../src/runtime/invoke.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { Q8Error } from '../../src/core/errors.js';
import { close, same, seq } from './tensor-test-util.js';

const einsum = (equation: string, ...xs: Tensor[]) => runOp('Einsum', xs, { equation }, 12)[0]!;

test('diagonals, implicit and explicit outputs, three operands', () => {
  const a = seq([2, 3, 3]), b = seq([3, 4], 1), c = seq([4], 2);
  close(einsum('bii->bi', a), [2, 3], [-2.25, 1.5, 0.5, 0.25, -0.75, -1.75]);
  close(einsum('bij,jk', a, b), [2, 3, 4], [-5.25, -5.75, -6.25, -6.75, -1.75, -2.875, -4.0, -5.125, -0.625, -1.1875, -1.75, -2.3125, 0.5, 0.5, 0.5, 0.5, 1.625, 2.1875, 2.75, 3.3125, 2.75, 3.875, 5.0, 6.125]);
  close(einsum('bij,jk,k->b', a, b, c), [2], [84.53125, -57.65625]);
  close(einsum('ii', seq([3, 3])), [], [-0.25]);
  close(einsum('bij->jib', a), [3, 3, 2], [-2.25, 0.25, 1.75, -0.5, 1.0, -1.25, 2.25, 0.0, 1.5, -0.75, 0.75, -1.5, 2.0, -0.25, 1.25, -1.0, 0.5, -1.75]);
  close(einsum('i,i', c, c), [], [14.375]);
  close(einsum('Ab, bA ->', seq([3, 3], 5), seq([3, 3], 6)), [], [-6.75]);
});

test('ellipsis broadcasting and size-1 broadcasting', () => {
  close(einsum('...j,jk->...k', seq([2, 1, 3], 3), seq([3, 4], 1)), [2, 1, 4], [-1.0, -1.75, -2.5, -3.25, 0.125, -0.0625, -0.25, -0.4375]);
  close(einsum('ij...,jk->...ik', seq([3, 3, 2, 2], 4), seq([3, 4], 1)), [2, 2, 3, 4],
    [-2.5, -2.375, -2.25, -2.125, 2.0, 2.0, 2.0, 2.0, -3.0, -3.125, -3.25, -3.375, -2.125, -1.8125, -1.5, -1.1875, 2.375, 2.5625, 2.75, 2.9375, -2.625, -2.5625, -2.5, -2.4375, -1.75, -1.25, -0.75, -0.25, 2.75, 3.125, 3.5, 3.875, 0.125, -0.8125, -1.75, -2.6875, -3.75, -4.25, -4.75, -5.25, 3.125, 3.6875, 4.25, 4.8125, 0.5, -0.25, -1.0, -1.75]);
  close(einsum('ij,ij->ij', seq([1, 3], 7), seq([2, 1], 8)), [2, 3], [-1.5, -1.6875, 1.6875, -1.0, -1.125, 1.125]);
});

test('int64 operands use exact bigint arithmetic; malformed equations are errors', () => {
  const a = Tensor.from('int64', [2, 3], [-2, -1, 0, 1, 2, 3]);
  const b = Tensor.from('int64', [3, 2], [-4, -1, 2, 5, 8, 11]);
  same(einsum('ij,jk', a, b), [2, 2], [6n, -3n, 24n, 42n]);
  assert.throws(() => einsum('ij,jk', a), Q8Error);
  assert.throws(() => einsum('ijk', a), Q8Error);
  assert.throws(() => einsum('ij,jk->iz', a, b), Q8Error);
  assert.throws(() => einsum('ij,kl->ii', a, b), Q8Error);
  assert.throws(() => einsum('ij,jk', a, Tensor.from('int64', [4, 2], [1, 2, 3, 4, 5, 6, 7, 8])), Q8Error);
  assert.throws(() => einsum('i1', a), Q8Error);
});
