// A training run from a feature cache to a run folder, and its evaluation: what `ous train` and
// `ous eval` do, as functions (the demo and the ablations call them too).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { FeatureCache, cacheInfoOf, type CacheInfo } from '../data/cache.js';
import { stratifiedSplit } from '../data/dataset.js';
import { loadClip } from '../clip/load.js';
import type { ClipModel } from '../clip/model.js';
import { ClipTokenizer } from '../clip/tokenizer.js';
import { buildHead, type Head } from '../ous/model.js';
import { z } from 'zod';
import { OusConfig as OusConfigSchema, resolveOusConfig, type OusConfig } from '../ous/config.js';
import type { FrozenTextTower } from '../ous/prompt.js';
import { loadSafetensors, manualSeed, noGrad, tidy, type Device } from '../torch/index.js';
import { readJson, readJsonAs, writeFileAtomic } from '../util/fs.js';
import { UsageError, UserError } from '../util/errors.js';
import { TrainConfig as TrainConfigSchema, resolveTrainConfig, type TrainConfig } from './config.js';
import { evaluate, train, type TrainResult } from './trainer.js';
import type { Metrics } from './metrics.js';

/** CLIP's frozen text tower and tokenizer for the prompt learner; the vision tower is freed. */
export function textTowerFromClip(dir: string, device?: Device): FrozenTextTower {
  const clip = loadClip(dir, { device });
  for (const p of clip.vision_model.parameters()) p.dispose();
  return textTowerOf(clip, dir, device);
}

/** The text tower of a CLIP already in memory (inference keeps its vision tower for the frames: one load). */
export function textTowerOf(clip: ClipModel, dir: string, device?: Device): FrozenTextTower {
  const tok = ClipTokenizer.fromFolder(dir);
  const ctx = clip.config.text_config.max_position_embeddings;
  return {
    tokenize: (t) => tok.tokenize(t, ctx),
    embedTokens: (ids) => clip.text_model.embedTokens(ids.to({ device })),
    encode: (e, eot) => clip.encodeTextEmbeddings(e, eot).textEmbeds,
    width: clip.config.text_config.hidden_size,
  };
}

/** `key=value` overrides: `ous.x` / `train.x`, or a bare key found in one of the two configs. Each value is checked against its field. */
export function applySets(base: { ous: Record<string, unknown>; train: Record<string, unknown> }, sets: string[]): void {
  const fields = { ous: OusConfigSchema.innerType().shape as Record<string, z.ZodTypeAny>, train: TrainConfigSchema.shape as Record<string, z.ZodTypeAny> };
  const ousKeys = Object.keys(fields.ous);
  const trainKeys = Object.keys(fields.train);
  for (const s of sets) {
    const eq = s.indexOf('=');
    if (eq < 1) throw new UsageError(`--set expects key=value, not '${s}'`);
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
    else throw new UsageError(`--set: unknown key '${key}' (OUS: ${ousKeys.join(', ')}; training: ${trainKeys.join(', ')})`);
    const field = fields[section][key];
    if (!field) throw new UsageError(`--set: '${key}' is not a field of the ${section === 'ous' ? 'OUS' : 'training'} config (${Object.keys(fields[section]).join(', ')})`);
    const r = field.safeParse(value);
    if (!r.success) throw new UsageError(`--set ${s}: ${r.error.issues.map((i) => i.message.charAt(0).toLowerCase() + i.message.slice(1)).join('; ')}`);
    base[section][key] = value;
  }
}

/** What a run folder's config.json holds; runs written before the version field are version 1. */
export const RUN_VERSION = 1;
const RunConfigFile = z
  .object({
    version: z.literal(RUN_VERSION).optional(),
    ous: z.record(z.unknown()),
    train: z.record(z.unknown()),
    cache: z.string().min(1), // the feature cache, resolved
    clip: z.string().min(1), // the CLIP folder, resolved
    resumes: z.array(z.object({ at: z.string(), afterEpoch: z.number().int().min(0), epochs: z.tuple([z.number(), z.number()]) })).optional(),
  })
  .passthrough();
export interface RunConfig {
  ous: OusConfig;
  train: TrainConfig;
  cache: string;
  clip: string;
  resumes?: Array<{ at: string; afterEpoch: number; epochs: [number, number] }>;
}

