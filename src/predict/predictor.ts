import { FrameEncoder, type EnginePreference } from '../clip/frame-encoder.js';
import {
  CLIP_MEAN_RGB,
  cutFrame,
  detectClip,
  faceTrack,
  forEachPosition,
  openClip,
  personSquares,
  type ClipSource,
  type ClipSummary,
  stillNote,
  undecodedWarning,
} from '../streams/index.js';
import { mainPerson, trackPersons, type Person } from '../face/tracks.js';
import { rescaleBox } from '../util/box.js';
import { buildHead, type Head } from '../ous/model.js';
import { POLARITIES } from '../ous/config.js';
import { loadClipFolder } from '../clip/load.js';
import {
  checkpointFile,
  loadHeadWeights,
  readRunConfig,
  runClipDir,
  runRecipe,
  type RunConfig,
} from '../runs/folder.js';
import { describeFaces, predictionCrop, type Crop, type Recipe, type SubjectRule } from '../streams/recipe.js';
import { noGrad, tensor, tidy, type Device, type Precision } from '../torch/index.js';
import { precisionMismatch } from '../torch/precision.js';
import { VideoTooLongError, type ReadOptions, type RgbFrame } from '../video/decode.js';
import type { Box, Detection } from '../face/detector.js';
import { UserError } from '../util/errors.js';
import { predictStream, type InFrame, type StreamOptions, type StreamSummary } from './stream.js';
import { DEFAULT_TIMELINE, planTimeline, type TimelinePlan, type TimelineOptions } from './timeline.js';

export interface SceneEffect {
  totalVariation: number; // ½·Σ|p_with − p_without|
  changedDecision: boolean;
  emotionWithoutScene: string;
}

export interface WindowPrediction {
  start: number; // seconds
  end: number;
  emotion: string;
  probabilities: Record<string, number>;
  polarity: Record<string, number> | null;
  sceneEffect: SceneEffect | null;
  faceBox: Box; // the face crop at the window's middle frame, in the video's displayed pixels
  // how many of its T frames had the subject's face detected (not interpolated, held or a centre
  // crop); 0: the window saw no face, and the overall answer and the share leave it out
  faceFrames: number;
}

export interface Prediction {
  video: string;
  emotion: string;
  probabilities: Record<string, number>;
  polarity: Record<string, number> | null; // null for the face-only baseline
  sceneEffect: SceneEffect | null;
  faceMissing: boolean;
  duration: number; // seconds (0 for a frame folder)
  width: number; // displayed size of the video
  height: number;
  windows: WindowPrediction[]; // one for a video no longer than a window
  faces: Array<{ time: number; box: Box; detected: boolean }>; // the face track at every frame looked at
  // share: part of the windows each class tops; precision: CLIP's vision tower's
  summary: {
    window: number;
    stride: number;
    frames: number;
    share: Record<string, number>;
    precision: Precision;
    // windows whose frames held no detected face (faceFrames 0): left out of the answer and the share,
    // unless no window saw a face (then the answer is over every window: faceMissing or noFaceAnswer)
    noFaceWindows: number;
    noFaceAnswer: boolean; // the answer comes from windows that saw no face: it is not about a face
  };
  warning?: string; // frames the decoder could not deliver (a truncated or corrupt file)
  note?: string; // a still image: its one frame stands for every sampled frame; or the video's timing
  // with `persons` asked for: each person's timeline (the fields above are the main person's)
  persons?: PersonPrediction[];
  recipe: RecipeReport;
}

/** The streams a prediction was made on: the run's recipe as followed here, in data and in words. */
export interface RecipeReport {
  faces: string; // in words: whose face, from where, which crop
  subject: SubjectRule; // the rule followed (the run's, or --subject's)
  subjectOverridden: boolean; // --subject replaced the run's rule
  trainedOn: Recipe['face']['source']; // where the training faces came from
  crop: Crop; // the detector crop made here
  scene: Recipe['scene'];
  frames: number;
  note?: string; // a run from before the recipe: what is assumed
}

