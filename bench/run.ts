/**
 * `npm run bench`: q8 fp32, q8 int8 (default quantize(): dynamic windows, no calibration),
 * onnxruntime-node fp32, onnxruntime-node static int8 (QDQ written by src/quant/ort-qdq.ts, calibrated
 * on seeded inputs) and PyTorch fp32 (bench/torch_server.py, a Debian-torch subprocess) on the model zoo
 * of scripts/export_zoo.py, interleaved round-robin on the same input at each thread count, so load
 * from other jobs on this shared machine hits every engine alike. Prints medians and ratios, checks
 * that the engines agree (cosine), measures the peak RSS of an int8 vs fp32 VGG16 run in separate
 * processes, and writes bench/results/latest.json.
 *
 *   node dist/bench/run.js [--models vgg16,resnet50] [--threads 1,2] [--budget 15] [--min-iters 5]
 *       [--max-iters 30] [--warmup 1] [--no-torch] [--no-rss] [--profile] [--out FILE] [--allow-ref]
 *
 * --budget is seconds of timed rounds per model and thread count (each round runs every engine once,
 * starting from a different engine each time). --profile adds a per-op-type time breakdown of q8
 * (fp32 and int8, by wrapping each session step's kernel) and of onnxruntime (its own profiler).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { load, type Q8Model } from '../src/api.js';
import { decodeNpy } from '../src/data/npy.js';
import { encodeOnnx } from '../src/formats/onnx/index.js';
import { getBackend } from '../src/kernels/registry.js';
import { nativeLoadError } from '../src/kernels/native/index.js';
import { writeOrtQdq } from '../src/quant/ort-qdq.js';
import { Tensor } from '../src/tensor/tensor.js';

type Ort = typeof import('onnxruntime-node');
type OrtSession = Awaited<ReturnType<Ort['InferenceSession']['create']>>;

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const DEFAULT_MODELS = ['vgg16', 'vgg19', 'resnet50', 'mobilenet_v2', 'ssd300_heads', 'bert'];

// ---- flags
const argv = process.argv.slice(2);
const flag = (k: string) => argv.includes(k);
const opt = (k: string, d: string) => { const i = argv.indexOf(k); return i >= 0 && argv[i + 1] ? argv[i + 1]! : d; };
const num = (k: string, d: number) => { const v = Number(opt(k, String(d))); if (!Number.isFinite(v) || v < 0) throw new Error(`${k} must be a number ≥ 0`); return v; };
if (flag('--help') || flag('-h')) {
  console.log(fs.readFileSync(fileURLToPath(import.meta.url), 'utf8').split('*/')[0]);
  process.exit(0);
}
const dir = path.resolve(opt('--dir', path.join(root, 'bench/models')));
const models = opt('--models', DEFAULT_MODELS.join(',')).split(',').filter(Boolean);
const threadCounts = opt('--threads', '1,2').split(',').map(Number);
if (threadCounts.some((t) => !Number.isInteger(t) || t < 1)) throw new Error('--threads takes positive integers, e.g. 1,2');
const budgetS = num('--budget', 15);
const minIters = Math.max(1, num('--min-iters', 5));
const maxIters = Math.max(minIters, num('--max-iters', 30));
const warmup = num('--warmup', 1);
const useTorch = !flag('--no-torch');
const doRss = !flag('--no-rss');
const doProfile = flag('--profile');
const outFile = path.resolve(opt('--out', path.join(root, 'bench/results/latest.json')));

// ---- helpers
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const median = (a: number[]) => { if (!a.length) return NaN; const s = [...a].sort((x, y) => x - y); const m = s.length >> 1; return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2; };
const r2 = (x: number) => (Number.isFinite(x) ? Math.round(x * 100) / 100 : null);
const r4 = (x: number | null) => (x !== null && Number.isFinite(x) ? Math.round(x * 1e6) / 1e6 : null);

function flatten(outs: ArrayLike<number | bigint>[]): Float64Array {
  let n = 0;
  for (const o of outs) n += o.length;
  const f = new Float64Array(n);
  let k = 0;
  for (const o of outs) for (let i = 0; i < o.length; i++) f[k++] = Number(o[i]!);
  return f;
}

