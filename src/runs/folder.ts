// A run folder read (train, eval, report, predict and serve all come here): config.json validated
// with its schemas (never cast), the checkpoint loaded into a head with one clear error when it is
// not this run's, metrics.jsonl read line by line (a line cut short by a kill is dropped, not a
// crash). Training's writes and the lock are the RunFolder object's (runs/run-folder.ts), which
// also lists the files.
//
// This sits below train/ and predict/ so that inference needs nothing of training: what both need
// (the training config's schema, ous/train-config.ts; the epoch record) lives here or below.
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { z } from 'zod';
import { resolveOusConfig, type OusConfig } from '../ous/config.js';
import { resolveTrainConfig, type TrainConfig } from '../ous/train-config.js';
import type { LossPhase } from '../ous/losses.js';
import { cacheInfoOf } from '../data/cache.js';
import { assumedRecipe, RecipeSchema, type Recipe } from '../streams/recipe.js';
import { loadSafetensors, readSafetensorsHeader, type Tensor } from '../torch/index.js';
import { UserError } from '../util/errors.js';
import { fsUserError, isRegularFile, pathKind, readJsonAs } from '../util/fs.js';

/** What a run folder's config.json holds; runs written before the version field are version 1. */
export const RUN_VERSION = 1;

/**
 * How a run's features were made, as runs recorded it before the stream recipe (which holds all of
 * it and more): read from such runs only, never written.
 */
export const InferenceInfoSchema = z
  .object({
    frames: z.number().int().positive(), // T
    scene: z.enum(['mask', 'full']),
    polarityLayer: z.number().int().min(0), // k
    clipHash: z.string().min(1), // sha256 of the CLIP weights the features came from
    classNames: z.array(z.string().min(1)).optional(), // the cache's classes (runs from before it: absent)
  })
  .strict();
export type InferenceInfo = z.infer<typeof InferenceInfoSchema>;

const Dims = z.object({
  frames: z.number().int().positive(),
  embed: z.number().int().positive(),
  visionWidth: z.number().int().positive(),
});

const RunConfigFile = z
  .object({
    version: z.literal(RUN_VERSION).optional(),
    preset: z.string().optional(), // the named settings it started from (src/ous/presets.ts); absent: before them
    ous: z.record(z.unknown()),
    train: z.record(z.unknown()),
    dims: Dims,
    cache: z.string().min(1), // the feature cache, resolved
    clip: z.string().min(1), // the CLIP folder, resolved
    inference: InferenceInfoSchema.optional(), // runs from before the recipe
    recipe: RecipeSchema.optional(), // how the training streams were made (absent: a run from before it)
    resumes: z
      .array(
        z.object({ at: z.string(), afterEpoch: z.number().int().min(0), epochs: z.tuple([z.number(), z.number()]) }),
      )
      .optional(),
  })
  .passthrough();

export interface RunConfig {
  preset?: string;
  ous: OusConfig;
  train: TrainConfig;
  dims: z.infer<typeof Dims>;
  cache: string;
  clip: string;
  inference?: InferenceInfo;
  recipe?: Recipe;
  resumes?: Array<{ at: string; afterEpoch: number; epochs: [number, number] }>;
}

const configFile = (runDir: string) => path.join(runDir, 'config.json');

/** True when `runDir` holds a config.json (a run, finished or not). A folder that cannot be read is said as such. */
export function isRunFolder(runDir: string): boolean {
  const k = pathKind(runDir);
  if (k === 'missing') return false;
  if (k !== 'folder') throw new UserError(`${runDir} is ${k === 'file' ? 'a file' : k.other}, not a run folder`);
  try {
    fs.readdirSync(runDir);
  } catch (err) {
    throw fsUserError(err, runDir, 'cannot read the run folder');
  }
  return isRegularFile(configFile(runDir), 'run config');
}

/**
 * Reads a run's config.json, validated: both configs resolved with their schemas, the inference
 * settings checked, and the classes checked against what the run was trained on (a hand-edited
 * classNames would otherwise print other labels for the same outputs).
 */
