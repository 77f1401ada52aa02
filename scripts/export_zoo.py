#!/usr/bin/python3
"""Export random-weight benchmark models (torchvision / torch.nn) to ONNX with PyTorch fp32 references.

For each model writes to --out (default bench/models, git-ignored because the files are large):
  <name>.onnx            the graph (opset 13 unless stated in <name>.json)
  <name>.input.npy       seeded random input
  <name>.output_<i>.npy  PyTorch fp32 outputs, in ONNX output order
  <name>.json            input/output names+shapes+dtypes, opset, op-type counts, sizes, timings

Weights are random (weights=None) but seeded, so every run produces the same files. BatchNorm running
statistics are estimated from one train-mode pass over seeded random inputs (after giving BN gamma/beta
random values), so eval-mode activations stay normalised through deep networks instead of exploding,
dying, or being an identity with mean 0 / var 1.

Run:  /usr/bin/python3 scripts/export_zoo.py [--out DIR] [--models vgg16,...] [--batch 1] [--force]
"""
import argparse
import collections
import hashlib
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn

from jsonfmt import dumps

SEED = 20261125
IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
ALL = ["vgg16", "vgg19", "resnet50", "mobilenet_v2", "ssd300", "ssd300_heads", "bert"]


def gen(offset=0):
    return torch.Generator().manual_seed(SEED + offset)


def imagenet_input(batch, size, g):
    """Uniform pixels in [0,1] normalised with ImageNet mean/std: the range a real classifier sees (~[-2.1, 2.6])."""
    x = torch.rand(batch, 3, size, size, generator=g)
    return (x - IMAGENET_MEAN) / IMAGENET_STD


@torch.no_grad()
def calibrate_bn(model, x_calib):
    """Random gamma/beta, then running stats from one train-mode pass (momentum=None: plain average)."""
    g = gen(1)
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return 0
    for bn in bns:
        bn.weight.copy_(torch.rand(bn.weight.shape, generator=g) + 0.5)    # U(0.5, 1.5)
        bn.bias.copy_(torch.randn(bn.bias.shape, generator=g) * 0.1)
        bn.reset_running_stats()
        bn.momentum = None
    model.train()
    model(x_calib)
    model.eval()
    return len(bns)


@torch.no_grad()
def rescale_linear_to_unit_std(model, linear, x):
    """Random-init classifiers give tiny (or huge) logits; scale the last Linear so logit std is ~1."""
    std = float(model(x).std())
    if not np.isfinite(std) or std == 0:
        raise RuntimeError(f"degenerate output (std={std})")
    linear.weight.mul_(1.0 / std)
    linear.bias.mul_(1.0 / std)
    return std


# ---- model builders: each returns (module, example inputs tuple, input names, output names, dynamic axes, opset, note)

def build_classifier(name, batch):
    import torchvision.models as tvm
    torch.manual_seed(SEED)
    model = getattr(tvm, name)(weights=None)
    model.eval()
    x = imagenet_input(batch, 224, gen(2))
    calibrate_bn(model, imagenet_input(8, 224, gen(3)))
    last = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
    raw_std = rescale_linear_to_unit_std(model, last, x)
    note = f"random init (seed {SEED}); last Linear scaled by 1/{raw_std:.4g} so logit std is ~1"
    return model, (x,), ["input"], ["logits"], {"input": {0: "N"}, "logits": {0: "N"}}, 13, note


class SSDDetector(nn.Module):
    """Batch tensor in, (boxes, scores, labels) of image 0 out; includes transform + post-processing (NMS)."""

    def __init__(self, ssd):
        super().__init__()
        self.ssd = ssd

    def forward(self, x):
        det = self.ssd(list(x.unbind(0)))[0]
        return det["boxes"], det["scores"], det["labels"]


class SSDHeads(nn.Module):
    """Backbone + classification/regression heads only: no resize/normalise, no anchors, no NMS."""

    def __init__(self, ssd):
        super().__init__()
        self.backbone = ssd.backbone
        self.head = ssd.head

    def forward(self, x):
        feats = list(self.backbone(x).values())
        out = self.head(feats)
        return out["cls_logits"], out["bbox_regression"]


def make_ssd():
    from torchvision.models.detection import ssd300_vgg16
    torch.manual_seed(SEED)
    return ssd300_vgg16(weights=None, weights_backbone=None).eval()