/** Cosine of the concatenated outputs; null when the sizes differ (data-dependent detection counts). */
function cosine(a: ArrayLike<number | bigint>[], b: ArrayLike<number | bigint>[]): number | null {
  const x = flatten(a), y = flatten(b);
  if (x.length !== y.length) return null;
  let xy = 0, xx = 0, yy = 0;
  for (let i = 0; i < x.length; i++) { xy += x[i]! * y[i]!; xx += x[i]! * x[i]!; yy += y[i]! * y[i]!; }
  return xx && yy ? xy / Math.sqrt(xx * yy) : (xx === yy ? 1 : 0);
}

interface ModelInfo { inputs: { name: string; file: string; shape: number[]; dtype: string }[]; outputs: { name: string }[] }

/** Seeded inputs with the saved input's mean and spread, for calibrating ORT's static int8. */
function calibrationFeeds(feeds: Record<string, Tensor>, count: number): Record<string, Tensor>[] {
  const out: Record<string, Tensor>[] = [feeds];
  let s = 12345;
  const rand = () => { s = (s * 1664525 + 1013904223) >>> 0; return s / 2 ** 32; };
  for (let c = 1; c < count; c++) {
    const f: Record<string, Tensor> = {};
    for (const [k, t] of Object.entries(feeds)) {
      const d = t.toFloat32();
      let mean = 0, sq = 0;
      for (let i = 0; i < d.length; i++) { mean += d[i]!; sq += d[i]! * d[i]!; }
      mean /= d.length;
      const sd = Math.sqrt(Math.max(0, sq / d.length - mean * mean));
      const o = new Float32Array(d.length);
      for (let i = 0; i < o.length; i++) o[i] = mean + sd * (rand() * 2 - 1) * Math.sqrt(3); // uniform, same mean/sd
      f[k] = Tensor.from('float32', t.shape, o);
    }
    out.push(f);
  }
  return out;
}

// ---- PyTorch subprocess
class TorchServer {
  private proc: ChildProcessWithoutNullStreams;
  private pending: ((v: Record<string, unknown>) => void)[] = [];
  private dead: string | null = null;
  stderr = '';
  constructor() {
    this.proc = spawn('/usr/bin/python3', [path.join(root, 'bench/torch_server.py')], {
      env: { ...process.env, PYTHONUNBUFFERED: '1' }, stdio: ['pipe', 'pipe', 'pipe'],
    });
    createInterface({ input: this.proc.stdout }).on('line', (l) => {
      const p = this.pending.shift();
      try { p?.(JSON.parse(l) as Record<string, unknown>); } catch { p?.({ ok: false, error: `bad reply ${l}` }); }
    });
    this.proc.stderr.on('data', (b: Buffer) => { this.stderr = (this.stderr + b.toString()).slice(-4000); });
    this.proc.on('exit', (code) => {
      this.dead = `torch server exited (${code}): ${this.stderr.trim().split('\n').slice(-3).join(' | ')}`;
      for (const p of this.pending.splice(0)) p({ ok: false, error: this.dead });
    });
  }
  request(msg: Record<string, unknown>): Promise<Record<string, unknown>> {
    if (this.dead) return Promise.resolve({ ok: false, error: this.dead });
    return new Promise((res) => { this.pending.push(res); this.proc.stdin.write(JSON.stringify(msg) + '\n'); });
  }
  kill(): void { this.proc.kill(); }
  async close(): Promise<void> {
    if (this.dead) return;
    this.proc.stdin.write('{"cmd":"quit"}\n');
    await new Promise((r) => this.proc.once('exit', r));
  }
}

// ---- engines
interface Timing { wall: number; cpu: number }
interface Engine {
  key: string;
  label: string;
  /** Set up for T threads (sessions whose thread count is fixed at creation are rebuilt). */
  prepare(threads: number): Promise<void>;
  time(): Promise<Timing>;
  outputs(): Promise<ArrayLike<number | bigint>[]>;
  release(): Promise<void>;
}

