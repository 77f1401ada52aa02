/**
 * The native addon's kernels against the TypeScript reference kernels (src/ops for Conv/Gemm/MatMul,
 * src/quant for Q8Gemm/Q8Conv), on random shapes, for every ISA this machine can run.
 * Skipped (with the reason) when the addon is not built.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Worker } from 'node:worker_threads';
import { nativeBackend, type NativeIsa } from '../../src/kernels/native/index.js';
import { addon, ALL_ISAS, both, forEachIsa, ISAS, skip } from './native-isas.js';
import { getBackend } from '../../src/kernels/registry.js';
import { getOp } from '../../src/ops/registry.js';
import { makeContext } from '../../src/runtime/invoke.js';
import { Tensor } from '../../src/tensor/tensor.js';
import {
  ACTS, checkConvF32, checkGemmAndMatMul, checkResidualConvs, close, CONV_CASES, convTensors, floats, int8s, node, poisonedContext, q8ConvCase, q8GemmCase, rng, scales, type ConvCase,
} from './kernel-test-util.js';

test('native addon loads, reports its ISA and is registered as a backend', { skip }, () => {
  const i = addon!.info();
  assert.ok(ALL_ISAS.includes(i.isa) && ALL_ISAS.includes(i.best));
  assert.ok(i.threads >= 1);
  assert.equal(getBackend('native'), nativeBackend);
  assert.ok(nativeBackend.available());
  assert.match(nativeBackend.description, /^native \(/);
  assert.throws(() => addon!.setIsa('sse9' as NativeIsa), /unknown ISA/);
});

test('Q8Gemm: native vs reference on random shapes and windows', { skip }, () => {
  const r = rng(1);
  const shapes: [number, number, number][] = [
    [1, 1, 1], [1, 3, 5], [5, 31, 17], [13, 100, 33], [2, 257, 64], [40, 96, 100], [1, 600, 300], [17, 200, 32], [25, 64, 7],
  ];
  const windows = [[0, 0], [32, 0], [0, 32], [64, 128], [128, 64], [256, 32], [32, 256], [64, 64]];
  forEachIsa((isa) => {
    let c = 0;
    for (const [M, K, N] of shapes) {
      for (const [wb, ab] of windows) {
        if ((wb || ab) && K < 32 && c++ % 2) continue;
        const q = q8GemmCase(r, M, K, N, wb, ab);
        const { got, want } = both(q.n, q.inputs, q.constMask);
        close(got, want, 1e-5, `${isa} ${q.what}`);
      }
    }
  });
});

test('Q8Conv: native vs reference (groups, depthwise, strides, dilations, pads, 1-D, windows)', { skip }, () => {
  const r = rng(2);
  const windows = [[0, 0], [32, 0], [0, 32], [64, 32], [32, 128]];
  forEachIsa((isa) => {
    CONV_CASES.forEach((c, ci) => {
      for (const [wb, ab] of windows) {
        const q = q8ConvCase(c, ci, r, wb, ab);
        if ((wb || ab) && q.K < 32 && ci % 2) continue;
        const { got, want } = both(q.n, q.inputs, q.constMask);
        close(got, want, 1e-5, `${isa} ${q.what}`);
      }
    });
  });
});

test('Q8Conv on larger maps (channel max filled per thread, pixel maps reused down the image): native vs reference, 1 and 2 threads', { skip }, () => {
  // Planes of 10,000+ pixels whose (image, group) input exceeds 1 MB: each thread fills the channel
  // max of the input rows its panels' taps touch. Strides skip rows (1x1 stride 2 reads only even
  // rows), dilations, asymmetric pads, groups and a batch switch (image, group) between tasks. All
  // of these, and the 3-channel stems after them, are wide enough for the per-thread pixel maps
  // (one per panel start column, reused rows further down).
  const cases: ConvCase[] = [
    { B: 1, C: 3, H: 64, W: 70, M: 16, group: 1, k: [7, 7], strides: [2, 2], pads: [3, 3, 3, 3] },
    { B: 2, C: 3, H: 40, W: 61, M: 8, group: 1, k: [3, 3], pads: [1, 1, 1, 1] },
    { B: 1, C: 24, H: 112, W: 112, M: 8, group: 1, k: [3, 3], pads: [1, 1, 1, 1] },
    { B: 2, C: 52, H: 100, W: 104, M: 10, group: 2, k: [3, 3], strides: [2, 2], pads: [1, 0, 0, 1] },
    { B: 1, C: 24, H: 112, W: 112, M: 9, group: 1, k: [1, 1], strides: [2, 2] },
    { B: 1, C: 24, H: 110, W: 110, M: 8, group: 1, k: [3, 3], dilations: [2, 2], pads: [2, 2, 2, 2] },
  ];
  const r = rng(21);
  const qs = cases.map((c, ci) => q8ConvCase(c, ci, r, 0, 0));
  const n = addon!, before = n.info().threads;
  try {
    for (const t of [1, 2]) {
      n.setThreads(t);
      forEachIsa((isa) => {
        qs.forEach((q) => {
          const { got, want } = both(q.n, q.inputs, q.constMask);
          close(got, want, 1e-5, `${isa} threads ${t} ${q.what}`);
        });
        checkConvF32(both, r, cases, `${isa} threads ${t} `);  // the fp32 im2col takes the same maps
      });
    }
  } finally {
    n.setThreads(before);
  }
});

test('Q8Conv with one activation window per tap: native vs reference (strides 1-3, dilations, pads, odd C, batch)', { skip }, () => {
  const r = rng(12);
  const cases: ConvCase[] = [
    ...CONV_CASES.filter((c) => c.group === 1),
    { B: 2, C: 20, H: 15, W: 70, M: 19, group: 1, k: [3, 3], pads: [1, 1, 1, 1] },
    { B: 1, C: 64, H: 9, W: 9, M: 24, group: 1, k: [3, 3], strides: [3, 3], pads: [1, 0, 2, 1] },
    { B: 1, C: 7, H: 6, W: 40, M: 9, group: 1, k: [5, 3], strides: [1, 2], dilations: [2, 3], pads: [3, 2, 1, 4] },
    { B: 1, C: 16, H: 7, W: 7, M: 40, group: 1, k: [1, 1] },
  ];
  forEachIsa((isa) => {
    cases.forEach((c, ci) => {
      const q = q8ConvCase(c, ci, r, 0, 0, true);
      const { got, want } = both(q.n, q.inputs, q.constMask);
      close(got, want, 1e-5, `${isa} ${q.what}`);
    });
  });
});

test('Conv float32: native vs reference', { skip }, () => {
  const r = rng(3);
  forEachIsa((isa) => {
    checkConvF32(both, r, CONV_CASES, `${isa} `);
    // A large-K conv crosses the addon's K chunking.
    const c: ConvCase = { B: 1, C: 70, H: 6, W: 9, M: 12, group: 1, k: [3, 3], pads: [1, 1, 1, 1] };
    const { X, W, bias, attrs } = convTensors(c, r, false, 0);
    const { got, want } = both(node('Conv', '', ['x', 'w', bias ? 'b' : ''], attrs), [X, W, bias], [false, true, true]);
    close(got, want, 1e-4, `${isa} Conv K=630`, 1e-5);
  });
});

test('Conv and Q8Conv with a fused residual join: native vs reference, apart from and in place over the residual, every conv path', { skip }, () => {
  const r = rng(14);
  // + 3x3 convs on 7x7 maps (the pixel-row GEMM path in fp32 and int8)
  const cases: ConvCase[] = [...CONV_CASES, { B: 2, C: 40, H: 7, W: 7, M: 24, group: 1, k: [3, 3], pads: [1, 1, 1, 1] }];
  forEachIsa((isa) => checkResidualConvs(nativeBackend, r, cases, true, `${isa} `));
});

test('Gemm and MatMul float32: native vs reference (transA/transB/alpha/beta folding, batched A)', { skip }, () => {
  const r = rng(4);
  forEachIsa((isa) => {
    // the last two have fp32 weights over 1 MB: rows in groups, panels outer, balanced row blocks
    checkGemmAndMatMul(both, r, [[1, 1, 1], [7, 33, 65], [30, 100, 17], [1, 300, 200], [13, 64, 32], [49, 600, 500], [150, 1700, 160]], `${isa} `);
  });
});

test('MatMul with a run-time right side (attention): native vs reference, batched and broadcast', { skip }, () => {
  const r = rng(14);
  const shapes: [number[], number[]][] = [
    [[2, 3, 5, 7], [2, 3, 7, 4]], [[4, 5, 6], [6, 3]], [[3, 5, 6], [1, 6, 2]], [[12, 1, 64], [12, 64, 33]], [[7, 9], [9, 40]],
  ];
  forEachIsa((isa) => {
    for (const [sa, sb] of shapes) {
      const A = Tensor.from('float32', sa, floats(r, sa.reduce((a, b) => a * b, 1)));
      const B = Tensor.from('float32', sb, floats(r, sb.reduce((a, b) => a * b, 1)));
      const { got, want } = both(node('MatMul', '', ['a', 'b'], {}), [A, B], [false, false]);
      close(got, want, 1e-4, `${isa} MatMul ${JSON.stringify(sa)} x ${JSON.stringify(sb)}`, 1e-5);
    }
  });
});

test('Erf float32: native vs reference on every ISA (dense sweep of [-5, 5], tails, ±0, ±Inf, NaN)', { skip }, () => {
  const r = rng(15);
  const sweep = Array.from({ length: 200001 }, (_, i) => -5 + i * 5e-5);  // both polynomial pieces and the seam at 0.875
  const v = [...sweep, ...floats(r, 5000).map((x) => x * 4), 0, -0, 1e-30, -1e-30, 1e-40, 0.875, -0.875, 3.9, -3.9, 6, 10, -10, Infinity, -Infinity, NaN];
  const X = Tensor.from('float32', [v.length], v);
  forEachIsa((isa) => {
    const { got, want } = both(node('Erf', '', ['x'], {}), [X], [false]);
    const g = got.data as Float32Array, w = want.data as Float32Array, x = X.data as Float32Array;
    for (let i = 0; i < v.length; i++) {
      if (Number.isNaN(w[i]!)) { assert.ok(Number.isNaN(g[i]!), `${isa} erf(${x[i]}) should be NaN`); continue; }
      assert.ok(Math.abs(g[i]! - w[i]!) <= 2.5e-7 * Math.max(1e-30, Math.abs(w[i]!)) + 1e-37, `${isa} erf(${x[i]}): ${g[i]} vs ${w[i]}`);
      if (w[i] === 0) assert.equal(Object.is(g[i], -0), Object.is(w[i], -0), `${isa} erf(${x[i]}) keeps the sign of zero`);
    }
  });
});

test('q8.Gelu float32: native vs reference on every ISA (sweep of [-8, 8], ±0, ±Inf, NaN; BERT-sized)', { skip }, () => {
  // The native erf is within 2.5e-7 of the reference (Erf test above); Gelu adds four float32 steps.
  const sweep = Array.from({ length: 160001 }, (_, i) => -8 + i * 1e-4);
  const v = [...sweep, 0, -0, 1e-30, -1e-30, 20, -20, Infinity, -Infinity, NaN];
  const X = Tensor.from('float32', [v.length], v);
  const attrs = { div: Math.fround(Math.SQRT2), add: 1, mul: 0.5 };
  forEachIsa((isa) => {
    const { got, want } = both(node('Gelu', 'q8', ['x'], attrs), [X], [false]);
    const g = got.data as Float32Array, w = want.data as Float32Array, x = X.data as Float32Array;
    for (let i = 0; i < v.length; i++) {
      if (Number.isNaN(w[i]!)) { assert.ok(Number.isNaN(g[i]!), `${isa} gelu(${x[i]}) should be NaN`); continue; }
      if (!Number.isFinite(w[i]!)) { assert.equal(g[i], w[i], `${isa} gelu(${x[i]})`); continue; }
      // erf's error, scaled by x/2 and the rounding of the four steps after it
      assert.ok(Math.abs(g[i]! - w[i]!) <= 3e-7 * Math.abs(x[i]!) + 2e-7 * Math.abs(w[i]!) + 1e-37, `${isa} gelu(${x[i]}): ${g[i]} vs ${w[i]}`);
    }
  });
});

type Entry = 'maxPoolF32' | 'binaryF32' | 'softmaxF32' | 'layerNormF32' | 'transpose32' | 'reluF32' | 'globalAvgF32';

/**
 * forEachIsa(body) while counting calls of the named addon entry points, so a test can tell the
 * native path ran (not the fallback); the entry points are restored afterwards.
 */
