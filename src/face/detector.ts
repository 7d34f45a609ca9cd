// The frozen face detector: SSD MobileNet v1 with the weights that @vladmandic/face-api ships in its
// npm package (no download), run on libtorch by src/face/ssd.ts (batched, CPU or CUDA), loaded once
// per process. Production has this one detector. `engine` plugs in another implementation of the
// same interface: the tests and benchmarks compare ours against face-api's own on tfjs
// (test/reference/face-api.ts), which is not installed with the package.
//
// How a frame is looked at (docs/DECISIONS.md, Face detector): once whole at its own aspect
// ratio (ssd.ts aspectGeometry: a 640×360 frame in as many input pixels as face-api's 512²); where
// that pass sees a small face it is not sure of, the frame again in 512² tiles around those faces at
// a larger scale; a dark frame's contrast stretched first; boxes of the passes merged by NMS.
import type { Device } from '../torch/index.js';
import type { RgbFrame } from '../video/decode.js';
import { ssdMobilenetV1, type SsdMobilenetV1 } from './ssd.js';

export type Box = [number, number, number, number]; // [x, y, w, h] in pixels

export interface Detection {
  box: Box;
  score: number;
}

/** Another implementation of the detector: every face in each frame, best first (maxResults: Infinity = all). */
export interface DetectorEngine {
  detect(frames: RgbFrame[], opts: { minConfidence: number; maxResults: number }): Promise<Detection[][]>;
}

export interface DetectorOptions {
  minConfidence?: number; // detections below this score are dropped (0.5)
  maxResults?: number; // at most this many faces per frame, best first (no limit)
  engine?: DetectorEngine; // default: SSD on libtorch
  device?: Device; // where the libtorch SSD runs ('cpu')
  // libtorch SSD only: 'square' is face-api's own look at a frame (padded to a square of 512, no
  // tiles, no contrast stretch), kept so that benchmarks can measure what the aspect layout gains
  layout?: 'aspect' | 'square';
  tiles?: boolean; // 'aspect': tiles around the small faces the whole-frame pass hints at (true)
  stretch?: boolean; // 'aspect': a dark frame's contrast stretched (true)
}

/** Every face in one frame, best first. */
export async function detectFaces(frame: RgbFrame, opts: DetectorOptions = {}): Promise<Detection[]> {
  return (await detectFacesBatch([frame], opts))[0]!;
}

/** Every face in each frame, best first; the libtorch SSD runs frames of one size as a batch. */
export async function detectFacesBatch(frames: RgbFrame[], opts: DetectorOptions = {}): Promise<Detection[][]> {
  const o = { minConfidence: opts.minConfidence ?? 0.5, maxResults: opts.maxResults ?? Infinity };
  if (opts.engine) return opts.engine.detect(frames, o);
  const net = ssdMobilenetV1(opts.device ?? 'cpu');
  if (opts.layout === 'square') return net.detect(frames, { ...o, layout: 'square' });
  return findFaces(net, frames, o, opts.tiles ?? true, opts.stretch ?? true);
}

// A candidate this sure or more of a face this small (in input pixels) is a hint that a larger
// scale would find it: below the smallest anchor (51 px) the whole-frame pass misses about one face
// in five and scores most of those it misses above 0.2; at 0.1 a hat's brim above a large face
// cost a tile too (docs/DECISIONS.md, Face detector).
const HINT_SCORE = 0.2;
const HINT_HEIGHT = 64;
const TILE_FACE = 80; // a hinted face is this tall (input pixels) in its tile
const TILE = 512; // a tile's side in input pixels: one face-api pass
const MERGE_IOU = 0.5; // face-api's NMS rule, across passes
const MERGE_INSIDE = 0.8; // ... and a box this much inside a better one is the same face, seen at another scale
// A frame is dark when its 99th-percentile luma is below this: its contrast is stretched (gain ≤ MAX_GAIN) so
// that percentile reaches STRETCH_TO (docs/BENCHMARKS.md: recall on darkened real faces with and without).
const DARK_P99 = 96;
const STRETCH_TO = 224;
const MAX_GAIN = 4;

/**
 * The faces of each frame: the whole-frame pass at the frame's aspect ratio, then tiles at a larger
 * scale around the small faces it hints at, the passes' boxes merged (mergeDetections).
 */
async function findFaces(
  net: SsdMobilenetV1,
  frames: RgbFrame[],
  o: { minConfidence: number; maxResults: number },
  tiles: boolean,
  stretch: boolean,
): Promise<Detection[][]> {
  const gains = frames.map((f) => (stretch ? contrastGain(f) : 1));
  const whole = net.detect(frames, { minConfidence: Math.min(HINT_SCORE, o.minConfidence), gains });
  return frames.map((frame, i) => {
    const sure = whole[i]!.filter((d) => d.score > o.minConfidence);
    const step = net.inputStep(frame);
    const hints = whole[i]!.filter((d) => d.score <= o.minConfidence && d.box[3] / step < HINT_HEIGHT);
    if (!tiles || !hints.length) return sure.slice(0, o.maxResults);
    const around = hintTiles(frame, hints);
    const crops = around.map((t) => cropFrame(frame, t));
    const found = net.detect(crops, { minConfidence: o.minConfidence, gains: crops.map(() => gains[i]!) });
    const inTiles = found.flatMap((dets, k) => keepInside(dets, around[k]!, frame));
    return mergeDetections([...sure, ...inTiles]).slice(0, o.maxResults);
  });
}

