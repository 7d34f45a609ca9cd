// `ous report RUN... --out DIR`: the comparison report of one or more runs.
import * as path from 'node:path';
import type { Command } from './command.js';
import { UsageError } from '../util/errors.js';
import { outFolder, parseFlags, usageText, type Flags } from './flags.js';
import { writeReport } from '../report/report.js';

const FLAGS = {
  out: {
    type: { kind: 'text' },
    value: 'DIR',
    required: true,
    help: 'the folder for report.html, report.md and the figures',
  },
  title: { type: { kind: 'text' }, value: 'TEXT', default: 'OUS runs', help: "the report's title" },
  name: {
    type: { kind: 'text' },
    value: 'NAME',
    multiple: true,
    help: "each run's name in the report, in order (its folder's by default)",
  },
  clip: { type: { kind: 'text' }, value: 'DIR', help: "where the runs' CLIP is now, when it moved since training" },
  cache: {
    type: { kind: 'text' },
    value: 'DIR',
    multiple: true,
    help: "where a run's feature cache is now: once for every run, or once per run in order",
  },
} as const satisfies Flags;

export const report: Command = {
  usage: usageText('report', FLAGS, { positionals: 'RUN...' }),
  async run(argv) {
    const { values, positionals } = parseFlags('report', argv, FLAGS, { positionals: 'RUN...' });
    if (!positionals.length) throw new UsageError('report: give at least one RUN folder');
    outFolder('report', values.out);
    const [names, caches] = [values.name, values.cache];
    if (caches.length > 1 && caches.length !== positionals.length)
      throw new UsageError(
        `report: give --cache once (for every run) or once per run (${positionals.length}), not ${caches.length} times`,
      );
    const runs = positionals.map((dir, i) => ({
      name: names[i] ?? runName(dir, positionals),
      dir,
      clip: values.clip,
      cache: caches.length > 1 ? caches[i] : caches[0],
    }));
    const r = await writeReport({ title: values.title, runs, out: values.out });
    for (const line of r.skipped) process.stderr.write(`ous: note: ${line}\n`);
    process.stdout.write(`report: ${path.resolve(r.html)} (and ${path.resolve(r.markdown)})\n`);
    return 0;
  },
};

/**
 * A run's name in the report: its folder name, with as many parent
 * folders as it takes to tell it from the other runs (a/ous, b/ous).
 */
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
