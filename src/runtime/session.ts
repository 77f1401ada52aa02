/**
 * A Session runs one model: it validates and optimises the graph once (operator check, topological
 * order, quantized-pattern rewrites, constant folding, dead-node removal), compiles each node to the
 * active backend's fast kernel where one applies (packing weights once), and plans when each
 * intermediate value dies so its memory is reused.
 *
 *   const s = Session.create(loadOnnxFile('model.onnx'));
 *   const { logits } = s.runSync({ input: Tensor.from('float32', [1, 1, 28, 28], pixels) });
 */
import { Q8Error, toQ8Error } from '../core/errors.js';
import { feedInputs, type Model, type Node, type ValueInfo } from '../graph/ir.js';
import { opsetOf, optimize } from '../graph/passes.js';
import { getBackend, resolveBackend, type BackendChoice, type BackendName } from '../kernels/registry.js';
import '../ops/index.js';
import '../kernels/native/index.js';
import '../kernels/wasm/index.js';
import { getOp, type Kernel, type KernelContext, type OpSchema } from '../ops/registry.js';
import { Tensor } from '../tensor/tensor.js';
import { invokeKernel, makeContext } from './invoke.js';
import { branchModel, outerReferences } from './control-flow.js';
import { BufferPool } from './pool.js';

export interface SessionOptions {
  /** Kernel backend: 'auto' (default) picks native, then wasm, then the TypeScript reference. */
  backend?: BackendChoice;
  /** Threads for backends that use them (default: all cores). */
  threads?: number;
  /** Run graph optimisations (default true). Turn off to run the graph exactly as stored. */
  optimize?: boolean;
  /** Record the time each node takes (see Session.profile). */
  profile?: boolean;
}

/** Time spent per operator type (fast: how many of its nodes ran a backend kernel). */
export interface ProfileRow { opType: string; nodes: number; fast: number; ms: number; runs: number }

interface Step {
  node: Node;
  /** For If: the compiled branches and the outer-scope slots they read (appended to inputs). */
  branches?: { then: Session; else: Session; refs: string[] };
  schema: OpSchema;
  run: Kernel;
  fast: boolean;
  opset: number;
  inputs: number[]; // value slots, -1 for omitted
  outputs: number[];
  /** Slots whose last use is this step. */
  frees: number[];
  /** Input positions whose value dies at this step and is read at no other position of it. */
  dying: number[];
  /** The kernel context, made once (its Attrs parse nothing until read); `ins` is this run's inputs. */
  ctx?: KernelContext;
  ins?: (Tensor | undefined)[];
}

export type Feeds = Record<string, Tensor>;

export class Session {
  readonly inputs: readonly ValueInfo[];
  readonly outputs: readonly ValueInfo[];
  readonly backend: BackendName;
  private readonly steps: Step[];
  private readonly slotOf = new Map<string, number>();
  private readonly constants: (Tensor | undefined)[];
  private readonly pool = new BufferPool();
  private readonly source: string | undefined;
  private readonly defaults = new Map<string, Tensor>();
  private readonly times: Float64Array | undefined;
  private runs = 0;

