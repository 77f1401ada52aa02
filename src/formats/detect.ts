/**
 * One entry point for every model format: detect the format from the path (extension, directory
 * contents) and the bytes, or take it from `from`, and call that format's loader.
 *
 *   const m = loadModel('lenet.caffemodel', { prototxt: 'lenet.prototxt' });
 *   const t = loadModel('frozen.pb', { tfInputs: ['input'], tfOutputs: ['logits'] });
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, extname, join } from 'node:path';
import { Q8Error } from '../core/errors.js';
import type { Model } from '../graph/ir.js';
import { listOps } from '../ops/index.js';
import { BIGDL_MODULES, loadBigDL } from './bigdl/index.js';
import { CAFFE_LAYERS, loadCaffe } from './caffe/index.js';
import { loadOnnxFile } from './onnx/index.js';
import { loadTensorFlow, TENSORFLOW_OPS } from './tensorflow/index.js';
import { loadTfjs, TFJS_LAYERS } from './tfjs/index.js';

export type ModelFormat = 'onnx' | 'caffe' | 'tensorflow' | 'tfjs' | 'bigdl';
export const MODEL_FORMATS: readonly ModelFormat[] = ['onnx', 'caffe', 'tensorflow', 'tfjs', 'bigdl'];

/**
 * What each format's loader accepts, as data (the README's support table is generated from this):
 * Caffe layer types, TensorFlow ops, TF.js layers-model classes (graph models use the TensorFlow
 * ops), BigDL module types, and the ONNX operators of the registry (default domain).
 */
export function supportedByFormat(): Record<ModelFormat, readonly string[]> {
  return {
    onnx: listOps().filter((o) => !o.domain).map((o) => o.opType),
    caffe: CAFFE_LAYERS,
    tensorflow: TENSORFLOW_OPS,
    tfjs: TFJS_LAYERS,
    bigdl: BIGDL_MODULES,
  };
}

export interface LoadModelOptions {
  /** Force the format instead of detecting it. */
  from?: ModelFormat;
  /** Caffe: the .prototxt net definition (default: a .prototxt beside the .caffemodel with the same base name). */
  prototxt?: string;
  /** TensorFlow / TF.js graph models: input tensor names (e.g. ['input', 'keep_prob']). */
  tfInputs?: string[];
  /** TensorFlow / TF.js graph models: output tensor names ("node" or "node:1"). */
  tfOutputs?: string[];
  /** TensorFlow: shapes for inputs whose Placeholder shape is unknown. */
  inputShapes?: Record<string, number[]>;
}

/** Read a model file of any supported format into q8's graph. Errors are Q8Errors naming the file. */
export function loadModel(path: string, opts: LoadModelOptions = {}): Model {
  if (!existsSync(path)) throw new Q8Error('file not found', { file: path });
  const format = opts.from ?? detectFormat(path);
  if (!MODEL_FORMATS.includes(format)) throw new Q8Error(`unknown format '${String(format)}' (expected ${MODEL_FORMATS.join(', ')})`, { file: path });
  const isDir = statSync(path).isDirectory();
  switch (format) {
    case 'tfjs': return loadTfjs(isDir ? join(path, 'model.json') : path, { inputs: opts.tfInputs, outputs: opts.tfOutputs });
    case 'caffe': {
      const ext = extname(path).toLowerCase();
      if (ext === '.prototxt') {
        // Given the definition: look for weights beside it.
        const weights = siblingCaffemodel(path);
        return loadCaffe(readFileSync(path, 'utf8'), weights ? bytesOf(weights) : undefined, { prototxtFile: path, caffemodelFile: weights });
      }
      const proto = opts.prototxt ?? siblingPrototxt(path);
      return loadCaffe(proto !== undefined ? readFileSync(proto, 'utf8') : undefined, bytesOf(path), { prototxtFile: proto, caffemodelFile: path });
    }
    case 'tensorflow': {
      if (isDir || basename(path) === 'saved_model.pb') {
        throw new Q8Error('TensorFlow SavedModel directories are not supported; freeze the graph (a frozen GraphDef .pb) or convert it to TF.js/ONNX', { file: path });
      }
      return loadTensorFlow(bytesOf(path), { inputs: opts.tfInputs, outputs: opts.tfOutputs, inputShapes: opts.inputShapes, file: path });
    }
    case 'bigdl': return loadBigDL(bytesOf(path), { file: path });
    case 'onnx': {
      const m = loadOnnxFile(path);
      m.source ??= path;
      return m;
    }
  }
}

function bytesOf(p: string): Uint8Array {
  const b = readFileSync(p);
  return new Uint8Array(b.buffer, b.byteOffset, b.length);
}

function siblingCaffemodel(prototxt: string): string | undefined {
  const same = prototxt.replace(/\.prototxt$/i, '.caffemodel');
  if (same !== prototxt && existsSync(same)) return same;
  // lenet.prototxt beside lenet_iter_10000.caffemodel: take the only snapshot of that stem.
  const stem = basename(prototxt).replace(/\.prototxt$/i, '');
  const found = readdirSync(dirname(prototxt)).filter((f) => f.startsWith(`${stem}_iter_`) && f.endsWith('.caffemodel'));
  return found.length === 1 ? join(dirname(prototxt), found[0]!) : undefined;
}

