/**
 * Shape and data-movement operators: Constant ConstantOfShape Shape Size Identity Dropout Reshape
 * Flatten Squeeze Unsqueeze Transpose Concat Split Slice Expand Tile Pad DepthToSpace SpaceToDepth.
 * Most are expressed through one strided-copy primitive (`copyStrided`), so a view with permuted,
 * stepped or zero (broadcast) strides covers Transpose, Slice, Expand, Tile and the space/depth ops.
 */
import { DTYPES, type DType } from '../core/dtype.js';
import { Q8Error, check } from '../core/errors.js';
import { broadcastShapes, checkShape, normAxis, shapeStr, sizeOf, stridesOf, type Shape } from '../core/shape.js';
import { Tensor, setValue } from '../tensor/tensor.js';
import type { KernelContext, OpSchema } from './registry.js';
import { broadcastTo, copyStrided, intList, mapGatherFor, need, normAxes, scalarOf, transpose } from './tensor-helpers.js';

function alloc(ctx: KernelContext, dtype: DType, shape: Shape): Tensor {
  checkShape(shape, 'output shape');
  return ctx.alloc(dtype, shape);
}

/** Axes from the attribute (older opsets) or the given input (newer). */
function axesArg(inputs: readonly (Tensor | undefined)[], idx: number, ctx: KernelContext, inputSince: number): number[] | undefined {
  if (ctx.opset >= inputSince) {
    const t = inputs[idx];
    return t ? intList(t, 'axes') : undefined;
  }
  return ctx.attrs.ints('axes');
}

// ---------------------------------------------------------------- Constant family

function constantFromAttrs(ctx: KernelContext): Tensor {
  const a = ctx.attrs;
  const set: string[] = ['value', 'value_float', 'value_floats', 'value_int', 'value_ints', 'value_string', 'value_strings', 'sparse_value']
    .filter((n) => a.has(n));
  check(set.length === 1, () => `Constant needs exactly one value attribute, got ${set.length ? set.join(', ') : 'none'}`);
  switch (set[0]) {
    case 'value': return a.tensor('value')!;
    case 'value_float': return Tensor.from('float32', [], [a.float('value_float')!]);
    case 'value_floats': { const v = a.floats('value_floats')!; return Tensor.from('float32', [v.length], v); }
    case 'value_int': return Tensor.from('int64', [], [a.int('value_int')!]);
    case 'value_ints': { const v = a.ints('value_ints')!; return Tensor.from('int64', [v.length], v); }
    case 'value_string': return Tensor.from('string', [], [a.string('value_string')!]);
    case 'value_strings': { const v = a.strings('value_strings')!; return Tensor.from('string', [v.length], v); }
    default: throw new Q8Error('Constant with sparse_value is not supported (sparse tensors are not implemented)');
  }
}

const Constant: OpSchema = { opType: 'Constant', half: 'native', run: (_i, ctx) => [constantFromAttrs(ctx)] };

const ConstantOfShape: OpSchema = {
  opType: 'ConstantOfShape', half: 'native',
  run(inputs, ctx) {
    const shape = intList(need(inputs, 0, 'shape'), 'shape');
    const v = ctx.attrs.tensor('value');
    if (v) check(v.size === 1, () => `ConstantOfShape value must hold one element, got ${v.size}`);
    const dtype = v ? v.dtype : 'float32';
    const out = alloc(ctx, dtype, shape);
    if (v) {
      const x = (v.data as unknown[])[0];
      if (x !== 0 && x !== 0n && x !== '') (out.data as unknown as { fill(x: unknown): void }).fill(x);
    }
    return [out];
  },
};

const Shape: OpSchema = {
  opType: 'Shape', half: 'native',
  run(inputs, ctx) {
    const x = need(inputs, 0, 'data');
    const r = x.rank;
    const clamp = (v: number) => Math.min(Math.max(v < 0 ? v + r : v, 0), r);
    const start = ctx.opset >= 15 ? clamp(ctx.attrs.int('start', 0)) : 0;
    const end = ctx.opset >= 15 && ctx.attrs.has('end') ? clamp(ctx.attrs.int('end', r)) : r;
    const dims = x.shape.slice(start, Math.max(start, end));
    return [Tensor.from('int64', [dims.length], dims)];
  },
};

