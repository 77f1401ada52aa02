/**
 * Measurement (not part of npm test): quantize the benchmark models in bench/models with default
 * options and report time to quantize, file size ratio, cosine of q8 int8 outputs vs PyTorch fp32,
 * and onnxruntime-node (when installed) vs q8 on the saved int8 file.
 *
 *   node dist/test/quant/zoo-measure.js --models vgg16,resnet50 [--dir bench/models] [--json out.json]
 *       [--options '{"weightWindow":32}'] [--accuracy [--min-cosine 0.9995]]
 * Without --models it only prints this usage (so a test runner that globs test/**.js does nothing here).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createRequire } from 'node:module';
import { decodeNpy } from '../../src/data/npy.js';
import { loadOnnxFile, saveOnnxFile } from '../../src/formats/onnx/index.js';
import '../../src/quant/index.js';
import { cloneModel, quantizeModel, type QuantizeOptions } from '../../src/quant/quantize.js';
import { cosine } from '../../src/quant/types.js';
import { Session } from '../../src/runtime/session.js';
import { Tensor } from '../../src/tensor/tensor.js';
const Tens = Tensor;

interface Meta { inputs: { name: string; file: string }[]; outputs: { name: string; file: string }[] }

const args = process.argv.slice(2);
if (!args.includes('--models')) {
  console.log('usage: node dist/test/quant/zoo-measure.js --models vgg16,vgg19,resnet50,mobilenet_v2,ssd300_heads,ssd300,bert [--accuracy]');
  process.exit(0);
}
const opt = (k: string) => { const i = args.indexOf(k); return i >= 0 ? args[i + 1] : undefined; };
const dir = opt('--dir') ?? 'bench/models';
const names = (opt('--models') ?? 'vgg16,vgg19,resnet50,mobilenet_v2,ssd300_heads,ssd300,bert').split(',');
const qopts = JSON.parse(opt('--options') ?? '{}') as QuantizeOptions;
let ort: { InferenceSession: { create(b: string): Promise<{ run(f: Record<string, unknown>): Promise<Record<string, { data: Float32Array }>> }> }; Tensor: new (t: string, d: unknown, s: readonly number[]) => unknown } | undefined;
try { ort = createRequire(import.meta.url)('onnxruntime-node'); } catch { ort = undefined; }

const results: Record<string, unknown>[] = [];
for (const name of names) {
  const file = path.join(dir, `${name}.onnx`);
  if (!fs.existsSync(file)) { console.log(`${name}: not exported (${file} missing)`); continue; }
  const meta = JSON.parse(fs.readFileSync(path.join(dir, `${name}.json`), 'utf8')) as Meta;
  const feeds: Record<string, Tensor> = {};
  for (const i of meta.inputs) feeds[i.name] = decodeNpy(fs.readFileSync(path.join(dir, i.file)));
  const fp = loadOnnxFile(file);
  const opts: QuantizeOptions = { ...qopts };
  if (args.includes('--accuracy')) {
    // Accuracy-aware mode on two fresh random images (ImageNet-normalised uniform noise, like the
    // exports' inputs but other draws), never on the evaluation input.
    let seed = 12345;
    const rnd = () => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed / 2147483648; };
    opts.samples = [0, 1].map(() => {
      const f: Record<string, Tensor> = {};
      for (const [k, t] of Object.entries(feeds)) {
        const d = new Float32Array(t.size).map(() => (rnd() - 0.45) / 0.226);
        f[k] = new Tens(t.dtype, t.shape, d);
      }
      return f;
    });
    opts.accuracy = { minCosine: Number(opt('--min-cosine') ?? 0.9995) };
  }
  const t0 = performance.now();
  const { model: q, report } = quantizeModel(fp, opts);
  const quantizeS = (performance.now() - t0) / 1000;
  const out = path.join(os.tmpdir(), `${name}.int8.onnx`);
  saveOnnxFile(q, out);
  const ratio = fs.statSync(file).size / fs.statSync(out).size;
  const t1 = performance.now();
  const s = Session.create(cloneModel(q));
  const got = s.runSync(feeds);
  const runS = (performance.now() - t1) / 1000;
  const cos: Record<string, number> = {};
  for (const o of meta.outputs) {
    const want = decodeNpy(fs.readFileSync(path.join(dir, o.file)));
    const g = got[o.name];
    if (g && g.dtype === 'float32' && want.dtype === 'float32' && g.size === want.size) cos[o.name] = cosine(want.data as Float32Array, g.data as Float32Array);
  }
  let ortCos: Record<string, number> | string = 'onnxruntime-node not installed';
  if (ort) {
    try {
      const sess = await ort.InferenceSession.create(out);
      const of: Record<string, unknown> = {};
      for (const [k, t] of Object.entries(feeds)) of[k] = new ort.Tensor(t.dtype, t.data, t.shape);
      const r = await sess.run(of);
      ortCos = {};
      for (const o of meta.outputs) {
        const a = r[o.name], b = got[o.name];
        if (a && b && b.dtype === 'float32') ortCos[o.name] = cosine(a.data, b.data as Float32Array);
      }
    } catch (e) { ortCos = `onnxruntime failed: ${(e as Error).message.split('\n')[0]}`; }
  }
  const row = {
    model: name, quantize_s: +quantizeS.toFixed(2), q8_int8_run_s: +runS.toFixed(1), backend: s.backend,
    fp32_bytes: fs.statSync(file).size, int8_bytes: fs.statSync(out).size, size_ratio: +ratio.toFixed(3),
    layers_int8: report.layers.filter((l) => l.quantized).length, layers: report.layers.length,
    cosine_vs_pytorch: cos, ort_vs_q8: ortCos, opset: q.opsets.get(''),
    kept_fp32: report.keptFp32.length, accuracy_sample_cosine: report.outputCosine,
  };
  results.push(row);
  console.log(JSON.stringify(row));
}
const jsonOut = opt('--json');
if (jsonOut) fs.writeFileSync(jsonOut, JSON.stringify(results, null, 1));
