// The feature cache (SPEC.md §3): per clip, the frozen encoder's face_emb [T, E], scene_emb [T, E]
// and scene_low [T, W] in float16, with the label, the polarity label and the face metadata.
//
//   CACHE/cache.json                  what made it: CLIP checkpoint hash, every preprocessing option
//   CACHE/parts/<shard>-<nnnnn>.safetensors   groups of clips; the clip records are the metadata
//   CACHE/failed-<shard>.json         clips that failed, with their errors
//   CACHE/listing.json                the data set's current listing (every clip, label, split),
//                                     rewritten by every extraction
//   CACHE/index.json                  written by merge: the listed clips found in parts, with the
//                                     listing's labels and splits
//   CACHE/lock-<shard>                held (pid, host) while an extraction of that shard runs
//
// Parts are written whole and atomically, so an interrupted extraction resumes by skipping the
// clips already in a part: nothing is done twice and nothing half-written is ever read. Shards
// (`--shard I/N`) write their own parts and can run on different machines; merge joins them.
// Labels and splits are metadata, not features: the listing is the truth, so relabelling a clip
// never recomputes it, and a clip no longer listed stays in its part but leaves the index.
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { type Tensor, loadSafetensors, readSafetensorsHeader, saveSafetensors, stack, tidy } from '../torch/index.js';
import { ensureDir, pathKind, writeFileAtomic } from '../util/fs.js';
import { describeHolder, holderAlive, readLockFile, tryLock, type LockHolder } from '../util/lock.js';
import { UserError } from '../util/errors.js';
import { TensorDataset } from './dataset.js';
import {
  parsePartRecords,
  readCacheInfo,
  readFailedFile,
  readIndexFile,
  readListingFile,
  type CacheIndex,
  type CacheInfo,
  type CacheOptions,
  type ClipRecord,
  type FailedClip,
  type Listing,
  type Split,
} from './cache-schema.js';

export type { CacheInfo, CacheOptions, ClipRecord, FailedClip, ListedClip, Listing, Split } from './cache-schema.js';

export interface ClipFeatures {
  face: Tensor; // [T, E]
  scene: Tensor; // [T, E]
  low: Tensor; // [T, W]
}