const Size: OpSchema = {
  opType: 'Size', half: 'native',
  run: (inputs) => [Tensor.from('int64', [], [need(inputs, 0, 'data').size])],
};

const Identity: OpSchema = { opType: 'Identity', half: 'native', run: (inputs) => [need(inputs, 0, 'input')] };

/**
 * Uniform [0, 1) doubles from MT19937 seeded like numpy's legacy `np.random.seed(int)`, drawn as
 * `random_sample` does (53 bits from two words). Training-mode Dropout with a `seed` attribute thus
 * draws the same mask as a numpy reference seeded the same way.
 */
export function mt19937Uniform(seed: number): () => number {
  const mt = new Uint32Array(624);
  mt[0] = seed >>> 0;
  for (let i = 1; i < 624; i++) {
    const p = mt[i - 1]! ^ (mt[i - 1]! >>> 30);
    mt[i] = (Math.imul(1812433253, p) + i) >>> 0;
  }
  let k = 624;
  const word = (): number => {
    if (k >= 624) {
      for (let i = 0; i < 624; i++) {
        const y = (mt[i]! & 0x80000000) | (mt[(i + 1) % 624]! & 0x7fffffff);
        mt[i] = mt[(i + 397) % 624]! ^ (y >>> 1) ^ (y & 1 ? 0x9908b0df : 0);
      }
      k = 0;
    }
    let y = mt[k++]!;
    y ^= y >>> 11;
    y ^= (y << 7) & 0x9d2c5680;
    y ^= (y << 15) & 0xefc60000;
    y ^= y >>> 18;
    return y >>> 0;
  };
  return () => {
    const a = word() >>> 5, b = word() >>> 6;
    return (a * 67108864 + b) / 9007199254740992;
  };
}

const Dropout: OpSchema = {
  opType: 'Dropout',
  run(inputs, ctx) {
    const x = need(inputs, 0, 'data');
    const wantMask = ctx.node.outputs.length > 1 && ctx.node.outputs[1] !== '';
    // Before opset 10 the mask had the input's type; since then it is bool.
    const maskType: DType = ctx.opset >= 10 ? 'bool' : x.dtype;
    let ratio = ctx.attrs.float('ratio', 0.5);
    let training = false;
    if (ctx.opset >= 12) {
      if (inputs[1]) ratio = scalarOf(inputs[1], 'ratio');
      if (inputs[2]) training = scalarOf(inputs[2], 'training_mode') !== 0;
    }
    // Opsets < 7 have is_test; q8 is an inference engine, so legacy Dropout always runs in test mode.
    if (!training || ratio === 0) {
      if (!wantMask) return [x];
      const mask = alloc(ctx, maskType, x.shape);
      if (maskType === 'bool') (mask.data as Uint8Array).fill(1);
      else for (let i = 0; i < x.size; i++) setValue(mask.data, maskType, i, 1);
      return [x, mask];
    }
    check(ratio >= 0 && ratio < 1, () => `Dropout ratio must be in [0, 1), got ${ratio}`);
    check(DTYPES[x.dtype].float, () => `Dropout needs a float input, got ${x.dtype}`);
    const seed = ctx.attrs.int('seed', (Math.random() * 2 ** 31) | 0);
    const rand = mt19937Uniform(seed);
    const out = alloc(ctx, x.dtype, x.shape);
    const mask = alloc(ctx, 'bool', x.shape);
    const X = x.data as Float32Array, Y = out.data as Float32Array, M = mask.data as Uint8Array;
    const scale = 1 / (1 - ratio);
    for (let i = 0; i < X.length; i++) {
      const keep = rand() >= ratio;
      M[i] = keep ? 1 : 0;
      Y[i] = keep ? X[i]! * scale : 0;
    }
    return wantMask ? [out, mask] : [out];
  },
};

