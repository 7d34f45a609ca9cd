// The page's camera mode (issue 33) in Debian's headless Chromium with a fake camera playing the
// talking face (a .y4m made by ffmpeg from the fixture): the live timeline grows window by window,
// the face box is drawn over the picture where the face detector finds the face on the clip's
// frames, stopping gives the session's summary, and a closed tab ends its session. Windows without a
// face (issue 36): grey in the timeline with faceFrames/T on hover, the count of those left out, and
// an answer from no face at all shown as not about a face. With "every person": a box and an emotion
// for each face (the talking face beside its mirror image). The frame batch format, byte by byte.
import { after, before, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Browser } from 'playwright-core';
import { startServer, type Server } from '../src/server/server.js';
import { LiveStartedSchema, LiveUpdateSchema, jpegSize, parseFrames } from '../src/server/live.js';
import { HttpError } from '../src/server/upload.js';
import { detectFacesBatch } from '../src/face/detector.js';
import { fixture } from './helpers.js';
import { launchChromium, tinyRun } from './serve-helpers.js';
import { ffmpeg } from './serve-http.js';

const stub = fileURLToPath(new URL('./serve-stub-worker.js', import.meta.url));
const franck = fixture('media', 'franck_0-6s.mp4'); // 6 s, 360×288, the talking face throughout
let dir: string;
let y4m: string;
let pairY4m: string; // the talking face beside its mirror image: two persons
let clip: string;
let server: Server;

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ous-page-camera-'));
  const t = await tinyRun(path.join(dir, 'tiny')); // T = 4: the camera is sampled at 2 frames a second
  y4m = path.join(dir, 'camera.y4m');
  ffmpeg('-i', franck, '-t', '4', '-vf', 'fps=10', '-pix_fmt', 'yuv420p', y4m);
  pairY4m = path.join(dir, 'pair.y4m');
  const pair = '[0:v]split[a][b];[b]hflip[m];[a][m]hstack,fps=10';
  ffmpeg('-i', franck, '-t', '4', '-filter_complex', pair, '-pix_fmt', 'yuv420p', pairY4m);
  clip = path.join(dir, 'clip.mp4');
  ffmpeg('-f', 'lavfi', '-i', 'testsrc=size=96x72:rate=8', '-t', '3', '-pix_fmt', 'yuv420p', clip);
  // Uploads go to the stand-in worker; a camera session runs the real predictor on the tiny run.
  server = await startServer({
    tempRoot: dir,
    run: t.run,
    clip: t.clip,
    host: '127.0.0.1',
    port: 0,
    workers: 1,
    queue: 4,
    maxUploadMb: 5,
    maxSeconds: 600,
    samples: 0,
    workerModule: stub,
    log: () => {},
  });
});
after(async () => {
  await server?.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

/** Chromium, its camera (with `camera`) playing a y4m (the talking face unless another is named). */
const launch = (camera: boolean, video = y4m): Promise<Browser> =>
  launchChromium(
    camera
      ? [
          '--use-fake-device-for-media-stream',
          '--use-fake-ui-for-media-stream',
          `--use-file-for-fake-video-capture=${video}`,
        ]
      : [],
  );

/** The face the detector finds on the clip's frame at `t` s: [x, y, w, h] in its 360×288 pixels. */
async function faceAt(t: number): Promise<number[]> {
  const r = spawnSync(
    'ffmpeg',
    ['-v', 'error', '-ss', String(t), '-i', franck, '-frames:v', '1', '-f', 'rawvideo', '-pix_fmt', 'rgb24', 'pipe:1'],
    { maxBuffer: 1 << 24 },
  );
  const [dets] = await detectFacesBatch([{ data: new Uint8Array(r.stdout), width: 360, height: 288 }]);
  assert.ok(dets?.length, `a face at ${t} s`);
  return dets![0]!.box;
}

const cameraTitle =
  'camera mode: the live timeline grows window by window, the face box is drawn on the face, ' +
  'stop sums up, a closed tab ends its session';
test(cameraTitle, { timeout: 180_000 }, async () => {
  const browser = await launch(true);
  try {
    const page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
    const sessions: string[] = [];
    const answers: Array<Promise<unknown>> = []; // every answer of /api/live, checked against its schema below
    page.on('response', (r) => {
      if (r.url().endsWith('/api/live') && r.status() === 201) sessions.push(r.url());
      if (/\/api\/live/.test(r.url()) && r.ok()) answers.push(r.json().then((j) => [r.url(), j]));
    });
    await page.goto(`${server.url}/?lookahead=0.5`); // a short look-ahead: the windows come sooner
    await page.click('#camera-start');
    // Watch the timeline grow: every count it passes through, until it has 4 windows.
    const counts = new Set<number>();
    for (let i = 0; i < 600 && !(Math.max(0, ...counts) >= 4); i++) {
      counts.add(await page.evaluate(() => Number(document.getElementById('camera-timeline')!.dataset.windows ?? 0)));
      await new Promise((r) => setTimeout(r, 100));
    }
    const seen = [...counts].filter((n) => n > 0).sort((a, b) => a - b);
    assert.ok(seen.length >= 2 && seen.at(-1)! >= 4, `the timeline went through ${seen.join(', ')} windows`);
    const bands = await page.evaluate(() =>
      [...document.querySelectorAll('#camera-timeline rect.win')].map((r) => r.querySelector('title')!.textContent),
    );
    assert.ok(bands.length >= 4);
    assert.match(bands[0]!, /^0\.0–2\.0 s: \w+ \(face in [1-4]\/4 frames\)$/);
    // The box: in the frames' pixels (the camera's 360×288), drawn, around the face the detector finds.
    const box = await page.evaluate(() => {
      const c = document.getElementById('camera-overlay') as HTMLCanvasElement;
      const [x, y, w, h] = c.dataset.box!.split(',').map(Number);
      const px = c.getContext('2d')!.getImageData(Math.round(x!), Math.round(y! + h! / 2), 1, 1).data;
      return { size: [c.width, c.height], box: [x!, y!, w!, h!], edge: [...px] };
    });
    assert.deepEqual(box.size, [360, 288]);
    assert.deepEqual(box.edge.slice(1, 4), [255, 0, 255], `the box's left edge is drawn green: ${box.edge}`);
    const face = await faceAt(1);
    const [cx, cy] = [face[0]! + face[2]! / 2, face[1]! + face[3]! / 2];
    const [bx, by, bw, bh] = box.box;
    assert.ok(bx! < cx && cx < bx! + bw! && by! < cy && cy < by! + bh!, `box ${box.box} holds the face ${face}`);
    const centre = [bx! + bw! / 2, by! + bh! / 2];
    const off = Math.hypot(centre[0]! - cx, centre[1]! - cy);
    assert.ok(off < 0.35 * face[2]!, `the box's centre is ${off.toFixed(1)} px from the face's`);
    // Stop: the session's summary on the page, the session ended on the server.
    await page.click('#camera-stop');
    await page.waitForFunction(() =>
      /^Over the session: /.test(document.getElementById('camera-summary')!.textContent!),
    );
    assert.equal(sessions.length, 1);
    // The answers are what the schemas (and so the OpenAPI document) say, field for field (strict).
    const got = (await Promise.all(answers)) as Array<[string, unknown]>;
    let summaries = 0;
    for (const [url, body] of got) {
      if (url.endsWith('/api/live')) LiveStartedSchema.parse(body);
      else summaries += LiveUpdateSchema.parse(body).summary ? 1 : 0;
    }
    assert.ok(got.length >= 4 && summaries === 1, `${got.length} answers, ${summaries} with the summary`);
    // A second session, then the tab closed: its session ends (pagehide), and its place is free.
    await page.click('#camera-start');
    await page.waitForFunction(() => document.body.dataset.state === 'camera', undefined, { timeout: 60_000 });
    await page.close({ runBeforeUnload: true });
    let status = 'running';
    for (let i = 0; i < 200 && status === 'running'; i++) {
      await new Promise((r) => setTimeout(r, 100));
      const r = await fetch(`${server.url}/api/live`, { method: 'POST', body: '{}' });
      status = r.status === 201 ? 'free' : 'running';
      if (r.status === 201)
        await fetch(`${server.url}/api/live/${((await r.json()) as { id: string }).id}`, {
          method: 'DELETE',
        });
      else await r.arrayBuffer();
    }
    assert.equal(status, 'free', 'the closed tab freed its camera session');
  } finally {
    await browser.close();
  }
});

const personsTitle =
  'camera mode with "every person" ticked: a box in each person\'s colour on each face, ' +
  'the emotion of each, and each person in the summary';
test(personsTitle, { timeout: 180_000 }, async () => {
  const browser = await launch(true, pairY4m);
  try {
    const page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
    await page.goto(`${server.url}/?lookahead=0.5`);
    await page.check('#all-persons');
    await page.click('#camera-start');
    // Until the latest span has a window for each of the two faces.
    await page.waitForFunction(
      () => JSON.parse(document.getElementById('camera-overlay')!.dataset.boxes ?? '[]').length === 2,
      undefined,
      { timeout: 120_000, polling: 100 },
    );
    const drawn = await page.evaluate(() => {
      const c = document.getElementById('camera-overlay') as HTMLCanvasElement;
      const boxes = JSON.parse(c.dataset.boxes!) as Array<{ person: number; box: number[] }>;
      const g = c.getContext('2d')!;
      const edge = (b: number[]) => [...g.getImageData(Math.round(b[0]!), Math.round(b[1]! + b[3]! / 2), 1, 1).data];
      return {
        size: [c.width, c.height],
        boxes: boxes.map((b) => ({ ...b, edge: edge(b.box) })),
        emotion: document.getElementById('camera-emotion')!.textContent,
      };
    });
    // The frames sent are the camera's 720×288 scaled to 640 wide; one face in each half.
    assert.deepEqual(drawn.size, [640, 256]);
    const centres = drawn.boxes.map((b) => b.box[0]! + b.box[2]! / 2).sort((a, b) => a - b);
    assert.ok(centres[0]! < 320 && centres[1]! > 320, `a box in each half: ${JSON.stringify(drawn.boxes)}`);
    assert.notEqual(drawn.boxes[0]!.person, drawn.boxes[1]!.person);
    // Each box's left edge in its person's colour (PERSON_COLOURS of app.js: red #c62828, blue #1565c0, ...).
    const colours = [
      [198, 40, 40],
      [21, 101, 192],
      [106, 27, 154],
      [46, 125, 50],
    ];
    for (const b of drawn.boxes)
      assert.deepEqual(b.edge.slice(0, 3), colours[b.person % 4], `person ${b.person}'s box: ${b.edge}`);
    assert.match(drawn.emotion!, /^person \d+: \w+ · person \d+: \w+$/);
    await page.click('#camera-stop');
    await page.waitForFunction(
      () => /Each person: /.test(document.getElementById('camera-summary')!.textContent!),
      undefined,
      { timeout: 60_000 },
    );
    const summary = await page.evaluate(() => document.getElementById('camera-summary')!.textContent!);
    assert.match(summary, /Each person: \d+ \w+ [\d.]+%, \d+ \w+ [\d.]+%/);
  } finally {
    await browser.close();
  }
});

const noFaceTitle =
  'windows without a face: grey, faceFrames/T on hover, the count left out; no face at all: ' +
  'the answer is not about a face';
test(noFaceTitle, { timeout: 60_000 }, async () => {
  const browser = await launch(false);
  try {
    const page = await browser.newPage({ viewport: { width: 1100, height: 760 } });
    // The stand-in's result, its windows 1 and 2 made faceless (or every one): what the page draws from it.
    let every = false;
    await page.route('**/api/jobs/*', async (route) => {
      const res = await route.fetch();
      const j = await res.json();
      if (j.result) {
        j.result.windows.forEach((w: { faceFrames: number }, i: number) => {
          if (every || i === 1 || i === 2) w.faceFrames = 0;
        });
        j.result.summary.noFaceWindows = every ? j.result.windows.length : 2;
        j.result.summary.noFaceAnswer = every;
      }
      await route.fulfill({ response: res, json: j });
    });
    for (every of [false, true]) {
      await page.goto(server.url);
      await page.setInputFiles('#file', clip);
      await page.waitForFunction(() => document.body.dataset.state === 'done', undefined, { timeout: 30_000 });
      const bands = await page.evaluate(() =>
        [...document.querySelectorAll('#timeline rect.win')].map((r) => ({
          noFace: r.classList.contains('noface'),
          fill: r.getAttribute('fill'),
          title: r.querySelector('title')!.textContent,
        })),
      );
      assert.equal(bands.length, 3);
      const faceless = every ? [0, 1, 2] : [1, 2];
      bands.forEach((b, i) => {
        const none = faceless.includes(i);
        assert.equal(b.noFace, none, `window ${i}`);
        if (none) assert.equal(b.fill, '#b0b0b0');
        else assert.notEqual(b.fill, '#b0b0b0');
        assert.match(b.title!, none ? /: no face \(face in 0\/4 frames\)$/ : /: [ab] \(face in 4\/4 frames\)$/);
      });
      const shown = await page.evaluate(() => ({
        left: document.getElementById('noface-windows')!.hidden
          ? null
          : document.getElementById('noface-windows')!.textContent,
        notAFace: !document.getElementById('noface-answer')!.hidden,
        marked: document.body.classList.contains('nofaces'),
      }));
      assert.deepEqual(
        shown,
        every
          ? { left: null, notAFace: true, marked: true }
          : { left: '2 windows without a face left out of the answer', notAFace: false, marked: false },
      );
    }
  } finally {
    await browser.close();
  }
});

test('a frame batch: [u32 length][f64 t][JPEG] per frame; malformed, too large or too many refused', () => {
  const frame = (t: number, bytes: number[]) => {
    const head = Buffer.alloc(12);
    head.writeUInt32BE(bytes.length, 0);
    head.writeDoubleBE(t, 4);
    return Buffer.concat([head, Buffer.from(bytes)]);
  };
  const body = Buffer.concat([frame(0, [1, 2, 3]), frame(0.5, [4])]);
  assert.deepEqual(
    parseFrames(body, 10, 4).map((f) => [f.t, [...f.jpeg]]),
    [
      [0, [1, 2, 3]],
      [0.5, [4]],
    ],
  );
  const refused = (b: Buffer, status: number) =>
    assert.throws(
      () => parseFrames(b, 10, 1),
      (e: Error) => e instanceof HttpError && e.status === status,
    );
  refused(body, 413); // two frames, one allowed
  refused(frame(0, new Array(11).fill(0)), 413); // 11 bytes, 10 allowed
  refused(body.subarray(0, 14), 400); // ends inside the first frame
  refused(body.subarray(0, 5), 400); // ends inside a header
  refused(frame(-1, [1]), 400);
  // The SOF0 marker of a 3×2 baseline JPEG (after SOI and an APP0 of 4 bytes): width 3, height 2.
  const sof = Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0, 4, 0, 0, 0xff, 0xc0, 0, 11, 8, 0, 2, 0, 3, 1, 1, 0x11, 0]);
  assert.deepEqual(jpegSize(sof), [3, 2]);
});

test('camera sessions from another origin are refused as uploads are (403), before any session starts', async () => {
  const r = await fetch(`${server.url}/api/live`, {
    method: 'POST',
    headers: { Origin: 'http://evil.example', 'Content-Type': 'application/json' },
    body: '{}',
  });
  assert.equal(r.status, 403);
  assert.match(((await r.json()) as { error: string }).error, /another origin/);
});
