/**
 * The quantized types q8 knows, one row each (the way ggml describes its block types), and their
 * reference codecs. The scheme is in notes/quant-contract.md: symmetric int8 in [-127, 127], one
 * float32 scale per window, scale = amax / 127, a zero window has scale 0, all float math in float32.
 *
 * A weight matrix is output-major [N, K]. Its window is either a whole output channel (K values) or
 * blocks of B consecutive K values inside a channel (the last block may be short). Serialized, a
 * window is its float32 scale (little-endian) followed by its int8 values; in ONNX files the int8
 * values and the scales are two initializers, the same number of bytes.
 */
import { Q8Error } from '../core/errors.js';
import { roundHalfEven } from './round.js';

/** Weight window: 0 = one whole output channel, else a block of B consecutive K values. */
export type WeightBlock = 0 | 32 | 64 | 128 | 256;
/** Activation window: 0 = a whole row / im2col patch, else a block of N consecutive K values. */
export type ActBlock = number;

export interface QuantType {
  /** Stable name (used in reports and metadata). */
  readonly name: string;
  /** 'channel' or the block size B. */
  readonly weightWindow: 'channel' | 32 | 64 | 128 | 256;
  /** weight_block attribute value of Q8Gemm/Q8Conv. */
  readonly weightBlock: WeightBlock;
  /** Bytes of one serialized window holding `len` values: a float32 scale + len int8 values. */
  readonly windowBytes: (len: number) => number;
  /** Bytes of a whole [N, K] weight matrix. */
  readonly bytes: (N: number, K: number) => number;
  /** Scale count per output channel for K inputs. */
  readonly windowsPerChannel: (K: number) => number;
  /** Activation window its dot product pairs with by default (act_block attribute: 0 = row/patch). */
  readonly activationPairing: ActBlock;
  readonly quantize: (w: Float32Array, N: number, K: number, what?: string) => QuantizedWeights;
  readonly dequantize: (q: QuantizedWeights) => Float32Array;
}

export interface QuantizedWeights {
  readonly N: number;
  readonly K: number;
  readonly block: WeightBlock;
  /** int8 values, [N, K] output-major. */
  readonly q: Int8Array;
  /** float32 scales, [N, windowsPerChannel(K)]. */
  readonly scales: Float32Array;
  /** Weight SQNR in dB (signal energy over reconstruction error energy), measured while quantizing. */
  readonly sqnrDb?: number;
}

const f = Math.fround;

/**
 * Quantize x[off .. off+len) into q[qOff ..] and return the window's scale (the contract's formula).
 * NaN inputs become 0 (activations only: weights are checked before). Used for weights and activations.
 */
export function quantizeWindow(x: ArrayLike<number>, off: number, len: number, q: Int8Array | Float32Array, qOff: number): number {
  let amax = 0;
  for (let i = 0; i < len; i++) {
    const a = Math.abs(x[off + i]!);
    if (a > amax) amax = a;
  }
  amax = f(amax);
  if (amax === 0) {
    q.fill(0, qOff, qOff + len);
    return 0;
  }
  const inv = f(127 / amax);
  for (let i = 0; i < len; i++) {
    const v = roundHalfEven(f(x[off + i]! * inv));
    q[qOff + i] = v > 127 ? 127 : v < -127 ? -127 : v || 0; // NaN (and -0) -> 0
  }
  // Keep 127·scale finite: for amax near FLT_MAX the rounded scale could dequantize 127 to Infinity.
  let s = f(amax / 127);
  while (f(s * 127) === Infinity) s = f(s - s * 2 ** -23);
  return s;
}

/** Refuse NaN/Inf weights with an error that says where. */
export function checkFinite(w: ArrayLike<number>, K: number, what: string): void {
  for (let i = 0; i < w.length; i++) {
    const v = w[i]!;
    if (!Number.isFinite(v)) {
      throw new Q8Error(`${what}: weight [${Math.floor(i / K)}, ${i % K}] is ${v}; NaN/Inf weights cannot be quantized (exclude this layer or fix the model)`);
    }
  }
}