// ---------------------------------------------------------------- reshaping views

/** Resolve a Reshape target (0 = copy, -1 = infer) against the input shape. */
export function reshapeTarget(inShape: Shape, spec: readonly number[], allowZero: boolean): number[] {
  const out = spec.map((d, i) => {
    if (d === 0 && !allowZero) {
      check(i < inShape.length, () => `Reshape: 0 at position ${i} has no input dimension to copy (input ${shapeStr(inShape)})`);
      return inShape[i]!;
    }
    return d;
  });
  const neg = out.filter((d) => d === -1).length;
  check(neg <= 1, () => `Reshape: shape [${spec.join(',')}] has more than one -1`);
  check(out.every((d) => d >= -1 && Number.isSafeInteger(d)), () => `Reshape: invalid shape [${spec.join(',')}]`);
  check(!(allowZero && neg && out.includes(0)), () => `Reshape: -1 together with 0 is invalid when allowzero=1`);
  const total = sizeOf(inShape);
  if (neg) {
    const known = out.reduce((p, d) => (d === -1 ? p : p * d), 1);
    check(known > 0 && total % known === 0,
      () => `Reshape: cannot infer -1 reshaping ${shapeStr(inShape)} to [${spec.join(',')}]`);
    out[out.indexOf(-1)] = total / known;
  }
  check(sizeOf(out) === total, () => `Reshape: cannot reshape ${shapeStr(inShape)} (${total} elements) to [${spec.join(',')}]`);
  return out;
}

const Reshape: OpSchema = {
  opType: 'Reshape', half: 'native',
  run(inputs, ctx) {
    const x = need(inputs, 0, 'data');
    const spec = ctx.opset >= 5 ? intList(need(inputs, 1, 'shape'), 'shape') : ctx.attrs.ints('shape', []);
    const allowZero = ctx.opset >= 14 && ctx.attrs.int('allowzero', 0) !== 0;
    return [x.reshape(reshapeTarget(x.shape, spec, allowZero))];
  },
};

const Flatten: OpSchema = {
  opType: 'Flatten', half: 'native',
  run(inputs, ctx) {
    const x = need(inputs, 0, 'input');
    let axis = ctx.attrs.int('axis', 1);
    if (axis < 0) axis += x.rank;
    check(axis >= 0 && axis <= x.rank, () => `Flatten axis ${ctx.attrs.int('axis', 1)} out of range for rank ${x.rank}`);
    return [x.reshape([sizeOf(x.shape.slice(0, axis)), sizeOf(x.shape.slice(axis))])];
  },
};

const Squeeze: OpSchema = {
  opType: 'Squeeze', half: 'native',
  run(inputs, ctx) {
    const x = need(inputs, 0, 'data');
    const axesRaw = axesArg(inputs, 1, ctx, 13);
    let keep: number[];
    if (axesRaw === undefined || axesRaw.length === 0) keep = x.shape.filter((d) => d !== 1);
    else {
      const axes = normAxes(axesRaw, x.rank);
      for (const a of axes) check(x.shape[a] === 1, () => `Squeeze: dimension ${a} of ${shapeStr(x.shape)} is not 1`);
      keep = x.shape.filter((_, i) => !axes.includes(i));
    }
    return [x.reshape(keep)];
  },
};

const Unsqueeze: OpSchema = {
  opType: 'Unsqueeze', half: 'native',
  run(inputs, ctx) {
    const x = need(inputs, 0, 'data');
    const axesRaw = axesArg(inputs, 1, ctx, 13);
    check(axesRaw !== undefined, 'Unsqueeze needs axes');
    const r = x.rank + axesRaw.length;
    const axes = normAxes(axesRaw, r);
    const out: number[] = [];
    let j = 0;
    for (let i = 0; i < r; i++) out.push(axes.includes(i) ? 1 : x.shape[j++]!);
    return [x.reshape(out)];
  },
};

const Transpose: OpSchema = {
  opType: 'Transpose', half: 'native',
  run(inputs, ctx) {
    const x = need(inputs, 0, 'data');
    const perm = ctx.attrs.ints('perm') ?? x.shape.map((_, i) => x.rank - 1 - i);
    return [transpose(x, perm, ctx)];
  },
};

