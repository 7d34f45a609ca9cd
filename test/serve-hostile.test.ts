// `ous serve` against hostile clients (issue 23): the routes and the upload with a stand-in worker
// (serve-stub-worker.ts; uploads are parsed and probed for real), so each attack is measured on
// the server itself: an unterminated multipart body, playlists and lists that would read the
// server's own files, image patterns, a raw stream longer than allowed, a flood against a full
// queue, slow and silent clients, foreign Host and Origin, the headers on every answer, absurd
// boxes; and `ous serve` itself on a port in use or a bad --host.
import { after, before, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startServer, type ServeOptions, type Server } from '../src/server/server.js';
import { packageRoot } from '../src/util/paths.js';
import { ffmpeg, multipart, quantile, rawConnection, request } from './serve-http.js';

const stub = fileURLToPath(new URL('./serve-stub-worker.js', import.meta.url));
const CLI = path.join(packageRoot(), 'dist', 'src', 'cli', 'main.js');
let dir: string;
let video: Buffer; // 3 s, 96x72, 8 fps
let clip: string;

before(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ous-hostile-'));
  clip = path.join(dir, 'clip.mp4');
  ffmpeg('-f', 'lavfi', '-i', 'testsrc=size=96x72:rate=8', '-t', '3', '-pix_fmt', 'yuv420p', clip);
  video = fs.readFileSync(clip);
});
after(() => fs.rmSync(dir, { recursive: true, force: true }));

const serve = (o: Partial<ServeOptions> = {}) =>
  startServer({
    tempRoot: dir, // its own temp folder: other servers on this machine use the system one
    run: 'RUN',
    host: '127.0.0.1',
    port: 0,
    workers: 1,
    queue: 2,
    maxUploadMb: 5,
    maxSeconds: 600,
    samples: 0,
    workerModule: stub,
    log: () => {},
    ...o,
  });
const uploadsLeft = (s: Server) => fs.readdirSync(path.join(s.tempDir, 'uploads'));
const port = (s: Server) => Number(new URL(s.url).port);

async function waitJob(base: string, id: string): Promise<any> {
  for (;;) {
    const r = await request(`${base}/api/jobs/${id}`);
    assert.equal(r.status, 200);
    if (r.body.status === 'done' || r.body.status === 'failed') return r.body;
    await new Promise((res) => setTimeout(res, 50));
  }
}

const unterminatedMultipartTitle =
  'an unterminated multipart body (132 bytes) is answered within 1 s; the server stays healthy; nothing is left';
test(unterminatedMultipartTitle, async () => {
  const s = await serve();
  try {
    const head =
      '--b\r\nContent-Disposition: form-data; name="video"; filename="a.mp4"\r\nContent-Type: video/mp4\r\n\r\n';
    const body = Buffer.from(head + 'x'.repeat(132 - head.length));
    assert.equal(body.length, 132);
    const r = await request(`${s.url}/api/predict`, {
      method: 'POST',
      body,
      headers: { 'Content-Type': 'multipart/form-data; boundary=b' },
      timeoutMs: 5000,
    });
    assert.equal(r.status, 422, JSON.stringify(r.body));
    assert.ok(r.ms < 1000, `answered in ${r.ms.toFixed(0)} ms`);
    process.stderr.write(`# unterminated multipart: 422 in ${r.ms.toFixed(0)} ms\n`);
    assert.match(r.body.error, /multipart body is malformed/);
    // Also: bytes left equal to the boundary's length (the old
    // parser's endless loop), and a big text field before the file.
    const tricky = Buffer.from(head + 'yyyy\r\n--b');
    assert.equal(
      (
        await request(`${s.url}/api/predict`, {
          method: 'POST',
          body: tricky,
          headers: { 'Content-Type': 'multipart/form-data; boundary=b' },
          timeoutMs: 5000,
        })
      ).status,
      422,
    );
    const field = Buffer.concat([
      Buffer.from(`--b\r\nContent-Disposition: form-data; name="note"\r\n\r\n${'n'.repeat(70_000)}\r\n`),
      multipart(video, 'clip.mp4', 'b').body,
    ]);
    const f = await request(`${s.url}/api/predict`, {
      method: 'POST',
      body: field,
      headers: { 'Content-Type': 'multipart/form-data; boundary=b' },
      timeoutMs: 5000,
    });
    assert.equal(f.status, 202, `a long text field before the file is skipped, not fatal: ${JSON.stringify(f.body)}`);
    const h = await request(`${s.url}/api/health`, { timeoutMs: 1000 });
    assert.equal(h.status, 200);
    await waitJob(s.url, f.body.id);
    assert.deepEqual(uploadsLeft(s), []);
  } finally {
    await s.close();
  }
});

