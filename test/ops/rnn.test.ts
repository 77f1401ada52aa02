/**
 * RNN, GRU, LSTM. Expected values were computed once and pasted: PyTorch 1.13 (float64) where torch
 * has the same cell (gate rows reordered from ONNX's iofc / zrh to torch's ifgo / rzn; packed
 * sequences for sequence_lens), and a separate numpy loop for peepholes, input_forget, clip,
 * linear_before_reset=0 and non-default activations (that numpy loop was first checked against
 * torch's GRU). Inputs come from the `seq` formula, shared with the generator.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import '../../src/ops/index.js';
import { getOp } from '../../src/ops/registry.js';
import { attrsFrom, invokeKernel, makeContext } from '../../src/runtime/invoke.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { Q8Error } from '../../src/core/errors.js';
import '../../src/kernels/native/index.js';
import '../../src/kernels/wasm/index.js';
import { getBackend } from '../../src/kernels/registry.js';
import { rnnF32Stats } from '../../src/kernels/rnn-f32.js';
import { rng } from '../rng.js';

function seq(n: number, a = 37, m = 17, off = 8, div = 8): number[] {
  return Array.from({ length: n }, (_, i) => (((i * a) % m) - off) / div);
}
const size = (s: number[]) => s.reduce((a, b) => a * b, 1);
const sq = (shape: number[], a = 37, m = 17, off = 8) => Tensor.from('float32', shape, seq(size(shape), a, m, off));

/** Run with named outputs (Y, Y_h, Y_c); '' marks an omitted output. */
function run(op: string, inputs: (Tensor | undefined)[], attrs: Record<string, unknown>, outputs: string[], opset = 21): Tensor[] {
  const schema = getOp('', op)!;
  const node = { name: op, opType: op, domain: '', inputs: inputs.map((t, i) => (t ? `in${i}` : '')), outputs, attrs: attrsFrom(attrs) };
  return invokeKernel(schema, schema.run, inputs, makeContext(node, opset));
}

function close(t: Tensor | undefined, shape: number[], want: number[], tol = 2e-5): void {
  assert.ok(t);
  assert.deepEqual([...t.shape], shape);
  const got = t.toNumbers();
  for (let i = 0; i < want.length; i++) assert.ok(Math.abs(got[i]! - want[i]!) <= tol, `element ${i}: got ${got[i]}, want ${want[i]}`);
}

const S = 3, B = 2, I = 2, H = 3;
const X = sq([S, B, I]);
const h0 = (d: number) => sq([d, B, H], 3, 7, 3);
const c0 = (d: number) => sq([d, B, H], 5, 9, 4);

test('LSTM bidirectional with sequence_lens, biases, initial h and c (torch)', () => {
  const W = sq([2, 4 * H, I], 29, 13, 6), R = sq([2, 4 * H, H], 23, 11, 5), Bb = sq([2, 8 * H], 7, 5, 2);
  const lens = Tensor.from('int32', [B], [3, 2]);
  const [Y, Yh, Yc] = run('LSTM', [X, W, R, Bb, lens, h0(2), c0(2)], { direction: 'bidirectional', hidden_size: H }, ['Y', 'Y_h', 'Y_c']);
  close(Y, [3, 2, 2, 3], [0.0750275, -0.0707221, 0.128274, 0.100022, -0.0842669, 0.0910736, -0.104442, 0.153874, 0.00784438, -0.286864, 0.1344, -0.111868, 0.0129108, 0.120506, -0.107928, 0.17502, -0.138027, 0.142904, 0.102816, 0.0236532, 0.167101, -0.231855, 0.116871, -0.229351, 0.0383683, 0.100978, -0.0858627, 0, 0, 0, -0.150065, 0.136114, 0.0279348, 0, 0, 0]);
  close(Yh, [2, 2, 3], [0.0383683, 0.100978, -0.0858627, 0.17502, -0.138027, 0.142904, -0.104442, 0.153874, 0.00784438, -0.286864, 0.1344, -0.111868]);
  close(Yc, [2, 2, 3], [0.0830316, 0.219918, -0.169351, 0.484151, -0.30785, 0.271771, -0.23162, 0.403591, 0.0156217, -0.561762, 0.329471, -0.259494]);
});

