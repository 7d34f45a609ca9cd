// The feature cache's files are read through their schemas, never cast: each kind (cache.json,
// listing.json, index.json, a failed-<shard>.json, a part's clip records), broken by hand, is one
// error that names the file and the key. The cache is made here with CacheWriter from a few zeros.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CacheWriter, FeatureCache, cacheInfoOf, mergeCache, writeListing, type CacheInfo } from '../src/data/cache.js';
import { saveSafetensors, zeros } from '../src/torch/index.js';
import { UserError } from '../src/util/errors.js';

const T = 2;
const info: CacheInfo = {
  version: 1,
  clip: { path: '/clip', hash: 'abc' },
  frames: T,
  scene: 'mask',
  views: 1,
  polarityLayer: 1,
  dataset: 'manifest',
  classNames: ['happy', 'sad'],
  polarityOfClass: [0, 1],
  dims: { frames: T, embed: 4, visionWidth: 3 },
};

/** A merged cache of two clips in one part. */
function smallCache(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ous-cache-files-'));
  const w = new CacheWriter(dir, info, 'all');
  const clips = ['a', 'b'].map((key, label) => ({
    key,
    path: `${key}.mp4`,
    label,
    polarity: label,
    split: 'train' as const,
    view: 0,
  }));
  for (const c of clips)
    w.add(
      { ...c, faceMissing: false, boxes: [null, [0, 0, 1, 1]] },
      { face: zeros([T, 4]), scene: zeros([T, 4]), low: zeros([T, 3]) },
    );
  w.flush();
  writeListing(dir, { version: 1, shards: 1, clips: clips.map((c) => ({ ...c, shard: '1/1' })), rejected: [] });
  mergeCache(dir);
  return dir;
}

/** Edits a JSON file of the cache by hand. */
function edit(file: string, change: (json: any) => void): void {
  const json = JSON.parse(fs.readFileSync(file, 'utf8'));
  change(json);
  fs.writeFileSync(file, JSON.stringify(json));
}

/** The one-line UserError of `fn`. */
function refusal(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof UserError, `a UserError, not ${(err as Error).stack}`);
    assert.doesNotMatch(err.message, /\n/);
    return err.message;
  }
  assert.fail('expected a refusal');
}

const escaped = (s: string) => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');

test('the small cache opens as made (the files below are broken from here)', () => {
  const dir = smallCache();
  const cache = FeatureCache.open(dir);
  assert.deepEqual(
    cache.records.map((r) => [r.key, r.label, r.boxes[1]]),
    [
      ['a', 0, [0, 0, 1, 1]],
      ['b', 1, [0, 0, 1, 1]],
    ],
  );
});

test('cache.json with a key of the wrong type names the file and the key', () => {
  const dir = smallCache();
  const file = path.join(dir, 'cache.json');
  edit(file, (j) => {
    j.frames = 'two';
  });
  assert.match(
    refusal(() => cacheInfoOf(dir)),
    new RegExp(`^${escaped(file)} .*frames: Expected number`),
  );
});

test('listing.json with a bad label names the file and the clip', () => {
  const dir = smallCache();
  const file = path.join(dir, 'listing.json');
  edit(file, (j) => {
    j.clips[1].label = 'sad';
  });
  assert.match(
    refusal(() => mergeCache(dir)),
    new RegExp(`^${escaped(file)} .*clips\\.1\\.label`),
  );
});

test('index.json with an unknown split names the file and the clip', () => {
  const dir = smallCache();
  const file = path.join(dir, 'index.json');
  edit(file, (j) => {
    j.clips[0].split = 'dev';
  });
  assert.match(
    refusal(() => FeatureCache.open(dir)),
    new RegExp(`^${escaped(file)} .*clips\\.0\\.split`),
  );
});

test("a failed-<shard>.json without a clip's path names the file and the entry", () => {
  const dir = smallCache();
  const file = path.join(dir, 'failed-all.json');
  fs.writeFileSync(file, JSON.stringify([{ error: 'no video stream' }]));
  assert.match(
    refusal(() => mergeCache(dir)),
    new RegExp(`^${escaped(file)} .*0\\.path`),
  );
});

test("a part whose clip records are wrong names the part and the record's key", () => {
  const dir = smallCache();
  const part = path.join(dir, 'parts', 'all-00002.safetensors');
  saveSafetensors(part, new Map([['c/face_emb', zeros([T, 4])]]), { clips: JSON.stringify([{ key: 'c', label: -1 }]) });
  assert.match(
    refusal(() => mergeCache(dir)),
    new RegExp(`^${escaped(part)}: .*0\\.label`),
  );
});
