// A training run from a feature cache to a run folder, and its evaluation: what `ous train` and
// `ous eval` do, as functions (the demo and the ablations call them too).
import * as path from 'node:path';
import { FeatureCache, cacheInfoOf } from '../data/cache.js';
import { assumedRecipe, matchCrops, type Recipe } from '../streams/recipe.js';
import { stratifiedSplit } from '../data/dataset.js';
import { loadClipFolder } from '../clip/load.js';
import { buildHead, type Head } from '../ous/model.js';
import type { OusConfig } from '../ous/config.js';
import type { PresetName } from '../ous/presets.js';
import type { TrainConfig } from '../ous/train-config.js';
import { manualSeed, noGrad, tidy, type Device } from '../torch/index.js';
import { fsUserError, pathKind, readJsonAs } from '../util/fs.js';
import { UserError } from '../util/errors.js';
import { ConfigFile, resolveRunConfig, type ConfigOverrides } from './config.js';
import { evaluate, train, type TrainResult } from './trainer.js';
import type { Metrics } from './metrics.js';
import {
  RUN_VERSION,
  checkpointFile,
  loadHeadWeights,
  readRunConfig,
  runClipDir,
  runRecipe,
  type RunConfig,
} from '../runs/folder.js';
import { RunFolder } from '../runs/run-folder.js';

export { RUN_VERSION, readRunConfig, type ConfigOverrides, type RunConfig };

/** The divisors of n, for a message. */
const divisors = (n: number) => [...Array(n).keys()].map((i) => i + 1).filter((d) => n % d === 0);

/**
 * The clips of a cache for training: validation is a stratified share of the training clips (their
 * original view), never the test split. Each training clip comes with the views the trainer draws
 * one of per epoch: its train-mode samplings (views 1, 2, ... of a cache extracted with --views),
 * or the original view where it has none.
 */