// ---------------------------------------------------------------- Concat / Split / Slice

const Concat: OpSchema = {
  opType: 'Concat', half: 'native',
  run(inputs, ctx) {
    const xs = inputs.filter((t): t is Tensor => t !== undefined);
    check(xs.length > 0, 'Concat needs at least one input');
    const first = xs[0]!;
    const r = first.rank;
    check(r > 0, 'Concat inputs must have rank >= 1');
    const axis = normAxis(ctx.attrs.int('axis', ctx.opset < 4 ? 1 : NaN), r);
    let total = 0;
    for (const t of xs) {
      check(t.dtype === first.dtype, () => `Concat inputs must share a type: ${first.dtype} vs ${t.dtype}`);
      check(t.rank === r && t.shape.every((d, i) => i === axis || d === first.shape[i]),
        () => `Concat inputs ${shapeStr(first.shape)} and ${shapeStr(t.shape)} differ outside axis ${axis}`);
      total += t.shape[axis]!;
    }
    const outShape = first.shape.slice();
    outShape[axis] = total;
    const out = alloc(ctx, first.dtype, outShape);
    const outer = sizeOf(first.shape.slice(0, axis));
    const inner = sizeOf(first.shape.slice(axis + 1));
    const rowOut = total * inner;
    let off = 0;
    for (const t of xs) {
      const rowIn = t.shape[axis]! * inner;
      copyStrided([outer, rowIn], out.data, off, [rowOut, 1], t.data, 0, [rowIn, 1]);
      off += rowIn;
    }
    return [out];
  },
};

const Split: OpSchema = {
  opType: 'Split', half: 'native',
  run(inputs, ctx) {
    const x = need(inputs, 0, 'input');
    const axis = normAxis(ctx.attrs.int('axis', 0), x.rank);
    const dim = x.shape[axis]!;
    const nOut = ctx.node.outputs.length;
    let split: number[] | undefined;
    if (ctx.opset >= 13 || (ctx.opset < 2 && inputs[1])) split = inputs[1] ? intList(inputs[1], 'split') : undefined;
    else split = ctx.attrs.ints('split');
    if (split && split.length === 0) split = undefined;
    if (!split) {
      const num = ctx.opset >= 18 && ctx.attrs.has('num_outputs') ? ctx.attrs.int('num_outputs', nOut) : nOut;
      check(num >= 1, () => `Split num_outputs must be >= 1, got ${num}`);
      if (ctx.opset >= 18 && ctx.attrs.has('num_outputs')) {
        // Opset 18: chunks of ceil(dim / n), the last one smaller.
        const chunk = Math.ceil(dim / num);
        split = [];
        for (let i = 0, left = dim; i < num; i++) { const c = Math.max(0, Math.min(chunk, left)); split.push(c); left -= c; }
      } else {
        check(dim % num === 0, () => `Split: dimension ${dim} does not divide into ${num} equal parts`);
        split = new Array<number>(num).fill(dim / num);
      }
    }
    check(split.every((s) => Number.isInteger(s) && s >= 0) && split.reduce((a, b) => a + b, 0) === dim,
      () => `Split sizes [${split!.join(',')}] do not sum to dimension ${dim}`);
    const outer = sizeOf(x.shape.slice(0, axis));
    const inner = sizeOf(x.shape.slice(axis + 1));
    const outs: Tensor[] = [];
    let off = 0;
    for (const s of split) {
      const shape = x.shape.slice();
      shape[axis] = s;
      const o = alloc(ctx, x.dtype, shape);
      copyStrided([outer, s * inner], o.data, 0, [s * inner, 1], x.data, off, [dim * inner, 1]);
      off += s * inner;
      outs.push(o);
    }
    return outs;
  },
};

