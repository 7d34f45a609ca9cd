// Training: the code can learn (a label that is a simple function of the features reaches >95%
// WAR in a few epochs, with and without the scene), an interrupted run resumes to exactly the
// same checkpoint, a NaN stops the run and keeps the last good checkpoint; metrics by hand.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { manualSeed, randn, noGrad, tensor, cat, loadSafetensors } from '../src/torch/index.js';
import { buildHead } from '../src/ous/model.js';
import { resolveOusConfig } from '../src/ous/config.js';
import { TensorDataset, stratifiedSplit } from '../src/data/dataset.js';
import { resolveTrainConfig } from '../src/ous/train-config.js';
import { train, evaluate, epochOrder, batchesOf } from '../src/train/trainer.js';
import { metricsOf, rowNormalised } from '../src/train/metrics.js';
import { fixture, goldenTextTower } from './helpers.js';

const golden = JSON.parse(fs.readFileSync(fixture('clip-dev', 'golden.json'), 'utf8'));
const tower = goldenTextTower();

// 7 classes; each clip's face frames are its class prototype plus noise, so the label is a
// simple function of face_emb. Scene and low-level features are noise.
function synthetic(perClass: number, seed: number): TensorDataset {
  manualSeed(seed);
  const T = 4;
  const E = 32;
  const protos = randn([7, E]).mul(2);
  const labels = Array.from({ length: 7 * perClass }, (_, i) => i % 7);
  const face = noGrad(() =>
    protos
      .indexSelect(0, tensor(labels, { dtype: 'int64' }))
      .unsqueeze(1)
      .expand(-1, T, -1)
      .add(randn([labels.length, T, E])),
  );
  return new TensorDataset(face, randn([labels.length, T, E]), randn([labels.length, T, 128]), labels);
}

const ousBase = {
  classNames: golden.coop.classnames,
  promptLength: 4,
  frames: 4,
  tfeLayers: 2,
  tfeQueries: 4,
  heads: 2,
};
const dims = { embed: 32, visionWidth: 128 };
const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'ous-train-'));

test('metrics by hand: UAR, WAR, per-class recall, confusion', () => {
  const m = metricsOf([0, 0, 0, 1, 2, 2], [0, 1, 0, 1, 2, 0], 4);
  assert.deepEqual(m.confusion, [
    [2, 1, 0, 0],
    [0, 1, 0, 0],
    [1, 0, 1, 0],
    [0, 0, 0, 0],
  ]);
  assert.equal(m.war, 4 / 6);
  assert.deepEqual(m.perClassRecall.slice(0, 3), [2 / 3, 1, 1 / 2]);
  assert.ok(Number.isNaN(m.perClassRecall[3]!));
  assert.equal(m.uar, (2 / 3 + 1 + 1 / 2) / 3);
  assert.deepEqual(rowNormalised(m.confusion)[0], [2 / 3, 1 / 3, 0, 0]);
});

test('stratified split: about 10% of every class, seeded, disjoint', () => {
  const labels = Array.from({ length: 100 }, (_, i) => (i < 70 ? 0 : i < 95 ? 1 : 2));
  const all = labels.map((_, i) => i);
  const a = stratifiedSplit(all, labels, 0.1, 1);
  assert.deepEqual(a, stratifiedSplit(all, labels, 0.1, 1));
  assert.notDeepEqual(a.val, stratifiedSplit(all, labels, 0.1, 2).val);
  const count = (idx: number[], c: number) => idx.filter((i) => labels[i] === c).length;
  assert.deepEqual(
    [0, 1, 2].map((c) => count(a.val, c)),
    [7, 3, 1],
  );
  assert.equal(new Set([...a.train, ...a.val]).size, 100);
});

for (const scene of [true, false]) {
  test(`OUS learns a simple labelling to >95% WAR (scene ${scene ? 'on' : 'off'})`, async () => {
    const data = synthetic(24, 1);
    const split = stratifiedSplit([...Array(data.size).keys()], data.labels, 0.15, 0);
    manualSeed(0);
    const ous = resolveOusConfig({ ...ousBase, scene });
    const head = buildHead(ous, dims, tower);
    const r = await train({
      head,
      ous,
      train: resolveTrainConfig({ epochs: 8, lr: 0.002 }),
      data,
      split,
      outDir: tmp(),
      log: () => {},
    });
    const val = evaluate(head, data, split.val);
    assert.ok(val.war > 0.95, `validation WAR ${val.war} after ${r.epochs.length} epochs`);
    if (scene)
      assert.ok(
        r.epochs.some((e) => e.train.phases.global > 0),
        'the global loss ran in some steps',
      );
  });
}

