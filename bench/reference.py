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


WORKLOADS = {"small_ops": small_ops, "matmul": matmul, "transformer_block": transformer_block, "lstm": lstm}

for line in sys.stdin:
    req = json.loads(line)
    try:
        fn = WORKLOADS[req["workload"]](**req["args"])
        print(json.dumps({"seconds": timed(fn, req["iters"])}), flush=True)
    except Exception as e:  # reported to the caller, which names the workload
        print(json.dumps({"error": repr(e)}), flush=True)
