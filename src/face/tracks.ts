// From per-frame detections to one face per clip (SPEC.md §2): link boxes across the sampled
// frames into tracks by IoU, keep the track with the largest mean area × score, fill the frames it
// misses by interpolating its box, then square and enlarge the box for the crop. Below that, every
// face of a video as a person track (for --all-persons and per-person manifests), and the rule
// that picks a clip's subject.
import type { Box, Detection } from './detector.js';

export function iou(a: Box, b: Box): number {
  const x1 = Math.max(a[0], b[0]);
  const y1 = Math.max(a[1], b[1]);
  const x2 = Math.min(a[0] + a[2], b[0] + b[2]);
  const y2 = Math.min(a[1] + a[3], b[1] + b[3]);
  const inter = Math.max(0, x2 - x1) * Math.max(0, y2 - y1);
  const union = a[2] * a[3] + b[2] * b[3] - inter;
  return union > 0 ? inter / union : 0;
}

/** One face followed across frames: its detection in each frame, or null where it was not found. */
export type Track = Array<Detection | null>;

/**
 * Greedy linking: frame by frame, each detection joins the track whose latest box overlaps it
 * most (IoU ≥ minIou, each track at most once per frame); the rest start new tracks.
 */
export function linkTracks(perFrame: Detection[][], minIou = 0.3): Track[] {
  const tracks: Track[] = [];
  const last: Box[] = [];
  perFrame.forEach((dets, f) => {
    const pairs: Array<[number, number, number]> = [];
    dets.forEach((d, i) =>
      tracks.forEach((_, t) => {
        const o = iou(d.box, last[t]!);
        if (o >= minIou) pairs.push([o, i, t]);
      }),
    );
    pairs.sort((a, b) => b[0] - a[0]);
    const usedDet = new Set<number>();
    const usedTrack = new Set<number>();
    for (const [, i, t] of pairs) {
      if (usedDet.has(i) || usedTrack.has(t)) continue;
      usedDet.add(i);
      usedTrack.add(t);
      tracks[t]![f] = dets[i]!;
      last[t] = dets[i]!.box;
    }
    dets.forEach((d, i) => {
      if (usedDet.has(i)) return;
      const track: Track = new Array<Detection | null>(perFrame.length).fill(null);
      track[f] = d;
      tracks.push(track);
      last.push(d.box);
    });
    for (const t of tracks) if (t[f] === undefined) t[f] = null;
  });
  return tracks;
}

/** Σ over frames of area × score, divided by the number of frames: a missed frame counts 0. */
export function trackScore(track: Track): number {
  return track.reduce((s, d) => s + (d ? d.box[2] * d.box[3] * d.score : 0), 0) / track.length;
}

/** The track to keep: the largest mean area × score (the face the clip is about). */
export function mainTrack(tracks: Track[]): number {
  let best = -1;
  tracks.forEach((t, i) => {
    if (best < 0 || trackScore(t) > trackScore(tracks[best]!)) best = i;
  });
  return best;
}

/** A box for every frame: detected ones as they are, gaps linearly interpolated, ends held. */
export function fillTrack(track: Track): Box[] {
  const known = track.flatMap((d, i) => (d ? [i] : []));
  if (!known.length) throw new Error('fillTrack: the track has no detection');
  let k = 0; // known[k - 1] < i <= known[k]: one pass, so a long video's track is linear to fill
  return track.map((d, i) => {
    while (k < known.length && known[k]! < i) k++;
    if (d) return d.box;
    const before = known[k - 1];
    const after = known[k];
    if (before === undefined) return track[after!]!.box;
    if (after === undefined) return track[before]!.box;
    const t = (i - before) / (after - before);
    const [a, b] = [track[before]!.box, track[after]!.box];
    return a.map((v, j) => v + t * (b[j]! - v)) as Box;
  });
}

/**
 * The square around a face box, in whole pixels: side max(w, h) × (1 + enlarge), centred on the box
 * moved by shift × side (x right, y down). Tracking compares these; the stream recipe's face crop
 * (streams/recipe.ts cropSquare) is one.
 */