async function timed(fn: () => Promise<unknown>): Promise<Timing> {
  const c = process.cpuUsage();
  const t = performance.now();
  await fn();
  const wall = performance.now() - t;
  const u = process.cpuUsage(c);
  return { wall, cpu: (u.user + u.system) / 1000 };
}

function q8Engine(key: string, label: string, model: Q8Model, feeds: Record<string, Tensor>): Engine {
  let threads = 1;
  const native = getBackend('native');
  return {
    key, label,
    async prepare(t) { threads = t; },
    async time() { native?.setThreads?.(threads); return timed(() => model.run(feeds)); },
    async outputs() { native?.setThreads?.(threads); const o = await model.run(feeds); return model.outputNames.map((n) => o[n]!.data as ArrayLike<number | bigint>); },
    async release() { /* dropped with the model */ },
  };
}

function ortEngine(ort: Ort, key: string, label: string, source: string | Uint8Array, feeds: Record<string, Tensor>): Engine & { create(t: number, profile?: string): Promise<OrtSession> } {
  let sess: OrtSession | undefined;
  const ofeeds: Record<string, InstanceType<Ort['Tensor']>> = {};
  for (const [k, t] of Object.entries(feeds)) ofeeds[k] = new ort.Tensor('float32', t.data as Float32Array, t.shape as number[]);
  const create = (t: number, profile?: string) => {
    const o: Parameters<Ort['InferenceSession']['create']>[1] = {
      intraOpNumThreads: t, interOpNumThreads: 1, graphOptimizationLevel: 'all', executionMode: 'sequential',
      ...(profile ? { enableProfiling: true, profileFilePrefix: profile } : {}),
    };
    return typeof source === 'string' ? ort.InferenceSession.create(source, o) : ort.InferenceSession.create(source, o);
  };
  return {
    key, label, create,
    async prepare(t) { await sess?.release(); sess = undefined; sess = await create(t); },
    async time() { return timed(() => sess!.run(ofeeds)); },
    async outputs() { const o = await sess!.run(ofeeds); return sess!.outputNames.map((n) => o[n]!.data as ArrayLike<number | bigint>); },
    async release() { await sess?.release(); sess = undefined; },
  };
}

function torchEngine(server: TorchServer): Engine {
  let threads = 1;
  return {
    key: 'torch_fp32', label: 'PyTorch fp32',
    async prepare(t) { threads = t; },
    async time() {
      const r = await server.request({ cmd: 'run', threads });
      if (!r['ok']) throw new Error(String(r['error']));
      return { wall: Number(r['ms']), cpu: Number(r['cpu_ms'] ?? NaN) };
    },
    async outputs() { return []; },
    async release() { await server.request({ cmd: 'unload' }); },
  };
}

// ---- profiling: time per op type (q8 by wrapping the compiled steps; ORT by its own profiler)
type OpTimes = Record<string, { ms: number; count: number }>;

async function profileQ8(model: Q8Model, feeds: Record<string, Tensor>, threads: number, runs: number): Promise<OpTimes> {
  getBackend('native')?.setThreads?.(threads);
  // Session keeps its steps private; the bench reaches in rather than adding a hook to the runtime.
  const steps = (model.session as unknown as { steps: { node: { opType: string; domain: string }; run: (...a: unknown[]) => unknown }[] }).steps;
  const acc: OpTimes = {};
  const saved = steps.map((s) => s.run);
  steps.forEach((s, i) => {
    const inner = saved[i]!;
    s.run = (...a: unknown[]) => {
      const t = performance.now();
      const r = inner(...a);
      const key = s.node.domain ? `${s.node.domain}.${s.node.opType}` : s.node.opType;
      const e = (acc[key] ??= { ms: 0, count: 0 });
      e.ms += performance.now() - t; e.count++;
      return r;
    };
  });
  try {
    const t0 = performance.now();
    for (let i = 0; i < runs; i++) await model.run(feeds);
    const total = performance.now() - t0;
    let inKernels = 0;
    for (const v of Object.values(acc)) { v.ms /= runs; v.count /= runs; inKernels += v.ms; }
    acc['(outside kernels)'] = { ms: total / runs - inKernels, count: 0 };
  } finally {
    steps.forEach((s, i) => { s.run = saved[i]!; });
  }
  return acc;
}

