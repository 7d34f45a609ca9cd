// Uploads to `ous serve`: the body parsed as a stream (busboy for multipart/form-data, else the raw
// body) into a server-made file, with limits on every part of it; then ffprobe, limited to the file
// protocol and an allow-list of video containers, measures it before any worker sees it.
//
// Everything here runs on the server's event loop, so nothing blocks it: files are written as the
// bytes arrive and ffprobe/ffmpeg run as child processes at the workers' low priority.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import type * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import busboy from 'busboy';
import { measureVideo, ProbeError, probeVideo, type ReadOptions } from '../video/decode.js';
import { UserError } from '../util/errors.js';

export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

/**
 * The container formats an upload may be (ffmpeg demuxer names, as ffprobe's format_name says
 * them). Video containers and raw streams only: none of them opens another file or URL. Playlists
 * (hls, dash), lists (concat, ffconcat), image sequences (image2 and the *_pipe image readers),
 * subtitles, and the rest of ffmpeg's ~300 demuxers are refused before they read the upload.
 */
export const CONTAINERS: Record<string, string> = {
  'mov,mp4,m4a,3gp,3g2,mj2': 'MP4/MOV',
  'matroska,webm': 'Matroska/WebM',
  avi: 'AVI',
  mpegts: 'MPEG-TS',
  mpeg: 'MPEG-PS',
  gif: 'GIF',
  h264: 'raw H.264',
  hevc: 'raw H.265',
};
const FORMAT_WHITELIST = Object.keys(CONTAINERS).join(',');
/** ffmpeg's options for reading an upload: local files only, the allow-listed demuxers only. */
export const SAFE_INPUT = ['-protocol_whitelist', 'file', '-format_whitelist', FORMAT_WHITELIST];

/** What some refused formats are, for the 422's reason. */
const REFUSED_NAMES: Record<string, string> = {
  hls: 'an HLS playlist',
  dash: 'a DASH manifest',
  concat: 'a concat list',
  image2: 'an image sequence',
  png_pipe: 'a PNG image',
  jpeg_pipe: 'a JPEG image',
  webp_pipe: 'a WebP image',
  tty: 'a text file',
};

export interface UploadLimits {
  maxBytes: number;
  maxSeconds: number;
  probeTimeoutMs?: number; // ffprobe/ffmpeg on one upload (30 s)
}

export interface Received {
  file: string;
  name: string; // the client's file name, for display only (never a path here)
  bytes: number;
}

const tooBig = (limit: number) =>
  new HttpError(413, `the upload passes the limit of ${+(limit / 2 ** 20).toFixed(2)} MB (--max-upload-mb)`, {
    Connection: 'close',
  });

/** A client's file name as something to show: no folders, no control characters, at most 120 characters. */
export function displayName(name: string | undefined): string {
  const base = (name ?? '')
    .split(/[\\/]/)
    .pop()!
    /* biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what this removes
       from an uploaded file's name */
    .replace(/[\u0000-\u001f\u007f]/g, '')
    .trim();
  return base.slice(0, 120) || 'upload';
}

/** The slowest an upload may arrive: fewer than bytesPerSec × windowMs bytes in any window is a 408. */
export interface MinRate {
  bytesPerSec: number; // 0: no minimum
  windowMs: number;
}

/**
 * Checks every `windowMs` that `count()` grew by the minimum; calls `fail` with a JSON 408 when it did
 * not (a trickled body, or one shorter than its Content-Length that then waits). Returns the stop.
 */
function watchRate(count: () => number, rate: MinRate, fail: (e: HttpError) => void): () => void {
  if (!(rate.bytesPerSec > 0)) return () => {};
  const least = (rate.bytesPerSec * rate.windowMs) / 1000;
  let last = count();
  const timer = setInterval(() => {
    const got = count() - last;
    last = count();
    if (got < least)
      fail(
        new HttpError(
          408,
          `the upload arrived too slowly: ${got} bytes in the last ${rate.windowMs / 1000} s, ` +
            `below this server's minimum of ${+(rate.bytesPerSec / 1024).toFixed(1)} KB/s`,
          { Connection: 'close' },
        ),
      );
  }, rate.windowMs);
  return () => clearInterval(timer);
}

