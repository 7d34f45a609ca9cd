// Bad inputs through the real command line (node dist/src/cli/main.js): each gives its exit code
// (2 usage, 1 the rest), exactly one line on stderr that names the flag, file or key, and never
// "internal error" or a stack. docs/BAD-INPUTS.md lists the same table for people.
import { before, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { packageRoot } from '../src/util/paths.js';
import { trainRun } from '../src/train/run.js';
import { parseSets } from '../src/cli/sets.js';
import { fixture, runCli, tinyCache } from './helpers.js';
import { frameTiming } from '../src/video/decode.js';

const cli = path.join(packageRoot(), 'dist', 'src', 'cli', 'main.js');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ous-cli-errors-'));
const at = (...p: string[]) => path.join(dir, ...p);
const video = fixture('media', 'franck_0-6s.mp4');
const small = ['--set', 'tfeLayers=1', '--set', 'promptLength=2', '--set', 'heads=2', '--set', 'epochs=1'];

const run = (args: string[], env: Record<string, string> = {}) => runCli(args, dir, env);

/** A model folder like the dev CLIP's, with one file replaced. */
function clipWith(name: string, file: string, content: Buffer | string): string {
  const d = at(name);
  fs.cpSync(fixture('clip-dev', 'model'), d, { recursive: true });
  fs.writeFileSync(path.join(d, file), content);
  return d;
}

before(async () => {
  tinyCache(at('c7'));
  tinyCache(at('c3'), { classNames: ['neg', 'neu', 'pos'] });
  const opts = { overrides: parseSets(small.filter((s) => s !== '--set')), log: () => {} };
  await trainRun({ cache: at('c7'), out: at('r7'), ...opts });
  await trainRun({
    cache: at('c3'),
    out: at('r3'),
    ...opts,
    overrides: {
      ous: { ...opts.overrides.ous, classNames: ['neg', 'neu', 'pos'], polarityOfClass: [0, 1, 2] },
      train: opts.overrides.train,
    },
  });
  fs.writeFileSync(at('afile'), 'x');
  fs.writeFileSync(at('bad-json.json'), '{');
  fs.writeFileSync(at('bad-key.json'), '{"nope": 1}');
  fs.writeFileSync(at('bad-type.json'), '{"ous": {"heads": "x"}}');
  fs.cpSync(at('r7'), at('r-newer'), { recursive: true });
  const conf = JSON.parse(fs.readFileSync(at('r7', 'config.json'), 'utf8'));
  fs.writeFileSync(at('r-newer', 'config.json'), JSON.stringify({ ...conf, version: 9 }));
  fs.cpSync(at('c7'), at('c-bad'), { recursive: true });
  const info = JSON.parse(fs.readFileSync(at('c7', 'cache.json'), 'utf8'));
  fs.writeFileSync(at('c-bad', 'cache.json'), JSON.stringify({ ...info, frames: 'x' }));
  clipWith('clip-prep', 'preprocessor_config.json', '{"crop_size": "big"}');
  const weights = fs.readFileSync(fixture('clip-dev', 'model', 'model.safetensors'));
  const n = Number(weights.readBigUInt64LE(0));
  clipWith('clip-st-empty', 'model.safetensors', Buffer.alloc(0));
  clipWith(
    'clip-st-header',
    'model.safetensors',
    Buffer.concat([Buffer.from([16, 0, 0, 0, 0, 0, 0, 0]), Buffer.from('{not json}xxxxxx')]),
  );
  clipWith('clip-st-huge', 'model.safetensors', Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]));
  clipWith('clip-st-trunc', 'model.safetensors', weights.subarray(0, 8 + n + 100));
  // Issue 24: runs and models one can trust.
  const flipped = Buffer.from(weights);
  flipped[8 + n + 5]! ^= 1; // the same widths, other weights
  clipWith('clip-other', 'model.safetensors', flipped);
  const nan = Buffer.from(weights);
  nan.fill(0xff, 8 + n); // every float32 weight NaN
  clipWith('clip-nan', 'model.safetensors', nan);
  clipWith('clip-vocab', 'vocab.json', '["a", "b"]');
  const foreign = Buffer.from(
    JSON.stringify({
      'foo.weight': { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
      'bar.bias': { dtype: 'F32', shape: [2], data_offsets: [8, 16] },
    }),
  );
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(foreign.length));
  clipWith('clip-notclip', 'model.safetensors', Buffer.concat([len, foreign, Buffer.alloc(16)]));
  const editRun = (name: string, edit: (c: Record<string, any>) => void) => {
    fs.cpSync(at('r7'), at(name), { recursive: true });
    const c = JSON.parse(fs.readFileSync(at(name, 'config.json'), 'utf8'));
    edit(c);
    fs.writeFileSync(at(name, 'config.json'), JSON.stringify(c));
  };
  editRun('r-nock', () => {});
  fs.rmSync(at('r-nock', 'checkpoint.safetensors'));
  editRun('r-nolast', () => {});
  fs.rmSync(at('r-nolast', 'last.safetensors'));
  editRun('r-cls', (c) => Object.assign(c.ous, { classNames: ['a', 'b', 'c'], polarityOfClass: [0, 1, 2] }));
  editRun('r-blur', (c) => (c.recipe.scene = 'blur'));
  editRun('r-types', (c) => (c.dims.embed = '32'));
  editRun('r-moved', (c) => (c.cache = at('gone')));
  await trainRun({
    cache: at('c7'),
    out: at('r-tfe2'),
    ...opts,
    overrides: { ...opts.overrides, ous: { ...opts.overrides.ous, tfeLayers: 2 } },
  });
  editRun('r-other', () => {});
  fs.copyFileSync(at('r-tfe2', 'checkpoint.safetensors'), at('r-other', 'checkpoint.safetensors'));
  editRun('r-other-last', () => {});
  fs.copyFileSync(at('r-tfe2', 'last.safetensors'), at('r-other-last', 'last.safetensors'));
  const editCache = (name: string, edit: (c: Record<string, any>) => void) => {
    fs.cpSync(at('c7'), at(name), { recursive: true });
    const c = JSON.parse(fs.readFileSync(at(name, 'cache.json'), 'utf8'));
    edit(c);
    fs.writeFileSync(at(name, 'cache.json'), JSON.stringify(c));
  };
  editCache('c-dup', (c) => (c.classNames = c.classNames.map(() => 'happiness')));
  editCache('c-frames', (c) => Object.assign(c, { frames: 4, dims: { ...c.dims, frames: 4 } }));
  tinyCache(at('c1'), { perClass: 1 });
  tinyCache(at('c0'), { perClass: 0 });
  assert.equal(spawnSync('mkfifo', [at('fifo.json')]).status, 0);
  fs.symlinkSync('loop-b', at('loop-a'));
  fs.symlinkSync('loop-a', at('loop-b'));
  // A run folder held by a live process (this one): a second trainer is refused.
  fs.mkdirSync(at('r-locked'));
  fs.writeFileSync(
    at('r-locked', 'lock'),
    JSON.stringify({ pid: process.pid, host: os.hostname(), since: new Date().toISOString() }),
  );
  fs.writeFileSync(at('dup-header.csv'), `path,path,label\n${video},${video},happy\n`);
  fs.writeFileSync(at('one.csv'), `path,label\n${video},happy\n`);
  // Issue 37: inputs that are not videos, said as what they are.
  assert.equal(spawnSync('mkfifo', [at('fifo.mp4')]).status, 0);
  fs.symlinkSync('loop-d.mp4', at('loop-c.mp4'));
  fs.symlinkSync('loop-c.mp4', at('loop-d.mp4'));
});

