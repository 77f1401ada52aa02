/**
 * q8's int8 quantization: local-window symmetric int8 weights, dynamic int8 activations.
 *
 *   import { quantizeModel, formatReport } from 'q8/quant';
 *   const { model, report } = quantizeModel(fp32Model, { weightWindow: 'channel' });
 */
import './register.js';
export {
  quantize, quantizeModel, formatReport, cloneModel, synthesizeFeeds, runCapturing, Q8_FORMAT_VERSION,
  type QuantizeOptions, type QuantizeResult, type QuantReport, type LayerReport, type WeightWindow, type ActivationWindow,
} from './quantize.js';
export { QUANT_TYPES, quantType, quantizeWindow, serializeWindows, sqnrDb, cosine, checkFinite, type QuantType, type QuantizedWeights } from './types.js';
export { rewriteQuantized, parseActWindow, ACT_WINDOW_KEY } from './rewrite.js';
export { ensureOpset } from './opset.js';
export { Q8_OPS, q8Product, quantizeRows } from './kernels.js';
export { writeOrtQdq, type OrtQdqOptions } from './ort-qdq.js';
