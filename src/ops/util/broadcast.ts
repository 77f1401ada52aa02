/**
 * Broadcasting index iteration shared by element-wise kernels.
 *
 * A BroadcastPlan splits the output into `outer` runs of `inner` contiguous elements. Within a run,
 * input k advances by steps[k] (1, or 0 when it is broadcast along the innermost collapsed dim);
 * offs[k][o] is input k's flat offset at the start of run o. Dims are collapsed first, so the usual
 * cases (same shape, scalar, per-channel [1,C,1,1]) need tiny offset tables:
 *
 *   const p = broadcastPlan([a.shape, b.shape]);
 *   for (let o = 0; o < p.outer; o++) {
 *     let ia = p.offs[0][o], ib = p.offs[1][o];
 *     for (let j = 0, k = o * p.inner; j < p.inner; j++, k++, ia += p.steps[0], ib += p.steps[1]) out[k] = a[ia] + b[ib];
 *   }
 */
import { Q8Error } from '../../core/errors.js';
import { broadcastShapes, checkShape, shapeStr, sizeOf, type Shape } from '../../core/shape.js';

export interface BroadcastPlan {
  readonly shape: number[];
  readonly size: number;
  readonly outer: number;
  readonly inner: number;
  readonly offs: Int32Array[];
  readonly steps: number[];
}

/** Multidirectional (numpy) broadcast plan for any number of input shapes. */
export function broadcastPlan(shapes: readonly Shape[], outShape?: Shape): BroadcastPlan {
  const shape = outShape ? [...outShape] : broadcastShapes(...shapes);
  // Refuse absurd results before building offset tables for them.
  checkShape(shape, 'broadcast result');
  const rank = shape.length;
  const size = sizeOf(shape);
  const n = shapes.length;
  // Per kept dim: out size and, per input, whether the input has the full extent (1) or is broadcast (0).
  const dims: number[] = [];
  const flags: number[][] = [];
  for (let d = 0; d < rank; d++) {
    const od = shape[d]!;
    if (od === 1) continue;
    const f: number[] = [];
    for (let k = 0; k < n; k++) {
      const s = shapes[k]!;
      const j = d - (rank - s.length);
      const id = j >= 0 ? s[j]! : 1;
      if (id !== od && id !== 1) throw new Q8Error(`shape ${shapeStr(s)} does not broadcast to ${shapeStr(shape)}`);
      f.push(id === od ? 1 : 0);
    }
    const last = flags.length - 1;
    if (last >= 0 && flags[last]!.every((x, k) => x === f[k])) dims[last]! *= od;
    else { dims.push(od); flags.push(f); }
  }
  for (const s of shapes) if (s.length > rank) throw new Q8Error(`shape ${shapeStr(s)} does not broadcast to ${shapeStr(shape)}`);
  if (size === 0) return { shape, size, outer: 0, inner: 0, offs: shapes.map(() => new Int32Array(0)), steps: shapes.map(() => 0) };
  if (dims.length === 0) return { shape, size, outer: 1, inner: 1, offs: shapes.map(() => new Int32Array(1)), steps: shapes.map(() => 0) };
  const inner = dims[dims.length - 1]!;
  const steps = flags[flags.length - 1]!.slice();
  const outerDims = dims.slice(0, -1);
  const outer = size / inner;
  const offs: Int32Array[] = [];
  for (let k = 0; k < n; k++) {
    // Strides of input k in the collapsed space (0 where broadcast).
    const strides = new Array<number>(dims.length);
    let acc = 1;
    for (let d = dims.length - 1; d >= 0; d--) {
      if (flags[d]![k]) { strides[d] = acc; acc *= dims[d]!; } else strides[d] = 0;
    }
    let cur = new Int32Array(1);
    for (let d = 0; d < outerDims.length; d++) {
      const m = outerDims[d]!;
      const st = strides[d]!;
      const next = new Int32Array(cur.length * m);
      for (let p = 0, q = 0; p < cur.length; p++) {
        const base = cur[p]!;
        for (let j = 0; j < m; j++) next[q++] = base + j * st;
      }
      cur = next;
    }
    offs.push(cur);
  }
  return { shape, size, outer, inner, offs, steps };
}

/** Flat offset into an input of shape `inShape` for each element of `outShape` (numpy broadcast). */
export function broadcastIndex(inShape: Shape, outShape: Shape): Int32Array {
  const p = broadcastPlan([inShape], outShape);
  const out = new Int32Array(p.size);
  const offs = p.offs[0]!;
  const st = p.steps[0]!;
  for (let o = 0, k = 0; o < p.outer; o++) {
    let i = offs[o]!;
    for (let j = 0; j < p.inner; j++, i += st) out[k++] = i;
  }
  return out;
}

/** True when `from` broadcasts to exactly `to` (unidirectional broadcasting, as PRelu and Expand use). */
export function broadcastsTo(from: Shape, to: Shape): boolean {
  if (from.length > to.length) return false;
  for (let i = 0; i < from.length; i++) {
    const f = from[from.length - 1 - i]!;
    const t = to[to.length - 1 - i]!;
    if (f !== t && f !== 1) return false;
  }
  return true;
}

/**
 * Legacy (opset < 7) binary-op broadcasting: B's shape matches a contiguous run of A's dims starting
 * at `axis` (default: aligned to the end). Returns B's shape padded with 1s to A's rank.
 */
export function legacyBroadcastShape(a: Shape, b: Shape, axis: number | undefined): number[] {
  if (b.length > a.length) throw new Q8Error(`legacy broadcast: B ${shapeStr(b)} has more dims than A ${shapeStr(a)}`);
  let start = axis === undefined ? a.length - b.length : axis < 0 ? axis + a.length : axis;
  // A scalar B or a size-1 B broadcasts anywhere.
  if (b.length === 0) start = a.length;
  if (start < 0 || start + b.length > a.length) {
    throw new Q8Error(`legacy broadcast: axis ${axis} does not fit B ${shapeStr(b)} into A ${shapeStr(a)}`);
  }
  const out = new Array<number>(a.length).fill(1);
  for (let i = 0; i < b.length; i++) {
    const bd = b[i]!;
    if (bd !== a[start + i] && bd !== 1) {
      throw new Q8Error(`legacy broadcast: B ${shapeStr(b)} does not match A ${shapeStr(a)} at axis ${start}`);
    }
    out[start + i] = bd;
  }
  return out;
}
