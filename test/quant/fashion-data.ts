/** Fashion-MNIST test set (Debian's dataset-fashion-mnist) and top-1 evaluation, for the quantization tests. */
import * as fs from 'node:fs';
import * as zlib from 'node:zlib';
import type { Model } from '../../src/graph/ir.js';
import { Session } from '../../src/runtime/session.js';
import { Tensor } from '../../src/tensor/tensor.js';

export const FASHION_DIR = '/usr/share/datasets/fashion-mnist';

export function haveFashion(): boolean {
  return fs.existsSync(`${FASHION_DIR}/t10k-images-idx3-ubyte.gz`);
}

export function loadFashion(limit = 10000): { images: Float32Array; labels: Uint8Array; n: number } {
  const img = zlib.gunzipSync(fs.readFileSync(`${FASHION_DIR}/t10k-images-idx3-ubyte.gz`));
  const lab = zlib.gunzipSync(fs.readFileSync(`${FASHION_DIR}/t10k-labels-idx1-ubyte.gz`));
  const n = Math.min(limit, img.readUInt32BE(4));
  const images = new Float32Array(n * 784);
  for (let i = 0; i < n * 784; i++) images[i] = Math.fround(img[16 + i]! * Math.fround(1 / 255));
  return { images, labels: lab.subarray(8, 8 + n), n };
}

/** Predicted classes of a model over the first n images, in batches. */
export function predictClasses(model: Model, images: Float32Array, n: number, batch = 100): Uint8Array {
  const s = Session.create(model);
  const name = s.inputs[0]!.name;
  const out = new Uint8Array(n);
  for (let b0 = 0; b0 < n; b0 += batch) {
    const bs = Math.min(batch, n - b0);
    const x = Tensor.from('float32', [bs, 1, 28, 28], images.slice(b0 * 784, (b0 + bs) * 784));
    const y = Object.values(s.runSync({ [name]: x }))[0]!;
    const d = y.data as Float32Array;
    const C = d.length / bs;
    for (let i = 0; i < bs; i++) {
      let best = 0;
      for (let c = 1; c < C; c++) if (d[i * C + c]! > d[i * C + best]!) best = c;
      out[b0 + i] = best;
    }
  }
  return out;
}
