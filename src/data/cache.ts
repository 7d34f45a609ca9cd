// The feature cache (SPEC.md §3): per clip, the frozen encoder's face_emb [T, E], scene_emb [T, E]
// and scene_low [T, W] in float16, with the label, the polarity label and the face metadata.
//
//   CACHE/cache.json                  what made it: CLIP checkpoint hash, every preprocessing option
//   CACHE/parts/<shard>-<nnnnn>.safetensors   groups of clips; the clip records are the metadata
//   CACHE/failed-<shard>.json         clips that failed, with their errors
//   CACHE/index.json                  written by merge: every part, in order
//
// Parts are written whole and atomically, so an interrupted extraction resumes by skipping the
// clips already in a part: nothing is done twice and nothing half-written is ever read. Shards
// (`--shard I/N`) write their own parts and can run on different machines; merge joins them.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Tensor, loadSafetensors, readSafetensorsHeader, saveSafetensors, stack, tidy } from '../torch/index.js';
import { readJson, writeFileAtomic } from '../util/fs.js';
import { UserError } from '../util/errors.js';
import { TensorDataset } from './dataset.js';
import { readCacheInfo } from './cache-schema.js';

export type Split = 'train' | 'test';

/** Everything that changes the features: a cache made with other options is not reused. */
export interface CacheOptions {
  clip: { path: string; hash: string };
  frames: number; // T
  scene: 'mask' | 'full';
  views: number; // augmented views stored per training clip (1 = the original only)
  polarityLayer: number; // k: scene_low is the mean over tokens of the residual stream after block k
  dataset: string; // dfew | ferv39k | mafw | manifest
  fold?: number;
  classNames: string[]; // the words the prompts use, in label order (classes.ts)
  polarityOfClass: number[] | null; // each class's polarity label; null: none (--no-polarity)
}

export interface CacheInfo extends CacheOptions {
  version: 1;
  dims: { frames: number; embed: number; visionWidth: number };
}

/** One clip of the cache (one view of it when views > 1). */
export interface ClipRecord {
  key: string; // unique in the cache: the clip's id, plus "#v<n>" for augmented views
  path: string;
  label: number;
  polarity: number | null; // null when the cache has no polarity labels
  split: Split;
  view: number; // 0 = the original
  faceMissing: boolean;
  boxes: Array<[number, number, number, number] | null>; // face box per sampled frame, [x, y, w, h]
}

export interface ClipFeatures {
  face: Tensor; // [T, E]
  scene: Tensor; // [T, E]
  low: Tensor; // [T, W]
}

export interface FailedClip {
  path: string;
  error: string;
}

const CACHE_FILE = 'cache.json';
const PARTS = 'parts';

/** Compares the options a cache was made with to the ones asked for; any difference is an error. */
export function checkCacheOptions(dir: string, want: CacheOptions): CacheInfo | undefined {
  const file = path.join(dir, CACHE_FILE);
  if (!fs.existsSync(file)) return undefined;
  const have = readCacheInfo(file);
  const diffs: string[] = [];
  for (const key of Object.keys(want) as Array<keyof CacheOptions>) {
    const [a, b] = [JSON.stringify(have[key]), JSON.stringify(want[key])];
    if (key === 'clip') {
      if (have.clip.hash !== want.clip.hash) diffs.push(`CLIP checkpoint (cache: ${have.clip.path}, hash ${have.clip.hash.slice(0, 12)}; now: ${want.clip.path}, hash ${want.clip.hash.slice(0, 12)})`);
    } else if (a !== b) diffs.push(`${key} (cache: ${a}, now: ${b})`);
  }
  if (diffs.length) throw new UserError(`${dir} was made with other options: ${diffs.join('; ')}. Use another --out folder, or delete this one to rebuild it.`);
  return have;
}

/** Writes clips into parts of one shard, `partSize` clips at a time. */
export class CacheWriter {
  private pending: Array<{ record: ClipRecord; features: ClipFeatures }> = [];
  private nextPart: number;
  readonly done: Set<string>;
  private readonly failed: FailedClip[];

  constructor(readonly dir: string, readonly info: CacheInfo, readonly shard: string, private readonly partSize = 32) {
    fs.mkdirSync(path.join(dir, PARTS), { recursive: true });
    const existing = checkCacheOptions(dir, info);
    if (!existing) writeFileAtomic(path.join(dir, CACHE_FILE), JSON.stringify(info, null, 2) + '\n');
    const mine = partFiles(dir).filter((f) => path.basename(f).startsWith(`${shard}-`));
    this.nextPart = mine.length ? Math.max(...mine.map((f) => Number(/-(\d+)\.safetensors$/.exec(f)![1]))) + 1 : 1;
    this.done = new Set(partFiles(dir).flatMap((f) => readPartRecords(f).map((r) => r.key)));
    const failedFile = this.failedFile();
    this.failed = fs.existsSync(failedFile) ? readJson<FailedClip[]>(failedFile) : [];
  }

  private failedFile(): string {
    return path.join(this.dir, `failed-${this.shard}.json`);
  }

  /** Queues a clip's features (float16 copies are taken; the inputs stay the caller's). */
  add(record: ClipRecord, features: ClipFeatures): void {
    const half = tidy(() => ({ face: features.face.to('float16').keep(), scene: features.scene.to('float16').keep(), low: features.low.to('float16').keep() }));
    this.pending.push({ record, features: half });
    if (this.pending.length >= this.partSize) this.flush();
  }

