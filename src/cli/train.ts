// `ous train` and `ous eval`: OUS (or the face-only baseline) on a feature cache, and its metrics.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Command } from './command.js';
import { UsageError, UserError } from '../util/errors.js';
import { COMMON, parseFlags, usageText, type Flags } from './flags.js';
import { parseSets } from './sets.js';
import { evalRun, loadRun, readRunConfig, trainRun } from '../train/run.js';
import { writePerClip } from '../train/per-clip.js';
import { cacheInfoOf } from '../data/cache.js';
import { pathKind } from '../util/fs.js';
import { formatSpread, spreadOf } from '../train/metrics.js';
import { DEFAULT_PRESET, PRESETS, PRESET_NAMES } from '../ous/presets.js';

/**
 * A run's real path (symlinks followed) to tell two names of
 * one run apart; a missing one stays as given (eval names it).
 */
function realPath(p: string): string {
  try {
    return fs.realpathSync(p);
  } catch {
    return path.resolve(p);
  }
}

const TRAIN_FLAGS = {
  cache: { type: { kind: 'text' }, value: 'DIR', required: true, help: 'the feature cache (ous extract)' },
  out: { type: { kind: 'text' }, value: 'RUN', required: true, help: 'the run folder to write' },
  preset: {
    type: { kind: 'choice', of: PRESET_NAMES },
    help:
      `the named settings under --config and --set (src/ous/presets.ts; default ${DEFAULT_PRESET}, a resumed run ` +
      `keeps its own): ${PRESET_NAMES.map((n) => `${n}, ${PRESETS[n].summary}`).join('; ')}`,
  },
  config: {
    type: { kind: 'text' },
    value: 'FILE.json',
    help: '{"ous": {...}, "train": {...}}: settings over the preset',
  },
  set: {
    type: { kind: 'text' },
    value: 'key=value',
    multiple: true,
    help: 'one setting (a field of src/ous/config.ts or src/ous/train-config.ts); repeatable',
  },
  model: { type: { kind: 'choice', of: ['ous', 'face-only'] }, help: 'OUS, or the face-only baseline (SPEC.md §8)' },
  seed: COMMON.seed,
  device: COMMON.device,
  clip: {
    type: { kind: 'text' },
    value: 'DIR',
    help: "the CLIP the cache was extracted with, when it moved (checked against the cache's hash)",
  },
  resume: {
    type: { kind: 'switch' },
    help: 'continue the run in --out (only a larger epochs may change; recorded in its config.json)',
  },
  force: { type: { kind: 'switch' }, help: 'replace the run in --out' },
} as const satisfies Flags;

/**
 * The training log on stderr, but for the line of a diverging loss: that line is the error the
 * command ends with (`ous: epoch 1, step 2: the loss is NaN ...`), said once. train.log has both.
 */
function logButDivergence(line: string): void {
  if (/^epoch \d+, step \d+: the loss is /.test(line)) return;
  process.stderr.write(line + '\n');
}

export const trainCommand: Command = {
  usage: usageText('train', TRAIN_FLAGS, {
    notes:
      'An existing run is never overwritten without --resume or --force. A run folder is locked (RUN/lock) ' +
      'while it trains: a second ous train into it is refused; the lock of a killed trainer is taken over.',
  }),
  async run(argv) {
    const { values } = parseFlags('train', argv, TRAIN_FLAGS);
    if (values.resume && values.force)
      throw new UsageError('train: --resume continues a run and --force replaces it: give one of them');
    const r = await trainRun({
      cache: values.cache,
      out: values.out,
      preset: values.preset,
      config: values.config,
      overrides: parseSets(values.set),
      model: values.model,
      seed: values.seed,
      device: values.device,
      clip: values.clip,
      resume: values.resume,
      force: values.force,
      log: logButDivergence,
    });
    process.stdout.write(
      `best epoch ${r.bestEpoch} (validation loss ${r.bestValLoss.toFixed(4)}); ` +
        `${r.stopReason}; run in ${values.out}\n`,
    );
    return 0;
  },
};

/**
 * What `eval --folds` averages must be one experiment: runs of distinct folds of one data set, with
 * one configuration and features made alike. Else one line names what differs (the first run is
 * the reference). A run whose cache is gone is left to evalRun, which names it.
 */
