import { FrameEncoder, type EnginePreference } from '../data/encoder.js';
import {
  CLIP_MEAN_RGB,
  cutFrame,
  detectClip,
  faceTrack,
  forEachPosition,
  openClip,
  stillNote,
  undecodedWarning,
} from '../streams/index.js';
import { mainPerson, personBoxes, squareBox, trackPersons, type Person } from '../face/tracks.js';
import { rescaleBox } from '../util/box.js';
import { buildHead, type Head } from '../ous/model.js';
import { POLARITIES } from '../ous/config.js';
import { loadClipFolder } from '../clip/load.js';
import {
  checkpointFile,
  loadHeadWeights,
  readRunConfig,
  runInference,
  type InferenceInfo,
  type RunConfig,
} from '../runs/folder.js';
import { noGrad, tensor, tidy, type Device, type Precision } from '../torch/index.js';
import { precisionMismatch } from '../torch/precision.js';
import type { RgbFrame } from '../video/decode.js';
import type { Box } from '../face/detector.js';
import { pathKind } from '../util/fs.js';
import { UserError } from '../util/errors.js';
import { DEFAULT_TIMELINE, planTimeline, type TimelineOptions } from './timeline.js';

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
  summary: { window: number; stride: number; frames: number; share: Record<string, number>; precision: Precision };
  warning?: string; // frames the decoder could not deliver (a truncated or corrupt file)
  note?: string; // a still image: its one frame stands for every sampled frame
  // with `persons` asked for: each person's timeline (the fields above are the main person's)
  persons?: PersonPrediction[];
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
  share: Record<string, number>; // part of their windows each class tops
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
}

/** Embedding rows of one grid frame for one subject: its face crop, its scene, the scene's low block. */
interface Rows {
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
  sums: { p: number[]; pol: number[]; q: number[] };
  results: WindowPrediction[];
  faces: Array<{ time: number; box: Box; detected: boolean }>;
}

const blankLike = (f: RgbFrame): RgbFrame => {
  const data = new Uint8Array(f.data.length);
  for (let i = 0; i < data.length; i += 3) data.set(CLIP_MEAN_RGB, i);
  return { data, width: f.width, height: f.height };
};

const top = (v: number[]) => v.indexOf(Math.max(...v));

