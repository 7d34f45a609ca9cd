// A file streamed with nothing dropped gives the file path's windows (the same grid frames, boxes and
// probabilities). Streaming windows are spans of source time: a source with a gap of dropped frames gives windows at
// [k·stride, k·stride + window) s of source time, each saying how many of its T frames it lacked, and
// the windows away from the gap equal those of the same stream with nothing dropped; a slow tower
// (every frame holds the thread, as libtorch does) behind a paced source: the reader drops, every
// window stays on its span and the latency stays bounded instead of growing with the backlog.
import { before, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { Predictor } from '../src/predict/predictor.js';
import type { InFrame, StreamWindow } from '../src/predict/stream.js';
import { detectFacesBatch } from '../src/face/detector.js';
import { LiveSource, type LiveFrame } from '../src/video/live.js';
import { assertClose, fixture, mirroredPair } from './helpers.js';
import { tinyRun, type TinyRun } from './serve-helpers.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ous-live-windows-'));
const franck = fixture('media', 'franck_0-6s.mp4'); // 6 s, the face throughout

let t: TinyRun;
let p: Predictor;
let frames: LiveFrame[]; // franck at the grid rate (T = 4, window 2 s: 2 a second), t = 0, 0.5, ... 5.5
before(async () => {
  t = await tinyRun(path.join(dir, 'tiny'));
  p = Predictor.load(t.run, { clip: t.clip });
  frames = [];
  for await (const f of new LiveSource(franck, { fps: 2, unpaced: true, queue: 100 })) frames.push(f);
});

async function* arriving(list: LiveFrame[]): AsyncIterable<InFrame> {
  for (const f of list) yield { frame: f.frame, t: f.t, arrivedAt: performance.now() };
}

async function windowsOf(list: LiveFrame[]) {
  const out: StreamWindow[] = [];
  const s = await p.predictStream(arriving(list), { onWindow: (w) => out.push(w) });
  return { windows: out, summary: s };
}

test('a file streamed with nothing dropped: the windows of the file path, frame for frame', async () => {
  const file = await p.predict(franck);
  const streamed = await windowsOf(frames);
  assert.equal(streamed.summary.dropped, 0);
  assert.deepEqual(
    streamed.windows.map((w) => [w.start, w.end, w.faceFrames, w.faceBox]),
    file.windows.map((w) => [w.start, w.end, w.faceFrames, w.faceBox]),
  );
  streamed.windows.forEach((w, k) =>
    assertClose(Object.values(w.probabilities), Object.values(file.windows[k]!.probabilities), {
      atol: 1e-6,
      what: `window ${k}`,
    }),
  );
});

test('two persons streamed (--all-persons): each person as the file path has them, window for window', async () => {
  const pair = mirroredPair(path.join(dir, 'pair.mp4')); // 720×288: the face and its mirror image
  const file = await p.predict(pair, { persons: 'all' });
  const src = new LiveSource(pair, { fps: 2, unpaced: true, queue: 100 });
  const windows: StreamWindow[] = [];
  const s = await p.predictStream(src, { persons: 'all', onWindow: (w) => windows.push(w) });
  assert.equal(s.persons?.length, 2);
  // Ids go by confirmation live and left to right in the file path: match persons by their half.
  const half = (box: number[]) => (box[0]! + box[2]! / 2 < 360 ? 'left' : 'right');
  for (const fp of file.persons!) {
    const side = half(fp.windows[0]!.faceBox);
    const mine = windows.filter((w) => half(w.faceBox) === side);
    assert.deepEqual(
      mine.map((w) => [w.start, w.faceFrames, w.faceBox]),
      fp.windows.map((w) => [w.start, w.faceFrames, w.faceBox]),
      side,
    );
    mine.forEach((w, k) =>
      assertClose(Object.values(w.probabilities), Object.values(fp.windows[k]!.probabilities), {
        atol: 1e-6,
        what: `${side} window ${k}`,
      }),
    );
  }
});

test('a gap of dropped frames: windows on their source spans, each with the frames it lacked', async () => {
  assert.equal(frames.length, 12);
  const whole = await windowsOf(frames);
  // The frames at 2, 2.5 and 3 s never arrive.
  const gap = await windowsOf(frames.filter((f) => f.t < 2 || f.t > 3));
  const spans = (ws: StreamWindow[]) => ws.map((w) => [w.start, w.end]);
  const expected = [0, 1, 2, 3, 4].map((k) => [k, k + 2]);
  assert.deepEqual(spans(whole.windows), expected);
  assert.deepEqual(spans(gap.windows), expected, 'the windows keep their source spans over the gap');
  // Of each span's 4 grid frames (at start + 0, 0.5, 1, 1.5 s), those at 2, 2.5, 3 s are missing.
  assert.deepEqual(
    gap.windows.map((w) => w.dropped),
    [0, 2, 3, 1, 0],
  );
  assert.deepEqual(
    whole.windows.map((w) => w.dropped),
    [0, 0, 0, 0, 0],
  );
  // Windows whose spans hold no missing frame saw the same frames: the same answer.
  for (const k of [0, 4])
    assertClose(Object.values(gap.windows[k]!.probabilities), Object.values(whole.windows[k]!.probabilities), {
      atol: 1e-5,
      what: `window ${k}`,
    });
  for (const w of gap.windows) {
    assert.ok(typeof w.latency === 'number' && w.latency >= 0, 'latency reported');
    assert.equal(w.faceFrames, 4, 'the face on every sampled frame'); // a span's few frames are repeated up to T
  }
  assert.equal(gap.summary.frames, 9);
  assert.equal(gap.summary.duration, 6);
  assert.ok(gap.summary.latency.p95 >= 0);
});

test('a slow tower behind a paced source: the reader drops, the windows stay on their spans', async () => {
  const twelve = path.join(dir, 'twelve.mkv');
  const r = spawnSync('ffmpeg', ['-v', 'error', '-y', '-stream_loop', '1', '-i', franck, '-c', 'copy', twelve]);
  assert.equal(r.status, 0, String(r.stderr));
  // 12 s at 2 frames a second; each frame holds this thread 1.2 s before its detection (a tower slower
  // than real time: it can take about 10 of the 24 frames).
  const src = new LiveSource(twelve, { fps: 2, queue: 2 });
  const hold = new Int32Array(new SharedArrayBuffer(4));
  const windows: StreamWindow[] = [];
  const s = await p.predictStream(src, {
    lookahead: 1,
    dropped: () => src.dropped,
    onWindow: (w) => windows.push(w),
    detect: (fr) => {
      Atomics.wait(hold, 0, 0, 1200);
      return detectFacesBatch(fr);
    },
  });
  assert.ok(s.dropped >= 8, `only ${s.dropped} dropped: the source was slowed instead`);
  assert.equal(s.frames + s.dropped, 24, 'every frame is either classified or counted as dropped');
  // Every span of the 12 s is a window, at its own source time: none stretched over the dropped frames.
  assert.deepEqual(
    windows.map((w) => [w.start, w.end]),
    [...Array(11).keys()].map((k) => [k, k + 2]),
  );
  assert.ok(
    windows.some((w) => w.dropped > 0),
    'the windows say what they lacked',
  );
  // Bounded, not growing with the backlog: read on this thread, the source would be slowed to the
  // tower's pace and the last windows would come ~15 s after their frames. Here a window waits for
  // its look-ahead (1 s of source), up to two queued frames (2.4 s) and its own work: a generous bound.
  assert.ok(s.latency.p95 < 8000, `latency p95 ${s.latency.p95} ms`);
});
