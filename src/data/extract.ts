// Feature extraction: every clip of a data set through the preprocessing block (streams) and the
// frozen encoder, into the feature cache. Resumable (clips already in a part are skipped),
// shardable (clip i belongs to shard i mod N), locked (one extraction per shard of a cache at a
// time), and honest about failures (a clip that fails is recorded with its error and the run goes
// on). Every run writes the data set's current listing: labels and splits come from it, not from
// the parts, so relabelling a clip recomputes nothing.
import type { Split } from './cache.js';
import {
  CacheWriter,
  lockCache,
  readListing,
  writeListing,
  type CacheInfo,
  type ClipRecord,
  type FailedClip,
  type ListedClip,
} from './cache.js';
import type { ClipEntry } from './datasets.js';
import type { FrameEncoder } from '../clip/frame-encoder.js';
import { buildStreamViews, undecodedWarning, type Sampling, type Streams } from '../streams/index.js';
import { flipHorizontal } from '../face/crop.js';
import type { DetectorEngine } from '../face/detector.js';
import { runPipeline, type ViewWork } from './pipeline.js';
import { UserError } from '../util/errors.js';
import { pathKind } from '../util/fs.js';
import { checkBoxInFrame } from '../util/box.js';
import { probeVideo } from '../video/decode.js';
import { tidy, type Tensor } from '../torch/index.js';
import { Progress } from '../util/progress.js';
import { DEFAULT_CROP, RECIPE_VERSION, type Recipe } from '../streams/recipe.js';
import { onInterrupt } from '../util/interrupt.js';

export interface ExtractOptions {
  entries: ClipEntry[];
  encoder: FrameEncoder;
  out: string;
  info: Omit<CacheInfo, 'version' | 'dims'>;
  shard?: { index: number; count: number }; // 1-based I of N
  partSize?: number;
  progress?: boolean;
  /** Clips that failed before extraction (e.g. bad manifest rows), reported with the rest. */
  preFailed?: Array<{ path: string; error: string }>;
  /** Decode and detect `ahead` clips while one is encoded (default 2); false: one clip at a time. */
  pipeline?: { ahead?: number } | false;
  detector?: DetectorEngine; // another face detector implementation (tests, benchmarks); default: SSD on libtorch
  /** Frames of a clip the decoder may fail to deliver before the clip fails (0). */
  allowMissingFrames?: number;
  /** Wait for another extraction of the same shard to finish instead of stopping. */
  wait?: boolean;
  /** Where one-line notes go (a stale lock taken over); stderr by default. */
  log?: (line: string) => void;
}

export interface ExtractSummary {
  done: number; // clips (all their views) extracted in this run
  skipped: number; // already in the cache
  updated: number; // cached clips whose label or split the listing changed (features kept)
  unlisted: number; // cached clips the listing no longer names (left out of the index, kept on disk)
  failed: FailedClip[]; // key: which person, for a video listed once per person
  noFace: string[]; // clips extracted in this run where no face was found in any frame (centre-cropped instead)
  cache: string;
  // per stage (stages may overlap), and wall time
  seconds: { decode: number; detect: number; encode: number; total: number };
  clipsPerSecond: number; // done / total
}

/**
 * The views of a clip: view 0 is the clip as evaluated (test-mode sampling: validation reads it);
 * views 1, 2, ... are train-mode samplings (a random frame per segment, SPEC.md §2; seeded by the
 * view), mirrored when even. Only training clips get more than one view; the trainer draws one of
 * views 1.. per clip per epoch (train/run.ts, splitsOf).
 */
function viewPlan(split: Split, views: number): Array<{ view: number; mode: 'test' | 'train'; flip: boolean }> {
  const n = split === 'train' ? views : 1;
  return Array.from({ length: n }, (_, v) => ({
    view: v,
    mode: v === 0 ? 'test' : 'train',
    flip: v > 0 && v % 2 === 0,
  }));
}

// A test-mode sampling draws nothing at random: every test view shares one.
const samplingKey = (v: { view: number; mode: 'test' | 'train' }) => (v.mode === 'test' ? 'test' : `train:${v.view}`);

function uniqueSamplings(
  views: Array<{ view: number; mode: 'test' | 'train' }>,
): Array<{ key: string; sampling: Sampling }> {
  const out = new Map<string, Sampling>();
  for (const v of views) if (!out.has(samplingKey(v))) out.set(samplingKey(v), { mode: v.mode, seed: v.view });
  return [...out].map(([key, sampling]) => ({ key, sampling }));
}