function quantizeBlocks(w: Float32Array, N: number, K: number, block: WeightBlock, what = 'weights'): QuantizedWeights {
  if (w.length !== N * K) throw new Q8Error(`${what}: expected ${N}x${K} = ${N * K} values, got ${w.length}`);
  checkFinite(w, K, what);
  const B = block === 0 ? K : block;
  const nb = K === 0 ? 0 : Math.ceil(K / B);
  const q = new Int8Array(N * K);
  const scales = new Float32Array(N * nb);
  let sig = 0, err = 0;
  // The contract's formula (as quantizeWindow), monomorphic: this loop runs over every weight.
  for (let n = 0; n < N; n++) {
    for (let b = 0; b < nb; b++) {
      const o = n * K + b * B;
      const end = o + Math.min(B, K - b * B);
      let amax = 0;
      for (let i = o; i < end; i++) { const a = Math.abs(w[i]!); if (a > amax) amax = a; }
      amax = f(amax);
      if (amax === 0) { scales[n * nb + b] = 0; continue; }
      const inv = f(127 / amax);
      let s = f(amax / 127);
      while (f(s * 127) === Infinity) s = f(s - s * 2 ** -23);
      scales[n * nb + b] = s;
      for (let i = o; i < end; i++) {
        const x = w[i]!;
        const v = f(x * inv);
        let r = Math.round(v);
        if (r - v === 0.5 && (r & 1) !== 0) r -= 1;
        r = r > 127 ? 127 : r < -127 ? -127 : r;
        q[i] = r;
        const e = x - f(r * s);
        sig += x * x;
        err += e * e;
      }
    }
  }
  return { N, K, block, q, scales, sqnrDb: err === 0 ? Infinity : 10 * Math.log10(sig / err) };
}

function dequantizeBlocks(qw: QuantizedWeights): Float32Array {
  const { N, K, q, scales } = qw;
  const B = qw.block === 0 ? K : qw.block;
  const nb = K === 0 ? 0 : Math.ceil(K / B);
  const out = new Float32Array(N * K);
  for (let n = 0; n < N; n++) {
    for (let b = 0; b < nb; b++) {
      const o = n * K + b * B, end = o + Math.min(B, K - b * B);
      const s = scales[n * nb + b]!;
      for (let i = o; i < end; i++) out[i] = q[i]! * s;
    }
  }
  return out;
}

function row(name: string, block: WeightBlock, pairing: ActBlock): QuantType {
  const perChannel = (K: number) => (K === 0 ? 0 : block === 0 ? 1 : Math.ceil(K / block));
  return Object.freeze({
    name,
    weightWindow: block === 0 ? 'channel' as const : block,
    weightBlock: block,
    windowBytes: (len: number) => 4 + len,
    bytes: (N: number, K: number) => N * K + 4 * N * perChannel(K),
    windowsPerChannel: perChannel,
    activationPairing: pairing,
    quantize: (w: Float32Array, N: number, K: number, what?: string) => quantizeBlocks(w, N, K, block, what),
    dequantize: dequantizeBlocks,
  });
}

/** The table. Channel windows pair with whole-row activations (BigDL's scheme); blocks with equal blocks. */
export const QUANT_TYPES: readonly QuantType[] = Object.freeze([
  row('q8_channel', 0, 0),
  row('q8_b32', 32, 32),
  row('q8_b64', 64, 64),
  row('q8_b128', 128, 128),
  row('q8_b256', 256, 256),
]);

export function quantType(window: 'channel' | number): QuantType {
  const t = QUANT_TYPES.find((r) => r.weightWindow === window || (window === 0 && r.weightBlock === 0));
  if (!t) throw new Q8Error(`unknown weight window '${window}' (expected channel, 32, 64, 128 or 256)`);
  return t;
}

/** Serialize quantized weights window by window: [scale f32 LE][int8 x len] ... (the table's byte layout). */
export function serializeWindows(qw: QuantizedWeights): Uint8Array {
  const t = quantType(qw.block === 0 ? 'channel' : qw.block);
  const out = new Uint8Array(t.bytes(qw.N, qw.K));
  const dv = new DataView(out.buffer);
  const B = qw.block === 0 ? qw.K : qw.block;
  const nb = t.windowsPerChannel(qw.K);
  let o = 0;
  for (let n = 0; n < qw.N; n++) {
    for (let b = 0; b < nb; b++) {
      const k0 = b * B, len = Math.min(B, qw.K - k0);
      dv.setFloat32(o, qw.scales[n * nb + b]!, true);
      o += 4;
      for (let i = 0; i < len; i++) out[o++] = qw.q[n * qw.K + k0 + i]! & 0xff;
    }
  }
  return out;
}

/** Signal-to-quantization-noise ratio in dB of a reconstruction (Infinity when exact). */
export function sqnrDb(x: ArrayLike<number>, y: ArrayLike<number>): number {
  let s = 0, e = 0;
  for (let i = 0; i < x.length; i++) { const a = x[i]!; const d = a - y[i]!; s += a * a; e += d * d; }
  if (e === 0) return Infinity;
  return 10 * Math.log10(s / e);
}

/** Cosine similarity (1 when both are all-zero). */
export function cosine(x: ArrayLike<number>, y: ArrayLike<number>): number {
  let xy = 0, xx = 0, yy = 0;
  for (let i = 0; i < x.length; i++) { const a = x[i]!, b = y[i]!; xy += a * b; xx += a * a; yy += b * b; }
  if (xx === 0 && yy === 0) return 1;
  if (xx === 0 || yy === 0) return 0;
  return xy / Math.sqrt(xx * yy);
}
