// Extraction benchmark: clips/s of `ous extract` with CLIP-shaped encoders (random weights) on CPU,
// T = 16, face and scene streams, and each stage's seconds. ViT-B/32: the old extractor (face-api
// on tfjs, one clip at a time) and the new one (SSD on libtorch, one decode per clip, pipeline)
// alternate in one run; ViT-L/14 (not with --quick): the new one. With the time DFEW would take.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { getNumThreads, manualSeed } from '../src/torch/index.js';
import { CLIP_SHAPES, clipConfigFor } from '../src/clip/config.js';
import { ClipModel } from '../src/clip/model.js';
import { CLIP_MEAN, CLIP_STD, ClipImageProcessor } from '../src/clip/image-processor.js';
import { FrameEncoder } from '../src/data/encoder.js';
import { extractFeatures, type ExtractOptions, type ExtractSummary } from '../src/data/extract.js';
import { resolveOusConfig } from '../src/ous/config.js';
import { packageRoot } from '../src/util/paths.js';

const DFEW_CLIPS = 16372; // every clip of DFEW (each fold's extraction covers them all)

type Variant = { name: string; detector: 'tfjs' | 'torch'; pipeline: ExtractOptions['pipeline'] };
const OLD: Variant = { name: 'old: face-api on tfjs, one clip at a time', detector: 'tfjs', pipeline: false };
const NEW: Variant = { name: 'new: SSD on libtorch, one decode per clip, pipeline', detector: 'torch', pipeline: {} };

export async function benchExtract(quick: boolean): Promise<void> {
  manualSeed(0);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ous-bench-extract-'));
  const clips = quick ? 2 : 3;
  const src = path.join(packageRoot(), 'fixtures', 'media', 'franck_0-6s.mp4');
  const entries = Array.from({ length: clips }, (_, i) => {
    const file = path.join(dir, `clip${i}.mp4`);
    execFileSync('ffmpeg', ['-v', 'error', '-y', '-ss', String(i), '-i', src, '-t', '3', '-c:v', 'libx264', file]);
    return { id: `clip${i}`, source: file, label: i % 7, split: 'test' as const };
  });
  const ous = resolveOusConfig({});
  let runNo = 0;
  const run = async (encoder: FrameEncoder, v: Variant, only = entries): Promise<ExtractSummary> => extractFeatures({
    entries: only, encoder, out: path.join(dir, `cache${runNo++}`), progress: false, detector: v.detector, pipeline: v.pipeline,
    info: { clip: { path: 'random', hash: encoder.hash }, frames: 16, scene: 'mask', views: 1, polarityLayer: 4, dataset: 'manifest', classNames: ous.classNames, polarityOfClass: ous.polarityOfClass },
  });
  const line = (v: Variant, s: ExtractSummary) => {
    const sec = s.seconds;
    console.log(`  ${v.name}: ${s.clipsPerSecond.toFixed(3)} clips/s (${(sec.total / s.done).toFixed(1)} s a clip; decode ${sec.decode.toFixed(1)} s, detect ${sec.detect.toFixed(1)} s, encode ${sec.encode.toFixed(1)} s; DFEW ${(DFEW_CLIPS / s.clipsPerSecond / 3600).toFixed(1)} h)`);
  };
  const encoderFor = (shape: keyof typeof CLIP_SHAPES) => {
    const model = new ClipModel(clipConfigFor(CLIP_SHAPES[shape])).eval().requiresGrad_(false);
    return FrameEncoder.fromModel(model, new ClipImageProcessor({ size: 224, mean: CLIP_MEAN, std: CLIP_STD }), `random-${shape}`);
  };
  console.log(`\nExtraction on CPU (${os.cpus()[0]?.model}, ${getNumThreads()} threads), T = 16 (32 frames a clip), ${clips} clips of 3 s 360x288, random-weight encoders`);
  const b32 = encoderFor('ViT-B/32');
  await run(b32, NEW, entries.slice(0, 1)); // loads both detectors' weights and warms the encoder
  await run(b32, OLD, entries.slice(0, 1));
  // old and new back to back, so that a noisy neighbour slows both alike
  const [old, now] = [await run(b32, OLD), await run(b32, NEW)];
  console.log('ViT-B/32:');
  line(OLD, old);
  line(NEW, now);
  console.log(`  speed-up: ${(now.clipsPerSecond / old.clipsPerSecond).toFixed(2)}x`);
  if (!quick) {
    console.log('ViT-L/14:');
    const l14 = encoderFor('ViT-L/14');
    await run(l14, NEW, entries.slice(0, 1));
    line(NEW, await run(l14, NEW));
  }
  fs.rmSync(dir, { recursive: true, force: true });
}
