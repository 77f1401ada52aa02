// Expected values were computed once with numpy 1.x (float32 inputs; math.erf for Erf) via
// /usr/bin/python3 and pasted here; integer and hand-checkable cases are computed by hand.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import '../../src/ops/index.js';
import { runOp } from '../../src/runtime/invoke.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { Q8Error } from '../../src/core/errors.js';
import { f16ToF32 } from '../../src/core/dtype.js';

const f32 = (shape: number[], v: number[]) => Tensor.from('float32', shape, v);

function close(actual: ArrayLike<number>, expected: readonly number[], rtol = 1e-5, atol = 1e-6): void {
  assert.equal(actual.length, expected.length, 'length');
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i]!, e = expected[i]!;
    if (Number.isNaN(e)) { assert.ok(Number.isNaN(a), `[${i}] expected NaN, got ${a}`); continue; }
    if (a === e) continue;
    assert.ok(Math.abs(a - e) <= atol + rtol * Math.abs(e), `[${i}] expected ${e}, got ${a}`);
  }
}

const one = (op: string, inputs: (Tensor | undefined)[], attrs: Record<string, unknown> = {}, opset = 21) =>
  runOp(op, inputs, attrs, opset)[0]!;

// x for the unary tests
const X = [-2.5, -1.5, -0.5, 0, 0.5, 1.5, 2.5, 3.7, -3.2];
const xt = () => f32([3, 3], X);

test('binary arithmetic broadcasts [2,3,1] with [1,4]', () => {
  const a = f32([2, 3, 1], [0.5, -1.25, 2, 3.5, -0.75, 1]);
  const b = f32([1, 4], [1, -2, 0.25, 4]);
  const add = one('Add', [a, b]);
  assert.deepEqual(add.shape, [2, 3, 4]);
  close(add.data as Float32Array, [1.5, -1.5, 0.75, 4.5, -0.25, -3.25, -1.0, 2.75, 3.0, 0.0, 2.25, 6.0, 4.5, 1.5, 3.75, 7.5, 0.25, -2.75, -0.5, 3.25, 2.0, -1.0, 1.25, 5.0]);
  close(one('Sub', [a, b]).data as Float32Array, [-0.5, 2.5, 0.25, -3.5, -2.25, 0.75, -1.5, -5.25, 1.0, 4.0, 1.75, -2.0, 2.5, 5.5, 3.25, -0.5, -1.75, 1.25, -1.0, -4.75, 0.0, 3.0, 0.75, -3.0]);
  close(one('Mul', [a, b]).data as Float32Array, [0.5, -1.0, 0.125, 2.0, -1.25, 2.5, -0.3125, -5.0, 2.0, -4.0, 0.5, 8.0, 3.5, -7.0, 0.875, 14.0, -0.75, 1.5, -0.1875, -3.0, 1.0, -2.0, 0.25, 4.0]);
  close(one('Div', [a, b]).data as Float32Array, [0.5, -0.25, 2.0, 0.125, -1.25, 0.625, -5.0, -0.3125, 2.0, -1.0, 8.0, 0.5, 3.5, -1.75, 14.0, 0.875, -0.75, 0.375, -3.0, -0.1875, 1.0, -0.5, 4.0, 0.25]);
  // scalar on either side
  close(one('Sub', [Tensor.scalar('float32', 1), f32([3], [0.5, 2, -1])]).data as Float32Array, [0.5, -1, 2]);
});

test('legacy broadcast/axis attributes before opset 7', () => {
  const A = f32([2, 3, 2], Array.from({ length: 12 }, (_, i) => i * 0.5 - 2));
  const y = one('Add', [A, f32([3], [3, -1, 0.5])], { broadcast: 1, axis: 1 }, 6);
  close(y.data as Float32Array, [1.0, 1.5, -2.0, -1.5, 0.5, 1.0, 4.0, 4.5, 1.0, 1.5, 3.5, 4.0]);
  // no axis: B aligns with the trailing dims
  const m = one('Mul', [A, f32([2], [2, -3])], { broadcast: 1 }, 1);
  close(m.data as Float32Array, [-4.0, 4.5, -2.0, 1.5, 0.0, -1.5, 2.0, -4.5, 4.0, -7.5, 6.0, -10.5]);
  // without broadcast=1 the shapes must match
  assert.throws(() => one('Add', [A, f32([3], [3, -1, 0.5])], {}, 6), Q8Error);
  // numpy rules from opset 7: [3] does not broadcast against [2,3,2]
  assert.throws(() => one('Add', [A, f32([3], [3, -1, 0.5])], {}, 7), /broadcast/);
});

