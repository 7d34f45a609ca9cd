// Live sources: a camera (/dev/video0), a stream piped on stdin ('-'), a network stream ffmpeg opens
// (rtsp, rtmp, udp, srt, http...), or a file paced at its own frame rate (`--live`). A live source
// has no end and no known length, so nothing is probed ahead: one ffmpeg process samples the source
// at the timeline's rate and writes each frame as a PPM image (its header carries the size, which a
// pipe cannot be asked for beforehand). A reader drains ffmpeg as fast as frames come and keeps at
// most `queue` of them for the consumer: when the consumer falls behind, the oldest waiting frames
// are dropped and counted, so latency stays bounded instead of growing with the backlog.
import { spawn, type ChildProcess } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { UserError } from '../util/errors.js';
import { MAX_SIDE, type RgbFrame } from './decode.js';

export type LiveKind = 'camera' | 'stdin' | 'network' | 'file';

const NETWORK = /^(rtsps?|rtmps?|rtp|udp|tcp|srt|https?):\/\//i;

/** What kind of live source `source` names; a plain file is live only when paced (`--live`). */
export function liveKind(source: string): LiveKind {
  if (source === '-') return 'stdin';
  if (/^\/dev\/video\d+$/.test(source)) return 'camera';
  if (NETWORK.test(source)) return 'network';
  return 'file';
}

/** A source that must be read live (it has no end to probe): stdin, a camera or a network stream. */
export const isLiveOnly = (source: string): boolean => liveKind(source) !== 'file';

export interface LiveOptions {
  fps: number; // frames handed on per second of source time (the timeline's sampling rate)
  queue?: number; // frames kept for a consumer that is behind; older ones are dropped (default 2)
  stallSeconds?: number; // no frame for this long: the source stalled (default 10)
  stdin?: NodeJS.ReadableStream; // what '-' reads (default: this process's stdin)
  // a file read as fast as the consumer takes it (not paced, nothing dropped): ffmpeg is paused
  // while `queue` frames wait, so the streaming predictor reads a long file at flat memory
  unpaced?: boolean;
}

export interface LiveFrame {
  frame: RgbFrame;
  index: number; // position in the sampled sequence, counting dropped frames too
  t: number; // seconds of source time since the first frame: index / fps
  arrivedAt: number; // performance.now() when the frame was read from ffmpeg
}

// ffmpeg looks at up to 5 s and 5 MB of a stream before it decodes the first frame; a live source
// starts after 1 s or 1 MB (ample for the video stream's parameters), so the first window is not late.
const PROBE = ['-analyzeduration', '1000000', '-probesize', '1000000'];

// The input side of ffmpeg's command line for each kind of source.
function inputArgs(source: string, kind: LiveKind | 'unpaced'): string[] {
  if (kind === 'camera') return ['-f', 'v4l2', '-i', source];
  if (kind === 'stdin') return [...PROBE, '-i', 'pipe:0'];
  if (kind === 'file') return ['-re', '-i', source];
  if (kind === 'unpaced') return ['-i', source];
  return [...PROBE, '-i', source];
}

// A longer side above MAX_SIDE is scaled down, as for files (-2 keeps the other side even).
const SCALE = `scale=w='if(gte(iw,ih),min(${MAX_SIDE},iw),-2)':h='if(gte(iw,ih),-2,min(${MAX_SIDE},ih))':flags=area`;

/** ffmpeg's error text without what means nothing to a user (memory addresses, log prefixes). */
export const cleanFfmpegError = (line: string): string =>
  line
    .replace(/\[[^\]]*@ ?0x[0-9a-f]+\]\s*/gi, '')
    .replace(/0x[0-9a-f]{6,}/gi, '')
    .trim();

/**
 * Reads PPM images (P6, maxval 255) from a byte stream: push chunks, take whole frames. The header
 * is "P6 <w> <h> 255" with one whitespace byte after each field, as ffmpeg writes it.
 */
export class PpmReader {
  private buf: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): RgbFrame[] {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    const out: RgbFrame[] = [];
    for (;;) {
      const head = /^P6\s+(\d+)\s+(\d+)\s+255\s/.exec(this.buf.subarray(0, 64).toString('latin1'));
      if (!head) {
        if (this.buf.length >= 64 || (this.buf.length >= 2 && this.buf.subarray(0, 2).toString() !== 'P6'))
          throw new UserError('the live decoder sent something that is not a frame');
        return out;
      }
      const width = Number(head[1]);
      const height = Number(head[2]);
      const size = width * height * 3;
      if (this.buf.length < head[0].length + size) return out;
      const data = new Uint8Array(this.buf.subarray(head[0].length, head[0].length + size)); // a copy
      out.push({ data, width, height });
      this.buf = this.buf.subarray(head[0].length + size);
    }
  }
}

