#!/usr/bin/python3
"""Independent reference evaluations for q8's loader tests (Debian python3 + numpy/torch only).

Each model file is decoded here with a small protobuf wire reader written for this script (not
q8's code), and evaluated with numpy/torch, so a bug in q8's loaders cannot hide in both places.

  loader_reference.py tf FILE.pb INPUT_NAME OUTPUT_NAME   (stdin: {"shape": [...], "data": [...]})
  loader_reference.py bigdl FILE.model IMAGES_IDX_GZ N     (prints logits of the first N MNIST images)
  loader_reference.py Output: JSON on stdout.
"""
import gzip
import json
import struct
import sys

import numpy as np


def fields(buf):
    """Yield (field, wire, value) of a protobuf message; Len values are bytes."""
    p, n = 0, len(buf)

    def varint():
        nonlocal p
        r, s = 0, 0
        while True:
            b = buf[p]
            p += 1
            r |= (b & 0x7F) << s
            s += 7
            if b < 0x80:
                return r

    while p < n:
        k = varint()
        f, w = k >> 3, k & 7
        if w == 0:
            yield f, w, varint()
        elif w == 1:
            yield f, w, buf[p:p + 8]
            p += 8
        elif w == 5:
            yield f, w, buf[p:p + 4]
            p += 4
        elif w == 2:
            ln = varint()
            yield f, w, buf[p:p + ln]
            p += ln
        else:
            raise ValueError("wire type %d" % w)


def packed_varints(b):
    out = []
    p = 0
    while p < len(b):
        r, s = 0, 0
        while True:
            c = b[p]
            p += 1
            r |= (c & 0x7F) << s
            s += 7
            if c < 0x80:
                break
        out.append(r)
    return out


def s32(v):
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v >= 1 << 31 else v


# --------------------------------------------------------------------------------- TensorFlow

TF_NP = {1: np.float32, 2: np.float64, 3: np.int32, 9: np.int64}