const extractTo = (manifest: string, ...more: string[]) => [
  'extract',
  '--views', // one view (the default is 5): these tests are not about augmentation
  '1',
  '--dataset',
  'manifest',
  '--manifest',
  manifest,
  '--clip',
  fixture('clip-dev', 'model'),
  '--out',
  'cx',
  ...more,
];

// [args, exit code, what the line must name, environment]
const cases: Array<[string[], number, string, Record<string, string>?]> = [
  ...['demo', 'clip embed', 'faces', 'streams', 'extract', 'train', 'eval', 'predict', 'report', 'ablate'].map(
    (c): [string[], number, string] => [[...c.split(' '), '--bogus'], 2, `ous ${c}: unknown option '--bogus'`],
  ),
  [['clip'], 2, 'clip embed'],
  [['nosuch'], 2, "'nosuch'"],
  [['train', '--cache', 'c7', '--out', 'rx', '--set', 'epochs=abc'], 2, 'epochs=abc'],
  [['train', '--cache', 'c7', '--out', 'rx', '--set', 'epochs=0'], 2, 'epochs=0'],
  [['train', '--cache', 'c7', '--out', 'rx', '--set', 'lr=-0.1'], 2, 'lr=-0.1'],
  [['train', '--cache', 'c7', '--out', 'rx', '--set', 'promptLength=abc'], 2, 'promptLength=abc'],
  [['train', '--cache', 'c7', '--out', 'rx', '--set', 'heads=abc'], 2, 'heads=abc'],
  [['train', '--cache', 'c7', '--out', 'rx', '--set', 'nokey=1'], 2, "'nokey'"],
  [['train', '--cache', 'c7', '--out', 'rx', '--set', 'heads=3'], 1, 'heads = 3 does not divide'],
  [['train', '--cache', 'c7', '--out', 'rx', '--seed', 'abc'], 2, '--seed'],
  [
    ['train', '--cache', 'c7', '--out', 'rx', '--seed', '-1'],
    2,
    "--seed must be an integer from 0 to 4294967295 (seeds are 32-bit), not '-1'",
  ],
  [['train', '--cache', 'c7', '--out', 'rx', '--config', 'missing.json'], 1, 'missing.json'],
  [['train', '--cache', 'c7', '--out', 'rx', '--config', 'bad-json.json'], 1, 'bad-json.json is not valid JSON'],
  [['train', '--cache', 'c7', '--out', 'rx', '--config', 'bad-key.json'], 1, "'nope'"],
  [['train', '--cache', 'c7', '--out', 'rx', '--config', 'bad-type.json'], 1, 'heads'],
  [['train', '--cache', 'c7', '--out', 'rx', '--config', 'c7'], 1, 'c7'],
  [
    ['train', '--cache', 'c7', '--out', 'rx', '--set', 'classNames=["a","b","c"]', '--set', 'polarityOfClass=[0,1,2]'],
    1,
    'classNames comes from the cache',
  ],
  [['train', '--cache', 'c7', '--out', 'afile'], 1, '--out afile is a file'],
  [['train', '--cache', 'c7', '--out', 'r7', ...small], 1, 'r7 already holds a run'],
  [['train', '--cache', 'c3', '--out', 'r7', '--resume', ...small], 1, 'cache (run:'],
  [['train', '--cache', 'c7', '--out', 'r7', '--resume', '--force'], 2, '--force'],
  [['train', '--cache', 'c-bad', '--out', 'rx'], 1, 'cache.json is not a valid feature cache description: frames'],
  [['train', '--cache', 'c7', '--out', 'r-lr', ...small, '--set', 'lr=1e308'], 1, 'no checkpoint'],
  [['eval', '--run', 'r-newer'], 1, 'config.json: run config version 9'],
  [['eval', '--run', 'nowhere'], 1, 'nowhere is not a run folder'],
  [['eval', '--run', 'r7', '--split', 'x'], 2, '--split'],
  [['clip', 'embed', '--model', 'clip-prep', '--text', 'a'], 1, 'preprocessor_config.json'],
  [
    ['clip', 'embed', '--model', 'clip-st-empty', '--text', 'a'],
    1,
    'model.safetensors: not a valid safetensors file: the file has 0 bytes',
  ],
  [
    ['clip', 'embed', '--model', 'clip-st-header', '--text', 'a'],
    1,
    'model.safetensors: not a valid safetensors file: the header is not JSON',
  ],
  [
    ['clip', 'embed', '--model', 'clip-st-huge', '--text', 'a'],
    1,
    'model.safetensors: not a valid safetensors file: header length',
  ],
  [
    ['clip', 'embed', '--model', 'clip-st-trunc', '--text', 'a'],
    1,
    'model.safetensors: not a valid safetensors file: tensor',
  ],
  [['faces', video, '--frames', 'abc'], 2, '--frames'],
  [['faces', video, '--frames', '0'], 2, '--frames'],
  [['faces', video, '--min-confidence', '5'], 2, '--min-confidence'],
  [['faces', video, '--min-confidence', 'abc'], 2, '--min-confidence'],
  [['report', 'r7', '--out', 'afile'], 1, '--out afile is a file'],
  [['report', 'r7', 'r3', '--out', 'rep'], 1, 'classes'],
  [['report', 'r7', 'r7', '--out', 'rep', '--name', 'x', '--name', 'x'], 1, "share the name 'x'"],
  [['predict', video, '--run', 'r7', '--box', '10 10 0 5'], 2, '--box'],
  [['predict', video, '--run', 'r7', '--box', '5000 10 50 50'], 2, 'outside the 360×288 frame'],
  [['predict', video, '--run', 'r7', '--box', 'abc'], 2, '--box'],
  [['demo', '--seed', 'abc'], 2, '--seed'],
  [['demo', '--agreement', '2'], 2, '--agreement'],
  [['demo', '--seeds', '0'], 2, '--seeds must be an integer >= 1'],
  [['eval', '--seeds', '--folds', 'a', 'b'], 2, '--folds and --seeds'],
  [['ablate', '--table', 'IX'], 2, '--table'],
  // Issue 24: the CLIP must be the cache's; resume needs both files;
  // the run folder is checked, locked, and its checkpoint must fit.
  [
    ['train', '--cache', 'c7', '--out', 'rx', '--clip', 'clip-other', ...small],
    1,
    '--clip clip-other: its weights (sha256 ',
  ],
  [
    ['train', '--cache', 'c7', '--out', 'rx', '--clip', 'clip-other', ...small],
    1,
    'are not the ones c7 was extracted with',
  ],
  [['train', '--cache', 'c7', '--out', 'r-nock', '--resume'], 1, 'r-nock/checkpoint.safetensors is missing'],
  [['train', '--cache', 'c7', '--out', 'r-nolast', '--resume'], 1, 'r-nolast/last.safetensors is missing'],
  [
    ['train', '--cache', 'c7', '--out', 'r-locked', ...small],
    1,
    `r-locked is being trained by another ous train (pid ${process.pid} on`,
  ],
  [['train', '--cache', 'c7', '--out', 'r-other-last', '--resume'], 1, 'r-other-last/last.safetensors does not fit'],
  [['train', '--cache', 'c-dup', '--out', 'rx', ...small], 1, "classNames: names the class 'happiness' more than once"],
  [['train', '--cache', 'c-frames', '--out', 'rx', ...small], 1, 'c-frames/cache.json does not describe its features'],
  [
    ['train', '--cache', 'c1', '--out', 'rx', ...small],
    1,
    'one training clip of happy, sad, neutral, angry, surprise, disgust, fear',
  ],
  [['train', '--cache', 'c0', '--out', 'rx', ...small], 1, 'no training clips of happy'],
  [['train', '--cache', 'c0', '--out', 'rx', ...small], 1, 'all 7 clips are in the test split'],
  [
    ['train', '--cache', 'c7', '--out', 'rx', ...small, '--set', 'frames=8'],
    1,
    'frames comes from the cache (c7 has 2 frames per clip), not 8',
  ],
  [['eval', '--run', 'r-nock'], 1, 'r-nock has no checkpoint.safetensors'],
  [['eval', '--run', 'r-cls'], 1, 'are not the classes the run was trained on'],
  [['predict', video, '--run', 'r-cls'], 1, 'are not the classes the run was trained on'],
  [
    ['predict', video, '--run', 'r-blur'],
    1,
    "recipe.scene: Invalid enum value. Expected 'mask' | 'full', received 'blur'",
  ],
  [
    ['eval', '--run', 'r-types'],
    1,
    'r-types/config.json is not a valid run config: dims.embed: Expected number, received string',
  ],
  // another run's checkpoint: its recorded settings name what differs (ous.tfeLayers)
  [['eval', '--run', 'r-other'], 1, 'r-other/config.json is not the config r-other/checkpoint.safetensors was'],
  [['predict', video, '--run', 'r-other'], 1, '(ous.tfeLayers differ): was config.json edited, or the checkpoint'],
  [['eval', '--run', 'r-moved'], 1, 'which is not there: pass --cache DIR'],
  [['eval', '--run', 'r7', '--clip', 'clip-other'], 1, 'are not the ones r7 was trained on'],
  [
    ['eval', '--run', 'r7', '--cache', 'c3'],
    1,
    '--cache c3 is not the cache r7 was trained on: classNames (run: happy,',
  ],
  [['eval', '--folds', 'r7', 'r7'], 2, 'eval --folds: r7 is the same run as r7'],
  [['eval', '--folds', 'r7', './r7'], 2, './r7 is the same run as r7'],
  [['report', 'r7', '--out', 'rep', '--clip', 'clip-other'], 1, 'are not the ones r7 was trained on'],
  [
    ['report', 'r7', 'r3', '--out', 'rep', '--cache', 'c7', '--cache', 'c3', '--cache', 'c3'],
    2,
    'give --cache once (for every run) or once per run (2), not 3 times',
  ],
  // File-system causes: a FIFO, a symlink loop (existsSync says "missing" for both).
  [
    ['train', '--cache', 'c7', '--out', 'rx', '--config', 'fifo.json'],
    1,
    'fifo.json: it is a FIFO (named pipe), not a regular file',
  ],
  [['train', '--cache', 'loop-a', '--out', 'rx'], 1, 'loop-a: a loop of symbolic links'],
  [['eval', '--run', 'loop-a'], 1, 'loop-a: a loop of symbolic links'],
  [['clip', 'embed', '--model', 'loop-a', '--text', 'a'], 1, 'loop-a: a loop of symbolic links'],
  // Numbers at the edge: 32-bit seeds, plain decimals, a named frame maximum, threads within reason.
  [
    ['train', '--cache', 'c7', '--out', 'rx', '--seed', '4294967297'],
    2,
    "--seed must be an integer from 0 to 4294967295 (seeds are 32-bit), not '4294967297'",
  ],
  [
    ['train', '--cache', 'c7', '--out', 'rx', '--seed', '0x10'],
    2,
    "--seed must be an integer from 0 to 4294967295 (seeds are 32-bit), not '0x10'",
  ],
  [['train', '--cache', 'c7', '--out', 'rx', '--set', 'seed=4294967296'], 2, 'seed=4294967296'],
  [
    ['train', '--cache', 'c7', '--out', 'rx', '--set', 'epochs=1e3'],
    2,
    "--set epochs=1e3: epochs takes a whole number in plain digits, not '1e3'",
  ],
  [['train', '--cache', 'c7', '--out', 'rx', '--set', 'seed=0x10'], 2, 'seed=0x10'],
  [['demo', '--seed', '4294967296'], 2, '--seed must be an integer from 0 to 4294967295'],
  [
    ['ablate', '--table', 'VI', '--cache', 'c7', '--out', 'ax', '--seed', '1e3'],
    2,
    "--seed must be an integer from 0 to 4294967295 (seeds are 32-bit), not '1e3'",
  ],
  [extractTo('m.csv', '--frames', '1e9'), 2, "--frames must be an integer from 1 to 256 (MAX_FRAMES), not '1e9'"],
  [extractTo('m.csv', '--frames', '0x10'), 2, "--frames must be an integer from 1 to 256 (MAX_FRAMES), not '0x10'"],
  [['faces', video, '--frames', '100000'], 2, "--frames must be an integer from 1 to 256 (MAX_FRAMES), not '100000'"],
  [
    ['streams', video, '--out', 'sx', '--frames', '1e9'],
    2,
    "streams: --frames must be an integer from 1 to 256 (MAX_FRAMES), not '1e9'",
  ],
  [['faces', video, '--min-confidence', '0x1'], 2, '--min-confidence'],
  [['predict', video, '--run', 'r7', '--box', '0 0 1e9 1e9'], 2, '--box must be "x y w h"'],
  [['predict', video, '--run', 'r7', '--box', '0x10 0 20 20'], 2, '--box must be "x y w h"'],
  [['predict', video, '--run', 'r7', '--box', '0 0 1000 1000'], 2, 'is larger than 2× the 360×288 frame'],
  ...['0', '-1', 'abc', '1e2', '100000'].map((v): [string[], number, string, Record<string, string>] => [
    ['info'],
    1,
    `OUS_NUM_THREADS must be a whole number from 1 to ${4 * os.availableParallelism()} ` +
      `(four times this machine's logical cores), not '${v}'`,
    { OUS_NUM_THREADS: v },
  ]),
  // A CLIP folder of the wrong kind, a manifest header naming a column twice.
  [
    ['clip', 'embed', '--model', 'clip-vocab', '--text', 'a'],
    1,
    'clip-vocab/vocab.json is not a CLIP vocabulary: expected an object of token -> id, not an array',
  ],
  [
    ['clip', 'embed', '--model', 'clip-notclip', '--text', 'a'],
    1,
    "clip-notclip: not a CLIP checkpoint: none of its 2 tensors is one of CLIP's",
  ],
  [extractTo('dup-header.csv'), 1, "dup-header.csv: the header names the column 'path' twice (path,path,label)"],
  // Issue 37: the right reason, one line up front.
  [['faces', 'loop-c.mp4'], 1, 'cannot read loop-c.mp4: a loop of symbolic links'],
  [['predict', 'loop-c.mp4', '--run', 'r7'], 1, 'cannot read loop-c.mp4: a loop of symbolic links'],
  [['faces', '/dev/zero'], 1, '/dev/zero: it is a device, not a video or image file'],
  [['streams', 'fifo.mp4', '--out', 'sx'], 1, 'fifo.mp4: it is a FIFO (named pipe), not a video or image file'],
  [
    ['predict', video, '--run', 'r7', '--window', '1e6'],
    2,
    "--window takes seconds in plain decimals (like 600 or 0.5), not exponent notation '1e6'",
  ],
  [['predict', video, '--run', 'r7', '--device', 'tpu'], 2, "--device must be cpu, cuda or cuda:N, not 'tpu'"],
  [
    extractTo('one.csv', '--polarity-layer', '99'),
    2,
    '--polarity-layer 99 is past the last block of the CLIP vision tower',
  ],
];

