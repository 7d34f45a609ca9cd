// `ous serve` on a tiny run: the API and every limit (413 without reading the body, 422 for a
// non-video, a broken video and a too-long one, 503 + Retry-After when the queue is full, 404,
// no path traversal), a worker killed mid-job, temp files gone; a burst against the command as
// its own process, then SIGTERM with a job running; and the page in headless Chromium (Debian's),
// whose shown emotion must equal `ous predict --json` for the same clip and run. The hostile
// clients are in serve-hostile.test.ts, the fuzzing in serve-fuzz.test.ts, the pool alone in
// serve-pool.test.ts.
import { before, after, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { startServer, type Server } from '../src/server/server.js';
import { packageRoot } from '../src/util/paths.js';
import { launchChromium, tinyRun, type TinyRun } from './serve-helpers.js';

const CLI = path.join(packageRoot(), 'dist', 'src', 'cli', 'main.js');
let dir: string;
let t: TinyRun;
type Json = { emotion: string; probabilities: Record<string, number>; windows: unknown[] };
let cliPrediction: Json; // face detected
let cliBoxed: Json; // the clip's known face box
let box: string;

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ous-serve-'));
  t = await tinyRun(dir, { frames: 32 }); // 4 s clips: a timeline of 3 windows
  const cli = (...extra: string[]) => {
    const r = spawnSync(process.execPath, [CLI, 'predict', t.clips[0]!.file, '--run', t.run, '--json', ...extra], {
      encoding: 'utf8',
    });
    assert.equal(r.status, 0, r.stderr);
    return JSON.parse(r.stdout) as Json;
  };
  box = t.clips[0]!.faceBox.join(',');
  cliPrediction = cli();
  cliBoxed = cli('--box', t.clips[0]!.faceBox.join(' '));
});
after(() => fs.rmSync(dir, { recursive: true, force: true }));

/** A request with full control over the body (Content-Length or chunked), answering status, headers, JSON. */
function request(
  url: string,
  opts: { method?: string; body?: Buffer; chunked?: boolean; headers?: Record<string, string>; agent?: false } = {},
): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: any }> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      url,
      {
        method: opts.method ?? 'GET',
        ...(opts.agent === false ? { agent: false } : {}),
        headers: {
          ...(opts.body && !opts.chunked ? { 'Content-Length': String(opts.body.length) } : {}),
          ...opts.headers,
        },
      },
      (res) => {
        let data = '';
        res.on('data', (d) => (data += d));
        res.on('end', () =>
          resolve({
            status: res.statusCode!,
            headers: res.headers,
            body: data && res.headers['content-type']?.startsWith('application/json') ? JSON.parse(data) : data,
          }),
        );
      },
    );
    req.on('error', reject);
    if (opts.body && opts.chunked) {
      // Chunks of 16 KB until the server answers (it should not read everything).
      let at = 0;
      const pump = () => {
        while (at < opts.body!.length) {
          const ok = req.write(opts.body!.subarray(at, at + 16384));
          at += 16384;
          if (!ok) return void req.once('drain', pump);
        }
        req.end();
      };
      req.on('error', () => {});
      pump();
    } else req.end(opts.body);
  });
}

/** request() with its time in ms (a new connection each, as a burst of clients would). */
async function timed(
  url: string,
  opts: Parameters<typeof request>[1] = {},
): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: any; ms: number }> {
  const t0 = performance.now();
  const r = await request(url, { ...opts, agent: false });
  return { ...r, ms: performance.now() - t0 };
}

async function waitJob(base: string, id: string): Promise<any> {
  for (;;) {
    const r = await request(`${base}/api/jobs/${id}`);
    assert.equal(r.status, 200);
    if (r.body.status === 'done' || r.body.status === 'failed') return r.body;
    await new Promise((res) => setTimeout(res, 100));
  }
}

const uploadsLeft = (s: Server) => fs.readdirSync(path.join(s.tempDir, 'uploads'));

const apiTitle =
  'the API: predictions equal ous predict --json; every limit answers as documented; no temp file is left';