/** One person of the video (`--all-persons`, `--person ID`): their own face stream and their own scene. */
export interface PersonPrediction {
  id: number; // 0, 1, ...: in order of first appearance, then left to right (face/tracks.ts trackPersons)
  main: boolean; // the person the one-person answer would be about: longest × largest
  first: number; // seconds: the first and the last grid frame their face was detected in
  last: number;
  emotion: string;
  probabilities: Record<string, number>;
  polarity: Record<string, number> | null;
  sceneEffect: SceneEffect | null;
  share: Record<string, number>; // part of their windows each class tops (those that saw their face)
  windows: WindowPrediction[]; // the windows that hold their face in at least one frame
  faces: Array<{ time: number; box: Box; detected: boolean }>; // their crop square at every grid frame of those windows
}

export type Stage = 'decode' | 'detect' | 'encode' | 'classify';

export interface PredictOptions extends Partial<TimelineOptions> {
  faceBox?: Box; // a known face box (source pixels): no detection
  maxSeconds?: number; // refuse a video whose decoded length passes this (measured while decoding, not from metadata)
  // fraction of the stage done, 0..1, moving as the work goes (count: frames detected, windows classified)
  onProgress?: (stage: Stage, fraction: number, count?: { done: number; total: number }) => void;
  // each window as soon as it is classified, in order (per person)
  onWindow?: (w: WindowPrediction, k: number, total: number, person?: number) => void;
  persons?: 'all' | number; // every person in the video, or the one with this id: a timeline each
  subject?: SubjectRule; // whose face (a rule of ous extract --subject) in place of the run's recipe's
  read?: ReadOptions; // how ffprobe and ffmpeg open the video (the server's: an upload's allow-list)
}

/** Embedding rows of one grid frame for one subject: its face crop, its scene, the scene's low block. */
export interface Rows {
  face: Float32Array; // [E]
  scene: Float32Array; // [E]
  low: Float32Array; // [W]
}

/**
 * Whose face a timeline follows: the video's main face (the one-person answer) or one person. Their
 * crop square at each grid frame, the windows that are theirs, and what has been worked out so far.
 */
interface Subject {
  person?: Person; // absent for the one-person answer
  main: boolean;
  faceMissing: boolean;
  windows: number[]; // indices into the plan's windows, ascending
  from: number; // the grid frames those windows cover
  to: number;
  square: (pos: number) => Box; // crop square, in decoded pixels
  detected: (pos: number) => boolean;
  rows: Map<number, Rows>; // encoded grid frames still needed by a window to come
  next: number; // position in `windows` of the next window to classify
  results: WindowPrediction[];
  faces: Array<{ time: number; box: Box; detected: boolean }>;
}

/** Features as the cache stores them (float16): the head sees at prediction what it was trained on. */
export const asCached = (v: Float32Array): Float32Array =>
  tidy(() => tensor(v).to('float16').toTypedArray()) as Float32Array;

export const blankLike = (f: RgbFrame): RgbFrame => {
  const data = new Uint8Array(f.data.length);
  for (let i = 0; i < data.length; i += 3) data.set(CLIP_MEAN_RGB, i);
  return { data, width: f.width, height: f.height };
};

const top = (v: number[]) => v.indexOf(Math.max(...v));
const round = (b: Box): Box => b.map((v) => Math.round(v * 10) / 10) as Box;

/** A probability vector (and its polarity, and its blank-scene twin) as the answer reads it. */
export function result(names: string[], p: number[], pol: number[] | null, q: number[] | null) {
  return {
    emotion: names[top(p)]!,
    probabilities: Object.fromEntries(names.map((n, i) => [n, p[i]!])),
    polarity: pol ? Object.fromEntries(POLARITIES.map((n, i) => [n, pol[i]!])) : null,
    sceneEffect: q
      ? {
          totalVariation: p.reduce((acc, v, i) => acc + Math.abs(v - q[i]!), 0) / 2,
          changedDecision: top(p) !== top(q),
          emotionWithoutScene: names[top(q)]!,
        }
      : null,
  };
}