test('bad inputs: one line on stderr naming the flag, file or key, the right exit code, no stack', async () => {
  const failures: string[] = [];
  let next = 0;
  const worker = async () => {
    while (next < cases.length) {
      const k = next++;
      const [given, code, names, env] = cases[k]!;
      // Each case its own --out: two trainers into one folder at once are refused by its lock.
      const args = given.map((a) => (a === 'rx' ? `rx${k}` : a));
      const r = await run(args, env);
      // train.log lines of a run that ran
      // (epoch progress "epoch 1/2 ..." only: a diverging loss's "epoch 1, step 2: ..." is said once, as the error)
      const lines = r.stderr.split('\n').filter((l) => l.trim() && !/^epoch \d+\/|^stopped:/.test(l));
      const why = [
        r.code !== code && `exit ${r.code}, expected ${code}`,
        lines.length !== 1 && `${lines.length} lines on stderr`,
        /internal error|\n\s+at /.test(r.stderr) && 'a stack trace',
        !r.stderr.includes(names) && `does not name '${names}'`,
      ].filter(Boolean);
      if (why.length)
        failures.push(
          `${
            env
              ? `${Object.entries(env)
                  .map(([k, v]) => `${k}=${v}`)
                  .join(' ')} `
              : ''
          }ous ${args.join(' ')}: ${why.join(', ')}\n    ${r.stderr.trim().split('\n').join('\n    ')}`,
        );
    }
  };
  await Promise.all([worker(), worker()]); // two processes at a time
  assert.equal(failures.length, 0, failures.join('\n'));
  // Refused before anything is made: no run folder for the mismatched classes or the bad heads.
  assert.deepEqual(
    fs.readdirSync(dir).filter((f) => /^rx\d+$/.test(f)),
    [],
    'a refused train left its --out folder behind',
  );
  // A fresh run that failed before its first epoch leaves nothing behind to block the retry.
  assert.equal(fs.existsSync(at('r-lr')), false, 'the diverged run left its folder behind');
  // Refused resumes and a refused second trainer touched nothing.
  assert.deepEqual(fs.readdirSync(at('r-locked')), ['lock']);
  assert.equal(fs.existsSync(at('r-nolast', 'checkpoint.safetensors')), true);
});

