/**
 * quantizeModel → standard ONNX bytes → load: the file holds int8 weights behind DequantizeLinear,
 * q8 recognises the pattern (Q8Conv/Q8Gemm with the stored int8 values, activations fused) and
 * the outputs are identical to the in-memory quantized model and close to fp32.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeOnnx, encodeOnnx } from '../../src/formats/onnx/index.js';
import type { Model } from '../../src/graph/ir.js';
import '../../src/quant/index.js';
import { cloneModel, quantizeModel, formatReport, type QuantizeOptions } from '../../src/quant/quantize.js';
import { ensureOpset } from '../../src/quant/opset.js';
import { Session } from '../../src/runtime/session.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { cosine } from '../../src/quant/types.js';
import { Builder, randomImages, smallCnn } from './models.js';
import { randomArray, rng } from './util.js';

function run(m: Model, x: Tensor): Float32Array {
  const s = Session.create(cloneModel(m));
  return Object.values(s.runSync({ [s.inputs[0]!.name]: x }))[0]!.data as Float32Array;
}

/** The int8 layers a session runs (q8.Q8Conv / q8.Q8Gemm; fused fp32 q8.ConvAct nodes are not int8). */
function q8Nodes(m: Model) {
  const s = Session.create(cloneModel(m));
  return { nodes: s.model.graph.nodes.filter((n) => n.domain === 'q8' && (n.opType === 'Q8Conv' || n.opType === 'Q8Gemm')), session: s };
}

for (const opts of [{}, { weightWindow: 32 }, { weightWindow: 64, activationWindow: 32 }, { activationWindow: 'tap' }] as QuantizeOptions[]) {
  test(`save → load round trip keeps int8 weights and outputs (${JSON.stringify(opts)})`, () => {
    const fp = smallCnn(3);
    const x = randomImages(5, 2);
    const { model: q, report } = quantizeModel(fp, opts);
    assert.equal(report.layers.length, 6);
    assert.ok(report.layers.every((l) => l.quantized));
    const bytes = encodeOnnx(q);
    const back = decodeOnnx(bytes);
    // Standard ONNX: no q8-domain nodes in the file, int8 initializers, DQ nodes, settings in metadata.
    assert.ok(back.graph.nodes.every((n) => n.domain === ''));
    assert.equal(back.graph.nodes.filter((n) => n.opType === 'DequantizeLinear').length, 6);
    assert.equal(back.metadata.get('q8.version'), '1');
    assert.equal(back.metadata.get('q8.activation_window'), String(opts.activationWindow ?? 'row'));
    assert.equal(back.opsets.get(''), opts.weightWindow ? 21 : 13);
    for (const w of ['c1.w', 'dw.w', 'fc1.w', 'fc2.w']) assert.ok(!back.graph.initializers.has(w), `fp32 ${w} should be gone`);
    // q8 runs int8 kernels on exactly the stored values, with Relu/Clip fused.
    const { nodes } = q8Nodes(back);
    assert.equal(nodes.length, 6);
    const stored = [...back.graph.initializers.values()].filter((t) => t.dtype === 'int8').map((t) => [...(t.data as Int8Array)].join(','));
    const sess = Session.create(cloneModel(back));
    const inits = sess.model.graph.initializers;
    for (const n of nodes) {
      const wq = inits.get(n.inputs[1]!)!;
      assert.equal(wq.dtype, 'int8');
      // Conv/Gemm weights are stored output-major already; MatMul's [K,N] is transposed at load.
      if (n.name !== 'fc2') assert.ok(stored.includes([...(wq.data as Int8Array)].join(',')), `${n.name}: int8 weights should be the stored ones`);
    }
    // Tap windows only for the ungrouped convs; grouped/depthwise convs keep patches, Gemm/MatMul rows.
    const taps = nodes.filter((n) => n.attrs['act_tap']?.value === 1).map((n) => n.name).sort();
    assert.deepEqual(taps, opts.activationWindow === 'tap' ? ['conv1', 'pointwise'] : []);
    const acts = Object.fromEntries(nodes.map((n) => [n.name, n.attrs['activation']?.value ?? '']));
    assert.deepEqual(acts, { conv1: 'Relu', dw: 'Clip', grouped: '', pointwise: 'Relu', fc1: 'Relu', fc2: '' });
    assert.ok(!sess.model.graph.nodes.some((n) => n.opType === 'Relu' || n.opType === 'Clip'));
    // Same outputs before and after the file, close to fp32.
    const a = run(q, x), b = run(back, x), f = run(fp, x);
    assert.deepEqual([...b], [...a]);
    const c = cosine(f, a);
    assert.ok(c > 0.999, `cosine vs fp32 ${c}`);
    assert.ok(c < 1, 'int8 should differ from fp32 a little (the test must be able to fail)');
  });
}

