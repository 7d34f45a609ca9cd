// The streaming predictor: frames in, windows out as they complete, for any source that hands frames
// on one at a time (a file read straight through, a LiveSource, later frames pushed by a page over a
// WebSocket). Each frame is detected as it arrives and fed to an online person tracker
// (face/tracks.ts PersonTracker); a window of T grid frames is classified once `lookahead` seconds of
// frames after it have been detected too, so its face track is revised by what follows (a gap in the
// middle of the window interpolated between the detections around it, a short track confirmed or
// dropped) and then fixed: a window once handed on is never changed. Memory holds the frames of the
// window under way and its look-ahead, the embedding rows they need, and the small window records
// kept for the summary. docs/DECISIONS.md (Streaming prediction) says why each choice.
import { performance } from 'node:perf_hooks';
import { detectFacesBatch, type Box, type Detection } from '../face/detector.js';
import { centreSquare } from '../face/crop.js';
import { PersonTracker, type OnlineTrack } from '../face/tracks.js';
import { cutFrame } from '../streams/index.js';
import { cropSquare, predictionCrop } from '../streams/recipe.js';
import type { RgbFrame } from '../video/decode.js';
import { UserError } from '../util/errors.js';
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

/** One frame as a streaming source hands it on: the grid's frames, in order, at T / window per second. */
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
  dropped: number; // frames the source had dropped so far
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

/** The sampling rate a streaming source must hand frames on at: the timeline's grid, T per window. */
export const streamFps = (p: Predictor, window = DEFAULT_TIMELINE.window): number => p.inference.frames / window;

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

class StreamJob {
  private readonly T: number;
  private readonly step: number; // seconds between grid frames
  private readonly strideSteps: number;
  private readonly ahead: number; // look-ahead in grid frames
  private readonly tracker = new PersonTracker();
  private readonly frames = new Map<number, InFrame>(); // the window under way and its look-ahead
  private readonly rows = new Map<string, Rows>(); // `${track key}:${pos}` (-1: the centre crop)
  private blank?: { scene: Float32Array; low: Float32Array };
  private n = 0; // frames pushed
  private next = 0; // first grid frame of the next window
  private readonly timeline: StreamWindow[] = []; // the one-person timeline (kept for the summary)
  private readonly byPerson = new Map<number, StreamWindow[]>();
  private readonly latencies: number[] = [];
  private lastT = 0;

  constructor(
    private readonly p: Predictor,
    private readonly o: StreamOptions,
  ) {
    const window = o.window ?? DEFAULT_TIMELINE.window;
    const stride = o.stride ?? DEFAULT_TIMELINE.stride;
    if (!(window > 0)) throw new UserError(`--window must be a positive number of seconds, not ${window}`);
    if (!(stride > 0)) throw new UserError(`--stride must be a positive number of seconds, not ${stride}`);
    this.T = p.inference.frames;
    this.step = window / this.T;
    this.strideSteps = Math.max(1, Math.round(stride / this.step));
    this.ahead = Math.max(0, Math.round((o.lookahead ?? 2) / this.step));
  }

  async push(f: InFrame): Promise<void> {
    // let I/O run between frames: a LiveSource drains ffmpeg here and drops what waited too long
    // (detection and encoding block the event loop while they run; docs/BENCHMARKS.md, Live)
    await new Promise<void>((resolve) => setImmediate(resolve));
    const detect = this.o.detect ?? ((fr: RgbFrame[]) => detectFacesBatch(fr, this.detectorOptions()));
    const [dets] = await detect([f.frame]);
    this.frames.set(this.n++, f);
    this.tracker.push(dets ?? []);
    this.lastT = f.t;
    while (this.next + this.T - 1 + this.ahead < this.n) await this.classifyNext();
  }

  private detectorOptions() {
    return { device: this.p.device === 'cpu' ? undefined : this.p.device };
  }

  /** The stream ended: the windows whose frames all came, with the look-ahead there is. */
  async end(): Promise<void> {
    while (this.next + this.T <= this.n) await this.classifyNext();
  }

