/**
 * q8's public API.
 *
 *   import { load, Tensor } from 'q8';
 *   const model = await load('models/fashion-vgg.onnx');
 *   const x = Tensor.from('float32', [1, 1, 28, 28], pixels);   // pixels: 784 numbers in [0, 1]
 *   const { logits } = await model.run({ input: x });
 *   const [cls] = await model.predictClass(x);
 *   const int8 = await model.quantize();                        // local-window int8
 *   await int8.save('fashion-vgg.int8.onnx');
 */
import * as fs from 'node:fs';
import { Q8Error } from './core/errors.js';
import { cloneModel } from './graph/clone.js';
import { feedInputs, type Model, type ValueInfo } from './graph/ir.js';
import { decodeOnnx, encodeOnnx, saveOnnxFile } from './formats/onnx/index.js';
import { loadModel, type LoadModelOptions } from './formats/detect.js';
import { Session, type SessionOptions } from './runtime/session.js';
import { Tensor } from './tensor/tensor.js';
import { perElementType } from './ops/tensor-helpers.js';
import { WorkerModel } from './worker.js';
import { quantizeModel, type QuantizeOptions, type QuantReport } from './quant/quantize.js';
import { getBackend, listBackends, resolveBackend, type BackendChoice } from './kernels/registry.js';
import { nativeAddon } from './kernels/native/index.js';

export interface LoadOptions extends SessionOptions {
  /**
   * Run inference in a worker thread so the event loop stays free while a model runs (the
   * worker holds its own copy of the weights). Default false: runs on the calling thread.
   */
  worker?: boolean;
  /** Source format; detected from the extension and content when absent. */
  from?: 'onnx' | 'caffe' | 'tensorflow' | 'tfjs' | 'bigdl';
  /** Caffe: the network definition (.prototxt) that goes with a .caffemodel. */
  prototxt?: string;
  /** TensorFlow: graph inputs and outputs to keep (everything else is pruned). */
  tfInputs?: string[];
  tfOutputs?: string[];
  /**
   * Accept NaN in float inputs. Default false: run() refuses them with an error naming the input,
   * because int8 layers quantize a NaN to 0 and Relu/Clip in fused kernels map it to a bound, so a
   * NaN would otherwise come out as an ordinary-looking wrong answer.
   */
  allowNaN?: boolean;
}

export interface TopKResult {
  top1: number;
  top5: number;
  n: number;
  /** Per-example argmax, in dataset order. */
  predictions: Int32Array;
}

export interface LabelledBatch {
  /** One tensor for a one-input model, or named feeds. */
  input: Tensor | Record<string, Tensor>;
  labels: ArrayLike<number>;
}

export interface EvaluateOptions {
  /** Output to score (default: the first). */
  output?: string;
  /** Called after each batch with the number of examples done. */
  onProgress?: (done: number) => void;
}

/** A loaded model: its graph (as loaded) and a session that runs it. */
export class Q8Model {
  private sessionCache: Session | undefined;
  private workerCache: Promise<WorkerModel> | undefined;

  constructor(readonly graph: Model, readonly options: SessionOptions & { worker?: boolean; allowNaN?: boolean } = {}) {}

  /** Inputs the caller feeds (name, dtype, shape with null/strings for free dims). */
  get inputs(): readonly ValueInfo[] { return feedInputs(this.graph.graph); }
  get outputs(): readonly ValueInfo[] { return this.graph.graph.outputs; }
  get inputNames(): string[] { return this.inputs.map((i) => i.name); }
  get outputNames(): string[] { return this.outputs.map((o) => o.name); }

  /** The session (created on first use: graph optimised, weights packed for the backend). */
  get session(): Session {
    this.sessionCache ??= Session.create(cloneModel(this.graph), this.options);
    return this.sessionCache;
  }

  /** Kernel backend in use: 'native', 'wasm' or 'ref'. */
  get backend(): string { return this.session.backend; }

  /** Run on named inputs; resolves with every output (or those named). */
  async run(feeds: Record<string, Tensor>, outputNames?: string[]): Promise<Record<string, Tensor>> {
    this.checkFeeds(feeds);
    if (!this.options.worker) return this.session.run(feeds, outputNames);
    this.workerCache ??= WorkerModel.create(this.toBytes(), { ...this.options, worker: false });
    return (await this.workerCache).run(feeds, outputNames);
  }

