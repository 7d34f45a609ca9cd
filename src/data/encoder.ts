// The frozen encoder of OUS (SPEC.md §3): one CLIP vision tower shared by both streams. Per frame
// it gives the image embedding (after the projection, not normalised) and, for scene frames, the
// mean over all tokens of the residual stream after block k (the colour/texture/atmosphere signal
// the Polarity Encoder reads). With a precision other than fp32 the vision tower runs in bf16 or
// fp16 (ClipModel.setVisionDtype: its float32 weights are cast once, in place); the features it
// hands back are float32 either way.
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Tensor, cat, noGrad, precisionDtype, tensor, tidy, type Device, type Precision } from '../torch/index.js';
import { loadClip, checkpointFiles } from '../clip/load.js';
import type { ClipModel } from '../clip/model.js';
import { ClipImageProcessor } from '../clip/image-processor.js';
import type { RgbFrame } from '../video/decode.js';


export class FrameEncoder {
  private constructor(
    readonly clip: ClipModel,
    readonly processor: ClipImageProcessor,
    readonly hash: string,
    readonly device: Device,
    readonly batchSize: number,
    readonly precision: Precision,
  ) {}

  /**
   * Loads CLIP from a Hugging Face folder (frozen, eval mode), hashes its weights and casts its
   * vision tower to `precision` (fp32 by default; checked against the hardware by parsePrecision).
   */
  static load(dir: string, opts: { device?: Device; batchSize?: number; precision?: Precision } = {}): FrameEncoder {
    const clip = loadClip(dir, { device: opts.device });
    return FrameEncoder.fromModel(clip, ClipImageProcessor.fromFolder(dir), hashCheckpoint(dir), opts);
  }

  /** An encoder over a model already in memory (benchmarks, tests); `hash` names its weights. */
  static fromModel(clip: ClipModel, processor: ClipImageProcessor, hash: string, opts: { device?: Device; batchSize?: number; precision?: Precision } = {}): FrameEncoder {
    const precision = opts.precision ?? 'fp32';
    clip.setVisionDtype(precisionDtype(precision));
    return new FrameEncoder(clip, processor, hash, opts.device ?? 'cpu', opts.batchSize ?? 32, precision);
  }

  get dims(): { embed: number; visionWidth: number } {
    return { embed: this.clip.config.projection_dim, visionWidth: this.clip.config.vision_config.hidden_size };
  }

  /** CLIP-normalised pixels [n, 3, R, R] of frames. */
  pixels(frames: RgbFrame[]): Tensor {
    const R = this.processor.size;
    const flat = new Float32Array(frames.length * 3 * R * R);
    frames.forEach((f, i) => flat.set(this.processor.preprocessRgb(f.data, f.width, f.height, 3).pixels, i * 3 * R * R));
    return tensor(flat, { shape: [frames.length, 3, R, R], device: this.device });
  }

  /**
   * Image embeddings [n, E] of frames, and when `lowBlock` is given the token-mean of the
   * residual stream after that block [n, W]. Runs in batches of `batchSize` without gradients.
   */
  encode(frames: RgbFrame[], lowBlock?: number): { emb: Tensor; low?: Tensor } {
    const embs: Tensor[] = [];
    const lows: Tensor[] = [];
    noGrad(() => {
      for (let i = 0; i < frames.length; i += this.batchSize) {
        tidy(() => {
          const out = this.clip.encodeImage(this.pixels(frames.slice(i, i + this.batchSize)), lowBlock === undefined ? [] : [lowBlock]);
          embs.push(out.imageEmbeds.to('cpu').keep());
          if (lowBlock !== undefined) lows.push(out.blocks[0]!.mean(1).to('cpu').keep());
        });
      }
    });
    const emb = cat(embs, 0);
    const low = lowBlock === undefined ? undefined : cat(lows, 0);
    for (const t of [...embs, ...lows]) t.dispose();
    return { emb, low };
  }
}

/**
 * A content hash of the checkpoint's weights files (sha256 over every file in order), so that a
 * cache made with other weights is never reused (a few seconds for ViT-L/14).
 */
export function hashCheckpoint(dir: string): string {
  const files = [...new Set(checkpointFiles(dir).values())].sort();
  const h = crypto.createHash('sha256');
  for (const f of files) {
    h.update(path.basename(f));
    const fd = fs.openSync(f, 'r');
    const buf = Buffer.alloc(8 * 1024 * 1024);
    let n: number;
    let pos = 0;
    while ((n = fs.readSync(fd, buf, 0, buf.length, pos)) > 0) {
      h.update(buf.subarray(0, n));
      pos += n;
    }
    fs.closeSync(fd);
  }
  return h.digest('hex');
}
