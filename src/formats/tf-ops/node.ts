/**
 * TensorFlow NodeDefs as plain data: the meeting point of the GraphDef reader (src/formats/tensorflow)
 * and the TF.js graph-model reader (src/formats/tfjs), which both hand nodes to lower.ts.
 */
import type { DType } from '../../core/dtype.js';
import { Q8Error } from '../../core/errors.js';
import type { Tensor } from '../../tensor/tensor.js';

export interface TfShape { dims: number[] | undefined } // undefined: unknown rank; -1: unknown dim
export interface TfList { s: Uint8Array[]; i: number[]; f: number[]; b: boolean[]; type: number[]; shape: TfShape[]; tensor: Tensor[] }
export interface TfAttr { s?: Uint8Array; i?: number; f?: number; b?: boolean; type?: number; shape?: TfShape; tensor?: Tensor; list?: TfList }
export interface TfNode { name: string; op: string; inputs: string[]; attrs: Map<string, TfAttr> }

/** TF DataType numbers → q8 dtypes. int32 maps to int64 (see loader: TF shape math is int32, ONNX's is int64). */
export const TF_DTYPES: Record<number, DType> = {
  1: 'float32', 2: 'float64', 3: 'int32', 4: 'uint8', 5: 'int16', 6: 'int8', 7: 'string', 9: 'int64', 10: 'bool',
  14: 'bfloat16', 17: 'uint16', 19: 'float16', 22: 'uint32', 23: 'uint64',
};
export function tfDtype(code: number, what: string): DType {
  const d = TF_DTYPES[code >= 100 ? code - 100 : code];
  if (!d) throw new Q8Error(`${what}: TensorFlow data type ${code} is not supported`);
  return d;
}

