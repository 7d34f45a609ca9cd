// `ous report RUN... --out DIR`: the comparison report of one or more runs.
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import type { Command } from './command.js';
import { UserError } from '../util/errors.js';
import { writeReport } from '../report/report.js';

export const report: Command = {
  name: 'report',
  summary: 'an HTML + Markdown report (table, confusion matrices, curves, embeddings) of runs',
  usage: 'ous report RUN... --out DIR [--title TEXT] [--name NAME]...',
  async run(argv) {
    const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, options: { out: { type: 'string' }, title: { type: 'string' }, name: { type: 'string', multiple: true } } });
    if (!positionals.length) throw new UserError('report: give at least one RUN folder');
    if (!values.out) throw new UserError('report: --out DIR is required');
    const names = values.name ?? [];
    const r = await writeReport({ title: values.title ?? 'OUS runs', runs: positionals.map((dir, i) => ({ name: names[i] ?? path.basename(dir), dir })), out: values.out });
    process.stdout.write(`report: ${path.resolve(r.html)} (and ${path.resolve(r.markdown)})\n`);
    return 0;
  },
};