async function profileOrt(e: ReturnType<typeof ortEngine>, feeds: Record<string, Tensor>, ort: Ort, threads: number, runs: number): Promise<OpTimes> {
  const prefix = path.join(os.tmpdir(), `q8-bench-ort-${process.pid}-${e.key}`);
  const sess = await e.create(threads, prefix);
  const ofeeds: Record<string, InstanceType<Ort['Tensor']>> = {};
  for (const [k, t] of Object.entries(feeds)) ofeeds[k] = new ort.Tensor('float32', t.data as Float32Array, t.shape as number[]);
  await sess.run(ofeeds);
  for (let i = 0; i < runs; i++) await sess.run(ofeeds);
  sess.endProfiling();
  await sess.release();
  const files = fs.readdirSync(os.tmpdir()).filter((f) => path.join(os.tmpdir(), f).startsWith(prefix) && f.endsWith('.json'));
  const acc: OpTimes = {};
  for (const f of files) {
    const full = path.join(os.tmpdir(), f);
    const ev = JSON.parse(fs.readFileSync(full, 'utf8')) as { cat: string; name: string; dur: number; args?: { op_name?: string } }[];
    fs.unlinkSync(full);
    for (const x of ev) {
      if (x.cat !== 'Node' || !x.name.endsWith('_kernel_time') || !x.args?.op_name) continue;
      const a = (acc[x.args.op_name] ??= { ms: 0, count: 0 });
      a.ms += x.dur / 1000; a.count++;
    }
  }
  // The first (warm-up) run is in the profile too.
  for (const v of Object.values(acc)) { v.ms /= runs + 1; v.count /= runs + 1; }
  return acc;
}

function fmtProfile(p: OpTimes): string {
  const tot = Object.values(p).reduce((s, v) => s + v.ms, 0);
  return Object.entries(p).sort((a, b) => b[1].ms - a[1].ms).filter(([, v]) => v.ms >= 0.005 * tot)
    .map(([k, v]) => `${k} ${v.ms.toFixed(1)}ms (${(100 * v.ms / tot).toFixed(0)}%, ×${Math.round(v.count)})`).join(', ');
}

// ---- the run
interface Row {
  model: string; threads: number; rounds: number;
  median_ms: Record<string, number | null>; min_ms: Record<string, number | null>; cpu_ms: Record<string, number | null>;
  ratios: Record<string, number | null>;
  cosine: Record<string, number | null>;
  loadavg: number[];
  errors: string[];
}

const LABELS: Record<string, string> = {
  q8_fp32: 'q8 fp32', q8_int8: 'q8 int8', ort_fp32: 'ORT fp32', ort_int8: 'ORT int8 (QDQ)', torch_fp32: 'PyTorch fp32',
};

