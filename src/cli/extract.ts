// `ous extract`: a data set's clips through the streams and the frozen CLIP encoder into a
// feature cache (SPEC.md §3). Resumable, shardable, and it reports every clip that failed.
import * as fs from 'node:fs';
import { parseArgs } from 'node:util';
import type { Command } from './command.js';
import { UsageError, UserError } from '../util/errors.js';
import { readDfew, readFerv39k, readManifest, type ClipEntry } from '../data/datasets.js';
import { FrameEncoder } from '../data/encoder.js';
import { extractFeatures, parseShard } from '../data/extract.js';
import { mergeCache } from '../data/cache.js';
import { resolveOusConfig } from '../ous/config.js';
import type { Device } from '../torch/index.js';

/** Exit codes of `ous extract` (also in its usage and the README). */
export const EXTRACT_EXIT = { ok: 0, couldNotRun: 1, usage: 2, failures: 3 } as const;

export const extract: Command = {
  name: 'extract',
  summary: 'encode a data set with the frozen CLIP into a feature cache (resumable, shardable)',
  usage:
    'ous extract --dataset dfew|ferv39k|manifest --root DIR [--fold K] [--manifest FILE.csv] --clip DIR --out CACHE\n' +
    '            [--frames 16] [--scene mask|full] [--views N] [--polarity-layer 4] [--shard I/N] [--device cpu|cuda] [--batch B]\n' +
    '            [--part-size 32] [--allow-missing-frames N] [--wait] [--json]\n' +
    '       ous extract --merge --out CACHE [--allow-partial] [--json]   (join the shards of a sharded extraction)\n' +
    'Run it again after changing the data set: new clips are extracted, changed labels and splits are\n' +
    'updated without recomputing, clips no longer listed leave the index. --wait waits for another\n' +
    'extraction into the same cache (shard) instead of stopping. --allow-missing-frames N accepts clips\n' +
    'with up to N frames the decoder could not deliver (truncated files; default 0: such a clip fails).\n' +
    '--allow-partial merges although shards are missing, and lists them.\n' +
    'Exit status: 0 all clips extracted; 3 finished, but some clips failed (listed in the output and\n' +
    'CACHE/failed-*.json) or, with --allow-partial, are missing; 1 could not run; 2 usage error.',
  async run(argv) {
    let a: ReturnType<typeof parseExtractArgs>;
    try {
      a = parseExtractArgs(argv);
    } catch (err) {
      // Bad flags and values are usage errors (exit 2). (main.ts does this for every command once
      // it reads UserError.exitCode and parseArgs's errors; then this catch can go.)
      const usage = err instanceof UsageError || (err as NodeJS.ErrnoException)?.code?.startsWith('ERR_PARSE_ARGS');
      if (!usage) throw err;
      process.stderr.write(`ous: ${(err as Error).message}\n`);
      return EXTRACT_EXIT.usage;
    }
    const { values } = a;
    const out = values.out!;
    if (values.merge) {
      const m = mergeCache(out, { allowPartial: values['allow-partial'] });
      const missing = m.missing.flatMap((s) => s.keys);
      const line = { done: m.clips, skipped: 0, failed: m.failed, missing, cache: out };
      if (values.json) process.stdout.write(JSON.stringify(line) + '\n');
      else {
        process.stdout.write(`merged ${m.parts} parts: ${m.clips} clips, ${m.failed.length} failed${missing.length ? `, ${missing.length} missing` : ''}${m.unlisted ? `, ${m.unlisted} no longer listed (left out)` : ''}\n`);
        for (const s of m.missing) process.stdout.write(`  missing: shard ${s.shard}: ${s.keys.length} clip(s): ${s.keys.slice(0, 5).join(', ')}${s.keys.length > 5 ? ', ...' : ''}\n`);
      }
      return m.failed.length || missing.length ? EXTRACT_EXIT.failures : EXTRACT_EXIT.ok;
    }
    let entries: ClipEntry[];
    let preFailed: Array<{ path: string; error: string }> = [];
    switch (values.dataset) {
      case 'dfew':
        entries = readDfew(values.root!, a.fold!);
        break;
      case 'ferv39k':
        entries = readFerv39k(values.root!);
        break;
      default: {
        const m = readManifest(values.manifest!, values.root);
        entries = m.entries;
        preFailed = m.failed;
      }
    }
    if (!entries.length && !preFailed.length) throw new UserError(`extract: the ${values.dataset} listing names no clips`);
    const encoder = FrameEncoder.load(values.clip!, { device: values.device as Device, batchSize: a.batch });
    const ous = resolveOusConfig({});
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
        frames: a.frames,
        scene: values.scene as 'mask' | 'full',
        views: a.views,
        polarityLayer: a.polarityLayer,
        dataset: values.dataset!,
        ...(a.fold !== undefined ? { fold: a.fold } : {}),
        classNames: ous.classNames,
        polarityOfClass: ous.polarityOfClass,
      },
    });
    // A single-shard run leaves a complete cache; shards are joined with --merge.
    if (a.shard.count === 1) mergeCache(out);
    if (values.json) {
      process.stdout.write(JSON.stringify({ done: summary.done, skipped: summary.skipped, updated: summary.updated, unlisted: summary.unlisted, failed: summary.failed, cache: summary.cache }) + '\n');
    } else {
      const changed = `${summary.updated ? `, updated labels of ${summary.updated} clips` : ''}${summary.unlisted ? `, ${summary.unlisted} no longer listed (left out of the index)` : ''}`;
      process.stdout.write(`extracted ${summary.done} clips, skipped ${summary.skipped} already cached${changed}, ${summary.failed.length} failed -> ${summary.cache}\n`);
      for (const f of summary.failed) process.stdout.write(`  failed: ${f.error}\n`);
    }
    return summary.failed.length ? EXTRACT_EXIT.failures : EXTRACT_EXIT.ok;
  },
};

