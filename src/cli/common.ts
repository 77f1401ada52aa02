import { type Command, InvalidArgumentError, Option } from 'commander';
import { load, type LoadOptions, type Q8Model } from '../api.js';
import type { BackendChoice } from '../kernels/registry.js';

export interface ModelFlags {
  from?: LoadOptions['from'];
  prototxt?: string;
  tfInputs?: string;
  tfOutputs?: string;
  backend?: BackendChoice;
  threads?: number;
}

export function loadOptions(f: ModelFlags): LoadOptions {
  const o: LoadOptions = {};
  if (f.from) o.from = f.from;
  if (f.prototxt) o.prototxt = f.prototxt;
  if (f.tfInputs) o.tfInputs = f.tfInputs.split(',').map((s) => s.trim()).filter(Boolean);
  if (f.tfOutputs) o.tfOutputs = f.tfOutputs.split(',').map((s) => s.trim()).filter(Boolean);
  if (f.backend) o.backend = f.backend;
  if (f.threads) o.threads = f.threads;
  return o;
}

export function loadModelFromFlags(file: string, f: ModelFlags): Promise<Q8Model> {
  return load(file, loadOptions(f));
}

/** Output file name for a tensor name: every character outside [A-Za-z0-9._-] becomes '_'. */
export function sanitizeName(name: string): string {
  return name.replace(/[^A-Za-z0-9._-]/g, '_');
}

export const FORMATS = ['onnx', 'caffe', 'tensorflow', 'tfjs', 'bigdl'] as const;

export function intArg(name: string, min = 1) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) throw new InvalidArgumentError(`${name} must be an integer ≥ ${min}`);
    return n;
  };
}

export function floatArg(name: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isFinite(n)) throw new InvalidArgumentError(`${name} must be a finite number`);
    return n;
  };
}

/** Options every verb that loads a model accepts (format selection, backend). */
export function modelOptions(cmd: Command): Command {
  return cmd
    .addOption(new Option('--from <format>', 'source format (default: detected from extension and content)').choices(FORMATS))
    .option('--prototxt <file>', 'Caffe network definition for a .caffemodel')
    .option('--tf-inputs <names>', 'TensorFlow graph inputs, comma-separated')
    .option('--tf-outputs <names>', 'TensorFlow graph outputs, comma-separated')
    .addOption(new Option('--backend <name>', 'kernel backend').choices(['auto', 'native', 'wasm', 'ref']).default('auto'))
    .option('--threads <n>', 'threads for the kernels (default: all cores)', intArg('--threads'));
}