  /** Whose faces the next window follows: the main person so far, or every person in it. */
  private who(first: number): Who[] {
    const confirmed = this.tracker.tracks.filter((t) => t.id !== undefined);
    let main: OnlineTrack | undefined;
    for (const t of confirmed) if (!main || t.mass > main.mass || (t.mass === main.mass && t.id! < main.id!)) main = t;
    if (this.o.persons !== 'all') return [{ track: main, main: true }];
    const last = first + this.T - 1;
    return confirmed
      .filter((t) => t.frames.some((f) => f >= first && f <= last))
      .sort((a, b) => a.id! - b.id!)
      .map((t) => ({ track: t, main: t === main }));
  }

  /** A track's box at grid frame `pos`: detected, interpolated between detections, or the nearest held. */
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
    const { T } = this;
    const first = this.next;
    const subjects = this.who(first);
    const key = (w: Who, pos: number) => `${w.track?.key ?? -1}:${pos}`;
    const todo: Array<{ key: string; frame: RgbFrame; square: Box; noFace: boolean }> = [];
    for (const w of subjects)
      for (let pos = first; pos < first + T; pos++)
        if (!this.rows.has(key(w, pos)))
          todo.push({
            key: key(w, pos),
            frame: this.frames.get(pos)!.frame,
            square: this.square(w, pos),
            noFace: !w.track,
          });
    if (todo.length) await this.encode(todo);
    if (subjects.length) {
      const withBlank = this.p.conf.ous.model === 'ous' && this.p.conf.ous.scene;
      const at = (s: number, t: number) => this.rows.get(key(subjects[s]!, first + t))!;
      const scored = scoreWindows(this.p, subjects.length, T, at, withBlank ? this.blank : undefined);
      subjects.forEach((w, s) => this.emit(w, first, scored.p[s]!, scored.pol?.[s] ?? null, scored.q?.[s] ?? null));
    }
    this.next += this.strideSteps;
    for (const pos of this.frames.keys()) if (pos < this.next) this.frames.delete(pos);
    for (const k of this.rows.keys()) if (Number(k.split(':')[1]) < this.next) this.rows.delete(k);
    this.tracker.forget(this.next);
  }

  /** Encodes face crops and scenes (and the blank scene once) into embedding rows, as the file path does. */
  private async encode(todo: Array<{ key: string; frame: RgbFrame; square: Box; noFace: boolean }>): Promise<void> {
    const scene = this.p.recipe.scene;
    const cut = todo.map((x) => cutFrame(x.frame, x.square, scene, x.noFace));
    const n = cut.length;
    const images = [...cut.map((c) => c.face), ...cut.map((c) => c.scene)];
    if (!this.blank) images.push(blankLike(cut[0]!.scene));
    const out = await this.p.encoder.encode(images, this.p.inference.polarityLayer);
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
  private emit(w: Who, first: number, p: number[], pol: number[] | null, q: number[] | null): void {
    const { T } = this;
    let faceFrames = 0;
    if (w.track) for (const f of w.track.frames) if (f >= first && f < first + T) faceFrames++;
    const id = w.track?.id ?? null;
    const list = this.o.persons === 'all' ? (this.byPerson.get(id!) ?? []) : this.timeline;
    if (this.o.persons === 'all') this.byPerson.set(id!, list);
    const mid = this.square(w, first + Math.floor(T / 2));
    const win: StreamWindow = {
      index: list.length,
      person: id,
      main: w.main,
      start: this.frames.get(first)!.t,
      end: this.frames.get(first + T - 1)!.t + this.step,
      ...result(this.p.classNames, p, pol, q),
      faceBox: mid.map((v) => Math.round(v * 10) / 10) as Box,
      faceFrames,
      latency: 0,
      dropped: this.o.dropped?.() ?? 0,
    };
    if (q) blankScene.set(win, q);
    list.push(win);
    win.latency = Math.round((performance.now() - this.frames.get(first + T - 1)!.arrivedAt) * 10) / 10;
    this.latencies.push(win.latency);
    this.o.onWindow?.(win);
  }

  summary(): StreamSummary {
    const names = this.p.classNames;
    const mainTrack = this.who(this.next).find((w) => w.main)?.track;
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
      duration: this.n ? this.lastT + this.step : 0,
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