test('a MatMul bias Add (then Relu) folds into the Q8Gemm: same bits as the separate Add', () => {
  // Exported Linear layers are MatMul + Add(bias). Folded, the kernel adds the bias in its store.
  // A model whose bias is fed (not constant) keeps the Add and is the expected result.
  const make = (fedBias: boolean, biasShape: number[]) => {
    const b = new Builder(rng(31));
    const x = b.input('x', [2, 3, 24]);
    const [mm] = b.node('MatMul', [x, b.weight('w', [24, 10], 0.5)], {}, 1, 'fc');
    const bias = fedBias ? b.input('bias', biasShape) : b.init('bias', Tensor.from('float32', biasShape, randomArray(rng(33), 10, 0.5)));
    const [ad] = b.node('Add', [bias, mm!]);
    const [r] = b.node('Relu', [ad!]);
    const [mm2] = b.node('MatMul', [r!, b.weight('w2', [10, 7], 0.5)], {}, 1, 'fc2');
    const [ad2] = b.node('Add', [mm2!, b.weight('bias2', [7], 0.5)]);
    b.output(ad2!);
    return b.model;
  };
  const x = Tensor.from('float32', [2, 3, 24], randomArray(rng(32), 144, 1));
  const folded = quantizeModel(make(false, [10])).model;
  const kept = quantizeModel(make(true, [10])).model;
  const bias = Tensor.from('float32', [10], randomArray(rng(33), 10, 0.5));
  const { nodes, session } = q8Nodes(folded);
  assert.deepEqual(nodes.map((n) => [n.name, n.inputs.length, n.attrs['activation']?.value ?? '']), [['fc', 4, 'Relu'], ['fc2', 4, '']]);
  const adds = (m: Model) => m.graph.nodes.filter((n) => /^Add/.test(n.opType)).length;  // Add, or q8.AddAct with the Relu
  assert.equal(adds(session.model), 0);
  assert.ok(!session.model.graph.nodes.some((n) => n.opType === 'Relu'));
  const sk = Session.create(cloneModel(kept));
  assert.equal(adds(sk.model), 1, 'a fed bias stays an Add');
  const got = session.runSync({ x })[session.outputs[0]!.name]!;
  const want = sk.runSync({ x, bias })[sk.outputs[0]!.name]!;
  assert.deepEqual([...got.data as Float32Array], [...want.data as Float32Array]);
  // A bias that is not [N] (here [1, 10]: it could broadcast to another shape) stays an Add.
  const other = q8Nodes(quantizeModel(make(false, [1, 10])).model);
  assert.equal(other.nodes[0]!.inputs.length, 3);
  assert.equal(adds(other.session.model), 1);
});

test('the file is ~4x smaller and the report adds up', () => {
  const fp = smallCnn(4, { channels: 64, fc: 512 });
  const { model: q, report } = quantizeModel(fp, { samples: [{ image: randomImages(2, 1) }] });
  const r = encodeOnnx(fp).length / encodeOnnx(q).length;
  assert.ok(r > 3.5, `size ratio ${r} (small model: names, biases and scales weigh more)`);
  assert.ok(report.weightBytesFp32 / report.weightBytesInt8 > 3.8, `weight bytes ratio ${report.weightBytesFp32 / report.weightBytesInt8}`);
  for (const l of report.layers) {
    assert.ok(l.sqnrDb > 30 && l.sqnrDb < 60, `${l.name} SQNR ${l.sqnrDb}`);
    assert.ok(l.cosine > 0.99 && l.cosine <= 1, `${l.name} cosine ${l.cosine}`);
  }
  assert.ok(report.outputCosine > 0.999);
  assert.equal(report.worst.length, 1);
  const table = formatReport(report);
  assert.match(table, /conv1\s+conv\s+64×27/);
  assert.match(table, /<- worst/);
  const json = JSON.parse(formatReport(report, { json: true })) as { layers: { name: string }[] };
  assert.equal(json.layers.length, 6);
});

test('exclusions keep layers fp32 by name, output or kind', () => {
  const fp = smallCnn(6);
  const { model: q, report } = quantizeModel(fp, { exclude: ['depthwise', 'fc2'] });
  assert.deepEqual(report.layers.filter((l) => !l.quantized).map((l) => l.name), ['dw', 'fc2']);
  assert.ok(q.graph.initializers.has('dw.w') && q.graph.initializers.has('fc2.w'));
  assert.deepEqual(q8Nodes(q).nodes.map((n) => n.name), ['conv1', 'grouped', 'pointwise', 'fc1']);
});

