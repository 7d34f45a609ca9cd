// The job queue and worker pool of `ous serve` alone (src/server/pool.ts), with a stand-in worker
// (serve-stub-worker.ts) instead of the model: settings over IPC, admission counting uploads in
// flight, stages and windows streamed into the job's status, a crashed worker replaced, shutdown's
// grace and the reason a job failed.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { JobPool, type Job, type JobView } from '../src/server/pool.js';

const stub = fileURLToPath(new URL('./serve-stub-worker.js', import.meta.url));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function start(o: { workers?: number; queue?: number; run?: string; keepJobsMs?: number } = {}) {
  return JobPool.start({
    run: o.run ?? 'RUN',
    precision: 'fp32',
    maxSeconds: 42,
    workers: o.workers ?? 1,
    queue: o.queue ?? 2,
    keepJobsMs: o.keepJobsMs,
    workerModule: stub,
    log: () => {},
  });
}

/** A job file for the stub: how long it takes, how many windows, whether it crashes or fails. */
function spec(dir: string, name: string, s: object): string {
  const f = path.join(dir, name);
  fs.writeFileSync(f, JSON.stringify(s));
  return f;
}

async function until(pool: JobPool, job: Job, what: (v: JobView) => boolean, ms = 10_000): Promise<JobView[]> {
  const seen: JobView[] = [];
  const end = Date.now() + ms;
  for (;;) {
    const v = structuredClone(pool.view(job));
    seen.push(v);
    if (what(v)) return seen;
    assert.ok(Date.now() < end, `timed out; last status ${JSON.stringify(v)}`);
    await sleep(10);
  }
}

test('settings reach the worker over IPC, not the environment; a run that does not load is one error', async () => {
  const pool = await start({ workers: 2 });
  try {
    const conf = pool.model!.config as { settings: Record<string, unknown>; env: string[] };
    assert.deepEqual(conf.env, [], 'no OUS_SERVE_* variables');
    assert.equal(conf.settings.run, 'RUN');
    assert.equal(conf.settings.maxSeconds, 42);
    assert.equal(conf.settings.threads, Math.max(1, Math.floor(os.availableParallelism() / 2)));
  } finally {
    await pool.kill();
  }
  await assert.rejects(start({ run: 'fatal' }), /no such run/);
});

const stagesTitle =
  'a job streams its stages with moving fractions and its windows in order; ' +
  'the result equals them; admission counts uploads in flight';
