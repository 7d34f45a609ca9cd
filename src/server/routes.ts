// The routes of `ous serve` as a table: a path pattern and, for each method, a small handler over the
// server's one state object. A handler returns its answer as data (http.ts Reply); server.ts writes
// it. So each route runs without a socket (test/serve-routes.test.ts calls `answer` on plain objects).
//
//   POST   /api/predict          the video as the body or as multipart/form-data -> 202 {id}
//                                (?sample=N: one of the built-in sample clips; ?box=x,y,w,h: a known
//                                face box, no detection; ?window=&stride=: the timeline, seconds;
//                                ?persons=all, ?person=ID: every person's timeline, or one's)
//   GET    /api/jobs/{id}        status, queue position, stage and percentage, the windows classified
//                                so far; the prediction when done
//   DELETE /api/jobs/{id}        cancels it
//   GET    /api/health           workers, queue, camera sessions (never waits on uploads or jobs)
//   GET    /api/model            classes, encoder, the run's config
//   GET    /api/samples          the sample clips;  GET /api/samples/{n}.mp4 one of them
//   GET    /api/openapi.json     this API described (openapi.ts, from contract.ts's schemas)
//   GET    /  and /static/{name} the page, from one fixed folder
//
// Every file name is made here (job ids are random UUIDs); no client string reaches a path.
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import type * as http from 'node:http';
import * as path from 'node:path';
import type { IntervalHistogram } from 'node:perf_hooks';
import { UserError } from '../util/errors.js';
import { checkBoxInFrame } from '../util/box.js';
import { DEFAULT_TIMELINE, planTimeline } from '../predict/timeline.js';
import { openApi } from './openapi.js';
import type { Health } from './contract.js';
import type { Job, JobPool } from './pool.js';
import { HttpError, type Limiter, type MinRate, type Probed, probeUpload, receiveUpload } from './upload.js';
import { type ClientLimits, clientAddress } from './clients.js';
import { apiWords } from './messages.js';
import { checkCaller, errorReply, fileReply, jsonReply, type Reply } from './http.js';
import { type FaceBox, parsePredictQuery, type PredictQuery } from './query.js';
import type { Sample } from './samples.js';
import type { LiveSessions } from './live.js';

/** What the routes read and change: one object, made by server.ts. */
export interface ServerState {
  limits: {
    maxUploadMb: number;
    maxSeconds: number;
    queue: number; // --queue, for /api/health before the pool exists
    perClientUploads: number;
    uploadDeadlineMs: number; // an upload's own deadline (a JSON 408 before Node's request timeout)
    minRate: MinRate;
    keepJobsMs: number;
  };
  pool?: JobPool; // once a worker has loaded the model
  live: LiveSessions; // the page's camera sessions, a process each
  closing: boolean; // shutdown has begun
  endedWhileClosing: Set<string>; // jobs a client has not yet polled since they ended in the shutdown
  samples: Sample[];
  samplesReady: Promise<void>;
  staticFiles: Map<string, string>; // the page's folder: a request names a key of this map or nothing
  uploadsDir: string;
  hosts: Set<string>; // the names Host may give
  clients: ClientLimits;
  probes: Limiter;
  loopDelay: IntervalHistogram;
  log: (line: string) => void;
  openApi?: Record<string, unknown>; // made on first request
}

/** The parts of a request a handler reads. */
export type Incoming = Pick<http.IncomingMessage, 'headers' | 'rawHeaders' | 'method' | 'url' | 'socket'> & {
  resume(): unknown;
};

export interface RouteRequest {
  method: string;
  url: URL;
  params: string[]; // the pattern's {…} parts, in order
  req: Incoming; // the body (an upload) and the socket (its client's address)
}

export type Handler = (s: ServerState, r: RouteRequest) => Reply | Promise<Reply>;

export interface Route {
  path: string; // /api/jobs/{id}: a {name} is one path segment
  methods: Record<string, Handler>; // GET also answers HEAD
  wrongMethod?: (method: string) => HttpError; // this route's 405, if not the usual one
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
};

const staticFile = (s: ServerState, name: string): Reply | undefined => {
  const file = s.staticFiles.get(name); // a name in the map, never a path built from the request
  return file ? fileReply(file, TYPES[path.extname(file)] ?? 'application/octet-stream') : undefined;
};