function countingCalls<K extends Entry>(names: K[], body: (isa: NativeIsa) => void): Record<K, number> {
  const a = addon as unknown as Record<string, (...args: unknown[]) => unknown>;
  const calls = {} as Record<K, number>;
  const orig = names.map((name) => a[name]!);
  names.forEach((name, i) => {
    calls[name] = 0;
    a[name] = (...args: unknown[]) => { calls[name]++; return orig[i]!.apply(addon, args); };
  });
  try {
    forEachIsa(body);
  } finally {
    names.forEach((name, i) => { a[name] = orig[i]!; });
  }
  return calls;
}

/** Bit-for-bit up to NaN payloads and the sign of zero. */
function same(got: Tensor, want: Tensor, what: string): void {
  assert.deepEqual(got.shape, want.shape, `${what}: shape`);
  const g = got.data as Float32Array, w = want.data as Float32Array;
  for (let i = 0; i < w.length; i++) {
    if (!(g[i] === w[i] || (Number.isNaN(g[i]) && Number.isNaN(w[i])))) assert.fail(`${what}: element ${i} is ${g[i]}, reference ${w[i]}`);
  }
}

/** Random floats with some NaN and ±Inf sprinkled in (rate per value). */
function specials(r: () => number, n: number, rate: number): Float32Array {
  const a = floats(r, n, 17);
  for (let i = 0; i < n; i++) {
    const u = r();
    if (u < rate / 3) a[i] = NaN;
    else if (u < (2 * rate) / 3) a[i] = Infinity;
    else if (u < rate) a[i] = -Infinity;
  }
  return a;
}

