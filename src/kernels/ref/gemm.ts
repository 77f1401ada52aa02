/**
 * Plain TypeScript float32 GEMM, the fp32 hot path when no native addon is present and the
 * specification native kernels are checked against:
 *
 *   C[M×N] = alpha · op(A)[M×K] · op(B)[K×N] + beta · C
 *
 * Row-major with leading dimensions (lda, ldb, ldc) and element offsets, so callers can point at a
 * sub-matrix of a bigger buffer without copying. op(X) is X or Xᵀ (transA / transB).
 *
 * Speed comes from the classic blocking: op(B) is packed into KC×NR column panels and op(A) into
 * MC×KC row panels (this also makes the transposes free), and a 4×4 register-blocked micro-kernel
 * keeps 16 accumulators in locals. Sums are carried in doubles (JS numbers) and rounded to float32
 * once when stored, so results are at least as accurate as a float32 dot product.
 */

export interface GemmOptions {
  transA?: boolean;
  transB?: boolean;
  alpha?: number;
  /** Multiplies the existing C; 0 (the default) overwrites C and ignores its contents (even NaN). */
  beta?: number;
  aOffset?: number;
  bOffset?: number;
  cOffset?: number;
}

const MR = 4;
const NR = 4;
const KC = 256;
const MC = 128;
const NC = 2048;

// Packing buffers are reused across calls: the kernel is synchronous, so one set per process is safe.
let packA = new Float32Array(MC * KC);
let packB = new Float32Array(KC * NC);

export function gemmF32Ref(
  M: number, N: number, K: number,
  A: Float32Array, lda: number,
  B: Float32Array, ldb: number,
  C: Float32Array, ldc: number,
  opts: GemmOptions = {},
): void {
  const transA = opts.transA ?? false;
  const transB = opts.transB ?? false;
  const alpha = opts.alpha ?? 1;
  const beta = opts.beta ?? 0;
  const aOff = opts.aOffset ?? 0;
  const bOff = opts.bOffset ?? 0;
  const cOff = opts.cOffset ?? 0;
  if (M <= 0 || N <= 0) return;

  if (beta !== 1) {
    for (let i = 0; i < M; i++) {
      const row = cOff + i * ldc;
      if (beta === 0) C.fill(0, row, row + N);
      else for (let j = row; j < row + N; j++) C[j] = beta * C[j];
    }
  }
  if (K <= 0 || alpha === 0) return;
  if (M < MR) {
    smallM(M, N, K, A, aOff, transA ? 1 : lda, transA ? lda : 1, B, bOff, transB ? 1 : ldb, transB ? ldb : 1, C, cOff, ldc, alpha);
    return;
  }

  // A row is strided by lda unless transposed, in which case rows of op(A) are columns of A.
  const aRow = transA ? 1 : lda;
  const aCol = transA ? lda : 1;
  const bRow = transB ? 1 : ldb;
  const bCol = transB ? ldb : 1;

  for (let jc = 0; jc < N; jc += NC) {
    const nc = Math.min(NC, N - jc);
    const nPanels = Math.ceil(nc / NR);
    for (let pc = 0; pc < K; pc += KC) {
      const kc = Math.min(KC, K - pc);
      packPanelsB(B, bOff + pc * bRow + jc * bCol, bRow, bCol, kc, nc, nPanels);
      for (let ic = 0; ic < M; ic += MC) {
        const mc = Math.min(MC, M - ic);
        const mPanels = Math.ceil(mc / MR);
        packPanelsA(A, aOff + ic * aRow + pc * aCol, aRow, aCol, mc, kc, mPanels);
        for (let jp = 0; jp < nPanels; jp++) {
          const j0 = jc + jp * NR;
          const nr = Math.min(NR, N - j0);
          for (let ip = 0; ip < mPanels; ip++) {
            const i0 = ic + ip * MR;
            const mr = Math.min(MR, M - i0);
            micro4x4(kc, ip * kc * MR, jp * kc * NR, C, cOff + i0 * ldc + j0, ldc, mr, nr, alpha);
          }
        }
      }
    }
  }
}

/**
 * A few rows (a matrix-vector product, e.g. a fully connected layer at batch 1): packing op(B)
 * would cost as much as the product itself, so stream B once instead.
 */
