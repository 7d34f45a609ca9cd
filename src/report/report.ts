import * as path from 'node:path';
import { ensureDir, writeFileAtomic } from '../util/fs.js';
import { evalLoaded, loadRun, runStages } from '../train/run.js';
import { readEpochs, readRunConfig, type EpochRecord } from '../runs/folder.js';
import { UserError } from '../util/errors.js';
import {
  confusionSpec,
  curveSpec,
  embed2d,
  UMAP_MIN_POINTS,
  embeddingSpec,
  phaseSpec,
  seedsSpec,
  toSvg,
  type CurvePoint,
} from './figures.js';
import { spreadOf } from '../train/metrics.js';

export interface ReportRun {
  name: string; // shown in the table and legends
  dir: string;
  clip?: string; // where the run's CLIP is now, when it moved
  cache?: string; // where the run's cache is now, when it moved
}

export interface ReportOptions {
  title: string;
  runs: ReportRun[];
  out: string;
  /** Accuracy ceilings to show beside the results (fractions). */
  ceilings?: Record<string, number>;
  /** Paragraphs of Markdown-free text said before the results (what the data is, what it shows). */
  notes?: string[];
  /** The run whose features are embedded for Fig. 4 (default: the first). */
  embedRun?: string;
  seed?: number;
  /** Each seed's test scores by run name (the same names in every row); `gap`: [a, b] adds a − b, paired by seed. */
  seeds?: { rows: SeedRow[]; gap?: [string, string] };
  /** More tables, after the comparison table: cells already formatted (the two-person demo's per-person scores). */
  tables?: ReportTable[];
}

export interface ReportTable {
  title: string;
  head: string[];
  rows: string[][];
}

export interface SeedRow {
  seed: number;
  metrics: Record<string, { uar: number; war: number }>;
}

interface Figure {
  file: string;
  caption: string;
  svg: string;
}

const pct = (v: number) => (Number.isFinite(v) ? (100 * v).toFixed(1) : '-');
const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

