/**
 * int8 LSTM / GRU / RNN: q8.Q8LSTM, q8.Q8GRU, q8.Q8RNN, made at load by quant/rewrite.ts from an ONNX
 * LSTM/GRU/RNN whose W and/or R come from DequantizeLinear of a constant int8 tensor. The gate math
 * is ops/rnn.ts's (one copy); only the two matrix products differ.
 *
 * Inputs: the ONNX op's (X, W, R, B, sequence_lens, initial_h, initial_c, P; GRU/RNN leave 6 and 7
 * empty), then R's scales at 8. Attributes: the ONNX op's, plus
 *   projected    1: input 0 is already X·Wᵀ of every direction, [seq, batch, numDir·G·H] (layout 1:
 *                [batch, seq, numDir·G·H]), computed by a q8.Q8Gemm the rewrite puts in front (so a
 *                native Q8Gemm kernel runs the big projection); W is absent. 0: W is float, as in ONNX.
 *   weight_block R's weight window (0 = one row of R, i.e. one gate unit of one direction).
 *   act_block    the left-row window of the recurrent product (0 = the whole row of H).
 * R is int8 [numDir, G·H, H] with float32 scales [numDir·G·H] (or [numDir·G·H, ceil(H/B)]), or float as
 * in ONNX. An int8 R runs each step's H·Rᵀ (GRU without linear_before_reset: (r⊙H)·Rhᵀ) the contract's
 * way: every batch row of H is rounded to float32 and quantized per window (amax/127, ties to even),
 * int8·int8 dots are exact, dequantized with row scale × weight row scale (quant/kernels.ts q8Product).
 */
import { check } from '../core/errors.js';
import { shapeStr } from '../core/shape.js';
import type { AttrValue, Node } from '../graph/ir.js';
import type { CompileArgs, FastKernel } from '../kernels/registry.js';
import { getOp, registerOps, type Kernel, type KernelContext, type OpSchema } from '../ops/registry.js';
import { f64, floatProjection, floatRecurrence, recurRanges, runGRU, runLSTM, runRNN, type RnnBindArgs, type RnnForm, type RnnProducts } from '../ops/rnn.js';
import { invokeKernel, makeContext } from '../runtime/invoke.js';
import { Tensor } from '../tensor/tensor.js';
import { packWeights, q8AttrsOf, q8Product, quantizeRows } from './kernels.js';

/** Input index of R's scales on Q8LSTM / Q8GRU / Q8RNN. */
export const R_SCALE_INPUT = 8;

/** How often int8 products ran (tests check that the int8 path, not the float one, was taken). */
export const rnnInt8Stats = { recurrentProducts: 0, projectedInputs: 0 };

/** The int8 recurrence for an int8 R [numDir, GH, H] with scales. */
function int8Recurrence(op: string, R: Tensor, Rs: Tensor, numDir: number, GH: number, hidden: number, ctx: KernelContext): RnnProducts['recur'] {
  // The op's own attributes (weight_block, act_block); ONNX's 'activations' is a different name.
  const at = q8AttrsOf(ctx.attrs);
  const { weightBlock, actBlock } = at;
  const W = packWeights(R, Rs, numDir * GH, hidden, weightBlock, `${op} input R`);
  const nbA = Math.ceil(hidden / (actBlock || hidden));
  let hf = new Float32Array(0), qa = new Float32Array(0), sa = new Float32Array(0), o32 = new Float32Array(0);
  return (d, h, rows, row0, n, out, ldo) => {
    rnnInt8Stats.recurrentProducts++;
    if (hf.length < rows * hidden) { hf = new Float32Array(rows * hidden); qa = new Float32Array(rows * hidden); }
    if (sa.length < rows * nbA) sa = new Float32Array(rows * nbA);
    if (o32.length < rows * n) o32 = new Float32Array(rows * n);
    hf.set(h.subarray(0, rows * hidden)); // the state rounds to float32 before it is quantized
    quantizeRows(hf, rows, hidden, actBlock, qa, sa);
    q8Product(qa, sa, rows, W, d * GH + row0, n, at, undefined, 0, o32, 0, 'pn', n);
    for (let r = 0; r < rows; r++) for (let j = 0; j < n; j++) out[r * ldo + j] = o32[r * n + j]!;
  };
}

/** Columns d·GH .. (d+1)·GH of the precomputed projection (layout 0, width numDir·GH). */
function projectedColumns(a: RnnBindArgs, GH: number): (d: number) => Float64Array {
  return (d) => {
    rnnInt8Stats.projectedInputs++;
    const rows = a.seq * a.batch, w = a.xWidth;
    const xw = new Float64Array(rows * GH);
    for (let r = 0; r < rows; r++) xw.set(a.x.subarray(r * w + d * GH, r * w + (d + 1) * GH), r * GH);
    return xw;
  };
}

/** A backend's Q8Gemm compiled for rows row0..row0+n of direction d's R: out [rows, n] for H rows [rows, hidden]. */
type RecurKernel = (d: number, row0: number, n: number) => { kernel: Kernel; ctx: KernelContext };

