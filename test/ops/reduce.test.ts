// Expected values were computed once with numpy (np.sum/mean/max/..., np.argmax, a float64 softmax,
// np.cumsum) via /usr/bin/python3 on the tensor X below and pasted here.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import '../../src/ops/index.js';
import { runOp } from '../../src/runtime/invoke.js';
import { Tensor } from '../../src/tensor/tensor.js';

function close(actual: ArrayLike<number>, expected: readonly number[], rtol = 1e-5, atol = 1e-6): void {
  assert.equal(actual.length, expected.length, 'length');
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i]!, e = expected[i]!;
    if (a === e || (Number.isNaN(a) && Number.isNaN(e))) continue;
    assert.ok(Math.abs(a - e) <= atol + rtol * Math.abs(e), `[${i}] expected ${e}, got ${a}`);
  }
}

const XV = [0.75, -0.25, 1.0, 0.25, -1.25, 2.25, 0.5, -1.5, 1.25, 0.75, -1.25, 2.0, 2.25, -1.75, 2.25, 0.75, 0.5, -0.75, 2.0, 1.0, 1.5, -0.5, 1.5, 1.0];
const X = () => Tensor.from('float32', [2, 3, 4], XV);
const axesT = (a: number[]) => Tensor.from('int64', [a.length], a.map(BigInt));
const one = (op: string, inputs: (Tensor | undefined)[], attrs: Record<string, unknown> = {}, opset = 21) =>
  runOp(op, inputs, attrs, opset)[0]!;

test('reductions: axes as input (opset 18) and as attribute (opset 13)', () => {
  const s = one('ReduceSum', [X(), axesT([1])]);
  assert.deepEqual(s.shape, [2, 1, 4]);
  close(s.data as Float32Array, [0.75, 2.75, 0.25, 0.75, 4.25, -3.0, 5.75, 2.75]);
  const m = one('ReduceMean', [X()], { axes: [0, 2], keepdims: 0 }, 13);
  assert.deepEqual(m.shape, [3]);
  close(m.data as Float32Array, [0.65625, 0.34375, 0.78125]);
  close(one('ReduceMean', [X(), axesT([2, 0])], { keepdims: 0 }).data as Float32Array, [0.65625, 0.34375, 0.78125]);
  close(one('ReduceMax', [X(), axesT([-1])]).data as Float32Array, [1.0, 2.25, 2.0, 2.25, 2.0, 1.5]);
  const mn = one('ReduceMin', [X()], { keepdims: 0 });
  assert.deepEqual(mn.shape, []);
  close(mn.data as Float32Array, [-1.75]);
  close(one('ReduceProd', [X()], { axes: [1], keepdims: 0 }, 11).data as Float32Array, [-1.171875, -0.421875, -0.625, -0.75, 1.6875, -0.65625, 6.75, 0.75]);
  close(one('ReduceL1', [X(), axesT([2])], { keepdims: 0 }).data as Float32Array, [2.25, 5.5, 5.25, 7.0, 4.25, 4.5]);
  close(one('ReduceL2', [X()], { axes: [0], keepdims: 0 }, 1).data as Float32Array, [2.3717081546783447, 1.7677669525146484, 2.462214469909668, 0.7905694246292114, 1.346291184425354, 2.3717081546783447, 2.0615527629852295, 1.8027756214141846, 1.9525624513626099, 0.9013878107070923, 1.9525624513626099, 2.2360680103302]);
  const ss = one('ReduceSumSquare', [X(), axesT([1, 2])]);
  assert.deepEqual(ss.shape, [2, 1, 1]);
  close(ss.data as Float32Array, [18.5, 25.3125]);
  const abs = Tensor.from('float32', [2, 3, 4], XV.map(Math.abs));
  close(one('ReduceLogSum', [abs, axesT([2])], { keepdims: 0 }).data as Float32Array, [0.8109302520751953, 1.7047481536865234, 1.6582280397415161, 1.9459102153778076, 1.4469189643859863, 1.504077434539795]);
  close(one('ReduceLogSumExp', [X(), axesT([1])], { keepdims: 0 }).data as Float32Array, [1.7739090561799076, 2.5163678998071335, 1.537621321433714, 2.185625531713319, 2.7484334547431497, 0.2252781960613617, 3.0614488975945138, 2.0220194616385516]);
  // large values do not overflow log-sum-exp
  close(one('ReduceLogSumExp', [Tensor.from('float32', [2], [1000, 1000])]).data as Float32Array, [1000 + Math.LN2]);
});

