// `ous serve` on a tiny run: the API and every limit (413 without reading the body, 422 for a
// non-video, a broken video and a too-long one, 503 + Retry-After when the queue is full, 404,
// no path traversal), a worker killed mid-job, temp files gone; a bounded load test against the
// command as its own process, stopped by SIGTERM; and the page in headless Chromium (Debian's),
// whose shown emotion must equal `ous predict --json` for the same clip and run.
import { before, after, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { chromium } from 'playwright-core';
import { startServer, type Server } from '../src/server/server.js';
import { packageRoot } from '../src/util/paths.js';
import { tinyRun, type TinyRun } from './serve-helpers.js';

const CLI = path.join(packageRoot(), 'dist', 'src', 'cli', 'main.js');
let dir: string;
let t: TinyRun;
type Json = { emotion: string; probabilities: Record<string, number>; windows: unknown[] };
let cliPrediction: Json; // face detected
let cliBoxed: Json; // the clip's known face box
let box: string;

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ous-serve-'));
  t = await tinyRun(dir, 32); // 4 s clips: a timeline of 3 windows
  const cli = (...extra: string[]) => {
    const r = spawnSync(process.execPath, [CLI, 'predict', t.clips[0]!.file, '--run', t.run, '--json', ...extra], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    return JSON.parse(r.stdout) as Json;
  };
  box = t.clips[0]!.faceBox.join(',');
  cliPrediction = cli();
  cliBoxed = cli('--box', t.clips[0]!.faceBox.join(' '));
});
after(() => fs.rmSync(dir, { recursive: true, force: true }));

/** A request with full control over the body (Content-Length or chunked), answering status, headers, JSON. */
function request(url: string, opts: { method?: string; body?: Buffer; chunked?: boolean; headers?: Record<string, string> } = {}): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: any }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: opts.method ?? 'GET', headers: { ...(opts.body && !opts.chunked ? { 'Content-Length': String(opts.body.length) } : {}), ...opts.headers } }, (res) => {
      let data = '';
      res.on('data', (d) => (data += d));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: data && res.headers['content-type']?.startsWith('application/json') ? JSON.parse(data) : data }));
    });
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

async function waitJob(base: string, id: string): Promise<any> {
  for (;;) {
    const r = await request(`${base}/api/jobs/${id}`);
    assert.equal(r.status, 200);
    if (r.body.status === 'done' || r.body.status === 'failed') return r.body;
    await new Promise((res) => setTimeout(res, 100));
  }
}

const uploadsLeft = (s: Server) => fs.readdirSync(path.join(s.tempDir, 'uploads'));

