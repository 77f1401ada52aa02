#!/usr/bin/env node
// Throughput of the wasm kernels vs the TypeScript reference on one GEMM shape (default the conv-shaped
// M=3136, N=64, K=576): fp32 GFLOP/s and int8 GOP/s (whole pipeline: quantize + multiply + dequantize).
// Usage (after npm run build and node wasm/build.mjs): node wasm/bench.mjs [M N K] [--windows wb,ab]
import { wasmBackend, wasmKernels, wasmLoadError } from '../dist/src/kernels/wasm/index.js';
import { gemmF32Ref } from '../dist/src/kernels/ref/gemm.js';
import { Q8_OPS } from '../dist/src/quant/kernels.js';
import { attrsFrom, makeContext } from '../dist/src/runtime/invoke.js';
import { Tensor } from '../dist/src/tensor/tensor.js';

const args = process.argv.slice(2);
const wi = args.indexOf('--windows');
const [wb, ab] = wi >= 0 ? args.splice(wi, 2)[1].split(',').map(Number) : [0, 0];
const [M, N, K] = args.length >= 3 ? args.slice(0, 3).map(Number) : [3136, 64, 576];
if (!wasmKernels()) { console.log(`wasm kernels unavailable: ${wasmLoadError}`); process.exit(1); }

let seed = 1;
const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32) * 2 - 1;
const A = Float32Array.from({ length: M * K }, rnd);
const W = Float32Array.from({ length: N * K }, rnd);
const Wq = Int8Array.from({ length: N * K }, () => Math.round(rnd() * 127));
const nwb = wb ? Math.ceil(K / wb) : 1;
const Ws = Float32Array.from({ length: N * nwb }, () => 0.01 + 0.01 * Math.abs(rnd()));

// Median of the process's CPU time per call (user + system): on a shared, loaded machine wall time
// also counts the time other processes hold the core; single-threaded kernels use CPU time 1:1.
const cpu = () => { const u = process.cpuUsage(); return (u.user + u.system) / 1e6; };
function time(fn, minMs = 600) {
  fn();
  const ts = [];
  const t0 = performance.now();
  while (performance.now() - t0 < minMs || ts.length < 5) {
    const s = cpu();
    fn();
    ts.push(cpu() - s);
  }
  ts.sort((a, b) => a - b);
  return ts[ts.length >> 1];
}

const ops = 2 * M * N * K;
const node = (opType, domain, inputs, attrs) => ({ name: 't', opType, domain, inputs, outputs: ['y'], attrs: attrsFrom(attrs) });
const compile = (n, consts) => wasmBackend.kernels.find((k) => k.opType === n.opType).compile({ node: n, consts, opset: 13, threads: 0 });

// fp32: out = A·Wᵀ
const tA = Tensor.from('float32', [M, K], A);
const gemmNode = node('Gemm', '', ['a', 'b'], { transB: 1 });
const gk = compile(gemmNode, [undefined, Tensor.from('float32', [N, K], W)]);
const ctxG = makeContext(gemmNode, 13);
const fW = time(() => gk([tA], ctxG));
const out = new Float32Array(M * N);
const fR = time(() => gemmF32Ref(M, N, K, A, K, W, K, out, N, { transB: true }));

// int8: Q8Gemm end to end
const q8Node = node('Q8Gemm', 'q8', ['a', 'w', 's'], { weight_block: wb, act_block: ab });
const wqT = Tensor.from('int8', [N, K], Wq), wsT = Tensor.from('float32', wb ? [N, nwb] : [N], Ws);
const qk = compile(q8Node, [undefined, wqT, wsT]);
const ctxQ = makeContext(q8Node, 13);
const qW = time(() => qk([tA, wqT, wsT], ctxQ));
const refQ = Q8_OPS.find((o) => o.opType === 'Q8Gemm');
const qR = time(() => refQ.run([tA, wqT, wsT], ctxQ));

const g = (s) => (ops / s / 1e9).toFixed(2);
console.log(`GEMM M=${M} N=${N} K=${K} (int8 windows weight ${wb || 'channel'}, act ${ab || 'row'}), one thread, CPU time`);
console.log(`fp32  wasm ${g(fW)} GFLOP/s (${(fW * 1e3).toFixed(2)} ms)   TS reference ${g(fR)} GFLOP/s (${(fR * 1e3).toFixed(2)} ms)   x${(fR / fW).toFixed(2)}`);
console.log(`int8  wasm ${g(qW)} GOP/s   (${(qW * 1e3).toFixed(2)} ms)   TS reference ${g(qR)} GOP/s   (${(qR * 1e3).toFixed(2)} ms)   x${(qR / qW).toFixed(2)}`);
console.log(`int8 wasm / fp32 wasm: x${(fW / qW).toFixed(2)}`);

// The same product as a 3x3 convolution (C = K/9 channels, pad 1, OH*OW = M when M is a square, N filters).
const side = Math.round(Math.sqrt(M));
if (side * side === M && K % 9 === 0) {
  const C = K / 9;
  const X = Tensor.from('float32', [1, C, side, side], Float32Array.from({ length: C * M }, rnd));
  const attrs = { kernel_shape: [3, 3], pads: [1, 1, 1, 1] };
  const convNode = node('Conv', '', ['x', 'w'], attrs);
  const ck = compile(convNode, [undefined, Tensor.from('float32', [N, C, 3, 3], W)]);
  const ctxC = makeContext(convNode, 13);
  const cW = time(() => ck([X], ctxC));
  const q8c = node('Q8Conv', 'q8', ['x', 'w', 's'], { ...attrs, weight_block: wb, act_block: ab });
  const wq4 = Tensor.from('int8', [N, C, 3, 3], Wq);
  const qck = compile(q8c, [undefined, wq4, wsT]);
  const ctxQC = makeContext(q8c, 13);
  const qcW = time(() => qck([X, wq4, wsT], ctxQC));
  const refC = Q8_OPS.find((o) => o.opType === 'Q8Conv');
  const qcR = time(() => refC.run([X, wq4, wsT], ctxQC));
  console.log(`as Conv 3x3 ${C}->${N} on ${side}x${side}: fp32 wasm ${g(cW)} GFLOP/s (${(cW * 1e3).toFixed(2)} ms); ` +
    `int8 wasm ${g(qcW)} GOP/s (${(qcW * 1e3).toFixed(2)} ms), TS reference ${g(qcR)} GOP/s, x${(qcR / qcW).toFixed(2)}`);
}
