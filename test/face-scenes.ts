// Many-face test scenes made of the real faces of fixtures/media (issue 36): each face's box drawn
// by hand (or checked by eye, the video's) in its source, its crop pasted at a known scale and place,
// so every scene's true boxes follow from how it was composed, independent of any detector.
// Used by test/face-detector.test.ts and `bench faces`.
import * as fs from 'node:fs';
import type { Box, Detection } from '../src/face/detector.js';
import { iou } from '../src/face/tracks.js';
import { decodeFrames, probeVideo, readImage, type RgbFrame } from '../src/video/decode.js';
import { rng } from '../src/util/random.js';
import { fixture } from './helpers.js';

/** A face in a source image: the image and its box [x, y, w, h], forehead to chin, ear to ear. */
export interface SourceFace {
  image: RgbFrame;
  box: Box;
}

/** The five faces of the shipped photos, boxes drawn by hand on a 25-px grid. */
export async function photoFaces(): Promise<SourceFace[]> {
  const three = await readImage(fixture('media', 'trackingjs_3faces_600x346.jpg'));
  const grace = await readImage(fixture('media', 'grace_hopper_512.jpg'));
  const man = await readImage(fixture('media', 'opencvdoc_smiling_man_434.jpg'));
  return [
    { image: three, box: [52, 80, 88, 115] },
    { image: three, box: [228, 128, 88, 116] },
    { image: three, box: [458, 52, 86, 114] },
    { image: grace, box: [170, 120, 185, 190] },
    { image: man, box: [148, 105, 150, 185] },
  ];
}

/** `count` frames of the talking-face clip, evenly spread, each with the box checked by eye nearest to it. */
export async function talkingFaces(count: number): Promise<SourceFace[]> {
  const file = fixture('media', 'franck_0-6s.mp4');
  const info = await probeVideo(file);
  const golden = JSON.parse(fs.readFileSync(fixture('media', 'franck_0-6s.faces.json'), 'utf8')) as {
    samples: Array<{ frame: number; box: Box }>;
  };
  const n = info.frameCount;
  const indices = Array.from({ length: count }, (_, i) => Math.floor(((i + 0.5) * n) / count));
  const { frames } = await decodeFrames(file, info, indices);
  return frames.map((image, i) => {
    const near = golden.samples.reduce((a, b) =>
      Math.abs(b.frame - indices[i]!) < Math.abs(a.frame - indices[i]!) ? b : a,
    );
    return { image, box: near.box };
  });
}

/** A canvas of grey, lit from the left (90 to 170), with a little noise: plain, but not flat. */
export function canvas(width: number, height: number, seed = 1): RgbFrame {
  const r = rng(seed);
  const data = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++) {
      const v = 170 - (80 * x) / width + 8 * (r() - 0.5);
      data.fill(Math.round(v), 3 * (y * width + x), 3 * (y * width + x) + 3);
    }
  return { width, height, data };
}

/** Bilinear resize of a region [x, y, w, h] of `src` to outW × outH (pixel centres aligned). */
function resizeRegion(src: RgbFrame, region: Box, outW: number, outH: number): RgbFrame {
  const [rx, ry, rw, rh] = region;
  const data = new Uint8Array(outW * outH * 3);
  const at = (x: number, y: number, c: number) =>
    src.data[3 * (Math.min(src.height - 1, Math.max(0, y)) * src.width + Math.min(src.width - 1, Math.max(0, x))) + c]!;
  for (let y = 0; y < outH; y++) {
    const sy = ry + ((y + 0.5) * rh) / outH - 0.5;
    const y0 = Math.floor(sy);
    const fy = sy - y0;
    for (let x = 0; x < outW; x++) {
      const sx = rx + ((x + 0.5) * rw) / outW - 0.5;
      const x0 = Math.floor(sx);
      const fx = sx - x0;
      for (let c = 0; c < 3; c++) {
        const top = at(x0, y0, c) * (1 - fx) + at(x0 + 1, y0, c) * fx;
        const bottom = at(x0, y0 + 1, c) * (1 - fx) + at(x0 + 1, y0 + 1, c) * fx;
        data[3 * (y * outW + x) + c] = Math.round(top * (1 - fy) + bottom * fy);
      }
    }
  }
  return { width: outW, height: outH, data };
}

/**
 * Pastes a face's surroundings (its box grown by half its width left and right, by 0.6 of its
 * height above and below, within its image) onto `dst` so that the face is `faceHeight` px tall and
 * its box's top-left lands at (x, y). Returns the face's true box in `dst`.
 */
