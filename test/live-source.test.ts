// Live sources read frame by frame: a stream on stdin sampled at the timeline's rate (frame count and
// pixels against ffmpeg's own decode of the same times), a file paced at real time, a consumer that
// falls behind (frames dropped and counted, never queued without bound), a stream that stalls and
// one that breaks (one line each), and the PPM reader on frames split across chunks.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { LiveSource, PpmReader, liveKind, type LiveFrame } from '../src/video/live.js';
import { UserError } from '../src/util/errors.js';
import { fixture } from './helpers.js';

const franck = fixture('media', 'franck_0-6s.mp4'); // 6 s, 24 fps, 360×288

/** A file as the stdin ffmpeg inherits (a descriptor, as `ous predict -` hands on its own). */
const stdinOf = (file: string): number => fs.openSync(file, 'r');

/**
 * Grid frame j at 4 a second, by the file path's rule (planTimeline: the last source frame at or before
 * the segment's middle, floor((j + 0.5) · 24 / 4)), from ffmpeg's own decode of every frame, as RGB.
 */
function gridFrame(j: number): Buffer {
  const r = spawnSync('ffmpeg', ['-v', 'error', '-i', franck, '-f', 'rawvideo', '-pix_fmt', 'rgb24', 'pipe:1'], {
    maxBuffer: 1 << 28,
  });
  const size = 360 * 288 * 3;
  const n = Math.floor(((j + 0.5) * 24) / 4);
  return r.stdout.subarray(n * size, (n + 1) * size);
}

test('liveKind: stdin, cameras and network streams are live; a file only when paced', () => {
  assert.equal(liveKind('-'), 'stdin');
  assert.equal(liveKind('/dev/video0'), 'camera');
  assert.equal(liveKind('rtsp://cam.local/stream'), 'network');
  assert.equal(liveKind('srt://127.0.0.1:9000'), 'network');
  assert.equal(liveKind('clip.mp4'), 'file');
});

test('PpmReader: frames split across chunks at every byte come out whole', () => {
  const a = Buffer.concat([Buffer.from('P6\n2 1\n255\n'), Buffer.from([1, 2, 3, 4, 5, 6])]);
  const b = Buffer.concat([Buffer.from('P6\n1 1\n255\n'), Buffer.from([7, 8, 9])]);
  const all = Buffer.concat([a, b]);
  for (let cut = 1; cut < all.length; cut++) {
    const r = new PpmReader();
    const got = [...r.push(all.subarray(0, cut)), ...r.push(all.subarray(cut))];
    assert.deepEqual(
      got.map((f) => [f.width, f.height, [...f.data]]),
      [
        [2, 1, [1, 2, 3, 4, 5, 6]],
        [1, 1, [7, 8, 9]],
      ],
    );
  }
  assert.throws(() => new PpmReader().push(Buffer.from('<html>')), UserError);
});

test('a stream on stdin: every grid frame, in order, the source frame the file path reads', async () => {
  const src = new LiveSource('-', { fps: 4, queue: 1000, stdinFd: stdinOf(franck) });
  const frames: LiveFrame[] = [];
  for await (const f of src) frames.push(f);
  assert.equal(frames.length, 24); // 6 s at 4 frames a second
  assert.deepEqual(
    frames.map((f) => f.index),
    [...Array(24).keys()],
  );
  assert.equal(frames[10]!.t, 2.5);
  assert.equal(frames[10]!.frame.width, 360);
  for (const j of [0, 10, 23]) {
    const want = gridFrame(j);
    const got = Buffer.from(frames[j]!.frame.data);
    assert.equal(got.length, want.length);
    assert.ok(got.equals(want), `grid frame ${j} is not source frame ${Math.floor(((j + 0.5) * 24) / 4)}`);
  }
  assert.equal(src.dropped, 0);
});

