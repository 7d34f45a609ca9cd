// The streaming predictor: frames in, windows out as they complete, for any source that hands frames
// on one at a time (a file read straight through, a LiveSource, frames a page sends from its camera).
// Windows are spans of SOURCE time: window k covers [k·stride, k·stride + window) seconds by the
// frames' timestamps, whatever the source dropped, and classifies T frames sampled from those that
// arrived in it, by the rule a clip is sampled by (SPEC.md §2); it says how many of its T it lacked
// (`dropped`). With nothing dropped a span holds exactly the T grid frames the file path's window
// holds. Each frame is detected as it arrives and fed to an online person tracker
// (face/tracks.ts PersonTracker); a window is classified once the source has gone `lookahead` seconds
// past it, so its face track is revised by what follows (a gap in the middle of the window
// interpolated between the detections around it, a short track confirmed or dropped) and then fixed:
// a window once handed on is never changed. Memory holds the frames of the window under way and its
// look-ahead, the embedding rows they need, and the small window records kept for the summary.
// docs/DECISIONS.md (Streaming prediction) says why each choice.
import { performance } from 'node:perf_hooks';
import { detectFacesBatch, type Box, type Detection } from '../face/detector.js';
import { centreSquare } from '../face/crop.js';
import { PersonTracker, type OnlineTrack } from '../face/tracks.js';
import { cutFrame } from '../streams/index.js';
import { cropSquare, predictionCrop } from '../streams/recipe.js';
import type { RgbFrame } from '../video/decode.js';
import { UserError } from '../util/errors.js';
import { sampleIndices } from '../video/sampling.js';
import {
  asCached,
  blankLike,
  blankScene,
  overall,
  result,
  scoreWindows,
  type Predictor,
  type Rows,
  type WindowPrediction,
} from './predictor.js';
import { DEFAULT_TIMELINE, type TimelineOptions } from './timeline.js';

/** One frame as a streaming source hands it on, in source order, ideally at T / window per second (the grid). */
export interface InFrame {
  frame: RgbFrame;
  t: number; // seconds of source time
  arrivedAt: number; // performance.now() when the frame arrived: a window's latency counts from it
}

export interface StreamOptions extends Partial<TimelineOptions> {
  lookahead?: number; // seconds of frames after a window detected before it is classified (2)
  persons?: 'all'; // a window per person whose face is in it, tracks opening and closing as they come and go
  dropped?: () => number; // frames the source has dropped so far (LiveSource.dropped)
  onWindow?: (w: StreamWindow) => void; // each window as it is classified, in order
  detect?: (frames: RgbFrame[]) => Promise<Detection[][]>; // the face finder (default: face/detector.ts)
}

export interface StreamWindow extends WindowPrediction {
  index: number; // k-th window of its timeline (the one-person timeline, or the person's)
  person: number | null; // whose face: a person's id (ids in order of confirmation), null: nobody's
  main: boolean; // the person the one-person timeline followed when this window was classified
  latency: number; // ms from the arrival of the window's last frame to the window handed on
  dropped: number; // of the T frames the window's span should hold, how many the source dropped
  droppedTotal: number; // frames the source had dropped so far
}

export interface StreamSummary extends ReturnType<typeof overall> {
  faceMissing: boolean; // no face in the whole stream: every window is a centre crop
  frames: number; // frames seen (not counting dropped ones)
  dropped: number;
  duration: number; // seconds of source time seen
  windowCount: number;
  latency: { p50: number; p95: number; max: number }; // ms
  main: number | null; // the main person at the end (longest × largest over everything seen)
  broke?: string; // the source stalled or broke: why, in one line (the windows before it are kept)
  persons?: Array<{ id: number; main: boolean; first: number; last: number; windowCount: number } & Overall>;
}
type Overall = Omit<ReturnType<typeof overall>, 'noFaceWindows' | 'noFaceAnswer'>;

/**
 * Loads the face finder and readies the tower before a live source starts: their first calls take
 * seconds, and the frames that come meanwhile would be dropped, starving the first windows.
 */
export async function warmUp(p: Predictor): Promise<void> {
  const blank = { data: new Uint8Array(64 * 64 * 3), width: 64, height: 64 };
  await detectFacesBatch([blank], { device: p.device === 'cpu' ? undefined : p.device });
  await p.encoder.prepare(p.recipe.polarityLayer);
}

