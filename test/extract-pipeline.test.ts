// The extraction pipeline (decode + detect ahead) writes the same
// cache, byte for byte, as one clip at a time; a clip that fails in the middle fails alike; the
// summary has each stage's seconds and clips/s.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { FrameEncoder } from '../src/clip/frame-encoder.js';
import { extractFeatures, type ExtractOptions } from '../src/data/extract.js';
import { resolveOusConfig } from '../src/ous/config.js';
import { fixture } from './helpers.js';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'ous-pipeline-'));
const at = (...p: string[]) => path.join(root, ...p);

function files(dir: string): Map<string, Buffer> {
  return new Map(
    (fs.readdirSync(dir, { recursive: true }) as string[])
      .sort()
      .filter((f) => fs.statSync(path.join(dir, f)).isFile())
      .map((f) => [f, fs.readFileSync(path.join(dir, f))]),
  );
}

test('pipelined extraction equals one clip at a time, byte for byte, failures included', async () => {
  const src = fixture('media', 'franck_0-6s.mp4');
  const entries: ExtractOptions['entries'] = [0, 1].map((i) => {
    const file = at(`clip${i}.mp4`);
    execFileSync('ffmpeg', ['-v', 'error', '-y', '-ss', String(2 * i), '-i', src, '-t', '1', '-c:v', 'libx264', file]);
    return { id: `clip${i}`, source: file, label: i, split: 'train' as const };
  });
  entries.splice(1, 0, { id: 'gone', source: at('missing.mp4'), label: 3, split: 'test' as const });
  // 3 frames a batch: the 4 frames of a view (T = 2, face + scene) straddle batches and clips
  const encoder = FrameEncoder.load(fixture('clip-dev', 'model'), { batchSize: 3 });
  const ous = resolveOusConfig({});
  const run = (out: string, pipeline: ExtractOptions['pipeline']) =>
    extractFeatures({
      entries,
      encoder,
      out,
      progress: false,
      pipeline,
      info: {
        clip: { path: 'clip-dev', hash: encoder.hash },
        frames: 2,
        scene: 'mask',
        views: 4,
        polarityLayer: 1,
        dataset: 'manifest',
        classNames: ous.classNames,
        polarityOfClass: ous.polarityOfClass,
      },
    });
  const one = await run(at('sequential'), false);
  const piped = await run(at('pipelined'), { ahead: 2 });
  assert.deepEqual([one.done, piped.done], [2, 2]);
  assert.deepEqual(
    piped.failed.map((f) => f.path),
    [at('missing.mp4')],
  );
  const [a, b] = [files(at('sequential')), files(at('pipelined'))];
  assert.deepEqual([...b.keys()], [...a.keys()]);
  for (const [name, bytes] of a) assert.ok(bytes.equals(b.get(name)!), `${name} differs`);
  // the summary: stage seconds, wall time, clips/s
  for (const k of ['decode', 'detect', 'encode', 'total'] as const) assert.ok(piped.seconds[k] > 0, `seconds.${k}`);
  assert.equal(piped.clipsPerSecond, piped.done / piped.seconds.total);
});
