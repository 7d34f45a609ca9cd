// `ous extract`: a data set's clips through the streams and the frozen CLIP encoder into a
// feature cache (SPEC.md §3). Resumable, shardable, and it reports every clip that failed.
import * as fs from 'node:fs';
import { parseArgs } from 'node:util';
import type { Command } from './command.js';
import { UserError } from '../util/errors.js';
import { readDfew, readFerv39k, readMafw, readManifest, type ClipEntry } from '../data/datasets.js';
import { DFEW_CLASSES, MAFW_CLASSES, parseClassList, parsePolarityMap, resolveClassSet } from '../data/classes.js';
import { FrameEncoder } from '../data/encoder.js';
import { extractFeatures } from '../data/extract.js';
import { resolveShard } from '../data/shard.js';
import { mergeCache } from '../data/cache.js';
import { parseDevice } from '../torch/index.js';

export const extract: Command = {
  name: 'extract',
  summary: 'encode a data set with the frozen CLIP into a feature cache (resumable, shardable)',
  usage:
    'ous extract --dataset dfew|ferv39k|mafw|manifest --root DIR [--fold K] [--manifest FILE.csv] --clip DIR --out CACHE\n' +
    '            [--classes a,b,c (manifest)] [--polarity class=negative|neutral|positive,...] [--no-polarity]\n' +
    '            [--frames 16] [--scene mask|full] [--views N] [--polarity-layer 4] [--shard I/N|auto|auto/N] [--device cpu|cuda] [--batch B]\n' +
    '            [--part-size 32] [--json]\n' +
    '       ous extract --merge --out CACHE        (join the shards of a sharded extraction)',
  async run(argv) {
    const { values } = parseArgs({
      args: argv,
      options: {
        dataset: { type: 'string' },
        root: { type: 'string' },
        fold: { type: 'string' },
        manifest: { type: 'string' },
        classes: { type: 'string' },
        polarity: { type: 'string' },
        'no-polarity': { type: 'boolean' },
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
        merge: { type: 'boolean' },
        json: { type: 'boolean' },
      },
    });
    if (!values.out) throw new UserError('extract: --out CACHE is required');
    if (values.merge) {
      const m = mergeCache(values.out);
      const line = { done: m.clips, skipped: 0, failed: m.failed, cache: values.out };
      process.stdout.write(values.json ? JSON.stringify(line) + '\n' : `merged ${m.parts} parts: ${m.clips} clips, ${m.failed.length} failed\n`);
      return m.clips > 0 ? 0 : 1;
    }
    const int = (name: string, v: string | undefined, min = 1) => {
      const n = Number(v);
      if (!(Number.isInteger(n) && n >= min)) throw new UserError(`extract: --${name} must be an integer ≥ ${min}, not '${v}'`);
      return n;
    };
    if (!values.clip) throw new UserError('extract: --clip DIR is required (a Hugging Face CLIP folder)');
    if (values.scene !== 'mask' && values.scene !== 'full') throw new UserError(`extract: --scene must be mask or full, not '${values.scene}'`);
    const shard = resolveShard(values.shard!); // I/N, or auto from Slurm/Kubernetes (src/data/shard.ts)
    if (values.classes !== undefined && values.dataset !== 'manifest') throw new UserError('extract: --classes is for --dataset manifest (DFEW, FERV39k and MAFW have their own classes)');
    // The classes and their polarities, checked before any clip is read.
    const classNames = values.dataset === 'mafw' ? MAFW_CLASSES : values.classes !== undefined ? parseClassList(values.classes) : DFEW_CLASSES;
    const classes = resolveClassSet(classNames, { polarity: values.polarity !== undefined ? parsePolarityMap(values.polarity) : undefined, noPolarity: values['no-polarity'] });
    let entries: ClipEntry[];
    let preFailed: Array<{ path: string; error: string }> = [];
    let fold: number | undefined;
    switch (values.dataset) {
      case 'dfew':
        if (!values.root) throw new UserError('extract: --root DIR is required for DFEW');
        fold = int('fold', values.fold ?? '1');
        entries = readDfew(values.root, fold);
        break;
      case 'ferv39k':
        if (!values.root) throw new UserError('extract: --root DIR is required for FERV39k');
        entries = readFerv39k(values.root);
        break;
      case 'mafw':
        if (!values.root) throw new UserError('extract: --root DIR is required for MAFW');
        fold = int('fold', values.fold ?? '1');
        entries = readMafw(values.root, fold);
        break;
      case 'manifest': {
        if (!values.manifest) throw new UserError('extract: --manifest FILE.csv is required for --dataset manifest');
        const m = readManifest(values.manifest, values.root, classes.classNames);
        entries = m.entries;
        preFailed = m.failed;
        break;
      }
      default:
        throw new UserError(`extract: --dataset must be dfew, ferv39k, mafw or manifest, not '${values.dataset ?? ''}'`);
    }
    const encoder = FrameEncoder.load(values.clip, { device: parseDevice(values.device), batchSize: int('batch', values.batch) });
    const summary = await extractFeatures({
      entries,
      encoder,
      out: values.out,
      shard,
      partSize: int('part-size', values['part-size']),
      preFailed,
      info: {
        clip: { path: fs.realpathSync(values.clip), hash: encoder.hash },
        frames: int('frames', values.frames),
        scene: values.scene,
        views: int('views', values.views),
        polarityLayer: int('polarity-layer', values['polarity-layer'], 0),
        dataset: values.dataset,
        ...(fold !== undefined ? { fold } : {}),
        classNames: classes.classNames,
        polarityOfClass: classes.polarityOfClass,
      },
    });
    // A single-shard run leaves a complete cache; shards are joined with --merge.
    const merged = shard.count === 1 ? mergeCache(values.out) : undefined;
    const inCache = merged?.clips ?? summary.done + summary.skipped;
    if (values.json) {
      process.stdout.write(JSON.stringify({ done: summary.done, skipped: summary.skipped, failed: summary.failed, cache: summary.cache, seconds: summary.seconds, clipsPerSecond: summary.clipsPerSecond }) + '\n');
    } else {
      process.stdout.write(`extracted ${summary.done} clips, skipped ${summary.skipped} already cached, ${summary.failed.length} failed -> ${summary.cache}\n`);
      for (const f of summary.failed) process.stdout.write(`  failed: ${f.error}\n`);
    }
    return inCache > 0 ? 0 : 1;
  },
};
