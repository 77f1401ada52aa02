/**
 * q8: low-precision deep-learning inference for JavaScript and TypeScript.
 *
 *   import { load } from 'q8';
 *   const model = await load('model.onnx');
 *   const int8 = await model.quantize();
 *   console.log(await int8.predictClass(x));
 */
export * from './api.js';
export { Q8Error } from './core/errors.js';
export type { DType } from './core/dtype.js';
export type { Model, Graph, Node, ValueInfo } from './graph/ir.js';
export { Session, type SessionOptions } from './runtime/session.js';
export { decodeNpy, encodeNpy } from './data/npy.js';
export { readIdx, imageBatches } from './data/idx.js';
export { listOps } from './ops/index.js';
export { WorkerModel } from './worker.js';
export { writeOrtQdq, type OrtQdqOptions } from './quant/ort-qdq.js';
export { QUANT_TYPES, type QuantType } from './quant/types.js';
export { ensureOpset } from './quant/opset.js';
