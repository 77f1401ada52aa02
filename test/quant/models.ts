/** Small ONNX-semantics models built in code for the quantization tests (random weights, seeded). */
import type { AttrValue, Model, Node } from '../../src/graph/ir.js';
import { emptyGraph } from '../../src/graph/ir.js';
import { attrsFrom } from '../../src/runtime/invoke.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { randomArray, rng, type Rng } from './util.js';

export class Builder {
  readonly model: Model;
  private k = 0;
  constructor(readonly r: Rng = rng(1), opset = 13) {
    this.model = { graph: emptyGraph('test'), opsets: new Map([['', opset]]), irVersion: 8, producerName: 'q8-test', producerVersion: '0', metadata: new Map() };
  }
  input(name: string, shape: (number | string)[]): string {
    this.model.graph.inputs.push({ name, dtype: 'float32', shape });
    return name;
  }
  init(name: string, t: Tensor): string {
    this.model.graph.initializers.set(name, t);
    return name;
  }
  weight(name: string, shape: number[], scale = 0.2): string {
    return this.init(name, Tensor.from('float32', shape, randomArray(this.r, shape.reduce((a, b) => a * b, 1), scale)));
  }
  node(opType: string, inputs: string[], attrs: Record<string, unknown> = {}, nOut = 1, name?: string): string[] {
    const id = name ?? `${opType.toLowerCase()}${this.k++}`;
    const outputs = Array.from({ length: nOut }, (_, i) => `${id}_out${i}`);
    const n: Node = { name: id, opType, domain: '', inputs, outputs, attrs: attrsFrom(attrs) as Record<string, AttrValue> };
    this.model.graph.nodes.push(n);
    return outputs;
  }
  output(name: string): void {
    this.model.graph.outputs.push({ name, dtype: 'float32' });
  }
}

/**
 * A small CNN with every quantizable kind: Conv+Relu, depthwise Conv+Clip(0,6), grouped Conv,
 * 1-D-free pointwise Conv, Gemm (transB=0, alpha, beta), MatMul with a constant right side.
 */
export function smallCnn(seed = 1, opts: { channels?: number; fc?: number } = {}): Model {
  const b = new Builder(rng(seed));
  const C = opts.channels ?? 8, F = opts.fc ?? 16;
  const x = b.input('image', ['N', 3, 12, 12]);
  const [c1] = b.node('Conv', [x, b.weight('c1.w', [C, 3, 3, 3]), b.weight('c1.b', [C])], { pads: [1, 1, 1, 1] }, 1, 'conv1');
  const [r1] = b.node('Relu', [c1!]);
  const [dw] = b.node('Conv', [r1!, b.weight('dw.w', [C, 1, 3, 3], 0.5), b.weight('dw.b', [C])], { group: C, pads: [1, 1, 1, 1], strides: [2, 2] }, 1, 'dw');
  const lo = b.init('six.lo', Tensor.from('float32', [], [0])), hi = b.init('six.hi', Tensor.from('float32', [], [6]));
  const [cl] = b.node('Clip', [dw!, lo, hi]);
  const [gc] = b.node('Conv', [cl!, b.weight('gc.w', [2 * C, C / 2, 3, 3])], { group: 2, pads: [1, 1, 1, 1] }, 1, 'grouped');
  const [pw] = b.node('Conv', [gc!, b.weight('pw.w', [C, 2 * C, 1, 1]), b.weight('pw.b', [C])], {}, 1, 'pointwise');
  const [r2] = b.node('Relu', [pw!]);
  const [gp] = b.node('GlobalAveragePool', [r2!]);
  const [fl] = b.node('Flatten', [gp!]);
  const [g1] = b.node('Gemm', [fl!, b.weight('fc1.w', [C, F], 0.5), b.weight('fc1.b', [F])], { alpha: { type: 'float', value: 0.5 }, beta: { type: 'float', value: 2 } }, 1, 'fc1');
  const [r3] = b.node('Relu', [g1!]);
  const [mm] = b.node('MatMul', [r3!, b.weight('fc2.w', [F, 10], 0.5)], {}, 1, 'fc2');
  b.output(mm!);
  return b.model;
}

export function randomImages(seed: number, n: number, shape = [3, 12, 12]): Tensor {
  const r = rng(seed);
  const size = n * shape.reduce((a, b) => a * b, 1);
  return Tensor.from('float32', [n, ...shape], new Float32Array(size).map(() => r.next()));
}