const refusedFormatsTitle =
  'playlists, lists and image patterns are refused with 422 naming the format; ' +
  'a raw H.264 stream over --max-seconds is measured and refused';
test(refusedFormatsTitle, async () => {
  const s = await serve({ maxSeconds: 600 });
  try {
    const send = (data: Buffer | string, name = 'x.mp4') => {
      const m = multipart(Buffer.from(data), name);
      return request(`${s.url}/api/predict`, { method: 'POST', body: m.body, headers: { 'Content-Type': m.type } });
    };
    // The attack of issue 23: an HLS playlist naming a video on the server's disk.
    const hls = await send(
      `#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:3,\nfile://${clip}\n#EXT-X-ENDLIST\n`,
      'list.m3u8',
    );
    assert.equal(hls.status, 422, JSON.stringify(hls.body));
    assert.match(hls.body.error, /HLS playlist \(hls\)/);
    const ffconcat = await send(`ffconcat version 1.0\nfile '${clip}'\n`);
    assert.equal(ffconcat.status, 422);
    assert.match(ffconcat.body.error, /concat list \(concat\)/);
    const concat = await send(`file '${clip}'\nfile '${clip}'\n`); // needs -f concat: not even recognised
    assert.equal(concat.status, 422);
    // Image patterns: a file name with %d never reaches ffmpeg (uploads get server-made names), a
    // PNG is an image, not a video; a list naming a pattern is a list.
    const png = path.join(dir, 'img001.png');
    ffmpeg('-f', 'lavfi', '-i', 'testsrc=size=32x32', '-frames:v', '1', png);
    const pattern = await send(fs.readFileSync(png), 'img%03d.png');
    assert.equal(pattern.status, 422);
    assert.match(pattern.body.error, /PNG image \(png_pipe\)/);
    const listed = await send(`ffconcat version 1.0\nfile '${path.join(dir, 'img%03d.png')}'\n`);
    assert.equal(listed.status, 422);
    assert.match(listed.body.error, /concat/);
    for (const r of [hls, ffconcat, concat, pattern, listed])
      assert.ok(!JSON.stringify(r.body).includes(s.tempDir), 'no server path in the error');
    // 700 s of raw H.264 (2 fps, no container, no duration in the metadata) against 600 s.
    const h264 = path.join(dir, 'long.h264');
    ffmpeg(
      '-f',
      'lavfi',
      '-i',
      'color=c=gray:size=64x48:rate=2',
      '-t',
      '700',
      '-c:v',
      'libx264',
      '-preset',
      'ultrafast',
      '-f',
      'h264',
      h264,
    );
    const raw = await request(`${s.url}/api/predict`, { method: 'POST', body: fs.readFileSync(h264) });
    assert.equal(raw.status, 422, JSON.stringify(raw.body));
    assert.match(raw.body.error, /700\.0 s long; this server takes at most 600 s \(--max-seconds\)/);
    // The same stream within the limit is a video like any other.
    const short = path.join(dir, 'short.h264');
    ffmpeg('-i', h264, '-t', '20', '-c', 'copy', '-f', 'h264', short);
    const ok = await request(`${s.url}/api/predict`, { method: 'POST', body: fs.readFileSync(short) });
    assert.equal(ok.status, 202, JSON.stringify(ok.body));
    await waitJob(s.url, ok.body.id);
    assert.deepEqual(uploadsLeft(s), []);
  } finally {
    await s.close();
  }
});