export async function extractFeatures(o: ExtractOptions): Promise<ExtractSummary> {
  const shard = o.shard ?? { index: 1, count: 1 };
  const name = shard.count === 1 ? 'all' : `s${shard.index}of${shard.count}`;
  const release = await lockCache(o.out, name, {
    wait: o.wait,
    log: o.log ?? ((l) => process.stderr.write(`ous: ${l}\n`)),
  });
  try {
    return await extractLocked(o, shard, name);
  } finally {
    release();
  }
}

async function extractLocked(
  o: ExtractOptions,
  shard: { index: number; count: number },
  name: string,
): Promise<ExtractSummary> {
  const { encoder, info } = o;
  const dims = { frames: info.frames, ...encoder.dims };
  const recipe = cacheRecipe(info, o.entries, encoder.processor.size);
  const writer = new CacheWriter(o.out, { version: 1, ...info, dims, recipe }, name, o.partSize);
  const unhook = onInterrupt(() => keepOnInterrupt(writer, o.out)); // Ctrl-C keeps every finished clip
  const keyOf = (e: ClipEntry, view: number) => (view === 0 ? e.id : `${e.id}#v${view}`);
  // What the listing and a clip's record both say of one view of a clip.
  const clipView = (e: ClipEntry, view: number) => ({
    key: keyOf(e, view),
    path: e.source,
    label: e.label,
    polarity: info.polarityOfClass ? info.polarityOfClass[e.label]! : null,
    split: e.split,
    view,
  });
  // The listing as it is now; what changed since the last one (or since the parts, for a cache without one).
  const listed: ListedClip[] = o.entries.flatMap((e, i) =>
    viewPlan(e.split, info.views).map((v) => ({
      ...clipView(e, v.view),
      shard: `${(i % shard.count) + 1}/${shard.count}`,
    })),
  );
  const before = new Map<string, { label: number; split: Split }>(writer.cached);
  for (const c of readListing(o.out)?.clips ?? []) if (before.has(c.key)) before.set(c.key, c);
  const now = new Set(listed.map((c) => c.key));
  const updated = listed.filter(
    (c) =>
      c.view === 0 &&
      before.has(c.key) &&
      (before.get(c.key)!.label !== c.label || before.get(c.key)!.split !== c.split),
  ).length;
  const unlisted = [...writer.cached.values()].filter((r) => r.view === 0 && !now.has(r.key)).length;
  writeListing(o.out, { version: 1, shards: shard.count, clips: listed, rejected: o.preFailed ?? [] });
  writer.keepFailures(new Set(o.entries.map((e) => e.source)), new Set(o.entries.map((e) => e.id)));
  const mine = o.entries.filter((_, i) => i % shard.count === shard.index - 1);
  // A video listed once per person: its failures name the person's id (one person's bad box is not the other's).
  const listings = new Map<string, number>();
  for (const e of o.entries) listings.set(e.source, (listings.get(e.source) ?? 0) + 1);
  const failureKey = (e: ClipEntry) => (listings.get(e.source)! > 1 ? { key: e.id } : {});
  const todo = mine.filter((e) => viewPlan(e.split, info.views).some((v) => !writer.done.has(keyOf(e, v.view))));
  const skipped = mine.length - todo.length;
  const progress = new Progress('extract', todo.length, { unit: 'clips', silent: o.progress === false });
  const started = process.hrtime.bigint();
  const seconds = { decode: 0, detect: 0, encode: 0, total: 0 };
  const share = () => {
    const total = seconds.decode + seconds.detect + seconds.encode || 1;
    return (
      `decode ${((100 * seconds.decode) / total).toFixed(0)}% detect ` +
      `${((100 * seconds.detect) / total).toFixed(0)}% encode ${((100 * seconds.encode) / total).toFixed(0)}%`
    );
  };
  let done = 0;
  const noFace: string[] = []; // clips extracted now with no face found (centre-cropped)
  await runPipeline(todo, {
    ahead: o.pipeline === false ? 0 : (o.pipeline?.ahead ?? 2),
    async prepare(e) {
      const views = viewPlan(e.split, info.views).filter((v) => !writer.done.has(keyOf(e, v.view)));
      // A manifest's box entirely outside the frame would extract an empty crop (predict's --box refuses it too).
      if (e.faceBox && pathKind(e.source) === 'file') {
        const { width, height } = await probeVideo(e.source);
        try {
          checkBoxInFrame(e.faceBox, width, height, 'box');
        } catch (err) {
          throw new UserError(`${e.source}: ${(err as Error).message}`);
        }
      }
      // One decode and one detection pass per clip: a mirrored view flips its unmirrored
      // sampling's frames; train samplings add only the frames they draw.
      const samplings = uniqueSamplings(views);
      const made = await buildStreamViews(
        e.source,
        {
          frames: info.frames,
          scene: info.scene,
          faceFrames: e.faceFrames,
          faceBox: e.faceBox,
          subject: recipe.subject,
          crop: recipe.crop,
          detector: o.detector,
          device: encoder.device,
        },
        samplings.map((k) => k.sampling),
      );
      for (const m of made) {
        seconds.decode += m.timings.decode;
        seconds.detect += m.timings.detect;
      }
      // The decode is shared, so its undecoded count is the clip's (the same on every view).
      const undecoded = made[0]!.undecodedFrames;
      if (undecoded > (o.allowMissingFrames ?? 0))
        throw new UserError(`${undecodedWarning(made[0]!)}; --allow-missing-frames ${undecoded} accepts it`);
      return views.map((v): ViewWork => {
        const s: Streams = made[samplings.findIndex((k) => k.key === samplingKey(v))]!;
        const flip = v.flip ? flipHorizontal : (f: Streams['frames'][number]['face']) => f;
        const T = s.frames.length;
        const record: ClipRecord = {
          ...clipView(e, v.view),
          faceMissing: s.faceMissing,
          boxes: s.frames.map((f) => (s.faceMissing ? null : f.box)),
          subject: s.subject,
          ...(s.shippedFit ? { shippedFit: s.shippedFit } : {}),
        };
        // Face and scene frames through the shared tower; scene_low from block k.
        if (v.view === 0 && s.faceMissing) noFace.push(e.source);
        return {
          frames: [...s.frames.map((f) => flip(f.face)), ...s.frames.map((f) => flip(f.scene))],
          done: (emb, low) => {
            // A CLIP with NaN or infinite weights gives features that would train into NaN: the
            // clip fails here, naming the stage, instead of a cache of NaNs and exit 0.
            checkFinite(emb, `${e.source}: encode: CLIP's image embeddings`);
            checkFinite(low, `${e.source}: encode: CLIP's block-${info.polarityLayer} features (scene_low)`);
            writer.add(record, { face: emb.narrow(0, 0, T), scene: emb.narrow(0, T, T), low: low.narrow(0, T, T) });
          },
        };
      });
    },
    async encode(frames) {
      const t0 = process.hrtime.bigint();
      const { emb, low } = await encoder.encode(frames, info.polarityLayer);
      seconds.encode += Number(process.hrtime.bigint() - t0) / 1e9;
      return { emb, low: low! };
    },
    onClip(e, err) {
      if (err === undefined) done += 1;
      else
        writer.fail({
          path: e.source,
          error: err instanceof UserError ? err.message : `${e.source}: ${(err as Error).message}`,
          ...failureKey(e),
        });
      progress.tick(1, share());
    },
  });
  writer.flush();
  unhook();
  progress.finish(share());
  seconds.total = Number(process.hrtime.bigint() - started) / 1e9;
  const failedNow = new Set(writer.failures.map((f) => f.path));
  return {
    done,
    skipped,
    updated,
    unlisted,
    failed: [...(o.preFailed ?? []), ...writer.failures],
    noFace: noFace.filter((p) => !failedNow.has(p)),
    cache: o.out,
    seconds,
    clipsPerSecond: seconds.total > 0 ? done / seconds.total : 0,
  };
}

