#!/usr/bin/python3
"""How sensitive are the random-weight benchmark networks to weight rounding? (PyTorch only, no q8.)

Rebuilds each classifier exactly as scripts/export_zoo.py does (same seed, BN calibration, logit
scaling) and measures, on the export's input, the cosine of the logits against fp32 when:
  - every Conv/Linear weight gets int8 per-output-channel round-to-nearest (q8's default weight
    window; activations stay fp32, so this is an upper bound for any int8 scheme with these weights),
  - the same with blocks of 32 input values per window (the finest window the scheme allows),
  - the same, but each window's rounding errors made to sum to ~0 (removes the DC part of the error),
  - Gaussian noise at 40 dB and 50 dB below each channel's weight power,
  - only layer i is rounded (the most damaging layers are listed),
  - the first k layers (network order) stay fp32, the rest rounded.
It also prints the cosine between the logits of two different inputs (how much the output depends
on the image at all), and both cosines for the same network left with torchvision's default
BatchNorm statistics (mean 0, variance 1): there the logits barely depend on the input, which is
why export_zoo.py calibrates BatchNorm first.

Run:  /usr/bin/python3 scripts/quant_sensitivity.py [resnet50 mobilenet_v2 vgg16 ...]
"""
import copy
import os
import sys

import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import export_zoo as ez  # noqa: E402


def cos(a, b):
    a, b = a.flatten().double(), b.flatten().double()
    return float(a @ b / a.norm() / b.norm())


def int8_block(w, block=32):
    """Symmetric int8, one window per `block` consecutive input values (ONNX order) of an output channel."""
    w2 = w.flatten(1)
    k = w2.shape[1]
    w3 = torch.nn.functional.pad(w2, (0, (-k) % block)).view(w2.shape[0], -1, block)
    s = w3.abs().amax(2, keepdim=True) / 127
    s[s == 0] = 1
    return (torch.round(w3 / s) * s).view(w2.shape[0], -1)[:, :k].reshape(w.shape)


def int8_channel(w, zero_sum=False):
    """Symmetric int8, one window per output channel: q = round(w / s), s = max|w| / 127."""
    w2 = w.flatten(1)
    s = w2.abs().amax(1, keepdim=True) / 127
    s[s == 0] = 1
    r = w2 / s
    q = torch.round(r)
    if zero_sum:
        # Move the fewest values to their other rounding neighbour so that sum(q) = round(sum(r)).
        frac = r - q
        need = (torch.round(r.sum(1)) - q.sum(1)).long()
        for i in range(q.shape[0]):
            n = int(need[i])
            if n == 0:
                continue
            key = frac[i] * (1 if n > 0 else -1)
            key[(q[i] * (1 if n > 0 else -1)) >= 127] = -9
            q[i, torch.topk(key, abs(n)).indices] += 1 if n > 0 else -1
    return (q * s).view_as(w)


def noisy(w, db, g):
    std = w.flatten(1).std(1).view(-1, *([1] * (w.dim() - 1)))
    return w + torch.randn(w.shape, generator=g) * std * 10 ** (-db / 20)


def layers(model):
    return [(n, m) for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


@torch.no_grad()
def with_weights(model, fn, which=None):
    m2 = copy.deepcopy(model)
    for i, (_, m) in enumerate(layers(m2)):
        if which is None or which(i):
            m.weight.copy_(fn(m.weight))
    return m2


@torch.no_grad()
def study(name):
    model, (x,), *_ = ez.build_classifier(name, 1)
    x2 = ez.imagenet_input(1, 224, ez.gen(99))
    y = model(x)
    ls = layers(model)
    total = sum(m.weight.numel() for _, m in ls)
    print(f"{name}: {len(ls)} Conv/Linear layers, {total / 1e6:.1f} M weights")
    print(f"  cosine(logits(x), logits(other input))   {cos(y, model(x2)):.5f}")
    print(f"  int8 per-channel weights only             {cos(y, with_weights(model, int8_channel)(x)):.5f}")
    print(f"  ... with zero-sum rounding per window     {cos(y, with_weights(model, lambda w: int8_channel(w, True))(x)):.5f}")
    print(f"  int8 weights in blocks of 32 values       {cos(y, with_weights(model, int8_block)(x)):.5f}")
    for db in (40, 50):
        g = torch.Generator().manual_seed(5)
        print(f"  Gaussian weight noise at {db} dB           {cos(y, with_weights(model, lambda w: noisy(w, db, g))(x)):.5f}")
    single = []
    for i, (n, m) in enumerate(ls):
        w0 = m.weight.clone()
        m.weight.copy_(int8_channel(w0))
        single.append((1 - cos(y, model(x)), n, tuple(w0.shape)))
        m.weight.copy_(w0)
    single.sort(reverse=True)
    print("  most damaging single layers (1 - cosine when only this layer is int8):")
    for d, n, shape in single[:6]:
        print(f"    {d:.5f}  {n} {list(shape)}")
    print("  first k layers fp32, the rest int8 (weights only):")
    for k in (1, 2, 5, 10, 20, 30):
        if k >= len(ls):
            break
        kept = sum(m.weight.numel() for _, m in ls[:k])
        c = cos(y, with_weights(model, int8_channel, lambda i, k=k: i >= k)(x))
        print(f"    k={k:<3d} cosine {c:.5f}   fp32 weights {100 * kept / total:.2f}%")


@torch.no_grad()
def uncalibrated(name):
    """The same seed and input, but torchvision's default BatchNorm statistics (no calibration)."""
    import torchvision.models as tvm
    torch.manual_seed(ez.SEED)
    model = getattr(tvm, name)(weights=None).eval()
    if not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()):
        return  # e.g. VGG: nothing to calibrate
    x = ez.imagenet_input(1, 224, ez.gen(2))
    last = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
    ez.rescale_linear_to_unit_std(model, last, x)
    y = model(x)
    other = cos(y, model(ez.imagenet_input(1, 224, ez.gen(99))))
    print(f"  with default BN statistics instead: cosine(other input) {other:.5f}, "
          f"int8 per-channel weights {cos(y, with_weights(model, int8_channel)(x)):.5f}")


def main():
    names = sys.argv[1:] or ["resnet50", "mobilenet_v2", "vgg16"]
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    for n in names:
        study(n)
        uncalibrated(n)


if __name__ == "__main__":
    main()
