/**
 * The part of Caffe's schema (caffe.proto, plus the SSD fork's layer parameters) that q8 reads, as
 * field-number tables. A binary .caffemodel is decoded into the same field tree the .prototxt parser
 * produces (TextMessage), so one lowering code path serves both. Enum fields decode to numbers here
 * and to identifiers in text; the lowering accepts either.
 */
import { Reader, Wire } from '../../core/protobuf.js';
import { TextMessage } from '../text-proto.js';

type Scalar = 'string' | 'int' | 'sint' | 'float' | 'double' | 'bool' | 'enum' | 'int64';
export interface Schema { [field: number]: [string, Scalar | Schema | 'blobs'] }

const BlobShape: Schema = { 1: ['dim', 'int64'] };
const Filler: Schema = { 1: ['type', 'string'], 2: ['value', 'float'], 3: ['min', 'float'], 4: ['max', 'float'], 5: ['mean', 'float'], 6: ['std', 'float'] };
const NetState: Schema = { 1: ['phase', 'enum'], 2: ['level', 'int'], 3: ['stage', 'string'] };
const NetStateRule: Schema = { 1: ['phase', 'enum'], 2: ['min_level', 'int'], 3: ['max_level', 'int'], 4: ['stage', 'string'], 5: ['not_stage', 'string'] };

const Convolution: Schema = {
  1: ['num_output', 'int'], 2: ['bias_term', 'bool'], 3: ['pad', 'int'], 4: ['kernel_size', 'int'], 5: ['group', 'int'],
  6: ['stride', 'int'], 7: ['weight_filler', Filler], 8: ['bias_filler', Filler], 9: ['pad_h', 'int'], 10: ['pad_w', 'int'],
  11: ['kernel_h', 'int'], 12: ['kernel_w', 'int'], 13: ['stride_h', 'int'], 14: ['stride_w', 'int'], 15: ['engine', 'enum'],
  16: ['axis', 'int'], 17: ['force_nd_im2col', 'bool'], 18: ['dilation', 'int'],
};
const Pooling: Schema = {
  1: ['pool', 'enum'], 2: ['kernel_size', 'int'], 3: ['stride', 'int'], 4: ['pad', 'int'], 5: ['kernel_h', 'int'], 6: ['kernel_w', 'int'],
  7: ['stride_h', 'int'], 8: ['stride_w', 'int'], 9: ['pad_h', 'int'], 10: ['pad_w', 'int'], 11: ['engine', 'enum'],
  12: ['global_pooling', 'bool'], 13: ['round_mode', 'enum'],
};
const InnerProduct: Schema = { 1: ['num_output', 'int'], 2: ['bias_term', 'bool'], 3: ['weight_filler', Filler], 4: ['bias_filler', Filler], 5: ['axis', 'int'], 6: ['transpose', 'bool'] };
const ReLU: Schema = { 1: ['negative_slope', 'float'], 2: ['engine', 'enum'] };
const PReLU: Schema = { 1: ['filler', Filler], 2: ['channel_shared', 'bool'] };
const ELU: Schema = { 1: ['alpha', 'float'] };
const Power: Schema = { 1: ['power', 'float'], 2: ['scale', 'float'], 3: ['shift', 'float'] };
const ExpLog: Schema = { 1: ['base', 'float'], 2: ['scale', 'float'], 3: ['shift', 'float'] };
const LRN: Schema = { 1: ['local_size', 'int'], 2: ['alpha', 'float'], 3: ['beta', 'float'], 4: ['norm_region', 'enum'], 5: ['k', 'float'], 6: ['engine', 'enum'] };
const BatchNorm: Schema = { 1: ['use_global_stats', 'bool'], 2: ['moving_average_fraction', 'float'], 3: ['eps', 'float'] };
const Bias: Schema = { 1: ['axis', 'int'], 2: ['num_axes', 'int'], 3: ['filler', Filler] };
const Scale: Schema = { 1: ['axis', 'int'], 2: ['num_axes', 'int'], 3: ['filler', Filler], 4: ['bias_term', 'bool'], 5: ['bias_filler', Filler] };
const Eltwise: Schema = { 1: ['operation', 'enum'], 2: ['coeff', 'float'], 3: ['stable_prod_grad', 'bool'] };
const Concat: Schema = { 1: ['concat_dim', 'int'], 2: ['axis', 'int'] };
const Slice: Schema = { 1: ['slice_dim', 'int'], 2: ['slice_point', 'int'], 3: ['axis', 'int'] };
const Flatten: Schema = { 1: ['axis', 'int'], 2: ['end_axis', 'int'] };
const Reshape: Schema = { 1: ['shape', BlobShape], 2: ['axis', 'int'], 3: ['num_axes', 'int'] };
const Crop: Schema = { 1: ['axis', 'int'], 2: ['offset', 'int'] };
const Softmax: Schema = { 1: ['engine', 'enum'], 2: ['axis', 'int'] };
const Dropout: Schema = { 1: ['dropout_ratio', 'float'] };
const ArgMax: Schema = { 1: ['out_max_val', 'bool'], 2: ['top_k', 'int'], 3: ['axis', 'int'] };
const Input: Schema = { 1: ['shape', BlobShape] };
const Threshold: Schema = { 1: ['threshold', 'float'] };
const Permute: Schema = { 1: ['order', 'int'] };
const Normalize: Schema = { 1: ['across_spatial', 'bool'], 2: ['scale_filler', Filler], 3: ['channel_shared', 'bool'], 4: ['eps', 'float'] };
const PriorBox: Schema = {
  1: ['min_size', 'float'], 2: ['max_size', 'float'], 3: ['aspect_ratio', 'float'], 4: ['flip', 'bool'], 5: ['clip', 'bool'],
  6: ['variance', 'float'], 7: ['img_size', 'int'], 8: ['img_h', 'int'], 9: ['img_w', 'int'], 10: ['step', 'float'],
  11: ['step_h', 'float'], 12: ['step_w', 'float'], 13: ['offset', 'float'],
};
const Nms: Schema = { 1: ['nms_threshold', 'float'], 2: ['top_k', 'int'], 3: ['eta', 'float'] };
const DetectionOutput: Schema = {
  1: ['num_classes', 'int'], 2: ['share_location', 'bool'], 3: ['background_label_id', 'int'], 4: ['nms_param', Nms],
  6: ['code_type', 'enum'], 7: ['keep_top_k', 'int'], 8: ['variance_encoded_in_target', 'bool'], 9: ['confidence_threshold', 'float'],
};