const burstTitle =
  'a burst of 40 concurrent uploads on --queue 2: refusals before the body in under 1 s, ' +
  '/api/health p95 < 100 ms during it, every accepted job finishes';
test(burstTitle, async () => {
  // 40 connections from one address: above the per-address cap (32), which the slow-client test tries.
  const s = await serve({ queue: 2, perClientConnections: 64 });
  try {
    const health: number[] = [];
    let bursting = true;
    const healthLoop = (async () => {
      while (bursting) {
        const r = await request(`${s.url}/api/health`, { timeoutMs: 5000 });
        assert.equal(r.status, 200);
        health.push(r.ms);
        await new Promise((res) => setTimeout(res, 20));
      }
    })();
    const answers = await Promise.all(
      Array.from({ length: 40 }, () =>
        request(`${s.url}/api/predict`, { method: 'POST', body: video, timeoutMs: 30_000 }),
      ),
    );
    bursting = false;
    await healthLoop;
    // 503 queue full, or 429 this address's uploads in flight (one client sends them all here)
    const refused = answers.filter((a) => a.status === 503 || a.status === 429);
    const accepted = answers.filter((a) => a.status === 202);
    assert.equal(
      refused.length + accepted.length,
      40,
      'other answers: ' +
        JSON.stringify(
          answers.filter((a) => ![503, 429, 202].includes(a.status)).map((a) => [a.status, a.error ?? a.body]),
        ),
    );
    assert.ok(accepted.length >= 1 && refused.length >= 30, `${accepted.length} accepted, ${refused.length} refused`);
    const slowest = Math.max(...refused.map((a) => a.ms));
    assert.ok(slowest < 1000, `the slowest refusal took ${slowest.toFixed(0)} ms`);
    for (const a of refused) assert.ok(Number(a.headers['retry-after']) >= 1, 'Retry-After in seconds');
    const p95 = quantile(health, 0.95);
    process.stderr.write(
      `# burst of 40 on --queue 2: ${accepted.length} accepted, ${refused.length} refused ` +
        `(slowest ${slowest.toFixed(0)} ms); health p95 ${p95.toFixed(1)} ms over ${health.length}\n`,
    );
    assert.ok(health.length >= 3, `health polled ${health.length} times`);
    assert.ok(p95 < 100, `health p95 ${p95.toFixed(1)} ms`);
    for (const a of accepted) assert.equal((await waitJob(s.url, a.body.id)).status, 'done');
    assert.deepEqual(uploadsLeft(s), []);
  } finally {
    await s.close();
  }
});

const slowClientsTitle =
  'slow clients: headers that never finish are closed by the header timeout; ' +
  'a body that never comes by the request timeout; its upload folder goes';
test(slowClientsTitle, async () => {
  const s = await serve({ headersTimeoutMs: 1000, requestTimeoutMs: 2000, idleTimeoutMs: 1500 });
  try {
    const slowHeaders = rawConnection(port(s), 'POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: 1\r\n', 8000);
    const noBody = rawConnection(
      port(s),
      'POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000000\r\n\r\nsome',
      8000,
    );
    const silent = rawConnection(port(s), '', 8000);
    const [h, b, q] = await Promise.all([slowHeaders, noBody, silent]);
    assert.ok(h.closed && h.ms < 4000, `slow headers closed after ${h.ms.toFixed(0)} ms`);
    assert.ok(b.closed && b.ms < 5000, `a missing body closed after ${b.ms.toFixed(0)} ms`);
    assert.ok(q.closed && q.ms < 5000, `a silent connection closed after ${q.ms.toFixed(0)} ms`);
    await new Promise((res) => setTimeout(res, 200));
    assert.deepEqual(uploadsLeft(s), [], "the stalled upload's folder is deleted");
    assert.equal((await request(`${s.url}/api/health`)).status, 200);
  } finally {
    await s.close();
  }
});

