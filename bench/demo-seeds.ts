// The demo over seeds (a benchmark, not a test: minutes of training): `ous demo --quick`'s benchmark
// made once, its features extracted twice (CLIP's tower on onnxruntime and on libtorch: the same
// float32 model, features that differ only in rounding), then OUS and the face-only baseline trained
// with each seed on each. Prints each seed's test UAR, the gap's distribution, each seed's difference
// between the two engines, and whether the demo meets its bar: gap ≥ 15 points in ≥ 9 of 10 seeds,
// OUS std ≤ 5, the engines within 3 points in ≥ 8 of 10.
// OUS_BENCH_SEEDS: how many seeds (10; --quick: 3); OUS_BENCH_SEED: the first (0), also the benchmark's.
// OUS_BENCH_TOWERS: the two towers compared, `engine[:precision]` (onnxruntime,libtorch); the int8 tower
// against float32: OUS_BENCH_TOWERS=onnxruntime,onnxruntime:int8 (also prints whether int8's mean OUS UAR is
// within one standard deviation of float32's).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { getNumThreads } from '../src/torch/index.js';
import { onnxRuntime } from '../src/torch/onnxruntime.js';
import { DEMO_SIZES, demoSummary, prepareDemo, trainDemoSeed, type DemoSeed } from '../src/demo/run.js';
import { formatSpread, spreadOf } from '../src/train/metrics.js';
import type { Engine } from '../src/clip/frame-encoder.js';
import { PRECISIONS, type Precision } from '../src/torch/index.js';

interface Tower {
  label: string; // 'onnxruntime', 'onnxruntime int8'
  engine: Engine;
  precision: Precision;
}

/** `engine[:precision]` rows of OUS_BENCH_TOWERS. */
function parseTowers(spec: string): Tower[] {
  return spec.split(',').map((row) => {
    const [engine, precision = 'fp32'] = row.trim().split(':');
    if ((engine !== 'onnxruntime' && engine !== 'libtorch') || !PRECISIONS.includes(precision as Precision))
      throw new Error(`OUS_BENCH_TOWERS: '${row}' is not engine[:precision] (onnxruntime|libtorch, fp32|int8|...)`);
    const label = precision === 'fp32' ? engine : `${engine} ${precision}`;
    return { label, engine, precision: precision as Precision };
  });
}

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
  const towers = parseTowers(
    process.env.OUS_BENCH_TOWERS ?? (onnxRuntime('auto').ort ? 'onnxruntime,libtorch' : 'libtorch'),
  );
  const log = () => {};
  const bySeed = new Map<string, DemoSeed[]>();
  const t0 = Date.now();
  for (const [i, tower] of towers.entries()) {
    const { cache } = await prepareDemo({ out: dir, seed: first, quick: true, log, progress: false }, size, {
      engine: tower.engine,
      precision: tower.precision,
      cacheName: `cache-${i}`,
    });
    const rows: DemoSeed[] = [];
    for (let s = first; s < first + n; s++) {
      rows.push(await trainDemoSeed(cache, path.join(dir, 'runs', String(i), `seed-${s}`), size, s, log));
      process.stderr.write(
        `  ${tower.label} seed ${s}: OUS ${(100 * rows.at(-1)!.ous.uar).toFixed(1)}, face only ` +
          `${(100 * rows.at(-1)!.faceOnly.uar).toFixed(1)} (${((Date.now() - t0) / 1000).toFixed(0)} s)\n`,
      );
    }
    bySeed.set(tower.label, rows);
  }
  const p = (v: number) => (100 * v).toFixed(1);
  const [a, b] = towers.map((t) => t.label);
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
  for (const [label, rows] of bySeed) {
    const s = demoSummary(rows);
    const wide = rows.filter((r) => r.ous.uar - r.faceOnly.uar >= 0.15).length;
    console.log(
      `${label}: OUS ${formatSpread(s.ous.uar)}; face only ${formatSpread(s.faceOnly.uar)}; gap ` +
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
    const [sa, sb] = [demoSummary(A).ous.uar, demoSummary(B).ous.uar];
    console.log(
      `mean OUS UAR ${b} ${p(sb.mean)} vs ${a} ${p(sa.mean)} ± ${p(sa.std)}: ` +
        `${Math.abs(sb.mean - sa.mean) <= sa.std ? 'within' : 'NOT within'} one standard deviation of ${a}'s`,
    );
  }
  fs.rmSync(dir, { recursive: true, force: true });
}
