// Extraction's path: a clip's sampled frames decoded once for all its views (samplings), detected
// once, and cut into the face and scene streams of each view; a data set's own face crops matched.
import { rng } from '../util/random.js';
import { rescaleBox } from '../util/box.js';
import { sampleIndices, type SamplingMode } from '../video/sampling.js';
import { decodeFrames, listFrameFiles, readFrameFiles, type RgbFrame } from '../video/decode.js';
import { detectFacesBatch, type Detection } from '../face/detector.js';
import { cropSquare, type Crop } from './recipe.js';
import type { Streams, StreamsOptions, StreamFrame } from './types.js';
import { openClip, decodeLimit } from './source.js';
import { faceTrack, streamFrame } from './crop.js';

const seconds = (t0: bigint) => Number(process.hrtime.bigint() - t0) / 1e9;

/** One sampling of a clip: view 0 is the test sampling; train views draw with their own seed. */
export interface Sampling {
  mode: SamplingMode;
  seed: number;
  indices?: number[]; // the frames to take, in place of T sampled ones (a timeline's frame grid)
}

/**
 * The sampled frames of several samplings of one clip from ONE decode: the union of their frame
 * indices goes through one ffmpeg process (or one read of each frame file). `missing` per sampling
 * counts its distinct frames past the last one the decoder delivered, as decodeFrames does.
 */
async function sampledFrames(source: string, t: number, samplings: Sampling[], opts: StreamsOptions) {
  const randoms = samplings.map((v) => rng(v.seed));
  const clip = await openClip(source, opts);
  const { files, info } = clip;
  const n = clip.frameCount;
  const indices = samplings.map((v, k) => v.indices ?? sampleIndices(n, t, v.mode, randoms[k]!));
  const union = [...new Set(indices.flat())].sort((a, b) => a - b);
  let decoded: RgbFrame[];
  let lost = new Set<number>();
  let undecoded = 0; // frames of the file the decoder could not deliver (a truncated or corrupt file)
  if (files) decoded = await readFrameFiles(files, union);
  else {
    const d = await decodeFrames(source, info!, union, decodeLimit(opts));
    decoded = d.frames;
    undecoded = d.undecoded;
    lost = new Set(union.slice(union.length - d.missing)); // decodeFrames loses frames at the end
  }
  const byIndex = new Map(union.map((idx, k) => [idx, decoded[k]!]));
  // The data set's face crops (DFEW) at the scene frames' positions: crop folder and video may hold
  // different frame counts, so a frame's position in the clip picks the crop.
  const faceFiles = opts.faceFrames ? listFrameFiles(opts.faceFrames) : undefined;
  const atCrop = (i: number) => Math.min(faceFiles!.length - 1, Math.floor(((i + 0.5) * faceFiles!.length) / n));
  const shippedAll = faceFiles ? await readFrameFiles(faceFiles, indices.flat().map(atCrop)) : undefined;
  // Boxes are read and reported in the source's own pixels; the frames may be scaled down (MAX_SIDE).
  return {
    union: union.map((i) => byIndex.get(i)!),
    unionIndex: new Map(union.map((idx, k) => [idx, k])),
    views: indices.map((idx, k) => ({
      indices: idx,
      frames: idx.map((i) => byIndex.get(i)!),
      missing: [...new Set(idx)].filter((i) => lost.has(i)).length,
      shipped: shippedAll?.slice(k * t, (k + 1) * t),
    })),
    fps: info?.fps ?? 0,
    frameCount: n,
    rotation: info?.rotation ?? 0,
    undecoded,
    own: await clip.ownSize(union[0]!),
  };
}

/** The face and scene streams of one clip. */
export async function buildStreams(source: string, opts: StreamsOptions = {}): Promise<Streams> {
  return (
    await buildStreamViews(source, opts, [{ mode: opts.mode ?? 'test', seed: opts.seed ?? 0, indices: opts.indices }])
  )[0]!;
}

/**
 * The streams of several samplings of one clip from one decode and one detection pass: each
 * distinct frame is decoded once and the detector sees it once; every sampling then links its
 * own face track from those detections, so each result equals buildStreams with that sampling.
 * (A mirrored view needs no sampling of its own: it is the flip of its unmirrored one.) The
 * decode and detect seconds are booked on the first result.
 */
