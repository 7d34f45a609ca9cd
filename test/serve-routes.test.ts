// The routes of `ous serve` without a socket: routes.ts `answer` over a state object made here, a
// stand-in pool and plain request objects; the answers (status, headers, JSON) checked against what
// the API promises (docs, openapi.ts). The real server over real sockets: serve*.test.ts.
import { after, test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { answer, matchRoute, type Incoming, type ServerState } from '../src/server/routes.js';
import { allowedHosts, SECURITY_HEADERS, writeReply, type Reply } from '../src/server/http.js';
import { parsePredictQuery } from '../src/server/query.js';
import { ClientLimits } from '../src/server/clients.js';
import { HttpError, Limiter } from '../src/server/upload.js';
import { HealthSchema, JobSchema } from '../src/server/contract.js';
import { openApi } from '../src/server/openapi.js';
import type { Job, JobPool, JobView } from '../src/server/pool.js';
import { LiveSessions } from '../src/server/live.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ous-routes-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));
fs.writeFileSync(path.join(dir, 'index.html'), '<!doctype html>');

const JOB_ID = '11111111-2222-3333-4444-555555555555';

/** A pool with one finished job, two workers (one busy), `free` queue places. */
function fakePool(free: number): JobPool {
  const job = { id: JOB_ID, status: 'done' } as Job;
  const view: JobView = {
    id: JOB_ID,
    status: 'failed',
    position: 0,
    stage: 'decode',
    progress: 0,
    duration: 4,
    windows: [],
    windowsTotal: null,
    error: 'the video does not decode',
  };
  let places = free;
  return {
    jobs: new Map([[JOB_ID, job]]),
    model: undefined,
    sweep: () => {},
    view: () => view,
    health: () => ({ workers: 2, busy: 1, queued: 3, uploading: 0, queue: 4 }),
    retryAfter: () => '7',
    admit: () => (places > 0 ? (places--, { release: () => void places++ }) : undefined),
  } as unknown as JobPool;
}

function state(o: { free?: number; closing?: boolean } = {}): ServerState {
  return {
    live: new LiveSessions({ run: 'RUN', maxSeconds: 60, log: () => {} }),
    limits: {
      maxUploadMb: 1,
      maxSeconds: 60,
      queue: 4,
      perClientUploads: 2,
      uploadDeadlineMs: 10_000,
      minRate: { bytesPerSec: 0, windowMs: 10_000 },
      keepJobsMs: 3_600_000,
    },
    pool: fakePool(o.free ?? 4),
    closing: o.closing ?? false,
    endedWhileClosing: new Set(),
    samples: [],
    samplesReady: Promise.resolve(),
    staticFiles: new Map([['index.html', path.join(dir, 'index.html')]]),
    uploadsDir: dir,
    hosts: allowedHosts('127.0.0.1'),
    clients: new ClientLimits({ connections: 32, uploads: 2 }),
    probes: new Limiter(2),
    loopDelay: monitorEventLoopDelay({ resolution: 10 }),
    log: () => {},
  };
}

/** A request as the routes read it: no body is ever read by these. */
function req(method: string, url: string, headers: Record<string, string> = {}): Incoming {
  const all = { host: '127.0.0.1:8080', ...headers };
  return {
    method,
    url,
    headers: all,
    rawHeaders: Object.entries(all).flat(),
    socket: { remoteAddress: '::ffff:10.0.0.9' },
    resume: () => {},
  } as unknown as Incoming;
}

const body = (r: Reply) => r.body as Record<string, any>;

test('the table: a path finds its route and its {parts}; others find none', () => {
  assert.deepEqual(matchRoute(`/api/jobs/${JOB_ID}`)?.params, [JOB_ID]);
  assert.equal(matchRoute('/api/jobs/a/b'), undefined);
  assert.equal(matchRoute('/api/openapi.json')?.route.path, '/api/openapi.json');
  assert.equal(matchRoute('/api/openapiXjson'), undefined, 'the dot is a dot');
  assert.deepEqual(matchRoute('/static/app.js')?.params, ['app.js']);
});

test('health, the document, a job and the page answer without a socket', async () => {
  const s = state();
  const h = await answer(s, req('GET', '/api/health'));
  assert.equal(h.status, 200);
  HealthSchema.parse(h.body);
  assert.deepEqual(
    [body(h).workers, body(h).busy, body(h).queued, body(h).queue, body(h).shuttingDown],
    [2, 1, 3, 4, false],
  );
  assert.deepEqual(body(h).camera, { sessions: 0, limit: 1 }, 'no camera session yet; one at a time by default');
  const doc = await answer(s, req('GET', '/api/openapi.json'));
  assert.equal(body(doc).openapi, '3.1.0');
  assert.match(body(doc).paths['/api/predict'].post.requestBody.description, /at most 1 MB and 60 s/);
  const job = await answer(s, req('GET', `/api/jobs/${JOB_ID}`));
  assert.equal(job.status, 200);
  JobSchema.parse(job.body);
  const gone = await answer(s, req('GET', '/api/jobs/nope'));
  assert.deepEqual(
    [gone.status, body(gone).error],
    [404, "no job 'nope' (unknown, or finished more than 60 minutes ago)"],
  );
  const page = await answer(s, req('HEAD', '/'));
  assert.deepEqual([page.status, page.file?.type], [200, 'text/html; charset=utf-8']);
  const model = await answer(s, req('GET', '/api/model'));
  assert.deepEqual([model.status, model.headers['Retry-After']], [503, '5'], 'no model loaded yet');
});

test('404 and 405: unknown paths, wrong methods with their Allow', async () => {
  const s = state();
  const cases: Array<[string, string, number, string | undefined]> = [
    ['GET', '/nothing', 404, undefined],
    ['GET', '/static/..%2fserver.js', 404, undefined],
    ['POST', '/api/health', 405, 'GET, HEAD'],
    ['POST', '/nothing', 405, 'GET, HEAD'],
    ['PUT', `/api/jobs/${JOB_ID}`, 405, 'GET, HEAD, DELETE'],
    ['GET', '/api/predict', 405, 'POST'],
  ];
  for (const [method, url, status, allow] of cases) {
    const r = await answer(s, req(method, url, { origin: 'http://127.0.0.1:8080' }));
    assert.deepEqual([r.status, r.headers.Allow], [status, allow], `${method} ${url}`);
    assert.equal(typeof body(r).error, 'string');
  }
});

test('limits and caller checks refuse before any body is read', async () => {
  const post = (s: ServerState, q = '', h: Record<string, string> = {}) =>
    answer(s, req('POST', `/api/predict${q}`, { 'content-length': '1000', ...h }));
  const big = await post(state(), '', { 'content-length': String(2 * 2 ** 20) });
  assert.deepEqual([big.status, big.headers.Connection], [413, 'close']);
  assert.match(body(big).error, /2\.0 MB\) passes the limit of 1 MB/);
  // This address has its 2 uploads arriving: 429 with the pool's Retry-After.
  const s = state();
  s.clients.admitUpload('10.0.0.9');
  s.clients.admitUpload('10.0.0.9');
  const many = await post(s);
  assert.deepEqual([many.status, many.headers['Retry-After']], [429, '7']);
  const full = await post(state({ free: 0 }));
  assert.deepEqual([full.status, full.headers['Retry-After']], [503, '7']);
  assert.match(body(full).error, /3 waiting, 0 uploading, 1 running/);
  assert.equal((await post(state({ closing: true }))).status, 503);
  assert.equal((await post(state(), '?window=0')).status, 400);
  assert.equal((await post(state(), '', { host: 'evil.example' })).status, 421);
  assert.equal((await post(state(), '', { origin: 'http://evil.example' })).status, 403);
  assert.equal((await post(state(), '', { 'sec-fetch-site': 'cross-site' })).status, 403);
  const bad = await answer(state(), req('GET', '/api/health', { host: 'evil.example' }));
  assert.equal(bad.status, 421, 'Host is checked on reads too');
});

