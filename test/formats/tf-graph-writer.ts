/**
 * Test helper: one TF graph description written three ways — binary GraphDef (with q8's protobuf
 * Writer), .pbtxt text, and a TF.js graph model (model.json + weights.bin) — so the same graph runs
 * in q8's TensorFlow loader, its text path, its TF.js loader, and in tfjs itself as the reference.
 */
import { Writer } from '../../src/core/protobuf.js';

export type TfDt = 'DT_FLOAT' | 'DT_INT32';
export type A =
  | { type: TfDt } | { i: number } | { f: number } | { b: boolean } | { s: string } | { ints: number[] } | { strs: string[] } | { shape: number[] }
  | { tensor: { dtype: TfDt; shape: number[]; data: ArrayLike<number> } };
export interface N { name: string; op: string; inputs: string[]; attrs: Record<string, A> }

const DT = { DT_FLOAT: 1, DT_INT32: 3 } as const;

export class TfGraph {
  readonly nodes: N[] = [];

  node(name: string, op: string, inputs: string[], attrs: Record<string, A> = {}): string {
    this.nodes.push({ name, op, inputs, attrs });
    return name;
  }

  constF(name: string, shape: number[], data: ArrayLike<number>): string {
    return this.node(name, 'Const', [], { dtype: { type: 'DT_FLOAT' }, value: { tensor: { dtype: 'DT_FLOAT', shape, data } } });
  }

  constI(name: string, shape: number[], data: number[]): string {
    return this.node(name, 'Const', [], { dtype: { type: 'DT_INT32' }, value: { tensor: { dtype: 'DT_INT32', shape, data } } });
  }

  // ---- binary GraphDef
  toBinary(): Uint8Array {
    const g = new Writer();
    for (const n of this.nodes) {
      const w = new Writer().string(1, n.name).string(2, n.op);
      for (const i of n.inputs) w.string(3, i);
      for (const [k, a] of Object.entries(n.attrs)) w.message(5, new Writer().string(1, k).message(2, attrBin(a)));
      g.message(1, w);
    }
    return g.finish();
  }

  // ---- text
  toText(): string {
    const lines: string[] = [];
    for (const n of this.nodes) {
      lines.push('node {', `  name: "${n.name}"`, `  op: "${n.op}"`);
      for (const i of n.inputs) lines.push(`  input: "${i}"`);
      for (const [k, a] of Object.entries(n.attrs)) lines.push(`  attr { key: "${k}" value { ${attrText(a)} } }`);
      lines.push('}');
    }
    return lines.join('\n') + '\n';
  }

  // ---- TF.js graph model
  toTfjs(): { modelJson: Record<string, unknown>; weights: Uint8Array; weightSpecs: { name: string; shape: number[]; dtype: string }[]; topology: Record<string, unknown> } {
    const specs: { name: string; shape: number[]; dtype: string }[] = [];
    const chunks: Uint8Array[] = [];
    const node = this.nodes.map((n) => {
      const attr: Record<string, unknown> = {};
      for (const [k, a] of Object.entries(n.attrs)) {
        if ('tensor' in a) {
          specs.push({ name: n.name, shape: a.tensor.shape, dtype: a.tensor.dtype === 'DT_FLOAT' ? 'float32' : 'int32' });
          const arr = a.tensor.dtype === 'DT_FLOAT' ? Float32Array.from(a.tensor.data) : Int32Array.from(a.tensor.data);
          chunks.push(new Uint8Array(arr.buffer));
          attr[k] = { tensor: { dtype: a.tensor.dtype, tensorShape: { dim: a.tensor.shape.map((d) => ({ size: String(d) })) } } };
        } else attr[k] = attrJson(a);
      }
      return { name: n.name, op: n.op, input: n.inputs, attr };
    });
    const total = chunks.reduce((s, c) => s + c.length, 0);
    const weights = new Uint8Array(total);
    let o = 0;
    for (const c of chunks) { weights.set(c, o); o += c.length; }
    const topology = { node, versions: { producer: 1 } };
    return {
      modelJson: { format: 'graph-model', generatedBy: 'q8-test', modelTopology: topology, weightsManifest: [{ paths: ['weights.bin'], weights: specs }] },
      weights, weightSpecs: specs, topology,
    };
  }
}

function attrBin(a: A): Writer {
  const w = new Writer();
  if ('type' in a) w.varint(6, DT[a.type]);
  else if ('i' in a) w.varint(3, a.i);
  else if ('f' in a) w.float(4, a.f);
  else if ('b' in a) w.varint(5, a.b ? 1 : 0);
  else if ('s' in a) w.string(2, a.s);
  else if ('ints' in a) w.message(1, new Writer().packedVarints(3, a.ints));
  else if ('strs' in a) { const l = new Writer(); for (const x of a.strs) l.string(2, x); w.message(1, l); }
  else if ('shape' in a) w.message(7, shapeBin(a.shape));
  else if ('tensor' in a) {
    const t = a.tensor;
    const data = t.dtype === 'DT_FLOAT' ? Float32Array.from(t.data) : Int32Array.from(t.data);
    w.message(8, new Writer().varint(1, DT[t.dtype]).message(2, shapeBin(t.shape)).bytes(4, new Uint8Array(data.buffer)));
  }
  return w;
}

function shapeBin(s: number[]): Writer {
  const w = new Writer();
  for (const d of s) w.message(2, new Writer().varint(1, d));
  return w;
}

function attrText(a: A): string {
  if ('type' in a) return `type: ${a.type}`;
  if ('i' in a) return `i: ${a.i}`;
  if ('f' in a) return `f: ${a.f}`;
  if ('b' in a) return `b: ${a.b}`;
  if ('s' in a) return `s: "${a.s}"`;
  if ('ints' in a) return `list { ${a.ints.map((v) => `i: ${v}`).join(' ')} }`;
  if ('strs' in a) return `list { ${a.strs.map((v) => `s: "${v}"`).join(' ')} }`;
  if ('shape' in a) return `shape { ${a.shape.map((d) => `dim { size: ${d} }`).join(' ')} }`;
  const t = a.tensor;
  const data = t.dtype === 'DT_FLOAT' ? Float32Array.from(t.data) : Int32Array.from(t.data);
  const bytes = new Uint8Array(data.buffer);
  const esc = Array.from(bytes, (b) => `\\${b.toString(8).padStart(3, '0')}`).join('');
  return `tensor { dtype: ${t.dtype} tensor_shape { ${t.shape.map((d) => `dim { size: ${d} }`).join(' ')} } tensor_content: "${esc}" }`;
}

function attrJson(a: A): unknown {
  if ('type' in a) return { type: a.type };
  if ('i' in a) return { i: String(a.i) };
  if ('f' in a) return { f: a.f };
  if ('b' in a) return { b: a.b };
  if ('s' in a) return { s: Buffer.from(a.s).toString('base64') };
  if ('ints' in a) return { list: { i: a.ints.map(String) } };
  if ('strs' in a) return { list: { s: a.strs.map((x) => Buffer.from(x).toString('base64')) } };
  if ('shape' in a) return { shape: { dim: a.shape.map((d) => ({ size: String(d) })) } };
  return undefined;
}
