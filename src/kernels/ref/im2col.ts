/**
 * Patch extraction for convolution as GEMM. Patch layout (shared with the int8 kernels, see
 * notes/quant-contract.md): for one group, the K = C·kh·kw values of an output position are ordered
 * k = (c*kh + ky)*kw + kx, the ONNX flattening order of a [M, C/group, kh, kw] weight. Positions
 * outside the input (padding) contribute exact zeros.
 *
 * Two layouts of the same numbers:
 *   im2colRef: col[k, p]   (K rows × P columns; out[M×P] = W[M×K] · col, NCHW comes out directly)
 *   im2rowRef: row[p, k]   (P rows × K columns; one row per patch, used by row-window quantization)
 * Both work on a range [p0, p0 + pCount) of output positions p = oy*OW + ox so callers can tile.
 */

/** 2-D convolution geometry for one group of C input channels. 1-D is H = kh = 1. */
export interface Conv2DGeom {
  C: number; H: number; W: number;
  kh: number; kw: number;
  sh: number; sw: number;
  dh: number; dw: number;
  /** Padding before the first row / column. */
  padTop: number; padLeft: number;
  OH: number; OW: number;
}

/**
 * col[k*ldc + (p - p0)] = x[xOff + (c*H + iy)*W + ix] (or 0 in padding) for p in [p0, p0+pCount).
 * ldc defaults to pCount.
 */
export function im2colRef(
  x: Float32Array, xOff: number, g: Conv2DGeom, col: Float32Array, p0 = 0, pCount = g.OH * g.OW, ldc = pCount,
): void {
  const { C, H, W, kh, kw, sh, sw, dh, dw, padTop, padLeft, OW } = g;
  const pEnd = p0 + pCount;
  let k = 0;
  for (let c = 0; c < C; c++) {
    const plane = xOff + c * H * W;
    for (let ky = 0; ky < kh; ky++) {
      for (let kx = 0; kx < kw; kx++, k++) {
        const dst = k * ldc - p0;
        // Output columns ox whose input column ix = ox*sw - padLeft + kx*dw lies inside [0, W).
        const shift = kx * dw - padLeft;
        const oxLo = shift >= 0 ? 0 : Math.ceil(-shift / sw);
        const oxHi = Math.min(OW, Math.floor((W - 1 - shift) / sw) + 1); // exclusive
        let p = p0;
        while (p < pEnd) {
          const oy = Math.floor(p / OW);
          const rowStart = oy * OW;
          const segEnd = Math.min(pEnd, rowStart + OW);
          const iy = oy * sh - padTop + ky * dh;
          if (iy < 0 || iy >= H || oxLo >= oxHi) {
            col.fill(0, dst + p, dst + segEnd);
          } else {
            const src = plane + iy * W + shift;
            const a = Math.max(p, rowStart + oxLo);
            const b = Math.min(segEnd, rowStart + oxHi);
            if (a > p) col.fill(0, dst + p, dst + a);
            if (sw === 1) {
              for (let q = a; q < b; q++) col[dst + q] = x[src + (q - rowStart)];
            } else {
              for (let q = a; q < b; q++) col[dst + q] = x[src + (q - rowStart) * sw];
            }
            if (b < segEnd) col.fill(0, dst + Math.max(b, p), dst + segEnd);
          }
          p = segEnd;
        }
      }
    }
  }
}

/** row[(p - p0)*ldr + k]: the same patches, one row per output position. ldr defaults to K. */
export function im2rowRef(
  x: Float32Array, xOff: number, g: Conv2DGeom, row: Float32Array, p0 = 0, pCount = g.OH * g.OW,
  ldr = g.C * g.kh * g.kw,
): void {
  const { C, H, W, kh, kw, sh, sw, dh, dw, padTop, padLeft, OW } = g;
  for (let p = p0; p < p0 + pCount; p++) {
    const oy = Math.floor(p / OW);
    const ox = p - oy * OW;
    const y0 = oy * sh - padTop;
    const x0 = ox * sw - padLeft;
    let d = (p - p0) * ldr;
    for (let c = 0; c < C; c++) {
      const plane = xOff + c * H * W;
      for (let ky = 0; ky < kh; ky++) {
        const iy = y0 + ky * dh;
        if (iy < 0 || iy >= H) {
          row.fill(0, d, d + kw);
          d += kw;
          continue;
        }
        const r = plane + iy * W;
        for (let kx = 0; kx < kw; kx++, d++) {
          const ix = x0 + kx * dw;
          row[d] = ix >= 0 && ix < W ? x[r + ix] : 0;
        }
      }
    }
  }
}

/** N-D geometry (any number of spatial dims) for one group of C input channels. */
export interface ConvNDGeom {
  C: number;
  inDims: readonly number[];
  kDims: readonly number[];
  strides: readonly number[];
  dilations: readonly number[];
  padsBegin: readonly number[];
  outDims: readonly number[];
}

