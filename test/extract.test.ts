// Data sets and the feature cache: tiny data sets in each layout (videos made here with ffmpeg,
// csv files in the real formats), extracted with the dev CLIP; a killed extraction resumed equals a
// clean one; two shards merged equal one run; bad manifest rows are reported and the rest extract;
// then `ous train` and `ous eval` on the cache.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { FeatureCache, mergeCache } from '../src/data/cache.js';
import { readDfew, readFerv39k, readManifest } from '../src/data/datasets.js';
import { FrameEncoder } from '../src/clip/frame-encoder.js';
import { readImage } from '../src/video/decode.js';
import { packageRoot } from '../src/util/paths.js';
import { assertClose, fixture, truncatedClip } from './helpers.js';

const cli = path.join(packageRoot(), 'dist', 'src', 'cli', 'main.js');
const clip = fixture('clip-dev', 'model');
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'ous-extract-'));
const at = (...p: string[]) => path.join(root, ...p);
const ffmpeg = (...args: string[]) => execFileSync('ffmpeg', ['-v', 'error', '-y', ...args]);
const colors = ['red', 'green', 'blue', 'yellow'];
function colourClip(file: string, colour: string): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  ffmpeg('-f', 'lavfi', '-i', `color=c=${colour}:size=64x48:rate=5`, '-t', '1', '-pix_fmt', 'yuv420p', file);
}
function ous(args: string[]): { status: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8' });
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}
const extractArgs = (manifest: string, out: string, ...more: string[]) => [
  'extract',
  '--views', // one view (the default is 5): these tests are not about augmentation
  '1',
  '--dataset',
  'manifest',
  '--manifest',
  manifest,
  '--clip',
  clip,
  '--out',
  out,
  '--frames',
  '2',
  '--json',
  ...more,
];
const lastJson = (s: string) => JSON.parse(s.trim().split('\n').pop()!);

// Features of every clip by key, as bytes, for exact comparisons between caches.
function featureBytes(dir: string): Map<string, string> {
  const c = FeatureCache.open(dir);
  const out = new Map<string, string>();
  c.records.forEach((r, i) => {
    const b = c.data.batch([i]);
    out.set(
      r.key,
      [b.face, b.scene, b.low].map((t) => Buffer.from(t.toTypedArray().buffer).toString('base64')).join('|'),
    );
  });
  return out;
}

// The manifest data set: four good clips, then a missing file, a corrupt video, an unknown label,
// a path leaving the root and a truncated video.
test.before(() => {
  for (const [_i, c] of colors.entries()) colourClip(at('videos', `${c}.mp4`), c);
  fs.writeFileSync(at('videos', 'corrupt.mp4'), 'not really a video');
  assert.deepEqual(truncatedClip(at('videos', 'cut.mp4')), { frames: 20, decodable: 9 });
  const rows = colors.map(
    (c, i) => `videos/${c}.mp4,${['happy', 'happy', 'sad', 'sad'][i]},${i < 2 ? 'train' : 'test'}`,
  );
  fs.writeFileSync(at('good.csv'), ['path,label,split', ...rows].join('\n') + '\n');
  fs.writeFileSync(
    at('bad.csv'),
    [
      'path,label,split',
      ...rows,
      'videos/missing.mp4,happy,train',
      'videos/corrupt.mp4,sad,train',
      'videos/red.mp4,grumpy,test',
      '../../../etc/passwd,sad,train',
      'videos/cut.mp4,happy,train',
    ].join('\n') + '\n',
  );
});

const badRowsTitle =
  'a manifest with a missing file, a corrupt video, an unknown label, ' +
  'an escaping path and a truncated video: the good clips extract, the bad are reported, exit 3';
