// `ous extract`: a data set's clips through the streams and the frozen CLIP encoder into a
// feature cache (SPEC.md §3). Resumable, shardable, and it reports every clip that failed.
import * as fs from 'node:fs';
import type { Command } from './command.js';
import { UsageError, UserError } from '../util/errors.js';
import { DATASETS, datasetNamed, listNames } from '../data/datasets.js';
import { DFEW_CLASSES, parseClassList, parsePolarityMap, resolveClassSet } from '../data/classes.js';
import { FrameEncoder } from '../clip/frame-encoder.js';
import { extractFeatures } from '../data/extract.js';
import { resolveShard } from '../data/shard.js';
import { mergeCache } from '../data/cache.js';
import { parsePrecision } from '../torch/index.js';
import { allowSlowBf16, enginePreference } from './env.js';
import { parseBox } from '../util/box.js';
import type { CacheOptions } from '../data/cache.js';
import { SUBJECT_RULES, type SubjectRule } from '../face/tracks.js';
import { COMMON, parseFlags, usageText, type Flags } from './flags.js';

/** Exit codes of `ous extract` (also in its usage and the README). */
export const EXTRACT_EXIT = { ok: 0, couldNotRun: 1, usage: 2, failures: 3 } as const;

const FLAGS = {
  dataset: {
    type: { kind: 'text' },
    value: DATASETS.map((d) => d.name).join('|'),
    help: 'the layout to read (src/data/readers/)',
  },
  root: {
    type: { kind: 'text' },
    value: 'DIR',
    help: "the data set's folder (and what a manifest's relative paths are under)",
  },
  fold: { type: { kind: 'int', min: 1 }, value: 'K', help: 'the fold, for data sets that have them (1 by default)' },
  manifest: { type: { kind: 'text' }, value: 'FILE.csv', help: 'your own videos: a CSV path,label[,split][,box]' },
  classes: {
    type: { kind: 'text' },
    value: 'a,b,c',
    help: "a manifest's classes, in label order (DFEW's seven by default)",
  },
  polarity: {
    type: { kind: 'text' },
    value: 'class=negative|neutral|positive,...',
    help: 'the scene polarity of classes SPEC.md does not know',
  },
  'no-polarity': { type: { kind: 'switch' }, help: 'no polarity labels: train without the polarity loss' },
  clip: { type: { kind: 'text' }, value: 'DIR', help: 'the CLIP folder (Hugging Face layout)' },
  out: { type: { kind: 'text' }, value: 'CACHE', required: true, help: 'the feature cache to write (or extend)' },
  frames: COMMON.frames,
  scene: {
    type: { kind: 'choice', of: ['mask', 'full'] },
    default: 'mask',
    help: 'the scene with the face masked (SPEC), or whole',
  },
  views: {
    type: { kind: 'int', min: 1 },
    value: 'N',
    default: '5',
    help:
      'views of each training clip: view 0 as evaluated (validation reads it), then N - 1 train-mode samplings ' +
      '(a random frame per segment, every second one mirrored) that training draws one of per clip per epoch',
  },
  'polarity-layer': {
    type: { kind: 'int', min: 0 },
    value: 'K',
    default: '4',
    help: "the vision tower's block whose token mean feeds the Polarity Encoder",
  },
  shard: {
    type: { kind: 'text' },
    value: 'I/N|auto|auto/N',
    default: '1/1',
    help: "this process's share of the clips (docs/SCALE-OUT.md)",
  },
  device: { ...COMMON.device, default: 'cpu' },
  precision: COMMON.precision,
  batch: { type: { kind: 'int', min: 1 }, value: 'B', default: '32', help: 'frames per encoder batch' },
  'part-size': { type: { kind: 'int', min: 1 }, value: 'N', default: '32', help: 'clips per part file written' },
  'allow-missing-frames': {
    type: { kind: 'int', min: 0 },
    value: 'N',
    default: '0',
    help: 'accept clips with up to N frames the decoder could not deliver (truncated files)',
  },
  subject: {
    type: { kind: 'text' },
    value: 'main|largest|center|"x y w h"',
    default: 'main',
    help: 'which face a clip with several is about; a cache holds one rule',
  },
  wait: {
    type: { kind: 'switch' },
    help: 'wait for another extraction into the same cache (shard) instead of stopping',
  },
  merge: { type: { kind: 'switch' }, help: 'join the shards of a sharded extraction (with --out only)' },
  'allow-partial': { type: { kind: 'switch' }, help: 'with --merge: merge although shards are missing, and list them' },
  json: COMMON.json,
} as const satisfies Flags;

