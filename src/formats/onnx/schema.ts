/**
 * Field numbers of the ONNX protobuf messages q8 reads and writes (onnx/onnx.proto, IR version 10).
 * Written from the published schema; only the fields q8 uses.
 */
export const ModelF = { irVersion: 1, producerName: 2, producerVersion: 3, domain: 4, modelVersion: 5, doc: 6, graph: 7, opsetImport: 8, metadata: 14, functions: 25 } as const;
export const OpsetF = { domain: 1, version: 2 } as const;
export const EntryF = { key: 1, value: 2 } as const;
export const GraphF = { node: 1, name: 2, initializer: 5, doc: 10, input: 11, output: 12, valueInfo: 13, sparseInitializer: 15 } as const;
export const NodeF = { input: 1, output: 2, name: 3, opType: 4, attribute: 5, doc: 6, domain: 7 } as const;
export const AttrF = { name: 1, f: 2, i: 3, s: 4, t: 5, g: 6, floats: 7, ints: 8, strings: 9, tensors: 10, graphs: 11, doc: 13, tp: 14, type: 20, refAttrName: 21, sparseTensor: 22 } as const;
/** AttributeProto.AttributeType */
export const AttrType = { FLOAT: 1, INT: 2, STRING: 3, TENSOR: 4, GRAPH: 5, FLOATS: 6, INTS: 7, STRINGS: 8, TENSORS: 9, GRAPHS: 10, SPARSE_TENSOR: 11, SPARSE_TENSORS: 12, TYPE_PROTO: 13, TYPE_PROTOS: 14 } as const;
export const ValueInfoF = { name: 1, type: 2, doc: 3 } as const;
export const TypeF = { tensor: 1, sequence: 4, map: 5, sparseTensor: 8, optional: 9 } as const;
export const TensorTypeF = { elemType: 1, shape: 2 } as const;
export const ShapeF = { dim: 1 } as const;
export const DimF = { value: 1, param: 2 } as const;
export const TensorF = { dims: 1, dataType: 2, segment: 3, floatData: 4, int32Data: 5, stringData: 6, int64Data: 7, name: 8, rawData: 9, doubleData: 10, uint64Data: 11, doc: 12, externalData: 13, dataLocation: 14 } as const;
