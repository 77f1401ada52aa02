// Expected values were computed once in float64 numpy (the formulas of the ONNX spec written out:
// (x - mean) / sqrt(var + eps) * scale + B, population variance, LRN's window sum) via
// /usr/bin/python3 and pasted here.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import '../../src/ops/index.js';
import { makeContext, runOp } from '../../src/runtime/invoke.js';
import { getOp } from '../../src/ops/index.js';
import { Tensor } from '../../src/tensor/tensor.js';

function close(actual: ArrayLike<number>, expected: readonly number[], rtol = 1e-5, atol = 1e-5): void {
  assert.equal(actual.length, expected.length, 'length');
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i]!, e = expected[i]!;
    assert.ok(Math.abs(a - e) <= atol + rtol * Math.abs(e), `[${i}] expected ${e}, got ${a}`);
  }
}

const XV = [3, -1, 4, 1, -5, 9, 2, -6, 5, 3, -5, 8, 9, -7, 9, 3, 2, -3, 8, 4, 6, -2, 6, 4].map((v) => v * 0.25);
const X = () => Tensor.from('float32', [2, 3, 2, 2], XV);
const v3 = (a: number[]) => Tensor.from('float32', [3], a);
const scale = () => v3([1.5, -0.5, 2.0]);
const bias = () => v3([0.1, 0.2, -0.3]);
const mean = () => v3([0.5, -0.25, 1.0]);
const vari = () => v3([1.0, 0.5, 2.25]);

const BN = [0.47499812501406236, -1.024994375042187, 0.8499962500281247, -0.2749981250140624, 0.9070997102248, -1.567749275562, -0.33032478266859994, 1.083874637781, 0.033332592595061716, -0.6333325925950617, -3.2999933333555553, 1.0333303703802468, 2.7249868750984367, -3.2749831251265613, 2.7249868750984367, 0.47499812501406236, -0.33032478266859994, 0.5535498551124001, -1.3909743480057999, -0.6838746377809999, 0.3666651851901234, -2.29999555557037, 0.3666651851901234, -0.3];

test('BatchNormalization inference, every opset', () => {
  for (const opset of [1, 6, 7, 9, 14, 15]) {
    const attrs = opset < 7 ? { is_test: 1 } : {};
    close(runOp('BatchNormalization', [X(), scale(), bias(), mean(), vari()], attrs, opset)[0]!.data as Float32Array, BN);
  }
  // rank 2 input [N, C]
  const y = runOp('BatchNormalization', [Tensor.from('float32', [2, 3], [1, 2, 3, -1, 0, 0.5]), scale(), bias(), mean(), vari()])[0]!;
  close(y.data as Float32Array, [1, 2, 3, -1, 0, 0.5].map((x, i) => ((x - [0.5, -0.25, 1][i % 3]!) / Math.sqrt([1, 0.5, 2.25][i % 3]! + 1e-5)) * [1.5, -0.5, 2][i % 3]! + [0.1, 0.2, -0.3][i % 3]!));
  assert.throws(() => runOp('BatchNormalization', [X(), scale(), bias(), mean(), v3([1, 2])]), /3 elements/);
  // 1-D input: one channel
  const one = (v: number) => Tensor.from('float32', [1], [v]);
  close(runOp('BatchNormalization', [Tensor.from('float32', [3], [1, -2, 4]), one(2), one(0.5), one(1), one(4)])[0]!.data as Float32Array,
    [1, -2, 4].map((x) => ((x - 1) / Math.sqrt(4 + 1e-5)) * 2 + 0.5));
});

test('BatchNormalization spatial=0 (opset < 9): statistics per activation', () => {
  const P = Array.from({ length: 12 }, (_, i) => i);
  const t = (f: (p: number) => number) => Tensor.from('float32', [3, 2, 2], P.map(f));
  const y = runOp('BatchNormalization', [X(), t((p) => 1 + 0.1 * p), t((p) => 0.05 * p - 0.2), t((p) => 0.1 * (p % 5) - 0.2), t((p) => 0.5 + 0.2 * (p % 3))], { spatial: 0 }, 7)[0]!;
  close(y.data as Float32Array, [1.14348944942712, -0.34721131189297805, 1.1649040368422223, 0.22576888698767195, -2.4262967463196685, 3.9237686128293072, 1.457631443631616, -2.89781118380057, 2.381959463552834, 1.7278383943698319, -2.209962151365175, 4.998522335395168, 3.26478858010152, -2.3193244308227583, 2.7460340828950005, 1.1449985102799116, 0.501992430273035, -0.819621525329028, 4.851710052710655, 2.181874122533713, 2.8562984773686675, -1.6308852291979676, 4.363748245067425, 2.7849402709212785]);
});

