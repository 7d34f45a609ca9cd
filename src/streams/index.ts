// OUS's preprocessing block (SPEC.md §2): a clip (video file or frame folder) becomes T sampled
// frames, each split into the face stream (a square crop around the clip's main face) and the
// scene stream (the whole frame, with the face masked out by default). Everything stays in memory
// as raw RGB; the CLI writes PNGs, the feature extractor encodes them.
import * as fs from 'node:fs';
import { rng } from '../util/random.js';
import { rescaleBox } from '../util/box.js';
import { sampleIndices, type SamplingMode } from '../video/sampling.js';
import {
  decodeFrames,
  forEachFrame,
  isImageFile,
  listFrameFiles,
  measureVideo,
  probeVideo,
  readFrameFiles,
  uprightSize,
  type DecodeOptions,
  type RgbFrame,
  type VideoInfo,
} from '../video/decode.js';
import { detectFacesBatch, type Box, type Detection, type DetectorEngine } from '../face/detector.js';
import type { Device } from '../torch/index.js';
import { fillTrack, personBoxes, subjectTrack, type Person } from '../face/tracks.js';
import { cropSquare, DEFAULT_CROP, type Crop, type SubjectRule } from './recipe.js';
import { centreSquare, cropWithPadding, fillBox } from '../face/crop.js';
import { CLIP_MEAN } from '../clip/image-processor.js';

/** CLIP's mean colour in 8 bits: what the masked scene shows where the face was. */
export const CLIP_MEAN_RGB = CLIP_MEAN.map((m) => Math.round(255 * m)) as [number, number, number]; // (123, 117, 104)

export interface StreamsOptions {
  frames?: number; // T (16)
  scene?: 'mask' | 'full'; // mask the face in the scene stream (default), or keep the frame whole
  mode?: SamplingMode; // test: segment middles; train: a random frame per segment
  seed?: number; // for train sampling
  faceFrames?: string; // a folder of face crops the data set ships (DFEW): the face stream comes from it
  faceBox?: Box; // a known face box for every frame (in the source's pixels): detection is skipped
  crop?: Crop; // the crop square around a face box (recipe.ts; default: the longer side × 1.25, centred)
  minConfidence?: number; // detector threshold (0.5)
  // the frames to take, in place of T sampled ones (a timeline's
  // frame grid): one detection pass links them into one track
  indices?: number[];
  detector?: DetectorEngine; // another detector implementation (tests, benchmarks); default: SSD on libtorch
  device?: Device; // where the libtorch detector runs ('cpu')
  maxSeconds?: number; // refuse a video longer than this, measured from its packets and while decoding
  // which face the clip is about (face/tracks.ts subjectTrack): 'main'
  // (default), 'largest', 'center', or a box in the source's pixels
  subject?: SubjectRule;
}

export interface StreamFrame {
  index: number; // frame index in the clip
  timeSec: number;
  box: Box; // the face box used (detected, interpolated, or the centre square when no face), in the source's pixels
  detected: boolean; // the main face was detected in this frame (not interpolated)
  face: RgbFrame; // the square crop, padded with black
  scene: RgbFrame;
}

export interface Streams {
  source: string;
  frames: StreamFrame[];
  faceMissing: boolean; // no face in any sampled frame: the centre square stands in
  otherFaces: Box[][]; // per frame, the boxes of the faces not chosen
  // the chosen track's index among the clip's face tracks (-1: none) and their number
  subject: { track: number; tracks: number };
  fps: number;
  frameCount: number;
  width: number; // of the source (before any downscaling while decoding): the pixels boxes are in
  height: number;
  rotation: number;
  missingFrames: number; // sampled frames the decoder could not deliver (repeated from the last good one)
  undecodedFrames: number; // frames of the whole clip the decoder could not deliver (truncated or corrupt file)
  still: boolean; // the source has one frame (an image, a one-frame GIF or video): it stands for every sampled frame
  timings: { decode: number; detect: number; crop: number }; // seconds
  // with the data set's face crops: where its middle crop sits around the detector's box in the
  // same scene frame (matchShipped); absent when no face was detected in that frame
  shippedFit?: Crop;
}

const seconds = (t0: bigint) => Number(process.hrtime.bigint() - t0) / 1e9;