test('absurd broadcast results are refused before any large allocation', () => {
  const big = (shape: number[]) => Tensor.zeros('float32', shape);
  assert.throws(() => one('Add', [big([50000, 1, 1]), big([1, 50000, 1])]), /limit/);
  assert.throws(() => one('Where', [Tensor.zeros('bool', [3000, 1, 1]), big([1, 3000, 1]), big([1, 1, 3000])]), /limit/);
});

test('integer arithmetic truncates and wraps like C', () => {
  const a = Tensor.from('int32', [8], [-7, 7, -9, 9, 5, -5, 0, 13]);
  const b = Tensor.from('int32', [8], [2, 2, -4, -4, 3, 3, 7, -5]);
  assert.deepEqual([...(one('Div', [a, b]).data as Int32Array)], [-3, 3, 2, -2, 1, -1, 0, -2]);
  assert.deepEqual([...(one('Mod', [a, b]).data as Int32Array)], [1, 1, -1, -3, 2, 1, 0, -2]);
  assert.deepEqual([...(one('Mod', [a, b], { fmod: 1 }).data as Int32Array)], [-1, 1, -1, 1, 2, -2, 0, 3]);
  // 65536 * 65537 = 2^32 + 65536 → low 32 bits 65536
  assert.deepEqual([...(one('Mul', [Tensor.from('int32', [1], [65536]), Tensor.from('int32', [1], [65537])]).data as Int32Array)], [65536]);
  // int16 wraps: 300 * 300 = 90000 → 24464; broadcast int8 subtraction
  assert.deepEqual([...(one('Mul', [Tensor.from('int16', [2], [300, -7]), Tensor.from('int16', [1], [300])]).data as Int16Array)], [24464, -2100]);
  assert.deepEqual([...(one('Sub', [Tensor.from('int8', [2, 1], [100, -100]), Tensor.from('int8', [2], [-50, 50])]).data as Int8Array)], [-106, 50, -50, 106]);
  // uint8 wraps: 200 + 100 = 44
  assert.deepEqual([...(one('Add', [Tensor.from('uint8', [2], [200, 3]), Tensor.from('uint8', [2], [100, 4])]).data as Uint8Array)], [44, 7]);
  // int64 via bigint
  const big = one('Div', [Tensor.from('int64', [3], [9007199254740993n, -7n, 5n]), Tensor.from('int64', [3], [1n, 2n, 0n])]);
  assert.deepEqual([...(big.data as BigInt64Array)], [9007199254740993n, -3n, 0n]);
  assert.deepEqual([...(one('Mod', [Tensor.from('int64', [2], [-7n, 7n]), Tensor.from('int64', [2], [3n, -3n])]).data as BigInt64Array)], [2n, -2n]);
});

test('Mod on floats needs fmod=1', () => {
  const a = f32([4], [-7.5, 7.25, -9, 9.5]);
  const b = f32([4], [2, 2.5, -4, -4]);
  close(one('Mod', [a, b], { fmod: 1 }).data as Float32Array, [-1.5, 2.25, -1.0, 1.5]);
  assert.throws(() => one('Mod', [a, b]), /fmod/);
});

test('Pow with mixed base/exponent dtypes', () => {
  const y = one('Pow', [f32([4], [1.5, -2, 3, 0.5]), Tensor.from('int64', [4], [2n, 3n, -1n, 4n])]);
  assert.equal(y.dtype, 'float32');
  close(y.data as Float32Array, [2.25, -8.0, 0.3333333432674408, 0.0625]);
  const yi = one('Pow', [Tensor.from('int32', [4], [3, -2, 7, 2]), Tensor.from('int32', [4], [4, 5, 2, 30])]);
  assert.deepEqual([...(yi.data as Int32Array)], [81, -32, 49, 1073741824]);
  const yb = one('Pow', [Tensor.from('int64', [2], [3n, -5n]), Tensor.from('int64', [2], [39n, 3n])]);
  assert.deepEqual([...(yb.data as BigInt64Array)], [4052555153018976267n, -125n]);
  assert.throws(() => one('Pow', [f32([1], [2]), Tensor.from('int64', [1], [2n])], {}, 11), /same dtype/);
});

