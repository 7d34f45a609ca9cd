// The page of `ous serve` by keyboard and on a phone (issue 37), in Debian's headless Chromium, with
// the stand-in worker (serve-stub-worker.ts): the upload control reached and used by the keyboard
// alone; Enter then Space on a sample is one job; a reload mid-job offers to follow or cancel it,
// and cancelling frees the worker; on a 390 px phone the timeline's text is readable; person colours
// have 3:1 contrast on white; the player's controls sit below the video, not over its boxes.
import { after, before, test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startServer, type Server } from '../src/server/server.js';
import { launchChromium } from './serve-helpers.js';
import { ffmpeg } from './serve-http.js';

const stub = fileURLToPath(new URL('./serve-stub-worker.js', import.meta.url));
let dir: string;
let clip: string;
let server: Server;

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ous-page-'));
  clip = path.join(dir, 'clip.mp4');
  ffmpeg('-f', 'lavfi', '-i', 'testsrc=size=96x72:rate=8', '-t', '3', '-pix_fmt', 'yuv420p', clip);
  server = await startServer({
    tempRoot: dir,
    run: 'RUN',
    host: '127.0.0.1',
    port: 0,
    workers: 1,
    queue: 4,
    maxUploadMb: 5,
    maxSeconds: 600,
    samples: 2,
    workerModule: stub,
    log: () => {},
  });
});
after(async () => {
  await server.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

/** WCAG's contrast ratio of an "rgb(r, g, b)" colour against white. */
function contrastOnWhite(rgb: string): number {
  const [r, g, b] = rgb
    .match(/\d+/g)!
    .map(Number)
    .map((c) => {
      const s = c / 255;
      return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
    });
  const L = 0.2126 * r! + 0.7152 * g! + 0.0722 * b!;
  return 1.05 / (L + 0.05);
}

const done = { timeout: 60_000 };

const keyboardTitle =
  'by keyboard alone: Tab reaches "choose a file", Space opens it, the upload runs; Enter then Space on a ' +
  'sample is one job; the controls sit below the video';
test(keyboardTitle, async () => {
  const browser = await launchChromium();
  try {
    const page = await browser.newPage({ viewport: { width: 1100, height: 760 } });
    const posts: string[] = [];
    page.on('request', (r) => r.method() === 'POST' && posts.push(r.url()));
    await page.goto(server.url);
    await page.waitForFunction(() => document.querySelectorAll('#samples button').length === 2);
    // Tab until the file control has the focus (at most 10 presses).
    let focused = '';
    for (let i = 0; i < 10 && focused !== 'file'; i++) {
      await page.keyboard.press('Tab');
      focused = await page.evaluate(() => document.activeElement?.id ?? '');
    }
    assert.equal(focused, 'file', 'the file control is in the tab order');
    const [chooser] = await Promise.all([page.waitForEvent('filechooser'), page.keyboard.press('Space')]);
    await chooser.setFiles(clip);
    await page.waitForFunction(() => document.body.dataset.state === 'done', undefined, done);
    assert.equal(posts.length, 1);
    // The next Tab is the first sample: Enter, then Space at once.
    await page.keyboard.press('Tab');
    assert.equal(await page.evaluate(() => document.activeElement?.textContent), 'sample 1');
    await page.keyboard.press('Enter');
    await page.keyboard.press('Space');
    await page.waitForFunction(() => document.body.dataset.state === 'done', undefined, done);
    await new Promise((r) => setTimeout(r, 500)); // a second job would have been posted by now
    assert.equal(posts.length, 2, `POSTs: ${posts.join(', ')}`);
    // The player's own controls: below the video, not over its boxes.
    assert.equal(await page.evaluate(() => document.getElementById('video')!.hasAttribute('controls')), false);
    const player = (await (await page.$('#player'))!.boundingBox())!;
    const play = (await (await page.$('#play'))!.boundingBox())!;
    assert.ok(play.y >= player.y + player.height, `play at ${play.y}, the video ends at ${player.y + player.height}`);
  } finally {
    await browser.close();
  }
});

const phoneTitle =
  'on a 390 px phone the timeline text is at least 9 px; every person colour has 3:1 contrast on white';
test(phoneTitle, async () => {
  const browser = await launchChromium();
  try {
    const page = await browser.newPage({ viewport: { width: 390, height: 844 } });
    await page.goto(server.url);
    await page.waitForFunction(() => document.querySelectorAll('#samples button').length === 2);
    await page.check('#all-persons');
    await page.click('#samples button');
    await page.waitForFunction(() => document.body.dataset.state === 'done', undefined, done);
    const sizes = await page.evaluate(() =>
      [...document.querySelectorAll('#timeline text')].map((t) => t.getBoundingClientRect().height),
    );
    assert.ok(sizes.length > 0);
    assert.ok(Math.min(...sizes) >= 9, `timeline text ${Math.min(...sizes).toFixed(1)} px high`);
    const colours = await page.evaluate(() =>
      [...document.querySelectorAll('#person-list button')].map((b) => getComputedStyle(b).color),
    );
    assert.equal(colours.length, 2, 'two persons');
    // The page's palette, every entry (ids wrap around it).
    const palette = await page.evaluate(async () => {
      const out: string[] = [];
      const probe = document.createElement('span');
      document.body.append(probe);
      const src = await (await fetch('/static/app.js')).text();
      for (const hex of src.match(/PERSON_COLOURS = \[([^\]]+)\]/)![1]!.match(/#[0-9a-f]{6}/gi)!) {
        probe.style.color = hex;
        out.push(getComputedStyle(probe).color);
      }
      return out;
    });
    for (const c of [...colours, ...palette]) assert.ok(contrastOnWhite(c) >= 3, `${c}: ${contrastOnWhite(c)}`);
  } finally {
    await browser.close();
  }
});

const reloadTitle =
  'a reload mid-job offers to follow or cancel the job; cancelling ends it and frees the worker for the next';
test(reloadTitle, async () => {
  const browser = await launchChromium();
  const [worker] = server.workerPids();
  try {
    const page = await browser.newPage({ viewport: { width: 1100, height: 760 } });
    await page.goto(server.url);
    await page.waitForFunction(() => document.querySelectorAll('#samples button').length === 2);
    process.kill(worker!, 'SIGSTOP'); // the job stays running
    await page.click('#samples button');
    await page.waitForFunction(() => /^decode/.test(document.getElementById('status-text')!.textContent!));
    const id = await page.evaluate(() => JSON.parse(sessionStorage.getItem('ous-job')!).id as string);
    await page.reload();
    await page.waitForSelector('#resume:not([hidden])');
    await page.click('#resume-cancel');
    await page.waitForFunction(() => /cancelled/.test(document.getElementById('status-text')!.textContent!));
    const job = await (await fetch(`${server.url}/api/jobs/${id}`)).json();
    assert.deepEqual([job.status, job.error], ['failed', 'cancelled by its client']);
    // The killed worker's exit comes after the answer: its replacement within 10 s.
    for (let i = 0; i < 100 && server.workerPids()[0] === worker; i++) await new Promise((r) => setTimeout(r, 100));
    assert.notEqual(server.workerPids()[0], worker, 'the stopped worker was replaced');
    await page.click('#samples button');
    await page.waitForFunction(() => document.body.dataset.state === 'done', undefined, done);
  } finally {
    try {
      process.kill(worker!, 'SIGCONT');
    } catch {
      // gone: cancelled
    }
    await browser.close();
  }
});
