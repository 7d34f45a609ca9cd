// `ous serve`: the HTTP routes and the web page. This process only moves bytes and bookkeeping; the
// model lives in worker processes (pool.ts, worker.ts), uploads are parsed and probed in upload.ts,
// so /api/health answers at once while they predict.
//
//   POST /api/predict          the video as the body or as multipart/form-data -> 202 {id}
//                              (?sample=N: one of the built-in sample clips; ?box=x,y,w,h: a known
//                              face box, no detection; ?window=&stride=: the timeline, seconds)
//   GET  /api/jobs/{id}        status, queue position, stage and percentage, the windows classified
//                              so far; the prediction when done
//   GET  /api/health           workers, queue (never waits on uploads or jobs)
//   GET  /api/model            classes, encoder, the run's config
//   GET  /api/samples          the sample clips;  GET /api/samples/{n}.mp4 one of them
//   GET  /api/openapi.json     this API described
//   GET  /  and /static/{name} the page, from one fixed folder
//
// Every file name is made here (job ids are random UUIDs); no client string reaches a path. Only
// requests naming this server (Host) are answered, and API POSTs from other origins are refused,
// so neither a web page the user visits nor a DNS-rebinding one can use it.
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { packageRoot } from '../util/paths.js';
import { UsageError, UserError } from '../util/errors.js';
import { checkBoxInFrame, parseBox } from '../util/box.js';
import { generateBenchmark } from '../synthetic/benchmark.js';
import type { ModelInfo } from './protocol.js';
import { openApi } from './openapi.js';
import { JobPool, KEEP_JOBS_MS, type Job } from './pool.js';
import { HttpError, Limiter, probeUpload, receiveUpload, type Probed } from './upload.js';
import { ClientLimits, clientAddress } from './clients.js';
import { apiWords, withoutAddresses } from './messages.js';
import { DEFAULT_TIMELINE, planTimeline } from '../predict/timeline.js';
import type { Device, Precision } from '../torch/index.js';
import type { EnginePreference } from '../clip/frame-encoder.js';

export { HttpError };

export interface ServeOptions {
  run: string;
  clip?: string;
  device?: Device; // where the workers run the models (cpu)
  precision?: Precision; // CLIP's vision tower (fp32)
  engine?: EnginePreference; // which engine runs CLIP's vision tower in the workers ('auto'; the CLI's OUS_ENGINE)
  host: string; // 127.0.0.1
  port: number; // 8080; 0 picks a free one
  publicHost?: string[]; // other names clients reach this server by (--public-host)
  workers: number; // 1
  queue: number; // jobs waiting beyond the running ones (8)
  maxUploadMb: number; // 200
  maxSeconds: number; // 600
  samples?: number; // sample clips to make (one per class, up to 7); 0 for none
  probes?: number; // uploads probed at once (2)
  maxConnections?: number; // open connections (256); more are refused at once
  headersTimeoutMs?: number; // a request's headers must arrive within this (10 s)
  requestTimeoutMs?: number; // a whole request, upload included (10 min)
  idleTimeoutMs?: number; // a connection silent this long is closed (60 s)
  perClientConnections?: number; // open connections one client address may hold (32)
  perClientUploads?: number; // uploads one client address may have arriving at once (2)
  minUploadKBps?: number; // an upload slower than this over a rate window is dropped with 408 (8 KB/s)
  rateWindowMs?: number; // the window the upload rate is measured over (10 s)
  keepJobsMs?: number; // a finished job's result stays readable this long (1 hour)
  tempRoot?: string; // where the server's temporary folder is made (the system's temp folder)
  workerModule?: string; // tests: a stand-in worker
  log?: (line: string) => void;
}

const STATIC = path.join(packageRoot(), 'src', 'server', 'static');
const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
};

/** On every answer: no sniffing, nothing but the page's own files, no framing, no referrer. */
export const SECURITY_HEADERS: Record<string, string> = {
  'X-Content-Type-Options': 'nosniff',
  // media-src blob: plays the user's own file from the page; nothing else leaves this origin.
  'Content-Security-Policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; media-src 'self' blob:; " +
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
  'X-Frame-Options': 'DENY',
  'Referrer-Policy': 'no-referrer',
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Resource-Policy': 'same-origin',
};

