// `ous demo`: the whole method end to end on the built-in synthetic benchmark. It generates the
// videos, extracts features with the frozen encoder, trains OUS and the face-only baseline, evaluates
// both on the test split, and writes the report. No network, no input.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { benchmarkClasses, generateBenchmark, type Ceilings } from '../synthetic/benchmark.js';
import { readManifest } from '../data/datasets.js';
import { FrameEncoder, type EnginePreference } from '../data/encoder.js';
import { extractFeatures } from '../data/extract.js';
import { mergeCache } from '../data/cache.js';
import { evalRun, trainRun, type ConfigOverrides } from '../train/run.js';
import { packageRoot } from '../util/paths.js';
import { writeFileAtomic } from '../util/fs.js';

export interface DemoOptions {
  out: string;
  quick?: boolean;
  seed?: number;
  agreement?: number; // scene cue agreement (0.9); 0 makes the scene uninformative
  classes?: number; // the benchmark's number of classes (7: DFEW's; up to 11 adds MAFW's others)
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
  quick: { trainPerClass: 32, testPerClass: 10, frames: 8, epochs: 100 },
  full: { trainPerClass: 60, testPerClass: 20, frames: 16, epochs: 150 },
};

export interface DemoResult {
  ous: { uar: number; war: number };
  faceOnly: { uar: number; war: number };
  ceilings: { face: number; faceScene: number };
  runs: { ous: string; faceOnly: string };
  cache: string;
  benchmark: Ceilings;
  report?: string;
}

/** The encoder of the demo: the dev CLIP shipped in fixtures/ (CLIP's architecture, random weights). */
export function demoEncoderDir(): string {
  return path.join(packageRoot(), 'fixtures', 'clip-dev', 'model');
}

/** The head and training settings of the demo: small, so that it trains in a minute on 2 cores. */
export function demoSettings(size: DemoSize): ConfigOverrides {
  return { ous: { tfeLayers: 2, tfeQueries: 8, heads: 4, promptLength: 8 }, train: { epochs: size.epochs, plateauPatience: 10 } };
}

export async function runDemo(o: DemoOptions, size: DemoSize = o.quick ? DEMO_SIZES.quick : DEMO_SIZES.full): Promise<DemoResult> {
  const log = o.log ?? ((l: string) => process.stderr.write(l + '\n'));
  const seed = o.seed ?? 0;
  const agreement = o.agreement ?? 0.9;
  fs.mkdirSync(o.out, { recursive: true });
  log(`demo: generating the synthetic benchmark (${size.trainPerClass}+${size.testPerClass} clips per class, scene agreement ${agreement}, seed ${seed})`);
  const bench = await generateBenchmark(
    { out: path.join(o.out, 'benchmark'), seed, trainPerClass: size.trainPerClass, testPerClass: size.testPerClass, frames: size.frames, width: 96, height: 72, agreement, classes: o.classes },
    { progress: o.progress },
  );
  log('demo: extracting features with the frozen encoder (CLIP architecture, random weights)');
  const classes = benchmarkClasses(o.classes);
  const { entries, failed } = readManifest(bench.manifest, undefined, classes.classNames);
  if (failed.length) throw new Error(`the generated manifest has bad rows: ${failed.map((f) => f.error).join('; ')}`);
  const encoder = FrameEncoder.load(demoEncoderDir(), { engine: o.engine });
  const cache = path.join(o.out, 'cache');
  await extractFeatures({
    entries,
    encoder,
    out: cache,
    progress: o.progress,
    info: { clip: { path: demoEncoderDir(), hash: encoder.hash }, frames: size.frames, scene: 'mask', views: 1, polarityLayer: 4, dataset: 'synthetic', ...classes },
  });
  mergeCache(cache);
  const runs = { ous: path.join(o.out, 'runs', 'ous'), faceOnly: path.join(o.out, 'runs', 'face-only') };
  const quiet = (name: string) => (l: string) => log(`  ${name}: ${l}`);
  // The demo's runs are its own outputs: a second demo in the same folder trains them again (force).
  log('demo: training OUS');
  await trainRun({ cache, out: runs.ous, overrides: demoSettings(size), seed, force: true, log: quiet('ous') });
  log('demo: training the face-only baseline');
  await trainRun({ cache, out: runs.faceOnly, overrides: demoSettings(size), model: 'face-only', seed, force: true, log: quiet('face-only') });
  const a = evalRun(runs.ous);
  const b = evalRun(runs.faceOnly);
  const result: DemoResult = {
    ous: { uar: a.uar, war: a.war },
    faceOnly: { uar: b.uar, war: b.war },
    ceilings: { face: bench.ceilings.face.uar, faceScene: bench.ceilings.faceScene.uar },
    runs,
    cache,
    benchmark: bench.ceilings,
  };
  writeFileAtomic(path.join(o.out, 'demo.json'), JSON.stringify({ ...result, options: { ...o, log: undefined }, size }, null, 2) + '\n');
  return result;
}