  /** Stop the worker thread, if one was started (a process with a live worker does not exit). */
  async close(): Promise<void> {
    const w = this.workerCache;
    this.workerCache = undefined;
    if (w) await (await w).close();
  }

  runSync(feeds: Record<string, Tensor>, outputNames?: string[]): Record<string, Tensor> {
    this.checkFeeds(feeds);
    return this.session.runSync(feeds, outputNames);
  }

  private checkFeeds(feeds: Record<string, Tensor>): void {
    if (this.options.allowNaN) return;
    for (const [name, t] of Object.entries(feeds)) {
      if (!(t instanceof Tensor)) continue;  // the session names what is wrong
      const i = firstNaN(t);
      if (i >= 0) {
        throw new Q8Error(`input '${name}' holds NaN (first at flat index ${i} of shape [${t.shape.join(',')}]); ` +
          'load with { allowNaN: true } to run it anyway', { file: this.graph.source });
      }
    }
  }

  /** One input in, the first output out. */
  async predict(input: Tensor | Record<string, Tensor>): Promise<Tensor> {
    const outs = await this.run(this.toFeeds(input), [this.outputNames[0]!]);
    return outs[this.outputNames[0]!]!;
  }

  /** Index of the largest score per row of the first output ([N, C] → N classes). */
  async predictClass(input: Tensor | Record<string, Tensor>): Promise<number[]> {
    return Array.from(argmaxRows(await this.predict(input)));
  }

  /** Top-1 / top-5 accuracy over labelled batches. */
  async evaluate(data: Iterable<LabelledBatch> | AsyncIterable<LabelledBatch>, opts: EvaluateOptions = {}): Promise<TopKResult> {
    const output = opts.output ?? this.outputNames[0]!;
    let n = 0, c1 = 0, c5 = 0;
    const preds: number[] = [];
    for await (const b of data) {
      const scores = (await this.run(this.toFeeds(b.input), [output]))[output]!;
      const { top1, top5 } = topk(scores, b.labels);
      c1 += top1.hits; c5 += top5;
      for (const p of top1.pred) preds.push(p);
      n += b.labels.length;
      opts.onProgress?.(n);
    }
    return { top1: n ? c1 / n : 0, top5: n ? c5 / n : 0, n, predictions: Int32Array.from(preds) };
  }

  /**
   * Quantize Conv/Gemm/MatMul weights to int8 with local windows (no calibration data needed).
   * The result runs int8 kernels in q8 and saves as standard ONNX (int8 + DequantizeLinear).
   * `lastReport` on the returned model holds the per-layer report.
   */
  async quantize(options: QuantizeOptions = {}): Promise<Q8Model> {
    const { model, report } = quantizeModel(this.graph, options);
    const q = new Q8Model(model, this.options);
    q.lastReport = report;
    return q;
  }

  /** The per-layer report of the quantize() call that made this model, if any. */
  lastReport: QuantReport | undefined;

  /** Write the model as standard ONNX. */
  async save(file: string): Promise<void> {
    saveOnnxFile(this.graph, file);
  }

  /** The model as ONNX bytes. */
  toBytes(): Uint8Array {
    return encodeOnnx(this.graph);
  }

  private toFeeds(input: Tensor | Record<string, Tensor>): Record<string, Tensor> {
    if (!(input instanceof Tensor)) return input;
    const names = this.inputNames;
    if (names.length !== 1) throw new Q8Error(`the model has ${names.length} inputs (${names.join(', ')}): pass named inputs`, { file: this.graph.source });
    return { [names[0]!]: input };
  }
}

/** Load a model from a file path or ONNX bytes. */
export async function load(source: string | Uint8Array, opts: LoadOptions = {}): Promise<Q8Model> {
  return new Q8Model(loadGraph(source, opts), sessionOptions(opts));
}

/** Read a model of any supported format (ONNX, Caffe, TensorFlow, TF.js, BigDL) into q8's graph. */
export function loadGraph(source: string | Uint8Array, opts: LoadOptions = {}): Model {
  if (typeof source !== 'string') return decodeOnnx(source);
  if (!fs.existsSync(source)) throw new Q8Error('no such file', { file: source });
  const o: LoadModelOptions = {};
  if (opts.from) o.from = opts.from;
  if (opts.prototxt) o.prototxt = opts.prototxt;
  if (opts.tfInputs) o.tfInputs = opts.tfInputs;
  if (opts.tfOutputs) o.tfOutputs = opts.tfOutputs;
  return loadModel(source, o);
}

