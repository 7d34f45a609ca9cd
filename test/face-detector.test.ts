// The SSD MobileNet v1 face detector on libtorch (src/face/ssd.ts) against face-api's own tfjs
// implementation of the same weights (reference/face-api.ts), on the shipped photos and video; its recall against boxes
// drawn by hand (group photo) and checked by eye (video); and face-api's NMS rules on made-up boxes. Then the
// face finder of issue 36 (src/face/detector.ts) on scenes composed of those real faces (face-scenes.ts): every face
// of a crowd, a wide frame, small faces, a dark frame, each against the boxes the composition puts there.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  detectFaces,
  detectFacesBatch,
  hintTiles,
  mergeDetections,
  type Box,
  type Detection,
} from '../src/face/detector.js';
import {
  aspectGeometry,
  faceApiModelDir,
  gridAnchors,
  readTfjsWeights,
  ssdMobilenetV1,
  toDetections,
} from '../src/face/ssd.js';
import { iou } from '../src/face/tracks.js';
import { decodeFrames, probeVideo, readImage, type RgbFrame } from '../src/video/decode.js';
import { fixture } from './helpers.js';
import { faceApiTfjs } from './reference/face-api.js';
import { darken, groupScene, padScene, photoFaces, score, solvayScenes, talkingFaces } from './face-scenes.js';

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
    const torch = await detectFaces(img, { minConfidence: 0.3, layout: 'square' });
    const tfjs = await detectFaces(img, { engine: faceApiTfjs, minConfidence: 0.3 });
    assertSame(torch, tfjs, name);
  }
  // drawn by hand on a 50-px grid: forehead to chin, ear to ear
  const group: Box[] = [
    [52, 80, 88, 115],
    [228, 128, 88, 116],
    [458, 52, 86, 114],
  ];
  const found = await detectFaces(await readImage(fixture('media', 'trackingjs_3faces_600x346.jpg')), {
    layout: 'square',
  });
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
  const torch = await detectFacesBatch(frames, { layout: 'square' });
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

const anchorsTitle =
  "grid anchors: face-api's 512² table regenerated from its first cells; a wide input keeps their pixels";
test(anchorsTitle, () => {
  const w = readTfjsWeights(path.join(faceApiModelDir(), 'ssd_mobilenetv1_model-weights_manifest.json'));
  const table = w.get('Output/extra_dim')!.data;
  const sizes = ssdMobilenetV1().anchorShapes;
  const maps: Array<[number, number]> = [32, 16, 8, 4, 2, 1].map((n) => [n, n]);
  const made = gridAnchors(sizes, 512, 512, maps);
  assert.equal(made.length, table.length);
  assert.ok(
    made.every((v, i) => Math.abs(v - table[i]!) < 1e-5),
    'every corner of the 5118 anchors',
  );
  // The first anchor of a 256 × 1024 input: the smallest face anchor, 0.1 × 512 = 51.2 px square, centred on
  // the first cell of a 16 × 64 map (8 px from the top and left, 16 px cells).
  const wide = gridAnchors(sizes, 256, 1024, [[16, 64]]);
  const expected = [(8 - 25.6) / 256, (8 - 25.6) / 1024, (8 + 25.6) / 256, (8 + 25.6) / 1024];
  expected.forEach((v, i) => assert.ok(Math.abs(wide[i]! - v) < 1e-5, `corner ${i}: ${wide[i]} vs ${v}`));
});

test("the input at the frame's aspect ratio: face-api's 512² pixels, sides multiples of 32, the frame inside", () => {
  // 640×360: s = 512 / √(640·360) = 1.0667 → 682.7 × 384 → 672 × 384; the frame fits at 672/640 = 1.05
  assert.deepEqual(aspectGeometry(640, 360), { width: 672, height: 384, step: 640 / 672 });
  // 1080×288: s = 0.9180 → 991.5 × 264.4 → 960 × 256; 1.125 source px per input px both ways (padded: 2.11)
  assert.deepEqual(aspectGeometry(1080, 288), { width: 960, height: 256, step: 1.125 });
  assert.deepEqual(aspectGeometry(512, 512), { width: 512, height: 512, step: 1 });
});

test('merging passes: the better box wins over an overlap above IoU 0.5 or a box 80% inside it', () => {
  const d = (box: Box, s: number): Detection => ({ box, score: s });
  const merged = mergeDetections([
    d([0, 0, 100, 100], 0.6),
    d([10, 0, 100, 100], 0.9), // IoU with the first 0.82: the first goes
    d([20, 20, 40, 40], 0.7), // inside the second (IoU 0.16): goes
    d([200, 0, 50, 50], 0.55), // apart: stays
    d([150, 0, 100, 100], 0.8), // overlaps the 0.9 box by 60 × 100 (IoU 0.43, 60% of each): stays
  ]);
  assert.deepEqual(
    merged.map((x) => x.score),
    [0.9, 0.8],
  );
});