def tf_tensor(b):
    dtype, shape, content, floats, ints = 1, [], None, [], []
    for f, w, v in fields(b):
        if f == 1:
            dtype = v
        elif f == 2:
            for f2, w2, v2 in fields(v):
                if f2 == 2:
                    size = 0
                    for f3, w3, v3 in fields(v2):
                        if f3 == 1:
                            size = v3
                    shape.append(size)
        elif f == 4:
            content = v
        elif f == 5:
            floats += list(struct.unpack("<%df" % (len(v) // 4), v)) if w == 2 else [struct.unpack("<f", v)[0]]
        elif f == 7:
            ints += [s32(x) for x in (packed_varints(v) if w == 2 else [v])]
    dt = TF_NP[dtype]
    n = int(np.prod(shape)) if shape else 1
    if content is not None:
        return np.frombuffer(content, dtype=dt).reshape(shape)
    vals = floats if dt in (np.float32, np.float64) else ints
    arr = np.array([vals[min(i, len(vals) - 1)] for i in range(n)], dtype=dt)
    return arr.reshape(shape)


def tf_graph(path):
    nodes = {}
    for f, w, v in fields(open(path, "rb").read()):
        if f != 1:
            continue
        nd = {"inputs": [], "attr": {}}
        for f2, w2, v2 in fields(v):
            if f2 == 1:
                nd["name"] = v2.decode()
            elif f2 == 2:
                nd["op"] = v2.decode()
            elif f2 == 3:
                nd["inputs"].append(v2.decode())
            elif f2 == 5:
                key, val = None, None
                for f3, w3, v3 in fields(v2):
                    if f3 == 1:
                        key = v3.decode()
                    elif f3 == 2:
                        val = v3
                a = {}
                for f4, w4, v4 in fields(val):
                    if f4 == 5:
                        a["b"] = bool(v4)
                    elif f4 == 8:
                        a["tensor"] = tf_tensor(v4)
                    elif f4 == 2:
                        a["s"] = v4.decode()
                nd["attr"][key] = a
        nodes[nd["name"]] = nd
    return nodes


def tf_eval(path, input_name, output_name, x):
    nodes = tf_graph(path)
    memo = {input_name: x}

    def ev(name):
        name = name.split(":")[0]
        if name in memo:
            return memo[name]
        nd = nodes[name]
        ins = [ev(i) for i in nd["inputs"] if not i.startswith("^")]
        op, at = nd["op"], nd["attr"]
        if op == "Const":
            r = at["value"]["tensor"]
        elif op == "Identity":
            r = ins[0]
        elif op == "MatMul":
            a, b = ins
            if at.get("transpose_a", {}).get("b"):
                a = a.T
            if at.get("transpose_b", {}).get("b"):
                b = b.T
            r = a.astype(np.float64) @ b.astype(np.float64)
        elif op in ("BiasAdd", "Add", "AddV2"):
            r = ins[0] + ins[1]
        elif op == "Tanh":
            r = np.tanh(ins[0])
        elif op == "Relu":
            r = np.maximum(ins[0], 0)
        elif op == "Sigmoid":
            r = 1 / (1 + np.exp(-ins[0]))
        else:
            raise ValueError("reference does not evaluate op " + op)
        memo[name] = r
        return r

    return ev(output_name)


# --------------------------------------------------------------------------------------- BigDL

def bigdl_tensor(b):
    t = {"size": [], "stride": [], "offset": 1, "storage": None, "sid": None, "id": None}
    for f, w, v in fields(b):
        if f == 2:
            t["size"] = [s32(x) for x in (packed_varints(v) if w == 2 else [v])]
        elif f == 3:
            t["stride"] = [s32(x) for x in (packed_varints(v) if w == 2 else [v])]
        elif f == 4:
            t["offset"] = s32(v)
        elif f == 8:
            for f2, w2, v2 in fields(v):
                if f2 == 2 and w2 == 2:
                    t["storage"] = np.frombuffer(bytes(v2), dtype="<f4")
                elif f2 == 9:
                    t["sid"] = s32(v2)
        elif f == 9:
            t["id"] = s32(v)
    return t


def bigdl_attr(b, storages):
    a = {}
    for f, w, v in fields(b):
        if f == 3:
            a["i"] = s32(v)
        elif f == 8:
            a["b"] = bool(v)
        elif f == 10:
            a["tensor"] = bigdl_tensor(v)
        elif f == 14:
            for f2, w2, v2 in fields(v):
                if f2 == 2:
                    k, val = bigdl_entry(v2, storages)
                    t = val.get("tensor")
                    if t is not None and t["storage"] is not None:
                        storages[t["sid"]] = t["storage"]
        elif f == 15:
            arr = []
            for f2, w2, v2 in fields(v):
                if f2 == 3:
                    arr += [s32(x) for x in (packed_varints(v2) if w2 == 2 else [v2])]
                elif f2 == 7:
                    arr.append(v2.decode())
            a["array"] = arr
        elif f == 7:
            a["s"] = v.decode()
    return a


def bigdl_entry(b, storages):
    k, val = None, {}
    for f, w, v in fields(b):
        if f == 1:
            k = v.decode()
        elif f == 2:
            val = bigdl_attr(v, storages)
    return k, val


def bigdl_module(b, storages):
    m = {"sub": [], "pre": [], "attr": {}, "weight": None, "bias": None}
    for f, w, v in fields(b):
        if f == 1:
            m["name"] = v.decode()
        elif f == 2:
            m["sub"].append(bigdl_module(v, storages))
        elif f == 3:
            m["weight"] = bigdl_tensor(v)
        elif f == 4:
            m["bias"] = bigdl_tensor(v)
        elif f == 5:
            m["pre"].append(v.decode())
        elif f == 7:
            m["type"] = v.decode().split(".")[-1]
        elif f == 8:
            k, val = bigdl_entry(v, storages)
            m["attr"][k] = val
    return m


def bigdl_values(t, storages):
    st = t["storage"] if t["storage"] is not None else storages[t["sid"]]
    n = int(np.prod(t["size"]))
    return np.array(st[t["offset"] - 1:t["offset"] - 1 + n]).reshape(t["size"])


def bigdl_eval(path, images):
    import torch
    import torch.nn.functional as F

    storages = {}
    top = bigdl_module(open(path, "rb").read(), storages)
    assert top["type"] == "StaticGraph", top["type"]
    by = {m["name"]: m for m in top["sub"]}
    order = []
    name = top["attr"]["outputNames"]["array"][0]
    while True:  # LeNet is a chain: walk back from the output
        order.append(by[name])
        if not by[name]["pre"]:
            break
        name = by[name]["pre"][0]
    order.reverse()
    x = torch.tensor(images)
    with torch.no_grad():
        for m in order:
            a, t = m["attr"], m["type"]
            if t == "Reshape":
                x = x.reshape([x.shape[0]] + a["size"]["array"])
            elif t == "SpatialConvolution":
                w = torch.tensor(bigdl_values(m["weight"], storages))
                w = w.reshape(a["nOutputPlane"]["i"], a["nInputPlane"]["i"], a["kernelH"]["i"], a["kernelW"]["i"])
                b = torch.tensor(bigdl_values(m["bias"], storages))
                x = F.conv2d(x, w, b, stride=(a["strideH"]["i"], a["strideW"]["i"]), padding=(a["padH"]["i"], a["padW"]["i"]))
            elif t == "Tanh":
                x = torch.tanh(x)
            elif t == "SpatialMaxPooling":
                x = F.max_pool2d(x, (a["kH"]["i"], a["kW"]["i"]), (a["dH"]["i"], a["dW"]["i"]), (a["padH"]["i"], a["padW"]["i"]),
                                 ceil_mode=a.get("ceil_mode", {}).get("b", False))
            elif t == "Linear":
                w = torch.tensor(bigdl_values(m["weight"], storages))
                b = torch.tensor(bigdl_values(m["bias"], storages))
                x = F.linear(x, w, b)
            elif t == "LogSoftMax":
                x = F.log_softmax(x, dim=-1)
            else:
                raise ValueError("reference does not evaluate " + t)
    return x.numpy()


def read_idx_images(path, n):
    d = gzip.open(path).read() if path.endswith(".gz") else open(path, "rb").read()
    rows, cols = struct.unpack(">II", d[8:16])
    return np.frombuffer(d[16:16 + n * rows * cols], dtype=np.uint8).reshape(n, 1, rows, cols).astype(np.float32)


def main():
    cmd = sys.argv[1]
    if cmd == "tf":
        req = json.load(sys.stdin)
        x = np.array(req["data"], dtype=np.float32).reshape(req["shape"])
        y = tf_eval(sys.argv[2], sys.argv[3], sys.argv[4], x)
        print(json.dumps({"shape": list(y.shape), "data": [float(v) for v in y.ravel()]}))
    elif cmd == "bigdl":
        n = int(sys.argv[4])
        imgs = read_idx_images(sys.argv[3], n) / 255.0
        y = bigdl_eval(sys.argv[2], imgs.astype(np.float32))
        print(json.dumps({"shape": list(y.shape), "data": [float(v) for v in y.ravel()]}))
    else:
        raise SystemExit("unknown command " + cmd)


if __name__ == "__main__":
    main()
