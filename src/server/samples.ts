// The sample clips `ous serve` offers (GET /api/samples, POST /api/predict?sample=N): drawn from the
// built-in benchmark at start (4 s, one per class, a known face box), so the page works without an
// upload and nothing is downloaded.
import { generateBenchmark } from '../synthetic/benchmark.js';
import { probeUpload, type Probed } from './upload.js';
import type { FaceBox } from './query.js';

export interface Sample {
  name: string; // "0.mp4": its URL's last part
  file: string;
  faceBox: FaceBox; // the drawn face's box: no detection needed
  probed: Probed;
}

/** `count` clips (up to 7) into `dir`; none, and one line in the log, if they cannot be made. */
export async function makeSamples(dir: string, count: number, log: (line: string) => void): Promise<Sample[]> {
  if (count <= 0) return [];
  try {
    const b = await generateBenchmark(
      { out: dir, seed: 1, trainPerClass: 0, testPerClass: 1, frames: 32, width: 240, height: 180, agreement: 1 },
      { progress: false },
    );
    return await Promise.all(
      b.clips.slice(0, count).map(async (c, i) => ({
        name: `${i}.mp4`,
        file: c.file,
        faceBox: c.faceBox,
        probed: await probeUpload(c.file, { maxBytes: Infinity, maxSeconds: Infinity }),
      })),
    );
  } catch (err) {
    log(`serve: no sample clips (${(err as Error).message})`);
    return [];
  }
}
