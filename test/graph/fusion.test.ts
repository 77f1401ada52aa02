/** Conv + Relu/Clip fusion at session load: which pairs fuse, and outputs stay the same. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadOnnxFile } from '../../src/formats/onnx/index.js';
import { cloneModel } from '../../src/graph/clone.js';
import { Session } from '../../src/runtime/session.js';
import { Tensor } from '../../src/tensor/tensor.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

function images(n: number): Tensor {
  const d = new Float32Array(n * 784);
  for (let i = 0; i < d.length; i++) d[i] = ((i * 2654435761) % 1000) / 1000;
  return new Tensor('float32', [n, 1, 28, 28], d);
}

for (const [name, act] of [['vgg', 'Relu'], ['mobilenet', 'Clip']] as const) {
  test(`fashion-${name}: every Conv followed only by ${act} becomes q8.ConvAct; outputs match the unfused graph`, () => {
    const m = loadOnnxFile(path.join(root, `models/fashion-${name}.onnx`));
    const convs = m.graph.nodes.filter((n) => n.opType === 'Conv').length;
    const acts = m.graph.nodes.filter((n) => n.opType === act).length;
    for (const backend of ['ref', 'auto'] as const) {
      const fused = Session.create(cloneModel(m), { backend });
      const nodes = fused.model.graph.nodes;
      const convActs = nodes.filter((n) => n.opType === 'ConvAct');
      assert.ok(convActs.length > 0 && convActs.length <= convs);
      assert.ok(convActs.every((n) => n.attrs['activation']?.type === 'string' && n.attrs['activation'].value === act));
      assert.equal(nodes.filter((n) => n.opType === act).length, acts - convActs.length);
      const plain = Session.create(cloneModel(m), { backend: 'ref', optimize: false });
      const x = images(3);
      const a = fused.runSync({ input: x })['logits']!.data as Float32Array;
      const b = plain.runSync({ input: x })['logits']!.data as Float32Array;
      for (let i = 0; i < b.length; i++) assert.ok(Math.abs(a[i]! - b[i]!) <= 1e-4 * (1 + Math.abs(b[i]!)), `${backend} logit ${i}: ${a[i]} vs ${b[i]}`);
    }
  });
}

test('a Conv whose output is also read elsewhere, or is a graph output, is not fused', () => {
  const m = loadOnnxFile(path.join(root, 'models/fashion-vgg.onnx'));
  const conv = m.graph.nodes.find((n) => n.opType === 'Conv')!;
  m.graph.outputs.push({ name: conv.outputs[0]! });
  const s = Session.create(cloneModel(m), { backend: 'ref' });
  assert.ok(s.model.graph.nodes.some((n) => n.name === conv.name && n.opType === 'Conv'));
  const outs = s.runSync({ input: images(1) });
  assert.ok(outs[conv.outputs[0]!]!.toFloat32().some((v) => v < 0), 'the pre-activation output keeps its negative values');
});
