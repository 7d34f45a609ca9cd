import { type Tensor, cat, noGrad, precisionDtype, tensor, tidy, type Device, type Precision } from '../torch/index.js';
import { OnnxSession, onnxRuntime, type EnginePreference } from '../torch/onnxruntime.js';
import { loadClipFolder } from './load.js';
import { visionTowerOnnx } from './onnx.js';
import { UserError } from '../util/errors.js';
import type { ClipModel } from './model.js';
import type { ClipImageProcessor } from './image-processor.js';
import type { RgbFrame } from '../video/decode.js';

export type Engine = 'libtorch' | 'onnxruntime';
export type { EnginePreference };

/**
 * onnxruntime for float32 on the CPU when it is installed (and not ruled out by the preference),
 * else libtorch; int8 on onnxruntime only (libtorch has no int8 tower). Preferring onnxruntime where
 * it cannot run, or int8 without it, is a UserError (named after OUS_ENGINE, where the CLI reads the
 * preference).
 */
export function chooseEngine(device: Device, precision: Precision, prefer: EnginePreference = 'auto'): Engine {
  const { ort, why } = onnxRuntime(prefer); // an error for onnxruntime without the package, in every case
  if (precision === 'int8') {
    if (device === 'cpu' && ort) return 'onnxruntime';
    throw new UserError(`--precision int8 runs CLIP's vision tower on onnxruntime on the CPU: ${why}`);
  }
  if (device === 'cpu' && precision === 'fp32' && ort) return 'onnxruntime';
  if (prefer === 'onnxruntime')
    throw new UserError(
      `OUS_ENGINE=onnxruntime runs CLIP's vision tower in fp32 on the CPU only, not ${precision} on ${device}`,
    );
  return 'libtorch';
}

export interface EncoderOptions {
  device?: Device; // 'cpu'
  batchSize?: number; // frames a forward pass (32)
  precision?: Precision; // the vision tower's ('fp32'; int8: onnxruntime's integer kernels)
  engine?: EnginePreference; // which engine runs the tower ('auto': chooseEngine)
}

export class FrameEncoder {
  // onnxruntime sessions by low block (the graph's second output), made at first use
  private readonly sessions = new Map<number | undefined, Promise<OnnxSession>>();

  private constructor(
    readonly clip: ClipModel,
    readonly processor: ClipImageProcessor,
    readonly hash: string,
    readonly device: Device,
    readonly batchSize: number,
    readonly precision: Precision,
    readonly engine: Engine,
  ) {}

  /**
   * Loads CLIP from a Hugging Face folder (frozen, eval mode), hashes its weights and casts its
   * vision tower to `precision` (fp32 by default; checked against the hardware by parsePrecision).
   */
  static load(dir: string, opts: EncoderOptions = {}): FrameEncoder {
    const clip = loadClipFolder(dir, { device: opts.device });
    return FrameEncoder.fromModel(clip.model, clip.processor, clip.hash, opts);
  }

  /** An encoder over a model already in memory (benchmarks, tests); `hash` names its weights. */
  static fromModel(
    clip: ClipModel,
    processor: ClipImageProcessor,
    hash: string,
    opts: EncoderOptions = {},
  ): FrameEncoder {
    const precision = opts.precision ?? 'fp32';
    const device = opts.device ?? 'cpu';
    const engine = chooseEngine(device, precision, opts.engine); // refuses an engine that cannot run before any cast
    clip.setVisionDtype(precisionDtype(precision));
    return new FrameEncoder(clip, processor, hash, device, opts.batchSize ?? 32, precision, engine);
  }

  get dims(): { embed: number; visionWidth: number } {
    return { embed: this.clip.config.projection_dim, visionWidth: this.clip.config.vision_config.hidden_size };
  }

  /** CLIP-normalised pixels [n, 3, R, R] of frames. */
  pixels(frames: RgbFrame[]): Tensor {
    const { data, shape } = this.pixelData(frames);
    return tensor(data, { shape, device: this.device });
  }

  private pixelData(frames: RgbFrame[]): { data: Float32Array; shape: number[] } {
    const R = this.processor.size;
    const data = new Float32Array(frames.length * 3 * R * R);
    frames.forEach((f, i) =>
      data.set(this.processor.preprocessRgb(f.data, f.width, f.height, 3).pixels, i * 3 * R * R),
    );
    return { data, shape: [frames.length, 3, R, R] };
  }

  /**
   * Image embeddings [n, E] of frames, and when `lowBlock` is given the token-mean of the
   * residual stream after that block [n, W]. Runs in batches of `batchSize` without gradients;
   * the outputs are float32 on the CPU.
   */
  async encode(frames: RgbFrame[], lowBlock?: number): Promise<{ emb: Tensor; low?: Tensor }> {
    const embs: Tensor[] = [];
    const lows: Tensor[] = [];
    try {
      for (let i = 0; i < frames.length; i += this.batchSize) {
        const batch = frames.slice(i, i + this.batchSize);
        const out =
          this.engine === 'onnxruntime' ? await this.runOnnx(batch, lowBlock) : this.runLibtorch(batch, lowBlock);
        embs.push(out.emb);
        if (out.low) lows.push(out.low);
      }
      return { emb: cat(embs, 0), low: lowBlock === undefined ? undefined : cat(lows, 0) };
    } finally {
      for (const t of [...embs, ...lows]) t.dispose();
    }
  }

  private runLibtorch(frames: RgbFrame[], lowBlock?: number): { emb: Tensor; low?: Tensor } {
    return noGrad(() =>
      tidy(() => {
        const out = this.clip.encodeImage(this.pixels(frames), lowBlock === undefined ? [] : [lowBlock]);
        return {
          emb: out.imageEmbeds.to('cpu').keep(),
          low: lowBlock === undefined ? undefined : out.blocks[0]!.mean(1).to('cpu').keep(),
        };
      }),
    );
  }

  /** Makes the onnxruntime session for `lowBlock` now, not at the first frames (a server, before it says ready). */
  async prepare(lowBlock?: number): Promise<void> {
    if (this.engine === 'onnxruntime') await this.session(lowBlock);
  }

  private session(lowBlock?: number): Promise<OnnxSession> {
    let session = this.sessions.get(lowBlock);
    if (!session) {
      session = OnnxSession.create(visionTowerOnnx(this.clip, { lowBlock, int8: this.precision === 'int8' }));
      this.sessions.set(lowBlock, session);
    }
    return session;
  }

  private async runOnnx(frames: RgbFrame[], lowBlock?: number): Promise<{ emb: Tensor; low?: Tensor }> {
    // straight from the array, no tensor
    const out = await (await this.session(lowBlock)).run({ pixels: this.pixelData(frames) });
    return { emb: out.image_embeds!, low: out.low };
  }

  /** Frees the onnxruntime sessions (the libtorch model is the caller's). */
  async release(): Promise<void> {
    const all = [...this.sessions.values()];
    this.sessions.clear();
    for (const s of all) await (await s).release();
  }
}

/** The hash of a checkpoint's weights (clip/load.ts; exported here too, where the cache code always found it). */
export { hashCheckpoint } from './load.js';
