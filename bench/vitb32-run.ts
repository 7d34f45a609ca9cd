// A run at the ViT-B/32 shape for the benchmarks that time inference: a CLIP folder with random
// weights (the dev tokenizer, 224 px preprocessing), a small cache of cuts of the talking-face clip
// and a head trained one epoch on it. The weights are meaningless; the shapes and the work are real.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { manualSeed } from '../src/torch/index.js';
import { CLIP_SHAPES, clipConfigFor } from '../src/clip/config.js';
import { ClipModel } from '../src/clip/model.js';
import { saveClip } from '../src/clip/load.js';
import { FrameEncoder, type EnginePreference } from '../src/clip/frame-encoder.js';
import { extractFeatures } from '../src/data/extract.js';
import { mergeCache } from '../src/data/cache.js';
import { resolveOusConfig } from '../src/ous/config.js';
import { trainRun } from '../src/train/run.js';
import { packageRoot } from '../src/util/paths.js';

export interface BenchRun {
  run: string;
  clipDir: string;
  clip: string; // the 4 s 640×360 clip with one face the cache was made from
  faceBox: [number, number, number, number]; // where its face is, in its pixels
}

/** The run; with `devClip`, on the dev CLIP (fixtures/clip-dev) instead of a random ViT-B/32. */
export async function vitB32Run(dir: string, engine: EnginePreference = 'auto', devClip = false): Promise<BenchRun> {
  manualSeed(0);
  fs.mkdirSync(dir, { recursive: true });
  const dev = path.join(packageRoot(), 'fixtures', 'clip-dev', 'model');
  const clipDir = devClip ? dev : path.join(dir, 'clip');
  if (!devClip) {
    saveClip(new ClipModel(clipConfigFor(CLIP_SHAPES['ViT-B/32'])).eval(), clipDir, { filesFrom: dev });
    const pre = JSON.parse(fs.readFileSync(path.join(dev, 'preprocessor_config.json'), 'utf8'));
    fs.writeFileSync(
      path.join(clipDir, 'preprocessor_config.json'),
      JSON.stringify({ ...pre, crop_size: { height: 224, width: 224 }, size: { shortest_edge: 224 } }),
    );
  }
  const src = path.join(packageRoot(), 'fixtures', 'media', 'franck_0-6s.mp4');
  const clip = path.join(dir, 'clip4s.mp4');
  execFileSync('ffmpeg', ['-v', 'error', '-y', '-i', src, '-t', '4', '-vf', 'scale=-2:360', '-c:v', 'libx264', clip]);
  const encoder = FrameEncoder.load(clipDir, { engine });
  const ous = resolveOusConfig({});
  const faceBox: BenchRun['faceBox'] = [200, 40, 200, 200];
  const entries = Array.from({ length: 8 }, (_, i) => ({
    id: `c${i}`,
    source: clip,
    label: i % 2,
    split: 'train' as const,
    faceBox,
  }));
  const cache = path.join(dir, 'cache');
  await extractFeatures({
    entries,
    encoder,
    out: cache,
    progress: false,
    info: {
      clip: { path: clipDir, hash: encoder.hash },
      frames: 16,
      scene: 'mask',
      views: 1,
      polarityLayer: 4,
      dataset: 'manifest',
      classNames: ous.classNames,
      polarityOfClass: ous.polarityOfClass,
    },
  });
  mergeCache(cache);
  const run = path.join(dir, 'run');
  await trainRun({
    cache,
    out: run,
    overrides: { ous: { promptLength: 16 }, train: { epochs: 1, valFraction: 0.5 } },
    log: () => {},
  });
  return { run, clipDir, clip, faceBox };
}
