/**
 * Static shape inference for given input shapes. Each value gets a dtype and shape where they can
 * be known, and small integer values (shape arithmetic such as Shape → Gather → Concat → Reshape)
 * get their contents too, so shapes computed inside the graph resolve.
 *
 * How a node is inferred, in order: all inputs known by value → run its reference kernel; an
 * expensive op (Conv, Gemm, MatMul, pools) or a shape-preserving one → a formula; otherwise run the
 * reference kernel on zero-filled stand-ins — correct because an output's shape depends on input
 * values only through the "shape-like" inputs listed below, which must be known by value.
 *
 *   const info = inferShapes(model, { input: [1, 3, 224, 224] });
 *   info.get('logits')?.shape   // [1, 1000]
 */
import type { DType } from '../core/dtype.js';
import { broadcastShapes, sizeOf } from '../core/shape.js';
import { Attrs } from '../ops/attrs.js';
import { slidingGeometry } from '../ops/conv.js';
import { getOp } from '../ops/registry.js';
import { invokeKernel, makeContext } from '../runtime/invoke.js';
import { Tensor } from '../tensor/tensor.js';
import type { Model, Node } from './ir.js';
import { opsetOf, sortTopologically } from './passes.js';
import { cloneModel } from './clone.js';

export interface InferredValue {
  dtype?: DType | undefined;
  shape?: number[] | undefined;
  /** Contents, for small values computed from constants and shapes. */
  value?: Tensor | undefined;
}

/** Inputs whose values (not just shapes) decide output shapes, by op type. */
const SHAPE_LIKE: Readonly<Record<string, readonly number[]>> = {
  Reshape: [1], Expand: [1], Tile: [1], Slice: [1, 2, 3, 4], Pad: [1, 2, 3], Resize: [1, 2, 3], Upsample: [1],
  ConstantOfShape: [0], Range: [0, 1, 2], OneHot: [1], Squeeze: [1], Unsqueeze: [1], Split: [1], TopK: [1],
  ReduceMax: [1], ReduceMin: [1], ReduceMean: [1], ReduceSum: [1], ReduceProd: [1], ReduceL1: [1], ReduceL2: [1],
  ReduceLogSum: [1], ReduceLogSumExp: [1], ReduceSumSquare: [1], CenterCropPad: [1],
};
/** Output shapes that depend on input data no matter what: unknown unless every input is known. */
const DATA_DEPENDENT = new Set(['NonZero', 'NonMaxSuppression', 'Compress', 'Unique', 'If', 'Loop', 'Scan']);
/** Output 0 has the shape and dtype of input 0. */
const SAME = new Set(('Abs Acos Acosh Asin Asinh Atan Atanh Ceil Cos Cosh Erf Exp Floor Log Neg Reciprocal Round Sign Sin Sinh Sqrt Tan Tanh ' +
  'Relu LeakyRelu Elu Selu Celu HardSigmoid HardSwish Sigmoid Softplus Softsign ThresholdedRelu Shrink Clip Softmax LogSoftmax Hardmax ' +
  'LRN BatchNormalization InstanceNormalization LayerNormalization MeanVarianceNormalization Dropout Identity CumSum').split(' '));
const BROADCAST = new Set('Add Sub Mul Div Pow Mod Max Min Sum Mean PRelu'.split(' '));
const COMPARE = new Set('Equal Greater GreaterOrEqual Less LessOrEqual And Or Xor'.split(' '));
/** Keep contents of values up to this many elements. */
const MAX_VALUE = 1 << 12;
/** Zero-filled stand-ins above this size are not made (the op stays unknown). */
const MAX_STANDIN = 1 << 26;

/**
 * `inputShapes` gives concrete shapes by input name; other inputs use their declared shapes, with
 * symbolic or unknown dimensions taken as `freeDim` (default 1: batch 1).
 */
export function inferShapes(model: Model, inputShapes: Record<string, readonly number[]> = {}, freeDim = 1): Map<string, InferredValue> {
  const m = cloneModel(model);
  sortTopologically(m);
  const g = m.graph;
  const info = new Map<string, InferredValue>();
  for (const [k, t] of g.initializers) info.set(k, { dtype: t.dtype, shape: [...t.shape], value: t });
  for (const i of g.inputs) {
    if (g.initializers.has(i.name) && !inputShapes[i.name]) continue;
    const given = inputShapes[i.name];
    const shape = given ? [...given] : i.shape?.map((d) => (typeof d === 'number' && d >= 0 ? d : freeDim));
    info.set(i.name, { dtype: i.dtype, shape });
  }
  for (const n of g.nodes) {
    let outs: InferredValue[] = [];
    try {
      outs = inferNode(n, n.inputs.map((i) => (i ? info.get(i) ?? {} : undefined)), opsetOf(m, n.domain));
    } catch (e) {
      if (process.env['Q8_DEBUG_SHAPES']) console.error(n.name, n.opType, (e as Error).message);
      outs = [];
    }
    n.outputs.forEach((o, k) => { if (o) info.set(o, outs[k] ?? {}); });
  }
  return info;
}