test('comparisons and logic give bool with broadcasting', () => {
  const a = f32([2, 2], [1, 2, 3, 4]);
  const b = f32([2], [2, 3]);
  const t = (op: string) => [...(one(op, [a, b]).data as Uint8Array)];
  assert.deepEqual(t('Greater'), [0, 0, 1, 1]);
  assert.deepEqual(t('GreaterOrEqual'), [0, 0, 1, 1]);
  assert.deepEqual([...(one('GreaterOrEqual', [a, f32([2], [1, 5])]).data as Uint8Array)], [1, 0, 1, 0]);
  assert.deepEqual(t('Less'), [1, 1, 0, 0]);
  assert.deepEqual(t('LessOrEqual'), [1, 1, 0, 0]);
  assert.deepEqual(t('Equal'), [0, 0, 0, 0]);
  assert.deepEqual([...(one('Equal', [a, f32([2], [3, 2])]).data as Uint8Array)], [0, 1, 1, 0]);
  assert.deepEqual([...(one('Equal', [Tensor.from('string', [2], ['a', 'b']), Tensor.from('string', [1], ['b'])]).data as Uint8Array)], [0, 1]);
  const p = Tensor.from('bool', [2, 2], [1, 0, 1, 0]);
  const q = Tensor.from('bool', [2], [1, 1]).reshape([2, 1]);
  assert.deepEqual([...(one('And', [p, q]).data as Uint8Array)], [1, 0, 1, 0]);
  assert.deepEqual([...(one('Or', [p, Tensor.from('bool', [2], [0, 1])]).data as Uint8Array)], [1, 1, 1, 1]);
  assert.deepEqual([...(one('Xor', [p, Tensor.from('bool', [2], [0, 1])]).data as Uint8Array)], [1, 1, 1, 1]);
  assert.deepEqual([...(one('Xor', [p, q]).data as Uint8Array)], [0, 1, 0, 1]);
  assert.deepEqual([...(one('Not', [p]).data as Uint8Array)], [0, 1, 0, 1]);
  assert.throws(() => one('And', [a, b]), /bool/);
  assert.throws(() => one('Add', [a, Tensor.from('float64', [2], [1, 2])]), /same dtype/);
});

test('unary math', () => {
  close(one('Round', [xt()]).data as Float32Array, [-2.0, -2.0, -0.0, 0.0, 0.0, 2.0, 2.0, 4.0, -3.0]);
  close(one('Tanh', [xt()]).data as Float32Array, [-0.9866142868995667, -0.9051482081413269, -0.46211719512939453, 0.0, 0.46211719512939453, 0.9051482081413269, 0.9866142868995667, 0.998778223991394, -0.9966824054718018]);
  close(one('Erf', [xt()]).data as Float32Array, [-0.999593047982555, -0.9661051464753108, -0.5204998778130465, 0.0, 0.5204998778130465, 0.9661051464753108, 0.999593047982555, 0.9999998328490031, -0.9999939742407697]);
  close(one('Asinh', [xt()]).data as Float32Array, [-1.647231101989746, -1.19476318359375, -0.4812118113040924, 0.0, 0.4812118113040924, 1.19476318359375, 1.647231101989746, 2.0192606449127197, -1.8798636198043823]);
  close(one('Atan', [xt()]).data as Float32Array, [-1.1902899742126465, -0.9827937483787537, -0.46364760398864746, 0.0, 0.46364760398864746, 0.9827937483787537, 1.1902899742126465, 1.3068325519561768, -1.267911434173584]);
  close(one('Sign', [f32([4], [-3, 0, 2.5, NaN])]).data as Float32Array, [-1, 0, 1, NaN]);
  assert.deepEqual([...(one('Abs', [Tensor.from('int8', [3], [-128, -5, 7])]).data as Int8Array)], [-128, 5, 7]);
  assert.deepEqual([...(one('Neg', [Tensor.from('int64', [2], [5n, -9n])]).data as BigInt64Array)], [-5n, 9n]);
  const inf = f32([4], [Infinity, -Infinity, NaN, 1]);
  assert.deepEqual([...(one('IsInf', [inf]).data as Uint8Array)], [1, 1, 0, 0]);
  assert.deepEqual([...(one('IsInf', [inf], { detect_positive: 0 }).data as Uint8Array)], [0, 1, 0, 0]);
  assert.deepEqual([...(one('IsInf', [inf], { detect_negative: 0 }).data as Uint8Array)], [1, 0, 0, 0]);
  assert.deepEqual([...(one('IsNaN', [inf]).data as Uint8Array)], [0, 0, 1, 0]);
  assert.throws(() => one('Sqrt', [Tensor.from('int32', [1], [4])]), /not supported/);
});

