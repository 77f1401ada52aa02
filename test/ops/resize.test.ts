// Resize / Upsample. Inputs come from `seq` (same formula in numpy). Expected arrays were computed once
// via /usr/bin/python3 and pasted: ONNX 1.12's backend-test reference (onnx.backend.test.case.node.resize
// interpolate_nd with linear/cubic/nearest coeffs) for the spec modes, and torch 1.13
// F.interpolate for the PyTorch-equivalent settings (bilinear/bicubic, antialias=True, which equals
// ONNX antialias with exclude_outside=1 and, for bicubic, cubic_coeff_a=-0.5). Others are worked by hand.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import '../../src/ops/index.js';
import { runOp } from '../../src/runtime/invoke.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { Q8Error } from '../../src/core/errors.js';
import { close, same, seq } from './tensor-test-util.js';

const f32 = (v: number[]) => Tensor.from('float32', [v.length], v);
const i64 = (v: number[]) => Tensor.from('int64', [v.length], v);
const resize = (inputs: (Tensor | undefined)[], attrs: Record<string, unknown>, opset = 19) => runOp('Resize', inputs, attrs, opset)[0]!;

const X = () => seq([1, 1, 3, 5], 7);
const SC = () => f32([1, 1, 1.5, 0.7]);

test('linear: half_pixel (default) and align_corners with scales', () => {
  close(resize([X(), undefined, SC()], { mode: 'linear' }), [1, 1, 4, 3],
    [-2.0535714626312256, 0.6428573131561279, 1.9821428060531616, -0.3035714328289032, 0.8660715222358704, 1.3571428060531616, 1.2380952835083008, 0.8809523582458496, 0.5238094925880432, 0.4047619104385376, 0.047619037330150604, -0.3095238208770752]);
  // align_corners uses the fractional resized length (scale × input), as the reference does
  close(resize([X(), undefined, SC()], { mode: 'linear', coordinate_transformation_mode: 'align_corners' }), [1, 1, 4, 3],
    [-2.0, 0.45000016689300537, 1.9499999284744263, 0, 0.821428656578064, 1.235714316368103, 1.3214285373687744, 0.9214285612106323, 0.5214285254478455, 0.6071428656578064, 0.20714284479618073, -0.19285716116428375]);
  // opset 11 takes roi as a required (ignored) input
  close(resize([X(), f32([]), SC()], { mode: 'linear' }, 11), [1, 1, 4, 3],
    [-2.0535714626312256, 0.6428573131561279, 1.9821428060531616, -0.3035714328289032, 0.8660715222358704, 1.3571428060531616, 1.2380952835083008, 0.8809523582458496, 0.5238094925880432, 0.4047619104385376, 0.047619037330150604, -0.3095238208770752]);
});

test('axes (opset 18) reorders scales onto the named axes', () => {
  close(resize([X(), undefined, f32([0.7, 1.5])], { mode: 'linear', axes: [3, -2] }, 18), [1, 1, 4, 3],
    [-2.0535714626312256, 0.6428573131561279, 1.9821428060531616, -0.3035714328289032, 0.8660715222358704, 1.3571428060531616, 1.2380952835083008, 0.8809523582458496, 0.5238094925880432, 0.4047619104385376, 0.047619037330150604, -0.3095238208770752]);
});

test('cubic: asymmetric with A=-0.5 and exclude_outside; pytorch_half_pixel with sizes', () => {
  close(resize([X(), undefined, SC()], { mode: 'cubic', coordinate_transformation_mode: 'asymmetric', cubic_coeff_a: -0.5, exclude_outside: 1 }), [1, 1, 4, 3],
    [-2.0, -0.40451881289482117, 2.0772595405578613, 0.4642857015132904, 0.7347720265388489, 1.2901395559310913, 1.3482142686843872, 0.8515982627868652, 0.291675329208374, 0.25, -0.1071428656578064, -0.4642857313156128]);
  close(resize([X(), undefined, undefined, i64([1, 1, 4, 3])], { mode: 'cubic', coordinate_transformation_mode: 'pytorch_half_pixel' }), [1, 1, 4, 3],
    [-2.5988657474517822, 2.3397216796875, 1.904536485671997, 0.21619103848934174, 1.5877685546875, 1.152583360671997, 1.398258924484253, 0.4122314453125, -0.022953739389777184, 0.09546350687742233, -0.3397216796875, -0.7749068737030029]);
});