function siblingPrototxt(caffemodel: string): string | undefined {
  const base = caffemodel.replace(/\.caffemodel$/i, '');
  for (const c of [`${base}.prototxt`, join(dirname(caffemodel), 'deploy.prototxt')]) if (c !== caffemodel && existsSync(c)) return c;
  // LeNet-style names: lenet_iter_10000.caffemodel beside lenet.prototxt
  const stem = basename(base).replace(/_iter_\d+$/, '');
  const c = join(dirname(caffemodel), `${stem}.prototxt`);
  return existsSync(c) ? c : undefined;
}

/** Guess the format of a path: directory contents, extension, then the first bytes. */
export function detectFormat(path: string): ModelFormat {
  const st = statSync(path);
  if (st.isDirectory()) {
    if (existsSync(join(path, 'model.json'))) return 'tfjs';
    if (existsSync(join(path, 'saved_model.pb'))) return 'tensorflow';
    throw new Q8Error('directory holds neither model.json (TF.js) nor saved_model.pb (TensorFlow)', { file: path });
  }
  const ext = extname(path).toLowerCase();
  if (basename(path) === 'saved_model.pb') return 'tensorflow';
  if (ext === '.onnx') return 'onnx';
  if (ext === '.prototxt' || ext === '.caffemodel') return 'caffe';
  if (ext === '.json') return 'tfjs';
  if (ext === '.pbtxt') return 'tensorflow';
  if (ext === '.bigdl') return 'bigdl';
  const fd = readFileSync(path);
  const head = fd.subarray(0, 4096);
  return sniff(new Uint8Array(head.buffer, head.byteOffset, head.length), new Uint8Array(fd.buffer, fd.byteOffset, fd.length), path);
}

/** Content sniffing for binary protobufs and text. */
export function sniff(head: Uint8Array, all: Uint8Array, file?: string): ModelFormat {
  const text = new TextDecoder('utf-8', { fatal: false }).decode(head);
  if (/^\s*\{/.test(text) && /"modelTopology"|"weightsManifest"/.test(text)) return 'tfjs';
  if (/^\s*(#[^\n]*\n\s*)*node\s*\{/.test(text)) return 'tensorflow';
  if (/^\s*(#[^\n]*\n\s*)*(name|input|input_dim|input_shape|layer|layers)\s*[:{]/.test(text)) return 'caffe';
  if (indexOf(all, 'com.intel.analytics.bigdl') >= 0) return 'bigdl';
  // Binary protobufs, by their top-level fields.
  const fields = topFields(all);
  if (fields.has('1:0') && (fields.has('7:2') || fields.has('8:2'))) return 'onnx';
  if (fields.has('100:2') || fields.has('2:2') && !fields.has('4:2') && !fields.has('1:2')) return 'caffe';
  if (fields.has('1:2') && (fields.has('4:2') || nodeLike(all))) return 'tensorflow';
  if (fields.has('1:2') && fields.has('100:2')) return 'caffe';
  throw new Q8Error('cannot tell the model format from the file name or content; pass from: onnx|caffe|tensorflow|tfjs|bigdl', { file });
}

function indexOf(b: Uint8Array, s: string): number {
  const pat = new TextEncoder().encode(s);
  outer: for (let i = 0; i + pat.length <= b.length; i++) {
    for (let j = 0; j < pat.length; j++) if (b[i + j] !== pat[j]) continue outer;
    return i;
  }
  return -1;
}

/** Top-level "field:wire" keys of a protobuf message, scanning at most 64 fields; empty if not protobuf. */
function topFields(b: Uint8Array): Set<string> {
  const out = new Set<string>();
  let p = 0;
  const varint = (): number => {
    let v = 0, m = 1;
    for (let i = 0; i < 8; i++) {
      if (p >= b.length) return -1;
      const c = b[p++]!;
      v += (c & 0x7f) * m;
      if (c < 0x80) return v;
      m *= 128;
    }
    return -1;
  };
  for (let k = 0; k < 64 && p < b.length; k++) {
    const key = varint();
    if (key < 8) break;
    const f = Math.floor(key / 8), w = key & 7;
    out.add(`${f}:${w}`);
    if (w === 0) { if (varint() < 0) break; }
    else if (w === 1) p += 8;
    else if (w === 5) p += 4;
    else if (w === 2) { const n = varint(); if (n < 0 || p + n > b.length) break; p += n; }
    else break;
  }
  return out;
}

/** A GraphDef's first node message starts with its name (field 1) and has an op (field 2). */
function nodeLike(b: Uint8Array): boolean {
  if (b[0] !== 0x0a) return false;
  let p = 1, n = 0, m = 1;
  for (;;) { const c = b[p++]; if (c === undefined) return false; n += (c & 0x7f) * m; m *= 128; if (c < 0x80) break; }
  const sub = topFields(b.subarray(p, p + n));
  return sub.has('1:2') && sub.has('2:2');
}
