/**
 * Gemm and MatMul. float32 goes through the blocked GEMM of src/kernels/ref; float64 through its
 * plain twin; integer types through exact loops that wrap like C (int32 via Math.imul, 64-bit via
 * bigint, narrower types by the typed-array store).
 */
import { Q8Error, check } from '../core/errors.js';
import type { DType, NumericArray } from '../core/dtype.js';
import { broadcastShapes, shapeStr, stridesOf } from '../core/shape.js';
import { gemmF32Ref, gemmF64Ref, type GemmOptions } from '../kernels/ref/gemm.js';
import type { KernelContext, OpSchema } from './registry.js';
import type { Tensor } from '../tensor/tensor.js';

const INT_TYPES = new Set<DType>(['int8', 'int16', 'int32', 'int64', 'uint8', 'uint16', 'uint32', 'uint64']);

/** C[M×N] (= or +=) alpha·op(A)·op(B) for any numeric dtype; float32/float64 use the ref GEMMs. */
function gemmAny(
  dtype: DType, M: number, N: number, K: number,
  A: Tensor['data'], lda: number, B: Tensor['data'], ldb: number, C: Tensor['data'], ldc: number, o: GemmOptions,
): void {
  if (dtype === 'float32') return gemmF32Ref(M, N, K, A as Float32Array, lda, B as Float32Array, ldb, C as Float32Array, ldc, o);
  if (dtype === 'float64') return gemmF64Ref(M, N, K, A as Float64Array, lda, B as Float64Array, ldb, C as Float64Array, ldc, o);
  if (!INT_TYPES.has(dtype)) throw new Q8Error(`dtype ${dtype} is not supported here`);
  const alpha = o.alpha ?? 1, beta = o.beta ?? 0;
  const aOff = o.aOffset ?? 0, bOff = o.bOffset ?? 0, cOff = o.cOffset ?? 0;
  const aRow = o.transA ? 1 : lda, aCol = o.transA ? lda : 1;
  const bRow = o.transB ? 1 : ldb, bCol = o.transB ? ldb : 1;
  if (dtype === 'int64' || dtype === 'uint64') {
    const a = A as BigInt64Array, b = B as BigInt64Array, c = C as BigInt64Array;
    // alpha/beta are float attributes; integral ones (the usual 1 and 0) stay exact.
    const al = BigInt(Math.trunc(alpha)), be = BigInt(Math.trunc(beta));
    check(Number.isInteger(alpha) && Number.isInteger(beta), '64-bit integer Gemm supports only integral alpha and beta');
    for (let i = 0; i < M; i++) {
      for (let j = 0; j < N; j++) {
        let s = 0n;
        for (let k = 0; k < K; k++) s += a[aOff + i * aRow + k * aCol] * b[bOff + k * bRow + j * bCol];
        const ci = cOff + i * ldc + j;
        c[ci] = al * s + (be === 0n ? 0n : be * c[ci]);
      }
    }
    return;
  }
  const a = A as NumericArray, b = B as NumericArray, c = C as NumericArray;
  const wide = dtype === 'int32' || dtype === 'uint32';
  for (let i = 0; i < M; i++) {
    for (let j = 0; j < N; j++) {
      let s = 0;
      if (wide) {
        for (let k = 0; k < K; k++) s = (s + Math.imul(a[aOff + i * aRow + k * aCol], b[bOff + k * bRow + j * bCol])) | 0;
        if (dtype === 'uint32') s >>>= 0;
      } else {
        for (let k = 0; k < K; k++) s += a[aOff + i * aRow + k * aCol] * b[bOff + k * bRow + j * bCol];
      }
      const ci = cOff + i * ldc + j;
      const v = (alpha === 1 ? s : alpha * s) + (beta === 0 ? 0 : beta * c[ci]);
      c[ci] = wide && dtype === 'int32' ? v | 0 : wide ? v >>> 0 : v;
    }
  }
}