test('nearest modes: ceil/half_pixel, round_prefer_ceil/asymmetric, int64 data stays exact', () => {
  same(resize([X(), undefined, SC()], { nearest_mode: 'ceil' }), [1, 1, 4, 3],
    [-2.25, 2.25, 1.75, 1.25, 1.0, 0.5, 0.0, -0.25, -0.75, 0.0, -0.25, -0.75]);
  same(resize([X(), undefined, undefined, i64([1, 1, 5, 3])], { nearest_mode: 'round_prefer_ceil', coordinate_transformation_mode: 'asymmetric' }), [1, 1, 5, 3],
    [-2.0, 2.25, 2.0, 1.5, 1.0, 0.75, 1.5, 1.0, 0.75, 0.25, -0.25, -0.5, 0.25, -0.25, -0.5]);
  const big = Tensor.from('int64', [1, 1, 2, 2], [10n, 20n, 9007199254740993n, 40n]);
  same(resize([big, undefined, f32([1, 1, 2, 1.5])], {}), [1, 1, 4, 3],
    [10n, 10n, 20n, 10n, 10n, 20n, 9007199254740993n, 9007199254740993n, 40n, 9007199254740993n, 9007199254740993n, 40n]);
});

test('tf_crop_and_resize with roi and extrapolation_value', () => {
  const roi = f32([0, 0, 0.2, 0.1, 1, 1, 0.9, 1.3]);
  close(resize([X(), roi, undefined, i64([1, 1, 3, 4])], { mode: 'linear', coordinate_transformation_mode: 'tf_crop_and_resize', extrapolation_value: -9 }), [1, 1, 3, 4],
    [-0.699999988079071, 1.749999761581421, 1.350000023841858, -9.0, 1.274999976158142, 0.875, 0.4750000536441803, -9.0, 0.40000003576278687, 0, -0.3999999165534973, -9.0]);
  // nearest extrapolates too
  const n = resize([X(), roi, undefined, i64([1, 1, 3, 4])], { coordinate_transformation_mode: 'tf_crop_and_resize', extrapolation_value: -9 });
  assert.deepEqual([...(n.data as Float32Array)].filter((_, i) => i % 4 === 3), [-9, -9, -9]);
});

test('half_pixel_symmetric differs from half_pixel only through the size rounding', () => {
  const x = Tensor.from('float32', [1, 4], [1, 2, 4, 8]);
  // out = floor(4 × 0.6) = 2; adjustment 2/2.4; x_orig = 1/3 + (o + 0.5)/0.6 - 0.5 → 2/3 and 7/3
  close(resize([x, undefined, f32([1, 0.6])], { mode: 'linear', coordinate_transformation_mode: 'half_pixel_symmetric' }), [1, 2], [1 + 2 / 3, 4 + 4 / 3]);
  // half_pixel: x_orig = 1/3 and 2
  close(resize([x, undefined, f32([1, 0.6])], { mode: 'linear' }), [1, 2], [1 + 1 / 3, 4]);
});

test('keep_aspect_ratio_policy not_larger / not_smaller (opset 18)', () => {
  const x = X();
  const s = i64([6, 6]);
  // not_larger: scale min(6/3, 6/5) = 1.2 → [round(3.6), round(6)] = [4, 6]; asymmetric floor picks floor(o / 1.2)
  const y = resize([x, undefined, undefined, s], { axes: [2, 3], keep_aspect_ratio_policy: 'not_larger', coordinate_transformation_mode: 'asymmetric', nearest_mode: 'floor' }, 18);
  const rows = [0, 0, 1, 2], cols = [0, 0, 1, 2, 3, 4];
  const X5 = x.data as Float32Array;
  same(y, [1, 1, 4, 6], rows.flatMap((r) => cols.map((c) => X5[r * 5 + c]!)));
  assert.deepEqual([...resize([x, undefined, undefined, s], { axes: [2, 3], keep_aspect_ratio_policy: 'not_smaller' }, 18).shape], [1, 1, 6, 10]);
  assert.throws(() => resize([x, undefined, undefined, s], { axes: [2, 3], keep_aspect_ratio_policy: 'fit' }, 18), Q8Error);
});