test('OUS_DEBUG=1 adds the stack; ous clip --help lists the subcommands', async () => {
  const plain = await run(['faces', video, '--frames', '0']);
  const debug = await new Promise<string>((resolve) => {
    const p = spawn(process.execPath, [cli, 'faces', video, '--frames', '0'], {
      env: { ...process.env, OUS_DEBUG: '1' },
    });
    let e = '';
    p.stderr.on('data', (d: Buffer) => (e += d.toString()));
    p.on('close', () => resolve(e));
  });
  assert.ok(debug.startsWith(plain.stderr) && /\n\s+at /.test(debug), debug);
  const help = await run(['clip', '--help']);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /ous clip embed --model DIR/);
});

test('--box "-10 -10 20 20" parses (a face partly outside the frame) and predicts', async () => {
  const r = await run(['predict', video, '--run', 'r7', '--box', '-10 -10 20 20', '--json']);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(JSON.parse(r.stdout).emotion);
});

const ousEngineTitle =
  'OUS_ENGINE: an unknown value, or onnxruntime where it cannot run, is one line and exit 1; libtorch predicts';
test(ousEngineTitle, async () => {
  for (const [env, want] of [
    [{ OUS_ENGINE: 'onnx' }, "OUS_ENGINE must be auto, libtorch or onnxruntime, not 'onnx'"],
    [
      { OUS_ENGINE: 'onnxruntime', OUS_ALLOW_SLOW_BF16: '1' },
      "OUS_ENGINE=onnxruntime runs CLIP's vision tower in fp32 on the CPU only, not bf16 on cpu",
    ],
  ] as const) {
    const r = await run(
      ['predict', video, '--run', 'r7', ...(env.OUS_ENGINE === 'onnxruntime' ? ['--precision', 'bf16'] : [])],
      env,
    );
    assert.equal(r.code, 1, r.stderr);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.ok(r.stderr.includes(want), r.stderr);
  }
  const r = await run(['predict', video, '--run', 'r7', '--json'], { OUS_ENGINE: 'libtorch' });
  assert.equal(r.code, 0, r.stderr);
  assert.ok(JSON.parse(r.stdout).emotion);
});