/**
 * Reads a request body into `dir`/video: a multipart/form-data body's first file part, or the body
 * itself. The file is written under a temporary name and renamed once complete. Rejects with an
 * HttpError (400, 413, 422) the moment the body breaks a limit or its form is malformed; an
 * unterminated multipart body fails when the request ends. The caller deletes `dir` on failure.
 */
export function receiveUpload(
  req: http.IncomingMessage,
  dir: string,
  maxBytes: number,
  deadlineMs = 600_000,
  minRate: MinRate = { bytesPerSec: 0, windowMs: 10_000 },
): Promise<Received> {
  return new Promise<Received>((resolve, reject) => {
    const r = new Receiving(req, dir, maxBytes, deadlineMs, minRate, resolve, reject);
    req.on('aborted', () => r.fail(new HttpError(400, 'the upload was interrupted')));
    req.on('error', () => r.fail(new HttpError(400, 'the upload was interrupted')));
    if (/^multipart\/form-data/i.test(req.headers['content-type'] ?? '')) r.multipart();
    else {
      r.write(req);
      req.on('end', () => r.done());
    }
  });
}

/** One upload arriving: its file, its byte count, its deadline and rate watch; settles once. */
class Receiving {
  private settled = false;
  private out?: fs.WriteStream;
  private bytes = 0;
  private name = 'upload';
  private readonly partial: string;
  private readonly file: string;
  private readonly timer: NodeJS.Timeout;
  private readonly stopRate: () => void;

  constructor(
    private readonly req: http.IncomingMessage,
    dir: string,
    private readonly maxBytes: number,
    deadlineMs: number,
    minRate: MinRate,
    private readonly resolve: (r: Received) => void,
    private readonly reject: (e: Error) => void,
  ) {
    this.partial = path.join(dir, 'video.part');
    this.file = path.join(dir, 'video');
    // A body slower than this (or shorter than its Content-Length) gets a JSON 408, before Node's
    // own request timeout (a bare 408) would end it.
    this.timer = setTimeout(
      () =>
        this.fail(
          new HttpError(408, `the upload did not arrive within ${deadlineMs / 1000} s`, { Connection: 'close' }),
        ),
      deadlineMs,
    );
    this.stopRate = watchRate(
      () => this.bytes,
      minRate,
      (e) => this.fail(e),
    );
  }

  fail(e: HttpError): void {
    if (this.settled) return;
    this.settle();
    this.req.unpipe();
    this.out?.destroy();
    this.reject(e);
  }

  private settle(): void {
    this.settled = true;
    clearTimeout(this.timer);
    this.stopRate();
  }

  /** The body has ended: the file, renamed to its final name, or why there is none. */
  done(): void {
    if (this.settled) return;
    const out = this.out;
    if (!out)
      return void this.fail(new HttpError(422, 'the multipart body has no file part: send the video as a file field'));
    if (this.bytes === 0)
      return void this.fail(
        new HttpError(422, 'the upload is empty: send the video as the body or as a multipart file'),
      );
    out.end(() => {
      if (this.settled) return;
      fs.rename(this.partial, this.file, (err) => {
        if (this.settled) return;
        this.settle();
        if (err) this.reject(err);
        else this.resolve({ file: this.file, name: this.name, bytes: this.bytes });
      });
    });
  }

  /** `stream` into the temporary file, counting against the limit. */
  write(stream: NodeJS.ReadableStream): void {
    const out = fs.createWriteStream(this.partial, { flags: 'wx' });
    this.out = out;
    out.on('error', (e) =>
      this.fail(new HttpError(500, `cannot store the upload (${(e as NodeJS.ErrnoException).code ?? e.message})`)),
    );
    stream.on('data', (chunk: Buffer) => {
      this.bytes += chunk.length;
      if (this.bytes > this.maxBytes) this.fail(tooBig(this.maxBytes));
    });
    stream.pipe(out, { end: false });
  }