export function pasteFace(dst: RgbFrame, face: SourceFace, faceHeight: number, x: number, y: number): Box {
  const [bx, by, bw, bh] = face.box;
  const x0 = Math.max(0, Math.round(bx - bw / 2));
  const y0 = Math.max(0, Math.round(by - 0.6 * bh));
  const x1 = Math.min(face.image.width, Math.round(bx + 1.5 * bw));
  const y1 = Math.min(face.image.height, Math.round(by + 1.6 * bh));
  const k = faceHeight / bh;
  const [w, h] = [Math.round((x1 - x0) * k), Math.round((y1 - y0) * k)];
  const crop = resizeRegion(face.image, [x0, y0, x1 - x0, y1 - y0], w, h);
  const [ox, oy] = [Math.round(x - (bx - x0) * k), Math.round(y - (by - y0) * k)];
  for (let r = 0; r < h; r++) {
    const dy = oy + r;
    if (dy < 0 || dy >= dst.height) continue;
    for (let c = 0; c < w; c++) {
      const dx = ox + c;
      if (dx < 0 || dx >= dst.width) continue;
      dst.data.set(crop.data.subarray(3 * (r * w + c), 3 * (r * w + c) + 3), 3 * (dy * dst.width + dx));
    }
  }
  return [ox + (bx - x0) * k, oy + (by - y0) * k, bw * k, bh * k];
}

/** A scene: one frame and the true face boxes in it. */
export interface Scene {
  frame: RgbFrame;
  faces: Box[];
}

/**
 * `rows` × `cols` faces on a width × height canvas, the photos' five faces in turn, each row's
 * faces `heights[row]` px tall, centred in their cells (a group photo's layout).
 */
export function groupScene(
  faces: SourceFace[],
  width: number,
  height: number,
  cols: number,
  heights: number[],
  seed = 1,
): Scene {
  const frame = canvas(width, height, seed);
  const [cw, ch] = [width / cols, height / heights.length];
  const boxes: Box[] = [];
  heights.forEach((fh, row) => {
    for (let col = 0; col < cols; col++) {
      const face = faces[(row * cols + col) % faces.length]!;
      const fw = (face.box[2] / face.box[3]) * fh;
      boxes.push(pasteFace(frame, face, fh, (col + 0.5) * cw - fw / 2, (row + 0.5) * ch - fh / 2));
    }
  });
  return { frame, faces: boxes };
}

/** A frame placed at (x, y) on a black width × height canvas (ffmpeg's pad), its face moved with it. */
export function padScene(face: SourceFace, width: number, height: number, x: number, y: number): Scene {
  const data = new Uint8Array(width * height * 3);
  const src = face.image;
  for (let r = 0; r < src.height; r++)
    data.set(src.data.subarray(3 * r * src.width, 3 * (r + 1) * src.width), 3 * ((y + r) * width + x));
  const [bx, by, bw, bh] = face.box;
  return { frame: { width, height, data }, faces: [[bx + x, by + y, bw, bh]] };
}

/** The scene with every pixel × factor: a dark, but plainly visible, copy. */
export function darken(scene: Scene, factor: number): Scene {
  return { ...scene, frame: { ...scene.frame, data: scene.frame.data.map((v) => Math.round(v * factor)) } };
}

/** Found and false boxes: each true box matched by a distinct found box at IoU ≥ minIou, best overlaps first. */
export function score(found: Detection[], truth: Box[], minIou = 0.5): { found: number; falseBoxes: number } {
  const pairs: Array<[number, number, number]> = [];
  truth.forEach((t, i) =>
    found.forEach((d, j) => {
      const o = iou(t, d.box);
      if (o >= minIou) pairs.push([o, i, j]);
    }),
  );
  pairs.sort((a, b) => b[0] - a[0]);
  const [usedT, usedF] = [new Set<number>(), new Set<number>()];
  for (const [, i, j] of pairs)
    if (!usedT.has(i) && !usedF.has(j)) {
      usedT.add(i);
      usedF.add(j);
    }
  return { found: usedT.size, falseBoxes: found.length - usedF.size };
}

/** ViSP's annotations of the Solvay photo: `detection_k`, then the box's 4 corners as "row column" lines. */
function vispBoxes(file: string): Box[] {
  const lines = fs.readFileSync(file, 'utf8').split('\n');
  const boxes: Box[] = [];
  lines.forEach((line, i) => {
    if (!line.startsWith('detection_')) return;
    const corners = lines.slice(i + 1, i + 5).map((l) => l.trim().split(/\s+/).map(Number));
    const [rows, cols] = [corners.map((c) => c[0]!), corners.map((c) => c[1]!)];
    const [x, y] = [Math.min(...cols), Math.min(...rows)];
    boxes.push([x, y, Math.max(...cols) - x, Math.max(...rows) - y]);
  });
  return boxes;
}

/**
 * The Solvay 1927 group photo (1280×926) with ViSP's 30 annotated boxes (one of them, detection_0, is a
 * patch of wall: 29 are faces), and the 1280×160 strip of it (rows 435-595, the band holding the most
 * whole annotated faces) with the 18 boxes inside it. A real photo, boxes annotated outside this project.
 */
export async function solvayScenes(): Promise<[Scene, Scene]> {
  const photo = await readImage(fixture('media', 'solvay_1927_1280.png'));
  const faces = vispBoxes(fixture('media', 'solvay_1927_1280.visp-faces.txt'));
  const [y0, h] = [435, 160];
  const strip: Scene = {
    frame: { data: photo.data.slice(y0 * photo.width * 3, (y0 + h) * photo.width * 3), width: photo.width, height: h },
    faces: faces.filter((b) => b[1] >= y0 && b[1] + b[3] <= y0 + h).map((b): Box => [b[0], b[1] - y0, b[2], b[3]]),
  };
  return [{ frame: photo, faces }, strip];
}
