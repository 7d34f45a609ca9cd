// A training run from a feature cache to a run folder, and its evaluation: what `ous train` and
// `ous eval` do, as functions (the demo and the ablations call them too).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { FeatureCache, cacheInfoOf, type CacheInfo } from '../data/cache.js';
import { stratifiedSplit } from '../data/dataset.js';
import { loadClip } from '../clip/load.js';
import { ClipTokenizer } from '../clip/tokenizer.js';
import { buildHead, type Head } from '../ous/model.js';
import { resolveOusConfig, type OusConfig } from '../ous/config.js';
import type { FrozenTextTower } from '../ous/prompt.js';
import { loadSafetensors, manualSeed, noGrad, tidy, type Device } from '../torch/index.js';
import { readJson } from '../util/fs.js';
import { UserError } from '../util/errors.js';
import { resolveTrainConfig, type TrainConfig } from './config.js';
import { evaluate, train, type TrainResult } from './trainer.js';
import type { Metrics } from './metrics.js';

/** CLIP's frozen text tower and tokenizer for the prompt learner; the vision tower is freed. */
export function textTowerFromClip(dir: string, device?: Device): FrozenTextTower {
  const clip = loadClip(dir, { device });
  for (const p of clip.vision_model.parameters()) p.dispose();
  const tok = ClipTokenizer.fromFolder(dir);
  const ctx = clip.config.text_config.max_position_embeddings;
  return {
    tokenize: (t) => tok.tokenize(t, ctx),
    embedTokens: (ids) => clip.text_model.embedTokens(ids.to({ device })),
    encode: (e, eot) => clip.encodeTextEmbeddings(e, eot).textEmbeds,
    width: clip.config.text_config.hidden_size,
  };
}

/** `key=value` overrides: `ous.x` / `train.x`, or a bare key found in one of the two configs. */
export function applySets(base: { ous: Record<string, unknown>; train: Record<string, unknown> }, sets: string[]): void {
  const ousKeys = Object.keys(resolveOusConfig({}));
  const trainKeys = Object.keys(resolveTrainConfig({}));
  for (const s of sets) {
    const eq = s.indexOf('=');
    if (eq < 1) throw new UserError(`--set expects key=value, not '${s}'`);
    let key = s.slice(0, eq);
    const raw = s.slice(eq + 1);
    let value: unknown;
    try {
      value = JSON.parse(raw);
    } catch {
      value = raw;
    }
    let section: 'ous' | 'train';
    if (key.startsWith('ous.') || key.startsWith('train.')) [section, key] = key.split('.', 2) as ['ous' | 'train', string];
    else if (ousKeys.includes(key)) section = 'ous';
    else if (trainKeys.includes(key)) section = 'train';
    else throw new UserError(`--set: unknown key '${key}' (OUS: ${ousKeys.join(', ')}; training: ${trainKeys.join(', ')})`);
    base[section][key] = value;
  }
}

/** The clips of a cache for training: validation is a stratified share of the training clips (their original view), never the test split. */
export function splitsOf(cache: FeatureCache, valFraction: number, seed: number): { train: number[]; val: number[]; test: number[] } {
  const originals = cache.indices('train', true);
  const { val } = stratifiedSplit(originals, cache.data.labels, valFraction, seed);
  const valClips = new Set(val.map((i) => cache.records[i]!.key));
  // Every view of a validation clip stays out of training (views share the clip's key before '#').
  const train = cache.indices('train').filter((i) => !valClips.has(cache.records[i]!.key.split('#')[0]!));
  return { train, val, test: cache.indices('test', true) };
}

export interface TrainRunOptions {
  cache: string;
  out: string;
  config?: string; // a JSON file: {"ous": {...}, "train": {...}}
  sets?: string[];
  model?: OusConfig['model'];
  seed?: number;
  device?: Device;
  resume?: boolean;
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
      throw new UserError(`${key} comes from the cache (${dir}: ${JSON.stringify(info[key])}), not ${JSON.stringify(ous[key])}: set the classes when extracting (ous extract --classes, --polarity)`);
    ous[key] = info[key];
  }
  if (info.polarityOfClass === null) {
    if (ous.polarity === true) throw new UserError(`polarity=true needs polarity labels, and ${dir} has none (extracted with --no-polarity)`);
    ous.polarity = false;
  }
}

