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
import { FrameEncoder } from '../data/encoder.js';
import { buildStreams, CLIP_MEAN_RGB, undecodedWarning } from '../streams/index.js';
import { buildHead, type Head } from '../ous/model.js';
import { POLARITIES } from '../ous/config.js';
import { loadClipFolder } from '../clip/load.js';
import { checkpointFile, loadHeadWeights, readRunConfig, runInference, type InferenceInfo, type RunConfig } from '../runs/folder.js';
import { cat, noGrad, tensor, tidy, type Device, type Precision, type Tensor } from '../torch/index.js';
import { probeVideo, type RgbFrame } from '../video/decode.js';
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
  summary: { window: number; stride: number; frames: number; share: Record<string, number>; precision: Precision }; // share: part of the windows each class tops; precision: CLIP's vision tower's
  warning?: string; // frames the decoder could not deliver (a truncated or corrupt file)
}

export type Stage = 'decode' | 'detect' | 'encode' | 'classify';

export interface PredictOptions extends Partial<TimelineOptions> {
  faceBox?: Box; // a known face box (source pixels): no detection
  maxSeconds?: number; // refuse a video whose decoded length passes this (measured while decoding, not from metadata)
  onProgress?: (stage: Stage, fraction: number) => void; // fraction of the stage done, 0..1, moving as the work goes
  onWindow?: (w: WindowPrediction, k: number, total: number) => void; // each window as soon as it is classified, in order
}

const blankLike = (f: RgbFrame): RgbFrame => {
  const data = new Uint8Array(f.data.length);
  for (let i = 0; i < data.length; i += 3) data.set(CLIP_MEAN_RGB, i);
  return { data, width: f.width, height: f.height };
};

