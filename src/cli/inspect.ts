import * as fs from 'node:fs';
import type { Command } from 'commander';
import { backendInfo, inferShapes } from '../api.js';
import { DTYPES } from '../core/dtype.js';
import type { Dim, Graph, Node, ValueInfo } from '../graph/ir.js';
import { loadModelFromFlags, modelOptions, type ModelFlags } from './common.js';
import { bytes, table } from './format.js';

const dims = (s: Dim[] | undefined) => (s ? `[${s.map((d) => (d === null ? '?' : d)).join(', ')}]` : '?');

export function inspectCommand(program: Command): void {
  modelOptions(program.command('inspect').argument('<model>', 'model file').description('show inputs, outputs, operators, parameters and size'))
    .option('--json', 'print one JSON object')
    .action(async (file: string, flags: ModelFlags & { json?: boolean }) => {
      const model = await loadModelFromFlags(file, flags);
      const g = model.graph.graph;
      const opCounts = new Map<string, number>();
      for (const n of g.nodes) {
        const k = n.domain ? `${n.domain}.${n.opType}` : n.opType;
        opCounts.set(k, (opCounts.get(k) ?? 0) + 1);
      }
      let params = 0, weightBytes = 0;
      const byType = new Map<string, number>();
      for (const t of g.initializers.values()) {
        params += t.size;
        const b = t.size * DTYPES[t.dtype].bytes;
        weightBytes += b;
        byType.set(t.dtype, (byType.get(t.dtype) ?? 0) + b);
      }
      const quantized = quantizedLayers(g, model.graph.metadata);
      const fileBytes = fs.existsSync(file) ? fs.statSync(file).size : 0;
      const inferred = inferShapes(model.graph);
      const io = (v: ValueInfo) => ({ name: v.name, dtype: v.dtype ?? inferred.get(v.name)?.dtype ?? null, shape: v.shape ?? null, inferred_shape: inferred.get(v.name)?.shape ?? null });
      const backend = backendInfo();
      const info = {
        file, producer: `${model.graph.producerName} ${model.graph.producerVersion}`.trim(),
        opsets: Object.fromEntries(model.graph.opsets),
        inputs: model.inputs.map(io), outputs: model.outputs.map(io),
        nodes: g.nodes.length, operators: Object.fromEntries([...opCounts].sort((a, b) => b[1] - a[1])),
        parameters: params, weight_bytes: weightBytes, weight_bytes_by_dtype: Object.fromEntries(byType), file_bytes: fileBytes,
        metadata: Object.fromEntries(model.graph.metadata),
        quantized_layers: quantized,
        backend: backend.selected,
      };
      if (flags.json) { console.log(JSON.stringify(info)); return; }
      console.log(`model      ${file}${info.producer ? `  (from ${info.producer})` : ''}`);
      console.log(`opsets     ${Object.entries(info.opsets).map(([d, v]) => `${d || 'ai.onnx'} ${v}`).join(', ')}`);
      console.log(`backend    ${backend.selected} (available: ${backend.available.map((b) => b.description).join('; ')})`);
      console.log('\ninputs');
      console.log(table(model.inputs.map((v) => [v.name, v.dtype ?? '?', dims(v.shape)]), ['name', 'dtype', 'shape']));
      console.log('\noutputs');
      console.log(table(model.outputs.map((v) => [v.name, v.dtype ?? inferred.get(v.name)?.dtype ?? '?', dims(v.shape), dims(inferred.get(v.name)?.shape)]), ['name', 'dtype', 'shape', 'inferred (free dims = 1)']));
      console.log(`\noperators (${g.nodes.length} nodes)`);
      console.log(table([...opCounts].sort((a, b) => b[1] - a[1]).map(([k, v]) => [k, v]), ['op', 'count']));
      console.log(`\nparameters ${params.toLocaleString('en-US')}`);
      console.log(`weights    ${bytes(weightBytes)} (${[...byType].map(([d, b]) => `${d} ${bytes(b)}`).join(', ') || 'none'})`);
      if (fileBytes) console.log(`file       ${bytes(fileBytes)}`);
      if (model.graph.metadata.size) console.log(`metadata   ${[...model.graph.metadata].map(([k, v]) => `${k}=${v}`).join(', ')}`);
      if (quantized.length) {
        const saved = quantized.reduce((a, q) => a + q.fp32Bytes - q.int8Bytes, 0);
        console.log(`\nquantized layers (${quantized.length}, activation window ${model.graph.metadata.get('q8.activation_window') ?? 'row'}; ${bytes(saved)} saved vs fp32)`);
        console.log(table(quantized.map((q) => [q.layer, q.opType, q.window, q.activationWindow, bytes(q.int8Bytes), bytes(q.fp32Bytes)]), ['layer', 'op', 'weight window', 'activation window', 'int8+scales', 'fp32']));
      }
    });
}

interface QuantizedLayer { layer: string; opType: string; window: string; activationWindow: string; int8Bytes: number; fp32Bytes: number }

/** Layers whose weight comes from an int8 DequantizeLinear (q8's saved form, or any QDQ model). */
function quantizedLayers(g: Graph, meta: ReadonlyMap<string, string>): QuantizedLayer[] {
  const producer = new Map<string, Node>();
  for (const n of g.nodes) for (const o of n.outputs) producer.set(o, n);
  const out: QuantizedLayer[] = [];
  let perLayer: Record<string, string | number> = {};
  try { perLayer = JSON.parse(meta.get('q8.layer_activation_windows') ?? '{}') as Record<string, string | number>; } catch { /* hint only */ }
  const actDefault = meta.get('q8.activation_window') ?? 'row';
  const rnn = ['LSTM', 'GRU', 'RNN'];
  for (const n of g.nodes) {
    if (![...rnn, 'Conv', 'Gemm', 'MatMul', 'ConvTranspose'].includes(n.opType)) continue;
    for (const input of rnn.includes(n.opType) ? [1, 2] : [1]) {
    let p = producer.get(n.inputs[input] ?? '');
    while (p && (p.opType === 'Reshape' || p.opType === 'Transpose')) p = producer.get(p.inputs[0]!);
    if (!p || p.opType !== 'DequantizeLinear') continue;
    const w = g.initializers.get(p.inputs[0]!);
    const sc = g.initializers.get(p.inputs[1]!);
    if (!w || (w.dtype !== 'int8' && w.dtype !== 'uint8')) continue;
    const block = p.attrs['block_size'];
    const axis = p.attrs['axis'];
    const window = block && block.type === 'int' && block.value > 0 ? `block ${block.value}`
      : sc && sc.size > 1 ? `per channel (axis ${axis && axis.type === 'int' ? axis.value : 1})` : 'per tensor';
    const layer = rnn.includes(n.opType) ? `${n.name}.${input === 1 ? 'W' : 'R'}` : n.name;
    let activationWindow = String(perLayer[n.name] ?? actDefault);
    if (activationWindow === 'row' && n.opType.startsWith('Conv')) activationWindow = 'patch';  // a Conv's row is its im2col patch
    out.push({ layer, opType: n.opType, window, activationWindow, int8Bytes: w.size + (sc ? sc.size * 4 : 0), fp32Bytes: w.size * 4 });
    }
  }
  return out;
}
