// Everyone in the video through `ous serve`: ?persons=all and ?person=ID give the persons that
// `ous predict --all-persons --json` gives, bad combinations are 400s, and the page lists the
// persons, draws each one's box in their colour and shows the timeline of the one clicked.
import { after, before, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { startServer, type Server } from '../src/server/server.js';
import type { Prediction } from '../src/predict/predictor.js';
import { packageRoot } from '../src/util/paths.js';
import { assertClose, mirroredPair } from './helpers.js';
import { launchChromium, tinyRun, type TinyRun } from './serve-helpers.js';

const CLI = path.join(packageRoot(), 'dist', 'src', 'cli', 'main.js');
let dir: string;
let t: TinyRun;
let pair: string;
let cli: Prediction;
let server: Server;

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ous-serve-persons-'));
  t = await tinyRun(path.join(dir, 'tiny'));
  // The talking-face clip beside its mirror image: two persons, 720×288, 6 s.
  pair = mirroredPair(path.join(dir, 'pair.mp4'));
  const r = spawnSync(process.execPath, [CLI, 'predict', pair, '--run', t.run, '--all-persons', '--json'], {
    encoding: 'utf8',
  });
  assert.equal(r.status, 0, r.stderr);
  cli = JSON.parse(r.stdout) as Prediction;
  server = await startServer({
    tempRoot: dir, // its own temp folder: other servers on this machine use the system one
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
});
after(async () => {
  await server?.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

async function predict(query: string): Promise<{ status: number; body: any }> {
  const r = await fetch(`${server.url}/api/predict${query}`, { method: 'POST', body: fs.readFileSync(pair) });
  const body = await r.json();
  if (r.status !== 202) return { status: r.status, body };
  for (;;) {
    const j = await (await fetch(`${server.url}/api/jobs/${body.id}`)).json();
    if (j.status === 'done' || j.status === 'failed') return { status: 200, body: j };
    await new Promise((res) => setTimeout(res, 100));
  }
}

const personsApiTitle =
  'the API: ?persons=all equals ous predict --all-persons --json; ' +
  '?person=1 gives that person; bad combinations are 400';
test(personsApiTitle, async () => {
  const all = await predict('?persons=all');
  assert.equal(all.body.status, 'done', all.body.error);
  const persons = all.body.result.persons as NonNullable<Prediction['persons']>;
  assert.deepEqual(
    persons.map((p) => [p.id, p.main]),
    cli.persons!.map((p) => [p.id, p.main]),
  );
  for (const [k, p] of persons.entries()) {
    assert.equal(p.emotion, cli.persons![k]!.emotion);
    p.windows.forEach((w, i) =>
      assertClose(Object.values(w.probabilities), Object.values(cli.persons![k]!.windows[i]!.probabilities), {
        atol: 1e-6,
        what: `person ${k}, window ${i}`,
      }),
    );
  }
  // The windows streamed while the job ran carry their person.
  assert.deepEqual([...new Set((all.body.windows as Array<{ person: number }>).map((w) => w.person))].sort(), [0, 1]);
  const one = await predict('?person=1');
  assert.deepEqual(
    one.body.result.persons.map((p: { id: number }) => p.id),
    [1],
  );
  for (const [query, said] of [
    ['?persons=some', /persons must be 'all'/],
    ['?person=x', /person must be a person's id/],
    ['?persons=all&box=1,1,50,50', /box is one known face/],
    ['?persons=all&person=0', /not both/],
  ] as const) {
    const r = await fetch(`${server.url}/api/predict${query}`, { method: 'POST', body: Buffer.from('x') });
    assert.equal(r.status, 400, query);
    assert.match((await r.json()).error, said);
  }
});

const personsPageTitle =
  'the page: every person listed with their answer, ' +
  'their boxes in their colours on the video, a click on a box shows that person';
test(personsPageTitle, async () => {
  const browser = await launchChromium();
  try {
    const page = await browser.newPage({ viewport: { width: 1100, height: 820 } });
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
    await page.goto(server.url);
    await page.check('#all-persons');
    await page.setInputFiles('#file', pair);
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
    const listed = await page.$$eval('#person-list button', (bs) => bs.map((b) => b.textContent));
    assert.deepEqual(
      listed.map((l) => /^person (\d+)/.exec(l ?? '')?.[1]),
      ['0', '1'],
    );
    for (const [k, l] of listed.entries()) assert.ok(l!.includes(cli.persons![k]!.emotion), l!);
    // The main person is shown first.
    const main = cli.persons!.find((p) => p.main)!;
    assert.equal(await page.textContent('#emotion'), main.emotion);
    await page.waitForFunction(() => document.querySelectorAll('#personboxes rect').length === 2);
    const colours = await page.$$eval('#personboxes rect', (rs) => rs.map((r) => r.getAttribute('stroke')));
    assert.notEqual(colours[0], colours[1]);
    // A click on person 0's box (on the left half) shows person 0.
    const other = cli.persons!.find((p) => !p.main)!;
    const rect = (await page.$(`#personboxes rect[data-person="${other.id}"]`))!;
    const bb = (await rect.boundingBox())!;
    await page.mouse.click(bb.x + bb.width / 2, bb.y + bb.height / 2);
    assert.equal(await page.textContent('#emotion'), other.emotion);
    assert.match((await page.textContent('#whose')) ?? '', new RegExp(`Person ${other.id}`));
    assert.equal(
      await page.$eval('#person-list button.selected', (b) => (b as HTMLElement).dataset.person),
      String(other.id),
    );
    assert.equal(await page.$eval('#timeline', (s) => (s as SVGElement).dataset.windows), String(other.windows.length));
    await page.screenshot({ path: path.join(packageRoot(), 'docs', 'figures', 'serve-persons.png'), fullPage: true });
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
  }
});
