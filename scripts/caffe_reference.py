#!/usr/bin/python3
"""Reference forward pass of a Caffe net described as JSON, written from Caffe's layer definitions
with numpy/torch (loops where Caffe's own rounding/padding rules matter), for q8's Caffe loader tests.

stdin: {"inputs": {name: {"shape": [...], "data": [...]}},
        "layers": [{"name", "type", "bottom": [...], "top": [...], "<type>_param": {...}, "blobs": [{"shape", "data"}]}],
        "outputs": [blob names]}
Enum values are strings starting with '#', e.g. "#MAX". stdout: {blob: {"shape", "data"}}.
"""
import json
import math
import sys

import numpy as np
import torch
import torch.nn.functional as F


def rep(p, name, hname, wname, dflt):
    if hname in p or wname in p:
        return [p.get(hname, dflt), p.get(wname, dflt)]
    v = p.get(name, dflt)
    v = v if isinstance(v, list) else [v]
    return v * 2 if len(v) == 1 else v


def lst(v):
    return v if isinstance(v, list) else [v]


def enum(v, names, dflt):
    if v is None:
        return dflt
    return names.index(v[1:]) if isinstance(v, str) else v


def blob(b):
    return np.array(b["data"], dtype=np.float64).reshape(b["shape"])


def caffe_pool(x, p):
    n, c, h, w = x.shape
    method = enum(p.get("pool"), ["MAX", "AVE"], 0)
    if p.get("global_pooling"):
        return x.max(axis=(2, 3), keepdims=True) if method == 0 else x.mean(axis=(2, 3), keepdims=True)
    kh, kw = rep(p, "kernel_size", "kernel_h", "kernel_w", 0)
    sh, sw = rep(p, "stride", "stride_h", "stride_w", 1)
    ph, pw = rep(p, "pad", "pad_h", "pad_w", 0)
    oh = int(math.ceil((h + 2 * ph - kh) / sh)) + 1
    ow = int(math.ceil((w + 2 * pw - kw) / sw)) + 1
    if ph and (oh - 1) * sh >= h + ph:
        oh -= 1
    if pw and (ow - 1) * sw >= w + pw:
        ow -= 1
    out = np.zeros((n, c, oh, ow))
    for i in range(oh):
        for j in range(ow):
            hs, ws = i * sh - ph, j * sw - pw
            he, we = min(hs + kh, h + ph), min(ws + kw, w + pw)
            size = (he - hs) * (we - ws)
            hs, ws, he, we = max(hs, 0), max(ws, 0), min(he, h), min(we, w)
            win = x[:, :, hs:he, ws:we]
            out[:, :, i, j] = win.max(axis=(2, 3)) if method == 0 else win.sum(axis=(2, 3)) / size
    return out


def prior_box(p, lh, lw, ih, iw):
    mins, maxs = lst(p["min_size"]), lst(p.get("max_size", []))
    ars = [1.0]
    for a in lst(p.get("aspect_ratio", [])):
        if any(abs(a - b) < 1e-6 for b in ars):
            continue
        ars.append(a)
        if p.get("flip", True):
            ars.append(1.0 / a)
    imh, imw = p.get("img_h", p.get("img_size", ih)), p.get("img_w", p.get("img_size", iw))
    sth, stw = p.get("step_h", p.get("step", imh / lh)), p.get("step_w", p.get("step", imw / lw))
    off = p.get("offset", 0.5)
    boxes = []
    for i in range(lh):
        for j in range(lw):
            cx, cy = (j + off) * stw, (i + off) * sth
            for k, m in enumerate(mins):
                sizes = [(m, m)]
                if maxs:
                    s = math.sqrt(m * maxs[k])
                    sizes.append((s, s))
                sizes += [(m * math.sqrt(a), m / math.sqrt(a)) for a in ars if abs(a - 1) >= 1e-6]
                for bw, bh in sizes:
                    boxes.append([(cx - bw / 2) / imw, (cy - bh / 2) / imh, (cx + bw / 2) / imw, (cy + bh / 2) / imh])
    b = np.array(boxes).ravel()
    if p.get("clip", False):
        b = np.clip(b, 0, 1)
    var = lst(p.get("variance", [0.1]))
    v = np.tile(var if len(var) == 4 else var * 4, len(boxes))
    return np.stack([b, v])[None]


