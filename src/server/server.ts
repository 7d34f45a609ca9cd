// `ous serve`: the HTTP API and the web page. This process only moves bytes and bookkeeping; the
// model lives in worker processes (worker.ts), so /api/health answers at once while they predict.
//
//   POST /api/predict          the video as the body or as multipart/form-data -> 202 {id}
//                              (?sample=N: one of the built-in sample clips; ?box=x,y,w,h: a known
//                              face box, no detection; ?window=&stride=: the timeline, seconds)
//   GET  /api/jobs/{id}        status, queue position, stage and percentage; the prediction when done
//   GET  /api/health           workers, queue
//   GET  /api/model            classes, encoder, the run's config
//   GET  /api/samples          the sample clips;  GET /api/samples/{n}.mp4 one of them
//   GET  /api/openapi.json     this API described
//   GET  /  and /static/{name} the page, from one fixed folder
//
// Every file name is made here (job ids are random UUIDs); no client string reaches a path.
import { execFile, fork, type ChildProcess } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { packageRoot } from '../util/paths.js';
import { UserError } from '../util/errors.js';
import { generateBenchmark } from '../synthetic/benchmark.js';
import type { Prediction, Stage } from '../predict/predictor.js';
import type { Box } from '../face/detector.js';
import type { FromWorker, ModelInfo, ToWorker } from './protocol.js';
import { openApi } from './openapi.js';
import type { Device, Precision } from '../torch/index.js';
import type { EnginePreference } from '../data/encoder.js';

export interface ServeOptions {
  run: string;
  clip?: string;
  device?: Device; // where the workers run the models (cpu)
  precision?: Precision; // CLIP's vision tower (fp32)
  engine?: EnginePreference; // which engine runs CLIP's vision tower in the workers ('auto'; the CLI's OUS_ENGINE)
  host: string; // 127.0.0.1
  port: number; // 8080; 0 picks a free one
  workers: number; // 1
  queue: number; // jobs waiting beyond the running ones (8)
  maxUploadMb: number; // 200
  maxSeconds: number; // 600
  samples?: number; // sample clips to make (one per class, up to 7); 0 for none
  log?: (line: string) => void;
}

type Status = 'queued' | 'running' | 'done' | 'failed';

interface Job {
  id: string;
  status: Status;
  stage?: Stage;
  progress: number; // 0..1 within the stage
  dir?: string; // its upload folder, deleted when it ends
  file: string;
  name: string; // what the result calls the video: the upload's file name or the sample's, never a server path
  window?: number;
  stride?: number;
  faceBox?: Box;
  result?: Prediction;
  error?: string;
  created: number;
  started?: number;
  finished?: number;
}

interface Worker {
  proc: ChildProcess;
  ready: boolean;
  served: boolean; // was ready once
  job?: Job;
}

const run = promisify(execFile);
const STATIC = path.join(packageRoot(), 'src', 'server', 'static');
const KEEP_JOBS = 200; // finished jobs remembered for GET /api/jobs/{id} (a long video's result is ~1 KB a window)

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

/** What ffprobe and a one-frame decode say about an upload, without blocking the event loop. */
async function checkVideo(file: string, maxSeconds: number): Promise<void> {
  let probe: { streams?: Array<{ duration?: string }>; format?: { duration?: string } };
  try {
    const r = await run('ffprobe', ['-v', 'error', '-select_streams', 'v:0', '-show_entries', 'stream=duration:format=duration', '-of', 'json', file], { maxBuffer: 1 << 20 });
    probe = JSON.parse(r.stdout);
  } catch (err) {
    const why = String((err as { stderr?: string }).stderr ?? '').split(file).join('the upload').trim().split('\n').pop() || 'ffprobe cannot read it';
    throw new HttpError(422, `not a readable video (${why})`);
  }
  if (!probe.streams?.length) throw new HttpError(422, 'not a video (no video stream)');
  const duration = Number(probe.streams[0]!.duration ?? probe.format?.duration);
  if (duration > maxSeconds) throw new HttpError(422, `the video is ${duration.toFixed(1)} s long; this server takes at most ${maxSeconds} s (--max-seconds)`);
  try {
    await run('ffmpeg', ['-v', 'error', '-nostdin', '-i', file, '-map', '0:v:0', '-frames:v', '1', '-f', 'null', '-']);
  } catch (err) {
    const why = String((err as { stderr?: string }).stderr ?? '').split(file).join('the upload').trim().split('\n').pop() || 'ffmpeg cannot decode it';
    throw new HttpError(422, `the video does not decode (${why})`);
  }
}