/** N-D im2col with the same ordering (k = c, then kernel offsets row-major); col[k*ldc + p - p0]. */
export function im2colNdRef(
  x: Float32Array | Float64Array, xOff: number, g: ConvNDGeom, col: Float32Array | Float64Array,
  p0 = 0, pCount = g.outDims.reduce((a, b) => a * b, 1), ldc = pCount,
): void {
  const nd = g.inDims.length;
  const inSize = g.inDims.reduce((a, b) => a * b, 1);
  const kSize = g.kDims.reduce((a, b) => a * b, 1);
  const kIdx = new Array<number>(nd).fill(0);
  const oIdx = new Array<number>(nd).fill(0);
  for (let c = 0; c < g.C; c++) {
    for (let kk = 0; kk < kSize; kk++) {
      let r = kk;
      for (let d = nd - 1; d >= 0; d--) { kIdx[d] = r % g.kDims[d]; r = Math.floor(r / g.kDims[d]); }
      const dst = (c * kSize + kk) * ldc - p0;
      for (let p = p0; p < p0 + pCount; p++) {
        let q = p;
        for (let d = nd - 1; d >= 0; d--) { oIdx[d] = q % g.outDims[d]; q = Math.floor(q / g.outDims[d]); }
        let off = 0;
        let inside = true;
        for (let d = 0; d < nd; d++) {
          const i = oIdx[d] * g.strides[d] - g.padsBegin[d] + kIdx[d] * g.dilations[d];
          if (i < 0 || i >= g.inDims[d]) { inside = false; break; }
          off = off * g.inDims[d] + i;
        }
        col[dst + p] = inside ? x[xOff + c * inSize + off] : 0;
      }
    }
  }
}

/**
 * The inverse scatter used by ConvTranspose: y[c, spatial] += col[k, p] for every patch element
 * that lands inside y. y is C planes of prod(outDims); col is [C·prod(kDims) × prod(inDims)] where
 * "in" here is the (smaller) grid of source positions. Works for any number of spatial dims.
 */
export function col2imNdAddRef(
  col: Float32Array | Float64Array, g: ConvNDGeom, y: Float32Array | Float64Array, yOff: number,
): void {
  // Roles: g.outDims = positions of the source grid (X spatial), g.inDims = image being written (Y).
  const nd = g.inDims.length;
  const ySize = g.inDims.reduce((a, b) => a * b, 1);
  const kSize = g.kDims.reduce((a, b) => a * b, 1);
  const P = g.outDims.reduce((a, b) => a * b, 1);
  const kIdx = new Array<number>(nd).fill(0);
  const oIdx = new Array<number>(nd).fill(0);
  for (let c = 0; c < g.C; c++) {
    for (let kk = 0; kk < kSize; kk++) {
      let r = kk;
      for (let d = nd - 1; d >= 0; d--) { kIdx[d] = r % g.kDims[d]; r = Math.floor(r / g.kDims[d]); }
      const src = (c * kSize + kk) * P;
      for (let p = 0; p < P; p++) {
        let q = p;
        for (let d = nd - 1; d >= 0; d--) { oIdx[d] = q % g.outDims[d]; q = Math.floor(q / g.outDims[d]); }
        let off = 0;
        let inside = true;
        for (let d = 0; d < nd; d++) {
          const i = oIdx[d] * g.strides[d] - g.padsBegin[d] + kIdx[d] * g.dilations[d];
          if (i < 0 || i >= g.inDims[d]) { inside = false; break; }
          off = off * g.inDims[d] + i;
        }
        if (inside) y[yOff + c * ySize + off] += col[src + p];
      }
    }
  }
}

/**
 * The adjoint of im2colRef (2-D, same geometry): y[c, iy, ix] += col[k, p] for every tap inside the
 * image. ConvTranspose uses it with the roles swapped: the image is its output, the patch grid
 * (OH × OW) its input positions. col is [C·kh·kw × OH·OW].
 */
export function col2imRef(col: Float32Array, g: Conv2DGeom, y: Float32Array, yOff: number): void {
  const { C, H, W, kh, kw, sh, sw, dh, dw, padTop, padLeft, OH, OW } = g;
  const P = OH * OW;
  let k = 0;
  for (let c = 0; c < C; c++) {
    const plane = yOff + c * H * W;
    for (let ky = 0; ky < kh; ky++) {
      for (let kx = 0; kx < kw; kx++, k++) {
        const shift = kx * dw - padLeft;
        const oxLo = shift >= 0 ? 0 : Math.ceil(-shift / sw);
        const oxHi = Math.min(OW, Math.floor((W - 1 - shift) / sw) + 1);
        for (let oy = 0; oy < OH; oy++) {
          const iy = oy * sh - padTop + ky * dh;
          if (iy < 0 || iy >= H) continue;
          const dst = plane + iy * W + shift;
          const src = k * P + oy * OW;
          for (let ox = oxLo; ox < oxHi; ox++) y[dst + ox * sw] += col[src + ox];
        }
      }
    }
  }
}