export const LayerParameter: Schema = {
  1: ['name', 'string'], 2: ['type', 'string'], 3: ['bottom', 'string'], 4: ['top', 'string'], 10: ['phase', 'enum'],
  7: ['blobs', 'blobs'], 8: ['include', NetStateRule], 9: ['exclude', NetStateRule],
  103: ['argmax_param', ArgMax], 104: ['concat_param', Concat], 106: ['convolution_param', Convolution],
  108: ['dropout_param', Dropout], 110: ['eltwise_param', Eltwise], 111: ['exp_param', ExpLog], 117: ['inner_product_param', InnerProduct],
  118: ['lrn_param', LRN], 121: ['pooling_param', Pooling], 122: ['power_param', Power], 123: ['relu_param', ReLU],
  125: ['softmax_param', Softmax], 126: ['slice_param', Slice], 128: ['threshold_param', Threshold], 131: ['prelu_param', PReLU],
  133: ['reshape_param', Reshape], 134: ['log_param', ExpLog], 135: ['flatten_param', Flatten], 139: ['batch_norm_param', BatchNorm],
  140: ['elu_param', ELU], 141: ['bias_param', Bias], 142: ['scale_param', Scale], 143: ['input_param', Input], 144: ['crop_param', Crop],
  202: ['permute_param', Permute], 203: ['prior_box_param', PriorBox], 204: ['detection_output_param', DetectionOutput],
  206: ['norm_param', Normalize],
};

