// Indexing operators. Inputs come from `seq` (same formula in numpy); expected arrays were computed
// once with numpy 1.x via /usr/bin/python3 (np.take, np.take_along_axis, fancy indexing, explicit
// scatter loops per reduction) and pasted; TopK/OneHot/NonZero/EyeLike/Range/Trilu are worked by hand.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import '../../src/ops/index.js';
import { runOp } from '../../src/runtime/invoke.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { Q8Error } from '../../src/core/errors.js';
import { same, seq } from './tensor-test-util.js';

const i64 = (shape: number[], v: number[]) => Tensor.from('int64', shape, v);
const one = (op: string, inputs: (Tensor | undefined)[], attrs: Record<string, unknown> = {}, opset = 21) =>
  runOp(op, inputs, attrs, opset)[0]!;

test('Gather with 2-D negative indices on axis 1; out of range is an error', () => {
  const x = seq([3, 4, 2]);
  same(one('Gather', [x, i64([2, 2], [-1, 0, 2, 2])], { axis: 1 }), [3, 2, 2, 2],
    [1.0, 0.75, -2.25, 2.25, 1.5, 1.25, 1.5, 1.25, -1.0, -1.25, 0.5, 0.25, -0.5, -0.75, -0.5, -0.75, 1.75, 1.5, -1.5, -1.75, 2.25, 2.0, 2.25, 2.0]);
  same(one('Gather', [Tensor.from('int64', [3], [10, 20, 30]), Tensor.scalar('int32', -1)]), [], [30n]);
  assert.throws(() => one('Gather', [x, i64([1], [4])], { axis: 1 }), Q8Error);
  assert.throws(() => one('Gather', [x, Tensor.from('float32', [1], [0])]), Q8Error);
});

test('GatherElements and GatherND (batch_dims 0 and 1)', () => {
  const x = seq([3, 4, 2]);
  same(one('GatherElements', [x, i64([2, 2, 2], [1, 0, 0, 1, 2, 2, -1, 0])], { axis: 0 }), [2, 2, 2],
    [0.5, 2.25, 2.0, -0.25, -1.5, -1.75, -2.0, 1.75]);
  const d = seq([2, 3, 4], 1);
  same(one('GatherND', [d, i64([2, 2, 1], [2, 0, 1, -1])], { batch_dims: 1 }), [2, 2, 4],
    [-1.5, -1.75, -2.0, -2.25, 0.5, 0.25, 0.0, -0.25, 1.25, 1.0, 0.75, 0.5, 0.25, 0.0, -0.25, -0.5]);
  same(one('GatherND', [d, i64([2, 3], [0, 2, 1, 1, -1, 3])]), [2], [-1.75, -0.5]);
  assert.throws(() => one('GatherND', [d, i64([1, 4], [0, 0, 0, 0])]), Q8Error);
  assert.throws(() => one('GatherND', [d, i64([1, 1], [2])]), Q8Error);
});

test('ScatterElements with duplicate indices under every reduction; legacy Scatter', () => {
  const data = seq([2, 4], 2);
  const idx = i64([2, 3], [1, 1, 3, 0, -4, 2]);
  const upd = seq([2, 3], 3);
  const want: Record<string, number[]> = {
    add: [-1.5, 0.5, -2.0, -1.5, 3.0, 2.0, 1.75, 1.5],
    mul: [-1.5, -2.1875, -2.0, -1.6875, 0.28125, 2.0, 0.0, 1.5],
    max: [-1.5, 1.25, -2.0, 0.75, 2.25, 2.0, 1.75, 1.5],
    min: [-1.5, -1.75, -2.0, -2.25, 0.25, 2.0, 0.0, 1.5],
    none: [-1.5, 1.0, -2.0, 0.75, 0.25, 2.0, 0.0, 1.5],
  };
  for (const [red, v] of Object.entries(want)) same(one('ScatterElements', [data, idx, upd], { axis: 1, reduction: red }, 18), [2, 4], v);
  same(one('Scatter', [data, idx, upd], { axis: -1 }, 9), [2, 4], want.none!);
  // the input is not modified
  assert.equal((data.data as Float32Array)[1], -1.75);
  assert.throws(() => one('ScatterElements', [data, i64([1, 1], [4]), seq([1, 1])], { axis: 1 }), Q8Error);
  assert.throws(() => one('ScatterElements', [data, idx, upd], { reduction: 'avg' }, 18), Q8Error);
});

test('ScatterND: plain and add with repeated rows, int64 data', () => {
  const d = seq([4, 3], 4);
  const u = seq([3, 3], 5);
  same(one('ScatterND', [d, i64([3, 1], [1, 3, 1]), u], { reduction: 'add' }, 16), [4, 3],
    [-0.75, -1.0, -1.25, 1.0, 0.25, -0.5, -2.25, 2.25, 2.0, 3.0, 2.5, 2.0]);
  const di = Tensor.from('int64', [2, 2], [1, 2, 3, 4]);
  same(one('ScatterND', [di, i64([2, 2], [0, 1, 1, 0]), Tensor.from('int64', [2], [9, 8])]), [2, 2], [1n, 9n, 8n, 4n]);
  same(one('ScatterND', [di, i64([1, 2], [1, 1]), Tensor.from('int64', [1], [5])], { reduction: 'mul' }, 16), [2, 2], [1n, 2n, 3n, 20n]);
  assert.throws(() => one('ScatterND', [di, i64([1, 2], [0, 2]), Tensor.from('int64', [1], [5])]), Q8Error);
});