test('a demo stopped by SIGTERM exits 143 and leaves no *.mp4.tmp-PID.mp4 behind', async () => {
  const out = at('demo');
  const videos = path.join(out, 'benchmark', 'videos');
  const p = spawn(process.execPath, [cli, 'demo', '--quick', '--out', out], { stdio: 'ignore' });
  const exited = new Promise<number | null>((resolve) => p.on('close', (code) => resolve(code)));
  const temps = () => (fs.existsSync(videos) ? fs.readdirSync(videos).filter((f) => f.includes('.tmp-')) : []);
  for (let i = 0; i < 1200 && !temps().length; i++) await new Promise((r) => setTimeout(r, 50));
  assert.ok(temps().length, 'the demo was writing a video');
  p.kill('SIGTERM');
  assert.equal(await exited, 128 + 15);
  await new Promise((r) => setTimeout(r, 500)); // ffmpeg children are killed, not left writing
  assert.deepEqual(temps(), []);
});

const trainLockTitle =
  'two `ous train --out R` at once: the second is refused naming the first pid; ' +
  'a lock left by a killed trainer is taken over';
test(trainLockTitle, async () => {
  const args = (epochs: number) => [
    'train',
    '--cache',
    'c7',
    '--out',
    'r-twice',
    ...small.map((a) => (a === 'epochs=1' ? `epochs=${epochs}` : a)),
  ];
  const first = spawn(process.execPath, [cli, ...args(40)], { cwd: dir, stdio: 'ignore' });
  const exited = new Promise<number | null>((resolve) => first.on('close', (code) => resolve(code)));
  for (let i = 0; i < 400 && !fs.existsSync(at('r-twice', 'lock')); i++) await new Promise((r) => setTimeout(r, 25));
  const second = await run([...args(1), '--seed', '5']);
  assert.equal(second.code, 1, second.stderr);
  assert.match(
    second.stderr,
    new RegExp(`^ous: r-twice is being trained by another ous train \\(pid ${first.pid} on `),
  );
  assert.equal(await exited, 0);
  // One run's metrics: epochs 1..n once each, in order; the lock is gone.
  const epochs = fs
    .readFileSync(at('r-twice', 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l).epoch);
  assert.deepEqual(
    epochs,
    epochs.map((_, i) => i + 1),
  );
  assert.equal(JSON.parse(fs.readFileSync(at('r-twice', 'config.json'), 'utf8')).train.seed, 0);
  assert.equal(fs.existsSync(at('r-twice', 'lock')), false);

  // A dead process's lock (a pid that has exited) is taken over, and said so.
  const dead = spawnSync(process.execPath, ['-e', '']).pid!;
  fs.mkdirSync(at('r-stale'));
  fs.writeFileSync(
    at('r-stale', 'lock'),
    JSON.stringify({ pid: dead, host: os.hostname(), since: '2026-01-01T00:00:00Z' }),
  );
  const r = await run(['train', '--cache', 'c7', '--out', 'r-stale', ...small]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, new RegExp(`r-stale: took over the lock of a dead ous train \\(pid ${dead} on `));
  assert.equal(fs.existsSync(at('r-stale', 'lock')), false);
  assert.ok(fs.existsSync(at('r-stale', 'checkpoint.safetensors')));
});