def build_ssd300(batch):
    if batch != 1:
        print("  ssd300: full detector is exported for batch 1 only (outputs are per-image lists)")
    ssd = make_ssd()
    x = torch.rand(1, 3, 300, 300, generator=gen(4))  # raw [0,1] image: the model normalises itself
    # Random init gives huge class logits, so softmax saturates and the 200 kept scores tie near 1.0:
    # any runtime's rounding then reorders them. Scaling the classification head so the logits have
    # std 2.5 keeps the scores continuous and the kept detections well separated, so outputs can be
    # compared position by position.
    with torch.no_grad():
        images, _ = ssd.transform(list(x.unbind(0)))
        feats = list(ssd.backbone(images.tensors).values())
        std = ssd.head(feats)["cls_logits"].std().item()
        for conv in ssd.head.classification_head.module_list:
            conv.weight.mul_(2.5 / std)
            conv.bias.mul_(2.5 / std)
    model = SSDDetector(ssd).eval()
    note = ("input is a [0,1] RGB image; graph includes GeneralizedRCNNTransform (normalise+resize), "
            "anchor decoding, per-class score threshold/top-k and batched NMS; outputs for image 0; "
            f"detection count is data-dependent. Classification head scaled by 2.5/{std:.4g} so class logits have "
            "std 2.5 (unsaturated scores, no near-ties among the kept detections)")
    return (model, (x,), ["images"], ["boxes", "scores", "labels"],
            {"boxes": {0: "K"}, "scores": {0: "K"}, "labels": {0: "K"}}, 13, note)


def build_ssd300_heads(batch):
    ssd = make_ssd()
    model = SSDHeads(ssd).eval()
    mean = torch.tensor(ssd.transform.image_mean).view(1, 3, 1, 1)
    std = torch.tensor(ssd.transform.image_std).view(1, 3, 1, 1)
    # Same normalisation the detector's transform applies (torchvision's SSD uses std 1/255).
    x = (torch.rand(batch, 3, 300, 300, generator=gen(4)) - mean) / std
    note = "input already normalised as SSD's transform does: (rgb01 - mean) / (1/255); outputs are raw head tensors"
    return (model, (x,), ["input"], ["cls_logits", "bbox_regression"],
            {"input": {0: "N"}, "cls_logits": {0: "N"}, "bbox_regression": {0: "N"}}, 13, note)


def build_bert(batch):
    torch.manual_seed(SEED)
    layer = nn.TransformerEncoderLayer(d_model=768, nhead=12, dim_feedforward=3072, dropout=0.0,
                                       activation="gelu", batch_first=True, norm_first=False)
    model = nn.TransformerEncoder(layer, num_layers=12, enable_nested_tensor=False).eval()
    # TransformerEncoder deep-copies one layer, so all 12 would share identical values (and the exporter
    # would store one copy). Re-initialise each layer, with non-trivial biases and LayerNorm gamma/beta.
    g = gen(6)
    with torch.no_grad():
        for lyr in model.layers:
            for pname, p in lyr.named_parameters():
                if p.dim() == 2:
                    bound = (6.0 / (p.shape[0] + p.shape[1])) ** 0.5  # Xavier-uniform
                    p.copy_((torch.rand(p.shape, generator=g) * 2 - 1) * bound)
                elif "norm" in pname and pname.endswith("weight"):
                    p.copy_(torch.rand(p.shape, generator=g) * 0.4 + 0.8)
                else:
                    p.copy_(torch.randn(p.shape, generator=g) * 0.02)
    # Embeddings after BERT's embedding LayerNorm are roughly N(0,1).
    x = torch.randn(batch, 128, 768, generator=gen(5))
    note = "BERT-base-sized post-norm encoder (12x: MHA 12 heads, FF 3072 GELU), input = float embeddings"
    return model, (x,), ["input"], ["output"], None, 13, note


BUILDERS = {
    "vgg16": lambda b: build_classifier("vgg16", b),
    "vgg19": lambda b: build_classifier("vgg19", b),
    "resnet50": lambda b: build_classifier("resnet50", b),
    "mobilenet_v2": lambda b: build_classifier("mobilenet_v2", b),
    "ssd300": build_ssd300,
    "ssd300_heads": build_ssd300_heads,
    "bert": build_bert,
}


def describe(t):
    return {"shape": list(t.shape), "dtype": str(t.dtype).replace("torch.", "")}


