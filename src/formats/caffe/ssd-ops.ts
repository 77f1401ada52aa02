/**
 * The SSD fork's PriorBox (computed at load: it depends only on static sizes) and DetectionOutput
 * (no ONNX equivalent with the same decoding and per-class NMS, so it runs as the q8-domain operator
 * `CaffeDetectionOutput`, whose reference kernel is registered here).
 *
 * CaffeDetectionOutput(loc [N, P*L*4], conf [N, P*C], priors [1, 2, P*4]) → [1, 1, D, 7] rows
 * (image, label, score, xmin, ymin, xmax, ymax); an image without detections gives one row of -1
 * after its index, as Caffe does.
 */
import { Q8Error } from '../../core/errors.js';
import { registerOps, getOp } from '../../ops/registry.js';
import type { TextMessage } from '../text-proto.js';

export function priorBoxes(p: TextMessage, layerH: number, layerW: number, imgH0: number, imgW0: number): Float32Array {
  const minSizes = p.nums('min_size');
  const maxSizes = p.nums('max_size');
  if (!minSizes.length) throw new Q8Error('prior_box_param needs min_size');
  if (maxSizes.length && maxSizes.length !== minSizes.length) throw new Q8Error('prior_box_param needs as many max_size as min_size');
  const flip = p.bool('flip', true);
  const clip = p.bool('clip', false);
  const ars = [1];
  for (const ar of p.nums('aspect_ratio')) {
    if (ars.some((a) => Math.abs(a - ar) < 1e-6)) continue;
    ars.push(ar);
    if (flip) ars.push(1 / ar);
  }
  let variance = p.nums('variance');
  if (!variance.length) variance = [0.1];
  if (variance.length !== 1 && variance.length !== 4) throw new Q8Error('prior_box_param needs 1 or 4 variance values');
  const imgH = p.num('img_h') ?? p.num('img_size') ?? imgH0;
  const imgW = p.num('img_w') ?? p.num('img_size') ?? imgW0;
  const stepH = p.num('step_h') ?? p.num('step') ?? imgH / layerH;
  const stepW = p.num('step_w') ?? p.num('step') ?? imgW / layerW;
  const offset = p.num('offset', 0.5);
  const numPriors = ars.length * minSizes.length + maxSizes.length;
  const dim = layerH * layerW * numPriors * 4;
  if (!(dim > 0) || dim > 2 ** 26) throw new Q8Error(`PriorBox would make ${dim} values`);
  const out = new Float32Array(2 * dim);
  let k = 0;
  for (let h = 0; h < layerH; h++) {
    for (let w = 0; w < layerW; w++) {
      const cx = (w + offset) * stepW, cy = (h + offset) * stepH;
      const box = (bw: number, bh: number) => {
        out[k++] = (cx - bw / 2) / imgW; out[k++] = (cy - bh / 2) / imgH;
        out[k++] = (cx + bw / 2) / imgW; out[k++] = (cy + bh / 2) / imgH;
      };
      minSizes.forEach((ms, s) => {
        box(ms, ms);
        if (maxSizes.length) { const z = Math.sqrt(ms * maxSizes[s]!); box(z, z); }
        for (const ar of ars) {
          if (Math.abs(ar - 1) < 1e-6) continue;
          box(ms * Math.sqrt(ar), ms / Math.sqrt(ar));
        }
      });
    }
  }
  if (clip) for (let i = 0; i < dim; i++) out[i] = Math.min(Math.max(out[i]!, 0), 1);
  for (let i = 0; i < dim; i++) out[dim + i] = variance.length === 1 ? variance[0]! : variance[i % 4]!;
  return out;
}

type Box = [number, number, number, number];

function iou(a: Box, b: Box): number {
  if (b[0] > a[2] || b[2] < a[0] || b[1] > a[3] || b[3] < a[1]) return 0;
  const iw = Math.min(a[2], b[2]) - Math.max(a[0], b[0]);
  const ih = Math.min(a[3], b[3]) - Math.max(a[1], b[1]);
  const inter = iw * ih;
  const area = (x: Box) => (x[2] < x[0] || x[3] < x[1] ? 0 : (x[2] - x[0]) * (x[3] - x[1]));
  const u = area(a) + area(b) - inter;
  return u > 0 ? inter / u : 0;
}

