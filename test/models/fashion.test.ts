/**
 * The Fashion-MNIST models trained by scripts/train_fashion.py: q8's top-1 on the 10,000 test
 * images equals PyTorch's exactly, and the per-image predictions agree with PyTorch's.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { load } from '../../src/api.js';
import { imageBatches, readIdx } from '../../src/data/idx.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const DATA = '/usr/share/datasets/fashion-mnist';
const refFile = path.join(root, 'models/fashion-reference.json');
const ref = JSON.parse(fs.readFileSync(refFile, 'utf8')) as {
  dataset: { scale: number };
  models: Record<string, { onnx: string; pred: string; top1: number; correct: number }>;
};
const haveData = fs.existsSync(path.join(DATA, 't10k-images-idx3-ubyte.gz'));

for (const [name, m] of Object.entries(ref.models)) {
  test(`${name}: q8 top-1 equals PyTorch's on the 10,000 test images`, { skip: haveData ? false : `${DATA} is absent: apt-get install dataset-fashion-mnist` }, async () => {
    const images = readIdx(path.join(DATA, 't10k-images-idx3-ubyte.gz'));
    const labels = readIdx(path.join(DATA, 't10k-labels-idx1-ubyte.gz'));
    const model = await load(path.join(root, 'models', m.onnx));
    const res = await model.evaluate(imageBatches(images, labels, 250, { scale: ref.dataset.scale, inputShape: model.inputs[0]!.shape }));
    const torchPred = fs.readFileSync(path.join(root, 'models', m.pred));
    let differ = 0;
    for (let i = 0; i < res.n; i++) if (res.predictions[i] !== torchPred[i]) differ++;
    console.log(`${name}: q8 top-1 ${res.top1} (${Math.round(res.top1 * res.n)}/${res.n}), PyTorch ${m.top1}; ${differ} per-image predictions differ (backend ${model.backend})`);
    assert.equal(res.n, 10000);
    assert.equal(Math.round(res.top1 * res.n), m.correct);
    assert.ok(differ <= 2, `${differ} per-image predictions differ from PyTorch's`);
  });
}