test('MaxPool float32 2-D: native vs reference (odd sizes, strides, pads, ceil_mode, auto_pad, NaN/±Inf)', { skip }, () => {
  const r = rng(11);
  type PoolCase = { B: number; C: number; H: number; W: number; k: [number, number]; s?: [number, number]; pads?: number[]; ceil?: number; auto?: string };
  const cases: PoolCase[] = [
    { B: 1, C: 3, H: 8, W: 8, k: [2, 2], s: [2, 2] },
    { B: 2, C: 5, H: 13, W: 17, k: [2, 2], s: [2, 2] },
    { B: 1, C: 4, H: 15, W: 15, k: [3, 3], s: [2, 2], pads: [1, 1, 1, 1] },
    { B: 1, C: 3, H: 14, W: 37, k: [3, 3], s: [2, 2], pads: [1, 1, 1, 1], ceil: 1 },
    { B: 2, C: 2, H: 11, W: 40, k: [3, 2], s: [1, 1], pads: [1, 0, 2, 1] },
    { B: 1, C: 6, H: 9, W: 50, k: [2, 3], s: [3, 3], pads: [0, 2, 1, 0], ceil: 1 },
    { B: 1, C: 2, H: 7, W: 7, k: [7, 7] },
    { B: 1, C: 2, H: 5, W: 33, k: [1, 1], s: [1, 4] },
    { B: 1, C: 3, H: 10, W: 21, k: [3, 3], s: [2, 2], auto: 'SAME_UPPER' },
    { B: 1, C: 3, H: 10, W: 21, k: [4, 4], s: [3, 2], auto: 'SAME_LOWER' },
    { B: 1, C: 64, H: 56, W: 56, k: [2, 2], s: [2, 2] },
    { B: 1, C: 2, H: 9, W: 71, k: [2, 2], s: [2, 2] }, // 2x2 fast path: row tails past one vector pair
    { B: 1, C: 2, H: 9, W: 71, k: [2, 2], s: [2, 2], ceil: 1 }, // ceil mode: a window past the input
    { B: 1, C: 3, H: 4, W: 4, k: [3, 3], s: [3, 3], pads: [2, 2, 2, 2], ceil: 1 }, // windows wholly in the padding
  ];
  const calls = countingCalls(['maxPoolF32'], (isa) => {
    cases.forEach((c, ci) => {
      for (const rate of [0, 0.05]) {
        const X = Tensor.from('float32', [c.B, c.C, c.H, c.W], rate ? specials(r, c.B * c.C * c.H * c.W, rate) : floats(r, c.B * c.C * c.H * c.W, 13));
        const attrs: Record<string, unknown> = { kernel_shape: c.k };
        if (c.s) attrs['strides'] = c.s;
        if (c.pads) attrs['pads'] = c.pads;
        if (c.ceil) attrs['ceil_mode'] = c.ceil;
        if (c.auto) attrs['auto_pad'] = c.auto;
        const { got, want } = both(node('MaxPool', '', ['x'], attrs), [X], [false], 12);
        same(got, want, `${isa} MaxPool case ${ci} specials ${rate}`);
      }
    });
  });
  assert.equal(calls.maxPoolF32, ISAS.length * 14 * 2, 'every case ran the native kernel');
});