/** Clamp Slice start/end for one axis as the spec (and numpy) do. */
function sliceRange(dim: number, start: number, end: number, step: number): [number, number] {
  if (start < 0) start += dim;
  if (end < 0) end += dim;
  if (step > 0) {
    start = Math.min(Math.max(start, 0), dim);
    end = Math.min(Math.max(end, 0), dim);
  } else {
    start = Math.min(Math.max(start, 0), dim - 1);
    end = Math.min(Math.max(end, -1), dim - 1);
  }
  return [start, end];
}

const Slice: OpSchema = {
  opType: 'Slice', half: 'native',
  run(inputs, ctx) {
    const x = need(inputs, 0, 'data');
    let starts: number[], ends: number[], axes: number[] | undefined, steps: number[] | undefined;
    if (ctx.opset >= 10) {
      starts = intList(need(inputs, 1, 'starts'), 'starts');
      ends = intList(need(inputs, 2, 'ends'), 'ends');
      axes = inputs[3] ? intList(inputs[3], 'axes') : undefined;
      steps = inputs[4] ? intList(inputs[4], 'steps') : undefined;
    } else {
      starts = ctx.attrs.ints('starts', []);
      ends = ctx.attrs.ints('ends', []);
      axes = ctx.attrs.ints('axes');
    }
    check(starts.length === ends.length, () => `Slice starts (${starts.length}) and ends (${ends.length}) differ in length`);
    const ax = normAxes(axes ?? starts.map((_, i) => i), x.rank);
    check(ax.length === starts.length, () => `Slice axes (${ax.length}) and starts (${starts.length}) differ in length`);
    const st = steps ?? starts.map(() => 1);
    check(st.length === starts.length, () => `Slice steps (${st.length}) and starts (${starts.length}) differ in length`);
    const outShape = x.shape.slice();
    const xs = stridesOf(x.shape);
    const sStr = xs.slice();
    let off = 0;
    ax.forEach((a, i) => {
      const step = st[i]!;
      check(step !== 0, 'Slice step must not be 0');
      const dim = x.shape[a]!;
      const [s, e] = sliceRange(dim, starts[i]!, ends[i]!, step);
      const n = step > 0 ? Math.max(0, Math.ceil((e - s) / step)) : Math.max(0, Math.ceil((s - e) / -step));
      outShape[a] = n;
      if (n > 0) off += s * xs[a]!;
      sStr[a] = xs[a]! * step;
    });
    checkShape(outShape, 'output shape');
    const out = ctx.allocOutput(x.dtype, outShape);  // every element is written
    copyStrided(outShape, out.data, 0, stridesOf(outShape), x.data, off, sStr);
    return [out];
  },
};

// ---------------------------------------------------------------- Expand / Tile / Pad

const Expand: OpSchema = {
  opType: 'Expand', half: 'native',
  run(inputs, ctx) {
    const x = need(inputs, 0, 'input');
    const shape = intList(need(inputs, 1, 'shape'), 'shape');
    check(shape.every((d) => d >= 0), () => `Expand shape [${shape.join(',')}] has a negative dimension`);
    const outShape = broadcastShapes(x.shape, shape);
    checkShape(outShape, 'Expand output shape');
    return [broadcastTo(x, outShape, ctx)];
  },
};

const Tile: OpSchema = {
  opType: 'Tile', half: 'native',
  run(inputs, ctx) {
    const x = need(inputs, 0, 'input');
    let reps: number[];
    if (ctx.opset >= 6) reps = intList(need(inputs, 1, 'repeats'), 'repeats');
    else {
      // Tile-1: scalar `tiles` repeats along scalar `axis`.
      const tiles = scalarOf(need(inputs, 1, 'tiles'), 'tiles');
      const axis = normAxis(scalarOf(need(inputs, 2, 'axis'), 'axis'), x.rank);
      reps = x.shape.map((_, i) => (i === axis ? tiles : 1));
    }
    check(reps.length === x.rank, () => `Tile repeats has ${reps.length} entries for rank ${x.rank}`);
    check(reps.every((r) => Number.isInteger(r) && r >= 0), () => `Tile repeats [${reps.join(',')}] must be >= 0`);
    const outShape = x.shape.map((d, i) => d * reps[i]!);
    const out = alloc(ctx, x.dtype, outShape);
    // View the output as [r0, d0, r1, d1, ...] with the repeat axes reading stride 0.
    const xs = stridesOf(x.shape);
    const os = stridesOf(outShape);
    const shape: number[] = [], dStr: number[] = [], sStr: number[] = [];
    x.shape.forEach((d, i) => {
      shape.push(reps[i]!, d);
      dStr.push(d * os[i]!, os[i]!);
      sStr.push(0, xs[i]!);
    });
    copyStrided(shape, out.data, 0, dStr, x.data, 0, sStr);
    return [out];
  },
};

