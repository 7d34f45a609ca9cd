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
import { FeatureCache } from '../src/data/cache.js';
import { readDfew, readFerv39k } from '../src/data/datasets.js';
import { packageRoot } from '../src/util/paths.js';
import { fixture } from './helpers.js';

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
const extractArgs = (manifest: string, out: string, ...more: string[]) => ['extract', '--dataset', 'manifest', '--manifest', manifest, '--clip', clip, '--out', out, '--frames', '2', '--json', ...more];
const lastJson = (s: string) => JSON.parse(s.trim().split('\n').pop()!);

// Features of every clip by key, as bytes, for exact comparisons between caches.
function featureBytes(dir: string): Map<string, string> {
  const c = FeatureCache.open(dir);
  const out = new Map<string, string>();
  c.records.forEach((r, i) => {
    const b = c.data.batch([i]);
    out.set(r.key, [b.face, b.scene, b.low].map((t) => Buffer.from(t.toTypedArray().buffer).toString('base64')).join('|'));
  });
  return out;
}

// The manifest data set: four good clips, then a missing file, a corrupt video and an unknown label.
test.before(() => {
  for (const [i, c] of colors.entries()) colourClip(at('videos', `${c}.mp4`), c);
  fs.writeFileSync(at('videos', 'corrupt.mp4'), 'not really a video');
  const rows = colors.map((c, i) => `videos/${c}.mp4,${['happy', 'happy', 'sad', 'sad'][i]},${i < 2 ? 'train' : 'test'}`);
  fs.writeFileSync(at('good.csv'), ['path,label,split', ...rows].join('\n') + '\n');
  fs.writeFileSync(at('bad.csv'), ['path,label,split', ...rows, 'videos/missing.mp4,happy,train', 'videos/corrupt.mp4,sad,train', 'videos/red.mp4,grumpy,test'].join('\n') + '\n');
});

test('a manifest with a missing file, a corrupt video and an unknown label: the good clips extract, the three bad are reported', () => {
  const r = ous(extractArgs(at('bad.csv'), at('cache-bad')));
  assert.equal(r.status, 0, r.stderr);
  const summary = lastJson(r.stdout);
  assert.equal(summary.done, 4);
  assert.equal(summary.cache, at('cache-bad'));
  assert.deepEqual(summary.failed.map((f: { error: string }) => f.error.replace(/.*(does not exist|not a readable video|unknown label).*/s, '$1')).sort(), ['does not exist', 'not a readable video', 'unknown label']);
  const cache = FeatureCache.open(at('cache-bad'));
  assert.deepEqual(cache.records.map((r) => [path.basename(r.path), r.label, r.polarity, r.split]), [
    ['red.mp4', 0, 2, 'train'], ['green.mp4', 0, 2, 'train'], ['blue.mp4', 1, 0, 'test'], ['yellow.mp4', 1, 0, 'test'],
  ]);
  assert.ok(cache.records.every((r) => r.faceMissing && r.boxes.every((b) => b === null)));
  const b = cache.data.batch([0, 1]);
  assert.deepEqual([b.face.shape, b.scene.shape, b.low.shape], [[2, 2, 32], [2, 2, 32], [2, 2, 128]]);
  assert.equal(cache.info.clip.hash.length, 64);
  assert.equal(fs.readdirSync(at('cache-bad', 'parts')).filter((f) => f.includes('.tmp')).length, 0);
});

test('killing an extraction midway and running it again gives the same cache as one clean run', async () => {
  const clean = ous(extractArgs(at('good.csv'), at('cache-clean')));
  assert.equal(clean.status, 0, clean.stderr);
  const child = spawn(process.execPath, [cli, ...extractArgs(at('good.csv'), at('cache-killed'), '--part-size', '1')], { stdio: 'ignore' });
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
  assert.ok(before >= 1 && before < 4, `${before} parts before the kill`);
  const resumed = lastJson(ous(extractArgs(at('good.csv'), at('cache-killed'), '--part-size', '1')).stdout);
  assert.equal(resumed.skipped, before);
  assert.equal(resumed.done, 4 - before);
  assert.deepEqual(featureBytes(at('cache-killed')), featureBytes(at('cache-clean')));
});

test('two shards merged equal one unsharded run', () => {
  for (const s of ['1/2', '2/2']) assert.equal(ous(extractArgs(at('good.csv'), at('cache-sharded'), '--shard', s)).status, 0);
  const merged = lastJson(ous(['extract', '--merge', '--out', at('cache-sharded'), '--json']).stdout);
  assert.equal(merged.done, 4);
  assert.deepEqual(featureBytes(at('cache-sharded')), featureBytes(at('cache-clean')));
  // Reusing a cache with other options is an error, not a silent mix.
  const other = ous(extractArgs(at('good.csv'), at('cache-clean')).map((a) => (a === '2' ? '3' : a)));
  assert.equal(other.status, 1);
  assert.match(other.stderr, /was made with other options: frames \(cache: 2, now: 3\)/);
});

