/**
 * ONNX load/save: round trip keeps outputs identical; external data; damaged files (truncated,
 * byte flips, hostile lengths and shapes) give a Q8Error naming the file, never a crash or hang.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Q8Error } from '../../src/core/errors.js';
import { decodeOnnx, encodeOnnx, loadOnnxFile, saveOnnxFile } from '../../src/formats/onnx/index.js';
import { Session } from '../../src/runtime/session.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { cloneModel } from '../../src/graph/clone.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const modelFile = path.join(root, 'models/fashion-resnet.onnx');

function images(n: number, seed: number): Tensor {
  let s = seed;
  const d = new Float32Array(n * 784);
  for (let i = 0; i < d.length; i++) { s = (s * 1103515245 + 12345) >>> 0; d[i] = (s >>> 8) / 2 ** 24; }
  return new Tensor('float32', [n, 1, 28, 28], d);
}

function run(model: ReturnType<typeof loadOnnxFile>, x: Tensor): Float32Array {
  const s = Session.create(cloneModel(model));
  return Object.values(s.runSync({ [s.inputs[0]!.name]: x }))[0]!.data as Float32Array;
}

test('save → load round trip keeps outputs bit-identical', () => {
  const m = loadOnnxFile(modelFile);
  const x = images(3, 7);
  const before = run(m, x);
  const again = decodeOnnx(encodeOnnx(m), { file: 'roundtrip' });
  assert.equal(again.graph.nodes.length, m.graph.nodes.length);
  assert.deepEqual([...again.opsets], [...m.opsets]);
  assert.deepEqual(run(again, x), before);
});

test('external data: large tensors go to a side file and load back', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'q8-ext-'));
  const m = loadOnnxFile(modelFile);
  const out = path.join(dir, 'm.onnx');
  saveOnnxFile(m, out, { externalData: { file: path.join(dir, 'm.onnx.data'), threshold: 1024 } });
  assert.ok(fs.statSync(out).size < 16 * 1024, 'weights left the protobuf');
  assert.ok(fs.statSync(path.join(dir, 'm.onnx.data')).size > 40 * 1024);
  const x = images(2, 3);
  assert.deepEqual(run(loadOnnxFile(out), x), run(m, x));
  // A missing or short side file is a clear error.
  fs.truncateSync(path.join(dir, 'm.onnx.data'), 1000);
  assert.throws(() => loadOnnxFile(out), (e: unknown) => e instanceof Q8Error && /external data/.test(e.message) && e.message.includes(out));
  fs.rmSync(dir, { recursive: true });
});

test('external data may not point outside the model folder', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'q8-ext-'));
  const m = loadOnnxFile(modelFile);
  saveOnnxFile(m, path.join(dir, 'm.onnx'), { externalData: { file: path.join(dir, 'm.onnx.data') } });
  const bytes = fs.readFileSync(path.join(dir, 'm.onnx'));
  const evil = Buffer.from(bytes.toString('latin1').replaceAll('m.onnx.data', '../../etc/p'), 'latin1');
  fs.writeFileSync(path.join(dir, 'evil.onnx'), evil);
  assert.throws(() => loadOnnxFile(path.join(dir, 'evil.onnx')), /outside the model's folder/);
  fs.rmSync(dir, { recursive: true });
});

test('truncated model files give a clear error naming the file', () => {
  const bytes = fs.readFileSync(modelFile);
  const cuts = [0, 1, 2, 10, 100, 1000, bytes.length >> 1, bytes.length - 100, bytes.length - 1];
  for (const n of cuts) {
    assert.throws(() => decodeOnnx(bytes.subarray(0, n), { file: 'cut.onnx' }),
      (e: unknown) => e instanceof Q8Error && e.message.startsWith('cut.onnx'), `truncated to ${n} bytes`);
  }
});

test('random byte flips never crash, hang or run away: each load either succeeds and runs, or throws Q8Error', () => {
  const bytes = fs.readFileSync(modelFile);
  let s = 12345;
  const rnd = () => { s = (s * 1103515245 + 12345) >>> 0; return s; };
  let errors = 0, ok = 0;
  // Flips land in the structure (first 4 KiB: graph, node and attribute headers) and anywhere.
  for (let trial = 0; trial < 150; trial++) {
    const b = Uint8Array.from(bytes);
    const region = trial % 2 ? b.length : 4096;
    for (let k = 0; k < 1 + (trial % 4); k++) b[rnd() % region] = rnd() & 0xff;
    try {
      const m = decodeOnnx(b, { file: 'flipped.onnx' });
      const sess = Session.create(m);
      sess.runSync({ [sess.inputs[0]!.name]: images(1, trial) });
      ok++;
    } catch (e) {
      assert.ok(e instanceof Q8Error, `trial ${trial}: ${(e as Error)?.stack}`);
      assert.ok(e.message.startsWith('flipped.onnx'), e.message);
      errors++;
    }
  }
  assert.ok(errors > 0 && errors + ok === 150);
});

test('hostile lengths and shapes are refused before allocating', () => {
  // A TensorProto claiming dims [1e6, 1e6, 1e6] with no data inside a graph initializer.
  const evil = encodeOnnx({
    graph: { name: 'g', nodes: [], inputs: [], outputs: [{ name: 'w' }], initializers: new Map(), valueInfo: new Map() },
    opsets: new Map([['', 13]]), irVersion: 8, producerName: 't', producerVersion: '', metadata: new Map(),
  });
  assert.ok(evil.length > 0);
  // Hand-built: ModelProto{graph{initializer{dims:1e6 x3, data_type:1, name:"w"}}}
  const tensor = [0x08, 0xc0, 0x84, 0x3d, 0x08, 0xc0, 0x84, 0x3d, 0x08, 0xc0, 0x84, 0x3d, 0x10, 0x01, 0x42, 0x01, 0x77];
  const graph = [0x2a, tensor.length, ...tensor];
  const model = Uint8Array.from([0x08, 0x07, 0x3a, graph.length, ...graph]);
  assert.throws(() => decodeOnnx(model, { file: 'huge.onnx' }), (e: unknown) => e instanceof Q8Error && /limit|needs/.test(e.message) && e.message.includes('huge.onnx'));
  // A length prefix far beyond the buffer.
  assert.throws(() => decodeOnnx(Uint8Array.from([0x3a, 0xff, 0xff, 0xff, 0xff, 0x0f]), { file: 'len.onnx' }), /len.onnx: not a valid ONNX model/);
});

test('wrong inputs: missing, unknown, wrong dtype, wrong shape are clear errors', () => {
  const s = Session.create(loadOnnxFile(modelFile));
  const name = s.inputs[0]!.name;
  assert.throws(() => s.runSync({}), /missing input 'input'/);
  assert.throws(() => s.runSync({ [name]: images(1, 1), bogus: images(1, 1) }), /'bogus' is not an input/);
  assert.throws(() => s.runSync({ [name]: Tensor.zeros('int32', [1, 1, 28, 28]) }), /must be float32, got int32/);
  assert.throws(() => s.runSync({ [name]: new Tensor('float32', [1, 1, 27, 28], new Float32Array(27 * 28)) }), /must have shape \[\w+,1,28,28\]/);
});

test('an operator outside the list fails at load naming the node and operator', () => {
  const m = loadOnnxFile(modelFile);
  m.graph.nodes[1]!.opType = 'FancyOp';
  const nodeName = m.graph.nodes[1]!.name;
  assert.throws(() => Session.create(m), (e: unknown) => e instanceof Q8Error && e.message.includes('FancyOp') && e.message.includes(nodeName) && e.message.includes(modelFile));
});
