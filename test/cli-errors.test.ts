// Bad inputs through the real command line (node dist/src/cli/main.js): each gives its exit code
// (2 usage, 1 the rest), exactly one line on stderr that names the flag, file or key, and never
// "internal error" or a stack. docs/BAD-INPUTS.md lists the same table for people.
import { before, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { packageRoot } from '../src/util/paths.js';
import { trainRun } from '../src/train/run.js';
import { fixture, tinyCache } from './helpers.js';

const cli = path.join(packageRoot(), 'dist', 'src', 'cli', 'main.js');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ous-cli-errors-'));
const at = (...p: string[]) => path.join(dir, ...p);
const video = fixture('media', 'franck_0-6s.mp4');
const small = ['--set', 'tfeLayers=1', '--set', 'promptLength=2', '--set', 'heads=2', '--set', 'epochs=1'];

function run(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [cli, ...args], { cwd: dir, env: { ...process.env, OUS_DEBUG: '', ...env } });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    p.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

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
  const opts = { sets: small.filter((s) => s !== '--set'), log: () => {} };
  await trainRun({ cache: at('c7'), out: at('r7'), ...opts });
  await trainRun({ cache: at('c3'), out: at('r3'), ...opts, sets: [...opts.sets, 'classNames=["neg","neu","pos"]', 'polarityOfClass=[0,1,2]'] });
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
  clipWith('clip-st-header', 'model.safetensors', Buffer.concat([Buffer.from([16, 0, 0, 0, 0, 0, 0, 0]), Buffer.from('{not json}xxxxxx')]));
  clipWith('clip-st-huge', 'model.safetensors', Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]));
  clipWith('clip-st-trunc', 'model.safetensors', weights.subarray(0, 8 + n + 100));
});

// [args, exit code, what the line must name]
const cases: Array<[string[], number, string]> = [
  ...['demo', 'clip embed', 'faces', 'streams', 'extract', 'train', 'eval', 'predict', 'report', 'ablate'].map((c): [string[], number, string] => [[...c.split(' '), '--bogus'], 2, `ous ${c}: unknown option '--bogus'`]),
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
  [['train', '--cache', 'c7', '--out', 'rx', '--seed', '-1'], 2, "--seed must be an integer >= 0, not '-1'"],
  [['train', '--cache', 'c7', '--out', 'rx', '--config', 'missing.json'], 1, 'missing.json'],
  [['train', '--cache', 'c7', '--out', 'rx', '--config', 'bad-json.json'], 1, 'bad-json.json is not valid JSON'],
  [['train', '--cache', 'c7', '--out', 'rx', '--config', 'bad-key.json'], 1, "'nope'"],
  [['train', '--cache', 'c7', '--out', 'rx', '--config', 'bad-type.json'], 1, 'heads'],
  [['train', '--cache', 'c7', '--out', 'rx', '--config', 'c7'], 1, 'c7'],
  [['train', '--cache', 'c7', '--out', 'rx', '--set', 'classNames=["a","b","c"]', '--set', 'polarityOfClass=[0,1,2]'], 1, 'classNames comes from the cache'],
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
  [['clip', 'embed', '--model', 'clip-st-empty', '--text', 'a'], 1, 'model.safetensors: not a valid safetensors file: the file has 0 bytes'],
  [['clip', 'embed', '--model', 'clip-st-header', '--text', 'a'], 1, 'model.safetensors: not a valid safetensors file: the header is not JSON'],
  [['clip', 'embed', '--model', 'clip-st-huge', '--text', 'a'], 1, 'model.safetensors: not a valid safetensors file: header length'],
  [['clip', 'embed', '--model', 'clip-st-trunc', '--text', 'a'], 1, 'model.safetensors: not a valid safetensors file: tensor'],
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
];

test('bad inputs: one line on stderr naming the flag, file or key, the right exit code, no stack', async () => {
  const failures: string[] = [];
  let next = 0;
  const worker = async () => {
    while (next < cases.length) {
      const [args, code, names] = cases[next++]!;
      const r = await run(args);
      const lines = r.stderr.split('\n').filter((l) => l.trim() && !/^epoch \d|^stopped:/.test(l)); // train.log lines of a run that ran
      const why = [
        r.code !== code && `exit ${r.code}, expected ${code}`,
        lines.length !== 1 && `${lines.length} lines on stderr`,
        /internal error|\n\s+at /.test(r.stderr) && 'a stack trace',
        !r.stderr.includes(names) && `does not name '${names}'`,
      ].filter(Boolean);
      if (why.length) failures.push(`ous ${args.join(' ')}: ${why.join(', ')}\n    ${r.stderr.trim().split('\n').join('\n    ')}`);
    }
  };
  await Promise.all([worker(), worker()]); // two processes at a time
  assert.equal(failures.length, 0, failures.join('\n'));
  // Refused before anything is made: no run folder for the mismatched classes or the bad heads.
  assert.equal(fs.existsSync(at('rx')), false, 'a refused train left its --out folder behind');
  assert.equal(fs.existsSync(at('r-lr', 'checkpoint.safetensors')), false);
});

test('OUS_DEBUG=1 adds the stack; ous clip --help lists the subcommands', async () => {
  const plain = await run(['faces', video, '--frames', '0']);
  const debug = await new Promise<string>((resolve) => {
    const p = spawn(process.execPath, [cli, 'faces', video, '--frames', '0'], { env: { ...process.env, OUS_DEBUG: '1' } });
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

test('OUS_ENGINE: an unknown value, or onnxruntime where it cannot run, is one line and exit 1; libtorch predicts', async () => {
  for (const [env, want] of [[{ OUS_ENGINE: 'onnx' }, "OUS_ENGINE must be auto, libtorch or onnxruntime, not 'onnx'"], [{ OUS_ENGINE: 'onnxruntime', OUS_ALLOW_SLOW_BF16: '1' }, 'OUS_ENGINE=onnxruntime runs CLIP\'s vision tower in fp32 on the CPU only, not bf16 on cpu']] as const) {
    const r = await run(['predict', video, '--run', 'r7', ...(env.OUS_ENGINE === 'onnxruntime' ? ['--precision', 'bf16'] : [])], env);
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