export const extract: Command = {
  usage: usageText('extract', FLAGS, {
    notes:
      'ous extract --merge --out CACHE [--allow-partial] [--json] joins the shards of a sharded extraction.\n' +
      'Run it again after changing the data set: new clips are extracted, changed labels and splits are\n' +
      'updated without recomputing, clips no longer listed leave the index. ' +
      'A cache holds one --precision and one --subject.\n' +
      'Exit status: 0 all clips extracted; 3 finished, but some clips failed (listed in the output and\n' +
      'CACHE/failed-*.json) or, with --allow-partial, are missing; 1 could not run; 2 usage error.',
  }),
  async run(argv) {
    const a = parseExtractArgs(argv);
    const { values } = a;
    const out = values.out!;
    if (values.merge) {
      const m = mergeCache(out, { allowPartial: values['allow-partial'] });
      const missing = m.missing.flatMap((s) => s.keys);
      const line = { done: m.clips, skipped: 0, failed: m.failed, missing, cache: out };
      if (values.json) process.stdout.write(JSON.stringify(line) + '\n');
      else {
        process.stdout.write(
          `merged ${m.parts} parts: ${m.clips} clips, ` +
            `${m.failed.length} failed${missing.length ? `, ${missing.length} missing` : ''}` +
            `${m.unlisted ? `, ${m.unlisted} no longer listed (left out)` : ''}\n`,
        );
        for (const s of m.missing)
          process.stdout.write(
            `  missing: shard ${s.shard}: ${s.keys.length} clip(s): ` +
              `${s.keys.slice(0, 5).join(', ')}${s.keys.length > 5 ? ', ...' : ''}\n`,
          );
      }
      return m.failed.length || missing.length ? EXTRACT_EXIT.failures : EXTRACT_EXIT.ok;
    }
    // The classes and their polarities, checked before any clip is read.
    const dataset = a.dataset!;
    const classNames =
      dataset.classes ?? (values.classes !== undefined ? parseClassList(values.classes) : DFEW_CLASSES);
    const classes = resolveClassSet(classNames, {
      polarity: values.polarity !== undefined ? parsePolarityMap(values.polarity) : undefined,
      noPolarity: values['no-polarity'],
    });
    const { entries, failed: preFailed = [] } = dataset.read({
      root: values.root,
      fold: a.fold,
      manifest: values.manifest,
      classNames: classes.classNames,
    });
    if (!entries.length && !preFailed.length)
      throw new UserError(`extract: the ${values.dataset} listing names no clips`);
    const encoder = FrameEncoder.load(values.clip!, {
      device: a.device,
      batchSize: a.batch,
      precision: a.precision,
      engine: enginePreference(),
    });
    checkPolarityLayer(a.polarityLayer, encoder, values.clip!);
    const summary = await extractFeatures({
      entries,
      encoder,
      out,
      shard: a.shard,
      partSize: a.partSize,
      preFailed,
      allowMissingFrames: a.allowMissingFrames,
      wait: values.wait,
      info: {
        clip: { path: fs.realpathSync(values.clip!), hash: encoder.hash },
        precision: a.precision,
        frames: a.frames,
        scene: values.scene as 'mask' | 'full',
        views: a.views,
        polarityLayer: a.polarityLayer,
        dataset: values.dataset!,
        ...(a.fold !== undefined ? { fold: a.fold } : {}),
        classNames: classes.classNames,
        polarityOfClass: classes.polarityOfClass,
        ...(a.subject !== undefined ? { subject: a.subject } : {}),
      },
    });
    // A single-shard run leaves a complete cache; shards are joined with --merge.
    if (a.shard.count === 1) mergeCache(out);
    if (values.json) {
      const { done, skipped, updated, unlisted, failed, noFace, cache, seconds, clipsPerSecond } = summary;
      process.stdout.write(
        JSON.stringify({ done, skipped, updated, unlisted, failed, noFace, cache, seconds, clipsPerSecond }) + '\n',
      );
    } else {
      const changed =
        `${summary.updated ? `, updated labels of ${summary.updated} clips` : ''}` +
        `${summary.unlisted ? `, ${summary.unlisted} no longer listed (left out of the index)` : ''}`;
      process.stdout.write(
        `extracted ${summary.done} clips, skipped ${summary.skipped} already cached${changed}, ` +
          `${summary.failed.length} failed -> ${summary.cache}\n`,
      );
      for (const f of summary.failed) process.stdout.write(`  failed: ${f.error}${f.key ? ` (${f.key})` : ''}\n`);
      // Not failures, but worth knowing: these clips' face stream is the centre of the frame.
      if (summary.noFace.length) {
        process.stdout.write(
          `${summary.noFace.length} clip(s) had no face found in any frame ` +
            'and were centre-cropped (the cache records faceMissing):\n',
        );
        for (const p of summary.noFace.slice(0, 20)) process.stdout.write(`  no face: ${p}\n`);
        if (summary.noFace.length > 20)
          process.stdout.write(`  ... and ${summary.noFace.length - 20} more (--json lists them all)\n`);
      }
    }
    return summary.failed.length ? EXTRACT_EXIT.failures : EXTRACT_EXIT.ok;
  },
};

