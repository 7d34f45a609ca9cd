// From per-frame detections to one face per clip (SPEC.md §2): link boxes across the sampled
// frames into tracks by IoU, keep the track with the largest mean area × score, fill the frames it
// misses by interpolating its box, then square and enlarge the box for the crop.
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
    dets.forEach((d, i) => tracks.forEach((_, t) => {
      const o = iou(d.box, last[t]!);
      if (o >= minIou) pairs.push([o, i, t]);
    }));
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

/** The crop square: centred on the box, side max(w, h) × (1 + enlarge), in whole pixels. */
export function squareBox(box: Box, enlarge = 0.25): Box {
  const side = Math.round(Math.max(box[2], box[3]) * (1 + enlarge));
  const cx = box[0] + box[2] / 2;
  const cy = box[1] + box[3] / 2;
  return [Math.round(cx - side / 2), Math.round(cy - side / 2), side, side];
}
