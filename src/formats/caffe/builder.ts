/** Small helper to emit ONNX nodes and constants into a Graph while lowering Caffe layers. */
import type { AttrValue, Graph, Node } from '../../graph/ir.js';
import { Tensor } from '../../tensor/tensor.js';

export type A = Record<string, AttrValue>;
export const ai = (v: number): AttrValue => ({ type: 'int', value: v });
export const af = (v: number): AttrValue => ({ type: 'float', value: v });
export const ais = (v: number[]): AttrValue => ({ type: 'ints', value: v });
export const afs = (v: number[]): AttrValue => ({ type: 'floats', value: v });

export class Builder {
  private used = new Set<string>();

  constructor(readonly g: Graph) {}

  fresh(base: string): string {
    let n = base;
    for (let k = 1; this.used.has(n) || this.g.initializers.has(n); k++) n = `${base}_${k}`;
    this.used.add(n);
    return n;
  }

  reserve(name: string): void { this.used.add(name); }

  const(base: string, t: Tensor): string {
    const n = this.fresh(base);
    this.g.initializers.set(n, t);
    return n;
  }

  f32(base: string, shape: number[], data: ArrayLike<number>): string {
    return this.const(base, Tensor.from('float32', shape, Float32Array.from(data)));
  }

  i64(base: string, data: number[]): string {
    return this.const(base, Tensor.from('int64', [data.length], data.map((v) => BigInt(v))));
  }

  node(opType: string, name: string, inputs: string[], outputs: string[], attrs: A = {}, domain = ''): Node {
    const n: Node = { name, opType, domain, inputs, outputs, attrs };
    this.g.nodes.push(n);
    return n;
  }

  /** One-output node writing a fresh value named after `base`. */
  op(opType: string, base: string, inputs: string[], attrs: A = {}, domain = ''): string {
    const out = this.fresh(base);
    this.node(opType, out, inputs, [out], attrs, domain);
    return out;
  }
}