/**
 * The stream recipe of a cache: its options as data, and where its faces come from (the data set's
 * crops when any clip ships them, a manifest's boxes when any row gives one, else the detector).
 */
export function cacheRecipe(
  info: ExtractOptions['info'],
  entries: Array<Pick<ClipEntry, 'faceFrames' | 'faceBox'>>,
  processorSize: number,
): Recipe {
  const source = entries.some((e) => e.faceFrames)
    ? 'dataset-crops'
    : entries.some((e) => e.faceBox)
      ? 'known-box'
      : 'detector';
  return {
    version: RECIPE_VERSION,
    frames: info.frames,
    sampling: 'segment-middles',
    subject: info.subject ?? 'main',
    face: { source },
    crop: DEFAULT_CROP,
    scene: info.scene,
    processor: { resize: processorSize, crop: processorSize },
    polarityLayer: info.polarityLayer,
    clipHash: info.clip.hash,
    classNames: info.classNames,
    precision: info.precision ?? 'fp32',
  };
}

/** On a signal: the clips extracted since the last part written become a part (their lock goes after). */
function keepOnInterrupt(writer: CacheWriter, out: string): string {
  writer.flush();
  return (
    `${out} keeps the ${writer.done.size} clip(s) extracted so far; ` +
    'run the same ous extract again to extract the rest'
  );
}

/** Throws a UserError naming `what` when `t` holds a NaN or an infinity. */
function checkFinite(t: Tensor, what: string): void {
  const bad = tidy(() => t.isfinite().logicalNot().sum().item());
  if (bad > 0)
    throw new UserError(
      `${what} hold ${bad} NaN or infinite value(s): are the CLIP weights finite? (check them with ous clip embed)`,
    );
}
