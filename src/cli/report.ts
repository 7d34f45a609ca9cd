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
  usage: 'ous report RUN... --out DIR [--title TEXT] [--name NAME]...',
  async run(argv) {
    const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, options: { out: { type: 'string' }, title: { type: 'string' }, name: { type: 'string', multiple: true } } });
    if (!positionals.length) throw new UsageError('report: give at least one RUN folder');
    if (!values.out) throw new UsageError('report: --out DIR is required');
    outFolder('report', values.out);
    const names = values.name ?? [];
    const r = await writeReport({ title: values.title ?? 'OUS runs', runs: positionals.map((dir, i) => ({ name: names[i] ?? runName(dir, positionals), dir })), out: values.out });
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