test('LSTM peepholes; input_forget with HardSigmoid/LeakyRelu activations and their alpha/beta (numpy)', () => {
  const W = sq([1, 4 * H, I], 29, 13, 6), R = sq([1, 4 * H, H], 23, 11, 5), Bb = sq([1, 8 * H], 7, 5, 2);
  const P = sq([1, 3 * H], 11, 7, 3);
  const [Y, , Yc] = run('LSTM', [X, W, R, Bb, undefined, h0(1), c0(1), P], { hidden_size: H }, ['Y', '', 'Y_c']);
  close(Y, [3, 1, 2, 3], [0.0853302, -0.0730165, 0.143483, 0.100438, -0.0876834, 0.0957122, 0.019421, 0.116526, -0.0960564, 0.183532, -0.142327, 0.14764, 0.0417425, 0.0977997, -0.0816243, 0.0470387, 0.0874019, -0.106984]);
  close(Yc, [1, 2, 3], [0.0896094, 0.216564, -0.165918, 0.108802, 0.197698, -0.232015]);
  const outs = run('LSTM', [X, W, R, Bb, undefined, h0(1), c0(1), P], {
    hidden_size: H, input_forget: 1, activations: ['HardSigmoid', 'LeakyRelu', 'Tanh'],
    activation_alpha: [0.3, 0.2], activation_beta: [0.4],
  }, ['', 'Y_h', 'Y_c']);
  close(outs[1], [1, 2, 3], [0.135451, 0.0981968, -0.0132621, 0.149631, 0.107751, 0.0324128]);
  close(outs[2], [1, 2, 3], [0.36707, 0.318553, -0.0324429, 0.45074, 0.341033, 0.0810901]);
});

test('GRU reverse with linear_before_reset (torch)', () => {
  const W = sq([1, 3 * H, I], 29, 13, 6), R = sq([1, 3 * H, H], 23, 11, 5), Bb = sq([1, 6 * H], 7, 5, 2);
  const [Y, Yh] = run('GRU', [X, W, R, Bb, undefined, h0(1)], { direction: 'reverse', linear_before_reset: 1 }, ['Y', 'Y_h']);
  close(Y, [3, 1, 2, 3], [-0.325302, 0.215303, -0.110911, -0.371546, 0.228698, -0.0731215, -0.41848, -0.0258466, 0.468827, -0.3541, 0.253199, -0.19763, -0.341565, 0.0517709, 0.287301, -0.437488, 0.117091, 0.208697]);
  close(Yh, [1, 2, 3], [-0.325302, 0.215303, -0.110911, -0.371546, 0.228698, -0.0731215]);
});

test('GRU linear_before_reset=0 with clip, layout 1 (numpy)', () => {
  const W = sq([1, 3 * H, I], 29, 13, 6), R = sq([1, 3 * H, H], 23, 11, 5), Bb = sq([1, 6 * H], 7, 5, 2);
  // layout 1: X is [batch, seq, input], initial_h [batch, numDir, hidden].
  const xs = X.toNumbers(), x1: number[] = [];
  for (let b = 0; b < B; b++) for (let s = 0; s < S; s++) for (let i = 0; i < I; i++) x1.push(xs[(s * B + b) * I + i]!);
  const hs = h0(1).toNumbers();
  const [Y, Yh] = run('GRU', [Tensor.from('float32', [B, S, I], x1), W, R, Bb, undefined, Tensor.from('float32', [B, 1, H], hs)],
    { layout: 1, clip: 0.5, hidden_size: H }, ['Y', 'Y_h']);
  close(Y, [2, 3, 1, 3], [-0.315228, 0.240018, -0.0631642, -0.406661, 0.0782842, 0.175328, -0.430666, 0.0925946, 0.239891, -0.288293, 0.265972, -0.050627, -0.295978, 0.343314, -0.27124, -0.399393, 0.122574, 0.0650984]);
  close(Yh, [2, 1, 3], [-0.430666, 0.0925946, 0.239891, -0.399393, 0.122574, 0.0650984]);
});