/** A clip to read frames from: a video file, a folder of frames, or one image. */
export interface ClipSource {
  source: string;
  files?: string[]; // a frame folder's images, or the one image file
  info?: VideoInfo; // a video's
  frameCount: number; // N
  fps: number; // 0 when the frames have no times (a folder, an image)
  limit: DecodeOptions;
  /** The size boxes are reported in: the video's displayed size, or the frame image's upright size. */
  ownSize(index: number): Promise<{ width: number; height: number }>;
  /** Calls onFrame for each distinct frame of `indices`, ascending; one frame in memory at a time. */
  forEach(
    indices: number[],
    onFrame: (index: number, frame: RgbFrame) => void | Promise<void>,
  ): Promise<{ delivered: number; undecoded: number }>;
}

const decodeLimit = (o: Pick<DecodeOptions, 'maxSeconds' | 'input' | 'nice'>): DecodeOptions => ({
  ...(o.maxSeconds !== undefined ? { maxSeconds: o.maxSeconds } : {}),
  ...(o.input ? { input: o.input } : {}),
  ...(o.nice ? { nice: o.nice } : {}),
});

/**
 * Opens a clip. A video longer than `maxSeconds` is refused here already, from its packets (see
 * measureVideo), before anything is decoded; decoding enforces the limit again.
 */
export async function openClip(
  source: string,
  o: Pick<DecodeOptions, 'maxSeconds' | 'input' | 'nice'> = {},
): Promise<ClipSource> {
  const isFolder = fs.existsSync(source) && fs.statSync(source).isDirectory();
  const limit = decodeLimit(o);
  if (isFolder || isImageFile(source)) {
    const files = isFolder ? listFrameFiles(source) : [source];
    return {
      source,
      files,
      frameCount: files.length,
      fps: 0,
      limit,
      ownSize: async (i) => {
        const [width, height] = await uprightSize(files[i]!);
        return { width, height };
      },
      forEach: async (indices, onFrame) => {
        const wanted = [...new Set(indices)].sort((a, b) => a - b);
        for (const i of wanted) await onFrame(i, (await readFrameFiles(files, [i]))[0]!);
        return { delivered: wanted.length, undecoded: 0 };
      },
    };
  }
  const info = await probeVideo(source, limit);
  if (o.maxSeconds !== undefined) await measureVideo(source, info, limit);
  return {
    source,
    info,
    frameCount: info.frameCount,
    fps: info.fps,
    limit,
    ownSize: async () => ({ width: info.width, height: info.height }),
    forEach: (indices, onFrame) => forEachFrame(source, info, indices, onFrame, limit),
  };
}

/**
 * The clip's face by the subject rule over `perFrame` detections (SPEC.md §2), as crop squares in
 * the frames' pixels: the one face-track builder of extraction, `ous streams`, predict and serve.
 */
export function faceTrack(
  perFrame: Detection[][],
  size: { width: number; height: number },
  crop: Crop = DEFAULT_CROP,
  subject: SubjectRule = 'main',
) {
  const { tracks, chosen: main } = subjectTrack(perFrame, subject, size);
  const faceMissing = main < 0;
  const boxes: Box[] = faceMissing
    ? perFrame.map(() => centreSquare(size))
    : fillTrack(tracks[main]!).map((b) => cropSquare(b, crop));
  const detected = perFrame.map((_, i) => !faceMissing && tracks[main]![i] !== null);
  return { tracks, main, faceMissing, boxes, detected };
}

/**
 * One person's crop square at each grid position (`ous predict --all-persons`): their box where
 * detected, interpolated between detections, and the nearest one before they enter or after they
 * leave (as faceTrack's fillTrack holds a track's ends), so that a one-window clip's person gets
 * the squares extraction with that person as the subject gives.
 */
export function personSquares(person: Person, crop: Crop = DEFAULT_CROP): (pos: number) => Box {
  const boxes = personBoxes(person);
  return (pos) => cropSquare(boxes[Math.min(Math.max(pos, person.first), person.last) - person.first]!, crop);
}

/** Frame `i` of a clip cut into its face crop and its scene (the face masked unless `scene` is full). */
function streamFrame(
  frame: RgbFrame,
  index: number,
  fps: number,
  face: ReturnType<typeof faceTrack>,
  i: number,
  own: { width: number; height: number },
  scene: StreamsOptions['scene'],
  shipped?: RgbFrame,
): StreamFrame {
  const box = face.boxes[i]!;
  return {
    index,
    timeSec: fps ? index / fps : 0,
    box: rescaleBox(box, frame, own),
    detected: face.detected[i]!,
    ...cutFrame(frame, box, scene, face.faceMissing, shipped),
  };
}

