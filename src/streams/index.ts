// OUS's preprocessing block (SPEC.md §2): a clip (video file or frame folder) becomes T sampled
// frames, each split into the face stream (a square crop around the clip's main face) and the
// scene stream (the whole frame, with the face masked out by default). Everything stays in memory
// as raw RGB; the CLI writes PNGs, the feature extractor encodes them.
import * as fs from 'node:fs';
import { UserError } from '../util/errors.js';
import { rng } from '../util/random.js';
import { sampleIndices, type SamplingMode } from '../video/sampling.js';
import { decodeFrames, listFrameFiles, probeVideo, readFrameFiles, type RgbFrame } from '../video/decode.js';
import { detectFaces, type Box, type Detection } from '../face/detector.js';
import { fillTrack, linkTracks, mainTrack, squareBox } from '../face/tracks.js';
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
  enlarge?: number; // the crop square is the face box's longer side × (1 + enlarge): 0.25
  minConfidence?: number; // detector threshold (0.5)
}

export interface StreamFrame {
  index: number; // frame index in the clip
  timeSec: number;
  box: Box; // the face box used (detected, interpolated, or the centre square when no face)
  detected: boolean; // the main face was detected in this frame (not interpolated)
  face: RgbFrame; // the square crop, padded with black
  scene: RgbFrame;
}

export interface Streams {
  source: string;
  frames: StreamFrame[];
  faceMissing: boolean; // no face in any sampled frame: the centre square stands in
  otherFaces: Box[][]; // per frame, the boxes of the faces not chosen
  fps: number;
  frameCount: number;
  width: number; // of the decoded frames
  height: number;
  rotation: number;
  missingFrames: number; // sampled frames the decoder could not deliver (repeated from the last good one)
  undecodedFrames: number; // frames of the whole clip the decoder could not deliver (truncated or corrupt file)
  timings: { decode: number; detect: number; crop: number }; // seconds
}

const seconds = (t0: bigint) => Number(process.hrtime.bigint() - t0) / 1e9;

async function sampledFrames(source: string, t: number, mode: SamplingMode, random: () => number) {
  if (fs.existsSync(source) && fs.statSync(source).isDirectory()) {
    const files = listFrameFiles(source);
    const indices = sampleIndices(files.length, t, mode, random);
    const frames = await readFrameFiles(files, indices);
    return { indices, frames, fps: 0, frameCount: files.length, rotation: 0, missing: 0, undecoded: 0, sourceWidth: 0 };
  }
  const info = probeVideo(source);
  const indices = sampleIndices(info.frameCount, t, mode, random);
  const { frames, missing, undecoded } = await decodeFrames(source, info, indices);
  return { indices, frames, fps: info.fps, frameCount: info.frameCount, rotation: info.rotation, missing, undecoded, sourceWidth: info.width };
}

/** The face and scene streams of one clip. */
export async function buildStreams(source: string, opts: StreamsOptions = {}): Promise<Streams> {
  const T = opts.frames ?? 16;
  const random = rng(opts.seed ?? 0);
  const mode = opts.mode ?? 'test';
  let t0 = process.hrtime.bigint();
  const s = await sampledFrames(source, T, mode, random);
  const faceFiles = opts.faceFrames ? listFrameFiles(opts.faceFrames) : undefined;
  const shipped = faceFiles ? await readFrameFiles(faceFiles, sampleIndices(faceFiles.length, T, mode, random)) : undefined;
  const decode = seconds(t0);

  t0 = process.hrtime.bigint();
  const needBoxes = !shipped || opts.scene !== 'full';
  const perFrame: Detection[][] = [];
  if (opts.faceBox) {
    // A known box, given in the source's pixels; frames may have been scaled down while decoding.
    const k = s.frames[0]!.width / (s.sourceWidth || s.frames[0]!.width);
    const b = opts.faceBox.map((v) => v * k) as Box;
    for (let i = 0; i < s.frames.length; i++) perFrame.push([{ box: b, score: 1 }]);
  } else if (needBoxes) for (const f of s.frames) perFrame.push(await detectFaces(f, { minConfidence: opts.minConfidence }));
  const detect = seconds(t0);

  t0 = process.hrtime.bigint();
  const tracks = linkTracks(perFrame);
  const main = mainTrack(tracks);
  const faceMissing = main < 0;
  const boxes: Box[] = faceMissing ? s.frames.map(centreSquare) : fillTrack(tracks[main]!).map((b) => squareBox(b, opts.enlarge ?? 0.25));
  const frames: StreamFrame[] = s.frames.map((frame, i) => ({
    index: s.indices[i]!,
    timeSec: s.fps ? s.indices[i]! / s.fps : 0,
    box: boxes[i]!,
    detected: !faceMissing && tracks[main]![i] !== null,
    face: shipped ? shipped[i]! : cropWithPadding(frame, boxes[i]!),
    scene: opts.scene === 'full' || faceMissing ? frame : fillBox(frame, boxes[i]!, CLIP_MEAN_RGB),
  }));
  const otherFaces = s.frames.map((_, i) => tracks.flatMap((t, k) => (k !== main && t[i] ? [t[i]!.box] : [])));
  const crop = seconds(t0);
  const { width, height } = s.frames[0]!;
  return { source, frames, faceMissing, otherFaces, fps: s.fps, frameCount: s.frameCount, width, height, rotation: s.rotation, missingFrames: s.missing, undecodedFrames: s.undecoded, timings: { decode, detect, crop } };
}

/** One line for a clip the decoder could not read whole (truncated or corrupt), or undefined. */
export function undecodedWarning(s: Streams): string | undefined {
  if (!s.undecodedFrames) return undefined;
  const repeated = s.missingFrames ? `; ${s.missingFrames} of the ${s.frames.length} sampled frames repeat the last good one` : '';
  return `${s.source}: ${s.undecodedFrames} of ${s.frameCount} frames could not be decoded (truncated or corrupt file)${repeated}`;
}

/**
 * Streams of many clips; a clip that fails is recorded with its error and the batch goes on.
 * `onClip` is called after each clip (for progress).
 */
export async function buildStreamsBatch(
  sources: string[],
  opts: StreamsOptions = {},
  onClip?: (done: number, source: string, error?: string) => void,
): Promise<{ results: Streams[]; failed: Array<{ path: string; error: string }> }> {
  const results: Streams[] = [];
  const failed: Array<{ path: string; error: string }> = [];
  for (const [i, src] of sources.entries()) {
    try {
      results.push(await buildStreams(src, opts));
      onClip?.(i + 1, src);
    } catch (err) {
      const error = err instanceof UserError ? err.message : `${src}: ${(err as Error).message}`;
      failed.push({ path: src, error });
      onClip?.(i + 1, src, error);
    }
  }
  return { results, failed };
}