test('activations with attributes', () => {
  close(one('Sigmoid', [xt()]).data as Float32Array, [0.07585818002124355, 0.18242552380635632, 0.3775406687981454, 0.5, 0.6224593312018546, 0.8175744761936437, 0.9241418199787566, 0.9758729797050395, 0.039165721002341815]);
  close(one('Softplus', [xt()]).data as Float32Array, [0.07888973429254964, 0.20141327798275238, 0.4740769841801067, 0.6931471805599453, 0.9740769841801067, 1.7014132779827524, 2.5788897342925496, 3.724422892467029, 0.0399533312948632]);
  close(one('Softsign', [xt()]).data as Float32Array, [-0.7142857313156128, -0.6000000238418579, -0.3333333432674408, 0.0, 0.3333333432674408, 0.6000000238418579, 0.7142857313156128, 0.7872340679168701, -0.7619048357009888]);
  close(one('Elu', [xt()], { alpha: 0.7 }).data as Float32Array, [-0.642540454864502, -0.5438088774681091, -0.27542853355407715, 0.0, 0.5, 1.5, 2.5, 3.700000047683716, -0.6714664697647095]);
  close(one('Selu', [xt()]).data as Float32Array, [-1.613785743713379, -1.3658143281936646, -0.6917582154273987, 0.0, 0.5253505110740662, 1.5760514736175537, 2.6267526149749756, 3.8875937461853027, -1.6864352226257324]);
  close(one('Celu', [xt()], { alpha: { type: 'float', value: 2 } }).data as Float32Array, [-1.4269905090332031, -1.0552668571472168, -0.4423985481262207, 0.0, 0.5, 1.5, 2.5, 3.700000047683716, -1.5962069034576416]);
  close(one('HardSigmoid', [xt()], { alpha: 0.3, beta: 0.4 }).data as Float32Array, [0.0, 0.0, 0.25, 0.4000000059604645, 0.550000011920929, 0.8500000238418579, 1.0, 1.0, 0.0]);
  close(one('HardSwish', [xt()]).data as Float32Array, [-0.208333358168602, -0.375, -0.2083333283662796, 0.0, 0.2916666567325592, 1.125, 2.2916665077209473, 3.700000047683716, -0.0]);
  close(one('LeakyRelu', [xt()], { alpha: 0.1 }).data as Float32Array, [-0.25, -0.15000000596046448, -0.05000000074505806, 0.0, 0.5, 1.5, 2.5, 3.700000047683716, -0.320000022649765]);
  close(one('ThresholdedRelu', [xt()], { alpha: 1.2 }).data as Float32Array, [0.0, 0.0, 0.0, 0.0, 0.0, 1.5, 2.5, 3.700000047683716, 0.0]);
  close(one('Shrink', [xt()], { lambd: { type: 'float', value: 1 }, bias: 0.25 }).data as Float32Array, [-2.25, -1.25, 0.0, 0.0, 0.0, 1.25, 2.25, 3.450000047683716, -2.950000047683716]);
  close(one('Relu', [xt()]).data as Float32Array, X.map((v) => Math.max(v, 0)));
  assert.deepEqual([...(one('Relu', [Tensor.from('int8', [3], [-3, 4, 0])]).data as Int8Array)], [0, 4, 0]);
});

