// Reading clips with the system's ffmpeg: ffprobe for what a video is, and one ffmpeg process
// per clip that decodes and pipes out only the sampled frames as raw RGB (no temporary images).
// A folder of frame images (DFEW, FERV39k) is read with sharp, in natural order.
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import sharp from 'sharp';
import { UserError } from '../util/errors.js';

/** A decoded frame: 8-bit RGB, row-major, width·height·3 bytes. */
export interface RgbFrame {
  data: Uint8Array;
  width: number;
  height: number;
}

export interface VideoInfo {
  frameCount: number; // N
  fps: number;
  duration: number; // seconds
  width: number; // as displayed (after rotation), before any downscaling
  height: number;
  rotation: number; // degrees the player rotates the stored frames by
}

/** Frames with a longer side past this are scaled down while decoding (CLIP sees 224 px anyway). */
export const MAX_SIDE = 1280;

const IMAGE_EXT = /\.(jpe?g|png|bmp|webp|tiff?)$/i;

function ffprobeJson(file: string, extra: string[]): Record<string, unknown> {
  const r = spawnSync('ffprobe', ['-v', 'error', '-select_streams', 'v:0', ...extra, '-of', 'json', file], { encoding: 'utf8', maxBuffer: 16 * 1024 * 1024 });
  if (r.error) throw new UserError(`cannot run ffprobe (${r.error.message}): install ffmpeg (apt-get install ffmpeg)`);
  if (r.status !== 0) throw new UserError(`${file}: not a readable video (${(r.stderr || 'ffprobe failed').trim().split('\n').pop()})`);
  return JSON.parse(r.stdout) as Record<string, unknown>;
}

function rate(s: unknown): number {
  const [a, b] = String(s ?? '0/1').split('/').map(Number);
  return b ? a! / b : a!;
}

/** What a video is: frame count, fps, duration, displayed size and rotation. */
export function probeVideo(file: string): VideoInfo {
  if (!fs.existsSync(file)) throw new UserError(`${file}: no such file`);
  if (fs.statSync(file).size === 0) throw new UserError(`${file}: the file is empty`);
  const info = ffprobeJson(file, ['-show_streams', '-show_format']);
  const stream = (info.streams as Array<Record<string, unknown>> | undefined)?.[0];
  if (!stream) throw new UserError(`${file}: not a video (no video stream)`);
  const format = (info.format ?? {}) as Record<string, unknown>;
  let frames = Number(stream.nb_frames);
  if (!(frames > 0)) {
    // Containers without a frame count (webm, some mkv): count packets, which needs no decoding.
    const counted = ffprobeJson(file, ['-count_packets', '-show_entries', 'stream=nb_read_packets']);
    frames = Number((counted.streams as Array<Record<string, unknown>>)[0]?.nb_read_packets);
  }
  if (!(frames > 0)) throw new UserError(`${file}: the video has no frames`);
  const side = (stream.side_data_list as Array<Record<string, unknown>> | undefined)?.find((d) => d.rotation !== undefined);
  const tags = (stream.tags ?? {}) as Record<string, string>;
  const rotation = ((Math.round(Number(side?.rotation ?? tags.rotate ?? 0)) % 360) + 360) % 360;
  let [width, height] = [Number(stream.width), Number(stream.height)];
  if (rotation === 90 || rotation === 270) [width, height] = [height, width];
  const fps = rate(stream.avg_frame_rate) || rate(stream.r_frame_rate);
  const duration = Number(stream.duration ?? format.duration) || (fps ? frames / fps : 0);
  return { frameCount: frames, fps, duration, width, height, rotation };
}

/** The size frames come out at: the displayed size, the longer side capped at MAX_SIDE (even numbers). */
export function decodedSize(width: number, height: number): [number, number] {
  const s = Math.min(1, MAX_SIDE / Math.max(width, height));
  if (s === 1) return [width, height];
  const even = (v: number) => Math.max(2, 2 * Math.round((v * s) / 2));
  return [even(width), even(height)];
}

/**
 * Decodes the frames at `indices` (0-based, in decoding order; repeats allowed) as RGB. ffmpeg
 * rotates phone videos upright. If frames are missing at the end of the stream (a truncated or
 * corrupt file), the last decoded frame stands in for them, and `missing` says how many.
 * `undecoded` counts the frames of the whole clip the decoder could not deliver (the container's
 * frame count minus ffmpeg's "frames decoded"): a frame lost in the middle shifts the later ones,
 * so it matters even when every sampled frame came out.
 */
