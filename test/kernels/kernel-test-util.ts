/**
 * Scaffolding shared by the kernel backend tests (native.test.ts, wasm.test.ts): seeded random data,
 * node construction, compiling a node on a backend and running it next to the reference kernel, a
 * tolerance comparison, and the Conv cases both backends are checked on.
 */
import assert from 'node:assert/strict';
import type { Node } from '../../src/graph/ir.js';
import type { Backend } from '../../src/kernels/registry.js';
import '../../src/ops/index.js';
import { getOp, type OpSchema } from '../../src/ops/registry.js';
import { Q8_OPS } from '../../src/quant/kernels.js';
import { attrsFrom, makeContext, type Allocator } from '../../src/runtime/invoke.js';
import type { KernelContext } from '../../src/ops/registry.js';
import type { DType } from '../../src/core/dtype.js';
import { Tensor } from '../../src/tensor/tensor.js';

export { rng } from '../rng.js';

/** Random floats whose magnitude changes every `row` values (so windows get different scales), some stretches zero. */
export function floats(r: () => number, n: number, row = 0, zeroRows = false): Float32Array {
  const a = new Float32Array(n);
  let mag = 1;
  for (let i = 0; i < n; i++) {
    if (row && i % row === 0) mag = zeroRows && r() < 0.15 ? 0 : Math.exp(4 * r() - 2);
    a[i] = (2 * r() - 1) * mag;
  }
  return a;
}
export function int8s(r: () => number, n: number): Int8Array {
  const a = new Int8Array(n);
  for (let i = 0; i < n; i++) a[i] = Math.floor(r() * 255) - 127;
  return a;
}
export function scales(r: () => number, n: number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = 0.001 + 0.02 * r();
  return a;
}

export function node(opType: string, domain: string, inputs: string[], attrs: Record<string, unknown>): Node {
  return { name: `${opType}_t`, opType, domain, inputs, outputs: ['y'], attrs: attrsFrom(attrs) };
}

function refSchema(opType: string, domain: string): OpSchema {
  const s = (domain === 'q8' ? Q8_OPS.find((o) => o.opType === opType) : undefined) ?? getOp(domain, opType);
  assert.ok(s, `reference kernel ${domain}::${opType} missing`);
  return s;
}

/**
 * A context whose allocOutput hands out buffers full of 0xff bytes (NaN as float32), as a reused
 * pool buffer would hold stale data: a fast kernel that leaves an element unwritten shows up as a
 * NaN where the reference has a number.
 */
const poisonAllocator: Allocator = {
  alloc: (dtype, shape) => Tensor.zeros(dtype, shape),
  allocOutput: (dtype: DType, shape) => {
    const t = Tensor.zeros(dtype, shape);
    const d = t.data;
    if (ArrayBuffer.isView(d)) new Uint8Array(d.buffer, d.byteOffset, d.byteLength).fill(0xff);
    return t;
  },
};
export function poisonedContext(n: Node, opset: number): KernelContext {
  return makeContext(n, opset, poisonAllocator);
}

export type Both = (n: Node, inputs: (Tensor | undefined)[], constMask: boolean[], opset?: number) => { got: Tensor; want: Tensor };

/** Compile with `backend` (inputs in constMask as constants) and run; also run the reference. */
export function againstReference(backend: Backend): Both {
  return (n, inputs, constMask, opset = 13) => {
    const fk = backend.kernels.find((k) => k.opType === n.opType && (k.domain ?? '') === n.domain);
    assert.ok(fk, `no ${backend.name} kernel for ${n.opType}`);
    const consts = inputs.map((t, i) => (constMask[i] ? t : undefined));
    const k = fk.compile({ node: n, consts, opset, threads: 0 });
    assert.ok(k, `${backend.name} ${n.opType} declined ${JSON.stringify(n.attrs)}`);
    const got = k(inputs, poisonedContext(n, opset))[0]!;
    const want = refSchema(n.opType, n.domain).run(inputs, makeContext(n, opset))[0]!;
    return { got, want };
  };
}

/** |got - want| <= rel*|want| + abs*max|want| (abs covers float32 cancellation in long sums). */
export function close(got: Tensor, want: Tensor, rel: number, what: string, abs = rel * 1e-3): void {
  assert.deepEqual(got.shape, want.shape, `${what}: shape`);
  const g = got.data as Float32Array, w = want.data as Float32Array;
  let amax = 0;
  for (let i = 0; i < w.length; i++) amax = Math.max(amax, Math.abs(w[i]!));
  for (let i = 0; i < w.length; i++) {
    const tol = rel * Math.abs(w[i]!) + abs * amax + 1e-30;
    if (!(Math.abs(g[i]! - w[i]!) <= tol)) assert.fail(`${what}: element ${i} is ${g[i]}, reference ${w[i]} (tol ${tol})`);
  }
}

