// Benchmark helpers: timing by median, and a PyTorch (Python) process that runs the same
// workloads in the same run, so that every number is printed beside its reference as a ratio.
// The machines are shared and their speed drifts within seconds: rounds of ours and PyTorch's
// alternate, and only ratios measured this way are meaningful.
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import * as path from 'node:path';
import { createInterface, type Interface } from 'node:readline';
import { packageRoot } from '../src/util/paths.js';

/** Median seconds per call of fn, after `warmup` untimed calls. */
export function timeIt(fn: () => void, opts: { warmup?: number; iters?: number; minSeconds?: number } = {}): number {
  const { warmup = 2, iters = 5, minSeconds = 0 } = opts;
  for (let i = 0; i < warmup; i++) fn();
  const times: number[] = [];
  const start = process.hrtime.bigint();
  while (times.length < iters || Number(process.hrtime.bigint() - start) / 1e9 < minSeconds) {
    const t0 = process.hrtime.bigint();
    fn();
    times.push(Number(process.hrtime.bigint() - t0) / 1e9);
  }
  return median(times);
}

/** timeIt for an async fn (one call at a time). */
export async function timeItAsync(
  fn: () => Promise<void>,
  opts: { warmup?: number; iters?: number } = {},
): Promise<number> {
  const { warmup = 2, iters = 5 } = opts;
  for (let i = 0; i < warmup; i++) await fn();
  const times: number[] = [];
  for (let i = 0; i < iters; i++) {
    const t0 = process.hrtime.bigint();
    await fn();
    times.push(Number(process.hrtime.bigint() - t0) / 1e9);
  }
  return median(times);
}

/** The middle value (the upper one of an even count), as every timing here reports. */
export function median(times: number[]): number {
  return [...times].sort((a, b) => a - b)[Math.floor(times.length / 2)]!;
}

/** The Python with PyTorch installed (Debian's python3-torch lives under /usr/bin/python3), or null. */
export function findTorchPython(): string | null {
  for (const py of [process.env.OUS_BENCH_PYTHON, '/usr/bin/python3', 'python3'].filter(Boolean) as string[]) {
    const r = spawnSync(py, ['-c', 'import torch'], { stdio: 'ignore' });
    if (r.status === 0) return py;
  }
  return null;
}

/**
 * A long-lived `python3 bench/reference.py` that answers one JSON line per request:
 * {"workload": name, "args": {...}, "iters": n, "warmup": w} -> {"seconds": median}.
 */
export class TorchReference {
  private readonly proc: ChildProcessWithoutNullStreams;
  private readonly lines: Interface;
  private readonly pending: Array<(line: string) => void> = [];

  private constructor(python: string, threads: number) {
    this.proc = spawn(python, [path.join(packageRoot(), 'bench', 'reference.py'), String(threads)], {
      // The same runtime settings our addon applies to itself (ARCHITECTURE.md), so the ratio
      // measures the binding, not the allocator or OpenMP spin policy: the OpenMP ones are in
      // process.env since the addon loaded (`threads` came from it), the malloc ones are mallopt's.
      env: {
        ...process.env,
        GLIBC_TUNABLES: 'glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=1073741824',
      },
    });
    this.proc.stderr.on('data', (d: Buffer) => process.stderr.write(`[pytorch] ${d}`));
    this.lines = createInterface({ input: this.proc.stdout });
    this.lines.on('line', (line) => this.pending.shift()?.(line));
  }

  static start(threads: number): TorchReference | null {
    const py = findTorchPython();
    return py ? new TorchReference(py, threads) : null;
  }

  run(workload: string, args: Record<string, unknown>, iters: number, warmup = 5): Promise<number> {
    return this.request(workload, { workload, args, iters, warmup }).then((r) => r.seconds!);
  }

  /** Writes the workload's model to `file` as ONNX (torch.onnx.export), for onnxruntime's column. */
  async exportOnnx(workload: string, args: Record<string, unknown>, file: string): Promise<void> {
    await this.request(workload, { export: workload, path: file, args });
  }

  private request(workload: string, req: Record<string, unknown>): Promise<{ seconds?: number; path?: string }> {
    return new Promise((resolve, reject) => {
      this.pending.push((line) => {
        const r = JSON.parse(line) as { seconds?: number; path?: string; error?: string };
        if (r.error !== undefined) reject(new Error(`pytorch ${workload}: ${r.error}`));
        else resolve(r);
      });
      this.proc.stdin.write(JSON.stringify(req) + '\n');
    });
  }

  close(): void {
    this.proc.stdin.end();
  }
}

/**
 * onnxruntime-node (an optional dependency; may be absent) running an ONNX file on
 * the CPU with the same thread count: the reference for the frozen encoder.
 */
export class OnnxReference {
  private constructor(
    private readonly ort: typeof import('onnxruntime-node'),
    private readonly threads: number,
  ) {}

  static async load(threads: number): Promise<OnnxReference | null> {
    try {
      return new OnnxReference(await import('onnxruntime-node'), threads);
    } catch {
      return null;
    }
  }