test(apiTitle, async () => {
  const server = await startServer({
    tempRoot: dir, // its own temp folder: other servers on this machine use the system one
    run: t.run,
    host: '127.0.0.1',
    port: 0,
    workers: 1,
    queue: 1,
    maxUploadMb: 0.05,
    maxSeconds: 6,
    samples: 1,
    log: () => {},
  });
  const base = server.url;
  try {
    assert.match(base, /^http:\/\/127\.0\.0\.1:\d+$/, 'loopback by default');
    const health = await request(`${base}/api/health`);
    assert.deepEqual([health.status, health.body.ok, health.body.workers], [200, true, 1]);
    const model = await request(`${base}/api/model`);
    const runConfig = JSON.parse(fs.readFileSync(path.join(t.run, 'config.json'), 'utf8'));
    assert.deepEqual(model.body.classes, runConfig.ous.classNames, 'classes come from the run');
    assert.equal(model.body.encoder.precision, 'fp32', 'the default precision');
    assert.equal(model.body.run, path.basename(t.run), "the run folder's name, not the server's path to it");
    const api = await request(`${base}/api/openapi.json`);
    assert.equal(api.body.openapi, '3.1.0');
    assert.ok(api.body.paths['/api/predict'].post.responses['413']);

    // The video as the body, and as multipart: both give ous predict's result.
    const video = fs.readFileSync(t.clips[0]!.file);
    // (A known face box keeps the test fast: no detection.)
    const a = await request(`${base}/api/predict?box=${box}`, {
      method: 'POST',
      body: video,
      headers: { 'Content-Type': 'video/mp4' },
    });
    assert.equal(a.status, 202);
    const done = await waitJob(base, a.body.id);
    assert.equal(done.status, 'done', done.error);
    assert.equal(done.result.emotion, cliBoxed.emotion);
    for (const [k, v] of Object.entries(cliBoxed.probabilities))
      assert.ok(Math.abs(done.result.probabilities[k] - v) < 1e-6, k);
    assert.equal(done.result.windows.length, 3);
    assert.equal(done.result.video, 'upload', 'no server path in the answer');
    // The windows streamed while the job ran (Predictor.predict's onWindow) are the result's, in order.
    assert.ok(Array.isArray(done.windows));
    assert.deepEqual(done.windows, done.result.windows.slice(0, done.windows.length));
    process.stderr.write(
      `# serve: ${done.windows.length} of ${done.result.windows.length} windows streamed before the result\n`,
    );
    const boundary = 'xYz0123';
    const multipart = Buffer.concat([
      Buffer.from(
        `--${boundary}\r\nContent-Disposition: form-data; name="note"\r\n\r\nhello\r\n--${boundary}\r\n` +
          'Content-Disposition: form-data; name="video"; filename="clip.mp4"\r\nContent-Type: video/mp4\r\n\r\n',
      ),
      video,
      Buffer.from(`\r\n--${boundary}--\r\n`),
    ]);
    const m = await request(`${base}/api/predict?box=${box}`, {
      method: 'POST',
      body: multipart,
      headers: { 'Content-Type': `multipart/form-data; boundary=${boundary}` },
    });
    assert.equal(m.status, 202);
    const mDone = await waitJob(base, m.body.id);
    assert.equal(mDone.result.video, 'clip.mp4');
    assert.deepEqual(mDone.result.probabilities, done.result.probabilities);

    // 413: declared too big (answered before any body is read), and chunked past the limit.
    const big = Buffer.alloc(200 * 1024, 7);
    assert.equal((await request(`${base}/api/predict`, { method: 'POST', body: big })).status, 413);
    const chunked = await request(`${base}/api/predict`, { method: 'POST', body: big, chunked: true }).catch(
      (e: Error) => ({ status: 0, error: e }),
    );
    assert.ok(chunked.status === 413, `chunked upload past the limit: ${JSON.stringify(chunked)}`);

    // 422: not a video; a video cut short; longer than --max-seconds (two clips back to back: 8 s).
    const text = await request(`${base}/api/predict`, {
      method: 'POST',
      body: Buffer.from('just some text, not a video\n'),
    });
    assert.equal(text.status, 422);
    assert.match(text.body.error, /not a (readable )?video/);
    assert.ok(!text.body.error.includes(server.tempDir), 'no server path in the error');
    const cut = await request(`${base}/api/predict`, { method: 'POST', body: video.subarray(0, 600) });
    assert.equal(cut.status, 422, JSON.stringify(cut.body));
    const long = path.join(dir, 'long.mp4');
    const list = path.join(dir, 'list.txt');
    fs.writeFileSync(list, `file '${t.clips[0]!.file}'\nfile '${t.clips[1]!.file}'\n`);
    assert.equal(
      spawnSync('ffmpeg', ['-v', 'error', '-f', 'concat', '-safe', '0', '-i', list, '-c', 'copy', long]).status,
      0,
    );
    const tooLong = await request(`${base}/api/predict`, { method: 'POST', body: fs.readFileSync(long) });
    assert.equal(tooLong.status, 422);
    assert.match(tooLong.body.error, /--max-seconds/);

    // 503 with Retry-After: the worker paused on one job, one job waiting (--queue 1), the next refused.
    const [worker] = server.workerPids();
    process.kill(worker!, 'SIGSTOP');
    const running = await request(`${base}/api/predict?sample=0`, { method: 'POST' });
    const waiting = await request(`${base}/api/predict?sample=0`, { method: 'POST' });
    assert.deepEqual([running.status, waiting.status], [202, 202]);
    const refused = await request(`${base}/api/predict?box=${box}`, { method: 'POST', body: video });
    assert.equal(refused.status, 503);
    assert.ok(Number(refused.headers['retry-after']) >= 1, 'Retry-After in seconds');
    assert.equal((await request(`${base}/api/jobs/${waiting.body.id}`)).body.position, 1);
    // A worker that dies: its job fails with a clear error, a new worker takes the next one.
    process.kill(worker!, 'SIGKILL');
    const failed = await waitJob(base, running.body.id);
    assert.equal(failed.status, 'failed');
    assert.match(failed.error, /worker stopped/);
    assert.equal((await waitJob(base, waiting.body.id)).status, 'done');
    assert.notEqual(server.workerPids()[0], worker);

    // 404s, and no way out of the static folder.
    assert.equal((await request(`${base}/api/jobs/00000000-0000-0000-0000-000000000000`)).status, 404);
    assert.equal((await request(`${base}/api/predict?sample=99`, { method: 'POST' })).status, 404);
    assert.equal((await request(`${base}/api/predict?box=1,2,3`, { method: 'POST', body: video })).status, 400);
    assert.equal((await request(`${base}/static/app.js`)).status, 200);
    for (const p of [
      '/static/..%2fserver.js',
      '/static/..%2f..%2f..%2fpackage.json',
      '/static/%2e%2e%2fworker.js',
      '/static/../../package.json',
      '/..%2fpackage.json',
      '/static/',
      '/static/.',
    ]) {
      const r = await request(`${base}${p}`);
      assert.equal(r.status, 404, p);
    }
    assert.deepEqual(uploadsLeft(server), [], 'every upload deleted when its job ended or was refused');
  } finally {
    await server.close();
  }
  assert.ok(!fs.existsSync(server.tempDir), 'the temp folder is gone after close');
});

