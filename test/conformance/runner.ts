/**
 * Runs one ONNX backend test case directory (model.onnx + test_data_set_N/{input,output}_K.pb)
 * through q8 and compares with ONNX's tolerances (numpy assert_allclose: |a-b| <= atol + rtol*|b|,
 * rtol 1e-3, atol 1e-7; NaN equals NaN; integers, bools and strings exactly).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { decodeTensorBytes, loadOnnxFile } from '../../src/formats/onnx/index.js';
import { Session } from '../../src/runtime/session.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import type { BackendChoice } from '../../src/kernels/registry.js';
import { IN_SCOPE } from './scope.js';

export interface CaseResult {
  name: string;
  suite: string;
  inScope: boolean;
  ops: string[];
  pass: boolean;
  error?: string;
}

export function listCases(root: string, suite: string): string[] {
  const dir = path.join(root, suite);
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir).filter((d) => fs.existsSync(path.join(dir, d, 'model.onnx'))).sort();
}

export function runCase(root: string, suite: string, name: string, backend: BackendChoice = 'ref'): CaseResult {
  const dir = path.join(root, suite, name);
  let ops: string[] = [];
  try {
    const model = loadOnnxFile(path.join(dir, 'model.onnx'));
    ops = [...new Set(model.graph.nodes.map((n) => n.opType))].sort();
    const inScope = ops.every((o) => IN_SCOPE.has(o)) && model.graph.nodes.every((n) => n.domain === '');
    const res: CaseResult = { name, suite, inScope, ops, pass: true };
    const outputNames = model.graph.outputs.map((o) => o.name);
    const inputNames = model.graph.inputs.filter((i) => !model.graph.initializers.has(i.name)).map((i) => i.name);
    const session = Session.create(model, { backend });
    const sets = fs.readdirSync(dir).filter((d) => d.startsWith('test_data_set_')).sort();
    for (const set of sets) {
      const sdir = path.join(dir, set);
      const feeds: Record<string, Tensor> = {};
      for (let k = 0; fs.existsSync(path.join(sdir, `input_${k}.pb`)); k++) {
        const t = decodeTensorBytes(fs.readFileSync(path.join(sdir, `input_${k}.pb`)));
        feeds[t.name || inputNames[k]!] = t.tensor;
      }
      const outs = session.runSync(feeds);
      for (let k = 0; fs.existsSync(path.join(sdir, `output_${k}.pb`)); k++) {
        const want = decodeTensorBytes(fs.readFileSync(path.join(sdir, `output_${k}.pb`)));
        const got = outs[want.name || outputNames[k]!] ?? outs[outputNames[k]!];
        const err = compare(got, want.tensor);
        if (err) return { ...res, pass: false, error: `${set} output ${k} (${want.name}): ${err}` };
      }
    }
    return res;
  } catch (e) {
    const inScope = ops.length > 0 && ops.every((o) => IN_SCOPE.has(o));
    return { name, suite, inScope, ops, pass: false, error: (e as Error).message.split('\n')[0] };
  }
}

export function compare(got: Tensor | undefined, want: Tensor, rtol = 1e-3, atol = 1e-7): string | null {
  if (!got) return 'missing output';
  if (got.dtype !== want.dtype) return `dtype ${got.dtype}, expected ${want.dtype}`;
  if (got.shape.join(',') !== want.shape.join(',')) return `shape [${got.shape}], expected [${want.shape}]`;
  if (want.dtype === 'string') {
    const a = got.data as string[];
    const b = want.data as string[];
    for (let i = 0; i < b.length; i++) if (a[i] !== b[i]) return `element ${i}: '${a[i]}' vs '${b[i]}'`;
    return null;
  }
  const float = ['float32', 'float64', 'float16', 'bfloat16'].includes(want.dtype);
  for (let i = 0; i < want.size; i++) {
    if (!float) {
      if (got.data[i] !== want.data[i]) return `element ${i}: ${got.data[i]} vs ${want.data[i]}`;
      continue;
    }
    const a = got.num(i);
    const b = want.num(i);
    if (Number.isNaN(b)) { if (!Number.isNaN(a)) return `element ${i}: ${a} vs NaN`; continue; }
    if (a === b) continue;
    if (!(Math.abs(a - b) <= atol + rtol * Math.abs(b))) return `element ${i}: ${a} vs ${b} (|diff| ${Math.abs(a - b)})`;
  }
  return null;
}