  /** A multipart/form-data body through busboy: its first file part is the upload, at most 10 parts. */
  multipart(): void {
    let bb: busboy.Busboy;
    try {
      bb = busboy({
        headers: this.req.headers,
        limits: {
          fileSize: this.maxBytes,
          files: 1,
          fields: 8,
          fieldSize: 4096,
          fieldNameSize: 100,
          parts: 10,
          headerPairs: 16,
        },
      });
    } catch (err) {
      return void this.fail(new HttpError(400, `the multipart Content-Type is unusable (${(err as Error).message})`));
    }
    const malformed = (err: Error) => this.fail(new HttpError(422, `the multipart body is malformed (${err.message})`));
    let fileEnded: Promise<void> = Promise.resolve();
    bb.on('file', (_field, stream, info) => {
      if (this.out) return void stream.resume(); // only the first file counts (files: 1 stops more)
      this.name = displayName(info.filename);
      stream.on('limit', () => this.fail(tooBig(this.maxBytes)));
      // busboy fails the part's stream too when the form breaks ("Unexpected end of form"): an
      // unhandled 'error' there would end the process.
      stream.on('error', malformed);
      fileEnded = new Promise((res) => stream.on('end', res));
      this.write(stream);
    });
    bb.on('field', () => {});
    const tooMany = (what: string) => () =>
      this.fail(
        new HttpError(413, `the multipart body has too many ${what}: send one video file`, { Connection: 'close' }),
      );
    bb.on('partsLimit', tooMany('parts'));
    bb.on('filesLimit', tooMany('files'));
    bb.on('fieldsLimit', tooMany('fields'));
    bb.on('error', malformed);
    bb.on('close', () => void fileEnded.then(() => this.done()));
    this.req.pipe(bb);
  }
}

/**
 * Runs an ffmpeg tool at the workers' priority, with a time
 * limit; resolves with stdout, rejects with the last stderr line.
 */
function tool(cmd: string, args: string[], timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      // A probe yields the CPU to the HTTP loop like the workers do (nice 10).
      if (p.pid) os.setPriority(p.pid, 10);
    } catch {
      // not allowed here: it runs at the server's priority
    }
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => stdout.length < 1 << 20 && (stdout += d));
    p.stderr.on('data', (d) => stderr.length < 1 << 16 && (stderr += d));
    const timer = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    p.on('error', (e) => (clearTimeout(timer), reject(Object.assign(e, { stderr: e.message }))));
    p.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve(stdout);
      else
        reject(
          Object.assign(new Error(`${cmd} failed`), {
            stderr: signal === 'SIGKILL' ? `${cmd} took longer than ${timeoutMs / 1000} s` : stderr,
          }),
        );
    });
  });
}

export interface Probed {
  format: string; // ffprobe's format_name, one of CONTAINERS
  width: number; // displayed size (rotation applied)
  height: number;
  duration: number; // seconds: the longer of what the container says and what its packets measure
  fps: number; // the video stream's frame rate (0: unknown); the timeline's check before queuing
}

/** How the server's ffprobe and ffmpeg read an upload: the allow-list, a time limit, the workers' priority. */
export const uploadRead = (timeoutMs = 30_000): ReadOptions => ({ input: SAFE_INPUT, timeoutMs, nice: 10 });

/**
 * The format an allow-list refused, from ffprobe's words or, where ffmpeg says only "Invalid data"
 * (ffmpeg 7 no longer probes a demuxer off the list), from the file's first bytes.
 */