/** Checks every flag before anything is read or created (a bad one is a usage error: exit 2). */
function parseExtractArgs(argv: string[]) {
  const { values } = parseFlags('extract', argv, FLAGS);
  if (values.merge)
    return {
      values,
      dataset: undefined,
      shard: { index: 1, count: 1 },
      frames: 0,
      views: 0,
      polarityLayer: 0,
      batch: 0,
      partSize: 0,
      allowMissingFrames: 0,
      fold: undefined,
      device: undefined,
      precision: undefined,
    };
  if (!values.clip) throw new UsageError('extract: --clip DIR is required (a Hugging Face CLIP folder)');
  const dataset = datasetNamed(values.dataset);
  if (values.classes !== undefined && (!dataset || dataset.classes)) {
    const [takes, own] = [DATASETS.filter((d) => !d.classes), DATASETS.filter((d) => d.classes)];
    throw new UsageError(
      `extract: --classes is for --dataset ${listNames(
        takes.map((d) => d.name),
        'or',
      )} (${listNames(
        own.map((d) => d.title),
        'and',
      )} have their own classes)`,
    );
  }
  let shard: { index: number; count: number };
  try {
    shard = resolveShard(values.shard); // I/N, or auto from Slurm/Kubernetes (src/data/shard.ts)
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  if (!dataset)
    throw new UsageError(
      `extract: --dataset must be ${listNames(
        DATASETS.map((d) => d.name),
        'or',
      )}, not '${values.dataset ?? ''}'`,
    );
  if (dataset.input === 'manifest' && !values.manifest)
    throw new UsageError(`extract: --manifest FILE.csv is required for --dataset ${dataset.name}`);
  if (dataset.input === 'root' && !values.root)
    throw new UsageError(`extract: --root DIR is required for ${dataset.title}`);
  let fold: number | undefined;
  if (dataset.folds) {
    fold = values.fold ?? 1;
    if (fold > dataset.folds)
      throw new UsageError(
        `extract: --fold must be 1..${dataset.folds} (${dataset.title}'s folds), not '${values.fold}'`,
      );
  }
  const device = values.device;
  return {
    values,
    dataset,
    shard,
    fold,
    device,
    precision: parsePrecision(values.precision, device, { allowSlowBf16: allowSlowBf16() }),
    frames: values.frames,
    views: values.views,
    polarityLayer: values['polarity-layer'],
    batch: values.batch,
    partSize: values['part-size'],
    allowMissingFrames: values['allow-missing-frames'],
    subject: parseSubject(values.subject),
  };
}

/** --polarity-layer against the CLIP's vision tower, once, before any clip (not a failure per clip). */
function checkPolarityLayer(k: number, encoder: FrameEncoder, clip: string): void {
  const layers = encoder.clip.config.vision_config.num_hidden_layers;
  if (k > layers)
    throw new UsageError(
      `extract: --polarity-layer ${k} is past the last block of the CLIP vision tower in ${clip} ` +
        `(it has ${layers} blocks: give 0 to ${layers}; 4 is the paper's)`,
    );
}

/** --subject: main (recorded as nothing, as in every cache made before the flag), largest, center, or "x y w h". */
function parseSubject(v: string): CacheOptions['subject'] {
  const rule = parseSubjectRule(v, 'extract');
  return rule === 'main' ? undefined : rule;
}

/** A --subject value (extract's and predict's): main, largest, center, or a box "x y w h". */
export function parseSubjectRule(v: string, command: string): SubjectRule {
  const named = SUBJECT_RULES.find((r) => r === v);
  if (named) return named;
  if (/^[\s,0-9.eE+-]+$/.test(v)) return parseBox(v, '--subject');
  throw new UsageError(`${command}: --subject must be ${SUBJECT_RULES.join(', ')} or a box "x y w h", not '${v}'`);
}