test('NaN weights are refused naming the node', () => {
  const fp = smallCnn(7);
  (fp.graph.initializers.get('pw.w')!.data as Float32Array)[5] = NaN;
  assert.throws(() => quantizeModel(fp), /node 'pointwise' \(Conv\).*NaN/);
});

test('accuracy-aware mode keeps the most damaging layers in fp32 until outputs meet the tolerance', () => {
  const fp = smallCnn(8);
  // Make fc1 a bad quantization target: one huge outlier per output channel.
  const w = fp.graph.initializers.get('fc1.w')!.data as Float32Array;
  for (let n = 0; n < 16; n++) w[n] = 300 * (n % 2 ? 1 : -1);
  const samples = [0, 1, 2].map((i) => ({ image: randomImages(10 + i, 1) }));
  const plain = quantizeModel(fp, { samples });
  const worst = [...plain.report.layers].sort((a, b) => a.cosine - b.cosine)[0]!;
  // A tolerance the all-int8 model misses: a third of its output error.
  const minCosine = 1 - (1 - plain.report.outputCosine) / 3;
  const { model: q, report } = quantizeModel(fp, { samples, accuracy: { minCosine } });
  assert.ok(report.outputCosine >= minCosine, `accuracy mode output cosine ${report.outputCosine} < ${minCosine}`);
  // Kept layers are the most damaging first, or the network's first layers (whichever costs fewer bytes).
  const names = report.layers.map((l) => l.name);
  const prefix = report.keptFp32.every((n, i) => n === names[i]);
  assert.ok(report.keptFp32[0] === worst.name || prefix, `kept: ${report.keptFp32}`);
  assert.ok(report.keptFp32.length < 6);
  const wName: Record<string, string> = { conv1: 'c1.w', dw: 'dw.w', grouped: 'gc.w', pointwise: 'pw.w', fc1: 'fc1.w', fc2: 'fc2.w' };
  for (const k of report.keptFp32) {
    assert.equal(report.layers.find((l) => l.name === k)!.reason, 'accuracy');
    assert.ok(q.graph.initializers.has(wName[k]!), `${k} should keep its fp32 weight`);
  }
});

test('foreign QDQ weights: per-tensor int8 DQ becomes Q8Gemm; -128 or nonzero zero points stay float (and stay correct)', () => {
  const r = rng(12);
  for (const variant of ['plain', 'minus128', 'zp'] as const) {
    const b = new Builder(r, 13);
    const x = b.input('x', [3, 20]);
    const q = new Int8Array(20 * 7).map(() => r.int(-127, 127));
    if (variant === 'minus128') q[3] = -128;
    b.init('wq', Tensor.from('int8', [20, 7], q));
    b.init('ws', Tensor.from('float32', [], [0.02]));
    const ins = ['wq', 'ws'];
    if (variant === 'zp') ins.push(b.init('wz', Tensor.from('int8', [], [3])));
    const [w] = b.node('DequantizeLinear', ins);
    const [y] = b.node('MatMul', [x, w!], {}, 1, 'mm');
    b.output(y!);
    const xs = Tensor.from('float32', [3, 20], randomArray(r, 60));
    const { nodes } = q8Nodes(b.model);
    assert.equal(nodes.length, variant === 'plain' ? 1 : 0, variant);
    const got = run(b.model, xs);
    const want = new Float32Array(21);
    const xd = xs.data as Float32Array;
    for (let i = 0; i < 3; i++) for (let j = 0; j < 7; j++) {
      let s = 0;
      for (let k = 0; k < 20; k++) s += xd[i * 20 + k]! * (q[k * 7 + j]! - (variant === 'zp' ? 3 : 0)) * Math.fround(0.02);
      want[i * 7 + j] = s;
    }
    const c = cosine(want, got);
    assert.ok(variant === 'plain' ? c > 0.9995 && c < 1 : c > 0.999999, `${variant}: cosine ${c}`);
  }
});