function runGemm(inputs: readonly (Tensor | undefined)[], ctx: KernelContext): Tensor[] {
  const [A, B, Cin] = inputs;
  check(A && B, 'Gemm needs inputs A and B');
  check(A.dtype === B.dtype, () => `Gemm inputs A and B should have the same dtype, got ${A.dtype} and ${B.dtype}`);
  check(A.rank === 2 && B.rank === 2, () => `Gemm inputs should be 2-D, got A ${shapeStr(A.shape)} and B ${shapeStr(B.shape)}`);
  const transA = ctx.attrs.int('transA', 0) !== 0, transB = ctx.attrs.int('transB', 0) !== 0;
  const alpha = ctx.attrs.float('alpha', 1), beta = ctx.attrs.float('beta', 1);
  const M = transA ? A.shape[1] : A.shape[0], K = transA ? A.shape[0] : A.shape[1];
  const Kb = transB ? B.shape[1] : B.shape[0], N = transB ? B.shape[0] : B.shape[1];
  check(K === Kb, () => `Gemm inner dimensions differ: op(A) is [${M},${K}], op(B) is [${Kb},${N}] (transA=${+transA}, transB=${+transB})`);
  if (ctx.opset < 11) check(Cin, 'Gemm before opset 11 needs input C');
  const Y = ctx.alloc(A.dtype, [M, N]);
  let acc = false;
  if (Cin) {
    check(Cin.dtype === A.dtype, () => `Gemm input C should be ${A.dtype}, got ${Cin.dtype}`);
    if (ctx.opset < 7 && ctx.attrs.int('broadcast', 0) === 0) {
      check(Cin.rank === 2 && Cin.shape[0] === M && Cin.shape[1] === N,
        () => `Gemm input C should have shape [${M},${N}] (attribute broadcast=0 before opset 7), got ${shapeStr(Cin.shape)}`);
    }
    check(Cin.rank <= 2, () => `Gemm input C should have rank <= 2, got ${shapeStr(Cin.shape)}`);
    const cs = Cin.rank === 2 ? Cin.shape : Cin.rank === 1 ? [1, Cin.shape[0]] : [1, 1];
    check((cs[0] === 1 || cs[0] === M) && (cs[1] === 1 || cs[1] === N),
      () => `Gemm input C of shape ${shapeStr(Cin.shape)} does not broadcast to [${M},${N}]`);
    if (beta !== 0) {
      const rs = cs[0] === 1 ? 0 : cs[1], ks = cs[1] === 1 ? 0 : 1;
      const c = Cin.data, y = Y.data;
      for (let i = 0; i < M; i++) for (let j = 0; j < N; j++) (y as unknown as number[])[i * N + j] = (c as unknown as number[])[i * rs + j * ks];
      acc = true;
    }
  }
  gemmAny(A.dtype, M, N, K, A.data, A.shape[1], B.data, B.shape[1], Y.data, N, { transA, transB, alpha, beta: acc ? beta : 0 });
  return [Y];
}

function runMatMul(inputs: readonly (Tensor | undefined)[], ctx: KernelContext): Tensor[] {
  const [A, B] = inputs;
  check(A && B, 'MatMul needs inputs A and B');
  check(A.dtype === B.dtype, () => `MatMul inputs should have the same dtype, got ${A.dtype} and ${B.dtype}`);
  check(A.rank >= 1 && B.rank >= 1, () => `MatMul inputs should have rank >= 1, got ${shapeStr(A.shape)} and ${shapeStr(B.shape)}`);
  check(A.dtype === 'float32' || A.dtype === 'float64' || INT_TYPES.has(A.dtype), () => `MatMul does not support dtype ${A.dtype}`);
  // 1-D operands: A gets a leading 1, B a trailing 1, removed from the result again.
  const aS = A.rank === 1 ? [1, A.shape[0]] : A.shape;
  const bS = B.rank === 1 ? [B.shape[0], 1] : B.shape;
  const M = aS[aS.length - 2], K = aS[aS.length - 1], N = bS[bS.length - 1];
  check(bS[bS.length - 2] === K, () => `MatMul inner dimensions differ: A ${shapeStr(A.shape)}, B ${shapeStr(B.shape)}`);
  const aBatch = aS.slice(0, -2), bBatch = bS.slice(0, -2);
  const batch = broadcastShapes(aBatch, bBatch);
  const outShape = [...batch];
  if (A.rank !== 1) outShape.push(M);
  if (B.rank !== 1) outShape.push(N);
  const Y = ctx.alloc(A.dtype, outShape);
  const nb = batch.reduce((a, b) => a * b, 1);
  if (nb === 0 || M === 0 || N === 0) return [Y];
  if (bBatch.every((d) => d === 1) && aBatch.length === batch.length) {
    // Shared B: fold A's batch into rows, one GEMM.
    gemmAny(A.dtype, nb * M, N, K, A.data, K, B.data, N, Y.data, N, {});
    return [Y];
  }
  // Batch strides in matrices (0 along broadcast dims).
  const rank = batch.length;
  const stridesFor = (s: readonly number[]) => {
    const full = [...new Array<number>(rank - s.length).fill(1), ...s];
    const st = stridesOf(full);
    return full.map((d, i) => (d === 1 ? 0 : st[i]));
  };
  const as = stridesFor(aBatch), bs = stridesFor(bBatch);
  const idx = new Array<number>(rank).fill(0);
  for (let b = 0; b < nb; b++) {
    let ai = 0, bi = 0;
    for (let d = 0; d < rank; d++) { ai += idx[d] * as[d]; bi += idx[d] * bs[d]; }
    gemmAny(A.dtype, M, N, K, A.data, K, B.data, N, Y.data, N, { aOffset: ai * M * K, bOffset: bi * K * N, cOffset: b * M * N });
    for (let d = rank - 1; d >= 0; d--) { if (++idx[d] < batch[d]) break; idx[d] = 0; }
  }
  return [Y];
}

export const ops: OpSchema[] = [
  { opType: 'Gemm', run: runGemm },
  { opType: 'MatMul', run: runMatMul },
];