const notFound = (r: RouteRequest) => new HttpError(404, `nothing at ${r.url.pathname.slice(0, 100)}`);

// ---- the read-only routes

function health(s: ServerState, r: RouteRequest): Reply {
  const ms = (ns: number) => Math.round(ns / 1e4) / 100;
  const d = s.loopDelay;
  // p99 of this process's event-loop delay: what the server itself waits, not a client's latency of
  // /api/health (serve.test.ts holds that to p95 < 100 ms from outside)
  const eventLoopDelayMs = { p50: ms(d.percentile(50)), p99: ms(d.percentile(99)), max: ms(d.max) };
  if (r.url.searchParams.has('reset')) d.reset();
  const h = s.pool?.health() ?? { workers: 0, busy: 0, queued: 0, uploading: 0, queue: s.limits.queue };
  const body: Health = {
    ok: true,
    shuttingDown: s.closing,
    ...h,
    probing: s.probes.inFlight,
    busiestClient: s.clients.busiest(),
    camera: { sessions: s.live.running, limit: s.live.limit },
    eventLoopDelayMs,
  };
  return jsonReply(200, body);
}

function model(s: ServerState): Reply {
  if (!s.pool?.model) throw new HttpError(503, 'the model is still loading', { 'Retry-After': '5' });
  return jsonReply(200, s.pool.model);
}

function document(s: ServerState): Reply {
  s.openApi ??= openApi({ maxUploadMb: s.limits.maxUploadMb, maxSeconds: s.limits.maxSeconds });
  return jsonReply(200, s.openApi);
}

async function sampleList(s: ServerState): Promise<Reply> {
  await s.samplesReady;
  return jsonReply(
    200,
    s.samples.map((c) => ({ name: c.name, url: `/api/samples/${c.name}` })),
  );
}

function sampleFile(s: ServerState, r: RouteRequest): Reply {
  const c = s.samples.find((x) => x.name === r.params[0]);
  if (!c) throw new HttpError(404, `no sample clip '${r.params[0]!.slice(0, 100)}'`);
  return fileReply(c.file, 'video/mp4');
}

// ---- jobs

function getJob(s: ServerState, r: RouteRequest): Reply {
  const id = r.params[0]!;
  s.pool?.sweep();
  const job = s.pool?.jobs.get(id);
  if (!job) {
    const minutes = Math.round(s.limits.keepJobsMs / 1000) / 60;
    throw new HttpError(404, `no job '${id.slice(0, 100)}' (unknown, or finished more than ${minutes} minutes ago)`);
  }
  if (job.status === 'done' || job.status === 'failed') s.endedWhileClosing.delete(job.id);
  return jsonReply(200, s.pool!.view(job));
}

/** DELETE /api/jobs/{id}: the job's id is its only key (a random UUID), as for reading it. */
function cancelJob(s: ServerState, r: RouteRequest): Reply {
  const id = r.params[0]!;
  const job = s.pool?.jobs.get(id);
  if (!job) throw new HttpError(404, `no job '${id.slice(0, 100)}'`);
  if (!s.pool!.cancel(job)) throw new HttpError(409, `the job has already ended (${job.status})`);
  return jsonReply(200, s.pool!.view(job));
}

const accepted = (pool: JobPool, job: Job): Reply => {
  const v = pool.view(job);
  return jsonReply(202, { id: v.id, status: v.status, position: v.position }, { Location: `/api/jobs/${job.id}` });
};

// ---- POST /api/predict

const shuttingDown = () =>
  new HttpError(503, 'the server is shutting down: send the video again later', {
    'Retry-After': '30',
    Connection: 'close',
  });

/** 503 with what the queue holds now: the jobs waiting and the uploads still arriving. */
function queueFull(p: JobPool): HttpError {
  const h = p.health();
  return new HttpError(
    503,
    `the queue is full (${h.queued} waiting, ${h.uploading} uploading, ${h.busy} running): retry later`,
    { 'Retry-After': p.retryAfter(), Connection: 'close' },
  );
}

const tooManyUploads = (s: ServerState, p: JobPool) =>
  new HttpError(
    429,
    `this address already has ${s.limits.perClientUploads} uploads arriving: send the next when one has arrived`,
    { 'Retry-After': p.retryAfter(), Connection: 'close' },
  );

