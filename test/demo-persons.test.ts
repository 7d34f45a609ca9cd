// Everyone in the video, measured (issue 26): a manifest may list one clip once per person (a box on
// each row), each row its own clip id; `ous demo --persons 2` extracts, trains and scores every
// person of the two-person benchmark. Here at a tiny size (3 classes, 2 frames, 2 epochs): the
// plumbing, against numbers worked out by hand and against persons.csv read back as text. The
// accuracy itself is measured over seeds at the quick size (README), not asserted here.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { readManifest } from '../src/data/datasets.js';
import { extractFeatures } from '../src/data/extract.js';
import { FeatureCache, mergeCache } from '../src/data/cache.js';
import { FrameEncoder } from '../src/clip/frame-encoder.js';
import { demoEncoderDir } from '../src/demo/run.js';
import { loadRun, evalLoaded } from '../src/train/run.js';
import { runPersonsDemo, scoresByRole, writePersonsReport } from '../src/demo/persons.js';
import { packageRoot } from '../src/util/paths.js';
import { CLASSES, generateBenchmark } from '../src/synthetic/benchmark.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ous-demo-persons-'));

test('a clip listed once per person: each box its own id (path#xywh=...), a box twice or alone refused', async () => {
  const out = path.join(tmp, 'reader');
  await generateBenchmark(
    {
      out,
      seed: 1,
      trainPerClass: 1,
      testPerClass: 0,
      frames: 1,
      width: 96,
      height: 72,
      agreement: 1,
      classes: 2,
      persons: 2,
    },
    { progress: false },
  );
  const csv = (name: string, rows: string[]) => {
    fs.writeFileSync(path.join(out, name), ['path,label,split,box', ...rows].join('\n') + '\n');
    return path.join(out, name);
  };
  const [a, b] = fs
    .readdirSync(path.join(out, 'videos'))
    .sort()
    .map((f) => `videos/${f}`);
  const two = readManifest(
    csv('two.csv', [`${a},happy,train,10 20 30 40`, `${a},sad,train,50 20 30 40`, `${b},sad,test,1 2 3 4`]),
    undefined,
    ['happy', 'sad'],
  );
  assert.deepEqual(
    two.entries.map((e) => [e.id, e.label, e.faceBox]),
    [
      [`${a}#xywh=10,20,30,40`, 0, [10, 20, 30, 40]],
      [`${a}#xywh=50,20,30,40`, 1, [50, 20, 30, 40]],
      [b, 1, [1, 2, 3, 4]], // listed once: its key is its path, with no box
    ],
  );
  // Rows reordered: the same ids.
  const swapped = readManifest(
    csv('swapped.csv', [`${a},sad,train,50 20 30 40`, `${b},sad,test,1 2 3 4`, `./${a},happy,train,10 20 30 40`]),
    undefined,
    ['happy', 'sad'],
  );
  assert.deepEqual(swapped.entries.map((e) => e.id).sort(), two.entries.map((e) => e.id).sort());
  const where = (file: string, line: number) => `${file}:${line}`;
  const same = csv('same.csv', [`${a},happy,train,10 20 30 40`, `./${a},sad,train,10 20 30 40`]);
  assert.throws(
    () => readManifest(same, undefined, ['happy', 'sad']),
    (err: Error) => err.message.includes(`${where(same, 2)} and ${where(same, 3)} are the same clip (box 10 20 30 40)`),
  );
  const mixed = csv('mixed.csv', [`${a},happy,train,10 20 30 40`, `${a},sad,train,`]);
  assert.throws(
    () => readManifest(mixed, undefined, ['happy', 'sad']),
    (err: Error) =>
      err.message.includes(`${where(mixed, 2)} and ${where(mixed, 3)} list the same clip`) &&
      err.message.includes('one with a box and one without'),
  );
});

