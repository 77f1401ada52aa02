/**
 * NonMaxSuppression (opsets 10, 11): per batch and class, greedy selection in descending score
 * order (ties: lower box index first), suppressing boxes whose IoU with a kept box exceeds
 * iou_threshold; scores must be strictly above score_threshold when it is given. Output rows are
 * [batch, class, box] as int64, grouped by batch then class, each group in selection order.
 */
import { check } from '../core/errors.js';
import { shapeStr } from '../core/shape.js';
import type { KernelContext, OpSchema } from './registry.js';
import { Tensor } from '../tensor/tensor.js';

function scalarOf(t: Tensor | undefined, what: string, dflt: number): number {
  if (!t) return dflt;
  check(t.size <= 1, () => `NonMaxSuppression input ${what} should hold one value, got shape ${shapeStr(t.shape)}`);
  return t.size === 0 ? dflt : t.num(0);
}

function runNMS(inputs: readonly (Tensor | undefined)[], ctx: KernelContext): Tensor[] {
  const [boxes, scores, maxT, iouT, scoreT] = inputs;
  check(boxes && scores, 'NonMaxSuppression needs inputs boxes and scores');
  check(boxes.rank === 3 && boxes.shape[2] === 4, () => `NonMaxSuppression boxes should be [batches, boxes, 4], got ${shapeStr(boxes.shape)}`);
  const [nb, nbox] = boxes.shape;
  check(scores.rank === 3 && scores.shape[0] === nb && scores.shape[2] === nbox,
    () => `NonMaxSuppression scores should be [${nb}, classes, ${nbox}] to match boxes ${shapeStr(boxes.shape)}, got ${shapeStr(scores.shape)}`);
  const ncls = scores.shape[1];
  const centerBox = ctx.attrs.int('center_point_box', 0);
  check(centerBox === 0 || centerBox === 1, () => `attribute 'center_point_box' should be 0 or 1, got ${centerBox}`);
  const maxOut = Math.max(0, scalarOf(maxT, 'max_output_boxes_per_class', 0));
  const iouTh = scalarOf(iouT, 'iou_threshold', 0);
  check(iouTh >= 0 && iouTh <= 1, () => `NonMaxSuppression iou_threshold should be in [0, 1], got ${iouTh}`);
  const hasScoreTh = scoreT !== undefined && scoreT.size > 0;
  const scoreTh = scalarOf(scoreT, 'score_threshold', -Infinity);
  const b = boxes.toFloat32(), s = scores.toFloat32();
  // Corners as (y1, x1, y2, x2) with y1 <= y2, x1 <= x2, and areas.
  const corners = new Float64Array(nb * nbox * 4);
  const area = new Float64Array(nb * nbox);
  for (let i = 0; i < nb * nbox; i++) {
    const o = i * 4;
    let y1: number, x1: number, y2: number, x2: number;
    if (centerBox) {
      const xc = b[o], yc = b[o + 1], w = b[o + 2], h = b[o + 3];
      x1 = xc - w / 2; x2 = xc + w / 2; y1 = yc - h / 2; y2 = yc + h / 2;
    } else {
      y1 = Math.min(b[o], b[o + 2]); y2 = Math.max(b[o], b[o + 2]);
      x1 = Math.min(b[o + 1], b[o + 3]); x2 = Math.max(b[o + 1], b[o + 3]);
    }
    corners[o] = y1; corners[o + 1] = x1; corners[o + 2] = y2; corners[o + 3] = x2;
    area[i] = (y2 - y1) * (x2 - x1);
  }
  const suppresses = (i: number, j: number): boolean => {
    if (area[i] <= 0 || area[j] <= 0) return false;
    const a = i * 4, c = j * 4;
    const ih = Math.min(corners[a + 2], corners[c + 2]) - Math.max(corners[a], corners[c]);
    const iw = Math.min(corners[a + 3], corners[c + 3]) - Math.max(corners[a + 1], corners[c + 1]);
    if (ih <= 0 || iw <= 0) return false;
    const inter = ih * iw;
    return inter / (area[i] + area[j] - inter) > iouTh;
  };
  const out: number[] = [];
  const order: number[] = [];
  for (let n = 0; n < nb && maxOut > 0; n++) {
    for (let c = 0; c < ncls; c++) {
      const so = (n * ncls + c) * nbox;
      order.length = 0;
      for (let i = 0; i < nbox; i++) if (!hasScoreTh || s[so + i] > scoreTh) order.push(i);
      // NaN scores sort last.
      const key = (i: number) => (s[so + i] === s[so + i] ? s[so + i] : -Infinity);
      order.sort((p, q) => key(q) - key(p) || p - q);
      const index = new KeptIndex(corners, n * nbox, order);
      let kept = 0;
      for (const i of order) {
        if (kept >= maxOut) break;
        const gi = n * nbox + i;
        if (index.anySuppresses(gi, suppresses)) continue;
        index.add(gi);
        kept++;
        out.push(n, c, i);
      }
    }
  }
  const sel = new BigInt64Array(out.length);
  for (let i = 0; i < out.length; i++) sel[i] = BigInt(out[i]);
  return [new Tensor('int64', [out.length / 3, 3], sel)];
}

