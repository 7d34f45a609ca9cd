// `ous report RUN... --out DIR`: the comparison report of one or more runs.
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import type { Command } from './command.js';
import { UsageError } from '../util/errors.js';
import { outFolder } from './args.js';
import { writeReport } from '../report/report.js';

export const report: Command = {
  name: 'report',
  summary: 'an HTML + Markdown report (table, confusion matrices, curves, embeddings) of runs',
  usage: 'ous report RUN... --out DIR [--title TEXT] [--name NAME]... [--clip DIR] [--cache DIR]...\n\n--clip: where the runs\' CLIP is now; --cache: where a run\'s feature cache is now (once for every run, or once per run in order), when they moved since training.',
  async run(argv) {
    const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, options: { out: { type: 'string' }, title: { type: 'string' }, name: { type: 'string', multiple: true }, clip: { type: 'string' }, cache: { type: 'string', multiple: true } } });
    if (!positionals.length) throw new UsageError('report: give at least one RUN folder');
    if (!values.out) throw new UsageError('report: --out DIR is required');
    outFolder('report', values.out);
    const names = values.name ?? [];
    const caches = values.cache ?? [];
    if (caches.length > 1 && caches.length !== positionals.length) throw new UsageError(`report: give --cache once (for every run) or once per run (${positionals.length}), not ${caches.length} times`);
    const runs = positionals.map((dir, i) => ({ name: names[i] ?? runName(dir, positionals), dir, clip: values.clip, cache: caches.length > 1 ? caches[i] : caches[0] }));
    const r = await writeReport({ title: values.title ?? 'OUS runs', runs, out: values.out });
    process.stdout.write(`report: ${path.resolve(r.html)} (and ${path.resolve(r.markdown)})\n`);
    return 0;
  },
};

/** A run's name in the report: its folder name, with as many parent folders as it takes to tell it from the other runs (a/ous, b/ous). */
export function runName(dir: string, all: string[]): string {
  const parts = (d: string) => path.resolve(d).split(path.sep).filter(Boolean);
  const mine = parts(dir);
  const others = all.filter((d) => path.resolve(d) !== path.resolve(dir)).map(parts);
  for (let n = 1; n <= mine.length; n++) {
    const tail = mine.slice(-n).join('/');
    if (!others.some((o) => o.slice(-n).join('/') === tail)) return tail;
  }
  return mine.join('/');
}