test("extracting a clip listed per person: a clip each, their own crops; one person's failure is theirs", async () => {
  const out = path.join(tmp, 'rows');
  const bench = await generateBenchmark(
    {
      out,
      seed: 2,
      trainPerClass: 1,
      testPerClass: 0,
      frames: 2,
      width: 96,
      height: 72,
      agreement: 1,
      classes: 2,
      persons: 2,
    },
    { progress: false },
  );
  const clip = bench.clips[0]!;
  const rel = path.relative(out, clip.file);
  const [left, right] = clip.persons!;
  const names = ['happy', 'sad'];
  const write = (rightBox: string) =>
    fs.writeFileSync(
      path.join(out, 'rows.csv'),
      `path,label,box\n${rel},${names[left!.label]},${left!.faceBox.join(' ')}\n` +
        `${rel},${names[right!.label]},${rightBox}\n`,
    );
  const encoder = FrameEncoder.load(demoEncoderDir());
  const cache = path.join(out, 'cache');
  const info = {
    clip: { path: demoEncoderDir(), hash: encoder.hash },
    frames: 2,
    scene: 'mask' as const,
    views: 1,
    polarityLayer: 4,
    dataset: 'manifest',
    classNames: names,
    polarityOfClass: null,
  };
  const extract = async () =>
    extractFeatures({
      entries: readManifest(path.join(out, 'rows.csv'), undefined, names).entries,
      encoder,
      out: cache,
      info,
      progress: false,
      log: () => {},
    });
  // The right person's box lies outside the 96x72 frame: that row fails, the left one extracts and merges.
  write('500 500 10 10');
  const bad = await extract();
  const rightId = `${rel}#xywh=500,500,10,10`;
  assert.deepEqual([bad.done, bad.failed.map((f) => f.key)], [1, [rightId]]);
  const merged = mergeCache(cache);
  assert.deepEqual([merged.clips, merged.failed.map((f) => f.key), merged.missing], [1, [rightId], []]);
  // The box put right: only that person is extracted now; the old failure goes with the row.
  write(right!.faceBox.join(' '));
  const good = await extract();
  assert.deepEqual([good.done, good.skipped, good.failed], [1, 1, []]);
  assert.deepEqual(mergeCache(cache).failed, []);
  const c = FeatureCache.open(cache);
  const ids = [left!, right!].map((p) => `${rel}#xywh=${p.faceBox.join(',')}`);
  assert.deepEqual(
    c.records.map((r) => r.key),
    ids,
  );
  // Each record's crop (the face box squared and enlarged) holds that person's face box, and not the other's.
  const holds = (o: readonly number[] | null, i: readonly number[]) =>
    o !== null && o[0]! <= i[0]! && o[1]! <= i[1]! && o[0]! + o[2]! >= i[0]! + i[2]! && o[1]! + o[3]! >= i[1]! + i[3]!;
  c.records.forEach((r, k) => {
    const [mine, theirs] = k === 0 ? [left!, right!] : [right!, left!];
    assert.ok(
      r.boxes.every((b) => holds(b, mine.faceBox) && !holds(b, theirs.faceBox)),
      `${r.key}: ${JSON.stringify(r.boxes)}`,
    );
  });
  // Two crops of two faces: their face features differ; their scenes (each masking another face) too.
  const b = c.data.batch([0, 1]);
  const [fa, fb] = b.face.toArray() as number[][][];
  assert.ok(fa!.flat().some((v, i) => Math.abs(v - fb!.flat()[i]!) > 1e-3));
});

test('scores by role: UAR and WAR per role and over all rows, worked out by hand', () => {
  // first: class 0 recalled 1 of 2, class 1 1 of 1 -> UAR (0.5 + 1) / 2 = 0.75, WAR 2/3;
  // second: class 1 0 of 1, class 2 1 of 1 -> UAR 0.5, WAR 1/2;
  // all: class 0 1/2, class 1 1/2, class 2 1/1 -> UAR 2/3, WAR 3/5.
  const rows = [
    { role: 'first' as const, label: 0 },
    { role: 'first' as const, label: 0 },
    { role: 'first' as const, label: 1 },
    { role: 'second' as const, label: 1 },
    { role: 'second' as const, label: 2 },
  ];
  const s = scoresByRole(rows, [0, 1, 1, 2, 2], 3);
  assert.deepEqual(s.first, { uar: 0.75, war: 2 / 3, n: 3 });
  assert.deepEqual(s.second, { uar: 0.5, war: 0.5, n: 2 });
  assert.equal(s.all.n, 5);
  assert.ok(Math.abs(s.all.uar - 2 / 3) < 1e-12 && s.all.war === 0.6);
});