/** Legacy V1LayerParameter (`layers`), whose type is an enum. */
export const V1LayerParameter: Schema = {
  2: ['bottom', 'string'], 3: ['top', 'string'], 4: ['name', 'string'], 5: ['type', 'enum'], 6: ['blobs', 'blobs'],
  32: ['include', NetStateRule], 33: ['exclude', NetStateRule],
  9: ['concat_param', Concat], 10: ['convolution_param', Convolution], 12: ['dropout_param', Dropout], 17: ['inner_product_param', InnerProduct],
  18: ['lrn_param', LRN], 19: ['pooling_param', Pooling], 21: ['power_param', Power], 23: ['argmax_param', ArgMax],
  24: ['eltwise_param', Eltwise], 25: ['threshold_param', Threshold], 30: ['relu_param', ReLU], 31: ['slice_param', Slice],
  39: ['softmax_param', Softmax], 41: ['exp_param', ExpLog],
};

/** V1LayerParameter.LayerType numbers to V2 type names. */
export const V1_TYPES: Record<number, string> = {
  35: 'AbsVal', 1: 'Accuracy', 30: 'ArgMax', 2: 'BNLL', 3: 'Concat', 37: 'ContrastiveLoss', 4: 'Convolution', 5: 'Data',
  39: 'Deconvolution', 6: 'Dropout', 32: 'DummyData', 7: 'EuclideanLoss', 25: 'Eltwise', 38: 'Exp', 8: 'Flatten',
  9: 'HDF5Data', 10: 'HDF5Output', 28: 'HingeLoss', 11: 'Im2col', 12: 'ImageData', 13: 'InfogainLoss', 14: 'InnerProduct',
  15: 'LRN', 29: 'MemoryData', 16: 'MultinomialLogisticLoss', 34: 'MVN', 17: 'Pooling', 26: 'Power', 18: 'ReLU',
  19: 'Sigmoid', 27: 'SigmoidCrossEntropyLoss', 36: 'Silence', 20: 'Softmax', 21: 'SoftmaxWithLoss', 22: 'Split',
  33: 'Slice', 23: 'TanH', 24: 'WindowData', 31: 'Threshold',
};

export const NetParameter: Schema = {
  1: ['name', 'string'], 2: ['layers', V1LayerParameter], 3: ['input', 'string'], 4: ['input_dim', 'int'],
  8: ['input_shape', BlobShape], 6: ['state', NetState], 100: ['layer', LayerParameter],
};

export interface Blob { shape: number[]; data: Float32Array }

/** Blobs decoded from binary layers, kept beside the field tree (they are not text values). */
export const layerBlobs = new WeakMap<TextMessage, Blob[]>();

export function decodeMessage(r: Reader, schema: Schema, depth = 0): TextMessage {
  if (depth > 64) throw new Error('messages nested too deeply');
  const m = new TextMessage();
  while (!r.done) {
    const [no, wire] = r.key();
    const f = schema[no];
    if (!f) { r.skip(wire); continue; }
    const [name, kind] = f;
    if (kind === 'blobs') {
      if (wire !== Wire.Len) throw new Error(`field ${name} has wire type ${wire}, expected a message`);
      const list = layerBlobs.get(m) ?? [];
      list.push(decodeBlob(r.message()));
      layerBlobs.set(m, list);
    } else if (typeof kind === 'object') {
      if (wire !== Wire.Len) throw new Error(`field ${name} has wire type ${wire}, expected a message`);
      m.add(name, decodeMessage(r.message(), kind, depth + 1));
    } else if (kind === 'string') {
      if (wire !== Wire.Len) throw new Error(`field ${name} has wire type ${wire}, expected a string`);
      m.add(name, { kind: 'string', value: r.string() });
    } else {
      const out: number[] = [];
      const one = kind === 'float' ? (x: Reader) => x.float() : kind === 'double' ? (x: Reader) => x.double()
        : kind === 'sint' ? (x: Reader) => { const v = x.varint(); return v % 2 ? -(v + 1) / 2 : v / 2; }
        : kind === 'int' || kind === 'enum' ? (x: Reader) => { const v = x.varint(); return v >= 2 ** 31 && v < 2 ** 32 ? v - 2 ** 32 : v; }
        : (x: Reader) => x.varint();
      const ew = kind === 'float' ? Wire.I32 : kind === 'double' ? Wire.I64 : Wire.Varint;
      r.repeated(wire, ew, one, out);
      for (const v of out) m.add(name, { kind: 'number', value: v });
    }
  }
  return m;
}