/** Index into [0, n) for a pad position `i` (may be outside) under the given mode, or -1 for constant. */
function padIndex(i: number, n: number, mode: string): number {
  if (i >= 0 && i < n) return i;
  switch (mode) {
    case 'edge': return i < 0 ? 0 : n - 1;
    case 'wrap': return ((i % n) + n) % n;
    case 'reflect': {
      if (n === 1) return 0;
      const p = 2 * (n - 1);
      const k = ((i % p) + p) % p;
      return k >= n ? p - k : k;
    }
    default: return -1;
  }
}

const Pad: OpSchema = {
  opType: 'Pad', half: 'native',
  run(inputs, ctx) {
    const x = need(inputs, 0, 'data');
    const r = x.rank;
    const mode = ctx.attrs.string('mode', 'constant');
    check(['constant', 'reflect', 'edge', 'wrap'].includes(mode),
      () => `Pad mode '${mode}' is not one of constant, reflect, edge, wrap`);
    let pads: number[];
    let fill: unknown; // the pad value in the data's storage form (float16 stays as bits)
    let axes: number[] | undefined;
    if (ctx.opset >= 11) {
      pads = intList(need(inputs, 1, 'pads'), 'pads');
      const cv = inputs[2];
      if (cv && cv.size > 0) {
        check(cv.dtype === x.dtype, () => `Pad constant_value type ${cv.dtype} differs from data type ${x.dtype}`);
        fill = (cv.data as unknown[])[0];
      }
      if (ctx.opset >= 18 && inputs[3]) axes = normAxes(intList(inputs[3], 'axes'), r);
    } else {
      pads = ctx.attrs.ints(ctx.opset < 2 ? 'paddings' : 'pads', []);
      const v = ctx.attrs.float('value', 0);
      const tmp = DTYPES[x.dtype].make(1);
      setValue(tmp, x.dtype, 0, DTYPES[x.dtype].big ? BigInt(Math.trunc(v)) : v);
      fill = (tmp as unknown[])[0];
    }
    const ax = axes ?? x.shape.map((_, i) => i);
    check(pads.length === 2 * ax.length, () => `Pad pads has ${pads.length} entries, expected ${2 * ax.length}`);
    const begin = new Array<number>(r).fill(0), end = new Array<number>(r).fill(0);
    ax.forEach((a, i) => { begin[a] = pads[i]!; end[a] = pads[i + ax.length]!; });
    // Negative pads crop: view the cropped input first, then pad that view.
    const xs = stridesOf(x.shape);
    const cropShape: number[] = [];
    let cropOff = 0;
    for (let a = 0; a < r; a++) {
      const lo = Math.max(0, -begin[a]!), hi = Math.max(0, -end[a]!);
      const n = x.shape[a]! - lo - hi;
      check(n >= 0, () => `Pad: negative pads crop more than dimension ${a} of ${shapeStr(x.shape)}`);
      cropShape.push(n);
      cropOff += lo * xs[a]!;
      begin[a] = Math.max(0, begin[a]!); end[a] = Math.max(0, end[a]!);
    }
    const outShape = cropShape.map((d, a) => d + begin[a]! + end[a]!);
    const out = alloc(ctx, x.dtype, outShape);
    const total = out.size;
    if (total === 0) return [out];
    for (let a = 0; a < r; a++) {
      check(mode === 'constant' || cropShape[a]! > 0 || outShape[a] === 0,
        () => `Pad mode '${mode}' cannot pad an empty dimension ${a}`);
    }
    const O = out.data as unknown[], X = x.data as unknown[];
    if (mode === 'constant') {
      if (fill !== undefined && fill !== 0 && fill !== 0n && fill !== '') (O as unknown as { fill(v: unknown): void }).fill(fill);
      // Copy the (cropped) input into its window.
      const os = stridesOf(outShape);
      let dOff = 0;
      for (let a = 0; a < r; a++) dOff += begin[a]! * os[a]!;
      copyStrided(cropShape, out.data, dOff, os, x.data, cropOff, xs);
      return [out];
    }
    // Non-constant modes: per-axis source index tables, then a gather over the output.
    const maps = outShape.map((d, a) => {
      const m = new Float64Array(d);
      for (let o = 0; o < d; o++) m[o] = padIndex(o - begin[a]!, cropShape[a]!, mode) * xs[a]!;
      return m;
    });
    if (r === 0) { O[0] = X[0]; return [out]; }
    mapGatherFor(x.data)(out.data, x.data, maps, outShape, cropOff, undefined);
    return [out];
  },
};