test('the query is read by pure functions: values, and 400s naming the parameter', () => {
  const q = (s: string) => parsePredictQuery(new URLSearchParams(s), 60);
  assert.deepEqual(q('window=2.5&stride=0.5&box=1,2,30,40'), {
    window: 2.5,
    stride: 0.5,
    faceBox: [1, 2, 30, 40],
    persons: undefined,
    sample: undefined,
  });
  assert.equal(q('persons=all').persons, 'all');
  assert.equal(q('person=3').persons, 3);
  assert.equal(q('sample=0').sample, '0');
  const refused = (s: string, re: RegExp) =>
    assert.throws(
      () => q(s),
      (e: unknown) => e instanceof HttpError && e.status === 400 && re.test(e.message),
      s,
    );
  refused('window=61', /^window must be a positive number of seconds up to 60/);
  refused('stride=-1', /^stride/);
  refused('box=1,2,3', /\(\?box=x,y,w,h\)$/);
  refused('persons=some', /^persons must be 'all'/);
  refused('person=x', /^person must be a person's id/);
  refused('person=1&box=1,2,3,4', /^box is one known face/);
  refused('persons=all&person=1', /not both/);
});

test('every answer is written with the security headers; HEAD without a body', () => {
  const written: Array<{ status: number; headers: Record<string, unknown>; body?: string }> = [];
  const res = {
    writeHead: (status: number, headers: Record<string, unknown>) => written.push({ status, headers }),
    end: (data?: string) => (written.at(-1)!.body = data),
  };
  writeReply(res as never, { status: 404, headers: { Connection: 'close' }, body: { error: 'x' } }, false);
  writeReply(res as never, { status: 200, headers: {}, file: { path: path.join(dir, 'index.html'), type: 't' } }, true);
  for (const w of written)
    for (const [k, v] of Object.entries(SECURITY_HEADERS)) assert.equal(w.headers[k], v, `${w.status} ${k}`);
  assert.equal(written[0]!.body, '{"error":"x"}');
  assert.equal(written[0]!.headers.Connection, 'close');
  assert.deepEqual([written[1]!.headers['Content-Length'], written[1]!.body], [15, undefined]);
});

test('the documented query of /api/predict is the one the parser reads, parameter for parameter', () => {
  const doc = openApi({ maxUploadMb: 1, maxSeconds: 60 }) as any;
  const documented = doc.paths['/api/predict'].post.parameters.map((p: { name: string }) => p.name).sort();
  const values: Record<string, string> = {
    box: '1,2,3,4',
    person: '1',
    persons: 'all',
    sample: '0',
    stride: '1',
    window: '2',
  };
  assert.deepEqual(documented, Object.keys(values));
  const none = parsePredictQuery(new URLSearchParams(), 60);
  for (const [name, value] of Object.entries(values))
    assert.notDeepEqual(parsePredictQuery(new URLSearchParams({ [name]: value }), 60), none, `${name} is read`);
  assert.deepEqual(parsePredictQuery(new URLSearchParams({ nonsense: '1' }), 60), none, 'others are ignored');
});