/** What a streamed clip was, besides its frames. */
export type ClipSummary = Omit<Streams, 'frames' | 'otherFaces' | 'timings' | 'faceMissing' | 'subject'>;

const checkOrder = (indices: number[]) => {
  for (let p = 1; p < indices.length; p++)
    if (indices[p]! < indices[p - 1]!) throw new RangeError('the frame indices must not decrease');
};

/**
 * Pass 1 over a long clip: each distinct frame of `indices` (non-decreasing; a timeline's grid) is
 * decoded once and its faces detected, 8 frames a batch; only the detections are kept, per
 * position. Frames missing at the end of a damaged file take the last good frame's detections, as
 * they take its pixels in pass 2.
 */
export async function detectClip(
  clip: ClipSource,
  indices: number[],
  opts: Pick<StreamsOptions, 'minConfidence' | 'detector' | 'device'> & {
    onDetect?: (done: number, total: number) => void;
  },
): Promise<Detection[][]> {
  checkOrder(indices);
  const distinct = [...new Set(indices)];
  const found = new Map<number, Detection[]>();
  const batch: Array<[number, RgbFrame]> = [];
  const flush = async () => {
    const dets = await detectFacesBatch(
      batch.map(([, f]) => f),
      { minConfidence: opts.minConfidence, engine: opts.detector, device: opts.device },
    );
    batch.forEach(([i], k) => found.set(i, dets[k]!));
    batch.length = 0;
    opts.onDetect?.(found.size, distinct.length);
  };
  await clip.forEach(distinct, async (i, f) => {
    batch.push([i, f]);
    if (batch.length === 8) await flush();
  });
  if (batch.length) await flush();
  const lastGood = found.get([...found.keys()].pop()!) ?? [];
  return indices.map((i) => found.get(i) ?? lastGood);
}

/**
 * Pass 2 over a long clip: each position's decoded frame handed to `onFrame` in order and awaited
 * (memory holds what the consumer holds); frames missing at the end of a damaged file repeat the
 * last good one. Returns what the decoder could not deliver and the clip's summary.
 */
export async function forEachPosition(
  clip: ClipSource,
  indices: number[],
  onFrame: (position: number, frame: RgbFrame, index: number) => void | Promise<void>,
): Promise<ClipSummary> {
  checkOrder(indices);
  const distinct = [...new Set(indices)];
  const own = await clip.ownSize(indices[0]!);
  let [p, lastIndex] = [0, -1];
  let last: RgbFrame | undefined;
  const { delivered, undecoded } = await clip.forEach(distinct, async (i, f) => {
    [lastIndex, last] = [i, f];
    for (; p < indices.length && indices[p] === i; p++) await onFrame(p, f, i);
  });
  for (; p < indices.length; p++) await onFrame(p, last!, lastIndex);
  return {
    source: clip.source,
    fps: clip.fps,
    frameCount: clip.frameCount,
    width: own.width,
    height: own.height,
    rotation: clip.info?.rotation ?? 0,
    missingFrames: distinct.length - delivered,
    undecodedFrames: undecoded,
    still: clip.frameCount === 1,
  };
}

/** One frame's face crop and scene for a crop square (SPEC.md §2): the scene masks that square only. */
export function cutFrame(
  frame: RgbFrame,
  square: Box,
  scene: StreamsOptions['scene'],
  faceMissing = false,
  shipped?: RgbFrame,
): { face: RgbFrame; scene: RgbFrame } {
  return {
    face: shipped ?? cropWithPadding(frame, square),
    scene: scene === 'full' || faceMissing ? frame : fillBox(frame, square, CLIP_MEAN_RGB),
  };
}

/** The one line that says a still stands for every sampled frame, or undefined. */
export function stillNote(s: { still: boolean; source: string }): string | undefined {
  return s.still ? `${s.source}: a still image: its one frame stands for every sampled frame` : undefined;
}

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

/** One line for a clip the decoder could not read whole (truncated or corrupt), or undefined. */
export function undecodedWarning(
  s: Pick<Streams, 'source' | 'undecodedFrames' | 'missingFrames' | 'frameCount'> & { frames: { length: number } },
): string | undefined {
  if (!s.undecodedFrames) return undefined;
  const repeated = s.missingFrames
    ? `; ${s.missingFrames} of the ${s.frames.length} sampled frames repeat the last good one`
    : '';
  return (
    `${s.source}: ${s.undecodedFrames} of ${s.frameCount} frames ` +
    `could not be decoded (truncated or corrupt file)${repeated}`
  );
}
