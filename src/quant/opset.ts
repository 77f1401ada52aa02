/**
 * Raising a model's default-domain opset so the quantized weights can be written as standard ONNX
 * (per-axis DequantizeLinear needs opset 13, block_size needs 21). Nodes whose meaning changed between
 * the model's opset and the target are rewritten to keep their meaning; a node q8 cannot carry over
 * is refused with an error naming it (nothing is silently reinterpreted).
 */
import { Q8Error } from '../core/errors.js';
import type { AttrValue, Graph, Model, Node } from '../graph/ir.js';
import { Tensor } from '../tensor/tensor.js';

/** Lowest IR version that may declare a given default-domain opset. */
function irFor(opset: number): number {
  if (opset >= 21) return 10;
  if (opset >= 19) return 9;
  if (opset >= 15) return 8;
  if (opset >= 13) return 7;
  return 3;
}

const REDUCE_18 = new Set(['ReduceMean', 'ReduceMax', 'ReduceMin', 'ReduceProd', 'ReduceL1', 'ReduceL2', 'ReduceLogSum', 'ReduceLogSumExp', 'ReduceSumSquare']);

export function ensureOpset(model: Model, target: number): void {
  const from = model.opsets.get('') ?? 1;
  if (from >= target) return;
  if (from < 7) throw new Q8Error(`cannot raise the opset of a model from ${from} (before opset 7) to ${target}; re-export it with a newer opset`, { file: model.source });
  const g = model.graph;
  const taken = new Set<string>([...g.initializers.keys()]);
  for (const n of g.nodes) for (const o of n.outputs) taken.add(o);
  const fresh = (base: string) => { let s = base; for (let i = 1; taken.has(s); i++) s = `${base}_${i}`; taken.add(s); return s; };
  const constInput = (n: Node, what: string, t: Tensor) => { const name = fresh(`${n.name || n.outputs[0]}_${what}`); g.initializers.set(name, t); return name; };
  const i64 = (v: number[]) => Tensor.from('int64', [v.length], v.map((x) => BigInt(x)));
  const crosses = (v: number) => from < v && target >= v;
  const out: Node[] = [];
  for (const n of g.nodes) {
    if (n.domain !== '') { out.push(n); continue; }
    const a = n.attrs;
    const ints = (k: string) => { const x = a[k]; return x && (x.type === 'ints' || x.type === 'int') ? (x.type === 'int' ? [x.value] : x.value) : undefined; };
    const num = (k: string) => { const x = a[k]; return x && (x.type === 'float' || x.type === 'int') ? x.value : undefined; };
    const drop = (...ks: string[]) => { for (const k of ks) delete a[k]; };
    const refuse = (why: string) => { throw new Q8Error(`cannot carry this node from opset ${from} to ${target}: ${why}`, { file: model.source, node: n.name, opType: n.opType }); };
    switch (n.opType) {
      case 'Softmax': case 'LogSoftmax': case 'Hardmax': {
        if (!crosses(13)) break;
        const axis = num('axis') ?? 1;
        const rank = rankOf(g, n.inputs[0]!);
        if (rank !== undefined && (axis === rank - 1 || axis === -1)) { a['axis'] = { type: 'int', value: -1 }; break; }
        // Old meaning: the op over all dims from `axis` on (flattened). Flatten → op(last) → Reshape back.
        const x = n.inputs[0]!;
        const shp = fresh(`${x}_shape`), flat = fresh(`${x}_flat`), y = fresh(`${n.outputs[0]}_flat`);
        out.push({ name: fresh(`${n.name}_shape`), opType: 'Shape', domain: '', inputs: [x], outputs: [shp], attrs: {} });
        out.push({ name: fresh(`${n.name}_flatten`), opType: 'Flatten', domain: '', inputs: [x], outputs: [flat], attrs: { axis: { type: 'int', value: axis } } });
        out.push({ ...n, inputs: [flat], outputs: [y], attrs: { axis: { type: 'int', value: -1 } } });
        out.push({ name: fresh(`${n.name}_reshape`), opType: 'Reshape', domain: '', inputs: [y, shp], outputs: [n.outputs[0]!], attrs: {} });
        continue;
      }
      case 'ReduceSum':
        if (crosses(13)) moveAxes(n, ints('axes'), constInput, i64);
        break;
      case 'Squeeze': case 'Unsqueeze':
        if (crosses(13)) moveAxes(n, ints('axes'), constInput, i64);
        break;
      case 'Split': {
        if (crosses(13)) { const s = ints('split'); drop('split'); if (s) n.inputs = [n.inputs[0]!, constInput(n, 'split', i64(s))]; }
        if (crosses(18) || (from >= 13 && from < 18 && target >= 18)) {
          if (!n.inputs[1]) a['num_outputs'] = { type: 'int', value: n.outputs.length };
        }
        break;
      }
      case 'Clip': {
        if (!crosses(11)) break;
        const lo = num('min'), hi = num('max');
        drop('min', 'max');
        n.inputs = [n.inputs[0]!, lo !== undefined ? constInput(n, 'min', Tensor.from('float32', [], [lo])) : '', hi !== undefined ? constInput(n, 'max', Tensor.from('float32', [], [hi])) : ''];
        while (n.inputs.length > 1 && n.inputs[n.inputs.length - 1] === '') n.inputs.pop();
        break;
      }
      case 'Pad': {
        if (!crosses(11)) break;
        const pads = ints('pads') ?? refuse('Pad has no pads');
        const value = num('value') ?? 0;
        drop('pads', 'value');
        n.inputs = [n.inputs[0]!, constInput(n, 'pads', i64(pads!)), constInput(n, 'value', Tensor.from('float32', [], [value]))];
        break;
      }
      case 'Slice': {
        if (!crosses(10)) break;
        const st = ints('starts') ?? [], en = ints('ends') ?? [], ax = ints('axes');
        drop('starts', 'ends', 'axes');
        n.inputs = [n.inputs[0]!, constInput(n, 'starts', i64(st)), constInput(n, 'ends', i64(en))];
        if (ax) n.inputs.push(constInput(n, 'axes', i64(ax)));
        break;
      }
      case 'TopK': {
        if (!crosses(10)) break;
        const k = num('k') ?? refuse('TopK has no k');
        drop('k');
        n.inputs = [n.inputs[0]!, constInput(n, 'k', i64([k!]))];
        break;
      }
      case 'Dropout': {
        if (!crosses(12)) break;
        const r = num('ratio');
        drop('ratio', 'is_test');
        if (r !== undefined) n.inputs = [n.inputs[0]!, constInput(n, 'ratio', Tensor.from('float32', [], [r]))];
        break;
      }
      case 'BatchNormalization': {
        const sp = num('spatial');
        if (sp !== undefined && sp !== 1 && crosses(9)) refuse('BatchNormalization with spatial=0 has no equivalent after opset 9');
        if (crosses(9)) drop('spatial');
        if (crosses(14) && n.outputs.length > 1) refuse('BatchNormalization with training outputs');
        break;
      }
      case 'Upsample': {
        if (!crosses(10)) break;
        const mode = a['mode']?.type === 'string' ? a['mode'].value : 'nearest';
        let scales = n.inputs[1] ?? '';
        if (!scales) { const s = a['scales']; if (!s || s.type !== 'floats') refuse('Upsample has no scales'); scales = constInput(n, 'scales', Tensor.from('float32', [(s as { value: number[] }).value.length], (s as { value: number[] }).value)); }
        n.opType = 'Resize';
        n.inputs = [n.inputs[0]!, '', scales];
        n.attrs = upsampleAttrs(mode);
        break;
      }
      case 'Resize':
        if (from === 10 && crosses(11)) {
          const mode = a['mode']?.type === 'string' ? a['mode'].value : 'nearest';
          n.inputs = [n.inputs[0]!, '', n.inputs[1]!];
          n.attrs = upsampleAttrs(mode);
        }
        break;
      case 'Scatter':
        if (crosses(11)) n.opType = 'ScatterElements';
        break;
      default:
        if (REDUCE_18.has(n.opType) && crosses(18)) moveAxes(n, ints('axes'), constInput, i64);
    }
    out.push(n);
  }
  g.nodes = out;
  model.opsets.set('', target);
  model.irVersion = Math.max(model.irVersion || 0, irFor(target));
}

function upsampleAttrs(mode: string): Record<string, AttrValue> {
  // Upsample (and opset-10 Resize) sample at x_in = x_out / scale, nearest rounding down.
  return {
    mode: { type: 'string', value: mode === 'bilinear' ? 'linear' : mode },
    coordinate_transformation_mode: { type: 'string', value: 'asymmetric' },
    nearest_mode: { type: 'string', value: 'floor' },
  };
}

function moveAxes(n: Node, axes: number[] | undefined, constInput: (n: Node, what: string, t: Tensor) => string, i64: (v: number[]) => Tensor): void {
  delete n.attrs['axes'];
  if (axes) n.inputs = [n.inputs[0]!, constInput(n, 'axes', i64(axes))];
}

function rankOf(g: Graph, name: string): number | undefined {
  const vi = g.valueInfo.get(name) ?? g.inputs.find((i) => i.name === name) ?? g.outputs.find((o) => o.name === name);
  return vi?.shape?.length;
}