test('the API: predictions equal ous predict --json; every limit answers as documented; no temp file is left', async () => {
  const server = await startServer({ run: t.run, host: '127.0.0.1', port: 0, workers: 1, queue: 1, maxUploadMb: 0.05, maxSeconds: 6, samples: 1, log: () => {} });
  const base = server.url;
  try {
    assert.match(base, /^http:\/\/127\.0\.0\.1:\d+$/, 'loopback by default');
    const health = await request(`${base}/api/health`);
    assert.deepEqual([health.status, health.body.ok, health.body.workers], [200, true, 1]);
    const model = await request(`${base}/api/model`);
    const runConfig = JSON.parse(fs.readFileSync(path.join(t.run, 'config.json'), 'utf8'));
    assert.deepEqual(model.body.classes, runConfig.ous.classNames, 'classes come from the run');
    assert.equal(model.body.encoder.precision, 'fp32', 'the default precision');
    const api = await request(`${base}/api/openapi.json`);
    assert.equal(api.body.openapi, '3.1.0');
    assert.ok(api.body.paths['/api/predict'].post.responses['413']);

    // The video as the body, and as multipart: both give ous predict's result.
    const video = fs.readFileSync(t.clips[0]!.file);
    // (A known face box keeps the test fast: no detection.)
    const a = await request(`${base}/api/predict?box=${box}`, { method: 'POST', body: video, headers: { 'Content-Type': 'video/mp4' } });
    assert.equal(a.status, 202);
    const done = await waitJob(base, a.body.id);
    assert.equal(done.status, 'done', done.error);
    assert.equal(done.result.emotion, cliBoxed.emotion);
    for (const [k, v] of Object.entries(cliBoxed.probabilities)) assert.ok(Math.abs(done.result.probabilities[k] - v) < 1e-6, k);
    assert.equal(done.result.windows.length, 3);
    assert.equal(done.result.video, 'upload', 'no server path in the answer');
    const boundary = 'xYz0123';
    const multipart = Buffer.concat([
      Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="note"\r\n\r\nhello\r\n--${boundary}\r\nContent-Disposition: form-data; name="video"; filename="clip.mp4"\r\nContent-Type: video/mp4\r\n\r\n`),
      video,
      Buffer.from(`\r\n--${boundary}--\r\n`),
    ]);
    const m = await request(`${base}/api/predict?box=${box}`, { method: 'POST', body: multipart, headers: { 'Content-Type': `multipart/form-data; boundary=${boundary}` } });
    assert.equal(m.status, 202);
    const mDone = await waitJob(base, m.body.id);
    assert.equal(mDone.result.video, 'clip.mp4');
    assert.deepEqual(mDone.result.probabilities, done.result.probabilities);

    // 413: declared too big (answered before any body is read), and chunked past the limit.
    const big = Buffer.alloc(200 * 1024, 7);
    assert.equal((await request(`${base}/api/predict`, { method: 'POST', body: big })).status, 413);
    const chunked = await request(`${base}/api/predict`, { method: 'POST', body: big, chunked: true }).catch((e: Error) => ({ status: 0, error: e }));
    assert.ok(chunked.status === 413, `chunked upload past the limit: ${JSON.stringify(chunked)}`);

    // 422: not a video; a video cut short; longer than --max-seconds (two clips back to back: 8 s).
    const text = await request(`${base}/api/predict`, { method: 'POST', body: Buffer.from('just some text, not a video\n') });
    assert.equal(text.status, 422);
    assert.match(text.body.error, /not a (readable )?video/);
    assert.ok(!text.body.error.includes(server.tempDir), 'no server path in the error');
    const cut = await request(`${base}/api/predict`, { method: 'POST', body: video.subarray(0, 600) });
    assert.equal(cut.status, 422, JSON.stringify(cut.body));
    const long = path.join(dir, 'long.mp4');
    const list = path.join(dir, 'list.txt');
    fs.writeFileSync(list, `file '${t.clips[0]!.file}'\nfile '${t.clips[1]!.file}'\n`);
    assert.equal(spawnSync('ffmpeg', ['-v', 'error', '-f', 'concat', '-safe', '0', '-i', list, '-c', 'copy', long]).status, 0);
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
    for (const p of ['/static/..%2fserver.js', '/static/..%2f..%2f..%2fpackage.json', '/static/%2e%2e%2fworker.js', '/static/../../package.json', '/..%2fpackage.json', '/static/', '/static/.']) {
      const r = await request(`${base}${p}`);
      assert.equal(r.status, 404, p);
    }
    assert.deepEqual(uploadsLeft(server), [], 'every upload deleted when its job ended or was refused');
  } finally {
    await server.close();
  }
  assert.ok(!fs.existsSync(server.tempDir), 'the temp folder is gone after close');
});

test('load: 40 requests from 8 clients against --queue 4 on the command itself; every answer a result or a 503; the server event loop p99 < 100 ms; RSS flat; SIGTERM exits 0 and cleans', async () => {
  const tempBefore = new Set(fs.readdirSync(os.tmpdir()).filter((f) => f.startsWith('ous-serve-')));
  const proc = spawn(process.execPath, [CLI, 'serve', '--run', t.run, '--port', '0', '--queue', '4', '--workers', '1'], { stdio: ['ignore', 'ignore', 'pipe'] });
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
    const rss = () => Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${proc.pid}/status`, 'utf8'))![1]) / 1024; // MB
    await request(`${base}/api/samples`); // the sample clips are drawn at start: let that finish first
    await request(`${base}/api/health?reset`); // the server's event-loop delay, from here on
    const rssStart = rss();
    const video = fs.readFileSync(t.clips[2]!.file);
    const boxOf2 = t.clips[2]!.faceBox.join(',');
    const health: number[] = [];
    let loading = true;
    const healthLoop = (async () => {
      while (loading) {
        const t0 = performance.now();
        const r = await request(`${base}/api/health`);
        health.push(performance.now() - t0);
        assert.equal(r.status, 200);
        await new Promise((res) => setTimeout(res, 50));
      }
    })();
    const answers: string[] = [];
    const client = async () => {
      for (let i = 0; i < 5; i++) {
        const r = await request(`${base}/api/predict?box=${boxOf2}`, { method: 'POST', body: video });
        if (r.status === 503) {
          assert.ok(Number(r.headers['retry-after']) >= 1);
          answers.push('503');
          continue;
        }
        assert.equal(r.status, 202, JSON.stringify(r.body));
        const j = await waitJob(base, r.body.id);
        answers.push(j.status === 'done' ? 'result' : `failed: ${j.error}`);
      }
    };
    await Promise.all(Array.from({ length: 8 }, client));
    loading = false;
    await healthLoop;
    assert.equal(answers.length, 40);
    assert.deepEqual(answers.filter((a) => a !== 'result' && a !== '503'), [], `answers other than a result or a 503 (server log: ${stderr})`);
    assert.ok(answers.includes('result'));
    health.sort((a, b) => a - b);
    const p99 = health[Math.min(health.length - 1, Math.floor(0.99 * health.length))]!;
    // The server's own event loop under load (perf_hooks): inference is not on it. Measured from
    // this process, a health round trip also waits for this process's 8 clients; it is reported.
    const loop = (await request(`${base}/api/health`)).body.eventLoopDelayMs;
    assert.ok(loop.p99 < 100, `the server's event loop p99 delay ${loop.p99} ms (max ${loop.max}); health round trip p99 ${p99.toFixed(1)} ms over ${health.length} requests`);
    process.stderr.write(`# serve load: health round trip p99 ${p99.toFixed(1)} ms over ${health.length}; server event loop p99 ${loop.p99} ms, max ${loop.max} ms\n`);
    // The server holds no upload or result buffers beyond the jobs' JSON.
    assert.ok(rss() < rssStart + 64, `server RSS ${rssStart.toFixed(0)} MB -> ${rss().toFixed(0)} MB`);
  } catch (err) {
    proc.kill('SIGKILL'); // never leave the server behind
    throw err;
  }
  const exit = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)));
  proc.kill('SIGTERM');
  assert.equal(await exit, 0, stderr);
  const tempAfter = fs.readdirSync(os.tmpdir()).filter((f) => f.startsWith('ous-serve-') && !tempBefore.has(f));
  assert.deepEqual(tempAfter, [], `the server removed its temp folder (uploads, samples); server log: ${stderr}`);
});