function smallM(
  M: number, N: number, K: number, A: Float32Array, aOff: number, aRow: number, aCol: number,
  B: Float32Array, bOff: number, bRow: number, bCol: number, C: Float32Array, cOff: number, ldc: number, alpha: number,
): void {
  if (bCol === 1) {
    // Rows of op(B) are contiguous: accumulate a[k] * B[k, :] into a double row.
    const acc = new Float64Array(N);
    for (let i = 0; i < M; i++) {
      acc.fill(0);
      for (let k = 0; k < K; k++) {
        const a = A[aOff + i * aRow + k * aCol];
        const b0 = bOff + k * bRow;
        for (let j = 0; j < N; j++) acc[j] += a * B[b0 + j];
      }
      const r = cOff + i * ldc;
      for (let j = 0; j < N; j++) C[r + j] += alpha * acc[j];
    }
    return;
  }
  // Columns of op(B) are contiguous (transB): dot products, four outputs at a time sharing each a[k].
  for (let i = 0; i < M; i++) {
    const a0 = aOff + i * aRow;
    const c0 = cOff + i * ldc;
    let j = 0;
    for (; j + 3 < N; j += 4) {
      const b0 = bOff + j * bCol, b1 = b0 + bCol, b2 = b1 + bCol, b3 = b2 + bCol;
      let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
      for (let k = 0; k < K; k++) {
        const a = A[a0 + k * aCol];
        s0 += a * B[b0 + k]; s1 += a * B[b1 + k]; s2 += a * B[b2 + k]; s3 += a * B[b3 + k];
      }
      C[c0 + j] += alpha * s0; C[c0 + j + 1] += alpha * s1; C[c0 + j + 2] += alpha * s2; C[c0 + j + 3] += alpha * s3;
    }
    for (; j < N; j++) {
      const b0 = bOff + j * bCol;
      let s = 0;
      for (let k = 0; k < K; k++) s += A[a0 + k * aCol] * B[b0 + k];
      C[c0 + j] += alpha * s;
    }
  }
}

/** op(B)[k, j] lives at B[off + k*rs + j*cs]; panels of NR columns, k-major inside, zero-padded. */
function packPanelsB(B: Float32Array, off: number, rs: number, cs: number, kc: number, nc: number, nPanels: number): void {
  if (packB.length < nPanels * NR * kc) packB = new Float32Array(nPanels * NR * kc);
  const P = packB;
  for (let jp = 0; jp < nPanels; jp++) {
    const j0 = jp * NR;
    const base = jp * kc * NR;
    if (j0 + NR <= nc) {
      if (cs === 1) {
        for (let k = 0; k < kc; k++) {
          const s = off + k * rs + j0;
          const d = base + k * NR;
          P[d] = B[s]; P[d + 1] = B[s + 1]; P[d + 2] = B[s + 2]; P[d + 3] = B[s + 3];
        }
      } else {
        for (let k = 0; k < kc; k++) {
          const s = off + k * rs + j0 * cs;
          const d = base + k * NR;
          P[d] = B[s]; P[d + 1] = B[s + cs]; P[d + 2] = B[s + 2 * cs]; P[d + 3] = B[s + 3 * cs];
        }
      }
    } else {
      for (let k = 0; k < kc; k++) {
        const d = base + k * NR;
        for (let j = 0; j < NR; j++) P[d + j] = j0 + j < nc ? B[off + k * rs + (j0 + j) * cs] : 0;
      }
    }
  }
}

/** op(A)[i, k] lives at A[off + i*rs + k*cs]; panels of MR rows, k-major inside, zero-padded. */
function packPanelsA(A: Float32Array, off: number, rs: number, cs: number, mc: number, kc: number, mPanels: number): void {
  if (packA.length < mPanels * MR * kc) packA = new Float32Array(mPanels * MR * kc);
  const P = packA;
  for (let ip = 0; ip < mPanels; ip++) {
    const i0 = ip * MR;
    const base = ip * kc * MR;
    if (i0 + MR <= mc) {
      const r0 = off + i0 * rs;
      const r1 = r0 + rs, r2 = r1 + rs, r3 = r2 + rs;
      for (let k = 0; k < kc; k++) {
        const d = base + k * MR;
        const s = k * cs;
        P[d] = A[r0 + s]; P[d + 1] = A[r1 + s]; P[d + 2] = A[r2 + s]; P[d + 3] = A[r3 + s];
      }
    } else {
      for (let k = 0; k < kc; k++) {
        const d = base + k * MR;
        for (let i = 0; i < MR; i++) P[d + i] = i0 + i < mc ? A[off + (i0 + i) * rs + k * cs] : 0;
      }
    }
  }
}