test('BatchNormalization training_mode (opset 14+) outputs running statistics', () => {
  const [y, rm, rv] = runOp('BatchNormalization', [X(), scale(), bias(), mean(), vari()], { training_mode: 1 }, 15);
  close(y!.data as Float32Array, [0.21485684309536268, -1.0102828165885056, 0.5211417580163298, -0.39771298674657163, 0.8025473017345979, -0.52069383148648, 0.14092673512405904, 0.8970645255361036, 0.6065925887883608, -0.360439505919224, -4.228567884749563, 2.0571407308497385, 2.0525663326211654, -2.847992306114308, 2.0525663326211654, 0.21485684309536268, 0.14092673512405904, 0.6135128541315868, -0.4261766076849743, -0.04810771247895207, 1.0901086361421533, -2.778019742688186, 1.0901086361421533, 0.12307654143456837]);
  close(rm!.data as Float32Array, [0.515625, -0.190625, 0.978125]);
  close(rv!.data as Float32Array, [1.04990234375, 0.6249023437500001, 2.13193359375]);
});

test('BatchNormalization before opset 14: extra outputs requested mean training statistics', () => {
  const node = { name: 'bn', opType: 'BatchNormalization', domain: '', inputs: ['x', 's', 'b', 'm', 'v'], outputs: ['y', 'rm', 'rv', 'sm', 'sv'], attrs: {} };
  const outs = getOp('', 'BatchNormalization')!.run([X(), scale(), bias(), mean(), vari()], makeContext(node, 9));
  assert.equal(outs.length, 5);
  close(outs[1]!.data as Float32Array, [0.515625, -0.190625, 0.978125]);
  close(outs[2]!.data as Float32Array, [1.04990234375, 0.6249023437500001, 2.13193359375]);
  // saved mean/var are the batch statistics: running = 0.9 * input + 0.1 * batch
  close(outs[3]!.data as Float32Array, [0.515625, -0.190625, 0.978125].map((r, i) => (r - 0.9 * [0.5, -0.25, 1][i]!) / 0.1));
  close(outs[4]!.data as Float32Array, [1.04990234375, 0.6249023437500001, 2.13193359375].map((r, i) => (r - 0.9 * [1, 0.5, 2.25][i]!) / 0.1));
  // opset 6 with is_test=1 stays in inference mode whatever is requested
  const inf = getOp('', 'BatchNormalization')!.run([X(), scale(), bias(), mean(), vari()], makeContext({ ...node, attrs: { is_test: { type: 'int', value: 1 } } }, 6));
  assert.equal(inf.length, 1);
  close(inf[0]!.data as Float32Array, BN);
});

test('InstanceNormalization', () => {
  const y = runOp('InstanceNormalization', [X(), scale(), bias()], { epsilon: 1e-3 })[0]!;
  close(y.data as Float32Array, [1.0743053730236711, -2.0434718206520763, 1.8537496714426078, -0.4845832238142026, 0.6137122775725976, -0.5446820996306758, 0.03451508897096095, 0.6964547330871171, 0.6341911840046597, -0.1962009795550378, -3.5177696337938276, 1.8797794293442058, 1.3615504787515238, -2.308414550343818, 1.3615504787515238, -0.014686407159229434, 0.29463091476685216, 0.9255036798791998, -0.4624164033679649, 0.04228180872191312, 1.2238520955103447, -3.6524746101227583, 1.2238520955103447, 0.00477041910206899]);
  assert.throws(() => runOp('InstanceNormalization', [X(), v3([1, 2, 3]).reshape([3]), Tensor.from('float32', [2], [1, 2])]), /3 elements/);
});

