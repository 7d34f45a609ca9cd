// The run folder, read and written in one place (train, eval, report, predict and serve all come
// here): config.json validated with its schemas (never cast), the checkpoint loaded into a head
// with one clear error when it is not this run's, metrics.jsonl read line by line (a line cut
// short by a kill is dropped, not a crash), and the lock that keeps two `ous train --out R` from
// writing one folder at once.
//
//   config.json              the resolved configs, dims, cache and CLIP paths, inference settings
//   checkpoint.safetensors   the best weights
//   last.safetensors         weights + optimizer + loop state, for --resume
//   metrics.jsonl            one line per finished epoch
//   train.log                what was printed
//   lock                     {pid, host, since} while a process trains the run
//
// This sits below train/ and predict/ so that inference needs nothing of training; it reads
// train/config.ts, a schema with no other dependency.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { z } from 'zod';
import { resolveOusConfig, type OusConfig } from '../ous/config.js';
import { resolveTrainConfig, type TrainConfig } from '../train/config.js';
import type { EpochRecord } from '../train/trainer.js';
import { cacheInfoOf } from '../data/cache.js';
import { PRECISIONS, loadSafetensors, type Tensor } from '../torch/index.js';
import { UserError } from '../util/errors.js';
import { ensureDir, fsUserError, isRegularFile, pathKind, readJsonAs, writeFileAtomic } from '../util/fs.js';
import { describeHolder, tryLock } from '../util/lock.js';

/** What a run folder's config.json holds; runs written before the version field are version 1. */
export const RUN_VERSION = 1;

// The files `ous train` writes into a run folder: what --force replaces (nothing else is deleted).
export const RUN_FILES = ['config.json', 'checkpoint.safetensors', 'last.safetensors', 'metrics.jsonl', 'train.log'];

/** What a run records so that inference needs only the run and CLIP: how its features were made. */
export const InferenceInfoSchema = z
  .object({
    frames: z.number().int().positive(), // T
    scene: z.enum(['mask', 'full']),
    polarityLayer: z.number().int().min(0), // k
    clipHash: z.string().min(1), // sha256 of the CLIP weights the features came from
    classNames: z.array(z.string().min(1)).optional(), // the cache's classes (runs from before it: absent)
    precision: z.enum(PRECISIONS).optional(), // CLIP's vision tower's for the features (absent: fp32)
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
    ous: z.record(z.unknown()),
    train: z.record(z.unknown()),
    dims: Dims,
    cache: z.string().min(1), // the feature cache, resolved
    clip: z.string().min(1), // the CLIP folder, resolved
    inference: InferenceInfoSchema.optional(),
    resumes: z
      .array(
        z.object({ at: z.string(), afterEpoch: z.number().int().min(0), epochs: z.tuple([z.number(), z.number()]) }),
      )
      .optional(),
  })
  .passthrough();

export interface RunConfig {
  ous: OusConfig;
  train: TrainConfig;
  dims: z.infer<typeof Dims>;
  cache: string;
  clip: string;
  inference?: InferenceInfo;
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
    cache: c.cache,
    clip: c.clip,
    dims: c.dims,
    inference: c.inference,
    resumes: c.resumes,
    ous,
    train: resolveTrainConfig(c.train, `${file}: train`),
  };
  const trainedOn = c.inference?.classNames;
  if (trainedOn && JSON.stringify(trainedOn) !== JSON.stringify(ous.classNames)) {
    throw new UserError(
      `${file}: ous.classNames ${JSON.stringify(ous.classNames)} are not the classes ` +
        `the run was trained on (inference.classNames ${JSON.stringify(trainedOn)}): ` +
        'was config.json edited? Restore it, or train a new run on a cache with these classes',
    );
  }
  if (c.inference && c.inference.frames !== c.dims.frames)
    throw new UserError(
      `${file}: inference.frames ${c.inference.frames} is not dims.frames ${c.dims.frames}: was config.json edited?`,
    );
  return conf;
}

/**
 * What the run records for inference; a run from before it did falls back to its cache's
 * cache.json (validated). The classes must be the run's either way.
 */
export function runInference(runDir: string, conf: RunConfig): InferenceInfo {
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
    precision: c.precision,
  };
}

/** The best checkpoint's file; a run with none (no epoch finished, or deleted) is refused. */
export function checkpointFile(runDir: string, flag = ''): string {
  const file = path.join(runDir, 'checkpoint.safetensors');
  if (!isRegularFile(file, 'checkpoint'))
    throw new UserError(
      `${flag ? `${flag} ` : ''}${runDir} has no checkpoint.safetensors (no epoch finished, or it was deleted)`,
    );
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

/** Epochs a run folder has finished. */
export const finishedEpochs = (runDir: string): number => readEpochs(runDir).length;

/** Rewrites metrics.jsonl without a line cut short by a kill, so that the training loop appends after whole lines. */
export function repairMetrics(runDir: string): void {
  const file = path.join(runDir, 'metrics.jsonl');
  if (!isRegularFile(file, 'metrics file')) return;
  const text = fs.readFileSync(file, 'utf8');
  const kept = readEpochs(runDir)
    .map((r) => JSON.stringify(r) + '\n')
    .join('');
  if (kept !== text) writeFileAtomic(file, kept);
}

/**
 * Locks a run folder for this process while it trains it: a second `ous train --out R` is refused
 * with the holder's pid; a lock left by a killed process is taken over (`log` is told). Creates the
 * folder; `release` removes the lock, and the folder too when `release(true)` finds it empty.
 */
export function lockRun(
  runDir: string,
  log: (line: string) => void = (l) => process.stderr.write(`ous: ${l}\n`),
): (removeIfEmpty?: boolean) => void {
  const existed = pathKind(runDir) === 'folder';
  ensureDir(runDir);
  const file = path.join(runDir, 'lock');
  const r = tryLock(file, (dead) => log(`${runDir}: took over the lock of a dead ous train (${describeHolder(dead)})`));
  if ('holder' in r) {
    throw new UserError(
      `${runDir} is being trained by another ous train (${r.holder ? describeHolder(r.holder) : file}): ` +
        `wait for it to finish, or use another --out; if no such process runs, delete ${file}`,
    );
  }
  return (removeIfEmpty = false) => {
    r.release();
    if (removeIfEmpty && !existed) {
      try {
        fs.rmdirSync(runDir); // only when empty: never removes anything else
      } catch {
        /* not empty, or gone */
      }
    }
  };
}

/** Writes a run's config.json atomically. */
export function writeRunConfig(runDir: string, json: Record<string, unknown>): void {
  writeFileAtomic(configFile(runDir), JSON.stringify(json, null, 2) + '\n');
}
