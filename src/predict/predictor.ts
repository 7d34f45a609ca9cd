// A trained run ready for inference: the run folder and a CLIP folder are all it needs (the run
// records how its features were made: T, scene mode, polarity layer, CLIP's hash). CLIP is loaded
// once: its vision tower encodes the frames, its text tower feeds the prompt learner.
//
// A prediction gives the emotion, the scene polarity, and how much the scene changed the decision:
// the same head runs again with an uninformative scene (every scene frame replaced by CLIP's mean
// colour); the difference between the two probability vectors (total variation) and whether the
// top class moved. On a video longer than one window, it does so per window (timeline.ts) and the
// whole-video answer is the mean over the windows.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { FrameEncoder, type EnginePreference } from '../data/encoder.js';
import type { CacheInfo } from '../data/cache.js';
import { CLIP_MEAN_RGB, openClip, stillNote, streamClip, undecodedWarning, type StreamFrame } from '../streams/index.js';
import { buildHead, type Head } from '../ous/model.js';
import { POLARITIES, type OusConfig } from '../ous/config.js';
import { textTowerOf, type InferenceInfo } from '../train/run.js';
import { loadSafetensors, noGrad, tensor, tidy, type Device, type Precision } from '../torch/index.js';
import type { RgbFrame } from '../video/decode.js';
import type { Box } from '../face/detector.js';
import { readJson } from '../util/fs.js';
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
  summary: { window: number; stride: number; frames: number; share: Record<string, number>; precision: Precision }; // share: part of the windows each class tops; precision: CLIP's vision tower's
  warning?: string; // frames the decoder could not deliver (a truncated or corrupt file)
  note?: string; // a still image: its one frame stands for every sampled frame
}

export type Stage = 'decode' | 'detect' | 'encode' | 'classify';

export interface PredictOptions extends Partial<TimelineOptions> {
  faceBox?: Box; // a known face box (source pixels): no detection
  maxSeconds?: number; // refuse a video whose decoded length passes this (measured while decoding, not from metadata)
  onProgress?: (stage: Stage, fraction: number, count?: { done: number; total: number }) => void; // fraction of the stage done, 0..1, moving as the work goes (count: frames)
  onWindow?: (w: WindowPrediction, k: number, total: number) => void; // each window as soon as it is classified, in order
}

interface RunConfig {
  ous: OusConfig;
  dims: { frames: number; embed: number; visionWidth: number };
  cache: string;
  clip: string;
  inference?: InferenceInfo;
}

