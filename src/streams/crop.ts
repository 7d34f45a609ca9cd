// A clip's face as crop squares over its frames, and each frame cut into its face crop and its
// scene (SPEC.md §2): the face square cropped, the scene with that square masked in CLIP's mean colour.
import { rescaleBox } from '../util/box.js';
import type { RgbFrame } from '../video/decode.js';
import type { Box, Detection } from '../face/detector.js';
import { fillTrack, personBoxes, subjectTrack, type Person } from '../face/tracks.js';
import { cropSquare, DEFAULT_CROP, type Crop, type SubjectRule } from './recipe.js';
import { centreSquare, cropWithPadding, fillBox } from '../face/crop.js';
import { CLIP_MEAN } from '../clip/image-processor.js';
import type { StreamFrame, StreamsOptions } from './types.js';

/** CLIP's mean colour in 8 bits: what the masked scene shows where the face was. */
export const CLIP_MEAN_RGB = CLIP_MEAN.map((m) => Math.round(255 * m)) as [number, number, number]; // (123, 117, 104)

/**
 * The clip's face by the subject rule over `perFrame` detections (SPEC.md §2), as crop squares in
 * the frames' pixels: the one face-track builder of extraction, `ous streams`, predict and serve.
 */
export function faceTrack(
  perFrame: Detection[][],
  size: { width: number; height: number },
  crop: Crop = DEFAULT_CROP,
  subject: SubjectRule = 'main',
) {
  const { tracks, chosen: main } = subjectTrack(perFrame, subject, size);
  const faceMissing = main < 0;
  const boxes: Box[] = faceMissing
    ? perFrame.map(() => centreSquare(size))
    : fillTrack(tracks[main]!).map((b) => cropSquare(b, crop));
  const detected = perFrame.map((_, i) => !faceMissing && tracks[main]![i] !== null);
  return { tracks, main, faceMissing, boxes, detected };
}

/**
 * One person's crop square at each grid position (`ous predict --all-persons`): their box where
 * detected, interpolated between detections, and the nearest one before they enter or after they
 * leave (as faceTrack's fillTrack holds a track's ends), so that a one-window clip's person gets
 * the squares extraction with that person as the subject gives.
 */
export function personSquares(person: Person, crop: Crop = DEFAULT_CROP): (pos: number) => Box {
  const boxes = personBoxes(person);
  return (pos) => cropSquare(boxes[Math.min(Math.max(pos, person.first), person.last) - person.first]!, crop);
}

/** Frame `i` of a clip cut into its face crop and its scene (the face masked unless `scene` is full). */
export function streamFrame(
  frame: RgbFrame,
  index: number,
  fps: number,
  face: ReturnType<typeof faceTrack>,
  i: number,
  own: { width: number; height: number },
  scene: StreamsOptions['scene'],
  shipped?: RgbFrame,
): StreamFrame {
  const box = face.boxes[i]!;
  return {
    index,
    timeSec: fps ? index / fps : 0,
    box: rescaleBox(box, frame, own),
    detected: face.detected[i]!,
    ...cutFrame(frame, box, scene, face.faceMissing, shipped),
  };
}

/** One frame's face crop and scene for a crop square (SPEC.md §2): the scene masks that square only. */
export function cutFrame(
  frame: RgbFrame,
  square: Box,
  scene: StreamsOptions['scene'],
  faceMissing = false,
  shipped?: RgbFrame,
): { face: RgbFrame; scene: RgbFrame } {
  return {
    face: shipped ?? cropWithPadding(frame, square),
    scene: scene === 'full' || faceMissing ? frame : fillBox(frame, square, CLIP_MEAN_RGB),
  };
}
