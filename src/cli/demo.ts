// `ous demo`: the whole method end to end on the built-in synthetic benchmark, with a report.
import * as path from 'node:path';
import type { Command } from './command.js';
import { UsageError } from '../util/errors.js';
import { COMMON, outFolder, parseFlags, usageText, type Flags } from './flags.js';
import { enginePreference } from './env.js';
import { runDemo, type DemoResult } from '../demo/run.js';
import { formatSpread } from '../train/metrics.js';
import { writeReport } from '../report/report.js';
import { personsText, runPersonsDemo, writePersonsReport } from '../demo/persons.js';

export const DEMO_NOTES = [
  'The benchmark is synthetic, made by this project: short h264 videos of a drawn face whose expression unfolds ' +
    'over time, in a scene. ' +
    'Surprise and fear share one face, sadness and neutral another, so the face alone cannot tell them apart; ' +
    'the scene (sunny with flowers, grey, or dark with rain) ' +
    "shows the true emotion's polarity with a set probability, else a random one. The ceilings are a perfect " +
    "observer's accuracy from the face alone and from face and scene.",
  "The frozen encoder is the project's small development CLIP (CLIP's architecture with random weights; 32 px " +
    'input): real CLIP weights cannot be shipped. ' +
    'Random-weight features are random but fixed functions of the pixels, so this shows that the pipeline runs ' +
    'end to end and that OUS uses the scene where the face is ambiguous; ' +
    'it does not show how OUS does with real CLIP features on real videos (for that: a Hugging Face CLIP folder ' +
    'and DFEW or FERV39k, see the README).',
];

const FLAGS = {
  out: {
    type: { kind: 'text' },
    value: 'DIR',
    default: path.join('out', 'demo'),
    help: 'where the benchmark, cache, runs and report go',
  },
  quick: { type: { kind: 'switch' }, help: 'the quick size (about 3 minutes on 2 cores; each further seed about 1)' },
  seed: { ...COMMON.seed, default: '0', help: "the benchmark's seed, and the first training seed" },
  seeds: {
    type: { kind: 'int', min: 1 },
    value: 'N',
    default: '1',
    help: 'train both models with the seeds N, N+1, ... on one benchmark; each seed and mean ± std, min and max',
  },
  agreement: {
    type: { kind: 'number', min: 0, max: 1 },
    value: 'P',
    default: '0.9',
    help: "how often the scene shows the true emotion's polarity",
  },
  classes: { type: { kind: 'int', min: 2, max: 11 }, value: 'N', help: "DFEW's seven by default; 11: MAFW's eleven" },
  persons: {
    type: { kind: 'choice', of: ['1', '2'] },
    default: '1',
    help: '2: the two-person benchmark, scored per person (files under OUT/persons)',
  },
  json: COMMON.json,
} as const satisfies Flags;

