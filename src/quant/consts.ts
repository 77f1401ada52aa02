/**
 * Constant lookup that sees through what exporters put between an initializer and its user: PyTorch
 * deduplicates equal tensors (e.g. all-zero biases) into one initializer read through Identity
 * nodes, and some exporters use Constant nodes instead of initializers.
 */
import type { Graph } from '../graph/ir.js';
import type { Tensor } from '../tensor/tensor.js';

export function constResolver(g: Graph): (name: string | undefined) => Tensor | undefined {
  const fed = new Set(g.inputs.map((i) => i.name));
  const alias = new Map<string, string>();
  const constNodes = new Map<string, Tensor>();
  for (const n of g.nodes) {
    if (n.domain !== '') continue;
    if (n.opType === 'Identity' && n.inputs[0]) alias.set(n.outputs[0]!, n.inputs[0]);
    if (n.opType === 'Constant' && n.attrs['value']?.type === 'tensor') constNodes.set(n.outputs[0]!, n.attrs['value'].value);
  }
  return (name) => {
    for (let hops = 0; name && hops < 64; hops++) {
      if (fed.has(name)) return undefined;
      const t = g.initializers.get(name) ?? constNodes.get(name);
      if (t) return t;
      name = alias.get(name);
    }
    return undefined;
  };
}
