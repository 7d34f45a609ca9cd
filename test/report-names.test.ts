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
import { generateBenchmark } from '../src/synthetic/benchmark.js';
import { readManifest } from '../src/data/datasets.js';
import { FrameEncoder } from '../src/clip/frame-encoder.js';
import { extractFeatures } from '../src/data/extract.js';
import { mergeCache } from '../src/data/cache.js';
import { resolveOusConfig } from '../src/ous/config.js';
import { trainRun } from '../src/train/run.js';
import { demoEncoderDir } from '../src/demo/run.js';

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
    const bench = await generateBenchmark(
      {
        out: path.join(dir, 'bench'),
        seed: 4,
        trainPerClass: 3,
        testPerClass: 0,
        frames: 4,
        width: 64,
        height: 48,
        agreement: 0.9,
      },
      { progress: false },
    );
    // Two clips (of two classes) moved to the test split: fewer than UMAP's 3 points.
    const entries = readManifest(bench.manifest).entries.map((e, i) => ({
      ...e,
      split: i === 0 || i === 3 ? ('test' as const) : e.split,
    }));
    assert.equal(entries.filter((e) => e.split === 'test').length, 2);
    const encoder = FrameEncoder.load(demoEncoderDir());
    const ous = resolveOusConfig({});
    const cache = path.join(dir, 'cache');
    await extractFeatures({
      entries,
      encoder,
      out: cache,
      progress: false,
      info: {
        clip: { path: demoEncoderDir(), hash: encoder.hash },
        frames: 4,
        scene: 'mask',
        views: 1,
        polarityLayer: 4,
        dataset: 'synthetic',
        classNames: ous.classNames,
        polarityOfClass: ous.polarityOfClass,
      },
    });
    mergeCache(cache);
    const run = path.join(dir, 'ous');
    await trainRun({
      cache,
      out: run,
      overrides: { ous: { tfeLayers: 1, tfeQueries: 4, heads: 4, promptLength: 4 }, train: { epochs: 1 } },
      log: () => {},
    });
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