export function readRunConfig(runDir: string, flag = ''): RunConfig {
  if (!isRunFolder(runDir))
    throw new UserError(
      `${flag ? `${flag} ` : ''}${runDir} is not a run folder (no config.json); make one with 'ous train'`,
    );
  const file = configFile(runDir);
  const c = readJsonAs(file, RunConfigFile, 'run config', RUN_VERSION);
  const ous = resolveOusConfig(c.ous, `${file}: ous`);
  const conf: RunConfig = {
    preset: c.preset,
    cache: c.cache,
    clip: c.clip,
    dims: c.dims,
    inference: c.inference,
    recipe: c.recipe,
    resumes: c.resumes,
    ous,
    train: resolveTrainConfig(c.train, `${file}: train`),
  };
  // The record of how the features were made: the recipe, or in older runs `inference`.
  const [made, key] = c.recipe ? [c.recipe, 'recipe'] : [c.inference, 'inference'];
  const trainedOn = made?.classNames;
  if (trainedOn && JSON.stringify(trainedOn) !== JSON.stringify(ous.classNames)) {
    throw new UserError(
      `${file}: ous.classNames ${JSON.stringify(ous.classNames)} are not the classes ` +
        `the run was trained on (${key}.classNames ${JSON.stringify(trainedOn)}): ` +
        'was config.json edited? Restore it, or train a new run on a cache with these classes',
    );
  }
  if (made && made.frames !== c.dims.frames)
    throw new UserError(
      `${file}: ${key}.frames ${made.frames} is not dims.frames ${c.dims.frames}: was config.json edited?`,
    );
  return conf;
}

/**
 * How a run from before the recipe made its features: its `inference` record, or before that its
 * cache's cache.json (validated). The classes must be the run's either way.
 */
function readInferenceSettings(runDir: string, conf: RunConfig): InferenceInfo {
  if (conf.inference) return conf.inference;
  if (pathKind(path.join(conf.cache, 'cache.json')) === 'missing')
    throw new UserError(
      `${configFile(runDir)} records no inference settings and ` +
        `its cache ${conf.cache} is gone: retrain with this version`,
    );
  const c = cacheInfoOf(conf.cache);
  if (JSON.stringify(c.classNames) !== JSON.stringify(conf.ous.classNames))
    throw new UserError(
      `${configFile(runDir)}: ous.classNames ${JSON.stringify(conf.ous.classNames)} are not its ` +
        `cache's classes (${conf.cache}: ${JSON.stringify(c.classNames)}): was config.json edited?`,
    );
  return {
    frames: c.frames,
    scene: c.scene,
    polarityLayer: c.polarityLayer,
    clipHash: c.clip.hash,
    classNames: c.classNames,
  };
}

/** The CLIP folder a run loads: `clip` (--clip) when given, else the one it was trained with; either must exist. */
export function runClipDir(runDir: string, conf: RunConfig, clip?: string): string {
  const dir = clip ?? conf.clip;
  if (pathKind(dir) === 'missing')
    throw new UserError(
      clip
        ? `--clip ${dir}: no such folder`
        : `${runDir} was trained with CLIP at ${dir}, which is not there: pass --clip DIR`,
    );
  return dir;
}

/**
 * The stream recipe a run was trained on, which prediction follows. A run from before the recipe
 * gets what that version did (its cache's subject when the cache is still there), with the one
 * line that says what is assumed.
 */
export function runRecipe(runDir: string, conf: RunConfig): { recipe: Recipe; note?: string } {
  if (conf.recipe) return { recipe: conf.recipe };
  const inference = readInferenceSettings(runDir, conf);
  const cacheFile = path.join(conf.cache, 'cache.json');
  const subject = pathKind(cacheFile) === 'file' ? cacheInfoOf(conf.cache).subject : undefined;
  return assumedRecipe({ ...inference, classNames: conf.ous.classNames, subject }, configFile(runDir));
}

/**
 * What a checkpoint was trained with, as config.json says it: both configs (the classes, the head's
 * shape, the stream recipe), the encoder's widths and how the features were made. Not the epoch limit (a
 * resume may raise it, and records that), nor where the cache and CLIP are (they may move).
 */
export function trainedSettings(config: Record<string, unknown>): Record<string, unknown> {
  const { epochs: _, ...train } = (config.train ?? {}) as Record<string, unknown>;
  return {
    ous: config.ous,
    train,
    dims: config.dims,
    inference: config.inference ?? null,
    recipe: config.recipe ?? null,
  };
}

/** JSON with sorted keys: one text for one config, whatever order its file wrote the keys in. */
const canonical = (v: unknown): string =>
  JSON.stringify(v, (_, x) =>
    x && typeof x === 'object' && !Array.isArray(x)
      ? Object.fromEntries(
          Object.keys(x as object)
            .sort()
            .map((k) => [k, (x as Record<string, unknown>)[k]]),
        )
      : x,
  );

/** The checkpoint's record of its run's config (safetensors metadata): the trained settings and their sha256. */
export function settingsFingerprint(config: Record<string, unknown>): {
  trainedConfig: string;
  trainedConfigSha256: string;
} {
  const trainedConfig = canonical(trainedSettings(config));
  return { trainedConfig, trainedConfigSha256: createHash('sha256').update(trainedConfig).digest('hex') };
}