  private constructor(readonly model: Model, opts: SessionOptions) {
    this.source = model.source;
    if (opts.optimize !== false) optimize(model);
    else optimize(model, { fold: false });
    const g = model.graph;
    this.inputs = feedInputs(g);
    for (const i of g.inputs) { const d = g.initializers.get(i.name); if (d) this.defaults.set(i.name, d); }
    this.outputs = g.outputs;
    this.backend = resolveBackend(opts.backend ?? 'auto');
    const backend = getBackend(this.backend);
    if (this.backend !== 'ref' && !backend?.available()) throw new Q8Error(`backend '${this.backend}' is not available on this machine`);
    if (opts.threads && backend?.setThreads) backend.setThreads(opts.threads);

    const slot = (name: string) => {
      let s = this.slotOf.get(name);
      if (s === undefined) { s = this.slotOf.size; this.slotOf.set(name, s); }
      return s;
    };
    for (const i of g.inputs) slot(i.name);
    for (const k of g.initializers.keys()) slot(k);
    const fed = new Set(g.inputs.map((i) => i.name));
    this.steps = g.nodes.map((node) => {
      const schema = getOp(node.domain, node.opType)!;
      const opset = opsetOf(model, node.domain);
      const consts = node.inputs.map((i) => (i && !fed.has(i) ? g.initializers.get(i) : undefined));
      let run: Kernel = schema.run;
      let fast = false;
      if (node.opType === 'If' && node.domain === '') {
        const thenG = node.attrs['then_branch'];
        const elseG = node.attrs['else_branch'];
        if (thenG?.type !== 'graph' || elseG?.type !== 'graph') throw new Q8Error('If needs then_branch and else_branch graphs', { file: this.source, node: node.name, opType: 'If' });
        const refs = [...new Set([...outerReferences(thenG.value), ...outerReferences(elseG.value)])];
        const sub = (g: typeof thenG.value) => new Session(branchModel(model, g, refs), { ...opts, backend: this.backend });
        return {
          node, schema, run, fast, opset,
          branches: { then: sub(thenG.value), else: sub(elseG.value), refs },
          inputs: [...node.inputs.map((i) => (i ? slot(i) : -1)), ...refs.map(slot)],
          outputs: node.outputs.map((o) => (o ? slot(o) : -1)),
          frees: [], dying: [],
        };
      }
      for (const fk of backend?.kernels ?? []) {
        if (fk.opType !== node.opType || (fk.domain ?? '') !== node.domain) continue;
        try {
          const k = fk.compile({ node, consts, opset, threads: opts.threads ?? 0 });
          if (k) { run = k; fast = true; break; }
        } catch (e) {
          throw toQ8Error(e, { file: this.source, node: node.name, opType: node.opType });
        }
      }
      return {
        node, schema, run, fast, opset,
        inputs: node.inputs.map((i) => (i ? slot(i) : -1)),
        outputs: node.outputs.map((o) => (o ? slot(o) : -1)),
        frees: [], dying: [],
      };
    });
    for (const o of g.outputs) slot(o.name);
    this.times = opts.profile ? new Float64Array(this.steps.length) : undefined;
    this.constants = new Array(this.slotOf.size);
    for (const [k, t] of g.initializers) this.constants[this.slotOf.get(k)!] = t;
    // Liveness: a slot dies after its last reader, unless it is a graph output or a constant.
    const keep = new Set(g.outputs.map((o) => this.slotOf.get(o.name)!));
    const last = new Map<number, number>();
    this.steps.forEach((s, k) => {
      for (const i of s.inputs) if (i >= 0) last.set(i, k);
      for (const o of s.outputs) if (o >= 0 && !last.has(o)) last.set(o, k); // unused outputs die at once
    });
    for (const i of g.inputs) keep.add(this.slotOf.get(i.name)!);
    for (const [slotId, k] of last) {
      if (keep.has(slotId) || this.constants[slotId]) continue;
      this.steps[k]!.frees.push(slotId);
    }
    for (const step of this.steps) {
      step.inputs.forEach((s, k) => {
        if (s >= 0 && step.frees.includes(s) && step.inputs.indexOf(s) === step.inputs.lastIndexOf(s)) step.dying.push(k);
      });
    }
  }

  static create(model: Model, opts: SessionOptions = {}): Session {
    return new Session(model, opts);
  }

  /** Per-operator-type time over all runs so far (needs `profile: true`), slowest first. */
  profile(): ProfileRow[] {
    if (!this.times) throw new Q8Error('profiling is off: create the session with { profile: true }');
    const rows = new Map<string, ProfileRow>();
    this.steps.forEach((s, k) => {
      const key = s.node.domain ? `${s.node.domain}.${s.node.opType}` : s.node.opType;
      const r = rows.get(key) ?? { opType: key, nodes: 0, fast: 0, ms: 0, runs: this.runs };
      r.nodes++;
      if (s.fast) r.fast++;
      r.ms += this.times![k]!;
      rows.set(key, r);
    });
    return [...rows.values()].sort((a, b) => b.ms - a.ms);
  }

  /** How many nodes run a fast kernel vs the reference one. */
  get kernelSummary(): { fast: number; reference: number } {
    const fast = this.steps.filter((s) => s.fast).length;
    return { fast, reference: this.steps.length - fast };
  }

