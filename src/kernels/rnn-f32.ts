/**
 * Fast float32 LSTM / GRU / RNN for a backend: the two matrix products of ops/rnn.ts (X·Wᵀ of every
 * step, and each step's H·Rᵀ) run through the backend's own float32 Gemm kernel, compiled once on
 * the constant W of each direction and on the rows of R each gate range uses; the gate code stays
 * ops/rnn.ts's (one copy, float64 as in the reference). The products' inputs round to float32 and
 * they sum in float32, as a float32 model's Gemm would; the reference sums in float64.
 *
 * A backend adds them next to its Gemm: `...f32RecurrentKernels(compileGemm)`. null (the reference
 * runs) when W or R is not a constant float32 tensor of the ONNX shapes, or the backend's Gemm refuses
 * it; at run time a float64 X, or W/R of other shapes, run the reference form.
 */
import { check } from '../core/errors.js';
import type { Node } from '../graph/ir.js';
import type { Kernel, KernelContext } from '../ops/registry.js';
import { floatForm, recurRanges, runGRU, runLSTM, runRNN, type RnnForm, type RnnProducts } from '../ops/rnn.js';
import { attrsFrom, makeContext } from '../runtime/invoke.js';
import { Tensor } from '../tensor/tensor.js';
import type { CompileArgs, FastKernel } from './registry.js';

const RUN = { LSTM: runLSTM, GRU: runGRU, RNN: runRNN } as const;
const GATES = { LSTM: 4, GRU: 3, RNN: 1 } as const;

/** How often the float32 products ran (tests check the fast path, not the reference, was taken). */
export const rnnF32Stats = { projections: 0, recurrences: 0 };

interface Compiled { kernel: Kernel; ctx: KernelContext; B: Tensor }

export function f32RecurrentKernels(compileGemm: (args: CompileArgs) => Kernel | null): FastKernel[] {
  return (Object.keys(RUN) as (keyof typeof RUN)[]).map((opType) => ({
    opType, domain: '',
    compile(args: CompileArgs): Kernel | null {
      const { node } = args;
      const W = args.consts[1], R = args.consts[2];
      if (!W || !R || W.dtype !== 'float32' || R.dtype !== 'float32' || W.rank !== 3 || R.rank !== 3) return null;
      const [numDir, GH, input] = W.shape as [number, number, number];
      const hidden = R.shape[2]!;
      if (GH !== GATES[opType] * hidden || R.shape[0] !== numDir || R.shape[1] !== GH || hidden === 0 || input === 0) return null;
      const hs = node.attrs['hidden_size'];
      if (hs && (hs.type !== 'int' || hs.value !== hidden)) return null;
      // One float32 Gemm, out = A·Bᵀ, for rows [row0, row0 + n) of a [numDir, GH, K] weight's direction d.
      const compileRows = (T: Tensor, d: number, row0: number, n: number, what: string): Compiled | null => {
        const K = T.shape[2]!, data = T.data as Float32Array, r0 = d * GH + row0;
        const gemm: Node = { name: `${node.name}__${what}`, opType: 'Gemm', domain: '', inputs: ['a', 'b'], outputs: ['y'], attrs: attrsFrom({ transB: 1 }) };
        const B = Tensor.from('float32', [n, K], data.slice(r0 * K, (r0 + n) * K));
        const kernel = compileGemm({ node: gemm, consts: [undefined, B], opset: 13, threads: args.threads });
        // Its own context with plain buffers (the session's pool tracks graph values only).
        return kernel ? { kernel, ctx: makeContext(gemm, 13), B } : null;
      };
      const lbr = node.attrs['linear_before_reset'];
      const ranges = recurRanges(opType, lbr?.type === 'int' && lbr.value !== 0, hidden);
      const proj: Compiled[] = [];
      const recur = new Map<string, Compiled>();
      for (let d = 0; d < numDir; d++) {
        const p = compileRows(W, d, 0, GH, 'projection');
        if (!p) return null;
        proj.push(p);
        for (const [row0, n] of ranges) {
          const k = compileRows(R, d, row0, n, 'recurrence');
          if (!k) return null;
          recur.set(`${d},${row0},${n}`, k);
        }
      }
      const run = (c: Compiled, A: Float32Array, rows: number, K: number): Float32Array =>
        c.kernel([Tensor.from('float32', [rows, K], A), c.B], c.ctx)[0]!.data as Float32Array;
      const form: RnnForm = {
        bind(a) {
          const [X, Wi, Ri] = a.inputs;
          // Other dtypes or shapes than compiled: the reference form (and its errors).
          if (a.dtype !== 'float32' || Wi !== W || Ri !== R || a.numDir !== numDir || a.xWidth !== input) return floatForm.bind(a);
          check(X, `${opType} needs input X`);
          const rows = a.seq * a.batch;
          const x32 = Float32Array.from(a.x);
          const h32 = new Float32Array(a.batch * hidden);
          const products: RnnProducts = {
            project(d) {
              rnnF32Stats.projections++;
              return Float64Array.from(run(proj[d]!, x32, rows, input));
            },
            recur(d, h, nrows, row0, n, out, ldo) {
              rnnF32Stats.recurrences++;
              const k = recur.get(`${d},${row0},${n}`);
              check(k, () => `${opType}: no compiled recurrence for rows ${row0}..${row0 + n} of direction ${d}`);
              const hv = nrows * hidden <= h32.length ? h32.subarray(0, nrows * hidden) : new Float32Array(nrows * hidden);
              for (let i = 0; i < nrows * hidden; i++) hv[i] = h[i]!;
              const y = run(k, hv, nrows, hidden);
              for (let r = 0; r < nrows; r++) for (let j = 0; j < n; j++) out[r * ldo + j] = y[r * n + j]!;
            },
          };
          return { hidden, products };
        },
      };
      return (inputs, ctx) => RUN[opType](inputs, ctx, form);
    },
  }));
}
