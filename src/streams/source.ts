// A clip opened for reading, whatever it is (a video file, a folder of frames, one image): the one
// probe, the length limit, and the lines that say what could not be read.
import * as fs from 'node:fs';
import {
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
import type { Streams } from './types.js';

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

export const decodeLimit = (o: Pick<DecodeOptions, 'maxSeconds' | 'input' | 'nice'>): DecodeOptions => ({
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

/** The one line that says a still stands for every sampled frame, or undefined. */
export function stillNote(s: { still: boolean; source: string }): string | undefined {
  return s.still ? `${s.source}: a still image: its one frame stands for every sampled frame` : undefined;
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