export interface Server {
  url: string;
  model: ModelInfo;
  tempDir: string;
  /**
   * Stops accepting jobs, fails queued ones, gives running ones `graceMs` to finish, answers polls for up
   * to `lingerMs` more so clients see how their jobs ended, then closes and deletes every temporary file.
   */
  shutdown(o?: { graceMs?: number; lingerMs?: number }): Promise<void>;
  /** shutdown() without grace or linger. */
  close(): Promise<void>;
  /** The worker processes' ids (tests kill one). */
  workerPids(): number[];
}

/** The host names (lower case, no port, IPv6 without brackets) a request's Host may give. */
export function allowedHosts(bound: string, publicHost: string[] = []): Set<string> {
  const names = new Set(['localhost', '127.0.0.1', '::1', hostName(bound), ...publicHost.map(hostName)]);
  // Bound to every interface: each of this machine's addresses names it.
  if (bound === '0.0.0.0' || bound === '::')
    for (const list of Object.values(os.networkInterfaces()))
      for (const a of list ?? []) names.add(a.address.toLowerCase());
  return names;
}

/** A Host header's name: "[::1]:8080" -> "::1", "Example.org:80" -> "example.org". */
export function hostName(host: string): string {
  const h = host.trim().toLowerCase();
  if (h.startsWith('[')) return h.slice(1, h.indexOf(']') < 0 ? undefined : h.indexOf(']'));
  return h.replace(/:\d*$/, '');
}

/** How many Host headers a request sent (Node keeps the first of several; two are refused, RFC 9112 §3.2). */
function hostHeaders(req: http.IncomingMessage): number {
  let n = 0;
  for (let i = 0; i < req.rawHeaders.length; i += 2) if (req.rawHeaders[i]!.toLowerCase() === 'host') n++;
  return n;
}

/**
 * Node's own refusals (a malformed request, headers too large, a request timeout), answered like
 * every other refusal: a JSON body with the reason and the security headers, then the connection closes.
 */
