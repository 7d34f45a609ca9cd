// The frozen face detector: SSD MobileNet v1 with the weights that @vladmandic/face-api ships in its
// npm package (no download). Two engines run it: our libtorch one (src/face/ssd.ts, the default:
// batched, CPU or CUDA) and face-api itself on tfjs's wasm backend (`engine: 'tfjs'` or
// OUS_FACE_DETECTOR=tfjs), kept as the reference the first is tested against. Loaded once per process.
import { createRequire } from 'node:module';
import * as path from 'node:path';
import type { Device } from '../torch/index.js';
import { UserError } from '../util/errors.js';
import type { RgbFrame } from '../video/decode.js';
import { ssdMobilenetV1 } from './ssd.js';

export type Box = [number, number, number, number]; // [x, y, w, h] in pixels

export interface Detection {
  box: Box;
  score: number;
}

// The package's CommonJS build that bundles tfjs's wasm backend; typed loosely on purpose: only
// these few calls are used.
interface FaceApi {
  tf: { setBackend(name: string): Promise<boolean>; ready(): Promise<void>; tensor3d(data: Uint8Array, shape: [number, number, number], dtype: 'int32'): { dispose(): void } };
  nets: { ssdMobilenetv1: { loadFromDisk(dir: string): Promise<void> } };
  SsdMobilenetv1Options: new (o: { minConfidence: number; maxResults: number }) => unknown;
  detectAllFaces(input: unknown, options: unknown): Promise<Array<{ score: number; box: { x: number; y: number; width: number; height: number } }>>;
}

let api: Promise<FaceApi> | undefined;

function load(): Promise<FaceApi> {
  api ??= (async () => {
    const require = createRequire(import.meta.url);
    const pkg = path.dirname(require.resolve('@vladmandic/face-api/package.json'));
    const faceapi = require(path.join(pkg, 'dist', 'face-api.node-wasm.js')) as FaceApi;
    await faceapi.tf.setBackend('wasm');
    await faceapi.tf.ready();
    await faceapi.nets.ssdMobilenetv1.loadFromDisk(path.join(pkg, 'model'));
    return faceapi;
  })();
  return api;
}

export type DetectorEngine = 'torch' | 'tfjs';

export interface DetectorOptions {
  minConfidence?: number; // detections below this score are dropped (0.5)
  maxResults?: number; // 20
  engine?: DetectorEngine; // default: OUS_FACE_DETECTOR, else 'torch'
  device?: Device; // for the torch engine ('cpu')
}

/** The engine asked for: the option, else OUS_FACE_DETECTOR, else libtorch. */
export function detectorEngine(opts: DetectorOptions = {}): DetectorEngine {
  const e = opts.engine ?? process.env.OUS_FACE_DETECTOR ?? 'torch';
  if (e !== 'torch' && e !== 'tfjs') throw new UserError(`OUS_FACE_DETECTOR=${e}: expected torch or tfjs`);
  return e;
}

/** Every face in one frame, best first. */
export async function detectFaces(frame: RgbFrame, opts: DetectorOptions = {}): Promise<Detection[]> {
  return (await detectFacesBatch([frame], opts))[0]!;
}

/** Every face in each frame, best first; the torch engine runs frames of one size as a batch. */
export async function detectFacesBatch(frames: RgbFrame[], opts: DetectorOptions = {}): Promise<Detection[][]> {
  if (detectorEngine(opts) === 'torch') {
    return ssdMobilenetV1(opts.device ?? 'cpu').detect(frames, { minConfidence: opts.minConfidence ?? 0.5, maxResults: opts.maxResults ?? 20 });
  }
  const out: Detection[][] = [];
  for (const f of frames) out.push(await detectTfjs(f, opts));
  return out;
}

async function detectTfjs(frame: RgbFrame, opts: DetectorOptions): Promise<Detection[]> {
  const faceapi = await load();
  const input = faceapi.tf.tensor3d(new Uint8Array(frame.data.buffer, frame.data.byteOffset, frame.data.byteLength), [frame.height, frame.width, 3], 'int32');
  try {
    const found = await faceapi.detectAllFaces(input, new faceapi.SsdMobilenetv1Options({ minConfidence: opts.minConfidence ?? 0.5, maxResults: opts.maxResults ?? 20 }));
    return found
      .map((d) => ({ box: [d.box.x, d.box.y, d.box.width, d.box.height] as Box, score: d.score }))
      .sort((a, b) => b.score - a.score);
  } finally {
    input.dispose();
  }
}
