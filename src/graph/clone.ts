import type { Graph, Model, Node } from './ir.js';

/** A copy of the graph structure that passes may rewrite freely; tensors are shared, not copied. */
export function cloneModel(m: Model): Model {
  return { ...m, graph: cloneGraph(m.graph), opsets: new Map(m.opsets), metadata: new Map(m.metadata) };
}

export function cloneGraph(g: Graph): Graph {
  return {
    ...g,
    nodes: g.nodes.map(cloneNode),
    inputs: g.inputs.map((v) => ({ ...v })),
    outputs: g.outputs.map((v) => ({ ...v })),
    initializers: new Map(g.initializers),
    valueInfo: new Map(g.valueInfo),
  };
}

export function cloneNode(n: Node): Node {
  return { ...n, inputs: [...n.inputs], outputs: [...n.outputs], attrs: { ...n.attrs } };
}