/**
 * Kept boxes bucketed on a uniform grid, so a candidate is compared only with kept boxes near it
 * (detectors run NMS over tens of thousands of boxes; all-pairs would take seconds). The cell size
 * is the mean box side; boxes spanning many cells, or with non-finite corners, go to a list that
 * every query scans. Only an acceleration: the selection equals the all-pairs greedy one.
 */
class KeptIndex {
  private readonly cell: number;
  private readonly grid = new Map<number, number[]>();
  private readonly wide: number[] = [];
  private readonly all: number[] = [];
  private static readonly MAX_CELLS = 64;

  constructor(private readonly corners: Float64Array, base: number, candidates: readonly number[]) {
    let sum = 0, cnt = 0;
    for (const i of candidates) {
      const o = (base + i) * 4;
      const side = Math.max(corners[o + 2] - corners[o], corners[o + 3] - corners[o + 1]);
      if (side > 0 && Number.isFinite(side)) { sum += side; cnt++; }
    }
    this.cell = cnt ? sum / cnt : 1;
  }

  /** Cell range [y0, y1] × [x0, x1] of a box, or undefined when it belongs in the wide list. */
  private cells(g: number): [number, number, number, number] | undefined {
    const o = g * 4, c = this.corners, k = this.cell;
    const y0 = Math.floor(c[o] / k), x0 = Math.floor(c[o + 1] / k), y1 = Math.floor(c[o + 2] / k), x1 = Math.floor(c[o + 3] / k);
    if (!(Math.abs(y0) < 2 ** 25 && Math.abs(x0) < 2 ** 25 && Math.abs(y1) < 2 ** 25 && Math.abs(x1) < 2 ** 25)) return undefined;
    if ((y1 - y0 + 1) * (x1 - x0 + 1) > KeptIndex.MAX_CELLS) return undefined;
    return [y0, y1, x0, x1];
  }

  add(g: number): void {
    this.all.push(g);
    const r = this.cells(g);
    if (!r) { this.wide.push(g); return; }
    for (let y = r[0]; y <= r[1]; y++) {
      for (let x = r[2]; x <= r[3]; x++) {
        const key = y * 2 ** 26 + x;
        const list = this.grid.get(key);
        if (list) list.push(g); else this.grid.set(key, [g]);
      }
    }
  }

  anySuppresses(g: number, suppresses: (i: number, j: number) => boolean): boolean {
    for (const k of this.wide) if (suppresses(g, k)) return true;
    const r = this.cells(g);
    if (!r) return this.all.some((k) => suppresses(g, k));
    for (let y = r[0]; y <= r[1]; y++) {
      for (let x = r[2]; x <= r[3]; x++) {
        const list = this.grid.get(y * 2 ** 26 + x);
        if (list) for (const k of list) if (suppresses(g, k)) return true;
      }
    }
    return false;
  }
}

export const ops: OpSchema[] = [{ opType: 'NonMaxSuppression', run: runNMS }];