export const demo: Command = {
  usage: usageText('demo', FLAGS),
  async run(argv) {
    const { values } = parseFlags('demo', argv, FLAGS);
    const { seed, seeds, agreement, classes } = values;
    outFolder('demo', values.out);
    if (values.persons === '2') {
      if (seeds > 1) throw new UsageError('demo: --seeds is for the one-person demo; --persons 2 runs one seed');
      // The two-person benchmark, scored per person (src/demo/persons.ts); its files under OUT/persons.
      const p = await runPersonsDemo({
        out: values.out,
        quick: values.quick,
        seed,
        agreement,
        classes,
        engine: enginePreference(),
      });
      const rep = await writePersonsReport(p, {
        title:
          `OUS per person on the two-person synthetic benchmark (${values.quick ? 'quick' : 'full'} size, ` +
          `seed ${seed}, scene agreement ${agreement}${classes ? `, ${classes} classes` : ''})`,
        out: path.join(values.out, 'persons', 'report'),
        notes: DEMO_NOTES,
        seed,
      });
      if (values.json)
        process.stdout.write(
          JSON.stringify({ ous: p.ous, faceOnly: p.faceOnly, ceilings: p.ceilings, report: path.resolve(rep.html) }) +
            '\n',
        );
      else process.stdout.write(personsText(p, path.resolve(rep.html)));
      return 0;
    }
    const r = await runDemo({
      out: values.out,
      quick: values.quick,
      seed,
      seeds,
      agreement,
      classes,
      engine: enginePreference(),
    });
    const seedText = seeds > 1 ? `seeds ${seed}..${seed + seeds - 1} (benchmark: seed ${seed})` : `seed ${seed}`;
    const report = await writeReport({
      title:
        `OUS on the synthetic scene-guided benchmark (${values.quick ? 'quick' : 'full'} size, ${seedText}, ` +
        `scene agreement ${agreement}${classes ? `, ${classes} classes` : ''})`,
      runs: [
        { name: 'OUS', dir: r.runs.ous },
        { name: 'face only', dir: r.runs.faceOnly },
      ],
      out: path.join(values.out, 'report'),
      ceilings: { 'face alone': r.ceilings.face, 'face + scene': r.ceilings.faceScene },
      notes: DEMO_NOTES,
      seed,
      seeds:
        seeds > 1
          ? {
              rows: r.seeds.map((s) => ({ seed: s.seed, metrics: { OUS: s.ous, 'face only': s.faceOnly } })),
              gap: ['OUS', 'face only'],
            }
          : undefined,
    });
    // The first seed's numbers, each seed's and their summary: one shape whatever --seeds is.
    const line = {
      ous: r.ous,
      faceOnly: r.faceOnly,
      ceilings: r.ceilings,
      report: path.resolve(report.html),
      seeds: r.seeds.map((s) => ({ seed: s.seed, ous: s.ous, faceOnly: s.faceOnly })),
      summary: r.summary,
    };
    if (values.json)
      process.stdout.write(
        JSON.stringify(line, (_, v) => (typeof v === 'number' && Number.isNaN(v) ? null : v)) + '\n',
      );
    else process.stdout.write(demoText(r) + `report: ${path.resolve(report.html)}\n`);
    return 0;
  },
};

/** The terminal's answer: one seed's two lines, or each seed and the summary over them. */
export function demoText(r: Pick<DemoResult, 'ous' | 'faceOnly' | 'ceilings' | 'seeds' | 'summary'>): string {
  const p = (v: number) => (100 * v).toFixed(1);
  const ceilings = `ceilings   face alone ${p(r.ceilings.face)}, face + scene ${p(r.ceilings.faceScene)}\n`;
  if (r.seeds.length === 1)
    return (
      `OUS        UAR ${p(r.ous.uar)}  WAR ${p(r.ous.war)}\nface only  UAR ${p(r.faceOnly.uar)}  WAR ` +
      `${p(r.faceOnly.war)}\n` +
      ceilings
    );
  const rows = r.seeds
    .map(
      (s) =>
        `  ${String(s.seed).padStart(6)}  ${p(s.ous.uar).padStart(7)}  ${p(s.faceOnly.uar).padStart(9)}  ` +
        `${p(s.ous.uar - s.faceOnly.uar).padStart(6)}\n`,
    )
    .join('');
  const s = r.summary;
  return (
    `UAR per seed (%)\n    seed      OUS  face only     gap\n${rows}` +
    `over ${r.seeds.length} seeds (mean ± std, min, max)\n` +
    `OUS        UAR ${formatSpread(s.ous.uar)}  WAR ${formatSpread(s.ous.war)}\n` +
    `face only  UAR ${formatSpread(s.faceOnly.uar)}  WAR ${formatSpread(s.faceOnly.war)}\n` +
    `gap        UAR ${formatSpread(s.gap.uar)}  WAR ${formatSpread(s.gap.war)}  (OUS − face only, paired by seed)\n` +
    ceilings
  );
}