// Each window's probabilities with a blank scene: the overall scene effect is over their mean.
export const blankScene = new WeakMap<WindowPrediction, number[]>();

/**
 * The overall answer over windows: the mean of the windows that saw the face (faceFrames > 0) and
 * the share of those each class tops; with none that saw it, over every window, and said so.
 */
export function overall(names: string[], windows: WindowPrediction[]) {
  const seen = windows.filter((w) => w.faceFrames > 0);
  const over = seen.length ? seen : windows;
  const K = over.length;
  const mean = (get: (w: WindowPrediction) => number[] | null) => {
    if (!K || !get(over[0]!)) return null;
    const sum = get(over[0]!)!.map(() => 0);
    for (const w of over) get(w)!.forEach((v, c) => (sum[c]! += v / K));
    return sum;
  };
  const p = mean((w) => names.map((n) => w.probabilities[n]!)) ?? names.map(() => 1 / names.length);
  const pol = mean((w) => (w.polarity ? POLARITIES.map((n) => w.polarity![n]!) : null));
  const q = mean((w) => blankScene.get(w) ?? null);
  return {
    ...result(names, p, pol, q),
    share: Object.fromEntries(names.map((n) => [n, K ? over.filter((w) => w.emotion === n).length / K : 0])),
    noFaceWindows: windows.length - seen.length,
    noFaceAnswer: seen.length === 0,
  };
}

const pick = <T extends { noFaceWindows: number; noFaceAnswer: boolean }>(a: T) => {
  const { noFaceWindows: _n, noFaceAnswer: _a, ...rest } = a;
  return rest;
};

export type Scored = { p: number[][]; pol: number[][] | null; q: number[][] | null };

/**
 * The head on `count` windows of T frames (`at(w, t)`: their rows): with the scene, and with the
 * blank scene's rows when given (the scene's effect). The file and the streaming paths share it.
 */
export function scoreWindows(
  p: Predictor,
  count: number,
  T: number,
  at: (w: number, t: number) => Rows,
  blank?: { scene: Float32Array; low: Float32Array },
): Scored {
  // a run trained without polarity labels has an untrained polarity head
  const usePolarity = p.conf.ous.polarity !== false;
  return noGrad(() =>
    tidy(() => {
      const [E, W] = [at(0, 0).face.length, at(0, 0).low.length];
      const gather = (pick: (r: Rows) => Float32Array, width: number) => {
        const data = new Float32Array(count * T * width);
        for (let w = 0; w < count; w++) for (let t = 0; t < T; t++) data.set(pick(at(w, t)), (w * T + t) * width);
        return tensor(data, { shape: [count, T, width] }).to({ device: p.device });
      };
      const face = gather((r) => r.face, E); // [K', T, E]
      const withScene = p.head.forward({ face, scene: gather((r) => r.scene, E), low: gather((r) => r.low, W) });
      const probs = withScene.logits.softmax(-1).toArray() as number[][]; // [K'][C]
      const pol =
        withScene.polarityLogits && usePolarity ? (withScene.polarityLogits.softmax(-1).toArray() as number[][]) : null;
      if (!blank) return { p: probs, pol, q: null };
      const blanked = (v: Float32Array, width: number) =>
        tensor(v, { shape: [1, 1, width] })
          .to({ device: p.device })
          .expand(count, T, width);
      const without = p.head.forward({ face, scene: blanked(blank.scene, E), low: blanked(blank.low, W) });
      return { p: probs, pol, q: without.logits.softmax(-1).toArray() as number[][] };
    }),
  );
}

export class Predictor {
  private constructor(
    readonly runDir: string,
    readonly conf: RunConfig,
    readonly recipe: Recipe, // how the run's streams were made: prediction makes them the same way
    readonly recipeNote: string | undefined, // a run from before the recipe: what is assumed
    readonly encoder: FrameEncoder,
    readonly head: Head,
    readonly device: Device,
  ) {}