export function splitsOf(
  cache: FeatureCache,
  valFraction: number,
  seed: number,
): { train: number[][]; val: number[]; test: number[] } {
  const originals = cache.indices('train', true);
  const { val } = stratifiedSplit(originals, cache.data.labels, valFraction, seed);
  const valClips = new Set(val.map((i) => cache.records[i]!.key));
  // Every view of a validation clip stays out of training (a view's key is the clip's and '#v<n>';
  // a person's clip id has a '#' of its own, personId's '#xywh=', so only the view suffix goes).
  const views = new Map<string, Array<{ index: number; view: number }>>();
  for (const i of cache.indices('train')) {
    const key = cache.records[i]!.key;
    const clip = key.replace(/#v\d+$/, '');
    if (valClips.has(clip)) continue;
    if (!views.has(clip)) views.set(clip, []);
    views.get(clip)!.push({ index: i, view: Number(/#v(\d+)$/.exec(key)?.[1] ?? 0) });
  }
  const train = [...views.values()].map((vs) => {
    const augmented = vs.filter((v) => v.view > 0);
    return (augmented.length ? augmented : vs).map((v) => v.index);
  });
  return { train, val, test: cache.indices('test', true) };
}

export interface TrainRunOptions {
  cache: string;
  out: string;
  /** The named settings under the config file and --set (src/ous/presets.ts); default 'paper'. */
  preset?: PresetName;
  config?: string; // a JSON file: {"ous": {...}, "train": {...}}
  overrides?: ConfigOverrides; // the command line's --set arrive here parsed (src/cli/sets.ts)
  model?: OusConfig['model'];
  seed?: number;
  device?: Device;
  resume?: boolean;
  force?: boolean; // replace an existing run in `out` (without it, an existing run is never overwritten)
  clip?: string; // the CLIP folder, when it moved since extraction
  log?: (line: string) => void;
}

/** Why a validation split cannot be made, per class, and what to do about it. */
function splitProblem(
  dir: string,
  cache: FeatureCache,
  split: { train: unknown[]; val: number[] },
  valFraction: number,
): string {
  const names = cache.info.classNames;
  const perClass = names.map(() => 0);
  for (const i of cache.indices('train', true)) perClass[cache.data.labels[i]!]! += 1;
  const none = names.filter((_, c) => perClass[c] === 0);
  const one = names.filter((_, c) => perClass[c] === 1);
  const test = cache.indices('test', true).length;
  const parts = [
    `${split.train.length} training and ${split.val.length} validation clips`,
    none.length ? `no training clips of ${none.join(', ')}` : '',
    one.length
      ? `one training clip of ${one.join(', ')} (a class needs 2: one of them is held out for validation)`
      : '',
    perClass.every((n) => n === 0) && test ? `all ${test} clips are in the test split` : '',
  ].filter(Boolean);
  return (
    `${dir}: cannot make a validation split (valFraction ${valFraction}): ${parts.join('; ')}. Give every ` +
    `class at least 2 clips with split 'train' (a manifest's split column; a missing split is train) and extract again`
  );
}

export async function trainRun(o: TrainRunOptions): Promise<TrainResult> {
  // Everything is checked before anything is written: a refused run leaves no folder behind.
  const kind = pathKind(o.out);
  if (kind !== 'missing' && kind !== 'folder')
    throw new UserError(`train: --out ${o.out} is ${kind === 'file' ? 'a file' : kind.other}, not a run folder`);
  const run = new RunFolder(o.out);
  // Locked first: two `ous train --out R` at once would otherwise both pass the checks below and
  // write one folder (interleaved metrics, each other's checkpoints).
  const release = run.lock(o.log ? (l) => o.log!(l) : undefined);
  let ok = false;
  try {
    const r = await trainLocked(run, o);
    ok = true;
    return r;
  } finally {
    release(!ok); // a refused run leaves no folder behind (only an empty one it made is removed)
  }
}

/** The locked run folder trained: its settings resolved, its inputs checked, then the training. */
async function trainLocked(run: RunFolder, o: TrainRunOptions): Promise<TrainResult> {
  const stored = checkOut(run, o);
  const file = o.config ? readJsonAs(o.config, ConfigFile, 'config file ({"ous": {...}, "train": {...}})') : undefined;
  const info = cacheInfoOf(o.cache);
  const {
    preset,
    ous,
    train: cfg,
  } = resolveRunConfig({
    preset: o.preset,
    stored: stored && { ...stored, cache: path.resolve(stored.cache) },
    out: o.out,
    file: file && o.config ? { path: o.config, ...file } : undefined,
    overrides: o.overrides,
    model: o.model,
    seed: o.seed,
    cache: { ...info, dir: o.cache, resolved: path.resolve(o.cache) },
  });
  const { cache, split, clipDir, clip } = openInputs(o, ous, cfg);
  if (o.force && !o.resume) run.removeRunFiles();
  if (stored) {
    run.repairEpochs();
    if (cfg.epochs !== stored.train.epochs) recordResume(run, stored, cfg.epochs);
  }
  manualSeed(cfg.seed);
  const head = buildHead(ous, cache.data.dims, clip.textTower);
  // The statistics come from the training clips once; a resumed run reads them from its state.
  if (head.standardizer && !stored) tidy(() => head.standardizer!.fit(cache.data.batch(split.train.flat())));
  if (o.device) head.to({ device: o.device });
  try {
    return await train({
      head,
      ous,
      train: cfg,
      data: cache.data,
      split,
      outDir: o.out,
      resume: o.resume,
      device: o.device,
      log: o.log,
      info: {
        version: RUN_VERSION,
        preset,
        cache: path.resolve(o.cache),
        clip: path.resolve(clipDir),
        test: split.test.length,
        recipe: recipeOf(cache, o.cache, o.log ?? ((l) => process.stderr.write(`ous: ${l}\n`))),
      },
    });
  } catch (err) {
    // A fresh run that failed before its first epoch finished leaves nothing to resume: its files
    // go, so that the retry is not refused as "already holds a run (0 epochs)".
    if (!stored && run.epochs().length === 0) run.removeRunFiles();
    if (/^loadStateDict\(/.test((err as Error).message ?? ''))
      throw new UserError(
        `${run.lastFile} does not fit this run's config.json (another run's state?): ` +
          `${(err as Error).message.replace(/^loadStateDict\([^)]*\): /, '').slice(0, 300)}`,
      );
    throw fsUserError(err, o.out, 'train:');
  }
}

/**
 * What the folder holds, against what was asked (a new run, --resume, --force): the run's stored
 * settings when it resumes; a run that would be overwritten is refused.
 */
function checkOut(run: RunFolder, o: TrainRunOptions): RunConfig | undefined {
  const existing = run.holdsRun();
  if (existing && !o.resume && !o.force) {
    throw new UserError(
      `train: ${o.out} already holds a run (${run.epochs().length} epochs): pass --resume to continue it, ` +
        `--force to replace it, or choose another --out`,
    );
  }
  if (!existing && !o.force && run.hasRunFiles()) {
    throw new UserError(
      `train: ${o.out} holds files of an unfinished run but no config.json: pass --force to replace them, or ` +
        `choose another --out`,
    );
  }
  if (!(o.resume && existing)) return undefined;
  const stored = readRunConfig(o.out);
  checkResumable(run);
  return stored;
}

/** The cache, its split and the CLIP text tower, each checked against the resolved settings. */
function openInputs(o: TrainRunOptions, ous: OusConfig, cfg: TrainConfig) {
  const cache = FeatureCache.open(o.cache);
  const E = cache.data.dims.embed;
  if (E % ous.heads)
    throw new UserError(
      `heads = ${ous.heads} does not divide the encoder width E = ${E} of ${o.cache} (attention splits E among the ` +
        `heads): use one of ${divisors(E).join(', ')}`,
    );
  const C = ous.classNames.length;
  const maxLabel = cache.data.labels.reduce((m, l) => Math.max(m, l), -1);
  if (maxLabel >= C) throw new UserError(`${o.cache} has label ${maxLabel}, outside the ${C} classes of classNames`);
  const split = splitsOf(cache, cfg.valFraction, cfg.seed);
  if (!split.train.length || !split.val.length)
    throw new UserError(splitProblem(o.cache, cache, split, cfg.valFraction));
  const clipDir = o.clip ?? cache.info.clip.path;
  if (pathKind(clipDir) === 'missing')
    throw new UserError(
      o.clip
        ? `--clip ${clipDir}: no such folder`
        : `the cache was made with CLIP at ${clipDir}, which is gone: pass --clip DIR`,
    );
  // The text tower must be the one the features came from: other weights of the same widths would
  // train and predict silently wrong; other widths would fail deep in a matrix product.
  const clip = loadClipFolder(clipDir, {
    device: o.device,
    textOnly: true,
    expectHash: {
      hash: cache.info.clip.hash,
      what: `${o.cache} was extracted with`,
      flag: o.clip ? '--clip' : "the cache's CLIP",
    },
  });
  return { cache, split, clipDir, clip };
}

/** A larger epoch limit on resume is allowed, and recorded in the run's config.json. */
function recordResume(run: RunFolder, stored: RunConfig, epochs: number): void {
  const json = run.readConfigJson();
  const resumes = [
    ...(stored.resumes ?? []),
    { at: new Date().toISOString(), afterEpoch: run.epochs().length, epochs: [stored.train.epochs, epochs] },
  ];
  run.writeConfig({ ...json, train: { ...(json.train as object), epochs }, resumes });
}

/**
 * A run can resume only from both of its files: the last state (weights, optimizer, loop) and the
 * best checkpoint. Without the first it would start again from epoch 1; without the second it
 * would report a best epoch it has no weights for. A run that never finished an epoch has neither
 * and starts over.
 */
function checkResumable(run: RunFolder): void {
  const n = run.epochs().length;
  const { lastFile: last, bestFile: best, dir: runDir } = run;
  const hasLast = run.hasLast();
  const hasBest = run.hasBest();
  if (!n && !hasLast && !hasBest) return;
  const fix = `train it again with --force, or into another --out`;
  if (!hasLast)
    throw new UserError(
      `train --resume: ${last} is missing (the training state after epoch ${n}), so ${runDir} cannot continue ` +
        `where it stopped: ${fix}`,
    );
  if (!hasBest)
    throw new UserError(
      `train --resume: ${best} is missing (the best epoch's weights), so ${runDir} cannot continue: ${fix}`,
    );
}

/**
 * The recipe a run records: its cache's (a cache from before the recipe: what that version did,
 * said in one line), with the detector crop matched to the data set's crops, the median of the
 * training clips' measurements, when the faces were the data set's.
 */
export function recipeOf(cache: FeatureCache, dir: string, log: (line: string) => void): Recipe {
  let recipe = cache.info.recipe;
  if (!recipe) {
    const c = cache.info;
    const assumed = assumedRecipe(
      { ...c, clipHash: c.clip.hash, precision: c.precision },
      path.join(dir, 'cache.json'),
    );
    log(`note: ${assumed.note}`);
    recipe = assumed.recipe;
  }
  if (recipe.face.source !== 'dataset-crops') return recipe;
  const fits = cache.records.filter((r) => r.split === 'train' && r.view === 0 && r.shippedFit);
  const matched = matchCrops(fits.map((r) => r.shippedFit!));
  return { ...recipe, face: { ...recipe.face, ...(matched ? { matched } : {}) } };
}

/** Where a run's cache and CLIP are, when they moved since training (`--cache`, `--clip`). */
export interface RunPlaces {
  cache?: string;
  clip?: string;
}

/**
 * A finished run, ready to evaluate: its configs, cache, splits and the best checkpoint's head. A
 * cache or CLIP given in place of the run's own must be the one it was trained on (same CLIP
 * weights, classes and frames): else the metrics would be of other features.
 */
export function loadRun(runDir: string, opts: { device?: Device } & RunPlaces = {}) {
  const conf = readRunConfig(runDir);
  const ckpt = checkpointFile(runDir);
  const { recipe } = runRecipe(runDir, conf);
  const cacheDir = opts.cache ?? conf.cache;
  if (pathKind(cacheDir) === 'missing')
    throw new UserError(
      opts.cache
        ? `--cache ${cacheDir}: no such folder`
        : `${runDir} was trained on the cache ${cacheDir}, which is not there: pass --cache DIR`,
    );
  const info = cacheInfoOf(cacheDir);
  const theirs = { clipHash: info.clip.hash.slice(0, 12), classNames: info.classNames.join(','), frames: info.frames };
  const mine = {
    clipHash: recipe.clipHash.slice(0, 12),
    classNames: conf.ous.classNames.join(','),
    frames: recipe.frames,
  };
  const diffs = (Object.keys(mine) as Array<keyof typeof mine>)
    .filter((k) => theirs[k] !== mine[k])
    .map((k) => `${k} (run: ${mine[k]}, cache: ${theirs[k]})`);
  if (diffs.length)
    throw new UserError(
      `${opts.cache ? '--cache ' : ''}${cacheDir} is not the cache ${runDir} was trained on: ${diffs.join('; ')}`,
    );
  const cache = FeatureCache.open(cacheDir);
  const clipDir = runClipDir(runDir, conf, opts.clip);
  const clip = loadClipFolder(clipDir, {
    device: opts.device,
    textOnly: true,
    expectHash: {
      hash: recipe.clipHash,
      what: `${runDir} was trained on`,
      flag: opts.clip ? '--clip' : "the run's CLIP",
    },
  });
  const head: Head = buildHead(conf.ous, cache.data.dims, clip.textTower);
  loadHeadWeights(head, ckpt);
  if (opts.device) head.to({ device: opts.device });
  head.eval();
  return { conf, cache, head, splits: splitsOf(cache, conf.train.valFraction, conf.train.seed) };
}

export type LoadedRun = ReturnType<typeof loadRun>;

const splitIndices = (run: LoadedRun, split: 'test' | 'val') => (split === 'test' ? run.splits.test : run.splits.val);

/** The best checkpoint of a loaded run on a split of its cache. */
export function evalLoaded(
  run: LoadedRun,
  split: 'test' | 'val' = 'test',
  device?: Device,
): Metrics & { classNames: string[]; loss: number; predictions: number[]; labels: number[] } {
  const idx = splitIndices(run, split);
  if (!idx.length) throw new UserError(`${run.conf.cache} has no ${split} clips`);
  const r = evaluate(run.head, run.cache.data, idx, { device });
  return { ...r, classNames: run.conf.ous.classNames, labels: idx.map((i) => run.cache.data.labels[i]!) };
}

/** A run's best checkpoint on a split of its cache. */
export function evalRun(runDir: string, split: 'test' | 'val' = 'test', opts: { device?: Device } & RunPlaces = {}) {
  return evalLoaded(loadRun(runDir, opts), split, opts.device);
}

/** The clip features at the four stages of the paper's Fig. 4, for the clips of a split. */
export function runStages(
  run: LoadedRun,
  split: 'test' | 'val' = 'test',
): { labels: number[]; stages: Record<'encoder' | 'framesCls' | 'aligned' | 'fused', number[][]> } {
  const idx = splitIndices(run, split);
  const out = {
    encoder: [] as number[][],
    framesCls: [] as number[][],
    aligned: [] as number[][],
    fused: [] as number[][],
  };
  noGrad(() =>
    tidy(() => {
      const s = run.head.forward(run.cache.data.batch(idx)).stages;
      for (const k of Object.keys(out) as Array<keyof typeof out>) out[k] = s[k].toArray() as number[][];
    }),
  );
  return { labels: idx.map((i) => run.cache.data.labels[i]!), stages: out };
}
