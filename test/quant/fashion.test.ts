/**
 * The accuracy promise on real trained models: Fashion-MNIST models (models/fashion-*.onnx, trained
 * by scripts/train_fashion.py) quantized with default options and no calibration lose ≤ 0.1 top-1
 * points. CI time: the MLP runs on all 10,000 test images; the CNNs on the first 1,000 (agreement
 * with fp32 ≥ 99% and ≤ 0.3 points there). Q8_FULL_ACCURACY=1 runs every model on all 10,000
 * with the ≤ 0.1 point bound.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { loadOnnxFile } from '../../src/formats/onnx/index.js';
import '../../src/quant/index.js';
import { quantizeModel } from '../../src/quant/quantize.js';
import { haveFashion, loadFashion, predictClasses } from './fashion-data.js';

const full = process.env['Q8_FULL_ACCURACY'] === '1';
const models = ['mlp', 'vgg', 'mobilenet', 'resnet'];

for (const name of models) {
  const file = `models/fashion-${name}.onnx`;
  const skip = !haveFashion() ? 'Fashion-MNIST not installed (Debian dataset-fashion-mnist)' : !fs.existsSync(file) ? `${file} not built (scripts/train_fashion.py)` : false;
  test(`Fashion-MNIST ${name}: int8 with default options keeps top-1 within budget`, { skip }, (t) => {
    const n = full || name === 'mlp' ? 10000 : 1000;
    const { images, labels } = loadFashion(n);
    const fp = predictClasses(loadOnnxFile(file), images, n);
    // The fp32 predictions are PyTorch's exactly (the engine's promise), so the drop is vs PyTorch too.
    const torch = new Uint8Array(fs.readFileSync(file.replace(/\.onnx$/, '.pred.bin'))).subarray(0, n);
    assert.deepEqual(fp, torch, 'q8 fp32 should predict exactly what PyTorch predicted');
    const { model, report } = quantizeModel(loadOnnxFile(file));
    assert.ok(report.layers.every((l) => l.quantized), 'every Conv/Gemm is int8 by default');
    const q = predictClasses(model, images, n);
    let cf = 0, cq = 0, agree = 0;
    for (let i = 0; i < n; i++) { cf += +(fp[i] === labels[i]); cq += +(q[i] === labels[i]); agree += +(q[i] === fp[i]); }
    const drop = (100 * (cf - cq)) / n;
    t.diagnostic(`${name} on ${n} images: fp32 top-1 ${(100 * cf / n).toFixed(2)}, int8 ${(100 * cq / n).toFixed(2)} (change ${(-drop).toFixed(2)} points), agreement ${agree}`);
    if (n === 10000) assert.ok(drop <= 0.1, `${name}: top-1 ${(100 * cf / n).toFixed(2)} → ${(100 * cq / n).toFixed(2)} (drop ${drop.toFixed(2)} points)`);
    else {
      assert.ok(drop <= 0.3, `${name}: drop ${drop.toFixed(2)} points on the first ${n}`);
      assert.ok(agree >= 0.99 * n, `${name}: int8 agrees with fp32 on ${agree}/${n}`);
    }
  });
}
