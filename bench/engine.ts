// Engine benchmark: the same work in our TypeScript API and in PyTorch (Python), side by side.
//   1024³ matmul; a CLIP-text-sized transformer block forward+backward (width 768, 12 heads,
//   7×77 tokens); an OUS-sized LSTM forward+backward (batch 16, 16 steps, width 768).
// Target: within 10% of PyTorch (same libtorch underneath; the difference is our overhead).
import * as os from 'node:os';
import { F, type Tensor, nn, randn, tidy, manualSeed, full, getNumThreads } from '../src/torch/index.js';
import { type TorchReference, compare, timeIt, type Row } from './lib.js';

// The block reference.py times: pre-LN, causal multi-head attention, MLP 4W with quick GELU.
class Block extends nn.Module {
  readonly ln_1: nn.LayerNorm;
  readonly attn: nn.MultiheadAttention;
  readonly ln_2: nn.LayerNorm;
  readonly fc1: nn.Linear;
  readonly fc2: nn.Linear;

  constructor(width: number, heads: number) {
    super();
    this.ln_1 = new nn.LayerNorm(width);
    this.attn = new nn.MultiheadAttention(width, heads, { batchFirst: true });
    this.ln_2 = new nn.LayerNorm(width);
    this.fc1 = new nn.Linear(width, 4 * width);
    this.fc2 = new nn.Linear(4 * width, width);
  }

  forward(x: Tensor, mask: Tensor): Tensor {
    const h = this.ln_1.forward(x);
    const y = x.add(this.attn.forward(h, h, h, { attnMask: mask }));
    return y.add(this.fc2.forward(F.quickGelu(this.fc1.forward(this.ln_2.forward(y)))));
  }
}

export async function benchEngine(torch: TorchReference | null, quick: boolean): Promise<Row[]> {
  manualSeed(0);
  const rows: Row[] = [];
  const iters = quick ? 3 : 10;

  const n = 1024;
  const [a, b] = [randn([n, n]).keep(), randn([n, n]).keep()];
  const mm = await compare(
    'matmul 1024³',
    () => timeIt(() => a.matmul(b).dispose(), { iters: iters * 2, warmup: 5 }),
    torch,
    'matmul',
    { n },
    iters * 2,
  );
  rows.push({ ...mm, unit: { label: 'GFLOP/s', perIter: (2 * n ** 3) / 1e9 } });

  const [width, heads, batch, seq] = [768, 12, 7, 77];
  const block = new Block(width, heads);
  const x = randn([batch, seq, width]).requiresGrad_(true).keep();
  const mask = full([seq, seq], -Infinity).triu(1).keep(); // causal: -inf above the diagonal
  const blockStep = () =>
    tidy(() => {
      block.zeroGrad();
      x.grad = undefined;
      block.forward(x, mask).sum().backward();
    });
  // Forward ≈ 2·params·tokens + attention; backward ≈ 2× forward.
  const tokens = batch * seq;
  const flops = 3 * (2 * 12 * width * width * tokens + 4 * batch * seq * seq * width);
  const tb = await compare(
    'transformer block fwd+bwd (768, 12 heads, 7×77)',
    () => timeIt(blockStep, { iters }),
    torch,
    'transformer_block',
    { width, heads, batch, seq },
    iters,
  );
  rows.push({ ...tb, unit: { label: 'GFLOP/s', perIter: flops / 1e9 } });

  const [sx, sy] = [randn([16]).keep(), randn([16]).keep()];
  const ops = 1000;
  const small = () =>
    tidy(() => {
      for (let i = 0; i < ops; i++) sx.add(sy).mul(sy);
    });
  rows.push(
    await compare(
      `${2 * ops} tiny ops ([16] add, mul): call overhead`,
      () => timeIt(small, { iters }),
      torch,
      'small_ops',
      { n: ops },
      iters,
    ),
  );

  const lstm = new nn.LSTM(width, width, { batchFirst: true });
  const xs = randn([16, 16, width]).requiresGrad_(true).keep();
  const lstmStep = () =>
    tidy(() => {
      lstm.zeroGrad();
      lstm.forward(xs).output.sum().backward();
    });
  rows.push(
    await compare(
      'LSTM fwd+bwd (batch 16, 16 steps, 768)',
      () => timeIt(lstmStep, { iters }),
      torch,
      'lstm',
      { batch: 16, steps: 16, width },
      iters,
    ),
  );
  return rows;
}

export function title(): string {
  return `Engine (${getNumThreads()} threads, ${os.cpus()[0]?.model ?? 'cpu'})`;
}
