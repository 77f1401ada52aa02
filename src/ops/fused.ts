/**
 * q8's fused fp32 operators (domain 'q8'), made at session load by graph/passes.ts fuseActivations
 * and never saved: `ConvAct` is ONNX Conv followed by Relu or Clip(clip_min, clip_max) on its
 * output, so a backend applies the activation in its store instead of a separate pass over memory.
 * The reference runs ONNX Conv, then the activation, exactly as the unfused graph did.
 */
import { Q8Error } from '../core/errors.js';
import type { Tensor } from '../tensor/tensor.js';
import { ops as convOps } from './conv.js';
import type { KernelContext, OpSchema } from './registry.js';

const conv = convOps.find((o) => o.opType === 'Conv')!;

/** Apply the fused activation in place (float data). */
export function applyActivation(t: Tensor, ctx: KernelContext): Tensor {
  const act = ctx.attrs.string('activation', '');
  const d = t.data as Float32Array | Float64Array;
  if (act === 'Relu') {
    for (let i = 0; i < d.length; i++) { const v = d[i]!; if (v < 0) d[i] = 0; }
  } else if (act === 'Clip') {
    const lo = ctx.attrs.float('clip_min', -Infinity), hi = ctx.attrs.float('clip_max', Infinity);
    for (let i = 0; i < d.length; i++) { const v = d[i]!; d[i] = v < lo ? lo : v > hi ? hi : v; }
  } else if (act !== '') {
    throw new Q8Error(`unknown fused activation '${act}'`);
  }
  return t;
}

export const ops: OpSchema[] = [
  {
    opType: 'ConvAct',
    domain: 'q8',
    run: (inputs, ctx) => {
      const [y] = conv.run(inputs, ctx);
      return [applyActivation(y!, ctx)];
    },
  },
];