  /**
   * Loads a run and CLIP (from `clip`, else where the run says); CLIP's
   * weights must be the run's. Its vision tower runs in `precision` (fp32).
   */
  static load(
    runDir: string,
    opts: { clip?: string; device?: Device; precision?: Precision; engine?: EnginePreference } = {},
  ): Predictor {
    // The run folder is read and checked by runs/folder.ts, as eval and report read it.
    const conf = readRunConfig(runDir, '--run');
    const ckpt = checkpointFile(runDir, '--run');
    const { recipe, note } = runRecipe(runDir, conf);
    const clipDir = runClipDir(runDir, conf, opts.clip);
    const clip = loadClipFolder(clipDir, {
      device: opts.device,
      expectHash: { hash: recipe.clipHash, what: `${runDir} was trained on`, flag: '--clip' },
    });
    const encoder = FrameEncoder.fromModel(clip.model, clip.processor, clip.hash, {
      device: opts.device,
      precision: opts.precision,
      engine: opts.engine,
    });
    const head = buildHead(conf.ous, conf.dims, clip.textTower);
    loadHeadWeights(head, ckpt);
    if (opts.device) head.to({ device: opts.device });
    head.eval();
    return new Predictor(runDir, conf, recipe, note, encoder, head, opts.device ?? 'cpu');
  }

  /** One line when the run's features were made at another precision (its recipe's) than the tower runs in now. */
  get precisionNote(): string | undefined {
    return precisionMismatch(this.recipe.precision, this.encoder.precision);
  }

  get classNames(): string[] {
    return this.conf.ous.classNames;
  }

  /** The run's recipe as a prediction with these options follows it. */
  recipeReport(o: Pick<PredictOptions, 'subject'> = {}): RecipeReport {
    const r = this.recipe;
    const subject = o.subject ?? r.subject;
    return {
      faces: describeFaces(r, subject),
      subject,
      subjectOverridden: o.subject !== undefined && JSON.stringify(o.subject) !== JSON.stringify(r.subject),
      trainedOn: r.face.source,
      crop: predictionCrop(r),
      scene: r.scene,
      frames: r.frames,
      ...(this.recipeNote ? { note: this.recipeNote } : {}),
    };
  }

  /**
   * Emotion, polarity and the scene's effect for a video (per window on a long one), streamed: the
   * frames are decoded and their faces detected in one pass (only the detections are kept), the face
   * track is linked over the whole video by the run's recipe (or one track per person), then a
   * second pass crops and encodes the frames a chunk at a time and classifies each window as soon
   * as its frames are encoded. Memory holds a chunk of frames and the embeddings of the windows
   * under way, whatever the video's length.
   */
  /**
   * The streaming entry point (files read straight through, live sources, frames pushed by a page):
   * frames in grid order at `streamFps` per second, each window handed to `o.onWindow` as soon as it
   * and `o.lookahead` seconds after it are detected; the summary when the frames end. predict/stream.ts.
   */
  predictStream(frames: AsyncIterable<InFrame>, o: StreamOptions = {}): Promise<StreamSummary> {
    return predictStream(this, frames, o);
  }

  async predict(video: string, o: PredictOptions = {}): Promise<Prediction> {
    if (o.persons !== undefined && o.faceBox)
      throw new UserError('a known face box (--box) is one person: it does not go with --all-persons or --person');
    const job = await PredictionJob.open(this, video, o);
    await job.detect();
    await job.encodeAndClassify();
    return job.answer();
  }
}

