/** Conv + Relu/Clip and Add + Relu fusion at session load: which pairs fuse, and outputs stay the same. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadOnnxFile } from '../../src/formats/onnx/index.js';
import { cloneModel } from '../../src/graph/clone.js';
import { emptyGraph, type Model } from '../../src/graph/ir.js';
import { getOp } from '../../src/ops/registry.js';
import { makeContext } from '../../src/runtime/invoke.js';
import { Session } from '../../src/runtime/session.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { quantize } from '../../src/quant/quantize.js';
import { rng } from '../rng.js';
import { floats } from '../kernels/kernel-test-util.js';

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

test('fashion-resnet: every Add read only by a Relu becomes q8.AddAct; outputs match the unfused graph', () => {
  const m = loadOnnxFile(path.join(root, 'models/fashion-resnet.onnx'));
  const producer = new Map(m.graph.nodes.map((n) => [n.outputs[0]!, n]));
  // The sums' inputs are also graph outputs here, so no conv takes the join over (fuseResiduals).
  for (const n of m.graph.nodes) if (n.opType === 'Add') for (const i of n.inputs) m.graph.outputs.push({ name: i });
  const pairs = m.graph.nodes.filter((n) => n.opType === 'Relu' && producer.get(n.inputs[0]!)?.opType === 'Add').length;
  assert.ok(pairs > 0, 'the model has Add→Relu');
  const adds = m.graph.nodes.filter((n) => n.opType === 'Add').length;
  for (const backend of ['ref', 'auto'] as const) {
    const fused = Session.create(cloneModel(m), { backend });
    const nodes = fused.model.graph.nodes;
    const addActs = nodes.filter((n) => n.opType === 'AddAct' && n.domain === 'q8');
    assert.equal(addActs.length, pairs);
    assert.ok(addActs.every((n) => n.attrs['activation']?.type === 'string' && n.attrs['activation'].value === 'Relu'));
    assert.equal(nodes.filter((n) => n.opType === 'Add').length, adds - pairs);
    const plain = Session.create(cloneModel(m), { backend: 'ref', optimize: false });
    const x = images(3);
    const a = fused.runSync({ input: x })['logits']!.data as Float32Array;
    const b = plain.runSync({ input: x })['logits']!.data as Float32Array;
    for (let i = 0; i < b.length; i++) assert.ok(Math.abs(a[i]! - b[i]!) <= 1e-4 * (1 + Math.abs(b[i]!)), `${backend} logit ${i}: ${a[i]} vs ${b[i]}`);
  }
});

test('fashion-resnet: each residual join (Add, + Relu) is taken over by the conv that alone feeds it; fp32 and int8 outputs match the unfused graph', () => {
  const m = loadOnnxFile(path.join(root, 'models/fashion-resnet.onnx'));
  const joins = m.graph.nodes.filter((n) => n.opType === 'Add').length;
  assert.equal(joins, 3, 'the model has three residual joins');
  const q = quantize(m);
  const x = images(3);
  for (const [what, model, conv, tol] of [['fp32', m, 'ConvAct', 1e-4], ['int8', q, 'Q8Conv', 1e-5]] as const) {
    // The unfused graph on the reference kernels (optimize: false skips every session-time fusion).
    const want = Session.create(cloneModel(model), { backend: 'ref', optimize: false }).runSync({ input: x })['logits']!.data as Float32Array;
    for (const backend of ['ref', 'native', 'wasm'] as const) {
      const s = Session.create(cloneModel(model), { backend });
      const nodes = s.model.graph.nodes;
      const fused = nodes.filter((n) => n.opType === conv && n.attrs['residual']);
      assert.equal(fused.length, joins, `${what} ${backend}: every join fused`);
      assert.ok(fused.every((n) => n.attrs['activation']?.type === 'string' && n.attrs['activation'].value === 'Relu'));
      assert.ok(!nodes.some((n) => n.opType === 'Add' || n.opType === 'AddAct'), `${what} ${backend}: no Add left`);
      // The one join of two convs fuses the later one: the other conv stays before it, unfused.
      const k = nodes.findIndex((n) => n === fused[1]);
      assert.ok(k > 0 && /^(Conv|Q8Conv)$/.test(nodes[k - 1]!.opType) && !nodes[k - 1]!.attrs['residual'], `${what} ${backend}: conv before the two-conv join`);
      for (let run = 0; run < 2; run++) {  // the second run reuses pool buffers (in-place joins)
        const got = s.runSync({ input: x })['logits']!.data as Float32Array;
        for (let i = 0; i < want.length; i++) assert.ok(Math.abs(got[i]! - want[i]!) <= tol * (1 + Math.abs(want[i]!)), `${what} ${backend} run ${run} logit ${i}: ${got[i]} vs ${want[i]}`);
      }
    }
  }
});

test('a residual join whose conv output is read elsewhere stays; a residual read after the join is left intact', () => {
  const r = rng(31);
  const g = emptyGraph('t');
  const C = 6, H = 9;
  g.inputs.push({ name: 'x', dtype: 'float32', shape: [1, C, H, H] });
  const w = (n: string) => g.initializers.set(n, Tensor.from('float32', [C, C, 3, 3], floats(r, C * C * 9)));
  w('w1'); w('w2'); w('w3');
  const conv = (name: string, x: string, wt: string, y: string) => ({ name, opType: 'Conv', domain: '', inputs: [x, wt], outputs: [y], attrs: { pads: { type: 'ints' as const, value: [1, 1, 1, 1] } } });
  g.nodes.push(
    conv('c1', 'x', 'w1', 'y1'),
    conv('c2', 'y1', 'w2', 'y2'),
    { name: 'add', opType: 'Add', domain: '', inputs: ['y2', 'y1'], outputs: ['s'], attrs: {} },  // y1 is read again below
    conv('c3', 's', 'w3', 'y3'),
    { name: 'mul', opType: 'Mul', domain: '', inputs: ['y3', 'y1'], outputs: ['m'], attrs: {} },
    { name: 'add2', opType: 'Add', domain: '', inputs: ['m', 'y3'], outputs: ['out'], attrs: {} },  // y3 has two readers
  );
  g.outputs.push({ name: 'out' });
  const model: Model = { graph: g, opsets: new Map([['', 13]]), irVersion: 8, producerName: 't', producerVersion: '1', metadata: new Map(), source: 'test' };
  const X = Tensor.from('float32', [1, C, H, H], floats(r, C * H * H));
  const want = Session.create(cloneModel(model), { backend: 'ref', optimize: false }).runSync({ x: X })['out']!.data as Float32Array;
  for (const backend of ['ref', 'native', 'wasm'] as const) {
    const s = Session.create(cloneModel(model), { backend });
    assert.deepEqual(s.model.graph.nodes.map((n) => `${n.opType}${n.attrs['residual'] ? '+res' : ''}`), ['Conv', 'ConvAct+res', 'Conv', 'Mul', 'Add'], backend);
    for (let run = 0; run < 2; run++) {
      const got = s.runSync({ x: X })['out']!.data as Float32Array;
      for (let i = 0; i < want.length; i++) assert.ok(Math.abs(got[i]! - want[i]!) <= 1e-4 * (1 + Math.abs(want[i]!)), `${backend} run ${run} element ${i}: ${got[i]} vs ${want[i]}`);
    }
  }
});

test('an Add whose sum is also read elsewhere, or is not float, is not fused; AddAct on int32 is Add then Relu', () => {
  const g = emptyGraph('t');
  g.inputs.push({ name: 'a', dtype: 'float32', shape: [2, 3] }, { name: 'b', dtype: 'float32', shape: [2, 3] });
  g.nodes.push(
    { name: 'add1', opType: 'Add', domain: '', inputs: ['a', 'b'], outputs: ['s1'], attrs: {} },
    { name: 'relu1', opType: 'Relu', domain: '', inputs: ['s1'], outputs: ['r1'], attrs: {} },
    { name: 'add2', opType: 'Add', domain: '', inputs: ['r1', 'b'], outputs: ['s2'], attrs: {} },
    { name: 'relu2', opType: 'Relu', domain: '', inputs: ['s2'], outputs: ['r2'], attrs: {} },
  );
  g.outputs.push({ name: 'r2' }, { name: 's2' });
  const model: Model = { graph: g, opsets: new Map([['', 13]]), irVersion: 8, producerName: 't', producerVersion: '1', metadata: new Map(), source: 'test' };
  const s = Session.create(cloneModel(model), { backend: 'ref' });
  const types = s.model.graph.nodes.map((n) => n.opType);
  assert.deepEqual(types, ['AddAct', 'Add', 'Relu'], 'add2 feeds a graph output: not fused');
  const a = new Tensor('float32', [2, 3], Float32Array.from([-1, 2, -3, 4, -5, 6]));
  const b = new Tensor('float32', [2, 3], Float32Array.from([0.5, -3, 1, 1, 2, -7]));
  const out = s.runSync({ a, b });
  assert.deepEqual(Array.from(out['s2']!.data as Float32Array), [0.5, -3, 1, 6, 2, -7]);
  assert.deepEqual(Array.from(out['r2']!.data as Float32Array), [0.5, 0, 1, 6, 2, 0]);
  // int32 sums keep their Add and Relu
  g.valueInfo.set('s1', { name: 's1', dtype: 'int32' });
  const s2 = Session.create(cloneModel(model), { backend: 'ref' });
  assert.equal(s2.model.graph.nodes[0]!.opType, 'Add');
  const addAct = getOp('q8', 'AddAct')!;
  const n = { name: 'x', opType: 'AddAct', domain: 'q8', inputs: ['a', 'b'], outputs: ['y'], attrs: { activation: { type: 'string' as const, value: 'Relu' } } };
  const yi = addAct.run([new Tensor('int32', [3], Int32Array.from([-4, 1, 2])), new Tensor('int32', [3], Int32Array.from([1, -5, 3]))], makeContext(n, 1))[0]!;
  assert.deepEqual(Array.from(yi.data as Int32Array), [0, 0, 5]);
  const yb = addAct.run([new Tensor('int64', [2], BigInt64Array.from([-4n, 7n])), new Tensor('int64', [2], BigInt64Array.from([1n, 1n]))], makeContext(n, 1))[0]!;
  assert.deepEqual(Array.from(yb.data as BigInt64Array), [0n, 8n]);
});

test('a fused Add keeps the model opset\'s broadcasting (regression: q8.AddAct once ran Add under opset 1)', () => {
  const m = {
    graph: {
      name: 'g', nodes: [
        { name: 'add', opType: 'Add', domain: '', inputs: ['x', 'b'], outputs: ['s'], attrs: {} },
        { name: 'relu', opType: 'Relu', domain: '', inputs: ['s'], outputs: ['y'], attrs: {} },
      ],
      inputs: [{ name: 'x', dtype: 'float32' as const, shape: [2, 3] }], outputs: [{ name: 'y' }],
      initializers: new Map([['b', Tensor.from('float32', [3], [-1, 0.5, 2])]]), valueInfo: new Map(),
    },
    opsets: new Map([['', 13]]), irVersion: 8, producerName: 't', producerVersion: '', metadata: new Map<string, string>(),
  };
  for (const backend of ['ref', 'auto'] as const) {
    const s = Session.create(cloneModel(m), { backend });
    assert.ok(s.model.graph.nodes.some((n) => n.opType === 'AddAct'));
    const y = s.runSync({ x: Tensor.from('float32', [2, 3], [0.5, -1, -3, 2, 0, -2.5]) })['y']!;
    assert.deepEqual([...y.data], [0, 0, 0, 1, 0.5, 0]);
  }
});

test('no-op nodes (Identity, 1x1 unit-stride pools) are bypassed at load; real pools and graph outputs stay', () => {
  const g = emptyGraph('noops');
  g.inputs.push({ name: 'x', dtype: 'float32', shape: [1, 2, 3, 3] });
  const ints = (v: number[]) => ({ type: 'ints' as const, value: v });
  g.nodes.push(
    { name: 'id', opType: 'Identity', domain: '', inputs: ['x'], outputs: ['a'], attrs: {} },
    { name: 'avg1', opType: 'AveragePool', domain: '', inputs: ['a'], outputs: ['b'], attrs: { kernel_shape: ints([1, 1]), strides: ints([1, 1]), pads: ints([0, 0, 0, 0]) } },
    { name: 'max2', opType: 'MaxPool', domain: '', inputs: ['b'], outputs: ['c'], attrs: { kernel_shape: ints([2, 2]) } },
    { name: 'avgpad', opType: 'AveragePool', domain: '', inputs: ['b'], outputs: ['d'], attrs: { kernel_shape: ints([1, 1]), pads: ints([1, 1, 1, 1]) } },
    { name: 'out', opType: 'Identity', domain: '', inputs: ['b'], outputs: ['e'], attrs: {} },
  );
  g.outputs.push({ name: 'c', dtype: 'float32' }, { name: 'd', dtype: 'float32' }, { name: 'e', dtype: 'float32' });
  const m: Model = { graph: g, opsets: new Map([['', 13]]), irVersion: 8, producerName: 't', producerVersion: '0', metadata: new Map() };
  const plain = Session.create(cloneModel(m), { backend: 'ref', optimize: false });
  const s = Session.create(cloneModel(m), { backend: 'ref' });
  assert.deepEqual(s.model.graph.nodes.map((n) => n.name), ['max2', 'avgpad', 'out']);
  assert.deepEqual(s.model.graph.nodes.map((n) => n.inputs[0]), ['x', 'x', 'x']);
  const x = new Tensor('float32', [1, 2, 3, 3], Float32Array.from({ length: 18 }, (_, i) => Math.sin(i) * 3));
  const a = s.runSync({ x }), b = plain.runSync({ x });
  for (const k of ['c', 'd', 'e']) assert.deepEqual(Array.from(a[k]!.data as Float32Array), Array.from(b[k]!.data as Float32Array), k);
});

test('the nine-op LayerNorm chain of PyTorch exports becomes one q8.LayerNorm with the same outputs; a chain read elsewhere stays', () => {
  const build = (leak: boolean): Model => {
    const g = emptyGraph('ln');
    g.inputs.push({ name: 'x', dtype: 'float32', shape: [2, 5, 24] });
    const C = 24;
    const gam = Float32Array.from({ length: C }, (_, i) => 0.5 + Math.cos(i) * 0.3), bet = Float32Array.from({ length: C }, (_, i) => Math.sin(i * 1.7) * 0.2);
    g.initializers.set('gamma', new Tensor('float32', [C], gam));
    g.initializers.set('beta', new Tensor('float32', [C], bet));
    g.initializers.set('two', new Tensor('float32', [], Float32Array.of(2)));
    g.initializers.set('eps', new Tensor('float32', [], Float32Array.of(1e-5)));
    const axes = { axes: { type: 'ints' as const, value: [-1] } };
    const n = (name: string, opType: string, inputs: string[], attrs = {}) => g.nodes.push({ name, opType, domain: '', inputs, outputs: [name], attrs });
    n('m', 'ReduceMean', ['x'], axes); n('d', 'Sub', ['x', 'm']); n('p', 'Pow', ['d', 'two']); n('v', 'ReduceMean', ['p'], axes);
    n('ve', 'Add', ['v', 'eps']); n('s', 'Sqrt', ['ve']); n('q', 'Div', ['d', 's']); n('gm', 'Mul', ['q', 'gamma']); n('y', 'Add', ['gm', 'beta']);
    g.outputs.push({ name: 'y', dtype: 'float32' });
    if (leak) g.outputs.push({ name: 'v', dtype: 'float32' });
    return { graph: g, opsets: new Map([['', 13]]), irVersion: 8, producerName: 't', producerVersion: '0', metadata: new Map() };
  };
  const x = new Tensor('float32', [2, 5, 24], Float32Array.from({ length: 240 }, (_, i) => Math.sin(i * 0.37) * 3 + (i % 24) * 0.1));
  for (const leak of [false, true]) {
    const m = build(leak);
    const s = Session.create(cloneModel(m), { backend: 'ref' });
    const plain = Session.create(cloneModel(m), { backend: 'ref', optimize: false });
    const kinds = s.model.graph.nodes.map((nd) => nd.opType);
    if (leak) assert.ok(!kinds.includes('LayerNorm') && kinds.length === 9, kinds.join(' '));
    else assert.deepEqual(kinds, ['LayerNorm']);
    const a = s.runSync({ x })['y']!.data as Float32Array, b = plain.runSync({ x })['y']!.data as Float32Array;
    for (let i = 0; i < b.length; i++) assert.ok(Math.abs(a[i]! - b[i]!) <= 2e-6 * (1 + Math.abs(b[i]!)), `${leak} y[${i}]: ${a[i]} vs ${b[i]}`);
  }
});

test('the five-op erf GELU chain of PyTorch exports becomes one q8.Gelu with the same bits; a chain read elsewhere stays', () => {
  // x -> Div(√2) -> Erf -> Add(1) -> Mul(x) -> Mul(0.5); `swap` puts the commutative operands the
  // other way round, `leak` makes an intermediate a graph output (no fusion then).
  // Constants other than √2, 1 and 0.5 (`odd`) make every step's rounding count.
  const build = (swap: boolean, leak: boolean, odd = false): Model => {
    const g = emptyGraph('gelu');
    g.inputs.push({ name: 'x', dtype: 'float32', shape: [3, 40] });
    g.initializers.set('sqrt2', new Tensor('float32', [], Float32Array.of(odd ? 1.7 : Math.SQRT2)));
    g.initializers.set('one', new Tensor('float32', [], Float32Array.of(odd ? 1.3 : 1)));
    g.initializers.set('half', new Tensor('float32', [1], Float32Array.of(odd ? 0.7 : 0.5)));
    const n = (name: string, opType: string, inputs: string[]) => g.nodes.push({ name, opType, domain: '', inputs, outputs: [name], attrs: {} });
    n('d', 'Div', ['x', 'sqrt2']); n('e', 'Erf', ['d']);
    n('a', 'Add', swap ? ['one', 'e'] : ['e', 'one']); n('m', 'Mul', swap ? ['a', 'x'] : ['x', 'a']); n('y', 'Mul', swap ? ['half', 'm'] : ['m', 'half']);
    g.outputs.push({ name: 'y', dtype: 'float32' });
    if (leak) g.outputs.push({ name: 'a', dtype: 'float32' });
    return { graph: g, opsets: new Map([['', 13]]), irVersion: 8, producerName: 't', producerVersion: '0', metadata: new Map() };
  };
  const v = Float32Array.from({ length: 120 }, (_, i) => Math.sin(i * 0.37) * 4 + (i % 7) * 0.3);
  v[3] = 0; v[4] = -0; v[5] = NaN; v[6] = Infinity; v[7] = -Infinity; v[8] = 1e-30;
  const x = new Tensor('float32', [3, 40], v);
  for (const backend of ['ref', 'auto'] as const) {
    for (const [swap, leak, odd] of [[false, false, false], [true, false, false], [false, true, false], [true, false, true]] as const) {
      const m = build(swap, leak, odd);
      const s = Session.create(cloneModel(m), { backend });
      const kinds = s.model.graph.nodes.map((nd) => nd.opType);
      if (leak) assert.deepEqual(kinds, ['Div', 'Erf', 'Add', 'Mul', 'Mul']);
      else assert.deepEqual(kinds, ['Gelu']);
      // The same backend on the unfused graph: its Div, Erf, Add and Mul kernels give the same bits.
      const plain = Session.create(cloneModel(m), { backend, optimize: false });
      const a = s.runSync({ x })['y']!.data as Float32Array, b = plain.runSync({ x })['y']!.data as Float32Array;
      for (let i = 0; i < b.length; i++) assert.ok(Object.is(a[i], b[i]), `${backend} swap ${swap} leak ${leak} odd ${odd} y[${i}] (x = ${v[i]}): ${a[i]} vs ${b[i]}`);
    }
  }
});
