// The reference the libtorch SSD (src/face/ssd.ts) is tested and benchmarked against: face-api
// itself, the same weights on tfjs's wasm backend, through the package's CommonJS build that
// bundles that backend. Tests and benchmarks only: tfjs and its wasm backend are devDependencies.
// Plugged in with `engine: faceApiTfjs` wherever the detector is (detectFaces, streams, extract).
import { createRequire } from 'node:module';
import * as path from 'node:path';
import type { Box, Detection, DetectorEngine } from '../../src/face/detector.js';
import type { RgbFrame } from '../../src/video/decode.js';

// Typed loosely on purpose: only these few calls are used.
interface FaceApi {
  tf: {
    setBackend(name: string): Promise<boolean>;
    ready(): Promise<void>;
    tensor3d(data: Uint8Array, shape: [number, number, number], dtype: 'int32'): { dispose(): void };
  };
  nets: { ssdMobilenetv1: { loadFromDisk(dir: string): Promise<void> } };
  SsdMobilenetv1Options: new (o: { minConfidence: number; maxResults: number }) => unknown;
  detectAllFaces(
    input: unknown,
    options: unknown,
  ): Promise<Array<{ score: number; box: { x: number; y: number; width: number; height: number } }>>;
}

let api: Promise<FaceApi> | undefined;

/** face-api on tfjs's wasm backend, loaded once per process. */
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

async function detectOne(frame: RgbFrame, opts: { minConfidence: number; maxResults: number }): Promise<Detection[]> {
  const faceapi = await load();
  const input = faceapi.tf.tensor3d(
    new Uint8Array(frame.data.buffer, frame.data.byteOffset, frame.data.byteLength),
    [frame.height, frame.width, 3],
    'int32',
  );
  try {
    const found = await faceapi.detectAllFaces(input, new faceapi.SsdMobilenetv1Options(opts));
    return found
      .map((d) => ({ box: [d.box.x, d.box.y, d.box.width, d.box.height] as Box, score: d.score }))
      .sort((a, b) => b.score - a.score);
  } finally {
    input.dispose();
  }
}

/** face-api's SSD MobileNet v1 on tfjs (wasm), one frame at a time. */
export const faceApiTfjs: DetectorEngine = {
  async detect(frames, opts) {
    const out: Detection[][] = [];
    for (const f of frames) out.push(await detectOne(f, opts));
    return out;
  },
};