test('ous demo --persons 2, tiny: a row per person, both models scored per role, the per-person table', async () => {
  const out = path.join(tmp, 'demo');
  const size = { trainPerClass: 3, testPerClass: 2, frames: 2, epochs: 2 };
  const r = await runPersonsDemo({ out, seed: 3, agreement: 0.9, classes: 3, progress: false, log: () => {} }, size);
  // persons.csv, read as text: path,person,label,split,box,role.
  const csv = fs
    .readFileSync(path.join(out, 'persons', 'benchmark', 'persons.csv'), 'utf8')
    .trim()
    .split('\n')
    .slice(1)
    .map((l) => l.split(','));
  assert.equal(csv.length, 2 * (3 + 2) * 3); // two persons per clip, 5 clips per class, 3 classes
  const idOf = (c: string[]) => `${c[0]}#xywh=${c[4]!.split(' ').join(',')}`;
  const testRows = csv.filter((c) => c[3] === 'test');
  assert.equal(r.rows.train, csv.length - testRows.length);
  assert.deepEqual(r.rows.test.map((t) => t.id).sort(), testRows.map(idOf).sort());
  const byId = new Map(testRows.map((c) => [idOf(c), c]));
  for (const t of r.rows.test) {
    const c = byId.get(t.id)!;
    assert.deepEqual([t.role, CLASSES[t.label]], [c[5], c[2]], t.id);
  }
  assert.equal(r.ous.first.n + r.ous.second.n, 2 * 2 * 3);
  // Each model's test predictions, read again from its run folder, scored by hand per role.
  const byHand = (run: string, role: string) => {
    const loaded = loadRun(run);
    const m = evalLoaded(loaded);
    const recall = new Map<number, { hit: number; n: number }>();
    let hit = 0;
    let n = 0;
    loaded.splits.test.forEach((i, k) => {
      const c = byId.get(loaded.cache.records[i]!.key)!;
      if (role !== 'all' && c[5] !== role) return;
      const label = CLASSES.indexOf(c[2] as (typeof CLASSES)[number]);
      const rc = recall.get(label) ?? { hit: 0, n: 0 };
      rc.n += 1;
      n += 1;
      if (m.predictions[k] === label) (rc.hit += 1), (hit += 1);
      recall.set(label, rc);
    });
    const rs = [...recall.values()].map((v) => v.hit / v.n);
    return { uar: rs.reduce((x, y) => x + y, 0) / rs.length, war: hit / n, n };
  };
  for (const role of ['first', 'second', 'all'] as const) {
    for (const [model, run] of [
      ['ous', r.runs.ous],
      ['faceOnly', r.runs.faceOnly],
    ] as const) {
      const want = byHand(run, role);
      const got = r[model][role];
      assert.equal(got.n, want.n, `${model} ${role}`);
      assert.ok(
        Math.abs(got.uar - want.uar) < 1e-12 && Math.abs(got.war - want.war) < 1e-12,
        `${model} ${role}: ${JSON.stringify(got)} vs ${JSON.stringify(want)}`,
      );
    }
  }
  const rep = await writePersonsReport(r, {
    title: 'tiny',
    out: path.join(out, 'persons', 'report'),
    notes: [],
    seed: 3,
  });
  const md = fs.readFileSync(rep.markdown, 'utf8');
  const p = (v: number) => (100 * v).toFixed(1);
  assert.ok(md.includes('## Per person on the test split (%)'));
  assert.ok(
    md.includes(
      `| first-drawn person | ${r.ous.first.n} | ${p(r.ous.first.uar)} | ${p(r.ous.first.war)} | ` +
        `${p(r.faceOnly.first.uar)} | ${p(r.faceOnly.first.war)} | ${p(r.ceilings.first.face)} | ` +
        `${p(r.ceilings.first.faceScene)} |`,
    ),
    md,
  );
  assert.ok(fs.readFileSync(rep.html, 'utf8').includes('<h2>Per person on the test split (%)</h2>'));
});

test('ous demo --persons: 1 or 2, anything else a usage error', () => {
  const cli = path.join(packageRoot(), 'dist', 'src', 'cli', 'main.js');
  const bad = spawnSync(process.execPath, [cli, 'demo', '--persons', '3', '--out', path.join(tmp, 'bad')], {
    encoding: 'utf8',
  });
  assert.equal(bad.status, 2);
  assert.equal(bad.stderr, "ous: demo: --persons must be 1 or 2, not '3'\n");
});