/**
 * A live source read frame by frame: `for await (const f of source)` yields frames as they come,
 * ends at the stream's end, and throws a one-line UserError when the source breaks or stalls.
 * `dropped` counts the frames the consumer never saw because it was behind. `close()` stops ffmpeg.
 */
export class LiveSource implements AsyncIterable<LiveFrame> {
  dropped = 0;
  delivered = 0;
  readonly kind: LiveKind;
  private proc: ChildProcess;
  private waiting: LiveFrame[] = [];
  private wake: (() => void) | undefined;
  private ended = false;
  private failure: UserError | undefined;
  private read = 0; // frames read from ffmpeg so far
  private stallTimer: NodeJS.Timeout | undefined;
  private lastError: string | undefined;
  private closed = false;

  constructor(
    readonly source: string,
    private readonly o: LiveOptions,
  ) {
    if (!(o.fps > 0)) throw new UserError(`live ${source}: the sampling rate must be positive (got ${o.fps})`);
    this.kind = liveKind(source);
    const input = inputArgs(source, o.unpaced && this.kind === 'file' ? 'unpaced' : this.kind);
    const args = ['-loglevel', 'level+error', ...input, '-map', '0:v:0'];
    args.push('-vf', `fps=${o.fps},${SCALE}`, '-f', 'image2pipe', '-c:v', 'ppm', 'pipe:1');
    this.proc = spawn('ffmpeg', args, { stdio: [this.kind === 'stdin' ? 'pipe' : 'ignore', 'pipe', 'pipe'] });
    if (this.kind === 'stdin') {
      const input = o.stdin ?? process.stdin;
      input.pipe(this.proc.stdin!);
      this.proc.stdin!.on('error', () => {}); // ffmpeg gone: the exit below says why
    }
    this.proc.on('error', (err) =>
      this.fail(new UserError(`cannot run ffmpeg (${err.message}): install ffmpeg (apt-get install ffmpeg)`)),
    );
    this.proc.stderr!.on('data', (d: Buffer) => {
      for (const l of String(d).split('\n')) {
        const e = /\[(error|fatal|panic)\] (.*)/.exec(l);
        if (e) this.lastError = cleanFfmpegError(e[2]!);
      }
    });
    const ppm = new PpmReader();
    this.proc.stdout!.on('data', (chunk: Buffer) => {
      this.armStall();
      try {
        for (const frame of ppm.push(chunk)) this.arrive(frame);
      } catch (err) {
        this.fail(err as UserError);
      }
    });
    this.proc.on('close', (code, signal) => {
      clearTimeout(this.stallTimer);
      if (this.closed || this.failure) return this.finish();
      if (code === 0) return this.finish();
      const why = this.lastError ?? (signal ? `ffmpeg stopped by ${signal}` : `ffmpeg exited with ${code}`);
      this.fail(new UserError(`${this.name()}: the stream broke after ${this.read} frames (${why})`));
    });
    this.armStall();
  }

  private name(): string {
    return this.source === '-' ? 'stdin' : this.source;
  }

  private armStall(): void {
    clearTimeout(this.stallTimer);
    const s = this.o.stallSeconds ?? 10;
    this.stallTimer = setTimeout(() => {
      const what = this.read ? `no frame for ${s} s after ${this.read} frames` : `no frame in the first ${s} s`;
      this.fail(new UserError(`${this.name()}: the stream stalled (${what})`));
      this.proc.kill('SIGKILL');
    }, s * 1000);
    this.stallTimer.unref();
  }

  private arrive(frame: RgbFrame): void {
    const index = this.read++;
    this.waiting.push({ frame, index, t: index / this.o.fps, arrivedAt: performance.now() });
    if (this.o.unpaced) {
      // back-pressure instead of dropping; no stall is counted while the consumer is the slow one
      if (this.waiting.length >= (this.o.queue ?? 2)) this.proc.stdout!.pause(), clearTimeout(this.stallTimer);
      this.signal();
      return;
    }
    while (this.waiting.length > (this.o.queue ?? 2)) {
      this.waiting.shift();
      this.dropped++;
    }
    this.signal();
  }

  private fail(err: UserError): void {
    if (!this.failure && !this.closed) this.failure = err;
    this.finish();
  }

  private finish(): void {
    this.ended = true;
    clearTimeout(this.stallTimer);
    this.signal();
  }

  private signal(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }

  /** Stops reading: ffmpeg is ended and the iteration finishes after the frames already waiting. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.proc.kill('SIGTERM');
    this.finish();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<LiveFrame> {
    try {
      for (;;) {
        const next = this.waiting.shift();
        if (next) {
          this.delivered++;
          if (this.o.unpaced && this.proc.stdout!.isPaused() && !this.ended)
            this.proc.stdout!.resume(), this.armStall();
          yield next;
          continue;
        }
        if (this.failure) throw this.failure;
        if (this.ended) return;
        await new Promise<void>((resolve) => {
          this.wake = resolve;
        });
      }
    } finally {
      this.close();
    }
  }
}