function decodeBlob(r: Reader): Blob {
  let shape: number[] | undefined;
  const legacy = [1, 1, 1, 1];
  let hasLegacy = false;
  let data: Float32Array | undefined;
  let dbl: number[] | undefined;
  const floats: number[] = [];
  while (!r.done) {
    const [no, wire] = r.key();
    if (no >= 1 && no <= 4 && wire === Wire.Varint) { legacy[no - 1] = r.varint(); hasLegacy = true; }
    else if (no === 5) {
      if (wire === Wire.Len) {
        const b = r.bytes();
        if (b.length % 4) throw new Error('blob data length is not a multiple of 4');
        // Copy out: the source bytes may not be 4-aligned.
        const f = new Float32Array(b.length / 4);
        new Uint8Array(f.buffer).set(b);
        data = data ? concat(data, f) : f;
      } else r.repeated(wire, Wire.I32, (x) => x.float(), floats);
    } else if (no === 8) {
      dbl ??= [];
      r.repeated(wire, Wire.I64, (x) => x.double(), dbl);
    } else if (no === 7 && wire === Wire.Len) {
      const s = decodeMessage(r.message(), BlobShape);
      shape = s.nums('dim');
    } else r.skip(wire);
  }
  if (floats.length) data = data ? concat(data, Float32Array.from(floats)) : Float32Array.from(floats);
  if (!data && dbl) data = Float32Array.from(dbl);
  data ??= new Float32Array(0);
  return { shape: shape ?? (hasLegacy ? legacy : [data.length]), data };
}

function concat(a: Float32Array, b: Float32Array): Float32Array {
  const o = new Float32Array(a.length + b.length);
  o.set(a);
  o.set(b, a.length);
  return o;
}

/** V1 layer type identifiers as written in legacy .prototxt files. */
export const V1_IDENTS: Record<string, string> = {
  ABSVAL: 'AbsVal', ACCURACY: 'Accuracy', ARGMAX: 'ArgMax', BNLL: 'BNLL', CONCAT: 'Concat', CONTRASTIVE_LOSS: 'ContrastiveLoss',
  CONVOLUTION: 'Convolution', DATA: 'Data', DECONVOLUTION: 'Deconvolution', DROPOUT: 'Dropout', DUMMY_DATA: 'DummyData',
  EUCLIDEAN_LOSS: 'EuclideanLoss', ELTWISE: 'Eltwise', EXP: 'Exp', FLATTEN: 'Flatten', HDF5_DATA: 'HDF5Data',
  HDF5_OUTPUT: 'HDF5Output', HINGE_LOSS: 'HingeLoss', IM2COL: 'Im2col', IMAGE_DATA: 'ImageData', INFOGAIN_LOSS: 'InfogainLoss',
  INNER_PRODUCT: 'InnerProduct', LRN: 'LRN', MEMORY_DATA: 'MemoryData', MULTINOMIAL_LOGISTIC_LOSS: 'MultinomialLogisticLoss',
  MVN: 'MVN', POOLING: 'Pooling', POWER: 'Power', RELU: 'ReLU', SIGMOID: 'Sigmoid',
  SIGMOID_CROSS_ENTROPY_LOSS: 'SigmoidCrossEntropyLoss', SILENCE: 'Silence', SOFTMAX: 'Softmax', SOFTMAX_LOSS: 'SoftmaxWithLoss',
  SPLIT: 'Split', SLICE: 'Slice', TANH: 'TanH', WINDOW_DATA: 'WindowData', THRESHOLD: 'Threshold',
};