function checkFolds(runs: string[]): void {
  const facts = runs.map((r) => {
    const conf = readRunConfig(r);
    const info = pathKind(path.join(conf.cache, 'cache.json')) === 'missing' ? undefined : cacheInfoOf(conf.cache);
    const { seed: _, ...train } = conf.train;
    const flat: Record<string, unknown> = {};
    if (info) {
      flat.dataset = info.dataset;
      for (const k of ['frames', 'scene', 'views', 'polarityLayer', 'precision'] as const) flat[`cache.${k}`] = info[k];
      flat['cache.clip'] = info.clip.hash.slice(0, 12);
    }
    for (const [k, v] of Object.entries(conf.ous)) flat[`ous.${k}`] = v;
    for (const [k, v] of Object.entries(train)) flat[`train.${k}`] = v;
    return { run: r, fold: info?.fold, dataset: info?.dataset, flat };
  });
  const [first, ...rest] = facts;
  const differs: string[] = [];
  for (const f of rest) {
    const keys = Object.keys(first!.flat).filter(
      (k) => k in f.flat && JSON.stringify(first!.flat[k]) !== JSON.stringify(f.flat[k]),
    );
    differs.push(
      ...keys.map(
        (k) => `${k} (${first!.run}: ${JSON.stringify(first!.flat[k])}, ${f.run}: ${JSON.stringify(f.flat[k])})`,
      ),
    );
  }
  const noFold = facts.find((f) => f.dataset !== undefined && f.fold === undefined);
  if (noFold) differs.push(`${noFold.run}'s cache (${noFold.dataset}) has no fold`);
  const byFold = new Map<number, string>();
  for (const f of facts) {
    if (f.fold === undefined) continue;
    const other = byFold.get(f.fold);
    if (other !== undefined) differs.push(`${other} and ${f.run} are both fold ${f.fold}`);
    byFold.set(f.fold, f.run);
  }
  if (differs.length)
    throw new UserError(
      `eval --folds averages distinct folds of one data set with one configuration (the seed aside): ` +
        `${differs.slice(0, 4).join('; ')}${differs.length > 4 ? `; ... ${differs.length} differences in all` : ''}`,
    );
}

const EVAL_FLAGS = {
  run: { type: { kind: 'text' }, value: 'RUN', help: 'the run to evaluate' },
  folds: {
    type: { kind: 'switch' },
    help: "the RUNs given after the flags are a data set's folds: each, and their mean",
  },
  seeds: {
    type: { kind: 'switch' },
    help:
      'the RUNs given after the flags are one setting with different seeds: ' +
      'each, and mean ± std (n − 1), min and max',
  },
  split: { type: { kind: 'choice', of: ['test', 'val'] }, default: 'test', help: 'the split to evaluate' },
  device: COMMON.device,
  clip: {
    type: { kind: 'text' },
    value: 'DIR',
    help: "where the run's CLIP is now, when it moved since training (checked by hash)",
  },
  cache: { type: { kind: 'text' }, value: 'DIR', help: "where the run's feature cache is now (one --run only)" },
  json: COMMON.json,
  'per-clip': {
    type: { kind: 'text' },
    value: 'FILE.csv',
    help: "one row per clip: its id, true label, predicted label and each class's probability (one --run only)",
  },
} as const satisfies Flags;