test('reductions: empty axes, noop_with_empty_axes, integer and empty tensors', () => {
  const all = one('ReduceSum', [X(), axesT([])]);
  assert.deepEqual(all.shape, [1, 1, 1]);
  close(all.data as Float32Array, [XV.reduce((a, b) => a + b, 0)]);
  const noop = one('ReduceSum', [X(), axesT([])], { noop_with_empty_axes: 1 });
  assert.deepEqual(noop.shape, [2, 3, 4]);
  close(noop.data as Float32Array, XV);
  // noop_with_empty_axes does not exist for attribute-axes opsets: reduce all
  assert.deepEqual(one('ReduceMean', [X()], { noop_with_empty_axes: 1 }, 13).shape, [1, 1, 1]);
  const ints = Tensor.from('int32', [2, 3], [7, -2, 5, 1, 1, 2]);
  assert.deepEqual([...(one('ReduceMean', [ints, axesT([1])], { keepdims: 0 }).data as Int32Array)], [3, 1]);
  assert.deepEqual([...(one('ReduceMax', [Tensor.from('int64', [3], [-5n, 9007199254740993n, 3n])], { keepdims: 0 }).data as BigInt64Array)], [9007199254740993n]);
  // int64 L2: sqrt(3^2 + 4^2) = 5, sqrt(1 + 1) truncated to 1
  assert.deepEqual([...(one('ReduceL2', [Tensor.from('int64', [2, 2], [3n, 4n, 1n, -1n]), axesT([1])], { keepdims: 0 }).data as BigInt64Array)], [5n, 1n]);
  const empty = one('ReduceSum', [Tensor.zeros('float32', [0, 3]), axesT([0])], { keepdims: 0 });
  assert.deepEqual(empty.shape, [3]);
  close(empty.data as Float32Array, [0, 0, 0]);
  close(one('ReduceProd', [Tensor.zeros('float32', [2, 0]), axesT([1])], { keepdims: 0 }).data as Float32Array, [1, 1]);
  assert.deepEqual([...(one('ReduceMax', [Tensor.from('bool', [2, 2], [0, 1, 0, 0]), axesT([1])], { keepdims: 0 }).data as Uint8Array)], [1, 0]);
  assert.throws(() => one('ReduceSum', [Tensor.from('bool', [2], [0, 1])]), /numeric/);
  assert.throws(() => one('ReduceSum', [X(), axesT([1, -2])]), /repeats/);
  assert.throws(() => one('ReduceSum', [X(), axesT([3])]), /out of range/);
});

test('ArgMax/ArgMin with keepdims and select_last_index', () => {
  const a = one('ArgMax', [X()], { axis: 1, keepdims: 0 });
  assert.equal(a.dtype, 'int64');
  assert.deepEqual([...(a.data as BigInt64Array)].map(Number), [2, 1, 0, 2, 0, 2, 0, 1]);
  const b = one('ArgMin', [X()], { axis: -1 });
  assert.deepEqual(b.shape, [2, 3, 1]);
  assert.deepEqual([...(b.data as BigInt64Array)].map(Number), [1, 3, 2, 1, 1, 1]);
  const c = one('ArgMax', [X()], { axis: 2, keepdims: 0, select_last_index: 1 });
  assert.deepEqual([...(c.data as BigInt64Array)].map(Number), [2, 1, 3, 2, 2, 2]);
  // select_last_index does not exist before opset 12
  const d = one('ArgMax', [X()], { axis: 2, keepdims: 0, select_last_index: 1 }, 11);
  assert.deepEqual([...(d.data as BigInt64Array)].map(Number), [2, 1, 3, 0, 2, 0]);
});