function micro4x4(
  kc: number, pa: number, pb: number, C: Float32Array, c0: number, ldc: number, mr: number, nr: number, alpha: number,
): void {
  const A = packA;
  const B = packB;
  let c00 = 0, c01 = 0, c02 = 0, c03 = 0;
  let c10 = 0, c11 = 0, c12 = 0, c13 = 0;
  let c20 = 0, c21 = 0, c22 = 0, c23 = 0;
  let c30 = 0, c31 = 0, c32 = 0, c33 = 0;
  for (let k = 0; k < kc; k++) {
    const a0 = A[pa], a1 = A[pa + 1], a2 = A[pa + 2], a3 = A[pa + 3];
    const b0 = B[pb], b1 = B[pb + 1], b2 = B[pb + 2], b3 = B[pb + 3];
    c00 += a0 * b0; c01 += a0 * b1; c02 += a0 * b2; c03 += a0 * b3;
    c10 += a1 * b0; c11 += a1 * b1; c12 += a1 * b2; c13 += a1 * b3;
    c20 += a2 * b0; c21 += a2 * b1; c22 += a2 * b2; c23 += a2 * b3;
    c30 += a3 * b0; c31 += a3 * b1; c32 += a3 * b2; c33 += a3 * b3;
    pa += MR;
    pb += NR;
  }
  if (mr === MR && nr === NR) {
    let r = c0;
    C[r] += alpha * c00; C[r + 1] += alpha * c01; C[r + 2] += alpha * c02; C[r + 3] += alpha * c03; r += ldc;
    C[r] += alpha * c10; C[r + 1] += alpha * c11; C[r + 2] += alpha * c12; C[r + 3] += alpha * c13; r += ldc;
    C[r] += alpha * c20; C[r + 1] += alpha * c21; C[r + 2] += alpha * c22; C[r + 3] += alpha * c23; r += ldc;
    C[r] += alpha * c30; C[r + 1] += alpha * c31; C[r + 2] += alpha * c32; C[r + 3] += alpha * c33;
    return;
  }
  const acc = [c00, c01, c02, c03, c10, c11, c12, c13, c20, c21, c22, c23, c30, c31, c32, c33];
  for (let i = 0; i < mr; i++) for (let j = 0; j < nr; j++) C[c0 + i * ldc + j] += alpha * acc[i * 4 + j];
}

/**
 * float64 GEMM with the same contract as gemmF32Ref (plain loops: float64 models are rare, this is
 * the correctness path, not the fast one).
 */
export function gemmF64Ref(
  M: number, N: number, K: number,
  A: Float64Array, lda: number,
  B: Float64Array, ldb: number,
  C: Float64Array, ldc: number,
  opts: GemmOptions = {},
): void {
  const alpha = opts.alpha ?? 1;
  const beta = opts.beta ?? 0;
  const aOff = opts.aOffset ?? 0, bOff = opts.bOffset ?? 0, cOff = opts.cOffset ?? 0;
  const aRow = opts.transA ? 1 : lda, aCol = opts.transA ? lda : 1;
  const bRow = opts.transB ? 1 : ldb, bCol = opts.transB ? ldb : 1;
  const acc = new Float64Array(N);
  for (let i = 0; i < M; i++) {
    acc.fill(0);
    for (let k = 0; k < K; k++) {
      const a = A[aOff + i * aRow + k * aCol];
      const b0 = bOff + k * bRow;
      for (let j = 0; j < N; j++) acc[j] += a * B[b0 + j * bCol];
    }
    const r = cOff + i * ldc;
    for (let j = 0; j < N; j++) C[r + j] = alpha * acc[j] + (beta === 0 ? 0 : beta * C[r + j]);
  }
}
