// The demo over seeds (a benchmark, not a test: minutes of training): `ous demo --quick`'s benchmark
// made once, its features extracted twice (CLIP's tower on onnxruntime and on libtorch: the same
// float32 model, features that differ only in rounding), then OUS and the face-only baseline trained
// with each seed on each. Prints each seed's test UAR, the gap's distribution, each seed's difference
// between the two engines, and whether the demo meets its bar: gap ≥ 15 points in ≥ 9 of 10 seeds,
// OUS std ≤ 5, the engines within 3 points in ≥ 8 of 10.
// OUS_BENCH_SEEDS: how many seeds (10; --quick: 3); OUS_BENCH_SEED: the first (0), also the benchmark's.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { getNumThreads } from '../src/torch/index.js';
import { onnxRuntime } from '../src/torch/onnxruntime.js';
import { DEMO_SIZES, demoSummary, prepareDemo, trainDemoSeed, type DemoSeed } from '../src/demo/run.js';
import { formatSpread, spreadOf } from '../src/train/metrics.js';
import type { Engine } from '../src/clip/frame-encoder.js';

export async function benchDemoSeeds(quick: boolean): Promise<void> {
  const n = Number(process.env.OUS_BENCH_SEEDS ?? (quick ? 3 : 10));
  const first = Number(process.env.OUS_BENCH_SEED ?? 0);
  if (!Number.isInteger(n) || n < 1 || !Number.isInteger(first) || first < 0)
    throw new Error(
      `OUS_BENCH_SEEDS (${process.env.OUS_BENCH_SEEDS}) and OUS_BENCH_SEED (${process.env.OUS_BENCH_SEED}) must be ` +
        `integers, ≥ 1 and ≥ 0`,
    );
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ous-bench-demo-seeds-'));
  const size = DEMO_SIZES.quick;
  // Without onnxruntime-node there is one engine: the table has no second column then.
  const engines: Engine[] = onnxRuntime('auto').ort ? ['onnxruntime', 'libtorch'] : ['libtorch'];
  const log = () => {};
  const bySeed = new Map<Engine, DemoSeed[]>();
  const t0 = Date.now();
  for (const engine of engines) {
    const { cache } = await prepareDemo({ out: dir, seed: first, quick: true, log, progress: false }, size, {
      engine,
      cacheName: `cache-${engine}`,
    });
    const rows: DemoSeed[] = [];
    for (let s = first; s < first + n; s++) {
      rows.push(await trainDemoSeed(cache, path.join(dir, 'runs', engine, `seed-${s}`), size, s, log));
      process.stderr.write(
        `  ${engine} seed ${s}: OUS ${(100 * rows.at(-1)!.ous.uar).toFixed(1)}, face only ` +
          `${(100 * rows.at(-1)!.faceOnly.uar).toFixed(1)} (${((Date.now() - t0) / 1000).toFixed(0)} s)\n`,
      );
    }
    bySeed.set(engine, rows);
  }
  const p = (v: number) => (100 * v).toFixed(1);
  const [a, b] = engines;
  const A = bySeed.get(a!)!;
  const B = b ? bySeed.get(b)! : undefined;
  console.log(
    `\n## ous demo --quick over ${n} seeds (${first}..${first + n - 1}; benchmark: seed ${first}), test UAR (%), ` +
      `${getNumThreads()} threads, ${((Date.now() - t0) / 60000).toFixed(1)} min`,
  );
  const head = [
    'seed',
    `OUS (${a})`,
    'face only',
    'gap',
    ...(B ? [`OUS (${b})`, 'face only', 'gap', `OUS ${b} − ${a}`] : []),
  ];
  console.log(`| ${head.join(' | ')} |\n|${head.map(() => '---').join('|')}|`);
  A.forEach((r, i) => {
    const o = B?.[i];
    const cells = [
      String(r.seed),
      p(r.ous.uar),
      p(r.faceOnly.uar),
      p(r.ous.uar - r.faceOnly.uar),
      ...(o ? [p(o.ous.uar), p(o.faceOnly.uar), p(o.ous.uar - o.faceOnly.uar), p(o.ous.uar - r.ous.uar)] : []),
    ];
    console.log(`| ${cells.join(' | ')} |`);
  });
  for (const [engine, rows] of bySeed) {
    const s = demoSummary(rows);
    const wide = rows.filter((r) => r.ous.uar - r.faceOnly.uar >= 0.15).length;
    console.log(
      `${engine}: OUS ${formatSpread(s.ous.uar)}; face only ${formatSpread(s.faceOnly.uar)}; gap ` +
        `${formatSpread(s.gap.uar)}; gap ≥ 15 in ${wide}/${n}`,
    );
  }
  if (B) {
    const d = A.map((r, i) => B[i]!.ous.uar - r.ous.uar);
    const dFace = A.map((r, i) => B[i]!.faceOnly.uar - r.faceOnly.uar);
    console.log(
      `${b} − ${a}, per seed: OUS ${formatSpread(spreadOf(d))}, within 3 points in ` +
        `${d.filter((x) => Math.abs(x) <= 0.03 + 1e-9).length}/${n}; face only ${formatSpread(spreadOf(dFace))}, ` +
        `within 3 points in ${dFace.filter((x) => Math.abs(x) <= 0.03 + 1e-9).length}/${n}`,
    );
  }
  fs.rmSync(dir, { recursive: true, force: true });
}
