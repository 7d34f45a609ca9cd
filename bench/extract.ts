// Extraction benchmark: clips/s of `ous extract` with CLIP-shaped encoders (random weights) on CPU,
// T = 16, face and scene streams, and each stage's seconds. ViT-B/32: the reference extractor ("old":
// face-api on tfjs, one clip at a time, libtorch's tower) and ours ("new": SSD on libtorch, one
// decode per clip, pipelined, the default engine for the tower: onnxruntime where installed)
// alternate in one run, with ours on libtorch's tower beside them; ViT-L/14 (not with --quick): ours.
// With the time DFEW would take.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { getNumThreads, manualSeed } from '../src/torch/index.js';
import { CLIP_SHAPES, clipConfigFor } from '../src/clip/config.js';
import { ClipModel } from '../src/clip/model.js';
import { CLIP_MEAN, CLIP_STD, ClipImageProcessor } from '../src/clip/image-processor.js';
import { FrameEncoder, chooseEngine, type Engine, type EnginePreference } from '../src/clip/frame-encoder.js';
import { extractFeatures, type ExtractOptions, type ExtractSummary } from '../src/data/extract.js';
import { resolveOusConfig } from '../src/ous/config.js';
import { packageRoot } from '../src/util/paths.js';
import type { DetectorEngine } from '../src/face/detector.js';
import { faceApiTfjs } from '../test/reference/face-api.js';

const DFEW_CLIPS = 16372; // every clip of DFEW (each fold's extraction covers them all)

type Variant = { name: string; detector?: DetectorEngine; pipeline: ExtractOptions['pipeline']; engine: Engine };
const OLD: Variant = {
  name: "old: face-api on tfjs, one clip at a time, libtorch's tower",
  detector: faceApiTfjs,
  pipeline: false,
  engine: 'libtorch',
};

export async function benchExtract(quick: boolean, prefer: EnginePreference = 'auto'): Promise<void> {
  manualSeed(0);
  // the tower's default engine, decided here rather than when every bench module is imported
  const engine = chooseEngine('cpu', 'fp32', prefer);
  const NEW: Variant = {
    name: `new: SSD on libtorch, one decode per clip, pipeline, tower on ${engine}`,
    pipeline: {},
    engine,
  };
  const NEW_LIBTORCH: Variant = { ...NEW, name: "new, libtorch's tower", engine: 'libtorch' };
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
  const run = async (model: ClipModel, v: Variant, only = entries): Promise<ExtractSummary> => {
    const encoder = encoderFor(model, v.engine);
    return extractFeatures({
      entries: only,
      encoder,
      out: path.join(dir, `cache${runNo++}`),
      progress: false,
      detector: v.detector,
      pipeline: v.pipeline,
      info: {
        clip: { path: 'random', hash: encoder.hash },
        frames: 16,
        scene: 'mask',
        views: 1,
        polarityLayer: 4,
        dataset: 'manifest',
        classNames: ous.classNames,
        polarityOfClass: ous.polarityOfClass,
      },
    });
  };
  const line = (v: Variant, s: ExtractSummary) => {
    const sec = s.seconds;
    console.log(
      `  ${v.name}: ${s.clipsPerSecond.toFixed(3)} clips/s (${(sec.total / s.done).toFixed(1)} s a clip; ` +
        `decode ${sec.decode.toFixed(1)} s, detect ${sec.detect.toFixed(1)} s, ` +
        `encode ${sec.encode.toFixed(1)} s; DFEW ${(DFEW_CLIPS / s.clipsPerSecond / 3600).toFixed(1)} h)`,
    );
  };
  const modelFor = (shape: keyof typeof CLIP_SHAPES) =>
    new ClipModel(clipConfigFor(CLIP_SHAPES[shape])).eval().requiresGrad_(false);
  const encoders = new Map<string, FrameEncoder>(); // one per model and engine (onnxruntime's session is made once)
  const encoderFor = (model: ClipModel, e: Engine) => {
    const key = `${model.config.vision_config.hidden_size}-${e}`;
    if (!encoders.has(key))
      encoders.set(
        key,
        FrameEncoder.fromModel(
          model,
          new ClipImageProcessor({ size: 224, mean: CLIP_MEAN, std: CLIP_STD }),
          `random-${key}`,
          { engine: e },
        ),
      );
    return encoders.get(key)!;
  };
  console.log(
    `\nExtraction on CPU (${os.cpus()[0]?.model}, ${getNumThreads()} threads), ` +
      `T = 16 (32 frames a clip), ${clips} clips of 3 s 360x288, random-weight encoders`,
  );
  const b32 = modelFor('ViT-B/32');
  // loads both detectors' weights and warms the encoders
  for (const v of new Set([NEW, NEW_LIBTORCH, OLD])) await run(b32, v, entries.slice(0, 1));
  // old and new back to back, so that a noisy neighbour slows both alike
  const [old, now] = [await run(b32, OLD), await run(b32, NEW)];
  const nowLibtorch = engine === 'libtorch' ? null : await run(b32, NEW_LIBTORCH);
  console.log('ViT-B/32:');
  line(OLD, old);
  line(NEW, now);
  if (nowLibtorch) line(NEW_LIBTORCH, nowLibtorch);
  console.log(
    `  speed-up: ${(now.clipsPerSecond / old.clipsPerSecond).toFixed(2)}x` +
      (nowLibtorch ? ` (${(nowLibtorch.clipsPerSecond / old.clipsPerSecond).toFixed(2)}x with libtorch's tower)` : ''),
  );
  if (!quick) {
    console.log('ViT-L/14:');
    const l14 = modelFor('ViT-L/14');
    await run(l14, NEW, entries.slice(0, 1));
    line(NEW, await run(l14, NEW));
  }
  for (const e of encoders.values()) await e.release();
  fs.rmSync(dir, { recursive: true, force: true });
}