export function squareBox(box: Box, enlarge = 0.25, shift: readonly [number, number] = [0, 0]): Box {
  const side = Math.round(Math.max(box[2], box[3]) * (1 + enlarge));
  const cx = box[0] + box[2] / 2 + shift[0] * side;
  const cy = box[1] + box[3] / 2 + shift[1] * side;
  return [Math.round(cx - side / 2), Math.round(cy - side / 2), side, side];
}

// ---------------------------------------------------------------------------------------------
// Every face in a video: person tracks over the per-frame detections of a whole frame grid.
// Detections only (boxes and scores): the frames themselves are gone by the time tracks link, and
// the face embeddings do not exist yet (the encoder runs after tracking), so there is no appearance
// term. The one-person path above (linkTracks + mainTrack) is unchanged.

export interface PersonTrackOptions {
  // a detection continues a track when the IoU of its square
  // with the track's predicted square is ≥ this (0.3)
  minIou?: number;
  maxGap?: number; // frames a track may miss and still continue (8: one second on the default timeline grid)
  // detections a track needs to count as a person; shorter ones are dropped (3, at most the frame count)
  minLength?: number;
  // the velocity is measured over the track's last this-many detections (6: a face going behind
  // another is boxed narrower and off-centre as it goes, and over 4 such boxes its velocity halves)
  velocityFrom?: number;
  // an ended track (missed for more than maxGap frames) of a still face is taken up again by a face found
  // where it was (squares' IoU ≥ 0.5) up to this many frames after its last detection (80: 10 s)
  maxRejoin?: number;
  // boxes are compared as squares (side: the longer side)
  // enlarged by this: 0.25, the face stream's crop squares
  buffer?: number;
}

/**
 * One person: their face in each frame of their span (first..last) of the grid. Only the span is
 * held: an hour's grid has ~29,000 frames, and a crowd makes hundreds of short tracks.
 */
export interface Person {
  id: number; // 0, 1, ...: in order of first detection, then left to right (box centre x)
  first: number; // grid frame of the first detection
  last: number; // grid frame of the last detection
  track: Track; // frames first..last: track[k] is frame first + k, null where not detected
  detections: number; // frames where the face was detected
}

const centre = (b: Box): [number, number] => [b[0] + b[2] / 2, b[1] + b[3] / 2];

/** A track being linked: the frames it was detected in, in order, and those detections. */
interface Live {
  frames: number[];
  dets: Detection[];
}

/**
 * Where a track's face should be in frame f: its last box moved by its velocity (centre only; the
 * size is held, so a long gap cannot shrink a box to nothing). The velocity is the centre's
 * displacement per frame between the oldest and the newest of its last `from` detections: steadier
 * than the last step alone, whose detector jitter would be multiplied by the gap.
 */
export function predictBox(frames: number[], boxes: Box[], f: number, from = 4): Box {
  const n = frames.length;
  const box = boxes[n - 1]!;
  if (n < 2 || from < 2) return box; // from < 2: no motion term (the last box stays where it was)
  const k = Math.max(0, n - from);
  const [c0, c1] = [centre(boxes[k]!), centre(box)];
  const per = (f - frames[n - 1]!) / (frames[n - 1]! - frames[k]!);
  return [box[0] + (c1[0] - c0[0]) * per, box[1] + (c1[1] - c0[1]) * per, box[2], box[3]];
}

/**
 * The assignment of rows to columns with the least total cost (Hungarian method, O(n³), for a
 * rectangular matrix); result[r] = the column of row r, or -1 when there are more rows than columns.
 */