test('LayerNormalization with Mean and InvStdDev outputs; B broadcasts', () => {
  const x = Tensor.from('float32', [2, 3, 4], XV);
  const s = Tensor.from('float32', [3, 4], Array.from({ length: 12 }, (_, i) => 0.5 + 0.1 * i));
  const b = Tensor.from('float32', [4], [0.1, -0.1, 0.2, 0.0]);
  const [y, m, inv] = runOp('LayerNormalization', [x, s, b], { axis: -2 }, 17);
  close(y!.data as Float32Array, [0.25840693703954337, -0.41681387407908677, 0.5696161864256012, -0.08448369975442313, -1.1355741089084381, 1.4840693703954335, 0.3161650871623318, -1.9008832444745205, 1.061002084706563, 0.34353942371072144, -1.8592901815140637, 2.1965761936150012, 0.6970481915056678, -1.3771639574816894, 1.035867468107935, -0.041533787235176894, -0.13362755319787004, -1.3979308510992778, 1.2850701915189964, 0.18690204255829604, 0.8424164468287869, -1.6263666808927508, 1.0566343617255234, 0.24920272341106134]);
  assert.deepEqual(m!.shape, [2, 1, 1]);
  close(m!.data as Float32Array, [0.375, 0.8125]);
  close(inv!.data as Float32Array, [0.8448369975442312, 0.8306757447035378]);
  assert.throws(() => runOp('LayerNormalization', [x, Tensor.from('float32', [3], [1, 2, 3])], { axis: -1 }, 17), /broadcast/);
  // float16 X: Y stays float16, Mean/InvStdDev are float32 (stash_type 1)
  const xh = runOp('Cast', [x], { to: 10 })[0]!;
  const [yh, mh] = runOp('LayerNormalization', [xh, s, b], { axis: -2 }, 17);
  assert.equal(yh!.dtype, 'float16');
  assert.equal(mh!.dtype, 'float32');
  close(runOp('Cast', [yh!], { to: 1 })[0]!.data as Float32Array, [...(y!.data as Float32Array)], 2e-3, 2e-3);
});

test('MeanVarianceNormalization over default and given axes', () => {
  close(runOp('MeanVarianceNormalization', [X()])[0]!.data as Float32Array, [0.07657148407098266, -0.7401910126861657, 0.28076210826026976, -0.3318097643075915, -1.205098047602948, 1.4413917824270557, 0.11814686741205374, -1.394133035462234, 0.4532984134732684, -0.030219894231551223, -1.9642931250508295, 1.1785758750304978, 1.3017152292067053, -1.9653347578218883, 1.3017152292067053, 0.07657148407098266, 0.11814686741205374, -0.8270280718843762, 1.2523567945677696, 0.4962168431306257, 0.6950575673256781, -1.2390156634936003, 0.6950575673256781, 0.21153925962085857]);
  close(runOp('MeanVarianceNormalization', [X()], { axes: [1] })[0]!.data as Float32Array, [0.4629100494577042, -1.1355499468100743, 0.9502552671544215, 0.0, -1.3887301483731127, 1.2977713677829423, 0.4319342123429189, -1.2247448705344461, 0.9258200989154084, -0.16222142097286774, -1.3821894794973404, 1.2247448705344461, 1.1624763858165712, -1.3887301470873985, 1.069044964221126, -1.4142135503730948, -1.2787240243982285, 0.46291004902913285, 0.26726124105528126, 0.7071067751865479, 0.11624763858165701, 0.9258200980582657, -1.3363062052764079, 0.7071067751865479]);
});

test('LRN with odd and even window sizes', () => {
  close(runOp('LRN', [X()], { size: 3 })[0]!.data as Float32Array, [0.7499601587193221, -0.24996797353725492, 0.9999687511392795, 0.2499855478497643, -1.2498847780173008, 2.249680131186152, 0.4999648466336633, -1.4997633248249693, 1.2499023526501107, 0.7498945485504932, -1.2499433623691172, 1.9996875569552692, 2.24970121817028, -1.7498414230161279, 2.2494903690804358, 0.7499707044600804, 0.4999054895962165, -0.7499273519606978, 1.9994345615623037, 0.9999359422876297, 1.4999062568354151, -0.499989843990676, 1.499765667716452, 0.9999500029164884]);
  close(runOp('LRN', [X()], { size: 2, alpha: 0.3, beta: 0.6, bias: { type: 'float', value: 2 } })[0]!.data as Float32Array, [0.45280259510259285, -0.13569684882945854, 0.625217553914953, 0.14984630332362367, -0.7268147716143781, 1.2018428101624274, 0.3055901451963742, -0.7857864468614716, 0.771642918453341, 0.48269827859388764, -0.771642918453341, 1.1273168199771004, 1.213888183719485, -0.9994323269974849, 1.0874953948548804, 0.4629857510720046, 0.2975581404364558, -0.4775615859766305, 1.0477152624819621, 0.6066850573285392, 0.9012396439604259, -0.32622063885570873, 0.9012396439604259, 0.6317378878450708]);
  assert.throws(() => runOp('LRN', [X()]), /size/);
});