async function main(): Promise<void> {
  let ort: Ort | null = null;
  try { ort = await import('onnxruntime-node'); } catch (e) { console.log(`onnxruntime-node unavailable (${(e as Error).message.split('\n')[0]}): ORT columns skipped`); }
  const backend = getBackend('native');
  if (!backend?.available() && !flag('--allow-ref')) {
    // A rebuild in progress or a failed build would silently benchmark the TypeScript reference kernels.
    console.error(`q8 bench: the native addon is not loaded (${nativeLoadError ?? 'unknown'}); run npm install, or pass --allow-ref to time the fallback`);
    process.exit(1);
  }
  const cpu = os.cpus()[0]?.model ?? 'unknown';
  const lscpu = spawnSync('lscpu', [], { encoding: 'utf8' }).stdout ?? '';
  const cpuModel = /Model name:\s*(.+)/.exec(lscpu)?.[1]?.trim() ?? cpu;
  const family = /CPU family:\s*(\d+)/.exec(lscpu)?.[1];
  const machine = {
    cpu: cpuModel + (family ? ` (family ${family}${family === '26' ? ', Zen 5' : ''})` : ''), cores: os.cpus().length, memory_gb: Math.round(os.totalmem() / 2 ** 30),
    node: process.version, onnxruntime_node: ort ? readVersion('onnxruntime-node') : null,
    q8_backend: backend?.available() ? backend.description : 'ref',
    commit: commitOf(),
    date: new Date().toISOString(),
  };
  console.log(`q8 bench: ${machine.cpu}, ${machine.cores} cores, ${machine.q8_backend}, ORT ${machine.onnxruntime_node ?? '-'}, ${machine.date}`);
  console.log(`models ${models.join(',')}; threads ${threadCounts.join(',')}; budget ${budgetS}s per model and thread count (${minIters}..${maxIters} rounds)\n`);
  const torch = useTorch ? new TorchServer() : null;
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => { torch?.kill(); process.exit(130); });
  const rows: Row[] = [];
  const profiles: Record<string, Record<string, OpTimes>> = {};
  const setupSeconds: Record<string, Record<string, number>> = {};
  const tStart = performance.now();

  for (const name of models) {
    const file = path.join(dir, `${name}.onnx`);
    const infoFile = path.join(dir, `${name}.json`);
    if (!fs.existsSync(file) || !fs.existsSync(infoFile)) { console.log(`${name}: ${file} missing (run /usr/bin/python3 scripts/export_zoo.py)`); continue; }
    const info = JSON.parse(fs.readFileSync(infoFile, 'utf8')) as ModelInfo;
    const feeds: Record<string, Tensor> = {};
    for (const i of info.inputs) feeds[i.name] = decodeNpy(fs.readFileSync(path.join(dir, i.file)), i.file);
    const refOuts: Float32Array[] = [];
    for (let i = 0; fs.existsSync(path.join(dir, `${name}.output_${i}.npy`)); i++) refOuts.push(decodeNpy(fs.readFileSync(path.join(dir, `${name}.output_${i}.npy`))).toFloat32());
    const setup: Record<string, number> = {};
    setupSeconds[name] = setup;
    const errors: string[] = [];
    const lap = async <T>(k: string, f: () => Promise<T>): Promise<T> => { const t = performance.now(); try { return await f(); } finally { setup[k] = r2((performance.now() - t) / 1000)!; } };

    // Engines. Torch builds in its own process while q8 loads (it is mostly waiting on I/O then).
    const torchLoad = torch ? torch.request({ cmd: 'load', model: name, dir }) : null;
    const fp = await lap('q8_load', () => load(file, { threads: threadCounts[0]! }));
    await lap('q8_fp32_session', async () => fp.session);
    const q = await lap('q8_quantize', () => fp.quantize());
    await lap('q8_int8_session', async () => q.session);
    if (doRss && name === 'vgg16') await q.save(path.join(dir, 'vgg16.q8-int8.onnx'));
    const engines: Engine[] = [q8Engine('q8_fp32', LABELS['q8_fp32']!, fp, feeds), q8Engine('q8_int8', LABELS['q8_int8']!, q, feeds)];
    let ortFp: ReturnType<typeof ortEngine> | undefined, ortQ: ReturnType<typeof ortEngine> | undefined;
    if (ort) {
      ortFp = ortEngine(ort, 'ort_fp32', LABELS['ort_fp32']!, file, feeds);
      engines.push(ortFp);
      try {
        const bytes = await lap('ort_qdq_write', async () => encodeOnnx(writeOrtQdq(fp.graph, { calibration: calibrationFeeds(feeds, 3) })));
        ortQ = ortEngine(ort, 'ort_int8', LABELS['ort_int8']!, bytes, feeds);
        engines.push(ortQ);
      } catch (e) { errors.push(`ORT QDQ: ${(e as Error).message}`); }
    }
    if (torchLoad) {
      const r = await torchLoad;
      if (r['ok']) { engines.push(torchEngine(torch!)); setup['torch_build'] = Number(r['seconds']); }
      else errors.push(`PyTorch: ${String(r['error'])}`);
      if (r['ok'] && typeof r['cos_ref'] === 'number' && r['cos_ref'] < 0.9999) errors.push(`PyTorch rebuild differs from the export (cosine ${r['cos_ref']})`);
    }
    console.log(`${name}: setup ${Object.entries(setup).map(([k, v]) => `${k} ${v}s`).join(', ')}`);

    for (const T of threadCounts) {
      const live: Engine[] = [];
      for (const e of engines) {
        try { await lap(`${e.key}_prepare_T${T}`, () => e.prepare(T)); live.push(e); } catch (err) { errors.push(`${e.label}: ${(err as Error).message.split('\n')[0]}`); }
      }
      // Agreement (also the first warm-up run of each engine).
      const outs: Record<string, ArrayLike<number | bigint>[]> = {};
      for (const e of live) { try { outs[e.key] = await e.outputs(); } catch (err) { errors.push(`${e.label} run: ${(err as Error).message.split('\n')[0]}`); } }
      const good = live.filter((e) => outs[e.key]);
      const cos = {
        q8_fp32_vs_torch_ref: outs['q8_fp32'] && refOuts.length ? r4(cosine(outs['q8_fp32'], refOuts)) : null,
        q8_int8_vs_q8_fp32: outs['q8_int8'] && outs['q8_fp32'] ? r4(cosine(outs['q8_int8'], outs['q8_fp32'])) : null,
        ort_fp32_vs_q8_fp32: outs['ort_fp32'] && outs['q8_fp32'] ? r4(cosine(outs['ort_fp32'], outs['q8_fp32'])) : null,
        ort_int8_vs_ort_fp32: outs['ort_int8'] && outs['ort_fp32'] ? r4(cosine(outs['ort_int8'], outs['ort_fp32'])) : null,
      };
      for (let w = 1; w < warmup; w++) for (const e of good) await e.time();
      // Timed rounds, round-robin, each round starting at the next engine.
      const times: Record<string, Timing[]> = Object.fromEntries(good.map((e) => [e.key, []]));
      const t0 = performance.now();
      let rounds = 0;
      while (rounds < minIters || (rounds < maxIters && performance.now() - t0 < budgetS * 1000)) {
        for (let k = 0; k < good.length; k++) {
          const e = good[(rounds + k) % good.length]!;
          try { times[e.key]!.push(await e.time()); } catch (err) { errors.push(`${e.label} timing: ${(err as Error).message}`); }
          await sleep(5); // let thread pools that spin after a run go idle before the next engine starts
        }
        rounds++;
      }
      const med: Record<string, number | null> = {}, mins: Record<string, number | null> = {}, cpus: Record<string, number | null> = {};
      for (const e of engines) {
        const t = times[e.key] ?? [];
        med[e.key] = t.length ? r2(median(t.map((x) => x.wall))) : null;
        mins[e.key] = t.length ? r2(Math.min(...t.map((x) => x.wall))) : null;
        cpus[e.key] = t.length && !t.some((x) => Number.isNaN(x.cpu)) ? r2(median(t.map((x) => x.cpu))) : null;
      }
      const div = (a: number | null | undefined, b: number | null | undefined) => (a && b ? r2(a / b) : null);
      const row: Row = {
        model: name, threads: T, rounds, median_ms: med, min_ms: mins, cpu_ms: cpus,
        ratios: {
          // Throughput ratios: > 1 means the first-named engine is faster.
          q8_int8_over_q8_fp32: div(med['q8_fp32'], med['q8_int8']),
          q8_fp32_over_ort_fp32: div(med['ort_fp32'], med['q8_fp32']),
          q8_int8_over_ort_int8: div(med['ort_int8'], med['q8_int8']),
          ort_int8_over_ort_fp32: div(med['ort_fp32'], med['ort_int8']),
          q8_fp32_over_torch_fp32: div(med['torch_fp32'], med['q8_fp32']),
          q8_int8_over_torch_fp32: div(med['torch_fp32'], med['q8_int8']),
        },
        cosine: cos, loadavg: os.loadavg().map((x) => r2(x)!), errors: [...errors],
      };
      rows.push(row);
      console.log(`  T=${T} ${rounds} rounds: ${good.map((e) => `${e.label} ${med[e.key]} ms`).join(' | ')}  (load ${row.loadavg[0]})`);
      if (doProfile) {
        const runs = 3;
        const p: Record<string, OpTimes> = {};
        p['q8_fp32'] = await profileQ8(fp, feeds, T, runs);
        p['q8_int8'] = await profileQ8(q, feeds, T, runs);
        if (ort && ortFp) p['ort_fp32'] = await profileOrt(ortFp, feeds, ort, T, runs);
        if (ort && ortQ) p['ort_int8'] = await profileOrt(ortQ, feeds, ort, T, runs);
        profiles[`${name}@${T}`] = p;
        for (const [k, v] of Object.entries(p)) console.log(`    profile ${LABELS[k]}: ${fmtProfile(v)}`);
      }
      errors.length = 0;
    }
    for (const e of engines) await e.release();
  }
  await torch?.close();

  const rss = doRss && models.includes('vgg16') ? measureRss() : null;
  const result = {
    machine, settings: { models, threads: threadCounts, budget_s: budgetS, min_iters: minIters, max_iters: maxIters, warmup },
    total_s: r2((performance.now() - tStart) / 1000), rows, rss, setup_s: setupSeconds, ...(doProfile ? { profiles } : {}),
  };
  fs.mkdirSync(path.dirname(outFile), { recursive: true });
  fs.writeFileSync(outFile, JSON.stringify(result, null, 1));
  console.log('\n' + markdownTable(result));
  console.log(`\nwrote ${path.relative(process.cwd(), outFile)} (${result.total_s}s)`);
}