test('float32 Conv (+ Relu/Clip) and Gemm with NaN inputs: NaN comes out where the reference has it', { skip }, () => {
  // (int8 layers quantize NaN: see the README on allowNaN; fp32 ones propagate it, as ONNX does)
  const r = rng(16);
  // NaN positions must agree, other values within the plain kernels' tolerance
  const agree = (got: Tensor, want: Tensor, what: string) => {
    const g = got.data as Float32Array, w = want.data as Float32Array;
    let nan = 0, amax = 0;
    for (let i = 0; i < w.length; i++) if (!Number.isNaN(w[i]!)) amax = Math.max(amax, Math.abs(w[i]!));
    for (let i = 0; i < w.length; i++) {
      if (Number.isNaN(w[i]!)) { nan++; assert.ok(Number.isNaN(g[i]!), `${what}: element ${i} is ${g[i]}, reference NaN`); continue; }
      assert.ok(Math.abs(g[i]! - w[i]!) <= 1e-4 * (Math.abs(w[i]!) + 0.1 * amax), `${what}: element ${i} is ${g[i]}, reference ${w[i]}`);
    }
    assert.ok(nan > 0 && nan < w.length, `${what}: some outputs are NaN (${nan} of ${w.length})`);
  };
  const withNaN = (n: number, row: number) => {
    const a = floats(r, n, row);
    for (let i = 0; i < n; i++) if (r() < 0.002) a[i] = NaN;
    return a;
  };
  // a 3x3 conv on the panel path, a 1x1 on pixel rows, a depthwise one
  const cases: ConvCase[] = [
    { B: 1, C: 16, H: 20, W: 20, M: 24, group: 1, k: [3, 3], pads: [1, 1, 1, 1] },
    { B: 1, C: 40, H: 7, W: 7, M: 24, group: 1, k: [1, 1] },
    { B: 1, C: 16, H: 12, W: 12, M: 16, group: 16, k: [3, 3], pads: [1, 1, 1, 1] },
  ];
  forEachIsa((isa) => {
    cases.forEach((c, ci) => {
      for (const act of ACTS) {
        const { W, bias, attrs } = convTensors(c, r, false, 0);
        const X = Tensor.from('float32', [c.B, c.C, c.H, c.W], withNaN(c.B * c.C * c.H * c.W, c.W));
        const n = node('ConvAct', 'q8', ['x', 'w', bias ? 'b' : ''], { ...attrs, ...act, activation: act.activation ?? '' });
        const { got, want } = both(n, [X, W, bias], [false, true, true]);
        agree(got, want, `${isa} ConvAct case ${ci} ${JSON.stringify(act)}`);
      }
    });
    const A = Tensor.from('float32', [30, 100], withNaN(3000, 100)), B = Tensor.from('float32', [17, 100], floats(r, 1700));
    const { got, want } = both(node('Gemm', '', ['a', 'b'], { transB: 1 }), [A, B], [false, true]);
    agree(got, want, `${isa} Gemm`);
  });
});

test('GlobalAveragePool float32: native vs reference bit for bit (plane counts, ranks 3-5, NaN/±Inf)', { skip }, () => {
  const r = rng(17);
  const calls = countingCalls(['globalAvgF32'], (isa) => {
    for (const shape of [[1, 1280, 7, 7], [2, 13, 5, 3], [1, 7, 1], [3, 9, 2, 3, 4], [1, 17, 33, 31]]) {
      for (const rate of [0, 0.01]) {
        const n = shape.reduce((a, b) => a * b, 1);
        const X = Tensor.from('float32', shape, specials(r, n, rate));
        const { got, want } = both(node('GlobalAveragePool', '', ['x'], {}), [X], [false]);
        same(got, want, `${isa} GlobalAveragePool ${shape} specials ${rate}`);
      }
    }
  });
  assert.equal(calls.globalAvgF32, ISAS.length * 10, 'every case ran the native kernel');
});

test('Relu, Add and q8.AddAct float32: native vs reference (odd lengths, NaN/±Inf)', { skip }, () => {
  const r = rng(12);
  const addAct = getOp('q8', 'AddAct')!;
  const calls = countingCalls(['binaryF32', 'reluF32'], (isa) => {
    for (const shape of [[1], [7], [3, 5, 17], [2, 64, 33, 9], [1, 256, 14, 14], [40000]]) {
      const n = shape.reduce((a, b) => a * b, 1);
      const A = Tensor.from('float32', shape, specials(r, n, 0.03));
      const B = Tensor.from('float32', shape, specials(r, n, 0.03));
      let { got, want } = both(node('Relu', '', ['x'], {}), [A], [false]);
      same(got, want, `${isa} Relu ${shape}`);
      ({ got, want } = both(node('Add', '', ['a', 'b'], {}), [A, B], [false, false]));
      same(got, want, `${isa} Add ${shape}`);
      const an = node('AddAct', 'q8', ['a', 'b'], { activation: 'Relu' });
      const fk = nativeBackend.kernels.find((k) => k.opType === 'AddAct' && k.domain === 'q8')!;
      const k = fk.compile({ node: an, consts: [undefined, undefined], opset: 1, threads: 0 })!;
      got = k([A, B], poisonedContext(an, 1))[0]!;
      want = addAct.run([A, B], makeContext(an, 1))[0]!;
      same(got, want, `${isa} AddAct ${shape}`);
      if (n > 100) assert.ok((got.data as Float32Array).some((v) => v === 0) && (got.data as Float32Array).some((v) => v > 0), 'AddAct clamps some values');
    }
    // other dtypes run the reference
    const I = Tensor.from('int32', [5], Int32Array.from([-3, 4, -1, 0, 9]));
    const ri = both(node('Relu', '', ['x'], {}), [I], [false]);
    assert.deepEqual(Array.from(ri.got.data as Int32Array), Array.from(ri.want.data as Int32Array));
    const ai = both(node('Add', '', ['a', 'b'], {}), [I, I], [false, false]);
    assert.deepEqual(Array.from(ai.got.data as Int32Array), Array.from(ai.want.data as Int32Array));
  });
  assert.equal(calls.binaryF32, ISAS.length * 6 * 2, 'Add and AddAct ran natively, the int32 Add did not');
  assert.equal(calls.reluF32, ISAS.length * 6);
});