test('a consumer that falls behind: old frames are dropped and counted, the newest kept', async () => {
  const src = new LiveSource('-', { fps: 8, queue: 2, stdinFd: stdinOf(franck) });
  const seen: number[] = [];
  for await (const f of src) {
    seen.push(f.index);
    await sleep(150); // far slower than ffmpeg decodes: the backlog must not grow
  }
  assert.ok(src.dropped > 0, 'nothing was dropped');
  assert.equal(seen.length + src.dropped, 48, 'every frame is either delivered or counted as dropped');
  assert.equal(seen.at(-1), 47, 'the last frame of the stream is delivered');
  for (let i = 1; i < seen.length; i++) assert.ok(seen[i]! > seen[i - 1]!);
});

test('a file paced at real time takes its own length', async () => {
  const clip = fixture('media', 'franck_0-6s.mp4');
  const start = Date.now();
  const src = new LiveSource(clip, { fps: 2, queue: 100 });
  assert.equal(src.kind, 'file');
  let n = 0;
  for await (const _ of src) n++;
  assert.equal(n, 12);
  // ffmpeg -re: 6 s of video are not read in much less than 6 s (this is a check of pacing, not speed).
  assert.ok(Date.now() - start > 4000, `paced file read in ${Date.now() - start} ms`);
});

test('a stream that stalls gets one line, after the frames that came', async () => {
  // Half a stream through a FIFO, then nothing, never closed. Opened read-write, so that opening it
  // does not wait for a reader; ffmpeg reads what was written and then waits.
  const fifo = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'ous-live-')), 'stdin');
  execFileSync('mkfifo', [fifo]);
  const input = fs.openSync(fifo, 'r+');
  const ts = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'ous-live-')), 'franck.ts');
  spawnSync('ffmpeg', ['-v', 'error', '-i', franck, '-c', 'copy', ts]); // MPEG-TS: readable from any prefix
  const bytes = fs.readFileSync(ts);
  fs.writeSync(input, bytes.subarray(0, bytes.length >> 1)); // less than a pipe holds (64 KiB)
  const src = new LiveSource('-', { fps: 4, queue: 1000, stallSeconds: 1, stdinFd: input });
  let n = 0;
  await assert.rejects(
    (async () => {
      for await (const _ of src) n++;
    })(),
    (err: Error) => err instanceof UserError && /^stdin: the stream stalled \(no frame for 1 s/.test(err.message),
  );
  assert.ok(n > 0, 'the frames before the stall were delivered');
  fs.closeSync(input);
});

test('a network stream that cannot be opened breaks with one line naming it', async () => {
  const src = new LiveSource('tcp://127.0.0.1:9', { fps: 4 });
  await assert.rejects(
    (async () => {
      for await (const _ of src);
    })(),
    (err: Error) =>
      err instanceof UserError &&
      /^tcp:\/\/127\.0\.0\.1:9: the stream broke after 0 frames \(.+\)$/.test(err.message) &&
      !/0x[0-9a-f]{6}/.test(err.message),
  );
});

test('a consumer that blocks its thread (as libtorch does): the reader thread drains and drops meanwhile', async () => {
  // A paced source (6 s at 8 frames a second) and a consumer that holds its thread 300 ms a frame: it
  // can take about 20 of the 48 frames. Read on this thread, ffmpeg's pipe would fill while it is held
  // and slow the source down (every frame late, none dropped); read on its own thread, the stale frames
  // are dropped and the source keeps its pace.
  const src = new LiveSource(franck, { fps: 8, queue: 2 });
  const hold = new Int32Array(new SharedArrayBuffer(4));
  const seen: number[] = [];
  for await (const f of src) {
    seen.push(f.index);
    Atomics.wait(hold, 0, 0, 300); // a synchronous 300 ms: no event loop runs on this thread
  }
  assert.equal(seen.length + src.dropped, 48, 'every frame is either delivered or counted as dropped');
  assert.ok(src.dropped >= 10, `only ${src.dropped} dropped: the source was slowed instead`);
  assert.equal(seen.at(-1), 47, 'the last frame of the stream is delivered');
});