/** The sampling rate a streaming source must hand frames on at: the timeline's grid, T per window. */
export const streamFps = (p: Predictor, window = DEFAULT_TIMELINE.window): number => p.recipe.frames / window;

/** Emotion per window of a stream of frames, each window handed to `o.onWindow` as it completes. */
export async function predictStream(
  p: Predictor,
  frames: AsyncIterable<InFrame>,
  o: StreamOptions = {},
): Promise<StreamSummary> {
  const job = new StreamJob(p, o);
  const it = frames[Symbol.asyncIterator]();
  let broke: string | undefined;
  let done = false;
  try {
    while (!done) {
      let r: IteratorResult<InFrame>;
      try {
        r = await it.next();
      } catch (err) {
        // the source stalled or broke (a one-line UserError): what was seen is kept and summed up
        if (!(err instanceof UserError)) throw err;
        [broke, done] = [err.message, true];
        break;
      }
      done = r.done === true;
      if (!done) await job.push(r.value);
    }
  } finally {
    if (!done) await it.return?.();
  }
  await job.end();
  return { ...job.summary(), ...(broke ? { broke } : {}) };
}

const quantile = (v: number[], q: number) => {
  const s = [...v].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.floor(q * s.length))]! : 0;
};

/** Whose face a window follows: a track, or nobody (the centre crop). */
type Who = { track: OnlineTrack | undefined; main: boolean };

/** A window's frames: those that arrived in its span, and the T of them it classifies. */
interface Span {
  k: number; // the window's number: its span is [k·stride, k·stride + window) s of source time
  start: number;
  end: number;
  arrived: number[]; // positions of the frames that arrived in the span, in order
  sampled: number[]; // T positions of `arrived`, sampled as the file path samples a clip
}

const EPS = 1e-9;
const secs = (v: number) => Math.round(v * 1e6) / 1e6;

class StreamJob {
  private readonly T: number;
  private readonly window: number; // seconds a window covers
  private readonly step: number; // seconds between grid frames: the rate a source should hand frames on at
  private readonly stride: number; // seconds between window starts (whole grid steps, as the file path)
  private readonly lookahead: number; // seconds
  private readonly tracker = new PersonTracker();
  private readonly frames = new Map<number, InFrame>(); // by arrival position: the next window's and after
  private readonly rows = new Map<string, Rows>(); // `${track key}:${pos}` (-1: the centre crop)
  private blank?: { scene: Float32Array; low: Float32Array };
  private n = 0; // frames pushed (their positions are 0..n-1, whatever the source dropped between them)
  private k = 0; // the next window's number
  private readonly timeline: StreamWindow[] = []; // the one-person timeline (kept for the summary)
  private readonly byPerson = new Map<number, StreamWindow[]>();
  private readonly latencies: number[] = [];
  private lastT = -Infinity;

  constructor(
    private readonly p: Predictor,
    private readonly o: StreamOptions,
  ) {
    const window = o.window ?? DEFAULT_TIMELINE.window;
    const stride = o.stride ?? DEFAULT_TIMELINE.stride;
    if (!(window > 0)) throw new UserError(`--window must be a positive number of seconds, not ${window}`);
    if (!(stride > 0)) throw new UserError(`--stride must be a positive number of seconds, not ${stride}`);
    this.T = p.recipe.frames;
    this.window = window;
    this.step = window / this.T;
    this.stride = Math.max(1, Math.round(stride / this.step)) * this.step;
    this.lookahead = Math.max(0, o.lookahead ?? 2);
  }

  async push(f: InFrame): Promise<void> {
    // Frames come in source order; one from before the last is dropped (it belongs to windows handed on).
    if (f.t <= this.lastT) return;
    const detect = this.o.detect ?? ((fr: RgbFrame[]) => detectFacesBatch(fr, this.detectorOptions()));
    const [dets] = await detect([f.frame]);
    this.frames.set(this.n++, f);
    this.tracker.push(dets ?? []);
    this.lastT = f.t;
    // A window is classified once the source has gone `lookahead` past its last grid frame.
    while (this.spanStart(this.k) + this.window - this.step + this.lookahead <= this.lastT + EPS)
      await this.classifyNext();
  }

  private spanStart(k: number): number {
    return k * this.stride;
  }

