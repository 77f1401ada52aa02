/**
 * Control flow: ONNX `If`. Its branches are subgraphs that may read values of the enclosing graph
 * by name (outer scope). The session treats those names as extra inputs of the If node, so they
 * stay alive until it runs, and runs the chosen branch as a nested session (opset 1+: `cond` is a
 * one-element bool tensor; both branches must produce the node's outputs in order).
 * Exporters emit If in detection post-processing (torchvision's batched NMS guards empty inputs).
 */
import type { Graph, Model } from '../graph/ir.js';
export { outerReferences } from '../graph/subgraphs.js';

/** A branch as a standalone model whose inputs are its outer references. */
export function branchModel(parent: Model, g: Graph, refs: readonly string[]): Model {
  return {
    ...parent,
    graph: { ...g, nodes: [...g.nodes], initializers: new Map(g.initializers), inputs: [...g.inputs, ...refs.map((name) => ({ name }))] },
  };
}