/** The int8 form; with `fast`, an int8 R's products run through a backend's Q8Gemm kernels. */
function int8Form(fast?: RecurKernel): RnnForm {
  return { bind: (a) => bindInt8(a, fast) };
}

function fastRecurrence(fast: RecurKernel, hidden: number): RnnProducts['recur'] {
  return (d, h, rows, row0, n, out, ldo) => {
    rnnInt8Stats.recurrentProducts++;
    const { kernel, ctx } = fast(d, row0, n);
    const H = Tensor.from('float32', [rows, hidden], Float32Array.from(h.subarray(0, rows * hidden))); // rounds to float32
    const y = kernel([H], ctx)[0]!.data as Float32Array;
    for (let r = 0; r < rows; r++) for (let j = 0; j < n; j++) out[r * ldo + j] = y[r * n + j]!;
  };
}

function bindInt8(a: RnnBindArgs, fast: RecurKernel | undefined): ReturnType<RnnForm['bind']> {
  const { G, numDir, inputs, ctx } = a;
  const op = ctx.node.opType;
  const [X, W, R] = inputs as [Tensor, Tensor | undefined, Tensor | undefined];
  const Rs = inputs[R_SCALE_INPUT];
  check(X.dtype === 'float32', () => `${op} input X should be float32, got ${X.dtype}`);
  check(R, `${op} needs input R`);
  const projected = ctx.attrs.int('projected', 0) !== 0;
  check(R.rank === 3 && R.shape[0] === numDir && R.shape[1]! % G === 0,
    () => `${op} input R should have shape [${numDir}, ${G}*hidden, hidden], got ${R.dtype} ${shapeStr(R.shape)}`);
  const hidden = ctx.attrs.int('hidden_size', R.shape[1]! / G);
  const GH = G * hidden;
  check(R.shape[1] === GH && R.shape[2] === hidden,
    () => `${op} input R should have shape [${numDir}, ${GH}, ${hidden}] (hidden_size ${hidden}), got ${R.dtype} ${shapeStr(R.shape)}`);
  let project: RnnProducts['project'];
  if (projected) {
    check(!W, () => `${op} with projected=1 takes X·Wᵀ as input 0 and no W`);
    check(a.xWidth === numDir * GH,
      () => `${op} projected input should end in ${numDir}·${GH} = ${numDir * GH} (X·Wᵀ of every direction), got ${shapeStr(X.shape)}`);
    project = projectedColumns(a, GH);
  } else {
    check(W && W.dtype === 'float32', () => `${op} input W should be float32, got ${W ? W.dtype : 'nothing'}`);
    check(W.rank === 3 && W.shape[0] === numDir && W.shape[1] === GH && W.shape[2] === a.xWidth,
      () => `${op} input W should have shape [${numDir}, ${GH}, ${a.xWidth}], got ${shapeStr(W.shape)}`);
    project = floatProjection(a, f64(W), GH);
  }
  let recur: RnnProducts['recur'];
  if (R.dtype === 'int8') {
    check(Rs, () => `${op} input R is int8 but its scales (input ${R_SCALE_INPUT}) are missing`);
    recur = fast ? fastRecurrence(fast, hidden) : int8Recurrence(op, R, Rs, numDir, GH, hidden, ctx);
  } else {
    check(R.dtype === 'float32' && !Rs, () => `${op} input R should be int8 with scales or float32 without, got ${R.dtype}${Rs ? ' with scales' : ''}`);
    recur = floatRecurrence(f64(R), GH, hidden);
  }
  return { hidden, products: { project, recur } };
}

const RUN = { Q8LSTM: runLSTM, Q8GRU: runGRU, Q8RNN: runRNN } as const;
const GATES = { Q8LSTM: 4, Q8GRU: 3, Q8RNN: 1 } as const;
const ONNX_OP = { Q8LSTM: 'LSTM', Q8GRU: 'GRU', Q8RNN: 'RNN' } as const;

export const Q8_RNN_OPS: OpSchema[] = [
  { opType: 'Q8LSTM', domain: 'q8', run: (i, c) => runLSTM(i, c, int8Form()) },
  { opType: 'Q8GRU', domain: 'q8', run: (i, c) => runGRU(i, c, int8Form()) },
  { opType: 'Q8RNN', domain: 'q8', run: (i, c) => runRNN(i, c, int8Form()) },
];

/**
 * Fast Q8LSTM / Q8GRU / Q8RNN for a backend: the recurrent products of a constant int8 R run through
 * the backend's own Q8Gemm kernel (compiled on R's rows of each direction, per gate range the op
 * uses); the gate code stays ops/rnn.ts's. A backend adds them next to its Q8Gemm:
 * `...q8RecurrentKernels(compileQ8Gemm)`. null (the reference runs) when R is not a constant int8
 * tensor of the right shape or the backend's Q8Gemm refuses it.
 */