function answerClientError(err: NodeJS.ErrnoException, socket: import('node:stream').Duplex): void {
  const busy = (socket as { _httpMessage?: { headersSent?: boolean } })._httpMessage;
  if (err.code === 'ECONNRESET' || !socket.writable || busy?.headersSent) return void socket.destroy();
  const [status, reason, why] =
    err.code === 'HPE_HEADER_OVERFLOW'
      ? [431, 'Request Header Fields Too Large', 'the request headers are larger than 16 KB']
      : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? [408, 'Request Timeout', 'the request did not arrive in time']
        : [400, 'Bad Request', `the request is malformed (${String(err.code ?? 'unreadable').replace(/^HPE_/, '')})`];
  const body = JSON.stringify({ error: why });
  const headers = {
    ...SECURITY_HEADERS,
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': String(Buffer.byteLength(body)),
    'Cache-Control': 'no-store',
    Connection: 'close',
  };
  const head = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`);
  socket.end(`HTTP/1.1 ${status} ${reason}\r\n${head.join('')}\r\n${body}`);
}

/** Binds `server`, turning the usual failures into one line. */
function listen(server: http.Server, port: number, host: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => {
      const why: Record<string, string> = {
        EADDRINUSE:
          `serve: port ${port} on ${host} is in use: stop what uses it, ` +
          'or pick another with --port (0 picks a free one)',
        EADDRNOTAVAIL:
          `serve: --host ${host} is not an address of this machine ` +
          '(127.0.0.1 for this machine only, 0.0.0.0 for every interface)',
        ENOTFOUND: `serve: --host ${host} is not an address or a name this machine resolves`,
        EAI_AGAIN: `serve: --host ${host} cannot be resolved now (name service unavailable)`,
        EACCES:
          `serve: not allowed to listen on port ${port} of ${host} ` +
          '(ports below 1024 need privileges): pick another with --port',
      };
      reject(why[err.code ?? ''] ? new UserError(why[err.code!]!) : err);
    });
    server.listen(port, host, () => resolve());
  });
}

export async function startServer(o: ServeOptions): Promise<Server> {
  const log = o.log ?? ((l: string) => process.stderr.write(l + '\n'));
  if (!net.isIP(o.host) && o.host !== 'localhost' && !/^[a-z0-9.-]+$/i.test(o.host))
    throw new UserError(`serve: --host '${o.host}' is not an address or a host name`);
  const tempDir = fs.mkdtempSync(path.join(o.tempRoot ?? os.tmpdir(), 'ous-serve-'));
  const uploads = path.join(tempDir, 'uploads');
  fs.mkdirSync(uploads);
  // How long callbacks wait for this event loop: what predictions would raise were they run here.
  const loopDelay = monitorEventLoopDelay({ resolution: 10 });
  const limit = o.maxUploadMb * 2 ** 20;
  const requestTimeout = o.requestTimeoutMs ?? 600_000; // an upload's own deadline is 1 s less (a JSON 408)
  const probes = new Limiter(o.probes ?? 2);
  const clients = new ClientLimits({ connections: o.perClientConnections ?? 32, uploads: o.perClientUploads ?? 2 });
  const minRate = { bytesPerSec: (o.minUploadKBps ?? 8) * 1024, windowMs: o.rateWindowMs ?? 10_000 };
  let pool: JobPool | undefined;
  let closing = false;
  const endedWhileClosing = new Set<string>(); // jobs a client has not yet polled since they ended in the shutdown

  // Static files: the names in the one folder, read once; a request names a key of this map or nothing.
  const staticFiles = new Map(fs.readdirSync(STATIC).map((f) => [f, path.join(STATIC, f)]));

  // Sample clips from the built-in benchmark, made in the background (4 s, one per class) once the
  // port is ours.
  const samplesDir = path.join(tempDir, 'samples');
  let samples: Array<{ name: string; file: string; faceBox: [number, number, number, number]; probed: Probed }> = [];
  let samplesReady: Promise<void> = Promise.resolve();
  const makeSamples = () =>
    (o.samples ?? 4) > 0
      ? generateBenchmark(
          {
            out: samplesDir,
            seed: 1,
            trainPerClass: 0,
            testPerClass: 1,
            frames: 32,
            width: 240,
            height: 180,
            agreement: 1,
          },
          { progress: false },
        )
          .then(async (b) => {
            const clips = b.clips.slice(0, o.samples ?? 4);
            samples = await Promise.all(
              clips.map(async (c, i) => ({
                name: `${i}.mp4`,
                file: c.file,
                faceBox: c.faceBox,
                probed: await probeUpload(c.file, { maxBytes: Infinity, maxSeconds: Infinity }),
              })),
            );
          })
          .catch((err) => log(`serve: no sample clips (${(err as Error).message})`))
      : Promise.resolve();

  const hosts = allowedHosts(o.host, o.publicHost);

  const json = (res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) => {
    const data = JSON.stringify(body);
    res.writeHead(status, {
      'Content-Type': 'application/json; charset=utf-8',
      'Content-Length': Buffer.byteLength(data),
      'Cache-Control': 'no-store',
      ...headers,
    });
    res.end(data);
  };

  const sendFile = (res: http.ServerResponse, file: string, type: string, head: boolean) => {
    const size = fs.statSync(file).size;
    res.writeHead(200, { 'Content-Type': type, 'Content-Length': size });
    if (head) return void res.end();
    fs.createReadStream(file)
      .on('error', () => res.destroy())
      .pipe(res);
  };

  const ms = (ns: number) => Math.round(ns / 1e4) / 100;
  const keepJobsS = Math.round((o.keepJobsMs ?? KEEP_JOBS_MS) / 1000);

  async function predict(req: http.IncomingMessage, res: http.ServerResponse, url: URL): Promise<void> {
    const shutting = () =>
      new HttpError(503, 'the server is shutting down: send the video again later', {
        'Retry-After': '30',
        Connection: 'close',
      });
    if (closing || !pool)
      throw closing
        ? shutting()
        : new HttpError(503, 'the model is still loading', { 'Retry-After': '5', Connection: 'close' });
    const num = (k: string) => {
      const v = url.searchParams.get(k);
      if (v === null) return undefined;
      if (!(Number(v) > 0 && Number(v) <= o.maxSeconds))
        throw new HttpError(400, `${k} must be a positive number of seconds up to ${o.maxSeconds}, not '${v}'`, {
          Connection: 'close',
        });
      return Number(v);
    };
    const [window, stride] = [num('window'), num('stride')];
    const boxParam = url.searchParams.get('box');
    let faceBox: [number, number, number, number] | undefined;
    const checkBox = (box: [number, number, number, number], p: Probed) => {
      try {
        checkBoxInFrame(box, p.width, p.height, 'box');
      } catch (err) {
        throw new HttpError(400, (err as Error).message);
      }
    };
    if (boxParam !== null) {
      try {
        faceBox = parseBox(boxParam, 'box');
      } catch (err) {
        if (err instanceof UsageError)
          throw new HttpError(400, `${err.message} (?box=x,y,w,h)`, { Connection: 'close' });
        throw err;
      }
    }
    // ?persons=all: a timeline for every person; ?person=ID: one of them (ids by first appearance, then left to right).
    const [allParam, personParam] = [url.searchParams.get('persons'), url.searchParams.get('person')];
    if (allParam !== null && allParam !== 'all')
      throw new HttpError(400, `persons must be 'all', not '${allParam}' (?person=ID asks for one)`, {
        Connection: 'close',
      });
    if (personParam !== null && !/^\d{1,6}$/.test(personParam))
      throw new HttpError(400, `person must be a person's id (0, 1, ...), not '${personParam}'`, {
        Connection: 'close',
      });
    if ((allParam !== null || personParam !== null) && boxParam !== null)
      throw new HttpError(400, 'box is one known face: it does not go with persons or person', { Connection: 'close' });
    if (allParam !== null && personParam !== null)
      throw new HttpError(400, 'give persons=all or person=ID, not both', { Connection: 'close' });
    const persons = allParam !== null ? ('all' as const) : personParam !== null ? Number(personParam) : undefined;
    const sample = url.searchParams.get('sample');
    if (sample !== null) {
      req.resume();
      await samplesReady;
      const s = samples.find((c) => c.name === `${sample}.mp4`);
      if (!s) throw new HttpError(404, `no sample clip '${sample}' (GET /api/samples lists them)`);
      if (faceBox) checkBox(faceBox, s.probed);
      checkTimeline(s.probed, window, stride);
      const place = pool.admit();
      if (!place) throw queueFull(pool);
      // The drawn face's box is known: no detection.
      const job = pool.submit({
        file: s.file,
        name: `sample ${s.name}`,
        duration: s.probed.duration,
        window,
        stride,
        ...(persons !== undefined ? { persons } : { faceBox: faceBox ?? s.faceBox }),
      });
      place.release();
      return accepted(res, job);
    }
    // Refusals that need no body come before reading any of it; the connection then closes.
    const declared = Number(req.headers['content-length']);
    if (declared > limit)
      throw new HttpError(
        413,
        `the upload (${(declared / 2 ** 20).toFixed(1)} MB) passes the limit of ${o.maxUploadMb} MB (--max-upload-mb)`,
        { Connection: 'close' },
      );
    const mine = clients.admitUpload(clientAddress(req.socket));
    if (!mine) throw tooManyUploads(pool);
    const place = pool.admit();
    if (!place) {
      mine.release();
      throw queueFull(pool);
    }
    const dir = path.join(uploads, crypto.randomUUID());
    try {
      fs.mkdirSync(dir);
      const got = await receiveUpload(req, dir, limit, requestTimeout - 1000, minRate);
      const probed = await probes.run(() => probeUpload(got.file, { maxBytes: limit, maxSeconds: o.maxSeconds }));
      if (faceBox) checkBox(faceBox, probed);
      checkTimeline(probed, window, stride);
      if (closing) throw shutting();
      const job = pool.submit({
        file: got.file,
        dir,
        name: got.name,
        duration: probed.duration,
        window,
        stride,
        faceBox,
        persons,
      });
      return accepted(res, job);
    } catch (err) {
      fs.rmSync(dir, { recursive: true, force: true });
      throw err;
    } finally {
      place.release();
      mine.release();
    }
  }

  /** 503 with what the queue holds now: the jobs waiting and the uploads still arriving. */
  const queueFull = (p: JobPool) => {
    const h = p.health();
    return new HttpError(
      503,
      `the queue is full (${h.queued} waiting, ${h.uploading} uploading, ${h.busy} running): retry later`,
      { 'Retry-After': p.retryAfter(), Connection: 'close' },
    );
  };

  const tooManyUploads = (p: JobPool) =>
    new HttpError(
      429,
      `this address already has ${o.perClientUploads ?? 2} uploads arriving: send the next when one has arrived`,
      { 'Retry-After': p.retryAfter(), Connection: 'close' },
    );

  /** The timeline's own check (enough frames in a window), at once and in the API's words. */
  const checkTimeline = (p: Probed, window?: number, stride?: number) => {
    if (!pool?.model || !(p.fps > 0)) return;
    try {
      planTimeline(Math.round(p.duration * p.fps), p.fps, pool.model.encoder.frames, {
        window: window ?? DEFAULT_TIMELINE.window,
        stride: stride ?? DEFAULT_TIMELINE.stride,
      });
    } catch (err) {
      if (err instanceof UserError) throw new HttpError(400, apiWords(err.message));
      throw err;
    }
  };

  /** DELETE /api/jobs/{id}: the job's id is its only key (a random UUID), as for reading it. */
  const cancelJob = (res: http.ServerResponse, id: string) => {
    const job = pool?.jobs.get(id);
    if (!job) throw new HttpError(404, `no job '${id.slice(0, 100)}'`);
    if (!pool!.cancel(job)) throw new HttpError(409, `the job has already ended (${job.status})`);
    json(res, 200, pool!.view(job));
  };

  const accepted = (res: http.ServerResponse, job: Job) => {
    const v = pool!.view(job);
    json(res, 202, { id: v.id, status: v.status, position: v.position }, { Location: `/api/jobs/${job.id}` });
  };

  /** Host and Origin: this server's names only; API writes from this origin only. */
  function checkCaller(req: http.IncomingMessage, method: string): void {
    const host = req.headers.host;
    if (hostHeaders(req) > 1)
      throw new HttpError(400, 'the request has more than one Host header: send one', { Connection: 'close' });
    // HTTP/1.0 may omit Host (Node refuses HTTP/1.1 without it); browsers always send it.
    if (host !== undefined && !hosts.has(hostName(host)))
      throw new HttpError(
        421,
        `this server does not answer for the host '${host.slice(0, 100)}' ` +
          '(start it with --public-host NAME to add a name)',
        { Connection: 'close' },
      );
    if (method === 'GET' || method === 'HEAD') return;
    const origin = req.headers.origin;
    const site = req.headers['sec-fetch-site'];
    if (site !== undefined && site !== 'same-origin' && site !== 'none')
      throw new HttpError(403, `requests from other sites are refused (Sec-Fetch-Site: ${site})`, {
        Connection: 'close',
      });
    if (origin === undefined) return; // not from a browser (curl, scripts)
    let same = false;
    try {
      const u = new URL(origin);
      same =
        (u.protocol === 'http:' || u.protocol === 'https:') &&
        host !== undefined &&
        u.host === host.toLowerCase() &&
        hosts.has(hostName(u.host));
    } catch {
      // 'null' or garbage: not this origin
    }
    if (!same)
      throw new HttpError(403, `requests from another origin (${origin.slice(0, 100)}) are refused`, {
        Connection: 'close',
      });
  }

  async function handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    for (const [k, v] of Object.entries(SECURITY_HEADERS)) res.setHeader(k, v);
    const method = req.method ?? 'GET';
    checkCaller(req, method);
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://localhost');
    } catch {
      throw new HttpError(400, 'the request path is malformed');
    }
    const p = url.pathname;
    if (p === '/api/predict') {
      if (method !== 'POST') throw new HttpError(405, 'POST a video to /api/predict', { Allow: 'POST' });
      return predict(req, res, url);
    }
    const jm = /^\/api\/jobs\/([^/]+)$/.exec(p);
    if (jm && method === 'DELETE') return cancelJob(res, jm[1]!);
    if (method !== 'GET' && method !== 'HEAD')
      throw new HttpError(405, `${method} is not served here`, {
        Allow: jm ? 'GET, HEAD, DELETE' : 'GET, HEAD',
        Connection: 'close',
      });
    if (p === '/api/health') {
      const eventLoopDelayMs = {
        p50: ms(loopDelay.percentile(50)),
        p99: ms(loopDelay.percentile(99)),
        max: ms(loopDelay.max),
      };
      if (url.searchParams.has('reset')) loopDelay.reset();
      const h = pool?.health() ?? { workers: 0, busy: 0, queued: 0, uploading: 0, queue: o.queue };
      return json(res, 200, {
        ok: true,
        shuttingDown: closing,
        ...h,
        probing: probes.inFlight,
        busiestClient: clients.busiest(),
        eventLoopDelayMs,
      });
    }
    if (p === '/api/model') {
      if (!pool?.model) throw new HttpError(503, 'the model is still loading', { 'Retry-After': '5' });
      return json(res, 200, pool.model);
    }
    if (p === '/api/openapi.json')
      return json(res, 200, openApi({ maxUploadMb: o.maxUploadMb, maxSeconds: o.maxSeconds }));
    if (p === '/api/samples') {
      await samplesReady;
      return json(
        res,
        200,
        samples.map((s) => ({ name: s.name, url: `/api/samples/${s.name}` })),
      );
    }
    const sm = /^\/api\/samples\/([^/]+)$/.exec(p);
    if (sm) {
      const s = samples.find((c) => c.name === sm[1]);
      if (!s) throw new HttpError(404, `no sample clip '${sm[1]!.slice(0, 100)}'`);
      return sendFile(res, s.file, 'video/mp4', method === 'HEAD');
    }
    if (jm) {
      pool?.sweep();
      const job = pool?.jobs.get(jm[1]!);
      if (!job)
        throw new HttpError(
          404,
          `no job '${jm[1]!.slice(0, 100)}' (unknown, or finished more than ${keepJobsS / 60} minutes ago)`,
        );
      if (job.status === 'done' || job.status === 'failed') endedWhileClosing.delete(job.id);
      return json(res, 200, pool!.view(job));
    }
    if (p === '/' || p === '/index.html')
      return sendFile(res, staticFiles.get('index.html')!, TYPES['.html']!, method === 'HEAD');
    if (p === '/favicon.ico') return sendFile(res, staticFiles.get('favicon.svg')!, TYPES['.svg']!, method === 'HEAD');
    const st = /^\/static\/([^/]+)$/.exec(p);
    const file = st ? staticFiles.get(st[1]!) : undefined; // a name in the map, never a path built from the request
    if (file) return sendFile(res, file, TYPES[path.extname(file)] ?? 'application/octet-stream', method === 'HEAD');
    throw new HttpError(404, `nothing at ${p.slice(0, 100)}`);
  }

  const server = http.createServer(
    {
      headersTimeout: o.headersTimeoutMs ?? 10_000,
      requestTimeout,
      keepAliveTimeout: 5_000,
      connectionsCheckingInterval: Math.min(1_000, o.headersTimeoutMs ?? 1_000),
      maxHeaderSize: 16 * 1024,
    },
    (req, res) => {
      handle(req, res).catch((err: unknown) => {
        const e = err instanceof HttpError ? err : new HttpError(500, `internal error: ${(err as Error).message}`);
        if (!(err instanceof HttpError)) log(`serve: ${(err as Error).stack ?? err}`);
        if (res.headersSent) return void res.destroy();
        json(res, e.status, { error: withoutAddresses(e.message) }, e.headers);
        // A refused upload is not read to its end: the connection closes once the answer is out.
        if (e.headers.Connection === 'close') res.on('finish', () => req.socket.destroySoon());
      });
    },
  );
  server.timeout = o.idleTimeoutMs ?? 60_000; // a connection that says nothing for this long is closed
  server.maxConnections = o.maxConnections ?? 256;
  clients.watch(server);
  server.on('clientError', answerClientError);
  // Bind first: a port in use or a bad --host is one line, before any worker exists.
  try {
    await listen(server, o.port, o.host);
  } catch (err) {
    fs.rmSync(tempDir, { recursive: true, force: true });
    throw err;
  }
  loopDelay.enable();
  samplesReady = makeSamples();
  try {
    pool = await JobPool.start({
      run: o.run,
      clip: o.clip,
      device: o.device,
      precision: o.precision ?? 'fp32',
      maxSeconds: o.maxSeconds,
      engine: o.engine,
      workers: o.workers,
      queue: o.queue,
      keepJobsMs: o.keepJobsMs,
      workerModule: o.workerModule,
      log,
    });
  } catch (err) {
    loopDelay.disable();
    server.close();
    server.closeAllConnections();
    await samplesReady;
    fs.rmSync(tempDir, { recursive: true, force: true });
    throw err;
  }
  const addr = server.address() as { port: number; address: string };
  const host = addr.address.includes(':') ? `[${addr.address}]` : addr.address;
  const url = `http://${host}:${addr.port}`;

  let closed: Promise<void> | undefined;
  const shutdown = (s: { graceMs?: number; lingerMs?: number } = {}) =>
    (closed ??= (async () => {
      closing = true;
      // Every job still open is owed one poll that shows how it ended (a poll before it ends does not count).
      for (const j of pool!.jobs.values())
        if (j.status === 'queued' || j.status === 'running') endedWhileClosing.add(j.id);
      await pool!.drain(s.graceMs ?? 0);
      // Answer polls a little longer, so each client sees how its job ended (or until all have).
      const until = Date.now() + (s.lingerMs ?? 0);
      while (endedWhileClosing.size && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
      loopDelay.disable();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      await pool!.kill();
      await samplesReady;
      fs.rmSync(tempDir, { recursive: true, force: true });
    })());

  return { url, model: pool.model!, tempDir, shutdown, close: () => shutdown(), workerPids: () => pool!.workerPids() };
}
