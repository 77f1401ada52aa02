/**
 * Micro-benchmark of the native kernels (not a test): GOP/s of int8 GEMM end to end (quantize +
 * pack + multiply + dequantize, the way Q8Gemm/Q8Conv run) and of fp32 GEMM, at 1 and 2 threads,
 * against the measured peak of a register-only vpdpbusd (or FMA) loop on this machine. For the
 * int8 conv kernel it also times each phase alone at 1 thread (the pack: channel max, im2col and
 * quantization; the GEMM: dot products, dequantization, store), which shows where the end-to-end
 * time goes.
 *
 *   node dist/bench/gemm.js [--iterations N] [--json]
 *
 * The machine may be shared: each figure is the best of N runs. Single-thread figures and the peak
 * use the process CPU time (immune to being descheduled by other jobs); multi-thread figures use
 * wall time (the only honest measure of scaling), so they suffer when other jobs share the cores.
 */
import { nativeAddon, nativeLoadError, type NativeAddon } from '../src/kernels/native/index.js';

const args = process.argv.slice(2);
const iters = Number(args[args.indexOf('--iterations') + 1]) || 15;
const json = args.includes('--json');

function rand(n: number, seed: number): Float32Array {
  const a = new Float32Array(n);
  let s = seed;
  for (let i = 0; i < n; i++) { s = (s * 1103515245 + 12345) >>> 0; a[i] = (s / 4294967296) * 2 - 1; }
  return a;
}
function randI8(n: number, seed: number): Int8Array {
  const f = rand(n, seed);
  return Int8Array.from(f, (v) => Math.round(v * 127));
}

let threadsNow = 1;

/** Best of n runs: CPU seconds when single-threaded, wall seconds otherwise. */
function best(fn: () => void, n = iters): number {
  fn(); fn();
  let b = Infinity;
  for (let i = 0; i < n; i++) {
    const c = process.cpuUsage();
    const t = process.hrtime.bigint();
    fn();
    const wall = Number(process.hrtime.bigint() - t) / 1e9;
    const u = process.cpuUsage(c);
    const cpu = (u.user + u.system) / 1e6;
    b = Math.min(b, threadsNow === 1 ? Math.max(cpu, 1e-6) : wall);
  }
  return b;
}

/** Peak GOP/s of one core (CPU time of a register-only loop). */
function peak(a: NativeAddon, kind: 'int8' | 'f32'): number {
  let b = 0;
  for (let i = 0; i < 5; i++) {
    const c = process.cpuUsage();
    const r = a.peak(kind, 4e6);
    const u = process.cpuUsage(c);
    b = Math.max(b, r.ops / ((u.user + u.system) / 1e6) / 1e9);
  }
  return b;
}

interface Row { kernel: string; shape: string; threads: number; gops: number; peak1: number; pct: number; note?: string }

