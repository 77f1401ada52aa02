/**
 * A model with more than 2 GiB of weights in external data: loads (each weight byte read once,
 * straight into its tensor), runs, and saves back. The side file is sparse, so it costs no disk
 * and little time; a few known values are written at chosen offsets to prove the addressing.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { encodeOnnx, loadOnnxFile, saveOnnxFile } from '../../src/formats/onnx/index.js';
import { Session } from '../../src/runtime/session.js';
import { Tensor } from '../../src/tensor/tensor.js';
import type { Model } from '../../src/graph/ir.js';

const ROWS = 1100, COLS = 256 * 1024; // one [1100, 262144] float32 tensor = 1.07 GiB; two of them > 2 GiB
const BYTES = ROWS * COLS * 4;

function freeBytes(dir: string): number {
  try { const s = fs.statfsSync(dir); return s.bavail * s.bsize; } catch { return 0; }
}

test('models over 2 GiB of weights load from external data, run and save', { skip: os.totalmem() < 12 * 2 ** 30 ? 'needs 12 GiB of memory' : false }, () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'q8-big-'));
  try {
    const data = path.join(dir, 'weights.bin');
    // Two tensors back to back in one sparse file; mark row r of tensor k with value 1000*k + r at column 7.
    const fd = fs.openSync(data, 'w');
    fs.ftruncateSync(fd, 2 * BYTES);
    const marks: [number, number][] = [[0, 0], [0, 1099], [1, 3], [1, 1098]];
    for (const [k, r] of marks) {
      const v = new Float32Array([1000 * k + r]);
      fs.writeSync(fd, new Uint8Array(v.buffer), 0, 4, k * BYTES + (r * COLS + 7) * 4);
    }
    fs.closeSync(fd);
    const graph: Model = {
      graph: {
        name: 'big', nodes: [
          { name: 'g0', opType: 'Gather', domain: '', inputs: ['W0', 'idx'], outputs: ['a'], attrs: {} },
          { name: 'g1', opType: 'Gather', domain: '', inputs: ['W1', 'idx'], outputs: ['b'], attrs: {} },
          { name: 'add', opType: 'Add', domain: '', inputs: ['a', 'b'], outputs: ['y'], attrs: {} },
        ],
        inputs: [{ name: 'idx', dtype: 'int64', shape: [2] }], outputs: [{ name: 'y', dtype: 'float32' }],
        initializers: new Map(), valueInfo: new Map(),
      },
      opsets: new Map([['', 13]]), irVersion: 8, producerName: 'q8-test', producerVersion: '', metadata: new Map(),
    };
    // Encode a small model, then splice in TensorProtos that point into weights.bin.
    const file = path.join(dir, 'big.onnx');
    fs.writeFileSync(file, withExternal(encodeOnnx(graph), [['W0', 0], ['W1', BYTES]]));
    const rssBefore = process.memoryUsage.rss();
    const t0 = performance.now();
    const m = loadOnnxFile(file);
    const loadSecs = (performance.now() - t0) / 1000;
    const grown = process.memoryUsage.rss() - rssBefore;
    assert.equal(m.graph.initializers.get('W0')!.size, ROWS * COLS);
    // Read once into place: memory grows by about the weights, not twice that.
    assert.ok(grown < 1.3 * 2 * BYTES, `RSS grew by ${(grown / 2 ** 30).toFixed(2)} GiB for ${(2 * BYTES / 2 ** 30).toFixed(2)} GiB of weights`);
    const s = Session.create(m);
    const y = s.runSync({ idx: Tensor.from('int64', [2], [0n, 1098n]) })['y']!;
    assert.deepEqual(y.shape, [2, COLS]);
    assert.equal(y.data[7], 0 + 0);           // row 0: 0 (tensor 0, row 0) + 0
    assert.equal(y.data[COLS + 7], 1000 + 1098); // row 1098: tensor 1 marked 1098
    assert.equal(y.data[COLS + 8], 0);
    console.log(`loaded ${(2 * BYTES / 2 ** 30).toFixed(2)} GiB of external weights in ${loadSecs.toFixed(1)} s, RSS +${(grown / 2 ** 30).toFixed(2)} GiB`);
    if (freeBytes(dir) > 3 * BYTES) {
      const out = path.join(dir, 'copy.onnx');
      saveOnnxFile(m, out, { externalData: { file: path.join(dir, 'copy.onnx.data') } });
      assert.ok(fs.statSync(out).size < 4096);
      assert.ok(fs.statSync(path.join(dir, 'copy.onnx.data')).size >= 2 * BYTES);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

/** Append external-data initializers (GraphProto field 5) to the model's graph (ModelProto field 7). */
function withExternal(model: Uint8Array, tensors: [string, number][]): Uint8Array {
  const enc = new TextEncoder();
  const varint = (n: number) => { const b: number[] = []; while (n >= 0x80) { b.push((n % 128) | 0x80); n = Math.floor(n / 128); } b.push(n); return b; };
  const field = (num: number, payload: number[]) => [...varint(num * 8 + 2), ...varint(payload.length), ...payload];
  const str = (num: number, s: string) => field(num, [...enc.encode(s)]);
  const entry = (k: string, v: string) => field(13, [...str(1, k), ...str(2, v)]);
  const inits = tensors.flatMap(([name, offset]) => field(5, [
    ...varint(1 * 8), ...varint(ROWS), ...varint(1 * 8), ...varint(COLS), ...varint(2 * 8), 1, ...str(8, name),
    ...entry('location', 'weights.bin'), ...entry('offset', String(offset)), ...entry('length', String(BYTES)),
    ...varint(14 * 8), 1,
  ]));
  // Find the graph field in the model and rebuild it with the initializers appended.
  let p = 0;
  const out: number[] = [];
  while (p < model.length) {
    let key = 0, mul = 1, b: number;
    do { b = model[p++]!; key += (b & 0x7f) * mul; mul *= 128; } while (b & 0x80);
    const wire = key & 7;
    const start = p;
    if (wire === 0) { while (model[p++]! & 0x80); out.push(...varint(key), ...model.subarray(start, p)); continue; }
    let len = 0; mul = 1;
    do { b = model[p++]!; len += (b & 0x7f) * mul; mul *= 128; } while (b & 0x80);
    const payload = [...model.subarray(p, p + len)];
    p += len;
    if (key >> 3 === 7) out.push(...field(7, [...payload, ...inits]));
    else out.push(...varint(key), ...varint(len), ...payload);
  }
  return Uint8Array.from(out);
}
