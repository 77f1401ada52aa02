import * as fs from 'node:fs';
import type { Command } from 'commander';
import { backendInfo } from '../api.js';
import { DTYPES } from '../core/dtype.js';
import type { Dim, ValueInfo } from '../graph/ir.js';
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
      const fileBytes = fs.existsSync(file) ? fs.statSync(file).size : 0;
      const io = (v: ValueInfo) => ({ name: v.name, dtype: v.dtype ?? null, shape: v.shape ?? null });
      const backend = backendInfo();
      const info = {
        file, producer: `${model.graph.producerName} ${model.graph.producerVersion}`.trim(),
        opsets: Object.fromEntries(model.graph.opsets),
        inputs: model.inputs.map(io), outputs: model.outputs.map(io),
        nodes: g.nodes.length, operators: Object.fromEntries([...opCounts].sort((a, b) => b[1] - a[1])),
        parameters: params, weight_bytes: weightBytes, weight_bytes_by_dtype: Object.fromEntries(byType), file_bytes: fileBytes,
        metadata: Object.fromEntries(model.graph.metadata),
        backend: backend.selected,
      };
      if (flags.json) { console.log(JSON.stringify(info)); return; }
      console.log(`model      ${file}${info.producer ? `  (from ${info.producer})` : ''}`);
      console.log(`opsets     ${Object.entries(info.opsets).map(([d, v]) => `${d || 'ai.onnx'} ${v}`).join(', ')}`);
      console.log(`backend    ${backend.selected} (available: ${backend.available.map((b) => b.description).join('; ')})`);
      console.log('\ninputs');
      console.log(table(model.inputs.map((v) => [v.name, v.dtype ?? '?', dims(v.shape)]), ['name', 'dtype', 'shape']));
      console.log('\noutputs');
      console.log(table(model.outputs.map((v) => [v.name, v.dtype ?? '?', dims(v.shape)]), ['name', 'dtype', 'shape']));
      console.log(`\noperators (${g.nodes.length} nodes)`);
      console.log(table([...opCounts].sort((a, b) => b[1] - a[1]).map(([k, v]) => [k, v]), ['op', 'count']));
      console.log(`\nparameters ${params.toLocaleString('en-US')}`);
      console.log(`weights    ${bytes(weightBytes)} (${[...byType].map(([d, b]) => `${d} ${bytes(b)}`).join(', ') || 'none'})`);
      if (fileBytes) console.log(`file       ${bytes(fileBytes)}`);
      if (model.graph.metadata.size) console.log(`metadata   ${[...model.graph.metadata].map(([k, v]) => `${k}=${v}`).join(', ')}`);
    });
}