const top = (v: number[]) => v.indexOf(Math.max(...v));

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
  static load(runDir: string, opts: { clip?: string; device?: Device; precision?: Precision } = {}): Predictor {
    // The run folder is read and checked by runs/folder.ts, as eval and report read it.
    const conf = readRunConfig(runDir, '--run');
    const ckpt = checkpointFile(runDir, '--run');
    const inference = runInference(runDir, conf);
    const clipDir = opts.clip ?? conf.clip;
    if (pathKind(clipDir) === 'missing') throw new UserError(opts.clip ? `--clip ${clipDir}: no such folder` : `the run was trained with CLIP at ${clipDir}, which is not there: pass --clip DIR`);
    const clip = loadClipFolder(clipDir, { device: opts.device, expectHash: { hash: inference.clipHash, what: `${runDir} was trained on`, flag: '--clip' } });
    const encoder = FrameEncoder.fromModel(clip.model, clip.processor, clip.hash, { device: opts.device, precision: opts.precision });
    const head = buildHead(conf.ous, conf.dims, clip.textTower);
    loadHeadWeights(head, ckpt);
    if (opts.device) head.to({ device: opts.device });
    head.eval();
    return new Predictor(runDir, conf, inference, encoder, head, opts.device ?? 'cpu');
  }

  get classNames(): string[] {
    return this.conf.ous.classNames;
  }

  /** Emotion, polarity and the scene's effect for a video (per window on a long one). */
  async predict(video: string, o: PredictOptions = {}): Promise<Prediction> {
    const progress = o.onProgress ?? (() => {});
    const T = this.inference.frames;
    const timeline = { window: o.window ?? DEFAULT_TIMELINE.window, stride: o.stride ?? DEFAULT_TIMELINE.stride };
    progress('decode', 0);
    const isFolder = fs.existsSync(video) && fs.statSync(video).isDirectory();
    const info = isFolder ? undefined : probeVideo(video);
    const plan = info ? planTimeline(info.frameCount, info.fps, T, timeline) : planTimeline(1, 0, T, timeline);
    progress('detect', 0);
    const s = await buildStreams(video, { frames: T, scene: this.inference.scene, faceBox: o.faceBox, indices: info ? plan.indices : undefined });
    const G = s.frames.length;
    const toSource = info ? info.width / s.width : 1; // boxes back to the displayed pixels

    // Every frame once: faces [G], scenes [G], and one blank scene (all blanks are the same image).
    const k = this.inference.polarityLayer;
    const frames = [...s.frames.map((f) => f.face), ...s.frames.map((f) => f.scene), blankLike(s.frames[0]!.scene)];
    const embs: Tensor[] = [];
    const lows: Tensor[] = [];
    const chunk = 32;
    for (let i = 0; i < frames.length; i += chunk) {
      progress('encode', i / frames.length);
      const { emb, low } = await this.encoder.encode(frames.slice(i, i + chunk), k);
      embs.push(emb);
      lows.push(low!);
    }
    progress('classify', 0);
    const names = this.classNames;
    const K = plan.windows.length;
    const scored = noGrad(() =>
      tidy(() => {
        const emb = cat(embs, 0).to({ device: this.device }); // [2G+1, E]; the encoder hands back CPU tensors
        const low = cat(lows, 0).to({ device: this.device }); // [2G+1, W]
        for (const t of [...embs, ...lows]) t.dispose();
        const rows = plan.windows.flatMap((w) => Array.from({ length: T }, (_, t) => w.first + t));
        const idx = tensor(rows, { dtype: 'int64', device: this.device }); // [K·T]: the faces of each window
        const sceneIdx = tensor(rows.map((r) => G + r), { dtype: 'int64', device: this.device });
        const E = emb.size(1);
        const W = low.size(1);
        const face = emb.indexSelect(0, idx).view([K, T, E]);
        const scene = emb.indexSelect(0, sceneIdx).view([K, T, E]);
        const sceneLow = low.indexSelect(0, sceneIdx).view([K, T, W]);
        const withScene = this.head.forward({ face, scene, low: sceneLow });
        const p = withScene.logits.softmax(-1).toArray() as number[][]; // [K][C]
        // A run trained without polarity labels has an untrained polarity head: nothing to show.
        const pol = withScene.polarityLogits && this.conf.ous.polarity !== false ? (withScene.polarityLogits.softmax(-1).toArray() as number[][]) : null;
        let q: number[][] | null = null;
        if (this.conf.ous.model === 'ous' && this.conf.ous.scene) {
          const blank = emb.narrow(0, 2 * G, 1).unsqueeze(0).expand(K, T, E);
          const blankLow = low.narrow(0, 2 * G, 1).unsqueeze(0).expand(K, T, W);
          q = this.head.forward({ face, scene: blank, low: blankLow }).logits.softmax(-1).toArray() as number[][];
        }
        return { p, pol, q };
      }),
    );
    const result = (p: number[], pol: number[] | null, q: number[] | null) => ({
      emotion: names[top(p)]!,
      probabilities: Object.fromEntries(names.map((n, i) => [n, p[i]!])),
      polarity: pol ? Object.fromEntries(POLARITIES.map((n, i) => [n, pol[i]!])) : null,
      sceneEffect: q ? { totalVariation: p.reduce((acc, v, i) => acc + Math.abs(v - q[i]!), 0) / 2, changedDecision: top(p) !== top(q), emotionWithoutScene: names[top(q)]! } : null,
    });
    const scaled = (b: Box): Box => b.map((v) => Math.round(v * toSource * 10) / 10) as Box;
    const windows: WindowPrediction[] = plan.windows.map((w, i) => ({
      start: w.start,
      end: w.end,
      ...result(scored.p[i]!, scored.pol?.[i] ?? null, scored.q?.[i] ?? null),
      faceBox: scaled(s.frames[w.first + Math.floor(T / 2)]!.box),
    }));
    const mean = (rows: number[][]) => rows[0]!.map((_, c) => rows.reduce((a, r) => a + r[c]!, 0) / rows.length);
    const whole = result(mean(scored.p), scored.pol ? mean(scored.pol) : null, scored.q ? mean(scored.q) : null);
    const share = Object.fromEntries(names.map((n) => [n, windows.filter((w) => w.emotion === n).length / K]));
    progress('classify', 1);
    const warning = undecodedWarning(s);
    return {
      video,
      ...whole,
      faceMissing: s.faceMissing,
      ...(warning ? { warning } : {}),
      duration: info?.duration ?? 0,
      width: info?.width ?? s.width,
      height: info?.height ?? s.height,
      windows,
      faces: s.frames.map((f) => ({ time: Math.round(f.timeSec * 1000) / 1000, box: scaled(f.box), detected: f.detected })),
      summary: { window: timeline.window, stride: plan.stride, frames: T, share, precision: this.encoder.precision },
    };
  }
}