test('RNN bidirectional Relu (torch); float64 keeps its dtype', () => {
  const W = sq([2, H, I], 29, 13, 6), R = sq([2, H, H], 23, 11, 5), Bb = sq([2, 2 * H], 7, 5, 2);
  const [Y, Yh] = run('RNN', [X, W, R, Bb], { direction: 'bidirectional', activations: ['Relu', 'Relu'] }, ['Y', 'Y_h']);
  const wantY = [0.609375, 0, 0, 0, 0.171875, 0, 0.285156, 0, 0, 0.316406, 0, 0, 0, 0.300781, 0.0136719, 0.382812, 0, 0, 0.382812, 0, 0, 0.257812, 0, 0, 0, 0.181152, 0, 0, 0.404297, 0.0166016, 0.203125, 0, 0, 0.296875, 0, 0];
  close(Y, [3, 2, 2, 3], wantY);
  close(Yh, [2, 2, 3], [0, 0.181152, 0, 0, 0.404297, 0.0166016, 0.285156, 0, 0, 0.316406, 0, 0]);
  const d = (t: Tensor) => Tensor.from('float64', t.shape, t.toNumbers());
  const [Y64] = run('RNN', [d(X), d(W), d(R), d(Bb)], { direction: 'bidirectional', activations: ['Relu'] }, ['Y']);
  assert.equal(Y64!.dtype, 'float64');
  close(Y64, [3, 2, 2, 3], wantY);
});

test('RNN default Tanh, no bias, zero-length sequence keeps the initial state', () => {
  const W = Tensor.from('float32', [1, 1, 1], [2]), R = Tensor.from('float32', [1, 1, 1], [0.5]);
  const x = Tensor.from('float32', [2, 2, 1], [0.1, 0.3, -0.2, 0.4]);
  const h = Tensor.from('float32', [1, 2, 1], [0.25, -1]);
  const [Y, Yh] = run('RNN', [x, W, R, undefined, Tensor.from('int32', [2], [2, 0]), h], {}, ['Y', 'Y_h']);
  const h1 = Math.tanh(0.2 + 0.125), h2 = Math.tanh(-0.4 + 0.5 * h1);
  close(Y, [2, 1, 2, 1], [h1, 0, h2, 0], 1e-6);
  close(Yh, [1, 2, 1], [h2, -1], 1e-6);
});

test('RNN family rejects bad shapes and attributes', () => {
  const W = sq([1, 4 * H, I]), R = sq([1, 4 * H, H]);
  assert.throws(() => run('LSTM', [X, W, R], { direction: 'sideways' }, ['Y']), /direction/);
  assert.throws(() => run('LSTM', [X, W, sq([1, 4 * H, 2])], {}, ['Y']), /input R/);
  assert.throws(() => run('LSTM', [X, W, R], { hidden_size: 4 }, ['Y']), /hidden_size/);
  assert.throws(() => run('LSTM', [X, W, R], { activations: ['Sigmoid', 'Nope', 'Tanh'] }, ['Y']), /activation 'Nope'/);
  assert.throws(() => run('LSTM', [X, W, R, undefined, Tensor.from('int32', [B], [4, 1])], {}, ['Y']), Q8Error);
  assert.throws(() => run('GRU', [sq([S, B]), W, R], {}, ['Y']), /3-D/);
});

/**
 * The backends' fast float32 LSTM/GRU/RNN (kernels/rnn-f32.ts: the products through each backend's
 * Gemm) against the reference, on the cases above and a larger random one, for native and wasm.
 */