const cutMetricsTitle =
  'a last metrics line cut short by a kill: report reads the whole lines, --resume drops it and trains on';
test(cutMetricsTitle, async () => {
  fs.cpSync(at('r7'), at('r-cut'), { recursive: true });
  fs.appendFileSync(at('r-cut', 'metrics.jsonl'), '{"epoch":2,"lr":0.002,"tra');
  const rep = await run(['report', 'r-cut', '--out', 'rep-cut']);
  assert.equal(rep.code, 0, rep.stderr);
  const r = await run(['train', '--cache', 'c7', '--out', 'r-cut', '--resume', '--set', 'epochs=2']);
  assert.equal(r.code, 0, r.stderr);
  const lines = fs.readFileSync(at('r-cut', 'metrics.jsonl'), 'utf8').split('\n').filter(Boolean);
  assert.deepEqual(
    lines.map((l) => JSON.parse(l).epoch),
    [1, 2],
  );
  // A bad line before the last is not a kill: named with its line number.
  fs.writeFileSync(at('r-cut', 'metrics.jsonl'), `not json\n${lines.join('\n')}\n`);
  const bad = await run(['report', 'r-cut', '--out', 'rep-cut']);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /^ous: r-cut\/metrics\.jsonl:1 is not an epoch record/);
});

const movedRunTitle =
  "a run whose cache and CLIP moved: eval and report take --cache and --clip, and check they are the run's";
test(movedRunTitle, async () => {
  const moved = fs.mkdtempSync(path.join(os.tmpdir(), 'ous-moved-'));
  try {
    fs.cpSync(at('c7'), path.join(moved, 'cache'), { recursive: true });
    fs.cpSync(fixture('clip-dev', 'model'), path.join(moved, 'clip'), { recursive: true });
    const c = JSON.parse(fs.readFileSync(at('r7', 'config.json'), 'utf8'));
    fs.cpSync(at('r7'), at('r-away'), { recursive: true });
    fs.writeFileSync(
      at('r-away', 'config.json'),
      JSON.stringify({ ...c, cache: at('gone-cache'), clip: at('gone-clip') }),
    );
    const places = ['--cache', path.join(moved, 'cache'), '--clip', path.join(moved, 'clip')];
    const e = await run(['eval', '--run', 'r-away', ...places, '--json']);
    assert.equal(e.code, 0, e.stderr);
    const base = await run(['eval', '--run', 'r7', '--json']);
    assert.deepEqual(JSON.parse(e.stdout).confusion, JSON.parse(base.stdout).confusion);
    const rep = await run(['report', 'r-away', '--out', 'rep-away', ...places]);
    assert.equal(rep.code, 0, rep.stderr);
    const noClip = await run(['eval', '--run', 'r-away', '--cache', path.join(moved, 'cache')]);
    assert.equal(noClip.code, 1);
    assert.match(noClip.stderr, /gone-clip, which is not there: pass --clip DIR/);
  } finally {
    fs.rmSync(moved, { recursive: true, force: true });
  }
});

const extractionFailuresTitle =
  'extraction: NaN embeddings fail the clip naming the stage; ' +
  'a URL, a short row and a box outside the frame fail their rows';
test(extractionFailuresTitle, async () => {
  fs.copyFileSync(video, at('copy.mp4'));
  fs.writeFileSync(
    at('rows.csv'),
    `path,label,split,box\n${video},happy,train,\n` +
      `https://example.org/a.mp4,sad,train,\n${video}\ncopy.mp4,sad,test,5000 10 50 50\n`,
  );
  const r = await run([
    'extract',
    '--views',
    '1',
    '--dataset',
    'manifest',
    '--manifest',
    'rows.csv',
    '--clip',
    'clip-nan',
    '--out',
    'c-nan',
    '--frames',
    '2',
    '--json',
  ]);
  assert.equal(r.code, 3, r.stderr);
  const failed = (JSON.parse(r.stdout.trim().split('\n').pop()!).failed as Array<{ error: string }>)
    .map((f) => f.error)
    .sort();
  assert.equal(failed.length, 4, failed.join('\n'));
  assert.match(
    failed.find((e) => /NaN/.test(e)) ?? '',
    /franck_0-6s\.mp4: encode: CLIP's image embeddings hold \d+ NaN or infinite value\(s\)/,
  );
  assert.ok(
    failed.some((e) => /rows\.csv:3: 'https:\/\/example\.org\/a\.mp4' is a URL; ous reads local files/.test(e)),
    failed.join('\n'),
  );
  assert.ok(
    failed.some((e) => /rows\.csv:4: the row has 1 field\(s\), the header 4 \(path,label,split,box\)/.test(e)),
    failed.join('\n'),
  );
  assert.ok(
    failed.some((e) => /box \[5000 10 50 50\] lies outside the 360×288 frame/.test(e)),
    failed.join('\n'),
  );
});

