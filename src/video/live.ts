// Live sources: a camera (/dev/video0), a stream piped on stdin ('-'), a network stream ffmpeg opens
// (rtsp, rtmp, udp, srt, http...), or a file paced at its own frame rate (`--live`). A live source
// has no end and no known length, so nothing is probed ahead: one ffmpeg process samples the source
// at the timeline's rate and writes each frame as a PPM image (its header carries the size, which a
// pipe cannot be asked for beforehand). A reader drains ffmpeg as fast as frames come and keeps at
// most `queue` of them for the consumer: when the consumer falls behind, the oldest waiting frames
// are dropped and counted, so latency stays bounded instead of growing with the backlog.
import { Worker } from 'node:worker_threads';
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
  stdinFd?: number; // what '-' reads: a file descriptor ffmpeg inherits (default 0, this process's stdin)
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

// Grid frame j is the last source frame at or before the middle of its segment, (j + 0.5)·step, as
// the file path's planTimeline picks (floor((j + 0.5)·step·fps)). The fps filter rounds a frame
// exactly at a middle up to the next grid frame (at 24 fps and 2 a second, frame 12j+6 became j+1's
// and j got 12j+5): 1 µs earlier, ties go down and nothing else moves (frames are ≥ 30 µs from a middle
// at the usual rates), so a file streamed reads the frames the file path reads.
const GRID = 'settb=1/1000000,setpts=PTS-1,';

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

/** What the reader thread (live-reader.ts) is started with. */
export interface ReaderData {
  args: string[]; // ffmpeg's
  stdinFd?: number; // what ffmpeg reads as its stdin ('-')
  queue: number;
  stallSeconds: number;
  unpaced: boolean;
}

/** The reader thread's messages: a frame (its pixels transferred, not copied), or the end. */
export type ReaderMessage =
  | (RgbFrame & { type: 'frame'; index: number; arrivedAt: number; dropped: number })
  | {
      type: 'end';
      read: number;
      dropped: number;
      code?: number | null;
      signal?: NodeJS.Signals | null;
      stalled?: boolean;
      lastError?: string;
      error?: string;
    };

/**
 * A live source read frame by frame: `for await (const f of source)` yields frames as they come,
 * ends at the stream's end, and throws a one-line UserError when the source breaks or stalls.
 * ffmpeg is read on a worker thread (live-reader.ts), so frames keep being drained, and the stale
 * ones dropped, while this thread is busy; `dropped` counts the frames the consumer never saw.
 * `close()` stops ffmpeg.
 */
export class LiveSource implements AsyncIterable<LiveFrame> {
  dropped = 0;
  delivered = 0;
  readonly kind: LiveKind;
  private readonly reader: Worker;
  private next: ((m: ReaderMessage) => void) | undefined;
  private last: ReaderMessage | undefined; // the end, once it came
  private closed = false;

  constructor(
    readonly source: string,
    private readonly o: LiveOptions,
  ) {
    if (!(o.fps > 0)) throw new UserError(`live ${source}: the sampling rate must be positive (got ${o.fps})`);
    this.kind = liveKind(source);
    const input = inputArgs(source, o.unpaced && this.kind === 'file' ? 'unpaced' : this.kind);
    const args = ['-nostdin', '-loglevel', 'level+error', ...input, '-map', '0:v:0'];
    if (this.kind === 'stdin') args.splice(0, 1); // '-' is ffmpeg's stdin
    args.push('-vf', `${GRID}fps=${o.fps},${SCALE}`, '-f', 'image2pipe', '-c:v', 'ppm', 'pipe:1');
    const data: ReaderData = {
      args,
      stdinFd: this.kind === 'stdin' ? (o.stdinFd ?? 0) : undefined,
      queue: o.queue ?? 2,
      stallSeconds: o.stallSeconds ?? 10,
      unpaced: o.unpaced === true,
    };
    this.reader = new Worker(new URL('./live-reader.js', import.meta.url), { workerData: data });
    this.reader.on('message', (m: ReaderMessage) => this.arrive(m));
    this.reader.on('error', (err) => this.arrive({ type: 'end', read: 0, dropped: 0, error: err.message }));
  }

  private name(): string {
    return this.source === '-' ? 'stdin' : this.source;
  }

  private arrive(m: ReaderMessage): void {
    this.dropped = m.dropped;
    if (m.type === 'end') this.last ??= m;
    const take = this.next;
    this.next = undefined;
    take?.(m);
  }

  /** The end as the user reads it: nothing (the stream ended), or the one line of a stall or break. */
  private failure(m: Extract<ReaderMessage, { type: 'end' }>): UserError | undefined {
    const s = this.o.stallSeconds ?? 10;
    if (m.error) return new UserError(`${this.name()}: ${m.error}: install ffmpeg (apt-get install ffmpeg)`);
    if (m.stalled) {
      const what = m.read ? `no frame for ${s} s after ${m.read} frames` : `no frame in the first ${s} s`;
      return new UserError(`${this.name()}: the stream stalled (${what})`);
    }
    if (this.closed || m.code === 0) return undefined;
    const why = m.lastError ?? (m.signal ? `ffmpeg stopped by ${m.signal}` : `ffmpeg exited with ${m.code}`);
    return new UserError(`${this.name()}: the stream broke after ${m.read} frames (${why})`);
  }

  /** Stops reading: ffmpeg is ended and the iteration finishes. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.reader.postMessage('close');
    const take = this.next;
    this.next = undefined;
    take?.({ type: 'end', read: this.delivered, dropped: this.dropped });
  }

  async *[Symbol.asyncIterator](): AsyncIterator<LiveFrame> {
    try {
      while (!this.closed) {
        const m = this.last ?? (await this.ask());
        if (m.type === 'end') {
          const err = this.failure(m);
          if (err) throw err;
          return;
        }
        this.delivered++;
        const frame = { data: m.data, width: m.width, height: m.height };
        yield { frame, index: m.index, t: m.index / this.o.fps, arrivedAt: m.arrivedAt - performance.timeOrigin };
      }
    } finally {
      this.close();
      await this.reader.terminate();
    }
  }

  private ask(): Promise<ReaderMessage> {
    return new Promise((resolve) => {
      this.next = resolve;
      this.reader.postMessage('next');
    });
  }
}
