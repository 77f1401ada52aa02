import type { Command } from 'commander';
import { Q8Error } from '../core/errors.js';
import { Tensor } from '../tensor/tensor.js';
import type { Q8Model } from '../api.js';
import { intArg, loadOptions, modelOptions, type ModelFlags } from './common.js';
import { load } from '../api.js';
import { table } from './format.js';

/** Deterministic N(0,1)-ish inputs for every model input (free dims: batch for the first, 1 otherwise). */
export function syntheticFeeds(model: Q8Model, batch: number, seed = 1): Record<string, Tensor> {
  let s = seed >>> 0;
  const rand = () => { s = (s * 1664525 + 1013904223) >>> 0; return s / 2 ** 32; };
  const feeds: Record<string, Tensor> = {};
  for (const inp of model.inputs) {
    const shape = (inp.shape ?? []).map((d, i) => (typeof d === 'number' && d > 0 ? d : i === 0 ? batch : 1));
    if (typeof inp.shape?.[0] === 'number' && batch !== 1 && inp.shape[0] === 1) shape[0] = batch;
    const t = Tensor.zeros(inp.dtype ?? 'float32', shape);
    if (t.dtype === 'float32') {
      const d = t.data as Float32Array;
      for (let i = 0; i < d.length; i += 2) {
        const u = Math.max(rand(), 1e-12), v = rand();
        const r = Math.sqrt(-2 * Math.log(u));
        d[i] = r * Math.cos(2 * Math.PI * v);
        if (i + 1 < d.length) d[i + 1] = r * Math.sin(2 * Math.PI * v);
      }
    } else if (t.dtype !== 'int64') {
      throw new Q8Error(`bench cannot synthesise ${t.dtype} input '${inp.name}'`);
    }
    feeds[inp.name] = t;
  }
  return feeds;
}

export interface BenchResult {
  median_ms: number;
  p10_ms: number;
  p90_ms: number;
  min_ms: number;
  images_per_s: number;
  threads: number;
  backend: string;
  peak_rss_mb: number;
  iterations: number;
  batch: number;
}

export async function benchModel(model: Q8Model, o: { batch: number; warmup: number; iterations: number; threads: number }): Promise<BenchResult> {
  const feeds = syntheticFeeds(model, o.batch);
  for (let i = 0; i < o.warmup; i++) await model.run(feeds);
  const times: number[] = [];
  let peak = process.memoryUsage.rss();
  for (let i = 0; i < o.iterations; i++) {
    const t0 = performance.now();
    await model.run(feeds);
    times.push(performance.now() - t0);
    peak = Math.max(peak, process.memoryUsage.rss());
  }
  times.sort((a, b) => a - b);
  const q = (p: number) => times[Math.min(times.length - 1, Math.floor(p * times.length))]!;
  const median = times.length % 2 ? times[(times.length - 1) / 2]! : (times[times.length / 2 - 1]! + times[times.length / 2]!) / 2;
  const r3 = (x: number) => Math.round(x * 1000) / 1000;
  return {
    median_ms: r3(median), p10_ms: r3(q(0.1)), p90_ms: r3(q(0.9)), min_ms: r3(times[0]!),
    images_per_s: Math.round((o.batch * 1000 / median) * 10) / 10,
    threads: o.threads, backend: model.backend, peak_rss_mb: Math.round(peak / 2 ** 20),
    iterations: o.iterations, batch: o.batch,
  };
}

export function benchCommand(program: Command): void {
  modelOptions(program.command('bench').argument('<model>', 'model file').description('latency and throughput on synthetic inputs'))
    .option('--batch <n>', 'batch size', intArg('--batch'), 1)
    .option('--warmup <n>', 'untimed runs first', intArg('--warmup', 0), 2)
    .option('--iterations <n>', 'timed runs', intArg('--iterations'), 10)
    .option('--json', 'print one JSON line {"median_ms","images_per_s","threads","backend","peak_rss_mb"}')
    .option('--quantize', 'quantize the model first (default options) and bench the int8 model')
    .option('--profile', 'also print the time per operator type')
    .action(async (file: string, flags: ModelFlags & { batch: number; warmup: number; iterations: number; json?: boolean; quantize?: boolean; profile?: boolean }) => {
      const { availableParallelism } = await import('node:os');
      const threads = flags.threads ?? availableParallelism();
      let model = await load(file, { ...loadOptions({ ...flags, threads }), profile: Boolean(flags.profile) });
      if (flags.quantize) model = await model.quantize();
      const r = await benchModel(model, { batch: flags.batch, warmup: flags.warmup, iterations: flags.iterations, threads });
      if (flags.json) {
        console.log(JSON.stringify({ median_ms: r.median_ms, images_per_s: r.images_per_s, threads: r.threads, backend: r.backend, peak_rss_mb: r.peak_rss_mb, p10_ms: r.p10_ms, p90_ms: r.p90_ms, iterations: r.iterations, batch: r.batch }));
        return;
      }
      console.log(`backend     ${r.backend}, ${r.threads} thread(s), batch ${r.batch}`);
      console.log(`latency     median ${r.median_ms} ms  (p10 ${r.p10_ms}, p90 ${r.p90_ms}, min ${r.min_ms}; ${r.iterations} runs after ${flags.warmup} warm-up)`);
      console.log(`throughput  ${r.images_per_s} images/s`);
      console.log(`peak RSS    ${r.peak_rss_mb} MiB`);
      if (flags.profile) {
        const rows = model.session.profile();
        const total = rows.reduce((a, x) => a + x.ms, 0);
        console.log('\n' + table(rows.map((x) => [x.opType, x.nodes, x.fast, (x.ms / x.runs).toFixed(2), `${((100 * x.ms) / total).toFixed(1)}%`]), ['op', 'nodes', 'fast kernel', 'ms/run', 'share']));
      }
    });
}
