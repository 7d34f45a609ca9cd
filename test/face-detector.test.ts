// The SSD MobileNet v1 face detector on libtorch (src/face/ssd.ts) against face-api's own tfjs
// implementation of the same weights (reference/face-api.ts), on the shipped photos and video; its recall against boxes
// drawn by hand (group photo) and checked by eye (video); and face-api's NMS rules on made-up boxes.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { detectFaces, detectFacesBatch, type Box, type Detection } from '../src/face/detector.js';
import { faceApiModelDir, readTfjsWeights, toDetections } from '../src/face/ssd.js';
import { iou } from '../src/face/tracks.js';
import { decodeFrames, probeVideo, readImage } from '../src/video/decode.js';
import { fixture } from './helpers.js';
import { faceApiTfjs } from './reference/face-api.js';

/** Each expected box matched by a distinct found box at IoU ≥ minIou: the fraction matched. */
function recall(found: Box[], expected: Box[], minIou = 0.5): number {
  const used = new Set<number>();
  let hits = 0;
  for (const e of expected) {
    const j = found.findIndex((f, k) => !used.has(k) && iou(f, e) >= minIou);
    if (j >= 0) {
      used.add(j);
      hits++;
    }
  }
  return hits / expected.length;
}

function assertSame(torch: Detection[], tfjs: Detection[], what: string): void {
  assert.equal(torch.length, tfjs.length, `${what}: ${torch.length} faces on libtorch, ${tfjs.length} on tfjs`);
  tfjs.forEach((t, i) => {
    const o = iou(torch[i]!.box, t.box);
    assert.ok(o >= 0.8, `${what}: face ${i} IoU ${o.toFixed(3)} < 0.8 (${torch[i]!.box} vs ${t.box})`);
    assert.ok(Math.abs(torch[i]!.score - t.score) < 0.01, `${what}: face ${i} score ${torch[i]!.score} vs ${t.score}`);
  });
}

test('the tfjs weights manifest: every byte of the .bin read, uint8 weights dequantized as q·scale + min', () => {
  const manifest = path.join(faceApiModelDir(), 'ssd_mobilenetv1_model-weights_manifest.json');
  const w = readTfjsWeights(manifest);
  const entry = JSON.parse(fs.readFileSync(manifest, 'utf8'))[0].weights.find(
    (e: { name: string }) => e.name === 'MobilenetV1/Conv2d_0_pointwise/weights',
  );
  // the first weight's first byte
  const first = fs.readFileSync(path.join(faceApiModelDir(), 'ssd_mobilenetv1_model.bin'))[0]!;
  const firstName = JSON.parse(fs.readFileSync(manifest, 'utf8'))[0].weights[0];
  const got = w.get(firstName.name)!;
  assert.ok(Math.abs(got.data[0]! - (first * firstName.quantization.scale + firstName.quantization.min)) < 1e-6);
  assert.deepEqual(w.get(entry.name)!.shape, [3, 3, 3, 32]);
  // 32²·3 + 16²·6 + 8²·6 + 4²·6 + 2²·6 + 6 anchors
  assert.deepEqual(w.get('Output/extra_dim')!.shape, [1, 5118, 4]);
});

test("face-api's NMS and box scaling on made-up boxes", () => {
  // (y1, x1, y2, x2) relative; box 0 overlaps box 1 with IoU 0.6 (suppressed),
  // box 2 overlaps box 1 with IoU 0.2 (kept), box 3 scores at the threshold
  const boxes = Float32Array.from([
    0,
    0,
    0.5,
    0.5,
    0,
    0.125,
    0.5,
    0.625,
    0,
    0.625 - 1 / 6,
    0.5,
    1.125 - 1 / 6,
    0.6,
    0.6,
    0.9,
    0.9,
  ]);
  const scores = Float32Array.from([0.9, 0.95, 0.7, 0.5]);
  const d = toDetections(boxes, scores, 200, 100, { minConfidence: 0.5 });
  assert.equal(d.length, 2); // box 1 (best), then box 2; box 0 suppressed (IoU 0.6 > 0.5), box 3 not above 0.5
  // a 200x100 frame is padded to 200x200: relative coordinates scale by 200 on both axes
  assert.deepEqual(
    d.map((x) => x.box.map((v) => Math.round(v * 10) / 10)),
    [
      [25, 0, 100, 100],
      [91.7, 0, 100, 100],
    ],
  );
  assert.deepEqual(
    d.map((x) => Math.round(x.score * 100)),
    [95, 70],
  );
  assert.equal(toDetections(boxes, scores, 200, 100, { minConfidence: 0.5, maxResults: 1 }).length, 1);
});

const photosTitle =
  'libtorch SSD equals face-api on tfjs on the shipped photos; 3/3 faces of the group photo at IoU ≥ 0.5';
test(photosTitle, async () => {
  for (const name of ['grace_hopper_512.jpg', 'opencvdoc_smiling_man_434.jpg', 'trackingjs_3faces_600x346.jpg']) {
    const img = await readImage(fixture('media', name));
    const torch = await detectFaces(img, { minConfidence: 0.3 });
    const tfjs = await detectFaces(img, { engine: faceApiTfjs, minConfidence: 0.3 });
    assertSame(torch, tfjs, name);
  }
  // drawn by hand on a 50-px grid: forehead to chin, ear to ear
  const group: Box[] = [
    [52, 80, 88, 115],
    [228, 128, 88, 116],
    [458, 52, 86, 114],
  ];
  const found = await detectFaces(await readImage(fixture('media', 'trackingjs_3faces_600x346.jpg')));
  assert.equal(
    recall(
      found.map((d) => d.box),
      group,
    ),
    1,
  );
});

const videoFramesTitle =
  'libtorch SSD equals face-api on tfjs on the video frames, batched; every frame hits the box checked by eye';
test(videoFramesTitle, async () => {
  const golden = JSON.parse(fs.readFileSync(fixture('media', 'franck_0-6s.faces.json'), 'utf8')) as {
    samples: Array<{ frame: number; box: Box }>;
  };
  const samples = golden.samples.filter((_, i) => i % 2 === 0); // 8 of the 16
  const file = fixture('media', 'franck_0-6s.mp4');
  const { frames } = await decodeFrames(
    file,
    await probeVideo(file),
    samples.map((s) => s.frame),
  );
  const torch = await detectFacesBatch(frames);
  const tfjs = await detectFacesBatch(frames, { engine: faceApiTfjs });
  torch.forEach((t, i) => {
    assertSame(t, tfjs[i]!, `frame ${samples[i]!.frame}`);
    assert.equal(
      recall(
        t.map((d) => d.box),
        [samples[i]!.box],
      ),
      1,
      `frame ${samples[i]!.frame}: no face at IoU ≥ 0.5 with ${samples[i]!.box}`,
    );
  });
});
