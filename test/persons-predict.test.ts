// Everyone in the video through `ous predict`, on real footage made at test time: the talking-face
// clip beside its mirror image holds two persons, each with their own timeline; the main one's
// timeline is the one-person answer; with one face, --all-persons is the one-person answer again;
// --person picks one; --csv and --jsonl carry the person.
import { before, test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Prediction } from '../src/predict/predictor.js';
import { assertClose, fixture, runCli, mirroredPair } from './helpers.js';
import { tinyRun, type TinyRun } from './serve-helpers.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ous-persons-predict-'));
const at = (...p: string[]) => path.join(dir, ...p);
const franck = fixture('media', 'franck_0-6s.mp4'); // 360×288, one face, centred

const run = (args: string[]) => runCli(args, dir);

async function json(args: string[]): Promise<Prediction> {
  const r = await run([...args, '--json']);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as Prediction;
}

const probs = (w: { probabilities: Record<string, number> }) => Object.values(w.probabilities);

let t: TinyRun;
let pair: string;
before(async () => {
  t = await tinyRun(at('tiny'));
  // 720×288: the clip on the left, its mirror image on the right; 6 s, 5 windows of 2 s.
  pair = mirroredPair(at('pair.mp4'));
});

const sideBySideTitle =
  'two persons side by side: ids left to right, ' +
  'each followed in their own half; the main one is the one-person answer';
test(sideBySideTitle, async () => {
  const all = await json(['predict', pair, '--run', t.run, '--all-persons']);
  const persons = all.persons!;
  assert.deepEqual(
    persons.map((p) => p.id),
    [0, 1],
  );
  assert.equal(persons.filter((p) => p.main).length, 1);
  for (const [k, p] of persons.entries()) {
    assert.equal(p.windows.length, 5, `person ${k} is in every window`);
    assert.ok(
      p.faces.every((f) => f.detected),
      `person ${k} detected on every grid frame`,
    );
    // Each person's crop square has its centre in their own half (x < 360 for the left one).
    for (const f of p.faces)
      assert.equal(f.box[0]! + f.box[2]! / 2 < 360, k === 0, `person ${k}'s crop at ${f.time} s: ${f.box}`);
  }
  // The mirror image's face sits where the mirror puts it: x' = 720 - x - w, within a few pixels.
  const [l, r] = [persons[0]!.faces[0]!.box, persons[1]!.faces[0]!.box];
  assert.ok(Math.abs(720 - l[0]! - l[2]! - r[0]!) <= 8, `mirror boxes ${l} and ${r}`);
  // Their scenes differ (each masks only their own face), so the scene's polarity differs.
  assert.ok(
    persons[0]!.windows.some(
      (w, i) => Math.abs(w.polarity!.positive! - persons[1]!.windows[i]!.polarity!.positive!) > 1e-6,
    ),
    'each person has a scene of their own',
  );
  // The main person's timeline is the one-person answer, and the top-level fields are theirs.
  const main = persons.find((p) => p.main)!;
  const one = await json(['predict', pair, '--run', t.run]);
  assert.equal(one.persons, undefined);
  assert.equal(one.windows.length, 5);
  for (const [i, w] of one.windows.entries()) {
    assertClose(probs(main.windows[i]!), probs(w), {
      atol: 1e-6,
      what: `main person's window ${i} vs the one-person answer`,
    });
    assert.deepEqual(main.windows[i]!.faceBox, w.faceBox);
  }
  assertClose(probs(all), probs(one), { atol: 1e-6, what: 'the top-level answer' });
  // --person 0 alone equals person 0 of --all-persons.
  const only = await json(['predict', pair, '--run', t.run, '--person', '0']);
  assert.deepEqual(
    only.persons!.map((p) => p.id),
    [0],
  );
  for (const [i, w] of only.persons![0]!.windows.entries())
    assertClose(probs(w), probs(persons[0]!.windows[i]!), { atol: 1e-6, what: `--person 0, window ${i}` });
});

test('one face: --all-persons is one person, the main one, equal to the one-person answer', async () => {
  const all = await json(['predict', franck, '--run', t.run, '--all-persons']);
  const one = await json(['predict', franck, '--run', t.run]);
  assert.equal(all.persons!.length, 1);
  assert.equal(all.persons![0]!.main, true);
  assert.deepEqual(all.persons![0]!.faces, one.faces);
  for (const [i, w] of one.windows.entries())
    assertClose(probs(all.persons![0]!.windows[i]!), probs(w), { atol: 1e-6, what: `window ${i}` });
});

const csvJsonlPersonsTitle =
  "--csv and --jsonl carry each window's person; a person who is not there, " +
  '--box with --all-persons, both flags: one line';
test(csvJsonlPersonsTitle, async () => {
  const all = await json(['predict', pair, '--run', t.run, '--all-persons']);
  const csv = await run(['predict', pair, '--run', t.run, '--all-persons', '--csv']);
  assert.equal(csv.code, 0, csv.stderr);
  const rows = csv.stdout
    .trim()
    .split('\n')
    .map((l) => l.split(','));
  assert.deepEqual(rows[0]!.slice(0, 4), ['person', 'start', 'end', 'emotion']);
  assert.equal(rows.length, 11);
  for (const row of rows.slice(1)) {
    const w = all.persons![Number(row[0])]!.windows.find((x) => x.start === Number(row[1]))!;
    assert.equal(row[3], w.emotion);
  }
  const jsonl = await run(['predict', pair, '--run', t.run, '--all-persons', '--jsonl']);
  const lines = jsonl.stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  assert.deepEqual(
    lines
      .slice(0, -1)
      .map((l) => l.person)
      .sort(),
    [0, 0, 0, 0, 0, 1, 1, 1, 1, 1],
  );
  assert.deepEqual(
    lines.at(-1).persons.map((p: { id: number; windowCount: number }) => [p.id, p.windowCount]),
    [
      [0, 5],
      [1, 5],
    ],
  );

  const missing = await run(['predict', pair, '--run', t.run, '--person', '7']);
  assert.equal(missing.code, 1);
  // The detection's progress lines come first (the persons are
  // known once every frame is seen); the error is the last line.
  assert.match(
    missing.stderr,
    /\nous: --person 7: no such person in .*pair\.mp4 \(persons 0, 1; ous predict --all-persons lists them\)\n$/,
  );
  for (const args of [
    ['--all-persons', '--box', '10 10 50 50'],
    ['--all-persons', '--person', '1'],
    ['--person', 'one'],
  ]) {
    const r = await run(['predict', pair, '--run', t.run, ...args]);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  }
});