/** The measured code: git HEAD (+ "-dirty"), or a snapshot's .commit file (see bench/README.md). */
function commitOf(): string | null {
  const g = spawnSync('git', ['-C', root, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' });
  if (g.status === 0 && g.stdout.trim()) {
    const dirty = spawnSync('git', ['-C', root, 'status', '--porcelain', '--untracked-files=no', '--', 'src', 'native', 'binding.gyp'], { encoding: 'utf8' }).stdout?.trim();
    return g.stdout.trim() + (dirty ? '-dirty' : '');
  }
  try { return fs.readFileSync(path.join(root, '.commit'), 'utf8').trim(); } catch { return null; }
}

function readVersion(pkg: string): string | null {
  try { return (JSON.parse(fs.readFileSync(path.join(root, 'node_modules', pkg, 'package.json'), 'utf8')) as { version: string }).version; } catch { return null; }
}

/** Peak RSS of a VGG16 fp32 and int8 run, each in its own `q8 bench` process. */
function measureRss(): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, f] of [['fp32', 'vgg16.onnx'], ['int8', 'vgg16.q8-int8.onnx']] as const) {
    const file = path.join(dir, f);
    if (!fs.existsSync(file)) { out[k] = null; continue; }
    const r = spawnSync('/usr/bin/time', ['-f', 'MAXRSS_KB %M', process.execPath, path.join(root, 'bin/q8.js'), 'bench', file, '--json', '--threads', '1', '--warmup', '1', '--iterations', '3'], { encoding: 'utf8' });
    const line = (r.stdout ?? '').trim().split('\n').filter((l) => l.startsWith('{')).pop();
    const maxKb = /MAXRSS_KB (\d+)/.exec(r.stderr ?? '')?.[1];
    out[k] = line ? { ...(JSON.parse(line) as object), process_max_rss_mb: maxKb ? Math.round(Number(maxKb) / 1024) : null } : { error: (r.stderr ?? '').slice(-300) };
  }
  const a = out['int8'] as { peak_rss_mb?: number; process_max_rss_mb?: number } | null, b = out['fp32'] as { peak_rss_mb?: number; process_max_rss_mb?: number } | null;
  if (a?.peak_rss_mb && b?.peak_rss_mb) out['int8_over_fp32_peak_rss'] = r2(a.peak_rss_mb / b.peak_rss_mb);
  if (a?.process_max_rss_mb && b?.process_max_rss_mb) out['int8_over_fp32_process_max_rss'] = r2(a.process_max_rss_mb / b.process_max_rss_mb);
  return out;
}