test('the page in headless Chromium: upload a clip, the emotion shown equals ous predict --json, the timeline and the face box render', async () => {
  const server = await startServer({ run: t.run, host: '127.0.0.1', port: 0, workers: 1, queue: 4, maxUploadMb: 10, maxSeconds: 60, samples: 1, log: () => {} });
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  try {
    const page = await browser.newPage({ viewport: { width: 1100, height: 760 } });
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(server.url);
    await page.waitForFunction(() => document.querySelectorAll('#samples button').length > 0);
    await page.setInputFiles('#file', t.clips[0]!.file);
    await page.waitForFunction(() => document.body.dataset.state === 'done' || document.body.dataset.state === 'error', undefined, { timeout: 120_000 });
    assert.equal(await page.evaluate(() => document.body.dataset.state), 'done', await page.textContent('#status-text') ?? '');
    assert.equal(await page.textContent('#emotion'), cliPrediction.emotion, 'the page shows ous predict --json\'s emotion');
    const chart = await page.evaluate(() => ({
      windows: document.querySelectorAll('#timeline rect.win').length,
      lines: document.querySelectorAll('#timeline .line').length,
      box: (() => {
        const b = (document.getElementById('facebox') as unknown as SVGGraphicsElement).getBoundingClientRect();
        return [b.width, b.height];
      })(),
    }));
    assert.equal(chart.windows, cliPrediction.windows.length);
    const runConfig = JSON.parse(fs.readFileSync(path.join(t.run, 'config.json'), 'utf8'));
    assert.equal(chart.lines, runConfig.ous.classNames.length, 'one line per class of the run');
    assert.ok(chart.box[0]! > 0 && chart.box[1]! > 0, `the face box is drawn: ${chart.box}`);
    // Clicking the chart's last window selects it.
    const b = (await (await page.$('#timeline'))!.boundingBox())!;
    await page.click('#timeline', { position: { x: b.width * 0.97, y: b.height / 2 } });
    assert.match((await page.textContent('#window-range')) ?? '', /^2\.0–4\.0 s$/);
    const shot = path.join(dir, 'serve.png');
    await page.screenshot({ path: shot, fullPage: true });
    assert.ok(fs.statSync(shot).size > 1000);
    if (process.env.OUS_SCREENSHOT) fs.copyFileSync(shot, process.env.OUS_SCREENSHOT);
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
    await server.close();
  }
});