/** Streams a request body to `file`, stopping (413) as soon as it passes `limit` bytes. */
function receive(req: http.IncomingMessage, file: string, limit: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const out = fs.createWriteStream(file);
    let n = 0;
    let failed = false;
    const fail = (e: Error) => {
      if (failed) return;
      failed = true;
      req.unpipe(out);
      req.pause();
      out.destroy();
      reject(e);
    };
    req.on('data', (chunk: Buffer) => {
      n += chunk.length;
      if (n > limit) fail(new HttpError(413, `the upload passes the limit of ${limit / 2 ** 20} MB (--max-upload-mb)`, { Connection: 'close' }));
    });
    req.on('error', fail);
    req.on('aborted', () => fail(new HttpError(400, 'the upload was interrupted')));
    out.on('error', fail);
    out.on('finish', () => !failed && resolve(n));
    req.pipe(out);
  });
}

/** The first file part of a multipart/form-data body saved at `raw`, copied to `file` (read in chunks). */
function extractMultipart(raw: string, boundary: string, file: string): string | undefined {
  const fd = fs.openSync(raw, 'r');
  try {
    const size = fs.fstatSync(fd).size;
    const head = Buffer.alloc(Math.min(size, 64 * 1024));
    fs.readSync(fd, head, 0, head.length, 0);
    const delim = Buffer.from(`--${boundary}`);
    // Parts until one with a filename; the body starts after its blank line.
    let at = head.indexOf(delim);
    let start = -1;
    let name: string | undefined;
    while (at >= 0) {
      const headersEnd = head.indexOf('\r\n\r\n', at);
      if (headersEnd < 0) break;
      const m = /filename="([^"]*)"/i.exec(head.subarray(at, headersEnd).toString('utf8'));
      if (m) {
        start = headersEnd + 4;
        name = m[1];
        break;
      }
      at = head.indexOf(delim, headersEnd);
    }
    if (start < 0) throw new HttpError(422, 'the multipart body has no file part');
    // The part ends at the next "\r\n--boundary": scan forward in chunks that overlap by its length.
    const end = Buffer.from(`\r\n--${boundary}`);
    const out = fs.openSync(file, 'w');
    try {
      const buf = Buffer.alloc(1 << 20);
      let pos = start;
      for (;;) {
        const n = fs.readSync(fd, buf, 0, buf.length, pos);
        if (n <= 0) throw new HttpError(422, 'the multipart body ends before its closing boundary');
        const view = buf.subarray(0, n);
        const k = view.indexOf(end);
        if (k >= 0) {
          fs.writeSync(out, view, 0, k);
          break;
        }
        const keep = Math.max(0, n - end.length);
        if (n < end.length) throw new HttpError(422, 'the multipart body ends before its closing boundary');
        fs.writeSync(out, view, 0, keep);
        pos += keep;
      }
    } finally {
      fs.closeSync(out);
    }
    return name;
  } finally {
    fs.closeSync(fd);
  }
}

export interface Server {
  url: string;
  model: ModelInfo;
  tempDir: string;
  /** Stops accepting, ends running jobs, kills the workers, deletes every temporary file. */
  close(): Promise<void>;
  /** The worker processes' ids (tests kill one). */
  workerPids(): number[];
}