function markdownTable(r: { machine: Record<string, unknown>; rows: Row[]; rss: Record<string, unknown> | null }): string {
  const f = (x: number | null | undefined, d = 1) => (x === null || x === undefined ? '–' : x.toFixed(d));
  const c = (x: number | null | undefined) => (x === null || x === undefined ? '–' : x.toFixed(4));
  const lines = [
    `${r.machine['cpu']}, ${r.machine['cores']} cores, q8 ${r.machine['q8_backend']}, onnxruntime-node ${r.machine['onnxruntime_node'] ?? '–'}, Node ${r.machine['node']}, q8 commit ${r.machine['commit'] ?? '?'}, ${String(r.machine['date']).slice(0, 16).replace('T', ' ')} UTC`,
    '',
    '| model | T | q8 fp32 ms | q8 int8 ms | ORT fp32 ms | ORT int8 ms | PyTorch ms | q8 int8÷fp32 | q8÷ORT fp32 | q8÷ORT int8 | q8÷PyTorch fp32 | cos int8/fp32 | cos q8/ORT fp32 | cos ORT int8/fp32 | rounds | load |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|',
  ];
  for (const w of r.rows) {
    const m = w.median_ms, q = w.ratios, k = w.cosine;
    lines.push(`| ${w.model} | ${w.threads} | ${f(m['q8_fp32'])} | ${f(m['q8_int8'])} | ${f(m['ort_fp32'])} | ${f(m['ort_int8'])} | ${f(m['torch_fp32'])} | ${f(q['q8_int8_over_q8_fp32'], 2)}x | ${f(q['q8_fp32_over_ort_fp32'], 2)}x | ${f(q['q8_int8_over_ort_int8'], 2)}x | ${f(q['q8_fp32_over_torch_fp32'], 2)}x | ${c(k['q8_int8_vs_q8_fp32'])} | ${c(k['ort_fp32_vs_q8_fp32'])} | ${c(k['ort_int8_vs_ort_fp32'])} | ${w.rounds} | ${f(w.loadavg[0], 1)} |`);
  }
  // One thread: process CPU time per run is immune to being descheduled by other jobs on a shared
  // machine, so these ratios hold even when wall times are inflated by load.
  const one = r.rows.filter((w) => w.threads === 1);
  if (one.length) {
    const d = (a: number | null | undefined, b: number | null | undefined) => (a && b ? a / b : null);
    lines.push('', 'Same runs at 1 thread, median process CPU time per run (ms):', '',
      '| model | q8 fp32 | q8 int8 | ORT fp32 | ORT int8 | PyTorch | q8 int8÷fp32 | q8÷ORT fp32 | q8÷ORT int8 | q8÷PyTorch fp32 |', '|---|---|---|---|---|---|---|---|---|---|');
    for (const w of one) {
      const m = w.cpu_ms;
      lines.push(`| ${w.model} | ${f(m['q8_fp32'])} | ${f(m['q8_int8'])} | ${f(m['ort_fp32'])} | ${f(m['ort_int8'])} | ${f(m['torch_fp32'])} | ${f(d(m['q8_fp32'], m['q8_int8']), 2)}x | ${f(d(m['ort_fp32'], m['q8_fp32']), 2)}x | ${f(d(m['ort_int8'], m['q8_int8']), 2)}x | ${f(d(m['torch_fp32'], m['q8_fp32']), 2)}x |`);
    }
  }
  const rss = r.rss as { fp32?: { peak_rss_mb?: number; process_max_rss_mb?: number }; int8?: { peak_rss_mb?: number; process_max_rss_mb?: number }; int8_over_fp32_peak_rss?: number; int8_over_fp32_process_max_rss?: number } | null;
  if (rss?.fp32 && rss.int8) {
    lines.push('', `Peak RSS, VGG16, 1 thread, separate \`q8 bench --json\` processes: fp32 ${rss.fp32.peak_rss_mb} MB, int8 ${rss.int8.peak_rss_mb} MB (int8 ÷ fp32 = ${rss.int8_over_fp32_peak_rss}); whole-process max RSS incl. loading: fp32 ${rss.fp32.process_max_rss_mb} MB, int8 ${rss.int8.process_max_rss_mb} MB (${rss.int8_over_fp32_process_max_rss}).`);
  }
  const errs = [...new Set(r.rows.flatMap((w) => w.errors.map((e) => `${w.model}: ${e}`)))];
  if (errs.length) lines.push('', ...errs.map((e) => `- ${e}`));
  return lines.join('\n');
}

await main();
