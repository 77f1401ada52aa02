/**
 * The session's buffer pool on real models and images: buffers are reused across nodes and runs
 * (the most recently freed one that fits, up to twice the size), so repeated runs give the same
 * answers as a fresh session, earlier outputs are never overwritten, outputs are exact-size
 * buffers of their own, and the memory held stops growing after the first run.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { load, type Q8Model } from '../../src/api.js';
import { imageBatches, readIdx } from '../../src/data/idx.js';
import type { Tensor } from '../../src/tensor/tensor.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const DATA = '/usr/share/datasets/fashion-mnist';
const haveData = fs.existsSync(path.join(DATA, 't10k-images-idx3-ubyte.gz'));
const skip = haveData ? false : `${DATA} is absent: apt-get install dataset-fashion-mnist`;

function batches(model: Q8Model, sizes: number[]): Tensor[] {
  const images = readIdx(path.join(DATA, 't10k-images-idx3-ubyte.gz'));
  const labels = readIdx(path.join(DATA, 't10k-labels-idx1-ubyte.gz'));
  const per = images.data.length / images.shape[0]!;
  const out: Tensor[] = [];
  let offset = 0;
  for (const n of sizes) {
    // a different slice of the test set for each run
    const im = { shape: [n, ...images.shape.slice(1)], data: images.data.subarray(offset * per, (offset + n) * per) };
    const lb = { shape: [n], data: labels.data.subarray(offset, offset + n) };
    const [b] = [...imageBatches(im, lb, n, { scale: 1 / 255, inputShape: model.inputs[0]!.shape })];
    out.push(b!.input);
    offset += n;
  }
  return out;
}

const heldBytes = (m: Q8Model) => (m.session as unknown as { pool: { heldBytes: number } }).pool.heldBytes;

for (const name of ['fashion-resnet', 'fashion-mobilenet']) {
  for (const quantize of [false, true]) {
    test(`buffer pool: ${name}${quantize ? ' int8' : ''} repeated runs match a fresh session, keep their outputs, hold steady memory`, { skip }, async () => {
      let model = await load(path.join(root, 'models', `${name}.onnx`));
      if (quantize) model = await model.quantize();
      const inName = model.inputNames[0]!;
      // batch sizes change between runs, so buffers of other sizes are offered for reuse
      const inputs = batches(model, [8, 3, 8, 5, 8, 8]);
      inputs[4] = inputs[2]!;
      const outs: Tensor[] = [];
      const held: number[] = [];
      for (const x of inputs) {
        const r = model.session.runSync({ [inName]: x });
        const t = Object.values(r)[0]!;
        const d = t.data as Float32Array;
        assert.equal(d.byteLength, d.buffer.byteLength, 'an output owns an exact-size buffer');
        outs.push(t);
        held.push(heldBytes(model));
      }
      // the same batch twice, with other runs in between: same answer; and each run agrees with a
      // session that has never run anything else
      assert.deepEqual(outs[4]!.data, outs[2]!.data);
      for (let i = 0; i < inputs.length; i++) {
        const fresh = (await load(path.join(root, 'models', `${name}.onnx`)));
        const m = quantize ? await fresh.quantize() : fresh;
        const want = Object.values(m.session.runSync({ [inName]: inputs[i]! }))[0]!;
        assert.deepEqual(outs[i]!.data, want.data, `run ${i} equals a fresh session's`);
      }
      // runs 4 and 5 repeat shapes seen before: nothing new is held after them
      assert.equal(held[5], held[3], `pool bytes after each run: ${held.join(', ')}`);
      assert.equal(held[4], held[3], `pool bytes after each run: ${held.join(', ')}`);
    });
  }
}