def detection_output(loc, conf, prior, p):
    C = p["num_classes"]
    share = p.get("share_location", True)
    bg = p.get("background_label_id", 0)
    nms = p.get("nms_param", {})
    thr_nms, top_k = nms.get("nms_threshold", 0.3), nms.get("top_k", -1)
    keep_top_k, conf_thr = p.get("keep_top_k", -1), p.get("confidence_threshold", -1e30)
    code = enum(p.get("code_type"), ["", "CORNER", "CENTER_SIZE", "CORNER_SIZE"], 1)
    N, P = loc.shape[0], prior.shape[2] // 4
    pr, var = prior[0, 0].reshape(P, 4), prior[0, 1].reshape(P, 4)
    L = 1 if share else C
    rows = []
    for n in range(N):
        lc = loc[n].reshape(P, L, 4)
        cf = conf[n].reshape(P, C)

        def dec(li):
            l = lc[:, li]
            if code == 1:
                return pr + var * l
            pw, ph = pr[:, 2] - pr[:, 0], pr[:, 3] - pr[:, 1]
            cx, cy = (pr[:, 0] + pr[:, 2]) / 2, (pr[:, 1] + pr[:, 3]) / 2
            dcx, dcy = var[:, 0] * l[:, 0] * pw + cx, var[:, 1] * l[:, 1] * ph + cy
            dw, dh = np.exp(var[:, 2] * l[:, 2]) * pw, np.exp(var[:, 3] * l[:, 3]) * ph
            return np.stack([dcx - dw / 2, dcy - dh / 2, dcx + dw / 2, dcy + dh / 2], 1)

        def iou(a, b):
            iw = min(a[2], b[2]) - max(a[0], b[0])
            ih = min(a[3], b[3]) - max(a[1], b[1])
            if iw < 0 or ih < 0:
                return 0.0
            inter = iw * ih
            u = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
            return inter / u if u > 0 else 0.0

        kept = []
        for c in range(C):
            if c == bg:
                continue
            bx = dec(0 if share else c)
            idx = sorted([i for i in range(P) if cf[i, c] > conf_thr], key=lambda i: (-cf[i, c], i))
            if top_k > -1:
                idx = idx[:top_k]
            keep = []
            for i in idx:
                if all(iou(bx[i], bx[j]) <= thr_nms for j in keep):
                    keep.append(i)
            kept += [(c, i, cf[i, c], bx[i]) for i in keep]
        if keep_top_k > -1 and len(kept) > keep_top_k:
            best = set(sorted(range(len(kept)), key=lambda k: -kept[k][2])[:keep_top_k])
            kept = [k for j, k in enumerate(kept) if j in best]
        if not kept:
            rows.append([n, -1, -1, -1, -1, -1, -1])
        rows += [[n, c, s, *b] for c, i, s, b in kept]
    return np.array(rows).reshape(1, 1, -1, 7)


