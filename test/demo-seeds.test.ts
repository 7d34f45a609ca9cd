// `ous demo --seeds`: the plumbing, on a tiny benchmark (2 clips of each class to test, 2 epochs):
// one benchmark and cache, both models trained with each seed into their own run folders, and a
// summary that is the mean ± std of the per-seed values it reports (each seed's UAR is whatever
// two epochs give; only the arithmetic and the layout are asserted). The spread over seeds at the
// real size is a benchmark (bench demo-seeds), not a test.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { demoSummary, runDemo } from '../src/demo/run.js';
import { demoText } from '../src/cli/demo.js';
import { writeReport } from '../src/report/report.js';
import { formatSpread, spreadOf } from '../src/train/metrics.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ous-demo-seeds-'));

test('spread of values by hand: mean, sample std (n − 1), min, max; one value has no std', () => {
  const s = spreadOf([0.5, 0.7, 0.9]);
  assert.ok(Math.abs(s.mean - 0.7) < 1e-12);
  assert.ok(Math.abs(s.std - 0.2) < 1e-12); // sqrt((0.04 + 0 + 0.04) / 2)
  assert.deepEqual([s.n, s.min, s.max], [3, 0.5, 0.9]);
  assert.ok(Number.isNaN(spreadOf([0.4]).std));
  assert.equal(formatSpread(s), '70.0 ± 20.0 (min 50.0, max 90.0)');
  assert.throws(() => spreadOf([]), RangeError);
});

test('demo summary by hand: each model over the seeds, the gap paired by seed (not a difference of spreads)', () => {
  const s = demoSummary([
    { ous: { uar: 0.9, war: 0.92 }, faceOnly: { uar: 0.7, war: 0.71 } },
    { ous: { uar: 0.8, war: 0.8 }, faceOnly: { uar: 0.72, war: 0.7 } },
  ]);
  const near = (a: number, b: number) => assert.ok(Math.abs(a - b) < 1e-12, `${a} vs ${b}`);
  near(s.ous.uar.mean, 0.85);
  near(s.ous.uar.std, 0.1 / Math.SQRT2);
  near(s.faceOnly.war.mean, 0.705);
  near(s.gap.uar.mean, 0.14);
  near(s.gap.uar.std, 0.12 / Math.SQRT2); // gaps 0.20 and 0.08
  assert.deepEqual(
    [s.gap.uar.min, s.gap.uar.max].map((v) => +v.toFixed(12)),
    [0.08, 0.2],
  );
});

test('demo, 2 seeds: one cache, each seed its runs, the summary from the per-seed values, in the report', async () => {
  const out = path.join(tmp, 'demo');
  const r = await runDemo(
    { out, seed: 3, seeds: 2, agreement: 0.9, progress: false, log: () => {} },
    { trainPerClass: 4, testPerClass: 2, frames: 4, epochs: 2 },
  );
  assert.deepEqual(
    r.seeds.map((s) => s.seed),
    [3, 4],
  );
  // The first seed keeps the one-seed layout; the others get their own folders, all distinct.
  assert.deepEqual(r.seeds[0]!.runs, {
    ous: path.join(out, 'runs', 'ous'),
    faceOnly: path.join(out, 'runs', 'face-only'),
  });
  assert.deepEqual(r.seeds[1]!.runs, {
    ous: path.join(out, 'runs', 'seed-4', 'ous'),
    faceOnly: path.join(out, 'runs', 'seed-4', 'face-only'),
  });
  for (const s of r.seeds)
    for (const dir of Object.values(s.runs))
      assert.equal(JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')).train.seed, s.seed);
  assert.deepEqual([r.ous, r.faceOnly], [r.seeds[0]!.ous, r.seeds[0]!.faceOnly]);

  const [a, b] = r.seeds as [(typeof r.seeds)[0], (typeof r.seeds)[0]];
  const byHand = (x: number, y: number) => ({
    mean: (x + y) / 2,
    std: Math.abs(x - y) / Math.SQRT2,
    min: Math.min(x, y),
    max: Math.max(x, y),
  });
  const close = (
    got: { mean: number; std: number; min: number; max: number },
    want: ReturnType<typeof byHand>,
    what: string,
  ) => {
    for (const k of ['mean', 'std', 'min', 'max'] as const)
      assert.ok(Math.abs(got[k] - want[k]) < 1e-12, `${what} ${k}: ${got[k]} vs ${want[k]}`);
  };
  close(r.summary.ous.uar, byHand(a.ous.uar, b.ous.uar), 'OUS UAR');
  close(r.summary.faceOnly.war, byHand(a.faceOnly.war, b.faceOnly.war), 'face-only WAR');
  close(r.summary.gap.uar, byHand(a.ous.uar - a.faceOnly.uar, b.ous.uar - b.faceOnly.uar), 'gap UAR');
  assert.equal(r.summary.ous.uar.n, 2);

  // What demo.json keeps and the terminal prints are the same numbers.
  const saved = JSON.parse(fs.readFileSync(path.join(out, 'demo.json'), 'utf8'));
  assert.deepEqual(saved.summary.gap.uar, JSON.parse(JSON.stringify(r.summary.gap.uar)));
  const text = demoText(r);
  assert.match(text, new RegExp(`OUS +UAR ${formatSpread(r.summary.ous.uar).replace(/[()+.]/g, '\\$&')}`));
  assert.match(text, /^ +4 +[\d.]+ +[\d.]+ +-?[\d.]+$/m);

  const report = await writeReport({
    title: 'seeds',
    runs: [
      { name: 'OUS', dir: r.runs.ous },
      { name: 'face only', dir: r.runs.faceOnly },
    ],
    out: path.join(out, 'report'),
    seeds: {
      rows: r.seeds.map((s) => ({ seed: s.seed, metrics: { OUS: s.ous, 'face only': s.faceOnly } })),
      gap: ['OUS', 'face only'],
    },
  });
  const md = fs.readFileSync(report.markdown, 'utf8');
  assert.match(md, /## Over 2 seeds/);
  const mean = (100 * r.summary.gap.uar.mean).toFixed(1);
  assert.match(md, new RegExp(`\\| OUS − face only \\| ${mean.replace('.', '\\.')} ± `));
  assert.match(md, new RegExp(`\\| 4 \\| ${(100 * b.ous.uar).toFixed(1).replace('.', '\\.')} \\|`));
  assert.ok(report.figures.some((f) => f.endsWith('seeds.svg') && fs.readFileSync(f, 'utf8').includes('<svg')));
  assert.match(fs.readFileSync(report.html, 'utf8'), /Over 2 seeds/);
});
