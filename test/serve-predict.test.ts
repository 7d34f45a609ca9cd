// What `ous predict` and `ous serve` share: the timeline's frames and windows by hand; a run that
// needs only itself and CLIP (its cache deleted), a CLIP with other weights refused by hash; each
// window of a long video equals a prediction on that window's frames alone.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { planTimeline } from '../src/predict/timeline.js';
import { Predictor } from '../src/predict/predictor.js';
import { UserError } from '../src/util/errors.js';
import { assertClose } from './helpers.js';
import { tinyRun } from './serve-helpers.js';

test('timeline plan by hand: a short video is sampled as a training clip, a long one on a shared grid', () => {
  // 2 s at 8 fps, T = 4: one window, segment middles floor(16·(2i+1)/8) = 2, 6, 10, 14.
  assert.deepEqual(planTimeline(16, 8, 4, { window: 2, stride: 1 }), {
    indices: [2, 6, 10, 14],
    windows: [{ start: 0, end: 2, first: 0 }],
    stride: 1,
  });
  // 4 s: grid every 0.5 s at (j + 0.5)·0.5 s -> frames 2, 6, ..., 30; windows of 4 grid frames every 2 grid frames.
  const p = planTimeline(32, 8, 4, { window: 2, stride: 1 });
  assert.deepEqual(p.indices, [2, 6, 10, 14, 18, 22, 26, 30]);
  assert.deepEqual(p.windows, [
    { start: 0, end: 2, first: 0 },
    { start: 1, end: 3, first: 2 },
    { start: 2, end: 4, first: 4 },
  ]);
  // 4.5 s, stride 1.5 s (3 grid steps): windows at 0 and 1.5 s, then one more that ends with the video (grid of 9).
  const q = planTimeline(36, 8, 4, { window: 2, stride: 1.5 });
  assert.deepEqual(
    q.windows.map((w) => w.first),
    [0, 3, 5],
  );
  assert.throws(
    () => planTimeline(32, 8, 4, { window: 0, stride: 1 }),
    (e) => e instanceof UserError && /--window/.test(e.message),
  );
});

const runPredictsTitle =
  'a run predicts with only its folder and CLIP; ' +
  'other CLIP weights are refused; each window equals that window alone';
test(runPredictsTitle, async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ous-serve-predict-'));
  const t = await tinyRun(dir, { frames: 32 }); // 4 s clips
  fs.rmSync(path.join(dir, 'cache'), { recursive: true }); // inference must not need the training cache
  const clip = t.clips[0]!;
  const predictor = Predictor.load(t.run);
  const r = await predictor.predict(clip.file, { faceBox: clip.faceBox });
  assert.equal(r.windows.length, 3);
  assert.deepEqual(
    r.windows.map((w) => [w.start, w.end]),
    [
      [0, 2],
      [1, 3],
      [2, 4],
    ],
  );
  // The whole video is the mean of its windows.
  for (const c of predictor.classNames)
    assertClose([r.probabilities[c]!], [r.windows.reduce((a, w) => a + w.probabilities[c]!, 0) / 3], { atol: 1e-9 });
  // Window 1 (1–3 s) against the same frames as a clip of their own: frames 8..23 as images.
  const frames = path.join(dir, 'window1');
  fs.mkdirSync(frames);
  const ff = spawnSync('ffmpeg', [
    '-v',
    'error',
    '-i',
    clip.file,
    '-vf',
    `select='between(n\\,8\\,23)',scale=96:72:flags=area`,
    '-vsync',
    '0',
    '-pix_fmt',
    'rgb24',
    path.join(frames, 'f%02d.png'),
  ]);
  assert.equal(ff.status, 0, String(ff.stderr));
  assert.equal(fs.readdirSync(frames).length, 16);
  const alone = await predictor.predict(frames, { faceBox: clip.faceBox });
  assert.equal(alone.windows.length, 1);
  assertClose(Object.values(r.windows[1]!.probabilities), Object.values(alone.probabilities), {
    atol: 1e-5,
    what: 'window 1 vs the window alone',
  });
  assertClose(Object.values(r.windows[1]!.polarity!), Object.values(alone.polarity!), { atol: 1e-5, what: 'polarity' });
  assertClose([r.windows[1]!.sceneEffect!.totalVariation], [alone.sceneEffect!.totalVariation], { atol: 1e-5 });
  // A CLIP folder whose weights differ in one byte is refused, naming --clip.
  const other = path.join(dir, 'clip-other');
  fs.cpSync(t.clip, other, { recursive: true });
  const weights = fs.readdirSync(other).find((f) => f.endsWith('.safetensors'))!;
  const buf = fs.readFileSync(path.join(other, weights));
  buf[buf.length - 1] ^= 1;
  fs.writeFileSync(path.join(other, weights), buf);
  assert.throws(
    () => Predictor.load(t.run, { clip: other }),
    (e) => e instanceof UserError && /--clip .*not the ones/.test(e.message),
  );
  fs.rmSync(dir, { recursive: true, force: true });
});