test('Softmax family: single axis from opset 13, 2-D coercion before', () => {
  close(one('Softmax', [X()], { axis: 1 }).data as Float32Array, [0.35918810578253857, 0.0628900132458675, 0.5841360730867737, 0.1443339551132098, 0.04861082403130226, 0.7661572065563422, 0.3542964377712679, 0.02508148055382201, 0.5922010701861591, 0.17095278019779026, 0.061567489141958455, 0.8305845643329681, 0.6074815620620584, 0.1387227147615025, 0.4442139791616654, 0.2802650653533347, 0.1055644666129602, 0.3770874347306996, 0.3459541948223697, 0.35986746732333263, 0.2869539713249813, 0.48418985050779806, 0.2098318260159648, 0.35986746732333263]);
  close(one('Softmax', [X()], {}, 11).data as Float32Array, [0.0665156345366903, 0.024469734462521518, 0.08540776535222329, 0.040343771696743184, 0.009001912239686, 0.29810239230968605, 0.05180242826366578, 0.007010696301407521, 0.10966574149475738, 0.0665156345366903, 0.009001912239686, 0.2321623765662426, 0.2072333493213387, 0.003795611191872546, 0.2072333493213387, 0.04624001042216581, 0.036011756326012646, 0.01031754093076292, 0.16139349472996858, 0.059373348649966955, 0.09789010283189525, 0.013247984792815687, 0.09789010283189525, 0.059373348649966955]);
  close(one('LogSoftmax', [X()]).data as Float32Array, [-1.1812471776031834, -2.1812471776031837, -0.9312471776031835, -1.6812471776031837, -3.704970678592962, -0.20497067859296222, -1.9549706785929624, -3.954970678592962, -1.3364777850441028, -1.8364777850441028, -3.8364777850441025, -0.5864777850441029, -0.8071211036550014, -4.8071211036550014, -0.8071211036550014, -2.3071211036550014, -2.0037632211220764, -3.2537632211220764, -0.5037632211220766, -1.5037632211220764, -1.0086386897003332, -3.008638689700333, -1.0086386897003332, -1.5086386897003332]);
  // LogSoftmax along a non-innermost axis equals log(Softmax) there
  const sm1 = one('Softmax', [X()], { axis: 1 }).data as Float32Array;
  close(one('LogSoftmax', [X()], { axis: 1 }).data as Float32Array, [...sm1].map(Math.log));
  // Hardmax: first maximum wins
  const h = one('Hardmax', [X()], { axis: -1 });
  assert.deepEqual([...(h.data as Float32Array)], [0, 0, 1, 0, 0, 1, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 1, 0, 1, 0, 0, 0]);
  const h11 = one('Hardmax', [X()], { axis: 1 }, 11);
  assert.deepEqual([...(h11.data as Float32Array)].map((v, i) => v * (i + 1)).filter((v) => v), [6, 13]);
  assert.throws(() => one('Softmax', [X()], { axis: 3 }), /out of range/);
});

test('CumSum: axis input, exclusive, reverse', () => {
  close(one('CumSum', [X(), Tensor.scalar('int32', 1)]).data as Float32Array, [0.75, -0.25, 1.0, 0.25, -0.5, 2.0, 1.5, -1.25, 0.75, 2.75, 0.25, 0.75, 2.25, -1.75, 2.25, 0.75, 2.75, -2.5, 4.25, 1.75, 4.25, -3.0, 5.75, 2.75]);
  close(one('CumSum', [X(), Tensor.scalar('int64', -1n)], { exclusive: 1, reverse: 1 }).data as Float32Array, [1.0, 1.25, 0.25, 0.0, 1.25, -1.0, -1.5, 0.0, 1.5, 0.75, 2.0, 0.0, 1.25, 3.0, 0.75, 0.0, 2.25, 3.0, 1.0, 0.0, 2.0, 2.5, 1.0, 0.0]);
  const big = one('CumSum', [Tensor.from('int64', [3], [9007199254740993n, 1n, -2n]), Tensor.scalar('int64', 0n)], { exclusive: 1 });
  assert.deepEqual([...(big.data as BigInt64Array)], [0n, 9007199254740993n, 9007199254740994n]);
  assert.throws(() => one('CumSum', [X(), Tensor.from('int64', [2], [0n, 1n])]), /one value/);
});