export async function trainRun(o: TrainRunOptions): Promise<TrainResult> {
  const resumeConfig = o.resume && fs.existsSync(path.join(o.out, 'config.json')) ? readJson<{ ous: OusConfig; train: TrainConfig }>(path.join(o.out, 'config.json')) : undefined;
  const file = o.config ? readJson<{ ous?: Record<string, unknown>; train?: Record<string, unknown> }>(o.config) : {};
  const raw = { ous: { ...(resumeConfig?.ous ?? file.ous ?? {}) }, train: { ...(resumeConfig?.train ?? file.train ?? {}) } };
  if (!resumeConfig) {
    applySets(raw, o.sets ?? []);
    if (o.model) raw.ous.model = o.model;
    if (o.seed !== undefined) raw.train.seed = o.seed;
  }
  takeClassesFromCache(raw.ous, cacheInfoOf(o.cache), o.cache);
  const ous = resolveOusConfig(raw.ous, 'OUS config');
  const cfg = resolveTrainConfig(raw.train, 'training config');
  const cache = FeatureCache.open(o.cache);
  if (cache.info.frames !== ous.frames) ous.frames = cache.info.frames; // T comes from the cache
  const clipDir = o.clip ?? cache.info.clip.path;
  if (!fs.existsSync(clipDir)) throw new UserError(`the cache was made with CLIP at ${clipDir}, which is gone: pass --clip DIR`);
  const split = splitsOf(cache, cfg.valFraction, cfg.seed);
  if (!split.train.length || !split.val.length) throw new UserError(`${o.cache}: not enough training clips for a validation split (${split.train.length} train, ${split.val.length} val)`);
  manualSeed(cfg.seed);
  const head = buildHead(ous, cache.data.dims, textTowerFromClip(clipDir, o.device));
  if (o.device) head.to({ device: o.device });
  return train({
    head, ous, train: cfg, data: cache.data, split, outDir: o.out, resume: o.resume, device: o.device, log: o.log,
    info: { cache: path.resolve(o.cache), clip: path.resolve(clipDir), test: split.test.length },
  });
}

/** A finished run, ready to evaluate: its configs, cache, splits and the best checkpoint's head. */
export function loadRun(runDir: string, opts: { device?: Device; clip?: string } = {}) {
  const configFile = path.join(runDir, 'config.json');
  if (!fs.existsSync(configFile)) throw new UserError(`${runDir} is not a run folder (no config.json)`);
  const conf = readJson<{ ous: OusConfig; train: TrainConfig; cache: string; clip: string }>(configFile);
  const ckpt = path.join(runDir, 'checkpoint.safetensors');
  if (!fs.existsSync(ckpt)) throw new UserError(`${runDir} has no checkpoint.safetensors yet (no epoch finished)`);
  const cache = FeatureCache.open(conf.cache);
  const head: Head = buildHead(conf.ous, cache.data.dims, textTowerFromClip(opts.clip ?? conf.clip, opts.device));
  head.loadStateDict(loadSafetensors(ckpt));
  head.eval();
  return { conf, cache, head, splits: splitsOf(cache, conf.train.valFraction, conf.train.seed) };
}

export type LoadedRun = ReturnType<typeof loadRun>;

const splitIndices = (run: LoadedRun, split: 'test' | 'val') => (split === 'test' ? run.splits.test : run.splits.val);

/** The best checkpoint of a loaded run on a split of its cache. */
export function evalLoaded(run: LoadedRun, split: 'test' | 'val' = 'test', device?: Device): Metrics & { classNames: string[]; loss: number; predictions: number[]; labels: number[] } {
  const idx = splitIndices(run, split);
  if (!idx.length) throw new UserError(`${run.conf.cache} has no ${split} clips`);
  const r = evaluate(run.head, run.cache.data, idx, { device });
  return { ...r, classNames: run.conf.ous.classNames, labels: idx.map((i) => run.cache.data.labels[i]!) };
}

/** A run's best checkpoint on a split of its cache. */
export function evalRun(runDir: string, split: 'test' | 'val' = 'test', opts: { device?: Device; clip?: string } = {}) {
  return evalLoaded(loadRun(runDir, opts), split, opts.device);
}

/** The clip features at the four stages of the paper's Fig. 4, for the clips of a split. */
export function runStages(run: LoadedRun, split: 'test' | 'val' = 'test'): { labels: number[]; stages: Record<'encoder' | 'framesCls' | 'aligned' | 'fused', number[][]> } {
  const idx = splitIndices(run, split);
  const out = { encoder: [] as number[][], framesCls: [] as number[][], aligned: [] as number[][], fused: [] as number[][] };
  noGrad(() =>
    tidy(() => {
      const s = run.head.forward(run.cache.data.batch(idx)).stages;
      for (const k of Object.keys(out) as Array<keyof typeof out>) out[k] = s[k].toArray() as number[][];
    }),
  );
  return { labels: idx.map((i) => run.cache.data.labels[i]!), stages: out };
}