export function assign(cost: number[][]): number[] {
  const rows = cost.length;
  const cols = rows ? cost[0]!.length : 0;
  if (!rows || !cols) return new Array<number>(rows).fill(-1);
  const transpose = rows > cols; // the method below needs rows ≤ columns
  const a = transpose ? cost[0]!.map((_, j) => cost.map((r) => r[j]!)) : cost;
  const n = a.length;
  const m = a[0]!.length;
  // Potentials u (rows), v (columns); p[j] = the row matched to column j (1-based, 0 = none).
  const u = new Array<number>(n + 1).fill(0);
  const v = new Array<number>(m + 1).fill(0);
  const p = new Array<number>(m + 1).fill(0);
  const way = new Array<number>(m + 1).fill(0);
  for (let i = 1; i <= n; i++) {
    p[0] = i;
    let j0 = 0;
    const minv = new Array<number>(m + 1).fill(Infinity);
    const used = new Array<boolean>(m + 1).fill(false);
    do {
      used[j0] = true;
      const i0 = p[j0]!;
      let delta = Infinity;
      let j1 = 0;
      for (let j = 1; j <= m; j++) {
        if (used[j]) continue;
        const cur = a[i0 - 1]![j - 1]! - u[i0]! - v[j]!;
        if (cur < minv[j]!) {
          minv[j] = cur;
          way[j] = j0;
        }
        if (minv[j]! < delta) {
          delta = minv[j]!;
          j1 = j;
        }
      }
      for (let j = 0; j <= m; j++) {
        if (used[j]) {
          u[p[j]!]! += delta;
          v[j]! -= delta;
        } else minv[j]! -= delta;
      }
      j0 = j1;
    } while (p[j0] !== 0);
    do {
      const j1 = way[j0]!;
      p[j0] = p[j1]!;
      j0 = j1;
    } while (j0);
  }
  const rowOf = new Array<number>(n).fill(-1);
  for (let j = 1; j <= m; j++) if (p[j]) rowOf[p[j]! - 1] = j - 1;
  if (!transpose) return rowOf;
  const out = new Array<number>(rows).fill(-1);
  rowOf.forEach((r, j) => {
    if (r >= 0) out[r] = j;
  });
  return out;
}

/**
 * Person tracks over a grid of frames (SORT's rule without a Kalman filter): in each frame, every
 * track that has missed at most `maxGap` frames predicts its box by constant velocity; tracks and
 * detections are matched by the Hungarian method on 1 − IoU(predicted, detected), and a match
 * with IoU below `minIou` is refused. Boxes are compared as the crop squares (square on the longer
 * side, enlarged by `buffer`): a face half hidden by another is detected narrow and off-centre,
 * its height survives, and the margin absorbs the shift (as buffered IoU does in C-BIoU
 * trackers). Unmatched detections start tracks, unless one continues a track that ended (missing
 * for more than `maxGap` frames) at most `maxRejoin` frames before, of a face that stood still where
 * the detection is (rejoin); a face back elsewhere is a new person (without appearance nothing says it is the
 * same one). Tracks with fewer than `minLength` detections are dropped (false detections
 * rarely persist). Ids: by first detection, then left to right. docs/DECISIONS.md says why.
 */
export function trackPersons(perFrame: Detection[][], opts: PersonTrackOptions = {}): Person[] {
  const tracker = new PersonTracker(opts, perFrame.length);
  for (const dets of perFrame) tracker.push(dets);
  return tracker.tracks
    .filter((t) => t.frames.length >= tracker.minLength)
    .map((t) => {
      const first = t.frames[0]!;
      const last = t.frames[t.frames.length - 1]!;
      const track: Track = new Array<Detection | null>(last - first + 1).fill(null);
      t.frames.forEach((f, k) => (track[f - first] = t.dets[k]!));
      return { first, last, track, detections: t.frames.length };
    })
    .sort((a, b) => a.first - b.first || centre(a.track[0]!.box)[0] - centre(b.track[0]!.box)[0])
    .map((p, id) => ({ id, ...p }));
}

/** A track as the online tracker holds it: its detections so far, and what streaming needs of it. */
export interface OnlineTrack extends Live {
  key: number; // in order of creation
  id?: number; // in order of confirmation (minLength detections): a streaming person's id
  mass: number; // Σ area × score over every detection so far (kept when old frames are forgotten)
}

/**
 * trackPersons one frame at a time (its loop, unchanged): `push` each frame's detections in grid
 * order. The streaming predictor reads `tracks` as it goes and calls `forget` to keep memory flat.
 */
export class PersonTracker {
  readonly minLength: number;
  private live: OnlineTrack[] = [];
  private ended: OnlineTrack[] = [];
  private f = 0; // the next frame's position
  private keys = 0;
  private ids = 0;
  private readonly o: Required<Omit<PersonTrackOptions, 'minLength'>>;

