/**
 * The PyTorch path: a model exported by torch.onnx.export (Debian's torch) is found by loadModel's
 * format detection and gives PyTorch's outputs.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { detectFormat, loadModel } from '../../src/formats/detect.js';
import { Session } from '../../src/runtime/session.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { maxAbsDiff, needPython, PYTHON } from './loader-helpers.js';

const SCRIPT = `
import json, sys, torch
torch.manual_seed(5)
m = torch.nn.Sequential(
    torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
    torch.nn.MaxPool2d(2, ceil_mode=True), torch.nn.Conv2d(8, 8, 3, groups=8), torch.nn.Hardswish(),
    torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(8, 4), torch.nn.LogSoftmax(1))
with torch.no_grad():
    m[1].running_mean.uniform_(-0.5, 0.5); m[1].running_var.uniform_(0.5, 1.5)
m.eval()
x = torch.randn(2, 3, 11, 11)
torch.onnx.export(m, x, sys.argv[1], input_names=["image"], output_names=["logp"], dynamic_axes={"image": {0: "n"}}, opset_version=13)
print(json.dumps({"x": x.flatten().tolist(), "y": m(x).detach().flatten().tolist()}))
`;

test('torch.onnx.export model: detected as ONNX, equals PyTorch', { skip: needPython() }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'q8-torch-'));
  const file = join(dir, 'model.onnx');
  let out: string;
  try {
    out = execFileSync(PYTHON, ['-c', SCRIPT, file], { encoding: 'utf8', maxBuffer: 1 << 24, stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    assert.fail(`torch export failed: ${(e as { stderr?: string }).stderr ?? String(e)}`);
  }
  const ref = JSON.parse(out.trim().split('\n').at(-1)!) as { x: number[]; y: number[] };
  assert.equal(detectFormat(file), 'onnx');
  const m = loadModel(file);
  const y = Session.create(m).runSync({ image: Tensor.from('float32', [2, 3, 11, 11], Float32Array.from(ref.x)) }).logp!;
  assert.deepEqual([...y.shape], [2, 4]);
  assert.ok(maxAbsDiff(y.toFloat32(), ref.y) < 1e-5, `max abs diff ${maxAbsDiff(y.toFloat32(), ref.y)}`);
});
