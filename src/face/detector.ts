// The frozen face detector: SSD MobileNet v1 with the weights that @vladmandic/face-api ships in its
// npm package (no download), run on libtorch by src/face/ssd.ts (batched, CPU or CUDA), loaded once
// per process. Production has this one detector. `engine` plugs in another implementation of the
// same interface: the tests and benchmarks compare ours against face-api's own on tfjs
// (test/reference/face-api.ts), which is not installed with the package.
import type { Device } from '../torch/index.js';
import type { RgbFrame } from '../video/decode.js';
import { ssdMobilenetV1 } from './ssd.js';

export type Box = [number, number, number, number]; // [x, y, w, h] in pixels

export interface Detection {
  box: Box;
  score: number;
}

/** Another implementation of the detector: every face in each frame, best first. */
export interface DetectorEngine {
  detect(frames: RgbFrame[], opts: { minConfidence: number; maxResults: number }): Promise<Detection[][]>;
}

export interface DetectorOptions {
  minConfidence?: number; // detections below this score are dropped (0.5)
  maxResults?: number; // 20
  engine?: DetectorEngine; // default: SSD on libtorch
  device?: Device; // where the libtorch SSD runs ('cpu')
}

/** Every face in one frame, best first. */
export async function detectFaces(frame: RgbFrame, opts: DetectorOptions = {}): Promise<Detection[]> {
  return (await detectFacesBatch([frame], opts))[0]!;
}

/** Every face in each frame, best first; the libtorch SSD runs frames of one size as a batch. */
export async function detectFacesBatch(frames: RgbFrame[], opts: DetectorOptions = {}): Promise<Detection[][]> {
  const o = { minConfidence: opts.minConfidence ?? 0.5, maxResults: opts.maxResults ?? 20 };
  return opts.engine ? opts.engine.detect(frames, o) : ssdMobilenetV1(opts.device ?? 'cpu').detect(frames, o);
}