/**
 * Square tiles (x, y, side in frame pixels), each holding a hint at its centre: side = TILE input
 * pixels at the scale that makes the smallest hint TILE_FACE px tall (never past 2× the frame's own
 * pixels); a hint already well inside a tile gets no tile of its own. Clamped into the frame.
 */
export function hintTiles(frame: { width: number; height: number }, hints: Detection[]): Box[] {
  const smallest = Math.min(...hints.map((d) => d.box[3]));
  const side = Math.min(Math.max((TILE * smallest) / TILE_FACE, TILE / 2), Math.min(frame.width, frame.height));
  const tiles: Box[] = [];
  for (const h of hints) {
    const [cx, cy] = [h.box[0] + h.box[2] / 2, h.box[1] + h.box[3] / 2];
    const margin = side / 4;
    if (tiles.some(([x, y, s]) => cx > x + margin && cx < x + s - margin && cy > y + margin && cy < y + s - margin))
      continue;
    const clamp = (c: number, n: number) => Math.round(Math.min(Math.max(c - side / 2, 0), n - side));
    tiles.push([clamp(cx, frame.width), clamp(cy, frame.height), Math.round(side), Math.round(side)]);
  }
  return tiles;
}

/** The pixels of a tile [x, y, w, h] (inside the frame) as a frame of its own. */
export function cropFrame(frame: RgbFrame, [x, y, w, h]: Box): RgbFrame {
  const data = new Uint8Array(w * h * 3);
  for (let r = 0; r < h; r++)
    data.set(frame.data.subarray(3 * ((y + r) * frame.width + x), 3 * ((y + r) * frame.width + x + w)), 3 * r * w);
  return { width: w, height: h, data };
}

/** A tile's detections in the frame's pixels, less those the tile's edge cuts (kept unless the edge is the frame's). */
function keepInside(dets: Detection[], [x, y, w, h]: Box, frame: { width: number; height: number }): Detection[] {
  const cut = (a: number, b: number, lo: number, hi: number, n: number) =>
    (a <= lo + 1 && lo > 0) || (b >= hi - 1 && hi < n);
  return dets
    .map((d): Detection => ({ box: [d.box[0] + x, d.box[1] + y, d.box[2], d.box[3]], score: d.score }))
    .filter(({ box: [bx, by, bw, bh] }) => {
      const offX = cut(bx, bx + bw, x, x + w, frame.width);
      return !offX && !cut(by, by + bh, y, y + h, frame.height);
    });
}

/**
 * Detections of several passes as one list, best first: each kept unless it overlaps a better
 * kept one by IoU > 0.5 (face-api's rule) or lies ≥ 80% inside it (the same face boxed a little
 * differently at another scale).
 */
export function mergeDetections(dets: Detection[]): Detection[] {
  const kept: Detection[] = [];
  for (const d of [...dets].sort((a, b) => b.score - a.score)) {
    const same = kept.some((k) => {
      const inter = overlap(d.box, k.box);
      const union = d.box[2] * d.box[3] + k.box[2] * k.box[3] - inter;
      return inter / union > MERGE_IOU || inter / Math.min(d.box[2] * d.box[3], k.box[2] * k.box[3]) >= MERGE_INSIDE;
    });
    if (!same) kept.push(d);
  }
  return kept;
}

function overlap(a: Box, b: Box): number {
  const w = Math.min(a[0] + a[2], b[0] + b[2]) - Math.max(a[0], b[0]);
  const h = Math.min(a[1] + a[3], b[1] + b[3]) - Math.max(a[1], b[1]);
  return Math.max(0, w) * Math.max(0, h);
}

/**
 * The gain that stretches a dark frame's contrast: 1 unless its 99th-percentile luma (every 7th
 * pixel) is below DARK_P99, else the gain taking it to STRETCH_TO (at most MAX_GAIN).
 */
export function contrastGain(frame: RgbFrame): number {
  const counts = new Uint32Array(256);
  let n = 0;
  for (let p = 0; p < frame.data.length; p += 21) {
    counts[(frame.data[p]! * 77 + frame.data[p + 1]! * 150 + frame.data[p + 2]! * 29) >> 8]!++;
    n++;
  }
  let v = 255;
  for (let above = 0; v > 0 && (above += counts[v]!) < 0.01 * n; ) v--;
  return v >= DARK_P99 ? 1 : Math.min(MAX_GAIN, STRETCH_TO / Math.max(v, 1));
}