export async function buildStreamViews(
  source: string,
  opts: StreamsOptions,
  samplings: Sampling[],
): Promise<Streams[]> {
  const T = opts.frames ?? 16;
  let t0 = process.hrtime.bigint();
  const all = await sampledFrames(source, T, samplings, opts);
  const decode = seconds(t0);
  const own = all.own;

  t0 = process.hrtime.bigint();
  const needBoxes = !opts.faceFrames || opts.scene !== 'full';
  let found: Detection[][] | undefined;
  if (opts.faceBox) {
    // A known box, given in the source's pixels; frames may have been scaled down while decoding.
    const b = rescaleBox(opts.faceBox, own, all.union[0]!);
    found = all.union.map(() => [{ box: b, score: 1 }]);
  } else if (needBoxes)
    found = await detectFacesBatch(all.union, {
      minConfidence: opts.minConfidence,
      engine: opts.detector,
      device: opts.device,
    });
  const detect = seconds(t0);

  return all.views.map((s, v) => {
    t0 = process.hrtime.bigint();
    const shipped = s.shipped;
    const perFrame: Detection[][] = found ? s.indices.map((i) => found![all.unionIndex.get(i)!]!) : [];
    // A known face box is the subject itself (its one detection per frame): no rule to apply.
    const subject = opts.faceBox
      ? 'main'
      : Array.isArray(opts.subject)
        ? rescaleBox(opts.subject, own, s.frames[0]!)
        : (opts.subject ?? 'main');
    const face = faceTrack(perFrame, s.frames[0]!, opts.crop, subject);
    const frames: StreamFrame[] = s.frames.map((frame, i) =>
      streamFrame(frame, s.indices[i]!, all.fps, face, i, own, opts.scene, shipped?.[i]),
    );
    const { tracks, main, faceMissing } = face;
    const otherFaces = s.frames.map((f, i) =>
      tracks.flatMap((t, k) => (k !== main && t[i] ? [rescaleBox(t[i]!.box, f, own)] : [])),
    );
    const shippedFit = v === 0 && shipped ? matchShipped(s.frames, shipped, face) : undefined;
    const crop = seconds(t0);
    const timings = v === 0 ? { decode, detect, crop } : { decode: 0, detect: 0, crop };
    return {
      source,
      frames,
      faceMissing,
      otherFaces,
      subject: { track: main, tracks: tracks.length },
      fps: all.fps,
      frameCount: all.frameCount,
      width: own.width,
      height: own.height,
      rotation: all.rotation,
      missingFrames: s.missing,
      undecodedFrames: all.undecoded,
      still: all.frameCount === 1,
      timings,
      ...(shippedFit ? { shippedFit } : {}),
    };
  });
}

/** An image's square region (x, y, side; black outside it) as N×N grey levels, each the mean of 2×2 samples. */
function thumbnail(img: RgbFrame, x: number, y: number, side: number, N = 32): Float32Array {
  const out = new Float32Array(N * N);
  for (let j = 0; j < N; j++)
    for (let i = 0; i < N; i++) {
      let sum = 0;
      for (const [di, dj] of [
        [0.25, 0.25],
        [0.75, 0.25],
        [0.25, 0.75],
        [0.75, 0.75],
      ]) {
        const [px, py] = [Math.floor(x + ((i + di!) * side) / N), Math.floor(y + ((j + dj!) * side) / N)];
        if (px < 0 || py < 0 || px >= img.width || py >= img.height) continue; // black padding
        const k = (py * img.width + px) * 3;
        sum += img.data[k]! + img.data[k + 1]! + img.data[k + 2]!;
      }
      out[j * N + i] = sum / 12;
    }
  return out;
}

/**
 * Where the data set's face crop sits around the detector's face box in the same frame (the
 * sampling's middle one): the crop geometry (recipe.ts Crop) whose cut of the frame looks most like
 * the shipped crop, searched coarse to fine over enlarge and shift. The detector is not run on the
 * crop itself: on a crop the face fills, SSD's box is larger than on the whole frame (measured:
 * 0.09 where the crop was cut at 0.30), so only the frame's own box says what prediction will see.
 */
function matchShipped(frames: RgbFrame[], shipped: RgbFrame[], face: ReturnType<typeof faceTrack>): Crop | undefined {
  const mid = frames.length >> 1;
  const box = face.main >= 0 ? face.tracks[face.main]![mid]?.box : undefined;
  if (!box) return undefined;
  const target = thumbnail(shipped[mid]!, 0, 0, Math.max(shipped[mid]!.width, shipped[mid]!.height));
  const cost = (c: Crop) => {
    const [x, y, side] = cropSquare(box, c);
    const t = thumbnail(frames[mid]!, x, y, side);
    let d = 0;
    for (let k = 0; k < t.length; k++) d += Math.abs(t[k]! - target[k]!);
    return d;
  };
  const crop = (enlarge: number, sx: number, sy: number): Crop => ({
    shape: 'square',
    enlarge: Math.round(enlarge * 1e4) / 1e4,
    shift: [Math.round(sx * 1e4) / 1e4, Math.round(sy * 1e4) / 1e4],
    padding: 'black',
  });
  let best = crop(0.25, 0, 0);
  let bestCost = cost(best);
  // enlarge −0.2..1.5 and shift ±0.3, then three rounds at half the step around the best
  let [stepE, stepS, spanE, spanS] = [0.1, 0.05, 9, 6];
  let centre = crop(0.65, 0, 0);
  for (let round = 0; round < 4; round++) {
    for (let a = -spanE; a <= spanE; a++)
      for (let b = -spanS; b <= spanS; b++)
        for (let c = -spanS; c <= spanS; c++) {
          const cand = crop(centre.enlarge + a * stepE, centre.shift[0] + b * stepS, centre.shift[1] + c * stepS);
          if (cand.enlarge <= -0.5) continue;
          const d = cost(cand);
          if (d < bestCost) [best, bestCost] = [cand, d];
        }
    [centre, stepE, stepS, spanE, spanS] = [best, stepE / 2, stepS / 2, 2, 2];
  }
  return best;
}
