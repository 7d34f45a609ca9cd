// OpenAI's CLIP image preprocessing (its `_transform`, torchvision semantics), driven by
// preprocessor_config.json: resize the shorter side to R with Pillow's bicubic (the longer side to
// int(R·long/short)), centre-crop R×R with Python's rounding (halves to even), then RGB, /255,
// (x − mean)/std, CHW. Files are decoded with sharp; raw frames (from video) go in directly.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type sharp from 'sharp';
import { loadSharp } from '../util/sharp.js';
import { UserError } from '../util/errors.js';
import { readJsonAs } from '../util/fs.js';
import { ClipPreprocessorConfig } from './config.js';
import { resizeBicubic } from './resample.js';

export interface ImageProcessorConfig {
  size: number; // R: shorter side after resizing, and the crop
  mean: [number, number, number];
  std: [number, number, number];
}

export const CLIP_MEAN: [number, number, number] = [0.48145466, 0.4578275, 0.40821073];
export const CLIP_STD: [number, number, number] = [0.26862954, 0.26130258, 0.27577711];

export interface PreprocessedImage {
  pixels: Float32Array; // [3, R, R], CHW, normalised
  size: number; // R
  resizedSize: [number, number]; // [w, h] after the resize
  cropBox: [number, number, number, number]; // [left, top, right, bottom] in the resized image
  u8: Uint8Array; // the R×R×3 image after resize + crop + RGB, HWC
}

/** Python's round(): halves go to the even neighbour. */
export function roundHalfEven(x: number): number {
  const f = Math.floor(x);
  const diff = x - f;
  if (diff > 0.5) return f + 1;
  if (diff < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/** Size after OpenAI's Resize(R): the shorter side becomes R, the longer int(R·long/short). */
export function resizedSize(w: number, h: number, R: number): [number, number] {
  if (w <= h) return [R, Math.trunc((R * h) / w)];
  return [Math.trunc((R * w) / h), R];
}

/** torchvision's CenterCrop box [left, top, right, bottom]. */
export function centerCropBox(w: number, h: number, R: number): [number, number, number, number] {
  const top = roundHalfEven((h - R) / 2);
  const left = roundHalfEven((w - R) / 2);
  return [left, top, left + R, top + R];
}

export class ClipImageProcessor {
  constructor(readonly config: ImageProcessorConfig) {}

  get size(): number {
    return this.config.size;
  }

  /** From a model folder's preprocessor_config.json (HF's CLIPImageProcessor fields). */
  static fromFolder(dir: string): ClipImageProcessor {
    const file = path.join(dir, 'preprocessor_config.json');
    if (!fs.existsSync(file)) throw new UserError(`${dir} has no preprocessor_config.json`);
    const c = readJsonAs(file, ClipPreprocessorConfig, 'CLIP preprocessor config');
    const sizeOf = (v: unknown): number | undefined =>
      typeof v === 'number'
        ? v
        : v && typeof v === 'object'
          ? ((v as Record<string, number>).shortest_edge ?? (v as Record<string, number>).height)
          : undefined;
    const size = sizeOf(c.crop_size) ?? sizeOf(c.size);
    const resize = sizeOf(c.size) ?? size;
    if (!size) throw new UserError(`${file}: no crop_size or size`);
    if (resize !== size)
      throw new UserError(
        `${file}: resize ${resize} differs from crop ${size}; only CLIP's resize-to-crop-size is supported`,
      );
    if (c.resample !== undefined && c.resample !== 3)
      throw new UserError(`${file}: resample ${String(c.resample)} is not bicubic (3)`);
    return new ClipImageProcessor({ size, mean: c.image_mean ?? CLIP_MEAN, std: c.image_std ?? CLIP_STD });
  }

  /** Decodes an image file (any format sharp reads) and preprocesses it. */
  async preprocessFile(file: string): Promise<PreprocessedImage> {
    if (!fs.existsSync(file)) throw new UserError(`${file}: no such file`);
    let decoded: { data: Buffer; info: sharp.OutputInfo };
    try {
      // Grayscale stays one channel through the resize (as PIL's mode L); alpha is dropped.
      const img = loadSharp()(file, { failOn: 'error' });
      const meta = await img.metadata();
      const gray = meta.channels !== undefined && meta.channels <= 2;
      decoded = await (gray ? img.extractChannel(0) : img.removeAlpha()).raw().toBuffer({ resolveWithObject: true });
    } catch (err) {
      throw new UserError(`${file}: not a readable image (${(err as Error).message})`);
    }
    const { data, info } = decoded;
    return this.preprocessRgb(
      new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
      info.width,
      info.height,
      info.channels as 1 | 3,
    );
  }

  /** Preprocesses a raw interleaved 8-bit image (1 = gray, 3 = RGB, 4 = RGBA with alpha dropped). */
  preprocessRgb(data: Uint8Array, width: number, height: number, channels: 1 | 3 | 4): PreprocessedImage {
    if (data.length !== width * height * channels)
      throw new RangeError(`preprocessRgb: ${data.length} bytes for ${width}x${height}x${channels}`);
    let src = data;
    let ch: number = channels;
    if (channels === 4) {
      src = new Uint8Array(width * height * 3);
      for (let i = 0; i < width * height; i++) src.set(data.subarray(i * 4, i * 4 + 3), i * 3);
      ch = 3;
    }
    const R = this.config.size;
    const [rw, rh] = resizedSize(width, height, R);
    const resized = resizeBicubic(src, width, height, ch, rw, rh);
    const box = centerCropBox(rw, rh, R);
    const u8 = new Uint8Array(R * R * 3);
    for (let y = 0; y < R; y++) {
      for (let x = 0; x < R; x++) {
        const sy = y + box[1];
        const sx = x + box[0];
        // A crop past the image (an image smaller than R) reads black, as PIL's crop pads.
        const inside = sy >= 0 && sy < rh && sx >= 0 && sx < rw;
        for (let c = 0; c < 3; c++)
          u8[(y * R + x) * 3 + c] = inside ? resized[(sy * rw + sx) * ch + (ch === 1 ? 0 : c)]! : 0;
      }
    }
    // float32 arithmetic step by step, as torchvision's ToTensor (/255) and Normalize (sub_, div_).
    const mean = this.config.mean.map(Math.fround);
    const std = this.config.std.map(Math.fround);
    const pixels = new Float32Array(3 * R * R);
    for (let c = 0; c < 3; c++) {
      for (let i = 0; i < R * R; i++)
        pixels[c * R * R + i] = Math.fround(Math.fround(u8[i * 3 + c]! / 255) - mean[c]!) / std[c]!;
    }
    return { pixels, size: R, resizedSize: [rw, rh], cropBox: box, u8 };
  }
}
