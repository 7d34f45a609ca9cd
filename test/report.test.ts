// The synthetic benchmark's ceilings by hand, and the report: written for two small runs, opened in
// headless Chromium, every figure decoded.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ceilings, generateBenchmark } from '../src/synthetic/benchmark.js';
import { readManifest } from '../src/data/datasets.js';
import { FrameEncoder } from '../src/clip/frame-encoder.js';
import { extractFeatures } from '../src/data/extract.js';
import { mergeCache } from '../src/data/cache.js';
import { resolveOusConfig } from '../src/ous/config.js';
import { trainRun } from '../src/train/run.js';
import { writeReport } from '../src/report/report.js';
import { demoEncoderDir } from '../src/demo/run.js';
import { Predictor } from '../src/predict/predictor.js';

test('ceilings of the benchmark by hand', () => {
  // Face alone: 5 distinct faces for 7 balanced classes -> 5/7.
  assert.equal(ceilings(0.9).face.war, 5 / 7);
  // Face and scene: for the two ambiguous pairs (different polarities) a cue showing the true
  // polarity (0.9 + 0.1/3) decides; a cue showing neither member's polarity (0.1/3) is a coin
  // flip won by one member; so each pair gets 2·(0.9 + 0.1/3) + 0.1/3 of its 2 classes right.
  const pair = 2 * (0.9 + 0.1 / 3) + 0.1 / 3;
  assert.ok(Math.abs(ceilings(0.9).faceScene.war - (3 + 2 * pair) / 7) < 1e-12);
  // An uninformative scene adds nothing.
  assert.equal(ceilings(0).faceScene.war, 5 / 7);
});

test('the report of two runs opens in headless Chromium with every figure loaded; ous predict on a clip', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ous-report-'));
  const bench = await generateBenchmark(
    {
      out: path.join(dir, 'bench'),
      seed: 3,
      trainPerClass: 3,
      testPerClass: 2,
      frames: 4,
      width: 96,
      height: 72,
      agreement: 0.9,
    },
    { progress: false },
  );
  assert.equal(bench.clips.length, 7 * 5);
  const encoder = FrameEncoder.load(demoEncoderDir());
  const ous = resolveOusConfig({});
  const cache = path.join(dir, 'cache');
  const s = await extractFeatures({
    entries: readManifest(bench.manifest).entries,
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
  assert.equal(s.done, 35);
  assert.deepEqual(s.failed, []);
  mergeCache(cache);
  const overrides = {
    ous: { tfeLayers: 1, tfeQueries: 4, heads: 4, promptLength: 4 },
    train: { epochs: 3, valFraction: 0.34 },
  };
  await trainRun({ cache, out: path.join(dir, 'ous'), overrides, log: () => {} });
  await trainRun({ cache, out: path.join(dir, 'face'), overrides, model: 'face-only', log: () => {} });
  const r = await writeReport({
    title: 'test report',
    runs: [
      { name: 'OUS', dir: path.join(dir, 'ous') },
      { name: 'face only', dir: path.join(dir, 'face') },
    ],
    out: path.join(dir, 'report'),
    ceilings: { 'face alone': 5 / 7 },
  });
  assert.equal(r.figures.length, 2 + 2 + 2 + 1); // confusions, loss+accuracy, phases, embedding
  for (const f of r.figures) assert.match(fs.readFileSync(f, 'utf8'), /^<svg[^>]*>/);
  const md = fs.readFileSync(r.markdown, 'utf8');
  assert.match(md, /\| OUS \| \d+\.\d \| \d+\.\d \|/);
  assert.match(md, /\| ceiling: face alone \| 71\.4 \| 71\.4 \|/);
  // ous predict on one of the clips: probabilities, polarity, and the scene's effect.
  const predictVideo = (video: string, run: string, o = {}) => Predictor.load(run).predict(video, o);
  const p = await predictVideo(bench.clips[0]!.file, path.join(dir, 'ous'), { faceBox: bench.clips[0]!.faceBox });
  assert.ok(Math.abs(Object.values(p.probabilities).reduce((a, b) => a + b, 0) - 1) < 1e-5);
  assert.ok(Math.abs(Object.values(p.polarity!).reduce((a, b) => a + b, 0) - 1) < 1e-5);
  assert.ok(p.sceneEffect!.totalVariation >= 0 && p.sceneEffect!.totalVariation <= 1);
  assert.equal(p.emotion, Object.entries(p.probabilities).sort((a, b) => b[1] - a[1])[0]![0]);
  assert.equal((await predictVideo(bench.clips[0]!.file, path.join(dir, 'face'))).sceneEffect, null);
  const browser = ['chromium', 'chromium-browser', 'google-chrome'].find(
    (b) => spawnSync(b, ['--version'], { stdio: 'ignore' }).status === 0,
  );
  assert.ok(browser, 'Chromium is installed (scripts/setup installs it)');
  const dom = spawnSync(
    browser,
    [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
      `--user-data-dir=${path.join(dir, 'chrome')}`,
      '--virtual-time-budget=5000',
      '--dump-dom',
      `file://${r.html}`,
    ],
    { encoding: 'utf8', timeout: 60000 },
  );
  const m = /data-figures="(\d+)\/(\d+)"/.exec(dom.stdout);
  assert.ok(m, `the page reported its figures (stderr: ${dom.stderr.slice(-300)})`);
  assert.equal(m![2], String(r.figures.length));
  assert.equal(m![1], m![2], 'every figure decoded');
});
