// Shape / data-movement operators. Inputs come from `seq` (the same formula in numpy); the expected
// arrays were computed once with numpy 1.x via /usr/bin/python3 (np.transpose, slicing, np.pad,
// np.tile, np.broadcast_to, reshape+transpose for DepthToSpace/SpaceToDepth (both modes), np.random.seed +
// uniform for the Dropout mask) and pasted; small cases are worked by hand.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import '../../src/ops/index.js';
import { runOp } from '../../src/runtime/invoke.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { Q8Error } from '../../src/core/errors.js';
import { runMulti, same, seq } from './tensor-test-util.js';

const i64 = (v: number[]) => Tensor.from('int64', [v.length], v);
const one = (op: string, inputs: (Tensor | undefined)[], attrs: Record<string, unknown> = {}, opset = 21) =>
  runOp(op, inputs, attrs, opset)[0]!;

test('Reshape: 0 copies, -1 infers, allowzero keeps 0, bad shapes are Q8Errors', () => {
  const x = seq([2, 3, 4]);
  same(one('Reshape', [x, i64([0, -1])]), [2, 12], [...(x.data as Float32Array)]);
  assert.deepEqual([...one('Reshape', [x, i64([4, 0, -1])]).shape], [4, 3, 2]);
  const empty = Tensor.from('float32', [0, 3], []);
  assert.deepEqual([...one('Reshape', [empty, i64([3, 0])], { allowzero: 1 }).shape], [3, 0]);
  assert.deepEqual([...one('Reshape', [empty, i64([-1, 0])]).shape], [0, 3]); // 0 copies 3, -1 infers 0
  assert.throws(() => one('Reshape', [empty, i64([3, 0])]), Q8Error); // 0 copies 3: [3,3] has 9 elements
  assert.deepEqual([...one('Reshape', [x], { shape: [6, -1] }, 4).shape], [6, 4]); // Reshape-1 attribute
  assert.throws(() => one('Reshape', [x, i64([-1, -1])]), Q8Error);
  assert.throws(() => one('Reshape', [x, i64([5, -1])]), Q8Error);
  assert.throws(() => one('Reshape', [x, i64([7, 3])]), Q8Error);
});

test('Flatten, Squeeze, Unsqueeze across opsets', () => {
  const x = seq([2, 1, 3, 1]);
  assert.deepEqual([...one('Flatten', [x], { axis: -2 }).shape], [2, 3]);
  assert.deepEqual([...one('Flatten', [x], { axis: 0 }).shape], [1, 6]);
  assert.deepEqual([...one('Flatten', [x], { axis: 4 }).shape], [6, 1]);
  assert.deepEqual([...one('Squeeze', [x]).shape], [2, 3]);
  assert.deepEqual([...one('Squeeze', [x, i64([-1])]).shape], [2, 1, 3]);
  assert.deepEqual([...one('Squeeze', [x], { axes: [1] }, 11).shape], [2, 3, 1]);
  assert.throws(() => one('Squeeze', [x, i64([0])]), Q8Error);
  assert.deepEqual([...one('Unsqueeze', [seq([3, 4]), i64([-1, 0])]).shape], [1, 3, 4, 1]);
  assert.deepEqual([...one('Unsqueeze', [seq([3, 4])], { axes: [1, 3] }, 11).shape], [3, 1, 4, 1]);
  assert.throws(() => one('Unsqueeze', [seq([3]), i64([0, 0])]), Q8Error);
});

test('Transpose with perm, default reversal and int64 data', () => {
  same(one('Transpose', [seq([2, 3, 4])], { perm: [2, 0, 1] }), [4, 2, 3],
    [-2.25, 1.5, 0.5, -0.5, -1.5, 2.25, 2.25, 1.25, 0.25, -0.75, -1.75, 2.0, 2.0, 1.0, 0.0, -1.0, -2.0, 1.75, 1.75, 0.75, -0.25, -1.25, -2.25, 1.5]);
  same(one('Transpose', [Tensor.from('int64', [2, 3], [1, 2, 3, 4, 5, 6])]), [3, 2], [1n, 4n, 2n, 5n, 3n, 6n]);
  assert.throws(() => one('Transpose', [seq([2, 3])], { perm: [0, 0] }), Q8Error);
});