/** Checks every flag before anything is read or created. */
function parseExtractArgs(argv: string[]) {
  const { values } = parseArgs({
    args: argv,
    options: {
      dataset: { type: 'string' },
      root: { type: 'string' },
      fold: { type: 'string' },
      manifest: { type: 'string' },
      clip: { type: 'string' },
      out: { type: 'string' },
      frames: { type: 'string', default: '16' },
      scene: { type: 'string', default: 'mask' },
      views: { type: 'string', default: '1' },
      'polarity-layer': { type: 'string', default: '4' },
      shard: { type: 'string', default: '1/1' },
      device: { type: 'string', default: 'cpu' },
      batch: { type: 'string', default: '32' },
      'part-size': { type: 'string', default: '32' },
      'allow-missing-frames': { type: 'string', default: '0' },
      wait: { type: 'boolean' },
      merge: { type: 'boolean' },
      'allow-partial': { type: 'boolean' },
      json: { type: 'boolean' },
    },
  });
  const int = (name: string, v: string | undefined, min = 1) => {
    const n = Number(v);
    if (!(Number.isInteger(n) && n >= min)) throw new UsageError(`extract: --${name} must be an integer ≥ ${min}, not '${v}'`);
    return n;
  };
  if (!values.out) throw new UsageError('extract: --out CACHE is required');
  if (values.merge) return { values, shard: { index: 1, count: 1 }, frames: 0, views: 0, polarityLayer: 0, batch: 0, partSize: 0, allowMissingFrames: 0, fold: undefined };
  if (!values.clip) throw new UsageError('extract: --clip DIR is required (a Hugging Face CLIP folder)');
  if (values.scene !== 'mask' && values.scene !== 'full') throw new UsageError(`extract: --scene must be mask or full, not '${values.scene}'`);
  let shard: { index: number; count: number };
  try {
    shard = parseShard(values.shard!);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  let fold: number | undefined;
  switch (values.dataset) {
    case 'dfew':
      if (!values.root) throw new UsageError('extract: --root DIR is required for DFEW');
      fold = int('fold', values.fold ?? '1');
      if (fold > 5) throw new UsageError(`extract: --fold must be 1..5 (DFEW's folds), not '${values.fold}'`);
      break;
    case 'ferv39k':
      if (!values.root) throw new UsageError('extract: --root DIR is required for FERV39k');
      break;
    case 'manifest':
      if (!values.manifest) throw new UsageError('extract: --manifest FILE.csv is required for --dataset manifest');
      break;
    default:
      throw new UsageError(`extract: --dataset must be dfew, ferv39k or manifest, not '${values.dataset ?? ''}'`);
  }
  return {
    values,
    shard,
    fold,
    frames: int('frames', values.frames),
    views: int('views', values.views),
    polarityLayer: int('polarity-layer', values['polarity-layer'], 0),
    batch: int('batch', values.batch),
    partSize: int('part-size', values['part-size']),
    allowMissingFrames: int('allow-missing-frames', values['allow-missing-frames'], 0),
  };
}