export async function decodeFrames(file: string, info: VideoInfo, indices: number[]): Promise<{ frames: RgbFrame[]; missing: number; undecoded: number }> {
  const wanted = [...new Set(indices)].sort((a, b) => a - b);
  const [w, h] = decodedSize(info.width, info.height);
  const select = wanted.map((i) => `eq(n\\,${i})`).join('+');
  // Verbose, with each line's level, for the "N frames decoded" summary; errors are the [error] lines.
  const args = ['-loglevel', 'level+verbose', '-nostdin', '-i', file, '-map', '0:v:0', '-vf', `select='${select}',scale=${w}:${h}:flags=area`, '-vsync', '0', '-f', 'rawvideo', '-pix_fmt', 'rgb24', 'pipe:1'];
  const frameBytes = w * h * 3;
  const got: Uint8Array[] = [];
  let stderr = '';
  await new Promise<void>((resolve, reject) => {
    const proc = spawn('ffmpeg', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let pending: Buffer = Buffer.alloc(0);
    proc.stdout.on('data', (chunk: Buffer) => {
      pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
      while (pending.length >= frameBytes) {
        got.push(new Uint8Array(pending.subarray(0, frameBytes)));
        pending = pending.subarray(frameBytes);
      }
    });
    proc.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    proc.on('error', (err) => reject(new UserError(`cannot run ffmpeg (${err.message}): install ffmpeg (apt-get install ffmpeg)`)));
    proc.on('close', () => resolve());
  });
  const lastError = stderr.split('\n').filter((l) => /\[(error|fatal|panic)\] /.test(l)).pop()?.replace(/\[(error|fatal|panic)\] /, '');
  if (!got.length) throw new UserError(`${file}: no decodable frames${lastError ? ` (${lastError.trim()})` : ''}`);
  const byIndex = new Map(wanted.map((idx, k) => [idx, got[Math.min(k, got.length - 1)]!]));
  const frames = indices.map((i) => ({ data: byIndex.get(i)!, width: w, height: h }));
  const missing = Math.max(0, wanted.length - got.length);
  const decoded = /(\d+) frames decoded/.exec(stderr);
  return { frames, missing, undecoded: decoded ? Math.max(missing, info.frameCount - Number(decoded[1])) : missing };
}

/** The image files of a frame folder in natural order (frame2 before frame10). */
export function listFrameFiles(dir: string): string[] {
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw new UserError(`${dir}: not a folder of frames`);
  const files = fs.readdirSync(dir).filter((f) => IMAGE_EXT.test(f));
  if (!files.length) throw new UserError(`${dir}: no image files (.jpg, .png, ...)`);
  const collator = new Intl.Collator('en', { numeric: true });
  return files.sort(collator.compare).map((f) => path.join(dir, f));
}

/** Decodes the frame files at `indices` as RGB, each capped at MAX_SIDE. */
export async function readFrameFiles(files: string[], indices: number[]): Promise<RgbFrame[]> {
  const cache = new Map<number, Promise<RgbFrame>>();
  const read = async (file: string): Promise<RgbFrame> => {
    try {
      const img = sharp(file, { failOn: 'error' }).rotate();
      const meta = await img.metadata();
      // EXIF orientations 5..8 turn the image a quarter: width and height swap once it is upright.
      const quarter = (meta.orientation ?? 1) >= 5;
      const [w, h] = decodedSize(quarter ? meta.height! : meta.width!, quarter ? meta.width! : meta.height!);
      const { data, info } = await img.resize(w, h, { fit: 'fill' }).removeAlpha().toColourspace('srgb').raw().toBuffer({ resolveWithObject: true });
      return { data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength), width: info.width, height: info.height };
    } catch (err) {
      throw new UserError(`${file}: not a readable image (${(err as Error).message})`);
    }
  };
  return Promise.all(indices.map((i) => {
    if (!cache.has(i)) cache.set(i, read(files[i]!));
    return cache.get(i)!;
  }));
}

/** Reads one image file as RGB (for `ous faces` on a photo). */
export async function readImage(file: string): Promise<RgbFrame> {
  if (!fs.existsSync(file)) throw new UserError(`${file}: no such file`);
  return (await readFrameFiles([file], [0]))[0]!;
}

/** An image file's size as displayed (EXIF orientations 5..8 swap width and height), before any downscaling. */
export async function uprightSize(file: string): Promise<[number, number]> {
  try {
    const meta = await sharp(file).metadata();
    return (meta.orientation ?? 1) >= 5 ? [meta.height!, meta.width!] : [meta.width!, meta.height!];
  } catch (err) {
    throw new UserError(`${file}: not a readable image (${(err as Error).message})`);
  }
}