test('Add, Sub, Mul, Div float32 with broadcasting: native vs reference, bit for bit (NaN/±Inf, x/0)', { skip }, () => {
  const r = rng(21);
  // [A, B]: same shape, bias rows, scalars either side, attention-mask and outer-product patterns,
  // B broadcast inside (per channel), A broadcast, rank-0, empty.
  const pairs: [number[], number[]][] = [
    [[3, 50, 37], [3, 50, 37]], [[1, 128, 96], [96]], [[5, 33], []], [[], [2, 17]], [[2, 12, 16, 16], [2, 1, 1, 16]],
    [[7, 1], [1, 9]], [[2, 64, 5, 5], [1, 64, 1, 1]], [[1, 5], [4, 3, 5]], [[], []], [[4, 0, 3], [3]], [[2, 3, 1], [1, 3, 40]],
  ];
  let expected = 0;
  const calls = countingCalls(['binaryF32'], (isa) => {
    for (const op of ['Add', 'Sub', 'Mul', 'Div']) {
      for (const [sa, sb] of pairs) {
        const na = sa.reduce((x, y) => x * y, 1), nb = sb.reduce((x, y) => x * y, 1);
        const A = Tensor.from('float32', sa, specials(r, na, 0.02));
        const bv = specials(r, nb, 0.02);
        if (op === 'Div' && nb > 4) { bv[1] = 0; bv[3] = -0; }
        const B = Tensor.from('float32', sb, bv);
        const { got, want } = both(node(op, '', ['a', 'b'], {}), [A, B], [false, false]);
        same(got, want, `${isa} ${op} ${JSON.stringify(sa)} ${JSON.stringify(sb)}`);
        if (got.size) expected++;
      }
    }
  });
  assert.equal(calls.binaryF32, expected, 'every non-empty case ran the native kernel');
});

test('q8.LayerNorm float32: native vs reference (row lengths, offset rows, batches)', { skip }, () => {
  const r = rng(24);
  let expected = 0;
  const calls = countingCalls(['layerNormF32'], (isa) => {
    for (const [shape, offset] of [[[1, 128, 768], 0], [[3, 7], 0], [[2, 5, 33], 5], [[4, 100], 300], [[1], 0], [[2, 16], -40]] as [number[], number][]) {
      const C = shape[shape.length - 1]!, n = shape.reduce((a, b) => a * b, 1);
      const X = Tensor.from('float32', shape, floats(r, n, 25).map((v, i) => v * (1 + (i % 7)) + offset));
      const G = Tensor.from('float32', [C], floats(r, C, 26).map((v) => 1 + v / 2));
      const B = Tensor.from('float32', [C], floats(r, C, 27));
      const { got, want } = both(node('LayerNorm', 'q8', ['x', 'g', 'b'], { epsilon: 1e-5 }), [X, G, B], [false, true, true]);
      close(got, want, 2e-5, `${isa} LayerNorm ${shape} offset ${offset}`, 2e-6);
      expected++;
    }
  });
  assert.equal(calls.layerNormF32, expected, 'every case ran the native kernel');
});

test('Transpose of float32/int32: native vs reference bit for bit (random perms, ranks 1-6, unit dims, NaN payloads)', { skip }, () => {
  const r = rng(31);
  let expected = 0;
  const cases: [number[], number[] | undefined][] = [
    [[1, 128, 12, 64], [0, 2, 1, 3]], [[1, 12, 128, 64], [0, 1, 3, 2]], [[33, 70], undefined], [[5000], [0]],
    [[3, 1, 40, 17], [2, 0, 3, 1]], [[2, 3, 4, 5, 6, 7], [5, 3, 1, 0, 2, 4]], [[64, 56, 1], [2, 1, 0]],
    [[1, 128, 768], [1, 0, 2]], [[128, 1, 768], [1, 0, 2]], [[40, 1, 1, 30], [2, 0, 3, 1]],  // only unit dims move: views
  ];
  // Non-unit dims in their input order: the same values in the same order, a view of the input.
  const isView = (shape: number[], perm: number[] | undefined) => {
    const order = (perm ?? shape.map((_, i) => shape.length - 1 - i)).filter((p) => shape[p] !== 1);
    return order.every((p, i) => i === 0 || p > order[i - 1]!);
  };
  for (let i = 0; i < 6; i++) {  // random ones
    const rank = 2 + Math.floor(r() * 4), shape = Array.from({ length: rank }, () => 1 + Math.floor(r() * 9));
    const perm = shape.map((_, j) => j).sort(() => r() - 0.5);
    cases.push([shape, perm]);
  }
  const calls = countingCalls(['transpose32'], (isa) => {
    for (const [shape, perm] of cases) {
      const n = shape.reduce((a, b) => a * b, 1);
      const attrs = perm ? { perm } : {};
      const f = floats(r, n, 32);
      const nanBits = new Uint32Array(f.buffer);
      nanBits[0] = 0x7fc01234;  // a NaN with a payload survives the copy
      const F = Tensor.from('float32', shape, f);
      let { got, want } = both(node('Transpose', '', ['x'], attrs), [F], [false]);
      assert.deepEqual(got.shape, want.shape);
      const view = n >= 1024 && isView(shape, perm);
      assert.equal(got.data === F.data, view, `${isa} ${shape} ${perm}: ${view ? 'a view' : 'a copy'}`);
      assert.deepEqual(new Uint32Array((got.data as Float32Array).buffer, (got.data as Float32Array).byteOffset, n),
        new Uint32Array((want.data as Float32Array).buffer, (want.data as Float32Array).byteOffset, n), `${isa} float32 ${shape} ${perm}`);
      const I = Tensor.from('int32', shape, Int32Array.from({ length: n }, (_, i) => i * 7 - 1000));
      ({ got, want } = both(node('Transpose', '', ['x'], attrs), [I], [false]));
      assert.deepEqual(Array.from(got.data as Int32Array), Array.from(want.data as Int32Array), `${isa} int32 ${shape} ${perm}`);
      if (n >= 1024 && !isView(shape, perm)) expected += 2;
    }
  });
  assert.ok(expected > 0);
  assert.equal(calls.transpose32, expected, 'tensors of 1024 values or more ran natively, smaller ones the reference');
});