  constructor(opts: PersonTrackOptions = {}, frames = Infinity) {
    this.minLength = Math.min(opts.minLength ?? 3, frames);
    this.o = {
      minIou: opts.minIou ?? 0.3,
      maxGap: opts.maxGap ?? 8,
      velocityFrom: opts.velocityFrom ?? 6,
      buffer: opts.buffer ?? 0.25,
      maxRejoin: opts.maxRejoin ?? 80,
    };
  }

  /** Every track so far: ended ones first, then live ones (trackPersons's order before sorting). */
  get tracks(): OnlineTrack[] {
    return [...this.ended, ...this.live];
  }

  push(dets: Detection[]): void {
    const { minIou, maxGap, velocityFrom: from, buffer, maxRejoin } = this.o;
    const f = this.f++;
    // Tracks missing for more than maxGap frames end here (kept aside, never matched again).
    const keep = this.live.filter((t) => f - t.frames[t.frames.length - 1]! - 1 <= maxGap);
    this.ended.push(...this.live.filter((t) => !keep.includes(t)));
    this.live = keep;
    const predicted = keep.map((t) =>
      squareBox(
        predictBox(
          t.frames.slice(-from),
          t.dets.slice(-from).map((d) => d.box),
          f,
          from,
        ),
        buffer,
      ),
    );
    const found = dets.map((d) => squareBox(d.box, buffer));
    // A refused pair costs more than any accepted one, so the method never trades an accepted match for it.
    const cost = keep.map((_, t) =>
      found.map((b) => {
        const o = iou(predicted[t]!, b);
        return o >= minIou ? 1 - o : 2;
      }),
    );
    const match = assign(cost);
    const taken = new Set<number>();
    keep.forEach((t, k) => {
      const i = match[k]!;
      if (i < 0 || cost[k]![i]! > 1) return;
      this.add(t, f, dets[i]!);
      taken.add(i);
    });
    for (const d of dets.filter((_, i) => !taken.has(i))) {
      const back = rejoin(this.ended, d, f, maxRejoin, from, buffer) as OnlineTrack | undefined;
      if (back) this.ended.splice(this.ended.indexOf(back), 1);
      const t = back ?? this.fresh();
      this.add(t, f, d);
      this.live.push(t);
    }
  }

  private fresh(): OnlineTrack {
    return { frames: [], dets: [], key: this.keys++, mass: 0 };
  }

  private add(t: OnlineTrack, f: number, d: Detection): void {
    t.frames.push(f);
    t.dets.push(d);
    t.mass += d.box[2] * d.box[3] * d.score;
    if (t.id === undefined && t.frames.length >= this.minLength) t.id = this.ids++;
  }

  /**
   * Forgets what no later frame needs: ended tracks past rejoining, and each track's detections
   * before frame `before` (the last one before it and the last few for the velocity are kept).
   */
  forget(before: number): void {
    this.ended = this.ended.filter((t) => this.f - t.frames[t.frames.length - 1]! <= this.o.maxRejoin);
    for (const t of this.tracks) {
      let k = 0;
      while (k < t.frames.length && t.frames[k]! < before) k++;
      const cut = Math.min(Math.max(0, k - 1), Math.max(0, t.frames.length - this.o.velocityFrom));
      if (cut > 0) [t.frames, t.dets] = [t.frames.slice(cut), t.dets.slice(cut)];
    }
  }
}

const REJOIN_IOU = 0.5; // stricter than linking's 0.3: nothing but place says it is the same face
// only a still face is taken up again: centre speed under this share of its box's side a frame (a seated
// face's detector jitter is ~1%; the simulated crowd walks 3-10%, and rejoining walkers swaps faces)
const REJOIN_SPEED = 0.02;

/**
 * The ended track a fresh detection in frame f continues, if any: ended at most maxRejoin frames
 * ago, still when it ended (REJOIN_SPEED), its last box overlapping the detection's (squares, IoU ≥
 * REJOIN_IOU); the best overlap wins. A seated face missed for a while (turned away, a detector
 * gap) stays one person, so "longest × largest" sees it whole; a face back elsewhere is new.
 */
