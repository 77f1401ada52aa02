/**
 * Mutation tests for every loader: truncated and byte-flipped model files either load (and then
 * pass session validation) or fail with a Q8Error — never another exception, a crash or a hang.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Q8Error } from '../../src/core/errors.js';
import { loadBigDL } from '../../src/formats/bigdl/index.js';
import { loadCaffe } from '../../src/formats/caffe/index.js';
import { loadModel } from '../../src/formats/detect.js';
import { loadTensorFlow } from '../../src/formats/tensorflow/index.js';
import { loadTfjs } from '../../src/formats/tfjs/index.js';
import { parseTextProto } from '../../src/formats/text-proto.js';
import type { Model } from '../../src/graph/ir.js';
import { Session } from '../../src/runtime/session.js';
import { fixture, needFixtures, rng } from './loader-helpers.js';

function variants(bytes: Uint8Array, seed: number, flips = 24): Uint8Array[] {
  const r = rng(seed);
  const out: Uint8Array[] = [];
  for (const f of [0, 0.01, 0.1, 0.33, 0.5, 0.77, 0.9, 0.999]) out.push(bytes.slice(0, Math.floor(bytes.length * f)));
  for (let k = 0; k < flips; k++) {
    const b = bytes.slice();
    const n = 1 + Math.floor(r() * 8);
    for (let i = 0; i < n; i++) b[Math.floor(r() * b.length)] = Math.floor(r() * 256);
    out.push(b);
  }
  return out;
}

function expectCleanOutcome(label: string, load: () => Model): 'loaded' | 'error' {
  try {
    const m = load();
    try {
      Session.create(m, { backend: 'ref' });
    } catch (e) {
      if (!(e instanceof Q8Error)) throw new Error(`${label}: session creation threw ${String(e)}`);
    }
    return 'loaded';
  } catch (e) {
    if (e instanceof Q8Error) {
      assert.ok(e.message.length > 0);
      return 'error';
    }
    assert.fail(`${label}: threw a non-Q8Error: ${e instanceof Error ? `${e.name}: ${e.message}\n${e.stack}` : String(e)}`);
  }
}

const bytesOf = (p: string) => new Uint8Array(readFileSync(p));

test('Caffe: corrupted .caffemodel and .prototxt give Q8Errors', { skip: needFixtures('lenet.prototxt', 'lenet_iter_10000.caffemodel') }, () => {
  const proto = readFileSync(fixture('lenet.prototxt'), 'utf8');
  const model = bytesOf(fixture('lenet_iter_10000.caffemodel'));
  const counts = { loaded: 0, error: 0 };
  for (const v of variants(model, 1)) counts[expectCleanOutcome('caffemodel', () => loadCaffe(proto, v))]++;
  for (const v of variants(new TextEncoder().encode(proto), 2)) counts[expectCleanOutcome('prototxt', () => loadCaffe(new TextDecoder().decode(v) || 'name: "x"', model))]++;
  assert.ok(counts.error > 0, 'some mutations must be rejected');
  // Weightless load of the caffemodel alone (structure from the binary) is also guarded.
  for (const v of variants(model, 3, 8)) expectCleanOutcome('caffemodel-only', () => loadCaffe(undefined, v));
});

test('TensorFlow: corrupted GraphDefs (binary and text) give Q8Errors', { skip: needFixtures('bigdl-tf-test.pb', 'bigdl-tfnet-frozen_inference_graph.pb') }, () => {
  for (const [f, o] of [['bigdl-tf-test.pb', 'output'], ['bigdl-tfnet-frozen_inference_graph.pb', 'dense_1/Sigmoid']] as const) {
    let errors = 0;
    for (const v of variants(bytesOf(fixture(f)), 4)) if (expectCleanOutcome(f, () => loadTensorFlow(v, { inputs: ['Placeholder'], outputs: [o] })) === 'error') errors++;
    assert.ok(errors > 0);
  }
  const text = 'node { name: "x" op: "Placeholder" attr { key: "dtype" value { type: DT_FLOAT } } }\nnode { name: "y" op: "Relu" input: "x" }\n';
  for (const v of variants(new TextEncoder().encode(text), 5)) expectCleanOutcome('pbtxt', () => loadTensorFlow(new TextDecoder().decode(v), { outputs: ['y'] }));
});

test('BigDL: corrupted module files give Q8Errors', { skip: needFixtures('bigdl_lenet.model') }, () => {
  let errors = 0;
  for (const v of variants(bytesOf(fixture('bigdl_lenet.model')), 6, 40)) if (expectCleanOutcome('bigdl', () => loadBigDL(v)) === 'error') errors++;
  assert.ok(errors > 0);
});

test('TF.js: corrupted model.json and weight shards give Q8Errors', () => {
  const dir = mkdtempSync(join(tmpdir(), 'q8-tfjs-mut-'));
  const r = rng(8);
  const w = Float32Array.from({ length: 4 * 3 + 3 }, () => r() - 0.5);
  const json = {
    format: 'layers-model',
    modelTopology: { class_name: 'Sequential', config: { name: 's', layers: [{ class_name: 'Dense', config: { name: 'd', units: 3, activation: 'softmax', use_bias: true, batch_input_shape: [null, 4] } }] } },
    weightsManifest: [{ paths: ['w.bin'], weights: [{ name: 'd/kernel', shape: [4, 3], dtype: 'float32' }, { name: 'd/bias', shape: [3], dtype: 'float32' }] }],
  };
  const jsonBytes = new TextEncoder().encode(JSON.stringify(json));
  const wBytes = new Uint8Array(w.buffer);
  writeFileSync(join(dir, 'model.json'), jsonBytes);
  writeFileSync(join(dir, 'w.bin'), wBytes);
  assert.equal(expectCleanOutcome('tfjs ok', () => loadTfjs(join(dir, 'model.json'))), 'loaded');
  let errors = 0;
  for (const v of variants(jsonBytes, 9)) {
    writeFileSync(join(dir, 'model.json'), v);
    if (expectCleanOutcome('model.json', () => loadTfjs(join(dir, 'model.json'))) === 'error') errors++;
  }
  writeFileSync(join(dir, 'model.json'), jsonBytes);
  for (const v of variants(wBytes, 10, 4)) {
    writeFileSync(join(dir, 'w.bin'), v);
    expectCleanOutcome('w.bin', () => loadTfjs(join(dir, 'model.json')));
  }
  assert.ok(errors > 0);
});

test('text-format parser: malformed input gives Q8Errors, deep nesting is bounded', () => {
  for (const s of ['a {', 'a: "x', 'a: 1e', '{', 'a: [1,', 'a: -foo', 'a b', '"x"', 'a: 0x', 'a: "\\x"']) {
    assert.throws(() => parseTextProto(s), Q8Error, s);
  }
  assert.throws(() => parseTextProto('a {'.repeat(5000)), Q8Error);
  const m = parseTextProto('a: 1 a: [2, 3] b { c: "x" "y" } d: -inf e: 1.5f f: true g: ENUM # c\n h < i: 0x10 >');
  assert.deepEqual(m.nums('a'), [1, 2, 3]);
  assert.equal(m.msg('b')!.str('c'), 'xy');
  assert.equal(m.num('d'), -Infinity);
  assert.equal(m.num('e'), 1.5);
  assert.equal(m.bool('f', false), true);
  assert.equal(m.str('g'), 'ENUM');
  assert.equal(m.msg('h')!.num('i'), 16);
});

test('loadModel: missing files, unknown content and bad --from give Q8Errors', () => {
  const dir = mkdtempSync(join(tmpdir(), 'q8-detect-'));
  assert.throws(() => loadModel(join(dir, 'nope.onnx')), Q8Error);
  writeFileSync(join(dir, 'junk.bin'), new Uint8Array([0xff, 0xfe, 0x00, 0x13]));
  assert.throws(() => loadModel(join(dir, 'junk.bin')), Q8Error);
  assert.throws(() => loadModel(join(dir, 'junk.bin'), { from: 'keras' as never }), Q8Error);
  assert.ok(existsSync(dir));
});
