// `ous demo --persons 2`: the demo on the two-person benchmark, scored per person. Each clip shows
// two faces of different emotions in one scene of one mood; every person is one row of the
// extraction (their own face box: their crop, and the scene with only their face masked), OUS and
// the face-only baseline train on all persons' training rows, and the test rows are scored per
// role (the first-drawn person, whose polarity the scene shows with the set agreement, and their
// companion) against that role's ceilings, and over all persons.
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  benchmarkClasses,
  generateBenchmark,
  type PersonCeilings,
  type SyntheticPerson,
} from '../synthetic/benchmark.js';
import { readManifest } from '../data/datasets.js';
import { evalLoaded, loadRun } from '../train/run.js';
import { metricsOf } from '../train/metrics.js';
import { writeReport } from '../report/report.js';
import { writeFileAtomic } from '../util/fs.js';
import type { Scores } from './run.js';
import {
  DEMO_SIZES,
  demoBenchmarkOptions,
  extractDemoCache,
  trainDemoRuns,
  type DemoOptions,
  type DemoSize,
} from './run.js';

export type Role = SyntheticPerson['role'];
export const ROLES: readonly Role[] = ['first', 'second'];
export const ROLE_NAMES: Record<Role | 'all', string> = {
  first: 'first-drawn person',
  second: 'companion',
  all: 'all persons',
};

/** A model's scores on some of the demo's test rows (one role, or all persons). */
export interface PersonScores extends Scores {
  n: number; // test rows scored
}

/** One person of a test clip: their row's id (the cache key), role, label and each model's prediction. */
export interface PersonRow {
  id: string;
  role: Role;
  label: number;
  ous: number;
  faceOnly: number;
}

export interface PersonsDemoResult {
  ous: Record<Role | 'all', PersonScores>;
  faceOnly: Record<Role | 'all', PersonScores>;
  ceilings: Record<Role, { face: number; faceScene: number }>; // a perfect observer's UAR per role
  rows: { train: number; test: PersonRow[] }; // training rows (both persons of each training clip); the test rows
  runs: { ous: string; faceOnly: string };
  cache: string;
  benchmark: PersonCeilings;
}

/** UAR and WAR of the rows of each role, and of all rows. */
export function scoresByRole(
  rows: ReadonlyArray<{ role: Role; label: number }>,
  predicted: readonly number[],
  numClasses: number,
): Record<Role | 'all', PersonScores> {
  const of = (keep: (r: { role: Role }) => boolean): PersonScores => {
    const idx = rows.flatMap((r, i) => (keep(r) ? [i] : []));
    const m = metricsOf(
      idx.map((i) => rows[i]!.label),
      idx.map((i) => predicted[i]!),
      numClasses,
    );
    return { uar: m.uar, war: m.war, n: m.n };
  };
  return { first: of((r) => r.role === 'first'), second: of((r) => r.role === 'second'), all: of(() => true) };
}