/** What the run records for inference; a run from before it did falls back to its cache's cache.json. */
function inferenceInfo(runDir: string, conf: RunConfig): InferenceInfo {
  if (conf.inference) return conf.inference;
  const file = path.join(conf.cache, 'cache.json');
  if (!fs.existsSync(file)) throw new UserError(`${runDir}/config.json records no inference settings and its cache ${conf.cache} is gone: retrain with this version`);
  const c = readJson<CacheInfo>(file);
  return { frames: c.frames, scene: c.scene, polarityLayer: c.polarityLayer, clipHash: c.clip.hash };
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
    sceneEffect: q ? { totalVariation: p.reduce((acc, v, i) => acc + Math.abs(v - q[i]!), 0) / 2, changedDecision: top(p) !== top(q), emotionWithoutScene: names[top(q)]! } : null,
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

  /** Loads a run and CLIP (from `clip`, else where the run says); CLIP's weights must be the run's. Its vision tower runs in `precision` (fp32). */
  static load(runDir: string, opts: { clip?: string; device?: Device; precision?: Precision; engine?: EnginePreference } = {}): Predictor {
    const configFile = path.join(runDir, 'config.json');
    if (!fs.existsSync(configFile)) throw new UserError(`--run ${runDir}: not a run folder (no config.json); make one with 'ous train'`);
    const conf = readJson<RunConfig>(configFile);
    const ckpt = path.join(runDir, 'checkpoint.safetensors');
    if (!fs.existsSync(ckpt)) throw new UserError(`--run ${runDir}: no checkpoint.safetensors yet (no epoch finished)`);
    const inference = inferenceInfo(runDir, conf);
    const clipDir = opts.clip ?? conf.clip;
    if (!fs.existsSync(clipDir)) throw new UserError(opts.clip ? `--clip ${clipDir}: no such folder` : `the run was trained with CLIP at ${clipDir}, which is not there: pass --clip DIR`);
    const encoder = FrameEncoder.load(clipDir, { device: opts.device, precision: opts.precision, engine: opts.engine });
    if (encoder.hash !== inference.clipHash) {
      throw new UserError(`--clip ${clipDir}: its weights (sha256 ${encoder.hash.slice(0, 12)}) are not the ones ${runDir} was trained on (${inference.clipHash.slice(0, 12)}): give the CLIP folder the run's cache was extracted with`);
    }
    const head = buildHead(conf.ous, conf.dims, textTowerOf(encoder.clip, clipDir, opts.device));
    head.loadStateDict(loadSafetensors(ckpt));
    if (opts.device) head.to({ device: opts.device });
    head.eval();
    return new Predictor(runDir, conf, inference, encoder, head, opts.device ?? 'cpu');
  }

  get classNames(): string[] {
    return this.conf.ous.classNames;
  }

  /**
   * Emotion, polarity and the scene's effect for a video (per window on a long one), streamed: the
   * frames are decoded and their faces detected in one pass (only the detections are kept), the face
   * track is linked over the whole video, then a second pass crops and encodes the frames a chunk at
   * a time and classifies each window as soon as its frames are encoded. Memory holds a chunk of
   * frames and the embeddings of the windows under way, whatever the video's length.
   */
  async predict(video: string, o: PredictOptions = {}): Promise<Prediction> {
    const progress = o.onProgress ?? (() => {});
    const T = this.inference.frames;
    const timeline = { window: o.window ?? DEFAULT_TIMELINE.window, stride: o.stride ?? DEFAULT_TIMELINE.stride };
    progress('decode', 0);
    const clip = await openClip(video, { maxSeconds: o.maxSeconds });
    const plan = planTimeline(clip.frameCount, clip.fps, T, timeline);
    const G = plan.indices.length;
    const K = plan.windows.length;
    const names = this.classNames;
    const k = this.inference.polarityLayer;
    const withBlank = this.conf.ous.model === 'ous' && this.conf.ous.scene;

    // Embedding rows of encoded grid positions, until no window still to come needs them.
    const rows = new Map<number, { face: Float32Array; scene: Float32Array; low: Float32Array }>();
    let blank: { scene: Float32Array; low: Float32Array } | undefined; // every blank scene is the same image
    const pending: Array<[number, StreamFrame]> = [];
    const faces: Prediction['faces'] = [];
    const windows: WindowPrediction[] = [];
    const sums = { p: new Array<number>(names.length).fill(0), pol: [0, 0, 0], q: new Array<number>(names.length).fill(0) };
    let sawPolarity = false;
    let sawEffect = false;
    const scaled = (b: Box): Box => b.map((v) => Math.round(v * 10) / 10) as Box; // streamClip's boxes are in the source's pixels

    const classify = (first: number, count: number) => {
      const scored = noGrad(() =>
        tidy(() => {
          const [E, W] = [rows.get(plan.windows[first]!.first)!.face.length, rows.get(plan.windows[first]!.first)!.low.length];
          const gather = (pick: (r: { face: Float32Array; scene: Float32Array; low: Float32Array }) => Float32Array, width: number) => {
            const data = new Float32Array(count * T * width);
            for (let w = 0; w < count; w++) for (let t = 0; t < T; t++) data.set(pick(rows.get(plan.windows[first + w]!.first + t)!), (w * T + t) * width);
            return tensor(data, { shape: [count, T, width] }).to({ device: this.device });
          };
          const face = gather((r) => r.face, E); // [K', T, E]
          const scene = gather((r) => r.scene, E); // [K', T, E]
          const sceneLow = gather((r) => r.low, W); // [K', T, W]
          const withScene = this.head.forward({ face, scene, low: sceneLow });
          const p = withScene.logits.softmax(-1).toArray() as number[][]; // [K'][C]
          // A run trained without polarity labels has an untrained polarity head: nothing to show.
          const pol = withScene.polarityLogits && this.conf.ous.polarity !== false ? (withScene.polarityLogits.softmax(-1).toArray() as number[][]) : null;
          let q: number[][] | null = null;
          if (withBlank) {
            const blankScene = tensor(blank!.scene, { shape: [1, 1, E] }).to({ device: this.device }).expand(count, T, E);
            const blankLow = tensor(blank!.low, { shape: [1, 1, W] }).to({ device: this.device }).expand(count, T, W);
            q = this.head.forward({ face, scene: blankScene, low: blankLow }).logits.softmax(-1).toArray() as number[][];
          }
          return { p, pol, q };
        }),
      );
      for (let w = 0; w < count; w++) {
        const planned = plan.windows[first + w]!;
        const [p, pol, q] = [scored.p[w]!, scored.pol?.[w] ?? null, scored.q?.[w] ?? null];
        p.forEach((v, c) => (sums.p[c]! += v));
        if (pol) pol.forEach((v, c) => (sums.pol[c]! += v)), (sawPolarity = true);
        if (q) q.forEach((v, c) => (sums.q[c]! += v)), (sawEffect = true);
        const win: WindowPrediction = { start: planned.start, end: planned.end, ...result(names, p, pol, q), faceBox: faces[planned.first + Math.floor(T / 2)]!.box };
        windows.push(win);
        o.onWindow?.(win, first + w, K);
      }
    };

    let nextWindow = 0;
    const encodePending = async () => {
      const n = pending.length;
      const frames = [...pending.map(([, f]) => f.face), ...pending.map(([, f]) => f.scene)];
      if (withBlank && !blank) frames.push(blankLike(pending[0]![1].scene));
      const out = await this.encoder.encode(frames, k);
      const [E, W] = [out.emb.size(1), out.low!.size(1)];
      const emb = out.emb.toTypedArray() as Float32Array; // [2n(+1), E]
      const low = out.low!.toTypedArray() as Float32Array; // [2n(+1), W]
      out.emb.dispose();
      out.low!.dispose();
      pending.forEach(([pos], j) => rows.set(pos, { face: emb.subarray(j * E, (j + 1) * E), scene: emb.subarray((n + j) * E, (n + j + 1) * E), low: low.subarray((n + j) * W, (n + j + 1) * W) }));
      if (withBlank && !blank) blank = { scene: emb.slice(2 * n * E, (2 * n + 1) * E), low: low.slice(2 * n * W, (2 * n + 1) * W) };
      const lastPos = pending[n - 1]![0];
      pending.length = 0;
      progress('encode', (lastPos + 1) / G);
      const first = nextWindow;
      while (nextWindow < K && plan.windows[nextWindow]!.first + T - 1 <= lastPos) nextWindow++;
      if (nextWindow > first) classify(first, nextWindow - first);
      const keepFrom = nextWindow < K ? plan.windows[nextWindow]!.first : Infinity;
      for (const pos of rows.keys()) if (pos < keepFrom) rows.delete(pos);
    };

    progress('detect', 0);
    const chunk = 16; // grid positions encoded at a time (32 images: faces and scenes)
    const s = await streamClip(
      clip,
      plan.indices,
      { frames: T, scene: this.inference.scene, faceBox: o.faceBox, device: this.device === 'cpu' ? undefined : this.device, onDetect: (done, total) => progress('detect', done / total, { done, total }) },
      async (pos, f) => {
        if (pos === 0) progress('encode', 0);
        faces.push({ time: Math.round(f.timeSec * 1000) / 1000, box: scaled(f.box), detected: f.detected });
        pending.push([pos, f]);
        if (pending.length === chunk) await encodePending();
      },
    );
    if (pending.length) await encodePending();
    progress('classify', 1);

    const mean = (v: number[]) => v.map((x) => x / K);
    const whole = result(names, mean(sums.p), sawPolarity ? mean(sums.pol) : null, sawEffect ? mean(sums.q) : null);
    const share = Object.fromEntries(names.map((n) => [n, windows.filter((w) => w.emotion === n).length / K]));
    const warning = undecodedWarning({ ...s, frames: { length: G } });
    const note = stillNote(s);
    return {
      video,
      ...whole,
      faceMissing: s.faceMissing,
      ...(warning ? { warning } : {}),
      ...(note ? { note } : {}),
      duration: clip.info?.duration ?? 0,
      width: s.width,
      height: s.height,
      windows,
      faces,
      summary: { window: timeline.window, stride: plan.stride, frames: T, share, precision: this.encoder.precision },
    };
  }
}
