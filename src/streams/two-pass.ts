// The two passes of prediction and serving over one clip: detect every grid frame (pass 1), link
// the faces over the whole clip, then cut each position's frame a chunk at a time (pass 2).
import type { RgbFrame } from '../video/decode.js';
import { detectFacesBatch, type Detection } from '../face/detector.js';
import type { Streams, StreamsOptions } from './types.js';
import type { ClipSource } from './source.js';

const _seconds = (t0: bigint) => Number(process.hrtime.bigint() - t0) / 1e9;

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