export async function writeReport(
  o: ReportOptions,
): Promise<{ html: string; markdown: string; figures: string[]; skipped: string[] }> {
  // Checked before any run is loaded: each run gets its own figures, and one table means one set of classes.
  const bySlug = new Map<string, string>();
  for (const r of o.runs) {
    const other = bySlug.get(slug(r.name));
    if (other !== undefined)
      throw new UserError(
        `report: two runs would share the name '${r.name}'${other !== r.name ? ` (and '${other}')` : ''} ` +
          'and one figure would overwrite the other: give each a --name',
      );
    bySlug.set(slug(r.name), r.name);
  }
  const classesOf = o.runs.map((r) => ({ r, classes: readRunConfig(r.dir).ous.classNames }));
  const odd = classesOf.find((c) => JSON.stringify(c.classes) !== JSON.stringify(classesOf[0]!.classes));
  if (odd) {
    const first = classesOf[0]!;
    throw new UserError(
      `report: ${odd.r.dir} has ${odd.classes.length} classes (${odd.classes.join(', ')}) ` +
        `but ${first.r.dir} has ${first.classes.length} (${first.classes.join(', ')}): ` +
        'one report compares runs over the same classes; report them separately',
    );
  }
  // Each run is loaded once (CLIP's text tower, the cache, the checkpoint) for its metrics and, for
  // the embedded run, its stage features.
  const results = o.runs.map((r) => {
    const loaded = loadRun(r.dir, { clip: r.clip, cache: r.cache });
    // a line cut short by a kill is dropped
    return { run: r, loaded, m: evalLoaded(loaded), epochs: readEpochs(r.dir) };
  });
  const classNames = results[0]!.m.classNames;
  const figures: Figure[] = [];
  const add = async (file: string, caption: string, spec: Parameters<typeof toSvg>[0]) =>
    figures.push({ file, caption, svg: await toSvg(spec) });

  for (const { run, m } of results)
    await add(
      `confusion-${slug(run.name)}.svg`,
      `Row-normalised confusion matrix of ${run.name} on the test split (the paper's Fig. 5).`,
      confusionSpec(run.name, m.confusion, classNames),
    );
  const curve = (f: (e: EpochRecord) => [number, number]): CurvePoint[] =>
    results.flatMap(({ run, epochs }) =>
      epochs.flatMap((e) => [
        { run: run.name, epoch: e.epoch, series: 'train', value: f(e)[0] },
        { run: run.name, epoch: e.epoch, series: 'validation', value: f(e)[1] },
      ]),
    );
  await add(
    'loss.svg',
    'Training loss (the back-propagated objective) and validation loss (cross-entropy), per epoch (Fig. 6).',
    curveSpec(
      'Loss',
      'loss',
      curve((e) => [e.train.loss, e.val.loss]),
    ),
  );
  await add(
    'accuracy.svg',
    'Training and validation accuracy (WAR), per epoch (Fig. 6).',
    curveSpec(
      'Accuracy',
      'WAR',
      curve((e) => [e.train.war, e.val.war]),
    ),
  );
  for (const { run, epochs } of results) {
    const rows = epochs.flatMap((e) =>
      (['global', 'contrast', 'ce'] as const).map((phase) => ({ epoch: e.epoch, phase, share: e.train.phases[phase] })),
    );
    await add(
      `phases-${slug(run.name)}.svg`,
      `Share of training steps back-propagating L_global, L_contrast, or L_cls alone (ce), per epoch: ${run.name}.`,
      phaseSpec(`Loss phases: ${run.name}`, rows),
    );
  }
  const embedded = results.find((r) => r.run.name === o.embedRun) ?? results[0]!;
  const { labels, stages } = runStages(embedded.loaded);
  const stageNames: Record<string, string> = {
    encoder: '(a) encoder output',
    framesCls: '(b) Frames Encoder CLS',
    aligned: '(c) aligned (multi-loss)',
    fused: '(d) TFE output',
  };
  // A figure that cannot be made is left out, said in the report's notes (and on stderr by the CLI).
  const skipped: string[] = [];
  if (labels.length < UMAP_MIN_POINTS)
    skipped.push(
      `The feature-space figure (Fig. 4) is left out: UMAP needs at least ${UMAP_MIN_POINTS} test clips, ` +
        `and ${embedded.run.name} has ${labels.length}.`,
    );
  else {
    const points = Object.entries(stages).flatMap(([k, rows]) =>
      embed2d(rows, o.seed ?? 0).map(([x, y], i) => ({
        stage: stageNames[k]!,
        x: x!,
        y: y!,
        label: classNames[labels[i]!]!,
      })),
    );
    await add(
      'embedding.svg',
      `2-D UMAP embeddings of the test clips' features at four stages of ${embedded.run.name}, ` +
        "coloured by class (the paper's Fig. 4).",
      embeddingSpec(`Feature space: ${embedded.run.name}`, points, Object.values(stageNames), classNames),
    );
  }

  // The comparison table.
  const head = ['', 'UAR', 'WAR', ...classNames];
  const rows = results.map(({ run, m }) => [run.name, pct(m.uar), pct(m.war), ...m.perClassRecall.map(pct)]);
  for (const [name, v] of Object.entries(o.ceilings ?? {}))
    rows.push([`ceiling: ${name}`, pct(v), pct(v), ...classNames.map(() => '')]);
  const mdTable = [head, head.map(() => '---'), ...rows].map((r) => `| ${r.join(' | ')} |`).join('\n');
  const htmlTable =
    `<table><thead><tr>${head.map((h) => `<th>${esc(h)}</th>`).join('')}</tr></thead><tbody>` +
    `${rows.map((r) => `<tr>${r.map((c) => `<td>${esc(c)}</td>`).join('')}</tr>`).join('')}</tbody></table>`;

  const seeds = o.seeds ? await seedsSection(o.seeds) : undefined;
  if (seeds) figures.push(seeds.figure);
  const extra = o.tables ?? [];
  const mdExtra = extra.flatMap((t) => [
    `## ${t.title}`,
    '',
    ...[t.head, t.head.map(() => '---'), ...t.rows].map((r) => `| ${r.join(' | ')} |`),
    '',
  ]);
  const htmlExtra = extra
    .map(
      (t) =>
        `<h2>${esc(t.title)}</h2>\n<table><thead><tr>` +
        `${t.head.map((h) => `<th>${esc(h)}</th>`).join('')}</tr></thead><tbody>` +
        `${t.rows.map((r) => `<tr>${r.map((c) => `<td>${esc(c)}</td>`).join('')}</tr>`).join('')}` +
        '</tbody></table>\n',
    )
    .join('');

  ensureDir(path.join(o.out, 'figures')); // a read-only --out is said as such (mkdir -p says ENOENT)
  for (const f of figures) writeFileAtomic(path.join(o.out, 'figures', f.file), f.svg);
  const notes = [...(o.notes ?? []), ...skipped];
  const md = [
    `# ${o.title}`,
    '',
    ...notes.flatMap((n) => [n, '']),
    ...(seeds ? seeds.md : []),
    '## Results on the test split (%)' + (seeds ? ` (seed ${o.seeds!.rows[0]!.seed})` : ''),
    '',
    mdTable,
    '',
    ...mdExtra,
    ...figures.flatMap((f) => [`![${f.caption}](figures/${f.file})`, '', `*${f.caption}*`, '']),
  ].join('\n');
  const img = (f: Figure) =>
    `<figure><img alt="${esc(f.caption)}" ` +
    `src="data:image/svg+xml;base64,${Buffer.from(f.svg).toString('base64')}">` +
    `<figcaption>${esc(f.caption)}</figcaption></figure>`;
  const style =
    'body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}' +
    'table{border-collapse:collapse;margin:1em 0}' +
    'td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}' +
    'td:first-child,th:first-child{text-align:left}' +
    'figure{display:inline-block;margin:1em;vertical-align:top}' +
    'figcaption{font-size:.85em;color:#555;max-width:420px}';
  const html = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${esc(o.title)}</title>
<style>${style}</style>
</head><body>
<h1>${esc(o.title)}</h1>
${notes.map((n) => `<p>${esc(n)}</p>`).join('\n')}
${seeds ? seeds.html : ''}
<h2>Results on the test split (%)${seeds ? ` (seed ${o.seeds!.rows[0]!.seed})` : ''}</h2>
${htmlTable}
${htmlExtra}<h2>Figures</h2>
${figures.map(img).join('\n')}
<script>
// Marks how many figures decoded, for the headless-browser check (and for the curious).
addEventListener('load', () => {
  const imgs = [...document.images];
  document.body.dataset.figures = imgs.filter((i) => i.complete && i.naturalWidth > 0).length + '/' + imgs.length;
});
</script>
</body></html>
`;
  const htmlFile = path.join(o.out, 'report.html');
  const mdFile = path.join(o.out, 'report.md');
  writeFileAtomic(htmlFile, html);
  writeFileAtomic(mdFile, md + '\n');
  return {
    html: htmlFile,
    markdown: mdFile,
    figures: figures.map((f) => path.join(o.out, 'figures', f.file)),
    skipped,
  };
}

/** The seeds' section: the summary table, each seed's table (Markdown lines and HTML) and the per-seed plot. */
async function seedsSection(
  o: NonNullable<ReportOptions['seeds']>,
): Promise<{ md: string[]; html: string; figure: Figure }> {
  if (!o.rows.length) throw new RangeError('report: seeds without rows');
  const names = Object.keys(o.rows[0]!.metrics);
  const gapName = o.gap ? `${o.gap[0]} − ${o.gap[1]}` : undefined;
  const value = (r: SeedRow, name: string, k: 'uar' | 'war') =>
    name === gapName ? r.metrics[o.gap![0]]![k] - r.metrics[o.gap![1]]![k] : r.metrics[name]![k];
  const all = gapName ? [...names, gapName] : names;
  const pm = (v: readonly number[]) => {
    const s = spreadOf(v);
    return [`${pct(s.mean)} ± ${Number.isNaN(s.std) ? '-' : pct(s.std)}`, pct(s.min), pct(s.max)];
  };
  const summary = [
    ['', 'UAR mean ± std', 'min', 'max', 'WAR mean ± std', 'min', 'max'],
    ...all.map((n) => [n, ...pm(o.rows.map((r) => value(r, n, 'uar'))), ...pm(o.rows.map((r) => value(r, n, 'war')))]),
  ];
  const perSeed = [
    ['seed', ...all.map((n) => `${n} UAR`)],
    ...o.rows.map((r) => [String(r.seed), ...all.map((n) => pct(value(r, n, 'uar')))]),
  ];
  const title = `Over ${o.rows.length} seeds (%, test split; std over seeds, n − 1)`;
  const points = o.rows.flatMap((r) => all.map((n) => ({ seed: r.seed, run: n, uar: 100 * value(r, n, 'uar') })));
  const figure: Figure = {
    file: 'seeds.svg',
    caption:
      'Test UAR of each seed (points) and the mean (tick) ' +
      `over ${o.rows.length} seeds${gapName ? `; ${gapName} is paired by seed` : ''}.`,
    svg: await toSvg(seedsSpec('UAR per seed', points, all)),
  };
  return {
    md: [`## ${title}`, '', mdOf(summary), '', mdOf(perSeed), ''],
    html: `<h2>${esc(title)}</h2>\n${htmlOf(summary)}\n${htmlOf(perSeed)}`,
    figure,
  };
}

const mdOf = (rows: string[][]) =>
  [rows[0]!, rows[0]!.map(() => '---'), ...rows.slice(1)].map((r) => `| ${r.join(' | ')} |`).join('\n');
const htmlOf = (rows: string[][]) =>
  `<table><thead><tr>${rows[0]!.map((h) => `<th>${esc(h)}</th>`).join('')}</tr></thead><tbody>${rows
    .slice(1)
    .map((r) => `<tr>${r.map((c) => `<td>${esc(c)}</td>`).join('')}</tr>`)
    .join('')}</tbody></table>`;

function slug(s: string): string {
  return s
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-|-$/g, '');
}