def forward(net):
    blobs = {k: np.array(v["data"], dtype=np.float64).reshape(v["shape"]) for k, v in net["inputs"].items()}
    for l in net["layers"]:
        t = l["type"]
        xs = [blobs[b] for b in l.get("bottom", [])]
        x = xs[0] if xs else None
        B = [blob(b) for b in l.get("blobs", [])]
        tt = lambda a: torch.tensor(a)
        if t == "Convolution" or t == "Deconvolution":
            p = l["convolution_param"]
            k = rep(p, "kernel_size", "kernel_h", "kernel_w", 0)
            s = rep(p, "stride", "stride_h", "stride_w", 1)
            pd = rep(p, "pad", "pad_h", "pad_w", 0)
            d = rep(p, "dilation", "_", "_", 1)
            g = p.get("group", 1)
            b = tt(B[1]) if p.get("bias_term", True) else None
            f = F.conv2d if t == "Convolution" else F.conv_transpose2d
            y = f(tt(x), tt(B[0]), b, stride=s, padding=pd, dilation=d, groups=g).numpy()
        elif t == "InnerProduct":
            p = l["inner_product_param"]
            ax = p.get("axis", 1)
            xf = x.reshape(list(x.shape[:ax]) + [-1])
            W = B[0].reshape(-1, xf.shape[-1]) if not p.get("transpose") else B[0].reshape(xf.shape[-1], -1).T
            y = xf @ W.T + (B[1] if p.get("bias_term", True) else 0)
        elif t == "Pooling":
            y = caffe_pool(x, l.get("pooling_param", {}))
        elif t == "ReLU":
            s = l.get("relu_param", {}).get("negative_slope", 0)
            y = np.where(x > 0, x, x * s)
        elif t == "PReLU":
            a = B[0].reshape([1, -1] + [1] * (x.ndim - 2))
            y = np.where(x > 0, x, x * a)
        elif t == "ELU":
            a = l.get("elu_param", {}).get("alpha", 1.0)
            y = np.where(x > 0, x, a * (np.exp(x) - 1))
        elif t == "Sigmoid":
            y = 1 / (1 + np.exp(-x))
        elif t == "TanH":
            y = np.tanh(x)
        elif t == "AbsVal":
            y = np.abs(x)
        elif t == "BNLL":
            y = np.where(x > 0, x + np.log1p(np.exp(-x)), np.log1p(np.exp(x)))
        elif t == "Power":
            p = l.get("power_param", {})
            y = (p.get("shift", 0) + p.get("scale", 1) * x) ** p.get("power", 1)
        elif t == "Exp":
            p = l.get("exp_param", {})
            base = p.get("base", -1)
            z = p.get("shift", 0) + p.get("scale", 1) * x
            y = np.exp(z) if base == -1 else base ** z
        elif t == "Log":
            p = l.get("log_param", {})
            base = p.get("base", -1)
            z = np.log(p.get("shift", 0) + p.get("scale", 1) * x)
            y = z if base == -1 else z / np.log(base)
        elif t == "LRN":
            p = l.get("lrn_param", {})
            n, a, be, k = p.get("local_size", 5), p.get("alpha", 1), p.get("beta", 0.75), p.get("k", 1)
            sq = x * x
            half = (n - 1) // 2
            if enum(p.get("norm_region"), ["ACROSS_CHANNELS", "WITHIN_CHANNEL"], 0) == 0:
                c = x.shape[1]
                pad = np.pad(sq, ((0, 0), (half, half), (0, 0), (0, 0)))
                s = sum(pad[:, i:i + c] for i in range(n))
                y = x * (k + a / n * s) ** -be
            else:
                h, w = x.shape[2:]
                pad = np.pad(sq, ((0, 0), (0, 0), (half, half), (half, half)))
                s = sum(pad[:, :, i:i + h, j:j + w] for i in range(n) for j in range(n))
                y = x * (1 + a / (n * n) * s) ** -be
        elif t == "BatchNorm":
            sf = B[2].ravel()[0] if len(B) > 2 else 1
            f = 0 if sf == 0 else 1 / sf
            eps = l.get("batch_norm_param", {}).get("eps", 1e-5)
            sh = [1, -1] + [1] * (x.ndim - 2)
            y = (x - (B[0] * f).reshape(sh)) / np.sqrt((B[1] * f).reshape(sh) + eps)
        elif t == "Scale":
            p = l.get("scale_param", {})
            ax = p.get("axis", 1)
            s = B[0] if len(xs) == 1 else xs[1]
            sh = [1] * ax + list(s.shape) + [1] * (x.ndim - ax - s.ndim)
            y = x * s.reshape(sh)
            if p.get("bias_term"):
                y = y + B[1 if len(xs) == 1 else 0].reshape(sh)
        elif t == "Bias":
            ax = l.get("bias_param", {}).get("axis", 1)
            b = B[0]
            y = x + b.reshape([1] * ax + list(b.shape) + [1] * (x.ndim - ax - b.ndim))
        elif t == "Threshold":
            y = (x > l.get("threshold_param", {}).get("threshold", 0)).astype(np.float64)
        elif t == "Eltwise":
            p = l.get("eltwise_param", {})
            op = enum(p.get("operation"), ["PROD", "SUM", "MAX"], 1)
            co = lst(p.get("coeff", [1] * len(xs)))
            y = np.prod(xs, axis=0) if op == 0 else sum(c * v for c, v in zip(co, xs)) if op == 1 else np.max(xs, axis=0)
        elif t == "Concat":
            y = np.concatenate(xs, axis=l.get("concat_param", {}).get("axis", 1))
        elif t == "Slice":
            p = l.get("slice_param", {})
            ys = np.split(x, lst(p["slice_point"]), axis=p.get("axis", 1))
            for tp, v in zip(l["top"], ys):
                blobs[tp] = v
            continue
        elif t == "Split" or t == "Dropout":
            for tp in l["top"]:
                blobs[tp] = x
            continue
        elif t == "Flatten":
            p = l.get("flatten_param", {})
            ax, end = p.get("axis", 1), p.get("end_axis", -1) % x.ndim
            y = x.reshape(list(x.shape[:ax]) + [-1] + list(x.shape[end + 1:]))
        elif t == "Reshape":
            p = l["reshape_param"]
            dims = [x.shape[i] if d == 0 else d for i, d in enumerate(p["shape"]["dim"])]
            y = x.reshape(dims)
        elif t == "Crop":
            p = l.get("crop_param", {})
            ax = p.get("axis", 2)
            off = lst(p.get("offset", [0]))
            ref = xs[1]
            sl = [slice(None)] * x.ndim
            for d in range(ax, x.ndim):
                o = off[0] if len(off) == 1 else off[d - ax]
                sl[d] = slice(o, o + ref.shape[d])
            y = x[tuple(sl)]
        elif t == "Softmax":
            ax = l.get("softmax_param", {}).get("axis", 1)
            e = np.exp(x - x.max(axis=ax, keepdims=True))
            y = e / e.sum(axis=ax, keepdims=True)
        elif t == "ArgMax":
            p = l.get("argmax_param", {})
            k = p.get("top_k", 1)
            if "axis" in p:
                idx = np.argsort(-x, axis=p["axis"], kind="stable").take(range(k), axis=p["axis"])
                y = np.take_along_axis(x, idx, p["axis"]) if p.get("out_max_val") else idx.astype(np.float64)
            else:
                xf = x.reshape(x.shape[0], -1)
                idx = np.argsort(-xf, axis=1, kind="stable")[:, :k]
                y = idx[:, None, :].astype(np.float64)
                if p.get("out_max_val"):
                    y = np.concatenate([y, np.take_along_axis(xf, idx, 1)[:, None, :]], 1)
        elif t == "Permute":
            y = np.transpose(x, l["permute_param"]["order"])
        elif t == "Normalize":
            p = l.get("norm_param", {})
            eps = p.get("eps", 1e-10)
            if p.get("across_spatial", True):
                nrm = np.sqrt((x * x).sum(axis=(1, 2, 3), keepdims=True) + eps)
            else:
                nrm = np.sqrt((x * x).sum(axis=1, keepdims=True) + eps)
            s = B[0].ravel()
            y = x / nrm * (s[0] if p.get("channel_shared", True) else s.reshape(1, -1, 1, 1))
        elif t == "PriorBox":
            y = prior_box(l["prior_box_param"], x.shape[2], x.shape[3], xs[1].shape[2], xs[1].shape[3])
        elif t == "DetectionOutput":
            y = detection_output(xs[0], xs[1], xs[2], l["detection_output_param"])
        else:
            raise ValueError("reference has no layer " + t)
        blobs[l["top"][0]] = np.asarray(y)
    return blobs


def main():
    net = json.load(sys.stdin)
    blobs = forward(net)
    print(json.dumps({o: {"shape": list(blobs[o].shape), "data": [float(v) for v in np.asarray(blobs[o]).ravel()]} for o in net["outputs"]}))


if __name__ == "__main__":
    main()