export function q8RecurrentKernels(compileQ8Gemm: (args: CompileArgs) => Kernel | null): FastKernel[] {
  return (Object.keys(RUN) as (keyof typeof RUN)[]).map((opType) => ({
    opType, domain: 'q8',
    compile(args: CompileArgs): Kernel | null {
      const { node } = args;
      const R = args.consts[2], Rs = args.consts[R_SCALE_INPUT];
      if (!R || R.dtype !== 'int8' || R.rank !== 3 || !Rs || Rs.dtype !== 'float32') return null;
      const [numDir, GH, hidden] = R.shape as [number, number, number];
      if (GH !== GATES[opType] * hidden || hidden === 0 || Rs.size % (numDir * GH) !== 0) return null;
      const nb = Rs.size / (numDir * GH);
      const q = R.data as Int8Array, sc = Rs.data as Float32Array;
      const attrs = { weight_block: node.attrs['weight_block'] ?? { type: 'int', value: 0 }, act_block: node.attrs['act_block'] ?? { type: 'int', value: 0 } } as Record<string, AttrValue>;
      const compileRows = (d: number, row0: number, n: number) => {
        const r0 = d * GH + row0;
        const gemm: Node = { name: `${node.name}__q8_recurrence`, opType: 'Q8Gemm', domain: 'q8', inputs: ['h', 'rq', 'rs'], outputs: ['hr'], attrs };
        const Wq = Tensor.from('int8', [n, hidden], q.slice(r0 * hidden, (r0 + n) * hidden));
        const Ws = Tensor.from('float32', nb === 1 ? [n] : [n, nb], sc.slice(r0 * nb, (r0 + n) * nb));
        const kernel = compileQ8Gemm({ node: gemm, consts: [undefined, Wq, Ws], opset: 1, threads: args.threads });
        // Its own context: the Q8Gemm's attributes, plain buffers (the session's pool tracks graph values only).
        return kernel ? { kernel, ctx: makeContext(gemm, 1) } : null;
      };
      const lbr = node.attrs['linear_before_reset'];
      const ranges = recurRanges(ONNX_OP[opType], lbr?.type === 'int' && lbr.value !== 0, hidden);
      const kernels = new Map<string, { kernel: Kernel; ctx: KernelContext }>();
      for (let d = 0; d < numDir; d++) {
        for (const [row0, n] of ranges) {
          const k = compileRows(d, row0, n);
          if (!k) return null;
          kernels.set(`${d},${row0},${n}`, k);
        }
      }
      const fast: RecurKernel = (d, row0, n) => {
        const k = kernels.get(`${d},${row0},${n}`);
        check(k, () => `${opType}: no compiled recurrence for rows ${row0}..${row0 + n} of direction ${d}`);
        return k;
      };
      const form = int8Form(fast);
      return (inputs, ctx) => RUN[opType](inputs, ctx, form);
    },
  }));
}

if (!getOp('q8', 'Q8LSTM')) registerOps(Q8_RNN_OPS);

/**
 * One ONNX LSTM/GRU/RNN node run with only its W (which = 1) or R (which = 2) in int8, the way the
 * rewritten graph runs it (W: Q8Gemm then the op on X·Wᵀ). Outputs line up with node.outputs. The
 * quantization report uses it for the layer's own output cosine.
 */
export function runRnnLayerInt8(
  node: Node, opset: number, inputs: readonly (Tensor | undefined)[], which: 1 | 2,
  wShape: readonly number[], q: Int8Array, scales: Float32Array, block: number, actBlock: number,
): Tensor[] {
  const N = wShape[0]! * wShape[1]!, K = wShape[2]!;
  const Ws = Tensor.from('float32', block ? [N, scales.length / N] : [N], scales);
  const attrs: Record<string, AttrValue> = { ...node.attrs, act_block: { type: 'int', value: actBlock } };
  if (opset < 14) delete attrs['layout'];
  const ins = Array.from({ length: R_SCALE_INPUT + 1 }, (_, i) => inputs[i]);
  if (which === 1) {
    const gemm = { name: `${node.name}__q8_projection`, opType: 'Q8Gemm', domain: 'q8', inputs: ['x', 'wq', 'ws'], outputs: ['xw'],
      attrs: { weight_block: { type: 'int', value: block }, act_block: { type: 'int', value: actBlock } } as Record<string, AttrValue> };
    const schema = getOp('q8', 'Q8Gemm')!;
    ins[0] = invokeKernel(schema, schema.run, [inputs[0], Tensor.from('int8', [N, K], q), Ws], makeContext(gemm, 1))[0];
    ins[1] = undefined;
    attrs['projected'] = { type: 'int', value: 1 };
  } else {
    ins[2] = Tensor.from('int8', wShape, q);
    ins[R_SCALE_INPUT] = Ws;
    attrs['weight_block'] = { type: 'int', value: block };
  }
  const n: Node = { name: node.name, opType: `Q8${node.opType}`, domain: 'q8', inputs: ins.map((t, i) => (t ? `in${i}` : '')), outputs: [...node.outputs], attrs };
  const schema = getOp('q8', n.opType)!;
  return invokeKernel(schema, schema.run, ins, makeContext(n, 1));
}