/** Reads a run's config.json, validated (never cast): both configs resolved with their schemas. */
export function readRunConfig(runDir: string): RunConfig {
  const file = path.join(runDir, 'config.json');
  if (!fs.existsSync(file)) throw new UserError(`${runDir} is not a run folder (no config.json)`);
  const c = readJsonAs(file, RunConfigFile, 'run config', RUN_VERSION);
  return { cache: c.cache, clip: c.clip, resumes: c.resumes, ous: resolveOusConfig(c.ous, `${file}: ous`), train: resolveTrainConfig(c.train, `${file}: train`) };
}

// The files `ous train` writes into a run folder: what --force replaces (nothing else is deleted).
const RUN_FILES = ['config.json', 'checkpoint.safetensors', 'last.safetensors', 'metrics.jsonl', 'train.log'];

const ConfigFile = z.object({ ous: z.record(z.unknown()).optional(), train: z.record(z.unknown()).optional() }).strict();

/** Differences between two resolved configs, as "section.key: a -> b". */
function configDiffs(was: { ous: OusConfig; train: TrainConfig }, now: { ous: OusConfig; train: TrainConfig }): Array<{ key: string; was: unknown; now: unknown }> {
  const out: Array<{ key: string; was: unknown; now: unknown }> = [];
  for (const section of ['ous', 'train'] as const) {
    const a = was[section] as Record<string, unknown>;
    const b = now[section] as Record<string, unknown>;
    for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) if (JSON.stringify(a[k]) !== JSON.stringify(b[k])) out.push({ key: `${section}.${k}`, was: a[k], now: b[k] });
  }
  return out;
}

/** The divisors of n, for a message. */
const divisors = (n: number) => [...Array(n).keys()].map((i) => i + 1).filter((d) => n % d === 0);

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
      throw new UserError(`${key} comes from the cache (${dir}: ${JSON.stringify(info[key])}), not ${JSON.stringify(ous[key])}: set the classes when extracting (ous extract --classes, --polarity)`);
    ous[key] = info[key];
  }
  if (info.polarityOfClass === null) {
    if (ous.polarity === true) throw new UserError(`polarity=true needs polarity labels, and ${dir} has none (extracted with --no-polarity)`);
    ous.polarity = false;
  }
}

/** Epochs a run folder has finished: one line each in metrics.jsonl. */
function finishedEpochs(runDir: string): number {
  const file = path.join(runDir, 'metrics.jsonl');
  return fs.existsSync(file) ? fs.readFileSync(file, 'utf8').split('\n').filter(Boolean).length : 0;
}