export function refusedFormat(stderr: string, file: string): string | undefined {
  const named = /\[([\w,]+) @ [^\]]*\] Format not on whitelist/.exec(stderr)?.[1];
  if (named) return named;
  const head = Buffer.alloc(64);
  const fd = fs.openSync(file, 'r');
  try {
    fs.readSync(fd, head, 0, head.length, 0);
  } finally {
    fs.closeSync(fd);
  }
  const text = head.toString('latin1').replace(/^\uFEFF|^\xEF\xBB\xBF/, '');
  if (text.startsWith('#EXTM3U')) return 'hls';
  if (/^\s*(<\?xml[^>]*>\s*)?<MPD/.test(text)) return 'dash';
  if (text.startsWith('ffconcat')) return 'concat';
  return undefined;
}

/** The one video probe (video/decode.ts probeVideo) on an upload, its refusals as 422s naming what the upload is. */
async function probeAllowed(file: string, timeoutMs: number) {
  try {
    return await probeVideo(file, uploadRead(timeoutMs));
  } catch (err) {
    if (!(err instanceof UserError)) throw err;
    const refused = refusedFormat(err instanceof ProbeError ? err.stderr : '', file);
    if (refused) {
      const what = REFUSED_NAMES[refused] ? `${REFUSED_NAMES[refused]} (${refused})` : `the format ${refused}`;
      throw new HttpError(
        422,
        `the upload is ${what}, which this server does not read: ` +
          `send a video file (${Object.values(CONTAINERS).join(', ')})`,
      );
    }
    throw new HttpError(422, err.message.split(`${file}: `).join('').split(file).join('the upload'));
  }
}

/**
 * Checks an upload is a video this server reads: an allow-listed container (playlists, lists and
 * images refused with 422 naming what they are), at most `maxSeconds` long — measured by counting
 * its packets (no decoding) as well as from the metadata, so a raw stream without a duration is
 * measured too — and one frame decodes. The worker holds the limit again while decoding.
 */
export async function probeUpload(file: string, limits: UploadLimits): Promise<Probed> {
  const timeout = limits.probeTimeoutMs ?? 30_000;
  const info = await probeAllowed(file, timeout);
  // The metadata may be missing (a raw stream) or lie: the packets measure it too.
  const measured = await measureVideo(file, info, uploadRead(timeout)).catch((err: Error) => {
    throw new HttpError(422, `not a readable video (${err.message.split(file).join('the upload')})`);
  });
  const length = Math.max(measured.seconds, Number.isFinite(info.duration) ? info.duration : 0);
  if (length > limits.maxSeconds)
    throw new HttpError(
      422,
      `the video is ${length.toFixed(1)} s long; this server takes at most ${limits.maxSeconds} s (--max-seconds)`,
    );
  // The limit holds for the timestamps' span too; the timeline is the frames' (frame i at i / fps, as
  // decoding reads them): the packets counted at the frame rate, past a header that understates them.
  const duration = info.fps > 0 ? Math.max(info.duration, measured.packets / info.fps) : length;
  try {
    await tool(
      'ffmpeg',
      ['-v', 'error', '-nostdin', ...SAFE_INPUT, '-i', file, '-map', '0:v:0', '-frames:v', '1', '-f', 'null', '-'],
      timeout,
    );
  } catch (err) {
    const why =
      String((err as { stderr?: string }).stderr ?? '')
        .split(file)
        .join('the upload')
        .trim()
        .split('\n')
        .pop() || 'unknown reason';
    throw new HttpError(422, `the video does not decode (${why})`);
  }
  return { format: info.format, width: info.width, height: info.height, duration, fps: info.fps };
}

/** At most `n` at once; the rest wait in order. */
export class Limiter {
  private active = 0;
  private readonly waiting: Array<() => void> = [];
  constructor(readonly n: number) {}
  get inFlight(): number {
    return this.active;
  }
  async run<T>(f: () => Promise<T>): Promise<T> {
    if (this.active >= this.n) await new Promise<void>((res) => this.waiting.push(res));
    this.active++;
    try {
      return await f();
    } finally {
      this.active--;
      this.waiting.shift()?.();
    }
  }
}