  /** Records a clip that failed; a later run tries it again. */
  fail(clip: FailedClip): void {
    const i = this.failed.findIndex((f) => f.path === clip.path);
    if (i >= 0) this.failed[i] = clip;
    else this.failed.push(clip);
    writeFileAtomic(this.failedFile(), JSON.stringify(this.failed, null, 2) + '\n');
  }

  /** A clip that now succeeded is no longer a failure. */
  private clearFailure(p: string): void {
    const i = this.failed.findIndex((f) => f.path === p);
    if (i >= 0) this.failed.splice(i, 1);
  }

  get failures(): readonly FailedClip[] {
    return this.failed;
  }

  /** Writes the queued clips as one part (atomic). */
  flush(): void {
    if (!this.pending.length) return;
    const name = `${this.shard}-${String(this.nextPart++).padStart(5, '0')}.safetensors`;
    const tensors = new Map<string, Tensor>();
    for (const { record, features } of this.pending) {
      tensors.set(`${record.key}/face_emb`, features.face);
      tensors.set(`${record.key}/scene_emb`, features.scene);
      tensors.set(`${record.key}/scene_low`, features.low);
    }
    saveSafetensors(path.join(this.dir, PARTS, name), tensors, { clips: JSON.stringify(this.pending.map((p) => p.record)) });
    for (const { record, features } of this.pending) {
      this.done.add(record.key);
      this.clearFailure(record.path);
      features.face.dispose();
      features.scene.dispose();
      features.low.dispose();
    }
    if (fs.existsSync(this.failedFile())) writeFileAtomic(this.failedFile(), JSON.stringify(this.failed, null, 2) + '\n');
    this.pending = [];
  }
}

function partFiles(dir: string): string[] {
  const p = path.join(dir, PARTS);
  if (!fs.existsSync(p)) return [];
  return fs.readdirSync(p).filter((f) => f.endsWith('.safetensors')).sort().map((f) => path.join(p, f));
}

function readPartRecords(file: string): ClipRecord[] {
  const meta = readSafetensorsHeader(file).metadata.clips;
  if (!meta) throw new UserError(`${file} is not a part of a feature cache (no clip records)`);
  return JSON.parse(meta) as ClipRecord[];
}

/**
 * Joins the parts of every shard into index.json, checking that no clip appears twice. The
 * index lists the parts in name order; reading follows it.
 */
export function mergeCache(dir: string): { parts: number; clips: number; failed: FailedClip[] } {
  if (!fs.existsSync(path.join(dir, CACHE_FILE))) throw new UserError(`${dir} is not a feature cache (no ${CACHE_FILE})`);
  const parts = partFiles(dir);
  const seen = new Map<string, string>();
  for (const f of parts) {
    for (const r of readPartRecords(f)) {
      const other = seen.get(r.key);
      if (other) throw new UserError(`clip ${r.key} is in both ${path.basename(other)} and ${path.basename(f)}: were two shards given the same I/N?`);
      seen.set(r.key, f);
    }
  }
  const failed = fs.readdirSync(dir).filter((f) => /^failed-.*\.json$/.test(f)).flatMap((f) => readJson<FailedClip[]>(path.join(dir, f)));
  writeFileAtomic(path.join(dir, 'index.json'), JSON.stringify({ parts: parts.map((f) => path.relative(dir, f)), clips: seen.size, failed }, null, 2) + '\n');
  return { parts: parts.length, clips: seen.size, failed };
}

/** What made a cache (cache.json), without reading its features. */
export function cacheInfoOf(dir: string): CacheInfo {
  const file = path.join(dir, CACHE_FILE);
  if (!fs.existsSync(file)) throw new UserError(`${dir} is not a feature cache (no ${CACHE_FILE}); make one with 'ous extract'`);
  return readCacheInfo(file);
}

/** A feature cache opened for training: every clip's features in memory (float16), batched as float32. */
export class FeatureCache {
  readonly info: CacheInfo;
  readonly records: ClipRecord[];
  readonly data: TensorDataset;

  private constructor(info: CacheInfo, records: ClipRecord[], data: TensorDataset) {
    this.info = info;
    this.records = records;
    this.data = data;
  }

  static open(dir: string): FeatureCache {
    const info = cacheInfoOf(dir);
    const index = path.join(dir, 'index.json');
    const parts = fs.existsSync(index) ? readJson<{ parts: string[] }>(index).parts.map((p) => path.join(dir, p)) : partFiles(dir);
    const records: ClipRecord[] = [];
    const faces: Tensor[] = [];
    const scenes: Tensor[] = [];
    const lows: Tensor[] = [];
    for (const f of parts) {
      const recs = readPartRecords(f);
      const t = loadSafetensors(f);
      for (const r of recs) {
        records.push(r);
        faces.push(t.get(`${r.key}/face_emb`)!);
        scenes.push(t.get(`${r.key}/scene_emb`)!);
        lows.push(t.get(`${r.key}/scene_low`)!);
      }
    }
    if (!records.length) throw new UserError(`${dir} holds no clips yet`);
    const data = tidy(() => new TensorDataset(stack(faces), stack(scenes), stack(lows), records.map((r) => r.label)));
    for (const t of [...faces, ...scenes, ...lows]) t.dispose();
    return new FeatureCache(info, records, data);
  }

  /** Indices of the clips of a split; `originalOnly` drops augmented views (evaluation). */
  indices(split: Split, originalOnly = false): number[] {
    return this.records.flatMap((r, i) => (r.split === split && (!originalOnly || r.view === 0) ? [i] : []));
  }
}
