// A run is never overwritten or resumed against the user's intent: an existing
// run needs --resume or --force; --resume refuses another cache or config and lists the
// differences; a larger epoch limit is the one change allowed, and the run records it. Checks that
// can refuse come before anything is written. With no settings a run is the paper's configuration; a
// config.json edited after training is refused; ablate's rows run at the paper's settings.
import { before, test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { OusConfig } from '../src/ous/config.js';
import type { TrainConfig } from '../src/ous/train-config.js';
import { evalRun, trainRun } from '../src/train/run.js';
import { UserError } from '../src/util/errors.js';
import { recordTrainedConfig, tinyCache } from './helpers.js';
import { spawnSync } from 'node:child_process';
import { packageRoot } from '../src/util/paths.js';

const cli = path.join(packageRoot(), 'dist', 'src', 'cli', 'main.js');

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ous-train-runs-'));
const at = (...p: string[]) => path.join(dir, ...p);
const base = { ous: { tfeLayers: 1, promptLength: 2, heads: 2 }, train: { epochs: 1 } };
/** The base settings with these on top. */
const over = (ous: Partial<OusConfig>, train: Partial<TrainConfig> = {}) => ({
  ous: { ...base.ous, ...ous },
  train: { ...base.train, ...train },
});
const lines = (f: string) => fs.readFileSync(f, 'utf8').split('\n').filter(Boolean);
const opts = (out: string, extra: Partial<Parameters<typeof trainRun>[0]> = {}) => ({
  cache: at('c7'),
  out,
  overrides: base,
  log: () => {},
  ...extra,
});

before(async () => {
  tinyCache(at('c7'));
  tinyCache(at('c7b'), { seed: 1 });
  await trainRun(opts(at('run')));
});

test('an existing run is not overwritten without --force, and --force replaces it', async () => {
  const ckpt = fs.readFileSync(at('run', 'checkpoint.safetensors'));
  await assert.rejects(
    trainRun(opts(at('run'))),
    (e: Error) =>
      e instanceof UserError && /already holds a run \(1 epochs\): pass --resume .* --force/.test(e.message),
  );
  assert.deepEqual(fs.readFileSync(at('run', 'checkpoint.safetensors')), ckpt);
  fs.cpSync(at('run'), at('forced'), { recursive: true });
  // looks like 2 epochs
  fs.appendFileSync(at('forced', 'metrics.jsonl'), fs.readFileSync(at('forced', 'metrics.jsonl')));
  await trainRun(opts(at('forced'), { force: true, overrides: over({}, { lr: 0.001 }) }));
  assert.equal(lines(at('forced', 'metrics.jsonl')).length, 1, 'the old metrics are gone');
  assert.equal(JSON.parse(fs.readFileSync(at('forced', 'config.json'), 'utf8')).train.lr, 0.001);
});

test('--resume refuses another cache or another config, naming each difference', async () => {
  await assert.rejects(
    trainRun(opts(at('run'), { resume: true, cache: at('c7b') })),
    /cache \(run: ".*c7", now: ".*c7b"\)/,
  );
  await assert.rejects(
    trainRun(opts(at('run'), { resume: true, overrides: over({ promptLength: 3 }, { lr: 0.1 }) })),
    (e: Error) =>
      /ous\.promptLength \(run: 2, now: 3\)/.test(e.message) && /train\.lr \(run: 0\.002, now: 0\.1\)/.test(e.message),
  );
  await assert.rejects(
    trainRun(opts(at('run'), { resume: true, model: 'face-only' })),
    /ous\.model \(run: "ous", now: "face-only"\)/,
  );
  await assert.rejects(trainRun(opts(at('run'), { resume: true, seed: 5 })), /train\.seed \(run: 0, now: 5\)/);
});

test('--resume with a larger epochs trains on and records it in config.json', async () => {
  fs.cpSync(at('run'), at('longer'), { recursive: true });
  const r = await trainRun(opts(at('longer'), { resume: true, overrides: over({}, { epochs: 3 }) }));
  assert.equal(r.epochs.length, 3);
  assert.equal(lines(at('longer', 'metrics.jsonl')).length, 3);
  const conf = JSON.parse(fs.readFileSync(at('longer', 'config.json'), 'utf8'));
  assert.equal(conf.train.epochs, 3);
  assert.equal(conf.resumes.length, 1);
  assert.deepEqual([conf.resumes[0].afterEpoch, ...conf.resumes[0].epochs], [1, 1, 3]);
  // A smaller limit is a difference like any other.
  await assert.rejects(
    trainRun(opts(at('longer'), { resume: true, overrides: over({}, { epochs: 2 }) })),
    /train\.epochs \(run: 3, now: 2\)/,
  );
});

const refusedClassesTitle =
  '3 class names on a 7-class cache, or heads that do not divide E: refused before the run folder exists';
test(refusedClassesTitle, async () => {
  await assert.rejects(
    trainRun(opts(at('classes'), { overrides: over({ classNames: ['a', 'b', 'c'], polarityOfClass: [0, 1, 2] }) })),
    /classNames comes from the cache \(.*c7: \["happy",.*"fear"\]\), not \["a","b","c"\]/,
  );
  assert.equal(fs.existsSync(at('classes')), false);
  await assert.rejects(
    trainRun(opts(at('heads'), { overrides: over({ heads: 3 }) })),
    /heads = 3 does not divide the encoder width E = 32/,
  );
  assert.equal(fs.existsSync(at('heads')), false);
});

test('a run that diverges before its first epoch ends says there is no checkpoint', async () => {
  await assert.rejects(
    trainRun(opts(at('diverged'), { overrides: over({}, { lr: 1e308 }) })),
    (e: Error) =>
      e instanceof UserError &&
      /No epoch finished, so there is no checkpoint/.test(e.message) &&
      !/is kept/.test(e.message),
  );
  assert.equal(fs.existsSync(at('diverged', 'checkpoint.safetensors')), false);
});

test("no settings: the paper's configuration (§IV-A, Table VI's M = 64), and config.json shows it", async () => {
  // Stopped after its first epoch (the whole run is 60): the configuration is what is checked.
  const stop = new Error('stop after epoch 1');
  await assert.rejects(
    trainRun({
      cache: at('c7'),
      out: at('paper'),
      log: (l) => {
        if (l.startsWith('epoch 1/')) throw stop;
      },
    }),
    (e) => e === stop,
  );
  const c = JSON.parse(fs.readFileSync(at('paper', 'config.json'), 'utf8'));
  assert.equal(c.preset, 'paper');
  const { promptLength, tfeLayers, loss, fusion, scene, polarity, reduction, alignLstm } = c.ous;
  assert.deepEqual(
    { promptLength, tfeLayers, loss, fusion, scene, polarity, reduction, alignLstm },
    {
      promptLength: 64,
      tfeLayers: 12,
      loss: 'global',
      fusion: 'tfe',
      scene: true,
      polarity: true,
      reduction: 'sum',
      alignLstm: false,
    },
  );
  const { lr, batchSize, epochs, plateauFactor, plateauPatience, minLr, emaDecay } = c.train;
  assert.deepEqual(
    { lr, batchSize, epochs, plateauFactor, plateauPatience, minLr, emaDecay },
    { lr: 0.002, batchSize: 16, epochs: 60, plateauFactor: 1 / 3, plateauPatience: 5, minLr: 1e-7, emaDecay: null },
  );
});

test('a config.json edited after training (classes renamed consistently) is refused at eval, naming the keys', () => {
  fs.cpSync(at('run'), at('renamed'), { recursive: true });
  const file = at('renamed', 'config.json');
  const c = JSON.parse(fs.readFileSync(file, 'utf8'));
  const renamed = (names: string[]) => names.map((n) => `${n}-ish`);
  c.ous.classNames = renamed(c.ous.classNames);
  c.recipe.classNames = renamed(c.recipe.classNames);
  fs.writeFileSync(file, JSON.stringify(c, null, 2));
  assert.throws(
    () => evalRun(at('renamed')),
    (e: Error) =>
      e instanceof UserError &&
      /config\.json is not the config .*checkpoint\.safetensors was trained with/.test(e.message) &&
      /\(ous\.classNames, recipe\.classNames differ\)/.test(e.message),
  );
  // the run as trained still loads
  assert.ok(evalRun(at('run')).n > 0);
});

const recipeRecordTitle =
  'the record covers the stream recipe: a face crop edited after training is refused; ' +
  'a record from before the recipe loads';
test(recipeRecordTitle, () => {
  fs.cpSync(at('run'), at('recrop'), { recursive: true });
  const file = at('recrop', 'config.json');
  const c = JSON.parse(fs.readFileSync(file, 'utf8'));
  c.recipe.crop.enlarge = 0.5; // prediction would crop faces the head never saw
  fs.writeFileSync(file, JSON.stringify(c, null, 2));
  assert.throws(
    () => evalRun(at('recrop')),
    (e: Error) => e instanceof UserError && /\(recipe\.crop\.enlarge differ\)/.test(e.message),
  );
  // A checkpoint recorded before the record held the recipe: its record has no `recipe`, so the
  // recipe is not compared (the rest still is).
  fs.cpSync(at('run'), at('older'), { recursive: true });
  recordTrainedConfig(at('older'), (settings) => delete settings.recipe);
  assert.ok(evalRun(at('older')).n > 0);
  const o = JSON.parse(fs.readFileSync(at('older', 'config.json'), 'utf8'));
  o.ous.classNames = o.ous.classNames.map((n: string) => `${n}-ish`);
  o.recipe.classNames = o.ous.classNames;
  fs.writeFileSync(at('older', 'config.json'), JSON.stringify(o, null, 2));
  assert.throws(() => evalRun(at('older')), /\(ous\.classNames differ\)/);
});

test("ous ablate --table IV: each row at the paper's settings (M = 64), beside the paper's numbers", async () => {
  const out = at('ablate-IV');
  const argv = ['--table', 'IV', '--cache', at('c7'), '--out', out, '--set', 'epochs=1', '--set', 'tfeLayers=1'];
  const r = spawnSync(process.execPath, [cli, 'ablate', ...argv, '--set', 'heads=2'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const table = fs.readFileSync(path.join(out, 'table-IV.md'), 'utf8');
  assert.match(table, /Every row: the paper preset \(promptLength 64, tfeLayers 12, .*lr 0\.002, batchSize 16/);
  const rows = table.split('\n').filter((l) => /^\| L_/.test(l));
  assert.deepEqual(
    rows.map((l) => l.split(' | ').slice(0, 2).join(' | ')),
    [
      '| L_ce | M 64, TFE 1, L_ce, avgpool, ≤1 epochs',
      '| L_global | M 64, TFE 1, L_global, avgpool, ≤1 epochs',
      '| L_ce + TFE | M 64, TFE 1, L_ce, tfe, ≤1 epochs',
      '| L_global + TFE | M 64, TFE 1, L_global, tfe, ≤1 epochs',
    ],
  );
  assert.match(rows[3]!, /\| 42\.43 \| 53\.30 \| 6 \|$/);
  for (const d of ['L_ce', 'L_global', 'L_ce_TFE', 'L_global_TFE'])
    assert.equal(JSON.parse(fs.readFileSync(path.join(out, d, 'config.json'), 'utf8')).ous.promptLength, 64);
});
