#!/usr/bin/env python3
"""Writes fixtures/torch/reference.safetensors: tiny PyTorch modules (an MLP, an LSTM, a
MultiheadAttention, a Conv1d/LayerNorm stack), their inputs and PyTorch's outputs and gradients,
so that the TypeScript engine can be checked against PyTorch's own semantics.

Run once with Debian's PyTorch (apt-get install python3-torch):
    /usr/bin/python3 scripts/make_torch_fixtures.py
The file is committed; the tests only read it. Written without the safetensors package (not in
Debian): the format is an 8-byte header length, a JSON header, then raw little-endian data.
"""
import json
import os
import struct

import torch

torch.manual_seed(0)
out = {}


def put(name, t):
    out[name] = t.detach().contiguous().to(torch.float32)


def put_module(prefix, module):
    for k, v in module.state_dict().items():
        put(f"{prefix}.{k}", v)


# --- MLP: Linear -> GELU -> Linear -> tanh-GELU, and the gradient of a weighted sum -------------
mlp = torch.nn.Sequential(
    torch.nn.Linear(5, 8), torch.nn.GELU(), torch.nn.Linear(8, 3), torch.nn.GELU(approximate="tanh")
)
x = torch.randn(4, 5, requires_grad=True)
y = mlp(x)
w = torch.randn(4, 3)
(y * w).sum().backward()
put_module("mlp", mlp)
put("mlp.input", x)
put("mlp.output", y)
put("mlp.out_weight", w)
put("mlp.grad_input", x.grad)
put("mlp.grad_0.weight", mlp[0].weight.grad)

# --- LSTM: 2 layers, batch first, with and without an initial state ---------------------------
lstm = torch.nn.LSTM(6, 5, num_layers=2, batch_first=True)
xs = torch.randn(3, 7, 6, requires_grad=True)
h0 = torch.randn(2, 3, 5)
c0 = torch.randn(2, 3, 5)
o, (h, c) = lstm(xs, (h0, c0))
o.pow(2).sum().backward()
put_module("lstm", lstm)
put("lstm.input", xs)
put("lstm.h0", h0)
put("lstm.c0", c0)
put("lstm.output", o)
put("lstm.h", h)
put("lstm.c", c)
put("lstm.grad_input", xs.grad)
put("lstm.grad_weight_hh_l1", lstm.weight_hh_l1.grad)
o2, _ = lstm(xs)
put("lstm.output_zero_state", o2)

# --- MultiheadAttention: seq-first, cross attention, a key padding mask -----------------------
mha = torch.nn.MultiheadAttention(8, 2)
q = torch.randn(4, 3, 8, requires_grad=True)
kv = torch.randn(6, 3, 8)
pad = torch.zeros(3, 6, dtype=torch.bool)
pad[1, 4:] = True
pad[2, 0] = True
att, weights = mha(q, kv, kv, key_padding_mask=pad)
att.sum().backward()
put_module("mha", mha)
put("mha.query", q)
put("mha.kv", kv)
put("mha.pad", pad.float())
put("mha.output", att)
put("mha.weights", weights)
put("mha.grad_query", q.grad)
put("mha.grad_in_proj_weight", mha.in_proj_weight.grad)
# A causal self-attention with a float mask, batch first.
mha2 = torch.nn.MultiheadAttention(8, 4, batch_first=True)
s = torch.randn(2, 5, 8)
causal = torch.triu(torch.full((5, 5), float("-inf")), diagonal=1)
att2, _ = mha2(s, s, s, attn_mask=causal)
put_module("mha2", mha2)
put("mha2.input", s)
put("mha2.output", att2)

# --- Conv1d (padding 1) -> LayerNorm over channels --------------------------------------------
conv = torch.nn.Conv1d(4, 6, 3, padding=1)
ln = torch.nn.LayerNorm(6)
xc = torch.randn(2, 4, 9)
yc = ln(conv(xc).transpose(1, 2))
put_module("conv", conv)
put_module("ln", ln)
put("conv.input", xc)
put("conv_ln.output", yc)

# --- Conv2d (stride 2) ------------------------------------------------------------------------
conv2 = torch.nn.Conv2d(3, 4, 3, stride=2, padding=1)
x2 = torch.randn(2, 3, 7, 7)
put_module("conv2d", conv2)
put("conv2d.input", x2)
put("conv2d.output", conv2(x2))

# --- losses -----------------------------------------------------------------------------------
logits = torch.randn(5, 4)
target = torch.tensor([0, 3, 1, 1, 2])
put("ce.logits", logits)
put("ce.target", target.float())
put("ce.mean", torch.nn.functional.cross_entropy(logits, target))
put("ce.smooth", torch.nn.functional.cross_entropy(logits, target, label_smoothing=0.1))

names = sorted(out)
header = {"__metadata__": {"generator": "scripts/make_torch_fixtures.py", "torch": torch.__version__}}
blobs = []
offset = 0
for n in names:
    b = out[n].numpy().astype("<f4").tobytes()
    header[n] = {"dtype": "F32", "shape": list(out[n].shape), "data_offsets": [offset, offset + len(b)]}
    blobs.append(b)
    offset += len(b)
hjson = json.dumps(header, separators=(",", ":"))
hjson += " " * ((8 - len(hjson) % 8) % 8)
path = os.path.join(os.path.dirname(__file__), "..", "fixtures", "torch", "reference.safetensors")
os.makedirs(os.path.dirname(path), exist_ok=True)
with open(path + ".tmp", "wb") as f:
    f.write(struct.pack("<Q", len(hjson)))
    f.write(hjson.encode())
    for b in blobs:
        f.write(b)
os.replace(path + ".tmp", path)
print(f"wrote {len(names)} tensors to {os.path.normpath(path)}")