  /** Run synchronously on the calling thread. */
  runSync(feeds: Feeds, outputNames?: readonly string[]): Record<string, Tensor> {
    const values: (Tensor | undefined)[] = this.constants.slice();
    for (const [name, def] of this.defaults) values[this.slotOf.get(name)!] = def;
    this.bindFeeds(feeds, values);
    const pool = this.pool;
    const times = this.times;
    this.runs++;
    for (let si = 0; si < this.steps.length; si++) {
      const step = this.steps[si]!;
      const t0 = times ? performance.now() : 0;
      const ins = step.inputs.map((s) => (s >= 0 ? values[s] : undefined));
      for (let k = 0; k < ins.length; k++) {
        if (step.inputs[k]! >= 0 && !ins[k]) {
          throw new Q8Error(`input '${step.node.inputs[k]}' has no value`, { file: this.source, node: step.node.name, opType: step.node.opType });
        }
      }
      let outs: Tensor[];
      try {
        step.ins = ins;
        outs = step.branches ? runIf(step, ins) : invokeKernel(step.schema, step.run, ins, step.ctx ??= this.contextOf(step));
        step.ins = undefined;
      } catch (e) {
        throw toQ8Error(e, { file: this.source, node: step.node.name, opType: step.node.opType });
      }
      step.outputs.forEach((s, k) => {
        if (s < 0) return;
        const t = outs[k];
        if (!t) throw new Q8Error(`produced no output #${k} ('${step.node.outputs[k]}')`, { file: this.source, node: step.node.name, opType: step.node.opType });
        values[s] = t;
        pool.retain(t);
      });
      for (const s of step.frees) {
        const t = values[s];
        if (t) { pool.release(t); values[s] = undefined; }
      }
      if (times) times[si]! += performance.now() - t0;
    }
    const names = outputNames ?? this.outputs.map((o) => o.name);
    const result: Record<string, Tensor> = {};
    for (const n of names) {
      const s = this.slotOf.get(n);
      const t = s === undefined ? undefined : values[s];
      if (!t) throw new Q8Error(`'${n}' is not an output of this model`, { file: this.source });
      result[n] = pool.disown(t);
    }
    return result;
  }

  private contextOf(step: Step): KernelContext {
    const pool = this.pool;
    const ctx = makeContext(step.node, step.opset, pool);
    if (step.dying.length) ctx.consumable = (t) => step.dying.some((k) => step.ins![k] === t) && pool.exclusive(t);
    return ctx;
  }

  /** Run and resolve with the outputs (see also the worker-backed runner in src/runtime/worker.ts). */
  async run(feeds: Feeds, outputNames?: readonly string[]): Promise<Record<string, Tensor>> {
    return this.runSync(feeds, outputNames);
  }

  private bindFeeds(feeds: Feeds, values: (Tensor | undefined)[]): void {
    const known = new Set(this.model.graph.inputs.map((i) => i.name));
    for (const name of Object.keys(feeds)) {
      if (!known.has(name)) {
        throw new Q8Error(`'${name}' is not an input of this model (inputs: ${this.inputs.map((i) => i.name).join(', ')})`, { file: this.source });
      }
    }
    for (const info of this.model.graph.inputs) {
      const t = feeds[info.name];
      if (!t) {
        if (this.defaults.has(info.name)) continue;
        throw new Q8Error(`missing input '${info.name}'${describe(info)}`, { file: this.source });
      }
      if (!(t instanceof Tensor)) throw new Q8Error(`input '${info.name}' must be a Tensor`, { file: this.source });
      if (info.dtype && t.dtype !== info.dtype) {
        throw new Q8Error(`input '${info.name}' must be ${info.dtype}, got ${t.dtype}`, { file: this.source });
      }
      if (info.shape) {
        const ok = info.shape.length === t.rank && info.shape.every((d, k) => typeof d !== 'number' || d === t.shape[k]);
        if (!ok) throw new Q8Error(`input '${info.name}' must have shape ${fmtShape(info.shape)}, got [${t.shape.join(',')}]`, { file: this.source });
      }
      values[this.slotOf.get(info.name)!] = t;
    }
  }
}

function runIf(step: Step, ins: (Tensor | undefined)[]): Tensor[] {
  const cond = ins[0];
  if (!cond || cond.size !== 1) throw new Q8Error('If needs a one-element condition');
  const b = step.branches!;
  const branch = cond.num(0) ? b.then : b.else;
  const feeds: Feeds = {};
  b.refs.forEach((name, k) => { const t = ins[step.node.inputs.length + k]; if (t) feeds[name] = t; });
  const outs = branch.runSync(feeds);
  const names = branch.outputs.map((o) => o.name);
  if (names.length !== step.node.outputs.length) throw new Q8Error(`the ${cond.num(0) ? 'then' : 'else'} branch has ${names.length} outputs, the node ${step.node.outputs.length}`);
  return names.map((n) => outs[n]!);
}

function fmtShape(s: readonly (number | string | null)[]): string {
  return `[${s.map((d) => (d === null ? '?' : d)).join(',')}]`;
}

function describe(v: ValueInfo): string {
  return v.dtype || v.shape ? ` (${v.dtype ?? '?'} ${v.shape ? fmtShape(v.shape) : ''})` : '';
}
