// The camera sessions' limits and life (src/server/live.ts), with a stand-in session process: one
// session per client address (429) and on the server (503), frames faster than twice the session's
// rate dropped and counted, a malformed or oversized batch refused, the windows after ?after= only,
// DELETE ends with the summary, an idle session (a closed tab) ends and frees its place, an unknown
// session 404; every answer as its strict schema says.
import { after, before, test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as http from 'node:http';
import { fileURLToPath } from 'node:url';
import { LiveSessions, LiveStartedSchema, LiveUpdateSchema } from '../src/server/live.js';
import { HttpError } from '../src/server/upload.js';
import { errorReply, writeReply } from '../src/server/http.js';

const stub = fileURLToPath(new URL('./live-stub-worker.js', import.meta.url));
let live: LiveSessions;
let server: http.Server;
let url: string;

/** A server of `sessions` alone, routed as routes.ts routes /api/live, /api/live/{id} and its /frames. */
function liveServer(sessions: LiveSessions): http.Server {
  return http.createServer(async (req, res) => {
    const url = new URL(req.url!, 'http://x');
    const [, id, frames] = /^\/api\/live(?:\/([^/]+)(\/frames)?)?$/.exec(url.pathname) ?? [];
    const reply = await (id ? sessions.answer(id, req.method!, url, req, !!frames) : sessions.start(req)).catch(
      (e: Error) => errorReply(e instanceof HttpError ? e : new HttpError(500, e.message)),
    );
    writeReply(res, reply, false);
  });
}

before(async () => {
  live = new LiveSessions({
    run: 'RUN',
    maxSeconds: 600,
    idleMs: 2000,
    maxFrameBytes: 100,
    workerModule: stub,
    log: () => {},
  });
  server = liveServer(live);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
});
after(async () => {
  await live.close();
  server.close();
});

/** A batch of frames at times `ts`, each a few bytes (the stand-in decodes nothing). */
function batch(ts: number[], bytes = 3): Buffer {
  return Buffer.concat(
    ts.map((t) => {
      const head = Buffer.alloc(12);
      head.writeUInt32BE(bytes, 0);
      head.writeDoubleBE(t, 4);
      return Buffer.concat([head, Buffer.alloc(bytes, 7)]);
    }),
  );
}

const post = (path: string, body: string | Buffer) =>
  fetch(`${url}${path}`, { method: 'POST', body: typeof body === 'string' ? body : new Uint8Array(body) });

test('one session per address; frames too fast dropped; windows after ?after=; DELETE sums up', async () => {
  const r = await post('/api/live', '{}');
  assert.equal(r.status, 201);
  const s = LiveStartedSchema.parse(await r.json());
  assert.equal(s.fps, 2);
  const again = await post('/api/live', '{}');
  assert.equal(again.status, 429);
  assert.match(((await again.json()) as { error: string }).error, /already has 1 camera session/);
  // 0.5 s apart is the session's rate; 0.2 s after a kept frame is faster than twice it: dropped.
  const u1 = LiveUpdateSchema.parse(await (await post(`/api/live/${s.id}/frames`, batch([0, 0.2, 0.5, 1]))).json());
  assert.deepEqual([u1.frames, u1.dropped, u1.status], [4, 1, 'running']);
  await post(`/api/live/${s.id}/frames`, batch([1.5, 2, 2.5, 3, 3.5]));
  // the stand-in's windows come back over IPC: ask until both are there (a busy machine is slow)
  let all = LiveUpdateSchema.parse(await (await fetch(`${url}/api/live/${s.id}`)).json());
  for (let i = 0; i < 50 && all.windows.length < 2; i++) {
    await new Promise((res) => setTimeout(res, 100));
    all = LiveUpdateSchema.parse(await (await fetch(`${url}/api/live/${s.id}`)).json());
  }
  assert.deepEqual(
    all.windows.map((w) => [w.seq, w.start]),
    [
      [0, 0],
      [1, 2],
    ],
  );
  const later = LiveUpdateSchema.parse(await (await fetch(`${url}/api/live/${s.id}?after=0`)).json());
  assert.deepEqual(
    later.windows.map((w) => w.seq),
    [1],
  );
  // Refused batches: a frame over maxFrameBytes (100), a batch cut inside a frame.
  assert.equal((await post(`/api/live/${s.id}/frames`, batch([4], 101))).status, 413);
  assert.equal((await post(`/api/live/${s.id}/frames`, batch([4]).subarray(0, 13))).status, 400);
  const end = await fetch(`${url}/api/live/${s.id}`, { method: 'DELETE' });
  const u = LiveUpdateSchema.parse(await end.json());
  assert.equal(u.status, 'ended');
  assert.equal(u.summary?.windowCount, 2);
  assert.equal(u.summary?.dropped, 1);
  assert.equal((await fetch(`${url}/api/live/nope`)).status, 404);
  assert.equal((await post('/api/live', '{"window": -1}')).status, 400);
});

test("persons 'all': a window for each person, each naming its own, and a summary each", async () => {
  const s = LiveStartedSchema.parse(await (await post('/api/live', '{"persons": "all"}')).json());
  await post(`/api/live/${s.id}/frames`, batch([0, 0.5, 1, 1.5]));
  let u = LiveUpdateSchema.parse(await (await fetch(`${url}/api/live/${s.id}`)).json());
  for (let i = 0; i < 50 && u.windows.length < 2; i++) {
    await new Promise((res) => setTimeout(res, 100));
    u = LiveUpdateSchema.parse(await (await fetch(`${url}/api/live/${s.id}`)).json());
  }
  assert.deepEqual(
    u.windows.map((w) => [w.seq, w.person, w.main, w.faceBox[0]]),
    [
      [0, 0, true, 1],
      [1, 1, false, 11],
    ],
  );
  const end = LiveUpdateSchema.parse(await (await fetch(`${url}/api/live/${s.id}`, { method: 'DELETE' })).json());
  assert.deepEqual(
    end.summary?.persons?.map((p) => [p.id, p.main, p.windowCount]),
    [
      [0, true, 1],
      [1, false, 1],
    ],
  );
  assert.equal((await post('/api/live', '{"persons": "some"}')).status, 400);
});

test('a session no request touches (a closed tab) ends, and its place is free again', async () => {
  const s = LiveStartedSchema.parse(await (await post('/api/live', '{}')).json());
  await new Promise((res) => setTimeout(res, 4000)); // idleMs 2000
  const u = LiveUpdateSchema.parse(await (await fetch(`${url}/api/live/${s.id}`)).json());
  assert.equal(u.status, 'ended');
  assert.match(u.error ?? '', /^no request for 2 s/);
  const next = await post('/api/live', '{}');
  assert.equal(next.status, 201);
  await fetch(`${url}/api/live/${((await next.json()) as { id: string }).id}`, { method: 'DELETE' });
});

test('the server-wide cap: a session past it is shed with 503 and Retry-After, whoever asks', async () => {
  const shed = new LiveSessions({ run: 'RUN', maxSeconds: 600, perClient: 5, workerModule: stub, log: () => {} });
  const s2 = liveServer(shed);
  await new Promise<void>((r) => s2.listen(0, '127.0.0.1', r));
  const base = `http://127.0.0.1:${(s2.address() as { port: number }).port}`;
  try {
    assert.equal((await fetch(`${base}/api/live`, { method: 'POST', body: '{}' })).status, 201);
    assert.deepEqual([shed.running, shed.limit], [1, 1]); // what /api/health says
    const r = await fetch(`${base}/api/live`, { method: 'POST', body: '{}' });
    assert.equal(r.status, 503);
    assert.equal(r.headers.get('retry-after'), '10');
    assert.match(((await r.json()) as { error: string }).error, /every camera session is taken \(1\)/);
  } finally {
    await shed.close();
    s2.close();
  }
});

const offTitle =
  'a server that takes no camera sessions (--camera-sessions 0) refuses each with 503, no Retry-After, no process';
test(offTitle, async () => {
  const off = new LiveSessions({ run: 'RUN', maxSeconds: 600, sessions: 0, workerModule: stub, log: () => {} });
  const s3 = liveServer(off);
  await new Promise<void>((r) => s3.listen(0, '127.0.0.1', r));
  try {
    const r = await fetch(`http://127.0.0.1:${(s3.address() as { port: number }).port}/api/live`, {
      method: 'POST',
      body: '{}',
    });
    assert.equal(r.status, 503);
    assert.equal(r.headers.get('retry-after'), null, 'retrying cannot help');
    assert.match(((await r.json()) as { error: string }).error, /takes no camera sessions/);
    assert.deepEqual([off.running, off.limit], [0, 0]);
  } finally {
    await off.close();
    s3.close();
  }
});