export async function startServer(o: ServeOptions): Promise<Server> {
  const log = o.log ?? ((l: string) => process.stderr.write(l + '\n'));
  const tempDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ous-serve-'));
  const uploads = path.join(tempDir, 'uploads');
  fs.mkdirSync(uploads);
  const jobs = new Map<string, Job>();
  const queue: Job[] = [];
  const workers: Worker[] = [];
  let closing = false;
  let model: ModelInfo | undefined;
  const durations: number[] = []; // seconds of recent jobs, for Retry-After
  // How long callbacks wait for this event loop: what predictions would raise were they run here.
  const loopDelay = monitorEventLoopDelay({ resolution: 10 });
  loopDelay.enable();

  // Static files: the names in the one folder, read once; a request names a key of this map or nothing.
  const staticFiles = new Map(fs.readdirSync(STATIC).map((f) => [f, path.join(STATIC, f)]));
  const types: Record<string, string> = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8', '.svg': 'image/svg+xml', '.png': 'image/png' };

  // Sample clips from the built-in benchmark, made in the background (4 s, one per class).
  const samplesDir = path.join(tempDir, 'samples');
  let samples: Array<{ name: string; file: string; faceBox: Box }> = [];
  const samplesReady = (o.samples ?? 4) > 0
    ? generateBenchmark({ out: samplesDir, seed: 1, trainPerClass: 0, testPerClass: 1, frames: 32, width: 240, height: 180, agreement: 1 }, { progress: false })
        .then((b) => {
          samples = b.clips.slice(0, o.samples ?? 4).map((c, i) => ({ name: `${i}.mp4`, file: c.file, faceBox: c.faceBox }));
        })
        .catch((err) => log(`serve: no sample clips (${(err as Error).message})`))
    : Promise.resolve();

  const workerModule = fileURLToPath(new URL('./worker.js', import.meta.url));
  const threads = Math.max(1, Math.floor(os.availableParallelism() / o.workers));

  const finish = (job: Job, patch: Partial<Job>) => {
    Object.assign(job, patch, { finished: Date.now() });
    if (job.started) durations.push((job.finished! - job.started) / 1000);
    if (durations.length > 20) durations.shift();
    if (job.dir) fs.rmSync(job.dir, { recursive: true, force: true });
    job.dir = undefined;
    // Forget the oldest finished jobs beyond KEEP_JOBS.
    if (jobs.size > KEEP_JOBS) {
      for (const [id, j] of jobs) {
        if (jobs.size <= KEEP_JOBS) break;
        if (j.status === 'done' || j.status === 'failed') jobs.delete(id);
      }
    }
  };

  const dispatch = () => {
    for (const w of workers) {
      if (closing || !w.ready || w.job || !queue.length) continue;
      const job = queue.shift()!;
      w.job = job;
      Object.assign(job, { status: 'running', started: Date.now(), stage: 'decode', progress: 0 });
      const m: ToWorker = { type: 'job', id: job.id, file: job.file, window: job.window, stride: job.stride, faceBox: job.faceBox };
      w.proc.send(m);
    }
  };

  let firstReady: (m: ModelInfo) => void;
  let fatal: (e: Error) => void;
  const ready = new Promise<ModelInfo>((res, rej) => ((firstReady = res), (fatal = rej)));

  const spawnWorker = (slot: number) => {
    const proc = fork(workerModule, [], {
      env: { ...process.env, OUS_SERVE_RUN: o.run, OUS_SERVE_CLIP: o.clip ?? '', OUS_SERVE_DEVICE: o.device ?? '', OUS_SERVE_PRECISION: o.precision ?? 'fp32', OUS_SERVE_ENGINE: o.engine ?? 'auto', OUS_SERVE_THREADS: String(threads) },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    // Inference yields the CPU to the HTTP loop: the workers run at a lower priority (nice 10), so
    // /api/health and uploads are answered at once even when the workers use every core.
    try {
      os.setPriority(proc.pid!, 10);
    } catch {
      // not allowed here: they run at the server's priority
    }
    const w: Worker = { proc, ready: false, served: false };
    workers[slot] = w;
    proc.on('message', (m: FromWorker) => {
      if (m.type === 'ready') {
        w.ready = w.served = true;
        model = m.model;
        firstReady(m.model);
        dispatch();
      } else if (m.type === 'fatal') {
        if (model) log(`serve: a worker cannot load the model: ${m.error}`);
        else fatal(m.userError ? new UserError(m.error) : new Error(m.error));
      }
      else if (w.job && m.id === w.job.id) {
        const job = w.job;
        if (m.type === 'progress') Object.assign(job, { stage: m.stage, progress: m.fraction });
        else {
          w.job = undefined;
          if (m.type === 'done') finish(job, { status: 'done', result: { ...m.result, video: job.name }, progress: 1 });
          else finish(job, { status: 'failed', error: m.error.split(job.file).join(job.name) });
          dispatch();
        }
      }
    });
    proc.on('exit', (code, signal) => {
      if (w.job) finish(w.job, { status: 'failed', error: `the worker stopped (${signal ?? `exit code ${code}`}) while predicting this video` });
      w.job = undefined;
      w.ready = false;
      if (closing) return;
      if (!model) return fatal(new Error(`a worker stopped before the model loaded (${signal ?? `exit code ${code}`})`));
      log(`serve: worker ${proc.pid} stopped (${signal ?? `exit code ${code}`}); starting another`);
      // One that never got ready (the model stopped loading) is retried slowly, not in a tight loop.
      if (w.ready || w.served) spawnWorker(slot);
      else setTimeout(() => closing || spawnWorker(slot), 5000).unref();
    });
  };
  for (let i = 0; i < o.workers; i++) spawnWorker(i);
  try {
    await ready;
  } catch (err) {
    closing = true;
    for (const w of workers) w.proc.kill();
    fs.rmSync(tempDir, { recursive: true, force: true });
    throw err;
  }

  const retryAfter = () => {
    const mean = durations.length ? durations.reduce((a, b) => a + b, 0) / durations.length : 10;
    return String(Math.max(1, Math.ceil((mean * (queue.length + 1)) / o.workers)));
  };

  const json = (res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) => {
    const data = JSON.stringify(body);
    res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(data), 'Cache-Control': 'no-store', ...headers });
    res.end(data);
  };

  const sendFile = (res: http.ServerResponse, file: string, type: string) => {
    const size = fs.statSync(file).size;
    res.writeHead(200, { 'Content-Type': type, 'Content-Length': size, 'X-Content-Type-Options': 'nosniff' });
    fs.createReadStream(file).pipe(res);
  };

  const jobView = (job: Job) => ({
    id: job.id,
    status: job.status,
    position: job.status === 'queued' ? queue.indexOf(job) + 1 : 0,
    stage: job.stage ?? null,
    progress: job.progress,
    ...(job.status === 'done' ? { result: job.result } : {}),
    ...(job.status === 'failed' ? { error: job.error } : {}),
  });

  const limit = o.maxUploadMb * 2 ** 20;

  async function predict(req: http.IncomingMessage, res: http.ServerResponse, url: URL): Promise<void> {
    if (closing) throw new HttpError(503, 'the server is shutting down', { 'Retry-After': '5' });
    if (queue.length >= o.queue) throw new HttpError(503, `the queue is full (${o.queue} waiting): retry later`, { 'Retry-After': retryAfter() });
    const num = (k: string) => {
      const v = url.searchParams.get(k);
      if (v === null) return undefined;
      if (!(Number(v) > 0)) throw new HttpError(400, `${k} must be a positive number of seconds, not '${v}'`);
      return Number(v);
    };
    const [window, stride] = [num('window'), num('stride')];
    const boxParam = url.searchParams.get('box');
    let faceBox = boxParam === null ? undefined : (boxParam.split(',').map(Number) as Box);
    if (faceBox && (faceBox.length !== 4 || !faceBox.every((v) => Number.isFinite(v) && v >= 0) || !(faceBox[2] > 0 && faceBox[3] > 0))) throw new HttpError(400, `box must be x,y,w,h in the video's pixels, not '${boxParam}'`);
    const id = crypto.randomUUID();
    const sample = url.searchParams.get('sample');
    let file: string;
    let dir: string | undefined;
    let name = 'upload';
    if (sample !== null) {
      await samplesReady;
      const s = samples.find((c) => c.name === `${sample}.mp4`);
      if (!s) throw new HttpError(404, `no sample clip '${sample}' (GET /api/samples lists them)`);
      file = s.file;
      name = `sample ${s.name}`;
      faceBox ??= s.faceBox; // the drawn face's box is known: no detection
      req.resume();
    } else {
      const declared = Number(req.headers['content-length']);
      if (declared > limit) throw new HttpError(413, `the upload (${(declared / 2 ** 20).toFixed(1)} MB) passes the limit of ${o.maxUploadMb} MB (--max-upload-mb)`, { Connection: 'close' });
      dir = path.join(uploads, id);
      fs.mkdirSync(dir);
      try {
        const raw = path.join(dir, 'body');
        const n = await receive(req, raw, limit);
        if (n === 0) throw new HttpError(422, 'the body is empty: send the video as the body or as a multipart file');
        const type = req.headers['content-type'] ?? '';
        const boundary = /^multipart\/form-data;.*boundary=(?:"([^"]+)"|([^;]+))/i.exec(type);
        file = path.join(dir, 'video');
        if (boundary) {
          name = extractMultipart(raw, boundary[1] ?? boundary[2]!, file) || name;
          fs.rmSync(raw);
        } else fs.renameSync(raw, file);
        await checkVideo(file, o.maxSeconds);
      } catch (err) {
        fs.rmSync(dir, { recursive: true, force: true });
        throw err;
      }
      // The queue may have filled while this upload arrived.
      if (queue.length >= o.queue || closing) {
        fs.rmSync(dir, { recursive: true, force: true });
        throw new HttpError(503, `the queue is full (${o.queue} waiting): retry later`, { 'Retry-After': retryAfter() });
      }
    }
    const job: Job = { id, status: 'queued', progress: 0, dir, file, name, window, stride, faceBox, created: Date.now() };
    jobs.set(id, job);
    queue.push(job);
    dispatch();
    json(res, 202, { id, status: job.status, position: job.status === 'queued' ? queue.indexOf(job) + 1 : 0 }, { Location: `/api/jobs/${id}` });
  }

  async function handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const p = url.pathname;
    const method = req.method ?? 'GET';
    if (p === '/api/predict') {
      if (method !== 'POST') throw new HttpError(405, 'POST a video to /api/predict', { Allow: 'POST' });
      return predict(req, res, url);
    }
    if (method !== 'GET' && method !== 'HEAD') throw new HttpError(405, `${method} is not served here`, { Allow: 'GET' });
    if (p === '/api/health') {
      const ms = (ns: number) => Math.round(ns / 1e4) / 100;
      const eventLoopDelayMs = { p50: ms(loopDelay.percentile(50)), p99: ms(loopDelay.percentile(99)), max: ms(loopDelay.max) };
      if (url.searchParams.has('reset')) loopDelay.reset();
      return json(res, 200, { ok: true, workers: workers.filter((w) => w.ready).length, busy: workers.filter((w) => w.job).length, queued: queue.length, queue: o.queue, eventLoopDelayMs });
    }
    if (p === '/api/model') return json(res, 200, model);
    if (p === '/api/openapi.json') return json(res, 200, openApi({ maxUploadMb: o.maxUploadMb, maxSeconds: o.maxSeconds }));
    if (p === '/api/samples') {
      await samplesReady;
      return json(res, 200, samples.map((s) => ({ name: s.name, url: `/api/samples/${s.name}` })));
    }
    const sm = /^\/api\/samples\/([^/]+)$/.exec(p);
    if (sm) {
      const s = samples.find((c) => c.name === sm[1]);
      if (!s) throw new HttpError(404, `no sample clip '${sm[1]}'`);
      return sendFile(res, s.file, 'video/mp4');
    }
    const jm = /^\/api\/jobs\/([^/]+)$/.exec(p);
    if (jm) {
      const job = jobs.get(jm[1]!);
      if (!job) throw new HttpError(404, `no job '${jm[1]}' (unknown, or finished long ago)`);
      return json(res, 200, jobView(job));
    }
    if (p === '/' || p === '/index.html') return sendFile(res, staticFiles.get('index.html')!, types['.html']!);
    const st = /^\/static\/([^/]+)$/.exec(p);
    const file = st ? staticFiles.get(st[1]!) : undefined; // a name in the map, never a path built from the request
    if (file) return sendFile(res, file, types[path.extname(file)] ?? 'application/octet-stream');
    throw new HttpError(404, `nothing at ${p}`);
  }

  const server = http.createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      const e = err instanceof HttpError ? err : new HttpError(500, `internal error: ${(err as Error).message}`);
      if (!(err instanceof HttpError)) log(`serve: ${(err as Error).stack ?? err}`);
      if (res.headersSent) return void res.destroy();
      json(res, e.status, { error: e.message }, e.headers);
      // A refused upload is not read to its end: the connection closes once the answer is out.
      if (e.headers.Connection === 'close') res.on('finish', () => req.socket.destroySoon());
    });
  });
  server.requestTimeout = 0; // long uploads are fine; the size limit bounds them
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port, o.host, () => resolve());
  });
  const addr = server.address() as { port: number; address: string };
  const host = addr.address.includes(':') ? `[${addr.address}]` : addr.address;
  const url = `http://${host}:${addr.port}`;

  let closed: Promise<void> | undefined;
  const close = () =>
    (closed ??= (async () => {
      closing = true;
      loopDelay.disable();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      for (const job of queue.splice(0)) finish(job, { status: 'failed', error: 'the server shut down' });
      await Promise.all(
        workers.map(
          (w) =>
            new Promise<void>((resolve) => {
              if (w.proc.exitCode !== null || w.proc.signalCode !== null) return resolve();
              w.proc.once('exit', () => resolve());
              w.proc.kill('SIGTERM');
            }),
        ),
      );
      await samplesReady;
      fs.rmSync(tempDir, { recursive: true, force: true });
    })());

  return { url, model: model!, tempDir, close, workerPids: () => workers.map((w) => w.proc.pid!) };
}