/** One prediction under way: pass 1 (detect), pass 2 (crop, encode, classify), the answer. */
class PredictionJob {
  private perFrame?: Detection[][]; // per grid position; absent with a known box
  private persons?: Person[];
  private subjects?: Subject[];
  private blank?: { scene: Float32Array; low: Float32Array }; // every blank scene is the same image
  private readonly pending: Array<{ s: Subject; pos: number; face: RgbFrame; scene: RgbFrame }> = [];
  private decoded?: { width: number; height: number }; // the frames' size as decoded
  private own?: { width: number; height: number }; // the source's: boxes are reported in it
  private summary?: ClipSummary; // what pass 2 found the clip to be
  private readonly T: number;
  private readonly crop: Crop;
  private readonly withBlank: boolean;
  private readonly progress: NonNullable<PredictOptions['onProgress']>;

  private constructor(
    private readonly p: Predictor,
    private readonly video: string,
    private readonly o: PredictOptions,
    private readonly clip: ClipSource,
    private readonly plan: TimelinePlan,
    private readonly timeline: TimelineOptions,
  ) {
    this.T = p.recipe.frames;
    this.crop = predictionCrop(p.recipe);
    this.withBlank = p.conf.ous.model === 'ous' && p.conf.ous.scene;
    this.progress = o.onProgress ?? (() => {});
  }

  static async open(p: Predictor, video: string, o: PredictOptions): Promise<PredictionJob> {
    const timeline = { window: o.window ?? DEFAULT_TIMELINE.window, stride: o.stride ?? DEFAULT_TIMELINE.stride };
    o.onProgress?.('decode', 0);
    const clip = await openClip(video, { ...o.read, maxSeconds: o.maxSeconds });
    // The plan's length, whatever the header said: a longer one is refused before anything decodes.
    const length = clip.fps > 0 ? clip.frameCount / clip.fps : 0;
    if (o.maxSeconds !== undefined && length > o.maxSeconds)
      throw new VideoTooLongError(
        `${video}: longer than --max-seconds ${o.maxSeconds} (${clip.frameCount} frames at ` +
          `${+clip.fps.toFixed(3)} fps: ${length.toFixed(1)} s); raise --max-seconds to read it`,
      );
    const plan = planTimeline(clip.frameCount, clip.fps, p.recipe.frames, timeline);
    return new PredictionJob(p, video, o, clip, plan, timeline);
  }

  private timeOf(pos: number): number {
    return this.clip.fps ? this.plan.indices[pos]! / this.clip.fps : 0;
  }

  /** Pass 1: every grid frame's faces, and the persons when asked for. */
  async detect(): Promise<void> {
    const { o, progress } = this;
    progress('detect', 0);
    if (o.faceBox) return;
    this.perFrame = await detectClip(this.clip, this.plan.indices, {
      device: this.p.device === 'cpu' ? undefined : this.p.device,
      onDetect: (done, total) => progress('detect', done / total, { done, total }),
    });
    if (o.persons === undefined) return;
    const persons = trackPersons(this.perFrame);
    if (typeof o.persons === 'number' && !persons.some((x) => x.id === o.persons))
      throw new UserError(
        `--person ${o.persons}: no such person in ${this.video} ` +
          `(${persons.length ? `persons ${persons.map((x) => x.id).join(', ')}` : 'no face found'}; ` +
          'ous predict --all-persons lists them)',
      );
    this.persons = persons;
  }

  private newSubject(
    init: Pick<Subject, 'person' | 'main' | 'faceMissing' | 'windows' | 'square' | 'detected'>,
  ): Subject {
    const { plan, T } = this;
    return {
      ...init,
      from: plan.windows[init.windows[0]!]!.first,
      to: plan.windows[init.windows[init.windows.length - 1]!]!.first + T - 1,
      rows: new Map(),
      next: 0,
      results: [],
      faces: [],
    };
  }

