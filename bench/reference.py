#!/usr/bin/env python3
"""PyTorch side of the benchmarks (bench/lib.ts starts it). Reads one JSON request per line,
{"workload", "args", "iters"}, runs that workload exactly as the TypeScript side does, and prints
{"seconds": median seconds per iteration}; or {"export", "path", "args"}, writes that workload's
model as ONNX (for onnxruntime's column) and prints {"path"}. argv[1] is the thread count."""
import json
import math
import statistics
import sys
import time
import warnings

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


class VisionTower(torch.nn.Module):
    """CLIP's vision tower with its projection: pixels [B, 3, R, R] -> embeddings [B, embed]."""

    def __init__(self, width, layers, heads, patch, resolution, embed):
        super().__init__()
        grid = resolution // patch
        self.width = width
        self.conv = torch.nn.Conv2d(3, width, patch, stride=patch, bias=False)
        self.cls = torch.nn.Parameter(torch.randn(width))
        self.pos = torch.nn.Parameter(torch.randn(grid * grid + 1, width))
        self.ln_pre, self.ln_post = torch.nn.LayerNorm(width), torch.nn.LayerNorm(width)
        self.blocks = torch.nn.ModuleList(VisionBlock(width, heads) for _ in range(layers))
        self.proj = torch.nn.Linear(width, embed, bias=False)

    def forward(self, pixels):
        x = self.conv(pixels).flatten(2).transpose(1, 2)
        x = self.ln_pre(torch.cat([self.cls.expand(pixels.shape[0], 1, self.width), x], 1) + self.pos)
        for blk in self.blocks:
            x = blk(x)
        return self.proj(self.ln_post(x[:, 0]))


def clip_vision(width, layers, heads, patch, resolution, embed, batch):
    tower = VisionTower(width, layers, heads, patch, resolution, embed).eval()
    pixels = torch.randn(batch, 3, resolution, resolution)

    @torch.no_grad()
    def step():
        return tower(pixels)

    return step


def clip_vision_int8(width, layers, heads, patch, resolution, embed, batch):
    """The tower through PyTorch's own dynamic quantisation: every Linear int8 (weights per output
    channel, activations per tensor at run time), on the quantised engine this build has (Debian's:
    oneDNN, no fbgemm); attention products, softmax, LayerNorm, GELU and the patch conv in float32."""
    tower = VisionTower(width, layers, heads, patch, resolution, embed).eval()
    qconfig = torch.ao.quantization.per_channel_dynamic_qconfig
    tower = torch.ao.quantization.quantize_dynamic(tower, {torch.nn.Linear: qconfig}, dtype=torch.qint8)
    pixels = torch.randn(batch, 3, resolution, resolution)

    @torch.no_grad()
    def step():
        return tower(pixels)

    return step


def export_clip_vision(path, width, layers, heads, patch, resolution, embed, batch):
    """The same tower as an ONNX file (input "pixels"), for onnxruntime's column of bench clip."""
    tower = VisionTower(width, layers, heads, patch, resolution, embed).eval()
    pixels = torch.randn(batch, 3, resolution, resolution)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's notes on Python-level shape arithmetic
        torch.onnx.export(tower, pixels, path, opset_version=14, input_names=["pixels"], output_names=["embeddings"])


