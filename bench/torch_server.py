#!/usr/bin/python3
"""PyTorch fp32 timing server for bench/run.ts, so PyTorch runs interleave with q8 and onnxruntime in
one benchmark run. Rebuilds a zoo model with scripts/export_zoo.py's own builders (same seed, same
weights as the exported ONNX) and times its forward pass on request.

Protocol: one JSON object per line on stdin, one JSON reply per line on stdout (builder chatter goes
to stderr so stdout stays clean):
  {"cmd": "load", "model": "vgg16", "dir": "bench/models"}  -> {"ok": true, "seconds": s, "cos_ref": c}
  {"cmd": "run", "threads": 1}                              -> {"ok": true, "ms": wall, "cpu_ms": process CPU}
  {"cmd": "unload"} / {"cmd": "quit"}
cos_ref is the cosine of this process's outputs against the saved <model>.output_*.npy (the check
that the rebuilt module is the exported one).

Run by bench/run.ts as: /usr/bin/python3 bench/torch_server.py
"""
import contextlib
import json
import os
import sys
import time

import numpy as np
import torch

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, os.path.join(ROOT, "scripts"))
with contextlib.redirect_stdout(sys.stderr):
    import export_zoo  # noqa: E402  (builders and seed live there)

state = {"model": None, "x": None, "threads": None}


def flat_outputs(outs):
    outs = list(outs) if isinstance(outs, (tuple, list)) else [outs]
    return [o.detach().float().reshape(-1).numpy() for o in outs]


def cosine(a, b):
    a = np.concatenate(a).astype(np.float64)
    b = np.concatenate(b).astype(np.float64)
    if a.shape != b.shape:
        return None
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    return float(a @ b / (na * nb)) if na and nb else None


def load(msg):
    name, d = msg["model"], msg.get("dir", os.path.join(ROOT, "bench", "models"))
    if name not in export_zoo.BUILDERS:
        return {"ok": False, "error": f"no builder for {name}"}
    t0 = time.time()
    state["model"] = state["x"] = None
    with contextlib.redirect_stdout(sys.stderr):
        model = export_zoo.BUILDERS[name](1)[0].eval()
    x = torch.from_numpy(np.load(os.path.join(d, f"{name}.input.npy")))
    refs, i = [], 0
    while os.path.exists(os.path.join(d, f"{name}.output_{i}.npy")):
        refs.append(np.load(os.path.join(d, f"{name}.output_{i}.npy")).astype(np.float32).reshape(-1))
        i += 1
    with torch.no_grad():
        got = flat_outputs(model(x))
    state["model"], state["x"] = model, x
    return {"ok": True, "seconds": round(time.time() - t0, 2), "cos_ref": cosine(got, refs) if refs else None}


def run(msg):
    if state["model"] is None:
        return {"ok": False, "error": "no model loaded"}
    t = int(msg.get("threads", 1))
    if t != state["threads"]:
        torch.set_num_threads(t)
        state["threads"] = t
    with torch.no_grad():
        c0, t0 = time.process_time(), time.perf_counter()
        state["model"](state["x"])
        ms, cpu = (time.perf_counter() - t0) * 1000, (time.process_time() - c0) * 1000
    return {"ok": True, "ms": ms, "cpu_ms": cpu}


def main():
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            msg = json.loads(line)
            cmd = msg.get("cmd")
            if cmd == "load":
                reply = load(msg)
            elif cmd == "run":
                reply = run(msg)
            elif cmd == "unload":
                state["model"] = state["x"] = None
                reply = {"ok": True}
            elif cmd == "quit":
                break
            else:
                reply = {"ok": False, "error": f"unknown command {cmd!r}"}
        except Exception as e:  # report and keep serving: one failing model must not stop the benchmark
            reply = {"ok": False, "error": f"{type(e).__name__}: {e}"}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