/** What the probe found checked against the query: the box in the frame, enough frames in a window. */
function checkAgainstVideo(pool: JobPool, p: Probed, q: PredictQuery, faceBox: FaceBox | undefined): void {
  try {
    if (faceBox) checkBoxInFrame(faceBox, p.width, p.height, 'box');
  } catch (err) {
    throw new HttpError(400, (err as Error).message);
  }
  if (!pool.model || !(p.fps > 0)) return;
  try {
    planTimeline(Math.round(p.duration * p.fps), p.fps, pool.model.encoder.frames, {
      window: q.window ?? DEFAULT_TIMELINE.window,
      stride: q.stride ?? DEFAULT_TIMELINE.stride,
    });
  } catch (err) {
    if (err instanceof UserError) throw new HttpError(400, apiWords(err.message));
    throw err;
  }
}

async function predict(s: ServerState, r: RouteRequest): Promise<Reply> {
  if (s.closing || !s.pool)
    throw s.closing
      ? shuttingDown()
      : new HttpError(503, 'the model is still loading', { 'Retry-After': '5', Connection: 'close' });
  const q = parsePredictQuery(r.url.searchParams, s.limits.maxSeconds);
  return q.sample !== undefined ? predictSample(s, s.pool, r, q) : predictUpload(s, s.pool, r, q);
}

/** A built-in sample clip: the drawn face's box is known, so no detection (unless persons are asked for). */
async function predictSample(s: ServerState, pool: JobPool, r: RouteRequest, q: PredictQuery): Promise<Reply> {
  r.req.resume();
  await s.samplesReady;
  const c = s.samples.find((x) => x.name === `${q.sample}.mp4`);
  if (!c) throw new HttpError(404, `no sample clip '${q.sample}' (GET /api/samples lists them)`);
  checkAgainstVideo(pool, c.probed, q, q.faceBox);
  const place = pool.admit();
  if (!place) throw queueFull(pool);
  const { window, stride, persons } = q;
  const job = pool.submit({
    file: c.file,
    name: `sample ${c.name}`,
    duration: c.probed.duration,
    window,
    stride,
    ...(persons !== undefined ? { persons } : { faceBox: q.faceBox ?? c.faceBox }),
  });
  place.release();
  return accepted(pool, job);
}

/** An upload: refusals that need no body come before reading any of it (the connection then closes). */
async function predictUpload(s: ServerState, pool: JobPool, r: RouteRequest, q: PredictQuery): Promise<Reply> {
  const limit = s.limits.maxUploadMb * 2 ** 20;
  const declared = Number(r.req.headers['content-length']);
  if (declared > limit)
    throw new HttpError(
      413,
      `the upload (${(declared / 2 ** 20).toFixed(1)} MB) passes the limit of ${s.limits.maxUploadMb} MB ` +
        '(--max-upload-mb)',
      { Connection: 'close' },
    );
  const mine = s.clients.admitUpload(clientAddress(r.req.socket));
  if (!mine) throw tooManyUploads(s, pool);
  const place = pool.admit();
  if (!place) {
    mine.release();
    throw queueFull(pool);
  }
  const dir = path.join(s.uploadsDir, crypto.randomUUID());
  try {
    fs.mkdirSync(dir);
    return await receiveAndQueue(s, pool, r.req as http.IncomingMessage, dir, q);
  } catch (err) {
    fs.rmSync(dir, { recursive: true, force: true });
    throw err;
  } finally {
    place.release();
    mine.release();
  }
}

/** The body into `dir`, probed (a few at once), checked against the query, queued. */
async function receiveAndQueue(
  s: ServerState,
  pool: JobPool,
  req: http.IncomingMessage,
  dir: string,
  q: PredictQuery,
): Promise<Reply> {
  const { maxSeconds, maxUploadMb, uploadDeadlineMs, minRate } = s.limits;
  const limit = maxUploadMb * 2 ** 20;
  const got = await receiveUpload(req, dir, limit, uploadDeadlineMs, minRate);
  const probed = await s.probes.run(() => probeUpload(got.file, { maxBytes: limit, maxSeconds }));
  checkAgainstVideo(pool, probed, q, q.faceBox);
  if (s.closing) throw shuttingDown();
  const { window, stride, faceBox, persons } = q;
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
  return accepted(pool, job);
}

// ---- the table