test('an epoch is one pass over the clips whatever their views: ceil(clips / batch) steps', async () => {
  // 17 training clips of 3 views each (51 rows), batch 8: 8 + 8 + 1, the clip left over joins the
  // second batch, so 2 steps an epoch and 17 clips, not 51 rows in 7 steps.
  const data = synthetic(10, 4); // 70 rows
  const clips = Array.from({ length: 17 }, (_, c) => [3 * c, 3 * c + 1, 3 * c + 2]);
  const val = [60, 61, 62, 63, 64, 65, 66];
  for (let epoch = 1; epoch <= 6; epoch++) {
    const order = epochOrder(clips, 0, epoch);
    assert.deepEqual(
      order.map((i) => Math.floor(i / 3)).sort((a, b) => a - b),
      [...Array(17).keys()],
    );
  }
  const seen = new Set([1, 2, 3, 4, 5, 6].flatMap((e) => epochOrder(clips, 0, e)));
  assert.ok(seen.size > 17, `the views are drawn: ${seen.size} rows seen over 6 epochs`);
  assert.deepEqual(
    batchesOf([...Array(17).keys()], 8).map((b) => b.length),
    [8, 9],
  );
  assert.deepEqual(
    batchesOf([...Array(16).keys()], 8).map((b) => b.length),
    [8, 8],
  );
  const ous = resolveOusConfig({ ...ousBase, tfeLayers: 1 });
  const r = await train({
    head: buildHead(ous, dims, tower),
    ous,
    train: resolveTrainConfig({ epochs: 2, batchSize: 8 }),
    data,
    split: { train: clips, val },
    outDir: tmp(),
    log: () => {},
  });
  assert.deepEqual(
    r.epochs.map((e) => [e.train.clips, e.train.steps]),
    [
      [17, 2],
      [17, 2],
    ],
  );
});

for (const emaDecay of [null, 0.9])
  test(`an interrupted run resumed ends as one uninterrupted run (emaDecay ${emaDecay}): same checkpoint`, async () => {
    const data = synthetic(6, 2);
    const split = stratifiedSplit([...Array(data.size).keys()], data.labels, 0.2, 0);
    const ous = resolveOusConfig({ ...ousBase, tfeLayers: 1 });
    const cfg = resolveTrainConfig({ epochs: 4, seed: 3, emaDecay });
    const run = async (dir: string, opts: { stopAfter?: number; resume?: boolean }) => {
      manualSeed(cfg.seed);
      const head = buildHead(ous, dims, tower);
      return train({
        head,
        ous,
        train: cfg,
        data,
        split,
        outDir: dir,
        resume: opts.resume,
        log: () => {},
        onEpoch: (e) => {
          if (e.epoch === opts.stopAfter) throw new Error('killed');
        },
      });
    };
    const a = tmp();
    await run(a, {});
    const b = tmp();
    await assert.rejects(run(b, { stopAfter: 2 }), /killed/);
    const resumed = await run(b, { resume: true });
    assert.equal(resumed.epochs.length, 4);
    assert.deepEqual(
      fs.readFileSync(path.join(b, 'checkpoint.safetensors')),
      fs.readFileSync(path.join(a, 'checkpoint.safetensors')),
    );
    assert.deepEqual(
      fs.readFileSync(path.join(b, 'last.safetensors')),
      fs.readFileSync(path.join(a, 'last.safetensors')),
    );
    const lines = (d: string) =>
      fs
        .readFileSync(path.join(d, 'metrics.jsonl'), 'utf8')
        .trim()
        .split('\n')
        .map((l) => {
          const r = JSON.parse(l);
          delete r.seconds;
          return r;
        });
    assert.deepEqual(lines(b), lines(a));
    const config = JSON.parse(fs.readFileSync(path.join(a, 'config.json'), 'utf8'));
    assert.equal(config.ous.tfeLayers, 1);
    assert.equal(config.train.seed, 3);
  });

