// Streams benchmark: for a 10-second 360p video, the time to decode + detect + crop 16 frames, and
// each step's share, with three detectors in one run: face-api on tfjs, face-api's own look on
// libtorch (layout 'square') and the face finder (the default).
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { buildStreams } from '../src/streams/index.js';
import { detectFacesBatch, type DetectorEngine } from '../src/face/detector.js';
import { faceApiTfjs } from '../test/reference/face-api.js';
import { getNumThreads } from '../src/torch/index.js';
import { packageRoot } from '../src/util/paths.js';
import { median } from './lib.js';
import type { RgbFrame } from '../src/video/decode.js';
import { groupScene, padScene, photoFaces, talkingFaces } from '../test/face-scenes.js';

export async function benchStreams(quick: boolean): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ous-bench-streams-'));
  const video = path.join(dir, 'talking_10s_640x360.mp4');
  // 10 s of the real talking-face clip, looped and scaled to 360p.
  execFileSync('ffmpeg', [
    '-v',
    'error',
    '-y',
    '-stream_loop',
    '2',
    '-i',
    path.join(packageRoot(), 'fixtures', 'media', 'franck_0-6s.mp4'),
    '-t',
    '10',
    '-vf',
    'scale=640:360',
    '-c:v',
    'libx264',
    '-pix_fmt',
    'yuv420p',
    video,
  ]);
  type Name = 'tfjs' | 'square' | 'finder';
  const engines: Name[] = ['tfjs', 'square', 'finder'];
  // face-api's own look at a frame, on libtorch, plugged in where an engine goes (streams take no layout)
  const square: DetectorEngine = { detect: (frames, o) => detectFacesBatch(frames, { ...o, layout: 'square' }) };
  const engineOf: Record<Name, DetectorEngine | undefined> = { tfjs: faceApiTfjs, square, finder: undefined };
  // loads each detector
  for (const detector of engines) await buildStreams(video, { frames: 2, detector: engineOf[detector] });
  const runs = quick ? 1 : 3;
  type Timing = { total: number; decode: number; detect: number; crop: number };
  const best = new Map<Name, Timing>();
  const ratios: number[] = []; // tfjs's detect time / face-api's look on libtorch, each run's back to back
  const finderRatios: number[] = []; // the finder's detect time / face-api's look on libtorch
  // the two detectors alternate, so that a noisy neighbour slows both alike
  for (let r = 0; r < runs; r++) {
    const detect = new Map<Name, number>();
    for (const detector of r % 2 ? [...engines].reverse() : engines) {
      const t0 = process.hrtime.bigint();
      const s = await buildStreams(video, { frames: 16, detector: engineOf[detector] });
      const total = Number(process.hrtime.bigint() - t0) / 1e9;
      detect.set(detector, s.timings.detect);
      const b = best.get(detector);
      if (!b || total < b.total) best.set(detector, { total, ...s.timings });
    }
    ratios.push(detect.get('tfjs')! / detect.get('square')!);
    finderRatios.push(detect.get('finder')! / detect.get('square')!);
  }
  console.log(
    `\nStreams of a 10-second 640x360 video, 16 frames (best of ${runs}; ` +
      `${os.cpus()[0]?.model}, ${getNumThreads()} threads)`,
  );
  for (const detector of engines) {
    const b = best.get(detector)!;
    const pct = (v: number) => `${((100 * v) / b.total).toFixed(0)}%`;
    const name = {
      tfjs: 'face-api on tfjs wasm          ',
      square: "face-api's look on libtorch    ",
      finder: 'face finder (aspect, tiles)    ',
    }[detector];
    console.log(
      `${name}: total ${b.total.toFixed(2)} s: decode ${b.decode.toFixed(2)} s (${pct(b.decode)}), ` +
        `detect ${b.detect.toFixed(2)} s (${pct(b.detect)}, ` +
        `${((1000 * b.detect) / 16).toFixed(0)} ms/frame), crop ${b.crop.toFixed(3)} s (${pct(b.crop)})`,
    );
  }
  const [before, after, finder] = engines.map((e) => best.get(e)!.detect);
  const list = (r: number[]) =>
    [...r]
      .sort((a, b) => a - b)
      .map((x) => x.toFixed(2))
      .join(', ');
  console.log(
    `libtorch speed-up over tfjs: ${median(ratios).toFixed(2)}x per frame, the median of the runs' ratios ` +
      `(${list(ratios)}); best against best ${(before! / after!).toFixed(2)}x`,
  );
  console.log(
    `the finder's time per frame / face-api's look's: ${median(finderRatios).toFixed(2)} (${list(finderRatios)}); ` +
      `best against best ${(finder! / after!).toFixed(2)}`,
  );
  await benchShapes(runs);
  fs.rmSync(dir, { recursive: true, force: true });
}

/**
 * Detection alone, per frame, on frames of other shapes (made of the real faces, test/face-scenes.ts),
 * face-api's look on libtorch against the finder, alternating: a wide frame, a 720p group of 30
 * faces, 720p frames of 58-px faces (where the finder spends tiles), 720p with one large face.
 */
async function benchShapes(runs: number): Promise<void> {
  const faces = await photoFaces();
  const talking = await talkingFaces(4);
  const shapes: Array<[string, RgbFrame[]]> = [
    ['1080x288, the talking face padded', talking.map((f) => padScene(f, 1080, 288, 360, 0).frame)],
    ['1280x720, 30 faces of 60-130 px', [groupScene(faces, 1280, 720, 6, [60, 75, 90, 110, 130]).frame]],
    ['1280x720, 24 faces of 58 px', [groupScene(faces, 1280, 720, 6, [58, 58, 58, 58]).frame]],
    ['1280x720, one face of 300 px', [groupScene(faces.slice(3), 1280, 720, 1, [300]).frame]],
  ];
  console.log(`\nDetection per frame by frame shape (best of ${runs}):`);
  for (const [name, frames] of shapes) {
    const best = { square: Infinity, finder: Infinity };
    for (let r = 0; r < runs + 1; r++)
      for (const layout of ['square', 'finder'] as const) {
        const t0 = process.hrtime.bigint();
        for (const f of frames) await detectFacesBatch([f], { layout: layout === 'square' ? 'square' : 'aspect' });
        const ms = Number(process.hrtime.bigint() - t0) / 1e6 / frames.length;
        if (r > 0) best[layout] = Math.min(best[layout], ms); // run 0 warms each size up
      }
    console.log(
      `${name.padEnd(36)} face-api's look ${best.square.toFixed(0)} ms, finder ${best.finder.toFixed(0)} ms ` +
        `(${(best.finder / best.square).toFixed(2)}x)`,
    );
  }
}