test('DFEW and FERV39k layouts: readers check everything first; DFEW face crops are used; frame folders extract', () => {
  const dfew = at('DFEW');
  const split = (s: string) => path.join(dfew, 'EmoLabel_DataSplit', `${s}(single-labeled)`);
  fs.mkdirSync(split('train'), { recursive: true });
  fs.mkdirSync(split('test'), { recursive: true });
  fs.writeFileSync(path.join(split('train'), 'set_1.csv'), 'video_name,label\n1,1\n2,2\n');
  fs.writeFileSync(path.join(split('test'), 'set_1.csv'), 'video_name,label\n3,7\n');
  for (const [id, c] of [['00001', 'red'], ['00002', 'green'], ['00003', 'blue']]) colourClip(path.join(dfew, 'Clip', 'original', `${id}.mp4`), c);
  const faces = path.join(dfew, 'Clip', 'clip_224x224', '00001');
  fs.mkdirSync(faces, { recursive: true });
  ffmpeg('-f', 'lavfi', '-i', 'color=c=white:size=32x32:rate=5', '-frames:v', '3', path.join(faces, '%d.jpg'));
  const entries = readDfew(dfew, 1);
  assert.deepEqual(entries.map((e) => [e.id, e.label, e.split, Boolean(e.faceFrames)]), [['00001', 0, 'train', true], ['00002', 1, 'train', false], ['00003', 6, 'test', false]]);
  fs.writeFileSync(path.join(split('test'), 'set_2.csv'), 'video_name,label\n9,3\n4,9\n');
  fs.writeFileSync(path.join(split('train'), 'set_2.csv'), 'video_name,label\n1,1\n');
  assert.throws(() => readDfew(dfew, 2), /2 problem\(s\):\n.*00009\.mp4 is missing\n.*label '9' is not 1\.\.7/);
  const r = ous(['extract', '--dataset', 'dfew', '--root', dfew, '--fold', '1', '--clip', clip, '--out', at('cache-dfew'), '--frames', '2', '--json']);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(lastJson(r.stdout).done, 3);
  const c = FeatureCache.open(at('cache-dfew'));
  assert.deepEqual(c.records.map((x) => x.label), [0, 1, 6]);
  // The white face crops of clip 00001 were encoded, not a crop of the red video.
  const redFace = c.data.batch([0]).face;
  const greenFace = c.data.batch([1]).face;
  assert.notDeepEqual(redFace.toFlatArray(), greenFace.toFlatArray());

  const ferv = at('FERV39k');
  fs.mkdirSync(path.join(ferv, '4_setups', 'All_scenes'), { recursive: true });
  for (const [dir, c2] of [['0_Daily/Happy/0001', 'orange'], ['1_Crime/Fear/0002', 'purple']]) {
    fs.mkdirSync(path.join(ferv, dir), { recursive: true });
    ffmpeg('-f', 'lavfi', '-i', `color=c=${c2}:size=48x48:rate=5`, '-frames:v', '4', path.join(ferv, dir, '%d.jpg'));
  }
  fs.writeFileSync(path.join(ferv, '4_setups', 'All_scenes', 'train_All.csv'), '0_Daily/Happy/0001 Happy\n');
  fs.writeFileSync(path.join(ferv, '4_setups', 'All_scenes', 'test_All.csv'), '1_Crime/Fear/0002 Fear\n');
  assert.deepEqual(readFerv39k(ferv).map((e) => [e.label, e.split]), [[0, 'train'], [6, 'test']]);
  const f = ous(['extract', '--dataset', 'ferv39k', '--root', ferv, '--clip', clip, '--out', at('cache-ferv'), '--frames', '2', '--json']);
  assert.equal(f.status, 0, f.stderr);
  assert.equal(lastJson(f.stdout).done, 2);
});

test('ous train and ous eval on a cache: a run folder, metrics in [0, 1], a confusion matrix', () => {
  const run = at('run');
  const t = ous(['train', '--cache', at('cache-clean'), '--out', run, '--set', 'epochs=2', '--set', 'tfeLayers=1', '--set', 'promptLength=4', '--set', 'valFraction=0.5']);
  assert.equal(t.status, 0, t.stderr);
  for (const f of ['config.json', 'checkpoint.safetensors', 'last.safetensors', 'metrics.jsonl', 'train.log']) assert.ok(fs.existsSync(path.join(run, f)), f);
  const e = lastJson(ous(['eval', '--run', run, '--json']).stdout);
  assert.equal(e.n, 2);
  assert.ok(e.uar >= 0 && e.uar <= 1 && e.war >= 0 && e.war <= 1);
  assert.deepEqual(Object.keys(e.perClassRecall), ['happiness', 'sadness', 'neutral', 'anger', 'surprise', 'disgust', 'fear']);
  assert.equal(e.confusion.flat().reduce((a: number, b: number) => a + b, 0), 2);
  const bad = ous(['train', '--cache', at('cache-clean'), '--out', at('run2'), '--set', 'tfeLayer=3']);
  assert.equal(bad.status, 2); // a usage error
  assert.match(bad.stderr, /unknown key 'tfeLayer'/);
});

test('ous ablate --table VI runs the grid and writes it beside the paper', () => {
  const out = at('ablate');
  const r = ous(['ablate', '--table', 'VI', '--cache', at('cache-clean'), '--out', out, '--set', 'epochs=1', '--set', 'tfeLayers=1', '--set', 'valFraction=0.5']);
  assert.equal(r.status, 0, r.stderr);
  const table = fs.readFileSync(path.join(out, 'table-VI.md'), 'utf8');
  const rows = table.split('\n').filter((l) => l.startsWith('| length'));
  assert.equal(rows.length, 3);
  assert.match(rows[2]!, /^\| length 64 \| \d+\.\d\d \| \d+\.\d\d \| 1 \| 60\.94 \| 74\.10 \| - \|$/);
  assert.equal(JSON.parse(fs.readFileSync(path.join(out, 'length_64', 'config.json'), 'utf8')).ous.promptLength, 64);
});