test('Softmax float32: native vs reference (row lengths, large and -Inf logits, NaN/+Inf rows, opset 11 coercion)', { skip }, () => {
  const r = rng(22);
  let expected = 0;
  const calls = countingCalls(['softmaxF32'], (isa) => {
    const cases: { shape: number[]; opset: number; axis?: number; native: boolean }[] = [
      { shape: [1], opset: 13, native: true }, { shape: [3, 7], opset: 13, native: true }, { shape: [2, 12, 16, 17], opset: 13, native: true },
      { shape: [4, 128], opset: 13, native: true }, { shape: [2, 1000], opset: 13, axis: 1, native: true },
      { shape: [2, 3, 4, 5], opset: 11, axis: 1, native: true }, { shape: [6, 9], opset: 11, native: true },
      { shape: [3, 4, 5], opset: 13, axis: 1, native: false },  // not the last axis: the reference
    ];
    for (const c of cases) {
      const n = c.shape.reduce((x, y) => x * y, 1);
      const v = floats(r, n, 23).map((x) => x * 30);
      const row = c.shape[c.shape.length - 1]!;
      if (n >= 4 * row && row > 2) {
        v[0] = -Infinity;        // row 0: one -Inf logit (probability 0)
        v[row + 1] = NaN;        // row 1: NaN everywhere
        v[2 * row] = Infinity;   // row 2: +Inf - +Inf = NaN, as in the reference
        v[3 * row] = 87; v[3 * row + 1] = -87;  // row 3: a wide range
      }
      const X = Tensor.from('float32', c.shape, v);
      const attrs = c.axis === undefined ? {} : { axis: c.axis };
      const { got, want } = both(node('Softmax', '', ['x'], attrs), [X], [false], c.opset);
      assert.deepEqual(got.shape, want.shape);
      const g = got.data as Float32Array, w = want.data as Float32Array;
      for (let i = 0; i < n; i++) {
        if (Number.isNaN(w[i]!)) { assert.ok(Number.isNaN(g[i]!), `${isa} Softmax ${c.shape} element ${i} should be NaN`); continue; }
        // exp in double like the reference: the float32 results agree to the last bit but for rare
        // double-rounding cases (a float32 exp, 2e-7 off, reordered an SSD detector's tied boxes)
        assert.ok(Math.abs(g[i]! - w[i]!) <= 6e-8 * w[i]! + 1e-30, `${isa} Softmax ${c.shape} opset ${c.opset} element ${i}: ${g[i]} vs ${w[i]}`);
      }
      if (c.native) expected++;
    }
  });
  assert.equal(calls.softmaxF32, expected, 'the last-axis and opset-11 cases ran natively, the middle-axis one did not');
});

test('native kernels decline what they do not handle', { skip }, () => {
  const Wq = Tensor.from('int8', [4, 40], int8s(rng(5), 160));
  const Ws = Tensor.from('float32', [4, 1], scales(rng(6), 4));
  const fk = nativeBackend.kernels.find((k) => k.opType === 'Q8Gemm')!;
  // weight windows that do not nest with the activation windows
  const bad = node('Q8Gemm', 'q8', ['a', 'w', 's'], { weight_block: 48, act_block: 32 });
  assert.equal(fk.compile({ node: bad, consts: [undefined, Wq, Ws], opset: 1, threads: 0 }), null);
  // non-constant weights
  const ok = node('Q8Gemm', 'q8', ['a', 'w', 's'], {});
  assert.equal(fk.compile({ node: ok, consts: [undefined, undefined, Ws], opset: 1, threads: 0 }), null);
  const conv = nativeBackend.kernels.find((k) => k.opType === 'Conv')!;
  const W3 = Tensor.from('float32', [2, 2, 2, 2, 2], floats(rng(7), 32));
  assert.equal(conv.compile({ node: node('Conv', '', ['x', 'w'], {}), consts: [undefined, W3], opset: 13, threads: 0 }), null);
});

test('native addon validates its arguments', { skip }, () => {
  const n = addon!;
  const pf = n.packF32(floats(rng(8), 12), 3, 4);
  assert.throws(() => n.gemmQ8(new Float32Array(8), 2, 4, pf, 0, null, 0, 0, 0, new Float32Array(6)), /wrong kind/);
  const pq = n.packI8(int8s(rng(9), 12), scales(rng(10), 3), 3, 4, 0, 0);
  assert.throws(() => n.gemmQ8(new Float32Array(7), 2, 4, pq, 0, null, 0, 0, 0, new Float32Array(6)), /too short/);
  assert.throws(() => n.gemmQ8(new Float32Array(8), 2, 4, pq, 32, null, 0, 0, 0, new Float32Array(6)), /actBlock/);
  assert.throws(() => n.packI8(int8s(rng(9), 12), scales(rng(10), 3), 3, 4, 48, 32), /nest/);
});