function rejoin(ended: Live[], d: Detection, f: number, maxRejoin: number, from: number, buffer: number) {
  let best: Live | undefined;
  let bestIou = REJOIN_IOU;
  const found = squareBox(d.box, buffer);
  for (const t of ended) {
    const last = t.frames[t.frames.length - 1]!;
    if (f - last > maxRejoin) continue;
    const boxes = t.dets.slice(-from).map((x) => x.box);
    const moved = predictBox(t.frames.slice(-from), boxes, last + 1, from); // one frame on
    const box = boxes[boxes.length - 1]!;
    const speed = Math.hypot(moved[0] - box[0], moved[1] - box[1]) / Math.max(box[2], box[3]);
    if (speed >= REJOIN_SPEED) continue;
    const o = iou(squareBox(box, buffer), found);
    if (o >= bestIou) [best, bestIou] = [t, o];
  }
  return best;
}

/**
 * The main person, "longest × largest": the largest Σ over the grid of area × score (a miss counts
 * 0), i.e. the share of frames the face is in × its mean area × score: the one-person path's
 * trackScore (whose division by the frame count changes no ranking). Ties go to the lower id; -1
 * when nobody.
 */
export function mainPerson(persons: Person[]): number {
  const sum = (p: Person) => p.track.reduce((s, d) => s + (d ? d.box[2] * d.box[3] * d.score : 0), 0);
  let best = -1;
  persons.forEach((p, i) => {
    if (best < 0 || sum(p) > sum(persons[best]!)) best = i;
  });
  return best;
}

/** A person's box in each frame of their span (first..last): detected ones as they are, gaps interpolated. One pass. */
export function personBoxes(person: Person): Box[] {
  const out: Box[] = new Array<Box>(person.track.length);
  let before = 0;
  person.track.forEach((d, i) => {
    if (!d) return;
    const [a, b] = [person.track[before]!.box, d.box];
    for (let k = before + 1; k < i; k++) {
      const t = (k - before) / (i - before);
      out[k] = a.map((v, j) => v + t * (b[j]! - v)) as Box;
    }
    out[i] = d.box;
    before = i;
  });
  return out;
}

/**
 * Which face a clip is about, for extraction (`ous extract --subject`): `main` is the one-person
 * path (linkTracks, then mainTrack: longest × largest); the others choose among person tracks:
 * `largest` the largest mean area × score over the frames the face is detected in (however briefly),
 * `center` the mean box centre nearest the frame's centre, a box the person whose boxes overlap it
 * most (mean IoU over the frames, a miss counting 0; nobody overlapping it: no face).
 */
export type SubjectRule = (typeof SUBJECT_RULES)[number] | Box;
export const SUBJECT_RULES = ['main', 'largest', 'center'] as const; // the named rules (or a box)

/** The tracks a clip's face comes from and the chosen one's index (-1: no face), by the subject rule. */
export function subjectTrack(
  perFrame: Detection[][],
  subject: SubjectRule,
  frame: { width: number; height: number },
  opts: PersonTrackOptions = {},
): { tracks: Track[]; chosen: number } {
  if (subject === 'main') {
    const tracks = linkTracks(perFrame);
    return { tracks, chosen: mainTrack(tracks) };
  }
  const persons = trackPersons(perFrame, opts);
  // As long as the frames, as the one-person path's tracks are (few frames: a clip's T samples).
  const tracks = persons.map(
    (p): Track => perFrame.map((_, f) => (f < p.first || f > p.last ? null : p.track[f - p.first]!)),
  );
  const detected = (p: Person) => p.track.filter((d): d is Detection => d !== null);
  const mean = (v: number[]) => v.reduce((a, b) => a + b, 0) / v.length;
  let score: (p: Person) => number;
  if (subject === 'largest') score = (p) => mean(detected(p).map((d) => d.box[2] * d.box[3] * d.score));
  else if (subject === 'center')
    score = (p) =>
      -Math.hypot(
        ...[0, 1].map((k) => mean(detected(p).map((d) => centre(d.box)[k]!)) - [frame.width, frame.height][k]! / 2),
      );
  else score = (p) => mean(tracks[p.id]!.map((d) => (d ? iou(d.box, subject) : 0))); // over every frame
  let chosen = -1;
  persons.forEach((p, i) => {
    if (chosen < 0 || score(p) > score(persons[chosen]!)) chosen = i;
  });
  if (Array.isArray(subject) && chosen >= 0 && !(score(persons[chosen]!) > 0)) chosen = -1;
  return { tracks, chosen };
}