test('matches PyTorch: bilinear, bicubic align_corners, nearest, antialias linear and cubic', () => {
  const y2 = seq([1, 1, 3, 4], 9);
  close(resize([y2, undefined, undefined, i64([1, 1, 5, 6])], { mode: 'linear', coordinate_transformation_mode: 'pytorch_half_pixel' }), [1, 1, 5, 6],
    [-1.25, -1.375, -1.5416666269302368, -1.7083333730697632, -1.875, -2.0, -1.6500000953674316, -0.8249999284744263, -0.04166650027036667, -0.20833323895931244, -0.37499988079071045, -0.49999985098838806, -2.249999761581421, 0, 2.2083332538604736, 2.0416665077209473, 1.8749998807907104, 1.75, 0, 0.8250001072883606, 1.6083331108093262, 1.441666603088379, 1.2749998569488525, 1.149999976158142, 1.5, 1.375, 1.2083332538604736, 1.0416666269302368, 0.875, 0.75]);
  close(resize([y2, undefined, undefined, i64([1, 1, 5, 6])], { mode: 'cubic', coordinate_transformation_mode: 'align_corners' }), [1, 1, 5, 6],
    [-1.25, -1.375999927520752, -1.5620002746582031, -1.6880004405975342, -1.874000072479248, -2.000000238418579, -2.1015625, -0.5015311241149902, 0.6774998307228088, 0.34843772649765015, 0.09474974125623703, -0.031249994412064552, -2.25, 0.5310000777244568, 2.6440000534057617, 2.1760008335113525, 1.8759996891021729, 1.750000238418579, -0.46875, 1.1312812566757202, 2.310312509536743, 1.9812506437301636, 1.7275623083114624, 1.601562738418579, 1.5, 1.373999834060669, 1.188000202178955, 1.0619999170303345, 0.8759998679161072, 0.7500001788139343]);
  const y = seq([1, 2, 7, 9], 8);
  same(resize([y, undefined, undefined, i64([1, 2, 4, 5])], { coordinate_transformation_mode: 'asymmetric', nearest_mode: 'floor' }), [1, 2, 4, 5],
    [0.75, 0.5, 0.0, -0.5, -1.0, -1.5, -1.75, -2.25, 2.0, 1.5, -1.25, -1.5, -2.0, 2.25, 1.75, -1.0, -1.25, -1.75, -2.25, 2.0, -0.75, -1.0, -1.5, -2.0, 2.25, 1.75, 1.5, 1.0, 0.5, 0.0, 2.0, 1.75, 1.25, 0.75, 0.25, 2.25, 2.0, 1.5, 1.0, 0.5]);
  close(resize([y, undefined, undefined, i64([1, 2, 3, 4])], { mode: 'linear', antialias: 1, exclude_outside: 1 }, 18), [1, 2, 3, 4],
    [-0.36785706877708435, -0.3776131868362427, 0.5387630462646484, 0.08214279264211655, -0.3394958972930908, -0.7299138903617859, 0.4279053509235382, 0.5894958972930908, 0.16785702109336853, -0.3384146988391876, -0.21646331250667572, 0.6178572773933411, 0.16785714030265808, -0.33841460943222046, -0.7874563932418823, 0.3173469305038452, 0.675210177898407, 0.16893838346004486, -0.404232382774353, -0.49537813663482666, 0.7035715579986572, 0.1972997635602951, -0.375870943069458, -0.8821428418159485]);
  close(resize([y, undefined, undefined, i64([1, 2, 3, 4])], { mode: 'cubic', antialias: 1, exclude_outside: 1, cubic_coeff_a: -0.5 }, 18), [1, 2, 3, 4],
    [-0.42794182896614075, -0.430850625038147, 0.6400431990623474, 0.04433524236083031, -0.26188039779663086, -0.7950762510299683, 0.4561989903450012, 0.5738641619682312, 0.20688939094543457, -0.41261473298072815, -0.23002153635025024, 0.7025993466377258, 0.20428915321826935, -0.34229183197021484, -0.9037168025970459, 0.4919079840183258, 0.6645462512969971, 0.12796376645565033, -0.5042756795883179, -0.5942642092704773, 0.7748537063598633, 0.237533301115036, -0.3435393273830414, -0.947072446346283]);
});

test('Resize-10 and Upsample (opsets 1, 7, 9): asymmetric mapping, truncating nearest', () => {
  const x = Tensor.from('float32', [1, 1, 2, 4], [1, 2, 3, 4, 5, 6, 7, 8]);
  same(resize([x, f32([1, 1, 0.6, 0.6])], {}, 10), [1, 1, 1, 2], [1, 3]);
  const u = Tensor.from('float32', [1, 1, 2, 2], [1, 2, 3, 4]);
  same(runOp('Upsample', [u, f32([1, 1, 2, 3])], { mode: 'nearest' }, 9)[0]!, [1, 1, 4, 6],
    [1, 1, 1, 2, 2, 2, 1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4, 3, 3, 3, 4, 4, 4]);
  const lin = [1, 1.5, 2, 2, 2, 2.5, 3, 3, 3, 3.5, 4, 4, 3, 3.5, 4, 4];
  same(runOp('Upsample', [u], { mode: 'linear', scales: [1, 1, 2, 2] }, 7)[0]!, [1, 1, 4, 4], lin);
  same(runOp('Upsample', [u], { mode: 'bilinear', height_scale: { type: 'float', value: 2 }, width_scale: { type: 'float', value: 2 } }, 1)[0]!, [1, 1, 4, 4], lin);
  assert.throws(() => runOp('Upsample', [u, f32([1, 1, 0.5, 1])], {}, 9), Q8Error);
});

test('Resize errors: scales and sizes together, wrong lengths, bad modes', () => {
  const x = X();
  assert.throws(() => resize([x, undefined, SC(), i64([1, 1, 2, 2])], {}), Q8Error);
  assert.throws(() => resize([x, undefined, f32([2, 2])], {}), Q8Error);
  assert.throws(() => resize([x, undefined, SC()], { mode: 'area' }), Q8Error);
  assert.throws(() => resize([x, undefined, SC()], { coordinate_transformation_mode: 'center' }), Q8Error);
  assert.throws(() => resize([x, undefined, f32([1, 1, -1, 1])], {}), Q8Error);
  assert.throws(() => resize([x], {}), Q8Error);
});
