/**
 * Shape inference agrees with what the runtime actually produces, for every intermediate value of
 * real exported models (the Fashion-MNIST models and ONNX's PyTorch-converted/operator suites).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadOnnxFile, decodeTensorBytes } from '../../src/formats/onnx/index.js';
import { inferShapes } from '../../src/graph/shape-inference.js';
import { cloneModel } from '../../src/graph/clone.js';
import { Session } from '../../src/runtime/session.js';
import type { Model } from '../../src/graph/ir.js';
import { Tensor } from '../../src/tensor/tensor.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const SUITES = ['/usr/share/libonnx-testdata/data/pytorch-converted', '/usr/share/libonnx-testdata/data/pytorch-operator'];

/** Run with every node output exposed and compare each actual shape with the inferred one. */
function check(model: Model, feeds: Record<string, Tensor>): { compared: number; unknown: number; wrong: string[] } {
  const shapes = Object.fromEntries(Object.entries(feeds).map(([k, t]) => [k, t.shape]));
  const info = inferShapes(model, shapes);
  const all = cloneModel(model);
  const names = all.graph.nodes.flatMap((n) => n.outputs).filter((o) => o);
  all.graph.outputs = names.map((name) => ({ name }));
  const outs = Session.create(all, { backend: 'ref', optimize: false }).runSync(feeds);
  let compared = 0, unknown = 0;
  const wrong: string[] = [];
  for (const name of names) {
    const got = outs[name]!;
    const inf = info.get(name);
    if (!inf?.shape) { unknown++; continue; }
    compared++;
    if (inf.shape.join(',') !== got.shape.join(',') || (inf.dtype && inf.dtype !== got.dtype)) {
      wrong.push(`${name}: inferred ${inf.dtype}[${inf.shape}] actual ${got.dtype}[${got.shape}]`);
    }
  }
  return { compared, unknown, wrong };
}

test('Fashion-MNIST models: every intermediate shape inferred, batch 7', () => {
  for (const m of ['mlp', 'vgg', 'mobilenet', 'resnet']) {
    const model = loadOnnxFile(path.join(root, `models/fashion-${m}.onnx`));
    const d = new Float32Array(7 * 784).map((_, i) => ((i * 7919) % 255) / 255);
    const r = check(model, { input: new Tensor('float32', [7, 1, 28, 28], d) });
    assert.deepEqual(r.wrong, [], m);
    assert.equal(r.unknown, 0, `${m}: ${r.unknown} values unknown`);
    assert.ok(r.compared >= 5);
  }
});

test('PyTorch-exported ONNX test models: inferred shapes match the runtime', { skip: fs.existsSync(SUITES[0]!) ? false : 'libonnx-testdata is absent' }, () => {
  let compared = 0, unknown = 0, models = 0;
  const wrong: string[] = [];
  for (const suite of SUITES) {
    for (const name of fs.readdirSync(suite)) {
      const dir = path.join(suite, name);
      let model: Model;
      try { model = loadOnnxFile(path.join(dir, 'model.onnx')); Session.create(cloneModel(model)); } catch { continue; }
      const set = path.join(dir, 'test_data_set_0');
      const inputs = model.graph.inputs.filter((i) => !model.graph.initializers.has(i.name));
      const feeds: Record<string, Tensor> = {};
      inputs.forEach((inp, k) => { feeds[inp.name] = decodeTensorBytes(fs.readFileSync(path.join(set, `input_${k}.pb`))).tensor; });
      const r = check(model, feeds);
      compared += r.compared; unknown += r.unknown; models++;
      wrong.push(...r.wrong.map((w) => `${name}: ${w}`));
    }
  }
  console.log(`shape inference: ${models} models, ${compared} values inferred and checked, ${unknown} left unknown`);
  assert.deepEqual(wrong, []);
  assert.ok(models > 100 && compared > 5 * unknown, `${compared} inferred vs ${unknown} unknown`);
});
