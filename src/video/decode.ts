// Reading clips with the system's ffmpeg: ffprobe for what a video is, and one ffmpeg process
// per clip that decodes and pipes out only the sampled frames as raw RGB (no temporary images).
// A folder of frame images (DFEW, FERV39k) is read with sharp, in natural order.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadSharp } from '../util/sharp.js';
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
  // where the timestamps and the frames disagree (a jump, a restart): what was found and how the
  // frames are timed instead; frame i is at i / fps either way
  timing?: string;
}

/** Frames with a longer side past this are scaled down while decoding (CLIP sees 224 px anyway). */
export const MAX_SIDE = 1280;

const IMAGE_EXT = /\.(jpe?g|png|bmp|webp|tiff?)$/i;
// Photos sharp reads (upright by their EXIF orientation); a
// GIF goes to ffmpeg, which reads every frame of an animation.
const STILL_EXT = /\.(jpe?g|png|bmp|webp|tiff?|avif)$/i;

/** An image file read as one frame with sharp (not a GIF: an animated one is a video). */
export function isImageFile(file: string): boolean {
  return STILL_EXT.test(file) && fs.existsSync(file) && fs.statSync(file).isFile();
}

/** How ffprobe and ffmpeg open a file: the command line's as it is, an upload's with its allow-list. */
export interface ReadOptions {
  input?: string[]; // options before the file (an upload's protocol and format allow-lists)
  timeoutMs?: number; // ffprobe is stopped past this (an upload's probe)
  nice?: number; // ffprobe and ffmpeg at this priority (an upload's: the workers')
}

/** ffprobe could not read the file; `stderr` holds what it said (an allow-list's refusal names the format). */
export class ProbeError extends UserError {
  constructor(
    message: string,
    readonly stderr: string,
  ) {
    super(message);
  }
}

const lower = (pid: number | undefined, nice: number | undefined) => {
  try {
    if (pid && nice) os.setPriority(pid, nice);
  } catch {
    // not allowed here: it runs at our priority
  }
};