test('Clip: attributes before opset 11, inputs after, integers, min > max', () => {
  close(one('Clip', [xt()], { min: -1, max: { type: 'float', value: 2 } }, 6).data as Float32Array, X.map((v) => Math.min(Math.max(v, -1), 2)));
  close(one('Clip', [xt()], { min: { type: 'float', value: 0 } }, 6).data as Float32Array, X.map((v) => Math.max(v, 0)));
  close(one('Clip', [xt(), Tensor.scalar('float32', -0.5), Tensor.scalar('float32', 1.5)]).data as Float32Array, X.map((v) => Math.min(Math.max(v, -0.5), 1.5)));
  close(one('Clip', [xt(), undefined, Tensor.scalar('float32', 0.5)]).data as Float32Array, X.map((v) => Math.min(v, 0.5)));
  close(one('Clip', [xt(), Tensor.scalar('float32', 2), Tensor.scalar('float32', 1)]).data as Float32Array, X.map(() => 1));
  assert.deepEqual([...(one('Clip', [Tensor.from('int8', [4], [-100, -3, 5, 90]), Tensor.scalar('int8', -4), Tensor.scalar('int8', 60)]).data as Int8Array)], [-4, -3, 5, 60]);
  assert.deepEqual([...(one('Clip', [Tensor.from('int64', [3], [-9n, 0n, 9n]), undefined, Tensor.scalar('int64', 2n)]).data as BigInt64Array)], [-9n, 0n, 2n]);
  assert.throws(() => one('Clip', [xt(), f32([2], [0, 1])]), /scalar/);
});

test('PRelu: numpy broadcast and the opset 6 per-channel slope', () => {
  const p = f32([2, 3, 4], Array.from({ length: 24 }, (_, i) => i - 11.5));
  close(one('PRelu', [p, f32([3], [0.1, -0.2, 0.3])], {}, 6).data as Float32Array, [-1.149999976158142, -1.0500000715255737, -0.949999988079071, -0.8500000238418579, 1.5, 1.3000000715255737, 1.100000023841858, 0.9000000357627869, -1.0500000715255737, -0.75, -0.45000001788139343, -0.15000000596046448, 0.5, 1.5, 2.5, 3.5, 4.5, 5.5, 6.5, 7.5, 8.5, 9.5, 10.5, 11.5]);
  close(one('PRelu', [p, f32([4], [0.5, -1, 2, 0.25])]).data as Float32Array, [-5.75, 10.5, -19.0, -2.125, -3.75, 6.5, -11.0, -1.125, -1.75, 2.5, -3.0, -0.125, 0.5, 1.5, 2.5, 3.5, 4.5, 5.5, 6.5, 7.5, 8.5, 9.5, 10.5, 11.5]);
  assert.throws(() => one('PRelu', [p, f32([3], [0.1, -0.2, 0.3])]), /broadcast/);
});

test('variadic Max/Min/Sum/Mean broadcast and propagate NaN', () => {
  const m1 = f32([2, 3], [1, 5, -2, 4, NaN, 0]);
  const m2 = f32([3], [3, -1, 0.5]);
  const m3 = f32([2, 1], [2, -3]);
  close(one('Max', [m1, m2, m3]).data as Float32Array, [3.0, 5.0, 2.0, 4.0, NaN, 0.5]);
  close(one('Min', [m1, m2, m3]).data as Float32Array, [1.0, -1.0, -2.0, -3.0, NaN, -3.0]);
  close(one('Sum', [m1, m2, m3]).data as Float32Array, [6.0, 6.0, 0.5, 4.0, NaN, -2.5]);
  close(one('Mean', [m1, m2, m3]).data as Float32Array, [2.0, 2.0, 0.1666666716337204, 1.3333333730697632, NaN, -0.8333333134651184]);
  close(one('Max', [m2]).data as Float32Array, [3, -1, 0.5]);
  // two inputs take the literal-loop path: same semantics
  close(one('Max', [f32([3], [1, NaN, 3]), f32([3], [NaN, 2, 1])]).data as Float32Array, [NaN, NaN, 3]);
  close(one('Min', [m1, m3]).data as Float32Array, [1, 2, -2, -3, NaN, -3]);
  close(one('Mean', [m2, m3]).data as Float32Array, [2.5, 0.5, 1.25, 0, -2, -1.25]);
  assert.deepEqual([...(one('Sum', [Tensor.from('int32', [2], [2147483647, -5]), Tensor.from('int32', [1], [1])]).data as Int32Array)], [-2147483648, -4]);
  assert.deepEqual([...(one('Max', [Tensor.from('uint64', [2], [1n, 18446744073709551615n]), Tensor.from('uint64', [2], [2n, 0n])]).data as BigUint64Array)], [2n, 18446744073709551615n]);
});