const connectionCapTitle =
  'the connection cap (256 by default, 4 here): ' +
  'silent connections past it are refused at once, and the idle timeout frees the places';
test(connectionCapTitle, async () => {
  const s = await serve({ maxConnections: 4, idleTimeoutMs: 1000, headersTimeoutMs: 5000 });
  try {
    const silent = Array.from({ length: 4 }, () => rawConnection(port(s), '', 8000));
    await new Promise((res) => setTimeout(res, 200));
    const over = await request(`${s.url}/api/health`, { timeoutMs: 3000 });
    assert.equal(over.status, 0, `a fifth connection is closed at once: ${JSON.stringify(over)}`);
    assert.ok(over.ms < 1000);
    const closed = await Promise.all(silent);
    assert.ok(
      closed.every((c) => c.closed && c.ms < 4000),
      JSON.stringify(closed),
    );
    assert.equal(
      (await request(`${s.url}/api/health`, { timeoutMs: 3000 })).status,
      200,
      'answered again once the idle ones are closed',
    );
  } finally {
    await s.close();
  }
});

const hostOriginTitle =
  'Host and Origin: a foreign Host is 421, a cross-origin POST 403 (text/plain and multipart), ' +
  'this origin and --public-host pass; security headers on every answer; the model info from the worker';
test(hostOriginTitle, async () => {
  const s = await serve({ publicHost: ['ous.example'] });
  try {
    const u = new URL(s.url);
    const foreign = await request(`${s.url}/api/health`, { headers: { Host: 'evil.example' } });
    assert.equal(foreign.status, 421);
    assert.equal((await request(`${s.url}/`, { headers: { Host: `evil.example:${u.port}` } })).status, 421);
    assert.equal((await request(`${s.url}/api/health`, { headers: { Host: `localhost:${u.port}` } })).status, 200);
    assert.equal(
      (await request(`${s.url}/api/health`, { headers: { Host: 'ous.example' } })).status,
      200,
      '--public-host',
    );
    const text = await request(`${s.url}/api/predict`, {
      method: 'POST',
      body: video,
      headers: { 'Content-Type': 'text/plain', Origin: 'http://evil.example' },
    });
    assert.equal(text.status, 403);
    const m = multipart(video);
    const form = await request(`${s.url}/api/predict`, {
      method: 'POST',
      body: m.body,
      headers: { 'Content-Type': m.type, Origin: 'null' },
    });
    assert.equal(form.status, 403);
    const site = await request(`${s.url}/api/predict`, {
      method: 'POST',
      body: m.body,
      headers: { 'Content-Type': m.type, 'Sec-Fetch-Site': 'cross-site' },
    });
    assert.equal(site.status, 403);
    // A page of another port on this host is another origin too.
    assert.equal(
      (
        await request(`${s.url}/api/predict`, {
          method: 'POST',
          body: video,
          headers: { Origin: `http://127.0.0.1:1` },
        })
      ).status,
      403,
    );
    const same = await request(`${s.url}/api/predict`, {
      method: 'POST',
      body: m.body,
      headers: { 'Content-Type': m.type, Origin: s.url, 'Sec-Fetch-Site': 'same-origin' },
    });
    assert.equal(same.status, 202, JSON.stringify(same.body));
    await waitJob(s.url, same.body.id);
    // Every kind of answer carries the headers.
    const answers = [
      foreign,
      text,
      await request(`${s.url}/`),
      await request(`${s.url}/static/app.js`),
      await request(`${s.url}/api/health`),
      await request(`${s.url}/nothing`),
      await request(`${s.url}/api/predict`, { method: 'POST', body: Buffer.alloc(6 * 2 ** 20) }),
    ];
    for (const a of answers) {
      assert.equal(a.headers['x-content-type-options'], 'nosniff', `status ${a.status}`);
      assert.match(
        String(a.headers['content-security-policy']),
        /default-src 'none'; script-src 'self'.*frame-ancestors 'none'/,
      );
      assert.equal(a.headers['referrer-policy'], 'no-referrer');
    }
    const fav = await request(`${s.url}/favicon.ico`);
    assert.equal(fav.status, 200);
    const model = await request(`${s.url}/api/model`);
    assert.equal(
      model.body.run,
      'stub',
      "the worker's model info (the real worker names the run folder, not its path: serve.test.ts)",
    );
  } finally {
    await s.close();
  }
});

