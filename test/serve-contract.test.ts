// The published contract holds: real answers of `ous serve` on a tiny run (one person, every person,
// a cancelled job that reads failed, an unreadable upload's 422, health, model) validate against the
// schema /api/openapi.json gives for their route and status (ajv, JSON Schema 2020-12 as OpenAPI 3.1
// uses). The document is strict (additionalProperties false, required lists), so a field the code
// sends and the document lacks fails: a copy of the document with one field taken out proves it.
import { after, before, test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { startServer, type Server } from '../src/server/server.js';
import { mirroredPair } from './helpers.js';
import { tinyRun, type TinyRun } from './serve-helpers.js';

let dir: string;
let t: TinyRun;
let server: Server;
let doc: any;

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ous-serve-contract-'));
  t = await tinyRun(path.join(dir, 'tiny'));
  server = await startServer({
    tempRoot: dir,
    run: t.run,
    host: '127.0.0.1',
    port: 0,
    workers: 1,
    queue: 4,
    maxUploadMb: 10,
    maxSeconds: 60,
    samples: 0,
    log: () => {},
  });
  doc = await (await fetch(`${server.url}/api/openapi.json`)).json();
});
after(async () => {
  await server?.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

/** A validator of `document`'s response schema for a route, method and status (its $refs into the document). */
function validator(document: unknown, route: string, method: string, status: number) {
  const ajv = new Ajv2020({ strict: false, validateFormats: false, allErrors: true });
  ajv.addSchema(document as object, 'openapi.json');
  const pointer = ['paths', route, method, 'responses', String(status), 'content', 'application/json', 'schema']
    .map((k) => k.replace(/~/g, '~0').replace(/\//g, '~1'))
    .join('/');
  const at = (document as any).paths[route]?.[method]?.responses?.[String(status)]?.content?.['application/json'];
  assert.ok(at?.schema, `the document describes ${method} ${route} ${status}`);
  return ajv.compile({ $ref: `openapi.json#/${pointer}` });
}

function assertValid(body: unknown, route: string, method: string, status: number, document: unknown = doc): void {
  const v = validator(document, route, method, status);
  assert.ok(v(body), `${method} ${route} ${status}: ${JSON.stringify(v.errors?.slice(0, 5))}`);
}

async function post(query: string, body: Buffer<ArrayBuffer>): Promise<{ status: number; body: any }> {
  const r = await fetch(`${server.url}/api/predict${query}`, { method: 'POST', body });
  return { status: r.status, body: await r.json() };
}

async function finished(id: string): Promise<any> {
  for (;;) {
    const j = await (await fetch(`${server.url}/api/jobs/${id}`)).json();
    if (j.status === 'done' || j.status === 'failed') return j;
    await new Promise((res) => setTimeout(res, 100));
  }
}

let one: any; // a done job with one person's prediction
let everyone: any; // a done job with ?persons=all

test('one person, every person: the 202 and the finished jobs validate against the document', async () => {
  const video = fs.readFileSync(t.clips[0]!.file);
  const a = await post(`?box=${t.clips[0]!.faceBox.join(',')}`, video);
  assert.equal(a.status, 202);
  assertValid(a.body, '/api/predict', 'post', 202);
  one = await finished(a.body.id);
  assert.equal(one.status, 'done', one.error);
  assert.ok(one.result.windows.length > 0 && 'faceFrames' in one.result.windows[0]);
  assertValid(one, '/api/jobs/{id}', 'get', 200);

  // The talking-face clip beside its mirror image: two persons.
  const pair = fs.readFileSync(mirroredPair(path.join(dir, 'pair.mp4')));
  const all = await post('?persons=all', pair);
  assert.equal(all.status, 202);
  everyone = await finished(all.body.id);
  assert.equal(everyone.status, 'done', everyone.error);
  assert.equal(everyone.result.persons?.length, 2, 'result.persons with ?persons=all');
  assert.ok(
    everyone.windows.some((w: { person?: number }) => w.person === 1),
    "the job's windows name their person",
  );
  process.stderr.write(
    `# contract: ${everyone.result.persons.length} person(s), ${everyone.windows.length} job windows\n`,
  );
  for (const p of everyone.result.persons) assert.ok('share' in p && 'polarity' in p && 'sceneEffect' in p);
  assertValid(everyone, '/api/jobs/{id}', 'get', 200);
});

test('a failed job, an unreadable upload, health and model validate too', async () => {
  // A job cancelled while it waits reads failed, with its reason.
  const [worker] = server.workerPids();
  process.kill(worker!, 'SIGSTOP');
  try {
    const video = fs.readFileSync(t.clips[1]!.file);
    const box = `?box=${t.clips[1]!.faceBox.join(',')}`;
    const running = await post(box, video);
    const waiting = await post(box, video);
    const cancelled = await fetch(`${server.url}/api/jobs/${waiting.body.id}`, { method: 'DELETE' });
    const cancelledBody = await cancelled.json();
    assert.equal(cancelled.status, 200);
    assertValid(cancelledBody, '/api/jobs/{id}', 'delete', 200);
    const failed = await finished(waiting.body.id);
    assert.deepEqual([failed.status, failed.error], ['failed', 'cancelled by its client']);
    assertValid(failed, '/api/jobs/{id}', 'get', 200);
    process.kill(worker!, 'SIGCONT');
    assert.equal((await finished(running.body.id)).status, 'done');
  } finally {
    process.kill(worker!, 'SIGCONT');
  }
  const unreadable = await post('', Buffer.from('not a video at all\n'));
  assert.equal(unreadable.status, 422);
  assertValid(unreadable.body, '/api/predict', 'post', 422);
  const health = await (await fetch(`${server.url}/api/health`)).json();
  assertValid(health, '/api/health', 'get', 200);
  const model = await (await fetch(`${server.url}/api/model`)).json();
  assertValid(model, '/api/model', 'get', 200);
});

test('a field missing from the document fails the validation (the document is strict)', () => {
  assert.ok(one && everyone, 'the first test made the jobs');
  const without = (mutate: (schemas: any) => void) => {
    const copy = structuredClone(doc);
    mutate(copy.components.schemas);
    return copy;
  };
  const drop = (schema: any, key: string) => {
    delete schema.properties[key];
    schema.required = (schema.required ?? []).filter((k: string) => k !== key);
  };
  // Fields every real answer carries, each taken out of a copy of the document in turn.
  for (const [what, mutate] of [
    ['Window.faceFrames', (s: any) => drop(s.Window, 'faceFrames')],
    ['JobWindow.faceFrames', (s: any) => drop(s.JobWindow, 'faceFrames')],
    ['Prediction.summary', (s: any) => drop(s.Prediction, 'summary')],
    ['Job.windowsTotal', (s: any) => drop(s.Job, 'windowsTotal')],
    ['Person.share', (s: any) => drop(s.Person, 'share')],
  ] as const) {
    const v = validator(without(mutate), '/api/jobs/{id}', 'get', 200);
    assert.equal(
      v(what.startsWith('Person') ? everyone : one),
      false,
      `without ${what} the real job does not validate`,
    );
    assert.ok(
      v.errors!.some((e) => e.keyword === 'additionalProperties'),
      `${what}: ${JSON.stringify(v.errors?.slice(0, 3))}`,
    );
  }
  // And a field the document requires that the answer lacks.
  const lacking = structuredClone(one);
  delete lacking.result.windows[0].faceFrames;
  assert.equal(validator(doc, '/api/jobs/{id}', 'get', 200)(lacking), false, 'a required field missing fails');
});