test('with emaDecay the checkpoint holds the weight average, and the trained weights go on training', async () => {
  const data = synthetic(6, 2);
  const split = stratifiedSplit([...Array(data.size).keys()], data.labels, 0.2, 0);
  const ous = resolveOusConfig({ ...ousBase, tfeLayers: 1 });
  const dir = tmp();
  const cfg = resolveTrainConfig({ epochs: 1, seed: 2, emaDecay: 0.9 });
  manualSeed(cfg.seed);
  const head = buildHead(ous, dims, tower);
  await train({ head, ous, train: cfg, data, split, outDir: dir, log: () => {} });
  // One epoch: it is the best, so the checkpoint is the average after that epoch's steps.
  const ckpt = loadSafetensors(path.join(dir, 'checkpoint.safetensors'));
  const last = loadSafetensors(path.join(dir, 'last.safetensors'));
  const trainable = [...head.namedParameters()].filter(([, p]) => p.requiresGrad).map(([n]) => n);
  assert.ok(trainable.length > 3);
  trainable.forEach((name, i) => {
    assert.deepEqual(ckpt.get(name)!.toFlatArray(), last.get(`average.${i}`)!.toFlatArray(), name);
    assert.deepEqual(last.get(`model.${name}`)!.toFlatArray(), head.stateDict().get(name)!.toFlatArray(), name);
  });
  const moved = trainable.filter(
    (n) =>
      ckpt
        .get(n)!
        .sub(last.get(`model.${n}`)!)
        .abs()
        .max()
        .item() > 1e-6,
  );
  assert.ok(moved.length > trainable.length / 2, `the average differs from the trained weights (${moved.length})`);
});

test('emaDecay 0 (the average is the weights) trains as no average: lending and restoring change nothing', async () => {
  const data = synthetic(6, 2);
  const split = stratifiedSplit([...Array(data.size).keys()], data.labels, 0.2, 0);
  const ous = resolveOusConfig({ ...ousBase, tfeLayers: 1 });
  const run = async (emaDecay: number | null) => {
    const dir = tmp();
    const cfg = resolveTrainConfig({ epochs: 3, seed: 5, emaDecay });
    manualSeed(cfg.seed);
    await train({ head: buildHead(ous, dims, tower), ous, train: cfg, data, split, outDir: dir, log: () => {} });
    // the weights (the metadata records each run's own config, emaDecay included)
    const sd = loadSafetensors(path.join(dir, 'checkpoint.safetensors'));
    return [...sd].map(([k, t]) => [k, t.toFlatArray()]);
  };
  assert.deepEqual(await run(0), await run(null));
});

test('a NaN loss stops the run with a clear message and keeps the last good checkpoint', async () => {
  const data = synthetic(4, 3);
  const split = stratifiedSplit([...Array(data.size).keys()], data.labels, 0.2, 0);
  const ous = resolveOusConfig({ ...ousBase, tfeLayers: 1 });
  const dir = tmp();
  manualSeed(0);
  const head = buildHead(ous, dims, tower);
  await train({ head, ous, train: resolveTrainConfig({ epochs: 1 }), data, split, outDir: dir, log: () => {} });
  const before = fs.readFileSync(path.join(dir, 'checkpoint.safetensors'));
  // Poison the features of every training clip.
  const poisoned = new TensorDataset(
    cat([data.batch(split.train).face.mul(NaN), data.batch(split.val).face]),
    cat([data.batch(split.train).scene, data.batch(split.val).scene]),
    cat([data.batch(split.train).low, data.batch(split.val).low]),
    [...split.train, ...split.val].map((i) => data.labels[i]!),
  );
  const reSplit = { train: split.train.map((_, i) => i), val: split.val.map((_, i) => split.train.length + i) };
  await assert.rejects(
    train({
      head,
      ous,
      train: resolveTrainConfig({ epochs: 3 }),
      data: poisoned,
      split: reSplit,
      outDir: dir,
      resume: true,
      log: () => {},
    }),
    /epoch 2, step 1: the loss is NaN .* stopping\. The last good checkpoint is kept/,
  );
  assert.deepEqual(fs.readFileSync(path.join(dir, 'checkpoint.safetensors')), before);
});