/** "ous.classNames", ... : the leaves where two configs differ (arrays compared whole). */
function settingsDiffs(a: unknown, b: unknown, at = ''): string[] {
  const isObj = (x: unknown) => x !== null && typeof x === 'object' && !Array.isArray(x);
  if (!isObj(a) || !isObj(b)) return canonical(a) === canonical(b) ? [] : [at || '(all)'];
  const keys = new Set([...Object.keys(a as object), ...Object.keys(b as object)]);
  return [...keys].flatMap((k) =>
    settingsDiffs((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], at ? `${at}.${k}` : k),
  );
}

/**
 * The best checkpoint's file; a run with none (no epoch finished, or deleted) is refused, and so is
 * one whose config.json is not the config its checkpoint recorded (edited after training: renamed
 * classes would label the head's outputs with words it was not trained on). Checkpoints from before
 * the record have none to compare.
 */
export function checkpointFile(runDir: string, flag = ''): string {
  const file = path.join(runDir, 'checkpoint.safetensors');
  if (!isRegularFile(file, 'checkpoint'))
    throw new UserError(
      `${flag ? `${flag} ` : ''}${runDir} has no checkpoint.safetensors (no epoch finished, or it was deleted)`,
    );
  const recorded = readSafetensorsHeader(file).metadata.trainedConfig;
  if (recorded !== undefined) {
    const then = JSON.parse(recorded) as Record<string, unknown>;
    const now = trainedSettings(JSON.parse(fs.readFileSync(configFile(runDir), 'utf8')) as Record<string, unknown>);
    if (!('recipe' in then)) delete now.recipe; // recorded before the record held the recipe
    if (canonical(now) !== canonical(then)) {
      const keys = settingsDiffs(then, now);
      throw new UserError(
        `${configFile(runDir)} is not the config ${file} was trained with (${keys.slice(0, 5).join(', ')}` +
          `${keys.length > 5 ? `, ... ${keys.length} in all` : ''} differ): was config.json edited, or the ` +
          "checkpoint copied from another run? Restore the run's own, or train a new run with these settings",
      );
    }
  }
  return file;
}

/** Loads `file` into `head`; weights of another run (other shapes, other keys) are one line naming the file. */
export function loadHeadWeights(head: { loadStateDict(sd: Map<string, Tensor>): void }, file: string): void {
  const sd = loadSafetensors(file);
  try {
    head.loadStateDict(sd);
  } catch (err) {
    const why = (err as Error).message.replace(/^loadStateDict\([^)]*\): /, '');
    throw new UserError(
      `${file} does not fit its run's config.json (is it another run's checkpoint?): ` +
        `${why.length > 300 ? `${why.slice(0, 300)}...` : why}`,
    );
  } finally {
    for (const t of sd.values()) t.dispose();
  }
}

/** One line of metrics.jsonl: an epoch's loss terms, phase shares, learning rate, and train/val metrics. */
export interface EpochRecord {
  epoch: number;
  lr: number;
  train: {
    loss: number;
    terms: Record<string, number>;
    phases: Record<LossPhase, number>;
    uar: number;
    war: number;
    clips?: number; // clips seen (one view of each training clip); absent in runs from before it
    steps?: number; // optimizer steps
  };
  val: { loss: number; uar: number; war: number };
  best: boolean;
  seconds: number;
}

/**
 * The epochs of metrics.jsonl. The last line of a run killed while appending can be cut short:
 * it is dropped (that epoch is trained again on resume). A bad line before the last is an error
 * naming the file and line.
 */
export function readEpochs(runDir: string): EpochRecord[] {
  const file = path.join(runDir, 'metrics.jsonl');
  if (!isRegularFile(file, 'metrics file')) return [];
  const lines = fs.readFileSync(file, 'utf8').split('\n');
  const out: EpochRecord[] = [];
  lines.forEach((line, i) => {
    if (!line.trim()) return;
    let r: unknown;
    try {
      r = JSON.parse(line);
    } catch {
      r = undefined;
    }
    const ok =
      r !== null &&
      typeof r === 'object' &&
      typeof (r as EpochRecord).epoch === 'number' &&
      typeof (r as EpochRecord).train === 'object' &&
      typeof (r as EpochRecord).val === 'object';
    if (ok) out.push(r as EpochRecord);
    else if (lines.slice(i + 1).some((l) => l.trim()))
      throw new UserError(
        `${file}:${i + 1} is not an epoch record (a JSON object with epoch, train and val): was it edited?`,
      );
  });
  return out;
}
