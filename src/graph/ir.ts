/**
 * q8's one graph representation, with ONNX operator semantics. Every loader (ONNX, Caffe,
 * TensorFlow, TF.js, BigDL) produces a Model; everything downstream sees only this.
 *
 * Values are named by strings. A node input '' is an omitted optional input (as in ONNX).
 * Initializers are constant tensors; a graph input that has an initializer of the same name
 * is an overridable default (ONNX IR < 4 lists weights as inputs too).
 */
import type { DType } from '../core/dtype.js';
import type { Tensor } from '../tensor/tensor.js';

export type Dim = number | string | null; // number: fixed, string: symbolic (dim_param), null: unknown

export interface ValueInfo {
  name: string;
  dtype?: DType | undefined;
  shape?: Dim[] | undefined;
  doc?: string | undefined;
}

export type AttrValue =
  | { type: 'float'; value: number }
  | { type: 'int'; value: number }
  | { type: 'string'; value: string }
  | { type: 'tensor'; value: Tensor }
  | { type: 'graph'; value: Graph }
  | { type: 'floats'; value: number[] }
  | { type: 'ints'; value: number[] }
  | { type: 'strings'; value: string[] }
  | { type: 'tensors'; value: Tensor[] }
  | { type: 'graphs'; value: Graph[] };

export interface Node {
  name: string;
  opType: string;
  /** '' (or 'ai.onnx') for the default ONNX domain. */
  domain: string;
  inputs: string[];
  outputs: string[];
  attrs: Record<string, AttrValue>;
  doc?: string | undefined;
}

export interface Graph {
  name: string;
  nodes: Node[];
  inputs: ValueInfo[];
  outputs: ValueInfo[];
  initializers: Map<string, Tensor>;
  /** Extra type/shape information for intermediate values. */
  valueInfo: Map<string, ValueInfo>;
  doc?: string | undefined;
}

export interface Model {
  graph: Graph;
  /** Operator set version per domain ('' is the default ONNX domain). */
  opsets: Map<string, number>;
  irVersion: number;
  producerName: string;
  producerVersion: string;
  domain?: string;
  modelVersion?: number;
  doc?: string;
  metadata: Map<string, string>;
  /** Where it was loaded from, for error messages. */
  source?: string | undefined;
}

export function emptyGraph(name = 'main'): Graph {
  return { name, nodes: [], inputs: [], outputs: [], initializers: new Map(), valueInfo: new Map() };
}

/** The ONNX default domain is spelled '' or 'ai.onnx'. */
export function normDomain(d: string | undefined): string {
  return d === 'ai.onnx' || d === undefined ? '' : d;
}

/** Graph inputs a caller must feed (those without an initializer). */
export function feedInputs(g: Graph): ValueInfo[] {
  return g.inputs.filter((i) => !g.initializers.has(i.name));
}