test(badRowsTitle, () => {
  const r = ous(extractArgs(at('bad.csv'), at('cache-bad')));
  assert.equal(r.status, 3, r.stderr);
  const summary = lastJson(r.stdout);
  assert.equal(summary.done, 4);
  assert.equal(summary.cache, at('cache-bad'));
  const why =
    /.*(does not exist|not a readable video|unknown label|leaves the root|11 of 20 frames could not be decoded).*/s;
  assert.deepEqual(summary.failed.map((f: { error: string }) => f.error.replace(why, '$1')).sort(), [
    '11 of 20 frames could not be decoded',
    'does not exist',
    'leaves the root',
    'not a readable video',
    'unknown label',
  ]);
  assert.match(
    summary.failed.find((f: { error: string }) => /cut\.mp4/.test(f.error)).error,
    /--allow-missing-frames 11 accepts it/,
  );
  // The same failures are on disk, and the cache holds the four good clips only.
  assert.equal(JSON.parse(fs.readFileSync(at('cache-bad', 'index.json'), 'utf8')).failed.length, 5);
  const cache = FeatureCache.open(at('cache-bad'));
  assert.deepEqual(
    cache.records.map((r) => [path.basename(r.path), r.label, r.polarity, r.split]),
    [
      ['red.mp4', 0, 2, 'train'],
      ['green.mp4', 0, 2, 'train'],
      ['blue.mp4', 1, 0, 'test'],
      ['yellow.mp4', 1, 0, 'test'],
    ],
  );
  assert.ok(cache.records.every((r) => r.faceMissing && r.boxes.every((b) => b === null)));
  // The summary lists the clips with no face found (plain colours): counted, not hidden in the cache.
  assert.deepEqual(summary.noFace.map((p: string) => path.basename(p)).sort(), [
    'blue.mp4',
    'green.mp4',
    'red.mp4',
    'yellow.mp4',
  ]);
  const b = cache.data.batch([0, 1]);
  assert.deepEqual(
    [b.face.shape, b.scene.shape, b.low.shape],
    [
      [2, 2, 32],
      [2, 2, 32],
      [2, 2, 128],
    ],
  );
  assert.equal(cache.info.clip.hash.length, 64);
  assert.equal(fs.readdirSync(at('cache-bad', 'parts')).filter((f) => f.includes('.tmp')).length, 0);
});