/** ffprobe's JSON for the first video stream, with `extra` entries; run as a child process (no blocking). */
async function ffprobeJson(file: string, extra: string[], o: ReadOptions): Promise<Record<string, unknown>> {
  const args = ['-v', 'error', ...(o.input ?? []), '-select_streams', 'v:0', ...extra, '-of', 'json', file];
  const p = spawn('ffprobe', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  lower(p.pid, o.nice);
  let [stdout, stderr, late] = ['', '', false];
  p.stdout.on('data', (d) => (stdout += d));
  p.stderr.on('data', (d) => stderr.length < 1 << 16 && (stderr += d));
  const timer = o.timeoutMs ? setTimeout(() => ((late = true), p.kill('SIGKILL')), o.timeoutMs) : undefined;
  const code = await new Promise<number | null>((resolve, reject) => {
    p.on('error', (err) =>
      reject(new UserError(`cannot run ffprobe (${err.message}): install ffmpeg (apt-get install ffmpeg)`)),
    );
    p.on('close', resolve);
  }).finally(() => clearTimeout(timer));
  if (late) throw new ProbeError(`${file}: ffprobe took longer than ${o.timeoutMs! / 1000} s`, stderr);
  if (code !== 0) {
    const why = stderr.trim().split('\n').pop() || 'ffprobe failed';
    throw new ProbeError(`${file}: not a readable video (${why})`, stderr);
  }
  return JSON.parse(stdout) as Record<string, unknown>;
}

function rate(s: unknown): number {
  const [a, b] = String(s ?? '0/1')
    .split('/')
    .map(Number);
  return b ? a! / b : a!;
}

/**
 * Degrees the player turns the stored frames by: the display matrix (ffmpeg 5 to 7 give its angle
 * as the side data's `rotation`; else it is read from the matrix itself), or the older `rotate` tag.
 */
export function rotationOf(stream: Record<string, unknown>): number {
  const sides = (stream.side_data_list as Array<Record<string, unknown>> | undefined) ?? [];
  const side = sides.find((d) => d.rotation !== undefined);
  let degrees = side ? Number(side.rotation) : Number.NaN;
  const matrix = sides.find((d) => typeof d.displaymatrix === 'string')?.displaymatrix as string | undefined;
  if (!Number.isFinite(degrees) && matrix) {
    // "00000000: a b u\n00000001: c d v\n...": the angle of the first row (av_display_rotation_get)
    const [a, b] = matrix.trim().split(/\s+/).slice(1, 3).map(Number);
    if (Number.isFinite(a) && Number.isFinite(b)) degrees = (-Math.atan2(b!, a!) * 180) / Math.PI;
  }
  if (!Number.isFinite(degrees)) degrees = Number((stream.tags as Record<string, string> | undefined)?.rotate ?? 0);
  return ((Math.round(degrees || 0) % 360) + 360) % 360;
}

/**
 * What a video is: its container format, frame count, fps, duration, displayed size and rotation:
 * the one probe of the command line and the server (an upload's with its allow-list in `o`).
 */
export async function probeVideo(file: string, o: ReadOptions = {}): Promise<VideoInfo & { format: string }> {
  if (!fs.existsSync(file)) throw new UserError(`${file}: no such file`);
  if (fs.statSync(file).size === 0) throw new UserError(`${file}: the file is empty`);
  const info = await ffprobeJson(file, ['-show_streams', '-show_format'], o);
  const stream = (info.streams as Array<Record<string, unknown>> | undefined)?.[0];
  const format = (info.format ?? {}) as Record<string, unknown>;
  if (!stream) throw new UserError(`${file}: not a video (no video stream)`);
  let frames = Number(stream.nb_frames);
  if (!(frames > 0)) {
    // Containers without a frame count (webm, some mkv): count packets, which needs no decoding.
    const counted = await ffprobeJson(file, ['-count_packets', '-show_entries', 'stream=nb_read_packets'], o);
    frames = Number((counted.streams as Array<Record<string, unknown>>)[0]?.nb_read_packets);
  }
  if (!(frames > 0)) throw new UserError(`${file}: the video has no frames`);
  const rotation = rotationOf(stream);
  let [width, height] = [Number(stream.width), Number(stream.height)];
  if (!(width > 0 && height > 0)) throw new UserError(`${file}: not a readable video (no frame size)`);
  if (rotation === 90 || rotation === 270) [width, height] = [height, width];
  const stamped = Number(stream.duration ?? format.duration);
  // No duration: a raw elementary stream (.h264), without a container's timing. ffmpeg 7 then
  // reports its demuxer's default (25 fps) as the average rate, while its parser times each packet
  // from the stream's own timing (the SPS's VUI) and decodes at that: the packets' rate is the rate.
  const packetRate = Number.isFinite(stamped) ? 0 : await packetsRate(file, o);
  const { fps, duration, timing } = frameTiming(
    frames,
    packetRate || rate(stream.avg_frame_rate),
    packetRate || rate(stream.r_frame_rate),
    stamped,
  );
  return {
    format: String(format.format_name ?? ''),
    frameCount: frames,
    fps,
    duration,
    width,
    height,
    rotation,
    ...(timing ? { timing } : {}),
  };
}

/** The rate the first packets are timed at (1 / their median duration); 0 when they carry no duration. */
async function packetsRate(file: string, o: ReadOptions): Promise<number> {
  const r = await ffprobeJson(file, ['-read_intervals', '%+#9', '-show_entries', 'packet=duration_time'], o);
  const d = ((r.packets as Array<Record<string, unknown>> | undefined) ?? [])
    .map((p) => Number(p.duration_time))
    .filter((v) => v > 0)
    .sort((a, b) => a - b);
  return d.length ? 1 / d[d.length >> 1]! : 0;
}

/**
 * The frame rate and length the frames are read at. Frames are decoded in order and frame i is at
 * i / fps, so the length is the frames' count over the rate, not the timestamps' span: a jump in the
 * timestamps (a paused recording, 60 s between two frames) drags the average rate far below the
 * stream's own (1.5 fps for 24 fps frames) and would read as a low frame rate; timestamps that
 * restart (concatenated TS segments) make the container understate the length (3 s for 6 s of
 * frames). Either is said in `timing`.
 */
export function frameTiming(frames: number, average: number, nominal: number, stamped: number) {
  // A stream's own rate above 240 fps is a time base, not a rate (webm's 1000/1).
  const jumped = average > 0 && nominal > 4 * average && nominal <= 240;
  const fps = jumped ? nominal : average || nominal;
  const duration = fps > 0 ? frames / fps : Number.isFinite(stamped) ? stamped : 0;
  const s = (v: number) => `${v.toFixed(1)} s`;
  const counted = `${frames} frames at ${+fps.toFixed(3)} fps are ${s(duration)}`;
  let timing: string | undefined;
  if (jumped)
    timing =
      `the timestamps jump (they span ${s(stamped)}, an average of ${average.toFixed(1)} fps): ${counted}; ` +
      'the jump is left out';
  else if (fps > 0 && stamped > 0 && stamped < duration - Math.max(1, 0.1 * duration))
    timing = `the timestamps restart or the container understates the length (it says ${s(stamped)}): ${counted}`;
  return { fps, duration, ...(timing ? { timing } : {}) };
}

/** The size frames come out at: the displayed size, the longer side capped at MAX_SIDE (even numbers). */
export function decodedSize(width: number, height: number): [number, number] {
  const s = Math.min(1, MAX_SIDE / Math.max(width, height));
  if (s === 1) return [width, height];
  const even = (v: number) => Math.max(2, 2 * Math.round((v * s) / 2));
  return [even(width), even(height)];
}

export interface DecodeOptions extends ReadOptions {
  maxSeconds?: number; // refuse the video once what decodes passes this many seconds
  limitName?: string; // how the refusal names the limit ('--max-seconds')
}

/** A video longer than the limit it was read under. */
export class VideoTooLongError extends UserError {}

const tooLong = (file: string, seen: number, o: DecodeOptions) =>
  new VideoTooLongError(
    `${file}: longer than ${o.limitName ?? '--max-seconds'} ${o.maxSeconds} ` +
      `(at least ${seen.toFixed(1)} s of video); raise ${o.limitName ?? '--max-seconds'} to read it`,
  );

/**
 * The video's length as its packets say, without decoding: the span of their timestamps (or the
 * packet count over the frame rate where a raw stream has none). Metadata can lie (a container can
 * claim ten hours for two frames, a raw .h264 has no duration at all), packets less so; ffprobe is
 * stopped as soon as the length passes `maxSeconds`. Memory stays flat: lines are counted, not kept.
 */
export async function measureVideo(
  file: string,
  info: VideoInfo,
  o: DecodeOptions = {},
): Promise<{ packets: number; seconds: number }> {
  const proc = spawn(
    'ffprobe',
    ['-v', 'error', ...(o.input ?? []), '-select_streams', 'v:0'].concat([
      '-show_entries',
      'packet=pts_time,duration_time',
      '-of',
      'csv=p=0',
      file,
    ]),
    { stdio: ['ignore', 'pipe', 'ignore'] },
  );
  lower(proc.pid, o.nice);
  let late = false;
  const timer = o.timeoutMs ? setTimeout(() => ((late = true), proc.kill('SIGKILL')), o.timeoutMs) : undefined;
  const exited = new Promise<void>((resolve, reject) => {
    proc.on('error', (err) =>
      reject(new UserError(`cannot run ffprobe (${err.message}): install ffmpeg (apt-get install ffmpeg)`)),
    );
    proc.on('close', () => resolve());
  });
  let packets = 0;
  let first = Infinity;
  let last = -Infinity; // the end of the latest packet: its time plus its duration
  let rest = '';
  const length = () => Math.max(last > first ? last - first : 0, info.fps > 0 ? packets / info.fps : 0);
  try {
    for await (const chunk of proc.stdout) {
      const lines = (rest + String(chunk)).split('\n');
      rest = lines.pop()!;
      for (const line of lines) {
        if (!line) continue;
        packets++;
        const [pts, dur] = line.split(',').map(Number);
        if (Number.isFinite(pts)) {
          first = Math.min(first, pts!);
          last = Math.max(last, pts! + (Number.isFinite(dur) ? dur! : 0));
        }
        // Per packet, not per chunk: the length reported is the first past the limit, whatever
        // size the pipe's chunks come in.
        if (o.maxSeconds !== undefined && length() > o.maxSeconds) throw tooLong(file, length(), o);
      }
    }
  } finally {
    clearTimeout(timer);
    proc.kill('SIGKILL');
    await exited;
  }
  if (late) throw new UserError(`${file}: ffprobe took longer than ${o.timeoutMs! / 1000} s to measure it`);
  return { packets, seconds: length() };
}

/**
 * Calls `onFrame` for each distinct frame of `indices` (0-based, in decoding order), in ascending
 * order, from ONE ffmpeg process that decodes the whole video and pipes every frame out as RGB:
 * the frames are picked here, so nothing that grows with their number goes into an ffmpeg
 * argument (ffmpeg's `select` takes at most 100 terms). Memory holds one frame at a time, and
 * `onFrame` is awaited before more is read (the pipe's back-pressure pauses ffmpeg). ffmpeg rotates
 * phone videos upright. With `maxSeconds`, decoding stops once the decoded frames (their count at
 * the video's frame rate, or their timestamps) pass it: a refusal from what decodes, not from
 * metadata. Returns how many wanted frames came out, and `undecoded`: the frames of the whole clip
 * the decoder could not deliver (the container's frame count minus ffmpeg's "frames decoded"), since
 * a frame lost in the middle shifts the later ones even when every wanted frame came out.
 */
export async function forEachFrame(
  file: string,
  info: VideoInfo,
  indices: number[],
  onFrame: (index: number, frame: RgbFrame) => void | Promise<void>,
  o: DecodeOptions = {},
): Promise<{ delivered: number; undecoded: number; lastError?: string }> {
  const wanted = [...new Set(indices)].sort((a, b) => a - b);
  const [w, h] = decodedSize(info.width, info.height);
  // Verbose, with each line's level, for the "N frames decoded" summary; errors are the [error] lines.
  // -progress on fd 3 reports the output timestamp (out_time_us) as decoding goes.
  const args = [
    '-loglevel',
    'level+verbose',
    '-nostdin',
    ...(o.input ?? []),
    '-i',
    file,
    '-map',
    '0:v:0',
    '-vf',
    `scale=${w}:${h}:flags=area`,
    '-vsync',
    '0',
    '-f',
    'rawvideo',
    '-pix_fmt',
    'rgb24',
    '-progress',
    'pipe:3',
    'pipe:1',
  ];
  const frameBytes = w * h * 3;
  const proc = spawn('ffmpeg', args, { stdio: ['ignore', 'pipe', 'pipe', 'pipe'] });
  lower(proc.pid, o.nice);
  const exited = new Promise<void>((resolve, reject) => {
    proc.on('error', (err) =>
      reject(new UserError(`cannot run ffmpeg (${err.message}): install ffmpeg (apt-get install ffmpeg)`)),
    );
    proc.on('close', () => resolve());
  });
  // stderr: only what is needed is kept (the last error line, the decoded-frames summary), so a long
  // video's log does not pile up.
  let lastError: string | undefined;
  let decodedCount: number | undefined;
  let errRest = '';
  proc.stderr!.on('data', (d: Buffer) => {
    const lines = (errRest + d.toString()).split('\n');
    errRest = lines.pop()!;
    for (const l of lines) {
      const e = /\[(error|fatal|panic)\] (.*)/.exec(l);
      if (e) lastError = e[2]!.trim();
      const n = /(\d+) frames decoded/.exec(l);
      if (n) decodedCount = Number(n[1]);
    }
  });
  const limit = o.maxSeconds;
  let outSeconds = 0;
  const progress = proc.stdio[3] as NodeJS.ReadableStream;
  progress.on('data', (d: Buffer) => {
    for (const m of String(d).matchAll(/out_time_us=(\d+)/g)) outSeconds = Math.max(outSeconds, Number(m[1]) / 1e6);
    if (limit !== undefined && outSeconds > limit) proc.stdout!.destroy(tooLong(file, outSeconds, o));
  });
  const maxFrames = limit !== undefined && info.fps > 0 ? Math.floor(limit * info.fps) + 1 : Infinity;

  let n = 0; // frames received so far (the index of the next one)
  let next = 0; // position in `wanted` of the next frame to keep
  let fill = 0; // bytes of the current frame received
  let frame: Uint8Array | undefined; // the frame being assembled, when it is wanted
  try {
    for await (const chunk of proc.stdout! as AsyncIterable<Buffer>) {
      let at = 0;
      while (at < chunk.length) {
        if (fill === 0 && next < wanted.length && wanted[next] === n) frame = new Uint8Array(frameBytes);
        const take = Math.min(frameBytes - fill, chunk.length - at);
        if (frame) frame.set(chunk.subarray(at, at + take), fill);
        fill += take;
        at += take;
        if (fill < frameBytes) break;
        if (frame) {
          await onFrame(n, { data: frame, width: w, height: h });
          next++;
          frame = undefined;
        }
        fill = 0;
        n++;
        if (n > maxFrames) throw tooLong(file, n / info.fps, o);
      }
    }
    await exited;
    if (limit !== undefined && outSeconds > limit) throw tooLong(file, outSeconds, o);
  } finally {
    proc.kill('SIGKILL');
    await exited.catch(() => {});
  }
  if (!next && wanted.length) throw new UserError(`${file}: no decodable frames${lastError ? ` (${lastError})` : ''}`);
  return {
    delivered: next,
    undecoded:
      decodedCount !== undefined
        ? Math.max(wanted.length - next, info.frameCount - decodedCount)
        : wanted.length - next,
    lastError,
  };
}

/**
 * The frames at `indices` (repeats allowed) as RGB, in memory: for a few frames (a clip's T). If
 * frames are missing at the end of the stream (a truncated or corrupt file), the last decoded frame
 * stands in for them, and `missing` says how many. Long work streams with forEachFrame instead.
 */
export async function decodeFrames(
  file: string,
  info: VideoInfo,
  indices: number[],
  o: DecodeOptions = {},
): Promise<{ frames: RgbFrame[]; missing: number; undecoded: number }> {
  const got = new Map<number, RgbFrame>();
  let latest: RgbFrame | undefined;
  const { delivered, undecoded } = await forEachFrame(
    file,
    info,
    indices,
    (i, f) => {
      got.set(i, f);
      latest = f;
    },
    o,
  );
  const frames = indices.map((i) => got.get(i) ?? latest!);
  return { frames, missing: new Set(indices).size - delivered, undecoded };
}

/** The image files of a frame folder in natural order (frame2 before frame10). */
export function listFrameFiles(dir: string): string[] {
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw new UserError(`${dir}: not a folder of frames`);
  const files = fs.readdirSync(dir).filter((f) => IMAGE_EXT.test(f));
  if (!files.length) throw new UserError(`${dir}: no image files (.jpg, .png, ...)`);
  const collator = new Intl.Collator('en', { numeric: true });
  return files.sort(collator.compare).map((f) => path.join(dir, f));
}

// The first frame read of each frame list (a folder's files) and its upright size: boxes are in one
// frame's pixels for the whole clip, so a folder of frames of different sizes is refused, not resized.
const listSizes = new WeakMap<string[], { file: string; size: [number, number] }>();

function checkOneSize(files: string[], file: string, size: [number, number]): void {
  const first = listSizes.get(files);
  if (!first) listSizes.set(files, { file, size });
  else if (first.size[0] !== size[0] || first.size[1] !== size[1])
    throw new UserError(
      `${file}: ${size[0]}×${size[1]}, but ${path.basename(first.file)} is ${first.size[0]}×${first.size[1]}: ` +
        'the frames of a folder must be one size',
    );
}

/** Decodes the frame files at `indices` as RGB, each capped at MAX_SIDE; every frame of `files` one size. */
export async function readFrameFiles(files: string[], indices: number[]): Promise<RgbFrame[]> {
  const cache = new Map<number, Promise<RgbFrame>>();
  const read = async (file: string): Promise<RgbFrame> => {
    try {
      const img = loadSharp()(file, { failOn: 'error' }).rotate();
      const meta = await img.metadata();
      // EXIF orientations 5..8 turn the image a quarter: width and height swap once it is upright.
      const quarter = (meta.orientation ?? 1) >= 5;
      const upright: [number, number] = quarter ? [meta.height!, meta.width!] : [meta.width!, meta.height!];
      checkOneSize(files, file, upright);
      const [w, h] = decodedSize(...upright);
      const { data, info } = await img
        .resize(w, h, { fit: 'fill' })
        .removeAlpha()
        .toColourspace('srgb')
        .raw()
        .toBuffer({ resolveWithObject: true });
      return {
        data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
        width: info.width,
        height: info.height,
      };
    } catch (err) {
      if (err instanceof UserError) throw err;
      throw new UserError(`${file}: not a readable image (${(err as Error).message})`);
    }
  };
  return Promise.all(
    indices.map((i) => {
      if (!cache.has(i)) cache.set(i, read(files[i]!));
      return cache.get(i)!;
    }),
  );
}

/** Reads one image file as RGB (for `ous faces` on a photo). */
export async function readImage(file: string): Promise<RgbFrame> {
  if (!fs.existsSync(file)) throw new UserError(`${file}: no such file`);
  return (await readFrameFiles([file], [0]))[0]!;
}

/** The size a source is displayed at (a video, an image, a frame folder's first frame): what a box is in. */
export async function displayedSize(source: string): Promise<{ width: number; height: number }> {
  const image = fs.statSync(source).isDirectory() ? listFrameFiles(source)[0]! : isImageFile(source) ? source : null;
  if (image === null) return probeVideo(source);
  const [width, height] = await uprightSize(image);
  return { width, height };
}

/** An image file's size as displayed (EXIF orientations 5..8 swap width and height), before any downscaling. */
export async function uprightSize(file: string): Promise<[number, number]> {
  try {
    const meta = await loadSharp()(file).metadata();
    return (meta.orientation ?? 1) >= 5 ? [meta.height!, meta.width!] : [meta.width!, meta.height!];
  } catch (err) {
    throw new UserError(`${file}: not a readable image (${(err as Error).message})`);
  }
}
