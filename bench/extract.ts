// Extraction benchmark: clips/s of `ous extract` with a ViT-B/32-shaped encoder (random weights) on
// CPU, T = 16, face and scene streams, and the share of time in decoding, detection and encoding.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { manualSeed } from '../src/torch/index.js';
import { CLIP_SHAPES, clipConfigFor } from '../src/clip/config.js';
import { ClipModel } from '../src/clip/model.js';
import { CLIP_MEAN, CLIP_STD, ClipImageProcessor } from '../src/clip/image-processor.js';
import { FrameEncoder } from '../src/data/encoder.js';
import { extractFeatures } from '../src/data/extract.js';
import { resolveOusConfig } from '../src/ous/config.js';
import { packageRoot } from '../src/util/paths.js';

export async function benchExtract(quick: boolean): Promise<void> {
  manualSeed(0);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ous-bench-extract-'));
  const clips = quick ? 1 : 3;
  const src = path.join(packageRoot(), 'fixtures', 'media', 'franck_0-6s.mp4');
  const entries = Array.from({ length: clips }, (_, i) => {
    const file = path.join(dir, `clip${i}.mp4`);
    execFileSync('ffmpeg', ['-v', 'error', '-y', '-ss', String(i), '-i', src, '-t', '3', '-c:v', 'libx264', file]);
    return { id: `clip${i}`, source: file, label: i % 7, split: 'test' as const };
  });
  const model = new ClipModel(clipConfigFor(CLIP_SHAPES['ViT-B/32'])).eval().requiresGrad_(false);
  const encoder = FrameEncoder.fromModel(model, new ClipImageProcessor({ size: 224, mean: CLIP_MEAN, std: CLIP_STD }), 'random-vit-b32');
  const ous = resolveOusConfig({});
  const t0 = process.hrtime.bigint();
  const s = await extractFeatures({
    entries, encoder, out: path.join(dir, 'cache'), progress: false,
    info: { clip: { path: 'random ViT-B/32', hash: encoder.hash }, frames: 16, scene: 'mask', views: 1, polarityLayer: 4, dataset: 'manifest', classNames: ous.classNames, polarityOfClass: ous.polarityOfClass },
  });
  const total = Number(process.hrtime.bigint() - t0) / 1e9;
  const parts = s.seconds.decode + s.seconds.detect + s.seconds.encode;
  const pct = (v: number) => `${((100 * v) / parts).toFixed(0)}%`;
  console.log(`\nExtraction, ViT-B/32-shaped encoder on CPU, T = 16 (32 frames a clip), ${clips} clip(s) of 3 s 360x288`);
  console.log(`${(s.done / total).toFixed(3)} clips/s (${(total / s.done).toFixed(1)} s a clip): decode ${pct(s.seconds.decode)}, detect ${pct(s.seconds.detect)}, encode ${pct(s.seconds.encode)}`);
  fs.rmSync(dir, { recursive: true, force: true });
}