const boxesTitle =
  'boxes: far larger than the frame, 1e9, ' +
  "or outside it are 400 at once (the CLI's check); a plausible one is taken";
test(boxesTitle, async () => {
  const s = await serve();
  try {
    for (const box of ['0,0,8000,8000', '0,0,1e9,1e9', '200,0,10,10', '1,2,3', '0,0,-5,5', 'a,b,c,d']) {
      const r = await request(`${s.url}/api/predict?box=${box}`, { method: 'POST', body: video });
      assert.equal(r.status, 400, `${box}: ${JSON.stringify(r.body)}`);
      assert.ok(r.ms < 2000);
    }
    assert.match(
      (await request(`${s.url}/api/predict?box=0,0,8000,8000`, { method: 'POST', body: video })).body.error,
      /larger than 2× the 96×72 frame/,
    );
    const ok = await request(`${s.url}/api/predict?box=-10,10,60,50`, { method: 'POST', body: video });
    assert.equal(ok.status, 202);
    await waitJob(s.url, ok.body.id);
    assert.deepEqual(uploadsLeft(s), []);
  } finally {
    await s.close();
  }
});

/** Processes running this checkout's worker script. */
function workersRunning(): string[] {
  const script = path.join(packageRoot(), 'dist', 'src', 'server', 'worker.js');
  return fs
    .readdirSync('/proc')
    .filter((p) => /^\d+$/.test(p))
    .filter((p) => {
      try {
        return fs.readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(script);
      } catch {
        return false;
      }
    });
}

const portInUseTitle =
  'ous serve on a port in use or a bad --host: one line, exit 1, ' +
  'no worker left; ous predict refuses the same absurd box';
