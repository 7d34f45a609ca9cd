// Every face in a video (issue 26): person tracks on hand-made detection sequences (crossings,
// misses under and over the gap, faces that leave and come back, the main person), then on real
// footage made here: the three-faces photo panned slowly, against face boxes drawn by hand.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import type { Box, Detection } from '../src/face/detector.js';
import { assign, holdEnds, linkTracks, mainPerson, personBoxes, trackPersons, type Person } from '../src/face/tracks.js';

const det = (x: number, y: number, s = 40, score = 1): Detection => ({ box: [x, y, s, s], score });
/** The x of a person's detected box in each frame (null where missed). */
const xs = (p: Person) => p.track.map((d) => (d ? d.box[0] : null));

test('assignment: the least total cost, not the greedy one (hand-computed), rectangular both ways', () => {
  // Greedy takes the 1 and ends at 1 + 4 + 9 = 14 (or 13); the best is 3 + 4 + 3 = 10.
  assert.deepEqual(assign([[1, 2, 3], [2, 4, 6], [3, 6, 9]]), [2, 1, 0]);
  assert.deepEqual(assign([[5, 1, 9], [1, 9, 9]]), [1, 0]); // 2 rows, 3 columns
  assert.deepEqual(assign([[5, 1], [1, 9], [2, 3]]), [1, 0, -1]); // 3 rows, 2 columns: 1 + 1 beats 1 + 2 and 1 + 3
  assert.deepEqual(assign([[5, 1], [1, 9], [0.4, 3]]), [1, -1, 0]); // 1 + 0.4 beats 1 + 1
  assert.deepEqual(assign([]), []);
  assert.deepEqual(assign([[], []]), [-1, -1]);
});

test('two faces crossing keep their ids, through the frames where the detector sees only one', () => {
  // A moves right 10 px a frame, B left; at frames 9-11 they overlap and NMS keeps A's box only.
  const frames: Detection[][] = Array.from({ length: 21 }, (_, f) => {
    const a = det(10 * f, 50);
    const b = det(200 - 10 * f, 54);
    return f >= 9 && f <= 11 ? [a] : [a, b];
  });
  const persons = trackPersons(frames);
  assert.equal(persons.length, 2);
  const [a, b] = persons;
  assert.deepEqual(xs(a!), frames.map((_, f) => 10 * f)); // id 0: A (both start at frame 0; A is on the left)
  assert.deepEqual(xs(b!), frames.map((_, f) => (f >= 9 && f <= 11 ? null : 200 - 10 * f)));
  assert.deepEqual([b!.first, b!.last, b!.detections], [0, 20, 18]);
  // B's box while hidden: interpolated between frame 8 (x 120) and 12 (x 80).
  assert.deepEqual(personBoxes(b!).slice(9, 12).map((x) => x![0]), [110, 100, 90]);
  // Linking by IoU with the last box (the one-person path) swaps them at frame 12: B's last box
  // (frame 8, x 120) equals A's detection there, while A's last (frame 11, x 110) overlaps it 0.6.
  const swapped = linkTracks(frames).find((t) => t[8]?.box[0] === 120)!;
  assert.equal(swapped[12]!.box[0], 120);
});

test('a miss of k frames: one person up to the gap (8), two past it', () => {
  const seq = (k: number) => Array.from({ length: 20 }, (_, f) => (f >= 5 && f < 5 + k ? [] : [det(100, 100)]));
  const under = trackPersons(seq(8));
  assert.equal(under.length, 1);
  assert.deepEqual([under[0]!.first, under[0]!.last, under[0]!.detections], [0, 19, 12]);
  assert.deepEqual(personBoxes(under[0]!)[7], [100, 100, 40, 40]);
  const over = trackPersons(seq(9));
  assert.deepEqual(over.map((p) => [p.id, p.first, p.last]), [[0, 0, 4], [1, 14, 19]]);
  assert.equal(trackPersons(seq(9), { maxGap: 9 }).length, 1); // the gap is an option
});