function main(): void {
  const a = nativeAddon();
  if (!a) { console.log(`native addon unavailable: ${nativeLoadError}`); return; }
  const info = a.info();
  const rows: Row[] = [];
  const gemmShapes: [number, number, number, string][] = [
    [3136, 64, 576, 'conv 64x56x56 3x3 as GEMM'], [784, 128, 1152, 'conv 128x28x28 3x3'],
    [196, 512, 4608, 'conv 512x14x14 3x3'], [128, 768, 768, 'BERT 128 tokens'], [1, 4096, 4096, 'FC batch 1'],
  ];
  const convShapes: [number, number, number, number, number, string][] = [
    [64, 56, 56, 64, 3, 'Q8Conv 64->64 56x56 3x3'], [128, 28, 28, 128, 3, 'Q8Conv 128->128 28x28 3x3'],
    [512, 14, 14, 512, 3, 'Q8Conv 512->512 14x14 3x3'],
  ];
  for (const threads of [1, 2]) {
    a.setThreads(threads);
    threadsNow = threads;
    for (const [M, N, K, label] of gemmShapes) {
      const A = rand(M * K, 1), Wq = randI8(N * K, 2), Wf = rand(N * K, 3), S = rand(N, 4).map(Math.abs), out = new Float32Array(M * N);
      const pq = a.packI8(Wq, S, N, K, 0, 0), pf = a.packF32(Wf, N, K);
      const ops = 2 * M * N * K;
      const pi = peak(a, 'int8');
      const tq = best(() => a.gemmQ8(A, M, K, pq, 0, null, 0, 0, 0, out));
      const pf32 = peak(a, 'f32');
      const tf = best(() => a.gemmF32(A, M, K, pf, null, 0, 0, 0, out));
      rows.push({ kernel: 'gemmQ8 (quantize+GEMM+dequantize)', shape: `${label} M=${M} N=${N} K=${K}`, threads, gops: ops / tq / 1e9, peak1: pi, pct: (100 * ops / tq / 1e9) / pi });
      rows.push({ kernel: 'gemmF32', shape: `${label} M=${M} N=${N} K=${K}`, threads, gops: ops / tf / 1e9, peak1: pf32, pct: (100 * ops / tf / 1e9) / pf32 });
    }
    for (const [C, H, W, M, k, label] of convShapes) {
      const X = rand(C * H * W, 5), K = C * k * k, Wq = randI8(M * K, 6), Wf = rand(M * K, 7), S = rand(M, 8).map(Math.abs);
      const geo = Int32Array.from([1, C, H, W, k, k, 1, 1, 1, 1, 1, 1, H, W]);
      const out = new Float32Array(M * H * W);
      const pq = a.packConvI8(Wq, S, M, K, 1, 0, 0, k * k), pf = a.packConvF32(Wf, M, K, 1, k * k);
      const ops = 2 * H * W * M * K;
      const pi = peak(a, 'int8');
      const tq = best(() => a.convQ8(X, geo, pq, null, 1, 0, 0, out));
      // Tap windows (q8's default for such convs): the image is quantized once, panels are copies.
      const pt = a.packConvI8(Wq, S, M, K, 1, 0, 0, k * k, 1);
      const tt = best(() => a.convQ8(X, geo, pt, null, 1, 0, 0, out));
      const pf32 = peak(a, 'f32');
      const tf = best(() => a.convF32(X, geo, pf, null, 1, 0, 0, out));
      rows.push({ kernel: 'convQ8 patch windows (im2col+quantize+GEMM+dequantize)', shape: `${label} (M=${H * W} N=${M} K=${K})`, threads, gops: ops / tq / 1e9, peak1: pi, pct: (100 * ops / tq / 1e9) / pi });
      // Where the end-to-end time goes: each phase of the same kernel alone. GOP/s counts the
      // conv's operations over the phase's time; the two times add up to about the whole.
      const phase = a.convQ8Phase;
      if (phase && threads === 1) {
        const tp = best(() => phase.call(a, X, geo, pq, 1, out));
        const tg = best(() => phase.call(a, X, geo, pq, 2, out));
        const of = `${(1e6 * tp).toFixed(0)} + ${(1e6 * tg).toFixed(0)} us (whole: ${(1e6 * tq).toFixed(0)} us)`;
        rows.push({ kernel: '  its pack phase alone (channel max+im2col+quantize)', shape: `${label}`, threads, gops: 0, peak1: pi, pct: 0,
          note: `${(1e6 * tp).toFixed(0)} us = ${((100 * tp) / (tp + tg)).toFixed(0)}% of pack + GEMM, ${of}` });
        rows.push({ kernel: '  its GEMM phase alone (dot products+dequantize+store)', shape: `${label}`, threads, gops: ops / tg / 1e9, peak1: pi, pct: (100 * ops / tg / 1e9) / pi });
      }
      rows.push({ kernel: 'convQ8 tap windows (quantize once+copy+GEMM+dequantize)', shape: `${label} (M=${H * W} N=${M} K=${K})`, threads, gops: ops / tt / 1e9, peak1: pi, pct: (100 * ops / tt / 1e9) / pi });
      rows.push({ kernel: 'convF32', shape: `${label} (M=${H * W} N=${M} K=${K})`, threads, gops: ops / tf / 1e9, peak1: pf32, pct: (100 * ops / tf / 1e9) / pf32 });
    }
  }
  a.setThreads(info.threads);
  if (json) { console.log(JSON.stringify({ isa: info.isa, compiler: info.compiler, rows })); return; }
  console.log(`native ${info.isa} (${info.compiler.trim()}), best of ${iters} runs; % is of the 1-thread peak measured alongside`);
  for (const r of rows) {
    if (r.note) { console.log(`${r.kernel.padEnd(56)} ${r.shape.padEnd(48)} T=${r.threads} ${r.note}`); continue; }
    const scale = rows.find((o) => o.kernel === r.kernel && o.shape === r.shape && o.threads === 1)!;
    console.log(`${r.kernel.padEnd(56)} ${r.shape.padEnd(48)} T=${r.threads} ${r.gops.toFixed(1).padStart(7)} GOP/s  ${r.pct.toFixed(0).padStart(3)}% of peak ${r.peak1.toFixed(0)}` +
      (r.threads > 1 ? `  x${(r.gops / scale.gops).toFixed(2)} vs 1T` : ''));
  }
}

main();