test(portInUseTitle, async () => {
  const blocker = net.createServer();
  await new Promise<void>((res) => blocker.listen(0, '127.0.0.1', () => res()));
  const used = (blocker.address() as net.AddressInfo).port;
  try {
    for (const [args, why] of [
      [['--port', String(used)], new RegExp(`port ${used} on 127\\.0\\.0\\.1 is in use`)],
      [['--host', '10.255.255.254', '--port', '0'], /not an address of this machine/],
      [['--host', 'no such host!', '--port', '0'], /not an address or a host name/],
    ] as const) {
      // Its own temp folder (TMPDIR): other servers on this machine leave theirs in the system's.
      const tmp = fs.mkdtempSync(path.join(dir, 'tmp-'));
      const r = spawnSync(process.execPath, [CLI, 'serve', '--run', path.join(dir, 'no-run'), ...args], {
        encoding: 'utf8',
        timeout: 20_000,
        env: { ...process.env, TMPDIR: tmp },
      });
      assert.equal(r.status, 1, r.stderr);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
      assert.match(r.stderr, why);
      assert.ok(!/\n\s+at /.test(r.stderr), 'no stack');
      assert.deepEqual(fs.readdirSync(tmp), [], 'no temp folder left');
    }
    assert.deepEqual(workersRunning(), [], 'no worker process outlives the command');
    // The box check is the CLI's too: ous predict --box with a box that dwarfs the frame.
    const p = spawnSync(
      process.execPath,
      [CLI, 'predict', clip, '--run', path.join(dir, 'no-run'), '--box', '0 0 1e9 1e9'],
      { encoding: 'utf8', timeout: 20_000 },
    );
    assert.equal(p.status, 2, p.stderr);
    // plain decimals only
    assert.match(p.stderr, /--box must be "x y w h" \(four numbers, in the video's pixels\), not '0 0 1e9 1e9'/);
    const big = spawnSync(
      process.execPath,
      [CLI, 'predict', clip, '--run', path.join(dir, 'no-run'), '--box', '0 0 8000 8000'],
      { encoding: 'utf8', timeout: 20_000 },
    );
    assert.equal(big.status, 2, big.stderr);
    assert.match(big.stderr, /--box \[0 0 8000 8000\] is larger than 2× the 96×72 frame/);
  } finally {
    blocker.close();
  }
});

const nodeErrorsTitle =
  "Node's own refusals as JSON (400 malformed, 431 headers, 408 a short body), two Host headers 400, " +
  "Allow with HEAD, a window too short for the video 400 before queuing, in the API's words";
test(nodeErrorsTitle, async () => {
  const s = await serve({ rateWindowMs: 500 });
  try {
    const jsonOf = (got: string) => JSON.parse(got.slice(got.indexOf('\r\n\r\n') + 4));
    const status = (got: string) => Number(/^HTTP\/1\.1 (\d+)/.exec(got)?.[1]);
    const twoHosts = await rawConnection(
      port(s),
      'GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\nHost: evil.example\r\n\r\n',
      3000,
    );
    assert.equal(status(twoHosts.got), 400, twoHosts.got);
    assert.match(jsonOf(twoHosts.got).error, /more than one Host header/);
    const garbage = await rawConnection(port(s), 'GARBAGE\r\n\r\n', 3000);
    assert.equal(status(garbage.got), 400, garbage.got);
    assert.match(jsonOf(garbage.got).error, /the request is malformed/);
    assert.match(garbage.got, /X-Content-Type-Options: nosniff/);
    const huge = await rawConnection(
      port(s),
      `GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX: ${'a'.repeat(20_000)}\r\n\r\n`,
      3000,
    );
    assert.equal(status(huge.got), 431, huge.got.slice(0, 200));
    assert.match(jsonOf(huge.got).error, /headers are larger than 16 KB/);
    // A body shorter than its Content-Length that then waits: the JSON 408 once a rate window passes empty.
    const short = await rawConnection(
      port(s),
      'POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000\r\n\r\nabc',
      5000,
    );
    assert.equal(status(short.got), 408, short.got);
    assert.match(
      jsonOf(short.got).error,
      /the upload arrived too slowly: 3 bytes in the last 0.5 s, below this server.s minimum of 8 KB\/s/,
    );
    const del = await request(`${s.url}/api/health`, { method: 'DELETE' });
    assert.equal(del.status, 405);
    assert.equal(del.headers.allow, 'GET, HEAD');
    // 3 s at 8 fps and the stub's 4 frames a window: 0.001 s hold too few frames; said before queuing.
    const tiny = await request(`${s.url}/api/predict?window=0.001`, { method: 'POST', body: video });
    assert.equal(tiny.status, 400, JSON.stringify(tiny.body));
    assert.equal(
      tiny.body.error,
      'window=0.001: 0.001 s hold 0.0 frames at 8 fps, fewer than the 4 frames a window needs; ' +
        'use window=0.5 or more',
    );
    // A 1 fps GIF with the default 2 s window: 2 frames for 4.
    const gif = path.join(dir, 'slow.gif');
    ffmpeg('-f', 'lavfi', '-i', 'testsrc=size=64x48:rate=1', '-t', '10', gif);
    const g = await request(`${s.url}/api/predict`, { method: 'POST', body: fs.readFileSync(gif) });
    assert.equal(g.status, 400, JSON.stringify(g.body));
    assert.match(
      g.body.error,
      /^window=2: 2 s hold 2\.0 frames at 1 fps, fewer than the 4 frames .* use window=4 or more$/,
    );
    assert.deepEqual(uploadsLeft(s), []);
  } finally {
    await s.close();
  }
});
