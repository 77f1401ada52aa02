/**
 * Running a model off the JS event loop: a worker thread loads the model itself (so the weights
 * live only there) and runs requests one at a time; `run()` resolves when its outputs arrive.
 * Errors come back as Q8Errors with the same file/node context.
 *
 *   const w = await WorkerModel.create('vgg16.onnx');
 *   const out = await w.run({ input: x });   // the event loop stays free meanwhile
 *   await w.close();
 */
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { fileURLToPath } from 'node:url';
import { Q8Error } from './core/errors.js';
import type { DType, TensorData } from './core/dtype.js';
import type { ValueInfo } from './graph/ir.js';
import { Tensor } from './tensor/tensor.js';
import type { LoadOptions } from './api.js';

interface WireTensor { dtype: DType; shape: number[]; data: TensorData }
type Reply =
  | { type: 'ready'; inputs: ValueInfo[]; outputs: ValueInfo[]; backend: string }
  | { type: 'result'; id: number; outputs: Record<string, WireTensor> }
  | { type: 'error'; id: number; message: string; detail: string; file?: string; node?: string; opType?: string };

const toWire = (t: Tensor): WireTensor => ({ dtype: t.dtype, shape: [...t.shape], data: t.data });
const fromWire = (w: WireTensor): Tensor => new Tensor(w.dtype, w.shape, w.data);
const transferables = (ts: WireTensor[]) => ts.flatMap((t) => (Array.isArray(t.data) ? [] : [(t.data as Exclude<TensorData, string[]>).buffer as ArrayBuffer]));

export class WorkerModel {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (o: Record<string, Tensor>) => void; reject: (e: Error) => void }>();

  private constructor(
    private readonly worker: Worker,
    readonly inputs: readonly ValueInfo[],
    readonly outputs: readonly ValueInfo[],
    readonly backend: string,
  ) {
    worker.on('message', (m: Reply) => {
      if (m.type === 'ready') return;
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      if (m.type === 'result') p.resolve(Object.fromEntries(Object.entries(m.outputs).map(([k, v]) => [k, fromWire(v)])));
      else p.reject(toError(m));
    });
    worker.on('error', (e) => this.failAll(e));
    worker.on('exit', (code) => this.failAll(new Q8Error(`model worker exited (code ${code})`)));
  }

  /** Start a worker that loads `source` (a file path, or ONNX bytes) with the given options. */
  static create(source: string | Uint8Array, options: LoadOptions = {}): Promise<WorkerModel> {
    const worker = new Worker(fileURLToPath(import.meta.url), { workerData: { source, options } });
    return new Promise((resolve, reject) => {
      const onMessage = (m: Reply) => {
        worker.off('error', onError);
        if (m.type === 'ready') resolve(new WorkerModel(worker, m.inputs, m.outputs, m.backend));
        else { reject(toError(m as Extract<Reply, { type: 'error' }>)); void worker.terminate(); }
      };
      const onError = (e: Error) => reject(e);
      worker.once('message', onMessage);
      worker.once('error', onError);
    });
  }

  run(feeds: Record<string, Tensor>, outputNames?: string[]): Promise<Record<string, Tensor>> {
    const id = this.nextId++;
    const wire = Object.fromEntries(Object.entries(feeds).map(([k, t]) => {
      if (!(t instanceof Tensor)) throw new Q8Error(`input '${k}' must be a Tensor`);
      return [k, toWire(t)];
    }));
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ type: 'run', id, feeds: wire, outputNames });
    });
  }

  async close(): Promise<void> {
    await this.worker.terminate();
  }

  private failAll(e: Error): void {
    for (const p of this.pending.values()) p.reject(e);
    this.pending.clear();
  }
}

function toError(m: Extract<Reply, { type: 'error' }>): Q8Error {
  return new Q8Error(m.detail, { file: m.file, node: m.node, opType: m.opType });
}

function errorReply(id: number, e: unknown): Reply {
  if (e instanceof Q8Error) return { type: 'error', id, message: e.message, detail: e.detail, file: e.file, node: e.node, opType: e.opType };
  const msg = e instanceof Error ? e.message : String(e);
  return { type: 'error', id, message: msg, detail: msg };
}

async function serve(): Promise<void> {
  const port = parentPort!;
  const { source, options } = workerData as { source: string | Uint8Array; options: LoadOptions };
  const { load } = await import('./api.js');
  let model;
  try {
    model = await load(source, options);
    port.postMessage({ type: 'ready', inputs: [...model.inputs], outputs: [...model.outputs], backend: model.backend } satisfies Reply);
  } catch (e) {
    port.postMessage(errorReply(0, e));
    return;
  }
  port.on('message', (m: { type: 'run'; id: number; feeds: Record<string, WireTensor>; outputNames?: string[] }) => {
    try {
      const feeds = Object.fromEntries(Object.entries(m.feeds).map(([k, v]) => [k, fromWire(v)]));
      const outs = model.runSync(feeds, m.outputNames);
      const wire = Object.fromEntries(Object.entries(outs).map(([k, t]) => [k, toWire(t)]));
      // Outputs whose storage is shared (a constant, or two outputs on one buffer) are copied, not moved.
      const seen = new Set<ArrayBufferLike>();
      const move: ArrayBuffer[] = [];
      for (const b of transferables(Object.values(wire))) if (!seen.has(b)) { seen.add(b); move.push(b); }
      const constants = new Set([...model.session.model.graph.initializers.values()].map((t) => (t.data as Exclude<TensorData, string[]>).buffer));
      port.postMessage({ type: 'result', id: m.id, outputs: wire } satisfies Reply, move.filter((b) => !constants.has(b)));
    } catch (e) {
      port.postMessage(errorReply(m.id, e));
    }
  });
}

if (!isMainThread && parentPort && (workerData as { source?: unknown } | undefined)?.source !== undefined) void serve();