  /**
   * The subjects, made once the decoded frame's size is known (a centre square needs it): the face
   * by the recipe's subject rule (streams/index.ts faceTrack), or each person asked for
   * (personSquares), cropped by the recipe's crop.
   */
  private subjectsFor(frame: RgbFrame): Subject[] {
    const { o, plan, T } = this;
    const everyWindow = plan.windows.map((_, i) => i);
    if (!this.persons?.length) {
      const dets =
        this.perFrame ?? plan.indices.map(() => [{ box: rescaleBox(o.faceBox!, this.own!, frame), score: 1 }]);
      // A known box is the subject itself (its one detection per frame): no rule to apply.
      const rule = o.faceBox ? 'main' : (o.subject ?? this.p.recipe.subject);
      const subject = Array.isArray(rule) ? rescaleBox(rule, this.own!, frame) : rule;
      const face = faceTrack(dets, frame, this.crop, subject);
      return [
        this.newSubject({
          main: true,
          faceMissing: face.faceMissing,
          windows: everyWindow,
          square: (pos) => face.boxes[pos]!,
          detected: (pos) => face.detected[pos]!,
        }),
      ];
    }
    const main = this.persons[mainPerson(this.persons)]!;
    return this.persons
      .filter((x) => o.persons === 'all' || x.id === o.persons)
      .map((x) =>
        this.newSubject({
          person: x,
          main: x === main,
          faceMissing: false,
          windows: everyWindow.filter(
            (w) => plan.windows[w]!.first <= x.last && plan.windows[w]!.first + T - 1 >= x.first,
          ),
          square: personSquares(x, this.crop),
          detected: (pos) => pos >= x.first && pos <= x.last && x.track[pos - x.first] !== null,
        }),
      );
  }

  /** Pass 2: each grid frame cut into each subject's face and scene, encoded a chunk at a time. */
  async encodeAndClassify(): Promise<ClipSummary> {
    const chunk = 16; // crops encoded at a time (32 images: faces and scenes)
    const scene = this.p.recipe.scene;
    const summary = await forEachPosition(this.clip, this.plan.indices, async (pos, frame) => {
      if (!this.subjects) {
        this.decoded = frame;
        this.own = await this.clip.ownSize(this.plan.indices[0]!);
        this.subjects = this.subjectsFor(frame);
        this.progress('encode', 0);
      }
      for (const s of this.subjects) {
        if (pos < s.from || pos > s.to) continue;
        const square = s.square(pos);
        s.faces.push({
          time: Math.round(this.timeOf(pos) * 1000) / 1000,
          box: round(rescaleBox(square, frame, this.own!)),
          detected: s.detected(pos),
        });
        this.pending.push({ s, pos, ...cutFrame(frame, square, scene, s.faceMissing) });
        if (this.pending.length === chunk) await this.encodePending();
      }
    });
    if (this.pending.length) await this.encodePending();
    this.progress('classify', 1);
    this.summary = summary;
    return summary;
  }

  /** Encodes the pending crops (and the blank scene once), stores their rows, classifies what is ready. */
  private async encodePending(): Promise<void> {
    const { pending, withBlank } = this;
    const n = pending.length;
    const frames = [...pending.map((x) => x.face), ...pending.map((x) => x.scene)];
    if (withBlank && !this.blank) frames.push(blankLike(pending[0]!.scene));
    const out = await this.p.encoder.encode(frames, this.p.recipe.polarityLayer);
    const [E, W] = [out.emb.size(1), out.low!.size(1)];
    const emb = asCached(out.emb.toTypedArray() as Float32Array); // [2n(+1), E]
    const low = asCached(out.low!.toTypedArray() as Float32Array); // [2n(+1), W]
    out.emb.dispose();
    out.low!.dispose();
    pending.forEach(({ s, pos }, j) =>
      s.rows.set(pos, {
        face: emb.subarray(j * E, (j + 1) * E),
        scene: emb.subarray((n + j) * E, (n + j + 1) * E),
        low: low.subarray((n + j) * W, (n + j + 1) * W),
      }),
    );
    if (withBlank && !this.blank)
      this.blank = { scene: emb.slice(2 * n * E, (2 * n + 1) * E), low: low.slice(2 * n * W, (2 * n + 1) * W) };
    this.progress('encode', (pending[n - 1]!.pos + 1) / this.plan.indices.length);
    pending.length = 0;
    for (const s of this.subjects!) this.classifyReady(s);
  }