  private detectorOptions() {
    return { device: this.p.device === 'cpu' ? undefined : this.p.device };
  }

  /** The stream ended: the windows whose span the source covered, with the look-ahead there is. */
  async end(): Promise<void> {
    while (this.n && this.spanStart(this.k) + this.window <= this.lastT + this.step + EPS) await this.classifyNext();
  }

  /** Window k's frames: those that arrived in its span, T of them sampled as a clip's (SPEC.md §2). */
  private span(k: number): Span {
    const start = this.spanStart(k);
    const end = start + this.window;
    const arrived = [...this.frames.entries()]
      .filter(([, f]) => f.t >= start - EPS && f.t < end - EPS)
      .map(([pos]) => pos)
      .sort((a, b) => a - b);
    const sampled = arrived.length ? sampleIndices(arrived.length, this.T, 'test').map((i) => arrived[i]!) : [];
    return { k, start: secs(start), end: secs(end), arrived, sampled };
  }

  /** Whose faces the next window follows: the main person so far, or every person in it. */
  private who(positions: number[]): Who[] {
    const confirmed = this.tracker.tracks.filter((t) => t.id !== undefined);
    let main: OnlineTrack | undefined;
    for (const t of confirmed) if (!main || t.mass > main.mass || (t.mass === main.mass && t.id! < main.id!)) main = t;
    if (this.o.persons !== 'all') return [{ track: main, main: true }];
    const [first, last] = [positions[0] ?? Infinity, positions[positions.length - 1] ?? -Infinity];
    return confirmed
      .filter((t) => t.frames.some((f) => f >= first && f <= last))
      .sort((a, b) => a.id! - b.id!)
      .map((t) => ({ track: t, main: t === main }));
  }

  /** A track's box at position `pos`: detected, interpolated between detections, or the nearest held. */
  private boxAt(t: OnlineTrack, pos: number): Box {
    let k = 0;
    while (k < t.frames.length && t.frames[k]! < pos) k++;
    if (k < t.frames.length && t.frames[k] === pos) return t.dets[k]!.box;
    if (k === 0) return t.dets[0]!.box;
    if (k === t.frames.length) return t.dets[k - 1]!.box;
    const [a, b] = [t.dets[k - 1]!.box, t.dets[k]!.box];
    const w = (pos - t.frames[k - 1]!) / (t.frames[k]! - t.frames[k - 1]!);
    return a.map((v, j) => v + w * (b[j]! - v)) as Box;
  }

  private square(who: Who, pos: number): Box {
    const frame = this.frames.get(pos)!.frame;
    return who.track ? cropSquare(this.boxAt(who.track, pos), predictionCrop(this.p.recipe)) : centreSquare(frame);
  }

  private async classifyNext(): Promise<void> {
    const span = this.span(this.k);
    // A span the source dropped whole (a stall, a long hold-up) has nothing to classify: no window.
    if (span.sampled.length) await this.classify(span);
    this.k++;
    const next = this.spanStart(this.k) - EPS;
    for (const [pos, f] of this.frames) if (f.t < next) this.frames.delete(pos);
    const kept = Math.min(this.n, ...this.frames.keys());
    for (const key of this.rows.keys()) if (Number(key.split(':')[1]) < kept) this.rows.delete(key);
    this.tracker.forget(kept);
  }

  private async classify(span: Span): Promise<void> {
    const { T } = this;
    const subjects = this.who(span.arrived);
    const key = (w: Who, pos: number) => `${w.track?.key ?? -1}:${pos}`;
    const todo: Array<{ key: string; frame: RgbFrame; square: Box; noFace: boolean }> = [];
    for (const w of subjects)
      for (const pos of new Set(span.sampled))
        if (!this.rows.has(key(w, pos)))
          todo.push({
            key: key(w, pos),
            frame: this.frames.get(pos)!.frame,
            square: this.square(w, pos),
            noFace: !w.track,
          });
    if (todo.length) await this.encode(todo);
    if (!subjects.length) return;
    const withBlank = this.p.conf.ous.model === 'ous' && this.p.conf.ous.scene;
    const at = (s: number, t: number) => this.rows.get(key(subjects[s]!, span.sampled[t]!))!;
    const scored = scoreWindows(this.p, subjects.length, T, at, withBlank ? this.blank : undefined);
    subjects.forEach((w, s) => this.emit(w, span, scored.p[s]!, scored.pol?.[s] ?? null, scored.q?.[s] ?? null));
  }

