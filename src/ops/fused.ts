/**
 * q8's fused fp32 operators (domain 'q8'), made at session load by graph/passes.ts fuseActivations
 * and never saved: `ConvAct` is ONNX Conv followed by Relu or Clip(clip_min, clip_max) on its
 * output, so a backend applies the activation in its store instead of a separate pass over memory.
 * The reference runs ONNX Conv, then the activation, exactly as the unfused graph did.
 * `AddAct` {activation: 'Relu'} is ONNX Add followed by Relu (a residual block's join), so the
 * backends add and clamp in one pass over memory; its reference is ONNX Add then the activation.
 * `LayerNorm` is the nine-op last-axis LayerNorm chain of PyTorch exports (graph/passes.ts fuseLayerNorms).
 * `Gelu` {div, add, mul} is the five-op erf GELU chain of PyTorch exports (graph/passes.ts fuseGelus).
 * A ConvAct or q8.Q8Conv with attribute `residual` = i (graph/passes.ts fuseResiduals) also reads a
 * residual Z at input i: Y = activation(conv(X) + Z), the Conv, Add and activation of a residual
 * block's join; its reference runs exactly those three steps (see withResidual).
 */
import { Q8Error } from '../core/errors.js';
import type { Tensor } from '../tensor/tensor.js';
import { Attrs } from './attrs.js';
import { ops as convOps } from './conv.js';
import { erf, ops as elementwiseOps } from './elementwise.js';
import type { Kernel, KernelContext, OpSchema } from './registry.js';

const conv = convOps.find((o) => o.opType === 'Conv')!;
const add = elementwiseOps.find((o) => o.opType === 'Add' && !o.domain)!;
const relu = elementwiseOps.find((o) => o.opType === 'Relu' && !o.domain)!;

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

/** The context the fused op's ONNX parts run under: the model's default-domain opset, not q8's. */
function onnxContext(ctx: KernelContext): KernelContext {
  return { ...ctx, opset: ctx.attrs.int('onnx_opset', 21) };
}

/** The input index of a conv node's fused residual (attribute `residual`), or -1 when it has none. */
export function residualIndex(attrs: Attrs): number {
  const i = attrs.int('residual', 0);
  if (!Number.isInteger(i) || i < 0) throw new Q8Error(`residual should be an input index, got ${i}`);
  return i || -1;
}

/**
 * A conv kernel with the residual join: without a `residual` attribute, `run` itself. With one,
 * `run` on the inputs before the residual with neither residual nor activation, then ONNX Add
 * (broadcasting, under onnx_opset) of the residual, then the activation.
 */
export function withResidual(run: Kernel): Kernel {
  return (inputs, ctx) => {
    const zi = residualIndex(ctx.attrs);
    if (zi < 0) return run(inputs, ctx);
    const Z = inputs[zi];
    if (!Z) throw new Q8Error(`the fused residual (input ${zi}) has no value`);
    const attrs = { ...ctx.node.attrs };
    delete attrs['residual'];
    delete attrs['activation'];
    const [y] = run(inputs.slice(0, zi), { ...ctx, attrs: new Attrs(attrs) });
    const [sum] = add.run([y, Z], onnxContext(ctx));
    return [applyActivation(sum!, ctx)];
  };
}

/**
 * q8.LayerNorm(X, gamma, beta) {epsilon}: the nine-op LayerNorm chain of PyTorch exports over the
 * last axis, taking the same float32 steps (each rounded as the unfused graph rounds it) per row.
 */
function layerNorm(inputs: readonly (Tensor | undefined)[], ctx: KernelContext): Tensor[] {
  const [X, G, B] = inputs;
  if (!X || !G || !B || X.dtype !== 'float32' || G.dtype !== 'float32' || B.dtype !== 'float32' || X.rank < 1) {
    throw new Q8Error('LayerNorm needs float32 X, gamma and beta');
  }
  const C = X.shape[X.rank - 1]!;
  if (G.size !== C || B.size !== C) throw new Q8Error(`LayerNorm: gamma/beta have ${G.size}/${B.size} values for a last axis of ${C}`);
  const eps = Math.fround(ctx.attrs.float('epsilon', 1e-5));
  const x = X.data as Float32Array, gm = G.data as Float32Array, bt = B.data as Float32Array;
  const Y = ctx.alloc('float32', X.shape);
  const y = Y.data as Float32Array;
  const f = Math.fround;
  const d = new Float32Array(C);
  for (let r = 0, o = 0; o < x.length; r++, o += C) {
    let s = 0;
    for (let i = 0; i < C; i++) s += x[o + i]!;
    const mean = f(s / C);
    let s2 = 0;
    for (let i = 0; i < C; i++) { const v = f(x[o + i]! - mean); d[i] = v; s2 += f(v * v); }
    const sd = f(Math.sqrt(f(f(s2 / C) + eps)));
    for (let i = 0; i < C; i++) y[o + i] = f(f(f(d[i]! / sd) * gm[i]!) + bt[i]!);
  }
  return [Y];
}

/**
 * q8.Gelu(X) {div, add, mul}: PyTorch's exported erf GELU, Div(x, div) → Erf → Add(add) → Mul(x) →
 * Mul(mul), each step rounded to float32 as the unfused graph rounds it.
 */
function gelu(inputs: readonly (Tensor | undefined)[], ctx: KernelContext): Tensor[] {
  const [X] = inputs;
  if (!X || X.dtype !== 'float32') throw new Q8Error('Gelu needs float32 X');
  const f = Math.fround;
  const dv = f(ctx.attrs.float('div', Math.SQRT2)), ad = f(ctx.attrs.float('add', 1)), ml = f(ctx.attrs.float('mul', 0.5));
  const x = X.data as Float32Array;
  const Y = ctx.allocOutput('float32', X.shape);
  const y = Y.data as Float32Array;
  for (let i = 0; i < x.length; i++) {
    const v = x[i]!;
    y[i] = f(f(v * f(f(erf(f(v / dv))) + ad)) * ml);
  }
  return [Y];
}

export const ops: OpSchema[] = [
  { opType: 'LayerNorm', domain: 'q8', run: layerNorm },
  { opType: 'Gelu', domain: 'q8', run: gelu },
  {
    opType: 'ConvAct',
    domain: 'q8',
    run: withResidual((inputs, ctx) => {
      const [y] = conv.run(inputs, onnxContext(ctx));
      return [applyActivation(y!, ctx)];
    }),
  },
  {
    opType: 'AddAct',
    domain: 'q8',
    run: (inputs, ctx) => {
      const [y] = add.run(inputs, onnxContext(ctx));
      // Float data takes the activation in place as ConvAct does; other dtypes (int, bigint,
      // float16 bits) get ONNX Relu itself, so the result is the unfused graph's.
      if (y!.dtype === 'float32' || y!.dtype === 'float64') return [applyActivation(y!, ctx)];
      if (ctx.attrs.string('activation', '') !== 'Relu') throw new Q8Error(`AddAct supports activation 'Relu' only`);
      return relu.run([y], onnxContext(ctx));
    },
  },
];