test('Concat on a negative axis, with an empty input; mismatches are errors', () => {
  const a = Tensor.from('int32', [2, 2], [1, 2, 3, 4]);
  const b = Tensor.from('int32', [2, 1], [5, 6]);
  const e = Tensor.from('int32', [2, 0], []);
  same(one('Concat', [a, e, b], { axis: -1 }), [2, 3], [1, 2, 5, 3, 4, 6]);
  same(one('Concat', [a, a], { axis: 0 }), [4, 2], [1, 2, 3, 4, 1, 2, 3, 4]);
  assert.throws(() => one('Concat', [a, b], { axis: 0 }), Q8Error);
  assert.throws(() => one('Concat', [a, Tensor.from('float32', [2, 1], [1, 2])], { axis: 1 }), Q8Error);
});

test('Split: attribute (opset 11), input (13), num_outputs with an uneven last chunk (18)', () => {
  const x = Tensor.from('float32', [2, 5], [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  const [p, q] = runMulti('Split', [x], { axis: 1, split: [2, 3] }, 11, 2);
  same(p!, [2, 2], [0, 1, 5, 6]);
  same(q!, [2, 3], [2, 3, 4, 7, 8, 9]);
  const r = runMulti('Split', [x, i64([4, 0, 1])], { axis: -1 }, 13, 3);
  assert.deepEqual(r.map((t) => [...t.shape]), [[2, 4], [2, 0], [2, 1]]);
  same(r[2]!, [2, 1], [4, 9]);
  const u = runMulti('Split', [x], { axis: 1, num_outputs: 3 }, 18, 3);
  assert.deepEqual(u.map((t) => t.shape[1]), [2, 2, 1]);
  same(u[1]!, [2, 2], [2, 3, 7, 8]);
  const eq = runMulti('Split', [Tensor.from('float32', [6], [1, 2, 3, 4, 5, 6])], {}, 13, 3);
  same(eq[2]!, [2], [5, 6]);
  assert.throws(() => runMulti('Split', [x], { axis: 1 }, 13, 2), Q8Error); // 5 does not split in 2
  assert.throws(() => runMulti('Split', [x, i64([2, 2])], { axis: 1 }, 13, 2), Q8Error);
});

test('Slice: negative steps, INT64 extremes, negative axes, Slice-1 attributes', () => {
  const x = seq([2, 3, 4]);
  const big = (v: bigint[]) => Tensor.from('int64', [v.length], v);
  const MAX = 9223372036854775807n, MIN = -9223372036854775808n;
  // x[:, ::-2, 3:0:-1]
  same(one('Slice', [x, big([MAX, 3n]), big([MIN, 0n]), i64([1, -1]), i64([-2, -1])]), [2, 2, 3],
    [-0.25, 0.0, 0.25, 1.75, 2.0, 2.25, 1.5, 1.75, 2.0, -1.25, -1.0, -0.75]);
  // x[1:, -2:, ::3]
  same(one('Slice', [x, i64([1, -2, 0]), big([MAX, MAX, MAX]), undefined, i64([1, 1, 3])]), [1, 2, 2], [-1.5, -2.25, 2.25, 1.5]);
  same(one('Slice', [x], { starts: [1, -2], ends: [1000, 1000], axes: [0, 1] }, 9), [1, 2, 4],
    [...(x.data as Float32Array).slice(16, 24)]);
  assert.deepEqual([...one('Slice', [x, i64([3]), i64([1]), i64([2])]).shape], [2, 3, 0]);
  assert.throws(() => one('Slice', [x, i64([0]), i64([1]), i64([0]), i64([0])]), Q8Error);
});

test('Pad: constant/reflect/edge/wrap, legacy attributes, axes input, negative pads', () => {
  const x = seq([3, 4], 1);
  same(one('Pad', [x, i64([1, 2, 2, 3])], { mode: 'reflect' }), [6, 9],
    [-1.0, -0.75, -0.5, -0.75, -1.0, -1.25, -1.0, -0.75, -0.5, 0.0, 0.25, 0.5, 0.25, 0.0, -0.25, 0.0, 0.25, 0.5, -1.0, -0.75, -0.5, -0.75, -1.0, -1.25, -1.0, -0.75, -0.5, -2.0, -1.75, -1.5, -1.75, -2.0, -2.25, -2.0, -1.75, -1.5, -1.0, -0.75, -0.5, -0.75, -1.0, -1.25, -1.0, -0.75, -0.5, 0.0, 0.25, 0.5, 0.25, 0.0, -0.25, 0.0, 0.25, 0.5]);
  same(one('Pad', [x], { mode: 'edge', pads: [2, 1, 0, 1] }, 2), [5, 6],
    [0.5, 0.5, 0.25, 0.0, -0.25, -0.25, 0.5, 0.5, 0.25, 0.0, -0.25, -0.25, 0.5, 0.5, 0.25, 0.0, -0.25, -0.25, -0.5, -0.5, -0.75, -1.0, -1.25, -1.25, -1.5, -1.5, -1.75, -2.0, -2.25, -2.25]);
  same(one('Pad', [x, i64([1, 3, 1, 2])], { mode: 'wrap' }, 19), [5, 9],
    [-1.75, -2.0, -2.25, -1.5, -1.75, -2.0, -2.25, -1.5, -1.75, 0.25, 0.0, -0.25, 0.5, 0.25, 0.0, -0.25, 0.5, 0.25, -0.75, -1.0, -1.25, -0.5, -0.75, -1.0, -1.25, -0.5, -0.75, -1.75, -2.0, -2.25, -1.5, -1.75, -2.0, -2.25, -1.5, -1.75, 0.25, 0.0, -0.25, 0.5, 0.25, 0.0, -0.25, 0.5, 0.25]);
  const padConst = [1.5, 0.5, 0.25, 0.0, -0.25, 1.5, -0.5, -0.75, -1.0, -1.25, 1.5, -1.5, -1.75, -2.0, -2.25, 1.5, 1.5, 1.5, 1.5, 1.5];
  same(one('Pad', [x, i64([0, 1, 1, 0]), Tensor.scalar('float32', 1.5)]), [4, 5], padConst);
  same(one('Pad', [x], { pads: [0, 1, 1, 0], value: 1.5 }, 10), [4, 5], padConst);
  same(one('Pad', [x], { paddings: [0, 1, 1, 0], value: 1.5 }, 1), [4, 5], padConst);
  // axes input (opset 18): pad only axis -1 by (1, 0); then pads (0,0,0,2) cropped by [1:,1:]
  same(one('Pad', [x, i64([1, 0]), undefined, i64([-1])], {}, 18), [3, 5],
    [0, 0.5, 0.25, 0.0, -0.25, 0, -0.5, -0.75, -1.0, -1.25, 0, -1.5, -1.75, -2.0, -2.25]);
  same(one('Pad', [x, i64([-1, -1, 0, 2])]), [2, 5], [-0.75, -1.0, -1.25, 0.0, 0.0, -1.75, -2.0, -2.25, 0.0, 0.0]);
  same(one('Pad', [Tensor.from('int64', [2], [7, 8]), i64([1, 2]), Tensor.scalar('int64', -3)]), [5], [-3n, 7n, 8n, -3n, -3n]);
  assert.throws(() => one('Pad', [x, i64([1, 1])]), Q8Error);
  assert.throws(() => one('Pad', [x, i64([0, 0, 0, 0])], { mode: 'mirror' }), Q8Error);
});

test('Expand, Tile (opset 6 and Tile-1)', () => {
  same(one('Expand', [seq([3, 1], 3), i64([2, 1, 4])]), [2, 3, 4],
    [1.25, 1.25, 1.25, 1.25, 1.0, 1.0, 1.0, 1.0, 0.75, 0.75, 0.75, 0.75, 1.25, 1.25, 1.25, 1.25, 1.0, 1.0, 1.0, 1.0, 0.75, 0.75, 0.75, 0.75]);
  assert.deepEqual([...one('Expand', [seq([3, 1]), i64([1])]).shape], [3, 1]);
  assert.throws(() => one('Expand', [seq([3, 2]), i64([4])]), Q8Error);
  same(one('Tile', [seq([2, 3], 2), i64([2, 3])]), [4, 9],
    [-1.5, -1.75, -2.0, -1.5, -1.75, -2.0, -1.5, -1.75, -2.0, -2.25, 2.25, 2.0, -2.25, 2.25, 2.0, -2.25, 2.25, 2.0, -1.5, -1.75, -2.0, -1.5, -1.75, -2.0, -1.5, -1.75, -2.0, -2.25, 2.25, 2.0, -2.25, 2.25, 2.0, -2.25, 2.25, 2.0]);
  same(one('Tile', [Tensor.from('int32', [2], [4, 5]), Tensor.scalar('int64', 3), Tensor.scalar('int64', 0)], {}, 1), [6], [4, 5, 4, 5, 4, 5]);
  assert.throws(() => one('Tile', [seq([2, 3]), i64([2])]), Q8Error);
});

test('DepthToSpace (DCR, CRD) and SpaceToDepth', () => {
  const d = seq([1, 8, 2, 3], 4);
  same(one('DepthToSpace', [d], { blocksize: 2 }), [1, 2, 4, 6],
    [-0.75, 1.0, -1.0, 0.75, -1.25, 0.5, -2.0, -0.25, -2.25, -0.5, 2.25, -0.75, -1.5, 0.25, -1.75, 0.0, -2.0, -0.25, 2.0, -1.0, 1.75, -1.25, 1.5, -1.5, -2.25, -0.5, 2.25, -0.75, 2.0, -1.0, 1.25, -1.75, 1.0, -2.0, 0.75, -2.25, 1.75, -1.25, 1.5, -1.5, 1.25, -1.75, 0.5, 2.25, 0.25, 2.0, 0.0, 1.75]);
  same(one('DepthToSpace', [d], { blocksize: 2, mode: 'CRD' }), [1, 2, 4, 6],
    [-0.75, -2.25, -1.0, 2.25, -1.25, 2.0, 1.0, -0.5, 0.75, -0.75, 0.5, -1.0, -1.5, 1.75, -1.75, 1.5, -2.0, 1.25, 0.25, -1.25, 0.0, -1.5, -0.25, -1.75, -2.0, 1.25, -2.25, 1.0, 2.25, 0.75, -0.25, -1.75, -0.5, -2.0, -0.75, -2.25, 2.0, 0.5, 1.75, 0.25, 1.5, 0.0, -1.0, 2.25, -1.25, 2.0, -1.5, 1.75]);
  same(one('SpaceToDepth', [seq([1, 2, 4, 6], 5)], { blocksize: 2 }), [1, 8, 2, 3],
    [2.0, 1.5, 1.0, -1.0, -1.5, -2.0, 0.75, 0.25, -0.25, -2.25, 2.0, 1.5, 1.75, 1.25, 0.75, -1.25, -1.75, -2.25, 0.5, 0.0, -0.5, 2.25, 1.75, 1.25, 0.5, 0.0, -0.5, 2.25, 1.75, 1.25, -0.75, -1.25, -1.75, 1.0, 0.5, 0.0, 0.25, -0.25, -0.75, 2.0, 1.5, 1.0, -1.0, -1.5, -2.0, 0.75, 0.25, -0.25]);
  same(one('SpaceToDepth', [seq([1, 2, 4, 6], 5)], { blocksize: 2, mode: 'CRD' }), [1, 8, 2, 3],
    [2.0, 1.5, 1.0, -1.0, -1.5, -2.0, 1.75, 1.25, 0.75, -1.25, -1.75, -2.25, 0.5, 0.0, -0.5, 2.25, 1.75, 1.25, 0.25, -0.25, -0.75, 2.0, 1.5, 1.0, 0.75, 0.25, -0.25, -2.25, 2.0, 1.5, 0.5, 0.0, -0.5, 2.25, 1.75, 1.25, -0.75, -1.25, -1.75, 1.0, 0.5, 0.0, -1.0, -1.5, -2.0, 0.75, 0.25, -0.25]);
  // round trip and errors
  const back = one('SpaceToDepth', [one('DepthToSpace', [d], { blocksize: 2 })], { blocksize: 2 });
  assert.deepEqual([...back.data as Float32Array], [...d.data as Float32Array]);
  assert.throws(() => one('DepthToSpace', [seq([1, 6, 2, 2])], { blocksize: 2 }), Q8Error);
  assert.throws(() => one('SpaceToDepth', [seq([1, 1, 3, 4])], { blocksize: 2 }), Q8Error);
});

test('Constant attributes, ConstantOfShape, Shape(start,end), Size, Identity', () => {
  same(one('Constant', [], { value_ints: [3, -1, 4] }), [3], [3n, -1n, 4n]);
  same(one('Constant', [], { value_float: { type: 'float', value: 2 } }), [], [2]);
  assert.equal(one('Constant', [], { value_float: 2.5 }).dtype, 'float32');
  assert.deepEqual(one('Constant', [], { value_strings: ['a', 'b'] }).data, ['a', 'b']);
  assert.throws(() => one('Constant', []), Q8Error);
  assert.throws(() => one('Constant', [], { sparse_value: { type: 'int', value: 0 } }), /sparse/);
  same(one('ConstantOfShape', [i64([2, 3])], { value: Tensor.from('int64', [1], [-7]) }), [2, 3], Array(6).fill(-7n));
  same(one('ConstantOfShape', [i64([2])]), [2], [0, 0]);
  assert.deepEqual([...one('ConstantOfShape', [i64([])], { value: Tensor.from('int32', [1], [5]) }).data as Int32Array], [5]);
  const x = seq([2, 3, 4, 5]);
  same(one('Shape', [x]), [4], [2n, 3n, 4n, 5n]);
  same(one('Shape', [x], { start: -3, end: -1 }, 15), [2], [3n, 4n]);
  same(one('Shape', [x], { start: 1, end: 100 }, 15), [3], [3n, 4n, 5n]);
  same(one('Shape', [x], { start: 3, end: 1 }, 15), [0], []);
  same(one('Size', [x]), [], [120n]);
  assert.equal(one('Identity', [x]), x);
});

test('Dropout: inference passes through with an all-true mask; training with a seed matches numpy', () => {
  const x = seq([3, 5], 6);
  const [y, m] = runMulti('Dropout', [x, Tensor.scalar('float32', 0.4)], { seed: 7 }, 13, 2);
  assert.equal(y, x);
  same(m!, [3, 5], Array(15).fill(1));
  assert.equal(m!.dtype, 'bool');
  // opset 7: mask has the input's type
  assert.equal(runMulti('Dropout', [x], { ratio: 0.3 }, 7, 2)[1]!.dtype, 'float32');
  const [ty, tm] = runMulti('Dropout', [x, Tensor.scalar('float32', 0.4), Tensor.scalar('bool', 1)], { seed: 7 }, 13, 2);
  const mask = [0, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 0, 0, 0]; // np.random.seed(7); uniform(0,1,(3,5)) >= 0.4
  same(tm!, [3, 5], mask);
  const X = x.data as Float32Array;
  const Y = ty!.data as Float32Array;
  mask.forEach((k, i) => assert.ok(Math.abs(Y[i]! - (k ? X[i]! / 0.6 : 0)) < 1e-6, `y[${i}]`));
  assert.throws(() => runMulti('Dropout', [x, Tensor.scalar('float32', 1), Tensor.scalar('bool', 1)], {}, 13, 1), Q8Error);
});

test('float16 data moves as bits; Pad fills with the given float16 value', () => {
  const h = Tensor.from('float16', [2, 2], [-1.5, 2, -3, 0.5]);
  const p = one('Pad', [h, i64([0, 1, 0, 0]), Tensor.from('float16', [], [-2.5])]);
  assert.equal(p.dtype, 'float16');
  assert.deepEqual(p.toNumbers(), [-2.5, -1.5, 2, -2.5, -3, 0.5]);
  assert.deepEqual(one('Pad', [h], { pads: [1, 0, 0, 0], value: 0.75 }, 2).toNumbers(), [0.75, 0.75, -1.5, 2, -3, 0.5]);
  assert.deepEqual(one('Transpose', [h]).toNumbers(), [-1.5, -3, 2, 0.5]);
});

test('data movement keeps every storage type exact: string, bool, int8, uint64, float64', () => {
  const s = Tensor.from('string', [2, 2], ['a', 'b', 'c', 'd']);
  assert.deepEqual(one('Transpose', [s]).data, ['a', 'c', 'b', 'd']);
  assert.deepEqual(one('Concat', [s, s], { axis: 1 }).data, ['a', 'b', 'a', 'b', 'c', 'd', 'c', 'd']);
  assert.deepEqual(one('Pad', [s, i64([0, 1, 0, 0])], { mode: 'edge' }).data, ['a', 'a', 'b', 'c', 'c', 'd']);
  same(one('Tile', [Tensor.from('bool', [2], [1, 0]), i64([2])]), [4], [1, 0, 1, 0]);
  same(one('Slice', [Tensor.from('int8', [5], [-128, -1, 0, 1, 127]), i64([-1]), i64([-6]), i64([0]), i64([-2])]), [3], [127, 0, -128]);
  same(one('Expand', [Tensor.from('uint64', [1], [18446744073709551615n]), i64([2])]), [2], [18446744073709551615n, 18446744073709551615n]);
  same(one('Gather', [Tensor.from('float64', [3], [0.1, 0.2, 0.3]), i64([2, 0])]), [2], [0.3, 0.1]);
});

test('legacy opsets: Concat-1 default axis, Split-1 split input, Split-2 attribute, Slice-1 without axes, Dropout-6', () => {
  const a = Tensor.from('int32', [2, 1], [1, 2]);
  same(one('Concat', [a, a], {}, 1), [2, 2], [1, 1, 2, 2]);
  assert.throws(() => one('Concat', [a, a], {}, 4), Q8Error); // axis became required
  const x = Tensor.from('int32', [5], [0, 1, 2, 3, 4]);
  const s1 = runMulti('Split', [x, i64([3, 2])], {}, 1, 2);
  same(s1[0]!, [3], [0, 1, 2]);
  const s2 = runMulti('Split', [x], { split: [1, 4] }, 2, 2);
  same(s2[1]!, [4], [1, 2, 3, 4]);
  same(one('Slice', [seq([3, 4])], { starts: [1, -3], ends: [2, -1] }, 1), [1, 2], [1.25, 1]); // row 1 of seq: 1.5 1.25 1 0.75
  const [y, m] = runMulti('Dropout', [seq([2, 2])], { is_test: 1, ratio: 0.3 }, 6, 2);
  assert.deepEqual(y!.toNumbers(), seq([2, 2]).toNumbers());
  assert.equal(m!.dtype, 'float32');
  assert.deepEqual(m!.toNumbers(), [1, 1, 1, 1]);
});
