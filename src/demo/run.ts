// `ous demo`: the whole method end to end on the built-in synthetic benchmark. It generates the
// videos, extracts features with the frozen encoder, trains OUS and the face-only baseline, evaluates
// both on the test split, and writes the report. No network, no input. With several seeds the
// benchmark and its features are made once (from the first seed) and only training repeats, each
// seed training both models: one run is one draw, and the field reports mean ± std over seeds.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { benchmarkClasses, generateBenchmark, type Ceilings, type SyntheticOptions } from '../synthetic/benchmark.js';
import { readManifest, type ClipEntry } from '../data/datasets.js';
import { FrameEncoder, type EnginePreference } from '../clip/frame-encoder.js';
import type { Precision } from '../torch/index.js';
import { extractFeatures } from '../data/extract.js';
import { mergeCache } from '../data/cache.js';
import { evalRun, trainRun, type TrainRunOptions } from '../train/run.js';
import { spreadOf, type Spread } from '../train/metrics.js';
import { packageRoot } from '../util/paths.js';
import { writeFileAtomic } from '../util/fs.js';

export interface DemoOptions {
  out: string;
  quick?: boolean;
  seed?: number;
  agreement?: number; // scene cue agreement (0.9); 0 makes the scene uninformative
  classes?: number; // the benchmark's number of classes (7: DFEW's; up to 11 adds MAFW's others)
  seeds?: number; // training seeds seed, seed+1, ... (1); the benchmark is always seed's
  log?: (line: string) => void;
  progress?: boolean;
  engine?: EnginePreference; // which engine runs CLIP's vision tower ('auto')
}

export interface DemoSize {
  trainPerClass: number;
  testPerClass: number;
  frames: number;
  epochs: number;
}

export const DEMO_SIZES: Record<'quick' | 'full', DemoSize> = {
  quick: { trainPerClass: 32, testPerClass: 30, frames: 8, epochs: 150 },
  full: { trainPerClass: 60, testPerClass: 40, frames: 16, epochs: 150 },
};

/** A model's scores on the demo's test clips (fractions). */
export interface Scores {
  uar: number;
  war: number;
}

/** One training seed: both models trained with it on the same features. */
export interface DemoSeed {
  seed: number;
  ous: Scores;
  faceOnly: Scores;
  runs: { ous: string; faceOnly: string };
}

export interface DemoResult {
  ous: Scores; // the first seed's (the one `--seed` names)
  faceOnly: Scores;
  ceilings: { face: number; faceScene: number };
  runs: { ous: string; faceOnly: string }; // the first seed's
  cache: string;
  benchmark: Ceilings;
  seeds: DemoSeed[];
  /** Over the seeds: each model, and OUS − face only paired by seed. */
  summary: DemoSummary;
  report?: string;
}

export interface DemoSummary {
  ous: { uar: Spread; war: Spread };
  faceOnly: { uar: Spread; war: Spread };
  gap: { uar: Spread; war: Spread };
}

export function demoSummary(seeds: ReadonlyArray<Pick<DemoSeed, 'ous' | 'faceOnly'>>): DemoSummary {
  const of = (f: (s: Pick<DemoSeed, 'ous' | 'faceOnly'>) => Scores) => ({
    uar: spreadOf(seeds.map((s) => f(s).uar)),
    war: spreadOf(seeds.map((s) => f(s).war)),
  });
  return {
    ous: of((s) => s.ous),
    faceOnly: of((s) => s.faceOnly),
    gap: of((s) => ({ uar: s.ous.uar - s.faceOnly.uar, war: s.ous.war - s.faceOnly.war })),
  };
}

/** The encoder of the demo: the dev CLIP shipped in fixtures/ (CLIP's architecture, random weights). */
export function demoEncoderDir(): string {
  return path.join(packageRoot(), 'fixtures', 'clip-dev', 'model');
}

/**
 * How the demo trains: the `demo` preset (src/ous/presets.ts says why each setting), with the
 * epochs of the demo's size. docs/DECISIONS.md, "The demo", has the measurements.
 */
export function demoSettings(size: DemoSize): Pick<TrainRunOptions, 'preset' | 'overrides'> {
  return { preset: 'demo', overrides: { train: { epochs: size.epochs } } };
}

/** The synthetic benchmark a demo of this size draws into `out` (96×72 px clips, one or two persons). */
export function demoBenchmarkOptions(
  out: string,
  size: DemoSize,
  o: { seed: number; agreement: number; classes?: number },
  persons?: 2,
): SyntheticOptions {
  return {
    out,
    seed: o.seed,
    trainPerClass: size.trainPerClass,
    testPerClass: size.testPerClass,
    frames: size.frames,
    width: 96,
    height: 72,
    agreement: o.agreement,
    classes: o.classes,
    ...(persons ? { persons } : {}),
  };
}

/**
 * The benchmark and its feature cache in `o.out` (made once; a second call in the same folder reuses
 * them). `engine` runs CLIP's tower (default: chosen as extraction does), into the folder `cacheName`.
 */