  /** Encodes face crops and scenes (and the blank scene once) into embedding rows, as the file path does. */
  private async encode(todo: Array<{ key: string; frame: RgbFrame; square: Box; noFace: boolean }>): Promise<void> {
    const scene = this.p.recipe.scene;
    const cut = todo.map((x) => cutFrame(x.frame, x.square, scene, x.noFace));
    const n = cut.length;
    const images = [...cut.map((c) => c.face), ...cut.map((c) => c.scene)];
    if (!this.blank) images.push(blankLike(cut[0]!.scene));
    const out = await this.p.encoder.encode(images, this.p.recipe.polarityLayer);
    const [E, W] = [out.emb.size(1), out.low!.size(1)];
    const emb = asCached(out.emb.toTypedArray() as Float32Array); // [2n(+1), E]
    const low = asCached(out.low!.toTypedArray() as Float32Array); // [2n(+1), W]
    out.emb.dispose();
    out.low!.dispose();
    todo.forEach((x, j) =>
      this.rows.set(x.key, {
        face: emb.slice(j * E, (j + 1) * E),
        scene: emb.slice((n + j) * E, (n + j + 1) * E),
        low: low.slice((n + j) * W, (n + j + 1) * W),
      }),
    );
    this.blank ??= { scene: emb.slice(2 * n * E, (2 * n + 1) * E), low: low.slice(2 * n * W, (2 * n + 1) * W) };
  }

  /** One window's record, handed on at once: its latency counts up to here. */
  private emit(w: Who, span: Span, p: number[], pol: number[] | null, q: number[] | null): void {
    const { T } = this;
    const detected = new Set(w.track?.frames ?? []);
    const faceFrames = span.sampled.filter((pos) => detected.has(pos)).length;
    const id = w.track?.id ?? null;
    const list = this.o.persons === 'all' ? (this.byPerson.get(id!) ?? []) : this.timeline;
    if (this.o.persons === 'all') this.byPerson.set(id!, list);
    const mid = this.square(w, span.sampled[Math.floor(T / 2)]!);
    const win: StreamWindow = {
      index: list.length,
      person: id,
      main: w.main,
      start: span.start,
      end: span.end,
      ...result(this.p.classNames, p, pol, q),
      faceBox: mid.map((v) => Math.round(v * 10) / 10) as Box,
      faceFrames,
      latency: 0,
      dropped: Math.max(0, T - span.arrived.length),
      droppedTotal: this.o.dropped?.() ?? 0,
    };
    if (q) blankScene.set(win, q);
    list.push(win);
    const last = this.frames.get(span.arrived[span.arrived.length - 1]!)!;
    win.latency = Math.round((performance.now() - last.arrivedAt) * 10) / 10;
    this.latencies.push(win.latency);
    this.o.onWindow?.(win);
  }

  summary(): StreamSummary {
    const names = this.p.classNames;
    const mainTrack = this.who([]).find((w) => w.main)?.track;
    const all = this.o.persons === 'all' ? [...this.byPerson.values()].flat() : this.timeline;
    const persons = [...this.byPerson].map(([id, ws]) => {
      const { noFaceWindows: _n, noFaceAnswer: _a, ...rest } = overall(names, ws);
      return {
        id,
        main: id === mainTrack?.id,
        first: ws[0]!.start,
        last: ws[ws.length - 1]!.end,
        windowCount: ws.length,
        ...rest,
      };
    });
    return {
      ...overall(names, this.o.persons === 'all' ? (this.byPerson.get(mainTrack?.id ?? -1) ?? []) : this.timeline),
      faceMissing: !all.some((w) => w.person !== null),
      frames: this.n,
      dropped: this.o.dropped?.() ?? 0,
      duration: this.n ? secs(this.lastT + this.step) : 0,
      windowCount: all.length,
      latency: {
        p50: quantile(this.latencies, 0.5),
        p95: quantile(this.latencies, 0.95),
        max: quantile(this.latencies, 1),
      },
      main: mainTrack?.id ?? null,
      ...(this.o.persons === 'all' ? { persons: persons.sort((a, b) => a.id - b.id) } : {}),
    };
  }
}