test(stagesTitle, async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ous-pool-'));
  const pool = await start({ queue: 1 });
  try {
    // One idle worker and --queue 1: two places; a third upload is refused before its body.
    const a = pool.admit()!;
    const b = pool.admit()!;
    assert.ok(a && b);
    assert.equal(pool.admit(), undefined, 'full while two uploads are still arriving');
    assert.equal(pool.health().uploading, 2);
    b.release();
    b.release(); // twice is once
    const job = pool.submit({
      file: spec(dir, 'j1', { seconds: 1.2, windows: 4 }),
      name: 'clip.mp4',
      dir: undefined,
      duration: 5,
    });
    a.release();
    const seen = await until(pool, job, (v) => v.status === 'done');
    const running = seen.filter((v) => v.status === 'running');
    const stages = [...new Set(running.map((v) => v.stage))];
    assert.deepEqual(
      stages,
      (['decode', 'detect', 'encode', 'classify'] as const).filter((s) => stages.includes(s)),
      'stages in order',
    );
    assert.ok(stages.length >= 3, `stages seen: ${stages}`);
    const fractions = new Set(running.filter((v) => v.stage === 'encode').map((v) => v.progress));
    assert.ok(fractions.size >= 2, `the encode percentage moves: ${[...fractions]}`);
    const partial = running.map((v) => v.windows.length);
    assert.ok(
      partial.some((n) => n > 0 && n < 4),
      `windows arrive while the job runs: ${[...new Set(partial)]}`,
    );
    assert.ok(
      partial.every((n, i) => i === 0 || n >= partial[i - 1]!),
      'windows only grow',
    );
    const done = seen.at(-1)!;
    assert.deepEqual(done.windows, done.result!.windows, "the result's windows are the ones streamed");
    for (const v of running) assert.deepEqual(v.windows, done.result!.windows.slice(0, v.windows.length));
    assert.equal(done.result!.video, 'clip.mp4', 'the result names the upload, not the server path');
    assert.equal(done.duration, 5);
  } finally {
    await pool.kill();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a crashed worker fails its job and is replaced; a failure names the upload, not its path', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ous-pool-'));
  const pool = await start();
  try {
    const pid = pool.workerPids()[0];
    const crash = pool.submit({ file: spec(dir, 'crash', { crash: true }), name: 'c.mp4', dir: undefined });
    const next = pool.submit({ file: spec(dir, 'ok', {}), name: 'ok.mp4', dir: undefined });
    const c = (await until(pool, crash, (v) => v.status === 'failed')).at(-1)!;
    assert.match(c.error!, /worker stopped \(exit code 3\)/);
    assert.equal((await until(pool, next, (v) => v.status === 'done')).at(-1)!.status, 'done');
    assert.notEqual(pool.workerPids()[0], pid);
    const bad = pool.submit({
      file: spec(dir, 'bad', { fail: 'no decodable frames' }),
      name: 'bad.mp4',
      dir: undefined,
    });
    const f = (await until(pool, bad, (v) => v.status === 'failed')).at(-1)!;
    assert.equal(f.error, 'no decodable frames in bad.mp4');
  } finally {
    await pool.kill();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

const shutdownTitle =
  'shutdown: queued jobs fail at once with a reason, a running one finishes within the grace, ' +
  'one past it fails naming --grace-seconds; upload folders go';
test(shutdownTitle, async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ous-pool-'));
  const pool = await start({ queue: 4 });
  try {
    const jobDir = path.join(dir, 'upload-of-queued');
    fs.mkdirSync(jobDir);
    const running = pool.submit({ file: spec(dir, 'r', { seconds: 0.6 }), name: 'r.mp4', dir: undefined });
    const queued = pool.submit({ file: spec(dir, 'q', {}), name: 'q.mp4', dir: jobDir });
    await until(pool, running, (v) => v.status === 'running');
    const t0 = Date.now();
    await pool.drain(10_000);
    assert.ok(Date.now() - t0 < 5000, 'drain returns when the running job ends, not at the grace');
    assert.equal(pool.view(running).status, 'done');
    assert.equal(pool.view(queued).status, 'failed');
    assert.match(pool.view(queued).error!, /shutting down.*send it again/);
    assert.ok(!fs.existsSync(jobDir), "the queued job's upload folder is deleted");
    assert.equal(pool.admit(), undefined, 'no admission while shutting down');
  } finally {
    await pool.kill();
  }
  const pool2 = await start();
  try {
    const slow = pool2.submit({ file: spec(dir, 's', { seconds: 5 }), name: 's.mp4', dir: undefined });
    await until(pool2, slow, (v) => v.status === 'running');
    await pool2.drain(300);
    assert.match(pool2.view(slow).error!, /shut down before this job finished.*--grace-seconds/);
  } finally {
    await pool2.kill();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

const personsTitle =
  'persons=all: windowsTotal counts every person and is never below the windows streamed (issue 37: ' +
  '"window 6 of 5"); a finished job stays readable for keepJobsMs, then goes; a failure in the API\'s words';
test(personsTitle, async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ous-pool-'));
  const pool = await start({ keepJobsMs: 60_000 });
  try {
    const job = pool.submit({ file: spec(dir, 'p.json', { windows: 3, seconds: 0.3 }), name: 'p', persons: 'all' });
    const seen = await until(pool, job, (v) => v.status === 'done');
    for (const v of seen) if (v.windowsTotal !== null) assert.ok(v.windows.length <= v.windowsTotal, JSON.stringify(v));
    const last = seen[seen.length - 1]!;
    assert.equal(last.windows.length, 3 + 2, "both persons' windows");
    assert.equal(last.windowsTotal, 3 + 2);
    // Kept by time, not by count: there at keepJobsMs, gone after it.
    pool.sweep(job.finished! + 60_000);
    assert.ok(pool.jobs.has(job.id));
    pool.sweep(job.finished! + 60_001);
    assert.ok(!pool.jobs.has(job.id));
    // A failure names the query parameters and no memory address.
    const why =
      '--person 99: no such person in VIDEO (persons 0, 1; ous predict --all-persons lists them); ' +
      '[mov,mp4,m4a,3gp,3g2,mj2 @ 0x55d0c0a1e2c0] moov atom not found; use --window 0.5 or more';
    const failing = spec(dir, 'f.json', { fail: why });
    const failed = pool.submit({ file: failing, name: 'mine.mp4' });
    const end = (await until(pool, failed, (v) => v.status === 'failed')).pop()!;
    assert.equal(
      end.error,
      'person=99: no such person in VIDEO (persons 0, 1; persons=all lists them); ' +
        '[mov,mp4,m4a,3gp,3g2,mj2] moov atom not found; use window=0.5 or more in mine.mp4',
    );
  } finally {
    await pool.kill();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
