/** Subgraphs (If/Loop/Scan bodies) and the outer-scope values they read. */
import type { Graph, Node } from './ir.js';

/** Names a subgraph reads from enclosing scopes (recursively through nested subgraphs). */
export function outerReferences(g: Graph, scope: Set<string> = new Set()): string[] {
  const local = new Set<string>([...scope, ...g.inputs.map((i) => i.name), ...g.initializers.keys(), '']);
  const refs = new Set<string>();
  for (const n of g.nodes) {
    for (const i of n.inputs) if (!local.has(i)) refs.add(i);
    for (const sub of subgraphs(n)) for (const r of outerReferences(sub, local)) refs.add(r);
    for (const o of n.outputs) local.add(o);
  }
  return [...refs];
}

export function subgraphs(n: Node): Graph[] {
  const out: Graph[] = [];
  for (const a of Object.values(n.attrs)) {
    if (a.type === 'graph') out.push(a.value);
    else if (a.type === 'graphs') out.push(...a.value);
  }
  return out;
}

/** Everything a node reads: its inputs plus what its subgraphs take from the enclosing graph. */
export function nodeReads(n: Node): string[] {
  const subs = subgraphs(n);
  if (!subs.length) return n.inputs;
  return [...n.inputs, ...subs.flatMap((g) => outerReferences(g))];
}