  /** Classifies the subject's windows whose frames are all encoded, and drops the rows no window needs. */
  private classifyReady(s: Subject): void {
    const { plan, T } = this;
    const firstOf = (k: number) => plan.windows[s.windows[k]!]!.first;
    let ready = 0;
    while (s.next + ready < s.windows.length && s.rows.has(firstOf(s.next + ready) + T - 1)) ready++;
    if (ready) {
      this.classify(s, ready);
      const [done, total] = this.subjects!.reduce(([d, t], x) => [d + x.next, t + x.windows.length], [0, 0]);
      this.progress('classify', done / total, { done, total });
    }
    const keepFrom = s.next < s.windows.length ? firstOf(s.next) : Infinity;
    for (const pos of s.rows.keys()) if (pos < keepFrom) s.rows.delete(pos);
  }

  /** The head on `count` windows of the subject from its next one: with the scene, and with a blank one. */
  private score(s: Subject, count: number): Scored {
    const { plan, T } = this;
    const at = (w: number, t: number) => s.rows.get(plan.windows[s.windows[s.next + w]!]!.first + t)!;
    return scoreWindows(this.p, count, T, at, this.withBlank ? this.blank : undefined);
  }

  private classify(s: Subject, count: number): void {
    const { plan, T } = this;
    const names = this.p.classNames;
    const scored = this.score(s, count);
    for (let w = 0; w < count; w++) {
      const planned = plan.windows[s.windows[s.next + w]!]!;
      const [p, pol, q] = [scored.p[w]!, scored.pol?.[w] ?? null, scored.q?.[w] ?? null];
      let faceFrames = 0;
      for (let t = 0; t < T; t++) if (s.detected(planned.first + t)) faceFrames++;
      const win: WindowPrediction = {
        start: planned.start,
        end: planned.end,
        ...result(names, p, pol, q),
        faceBox: round(rescaleBox(s.square(planned.first + Math.floor(T / 2)), this.decoded!, this.own!)),
        faceFrames,
      };
      if (q) blankScene.set(win, q);
      s.results.push(win);
      this.o.onWindow?.(win, s.next + w, s.windows.length, s.person?.id);
    }
    s.next += count;
  }

  /** A subject's whole answer: the mean over its windows that saw the face, and the share each class tops. */
  private subjectAnswer(s: Subject) {
    return overall(this.p.classNames, s.results);
  }

  answer(): Prediction {
    const subjects = this.subjects!;
    const summary = this.summary!;
    const lead = subjects.find((s) => s.main) ?? subjects[0]!;
    const { share, noFaceWindows, noFaceAnswer, ...whole } = this.subjectAnswer(lead);
    const warning = undecodedWarning({ ...summary, frames: { length: this.plan.indices.length } });
    const note = stillNote(summary) ?? this.clip.info?.timing;
    const at = (pos: number) => Math.round(this.timeOf(pos) * 1000) / 1000;
    const p = this.p;
    return {
      video: this.video,
      ...whole,
      faceMissing: lead.faceMissing,
      ...(warning ? { warning } : {}),
      ...(note ? { note } : {}),
      duration: this.clip.info?.duration ?? 0,
      width: summary.width,
      height: summary.height,
      windows: lead.results,
      faces: lead.faces,
      summary: {
        window: this.timeline.window,
        stride: this.plan.stride,
        frames: this.T,
        share,
        precision: p.encoder.precision,
        noFaceWindows,
        noFaceAnswer,
      },
      ...(this.persons
        ? {
            persons: subjects
              .filter((s) => s.person)
              .map((s) => ({
                id: s.person!.id,
                main: s.main,
                first: at(s.person!.first),
                last: at(s.person!.last),
                ...pick(this.subjectAnswer(s)),
                windows: s.results,
                faces: s.faces,
              })),
          }
        : {}),
      recipe: p.recipeReport(this.o.faceBox ? {} : this.o),
    };
  }
}
