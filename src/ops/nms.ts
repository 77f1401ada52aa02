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
  const kept: number[] = [];
  for (let n = 0; n < nb && maxOut > 0; n++) {
    for (let c = 0; c < ncls; c++) {
      const so = (n * ncls + c) * nbox;
      order.length = 0;
      for (let i = 0; i < nbox; i++) if (!hasScoreTh || s[so + i] > scoreTh) order.push(i);
      // NaN scores sort last.
      const key = (i: number) => (s[so + i] === s[so + i] ? s[so + i] : -Infinity);
      order.sort((p, q) => key(q) - key(p) || p - q);
      kept.length = 0;
      for (const i of order) {
        if (kept.length >= maxOut) break;
        const gi = n * nbox + i;
        if (kept.some((k) => suppresses(gi, n * nbox + k))) continue;
        kept.push(i);
        out.push(n, c, i);
      }
    }
  }
  const sel = new BigInt64Array(out.length);
  for (let i = 0; i < out.length; i++) sel[i] = BigInt(out[i]);
  return [new Tensor('int64', [out.length / 3, 3], sel)];
}

export const ops: OpSchema[] = [{ opType: 'NonMaxSuppression', run: runNMS }];