// A full disk and a read-only folder, on real mounts: needs root (mount) and tmpfs; skipped elsewhere.
const canMount = process.getuid?.() === 0 && spawnSync('mount', ['--version']).status === 0;
const fullDiskTitle =
  'a full disk (ENOSPC) and a read-only output (EROFS): ' +
  'one line naming the path and the real cause; nothing half-written';
test(fullDiskTitle, {
  skip: !canMount && 'needs root to mount a tmpfs',
}, async (t) => {
  const full = at('mnt-full');
  const ro = at('mnt-ro');
  fs.mkdirSync(full);
  fs.mkdirSync(ro);
  const mount = (opts: string, where: string) =>
    spawnSync('mount', ['-t', 'tmpfs', '-o', opts, 'tmpfs', where]).status === 0;
  if (!mount('size=64k', full) || !mount('ro,size=64k', ro)) {
    spawnSync('umount', [full]);
    return t.skip('mounting a tmpfs was refused');
  }
  try {
    // leaves a few KB: config.json fits, a checkpoint does not
    fs.writeFileSync(path.join(full, 'fill'), Buffer.alloc(60 * 1024));
    const cases: Array<[string[], string]> = [
      [
        ['train', '--cache', 'c7', '--out', path.join(full, 'run'), ...small],
        `cannot write ${path.join(full, 'run')}/`,
      ],
      [['train', '--cache', 'c7', '--out', path.join(full, 'run'), ...small], ': no space left on the device'],
      [
        ['train', '--cache', 'c7', '--out', path.join(ro, 'run'), ...small],
        `cannot create ${path.join(ro, 'run')}: ${ro}: the file system is read-only`,
      ],
      [['report', 'r7', '--out', path.join(ro, 'rep')], `${ro}: the file system is read-only`],
      [
        [
          'extract',
          '--views',
          '1',
          '--dataset',
          'manifest',
          '--manifest',
          'dup.csv',
          '--clip',
          fixture('clip-dev', 'model'),
          '--out',
          path.join(full, 'cache'),
          '--frames',
          '2',
        ],
        'no space left on the device',
      ],
    ];
    fs.writeFileSync(at('dup.csv'), `path,label\n${video},happy\n`);
    for (const [args, want] of cases) {
      const r = await run(args);
      const lines = r.stderr.split('\n').filter((l) => l.trim() && !/^epoch \d|^stopped:|^extract \d/.test(l));
      assert.equal(r.code, 1, `${args.join(' ')}: ${r.stderr}`);
      assert.equal(lines.length, 1, r.stderr);
      assert.ok(lines[0]!.includes(want), `${args.join(' ')}: ${r.stderr}`);
      assert.doesNotMatch(r.stderr, /internal error|\n\s+at /);
    }
    // The failed fresh run left nothing behind (not even its folder), and no temporary files.
    assert.deepEqual(
      fs.readdirSync(full).filter((f) => f !== 'cache'),
      ['fill'],
    );
  } finally {
    spawnSync('umount', [full]);
    spawnSync('umount', [ro]);
  }
});

// Permissions: as root (who may read anything) the command runs as nobody; needs /work readable by all.
const permissionTitle =
  'a folder without permission (EACCES): "permission denied" naming it, not "config.json is missing" or ENOENT';
test(permissionTitle, async (t) => {
  const open = fs.mkdtempSync(path.join(os.tmpdir(), 'ous-eacces-'));
  try {
    fs.chmodSync(open, 0o755);
    fs.cpSync(fixture('clip-dev', 'model'), path.join(open, 'clip'), { recursive: true });
    fs.mkdirSync(path.join(open, 'ro'));
    const root = process.getuid?.() === 0;
    fs.chmodSync(path.join(open, 'clip'), root ? 0o700 : 0o000);
    fs.chmodSync(path.join(open, 'ro'), 0o555);
    const as = (args: string[]) =>
      new Promise<{ code: number | null; stderr: string }>((resolve) => {
        const p = spawn(process.execPath, [cli, ...args], {
          cwd: open,
          env: { ...process.env, OUS_DEBUG: '' },
          ...(root ? { uid: 65534, gid: 65534 } : {}),
        });
        let stderr = '';
        p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
        p.on('close', (code) => resolve({ code, stderr }));
      });
    const probe = await as(['--help']);
    if (probe.code !== 0) return t.skip('this checkout is not readable by user nobody');
    for (const [args, want] of [
      [['clip', 'embed', '--model', 'clip', '--text', 'a'], 'ous: cannot read the CLIP folder clip: permission denied'],
      [
        ['streams', video, '--out', 'ro/s', '--frames', '1'],
        `ous: cannot create ro/s: ${path.join(open, 'ro')}: permission denied`,
      ],
    ] as const) {
      const r = await as([...args]);
      assert.equal(r.code, 1, r.stderr);
      assert.equal(r.stderr.trim(), want);
    }
  } finally {
    fs.chmodSync(path.join(open, 'clip'), 0o755);
    fs.rmSync(open, { recursive: true, force: true });
  }
});

const dashTitle =
  "issue 37: a file named '-dash.mp4' after -- is read as a file, not an ffmpeg option; " +
  'a --text longer than CLIP reads is said to be cut, not cut silently';
