/** The q8 command line as scripts use it: verbs, flags, output formats and exit codes. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { encodeNpy, decodeNpy } from '../../src/data/npy.js';
import { encodeOnnx } from '../../src/formats/onnx/index.js';
import { encodeTensorProto } from '../../src/formats/onnx/tensor-proto.js';
import { Tensor } from '../../src/tensor/tensor.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const bin = path.join(root, 'bin/q8.js');
const mlp = path.join(root, 'models/fashion-mlp.onnx');
const DATA = '/usr/share/datasets/fashion-mnist';
const haveData = fs.existsSync(path.join(DATA, 't10k-images-idx3-ubyte.gz'));
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'q8-cli-'));

function q8(...args: string[]) {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', cwd: tmp, timeout: 300_000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

function sample(n: number): Tensor {
  const d = new Float32Array(n * 784);
  for (let i = 0; i < d.length; i++) d[i] = ((i * 7919) % 256) / 255;
  return new Tensor('float32', [n, 1, 28, 28], d);
}

test('inspect shows inputs, outputs, operators, parameters and bytes', () => {
  const r = q8('inspect', mlp);
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /inputs[\s\S]*input\s+float32\s+\[N, 1, 28, 28\]/);
  assert.match(r.out, /outputs[\s\S]*logits\s+float32/);
  assert.match(r.out, /Gemm\s+3/);
  assert.match(r.out, /parameters 235,146/); // 784*256+256 + 256*128+128 + 128*10+10
  const j = JSON.parse(q8('inspect', mlp, '--json').out);
  assert.equal(j.parameters, 235146);
  assert.equal(j.weight_bytes, 235146 * 4);
  assert.equal(j.operators.Gemm, 3);
});

test('predict writes each output as DIR/<sanitised name>.npy, from .npy and TensorProto .pb inputs', () => {
  const x = sample(3);
  fs.writeFileSync(path.join(tmp, 'x.npy'), encodeNpy(x));
  fs.writeFileSync(path.join(tmp, 'x.pb'), encodeTensorProto('input', x).finish());
  const a = q8('predict', mlp, '--input', 'x.npy', '--output-dir', 'outA');
  assert.equal(a.code, 0, a.err);
  assert.match(a.out, /logits: float32 \[3, 10\]/);
  const b = q8('predict', mlp, '--input', 'input=x.pb', '--output-dir', 'outB');
  assert.equal(b.code, 0, b.err);
  const ya = decodeNpy(fs.readFileSync(path.join(tmp, 'outA/logits.npy')));
  const yb = decodeNpy(fs.readFileSync(path.join(tmp, 'outB/logits.npy')));
  assert.deepEqual(ya.shape, [3, 10]);
  assert.deepEqual(ya.data, yb.data);

  // Output names with characters outside [A-Za-z0-9._-] are sanitised.
  const model = encodeOnnx({
    graph: {
      name: 'g', nodes: [{ name: 'r', opType: 'Relu', domain: '', inputs: ['in:0'], outputs: ['out/put:0'], attrs: {} }],
      inputs: [{ name: 'in:0', dtype: 'float32', shape: [2] }], outputs: [{ name: 'out/put:0', dtype: 'float32', shape: [2] }],
      initializers: new Map(), valueInfo: new Map(),
    },
    opsets: new Map([['', 13]]), irVersion: 8, producerName: 'test', producerVersion: '', metadata: new Map(),
  });
  fs.writeFileSync(path.join(tmp, 'relu.onnx'), model);
  fs.writeFileSync(path.join(tmp, 'v.npy'), encodeNpy(Tensor.from('float32', [2], [-1.5, 2.5])));
  const c = q8('predict', 'relu.onnx', '--input', 'in:0=v.npy', '--output-dir', 'outC');
  assert.equal(c.code, 0, c.err);
  assert.deepEqual([...decodeNpy(fs.readFileSync(path.join(tmp, 'outC/out_put_0.npy'))).data], [0, 2.5]);
});

test('eval --json prints exactly one line with top1, top5, n, images_per_s', { skip: haveData ? false : `${DATA} is absent` }, () => {
  const r = q8('eval', mlp, '--images', `${DATA}/t10k-images-idx3-ubyte.gz`, '--labels', `${DATA}/t10k-labels-idx1-ubyte.gz`,
    '--scale', '0.00392156862745098', '--limit', '1000', '--batch', '128', '--json');
  assert.equal(r.code, 0, r.err);
  const lines = r.out.trim().split('\n');
  assert.equal(lines.length, 1);
  const j = JSON.parse(lines[0]!);
  assert.deepEqual(Object.keys(j), ['top1', 'top5', 'n', 'images_per_s']);
  assert.equal(j.n, 1000);
  assert.ok(j.top1 > 0.8 && j.top5 >= j.top1 && j.images_per_s > 0);
  const text = q8('eval', mlp, '--images', `${DATA}/t10k-images-idx3-ubyte.gz`, '--labels', `${DATA}/t10k-labels-idx1-ubyte.gz`, '--scale', '0.00392156862745098', '--limit', '1000');
  assert.match(text.out, new RegExp(`top-1\\s+${(100 * j.top1).toFixed(2)}%`));
});

test('bench --json prints median_ms, images_per_s, threads, backend, peak_rss_mb', () => {
  const r = q8('bench', mlp, '--batch', '4', '--warmup', '1', '--iterations', '3', '--json');
  assert.equal(r.code, 0, r.err);
  const j = JSON.parse(r.out.trim());
  for (const k of ['median_ms', 'images_per_s', 'threads', 'backend', 'peak_rss_mb']) assert.ok(k in j, k);
  assert.ok(j.median_ms > 0 && j.images_per_s > 0 && j.peak_rss_mb > 0);
});

test('convert without --quantize writes an equivalent ONNX file', () => {
  const r = q8('convert', mlp, '-o', 'copy.onnx');
  assert.equal(r.code, 0, r.err);
  fs.writeFileSync(path.join(tmp, 'x2.npy'), encodeNpy(sample(2)));
  q8('predict', mlp, '--input', 'x2.npy', '--output-dir', 'o1');
  q8('predict', 'copy.onnx', '--input', 'x2.npy', '--output-dir', 'o2');
  assert.deepEqual(fs.readFileSync(path.join(tmp, 'o1/logits.npy')), fs.readFileSync(path.join(tmp, 'o2/logits.npy')));
});

test('errors: clear message naming the file, non-zero exit, no stack trace', () => {
  const missing = q8('inspect', 'nope.onnx');
  assert.equal(missing.code, 1);
  assert.match(missing.err, /^q8: error: nope\.onnx: no such file/);
  fs.writeFileSync(path.join(tmp, 'junk.onnx'), Buffer.from('this is not a model at all'));
  const junk = q8('predict', 'junk.onnx', '--input', 'x.npy');
  assert.equal(junk.code, 1);
  assert.match(junk.err, /junk\.onnx: not a valid ONNX model/);
  assert.doesNotMatch(junk.err, /\n\s+at /);
  const flag = q8('eval', mlp);
  assert.equal(flag.code, 2);
  assert.match(flag.err, /--images/);
  const shape = q8('predict', mlp, '--input', 'v.npy');
  assert.equal(shape.code, 1);
  assert.match(shape.err, /input 'input' must have shape/);
  const help = q8('predict', '--help');
  assert.equal(help.code, 0);
  assert.match(help.out, /--output-dir/);
});
