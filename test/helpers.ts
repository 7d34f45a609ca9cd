// Shared by the tests: where the fixtures are, and small numeric comparisons with useful messages.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as assert from 'node:assert/strict';
import { packageRoot } from '../src/util/paths.js';
import { loadClip } from '../src/clip/load.js';
import type { FrozenTextTower } from '../src/ous/prompt.js';
import { CacheWriter, mergeCache, writeListing, type CacheInfo, type ListedClip } from '../src/data/cache.js';
import { hashCheckpoint } from '../src/clip/frame-encoder.js';
import { cacheRecipe } from '../src/data/extract.js';
import sharp from 'sharp';
import {
  loadSafetensors,
  manualSeed,
  randn,
  readSafetensorsHeader,
  saveSafetensors,
  tensor,
  type Tensor,
} from '../src/torch/index.js';
import { trainedSettings } from '../src/runs/folder.js';

/** Runs `ous ARGS` (the built CLI) in `cwd`, with OUS_DEBUG off unless `env` sets it: its exit code and output. */
export function runCli(
  args: string[],
  cwd: string,
  env: Record<string, string> = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [path.join(packageRoot(), 'dist', 'src', 'cli', 'main.js'), ...args], {
      cwd,
      env: { ...process.env, OUS_DEBUG: '', ...env },
    });
    let [stdout, stderr] = ['', ''];
    p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    p.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/**
 * `src` copied to `out` with a display matrix that turns it 90° clockwise, as a phone records upright
 * video: ffmpeg ≥ 6 sets one with -display_rotation (counter-clockwise degrees) and drops the rotate
 * tag; ffmpeg 5.1 knows only the tag.
 */
export function rotatedCopy(src: string, out: string): string {
  const run = (args: string[]) => spawnSync('ffmpeg', ['-v', 'error', '-y', ...args], { encoding: 'utf8' });
  let r = run(['-display_rotation', '-90', '-i', src, '-c', 'copy', out]);
  if (r.status !== 0) r = run(['-i', src, '-c', 'copy', '-metadata:s:v:0', 'rotate=90', out]);
  assert.equal(r.status, 0, r.stderr);
  return out;
}

/** The talking-face clip beside its mirror image (720×288, 6 s: two persons), written to `out`. */
export function mirroredPair(out: string): string {
  const r = spawnSync(
    'ffmpeg',
    [
      '-v',
      'error',
      '-y',
      '-i',
      fixture('media', 'franck_0-6s.mp4'),
      '-filter_complex',
      '[0:v]split[a][b];[b]hflip[m];[a][m]hstack',
      '-c:v',
      'libx264',
      '-pix_fmt',
      'yuv420p',
      out,
    ],
    { encoding: 'utf8' },
  );
  assert.equal(r.status, 0, r.stderr);
  return out;
}

/**
 * A 20-frame video of independent frames (every frame a keyframe; the index at the front, as a phone
 * or a web download writes it) cut where frame 9's packet starts (packet positions from ffprobe):
 * frames 0..8 decode, 11 do not. Writes `file` (and `file`.whole.mp4, the uncut video).
 */
export function truncatedClip(file: string): { frames: number; decodable: number } {
  execFileSync('ffmpeg', [
    '-v',
    'error',
    '-y',
    '-f',
    'lavfi',
    '-i',
    'testsrc=size=64x48:rate=10',
    '-t',
    '2',
    '-pix_fmt',
    'yuv420p',
    '-g',
    '1',
    '-movflags',
    '+faststart',
    `${file}.whole.mp4`,
  ]);
  const pos = execFileSync(
    'ffprobe',
    ['-v', 'error', '-select_streams', 'v:0', '-show_entries', 'packet=pos', '-of', 'csv=p=0', `${file}.whole.mp4`],
    { encoding: 'utf8' },
  )
    .trim()
    .split('\n')
    .map(Number);
  fs.writeFileSync(file, fs.readFileSync(`${file}.whole.mp4`).subarray(0, pos[9]));
  return { frames: pos.length, decodable: 9 };
}

export function fixture(...parts: string[]): string {
  return path.join(packageRoot(), 'fixtures', ...parts);
}

/** Asserts |a - b| <= atol + rtol·|b| elementwise, naming the worst element when it fails. */
export function assertClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  opts: { atol?: number; rtol?: number; what?: string } = {},
): void {
  const { atol = 1e-6, rtol = 0, what = 'values' } = opts;
  assert.equal(actual.length, expected.length, `${what}: length ${actual.length} != ${expected.length}`);
  let worst = -1;
  let worstExcess = 0;
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i]!;
    const b = expected[i]!;
    const excess = Math.abs(a - b) - (atol + rtol * Math.abs(b));
    if (!(excess <= 0) && (worst < 0 || !(excess <= worstExcess))) {
      worst = i;
      worstExcess = excess;
    }
  }
  if (worst >= 0) {
    assert.fail(
      `${what}: element ${worst} is ${actual[worst]}, expected ${expected[worst]} (atol ${atol}, rtol ${rtol})`,
    );
  }
}