test('raising the opset keeps what old-opset nodes mean (Softmax axis, Reduce/Squeeze axes, Clip/Slice/Pad attributes)', () => {
  const r = rng(14);
  const b = new Builder(r, 9);
  const x = b.input('x', [2, 3, 4, 5]);
  const [sm] = b.node('Softmax', [x], { axis: 1 });                 // over the flattened 3·4·5
  const [cl] = b.node('Clip', [sm!], { min: { type: 'float', value: 0.001 }, max: { type: 'float', value: 0.01 } });
  const [rs] = b.node('ReduceSum', [cl!], { axes: [3], keepdims: 1 });
  const [sq] = b.node('Squeeze', [rs!], { axes: [3] });
  const [sl] = b.node('Slice', [sq!], { starts: [1], ends: [3], axes: [2] });
  const [pd] = b.node('Pad', [sl!], { pads: [0, 0, 1, 0, 0, 2], value: { type: 'float', value: 0.5 } });
  const [rm] = b.node('ReduceMean', [pd!], { axes: [1], keepdims: 0 });
  const [us] = b.node('Unsqueeze', [rm!], { axes: [0] });
  b.output(us!);
  const xs = Tensor.from('float32', [2, 3, 4, 5], randomArray(r, 120, 3));
  const before = run(b.model, xs);
  for (const target of [13, 21]) {
    const m = cloneModel(b.model);
    ensureOpset(m, target);
    assert.equal(m.opsets.get(''), target);
    assert.ok(m.irVersion >= (target >= 21 ? 10 : 7));
    const after = run(m, xs);
    assert.deepEqual([...after], [...before], `opset ${target}`);
    assert.ok(m.graph.nodes.every((n) => !('axes' in n.attrs) || n.opType === 'ReduceMean' && target < 18), `opset ${target}: axes should be inputs`);
  }
});

test('LSTM / GRU / RNN weights are stored int8 (per gate row) and the outputs stay close to fp32', () => {
  const r = rng(31);
  for (const [op, gates, attrs] of [['LSTM', 4, { direction: 'bidirectional' }], ['GRU', 3, { linear_before_reset: 1 }], ['RNN', 1, {}]] as const) {
    const b = new Builder(r, 13);
    const H = 48, I = 64, T = 6, B = 3, dirs = op === 'LSTM' ? 2 : 1;
    const x = b.input('x', [T, B, I]);
    const W = b.weight(`${op}.W`, [dirs, gates * H, I], 0.15);
    const R = b.weight(`${op}.R`, [dirs, gates * H, H], 0.15);
    const Bias = b.weight(`${op}.B`, [dirs, 2 * gates * H], 0.1);
    const [y] = b.node(op, [x, W, R, Bias], { hidden_size: H, ...attrs }, 1, op.toLowerCase());
    b.output(y!);
    const xs = Tensor.from('float32', [T, B, I], randomArray(r, T * B * I));
    const { model: q, report } = quantizeModel(b.model);
    assert.deepEqual(report.layers.map((l) => [l.name, l.kind, l.N, l.K]), [[`${op.toLowerCase()}.W`, 'rnn', dirs * gates * H, I], [`${op.toLowerCase()}.R`, 'rnn', dirs * gates * H, H]]);
    const back = decodeOnnx(encodeOnnx(q));
    assert.ok(!back.graph.initializers.has(`${op}.W`) && !back.graph.initializers.has(`${op}.R`));
    assert.equal([...back.graph.initializers.values()].filter((t) => t.dtype === 'int8').length, 2);
    const c = cosine(run(b.model, xs), run(back, xs));
    assert.ok(c > 0.9995 && c < 1, `${op}: cosine vs fp32 ${c}`);
    assert.ok(encodeOnnx(b.model).length / encodeOnnx(q).length > 2.5, `${op}: file should shrink`);
  }
});

test('a report on a model with integer inputs (token ids) keeps SQNR and skips output cosines', () => {
  const b = new Builder(rng(40), 13);
  b.model.graph.inputs.push({ name: 'ids', dtype: 'int64', shape: ['N', 5] });
  const [e] = b.node('Gather', [b.weight('emb', [50, 32]), 'ids'], { axis: 0 });
  const [y] = b.node('MatMul', [e!, b.weight('proj', [32, 16])], {}, 1, 'proj');
  b.output(y!);
  const { report } = quantizeModel(b.model, { report: true });
  assert.equal(report.samples, 0);
  assert.deepEqual(report.layers.map((l) => [l.name, l.quantized, Number.isNaN(l.cosine)]), [['proj', true, true]]);
  assert.ok(report.layers[0]!.sqnrDb > 35);
  assert.match(formatReport(report), /n\/a/);
  assert.throws(() => quantizeModel(b.model, { accuracy: true }), /cannot synthesise a sample for input 'ids'/);
});

test('a finer activation window for depthwise layers is stored per layer and used at load', () => {
  const { model: q } = quantizeModel(smallCnn(9), { depthwiseActivationWindow: 8 });
  assert.equal(q.metadata.get('q8.layer_activation_windows'), JSON.stringify({ dw: '8' }));
  const acts = Object.fromEntries(q8Nodes(q).nodes.map((n) => [n.name, n.attrs['act_block']?.value]));
  assert.deepEqual(acts, { conv1: 0, dw: 8, grouped: 0, pointwise: 0, fc1: 0, fc2: 0 });
  assert.equal(quantizeModel(smallCnn(9)).model.metadata.get('q8.layer_activation_windows'), undefined);
});