/** Every route; a path is answered by the first whose pattern matches it. */
/** GET (a poll) or DELETE (the end) of a camera session: its windows after ?after=. */
const liveSession: Handler = (s, r) => s.live.answer(r.params[0]!, r.method, r.url, r.req as http.IncomingMessage);

export const ROUTES: Route[] = [
  {
    path: '/api/predict',
    methods: { POST: predict },
    wrongMethod: () => new HttpError(405, 'POST a video to /api/predict', { Allow: 'POST' }),
  },
  { path: '/api/jobs/{id}', methods: { GET: getJob, DELETE: cancelJob } },
  // the page's camera sessions (live.ts)
  {
    path: '/api/live',
    methods: { POST: (s, r) => s.live.start(r.req as http.IncomingMessage) },
    wrongMethod: () => new HttpError(405, 'POST to /api/live starts a camera session', { Allow: 'POST' }),
  },
  {
    path: '/api/live/{id}',
    methods: { GET: liveSession, DELETE: liveSession },
  },
  {
    path: '/api/live/{id}/frames',
    methods: { POST: (s, r) => s.live.answer(r.params[0]!, r.method, r.url, r.req as http.IncomingMessage, true) },
    wrongMethod: () => new HttpError(405, 'POST frames to this session', { Allow: 'POST' }),
  },
  { path: '/api/health', methods: { GET: health } },
  { path: '/api/model', methods: { GET: model } },
  { path: '/api/openapi.json', methods: { GET: document } },
  { path: '/api/samples', methods: { GET: sampleList } },
  { path: '/api/samples/{name}', methods: { GET: sampleFile } },
  { path: '/', methods: { GET: (s) => staticFile(s, 'index.html')! } },
  { path: '/index.html', methods: { GET: (s) => staticFile(s, 'index.html')! } },
  { path: '/favicon.ico', methods: { GET: (s) => staticFile(s, 'favicon.svg')! } },
  {
    path: '/static/{name}',
    methods: {
      GET: (s, r) => {
        const reply = staticFile(s, r.params[0]!);
        if (!reply) throw notFound(r);
        return reply;
      },
    },
  },
];

const patterns = new Map(
  ROUTES.map((r) => [r, new RegExp(`^${r.path.replace(/[.]/g, '\\.').replace(/\{\w+\}/g, '([^/]+)')}$`)]),
);

/** The route for `pathname` and its {…} parts, or undefined. */
export function matchRoute(pathname: string): { route: Route; params: string[] } | undefined {
  for (const route of ROUTES) {
    const m = patterns.get(route)!.exec(pathname);
    if (m) return { route, params: m.slice(1) };
  }
  return undefined;
}

/** The methods a route answers, as an Allow header (GET brings HEAD). */
const allowOf = (route?: Route) =>
  route
    ? Object.keys(route.methods)
        .flatMap((m) => (m === 'GET' ? ['GET', 'HEAD'] : [m]))
        .join(', ')
    : 'GET, HEAD';

/** The handler for a request, or the 404 / 405 that answers it. */
function handlerFor(method: string, url: URL): { handler: Handler; params: string[] } {
  const found = matchRoute(url.pathname);
  const handler = found?.route.methods[method === 'HEAD' ? 'GET' : method];
  if (handler) return { handler, params: found!.params };
  if (found?.route.wrongMethod) throw found.route.wrongMethod(method);
  if (method !== 'GET' && method !== 'HEAD')
    throw new HttpError(405, `${method} is not served here`, { Allow: allowOf(found?.route), Connection: 'close' });
  throw new HttpError(404, `nothing at ${url.pathname.slice(0, 100)}`);
}

/**
 * A request's answer: the caller checks first (Host, Origin), then the route's handler; a refusal
 * is an error answer, an unexpected failure a logged 500. Never rejects.
 */
export async function answer(s: ServerState, req: Incoming): Promise<Reply> {
  try {
    checkCaller(req, s.hosts);
    const method = req.method ?? 'GET';
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://localhost');
    } catch {
      throw new HttpError(400, 'the request path is malformed');
    }
    const { handler, params } = handlerFor(method, url);
    return await handler(s, { method, url, params, req });
  } catch (err) {
    if (err instanceof HttpError) return errorReply(err);
    s.log(`serve: ${(err as Error).stack ?? err}`);
    return errorReply(new HttpError(500, `internal error: ${(err as Error).message}`));
  }
}