export const ACTS = [{}, { activation: 'Relu' }, { activation: 'Clip', clip_min: -0.3, clip_max: 0.5 }];

export interface ConvCase {
  B: number; C: number; H: number; W: number; M: number; group: number; k: [number, number];
  strides?: number[]; dilations?: number[]; pads?: number[]; auto_pad?: string; oneD?: boolean;
}

export const CONV_CASES: ConvCase[] = [
  { B: 1, C: 16, H: 13, W: 11, M: 20, group: 1, k: [3, 3], pads: [1, 1, 1, 1] },
  { B: 2, C: 12, H: 9, W: 30, M: 9, group: 3, k: [3, 2], strides: [2, 1], dilations: [1, 2], pads: [0, 1, 1, 0] },
  { B: 1, C: 10, H: 7, W: 7, M: 10, group: 10, k: [3, 3], pads: [1, 1, 1, 1] },
  { B: 1, C: 8, H: 17, W: 19, M: 8, group: 8, k: [5, 5], strides: [2, 2], pads: [2, 2, 2, 2] },
  { B: 1, C: 6, H: 12, W: 12, M: 12, group: 6, k: [3, 3], pads: [1, 1, 1, 1] },  // depthwise, multiplier 2
  { B: 1, C: 40, H: 20, W: 20, M: 33, group: 1, k: [3, 3], dilations: [2, 2], pads: [2, 2, 2, 2] },
  { B: 1, C: 3, H: 31, W: 29, M: 16, group: 1, k: [7, 7], strides: [2, 2], pads: [3, 3, 3, 3] },
  { B: 1, C: 24, H: 5, W: 6, M: 17, group: 1, k: [1, 1] },
  { B: 2, C: 32, H: 9, W: 9, M: 64, group: 1, k: [3, 3], auto_pad: 'SAME_UPPER', strides: [2, 2] },
  { B: 1, C: 7, H: 1, W: 50, M: 5, group: 1, k: [1, 4], oneD: true, pads: [2, 1], strides: [3] },
  { B: 1, C: 4, H: 2, W: 70, M: 3, group: 1, k: [2, 3] },
  // more than one 1024-pixel block of the native channel-max pass, with a ragged tail, per (image, group)
  { B: 2, C: 6, H: 33, W: 40, M: 8, group: 2, k: [3, 3], pads: [1, 1, 1, 1] },
  // 32x64 planes are 8 KB apart (the native packs then go in smaller channel blocks); 36 channels
  // split into ragged blocks, and the fp32 K chunks cut through taps
  { B: 1, C: 36, H: 32, W: 64, M: 10, group: 1, k: [3, 3], pads: [1, 1, 1, 1] },
  // stride 2 on a map wide enough that most vectors lie in one or two output rows (the packs' hoisted
  // stride-2 path), and over 100 output pixels (the fp32 conv kernel, not pixel rows)
  { B: 1, C: 8, H: 70, W: 67, M: 12, group: 1, k: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] },
  // K = 8300: the native fp32 conv runs two K chunks, keeping partial sums in the output between them
  { B: 1, C: 8300, H: 9, W: 10, M: 12, group: 1, k: [1, 1] },
];

export function convTensors(c: ConvCase, r: () => number, q8: boolean, wb: number) {
  const Cg = c.C / c.group, K = Cg * c.k[0] * c.k[1];
  const xShape = c.oneD ? [c.B, c.C, c.W] : [c.B, c.C, c.H, c.W];
  const wShape = c.oneD ? [c.M, Cg, c.k[1]] : [c.M, Cg, c.k[0], c.k[1]];
  const X = Tensor.from('float32', xShape, floats(r, xShape.reduce((a, b) => a * b, 1), c.W));
  const nwb = wb ? Math.ceil(K / wb) : 1;
  const W = q8 ? Tensor.from('int8', wShape, int8s(r, c.M * K)) : Tensor.from('float32', wShape, floats(r, c.M * K));
  const Ws = Tensor.from('float32', wb ? [c.M, nwb] : [c.M], scales(r, c.M * nwb));
  const bias = r() < 0.7 ? Tensor.from('float32', [c.M], floats(r, c.M)) : undefined;
  const attrs: Record<string, unknown> = { group: c.group, kernel_shape: c.oneD ? [c.k[1]] : c.k };
  if (c.strides) attrs['strides'] = c.strides;
  if (c.dilations) attrs['dilations'] = c.dilations;
  if (c.pads) attrs['pads'] = c.pads;
  if (c.auto_pad) attrs['auto_pad'] = c.auto_pad;
  return { X, W, Ws, bias, attrs, K };
}

export interface Case { n: Node; inputs: (Tensor | undefined)[]; constMask: boolean[]; what: string }