test('a face that leaves and comes back: the same id where its motion says and within the gap, a new id otherwise', () => {
  // B stands still at x 300 throughout. A walks right 10 px a frame from x 0; it is not detected
  // at frames 6-9 (behind something) and comes back at x 100 at frame 10: where its velocity puts it.
  const walk = Array.from({ length: 16 }, (_, f) => [...(f >= 6 && f <= 9 ? [] : [det(10 * f, 50)]), det(300, 60)]);
  const same = trackPersons(walk);
  assert.deepEqual(same.map((p) => p.detections), [12, 16]);
  assert.deepEqual(xs(same[0]!).slice(10), [100, 110, 120, 130, 140, 150]);
  // Back within the gap but where it entered (x 0), not where it was going: a new person, id 2
  // (first seen at frame 10; the first two are ordered left to right: A at x 0, B at x 300).
  const elsewhere = Array.from({ length: 16 }, (_, f) => [...(f >= 6 && f <= 9 ? [] : [det(f < 6 ? 10 * f : 10 * (f - 10), 50)]), det(300, 60)]);
  assert.deepEqual(trackPersons(elsewhere).map((p) => [p.id, p.first, p.last]), [[0, 0, 5], [1, 0, 15], [2, 10, 15]]);
  // Standing still, away for 12 frames (> 8), back at the same place: a new person (no appearance term).
  const away = Array.from({ length: 20 }, (_, f) => [...(f >= 4 && f < 16 ? [] : [det(0, 50)]), det(300, 60)]);
  assert.deepEqual(trackPersons(away).map((p) => [p.id, p.first, p.last]), [[0, 0, 3], [1, 0, 19], [2, 16, 19]]);
});

test('short tracks are dropped; ids go by first detection, then left to right', () => {
  const frames: Detection[][] = Array.from({ length: 10 }, (_, f) => [
    det(200, 0), // from frame 0, on the right
    ...(f >= 3 ? [det(0, 0)] : []), // from frame 3, on the left
    ...(f === 4 || f === 5 ? [det(100, 100)] : []), // 2 frames: a false detection
    det(300, 0), // from frame 0, further right
  ]);
  const persons = trackPersons(frames);
  assert.deepEqual(persons.map((p) => [p.id, p.track[p.first]!.box[0]]), [[0, 200], [1, 300], [2, 0]]);
  assert.equal(trackPersons(frames, { minLength: 2 }).length, 4);
  // A 2-frame grid keeps a face seen in both frames (the minimum is capped at the frame count).
  assert.equal(trackPersons([[det(0, 0)], [det(1, 0)]]).length, 1);
});

test('the main person: longest × largest (share of frames × mean area × score), hand-computed', () => {
  // A: 40² in all 20 frames → 1600. B: 60² in the last n frames → 3600 n / 20: 1440 for n = 8, 1800 for n = 10.
  const video = (n: number) => Array.from({ length: 20 }, (_, f) => [det(0, 0), ...(f >= 20 - n ? [det(200, 0, 60)] : [])]);
  assert.equal(mainPerson(trackPersons(video(8))), 0);
  assert.equal(mainPerson(trackPersons(video(10))), 1);
  assert.equal(mainPerson([]), -1);
});

test('a window of a person\'s boxes: held before they enter and after they leave, null when absent', () => {
  const b = (x: number): Box => [x, 0, 10, 10];
  assert.deepEqual(holdEnds([null, b(1), b(2), null]), [b(1), b(1), b(2), b(2)]);
  assert.equal(holdEnds([null, null]), null);
  const p = trackPersons(Array.from({ length: 10 }, (_, f) => (f >= 2 && f <= 6 ? [det(10 * f, 0)] : [])))[0]!;
  assert.deepEqual(personBoxes(p).map((x) => (x ? x[0] : null)), [null, null, 20, 30, 40, 50, 60, null, null, null]);
});