test('killing an extraction midway and running it again gives the same cache as one clean run', async () => {
  const clean = ous(extractArgs(at('good.csv'), at('cache-clean')));
  assert.equal(clean.status, 0, clean.stderr);
  // Twelve clips (the four and two copies of each): the pipeline prepares clips ahead of the one it
  // encodes, so a few parts land together; the kill must still come with most of the list undone.
  const copies = colors.flatMap((c, i) =>
    [1, 2].map((k) => {
      fs.copyFileSync(at('videos', `${c}.mp4`), at('videos', `${c}-${k}.mp4`));
      return `videos/${c}-${k}.mp4,${['happy', 'happy', 'sad', 'sad'][i]},${i < 2 ? 'train' : 'test'}`;
    }),
  );
  fs.writeFileSync(at('twelve.csv'), fs.readFileSync(at('good.csv'), 'utf8') + copies.join('\n') + '\n');
  const N = 12;
  const clean12 = ous(extractArgs(at('twelve.csv'), at('cache-clean12')));
  assert.equal(clean12.status, 0, clean12.stderr);
  const child = spawn(
    process.execPath,
    [cli, ...extractArgs(at('twelve.csv'), at('cache-killed'), '--part-size', '1')],
    { stdio: 'ignore' },
  );
  const parts = at('cache-killed', 'parts');
  await new Promise<void>((resolve, reject) => {
    const timer = setInterval(() => {
      if (fs.existsSync(parts) && fs.readdirSync(parts).some((f) => f.endsWith('.safetensors'))) {
        clearInterval(timer);
        child.kill('SIGKILL');
        resolve();
      }
    }, 20);
    child.on('exit', () => (clearInterval(timer), reject(new Error('the extraction ended before it could be killed'))));
  });
  await new Promise((r) => child.on('exit', r));
  const before = fs.readdirSync(parts).filter((f) => f.endsWith('.safetensors')).length;
  assert.ok(before >= 1 && before < N, `${before} parts before the kill`);
  // Parts without an index are not a cache to train on; the dead run's lock is taken over.
  assert.throws(() => FeatureCache.open(at('cache-killed')), /has parts but no index\.json.*ous extract --merge/);
  const again = ous(extractArgs(at('twelve.csv'), at('cache-killed'), '--part-size', '1'));
  assert.match(again.stderr, /took over the lock of a dead extraction \(pid \d+/);
  const resumed = lastJson(again.stdout);
  assert.equal(resumed.skipped, before);
  assert.equal(resumed.done, N - before);
  assert.deepEqual(featureBytes(at('cache-killed')), featureBytes(at('cache-clean12')));
});

const interruptTitle =
  'Ctrl-C (SIGINT) on ous extract keeps every finished clip, releases its lock and says what it kept; ' +
  'the same command then extracts only the rest';
test(interruptTitle, async () => {
  // The twelve clips of the test above (made there; the same rows again if it did not run).
  if (!fs.existsSync(at('cache-clean12'))) return assert.fail('run with the test above (it makes the clean cache)');
  const out = at('cache-interrupted');
  // The default part size (32): without the flush on the signal every finished clip would be lost.
  const child = spawn(process.execPath, [cli, ...extractArgs(at('twelve.csv'), out)], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  let sent = false;
  child.stderr!.on('data', (d) => {
    stderr += d;
    // The first progress line comes once a clip is finished; one Ctrl-C (a second would kill outright).
    if (!sent && /extract [1-9]\d*\/12 clips/.test(stderr)) (sent = true), child.kill('SIGINT');
  });
  const code = await new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
  assert.equal(code, 130, stderr);
  const said =
    /interrupted \(SIGINT\): (\S+) keeps the (\d+) clip\(s\) extracted so far; run the same ous extract/.exec(stderr);
  assert.ok(said, stderr);
  assert.equal(said[1], out);
  const kept = Number(said[2]);
  const parts = fs.readdirSync(path.join(out, 'parts')).filter((f) => f.endsWith('.safetensors'));
  assert.ok(kept >= 1 && kept < 12, `${kept} kept`);
  assert.deepEqual(
    fs.readdirSync(out).filter((f) => f.startsWith('lock-')),
    [],
    'the lock is released',
  );
  assert.ok(parts.length >= 1);
  const again = ous(extractArgs(at('twelve.csv'), out));
  assert.equal(again.status, 0, again.stderr);
  assert.doesNotMatch(again.stderr, /took over the lock/);
  const resumed = lastJson(again.stdout);
  assert.deepEqual([resumed.skipped, resumed.done], [kept, 12 - kept], 'every finished clip was kept');
  assert.deepEqual(featureBytes(out), featureBytes(at('cache-clean12')));
});

test('two shards merged equal one unsharded run; a missing shard is refused, or listed with --allow-partial', () => {
  const cache = at('cache-sharded');
  assert.equal(ous(extractArgs(at('good.csv'), cache, '--shard', '1/2')).status, 0);
  assert.throws(() => FeatureCache.open(cache), /has parts but no index\.json.*ous extract --merge/);
  // Shard 2/2 (clips 2 and 4 of the list: green, yellow) has not run.
  assert.throws(
    () => mergeCache(cache),
    /clips of shard 2\/2 \(2 clips, e\.g\. videos\/green\.mp4\) are in no part.*--allow-partial/,
  );
  const partial = ous(['extract', '--merge', '--allow-partial', '--out', cache, '--json']);
  assert.equal(partial.status, 3, partial.stderr);
  assert.deepEqual(lastJson(partial.stdout).missing, ['videos/green.mp4', 'videos/yellow.mp4']);
  assert.deepEqual(
    FeatureCache.open(cache).records.map((r) => r.key),
    ['videos/red.mp4', 'videos/blue.mp4'],
  );
  assert.equal(ous(extractArgs(at('good.csv'), cache, '--shard', '2/2')).status, 0);
  assert.throws(
    () => FeatureCache.open(cache),
    /parts that index\.json does not list \(parts\/s2of2-00001\.safetensors\).*ous extract --merge/,
  );
  const m = ous(['extract', '--merge', '--out', cache, '--json']);
  assert.equal(m.status, 0, m.stderr);
  const merged = lastJson(m.stdout);
  assert.equal(merged.done, 4);
  assert.deepEqual(featureBytes(at('cache-sharded')), featureBytes(at('cache-clean')));
  // Reusing a cache with other options is an error, not a silent mix.
  const other = ous(extractArgs(at('good.csv'), at('cache-clean')).map((a) => (a === '2' ? '3' : a)));
  assert.equal(other.status, 1);
  assert.match(other.stderr, /was made with other options: frames \(cache: 2, now: 3\)/);
});

const currentListingTitle =
  'labels and splits come from the current listing: ' +
  'relabelled clips keep their features, a dropped clip leaves the index';
test(currentListingTitle, () => {
  const cache = at('cache-relabel');
  fs.cpSync(at('cache-clean'), cache, { recursive: true });
  const parts = () =>
    new Map(
      fs
        .readdirSync(path.join(cache, 'parts'))
        .map((f) => [f, fs.readFileSync(path.join(cache, 'parts', f)).toString('base64')]),
    );
  const partsBefore = parts();
  const features = featureBytes(cache);
  // red: happy -> angry; green: train -> test; yellow: dropped.
  fs.writeFileSync(
    at('relabel.csv'),
    'path,label,split\nvideos/red.mp4,angry,train\nvideos/green.mp4,happy,test\nvideos/blue.mp4,sad,test\n',
  );
  const r = ous(extractArgs(at('relabel.csv'), cache));
  assert.equal(r.status, 0, r.stderr);
  const summary = lastJson(r.stdout);
  assert.deepEqual([summary.done, summary.skipped, summary.updated, summary.unlisted], [0, 3, 2, 1]);
  const c = FeatureCache.open(cache);
  assert.deepEqual(
    c.records.map((x) => [x.key, x.label, x.polarity, x.split]),
    [
      ['videos/red.mp4', 3, 0, 'train'],
      ['videos/green.mp4', 0, 2, 'test'],
      ['videos/blue.mp4', 1, 0, 'test'],
    ],
  );
  assert.deepEqual(c.data.labels, [3, 0, 1]);
  assert.deepEqual(c.indices('train'), [0]);
  // Nothing was recomputed: the parts are byte for byte the same, and so are the features read.
  assert.deepEqual(parts(), partsBefore);
  const after = featureBytes(cache);
  for (const [k, v] of after) assert.equal(v, features.get(k), k);
  // The text output says so.
  const text = ous(extractArgs(at('good.csv'), cache).filter((a) => a !== '--json'));
  assert.match(text.stdout, /extracted 0 clips, skipped 4 already cached, updated labels of 2 clips, 0 failed/);
  assert.equal(FeatureCache.open(cache).records.length, 4);
});

const manifestPathsTitle =
  'manifest paths: the same clip twice (./, symlink) is an error naming both rows; ' +
  'a relative path may not leave --root; a header-only manifest creates nothing';
test(manifestPathsTitle, () => {
  fs.symlinkSync(at('videos', 'red.mp4'), at('link.mp4'));
  fs.writeFileSync(
    at('twice.csv'),
    'path,label\nvideos/red.mp4,happy\nvideos/blue.mp4,sad\n' +
      `./videos/red.mp4,sad\nlink.mp4,angry\n${at('videos', 'blue.mp4')},sad\n`,
  );
  assert.throws(
    () => readManifest(at('twice.csv')),
    (err: Error) => {
      const csv = at('twice.csv');
      assert.match(err.message, /the same clip is listed more than once: 3 problem\(s\)/);
      for (const [a, b] of [
        [2, 4],
        [2, 5],
        [3, 6],
      ])
        assert.ok(
          err.message.includes(`${csv}:${a} and ${csv}:${b} are the same clip`),
          `rows ${a} and ${b}: ${err.message}`,
        );
      return true;
    },
  );
  // Relative paths resolve under --root and may not leave it; absolute paths are allowed.
  fs.mkdirSync(at('inner'));
  fs.writeFileSync(
    at('inner', 'escape.csv'),
    `path,label\n../videos/red.mp4,happy\n${at('videos', 'blue.mp4')},sad\nsub/../../videos/green.mp4,sad\n`,
  );
  const m = readManifest(at('inner', 'escape.csv'));
  assert.deepEqual(
    m.entries.map((e) => e.id),
    [at('videos', 'blue.mp4')],
  );
  assert.deepEqual(
    m.failed.map((f) => f.error.replace(/^.*:(\d+): .*leaves the root.*$/, '$1')),
    ['2', '4'],
  );
  // With --root, the same folder's paths resolve under it; ids are normalised paths under the root.
  fs.writeFileSync(
    at('inner', 'rooted.csv'),
    `path,label\nvideos/red.mp4,happy\ninner/../videos/green.mp4,sad\n${at('videos', 'blue.mp4')},sad\n`,
  );
  const rooted = readManifest(at('inner', 'rooted.csv'), root);
  assert.deepEqual(
    [rooted.entries.map((e) => e.id), rooted.failed],
    [['videos/red.mp4', 'videos/green.mp4', 'videos/blue.mp4'], []],
  );
  fs.writeFileSync(at('header-only.csv'), 'path,label,split\n');
  const r = ous(extractArgs(at('header-only.csv'), at('cache-header-only')));
  assert.equal(r.status, 1);
  assert.match(r.stderr, /^ous: .*header-only\.csv: no clips \(only the header line\)/);
  assert.equal(fs.existsSync(at('cache-header-only')), false);
});

const extractLockTitle =
  'a lock: a second extraction into the cache stops, or waits with --wait; train refuses a cache being written';
test(extractLockTitle, async () => {
  const cache = at('cache-lock');
  fs.mkdirSync(cache);
  fs.writeFileSync(at('one.csv'), 'path,label,split\nvideos/red.mp4,happy,train\n');
  // This test process holds the lock, as a running extraction would.
  const lock = path.join(cache, 'lock-all');
  fs.writeFileSync(lock, JSON.stringify({ pid: process.pid, host: os.hostname(), since: 'now' }));
  const second = ous(extractArgs(at('one.csv'), cache));
  assert.equal(second.status, 1);
  assert.match(second.stderr, new RegExp(`being written by another ous extract \\(pid ${process.pid} on `));
  assert.equal(fs.existsSync(path.join(cache, 'parts')), false);
  const waiting = spawn(process.execPath, [cli, ...extractArgs(at('one.csv'), cache, '--wait')], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  let stdout = '';
  waiting.stdout.on('data', (d) => (stdout += d));
  await new Promise<void>((resolve, reject) => {
    waiting.stderr.on('data', (d) => {
      stderr += d;
      if (/waiting for/.test(stderr)) resolve();
    });
    waiting.on('exit', () => reject(new Error(`exited without waiting: ${stderr}`)));
  });
  assert.equal(fs.existsSync(path.join(cache, 'parts')), false);
  fs.rmSync(lock);
  const code = await new Promise((r) => waiting.on('exit', r));
  assert.equal(code, 0, stderr);
  assert.equal(lastJson(stdout).done, 1);
  assert.equal(fs.existsSync(lock), false);
  // While an extraction runs, the cache is not read.
  fs.writeFileSync(lock, JSON.stringify({ pid: process.pid, host: os.hostname(), since: 'now' }));
  assert.throws(() => FeatureCache.open(cache), /an extraction is still writing it \(pid \d+/);
  fs.rmSync(lock);
  // A part copied under another name: the same clip twice is refused, with the fix.
  const [part] = fs.readdirSync(path.join(cache, 'parts'));
  fs.copyFileSync(path.join(cache, 'parts', part!), path.join(cache, 'parts', 'all-09999.safetensors'));
  assert.throws(
    () => FeatureCache.open(cache),
    /parts that index\.json does not list \(parts\/all-09999\.safetensors\).*ous extract --merge/,
  );
  assert.throws(
    () => mergeCache(cache),
    /clip videos\/red\.mp4 is in both all-00001\.safetensors and all-09999\.safetensors/,
  );
});

test('a truncated video extracts with --allow-missing-frames N, its count of undecoded frames at most N', () => {
  fs.writeFileSync(at('cut.csv'), 'path,label,split\nvideos/cut.mp4,happy,train\n');
  const strict = ous(extractArgs(at('cut.csv'), at('cache-cut'), '--allow-missing-frames', '10'));
  assert.equal(strict.status, 3);
  assert.match(lastJson(strict.stdout).failed[0].error, /cut\.mp4: 11 of 20 frames could not be decoded/);
  // The failed run left a cache without parts: it takes the options of the next run (T = 3), not an error.
  const r = ous(
    extractArgs(at('cut.csv'), at('cache-cut'), '--allow-missing-frames', '11').map((a) => (a === '2' ? '3' : a)),
  );
  assert.equal(r.status, 0, r.stderr);
  assert.equal(FeatureCache.open(at('cache-cut')).info.frames, 3);
  assert.deepEqual([lastJson(r.stdout).done, lastJson(r.stdout).failed], [1, []]);
  assert.equal(FeatureCache.open(at('cache-cut')).records.length, 1);
  const usage = ous(extractArgs(at('cut.csv'), at('cache-cut'), '--allow-missing-frames', 'some'));
  assert.equal(usage.status, 2);
  assert.match(usage.stderr, /^ous: extract: --allow-missing-frames must be an integer >= 0, not 'some'\n$/);
});

test('usage errors of ous extract exit 2 with one line naming the flag; a folder as manifest exits 1', () => {
  const base = extractArgs(at('good.csv'), at('cache-usage'));
  const cases: Array<[string[], number, RegExp]> = [
    [[...base, '--frames', '0'], 2, /--frames must be an integer from 1 to 256 \(MAX_FRAMES\), not '0'/],
    [[...base, '--frames', '1e9'], 2, /--frames must be an integer from 1 to 256 \(MAX_FRAMES\), not '1e9'/],
    [[...base, '--frames', '0x10'], 2, /--frames must be an integer from 1 to 256 \(MAX_FRAMES\), not '0x10'/],
    [[...base, '--shard', '3/2'], 2, /--shard must be I\/N with 1 ≤ I ≤ N, not '3\/2'/],
    [
      ['extract', '--dataset', 'dfew', '--root', root, '--fold', '6', '--clip', clip, '--out', at('cache-usage')],
      2,
      /--fold must be 1\.\.5/,
    ],
    [
      ['extract', '--dataset', 'affwild', '--clip', clip, '--out', at('cache-usage')],
      2,
      /--dataset must be dfew, ferv39k,? (mafw )?or manifest, not 'affwild'/,
    ],
    [['extract', '--dataset', 'manifest', '--manifest', at('good.csv'), '--clip', clip], 2, /--out CACHE is required/],
    [[...base, '--bogus'], 2, /bogus/],
    [extractArgs(root, at('cache-usage')), 1, /is a folder, not a list of clips/],
  ];
  for (const [args, code, why] of cases) {
    const r = ous(args);
    assert.equal(r.status, code, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, why);
    assert.match(r.stderr, /^ous[ :][^\n]*\n$/, `one line: ${r.stderr}`);
  }
  assert.equal(fs.existsSync(at('cache-usage')), false);
});

const layoutsTitle =
  'DFEW and FERV39k layouts: readers check everything first; DFEW face crops are used; frame folders extract';
test(layoutsTitle, async () => {
  const dfew = at('DFEW');
  const split = (s: string) => path.join(dfew, 'EmoLabel_DataSplit', `${s}(single-labeled)`);
  fs.mkdirSync(split('train'), { recursive: true });
  fs.mkdirSync(split('test'), { recursive: true });
  fs.writeFileSync(path.join(split('train'), 'set_1.csv'), 'video_name,label\n1,1\n2,2\n');
  fs.writeFileSync(path.join(split('test'), 'set_1.csv'), 'video_name,label\n3,7\n');
  for (const [id, c] of [
    ['00001', 'red'],
    ['00002', 'green'],
    ['00003', 'blue'],
  ])
    colourClip(path.join(dfew, 'Clip', 'original', `${id}.mp4`), c);
  // Clip 00001's shipped face crops: three different images, none a crop of its red video.
  const faces = path.join(dfew, 'Clip', 'clip_224x224', '00001');
  fs.mkdirSync(faces, { recursive: true });
  for (const [i, pattern] of ['testsrc', 'smptebars', 'rgbtestsrc'].entries())
    ffmpeg('-f', 'lavfi', '-i', `${pattern}=size=40x32:rate=5`, '-frames:v', '1', path.join(faces, `${i + 1}.png`));
  const entries = readDfew(dfew, 1);
  assert.deepEqual(
    entries.map((e) => [e.id, e.label, e.split, Boolean(e.faceFrames)]),
    [
      ['00001', 0, 'train', true],
      ['00002', 1, 'train', false],
      ['00003', 6, 'test', false],
    ],
  );
  fs.writeFileSync(path.join(split('test'), 'set_2.csv'), 'video_name,label\n9,3\n4,9\n');
  fs.writeFileSync(path.join(split('train'), 'set_2.csv'), 'video_name,label\n1,1\n');
  assert.throws(() => readDfew(dfew, 2), /2 problem\(s\):\n.*00009\.mp4 is missing\n.*label '9' is not 1\.\.7/);
  // One video in both splits (written 1 and 01): the same clip twice.
  fs.writeFileSync(path.join(split('train'), 'set_3.csv'), 'video_name,label\n1,1\n');
  fs.writeFileSync(path.join(split('test'), 'set_3.csv'), 'video_name,label\n01,2\n');
  assert.throws(
    () => readDfew(dfew, 3),
    /1 problem\(s\):\n {2}video 00001 \(train\) and video 00001 \(test\) are the same clip/,
  );
  const r = ous([
    'extract',
    '--views',
    '1',
    '--dataset',
    'dfew',
    '--root',
    dfew,
    '--fold',
    '1',
    '--clip',
    clip,
    '--out',
    at('cache-dfew'),
    '--frames',
    '2',
    '--json',
  ]);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(lastJson(r.stdout).done, 3);
  const c = FeatureCache.open(at('cache-dfew'));
  assert.deepEqual(
    c.records.map((x) => x.label),
    [0, 1, 6],
  );
  // Clip 00001's face features are the encoder applied to its crops 1 and 3 (T = 2 of 3 frames:
  // indices ⌊3/4⌋ = 0 and ⌊3/4 + 3/2⌋ = 2, SPEC.md's sampling), stored as float16.
  // (libtorch's tower, against the cache written by the default engine: onnxruntime where installed)
  const encoder = FrameEncoder.load(clip, { engine: 'libtorch' });
  const crops = await Promise.all(['1.png', '3.png'].map((f) => readImage(path.join(faces, f))));
  const want = (await encoder.encode(crops)).emb.toFlatArray();
  assertClose(c.data.batch([0]).face.toFlatArray(), want, { atol: 2e-3, rtol: 2e-3, what: 'face_emb of 00001' });

  const ferv = at('FERV39k');
  fs.mkdirSync(path.join(ferv, '4_setups', 'All_scenes'), { recursive: true });
  for (const [dir, c2] of [
    ['0_Daily/Happy/0001', 'orange'],
    ['1_Crime/Fear/0002', 'purple'],
  ]) {
    fs.mkdirSync(path.join(ferv, dir), { recursive: true });
    ffmpeg('-f', 'lavfi', '-i', `color=c=${c2}:size=64x48:rate=5`, '-frames:v', '4', path.join(ferv, dir, '%d.jpg'));
    // the same tree of square face crops, as FERV39k's face-crop folders hold them
    fs.mkdirSync(path.join(ferv + '-crops', dir), { recursive: true });
    ffmpeg(
      '-f',
      'lavfi',
      '-i',
      `color=c=${c2}:size=48x48:rate=5`,
      '-frames:v',
      '2',
      path.join(ferv + '-crops', dir, '%d.jpg'),
    );
  }
  fs.writeFileSync(path.join(ferv, '4_setups', 'All_scenes', 'train_All.csv'), '0_Daily/Happy/0001 Happy\n');
  fs.writeFileSync(path.join(ferv, '4_setups', 'All_scenes', 'test_All.csv'), '1_Crime/Fear/0002 Fear\n');
  assert.deepEqual(
    readFerv39k(ferv).map((e) => [e.label, e.split]),
    [
      [0, 'train'],
      [6, 'test'],
    ],
  );
  // A face-crop tree cannot give the scene stream: refused in one line, by its frames or by its folder's name.
  fs.cpSync(path.join(ferv, '4_setups'), path.join(ferv + '-crops', '4_setups'), { recursive: true });
  const cropped = ous([
    'extract',
    '--views',
    '1',
    '--dataset',
    'ferv39k',
    '--root',
    ferv + '-crops',
    '--clip',
    clip,
    '--out',
    at('cx'),
  ]);
  assert.equal(cropped.status, 1);
  assert.match(
    cropped.stderr,
    /^ous: FERV39k at .*-crops: the clips listed are face crops \(their frames are square, 48x48\)/,
  );
  assert.match(
    cropped.stderr,
    /the scene stream cannot be built .* point --root at the folder of the full video frames/,
  );
  assert.equal(cropped.stderr.trim().split('\n').length, 1);
  fs.cpSync(ferv, at('f', '2_ClipsforFaceCrop'), { recursive: true });
  assert.throws(() => readFerv39k(at('f', '2_ClipsforFaceCrop')), /their path has the folder '2_ClipsforFaceCrop'/);
  const f = ous([
    'extract',
    '--views',
    '1',
    '--dataset',
    'ferv39k',
    '--root',
    ferv,
    '--clip',
    clip,
    '--out',
    at('cache-ferv'),
    '--frames',
    '2',
    '--json',
  ]);
  assert.equal(f.status, 0, f.stderr);
  assert.equal(lastJson(f.stdout).done, 2);
});

test('ous train and ous eval on a cache: a run folder, metrics in [0, 1], a confusion matrix', () => {
  const run = at('run');
  const t = ous([
    'train',
    '--cache',
    at('cache-clean'),
    '--out',
    run,
    '--set',
    'epochs=2',
    '--set',
    'tfeLayers=1',
    '--set',
    'promptLength=4',
    '--set',
    'valFraction=0.5',
  ]);
  assert.equal(t.status, 0, t.stderr);
  for (const f of ['config.json', 'checkpoint.safetensors', 'last.safetensors', 'metrics.jsonl', 'train.log'])
    assert.ok(fs.existsSync(path.join(run, f)), f);
  const e = lastJson(ous(['eval', '--run', run, '--json']).stdout);
  assert.equal(e.n, 2);
  assert.ok(e.uar >= 0 && e.uar <= 1 && e.war >= 0 && e.war <= 1);
  assert.deepEqual(Object.keys(e.perClassRecall), [
    'happiness',
    'sadness',
    'neutral',
    'anger',
    'surprise',
    'disgust',
    'fear',
  ]);
  assert.equal(
    e.confusion.flat().reduce((a: number, b: number) => a + b, 0),
    2,
  );
  const bad = ous(['train', '--cache', at('cache-clean'), '--out', at('run2'), '--set', 'tfeLayer=3']);
  assert.equal(bad.status, 2); // a usage error
  assert.match(bad.stderr, /unknown key 'tfeLayer'/);
});

test('ous ablate --table VI runs the grid and writes it beside the paper', () => {
  const out = at('ablate');
  const r = ous([
    'ablate',
    '--table',
    'VI',
    '--cache',
    at('cache-clean'),
    '--out',
    out,
    '--set',
    'epochs=1',
    '--set',
    'tfeLayers=1',
    '--set',
    'valFraction=0.5',
  ]);
  assert.equal(r.status, 0, r.stderr);
  const table = fs.readFileSync(path.join(out, 'table-VI.md'), 'utf8');
  const rows = table.split('\n').filter((l) => l.startsWith('| length'));
  assert.equal(rows.length, 3);
  assert.match(
    rows[2]!,
    /^\| length 64 \| M 64, TFE 1, L_global, tfe, ≤1 epochs \| \d+\.\d\d \| \d+\.\d\d \| 1 \| 60\.94 \| 74\.10 \| - \|/,
  );
  assert.equal(JSON.parse(fs.readFileSync(path.join(out, 'length_64', 'config.json'), 'utf8')).ous.promptLength, 64);
});