// ---------------------------------------------------------------- DepthToSpace / SpaceToDepth

function blockOp(x: Tensor, b: number, what: string): [number, number, number, number] {
  check(x.rank === 4, () => `${what} needs a 4-D NCHW input, got ${shapeStr(x.shape)}`);
  check(Number.isInteger(b) && b >= 1, () => `${what} blocksize must be a positive integer, got ${b}`);
  return x.shape as unknown as [number, number, number, number];
}

const DepthToSpace: OpSchema = {
  opType: 'DepthToSpace', half: 'native',
  run(inputs, ctx) {
    const x = need(inputs, 0, 'input');
    const b = ctx.attrs.int('blocksize', 0);
    const [n, c, h, w] = blockOp(x, b, 'DepthToSpace');
    check(c % (b * b) === 0, () => `DepthToSpace: channels ${c} not divisible by blocksize² ${b * b}`);
    const c2 = c / (b * b);
    const mode = ctx.opset >= 11 ? ctx.attrs.string('mode', 'DCR') : 'DCR';
    check(mode === 'DCR' || mode === 'CRD', () => `DepthToSpace mode must be DCR or CRD, got '${mode}'`);
    const t = mode === 'DCR'
      ? transpose(x.reshape([n, b, b, c2, h, w]), [0, 3, 4, 1, 5, 2], ctx)
      : transpose(x.reshape([n, c2, b, b, h, w]), [0, 1, 4, 2, 5, 3], ctx);
    return [t.reshape([n, c2, h * b, w * b])];
  },
};

const SpaceToDepth: OpSchema = {
  opType: 'SpaceToDepth', half: 'native',
  run(inputs, ctx) {
    const x = need(inputs, 0, 'input');
    const b = ctx.attrs.int('blocksize', 0);
    const [n, c, h, w] = blockOp(x, b, 'SpaceToDepth');
    check(h % b === 0 && w % b === 0, () => `SpaceToDepth: spatial size ${h}x${w} not divisible by blocksize ${b}`);
    // `mode` arrived in a later opset: DCR (default) puts the block offsets before the channels, CRD after.
    const mode = ctx.attrs.string('mode', 'DCR');
    check(mode === 'DCR' || mode === 'CRD', () => `SpaceToDepth mode must be DCR or CRD, got '${mode}'`);
    const perm = mode === 'DCR' ? [0, 3, 5, 1, 2, 4] : [0, 1, 3, 5, 2, 4];
    const t = transpose(x.reshape([n, c, h / b, b, w / b, b]), perm, ctx);
    return [t.reshape([n, c * b * b, h / b, w / b])];
  },
};

export const ops: OpSchema[] = [
  Constant, ConstantOfShape, Shape, Size, Identity, Dropout, Reshape, Flatten, Squeeze, Unsqueeze, Transpose,
  Concat, Split, Slice, Expand, Tile, Pad, DepthToSpace, SpaceToDepth,
];