function sessionOptions(o: LoadOptions): SessionOptions & { worker?: boolean; allowNaN?: boolean } {
  const s: SessionOptions & { worker?: boolean; allowNaN?: boolean } = {};
  if (o.backend) s.backend = o.backend;
  if (o.threads) s.threads = o.threads;
  if (o.optimize !== undefined) s.optimize = o.optimize;
  if (o.profile) s.profile = true;
  if (o.worker) s.worker = true;
  if (o.allowNaN) s.allowNaN = true;
  return s;
}

/** Index of the first NaN in a float tensor, or -1 (other dtypes have none). */
export function firstNaN(t: Tensor): number {
  const native = nativeAddon();
  if (t.dtype === 'float32' && native?.firstNaNF32) return native.firstNaNF32(t.data as Float32Array);
  if (t.dtype === 'float32' || t.dtype === 'float64') return nanScanFor(t.data)(t.data as Float64Array);
  if (t.dtype === 'float16' || t.dtype === 'bfloat16') {
    const d = t.data as Uint16Array;
    const [exp, man] = t.dtype === 'float16' ? [0x7c00, 0x03ff] : [0x7f80, 0x007f];
    for (let i = 0; i < d.length; i++) if ((d[i]! & exp) === exp && (d[i]! & man) !== 0) return i;
  }
  return -1;
}

// One copy per array type (perElementType: a loop shared by both runs polymorphic, 2.6x slower),
// and four values per test: a sum is NaN when one of them is (or for Inf - Inf, where the exact scan
// then takes over). Every run checks the inputs, e.g. 150,528 floats for a 224x224 image:
// 244 -> 93 us measured. Self-contained for perElementType.
function nanScan(d: Float64Array): number {
  const n = d.length;
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const s = d[i]! + d[i + 1]! + d[i + 2]! + d[i + 3]!;
    if (s !== s) break;
  }
  for (; i < n; i++) if (d[i] !== d[i]) return i;
  return -1;
}
const nanScanFor = perElementType(nanScan);

export function argmaxRows(t: Tensor): Int32Array {
  const cols = t.shape[t.rank - 1] ?? 1;
  const rows = cols ? t.size / cols : 0;
  const out = new Int32Array(rows);
  const d = t.toFloat32();
  for (let r = 0; r < rows; r++) {
    let best = 0;
    for (let c = 1; c < cols; c++) if (d[r * cols + c]! > d[r * cols + best]!) best = c;
    out[r] = best;
  }
  return out;
}

function topk(scores: Tensor, labels: ArrayLike<number>): { top1: { hits: number; pred: Int32Array }; top5: number } {
  const cols = scores.shape[scores.rank - 1]!;
  const rows = scores.size / cols;
  if (rows !== labels.length) throw new Q8Error(`model gave ${rows} rows of scores for ${labels.length} labels`);
  const d = scores.toFloat32();
  const pred = argmaxRows(scores);
  let hits = 0, hits5 = 0;
  for (let r = 0; r < rows; r++) {
    const label = labels[r]!;
    if (pred[r] === label) hits++;
    // rank of the label's score: how many classes score strictly higher (ties favour lower index)
    const v = d[r * cols + label]!;
    let higher = 0;
    for (let c = 0; c < cols; c++) {
      const x = d[r * cols + c]!;
      if (x > v || (x === v && c < label)) higher++;
    }
    if (higher < 5) hits5++;
  }
  return { top1: { hits, pred }, top5: hits5 };
}

/** Which backends this machine can run, and which 'auto' picks. */
export function backendInfo(): { selected: string; available: { name: string; description: string }[] } {
  return {
    selected: resolveBackend('auto'),
    available: [
      ...listBackends().filter((b) => b.available()).map((b) => ({ name: b.name, description: b.description })),
      { name: 'ref', description: 'TypeScript reference kernels' },
    ],
  };
}

/** Quantize a loaded model (see Q8Model.quantize). */
export async function quantize(model: Q8Model, options: QuantizeOptions = {}): Promise<Q8Model> {
  return model.quantize(options);
}

export { formatReport } from './quant/quantize.js';
export { inferShapes, type InferredValue } from './graph/shape-inference.js';
export type { QuantizeOptions, QuantReport, LayerReport } from './quant/quantize.js';
export { Tensor, getBackend, type BackendChoice };