/** Q8Gemm on A [M, K] (batched [1, M, K] when M is even) with windows wb/ab, int8 W [N, K] and bias in ~70% of cases. */
export function q8GemmCase(r: () => number, M: number, K: number, N: number, wb: number, ab: number): Case {
  const nwb = wb ? Math.ceil(K / wb) : 1;
  const A = Tensor.from('float32', M % 2 ? [M, K] : [1, M, K], floats(r, M * K, ab || K, true));
  const Wq = Tensor.from('int8', [N, K], int8s(r, N * K));
  const Ws = Tensor.from('float32', wb ? [N, nwb] : [N], scales(r, N * nwb));
  const bias = r() < 0.7 ? Tensor.from('float32', [N], floats(r, N)) : undefined;
  const act = ACTS[(M + K + N + wb) % 3]!;
  const n = node('Q8Gemm', 'q8', ['a', 'w', 's', bias ? 'b' : ''], { weight_block: wb, act_block: ab, ...act });
  return { n, inputs: [A, Wq, Ws, bias], constMask: [false, true, true, true], what: `Q8Gemm M=${M} K=${K} N=${N} wb=${wb} ab=${ab} ${JSON.stringify(act)}` };
}

/** Q8Conv for conv case `ci` with windows wb/ab; K is the patch length C/group·kh·kw. */
export function q8ConvCase(c: ConvCase, ci: number, r: () => number, wb: number, ab: number, tap = false): Case & { K: number } {
  const { X, W, Ws, bias, attrs, K } = convTensors(c, r, true, wb);
  const act = ACTS[(ci + wb + ab) % 3]!;
  const n = node('Q8Conv', 'q8', ['x', 'w', 's', bias ? 'b' : ''], { ...attrs, weight_block: wb, act_block: ab, ...(tap ? { act_tap: 1 } : {}), ...act });
  return { n, inputs: [X, W, Ws, bias], constMask: [false, true, true, true], what: `Q8Conv case ${ci} wb=${wb} ab=${ab}${tap ? ' tap' : ''} ${JSON.stringify(act)}`, K };
}

/** Float32 Conv on every case, within float32 summation-order tolerance; `label` prefixes failure messages. */
export function checkConvF32(both: Both, r: () => number, cases: readonly ConvCase[], label = ''): void {
  cases.forEach((c, ci) => {
    const { X, W, bias, attrs } = convTensors(c, r, false, 0);
    const n = node('Conv', '', ['x', 'w', bias ? 'b' : ''], attrs);
    const { got, want } = both(n, [X, W, bias], [false, true, true]);
    close(got, want, 1e-4, `${label}Conv case ${ci}`, 1e-5);
  });
}

/**
 * Float32 Gemm over transA/transB, alpha/beta and C as none/[1, N]/[N]/scalar (what the backends fold at
 * compile time), then MatMul with a batched A when M is even, for each [M, K, N].
 */
export function checkGemmAndMatMul(both: Both, r: () => number, shapes: readonly [number, number, number][], label = ''): void {
  for (const [M, K, N] of shapes) {
    for (const [transA, transB, alpha, beta, cKind] of [
      [0, 0, 1, 1, 'none'], [0, 1, 1, 1, 'row'], [1, 0, 0.5, 2, 'vec'], [1, 1, -1.5, 0.25, 'scalar'], [0, 1, 2, 0, 'vec'],
    ] as [number, number, number, number, string][]) {
      const A = Tensor.from('float32', transA ? [K, M] : [M, K], floats(r, M * K));
      const B = Tensor.from('float32', transB ? [N, K] : [K, N], floats(r, N * K));
      const C = cKind === 'none' ? undefined
        : Tensor.from('float32', cKind === 'row' ? [1, N] : cKind === 'vec' ? [N] : [], floats(r, cKind === 'scalar' ? 1 : N));
      const n = node('Gemm', '', ['a', 'b', C ? 'c' : ''], { transA, transB, alpha, beta });
      const { got, want } = both(n, [A, B, C], [false, true, true]);
      close(got, want, 1e-4, `${label}Gemm M=${M} K=${K} N=${N} tA=${transA} tB=${transB} alpha=${alpha} beta=${beta} C=${cKind}`, 1e-5);
    }
    const shapeA = M % 2 ? [M, K] : [2, M, K];
    const A = Tensor.from('float32', shapeA, floats(r, shapeA.reduce((a, b) => a * b, 1)));
    const B = Tensor.from('float32', [K, N], floats(r, K * N));
    const { got, want } = both(node('MatMul', '', ['a', 'b'], {}), [A, B], [false, true]);
    close(got, want, 1e-4, `${label}MatMul ${JSON.stringify(shapeA)} x [${K},${N}]`, 1e-5);
  }
}

