// resolveRunConfig, the pure function from everything that names a run's settings to the settings:
// hand-written cases of the precedence (preset < stored < file < --set), the cache's say over its
// data, and one-line refusals that name the key.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { resolveRunConfig, type CacheFacts } from '../src/train/config.js';
import { UserError } from '../src/util/errors.js';

const cache: CacheFacts = {
  dir: 'cache',
  resolved: '/data/cache',
  frames: 8,
  classNames: ['happy', 'sad', 'neutral'],
  polarityOfClass: [0, 1, 2],
};

/** The UserError `fn` throws: one line. */
function refusal(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof UserError, `a UserError, not ${err}`);
    assert.doesNotMatch(err.message, /\n/);
    return err.message;
  }
  assert.fail('expected a refusal');
}

test('preset paper vs demo: the paper setup of §IV-A, the demo its small head and the weight average', () => {
  const paper = resolveRunConfig({ cache });
  assert.equal(paper.preset, 'paper');
  assert.deepEqual(
    [paper.ous.tfeLayers, paper.ous.promptLength, paper.train.lr, paper.train.batchSize, paper.train.epochs],
    [12, 64, 0.002, 16, 60],
  );
  assert.equal(paper.train.emaDecay, null);
  const demo = resolveRunConfig({ preset: 'demo', cache });
  assert.equal(demo.preset, 'demo');
  assert.deepEqual([demo.ous.tfeLayers, demo.ous.promptLength, demo.ous.heads], [2, 8, 4]);
  assert.equal(demo.train.emaDecay, 0.998);
  assert.equal(demo.train.lr, 0.002, 'what the preset leaves alone is the default');
});

test('later sources win: preset < config file < --set, then --model and --seed', () => {
  const r = resolveRunConfig({
    preset: 'demo',
    cache,
    file: { path: 'my.json', ous: { tfeLayers: 3 }, train: { lr: 0.01, batchSize: 8 } },
    overrides: { train: { lr: 0.005 } },
    model: 'face-only',
    seed: 7,
  });
  assert.deepEqual([r.ous.tfeLayers, r.train.lr, r.train.batchSize, r.train.seed], [3, 0.005, 8, 7]);
  assert.equal(r.ous.model, 'face-only');
  assert.equal(r.ous.promptLength, 8, 'the preset still gives what nothing overrides');
});

test("the cache's classes, polarities and frames are the run's", () => {
  const r = resolveRunConfig({ cache });
  assert.deepEqual(r.ous.classNames, cache.classNames);
  assert.equal(r.ous.frames, 8);
  assert.equal(resolveRunConfig({ cache: { ...cache, polarityOfClass: null } }).ous.polarity, false);
  assert.match(
    refusal(() => resolveRunConfig({ cache, overrides: { ous: { frames: 16 } } })),
    /^frames .*8 frames/,
  );
  assert.match(
    refusal(() => resolveRunConfig({ cache, overrides: { ous: { classNames: ['a', 'b'] } } })),
    /^classNames comes from the cache/,
  );
});

test('a bad key or value is one line naming the key and where it came from', () => {
  const unknown = refusal(() => resolveRunConfig({ cache, overrides: { train: { lrr: 1 } as never } }));
  assert.match(unknown, /^training config \(--set\): .*lrr/);
  const bad = refusal(() => resolveRunConfig({ cache, file: { path: 'my.json', train: { batchSize: 0 } } }));
  assert.match(bad, /^training config \(my\.json and --set\): batchSize/);
});

test('a resumed run keeps its settings and cache: only a larger epoch limit may change', () => {
  const first = resolveRunConfig({ cache });
  const stored = { preset: 'paper', ous: first.ous, train: first.train, cache: '/data/cache' };
  const more = resolveRunConfig({ cache, stored, overrides: { train: { epochs: 90 } } });
  assert.equal(more.train.epochs, 90);
  assert.match(
    refusal(() => resolveRunConfig({ cache, stored, out: 'run', overrides: { train: { lr: 0.1 } } })),
    /^train --resume: run was trained with other settings: train\.lr \(run: 0\.002, now: 0\.1\)/,
  );
  assert.match(
    refusal(() => resolveRunConfig({ cache, stored, preset: 'demo' })),
    /preset 'paper', not 'demo'/,
  );
  assert.match(
    refusal(() => resolveRunConfig({ cache: { ...cache, resolved: '/elsewhere' }, stored })),
    /cache \(run: "\/data\/cache", now: "\/elsewhere"\)/,
  );
});