test('OneHot with axis, negative and out-of-range indices', () => {
  const ind = i64([2, 2], [0, -1, 5, 2]);
  const vals = Tensor.from('int32', [2], [-2, 7]);
  // depth 3, axis 1 → [2, 3, 2]; -1 → 2; 5 is out of range (all off)
  same(one('OneHot', [ind, Tensor.scalar('float32', 3), vals], { axis: 1 }), [2, 3, 2],
    [7, -2, -2, -2, -2, 7, -2, -2, -2, -2, -2, 7]);
  same(one('OneHot', [i64([2], [1, -3]), Tensor.scalar('int64', 3), Tensor.from('float32', [2], [0, 1])]), [2, 3], [0, 1, 0, 1, 0, 0]);
});

test('NonZero lists coordinates row-major', () => {
  const x = Tensor.from('int32', [2, 3], [0, 4, 0, -1, 0, 2]);
  same(one('NonZero', [x]), [2, 3], [0n, 1n, 1n, 1n, 0n, 2n]);
  same(one('NonZero', [Tensor.from('float32', [3], [0, NaN, -0])]), [1, 1], [1n]);
});

test('TopK: ties keep the lower index first; smallest; attribute k before opset 10', () => {
  const x = Tensor.from('float32', [2, 5], [3, 1, 3, 2, 1, 0, 5, 5, -1, 5]);
  const [v, i] = runOp('TopK', [x, i64([1], [3])], {}, 11);
  same(v!, [2, 3], [3, 3, 2, 5, 5, 5]);
  same(i!, [2, 3], [0n, 2n, 3n, 1n, 2n, 4n]);
  const [sv, si] = runOp('TopK', [x, i64([1], [2])], { largest: 0, axis: 1 }, 11);
  same(sv!, [2, 2], [1, 1, -1, 0]);
  same(si!, [2, 2], [1n, 4n, 3n, 0n]);
  const [cv, ci] = runOp('TopK', [x], { k: 1, axis: 0 }, 1);
  same(cv!, [1, 5], [3, 5, 5, 2, 5]);
  same(ci!, [1, 5], [0n, 1n, 1n, 0n, 1n]);
  const [iv] = runOp('TopK', [Tensor.from('int64', [4], [5, -2, 9, 5]), i64([1], [2])], {}, 11);
  same(iv!, [2], [9n, 5n]);
  // k ≪ n takes the heap path: ties still come out lowest index first
  const m = Tensor.from('float32', [40], Array.from({ length: 40 }, (_, j) => j % 7));
  const [hv, hi] = runOp('TopK', [m, i64([1], [3])], {}, 11);
  same(hv!, [3], [6, 6, 6]);
  same(hi!, [3], [6n, 13n, 20n]);
  same(runOp('TopK', [m, i64([1], [4])], { largest: 0 }, 11)[1]!, [4], [0n, 7n, 14n, 21n]);
  assert.throws(() => runOp('TopK', [x, i64([1], [6])], {}, 11), Q8Error);
});

test('EyeLike (k, dtype), Range (float, int64 negative delta, empty), Trilu', () => {
  same(one('EyeLike', [seq([3, 4])], { k: 1 }), [3, 4], [0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1]);
  const e = one('EyeLike', [seq([3, 2])], { k: -1, dtype: 7 });
  assert.equal(e.dtype, 'int64');
  same(e, [3, 2], [0n, 0n, 1n, 0n, 0n, 1n]);
  same(one('Range', [Tensor.scalar('float32', 1), Tensor.scalar('float32', 2.2), Tensor.scalar('float32', 0.5)]), [3], [1, 1.5, 2]);
  same(one('Range', [Tensor.scalar('int64', 10), Tensor.scalar('int64', 3), Tensor.scalar('int64', -3)]), [3], [10n, 7n, 4n]);
  same(one('Range', [Tensor.scalar('int32', 3), Tensor.scalar('int32', 3), Tensor.scalar('int32', 1)]), [0], []);
  assert.throws(() => one('Range', [Tensor.scalar('int32', 0), Tensor.scalar('int32', 3), Tensor.scalar('int32', 0)]), Q8Error);
  const m = Tensor.from('int32', [2, 3, 3], [1, 2, 3, 4, 5, 6, 7, 8, 9, -1, -2, -3, -4, -5, -6, -7, -8, -9]);
  same(one('Trilu', [m]), [2, 3, 3], [1, 2, 3, 0, 5, 6, 0, 0, 9, -1, -2, -3, 0, -5, -6, 0, 0, -9]);
  same(one('Trilu', [m, Tensor.scalar('int64', -1)], { upper: 0 }), [2, 3, 3], [0, 0, 0, 4, 0, 0, 7, 8, 0, 0, 0, 0, -4, 0, 0, -7, -8, 0]);
  same(one('Trilu', [Tensor.from('int32', [2, 3], [1, 2, 3, 4, 5, 6]), Tensor.scalar('int64', 1)]), [2, 3], [0, 2, 3, 0, 0, 6]);
});

test('float16: TopK orders negative values correctly, ScatterElements adds values (not bit patterns)', () => {
  const h = Tensor.from('float16', [4], [-1.5, 2, -3, 0.5]);
  const [v, i] = runOp('TopK', [h, i64([1], [2])], {}, 11);
  assert.equal(v!.dtype, 'float16');
  assert.deepEqual(v!.toNumbers(), [2, 0.5]);
  same(i!, [2], [1n, 3n]);
  const s = runOp('ScatterElements', [h, i64([2], [0, 0]), Tensor.from('float16', [2], [0.25, 1])], { reduction: 'add' }, 16)[0]!;
  assert.equal(s.dtype, 'float16');
  assert.deepEqual(s.toNumbers(), [-0.25, 2, -3, 0.5]);
});