/** A probability vector (and its polarity, and its blank-scene twin) as the answer reads it. */
function result(names: string[], p: number[], pol: number[] | null, q: number[] | null) {
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

export class Predictor {
  private constructor(
    readonly runDir: string,
    readonly conf: RunConfig,
    readonly inference: InferenceInfo,
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
    const inference = runInference(runDir, conf);
    const clipDir = opts.clip ?? conf.clip;
    if (pathKind(clipDir) === 'missing')
      throw new UserError(
        opts.clip
          ? `--clip ${clipDir}: no such folder`
          : `the run was trained with CLIP at ${clipDir}, which is not there: pass --clip DIR`,
      );
    const clip = loadClipFolder(clipDir, {
      device: opts.device,
      expectHash: { hash: inference.clipHash, what: `${runDir} was trained on`, flag: '--clip' },
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
    return new Predictor(runDir, conf, inference, encoder, head, opts.device ?? 'cpu');
  }

  /** One line when the run's features were made at another precision than the tower runs in now. */
  get precisionNote(): string | undefined {
    return precisionMismatch(this.inference.precision, this.encoder.precision);
  }

  get classNames(): string[] {
    return this.conf.ous.classNames;
  }

  /**
   * Emotion, polarity and the scene's effect for a video (per window on a long one), streamed: the
   * frames are decoded and their faces detected in one pass (only the detections are kept), the face
   * track is linked over the whole video (or one track per person), then a second pass crops and
   * encodes the frames a chunk at a time and classifies each window as soon as its frames are
   * encoded. Memory holds a chunk of frames and the embeddings of the windows under way, whatever
   * the video's length.
   */
  async predict(video: string, o: PredictOptions = {}): Promise<Prediction> {
    const progress = o.onProgress ?? (() => {});
    const T = this.inference.frames;
    const timeline = { window: o.window ?? DEFAULT_TIMELINE.window, stride: o.stride ?? DEFAULT_TIMELINE.stride };
    if (o.persons !== undefined && o.faceBox)
      throw new UserError('a known face box (--box) is one person: it does not go with --all-persons or --person');
    progress('decode', 0);
    const clip = await openClip(video, { maxSeconds: o.maxSeconds });
    const plan = planTimeline(clip.frameCount, clip.fps, T, timeline);
    const G = plan.indices.length;
    const names = this.classNames;
    const k = this.inference.polarityLayer;
    const scene = this.inference.scene;
    const withBlank = this.conf.ous.model === 'ous' && this.conf.ous.scene;
    // a run trained without polarity labels has an untrained polarity head
    const usePolarity = this.conf.ous.polarity !== false;
    const timeOf = (pos: number) => (clip.fps ? plan.indices[pos]! / clip.fps : 0);
    const round = (b: Box): Box => b.map((v) => Math.round(v * 10) / 10) as Box;

    progress('detect', 0);
    const perFrame = o.faceBox
      ? undefined
      : await detectClip(clip, plan.indices, {
          device: this.device === 'cpu' ? undefined : this.device,
          onDetect: (done, total) => progress('detect', done / total, { done, total }),
        });
    const persons = perFrame && o.persons !== undefined ? trackPersons(perFrame) : undefined;
    if (persons && typeof o.persons === 'number' && !persons.some((p) => p.id === o.persons)) {
      throw new UserError(
        `--person ${o.persons}: no such person in ${video} ` +
          `(${persons.length ? `persons ${persons.map((p) => p.id).join(', ')}` : 'no face found'}; ` +
          'ous predict --all-persons lists them)',
      );
    }

    const subject = (
      init: Pick<Subject, 'person' | 'main' | 'faceMissing' | 'windows' | 'square' | 'detected'>,
    ): Subject => ({
      ...init,
      from: plan.windows[init.windows[0]!]!.first,
      to: plan.windows[init.windows[init.windows.length - 1]!]!.first + T - 1,
      rows: new Map(),
      next: 0,
      sums: { p: new Array<number>(names.length).fill(0), pol: [0, 0, 0], q: new Array<number>(names.length).fill(0) },
      results: [],
      faces: [],
    });
    const everyWindow = plan.windows.map((_, i) => i);
    // the frames' size as decoded, and the source's: boxes are reported in the latter
    let decoded: { width: number; height: number } | undefined;
    let own: { width: number; height: number } | undefined;
    /** The subjects, made once the decoded frame's size is known (a centre square needs it). */
    const subjectsFor = (frame: RgbFrame): Subject[] => {
      if (!persons?.length) {
        const dets = perFrame ?? plan.indices.map(() => [{ box: rescaleBox(o.faceBox!, own!, frame), score: 1 }]);
        const face = faceTrack(dets, frame);
        return [
          subject({
            main: true,
            faceMissing: face.faceMissing,
            windows: everyWindow,
            square: (pos) => face.boxes[pos]!,
            detected: (pos) => face.detected[pos]!,
          }),
        ];
      }
      const main = persons[mainPerson(persons)]!;
      return persons
        .filter((p) => o.persons === 'all' || p.id === o.persons)
        .map((p) => {
          const boxes = personBoxes(p);
          // A grid frame before they enter or after they leave holds their nearest box (holdEnds).
          const square = (pos: number) => squareBox(boxes[Math.min(Math.max(pos, p.first), p.last) - p.first]!);
          const windows = everyWindow.filter(
            (w) => plan.windows[w]!.first <= p.last && plan.windows[w]!.first + T - 1 >= p.first,
          );
          return subject({
            person: p,
            main: p === main,
            faceMissing: false,
            windows,
            square,
            detected: (pos) => pos >= p.first && pos <= p.last && p.track[pos - p.first] !== null,
          });
        });
    };

    let subjects: Subject[] | undefined;
    let blank: { scene: Float32Array; low: Float32Array } | undefined; // every blank scene is the same image
    const pending: Array<{ s: Subject; pos: number; face: RgbFrame; scene: RgbFrame }> = [];

    const classify = (s: Subject, count: number) => {
      const first = s.next;
      const at = (w: number, t: number) => s.rows.get(plan.windows[s.windows[first + w]!]!.first + t)!;
      const scored = noGrad(() =>
        tidy(() => {
          const [E, W] = [at(0, 0).face.length, at(0, 0).low.length];
          const gather = (pick: (r: Rows) => Float32Array, width: number) => {
            const data = new Float32Array(count * T * width);
            for (let w = 0; w < count; w++) for (let t = 0; t < T; t++) data.set(pick(at(w, t)), (w * T + t) * width);
            return tensor(data, { shape: [count, T, width] }).to({ device: this.device });
          };
          const face = gather((r) => r.face, E); // [K', T, E]
          const sceneEmb = gather((r) => r.scene, E); // [K', T, E]
          const sceneLow = gather((r) => r.low, W); // [K', T, W]
          const withScene = this.head.forward({ face, scene: sceneEmb, low: sceneLow });
          const p = withScene.logits.softmax(-1).toArray() as number[][]; // [K'][C]
          const pol =
            withScene.polarityLogits && usePolarity
              ? (withScene.polarityLogits.softmax(-1).toArray() as number[][])
              : null;
          let q: number[][] | null = null;
          if (withBlank) {
            const blankScene = tensor(blank!.scene, { shape: [1, 1, E] })
              .to({ device: this.device })
              .expand(count, T, E);
            const blankLow = tensor(blank!.low, { shape: [1, 1, W] })
              .to({ device: this.device })
              .expand(count, T, W);
            q = this.head
              .forward({ face, scene: blankScene, low: blankLow })
              .logits.softmax(-1)
              .toArray() as number[][];
          }
          return { p, pol, q };
        }),
      );
      for (let w = 0; w < count; w++) {
        const planned = plan.windows[s.windows[first + w]!]!;
        const [p, pol, q] = [scored.p[w]!, scored.pol?.[w] ?? null, scored.q?.[w] ?? null];
        p.forEach((v, c) => (s.sums.p[c]! += v));
        pol?.forEach((v, c) => (s.sums.pol[c]! += v));
        q?.forEach((v, c) => (s.sums.q[c]! += v));
        const win: WindowPrediction = {
          start: planned.start,
          end: planned.end,
          ...result(names, p, pol, q),
          faceBox: round(rescaleBox(s.square(planned.first + Math.floor(T / 2)), decoded!, own!)),
        };
        s.results.push(win);
        o.onWindow?.(win, first + w, s.windows.length, s.person?.id);
      }
      s.next += count;
    };

    const encodePending = async () => {
      const n = pending.length;
      const frames = [...pending.map((x) => x.face), ...pending.map((x) => x.scene)];
      if (withBlank && !blank) frames.push(blankLike(pending[0]!.scene));
      const out = await this.encoder.encode(frames, k);
      const [E, W] = [out.emb.size(1), out.low!.size(1)];
      const emb = out.emb.toTypedArray() as Float32Array; // [2n(+1), E]
      const low = out.low!.toTypedArray() as Float32Array; // [2n(+1), W]
      out.emb.dispose();
      out.low!.dispose();
      pending.forEach(({ s, pos }, j) =>
        s.rows.set(pos, {
          face: emb.subarray(j * E, (j + 1) * E),
          scene: emb.subarray((n + j) * E, (n + j + 1) * E),
          low: low.subarray((n + j) * W, (n + j + 1) * W),
        }),
      );
      if (withBlank && !blank)
        blank = { scene: emb.slice(2 * n * E, (2 * n + 1) * E), low: low.slice(2 * n * W, (2 * n + 1) * W) };
      progress('encode', (pending[n - 1]!.pos + 1) / G);
      pending.length = 0;
      for (const s of subjects!) {
        let ready = 0;
        while (s.next + ready < s.windows.length && s.rows.has(plan.windows[s.windows[s.next + ready]!]!.first + T - 1))
          ready++;
        if (ready) {
          classify(s, ready);
          const [done, total] = subjects!.reduce(([d, t], x) => [d + x.next, t + x.windows.length], [0, 0]);
          progress('classify', done / total, { done, total });
        }
        const keepFrom = s.next < s.windows.length ? plan.windows[s.windows[s.next]!]!.first : Infinity;
        for (const pos of s.rows.keys()) if (pos < keepFrom) s.rows.delete(pos);
      }
    };

    const chunk = 16; // crops encoded at a time (32 images: faces and scenes)
    const summary = await forEachPosition(clip, plan.indices, async (pos, frame) => {
      if (!subjects) {
        decoded = frame;
        own = await clip.ownSize(plan.indices[0]!);
        subjects = subjectsFor(frame);
        progress('encode', 0);
      }
      for (const s of subjects) {
        if (pos < s.from || pos > s.to) continue;
        const square = s.square(pos);
        s.faces.push({
          time: Math.round(timeOf(pos) * 1000) / 1000,
          box: round(rescaleBox(square, frame, own!)),
          detected: s.detected(pos),
        });
        pending.push({ s, pos, ...cutFrame(frame, square, scene, s.faceMissing) });
        if (pending.length === chunk) await encodePending();
      }
    });
    if (pending.length) await encodePending();
    progress('classify', 1);

    const answer = (s: Subject) => {
      const K = s.results.length;
      const mean = (v: number[]) => v.map((x) => x / K);
      return {
        ...result(
          names,
          mean(s.sums.p),
          s.results[0]?.polarity ? mean(s.sums.pol) : null,
          s.results[0]?.sceneEffect ? mean(s.sums.q) : null,
        ),
        share: Object.fromEntries(names.map((n) => [n, s.results.filter((w) => w.emotion === n).length / K])),
      };
    };
    const lead = subjects!.find((s) => s.main) ?? subjects![0]!;
    const { share, ...whole } = answer(lead);
    const warning = undecodedWarning({ ...summary, frames: { length: G } });
    const note = stillNote(summary);
    return {
      video,
      ...whole,
      faceMissing: lead.faceMissing,
      ...(warning ? { warning } : {}),
      ...(note ? { note } : {}),
      duration: clip.info?.duration ?? 0,
      width: summary.width,
      height: summary.height,
      windows: lead.results,
      faces: lead.faces,
      summary: { window: timeline.window, stride: plan.stride, frames: T, share, precision: this.encoder.precision },
      ...(persons
        ? {
            persons: subjects!
              .filter((s) => s.person)
              .map((s) => ({
                id: s.person!.id,
                main: s.main,
                first: Math.round(timeOf(s.person!.first) * 1000) / 1000,
                last: Math.round(timeOf(s.person!.last) * 1000) / 1000,
                ...answer(s),
                windows: s.results,
                faces: s.faces,
              })),
          }
        : {}),
    };
  }
}
