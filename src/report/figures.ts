// The report's figures, as Vega-Lite specifications rendered to SVG headlessly (no browser, no
// canvas): confusion matrices (the paper's Fig. 5), training curves (Fig. 6), loss-phase shares,
// and 2-D embeddings of clip features at four stages (Fig. 4).
// vega, vega-lite and umap-js (a hundred modules) load on first use, not when a command imports this.
import { createRequire } from 'node:module';
import type { TopLevelSpec } from 'vega-lite';
import type { UMAP } from 'umap-js';
import { rowNormalised } from '../train/metrics.js';
import { rng } from '../util/random.js';

export async function toSvg(spec: TopLevelSpec): Promise<string> {
  const [vega, { compile }] = await Promise.all([import('vega'), import('vega-lite')]);
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: 'none' });
  return view.toSVG();
}

/** Row-normalised confusion matrix as a heat map with the values written in. */
export function confusionSpec(title: string, confusion: number[][], classNames: string[]): TopLevelSpec {
  const norm = rowNormalised(confusion);
  const values = norm.flatMap((row, t) =>
    row.map((v, p) => ({ true: classNames[t], predicted: classNames[p], value: v, label: v.toFixed(2) })),
  );
  return {
    title,
    data: { values },
    width: 260,
    height: 260,
    encoding: {
      x: { field: 'predicted', type: 'nominal', sort: classNames },
      y: { field: 'true', type: 'nominal', sort: classNames },
    },
    layer: [
      {
        mark: 'rect',
        encoding: {
          color: { field: 'value', type: 'quantitative', scale: { domain: [0, 1], scheme: 'blues' }, title: 'recall' },
        },
      },
      {
        mark: { type: 'text', fontSize: 9 },
        encoding: {
          text: { field: 'label' },
          color: { condition: { test: 'datum.value > 0.5', value: 'white' }, value: 'black' },
        },
      },
    ],
  } as TopLevelSpec;
}

export interface CurvePoint {
  run: string;
  epoch: number;
  series: string; // e.g. "train", "val"
  value: number;
}

export function curveSpec(title: string, yTitle: string, points: CurvePoint[]): TopLevelSpec {
  return {
    title,
    data: { values: points.filter((p) => Number.isFinite(p.value)) },
    width: 320,
    height: 200,
    mark: { type: 'line', point: true },
    encoding: {
      x: { field: 'epoch', type: 'quantitative' },
      y: { field: 'value', type: 'quantitative', title: yTitle },
      color: { field: 'run', type: 'nominal' },
      strokeDash: { field: 'series', type: 'nominal' },
    },
  } as TopLevelSpec;
}

export function phaseSpec(title: string, rows: Array<{ epoch: number; phase: string; share: number }>): TopLevelSpec {
  return {
    title,
    data: { values: rows },
    width: 320,
    height: 160,
    mark: 'bar',
    encoding: {
      x: { field: 'epoch', type: 'ordinal' },
      y: { field: 'share', type: 'quantitative', stack: 'normalize', title: 'share of steps' },
      color: { field: 'phase', type: 'nominal', scale: { domain: ['global', 'contrast', 'ce'] } },
    },
  } as TopLevelSpec;
}

/** Each seed's value as a point per run (one row each), with a tick at the mean: the spread over seeds at a glance. */
export function seedsSpec(
  title: string,
  points: Array<{ seed: number; run: string; uar: number }>,
  runs: string[],
): TopLevelSpec {
  return {
    title,
    data: { values: points },
    width: 360,
    height: 40 * runs.length,
    encoding: { y: { field: 'run', type: 'nominal', sort: runs, title: null } },
    layer: [
      {
        mark: { type: 'circle', size: 50, opacity: 0.7 },
        encoding: {
          x: { field: 'uar', type: 'quantitative', title: 'UAR (%)' },
          color: { field: 'run', type: 'nominal', sort: runs, legend: null },
          tooltip: [{ field: 'seed' }, { field: 'uar' }],
        },
      },
      {
        mark: { type: 'tick', color: 'black', thickness: 2 },
        encoding: { x: { aggregate: 'mean', field: 'uar', type: 'quantitative' } },
      },
    ],
  } as TopLevelSpec;
}

// UMAP links each point to at least 2 neighbours, so it needs 3 points (umap-js throws below that).
export const UMAP_MIN_POINTS = 3;

/** A seeded 2-D UMAP embedding of the rows of `data` (at least UMAP_MIN_POINTS of them). */
export function embed2d(data: number[][], seed: number): number[][] {
  const { UMAP: Umap } = createRequire(import.meta.url)('umap-js') as { UMAP: typeof UMAP }; // CommonJS
  const umap = new Umap({
    nComponents: 2,
    nNeighbors: Math.min(15, Math.max(2, data.length - 1)),
    minDist: 0.1,
    random: rng(seed),
  });
  return umap.fit(data);
}

export function embeddingSpec(
  title: string,
  points: Array<{ stage: string; x: number; y: number; label: string }>,
  stages: string[],
  classNames: string[],
): TopLevelSpec {
  return {
    title,
    data: { values: points },
    facet: { field: 'stage', type: 'nominal', sort: stages, title: null },
    columns: 4,
    spec: {
      width: 180,
      height: 180,
      mark: { type: 'circle', size: 30, opacity: 0.8 },
      encoding: {
        x: { field: 'x', type: 'quantitative', axis: null, scale: { zero: false } },
        y: { field: 'y', type: 'quantitative', axis: null, scale: { zero: false } },
        // Vega's default palette has 10 colours: more classes would share them.
        color: {
          field: 'label',
          type: 'nominal',
          sort: classNames,
          title: 'class',
          ...(classNames.length > 10 ? { scale: { scheme: 'tableau20' } } : {}),
        },
      },
    },
    resolve: { scale: { x: 'independent', y: 'independent' } },
  } as TopLevelSpec;
}