test(dashTitle, async () => {
  fs.copyFileSync(video, at('-dash.mp4'));
  const faces = await run(['faces', '--frames', '1', '--', '-dash.mp4']);
  assert.equal(faces.code, 0, faces.stderr);
  const long = Array.from({ length: 100 }, () => 'word').join(' ');
  const embed = await run(['clip', 'embed', '--model', fixture('clip-dev', 'model'), '--text', long, '--json']);
  assert.equal(embed.code, 0, embed.stderr);
  assert.equal(
    embed.stderr.trim(),
    'ous: note: --text "word word word word word word word word …" is 102 tokens; CLIP reads the first 77 ' +
      '(start and end tokens included), so its embedding is of that part only',
  );
  assert.deepEqual(JSON.parse(embed.stdout).texts[0].truncated, { tokens: 102, kept: 77 });
});

const timingTitle =
  'issue 37: a 60 s jump in the timestamps and timestamps that restart are said as such, the frames timed at ' +
  'their own rate; a folder of frames of two sizes is refused naming the odd frame';
test(timingTitle, async () => {
  const ff = (...a: string[]) => assert.equal(spawnSync('ffmpeg', ['-v', 'error', '-y', ...a]).status, 0, a.join(' '));
  // 96 frames at 24 fps; frames 48.. are stamped 60 s later: the timestamps span 64 s (1.5 fps on average).
  ff(
    '-t',
    '4',
    '-i',
    video,
    '-vf',
    "setpts='if(lt(N,48),N,N+1440)/24/TB'",
    '-fps_mode',
    'passthrough',
    '-an',
    at('gap.mp4'),
  );
  // Two 3 s MPEG-TS segments concatenated as bytes: the second restarts the timestamps; 144 frames, 6 s.
  ff('-t', '3', '-i', video, '-an', '-c:v', 'libx264', at('s1.ts'));
  ff('-ss', '3', '-t', '3', '-i', video, '-an', '-c:v', 'libx264', at('s2.ts'));
  fs.writeFileSync(at('restart.ts'), Buffer.concat([fs.readFileSync(at('s1.ts')), fs.readFileSync(at('s2.ts'))]));
  for (const [file, note, seconds] of [
    ['gap.mp4', /the timestamps jump \(they span 64\.0 s, an average of 1\.5 fps\): 96 frames at 24 fps are 4\.0 s/, 4],
    ['restart.ts', /timestamps restart .*\(it says 3\.0 s\): 144 frames at 24 fps are 6\.0 s/, 6],
  ] as const) {
    const r = await run(['predict', file, '--run', 'r7', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const p = JSON.parse(r.stdout);
    assert.match(p.note, note);
    assert.match(r.stderr, note);
    assert.equal(p.duration, seconds);
    assert.equal(p.windows.at(-1).end, seconds, `${file}: the timeline covers the frames`);
  }
  // The rule by hand: a 29.97 fps phone video with a 30 fps nominal rate is no jump; webm's 1000/1 is a time base.
  assert.deepEqual(frameTiming(150, 29.97, 30, 5.005), { fps: 29.97, duration: 150 / 29.97 });
  assert.deepEqual(frameTiming(100, 25, 1000, 4), { fps: 25, duration: 4 });
  // Two frames of a folder at two sizes: both are read (T = 2), the second is refused by name.
  fs.mkdirSync(at('mixed'));
  ff('-i', video, '-frames:v', '1', at('mixed', 'f1.png'));
  ff('-ss', '1', '-i', video, '-frames:v', '1', '-vf', 'scale=180:144', at('mixed', 'f2.png'));
  const mixed = await run(['predict', 'mixed', '--run', 'r7']);
  assert.equal(mixed.code, 1);
  assert.equal(
    mixed.stderr.trim(),
    `ous: ${path.join('mixed', 'f2.png')}: 180×144, but f1.png is 360×288: the frames of a folder must be one size`,
  );
  // A --box on a frame folder is checked against its first frame (not probed as a video).
  const boxed = await run(['predict', 'mixed', '--run', 'r7', '--box', '400 50 100 100']);
  assert.match(boxed.stderr, /--box/);
  assert.doesNotMatch(boxed.stderr, /not a readable video/);
});

const interruptedJsonlTitle =
  'issue 37: Ctrl-C on ous predict --jsonl ends stdout with an incomplete marker and says so on stderr, once';
test(interruptedJsonlTitle, async () => {
  // Short windows: their frames are encoded chunk by chunk, so the windows come over time, not at once.
  const child = spawn(process.execPath, [cli, 'predict', video, '--run', 'r7', '--jsonl', '--window', '0.25'], {
    cwd: dir,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let [stdout, stderr, sent] = ['', '', false];
  child.stdout!.on('data', (d) => {
    stdout += d;
    // One Ctrl-C once the first window is out (a second would kill outright).
    if (!sent && stdout.includes('"type":"window"')) (sent = true), child.kill('SIGINT');
  });
  child.stderr!.on('data', (d) => (stderr += d));
  const code = await new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
  if (!sent) return assert.fail(`the prediction ended before it could be interrupted: ${stderr}`);
  assert.equal(code, 130, stderr);
  const lines = stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  const windows = lines.filter((l) => l.type === 'window').length;
  assert.deepEqual(lines[lines.length - 1], {
    type: 'incomplete',
    reason: `interrupted by SIGINT after ${windows} window(s)`,
    windowCount: windows,
  });
  assert.ok(!lines.some((l) => l.type === 'summary'));
  const said = stderr.split('\n').filter((l) => l.startsWith('ous: interrupted'));
  assert.deepEqual(said, [
    `ous: interrupted (SIGINT): the JSON lines on stdout stop after ${windows} window(s), marked incomplete`,
  ]);
});
