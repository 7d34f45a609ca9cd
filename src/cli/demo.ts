// `ous demo`: the whole method end to end on the built-in synthetic benchmark, with a report.
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import type { Command } from './command.js';
import { intFlag, seedFlag, numberFlag, outFolder } from './args.js';
import { UsageError } from '../util/errors.js';
import { runDemo } from '../demo/run.js';
import { writeReport } from '../report/report.js';
import { enginePreference } from './env.js';
import { personsText, runPersonsDemo, writePersonsReport } from '../demo/persons.js';

export const DEMO_NOTES = [
  'The benchmark is synthetic, made by this project: short h264 videos of a drawn face whose expression unfolds over time, in a scene. ' +
    'Surprise and fear share one face, sadness and neutral another, so the face alone cannot tell them apart; the scene (sunny with flowers, grey, or dark with rain) ' +
    "shows the true emotion's polarity with a set probability, else a random one. The ceilings are a perfect observer's accuracy from the face alone and from face and scene.",
  'The frozen encoder is the project\'s small development CLIP (CLIP\'s architecture with random weights; 32 px input): real CLIP weights cannot be shipped. ' +
    'Random-weight features are random but fixed functions of the pixels, so this shows that the pipeline runs end to end and that OUS uses the scene where the face is ambiguous; ' +
    'it does not show how OUS does with real CLIP features on real videos (for that: a Hugging Face CLIP folder and DFEW or FERV39k, see the README).',
];

export const demo: Command = {
  name: 'demo',
  summary: 'run OUS end to end on the built-in synthetic benchmark (no downloads)',
  usage: 'ous demo [--out DIR] [--quick] [--seed N] [--agreement P] [--classes N (2..11)] [--persons 1|2] [--json]',
  async run(argv) {
    const { values } = parseArgs({
      args: argv,
      options: { out: { type: 'string', default: path.join('out', 'demo') }, quick: { type: 'boolean' }, seed: { type: 'string', default: '0' }, agreement: { type: 'string', default: '0.9' }, classes: { type: 'string' }, persons: { type: 'string', default: '1' }, json: { type: 'boolean' } },
    });
    const seed = seedFlag('demo', values.seed!);
    const agreement = numberFlag('demo', 'agreement', values.agreement!, { min: 0, max: 1 });
    outFolder('demo', values.out!);
    const classes = values.classes === undefined ? undefined : intFlag('demo', 'classes', values.classes, 2);
    if (classes !== undefined && classes > 11) throw new UsageError(`demo: --classes must be an integer in 2..11, not '${values.classes}'`);
    if (values.persons !== '1' && values.persons !== '2') throw new UsageError(`demo: --persons must be 1 or 2, not '${values.persons}'`);
    if (values.persons === '2') {
      // The two-person benchmark, scored per person (src/demo/persons.ts); its files under OUT/persons.
      const p = await runPersonsDemo({ out: values.out!, quick: values.quick, seed, agreement, classes, engine: enginePreference() });
      const rep = await writePersonsReport(p, {
        title: `OUS per person on the two-person synthetic benchmark (${values.quick ? 'quick' : 'full'} size, seed ${seed}, scene agreement ${agreement}${classes ? `, ${classes} classes` : ''})`,
        out: path.join(values.out!, 'persons', 'report'), notes: DEMO_NOTES, seed,
      });
      if (values.json) process.stdout.write(JSON.stringify({ ous: p.ous, faceOnly: p.faceOnly, ceilings: p.ceilings, report: path.resolve(rep.html) }) + '\n');
      else process.stdout.write(personsText(p, path.resolve(rep.html)));
      return 0;
    }
    const r = await runDemo({ out: values.out!, quick: values.quick, seed, agreement, classes, engine: enginePreference() });
    const report = await writeReport({
      title: `OUS on the synthetic scene-guided benchmark (${values.quick ? 'quick' : 'full'} size, seed ${seed}, scene agreement ${agreement}${classes ? `, ${classes} classes` : ''})`,
      runs: [{ name: 'OUS', dir: r.runs.ous }, { name: 'face only', dir: r.runs.faceOnly }],
      out: path.join(values.out!, 'report'),
      ceilings: { 'face alone': r.ceilings.face, 'face + scene': r.ceilings.faceScene },
      notes: DEMO_NOTES,
      seed,
    });
    const line = { ous: r.ous, faceOnly: r.faceOnly, ceilings: r.ceilings, report: path.resolve(report.html) };
    if (values.json) process.stdout.write(JSON.stringify(line) + '\n');
    else {
      const p = (v: number) => (100 * v).toFixed(1);
      process.stdout.write(
        `OUS        UAR ${p(r.ous.uar)}  WAR ${p(r.ous.war)}\nface only  UAR ${p(r.faceOnly.uar)}  WAR ${p(r.faceOnly.war)}\n` +
          `ceilings   face alone ${p(r.ceilings.face)}, face + scene ${p(r.ceilings.faceScene)}\nreport: ${path.resolve(report.html)}\n`,
      );
    }
    return 0;
  },
};