const commandTitle =
  'the command itself: a burst of 30 uploads on --queue 2 (refusals under 1 s, ' +
  'health p95 < 100 ms, every accepted job done); SIGTERM with a running job delivers its result, ' +
  'fails the queued one with a reason, exits 0 and cleans';
test(commandTitle, async () => {
  // Its own temp folder (TMPDIR): other servers on this machine leave theirs in the system's.
  const tmp = fs.mkdtempSync(path.join(dir, 'tmp-'));
  const proc = spawn(
    process.execPath,
    [CLI, 'serve', '--run', t.run, '--port', '0', '--queue', '2', '--workers', '1', '--grace-seconds', '120'],
    { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, TMPDIR: tmp } },
  );
  let stderr = '';
  try {
    const base = await new Promise<string>((resolve, reject) => {
      proc.stderr!.on('data', (d) => {
        stderr += d;
        const m = /ous serve: (http:\/\/\S+)/.exec(stderr);
        if (m) resolve(m[1]!);
      });
      proc.on('exit', (code) => reject(new Error(`ous serve exited ${code}: ${stderr}`)));
    });
    // MB
    const rss = () => Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${proc.pid}/status`, 'utf8'))![1]) / 1024;
    await request(`${base}/api/samples`); // the sample clips are drawn at start: let that finish first
    await request(`${base}/api/health?reset`); // the server's event-loop delay, from here on
    const rssStart = rss();
    const video = fs.readFileSync(t.clips[2]!.file);
    const boxOf2 = t.clips[2]!.faceBox.join(',');
    const health: number[] = [];
    let loading = true;
    const healthLoop = (async () => {
      while (loading) {
        const a = await timed(`${base}/api/health`);
        health.push(a.ms);
        assert.equal(a.status, 200);
        await new Promise((res) => setTimeout(res, 25));
      }
    })();
    const answers = await Promise.all(
      Array.from({ length: 30 }, () => timed(`${base}/api/predict?box=${boxOf2}`, { method: 'POST', body: video })),
    );
    // 503 queue full, or 429 this address's uploads in flight (one client sends them all here)
    const refused = answers.filter((a) => a.status === 503 || a.status === 429);
    const accepted = answers.filter((a) => a.status === 202);
    assert.equal(refused.length + accepted.length, 30, JSON.stringify(answers.map((a) => a.status)));
    assert.ok(refused.length >= 20, `${refused.length} refused`);
    const slowest = Math.max(...refused.map((a) => a.ms));
    assert.ok(slowest < 1000, `the slowest refusal took ${slowest.toFixed(0)} ms`);
    for (const a of accepted) assert.equal((await waitJob(base, a.body.id)).status, 'done');
    loading = false;
    await healthLoop;
    const p95 = [...health].sort((a, b) => a - b)[Math.floor(0.95 * health.length)]!;
    const loop = (await request(`${base}/api/health`)).body.eventLoopDelayMs;
    process.stderr.write(
      `# serve burst: ${accepted.length} accepted, ${refused.length} refused ` +
        `(slowest ${slowest.toFixed(0)} ms); health p95 ${p95.toFixed(1)} ms over ${health.length}; ` +
        `server event loop p99 ${loop.p99} ms, max ${loop.max} ms\n`,
    );
    assert.ok(
      p95 < 100,
      `health p95 ${p95.toFixed(1)} ms over ${health.length} (server event loop p99 ${loop.p99} ms)`,
    );
    // The server holds no upload or result buffers beyond the jobs' JSON.
    assert.ok(rss() < rssStart + 64, `server RSS ${rssStart.toFixed(0)} MB -> ${rss().toFixed(0)} MB`);

    // SIGTERM while a job runs (face detection: seconds) and another waits.
    const running = await request(`${base}/api/predict`, { method: 'POST', body: video });
    const queued = await request(`${base}/api/predict?box=${boxOf2}`, { method: 'POST', body: video });
    assert.deepEqual([running.status, queued.status], [202, 202]);
    for (;;) {
      const j = await request(`${base}/api/jobs/${running.body.id}`);
      if (j.body.status === 'running') break;
      await new Promise((res) => setTimeout(res, 20));
    }
    proc.kill('SIGTERM');
    const q = await waitJob(base, queued.body.id);
    assert.equal(q.status, 'failed');
    assert.match(q.error, /shutting down.*send it again/);
    const refusedNow = await request(`${base}/api/predict?box=${boxOf2}`, { method: 'POST', body: video });
    assert.equal(refusedNow.status, 503, 'no new jobs once stopping');
    const r = await waitJob(base, running.body.id);
    assert.equal(r.status, 'done', r.error);
    assert.equal(r.result.emotion, cliPrediction.emotion, "the running job's result is delivered");
  } catch (err) {
    proc.kill('SIGKILL'); // never leave the server behind
    throw err;
  }
  const code = proc.exitCode ?? (await new Promise<number | null>((resolve) => proc.on('exit', (c) => resolve(c))));
  assert.equal(code, 0, stderr);
  assert.deepEqual(
    fs.readdirSync(tmp),
    [],
    `the server removed its temp folder (uploads, samples); server log: ${stderr}`,
  );
});

