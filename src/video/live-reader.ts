// The reading side of a live source, on a worker thread: one ffmpeg process writes PPM frames, and
// this thread keeps draining them while the main thread is busy detecting and encoding (libtorch's
// calls hold the main thread's event loop). It keeps at most `queue` frames for the main thread,
// which asks for them one at a time: a frame that waited behind `queue` newer ones is dropped and
// counted, so a slow consumer sees fresh frames and a bounded delay, never a growing backlog.
// `unpaced` (a file read straight through) pauses ffmpeg instead of dropping.
import { spawn } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { parentPort, workerData } from 'node:worker_threads';
import { PpmReader, cleanFfmpegError, type ReaderData, type ReaderMessage } from './live.js';

const d = workerData as ReaderData;
const port = parentPort!;
const send = (m: ReaderMessage, transfer: ArrayBuffer[] = []) => port.postMessage(m, transfer);

const proc = spawn('ffmpeg', d.args, { stdio: [d.stdinFd ?? 'ignore', 'pipe', 'pipe'] });
const waiting: Array<Extract<ReaderMessage, { type: 'frame' }>> = [];
let asked = 0; // frames the main thread asked for and has not had
let read = 0;
let dropped = 0;
let lastError: string | undefined;
let stalled = false;
let stallTimer: NodeJS.Timeout | undefined;

function armStall(): void {
  clearTimeout(stallTimer);
  stallTimer = setTimeout(() => {
    stalled = true;
    proc.kill('SIGKILL');
  }, d.stallSeconds * 1000);
}

function hand(): void {
  while (asked > 0 && waiting.length) {
    const f = waiting.shift()!;
    asked--;
    send({ ...f, dropped }, [f.data.buffer as ArrayBuffer]);
  }
  if (d.unpaced && waiting.length < d.queue && proc.stdout!.isPaused()) {
    proc.stdout!.resume();
    armStall();
  }
}

proc.on('error', (err) => send({ type: 'end', read, dropped, error: `cannot run ffmpeg (${err.message})` }));
proc.stderr!.on('data', (chunk: Buffer) => {
  for (const l of String(chunk).split('\n')) {
    const e = /\[(error|fatal|panic)\] (.*)/.exec(l);
    if (e) lastError = cleanFfmpegError(e[2]!);
  }
});
const ppm = new PpmReader();
proc.stdout!.on('data', (chunk: Buffer) => {
  armStall();
  let frames: ReturnType<PpmReader['push']>;
  try {
    frames = ppm.push(chunk);
  } catch (err) {
    lastError = (err as Error).message;
    proc.kill('SIGKILL');
    return;
  }
  for (const f of frames) {
    waiting.push({
      type: 'frame',
      ...f,
      index: read++,
      arrivedAt: performance.timeOrigin + performance.now(),
      dropped,
    });
    if (d.unpaced) continue;
    while (waiting.length > d.queue) {
      waiting.shift();
      dropped++;
    }
  }
  // back-pressure instead of dropping; no stall is counted while the consumer is the slow one
  if (d.unpaced && waiting.length >= d.queue) proc.stdout!.pause(), clearTimeout(stallTimer);
  hand();
});
proc.on('close', (code, signal) => {
  clearTimeout(stallTimer);
  const end = () => {
    if (waiting.length && !stalled) return setTimeout(end, 5); // the frames already read go first
    send({ type: 'end', read, dropped, code, signal, stalled, lastError });
  };
  end();
});
port.on('message', (m: 'next' | 'close') => {
  if (m === 'next') {
    asked++;
    hand();
  } else proc.kill('SIGTERM');
});
armStall();
