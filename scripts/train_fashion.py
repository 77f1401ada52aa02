#!/usr/bin/python3
"""Train four small Fashion-MNIST classifiers and export them to ONNX for q8's tests.

Reads Debian's dataset-fashion-mnist IDX files (no downloads), trains deterministically on one
thread, and writes to --out (default models/):
  fashion-<name>.onnx       opset 13, input `input` [N,1,28,28] float32 = pixel/255, output `logits` [N,10]
  fashion-<name>.pred.bin   10,000 uint8 PyTorch fp32 argmax predictions, in test-set order
  fashion-reference.json    per model: top-1/top-5, correct count, scale, opset, sha256, ops, MACs, ...

Run:  /usr/bin/python3 scripts/train_fashion.py [--models mlp,vgg,mobilenet,resnet] [--out models]
"""
import argparse
import collections
import gzip
import hashlib
import json
import os
import random
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from jsonfmt import dumps

DATA_DIR = "/usr/share/datasets/fashion-mnist"
SCALE = 1.0 / 255.0  # q8 eval: --scale 0.00392156862745098
OPSET = 13
SEED = 20261125


def read_idx(path):
    """Minimal IDX reader: big-endian magic (0,0,dtype,ndim), ndim uint32 dims, then raw data."""
    with gzip.open(path, "rb") as f:
        raw = f.read()
    if raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte IDX file")
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise ValueError(f"{path}: expected {dims} bytes, got {data.size}")
    return data.reshape(dims)


def load_split(split):
    x = read_idx(os.path.join(DATA_DIR, f"{split}-images-idx3-ubyte.gz"))
    y = read_idx(os.path.join(DATA_DIR, f"{split}-labels-idx1-ubyte.gz"))
    # Same preprocessing q8 applies with --scale 1/255: nothing else (no mean/std).
    xt = torch.from_numpy(x.astype(np.float32) * np.float32(SCALE)).unsqueeze(1)
    return xt, torch.from_numpy(y.astype(np.int64))


def conv_bn_relu(cin, cout, stride=1, groups=1, k=3, act=nn.ReLU):
    return [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout), act()]


def make_mlp():
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(),
                         nn.Linear(128, 10))


def make_vgg():
    return nn.Sequential(
        *conv_bn_relu(1, 16), nn.MaxPool2d(2),                          # 28 -> 14
        *conv_bn_relu(16, 16), nn.MaxPool2d(2),                         # 14 -> 7
        *conv_bn_relu(16, 32), *conv_bn_relu(32, 32), nn.MaxPool2d(2),  # 7 -> 3 (floor)
        nn.Flatten(), nn.Linear(32 * 3 * 3, 64), nn.ReLU(), nn.Linear(64, 10))


def dw_separable(cin, cout, stride):
    return (conv_bn_relu(cin, cin, stride, groups=cin, act=nn.ReLU6)
            + conv_bn_relu(cin, cout, 1, k=1, act=nn.ReLU6))


def make_mobilenet():
    return nn.Sequential(
        # Stride-2 stem: full-resolution depthwise layers cost most of the training time on one core.
        *conv_bn_relu(1, 16, 2, act=nn.ReLU6),  # 28 -> 14
        *dw_separable(16, 32, 1),
        *dw_separable(32, 64, 2),               # 14 -> 7
        *dw_separable(64, 64, 1),
        *dw_separable(64, 128, 2),              # 7 -> 4
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(128, 10))


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.proj = None
        if stride != 1 or cin != cout:
            # 1x1 projection so the skip path matches the downsampled main path.
            self.proj = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        skip = x if self.proj is None else self.proj(x)
        return F.relu(y + skip)


def make_resnet():
    return nn.Sequential(
        *conv_bn_relu(1, 12), nn.MaxPool2d(2),  # 28 -> 14
        BasicBlock(12, 12, 1),
        BasicBlock(12, 24, 2),                  # 14 -> 7, 1x1 projection on the skip
        BasicBlock(24, 24, 1),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(24, 10))


# name -> (builder, epochs, peak lr)
MODELS = {
    "mlp": (make_mlp, 6, 2e-3),
    "vgg": (make_vgg, 5, 4e-3),
    "mobilenet": (make_mobilenet, 6, 4e-3),
    "resnet": (make_resnet, 6, 4e-3),
}


