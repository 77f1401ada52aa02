import { Option, type Command } from 'commander';
import { Q8Error } from '../core/errors.js';
import { loadModelFromFlags, modelOptions, type ModelFlags } from './common.js';
import { bytes } from './format.js';
import * as fs from 'node:fs';

export interface ConvertFlags extends ModelFlags {
  output: string;
  quantize?: boolean;
  weightWindow: string;
  activationWindow?: string;
  exclude?: string;
  report?: boolean;
  json?: boolean;
}

export function convertCommand(program: Command): void {
  modelOptions(program.command('convert').argument('<model>', 'model file (any supported format)').description('write a model as standard ONNX, optionally quantized to int8'))
    .requiredOption('-o, --output <file>', 'output .onnx file')
    .option('--quantize', 'quantize Conv/Gemm/MatMul weights to int8 with local windows')
    .addOption(new Option('--weight-window <w>', 'weight window: one output channel, or blocks of N input values').choices(['channel', '32', '64', '128', '256']).default('channel'))
    .option('--activation-window <w>', 'activation window: row (Gemm/MatMul rows, whole Conv patches; the default), patch (= row), tap (ungrouped Conv: one input pixel\'s channels), or N values')
    .option('--exclude <names>', 'layers to keep in fp32: node names or op types, comma-separated')
    .option('--report', 'print the per-layer quantization report')
    .option('--json', 'with --report: print the report as JSON')
    .action(async (file: string, flags: ConvertFlags) => {
      const model = await loadModelFromFlags(file, flags);
      if (!flags.quantize) {
        if (flags.report) throw new Q8Error('--report needs --quantize');
        await model.save(flags.output);
        console.log(`wrote ${flags.output} (${bytes(fs.statSync(flags.output).size)})`);
        return;
      }
      const { quantizeForCli } = await import('./quantize.js');
      await quantizeForCli(model, file, flags);
    });
}
