// A training run from a feature cache to a run folder, and its evaluation: what `ous train` and
// `ous eval` do, as functions (the demo and the ablations call them too).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { FeatureCache, cacheInfoOf, type CacheInfo } from '../data/cache.js';
import { assumedRecipe, matchCrops, type Recipe } from '../streams/recipe.js';
import { stratifiedSplit } from '../data/dataset.js';
import { loadClipFolder } from '../clip/load.js';
import { buildHead, type Head } from '../ous/model.js';
import { z } from 'zod';
import { resolveOusConfig, type OusConfig } from '../ous/config.js';
import { DEFAULT_PRESET, PRESETS, type PresetName } from '../ous/presets.js';
import { manualSeed, noGrad, tidy, type Device } from '../torch/index.js';
import { fsUserError, isRegularFile, pathKind, readJson, readJsonAs } from '../util/fs.js';
import { UserError } from '../util/errors.js';
import { resolveTrainConfig, type TrainConfig } from '../ous/train-config.js';
import { evaluate, train, type TrainResult } from './trainer.js';
import type { Metrics } from './metrics.js';
import {
  RUN_FILES,
  RUN_VERSION,
  checkpointFile,
  finishedEpochs,
  isRunFolder,
  loadHeadWeights,
  lockRun,
  readRunConfig,
  repairMetrics,
  runInference,
  writeRunConfig,
  type InferenceInfo,
  type RunConfig,
} from '../runs/folder.js';

export { RUN_VERSION, readRunConfig, type InferenceInfo, type RunConfig };

/** Settings over the defaults (and a run's stored ones on resume), each checked by its config's schema. */
export interface ConfigOverrides {
  ous?: Partial<OusConfig>;
  train?: Partial<TrainConfig>;
}

const ConfigFile = z
  .object({ ous: z.record(z.unknown()).optional(), train: z.record(z.unknown()).optional() })
  .strict();

/** Differences between two resolved configs, as "section.key: a -> b". */
function configDiffs(
  was: { ous: OusConfig; train: TrainConfig },
  now: { ous: OusConfig; train: TrainConfig },
): Array<{ key: string; was: unknown; now: unknown }> {
  const out: Array<{ key: string; was: unknown; now: unknown }> = [];
  for (const section of ['ous', 'train'] as const) {
    const a = was[section] as Record<string, unknown>;
    const b = now[section] as Record<string, unknown>;
    for (const k of new Set([...Object.keys(a), ...Object.keys(b)]))
      if (JSON.stringify(a[k]) !== JSON.stringify(b[k])) out.push({ key: `${section}.${k}`, was: a[k], now: b[k] });
  }
  return out;
}

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

/**
 * The classes are the cache's (one source of truth: set at extraction). A config that names other
 * classes is an error; a cache without polarity labels trains without L_pol.
 */
function takeClassesFromCache(ous: Record<string, unknown>, info: CacheInfo, dir: string): void {
  for (const key of ['classNames', 'polarityOfClass'] as const) {
    if (ous[key] !== undefined && JSON.stringify(ous[key]) !== JSON.stringify(info[key]))
      throw new UserError(
        `${key} comes from the cache (${dir}: ${JSON.stringify(info[key])}), not ${JSON.stringify(ous[key])}: set ` +
          `the classes when extracting (ous extract --classes, --polarity)`,
      );
    ous[key] = info[key];
  }
  if (info.polarityOfClass === null) {
    if (ous.polarity === true)
      throw new UserError(`polarity=true needs polarity labels, and ${dir} has none (extracted with --no-polarity)`);
    ous.polarity = false;
  }
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
  // Locked first: two `ous train --out R` at once would otherwise both pass the checks below and
  // write one folder (interleaved metrics, each other's checkpoints).
  const release = lockRun(o.out, o.log ? (l) => o.log!(l) : undefined);
  let ok = false;
  try {
    const r = await trainLocked(o);
    ok = true;
    return r;
  } finally {
    release(!ok); // a refused run leaves no folder behind (only an empty one it made is removed)
  }
}