/**
 * The dev CLIP's frozen text tower, with OpenAI's token ids of the CoOp prompts (golden.json)
 * standing in for the tokenizer, so prompt-learning tests do not depend on it.
 */
export function goldenTextTower(): FrozenTextTower {
  const golden = JSON.parse(fs.readFileSync(fixture('clip-dev', 'golden.json'), 'utf8'));
  const clip = loadClip(fixture('clip-dev', 'model'));
  const idsOf = new Map<string, { ids: number[]; eotIndex: number }>(
    golden.coop.prompts.map((p: string, i: number) => [
      p,
      { ids: golden.coop.token_ids[i], eotIndex: golden.coop.eot_index[i] },
    ]),
  );
  idsOf.set('X', { ids: [49406, 343, 49407], eotIndex: 2 });
  return {
    tokenize: (t) => idsOf.get(t) ?? assert.fail(`no golden ids for '${t}'`),
    embedTokens: (ids) => clip.text_model.embedTokens(ids),
    encode: (e, eot) => clip.encodeTextEmbeddings(e, eot).textEmbeds,
    width: clip.config.text_config.hidden_size,
  };
}

/**
 * A run's checkpoint made to record `record` (default: the run's config.json as it is now) as the
 * settings it was trained with: a run edited by a test as if it had been trained so.
 */
export function recordTrainedConfig(runDir: string, record?: (settings: Record<string, unknown>) => void): void {
  const ckpt = path.join(runDir, 'checkpoint.safetensors');
  const config = JSON.parse(fs.readFileSync(path.join(runDir, 'config.json'), 'utf8')) as Record<string, unknown>;
  const settings = trainedSettings(config);
  record?.(settings);
  const sd = loadSafetensors(ckpt);
  const metadata = { ...readSafetensorsHeader(ckpt).metadata, trainedConfig: JSON.stringify(settings) };
  saveSafetensors(ckpt, sd, metadata);
  for (const t of sd.values()) t.dispose();
}

/**
 * A small feature cache made without encoding anything: random features of the dev CLIP's widths
 * (E 32, W 128), `perClass` training and 1 test clip per class. For command-line tests.
 */
export function tinyCache(
  dir: string,
  opts: { classNames?: string[]; perClass?: number; frames?: number; seed?: number } = {},
): string {
  const classNames = opts.classNames ?? ['happy', 'sad', 'neutral', 'angry', 'surprise', 'disgust', 'fear'];
  const T = opts.frames ?? 2;
  const info: CacheInfo = {
    version: 1,
    clip: { path: fixture('clip-dev', 'model'), hash: hashCheckpoint(fixture('clip-dev', 'model')) },
    frames: T,
    scene: 'mask',
    views: 1,
    polarityLayer: 2,
    dataset: 'manifest',
    classNames,
    polarityOfClass: classNames.map((_, c) => c % 3),
    dims: { frames: T, embed: 32, visionWidth: 128 },
  };
  info.recipe = cacheRecipe(info, [], 224); // as extraction records it (a current cache, not an older one)
  manualSeed(opts.seed ?? 0);
  const w = new CacheWriter(dir, info, 'all', 64);
  let n = 0;
  const listed: ListedClip[] = [];
  for (const split of ['train', 'test'] as const) {
    for (let k = 0; k < (split === 'train' ? (opts.perClass ?? 4) : 1); k++) {
      classNames.forEach((_, c) => {
        const key = `clip${n++}`;
        const record = { key, path: `${key}.mp4`, label: c, polarity: c % 3, split, view: 0 };
        w.add(
          { ...record, faceMissing: false, boxes: Array.from({ length: T }, () => [0, 0, 8, 8]) },
          { face: randn([T, 32]), scene: randn([T, 32]), low: randn([T, 128]) },
        );
        listed.push({ ...record, shard: '1/1' });
      });
    }
  }
  w.flush();
  // As an extraction leaves it: the listing, then the index merged from it.
  writeListing(dir, { version: 1, shards: 1, clips: listed, rejected: [] });
  mergeCache(dir);
  return dir;
}

// OpenAI's normalisation of an already resized and cropped R×R PNG, computed here by hand so
// that tests of the model do not depend on the image processor (tested on its own). file: an R×R PNG.
const MEAN = [0.48145466, 0.4578275, 0.40821073];
const STD = [0.26862954, 0.26130258, 0.27577711];
export async function goldenPixels(file: string): Promise<Tensor> {
  const { data, info } = await sharp(file).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  const R = info.width;
  const chw = new Float32Array(3 * R * R);
  for (let c = 0; c < 3; c++) {
    for (let i = 0; i < R * R; i++)
      chw[c * R * R + i] = (Math.fround(data[i * info.channels + c]! / 255) - MEAN[c]!) / STD[c]!;
  }
  return tensor(chw, { shape: [1, 3, R, R] });
}