for (const backend of ['native', 'wasm'] as const) {
  test(`${backend} backend: float32 LSTM/GRU/RNN run their products through its Gemm and match the reference`, (t) => {
    const b = getBackend(backend);
    if (!b?.available()) { t.skip(`${backend} backend not available`); return; }
    const r = rng(21);
    const rnd = (shape: number[], scale = 0.5) => Tensor.from('float32', shape, Array.from({ length: size(shape) }, () => (r() * 2 - 1) * scale));
    const S2 = 7, B2 = 3, I2 = 30, H2 = 40;
    const X2 = rnd([S2, B2, I2], 1), lens2 = Tensor.from('int32', [B2], [7, 4, 1]);
    const X2l = rnd([B2, S2, I2], 1);
    type Case = [string, string, (Tensor | undefined)[], Record<string, unknown>, string[]];
    const cases: Case[] = [
      ['LSTM bidirectional, lens, h0, c0', 'LSTM', [X, sq([2, 4 * H, I], 29, 13, 6), sq([2, 4 * H, H], 23, 11, 5), sq([2, 8 * H], 7, 5, 2), Tensor.from('int32', [B], [3, 2]), h0(2), c0(2)], { direction: 'bidirectional', hidden_size: H }, ['Y', 'Y_h', 'Y_c']],
      ['LSTM peepholes', 'LSTM', [X, sq([1, 4 * H, I], 29, 13, 6), sq([1, 4 * H, H], 23, 11, 5), sq([1, 8 * H], 7, 5, 2), undefined, h0(1), c0(1), sq([1, 3 * H], 11, 7, 3)], { hidden_size: H }, ['Y', '', 'Y_c']],
      ['GRU reverse lbr=1', 'GRU', [X, sq([1, 3 * H, I], 29, 13, 6), sq([1, 3 * H, H], 23, 11, 5), sq([1, 6 * H], 7, 5, 2), undefined, h0(1)], { direction: 'reverse', linear_before_reset: 1 }, ['Y', 'Y_h']],
      ['RNN bidirectional Relu', 'RNN', [X, sq([2, H, I], 29, 13, 6), sq([2, H, H], 23, 11, 5), sq([2, 2 * H], 7, 5, 2)], { direction: 'bidirectional', activations: ['Relu', 'Relu'] }, ['Y', 'Y_h']],
      ['LSTM large bidirectional, lens', 'LSTM', [X2, rnd([2, 4 * H2, I2]), rnd([2, 4 * H2, H2]), rnd([2, 8 * H2]), lens2, rnd([2, B2, H2]), rnd([2, B2, H2])], { direction: 'bidirectional', hidden_size: H2 }, ['Y', 'Y_h', 'Y_c']],
      ['GRU large lbr=0, clip, layout 1', 'GRU', [X2l, rnd([1, 3 * H2, I2]), rnd([1, 3 * H2, H2]), rnd([1, 6 * H2]), undefined, rnd([B2, 1, H2])], { layout: 1, clip: 0.9, hidden_size: H2 }, ['Y', 'Y_h']],
      ['RNN large reverse Tanh', 'RNN', [X2, rnd([1, H2, I2]), rnd([1, H2, H2]), rnd([1, 2 * H2]), lens2], { direction: 'reverse' }, ['Y', 'Y_h']],
    ];
    for (const [title, op, inputs, attrs, outputs] of cases) {
      const node = { name: op, opType: op, domain: '', inputs: inputs.map((x, i) => (x ? `in${i}` : '')), outputs, attrs: attrsFrom(attrs) };
      const fk = b.kernels.find((k) => k.opType === op && (k.domain ?? '') === '');
      assert.ok(fk, `${backend} has a ${op} kernel`);
      const kernel = fk.compile({ node, consts: inputs.map((x, i) => (i === 1 || i === 2 ? x : undefined)), opset: 21, threads: 0 });
      assert.ok(kernel, `${backend} compiles ${title}`);
      const before = { ...rnnF32Stats };
      const got = kernel(inputs, makeContext(node, 21));
      assert.ok(rnnF32Stats.projections > before.projections && rnnF32Stats.recurrences > before.recurrences, `${title}: the fast products ran`);
      const want = getOp('', op)!.run(inputs, makeContext(node, 21));
      outputs.forEach((name, i) => {
        if (!name) return;
        const g = got[i]!.toNumbers(), w = want[i]!.toNumbers();
        assert.deepEqual([...got[i]!.shape], [...want[i]!.shape], `${title} ${name} shape`);
        for (let k = 0; k < w.length; k++) assert.ok(Math.abs(g[k]! - w[k]!) <= 1e-5 * (1 + Math.abs(w[k]!)), `${backend} ${title} ${name}[${k}]: ${g[k]} vs ${w[k]}`);
      });
    }
    // A float64 X runs the reference form, which refuses float32 W as the reference does.
    const d = (x: Tensor) => Tensor.from('float64', x.shape, x.toNumbers());
    const [Wr, Rr] = [sq([1, H, I], 29, 13, 6), sq([1, H, H], 23, 11, 5)];
    const node = { name: 'RNN', opType: 'RNN', domain: '', inputs: ['x', 'w', 'r'], outputs: ['Y'], attrs: attrsFrom({}) };
    const k64 = b.kernels.find((k) => k.opType === 'RNN' && (k.domain ?? '') === '')!.compile({ node, consts: [undefined, Wr, Rr], opset: 21, threads: 0 })!;
    const before = rnnF32Stats.projections;
    assert.throws(() => k64([d(X), Wr, Rr], makeContext(node, 21)), /input W should be float64 like X/);
    assert.equal(rnnF32Stats.projections, before, 'float64 X does not take the float32 products');
  });
}