async function trainLocked(o: TrainRunOptions): Promise<TrainResult> {
  const existing = isRunFolder(o.out);
  if (existing && !o.resume && !o.force) {
    throw new UserError(
      `train: ${o.out} already holds a run (${finishedEpochs(o.out)} epochs): pass --resume to continue it, ` +
        `--force to replace it, or choose another --out`,
    );
  }
  if (!existing && !o.force && fs.readdirSync(o.out).some((f) => RUN_FILES.includes(f))) {
    throw new UserError(
      `train: ${o.out} holds files of an unfinished run but no config.json: pass --force to replace them, or ` +
        `choose another --out`,
    );
  }
  const stored = o.resume && existing ? readRunConfig(o.out) : undefined;
  if (stored) checkResumable(o.out);
  const file = o.config ? readJsonAs(o.config, ConfigFile, 'config file ({"ous": {...}, "train": {...}})') : {};
  // A resumed run keeps its own preset (its settings are stored whole; the name is for the reader).
  if (stored && o.preset && stored.preset && o.preset !== stored.preset)
    throw new UserError(
      `train --resume: ${o.out} was trained from the preset '${stored.preset}', not '${o.preset}': ` +
        'train into another --out for the other preset',
    );
  const presetName = (
    stored?.preset && stored.preset in PRESETS ? stored.preset : (o.preset ?? DEFAULT_PRESET)
  ) as PresetName;
  const preset = PRESETS[presetName];
  const raw: { ous: Record<string, unknown>; train: Record<string, unknown> } = {
    ous: { ...preset.ous, ...(stored?.ous ?? {}), ...(file.ous ?? {}), ...o.overrides?.ous },
    train: { ...preset.train, ...(stored?.train ?? {}), ...(file.train ?? {}), ...o.overrides?.train },
  };
  if (o.model) raw.ous.model = o.model;
  if (o.seed !== undefined) raw.train.seed = o.seed;
  const info = cacheInfoOf(o.cache);
  // On resume the run's own classes stand (the check below names a changed cache or classes).
  if (!stored) takeClassesFromCache(raw.ous, info, o.cache);
  // T comes from the cache: its features have that many frames per clip. (Settings the face-only
  // baseline does not use, such as tfeLayers, are accepted: one set of --set serves both models.)
  if (raw.ous.frames !== undefined && raw.ous.frames !== info.frames) {
    throw new UserError(
      `frames comes from the cache (${o.cache} has ${info.frames} frames per clip), not ` +
        `${JSON.stringify(raw.ous.frames)}: extract again with --frames ${JSON.stringify(raw.ous.frames)} into ` +
        `another cache`,
    );
  }
  raw.ous.frames = info.frames;
  const ous = resolveOusConfig(raw.ous, o.config ? `OUS config (${o.config} and --set)` : 'OUS config (--set)');
  const cfg = resolveTrainConfig(
    raw.train,
    o.config ? `training config (${o.config} and --set)` : 'training config (--set)',
  );
  if (stored) {
    const diffs = configDiffs(stored, { ous, train: cfg }).filter(
      (d) => !(d.key === 'train.epochs' && (d.now as number) > (d.was as number)),
    );
    const cachePath = path.resolve(o.cache);
    if (path.resolve(stored.cache) !== cachePath) diffs.unshift({ key: 'cache', was: stored.cache, now: cachePath });
    if (diffs.length) {
      const listed = diffs.map((d) => `${d.key} (run: ${JSON.stringify(d.was)}, now: ${JSON.stringify(d.now)})`);
      throw new UserError(
        `train --resume: ${o.out} was trained with other settings: ${listed.join('; ')}. ` +
          'Only a larger epochs may change on resume; train into another --out for the rest',
      );
    }
  }
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
  if (o.force && !o.resume) for (const f of RUN_FILES) fs.rmSync(path.join(o.out, f), { force: true });
  if (stored) repairMetrics(o.out);
  if (stored && cfg.epochs !== stored.train.epochs) {
    // A larger epoch limit on resume is allowed, and recorded in the run.
    const afterEpoch = finishedEpochs(o.out);
    const json = readJson<Record<string, unknown>>(path.join(o.out, 'config.json'));
    const resumes = [
      ...(stored.resumes ?? []),
      { at: new Date().toISOString(), afterEpoch, epochs: [stored.train.epochs, cfg.epochs] as [number, number] },
    ];
    writeRunConfig(o.out, { ...json, train: { ...(json.train as object), epochs: cfg.epochs }, resumes });
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
        preset: presetName,
        cache: path.resolve(o.cache),
        clip: path.resolve(clipDir),
        test: split.test.length,
        inference: inferenceOf(cache),
        recipe: recipeOf(cache, o.cache, o.log ?? ((l) => process.stderr.write(`ous: ${l}\n`))),
      },
    });
  } catch (err) {
    // A fresh run that failed before its first epoch finished leaves nothing to resume: its files
    // go, so that the retry is not refused as "already holds a run (0 epochs)".
    if (!stored && finishedEpochs(o.out) === 0)
      for (const f of RUN_FILES) fs.rmSync(path.join(o.out, f), { force: true });
    if (/^loadStateDict\(/.test((err as Error).message ?? ''))
      throw new UserError(
        `${path.join(o.out, 'last.safetensors')} does not fit this run's config.json (another run's state?): ` +
          `${(err as Error).message.replace(/^loadStateDict\([^)]*\): /, '').slice(0, 300)}`,
      );
    throw fsUserError(err, o.out, 'train:');
  }
}

/**
 * A run can resume only from both of its files: the last state (weights, optimizer, loop) and the
 * best checkpoint. Without the first it would start again from epoch 1; without the second it
 * would report a best epoch it has no weights for. A run that never finished an epoch has neither
 * and starts over.
 */
function checkResumable(runDir: string): void {
  const n = finishedEpochs(runDir);
  const last = path.join(runDir, 'last.safetensors');
  const best = path.join(runDir, 'checkpoint.safetensors');
  const hasLast = isRegularFile(last, 'training state');
  const hasBest = isRegularFile(best, 'checkpoint');
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

export function inferenceOf(cache: FeatureCache): InferenceInfo {
  return {
    frames: cache.info.frames,
    scene: cache.info.scene,
    polarityLayer: cache.info.polarityLayer,
    clipHash: cache.info.clip.hash,
    classNames: cache.info.classNames,
  };
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
  const inference = runInference(runDir, conf);
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
    clipHash: inference.clipHash.slice(0, 12),
    classNames: conf.ous.classNames.join(','),
    frames: inference.frames,
  };
  const diffs = (Object.keys(mine) as Array<keyof typeof mine>)
    .filter((k) => theirs[k] !== mine[k])
    .map((k) => `${k} (run: ${mine[k]}, cache: ${theirs[k]})`);
  if (diffs.length)
    throw new UserError(
      `${opts.cache ? '--cache ' : ''}${cacheDir} is not the cache ${runDir} was trained on: ${diffs.join('; ')}`,
    );
  const cache = FeatureCache.open(cacheDir);
  const clipDir = opts.clip ?? conf.clip;
  if (pathKind(clipDir) === 'missing')
    throw new UserError(
      opts.clip
        ? `--clip ${clipDir}: no such folder`
        : `${runDir} was trained with CLIP at ${clipDir}, which is not there: pass --clip DIR`,
    );
  const clip = loadClipFolder(clipDir, {
    device: opts.device,
    textOnly: true,
    expectHash: {
      hash: inference.clipHash,
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