export const evalCommand: Command = {
  usage: usageText('eval', EVAL_FLAGS, { positionals: '[RUN...]' }),
  async run(argv) {
    const { values, positionals } = parseFlags('eval', argv, EVAL_FLAGS, { positionals: 'RUN...' });
    if (values.folds && values.seeds)
      throw new UsageError('eval: --folds and --seeds are two ways to read several runs: give one of them');
    const runs = values.folds || values.seeds ? positionals : values.run ? [values.run] : [];
    if (!runs.length) throw new UsageError('eval: give --run RUN, --folds RUN1 RUN2 ..., or --seeds RUN1 RUN2 ...');
    if (runs.length > 1 && values.cache)
      throw new UsageError(
        `eval: --cache is for one --run (each of ${values.folds ? 'the folds' : 'the seeds'} has its own cache)`,
      );
    // The same run twice (or through two paths) would count twice in the mean.
    const seen = new Map<string, string>();
    for (const r of runs) {
      const real = realPath(r);
      const first = seen.get(real);
      if (first !== undefined)
        throw new UsageError(
          `eval ${values.seeds ? '--seeds' : '--folds'}: ` +
            `${r} is the same run as ${first}${r !== first ? ` (${real})` : ''}: give each run once`,
        );
      seen.set(real, r);
    }
    if (values['per-clip'] !== undefined && runs.length !== 1)
      throw new UsageError('eval: --per-clip is for one --run');
    if (values.folds) checkFolds(runs);
    const results = runs.map((r) => {
      const m = evalRun(r, values.split, { device: values.device, clip: values.clip, cache: values.cache });
      if (values['per-clip'] !== undefined)
        writePerClip(
          values['per-clip'],
          loadRun(r, { device: values.device, clip: values.clip, cache: values.cache }),
          values.split,
        );
      return {
        run: r,
        uar: m.uar,
        war: m.war,
        perClassRecall: Object.fromEntries(m.classNames.map((c, i) => [c, m.perClassRecall[i]!])),
        confusion: m.confusion,
        n: m.n,
      };
    });
    const names = Object.keys(results[0]!.perClassRecall);
    const other = results.find((r) => Object.keys(r.perClassRecall).join() !== names.join());
    if (other)
      throw new UserError(
        `eval ${values.seeds ? '--seeds' : '--folds'}: ${other.run} has other classes ` +
          `(${Object.keys(other.perClassRecall).join(', ')}) than ${results[0]!.run} (${names.join(', ')})`,
      );
    const mean = (f: (r: (typeof results)[number]) => number) => results.reduce((s, r) => s + f(r), 0) / results.length;
    // A class absent from one fold's test split has no recall there: average over the folds that have it.
    const meanRecall = (c: string) => {
      const v = results.map((r) => r.perClassRecall[c]!).filter((x) => !Number.isNaN(x));
      return v.length ? v.reduce((a, b) => a + b, 0) / v.length : NaN;
    };
    const spread = values.seeds
      ? { uar: spreadOf(results.map((r) => r.uar)), war: spreadOf(results.map((r) => r.war)) }
      : undefined;
    const out = values.folds
      ? {
          folds: results,
          mean: {
            uar: mean((r) => r.uar),
            war: mean((r) => r.war),
            perClassRecall: Object.fromEntries(names.map((c) => [c, meanRecall(c)])),
          },
        }
      : spread
        ? { seeds: results, summary: spread }
        : results[0]!;
    if (values.json) {
      process.stdout.write(JSON.stringify(out, (_, v) => (typeof v === 'number' && Number.isNaN(v) ? null : v)) + '\n');
      return 0;
    }
    for (const r of results) {
      process.stdout.write(
        `${r.run} (${values.split}, n = ${r.n}): UAR ${(100 * r.uar).toFixed(2)}  WAR ${(100 * r.war).toFixed(2)}\n`,
      );
      process.stdout.write(
        '  recall ' +
          Object.entries(r.perClassRecall)
            .map(([c, v]) => `${c} ${Number.isNaN(v) ? '-' : (100 * v).toFixed(1)}`)
            .join('  ') +
          '\n',
      );
      const w = Math.max(...names.map((c) => c.length));
      process.stdout.write(
        `  confusion (rows: true, columns: predicted, in the order ${names.join(', ')})\n` +
          r.confusion
            .map((row, i) => `   ${names[i]!.padStart(w)}` + row.map((v) => String(v).padStart(5)).join(''))
            .join('\n') +
          '\n',
      );
    }
    if (values.folds)
      process.stdout.write(
        `mean of ${results.length} folds: UAR ${(100 * mean((r) => r.uar)).toFixed(2)}  ` +
          `WAR ${(100 * mean((r) => r.war)).toFixed(2)}\n`,
      );
    if (spread)
      process.stdout.write(
        `over ${results.length} seeds (mean ± std, min, max): ` +
          `UAR ${formatSpread(spread.uar, 2)}  WAR ${formatSpread(spread.war, 2)}\n`,
      );
    return 0;
  },
};