function decode(prior: Box, v: number[], loc: Box, code: number, encoded: boolean): Box {
  const vv = encoded ? [1, 1, 1, 1] : v;
  if (code === 1) return [prior[0] + vv[0]! * loc[0], prior[1] + vv[1]! * loc[1], prior[2] + vv[2]! * loc[2], prior[3] + vv[3]! * loc[3]];
  const pw = prior[2] - prior[0], ph = prior[3] - prior[1];
  if (code === 3) return [prior[0] + vv[0]! * loc[0] * pw, prior[1] + vv[1]! * loc[1] * ph, prior[2] + vv[2]! * loc[2] * pw, prior[3] + vv[3]! * loc[3] * ph];
  const pcx = (prior[0] + prior[2]) / 2, pcy = (prior[1] + prior[3]) / 2;
  const cx = vv[0]! * loc[0] * pw + pcx, cy = vv[1]! * loc[1] * ph + pcy;
  const w = Math.exp(vv[2]! * loc[2]) * pw, h = Math.exp(vv[3]! * loc[3]) * ph;
  return [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2];
}

if (!getOp('q8', 'CaffeDetectionOutput')) {
  registerOps([{
    opType: 'CaffeDetectionOutput',
    domain: 'q8',
    run(inputs, ctx) {
      const [locT, confT, priorT] = inputs;
      if (!locT || !confT || !priorT) throw new Q8Error('CaffeDetectionOutput needs loc, conf and prior inputs');
      const a = ctx.attrs;
      const C = a.int('num_classes', 0);
      const shareLoc = a.int('share_location', 1) === 1;
      const bg = a.int('background_label_id', 0);
      const nmsT = a.float('nms_threshold', 0.3);
      const topK = a.int('top_k', -1);
      const eta = a.float('eta', 1);
      const code = a.int('code_type', 1);
      const keepTopK = a.int('keep_top_k', -1);
      const encoded = a.int('variance_encoded_in_target', 0) === 1;
      const thr = a.float('confidence_threshold', -Infinity);
      const N = locT.shape[0] ?? 1;
      const P = priorT.size / 8;
      const L = shareLoc ? 1 : C;
      if (!Number.isInteger(P) || locT.size !== N * P * L * 4 || confT.size !== N * P * C) {
        throw new Q8Error(`CaffeDetectionOutput: sizes do not agree (loc ${locT.size}, conf ${confT.size}, priors ${priorT.size}, ${C} classes)`);
      }
      const loc = locT.toFloat32(), conf = confT.toFloat32(), pr = priorT.toFloat32();
      const rows: number[][] = [];
      for (let n = 0; n < N; n++) {
        const boxes = new Map<number, Box[]>();
        const boxesFor = (lab: number): Box[] => {
          const li = shareLoc ? 0 : lab;
          let bs = boxes.get(li);
          if (!bs) {
            bs = [];
            for (let p = 0; p < P; p++) {
              const o = ((n * P + p) * L + li) * 4;
              const prior: Box = [pr[p * 4]!, pr[p * 4 + 1]!, pr[p * 4 + 2]!, pr[p * 4 + 3]!];
              const v = [pr[P * 4 + p * 4]!, pr[P * 4 + p * 4 + 1]!, pr[P * 4 + p * 4 + 2]!, pr[P * 4 + p * 4 + 3]!];
              bs.push(decode(prior, v, [loc[o]!, loc[o + 1]!, loc[o + 2]!, loc[o + 3]!], code, encoded));
            }
            boxes.set(li, bs);
          }
          return bs;
        };
        const kept: { label: number; idx: number; score: number }[] = [];
        for (let c = 0; c < C; c++) {
          if (c === bg) continue;
          const bs = boxesFor(c);
          let cand: number[] = [];
          for (let p = 0; p < P; p++) if (conf[(n * P + p) * C + c]! > thr) cand.push(p);
          const sc = (p: number) => conf[(n * P + p) * C + c]!;
          cand.sort((x, y) => sc(y) - sc(x) || x - y);
          if (topK > -1) cand = cand.slice(0, topK);
          const keep: number[] = [];
          let t = nmsT;
          for (const p of cand) {
            if (keep.every((q) => iou(bs[p]!, bs[q]!) <= t)) {
              keep.push(p);
              if (eta < 1 && t > 0.5) t *= eta;
            }
          }
          for (const p of keep) kept.push({ label: c, idx: p, score: sc(p) });
        }
        let sel = kept;
        if (keepTopK > -1 && kept.length > keepTopK) {
          sel = [...kept].sort((x, y) => y.score - x.score).slice(0, keepTopK);
          // Caffe emits the survivors grouped by label, in each label's NMS order.
          const order = new Map(kept.map((k, i) => [k, i]));
          sel.sort((x, y) => order.get(x)! - order.get(y)!);
        }
        if (!sel.length) rows.push([n, -1, -1, -1, -1, -1, -1]);
        for (const k of sel) rows.push([n, k.label, k.score, ...boxesFor(k.label)[k.idx]!]);
      }
      const out = ctx.alloc('float32', [1, 1, rows.length, 7]);
      const d = out.data as Float32Array;
      rows.forEach((r, i) => d.set(r, i * 7));
      return [out];
    },
  }]);
}

