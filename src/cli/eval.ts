import { Option, type Command } from 'commander';
import { Q8Error } from '../core/errors.js';
import { imageBatches, readIdx } from '../data/idx.js';
import type { Dim } from '../graph/ir.js';
import { floatArg, intArg, loadModelFromFlags, modelOptions, type ModelFlags } from './common.js';
import { Progress } from './format.js';

/** NCHW or NHWC from a 4-D input shape: channels are the small (1 or 3) dimension. */
export function guessLayout(shape: readonly Dim[] | undefined): 'nchw' | 'nhwc' {
  if (shape?.length === 4) {
    const c1 = shape[1], c3 = shape[3];
    if ((c3 === 1 || c3 === 3) && !(c1 === 1 || c1 === 3)) return 'nhwc';
  }
  return 'nchw';
}

export function evalCommand(program: Command): void {
  modelOptions(program.command('eval').argument('<model>', 'model file').description('top-1/top-5 accuracy on an IDX image set (MNIST format)'))
    .requiredOption('--images <idx>', 'IDX image file (gzip or not)')
    .requiredOption('--labels <idx>', 'IDX label file (gzip or not)')
    .option('--scale <s>', 'input = (pixel × S − M) / D', floatArg('--scale'), 1)
    .option('--mean <m>', 'mean M subtracted after scaling', floatArg('--mean'), 0)
    .option('--std <d>', 'divisor D', floatArg('--std'), 1)
    .addOption(new Option('--layout <layout>', 'input layout (default: from the model input shape)').choices(['nchw', 'nhwc']))
    .option('--batch <n>', 'images per run', intArg('--batch'), 100)
    .option('--limit <n>', 'evaluate only the first N images', intArg('--limit'))
    .option('--json', 'print one JSON line {"top1","top5","n","images_per_s"}')
    .action(async (file: string, flags: ModelFlags & { images: string; labels: string; scale: number; mean: number; std: number; layout?: 'nchw' | 'nhwc'; batch: number; limit?: number; json?: boolean }) => {
      if (flags.std === 0) throw new Q8Error('--std must not be 0');
      const model = await loadModelFromFlags(file, flags);
      if (model.inputs.length !== 1) throw new Q8Error(`eval needs a one-input model; this one has ${model.inputs.length} (${model.inputNames.join(', ')})`, { file });
      const images = readIdx(flags.images);
      const labels = readIdx(flags.labels);
      const shape = model.inputs[0]!.shape;
      const layout = flags.layout ?? guessLayout(shape);
      const total = Math.min(images.shape[0]!, flags.limit ?? Infinity);
      const progress = new Progress(total, 'eval', !flags.json || process.stderr.isTTY === true);
      const t0 = performance.now();
      const res = await model.evaluate(
        imageBatches(images, labels, flags.batch, { scale: flags.scale, mean: flags.mean, std: flags.std, layout, inputShape: shape }, total),
        { onProgress: (n) => progress.update(n) },
      );
      const secs = (performance.now() - t0) / 1000;
      const out = { top1: res.top1, top5: res.top5, n: res.n, images_per_s: Math.round((res.n / secs) * 10) / 10 };
      if (flags.json) console.log(JSON.stringify(out));
      else {
        console.log(`top-1      ${(100 * res.top1).toFixed(2)}%  (${Math.round(res.top1 * res.n)}/${res.n})`);
        console.log(`top-5      ${(100 * res.top5).toFixed(2)}%`);
        console.log(`images/s   ${out.images_per_s}  (backend ${model.backend}, batch ${flags.batch})`);
      }
    });
}
