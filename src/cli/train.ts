// `ous train` and `ous eval`: OUS (or the face-only baseline) on a feature cache, and its metrics.
import { parseArgs } from 'node:util';
import type { Command } from './command.js';
import { UsageError, UserError } from '../util/errors.js';
import { intFlag } from './args.js';
import { evalRun, trainRun } from '../train/run.js';
import { formatSpread, spreadOf } from '../train/metrics.js';
import { parseOptionalDevice } from '../torch/index.js';

export const trainCommand: Command = {
  name: 'train',
  summary: 'train OUS or the face-only baseline on a feature cache (writes a run folder)',
  usage: 'ous train --cache DIR --out RUN [--config FILE.json] [--set key=value]... [--model ous|face-only] [--seed N] [--device cpu|cuda] [--clip DIR] [--resume | --force]\n\nAn existing run is never overwritten: --resume continues it (only a larger epochs may change; recorded in its config.json), --force replaces it.',
  async run(argv) {
    const { values } = parseArgs({
      args: argv,
      options: {
        cache: { type: 'string' }, out: { type: 'string' }, config: { type: 'string' }, set: { type: 'string', multiple: true },
        model: { type: 'string' }, seed: { type: 'string' }, device: { type: 'string' }, clip: { type: 'string' }, resume: { type: 'boolean' }, force: { type: 'boolean' },
      },
    });
    if (!values.cache || !values.out) throw new UsageError('train: --cache DIR and --out RUN are required');
    if (values.model && values.model !== 'ous' && values.model !== 'face-only') throw new UsageError(`train: --model must be ous or face-only, not '${values.model}'`);
    if (values.resume && values.force) throw new UsageError('train: --resume continues a run and --force replaces it: give one of them');
    const r = await trainRun({
      cache: values.cache, out: values.out, config: values.config, sets: values.set, model: values.model as 'ous' | 'face-only' | undefined,
      seed: values.seed === undefined ? undefined : intFlag('train', 'seed', values.seed), device: parseOptionalDevice(values.device), clip: values.clip, resume: values.resume, force: values.force,
    });
    process.stdout.write(`best epoch ${r.bestEpoch} (validation loss ${r.bestValLoss.toFixed(4)}); ${r.stopReason}; run in ${values.out}\n`);
    return 0;
  },
};

export const evalCommand: Command = {
  name: 'eval',
  summary: 'UAR, WAR, per-class recall and confusion matrix of a run (or the mean of a data set\'s folds)',
  usage:
    'ous eval --run RUN [--split test|val] [--json]\n       ous eval --folds RUN1 RUN2 ... [--split test|val] [--json]\n       ous eval --seeds RUN1 RUN2 ... [--split test|val] [--json]\n\n' +
    '--folds: the runs of a data set\'s folds, and their mean. --seeds: runs of one setting with different seeds, and mean ± std (n − 1), min and max.',
  async run(argv) {
    const { values, positionals } = parseArgs({
      args: argv,
      allowPositionals: true,
      options: { run: { type: 'string' }, folds: { type: 'boolean' }, seeds: { type: 'boolean' }, split: { type: 'string', default: 'test' }, device: { type: 'string' }, json: { type: 'boolean' } },
    });
    if (values.split !== 'test' && values.split !== 'val') throw new UsageError(`eval: --split must be test or val, not '${values.split}'`);
    if (values.folds && values.seeds) throw new UsageError('eval: --folds and --seeds are two ways to read several runs: give one of them');
    const runs = values.folds || values.seeds ? positionals : values.run ? [values.run] : [];
    if (!runs.length) throw new UsageError('eval: give --run RUN, --folds RUN1 RUN2 ..., or --seeds RUN1 RUN2 ...');
    const results = runs.map((r) => {
      const m = evalRun(r, values.split as 'test' | 'val', { device: parseOptionalDevice(values.device) });
      return { run: r, uar: m.uar, war: m.war, perClassRecall: Object.fromEntries(m.classNames.map((c, i) => [c, m.perClassRecall[i]!])), confusion: m.confusion, n: m.n };
    });
    const names = Object.keys(results[0]!.perClassRecall);
    const other = results.find((r) => Object.keys(r.perClassRecall).join() !== names.join());
    if (other) throw new UserError(`eval ${values.seeds ? '--seeds' : '--folds'}: ${other.run} has other classes (${Object.keys(other.perClassRecall).join(', ')}) than ${results[0]!.run} (${names.join(', ')})`);
    const mean = (f: (r: (typeof results)[number]) => number) => results.reduce((s, r) => s + f(r), 0) / results.length;
    // A class absent from one fold's test split has no recall there: average over the folds that have it.
    const meanRecall = (c: string) => {
      const v = results.map((r) => r.perClassRecall[c]!).filter((x) => !Number.isNaN(x));
      return v.length ? v.reduce((a, b) => a + b, 0) / v.length : NaN;
    };
    const spread = values.seeds ? { uar: spreadOf(results.map((r) => r.uar)), war: spreadOf(results.map((r) => r.war)) } : undefined;
    const out = values.folds
      ? { folds: results, mean: { uar: mean((r) => r.uar), war: mean((r) => r.war), perClassRecall: Object.fromEntries(names.map((c) => [c, meanRecall(c)])) } }
      : spread
        ? { seeds: results, summary: spread }
        : results[0]!;
    if (values.json) {
      process.stdout.write(JSON.stringify(out, (_, v) => (typeof v === 'number' && Number.isNaN(v) ? null : v)) + '\n');
      return 0;
    }
    for (const r of results) {
      process.stdout.write(`${r.run} (${values.split}, n = ${r.n}): UAR ${(100 * r.uar).toFixed(2)}  WAR ${(100 * r.war).toFixed(2)}\n`);
      process.stdout.write('  recall ' + Object.entries(r.perClassRecall).map(([c, v]) => `${c} ${Number.isNaN(v) ? '-' : (100 * v).toFixed(1)}`).join('  ') + '\n');
      const w = Math.max(...names.map((c) => c.length));
      process.stdout.write(`  confusion (rows: true, columns: predicted, in the order ${names.join(', ')})\n` + r.confusion.map((row, i) => `   ${names[i]!.padStart(w)}` + row.map((v) => String(v).padStart(5)).join('')).join('\n') + '\n');
    }
    if (values.folds) process.stdout.write(`mean of ${results.length} folds: UAR ${(100 * mean((r) => r.uar)).toFixed(2)}  WAR ${(100 * mean((r) => r.war)).toFixed(2)}\n`);
    if (spread) process.stdout.write(`over ${results.length} seeds (mean ± std, min, max): UAR ${formatSpread(spread.uar, 2)}  WAR ${formatSpread(spread.war, 2)}\n`);
    return 0;
  },
};
