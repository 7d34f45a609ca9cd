// A tiny trained run for the serve, predict and report tests: a few synthetic clips, the dev CLIP, one
// epoch of a small head (seconds on 2 cores). The weights are near random; the tests check the
// plumbing and the numbers' consistency, not accuracy.
import * as path from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { generateBenchmark, type SyntheticClip } from '../src/synthetic/benchmark.js';
import { readManifest } from '../src/data/datasets.js';
import { FrameEncoder } from '../src/clip/frame-encoder.js';
import { extractFeatures } from '../src/data/extract.js';
import { mergeCache } from '../src/data/cache.js';
import { resolveOusConfig } from '../src/ous/config.js';
import { trainRun } from '../src/train/run.js';
import { demoEncoderDir } from '../src/demo/run.js';

export interface TinyRun {
  run: string;
  clip: string;
  clips: SyntheticClip[];
}

export interface TinyRunOptions {
  frames?: number; // per clip, at 8 fps (16 = 2 s)
  seed?: number; // the benchmark's (5)
  perClass?: number; // clips per class (2), all in the train split but those in `test`
  size?: [number, number]; // [width, height] (96 × 72)
  test?: number[]; // clips (by index) moved to the test split (none)
  name?: string; // the run's folder under `dir` ('run')
}

/** Synthetic clips, a 4-frame cache of them, and a run trained one epoch on it, all under `dir`. */
export async function tinyRun(dir: string, o: TinyRunOptions = {}): Promise<TinyRun> {
  const [width, height] = o.size ?? [96, 72];
  const bench = await generateBenchmark(
    {
      out: path.join(dir, 'bench'),
      seed: o.seed ?? 5,
      trainPerClass: o.perClass ?? 2,
      testPerClass: 0,
      frames: o.frames ?? 16,
      width,
      height,
      agreement: 0.9,
    },
    { progress: false },
  );
  const entries = readManifest(bench.manifest).entries.map((e, i) =>
    o.test?.includes(i) ? { ...e, split: 'test' as const } : e,
  );
  const encoder = FrameEncoder.load(demoEncoderDir());
  const ous = resolveOusConfig({});
  const cache = path.join(dir, 'cache');
  await extractFeatures({
    entries,
    encoder,
    out: cache,
    progress: false,
    info: {
      clip: { path: demoEncoderDir(), hash: encoder.hash },
      frames: 4,
      scene: 'mask',
      views: 1,
      polarityLayer: 4,
      dataset: 'synthetic',
      classNames: ous.classNames,
      polarityOfClass: ous.polarityOfClass,
    },
  });
  mergeCache(cache);
  const run = path.join(dir, o.name ?? 'run');
  await trainRun({
    cache,
    out: run,
    overrides: {
      ous: { tfeLayers: 1, tfeQueries: 4, heads: 4, promptLength: 4 },
      train: { epochs: 1, valFraction: 0.5 },
    },
    log: () => {},
  });
  return { run, clip: demoEncoderDir(), clips: bench.clips };
}

/**
 * Debian's Chromium, headless, through playwright-core (no browser is downloaded; CHROMIUM overrides the
 * path), with `extraArgs` after the usual ones (a fake camera).
 */
export function launchChromium(extraArgs: string[] = []): Promise<Browser> {
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      ...extraArgs,
    ],
  });
}