/** A clip's id from a record's or listing's key: the key without its view suffix ('#v<n>'). */
const clipIdOf = (key: string) => key.replace(/#v\d+$/, '');

/** Whether a failure is that clip's: a per-person failure names its id, any other the video. */
const failureOf = (f: FailedClip, clip: { path: string; key: string }) =>
  f.path === clip.path && (f.key === undefined || f.key === clipIdOf(clip.key));

const CACHE_FILE = 'cache.json';
const PARTS = 'parts';
const LISTING = 'listing.json';
const INDEX = 'index.json';
const merge = (dir: string) => `run 'ous extract --merge --out ${dir}'`;

/** Compares the options a cache was made with to the ones asked for; any difference is an error. */
export function checkCacheOptions(dir: string, want: CacheOptions): CacheInfo | undefined {
  const file = path.join(dir, CACHE_FILE);
  if (!fs.existsSync(file)) return undefined;
  const have = readCacheInfo(file);
  const diffs: string[] = [];
  // Features of another precision differ in the last digits: one cache holds one precision.
  const [hp, wp] = [have.precision ?? 'fp32', want.precision ?? 'fp32'];
  if (hp !== wp) diffs.push(`precision (cache: ${hp}, now: ${wp}; --precision ${hp} extends it)`);
  // Another face means other features; absent is main (and every cache made before --subject).
  const [hs, ws] = [JSON.stringify(have.subject ?? 'main'), JSON.stringify(want.subject ?? 'main')];
  if (hs !== ws) diffs.push(`subject (cache: ${hs}, now: ${ws})`);
  for (const key of Object.keys(want) as Array<keyof CacheOptions>) {
    if (key === 'precision' || key === 'subject') continue; // compared above, with their defaults
    if ((key as string) === 'recipe') continue; // made from the options compared here
    const [a, b] = [JSON.stringify(have[key]), JSON.stringify(want[key])];
    if (key === 'clip') {
      if (have.clip.hash !== want.clip.hash)
        diffs.push(
          `CLIP checkpoint (cache: ${have.clip.path}, hash ${have.clip.hash.slice(0, 12)}; ` +
            `now: ${want.clip.path}, hash ${want.clip.hash.slice(0, 12)})`,
        );
    } else if (a !== b) diffs.push(`${key} (cache: ${a}, now: ${b})`);
  }
  if (diffs.length)
    throw new UserError(
      `${dir} was made with other options: ${diffs.join('; ')}. ` +
        'Use another --out folder, or delete this one to rebuild it.',
    );
  return have;
}

/** Writes clips into parts of one shard, `partSize` clips at a time. */
export class CacheWriter {
  private pending: Array<{ record: ClipRecord; features: ClipFeatures }> = [];
  private nextPart: number;
  readonly done: Set<string>;
  private readonly failed: FailedClip[];

  /** What the parts hold, by key (the records as extracted, with the labels of that time). */
  readonly cached: Map<string, ClipRecord>;

  constructor(
    readonly dir: string,
    readonly info: CacheInfo,
    readonly shard: string,
    private readonly partSize = 32,
  ) {
    ensureDir(path.join(dir, PARTS));
    // A cache without parts holds nothing to protect: it takes the options asked for now.
    const existing = partFiles(dir).length ? checkCacheOptions(dir, info) : undefined;
    if (!existing) writeFileAtomic(path.join(dir, CACHE_FILE), JSON.stringify(info, null, 2) + '\n');
    const mine = partFiles(dir).filter((f) => path.basename(f).startsWith(`${shard}-`));
    this.nextPart = mine.length ? Math.max(...mine.map((f) => Number(/-(\d+)\.safetensors$/.exec(f)![1]))) + 1 : 1;
    this.cached = new Map(partFiles(dir).flatMap((f) => readPartRecords(f).map((r) => [r.key, r] as const)));
    this.done = new Set(this.cached.keys());
    const failedFile = this.failedFile();
    this.failed = fs.existsSync(failedFile) ? readFailedFile(failedFile) : [];
  }

  private failedFile(): string {
    return path.join(this.dir, `failed-${this.shard}.json`);
  }

  /** Queues a clip's features (float16 copies are taken; the inputs stay the caller's). */
  add(record: ClipRecord, features: ClipFeatures): void {
    const half = tidy(() => ({
      face: features.face.to('float16').keep(),
      scene: features.scene.to('float16').keep(),
      low: features.low.to('float16').keep(),
    }));
    this.pending.push({ record, features: half });
    if (this.pending.length >= this.partSize) this.flush();
  }

  /** Forgets recorded failures of clips the listing no longer names (a person's: by their id, `ids`). */
  keepFailures(listed: Set<string>, ids: Set<string> = new Set()): void {
    const kept = this.failed.filter((f) => listed.has(f.path) && (f.key === undefined || ids.has(f.key)));
    if (kept.length === this.failed.length) return;
    this.failed.splice(0, this.failed.length, ...kept);
    writeFileAtomic(this.failedFile(), JSON.stringify(this.failed, null, 2) + '\n');
  }

  /** Records a clip that failed; a later run tries it again. */
  fail(clip: FailedClip): void {
    const i = this.failed.findIndex((f) => f.path === clip.path && f.key === clip.key);
    if (i >= 0) this.failed[i] = clip;
    else this.failed.push(clip);
    writeFileAtomic(this.failedFile(), JSON.stringify(this.failed, null, 2) + '\n');
  }

  /** A clip that now succeeded is no longer a failure (another person of its video may still be). */
  private clearFailure(record: ClipRecord): void {
    const kept = this.failed.filter((f) => !failureOf(f, record));
    this.failed.splice(0, this.failed.length, ...kept);
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
    saveSafetensors(path.join(this.dir, PARTS, name), tensors, {
      clips: JSON.stringify(this.pending.map((p) => p.record)),
    });
    for (const { record, features } of this.pending) {
      this.done.add(record.key);
      this.clearFailure(record);
      features.face.dispose();
      features.scene.dispose();
      features.low.dispose();
    }
    if (fs.existsSync(this.failedFile()))
      writeFileAtomic(this.failedFile(), JSON.stringify(this.failed, null, 2) + '\n');
    this.pending = [];
  }
}

function partFiles(dir: string): string[] {
  const p = path.join(dir, PARTS);
  if (!fs.existsSync(p)) return [];
  return fs
    .readdirSync(p)
    .filter((f) => f.endsWith('.safetensors'))
    .sort()
    .map((f) => path.join(p, f));
}

function readPartRecords(file: string): ClipRecord[] {
  return parsePartRecords(file, readSafetensorsHeader(file).metadata.clips);
}

/** Writes the data set's current listing (every shard of one extraction writes the same one). */
export function writeListing(dir: string, listing: Listing): void {
  writeFileAtomic(path.join(dir, LISTING), JSON.stringify(listing) + '\n');
}

/** The listing of the last extraction, if any. */
export function readListing(dir: string): Listing | undefined {
  const file = path.join(dir, LISTING);
  return fs.existsSync(file) ? readListingFile(file) : undefined;
}

function listingHash(dir: string): string {
  return crypto
    .createHash('sha256')
    .update(fs.readFileSync(path.join(dir, LISTING)))
    .digest('hex');
}

export interface MergeResult {
  parts: number;
  clips: number; // listed clips (all views) in the index
  failed: FailedClip[];
  missing: Array<{ shard: string; keys: string[] }>; // listed, in no part, not failed: shards not run or not finished
  unlisted: number; // clips in parts that the listing no longer names (left out of the index)
}

/**
 * Joins the parts of every shard into index.json: the clips of the current listing found in a
 * part, with the listing's label, polarity and split (a relabelled clip keeps its features). A clip
 * in two parts is an error; listed clips in no part and not failed mean a shard did not run or
 * finish: an error, unless `allowPartial`, when the index says which are missing.
 */
export function mergeCache(dir: string, opts: { allowPartial?: boolean } = {}): MergeResult {
  if (!fs.existsSync(path.join(dir, CACHE_FILE)))
    throw new UserError(`${dir} is not a feature cache (no ${CACHE_FILE})`);
  const running = liveLocks(dir).filter((l) => l.pid !== process.pid || l.host !== os.hostname());
  if (running.length)
    throw new UserError(
      `${dir}: an extraction is still writing it (${running.map(describeLock).join('; ')}); merge when it has finished`,
    );
  const listing = readListing(dir);
  if (!listing)
    throw new UserError(
      `${dir} has no ${LISTING} (made by an older ous): ` +
        'run the same ous extract again to write it (nothing is recomputed)',
    );
  const parts = partFiles(dir);
  const seen = new Map<string, { file: string; record: ClipRecord }>();
  for (const f of parts) {
    for (const r of readPartRecords(f)) {
      const other = seen.get(r.key);
      if (other)
        throw new UserError(
          `clip ${r.key} is in both ${path.basename(other.file)} and ${path.basename(f)}: ` +
            'were two shards given the same I/N?',
        );
      seen.set(r.key, { file: f, record: r });
    }
  }
  const listedPaths = new Set(listing.clips.map((c) => c.path));
  const failedFiles = fs
    .readdirSync(dir)
    .filter((f) => /^failed-.*\.json$/.test(f))
    .flatMap((f) => readFailedFile(path.join(dir, f)));
  // A failure stands while no listed clip it is about was extracted (per person: that person's id).
  const extracted = listing.clips.filter((c) => seen.has(c.key));
  const failedExtracting = failedFiles.filter(
    (f) => listedPaths.has(f.path) && !extracted.some((c) => failureOf(f, c)),
  );
  const failed = [
    ...new Map(
      [...listing.rejected, ...failedExtracting].map((f) => [`${f.path}\n${f.key ?? ''}\n${f.error}`, f]),
    ).values(),
  ];
  const listed = new Map(listing.clips.map((c) => [c.key, c]));
  const missingByShard = new Map<string, string[]>();
  for (const c of listing.clips) {
    if (seen.has(c.key) || failed.some((f) => failureOf(f, c))) continue;
    if (!missingByShard.has(c.shard)) missingByShard.set(c.shard, []);
    missingByShard.get(c.shard)!.push(c.key);
  }
  const missing = [...missingByShard].map(([shard, keys]) => ({ shard, keys }));
  if (missing.length && !opts.allowPartial) {
    const which = missing
      .map((m) => `shard ${m.shard} (${m.keys.length} clip${m.keys.length > 1 ? 's' : ''}, e.g. ${m.keys[0]})`)
      .join(', ');
    throw new UserError(
      `${dir}: clips of ${which} are in no part and did not fail: that shard has not run or not finished. ` +
        `Run it (ous extract ... --shard I/N --out ${dir}), or merge with --allow-partial to use what is there`,
    );
  }
  // Parts order, then each part's order: the index keeps the order the clips were extracted in.
  const clips: CacheIndex['clips'] = [];
  for (const [key, { file }] of seen) {
    const c = listed.get(key);
    if (c)
      clips.push({
        key,
        path: c.path,
        label: c.label,
        polarity: c.polarity,
        split: c.split,
        part: path.relative(dir, file),
      });
  }
  const index: CacheIndex = {
    version: 2,
    listing: listingHash(dir),
    parts: parts.map((f) => path.relative(dir, f)),
    clips,
    failed,
    missing: missing.flatMap((m) => m.keys),
  };
  writeFileAtomic(path.join(dir, INDEX), JSON.stringify(index, null, 2) + '\n');
  return { parts: parts.length, clips: clips.length, failed, missing, unlisted: seen.size - clips.length };
}

// The lock file itself (pid liveness, written whole, stale ones taken over) is util/lock.ts's, shared with run folders.
const describeLock = (l: LockHolder) => `${describeHolder(l)}, ${path.basename(l.file)}`;

/** The locks of live extractions into `dir`. */
export function liveLocks(dir: string): LockHolder[] {
  if (!fs.existsSync(dir)) return [];
  return fs
    .readdirSync(dir)
    .filter((f) => f.startsWith('lock-') && !f.includes('.tmp-'))
    .flatMap((f) => {
      const l = readLockFile(path.join(dir, f));
      return l && holderAlive(l) ? [l] : [];
    });
}

/**
 * Takes `CACHE/lock-<shard>` for this process, so that a second extraction of the same shard
 * stops (or, with `wait`, waits) instead of writing beside it. A lock whose process is dead is
 * taken over (`log` is told). Returns the release function.
 */
export async function lockCache(
  dir: string,
  shard: string,
  opts: { wait?: boolean; log?: (line: string) => void } = {},
): Promise<() => void> {
  ensureDir(dir);
  const file = path.join(dir, `lock-${shard}`);
  let waited = false;
  for (;;) {
    const r = tryLock(file, (dead) =>
      opts.log?.(`${dir}: took over the lock of a dead extraction (${describeLock(dead)})`),
    );
    if ('release' in r) return r.release;
    const holder = r.holder;
    if (!opts.wait) {
      throw new UserError(
        `${dir} is being written by another ous extract (${holder ? describeLock(holder) : file}): ` +
          `wait for it to finish, pass --wait, or use another --out; if no such process runs, delete ${file}`,
      );
    }
    if (!waited)
      opts.log?.(`${dir}: waiting for another ous extract to finish (${holder ? describeLock(holder) : file})`);
    waited = true;
    await new Promise((r) => setTimeout(r, 500));
  }
}

/** What made a cache (cache.json), without reading its features. */
export function cacheInfoOf(dir: string): CacheInfo {
  const file = path.join(dir, CACHE_FILE);
  // pathKind, not existsSync: an unreadable folder or a symlink loop is said as such, not as "no cache.json".
  const kind = pathKind(dir);
  if (kind === 'missing') throw new UserError(`${dir}: no such feature cache (make one with 'ous extract')`);
  if (kind !== 'folder')
    throw new UserError(`${dir} is ${kind === 'file' ? 'a file' : kind.other}, not a feature cache folder`);
  if (pathKind(file) === 'missing')
    throw new UserError(`${dir} is not a feature cache (no ${CACHE_FILE}); make one with 'ous extract'`);
  return readCacheInfo(file);
}

/** A feature cache opened for training: every clip's features in memory (float16), batched as float32. */
export class FeatureCache {
  readonly info: CacheInfo;
  readonly records: ClipRecord[];
  readonly data: TensorDataset;
  readonly missing: readonly string[]; // listed clips left out by a merge with --allow-partial

  private constructor(info: CacheInfo, records: ClipRecord[], data: TensorDataset, missing: string[]) {
    this.info = info;
    this.records = records;
    this.data = data;
    this.missing = missing;
  }

  /**
   * Opens a complete, consistent cache: merged (index.json), no extraction running, the index
   * as new as the listing and naming every part on disk, each clip once. The records carry the
   * listing's labels and splits; clips the listing no longer names are left out.
   */
  static open(dir: string): FeatureCache {
    const info = cacheInfoOf(dir);
    const running = liveLocks(dir);
    if (running.length)
      throw new UserError(
        `${dir}: an extraction is still writing it (${running.map(describeLock).join('; ')}); wait for it to finish`,
      );
    const onDisk = partFiles(dir).map((f) => path.relative(dir, f));
    const indexFile = path.join(dir, INDEX);
    if (!fs.existsSync(indexFile)) {
      if (!onDisk.length) throw new UserError(`${dir} holds no clips yet`);
      throw new UserError(
        `${dir} has parts but no ${INDEX}: its extraction did not finish, ` +
          `or its shards were not merged; finish it (run the same ous extract again) or ${merge(dir)}`,
      );
    }
    const index = readIndexFile(
      indexFile,
      `run the same ous extract again (nothing is recomputed), then ${merge(dir)} if it was sharded`,
    );
    if (!fs.existsSync(path.join(dir, LISTING)) || listingHash(dir) !== index.listing)
      throw new UserError(`${dir}: an extraction ran after the last merge, so ${INDEX} is out of date: ${merge(dir)}`);
    const unindexed = onDisk.filter((p) => !index.parts.includes(p));
    if (unindexed.length)
      throw new UserError(
        `${dir} has parts that ${INDEX} does not list ` +
          `(${unindexed.slice(0, 3).join(', ')}${unindexed.length > 3 ? ', ...' : ''}): ${merge(dir)}`,
      );
    const gone = index.parts.filter((p) => !fs.existsSync(path.join(dir, p)));
    if (gone.length)
      throw new UserError(
        `${dir}: ${gone.length} part(s) named by ${INDEX} are missing (${gone.slice(0, 3).join(', ')}): ` +
          `extract again into this folder, then ${merge(dir)}`,
      );
    const wanted = new Map<string, CacheIndex['clips'][number]>();
    for (const c of index.clips) {
      if (wanted.has(c.key)) throw new UserError(`${indexFile} lists clip ${c.key} twice: ${merge(dir)}`);
      wanted.set(c.key, c);
    }
    const records: ClipRecord[] = [];
    const faces: Tensor[] = [];
    const scenes: Tensor[] = [];
    const lows: Tensor[] = [];
    for (const part of index.parts) {
      const f = path.join(dir, part);
      const recs = readPartRecords(f).filter((r) => wanted.get(r.key)?.part === part);
      if (!recs.length) continue;
      // Only the listed clips' tensors are read: a clip no longer listed stays on disk, unused.
      const t = loadSafetensors(f, {
        only: recs.flatMap((r) => ['face_emb', 'scene_emb', 'scene_low'].map((n) => `${r.key}/${n}`)),
      });
      for (const r of recs) {
        const c = wanted.get(r.key)!;
        records.push({ ...r, path: c.path, label: c.label, polarity: c.polarity, split: c.split });
        faces.push(t.get(`${r.key}/face_emb`)!);
        scenes.push(t.get(`${r.key}/scene_emb`)!);
        lows.push(t.get(`${r.key}/scene_low`)!);
      }
    }
    if (records.length !== wanted.size)
      throw new UserError(
        `${dir}: ${wanted.size - records.length} clip(s) of ${INDEX} are not in their parts: ${merge(dir)}`,
      );
    if (!records.length) throw new UserError(`${dir} holds no clips yet`);
    // cache.json is what train and predict believe (T, the widths): it must describe the features.
    const want = { face: [info.frames, info.dims.embed], low: [info.frames, info.dims.visionWidth] };
    const odd = records.findIndex(
      (_, i) =>
        faces[i]!.shape.join() !== want.face.join() ||
        scenes[i]!.shape.join() !== want.face.join() ||
        lows[i]!.shape.join() !== want.low.join(),
    );
    if (odd >= 0 || info.dims.frames !== info.frames) {
      const i = Math.max(odd, 0);
      const msg =
        `${path.join(dir, CACHE_FILE)} does not describe its features: it says frames = ${info.frames} ` +
        `(dims.frames ${info.dims.frames}), embed ${info.dims.embed}, visionWidth ${info.dims.visionWidth}, ` +
        `but clip ${records[i]!.key} has face features [${faces[i]!.shape}] and scene_low ` +
        `[${lows[i]!.shape}] (was cache.json edited? extract again into a new --out)`;
      for (const t of [...faces, ...scenes, ...lows]) t.dispose();
      throw new UserError(msg);
    }
    const data = tidy(
      () =>
        new TensorDataset(
          stack(faces),
          stack(scenes),
          stack(lows),
          records.map((r) => r.label),
        ),
    );
    for (const t of [...faces, ...scenes, ...lows]) t.dispose();
    return new FeatureCache(info, records, data, index.missing);
  }

  /** Indices of the clips of a split; `originalOnly` drops augmented views (evaluation). */
  indices(split: Split, originalOnly = false): number[] {
    return this.records.flatMap((r, i) => (r.split === split && (!originalOnly || r.view === 0) ? [i] : []));
  }
}