test('thread counts give the same results', { skip }, () => {
  const n = addon!;
  const r = rng(11);
  const before = n.info().threads;
  const M = 50, K = 130, N = 70;
  const A = floats(r, M * K, K), W = int8s(r, N * K), S = scales(r, N);
  // A small image: two pixel panels (81 = 48 + 33).
  const X = floats(r, 40 * 9 * 9, 9), Wc = int8s(r, 24 * 40 * 9), Sc = scales(r, 24);
  const geo = Int32Array.from([1, 40, 9, 9, 3, 3, 1, 1, 1, 1, 1, 1, 9, 9]);
  // 7x7 maps. 1x1 int8 with >= 256 output channels per group and fewer than 2 pixel panels per
  // thread: panels packed once, then chunks of output channels over the threads (34 blocks of 8;
  // 2 groups, which only 3 threads split; in place over a residual, with Relu). 3x3 int8 and fp32:
  // pixel rows, whose copies around the GEMM (input and output transposes, patch rows) are split
  // over the threads when large enough.
  const [C1, M1] = [96, 268], x1 = floats(r, 2 * C1 * 49, 7), w1 = int8s(r, 2 * M1 * C1), s1 = scales(r, 2 * M1);
  const g1 = Int32Array.from([1, C1, 7, 7, 1, 1, 1, 1, 1, 1, 0, 0, 7, 7]), res1 = floats(r, M1 * 49, 7);
  const g2 = Int32Array.from([1, 2 * C1, 7, 7, 1, 1, 1, 1, 1, 1, 0, 0, 7, 7]), res2 = floats(r, 2 * M1 * 49, 7);
  const [C3, M3] = [520, 264], x3 = floats(r, C3 * 49, 7), w3 = int8s(r, M3 * C3 * 9), s3 = scales(r, M3), wf3 = floats(r, M3 * C3 * 9);
  const g3 = Int32Array.from([1, C3, 7, 7, 3, 3, 1, 1, 1, 1, 1, 1, 7, 7]);
  // Depthwise (int8 and fp32), items of planes and row chunks over the threads: 3x3 stride 1 and 2
  // read X directly; 5x5 goes through the row buffer; dilation 2 is the generic path.
  const dws = [[20, 17, 15, 3, 1, 1, 1], [12, 23, 30, 3, 2, 1, 1], [9, 40, 21, 5, 1, 1, 2], [6, 13, 19, 3, 1, 2, 2]].map(([C, H, W, k, s, d, p]) => {
    const OH = Math.floor((H! + 2 * p! - d! * (k! - 1) - 1) / s!) + 1, OW = Math.floor((W! + 2 * p! - d! * (k! - 1) - 1) / s!) + 1;
    const K = k! * k!;
    return { x: floats(r, C! * H! * W!, W!), geo: Int32Array.from([1, C!, H!, W!, k!, k!, s!, s!, d!, d!, p!, p!, OH, OW]), n: C! * OH * OW,
      pq: () => n.packConvI8(int8s(rng(C!), C! * K), scales(rng(H!), C!), C!, K, C!, 0, 0, K), pf: () => n.packConvF32(floats(rng(W!), C! * K), C!, K, C!, K) };
  });
  const outs: Float32Array[][] = [];
  try {
    for (const t of [1, 2, 3]) {
      n.setThreads(t);
      assert.equal(n.info().threads, t);
      const out = new Float32Array(M * N);
      n.gemmQ8(A, M, K, n.packI8(W, S, N, K, 0, 0), 0, null, 0, 0, 0, out);
      const cout = new Float32Array(24 * 81);
      n.convQ8(X, geo, n.packConvI8(Wc, Sc, 24, 360, 1, 0, 0, 9), null, 0, 0, 0, cout);
      const o1 = res1.slice(), o2 = res2.slice();
      n.convQ8(x1, g1, n.packConvI8(w1.subarray(0, M1 * C1), s1.subarray(0, M1), M1, C1, 1, 0, 0, 1), null, 1, 0, 0, o1, o1);
      n.convQ8(x1, g2, n.packConvI8(w1, s1, 2 * M1, C1, 2, 0, 0, 1), null, 1, 0, 0, o2, o2);
      const o3 = new Float32Array(M3 * 49), f3 = new Float32Array(M3 * 49);
      n.convQ8(x3, g3, n.packConvI8(w3, s3, M3, C3 * 9, 1, 0, 0, 9), null, 0, 0, 0, o3);
      n.convF32(x3, g3, n.packConvF32(wf3, M3, C3 * 9, 1, 9), null, 0, 0, 0, f3);
      const dw = dws.flatMap((d) => {
        const q = new Float32Array(d.n), f = new Float32Array(d.n);
        n.convQ8(d.x, d.geo, d.pq(), null, 0, 0, 0, q);
        n.convF32(d.x, d.geo, d.pf(), null, 0, 0, 0, f);
        return [q, f];
      });
      outs.push([out, cout, o1, o2, o3, f3, ...dw]);
    }
  } finally {
    n.setThreads(before);
  }
  for (const o of outs[0]) assert.ok(o.some((v) => v !== 0) && o.every(Number.isFinite));
  assert.notDeepEqual(outs[0]![2], res1);
  assert.notDeepEqual(outs[0]![3], res2);
  for (const t of [1, 2]) outs[t]!.forEach((o, i) => assert.deepEqual(o, outs[0]![i], `threads ${t + 1}, case ${i}`));
});