export async function trainRun(o: TrainRunOptions): Promise<TrainResult> {
  // Everything is checked before anything is written: a refused run leaves no folder behind.
  if (fs.existsSync(o.out) && !fs.statSync(o.out).isDirectory()) throw new UserError(`train: --out ${o.out} is a file, not a run folder`);
  const existing = fs.existsSync(path.join(o.out, 'config.json'));
  if (existing && !o.resume && !o.force) {
    throw new UserError(`train: ${o.out} already holds a run (${finishedEpochs(o.out)} epochs): pass --resume to continue it, --force to replace it, or choose another --out`);
  }
  if (!existing && !o.force && fs.existsSync(o.out) && fs.readdirSync(o.out).some((f) => RUN_FILES.includes(f))) {
    throw new UserError(`train: ${o.out} holds files of an unfinished run but no config.json: pass --force to replace them, or choose another --out`);
  }
  const stored = o.resume && existing ? readRunConfig(o.out) : undefined;
  const file = o.config ? readJsonAs(o.config, ConfigFile, 'config file ({"ous": {...}, "train": {...}})') : {};
  const raw = { ous: { ...(stored?.ous ?? {}), ...(file.ous ?? {}) }, train: { ...(stored?.train ?? {}), ...(file.train ?? {}) } };
  applySets(raw, o.sets ?? []);
  if (o.model) raw.ous.model = o.model;
  if (o.seed !== undefined) raw.train.seed = o.seed;
  // On resume the run's own classes stand (the check below names a changed cache or classes).
  if (!stored) takeClassesFromCache(raw.ous, cacheInfoOf(o.cache), o.cache);
  const ous = resolveOusConfig(raw.ous, o.config ? `OUS config (${o.config} and --set)` : 'OUS config (--set)');
  const cfg = resolveTrainConfig(raw.train, o.config ? `training config (${o.config} and --set)` : 'training config (--set)');
  if (stored) {
    const diffs = configDiffs(stored, { ous, train: cfg }).filter((d) => !(d.key === 'train.epochs' && (d.now as number) > (d.was as number)));
    const cachePath = path.resolve(o.cache);
    if (path.resolve(stored.cache) !== cachePath) diffs.unshift({ key: 'cache', was: stored.cache, now: cachePath });
    if (diffs.length) {
      throw new UserError(`train --resume: ${o.out} was trained with other settings: ${diffs.map((d) => `${d.key} (run: ${JSON.stringify(d.was)}, now: ${JSON.stringify(d.now)})`).join('; ')}. Only a larger epochs may change on resume; train into another --out for the rest`);
    }
  }
  const cache = FeatureCache.open(o.cache);
  if (cache.info.frames !== ous.frames) ous.frames = cache.info.frames; // T comes from the cache
  const E = cache.data.dims.embed;
  if (E % ous.heads) throw new UserError(`heads = ${ous.heads} does not divide the encoder width E = ${E} of ${o.cache} (attention splits E among the heads): use one of ${divisors(E).join(', ')}`);
  const C = ous.classNames.length;
  const maxLabel = cache.data.labels.reduce((m, l) => Math.max(m, l), -1);
  if (maxLabel >= C) throw new UserError(`${o.cache} has label ${maxLabel}, outside the ${C} classes of classNames`);
  const clipDir = o.clip ?? cache.info.clip.path;
  if (!fs.existsSync(clipDir)) throw new UserError(`the cache was made with CLIP at ${clipDir}, which is gone: pass --clip DIR`);
  const split = splitsOf(cache, cfg.valFraction, cfg.seed);
  if (!split.train.length || !split.val.length) throw new UserError(`${o.cache}: not enough training clips for a validation split (${split.train.length} train, ${split.val.length} val)`);
  if (o.force && !o.resume) for (const f of RUN_FILES) fs.rmSync(path.join(o.out, f), { force: true });
  if (stored && cfg.epochs !== stored.train.epochs) {
    // A larger epoch limit on resume is allowed, and recorded in the run.
    const afterEpoch = finishedEpochs(o.out);
    const json = readJson<Record<string, unknown>>(path.join(o.out, 'config.json'));
    const resumes = [...(stored.resumes ?? []), { at: new Date().toISOString(), afterEpoch, epochs: [stored.train.epochs, cfg.epochs] as [number, number] }];
    writeFileAtomic(path.join(o.out, 'config.json'), JSON.stringify({ ...json, train: { ...(json.train as object), epochs: cfg.epochs }, resumes }, null, 2) + '\n');
  }
  manualSeed(cfg.seed);
  const head = buildHead(ous, cache.data.dims, textTowerFromClip(clipDir, o.device));
  if (o.device) head.to({ device: o.device });
  return train({
    head, ous, train: cfg, data: cache.data, split, outDir: o.out, resume: o.resume, device: o.device, log: o.log,
    info: { version: RUN_VERSION, cache: path.resolve(o.cache), clip: path.resolve(clipDir), test: split.test.length, inference: inferenceOf(cache) },
  });
}

/** What a run records so that inference needs only the run and CLIP: how its features were made. */
export interface InferenceInfo {
  frames: number; // T
  scene: 'mask' | 'full';
  polarityLayer: number; // k
  clipHash: string; // sha256 of the CLIP weights the features came from
}

export function inferenceOf(cache: FeatureCache): InferenceInfo {
  return { frames: cache.info.frames, scene: cache.info.scene, polarityLayer: cache.info.polarityLayer, clipHash: cache.info.clip.hash };
}

/** A finished run, ready to evaluate: its configs, cache, splits and the best checkpoint's head. */
export function loadRun(runDir: string, opts: { device?: Device; clip?: string } = {}) {
  const configFile = path.join(runDir, 'config.json');
  if (!fs.existsSync(configFile)) throw new UserError(`${runDir} is not a run folder (no config.json)`);
  const conf = readRunConfig(runDir);
  const ckpt = path.join(runDir, 'checkpoint.safetensors');
  if (!fs.existsSync(ckpt)) throw new UserError(`${runDir} has no checkpoint.safetensors yet (no epoch finished)`);
  const cache = FeatureCache.open(conf.cache);
  const head: Head = buildHead(conf.ous, cache.data.dims, textTowerFromClip(opts.clip ?? conf.clip, opts.device));
  head.loadStateDict(loadSafetensors(ckpt));
  if (opts.device) head.to({ device: opts.device });
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
