import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Command } from 'commander';
import { Q8Error } from '../core/errors.js';
import { decodeNpy, encodeNpy } from '../data/npy.js';
import { decodeTensorBytes } from '../formats/onnx/index.js';
import type { Tensor } from '../tensor/tensor.js';
import { loadModelFromFlags, modelOptions, sanitizeName, type ModelFlags } from './common.js';

/** Read a tensor from .npy or an ONNX TensorProto .pb file. */
export function readTensorFile(file: string): { name: string; tensor: Tensor } {
  let bytes: Uint8Array;
  try {
    bytes = fs.readFileSync(file);
  } catch (e) {
    throw new Q8Error(`cannot read input: ${(e as Error).message}`, { file });
  }
  if (file.endsWith('.npy') || (bytes[0] === 0x93 && bytes[1] === 0x4e)) return { name: '', tensor: decodeNpy(bytes, file) };
  try {
    return decodeTensorBytes(bytes);
  } catch (e) {
    throw new Q8Error(`not a .npy or TensorProto .pb file (${(e as Error).message})`, { file });
  }
}

function summary(t: Tensor): string {
  if (t.dtype === 'string' || t.size === 0) return '';
  const d = t.toFloat32();
  let min = Infinity, max = -Infinity, sum = 0;
  for (let i = 0; i < d.length; i++) { const v = d[i]!; if (v < min) min = v; if (v > max) max = v; sum += v; }
  let s = `min ${min.toPrecision(4)}  max ${max.toPrecision(4)}  mean ${(sum / d.length).toPrecision(4)}`;
  if (t.rank === 2 && t.shape[1]! > 1) {
    const cols = t.shape[1]!;
    const am: number[] = [];
    for (let r = 0; r < Math.min(t.shape[0]!, 8); r++) {
      let b = 0;
      for (let c = 1; c < cols; c++) if (d[r * cols + c]! > d[r * cols + b]!) b = c;
      am.push(b);
    }
    s += `  argmax ${am.join(',')}${t.shape[0]! > 8 ? ',…' : ''}`;
  }
  return s;
}

export function predictCommand(program: Command): void {
  modelOptions(program.command('predict').argument('<model>', 'model file').description('run a model on input tensors and write its outputs as .npy'))
    .option('--input <spec>', 'NAME=FILE (.npy or TensorProto .pb), or FILE alone for a one-input model; repeatable', (v: string, acc: string[]) => [...acc, v], [] as string[])
    .option('--output-dir <dir>', 'folder for <output>.npy files', '.')
    .action(async (file: string, flags: ModelFlags & { input: string[]; outputDir: string }) => {
      const model = await loadModelFromFlags(file, flags);
      const feeds: Record<string, Tensor> = {};
      for (const spec of flags.input) {
        const eq = spec.indexOf('=');
        const named = eq > 0 && !fs.existsSync(spec);
        const f = named ? spec.slice(eq + 1) : spec;
        const { tensor } = readTensorFile(f);
        let name: string;
        if (named) name = spec.slice(0, eq);
        else {
          if (model.inputNames.length !== 1) throw new Q8Error(`the model has ${model.inputNames.length} inputs (${model.inputNames.join(', ')}): use --input NAME=FILE`);
          name = model.inputNames[0]!;
        }
        feeds[name] = tensor;
      }
      if (!flags.input.length) throw new Q8Error(`no inputs given: use --input ${model.inputNames.length === 1 ? 'FILE' : 'NAME=FILE'} (inputs: ${model.inputNames.join(', ')})`);
      const t0 = performance.now();
      const outs = await model.run(feeds);
      const ms = performance.now() - t0;
      fs.mkdirSync(flags.outputDir, { recursive: true });
      for (const [name, t] of Object.entries(outs)) {
        const out = path.join(flags.outputDir, `${sanitizeName(name)}.npy`);
        fs.writeFileSync(out, encodeNpy(t));
        console.log(`${name}: ${t.dtype} [${t.shape.join(', ')}] -> ${out}`);
        const s = summary(t);
        if (s) console.log(`  ${s}`);
      }
      console.log(`ran in ${ms.toFixed(1)} ms (backend ${model.backend})`);
    });
}