export async function prepareDemo(
  o: DemoOptions,
  size: DemoSize,
  extract: { engine?: EnginePreference; precision?: Precision; cacheName?: string } = {},
): Promise<{ cache: string; bench: Awaited<ReturnType<typeof generateBenchmark>> }> {
  const log = o.log ?? ((l: string) => process.stderr.write(l + '\n'));
  const seed = o.seed ?? 0;
  const agreement = o.agreement ?? 0.9;
  fs.mkdirSync(o.out, { recursive: true });
  log(
    `demo: generating the synthetic benchmark (${size.trainPerClass}+${size.testPerClass} clips per class, scene ` +
      `agreement ${agreement}, seed ${seed})`,
  );
  const bench = await generateBenchmark(
    demoBenchmarkOptions(path.join(o.out, 'benchmark'), size, { seed, agreement, classes: o.classes }),
    { progress: o.progress },
  );
  log('demo: extracting features with the frozen encoder (CLIP architecture, random weights)');
  const classes = benchmarkClasses(o.classes);
  const { entries, failed } = readManifest(bench.manifest, undefined, classes.classNames);
  if (failed.length) throw new Error(`the generated manifest has bad rows: ${failed.map((f) => f.error).join('; ')}`);
  const cache = path.join(o.out, extract.cacheName ?? 'cache');
  await extractDemoCache(entries, classes, size, cache, {
    engine: extract.engine ?? o.engine,
    precision: extract.precision,
    progress: o.progress,
  });
  return { cache, bench };
}

/** The features of a demo benchmark's clips (one row each, or one per person) into the cache `out`, merged. */
export async function extractDemoCache(
  entries: ClipEntry[],
  classes: ReturnType<typeof benchmarkClasses>,
  size: DemoSize,
  out: string,
  o: { engine?: EnginePreference; precision?: Precision; progress?: boolean },
): Promise<void> {
  const encoder = FrameEncoder.load(demoEncoderDir(), { engine: o.engine, precision: o.precision });
  await extractFeatures({
    entries,
    encoder,
    out,
    progress: o.progress,
    info: {
      clip: { path: demoEncoderDir(), hash: encoder.hash },
      frames: size.frames,
      scene: 'mask',
      views: 1,
      polarityLayer: 4,
      dataset: 'synthetic',
      ...classes,
    },
  });
  mergeCache(out);
}

/**
 * Trains OUS and the face-only baseline on the demo's features with one seed, into runsDir/ous and
 * runsDir/face-only (the demo's own outputs: trained again if there); `about` ends each log line.
 */
export async function trainDemoRuns(
  cache: string,
  runsDir: string,
  size: DemoSize,
  seed: number,
  log: (line: string) => void,
  about: string,
): Promise<{ ous: string; faceOnly: string }> {
  const runs = { ous: path.join(runsDir, 'ous'), faceOnly: path.join(runsDir, 'face-only') };
  const quiet = (name: string) => (l: string) => log(`  ${name}: ${l}`);
  const common = { cache, ...demoSettings(size), seed, force: true };
  log(`demo: training OUS ${about}`);
  await trainRun({ ...common, out: runs.ous, log: quiet('ous') });
  log(`demo: training the face-only baseline ${about}`);
  await trainRun({ ...common, out: runs.faceOnly, model: 'face-only', log: quiet('face-only') });
  return runs;
}

/** Trains OUS and the face-only baseline with one seed on the demo's features and scores both on the test split. */
export async function trainDemoSeed(
  cache: string,
  runsDir: string,
  size: DemoSize,
  seed: number,
  log: (line: string) => void,
): Promise<DemoSeed> {
  const runs = await trainDemoRuns(cache, runsDir, size, seed, log, `(seed ${seed})`);
  const a = evalRun(runs.ous);
  const b = evalRun(runs.faceOnly);
  return { seed, ous: { uar: a.uar, war: a.war }, faceOnly: { uar: b.uar, war: b.war }, runs };
}

export async function runDemo(
  o: DemoOptions,
  size: DemoSize = o.quick ? DEMO_SIZES.quick : DEMO_SIZES.full,
): Promise<DemoResult> {
  const log = o.log ?? ((l: string) => process.stderr.write(l + '\n'));
  const seed = o.seed ?? 0;
  const n = o.seeds ?? 1;
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`runDemo: seeds must be a positive integer, not ${n}`);
  const { cache, bench } = await prepareDemo(o, size);
  const seeds: DemoSeed[] = [];
  // The first seed's runs keep their one-seed place (runs/ous), so predict and serve find them there.
  for (let k = 0; k < n; k++)
    seeds.push(
      await trainDemoSeed(
        cache,
        k === 0 ? path.join(o.out, 'runs') : path.join(o.out, 'runs', `seed-${seed + k}`),
        size,
        seed + k,
        log,
      ),
    );
  const first = seeds[0]!;
  const result: DemoResult = {
    ous: first.ous,
    faceOnly: first.faceOnly,
    ceilings: { face: bench.ceilings.face.uar, faceScene: bench.ceilings.faceScene.uar },
    runs: first.runs,
    cache,
    benchmark: bench.ceilings,
    seeds,
    summary: demoSummary(seeds),
  };
  writeFileAtomic(
    path.join(o.out, 'demo.json'),
    JSON.stringify({ ...result, options: { ...o, log: undefined }, size }, null, 2) + '\n',
  );
  return result;
}