def export_one(name, batch, out_dir):
    import onnx
    t0 = time.time()
    model, inputs, in_names, out_names, dyn, opset, note = BUILDERS[name](batch)
    with torch.no_grad():
        outs = model(*inputs)
    outs = list(outs) if isinstance(outs, (tuple, list)) else [outs]
    for n, o in zip(out_names, outs):
        if o.is_floating_point() and o.numel() > 0:
            if not torch.isfinite(o).all():
                raise RuntimeError(f"{name}: output {n} has NaN/Inf")
            if o.numel() > 1 and float(o.std()) == 0:
                raise RuntimeError(f"{name}: output {n} is constant")
    t_build = time.time() - t0

    path = os.path.join(out_dir, f"{name}.onnx")
    t1 = time.time()
    torch.onnx.export(model, inputs, path, opset_version=opset, do_constant_folding=True,
                      input_names=in_names, output_names=out_names, dynamic_axes=dyn)
    t_export = time.time() - t1
    onnx.checker.check_model(path)  # path form: works for files > 2 GB too
    m = onnx.load(path, load_external_data=False)
    ops = dict(sorted(collections.Counter(n.op_type for n in m.graph.node).items()))
    # Ops inside If/Loop bodies matter to a runtime too.
    sub_ops = collections.Counter()
    stack = list(m.graph.node)
    while stack:
        n = stack.pop()
        for a in n.attribute:
            for g in ([a.g] if a.HasField("g") else []) + list(a.graphs):
                for sn in g.node:
                    sub_ops[sn.op_type] += 1
                    stack.append(sn)

    np.save(os.path.join(out_dir, f"{name}.input.npy"), inputs[0].numpy())
    for i, o in enumerate(outs):
        np.save(os.path.join(out_dir, f"{name}.output_{i}.npy"), o.numpy())
    with open(path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    info = {
        "name": name,
        "onnx": f"{name}.onnx",
        "bytes": os.path.getsize(path),
        "sha256": digest,
        "opset": opset,
        "params": int(sum(p.numel() for p in model.parameters())),
        "inputs": [dict(name=n, file=f"{name}.input.npy", **describe(t)) for n, t in zip(in_names, inputs)],
        "outputs": [dict(name=n, file=f"{name}.output_{i}.npy",
                         std=(float(o.float().std()) if o.numel() > 1 else None), **describe(o))
                    for i, (n, o) in enumerate(zip(out_names, outs))],
        "dynamic_axes": dyn,
        "ops": ops,
        "subgraph_ops": dict(sorted(sub_ops.items())),
        "node_count": len(m.graph.node),
        "note": note,
        "seed": SEED,
        "torch": torch.__version__,
        "seconds": {"build_and_run": round(t_build, 1), "export": round(t_export, 1),
                    "total": round(time.time() - t0, 1)},
    }
    with open(os.path.join(out_dir, f"{name}.json"), "w") as f:
        f.write(dumps(info))
    return info


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    ap.add_argument("--out", default=os.path.join(root, "bench", "models"))
    ap.add_argument("--models", default=",".join(ALL), help="comma list of " + ",".join(ALL))
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--force", action="store_true", help="re-export models that already exist")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (machine is shared)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    os.makedirs(args.out, exist_ok=True)

    names = [n for n in args.models.split(",") if n]
    bad = [n for n in names if n not in BUILDERS]
    if bad:
        sys.exit(f"unknown model(s) {bad}; expected some of {','.join(ALL)}")
    t_all = time.time()
    failed = []
    for name in names:
        if not args.force and all(os.path.exists(os.path.join(args.out, f"{name}.{ext}")) for ext in ("onnx", "json")):
            print(f"{name}: present, skipped (--force to redo)")
            continue
        print(f"{name}: exporting ...", flush=True)
        try:
            info = export_one(name, args.batch, args.out)
        except Exception as e:  # keep going: one unsupported model should not block the others
            print(f"{name}: FAILED: {type(e).__name__}: {e}", flush=True)
            failed.append(name)
            continue
        outs = ", ".join(f"{o['name']}{o['shape']} {o['dtype']}" for o in info["outputs"])
        print(f"{name}: {info['seconds']['total']}s, {info['bytes'] / 1e6:.1f} MB, opset {info['opset']}, "
              f"{info['node_count']} nodes, outputs {outs}", flush=True)
        print(f"  ops {info['ops']}", flush=True)
        if info["subgraph_ops"]:
            print(f"  subgraph ops {info['subgraph_ops']}", flush=True)
    print(f"total {time.time() - t_all:.1f}s", flush=True)
    if failed:
        sys.exit(f"failed: {','.join(failed)}")


if __name__ == "__main__":
    main()