function inferNode(n: Node, ins: (InferredValue | undefined)[], opset: number): InferredValue[] {
  const schema = getOp(n.domain, n.opType);
  if (!schema) return [];
  const run = (inputs: (Tensor | undefined)[]) => invokeKernel(schema, schema.run, inputs, makeContext(n, opset));
  // 1. Everything known by value.
  if (ins.every((v) => !v || v.value)) {
    return run(ins.map((v) => v?.value)).map((t) => ({ dtype: t.dtype, shape: [...t.shape], value: t.size <= MAX_VALUE ? t : undefined }));
  }
  if (DATA_DEPENDENT.has(n.opType)) return [];
  const shapes = ins.map((v) => v?.shape);
  const x = ins[0];
  // 2. Formulas.
  if (n.domain === '' && x?.shape) {
    if (SAME.has(n.opType)) return [{ dtype: x.dtype, shape: x.shape }];
    if (BROADCAST.has(n.opType) || COMPARE.has(n.opType)) {
      if (!shapes.every((s) => s)) return [];
      const legacy = opset < 7 && new Attrs(n.attrs).int('broadcast', 0) === 1;
      const shape = legacy ? x.shape : broadcastShapes(...(shapes as number[][]));
      return [{ dtype: COMPARE.has(n.opType) ? 'bool' : x.dtype, shape }];
    }
    const formula = FORMULAS[n.opType];
    if (formula) {
      const s = formula(n, shapes as (number[] | undefined)[]);
      if (s) return [{ dtype: x.dtype, shape: s }];
    }
  }
  // 3. Zero-filled stand-ins for what is known only by shape.
  const like = SHAPE_LIKE[n.opType] ?? [];
  for (const k of like) if (ins[k] && !ins[k]!.value) return [];
  let total = 0;
  const stand: (Tensor | undefined)[] = [];
  for (const v of ins) {
    if (!v) { stand.push(undefined); continue; }
    if (v.value) { stand.push(v.value); continue; }
    if (!v.shape || !v.dtype) return [];
    total += sizeOf(v.shape);
    if (total > MAX_STANDIN) return [];
    stand.push(Tensor.zeros(v.dtype, v.shape));
  }
  // Shape and Size read only shapes, so their stand-in results are their real values.
  const exact = n.opType === 'Shape' || n.opType === 'Size';
  return run(stand).map((t) => ({ dtype: t.dtype, shape: [...t.shape], value: exact ? t : undefined }));
}

type Formula = (n: Node, s: (number[] | undefined)[]) => number[] | undefined;

const sliding = (ceil: boolean): Formula => (n, [x, w]) => {
  if (!x || x.length < 3) return undefined;
  const a = new Attrs(n.attrs);
  const k = a.ints('kernel_shape') ?? w?.slice(2);
  if (!k) return undefined;
  const geom = slidingGeometry(a, x.slice(2), k, ceil && a.int('ceil_mode', 0) === 1);
  return [x[0]!, n.opType === 'Conv' ? w![0]! : x[1]!, ...geom.outDims];
};

const FORMULAS: Readonly<Record<string, Formula>> = {
  Conv: (n, s) => (s[1] ? sliding(false)(n, s) : undefined),
  MaxPool: sliding(true),
  AveragePool: sliding(true),
  GlobalAveragePool: (_n, [x]) => (x ? [x[0]!, x[1]!, ...x.slice(2).map(() => 1)] : undefined),
  GlobalMaxPool: (_n, [x]) => (x ? [x[0]!, x[1]!, ...x.slice(2).map(() => 1)] : undefined),
  Gemm: (n, [a, b]) => {
    if (!a || !b) return undefined;
    const at = new Attrs(n.attrs);
    return [at.int('transA', 0) ? a[1]! : a[0]!, at.int('transB', 0) ? b[0]! : b[1]!];
  },
  MatMul: (_n, [a, b]) => {
    if (!a || !b) return undefined;
    const A = a.length === 1 ? [1, a[0]!] : a;
    const B = b.length === 1 ? [b[0]!, 1] : b;
    const batch = broadcastShapes(A.slice(0, -2), B.slice(0, -2));
    const out = [...batch, A[A.length - 2]!, B[B.length - 1]!];
    if (a.length === 1) out.splice(out.length - 2, 1);
    if (b.length === 1) out.pop();
    return out;
  },
  Flatten: (n, [x]) => {
    if (!x) return undefined;
    let axis = new Attrs(n.attrs).int('axis', 1);
    if (axis < 0) axis += x.length;
    return [sizeOf(x.slice(0, axis)), sizeOf(x.slice(axis))];
  },
};
