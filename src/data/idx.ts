/**
 * IDX files (the MNIST / Fashion-MNIST format, gzip or not) and a batched image dataset over them.
 * http://yann.lecun.com/exdb/mnist/ : magic 0x0000 <type> <rank>, big-endian dims, then data.
 */
import * as fs from 'node:fs';
import * as zlib from 'node:zlib';
import { Q8Error } from '../core/errors.js';
import { Tensor } from '../tensor/tensor.js';

export interface IdxArray {
  shape: number[];
  data: Uint8Array;
}

export function readIdx(file: string): IdxArray {
  let bytes: Uint8Array;
  try {
    bytes = fs.readFileSync(file);
  } catch (e) {
    throw new Q8Error(`cannot read IDX file: ${(e as Error).message}`, { file });
  }
  if (bytes[0] === 0x1f && bytes[1] === 0x8b) {
    try {
      bytes = zlib.gunzipSync(bytes, { maxOutputLength: 2 ** 31 - 1 });
    } catch (e) {
      throw new Q8Error(`corrupt gzip data: ${(e as Error).message}`, { file });
    }
  }
  if (bytes.length < 4 || bytes[0] !== 0 || bytes[1] !== 0) throw new Q8Error('not an IDX file (bad magic)', { file });
  if (bytes[2] !== 0x08) throw new Q8Error(`IDX element type 0x${bytes[2]!.toString(16)} is not supported (only unsigned bytes)`, { file });
  const rank = bytes[3]!;
  if (rank < 1 || bytes.length < 4 + 4 * rank) throw new Q8Error('truncated IDX header', { file });
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const shape = Array.from({ length: rank }, (_, i) => dv.getUint32(4 + 4 * i, false));
  const n = shape.reduce((a, b) => a * b, 1);
  const start = 4 + 4 * rank;
  if (bytes.length - start !== n) throw new Q8Error(`IDX data has ${bytes.length - start} bytes, header says ${n}`, { file });
  return { shape, data: bytes.subarray(start) };
}

export interface ImageBatch {
  input: Tensor;
  labels: Uint8Array;
}

export interface ImagePreprocess {
  /** input = (pixel × scale − mean) / std */
  scale?: number;
  mean?: number;
  std?: number;
  layout?: 'nchw' | 'nhwc';
  /** Full model input shape with -1/null batch; the image is laid into it (e.g. [N,784] or [N,1,28,28]). */
  inputShape?: readonly (number | string | null)[] | undefined;
}

/** Iterate labelled images in batches as model-ready float32 tensors. */
export function* imageBatches(images: IdxArray, labels: IdxArray, batch: number, pre: ImagePreprocess = {}, limit = Infinity): Generator<ImageBatch> {
  const [count, h = 1, w = 1, c = 1] = images.shape as [number, number?, number?, number?];
  if (labels.shape[0] !== count) throw new Q8Error(`${count} images but ${labels.shape[0]} labels`);
  const per = h * w * c;
  const total = Math.min(count, limit);
  const scale = pre.scale ?? 1, mean = pre.mean ?? 0, std = pre.std ?? 1;
  const inv = 1 / std;
  for (let s = 0; s < total; s += batch) {
    const n = Math.min(batch, total - s);
    const out = new Float32Array(n * per);
    const src = images.data.subarray(s * per, (s + n) * per);
    if (c > 1 && pre.layout === 'nchw') {
      // IDX stores HWC; move channels first.
      for (let b = 0; b < n; b++) for (let y = 0; y < h * w; y++) for (let k = 0; k < c; k++)
        out[b * per + k * h * w + y] = (src[b * per + y * c + k]! * scale - mean) * inv;
    } else {
      for (let i = 0; i < out.length; i++) out[i] = (src[i]! * scale - mean) * inv;
    }
    const shape = batchShape(pre, n, h, w, c);
    yield { input: new Tensor('float32', shape, out), labels: labels.data.subarray(s, s + n) };
  }
}

function batchShape(pre: ImagePreprocess, n: number, h: number, w: number, c: number): number[] {
  const s = pre.inputShape;
  if (s && s.length === 2) return [n, h * w * c];
  if (s && s.length === 3) return [n, h, w * c];
  if (pre.layout === 'nhwc') return [n, h, w, c];
  return [n, c, h, w];
}