  /**
   * `file` loaded once, fed a random float32 input of `dims`: `time()` gives the median seconds
   * of one run after warm-up, as often as asked; `release()` frees it.
   */
  async open(
    file: string,
    input: string,
    dims: number[],
  ): Promise<{ time(opts?: { warmup?: number; iters?: number }): Promise<number>; release(): Promise<void> }> {
    const session = await this.ort.InferenceSession.create(file, {
      intraOpNumThreads: this.threads,
      interOpNumThreads: 1,
      graphOptimizationLevel: 'all',
      executionProviders: ['cpu'],
    });
    const n = dims.reduce((a, b) => a * b, 1);
    const feeds = {
      [input]: new this.ort.Tensor(
        'float32',
        Float32Array.from({ length: n }, () => Math.random() * 2 - 1),
        dims,
      ),
    };
    return {
      time: (opts) => timeItAsync(async () => void (await session.run(feeds)), opts),
      release: () => session.release(),
    };
  }
}

export interface Row {
  name: string;
  ours: number; // seconds per iteration
  torch: number | null;
  onnx?: number | null; // onnxruntime, where the suite measures it
  unit?: { label: string; perIter: number }; // e.g. GFLOP/s: perIter = GFLOP per iteration
  rounds?: { torch?: number[]; onnx?: number[] }; // the reference's time / ours in each round, the two run back to back
}

export function printTable(title: string, rows: Row[]): void {
  const rate = (x: number) => x.toFixed(x < 10 ? 2 : 1); // 0.76 img/s, not 0.8
  const fmt = (s: number | null | undefined, r: Row) =>
    s == null ? '-' : `${(s * 1e3).toFixed(2)} ms${r.unit ? ` (${rate(r.unit.perIter / s)} ${r.unit.label})` : ''}`;
  const ratio = (ref: number | null | undefined, r: Row) => (ref == null ? '-' : `${(ref / r.ours).toFixed(3)}`);
  // With several rounds: the median of the rounds' ratios and their range, which says how far one
  // run of the row can be trusted on a machine whose speed drifts.
  // (the mean of the two middle ones for an even count: median()'s upper one would be the better round)
  const middle = (xs: number[]) => {
    const s = [...xs].sort((a, b) => a - b);
    const h = s.length >> 1;
    return s.length % 2 ? s[h]! : (s[h - 1]! + s[h]!) / 2;
  };
  const vs = (ref: number | null | undefined, rounds: number[] | undefined, r: Row) =>
    ref != null && rounds && rounds.length > 1
      ? `${middle(rounds).toFixed(3)} (${Math.min(...rounds).toFixed(2)}–${Math.max(...rounds).toFixed(2)})`
      : ratio(ref, r);
  const withOnnx = rows.some((r) => r.onnx !== undefined);
  const lines = rows.map((r) => [
    r.name,
    fmt(r.ours, r),
    fmt(r.torch, r),
    vs(r.torch, r.rounds?.torch, r),
    ...(withOnnx ? [fmt(r.onnx, r), vs(r.onnx, r.rounds?.onnx, r)] : []),
  ]);
  const head = [
    'workload',
    'ous (TypeScript)',
    'PyTorch (Python)',
    'speed vs PyTorch',
    ...(withOnnx ? ['onnxruntime-node', 'speed vs onnxruntime'] : []),
  ];
  const widths = head.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
  const row = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ');
  console.log(`\n${title}\n${row(head)}\n${widths.map((w) => '-'.repeat(w)).join('  ')}`);
  for (const l of lines) console.log(row(l));
  console.log(`speed vs X = X's time / our time (1.0 = same; above 1 = faster than X)`);
  if (rows.some((r) => (r.rounds?.torch?.length ?? 0) > 1))
    console.log(
      "over several rounds: the median of the rounds' ratios (both sides back to back in each), " +
        "their range in brackets; times are each side's best",
    );
}

/**
 * Alternates our run and a reference's `rounds` times and keeps the best of each, and each round's
 * ratio (reference time / ours, the two back to back: drift over the whole run cancels in it). The
 * order flips every round (ours first, then the reference first), so that neither side always runs
 * right after the other's load: the machine's speed drifts within seconds.
 */
export async function alternate(
  ours: () => number | Promise<number>,
  reference: () => Promise<number>,
  rounds: number,
): Promise<{ ours: number; reference: number; ratios: number[] }> {
  let best = Infinity;
  let bestReference = Infinity;
  const ratios: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const referenceFirst = r % 2 === 1;
    let referenceTime = referenceFirst ? await reference() : NaN;
    const ourTime = await ours();
    if (!referenceFirst) referenceTime = await reference();
    best = Math.min(best, ourTime);
    bestReference = Math.min(bestReference, referenceTime);
    ratios.push(referenceTime / ourTime);
  }
  return { ours: best, reference: bestReference, ratios };
}

/** A row of ours against PyTorch's `workload` (alternate()); ours alone without PyTorch. */
export async function compare(
  name: string,
  ours: () => number | Promise<number>,
  torch: TorchReference | null,
  workload: string,
  args: Record<string, unknown>,
  iters: number,
  rounds = 2,
  torchWarmup?: number,
): Promise<Pick<Row, 'name' | 'ours' | 'torch' | 'rounds'>> {
  if (!torch) {
    let best = Infinity;
    for (let r = 0; r < rounds; r++) best = Math.min(best, await ours());
    return { name, ours: best, torch: null };
  }
  const r = await alternate(ours, () => torch.run(workload, args, iters, torchWarmup), rounds);
  return { name, ours: r.ours, torch: r.reference, rounds: { torch: r.ratios } };
}