test('weights packed on first use for small maps are counted (V8 external memory, info().packedBytes)', { skip }, () => {
  const n = addon!;
  const r = rng(12);
  // 7x7 maps run as a GEMM over pixel rows, whose weight copy is built on the first call
  const C = 256, M = 384, K = C * 9;
  const X = floats(r, C * 49, 49), out = new Float32Array(M * 49);
  const geo = Int32Array.from([1, C, 7, 7, 3, 3, 1, 1, 1, 1, 1, 1, 7, 7]);
  const cases: [string, () => unknown, (p: unknown) => void, number][] = [
    ['fp32', () => n.packConvF32(floats(r, M * K), M, K, 1, 9), (p) => n.convF32(X, geo, p as never, null, 0, 0, 0, out), M * K * 4],
    ['int8', () => n.packConvI8(int8s(r, M * K), scales(r, M), M, K, 1, 0, 0, 9), (p) => n.convQ8(X, geo, p as never, null, 0, 0, 0, out), M * K],
  ];
  for (const [what, pack, run, bytes] of cases) {
    const p = pack();
    // V8 does not show napi_adjust_external_memory in process.memoryUsage(); the addon's own count
    // is what it reports
    const e0 = n.info().packedBytes;
    run(p);
    const e1 = n.info().packedBytes;
    run(p);
    const e2 = n.info().packedBytes;
    assert.ok(e1 - e0 >= bytes, `${what}: packed bytes grew by ${e1 - e0} on the first call, want >= ${bytes}`);
    assert.equal(e2, e1, `${what}: and not again on the second call`);
  }
});

test('convQ8Phase (bench/gemm.ts): the pack phase then the GEMM phase make the whole conv', { skip }, () => {
  const n = addon!;
  const r = rng(13);
  const before = n.info().threads;
  // one panel of 48 pixels, one thread: the GEMM phase reads the panel the pack phase left
  const C = 8, M = 16, H = 6, W = 8;
  const X = floats(r, C * H * W, W), Wq = int8s(r, M * C), S = scales(r, M);
  const geo = Int32Array.from([1, C, H, W, 1, 1, 1, 1, 1, 1, 0, 0, H, W]);
  const p = n.packConvI8(Wq, S, M, C, 1, 0, 0, 1);
  const whole = new Float32Array(M * H * W), phased = new Float32Array(M * H * W);
  try {
    n.setThreads(1);
    n.convQ8(X, geo, p, null, 0, 0, 0, whole);
    n.convQ8Phase!(X, geo, p, 1, phased);
    n.convQ8Phase!(X, geo, p, 2, phased);
  } finally {
    n.setThreads(before);
  }
  assert.deepEqual(phased, whole);
  assert.throws(() => n.convQ8Phase!(X, geo, p, 3 as never, phased), /phase is 1/);
});

test('the addon loads and runs inside a worker thread', { skip }, async () => {
  const url = new URL('../../src/kernels/native/index.js', import.meta.url).href;
  const code = `
    const { parentPort } = require('node:worker_threads');
    import(${JSON.stringify(url)}).then((m) => {
      const n = m.nativeAddon();
      const W = new Int8Array(64 * 3).map((_, i) => ((i * 37) % 255) - 127);
      const A = new Float32Array(2 * 64).map((_, i) => Math.sin(i));
      const out = new Float32Array(2 * 3);
      n.gemmQ8(A, 2, 64, n.packI8(W, new Float32Array([0.01, 0.02, 0.03]), 3, 64, 0, 0), 0, null, 0, 0, 0, out);
      parentPort.postMessage(Array.from(out));
    }).catch((e) => parentPort.postMessage(String(e)));`;
  const fromWorker = await new Promise<unknown>((resolve, reject) => {
    const w = new Worker(code, { eval: true });
    w.once('message', (m) => { resolve(m); void w.terminate(); });
    w.once('error', reject);
  });
  const n = addon!;
  const W = new Int8Array(64 * 3).map((_, i) => ((i * 37) % 255) - 127);
  const A = new Float32Array(2 * 64).map((_, i) => Math.sin(i));
  const out = new Float32Array(2 * 3);
  n.gemmQ8(A, 2, 64, n.packI8(W, new Float32Array([0.01, 0.02, 0.03]), 3, 64, 0, 0), 0, null, 0, 0, 0, out);
  assert.deepEqual(fromWorker, Array.from(out));
});

// ---------------------------------------------------------------------------------------------
// Whole models through Session: native backend vs the reference backend, fp32 and int8.

import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { loadGraph } from '../../src/api.js';
import { quantizeModel } from '../../src/quant/quantize.js';
import { Session } from '../../src/runtime/session.js';

const MODELS = ['fashion-vgg', 'fashion-resnet', 'fashion-mobilenet', 'fashion-mlp']
  .map((m) => fileURLToPath(new URL(`../../../models/${m}.onnx`, import.meta.url)))
  .filter((p) => existsSync(p));

test('models run on the native backend like on the reference backend (fp32 and int8 windows)', { skip: skip || (MODELS.length ? false : 'models/ not found') }, () => {
  const r = rng(12);
  for (const path of MODELS) {
    for (const q of [null, { weightWindow: 'channel', activationWindow: 'row' }, { weightWindow: 64, activationWindow: 32 }] as const) {
      const mk = () => {
        const m = loadGraph(path);
        return q ? quantizeModel(m, q as Parameters<typeof quantizeModel>[1]).model : m;
      };
      const nat = Session.create(mk(), { backend: 'native' });
      const ref = Session.create(mk(), { backend: 'ref' });
      const inp = nat.inputs[0]!;
      const shape = (inp.shape ?? []).map((d) => (typeof d === 'number' && d > 0 ? d : 2));
      const x = Tensor.from('float32', shape, floats(r, shape.reduce((a, b) => a * b, 1)).map(Math.abs));
      const got = nat.runSync({ [inp.name]: x }), want = ref.runSync({ [inp.name]: x });
      assert.ok(nat.kernelSummary.fast > 0, `${path}: no node ran a native kernel`);
      if (q) assert.ok(nat.model.graph.nodes.some((n) => n.domain === 'q8' && n.opType.startsWith('Q8')), `${path}: quantized model has no q8 nodes`);
      for (const o of nat.outputs) {
        close(got[o.name]!, want[o.name]!, q ? 1e-4 : 1e-3, `${path} ${q ? JSON.stringify(q) : 'fp32'} output ${o.name}`, q ? 1e-5 : 1e-4);
      }
    }
  }
});