class TextBlock(VisionBlock):
    """CLIP's text block: VisionBlock with the causal mask added to the scores."""

    def forward(self, x, mask):
        b, n, w = x.shape
        h = self.ln1(x)
        split = lambda t: t.view(b, n, self.heads, w // self.heads).transpose(1, 2)
        q, k, v = split(self.q(h)), split(self.k(h)), split(self.v(h))
        a = torch.softmax((q / math.sqrt(w // self.heads)) @ k.transpose(-2, -1) + mask, -1) @ v
        x = x + self.o(a.transpose(1, 2).reshape(b, n, w))
        h = self.fc1(self.ln2(x))
        return x + self.fc2(h * torch.sigmoid(1.702 * h))


class EncoderBlock(torch.nn.Module):
    """src/ous/model.ts EncoderBlock: pre-LN, MHA, MLP 4E with GELU."""

    def __init__(self, width, heads):
        super().__init__()
        self.ln_1, self.ln_2 = torch.nn.LayerNorm(width), torch.nn.LayerNorm(width)
        self.attn = torch.nn.MultiheadAttention(width, heads, batch_first=True)
        self.mlp = torch.nn.Sequential(
            torch.nn.Linear(width, 4 * width), torch.nn.GELU(), torch.nn.Linear(4 * width, width)
        )

    def forward(self, x):
        h = self.ln_1(x)
        y = x + self.attn(h, h, h, need_weights=False)[0]
        return y + self.mlp(self.ln_2(y))


class TypeFusionBlock(torch.nn.Module):
    """src/ous/model.ts TypeFusionBlock without residuals (the default): eqs. (5)-(10)."""

    def __init__(self, width, heads):
        super().__init__()
        self.ln_kv, self.ln_a, self.ln_c = (torch.nn.LayerNorm(width) for _ in range(3))
        self.attn = torch.nn.MultiheadAttention(width, heads, batch_first=True)
        self.mlp = torch.nn.Sequential(
            torch.nn.Linear(width, 4 * width), torch.nn.ReLU(), torch.nn.Linear(4 * width, width)
        )

    def forward(self, q, tokens):
        kv = self.ln_kv(tokens)
        o = self.ln_a(self.attn(q, kv, kv, need_weights=False)[0])
        return self.ln_c(self.mlp(o))


class OusStep(torch.nn.Module):
    """The OUS head of src/ous/model.ts with CoOp through the frozen text tower (src/ous/prompt.ts)."""

    def __init__(
        self, embed, vision_width, text_width, text_layers, text_heads, prompt_length, eot,
        frames=16, heads=8, tfe_layers=12, queries=16,
    ):
        super().__init__()
        E, W, Wt, C, L = embed, vision_width, text_width, len(eot), max(eot) + 1
        self.eot = torch.tensor(eot)
        self.lstm = torch.nn.LSTM(E, E, batch_first=True)
        self.cls = torch.nn.Parameter(torch.randn(E) * 0.02)
        self.positions = torch.nn.Parameter(torch.randn(frames + 1, E) * 0.02)
        self.frames_block = EncoderBlock(E, heads)
        self.conv, self.align_fc = torch.nn.Conv1d(E, E, 3, padding=1), torch.nn.Linear(E, E)
        self.pol1, self.pol2, self.pol_head = torch.nn.Linear(W, E), torch.nn.Linear(E, E), torch.nn.Linear(E, 3)
        self.type_embedding = torch.nn.Parameter(torch.randn(3, E) * 0.02)
        self.queries = torch.nn.Parameter(torch.randn(queries, E) * 0.02)
        self.tfe = torch.nn.ModuleList(TypeFusionBlock(E, heads) for _ in range(tfe_layers))
        self.ctx = torch.nn.Parameter(torch.randn(prompt_length, Wt) * 0.02)
        # The frozen tower: random weights, no gradients; prefix/suffix embeddings computed once.
        self.text = torch.nn.ModuleList(TextBlock(Wt, text_heads) for _ in range(text_layers))
        self.text_pos = torch.randn(L, Wt) * 0.01
        self.text_ln = torch.nn.LayerNorm(Wt)
        self.text_proj = torch.nn.Linear(Wt, E, bias=False)
        for m in (self.text, self.text_ln, self.text_proj):
            m.requires_grad_(False)
        self.prefix, self.suffix = torch.randn(C, 1, Wt), torch.randn(C, L - 1 - prompt_length, Wt)
        self.mask = torch.full((L, L), float("-inf")).triu(1)

    def align(self, x):
        return self.align_fc(torch.nn.functional.gelu(self.conv(x.transpose(1, 2)).transpose(1, 2)))

    def text_features(self):
        C = self.prefix.shape[0]
        x = torch.cat([self.prefix, self.ctx.expand(C, -1, -1), self.suffix], 1) + self.text_pos
        for blk in self.text:
            x = blk(x, self.mask)
        return self.text_proj(self.text_ln(x[torch.arange(C), self.eot]))

    def forward(self, face, scene, low):
        B = face.shape[0]
        Hf = self.lstm(face)[0]
        Zf = self.frames_block(torch.cat([self.cls.view(1, 1, -1).expand(B, 1, -1), Hf], 1) + self.positions)
        Fa = self.align(Zf)
        a_face = Fa[:, 0]
        a_scene = self.align(self.lstm(scene)[0]).mean(1)
        v_pol = self.pol2(torch.nn.functional.gelu(self.pol1(low))).mean(1)
        tokens = torch.cat(
            [
                Fa + self.type_embedding[0],
                (a_scene + self.type_embedding[1]).unsqueeze(1),
                (v_pol + self.type_embedding[2]).unsqueeze(1),
            ],
            1,
        )
        Q = self.queries.unsqueeze(0).expand(B, -1, -1)
        x = None
        for blk in self.tfe:
            x = blk(Q if x is None else x + Q, tokens)
        z = x.mean(1)
        F = torch.nn.functional
        logits = F.normalize(z) @ F.normalize(self.text_features()).T / 0.01
        return logits, self.pol_head(v_pol), a_face, a_scene


def ous_train(embed, vision_width, text_width, text_layers, text_heads, prompt_length, eot, batch=16, frames=16):
    """One training step of bench/train.ts: forward, src/ous/losses.ts (the α switch), Adam."""
    F = torch.nn.functional
    model = OusStep(embed, vision_width, text_width, text_layers, text_heads, prompt_length, eot, frames)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=2e-3)
    face, scene, low = (
        torch.randn(batch, frames, embed),
        torch.randn(batch, frames, embed),
        torch.randn(batch, frames, vision_width),
    )
    labels = torch.randint(0, len(eot), (batch,))
    polarity = labels % 3

    def step():
        logits, pol_logits, a_face, a_scene = model(face, scene, low)
        cls = F.cross_entropy(logits, labels)
        nce = F.cross_entropy(F.normalize(a_scene) @ F.normalize(a_face).T / 0.07, torch.arange(batch))
        sim = 1 - F.cosine_similarity(a_face, a_scene, 1).mean()
        contrast = cls + nce
        glob = sim + F.cross_entropy(pol_logits, polarity) + contrast
        terms = [t.item() for t in (cls, nce, sim, contrast, glob)]  # logged every step, as ours
        opt.zero_grad(set_to_none=True)
        (glob if terms[-1] > 2.0 else contrast).backward()
        opt.step()

    return step


WORKLOADS = {
    "clip_vision": clip_vision,
    "clip_vision_int8": clip_vision_int8,
    "small_ops": small_ops,
    "matmul": matmul,
    "transformer_block": transformer_block,
    "lstm": lstm,
    "ous_train": ous_train,
}

EXPORTS = {"clip_vision": export_clip_vision}

for line in sys.stdin:
    req = json.loads(line)
    try:
        if "export" in req:  # {"export": workload, "path": file, "args": {...}} -> {"path": file}
            EXPORTS[req["export"]](req["path"], **req["args"])
            print(json.dumps({"path": req["path"]}), flush=True)
            continue
        fn = WORKLOADS[req["workload"]](**req["args"])
        print(json.dumps({"seconds": timed(fn, req["iters"], req.get("warmup", 5))}), flush=True)
    except Exception as e:  # reported to the caller, which names the workload
        print(json.dumps({"error": repr(e)}), flush=True)
