#!/usr/bin/env python3
"""PyTorch side of the benchmarks (bench/lib.ts starts it). Reads one JSON request per line,
{"workload", "args", "iters"}, runs that workload exactly as the TypeScript side does, and prints
{"seconds": median seconds per iteration}. argv[1] is the thread count."""
import json
import math
import statistics
import sys
import time

import torch

torch.set_num_threads(int(sys.argv[1]))
torch.manual_seed(0)


def timed(fn, iters, warmup=5):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def matmul(n):
    a, b = torch.randn(n, n), torch.randn(n, n)
    return lambda: torch.matmul(a, b)


class Block(torch.nn.Module):
    """Pre-LN transformer block (CLIP's text block): causal MHA, MLP 4W with quick GELU."""

    def __init__(self, width, heads):
        super().__init__()
        self.ln_1 = torch.nn.LayerNorm(width)
        self.attn = torch.nn.MultiheadAttention(width, heads, batch_first=True)
        self.ln_2 = torch.nn.LayerNorm(width)
        self.fc1 = torch.nn.Linear(width, 4 * width)
        self.fc2 = torch.nn.Linear(4 * width, width)

    def forward(self, x, mask):
        h = self.ln_1(x)
        x = x + self.attn(h, h, h, attn_mask=mask, need_weights=False)[0]
        h = self.fc1(self.ln_2(x))
        return x + self.fc2(h * torch.sigmoid(1.702 * h))


def transformer_block(width, heads, batch, seq):
    block = Block(width, heads)
    x = torch.randn(batch, seq, width, requires_grad=True)
    mask = torch.triu(torch.full((seq, seq), float("-inf")), diagonal=1)

    def step():
        block.zero_grad(set_to_none=True)
        x.grad = None
        block(x, mask).sum().backward()

    return step


def lstm(batch, steps, width):
    m = torch.nn.LSTM(width, width, batch_first=True)
    x = torch.randn(batch, steps, width, requires_grad=True)

    def step():
        m.zero_grad(set_to_none=True)
        m(x)[0].sum().backward()

    return step


def small_ops(n):
    """Per-call overhead: n tiny adds and multiplies, where the binding, not the math, is the cost."""
    x, y = torch.randn(16), torch.randn(16)

    def step():
        for _ in range(n):
            x.add(y).mul(y)

    return step


class VisionBlock(torch.nn.Module):
    """CLIP's vision block as src/clip/model.ts writes it: separate q/k/v projections, quick GELU."""

    def __init__(self, width, heads):
        super().__init__()
        self.heads = heads
        self.q, self.k, self.v, self.o = (torch.nn.Linear(width, width) for _ in range(4))
        self.ln1, self.ln2 = torch.nn.LayerNorm(width), torch.nn.LayerNorm(width)
        self.fc1, self.fc2 = torch.nn.Linear(width, 4 * width), torch.nn.Linear(4 * width, width)

    def forward(self, x):
        b, n, w = x.shape
        h = self.ln1(x)
        split = lambda t: t.view(b, n, self.heads, w // self.heads).transpose(1, 2)
        q, k, v = split(self.q(h)), split(self.k(h)), split(self.v(h))
        a = torch.softmax((q / math.sqrt(w // self.heads)) @ k.transpose(-2, -1), -1) @ v
        x = x + self.o(a.transpose(1, 2).reshape(b, n, w))
        h = self.fc1(self.ln2(x))
        return x + self.fc2(h * torch.sigmoid(1.702 * h))


def clip_vision(width, layers, heads, patch, resolution, embed, batch):
    grid = resolution // patch
    conv = torch.nn.Conv2d(3, width, patch, stride=patch, bias=False)
    cls = torch.randn(width)
    pos = torch.randn(grid * grid + 1, width)
    ln_pre, ln_post = torch.nn.LayerNorm(width), torch.nn.LayerNorm(width)
    blocks = torch.nn.ModuleList(VisionBlock(width, heads) for _ in range(layers))
    proj = torch.nn.Linear(width, embed, bias=False)
    pixels = torch.randn(batch, 3, resolution, resolution)

    @torch.no_grad()
    def step():
        x = conv(pixels).flatten(2).transpose(1, 2)
        x = ln_pre(torch.cat([cls.expand(batch, 1, width), x], 1) + pos)
        for blk in blocks:
            x = blk(x)
        return proj(ln_post(x[:, 0]))

    return step


WORKLOADS = {"clip_vision": clip_vision, "small_ops": small_ops, "matmul": matmul, "transformer_block": transformer_block, "lstm": lstm}

for line in sys.stdin:
    req = json.loads(line)
    try:
        fn = WORKLOADS[req["workload"]](**req["args"])
        print(json.dumps({"seconds": timed(fn, req["iters"])}), flush=True)
    except Exception as e:  # reported to the caller, which names the workload
        print(json.dumps({"error": repr(e)}), flush=True)
