// One decode per clip: the streams of several samplings made from one decode and one detection
// pass equal the streams made one sampling at a time (which decode and detect on their own).
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { buildStreams, buildStreamViews, type Sampling, type Streams } from '../src/streams/index.js';
import { fixture } from './helpers.js';

function assertSameStreams(a: Streams, b: Streams, what: string): void {
  assert.equal(a.frames.length, b.frames.length, what);
  assert.deepEqual(
    [a.faceMissing, a.missingFrames, a.width, a.height, a.frameCount],
    [b.faceMissing, b.missingFrames, b.width, b.height, b.frameCount],
    what,
  );
  assert.deepEqual(a.otherFaces, b.otherFaces, `${what}: other faces`);
  a.frames.forEach((f, i) => {
    const g = b.frames[i]!;
    assert.deepEqual([f.index, f.box, f.detected], [g.index, g.box, g.detected], `${what}: frame ${i}`);
    assert.ok(Buffer.from(f.face.data).equals(Buffer.from(g.face.data)), `${what}: frame ${i}: face pixels differ`);
    assert.ok(Buffer.from(f.scene.data).equals(Buffer.from(g.scene.data)), `${what}: frame ${i}: scene pixels differ`);
  });
}

test('streams of a test and two train samplings from one decode equal the streams made separately', async () => {
  const video = fixture('media', 'franck_0-6s.mp4');
  const samplings: Sampling[] = [
    { mode: 'test', seed: 0 },
    { mode: 'train', seed: 2 },
    { mode: 'train', seed: 3 },
  ];
  const opts = { frames: 4 };
  const together = await buildStreamViews(video, opts, samplings);
  assert.equal(together.length, 3);
  // the train samplings draw other frames than the test one (so the union really is shared)
  assert.notDeepEqual(
    together[1]!.frames.map((f) => f.index),
    together[0]!.frames.map((f) => f.index),
  );
  for (const [k, v] of samplings.entries()) {
    const alone = await buildStreams(video, { ...opts, mode: v.mode, seed: v.seed });
    assertSameStreams(together[k]!, alone, `${v.mode} seed ${v.seed}`);
  }
  // decode and detect are booked once, on the first result
  assert.deepEqual([together[1]!.timings.decode, together[2]!.timings.detect], [0, 0]);
});