def count_macs(model):
    """Multiply-accumulates per image for Conv2d/Linear, via forward hooks on a 1-image pass."""
    total = [0]

    def hook(mod, inp, out):
        if isinstance(mod, nn.Conv2d):
            k = mod.kernel_size[0] * mod.kernel_size[1] * (mod.in_channels // mod.groups)
            total[0] += out.numel() * k
        elif isinstance(mod, nn.Linear):
            total[0] += out.numel() * mod.in_features

    hs = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    with torch.no_grad():
        model.eval()(torch.zeros(1, 1, 28, 28))
    for h in hs:
        h.remove()
    return total[0]


def seed_all(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def train(model, xtr, ytr, epochs, lr, batch=128, log=print):
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    steps = epochs * ((len(xtr) + batch - 1) // batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.2)
    gen = torch.Generator().manual_seed(SEED)
    for ep in range(epochs):
        model.train()
        t0 = time.time()
        perm = torch.randperm(len(xtr), generator=gen)
        tot_loss, tot_n = 0.0, 0
        for i in range(0, len(xtr), batch):
            idx = perm[i:i + batch]
            xb, yb = xtr[idx], ytr[idx]
            # Cheap deterministic augmentation for CNNs/MLP alike: random horizontal flip
            # (Fashion-MNIST classes are left/right symmetric).
            flip = torch.rand(len(idx), generator=gen) < 0.5
            xb = torch.where(flip[:, None, None, None], xb.flip(3), xb)
            loss = F.cross_entropy(model(xb), yb, label_smoothing=0.05)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            tot_loss += loss.item() * len(idx)
            tot_n += len(idx)
        log(f"  epoch {ep + 1}/{epochs} loss {tot_loss / tot_n:.4f} ({time.time() - t0:.1f}s)")


@torch.no_grad()
def evaluate(model, x, y):
    model.eval()
    logits = torch.cat([model(x[i:i + 1000]) for i in range(0, len(x), 1000)])
    top5 = logits.topk(5, dim=1).indices
    pred = top5[:, 0]
    correct1 = int((pred == y).sum())
    correct5 = int((top5 == y[:, None]).any(dim=1).sum())
    return logits, pred, correct1, correct5


def export(model, path):
    import onnx
    model.eval()
    dummy = torch.zeros(2, 1, 28, 28)
    torch.onnx.export(model, dummy, path, opset_version=OPSET, do_constant_folding=True,
                      input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}})
    m = onnx.load(path)
    onnx.checker.check_model(m, full_check=True)
    ops = collections.Counter(n.op_type for n in m.graph.node)
    return dict(sorted(ops.items()))


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default=",".join(MODELS), help="comma list of " + ",".join(MODELS))
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "models"))
    ap.add_argument("--epochs", type=int, default=0, help="override epochs for every model (0: per-model default)")
    args = ap.parse_args()

    torch.set_num_threads(1)  # leave the other core to the rest of the team
    torch.use_deterministic_algorithms(True)
    os.makedirs(args.out, exist_ok=True)

    xtr, ytr = load_split("train")
    xte, yte = load_split("t10k")
    print(f"train {tuple(xtr.shape)} test {tuple(xte.shape)}", flush=True)

    ref_path = os.path.join(args.out, "fashion-reference.json")
    ref = {}
    if os.path.exists(ref_path):
        with open(ref_path) as f:
            ref = json.load(f)
    ref.setdefault("dataset", {
        "source": "Debian dataset-fashion-mnist, " + DATA_DIR,
        "test_images": "t10k-images-idx3-ubyte.gz", "test_labels": "t10k-labels-idx1-ubyte.gz",
        "count": int(len(yte)),
        "preprocess": "x = pixel * scale, NCHW [N,1,28,28] float32, no mean/std",
        "scale": SCALE, "q8_eval_flags": "--scale 0.00392156862745098",
    })
    ref.setdefault("models", {})
    t_all = time.time()
    for name in args.models.split(","):
        if name not in MODELS:
            sys.exit(f"unknown model {name!r}; expected one of {','.join(MODELS)}")
        build, epochs, lr = MODELS[name]
        epochs = args.epochs or epochs
        seed_all(SEED)
        model = build()
        macs = count_macs(model)
        params = sum(p.numel() for p in model.parameters())
        print(f"fashion-{name}: {params} params, {macs} MACs/image, {epochs} epochs", flush=True)
        t0 = time.time()
        train(model, xtr, ytr, epochs, lr, log=lambda s: print(s, flush=True))
        t_train = time.time() - t0
        logits, pred, c1, c5 = evaluate(model, xte, yte)
        onnx_path = os.path.join(args.out, f"fashion-{name}.onnx")
        ops = export(model, onnx_path)
        pred_path = os.path.join(args.out, f"fashion-{name}.pred.bin")
        pred.to(torch.uint8).numpy().tofile(pred_path)
        ref["models"][f"fashion-{name}"] = {
            "onnx": os.path.basename(onnx_path),
            "pred": os.path.basename(pred_path),
            "sha256": sha256(onnx_path),
            "bytes": os.path.getsize(onnx_path),
            "opset": OPSET,
            "input": {"name": "input", "shape": ["N", 1, 28, 28], "dtype": "float32"},
            "output": {"name": "logits", "shape": ["N", 10], "dtype": "float32"},
            "scale": SCALE,
            "top1": c1 / len(yte),
            "top5": c5 / len(yte),
            "correct": c1,
            "correct_top5": c5,
            "count": int(len(yte)),
            "params": int(params),
            "macs_per_image": int(macs),
            "epochs": epochs,
            "train_seconds": round(t_train, 1),
            "ops": ops,
            # First 4 test images' fp32 logits: lets tests check q8's fp32 path numerically, not just argmax.
            "logits_first4": [[float(v) for v in row] for row in logits[:4].tolist()],
        }
        print(f"fashion-{name}: top1 {c1 / len(yte):.4f} top5 {c5 / len(yte):.4f} "
              f"train {t_train:.1f}s onnx {os.path.getsize(onnx_path)} B ops {ops}", flush=True)
        with open(ref_path, "w") as f:
            f.write(dumps(ref))
    print(f"total {time.time() - t_all:.1f}s", flush=True)


if __name__ == "__main__":
    main()
