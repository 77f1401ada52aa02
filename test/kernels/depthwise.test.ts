/**
 * Depthwise Conv / Q8Conv (group = C = M) on the native addon against the reference kernels, for
 * every ISA this machine can run: the row-oriented depthwise kernels have unrolled paths for
 * k x k (3, 5) with stride 1 or 2 and a generic path for everything else, zero-padded phase planes
 * per stride, row chunks (tall planes, few planes split for threads), a copy-free path for 3x3
 * stride 2 and narrow 3x3 stride 1, and whole-patch or blocked int8 windows. Skipped when the addon
 * is not built.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { nativeBackend } from '../../src/kernels/native/index.js';
import { both, forEachIsa, skip } from './native-isas.js';
import { getOp } from '../../src/ops/registry.js';
import { makeContext } from '../../src/runtime/invoke.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { ACTS, close, convTensors, node, poisonedContext, q8ConvCase, rng, type ConvCase } from './kernel-test-util.js';

const dw = (C: number, H: number, W: number, k: [number, number], o: Partial<ConvCase> = {}): ConvCase =>
  ({ B: 1, C, H, W, M: C, group: C, k, ...o });

const CASES: ConvCase[] = [
  dw(5, 13, 11, [3, 3], { pads: [1, 1, 1, 1] }),                        // unrolled 3x3 s1, W < 16
  dw(7, 17, 19, [3, 3], { strides: [2, 2], pads: [1, 1, 1, 1] }),       // unrolled 3x3 s2, W not a multiple of 16
  dw(4, 16, 16, [3, 3], { strides: [2, 2], pads: [0, 0, 1, 1] }),       // asymmetric (SAME-style) pads
  dw(3, 33, 37, [3, 3]),                                                // no padding
  dw(6, 20, 40, [5, 5], { pads: [2, 2, 2, 2] }),                        // unrolled 5x5 s1
  dw(5, 23, 35, [5, 5], { strides: [2, 2], pads: [2, 1, 2, 2] }),       // unrolled 5x5 s2
  dw(6, 20, 20, [3, 3], { dilations: [2, 2], pads: [2, 2, 2, 2] }),     // dilation: generic path
  dw(4, 12, 40, [7, 7], { strides: [3, 3], pads: [3, 3, 3, 3] }),       // stride 3: generic path
  dw(3, 9, 30, [3, 2], { strides: [2, 1], dilations: [1, 2], pads: [0, 1, 1, 0] }),  // mixed
  dw(2, 1, 50, [1, 4], { oneD: true, pads: [2, 1], strides: [3] }),     // 1-D (H = 1)
  dw(3, 1, 70, [1, 3], { oneD: true, pads: [1, 1] }),                   // 1-D (kh != kw: generic)
  dw(4, 5, 3, [3, 3], { pads: [0, 1, 2, 0] }),                          // tiny plane, pads past the image
  dw(3, 4, 4, [3, 3], { strides: [3, 3], pads: [2, 2, 2, 2] }),         // windows wholly in the padding
  { ...dw(3, 11, 21, [3, 3], { pads: [1, 1, 1, 1] }), B: 2 },           // batch 2
  { ...dw(3, 10, 18, [3, 3], { strides: [2, 2], pads: [1, 1, 1, 1] }), B: 2 },
  dw(1, 150, 20, [3, 3], { pads: [1, 1, 1, 1] }),                       // one tall plane: row chunks
  dw(2, 90, 130, [3, 3], { strides: [2, 2], pads: [1, 1, 1, 1] }),      // wide rows, several chunks
  dw(40, 14, 14, [3, 3], { pads: [1, 1, 1, 1] }),                       // many planes (threads)
  dw(80, 10, 30, [3, 3], { pads: [1, 1, 1, 1] }),                       // several planes per task: the
  dw(70, 9, 20, [3, 3], { strides: [2, 2], pads: [1, 1, 1, 1] }),       // buffer's pads are kept
  dw(40, 11, 21, [5, 5], { strides: [2, 2], pads: [2, 2, 2, 2] }),
  dw(24, 7, 7, [3, 3], { auto_pad: 'SAME_UPPER' }),
  // 3x3 stride 1 with one vector per row is read straight from X: pads 0..2 on the left, rows at
  // the ends of X, a left pad of 3 (not direct)
  dw(5, 9, 13, [3, 3], { pads: [0, 0, 2, 2] }),
  dw(6, 16, 16, [3, 3], { pads: [2, 2, 0, 0] }),
  dw(2, 8, 10, [3, 3], { pads: [3, 3, 1, 1] }),
  dw(4, 12, 18, [3, 3]),                                                // W = L + 2, no pads: no selects
  { ...dw(3, 1, 9, [3, 3], { pads: [1, 1, 1, 1] }), B: 2 },
];

/** q8.ConvAct (Conv + Relu/Clip in the store) compiled natively next to its reference op. */
function convAct(n: ReturnType<typeof node>, inputs: (Tensor | undefined)[]): { got: Tensor; want: Tensor } {
  const fk = nativeBackend.kernels.find((k) => k.opType === 'ConvAct' && k.domain === 'q8');
  assert.ok(fk, 'no native ConvAct kernel');
  const k = fk.compile({ node: n, consts: [undefined, inputs[1], inputs[2]], opset: 13, threads: 0 });
  assert.ok(k, `native ConvAct declined ${JSON.stringify(n.attrs)}`);
  const ref = getOp('q8', 'ConvAct');
  assert.ok(ref, 'reference q8.ConvAct missing');
  return { got: k(inputs, poisonedContext(n, 13))[0]!, want: ref.run(inputs, makeContext(n, 13))[0]! };
}

test('depthwise Conv float32: native vs reference (unrolled and generic paths, pads, strides, dilations, batch, Relu/Clip)', { skip }, () => {
  const r = rng(21);
  forEachIsa((isa) => {
    CASES.forEach((c, ci) => {
      const { X, W, bias, attrs } = convTensors(c, r, false, 0);
      const what = `${isa} depthwise Conv case ${ci} ${JSON.stringify(c)}`;
      const plain = both(node('Conv', '', ['x', 'w', bias ? 'b' : ''], attrs), [X, W, bias], [false, true, true]);
      close(plain.got, plain.want, 1e-4, what, 1e-5);
      const act = ACTS[1 + (ci % 2)]!;
      const fused = convAct(node('ConvAct', 'q8', ['x', 'w', bias ? 'b' : ''], { ...attrs, ...act }), [X, W, bias]);
      close(fused.got, fused.want, 1e-4, `${what} ${JSON.stringify(act)}`, 1e-5);
    });
  });
});

test('depthwise Q8Conv: native vs reference (whole-patch and blocked windows, Relu/Clip)', { skip }, () => {
  const r = rng(22);
  // [weight_block, act_block]: multiples of 4 that nest; K = 9 (3x3), 25 (5x5), 49 (7x7), ...
  const windows = [[0, 0], [0, 4], [4, 0], [8, 4], [4, 8], [0, 8], [0, 16], [32, 0], [0, 64]];
  forEachIsa((isa) => {
    CASES.forEach((c, ci) => {
      for (const [wb, ab] of windows) {
        const q = q8ConvCase(c, ci, r, wb!, ab!);
        const { got, want } = both(q.n, q.inputs, q.constMask);
        close(got, want, 1e-5, `${isa} depthwise ${q.what} ${JSON.stringify(c)}`);
      }
    });
  });
});