const pageTitle =
  'the page in headless Chromium: nothing shown before a result; the emotion equals ous predict --json; ' +
  'crops drawn with the result; legend and labels clear of the plot; a new upload clears the old result; ' +
  'stage percentage and timeline move while the job runs; no 404, no CSP violation';
test(pageTitle, async () => {
  const server = await startServer({
    tempRoot: dir, // its own temp folder: other servers on this machine use the system one
    run: t.run,
    host: '127.0.0.1',
    port: 0,
    workers: 1,
    queue: 4,
    maxUploadMb: 10,
    maxSeconds: 60,
    samples: 1,
    log: () => {},
  });
  const browser = await launchChromium();
  try {
    const page = await browser.newPage({ viewport: { width: 1100, height: 760 } });
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    page.on('console', (m) => m.type() === 'error' && errors.push(m.text())); // CSP violations are reported here
    page.on('response', (r) => r.status() >= 400 && errors.push(`${r.status()} ${r.url()}`));
    await page.goto(server.url);
    await page.waitForFunction(() => document.querySelectorAll('#samples button').length > 0);
    assert.equal(await page.isVisible('#result'), false, 'no result area before a result');
    assert.equal(await page.isVisible('#live'), false);
    // Every status text the page shows, in order.
    await page.evaluate(() => {
      const w = window as unknown as { statuses: string[] };
      w.statuses = [];
      new MutationObserver(() => w.statuses.push(document.getElementById('status-text')!.textContent!)).observe(
        document.getElementById('status-text')!,
        { childList: true, characterData: true, subtree: true },
      );
    });
    await page.setInputFiles('#file', t.clips[0]!.file);
    await page.waitForFunction(
      () => document.body.dataset.state === 'done' || document.body.dataset.state === 'error',
      undefined,
      { timeout: 120_000 },
    );
    assert.equal(
      await page.evaluate(() => document.body.dataset.state),
      'done',
      (await page.textContent('#status-text')) ?? '',
    );
    assert.equal(
      await page.textContent('#emotion'),
      cliPrediction.emotion,
      "the page shows ous predict --json's emotion",
    );
    const cropInk = () =>
      page.evaluate(() => {
        const c = document.getElementById('face-crop') as HTMLCanvasElement;
        const d = c.getContext('2d')!.getImageData(0, 0, c.width, c.height).data;
        let ink = 0;
        for (let i = 0; i < d.length; i += 4) ink += d[i]! + d[i + 1]! + d[i + 2]!;
        return ink;
      });
    // The crops come with the result, before any seek.
    const drawn = await page
      .waitForFunction(
        () => {
          const c = document.getElementById('face-crop') as HTMLCanvasElement;
          return c
            .getContext('2d')!
            .getImageData(0, 0, c.width, c.height)
            .data.some((v, i) => i % 4 !== 3 && v > 0);
        },
        undefined,
        { timeout: 10_000 },
      )
      .then(
        () => true,
        () => false,
      );
    assert.ok(drawn, 'the face crop is drawn with the result, without seeking');
    const chart = await page.evaluate(() => {
      const rect = (e: Element) => e.getBoundingClientRect();
      const svg = rect(document.getElementById('timeline')!);
      const plot = rect(document.querySelector('#timeline .plot')!);
      const overlaps = (a: DOMRect, b: DOMRect) =>
        a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom;
      return {
        windows: document.querySelectorAll('#timeline rect.win').length,
        lines: document.querySelectorAll('#timeline .line').length,
        legendOnPlot: [...document.querySelectorAll('#timeline .legend')].filter((e) => overlaps(rect(e), plot)).length,
        labelsOutside: [...document.querySelectorAll('#timeline .axis')]
          .filter((e) => {
            const r = rect(e);
            return (
              r.left < svg.left - 0.5 ||
              r.right > svg.right + 0.5 ||
              r.top < svg.top - 0.5 ||
              r.bottom > svg.bottom + 0.5
            );
          })
          .map((e) => e.textContent),
        box: (() => {
          const b = (document.getElementById('facebox') as unknown as SVGGraphicsElement).getBoundingClientRect();
          return [b.width, b.height];
        })(),
      };
    });
    assert.equal(chart.windows, cliPrediction.windows.length);
    const runConfig = JSON.parse(fs.readFileSync(path.join(t.run, 'config.json'), 'utf8'));
    assert.equal(chart.lines, runConfig.ous.classNames.length, 'one line per class of the run');
    assert.equal(chart.legendOnPlot, 0, 'the legend is clear of the plot');
    assert.deepEqual(chart.labelsOutside, [], 'every axis label inside the chart');
    assert.ok(chart.box[0]! > 0 && chart.box[1]! > 0, `the face box is drawn: ${chart.box}`);
    // Clicking the chart's last window selects it.
    const b = (await (await page.$('#timeline'))!.boundingBox())!;
    await page.click('#timeline', { position: { x: b.width * 0.97, y: b.height / 2 } });
    assert.match((await page.textContent('#window-range')) ?? '', /^2\.0–4\.0 s$/);
    const shot = path.join(dir, 'serve.png');
    await page.screenshot({ path: shot, fullPage: true });
    assert.ok(fs.statSync(shot).size > 1000);
    if (process.env.OUS_SCREENSHOT) fs.copyFileSync(shot, process.env.OUS_SCREENSHOT);

    // A second upload, its job's status scripted for the first polls (stages moving, windows
    // arriving) so what the page shows while a job runs is checked at each step.
    const windows = cliBoxed.windows;
    const script = [
      { stage: 'decode', progress: 0.5, windows: [] },
      { stage: 'detect', progress: 0.2, windows: [] },
      { stage: 'detect', progress: 0.6, windows: [] },
      { stage: 'classify', progress: 0.5, windows: windows.slice(0, 1) },
      { stage: 'classify', progress: 0.9, windows: windows.slice(0, 2) },
    ];
    let polls = 0;
    let release!: () => void;
    const held = new Promise<void>((res) => (release = res));
    await page.route('**/api/jobs/*', async (route) => {
      const real = await route.fetch();
      const body = await real.json();
      const k = polls++;
      if (k >= script.length) return route.fulfill({ response: real });
      if (k === script.length - 1) await held; // the page shows the partial timeline meanwhile
      await route.fulfill({
        response: real,
        json: { ...body, status: 'running', result: undefined, duration: 4, windowsTotal: 3, ...script[k] },
      });
    });
    await page.evaluate(() => ((window as unknown as { statuses: string[] }).statuses = []));
    await page.setInputFiles('#file', t.clips[1]!.file);
    await page.waitForFunction(() => document.querySelectorAll('#live-timeline rect.win').length === 1, undefined, {
      timeout: 30_000,
    });
    const during = await page.evaluate(() => ({
      result: !document.getElementById('result')!.hidden,
      emotion: document.getElementById('emotion')!.textContent,
      bar: parseFloat(document.getElementById('status-bar')!.style.width),
    }));
    assert.deepEqual(
      [during.result, during.emotion],
      [false, ''],
      'the old result is gone while the new video is worked on',
    );
    assert.equal(await cropInk(), 0, 'the old crops are gone');
    release();
    await page.waitForFunction(() => document.body.dataset.state === 'done', undefined, { timeout: 120_000 });
    const statuses = await page.evaluate(() => (window as unknown as { statuses: string[] }).statuses);
    for (const s of ['decode: 50%', 'detect: 20%', 'detect: 60%', 'classify: 50% (window 1 of 3)'])
      assert.ok(statuses.includes(s), `'${s}' in ${JSON.stringify(statuses)}`);
    assert.ok(during.bar > 0, 'the overall bar moved');
    assert.equal(await page.isVisible('#live'), false, 'the partial timeline gives way to the result');
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
    await server.close();
  }
});
