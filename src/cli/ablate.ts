// `ous ablate --table III|IV|V|VI`: runs one of the paper's ablation grids on a feature cache and
// writes our numbers beside the paper's (SPEC.md §9). Every row trains from the `paper` preset
// (src/ous/presets.ts: the settings of the paper's own runs, M = 64 and TFE 12 where a table does
// not vary them) with the row's settings on top; the settings each row ran with are printed
// beside the paper's numbers, read back from its config.json.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Command } from './command.js';
import { UsageError } from '../util/errors.js';
import { COMMON, outFolder, parseFlags, usageText, type Flags } from './flags.js';
import { writeFileAtomic } from '../util/fs.js';
import { evalRun, trainRun } from '../train/run.js';
import type { OusConfig } from '../ous/config.js';
import { PRESETS } from '../ous/presets.js';
import { parseSets } from './sets.js';

interface Row {
  name: string;
  ous: Partial<OusConfig>; // the row's settings
  paper: { uar: number; war: number; bestEpoch?: number }; // fractions
}

const lossFusion = (paper: Array<[number, number, number]>): Row[] =>
  (
    [
      ['L_ce', 'ce', 'avgpool'],
      ['L_global', 'global', 'avgpool'],
      ['L_ce + TFE', 'ce', 'tfe'],
      ['L_global + TFE', 'global', 'tfe'],
    ] as const
  ).map(([name, loss, fusion], i) => ({
    name,
    ous: { loss, fusion },
    paper: { uar: paper[i]![0] / 100, war: paper[i]![1] / 100, bestEpoch: paper[i]![2] },
  }));

/** The grids and the paper's UAR / WAR (and best epoch where reported). */
export const TABLES: Record<string, { title: string; rows: Row[] }> = {
  III: {
    title: 'Table III: TFE depth × prompt length (paper: DFEW)',
    rows: [
      [8, 16, 0.56926, 0.70598],
      [8, 32, 0.59908, 0.72906],
      [8, 64, 0.60973, 0.73675],
      [12, 16, 0.5842, 0.7188],
      [12, 32, 0.6324, 0.72393],
      [12, 64, 0.60937, 0.74103],
      [16, 16, 0.60145, 0.73504],
      [16, 32, 0.59968, 0.7359],
      [16, 64, 0.61615, 0.74017],
    ].map(([l, m, uar, war]) => ({
      name: `TFE ${l}, length ${m}`,
      ous: { tfeLayers: l!, promptLength: m! },
      paper: { uar: uar!, war: war! },
    })),
  },
  IV: {
    title: 'Table IV: loss × fusion (paper: FERV39k)',
    rows: lossFusion([
      [36.65, 45.31, 15],
      [38.48, 49.5, 6],
      [40.88, 51.78, 18],
      [42.43, 53.3, 6],
    ]),
  },
  V: {
    title: 'Table V: loss × fusion (paper: DFEW)',
    rows: lossFusion([
      [55.12, 67.82, 10],
      [59.12, 71.2, 5],
      [60.81, 71.58, 11],
      [60.94, 74.1, 5],
    ]),
  },
  VI: {
    title: 'Table VI: prompt length (paper: DFEW)',
    rows: [
      [16, 58.57, 72.13],
      [32, 60.5, 73.5],
      [64, 60.94, 74.1],
    ].map(([m, uar, war]) => ({
      name: `length ${m}`,
      ous: { promptLength: m! },
      paper: { uar: uar! / 100, war: war! / 100 },
    })),
  },
};

const FLAGS = {
  table: { type: { kind: 'text' }, value: Object.keys(TABLES).join('|'), help: "the paper's table to run (required)" },
  cache: { type: { kind: 'text' }, value: 'CACHE', help: 'the feature cache to train on (required)' },
  out: { type: { kind: 'text' }, value: 'DIR', help: 'a run folder per row, and table-N.md (required)' },
  set: {
    type: { kind: 'text' },
    value: 'key=value',
    multiple: true,
    help: 'settings common to every row (a field of the OUS or training config)',
  },
  seed: { ...COMMON.seed, default: '0' },
} as const satisfies Flags;

export const ablate: Command = {
  usage: usageText('ablate', FLAGS),
  async run(argv) {
    const { values } = parseFlags('ablate', argv, FLAGS);
    const table = TABLES[(values.table ?? '').toUpperCase()];
    if (!table)
      throw new UsageError(
        `ablate: --table must be one of ${Object.keys(TABLES).join(', ')}, not '${values.table ?? ''}'`,
      );
    if (!values.cache || !values.out) throw new UsageError('ablate: --cache CACHE and --out DIR are required');
    const seed = values.seed;
    const common = parseSets(values.set);
    outFolder('ablate', values.out);
    const lines = [
      `# ${table.title}`,
      '',
      `Cache: ${path.resolve(values.cache)}; seed ${values.seed}. Every row: the paper preset ` +
        `(${presetText()})${values.set.length ? `, then ${values.set.join(' ')}` : ''}, then the row's setting.`,
      '',
      '| setting | ran with (ours) | UAR (ours) | WAR (ours) | best epoch (ours) | UAR (paper) | WAR (paper) | ' +
        'best epoch (paper) |',
      '|---|---|---|---|---|---|---|---|',
    ];
    const p = (v: number) => (100 * v).toFixed(2);
    for (const row of table.rows) {
      const dir = path.join(values.out, row.name.replace(/[^A-Za-z0-9]+/g, '_'));
      process.stderr.write(`ablate: ${row.name}\n`);
      const r = await trainRun({
        cache: values.cache,
        out: dir,
        preset: 'paper',
        overrides: { ous: { ...common.ous, ...row.ous }, train: common.train },
        seed,
        resume: true,
      });
      const m = evalRun(dir);
      lines.push(
        `| ${row.name} | ${ranWith(dir)} | ${p(m.uar)} | ${p(m.war)} | ${r.bestEpoch} | ` +
          `${p(row.paper.uar)} | ${p(row.paper.war)} | ${row.paper.bestEpoch ?? '-'} |`,
      );
      writeFileAtomic(path.join(values.out, `table-${values.table!.toUpperCase()}.md`), lines.join('\n') + '\n');
    }
    process.stdout.write(lines.join('\n') + '\n');
    return 0;
  },
};

/** The paper preset's settings, as `key value` pairs. */
function presetText(): string {
  const { ous, train } = PRESETS.paper;
  return Object.entries({ ...ous, ...train })
    .map(([k, v]) => `${k} ${typeof v === 'number' ? Number(v.toPrecision(4)) : v}`)
    .join(', ');
}

/** The settings a table varies (and the batch reduction, epochs), as the row's run resolved them. */
function ranWith(dir: string): string {
  const c = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
  return (
    `M ${c.ous.promptLength}, TFE ${c.ous.tfeLayers}, ${c.ous.loss === 'ce' ? 'L_ce' : 'L_global'}, ` +
    `${c.ous.fusion}, ≤${c.train.epochs} epochs`
  );
}
