// Two runs with the same folder name get names that tell them apart (their figures are files
// named after them), and a report never mixes runs over different classes; a figure that cannot be
// made (UMAP of 2 test clips) is left out with a note.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { runName } from '../src/cli/report.js';
import { writeReport } from '../src/report/report.js';
import { tinyRun } from './serve-helpers.js';

test('runs in folders of the same name are named by as many parent folders as needed', () => {
  const all = ['x/a/ous', 'x/b/ous', 'y/face-only'];
  assert.deepEqual(
    all.map((d) => runName(d, all)),
    ['a/ous', 'b/ous', 'face-only'],
  );
  assert.deepEqual(
    ['p/a/ous', 'q/a/ous'].map((d, _, a) => runName(d, a)),
    ['p/a/ous', 'q/a/ous'],
  );
});

const refusedNamesTitle =
  'writeReport refuses names that would share a figure, and runs with different classes, before loading anything';
test(refusedNamesTitle, async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ous-report-names-'));
  const fakeRun = (name: string, classNames: string[]) => {
    fs.mkdirSync(path.join(dir, name));
    // Only config.json: the checks must come before any checkpoint or cache is read.
    fs.writeFileSync(
      path.join(dir, name, 'config.json'),
      JSON.stringify({
        version: 1,
        ous: { classNames, polarityOfClass: classNames.map(() => 1) },
        train: {},
        dims: { frames: 16, embed: 32, visionWidth: 128 },
        cache: '/nowhere',
        clip: '/nowhere',
      }),
    );
    return path.join(dir, name);
  };
  const a = fakeRun('a', ['x', 'y', 'z']);
  const b = fakeRun('b', ['x', 'y', 'z', 'w', 'v', 'u', 't']);
  await assert.rejects(
    writeReport({
      title: 't',
      out: path.join(dir, 'rep'),
      runs: [
        { name: 'OUS run', dir: a },
        { name: 'ous-run', dir: a },
      ],
    }),
    /share the name 'ous-run' \(and 'OUS run'\)/,
  );
  await assert.rejects(
    writeReport({
      title: 't',
      out: path.join(dir, 'rep'),
      runs: [
        { name: 'a', dir: a },
        { name: 'b', dir: b },
      ],
    }),
    /has 7 classes .* but .* has 3/,
  );
  assert.equal(fs.existsSync(path.join(dir, 'rep')), false);
});

const smallSplitTitle =
  'ous report on a run with 2 test clips: the UMAP figure (Fig. 4) is left out with a note, the rest is written';
test(smallSplitTitle, async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ous-report-small-'));
  try {
    // Two clips (of two classes) in the test split: fewer than UMAP's 3 points.
    const { run } = await tinyRun(dir, { seed: 4, perClass: 3, frames: 4, size: [64, 48], test: [0, 3], name: 'ous' });
    const r = await writeReport({ title: 'small', runs: [{ name: 'OUS', dir: run }], out: path.join(dir, 'report') });
    assert.deepEqual(r.skipped, [
      'The feature-space figure (Fig. 4) is left out: UMAP needs at least 3 test clips, and OUS has 2.',
    ]);
    assert.ok(!r.figures.some((f) => f.endsWith('embedding.svg')));
    assert.ok(r.figures.some((f) => f.endsWith('accuracy.svg')));
    assert.match(fs.readFileSync(r.markdown, 'utf8'), /left out: UMAP needs at least 3 test clips/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