/**
 * Conv (as q8.ConvAct) and Q8Conv with a fused residual join, Y = act(conv(X) + Z), compiled on
 * `backend` for every case: apart from Z (Z must come out unchanged) and in place over Z (the
 * context lets the kernel consume Z), both against the reference and bit for bit against each
 * other. `inPlace`: whether the backend writes over a consumable Z.
 */
export function checkResidualConvs(backend: Backend, r: () => number, cases: readonly ConvCase[], inPlace: boolean, label = ''): void {
  const run = (n: Node, inputs: (Tensor | undefined)[], consts: boolean[], what: string, tol: number) => {
    const fk = backend.kernels.find((k) => k.opType === n.opType && (k.domain ?? '') === n.domain)!;
    const compile = (m: Node) => fk.compile({ node: m, consts: inputs.map((t, i) => (consts[i] ? t : undefined)), opset: 13, threads: 0 });
    const k = compile(n);
    if (!k) {
      // only where the backend declines the same conv without the join
      const { residual: _, ...plain } = n.attrs;
      assert.equal(compile({ ...n, inputs: n.inputs.slice(0, -1), attrs: plain }), null, `${backend.name} declined ${what}`);
      return;
    }
    const Z = inputs[inputs.length - 1]!;
    const z0 = (Z.data as Float32Array).slice();
    const apart = k(inputs, poisonedContext(n, 13))[0]!;
    assert.deepEqual(Z.data, z0, `${what}: the residual is left as it was`);
    const want = refSchema(n.opType, n.domain).run(inputs, makeContext(n, 13))[0]!;
    // The conv's rounding error scales with the conv's own output y (as in the plain conv tests),
    // which the join and the activation can cancel or clip away.
    const { residual: _r, activation: _a, clip_min: _l, clip_max: _h, ...convAttrs } = n.attrs;
    const plain = { ...n, inputs: n.inputs.slice(0, -1), attrs: convAttrs };
    const y = refSchema(n.opType, n.domain).run(inputs.slice(0, -1), makeContext(plain, 13))[0]!.data as Float32Array;
    let ymax = 0;
    for (const v of y) ymax = Math.max(ymax, Math.abs(v));
    const g = apart.data as Float32Array, w = want.data as Float32Array;
    assert.deepEqual(apart.shape, want.shape, `${what}: shape`);
    for (let i = 0; i < w.length; i++) {
      const t = tol * (Math.abs(y[i]!) + Math.abs(z0[i]!)) + 0.1 * tol * ymax + 1e-30;
      if (!(Math.abs(g[i]! - w[i]!) <= t)) assert.fail(`${what}: element ${i} is ${g[i]}, reference ${w[i]} (tol ${t})`);
    }
    const Zc = Tensor.from('float32', Z.shape, z0);
    const ctx = poisonedContext(n, 13);
    ctx.consumable = (t) => t === Zc;
    const inplace = k([...inputs.slice(0, -1), Zc], ctx)[0]!;
    assert.equal(inplace.data === Zc.data, inPlace, `${what}: output ${inPlace ? '' : 'not '}in the residual's memory`);
    assert.deepEqual(inplace.data, apart.data, `${what}: in place = apart`);
  };
  cases.forEach((c, ci) => {
    const act = ACTS[ci % 3]!;
    const { X, W, bias, attrs } = convTensors(c, r, false, 0);
    const shape = refSchema('Conv', '').run([X, W, bias], makeContext(node('Conv', '', ['x', 'w', bias ? 'b' : ''], attrs), 13))[0]!.shape;
    const Z = Tensor.from('float32', shape, floats(r, shape.reduce((a, b) => a * b, 1)));
    const nf = node('ConvAct', 'q8', ['x', 'w', bias ? 'b' : '', 'z'], { ...attrs, ...act, activation: act.activation ?? '', residual: 3 });
    run(nf, [X, W, bias, Z], [false, true, true, false], `${label}ConvAct+residual case ${ci} ${JSON.stringify(act)}`, 1e-4);
    if (c.C > 1000) return;  // the fp32 K-chunk case
    for (const [wb, ab, tap] of [[0, 0, false], [32, 0, false], [0, 8, false], [0, 0, true]] as const) {
      if (tap && c.group !== 1) continue;
      const q = convTensors(c, r, true, wb);
      const nq = node('Q8Conv', 'q8', ['x', 'w', 's', q.bias ? 'b' : '', 'z'], { ...q.attrs, weight_block: wb, act_block: ab, ...(tap ? { act_tap: 1 } : {}), ...act, residual: 4 });
      run(nq, [q.X, q.W, q.Ws, q.bias, Z], [false, true, true, true, false], `${label}Q8Conv+residual case ${ci} wb=${wb} ab=${ab}${tap ? ' tap' : ''} ${JSON.stringify(act)}`, 1e-5);
    }
  });
}