export async function runPersonsDemo(
  o: DemoOptions,
  size: DemoSize = o.quick ? DEMO_SIZES.quick : DEMO_SIZES.full,
): Promise<PersonsDemoResult> {
  const log = o.log ?? ((l: string) => process.stderr.write(l + '\n'));
  const seed = o.seed ?? 0;
  const agreement = o.agreement ?? 0.9;
  // Its own folder under --out: a one-person demo in the same --out keeps its benchmark, cache and runs.
  const dir = path.join(o.out, 'persons');
  fs.mkdirSync(dir, { recursive: true });
  log(
    `demo: generating the two-person benchmark (${size.trainPerClass}+${size.testPerClass} clips per class of the ` +
      `first-drawn person, scene agreement ${agreement}, seed ${seed})`,
  );
  const bench = await generateBenchmark(
    demoBenchmarkOptions(path.join(dir, 'benchmark'), size, { seed, agreement, classes: o.classes }, 2),
    { progress: o.progress },
  );
  // persons.csv lists each clip once per person with their box: the reader makes each row its own
  // clip id (readers/common.ts personId); the role is found by the clip and the box.
  const classes = benchmarkClasses(o.classes);
  const { entries, failed } = readManifest(path.join(dir, 'benchmark', 'persons.csv'), undefined, classes.classNames);
  if (failed.length)
    throw new Error(`the generated persons.csv has bad rows: ${failed.map((f) => f.error).join('; ')}`);
  const roleAt = new Map(
    bench.clips.flatMap((c) =>
      c.persons!.map((p) => [`${path.resolve(c.file)} ${p.faceBox.join(' ')}`, p.role] as const),
    ),
  );
  const roleOf = new Map(entries.map((e) => [e.id, roleAt.get(`${path.resolve(e.source)} ${e.faceBox!.join(' ')}`)!]));
  log(
    "demo: extracting features per person with the frozen encoder (each person's crop, the scene with their face " +
      'masked)',
  );
  const cache = path.join(dir, 'cache');
  await extractDemoCache(entries, classes, size, cache, { engine: o.engine, progress: o.progress });
  const runs = await trainDemoRuns(cache, path.join(dir, 'runs'), size, seed, log, "on every person's training rows");
  // The two runs share the cache and the seed, so their test rows are the same, in the same order.
  const predict = (run: string) => {
    const loaded = loadRun(run);
    const m = evalLoaded(loaded);
    return { keys: loaded.splits.test.map((i) => loaded.cache.records[i]!.key), m };
  };
  const a = predict(runs.ous);
  const b = predict(runs.faceOnly);
  if (a.keys.join('\n') !== b.keys.join('\n'))
    throw new Error('the OUS and face-only runs were scored on different test rows');
  const test: PersonRow[] = a.keys.map((id, i) => ({
    id,
    role: roleOf.get(id)!,
    label: a.m.labels[i]!,
    ous: a.m.predictions[i]!,
    faceOnly: b.m.predictions[i]!,
  }));
  const C = classes.classNames.length;
  const pc = bench.personCeilings!;
  const result: PersonsDemoResult = {
    ous: scoresByRole(
      test,
      test.map((r) => r.ous),
      C,
    ),
    faceOnly: scoresByRole(
      test,
      test.map((r) => r.faceOnly),
      C,
    ),
    ceilings: {
      first: { face: pc.first.face.uar, faceScene: pc.first.faceScene.uar },
      second: { face: pc.second.face.uar, faceScene: pc.second.faceScene.uar },
    },
    rows: { train: entries.filter((e) => e.split === 'train').length, test },
    runs,
    cache,
    benchmark: pc,
  };
  writeFileAtomic(
    path.join(dir, 'demo.json'),
    JSON.stringify({ ...result, options: { ...o, log: undefined }, size }, null, 2) + '\n',
  );
  return result;
}

const pct = (v: number) => (Number.isFinite(v) ? (100 * v).toFixed(1) : '-');

/**
 * The per-person table: a row per role and one for all persons; UAR and WAR of both models, the role's
 * ceilings (UAR).
 */
export function personsTable(r: PersonsDemoResult): { head: string[]; rows: string[][] } {
  const head = [
    'person',
    'test rows',
    'OUS UAR',
    'OUS WAR',
    'face only UAR',
    'face only WAR',
    'ceiling: face alone',
    'ceiling: face + scene',
  ];
  const rows = ([...ROLES, 'all'] as const).map((k) => [
    ROLE_NAMES[k],
    String(r.ous[k].n),
    pct(r.ous[k].uar),
    pct(r.ous[k].war),
    pct(r.faceOnly[k].uar),
    pct(r.faceOnly[k].war),
    k === 'all' ? '' : pct(r.ceilings[k].face),
    k === 'all' ? '' : pct(r.ceilings[k].faceScene),
  ]);
  return { head, rows };
}

/** The table as the terminal shows it: columns padded, the report's path last. */
export function personsText(r: PersonsDemoResult, report: string): string {
  const { head, rows } = personsTable(r);
  const widths = head.map((h, j) => Math.max(h.length, ...rows.map((row) => row[j]!.length)));
  const line = (cells: string[]) =>
    cells
      .map((c, j) => (j === 0 ? c.padEnd(widths[j]!) : c.padStart(widths[j]!)))
      .join('  ')
      .trimEnd();
  return [line(head), ...rows.map(line), `report: ${report}`].join('\n') + '\n';
}

export const PERSONS_NOTE =
  'Two persons per clip: two drawn faces of different emotions side by side in one scene of one mood. The ' +
  "first-drawn person's classes are balanced and the scene shows " +
  'their polarity with the set agreement; their companion has another class of the same polarity where there is ' +
  'one (so the scene tells them less). Each person is one row ' +
  '(their own face box: their crop, and the scene with only their face masked, the other face visible); both ' +
  "models train on every person's training rows. " +
  "The tables score each person of the test clips; the ceilings are a perfect observer's UAR for that role.";

/** report.md and report.html of a two-person demo: both runs over all persons, and the per-person table. */
export async function writePersonsReport(
  r: PersonsDemoResult,
  o: { title: string; out: string; notes: string[]; seed: number },
): Promise<{ html: string; markdown: string }> {
  const table = personsTable(r);
  return writeReport({
    title: o.title,
    runs: [
      { name: 'OUS', dir: r.runs.ous },
      { name: 'face only', dir: r.runs.faceOnly },
    ],
    out: o.out,
    notes: [...o.notes, PERSONS_NOTE],
    seed: o.seed,
    tables: [{ title: 'Per person on the test split (%)', ...table }],
  });
}