test('tiles around hinted small faces: the smallest hint 80 input px tall, one tile for hints close together', () => {
  const d = (x: number, y: number, h: number): Detection => ({ box: [x, y, h, h], score: 0.3 });
  // hints 40 px tall: tile side 512 · 40 / 80 = 256 frame px, centred on the first, clamped into the frame
  const tiles = hintTiles({ width: 1280, height: 720 }, [d(100, 100, 40), d(130, 110, 40), d(900, 600, 50)]);
  assert.deepEqual(tiles, [
    [0, 0, 256, 256], // the second hint (centre 150, 130) is well inside it
    [797, 464, 256, 256], // centre (925, 625) less 128, y clamped to 720 − 256
  ]);
  // never finer than twice the frame's pixels (a tile of 256), never larger than the frame
  assert.equal(hintTiles({ width: 1280, height: 720 }, [d(100, 100, 10)])[0]![2], 256);
  assert.equal(hintTiles({ width: 300, height: 200 }, [d(100, 100, 60)])[0]![2], 200);
});

/** Faces found and false boxes over scenes, with the given options. */
async function tally(scenes: Array<{ frame: RgbFrame; faces: Box[] }>, opts = {}) {
  let [found, falseBoxes, faces] = [0, 0, 0];
  for (const s of scenes) {
    const r = score(await detectFaces(s.frame, opts), s.faces);
    [found, falseBoxes, faces] = [found + r.found, falseBoxes + r.falseBoxes, faces + s.faces.length];
  }
  return { found, falseBoxes, faces };
}

test('a group of 30 real faces (60-130 px) in 1280×720: ≥ 27 found, ≤ 2 false boxes; no cap at 20', async () => {
  const scene = groupScene(await photoFaces(), 1280, 720, 6, [60, 75, 90, 110, 130]);
  const r = await tally([scene]);
  assert.ok(r.found >= 27 && r.falseBoxes <= 2, `${r.found}/30 found, ${r.falseBoxes} false`);
  // face-api's own look (square, at most 20) is what issue 36 measured: no more than 20 ever
  const before = await tally([scene], { layout: 'square', maxResults: 20 });
  assert.ok(before.found <= 20);
  assert.equal((await detectFaces(scene.frame, { maxResults: 5 })).length, 5);
});

const solvayTitle =
  "the Solvay 1927 photo (1280×926, ViSP's 30 annotated boxes): ≥ 27 found, ≤ 2 extra boxes; " +
  'a 1280×160 strip of it holding 18 of the faces: ≥ 16 found';
test(solvayTitle, async () => {
  const [whole, strip] = await solvayScenes();
  assert.deepEqual([whole!.faces.length, strip!.faces.length], [30, 18]);
  const w = score(await detectFaces(whole!.frame), whole!.faces);
  assert.ok(w.found >= 27 && w.falseBoxes <= 2, `${w.found}/30 found, ${w.falseBoxes} extra`);
  // face-api's own look (a square input, at most 20 boxes) found 19 of them (issue 36)
  assert.ok(score(await detectFaces(whole!.frame, { layout: 'square', maxResults: 20 }), whole!.faces).found <= 20);
  const s = score(await detectFaces(strip!.frame), strip!.faces);
  assert.ok(s.found >= 16 && s.falseBoxes <= 2, `${s.found}/18 found, ${s.falseBoxes} extra`);
});

test('the talking face padded to 1080×288 is found in ≥ 22 of 24 frames', async () => {
  const scenes = (await talkingFaces(24)).map((f) => padScene(f, 1080, 288, 360, 0));
  const r = await tally(scenes);
  assert.ok(r.found >= 22 && r.falseBoxes === 0, `${r.found}/24 found, ${r.falseBoxes} false`);
});

test('faces 58 px tall in 1280×720: ≥ 22 of 24 found (tiles find what the whole-frame pass misses)', async () => {
  const scene = groupScene(await photoFaces(), 1280, 720, 6, [58, 58, 58, 58]);
  const r = await tally([scene]);
  assert.ok(r.found >= 22 && r.falseBoxes <= 1, `${r.found}/24 found, ${r.falseBoxes} false`);
});

test('a dark talking face (pixels × 0.25) is found once its contrast is stretched, and not without', async () => {
  const scenes = (await talkingFaces(4)).map((f) => darken(padScene(f, 360, 288, 0, 0), 0.25));
  const r = await tally(scenes);
  assert.equal(r.found, 4);
  assert.equal((await tally(scenes, { stretch: false })).found, 0);
});