test('Where broadcasts condition, X and Y', () => {
  const y = one('Where', [Tensor.from('bool', [2, 1], [1, 0]), f32([3], [1.5, -2, 3]), f32([2, 1], [10, 20])]);
  assert.deepEqual(y.shape, [2, 3]);
  close(y.data as Float32Array, [1.5, -2.0, 3.0, 20.0, 20.0, 20.0]);
  const s = one('Where', [Tensor.from('bool', [2], [0, 1]), Tensor.from('string', [2], ['a', 'b']), Tensor.from('string', [1], ['z'])]);
  assert.deepEqual(s.data, ['z', 'b']);
  assert.throws(() => one('Where', [f32([1], [1]), f32([1], [1]), f32([1], [2])]), /bool/);
});

test('Cast between dtypes', () => {
  const x = f32([6], [1.9, -1.9, 300.7, -0.2, 65504, 1e-8]);
  assert.deepEqual([...(one('Cast', [x], { to: 6 }).data as Int32Array)], [1, -1, 300, 0, 65504, 0]);
  assert.deepEqual([...(one('Cast', [x], { to: 7 }).data as BigInt64Array)], [1n, -1n, 300n, 0n, 65504n, 0n]);
  assert.deepEqual([...(one('Cast', [x], { to: 9 }).data as Uint8Array)], [1, 1, 1, 1, 1, 1]);
  const h = one('Cast', [x], { to: 10 });
  assert.equal(h.dtype, 'float16');
  assert.deepEqual([...(h.data as Uint16Array)], [16282, 49050, 23731, 45670, 31743, 0]);
  const back = one('Cast', [Tensor.from('float16', [6], new Uint16Array([0x3c00, 0xc000, 0x7bff, 0x0001, 0x7c00, 0x3555]))], { to: 1 });
  close(back.data as Float32Array, [1.0, -2.0, 65504.0, 5.960464477539063e-08, Infinity, 0.333251953125], 0, 0);
  // float64 → float16 rounds once: 1 + 2^-11 ± 2^-40 straddle a float16 tie (numpy: 15361, 15360)
  assert.deepEqual([...(one('Cast', [Tensor.from('float64', [2], [1 + 2 ** -11 + 2 ** -40, 1 + 2 ** -11 - 2 ** -40])], { to: 10 }).data as Uint16Array)], [15361, 15360]);
  // int64 beyond 2^53 keeps exact low bits when narrowed
  assert.deepEqual([...(one('Cast', [Tensor.from('int64', [2], [4294967297n, -1n])], { to: 6 }).data as Int32Array)], [1, -1]);
  assert.deepEqual(one('Cast', [f32([4], [0.1, -2.5, NaN, -Infinity])], { to: 8 }).data, ['0.1', '-2.5', 'NaN', '-INF']);
  close(one('Cast', [Tensor.from('string', [4], ['3.25', '-1e3', 'INF', 'nan'])], { to: 1 }).data as Float32Array, [3.25, -1000, Infinity, NaN]);
  assert.deepEqual([...(one('Cast', [Tensor.from('string', [1], ['9007199254740993'])], { to: 7 }).data as BigInt64Array)], [9007199254740993n]);
  assert.throws(() => one('Cast', [Tensor.from('string', [1], ['abc'])], { to: 1 }), /parse/);
  // opset 1 spelled the target as a string
  assert.equal(one('Cast', [x], { to: 'DOUBLE' }, 1).dtype, 'float64');
  const like = one('CastLike', [x, Tensor.from('float16', [0], new Uint16Array(0))]);
  assert.equal(like.dtype, 'float16');
  close([...(like.data as Uint16Array)].map(f16ToF32), [1.900390625, -1.900390625, 300.75, -0.199951171875, 65504, 0], 0, 0);
});
