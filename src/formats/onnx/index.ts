/**
 * ONNX format: decode/encode ModelProto and TensorProto.
 *
 *   const model = loadOnnxFile('model.onnx');
 *   saveOnnxFile(model, 'copy.onnx');
 */
export { decodeOnnx, loadOnnxFile, type DecodeOptions } from './decode.js';
export { encodeOnnx, saveOnnxFile, type EncodeOptions } from './encode.js';
export { decodeTensorBytes, encodeTensorProto, type NamedTensor } from './tensor-proto.js';
