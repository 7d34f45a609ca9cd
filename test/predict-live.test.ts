// The streaming predictor from the command line: a stream piped on stdin at real time (ffmpeg -re)
// gives window lines while the input is still coming, in order, each with its latency and the
// frames dropped, and Ctrl-C prints the summary; a stalled and a broken stream get one line each.
// Every window says what it saw: a face that leaves at 3 s gives faceFrames 0 from the window after,
// and the overall answer is the mean of the windows that saw it (file path and --stream alike).
import { before, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fixture, runCli } from './helpers.js';
import { packageRoot } from '../src/util/paths.js';
import { tinyRun, type TinyRun } from './serve-helpers.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ous-predict-live-'));
const at = (...p: string[]) => path.join(dir, ...p);
const franck = fixture('media', 'franck_0-6s.mp4'); // 6 s, 24 fps, 360×288, the face throughout
const main = path.join(packageRoot(), 'dist', 'src', 'cli', 'main.js');

function ffmpeg(...args: string[]): void {
  const r = spawnSync('ffmpeg', ['-v', 'error', '-y', ...args], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
}

let t: TinyRun;
let minute: string;
before(async () => {
  t = await tinyRun(at('tiny')); // T = 4 frames a window: 2 grid frames a second
  minute = at('minute.mkv');
  ffmpeg('-stream_loop', '9', '-i', franck, '-c', 'copy', minute); // 60 s, no re-encoding
});

const stdinTitle =
  'stdin at real time: window lines while the input still comes, in order, with latency; Ctrl-C sums up';
test(stdinTitle, async () => {
  const feed = spawn('ffmpeg', ['-v', 'error', '-re', '-i', minute, '-c', 'copy', '-f', 'matroska', 'pipe:1']);
  const ous = spawn(process.execPath, [main, 'predict', '-', '--run', t.run, '--clip', t.clip, '--jsonl'], {
    cwd: dir,
  });
  feed.stdout.pipe(ous.stdin);
  ous.stdin.on('error', () => {});
  let feedEnded = false;
  feed.on('close', () => (feedEnded = true));
  const lines: Array<{ line: Record<string, unknown>; whileFeeding: boolean }> = [];
  let buf = '';
  let stderr = '';
  ous.stderr.on('data', (d: Buffer) => (stderr += d));
  ous.stdout.on('data', (d: Buffer) => {
    buf += d;
    for (let k = buf.indexOf('\n'); k >= 0; k = buf.indexOf('\n')) {
      lines.push({ line: JSON.parse(buf.slice(0, k)), whileFeeding: !feedEnded });
      buf = buf.slice(k + 1);
      if (lines.filter((l) => l.line.type === 'window').length === 5) ous.kill('SIGINT');
    }
  });
  const code = await new Promise<number | null>((resolve) => ous.on('close', resolve));
  feed.kill('SIGKILL');
  assert.equal(code, 0, stderr);
  const windows = lines.filter((l) => l.line.type === 'window');
  assert.ok(windows.length >= 5, `${windows.length} windows`);
  assert.ok(
    windows.slice(0, 5).every((l) => l.whileFeeding),
    'the first five lines came while the input was still coming',
  );
  let previous = -1;
  windows.forEach(({ line: w }, k) => {
    assert.equal(w.index, k);
    // Windows are spans of source time: one starts every second (stride 1) from the stream's start,
    // whatever was dropped; a span whose frames were all dropped (a busy machine) gives no window.
    assert.ok(Number.isInteger(w.start), `window ${k} starts at ${w.start}`);
    assert.ok((w.dropped as number) < 4, 'a window holds at least one frame of its span');
    assert.ok((w.start as number) > previous, 'windows in order');
    previous = w.start as number;
    assert.equal((w.end as number) - (w.start as number), 2);
    assert.ok(typeof w.latency === 'number' && w.latency >= 0);
    assert.ok(typeof w.dropped === 'number' && w.dropped >= 0);
    // The talking face is in every window whose frames all came (a window of a frame or two on a busy
    // machine may be classified before the face's track is confirmed: the centre crop, person null).
    if (w.dropped === 0) assert.ok((w.faceFrames as number) > 0, `window ${k} saw no face: ${JSON.stringify(w)}`);
    if (w.person !== null || w.dropped === 0) assert.equal(w.person, 0);
  });
  const summary = lines[lines.length - 1]!.line;
  assert.equal(summary.type, 'summary');
  assert.equal(summary.windowCount, windows.length);
  assert.equal(summary.noFaceWindows, windows.filter((l) => l.line.faceFrames === 0).length);
  assert.ok(windows.some((l) => l.line.faceFrames === 4 && l.line.person === 0));
  assert.ok(typeof (summary.latency as { p95: number }).p95 === 'number');
});

test('a stream that stalls and one that breaks: one line each, exit 1, the summary kept', async () => {
  // the first 12 s of the stream and then nothing, stdin held open: no frame for 2 s
  const half = fs.readFileSync(minute).subarray(0, Math.floor(fs.statSync(minute).size / 5));
  const ous = spawn(process.execPath, [main, 'predict', '-', '--run', t.run, '--clip', t.clip, '--stall', '2']);
  ous.stdin.write(half);
  let [stdout, stderr] = ['', ''];
  ous.stdout.on('data', (d: Buffer) => (stdout += d));
  ous.stderr.on('data', (d: Buffer) => (stderr += d));
  const code = await new Promise<number | null>((resolve) => ous.on('close', resolve));
  ous.stdin.destroy();
  assert.equal(code, 1, stderr);
  assert.match(stderr, /^ous: stdin: the stream stalled \(no frame for 2 s after \d+ frames\)$/m);
  assert.equal(stderr.split('\n').filter((l) => l.startsWith('ous: stdin')).length, 1);
  assert.match(stdout, /frames dropped/); // the summary of what was seen
  const broken = await runCli(['predict', 'tcp://127.0.0.1:9', '--run', t.run, '--clip', t.clip], dir);
  assert.equal(broken.code, 1);
  assert.match(broken.stderr, /^ous: tcp:\/\/127\.0\.0\.1:9: the stream broke after 0 frames \(.+\)\n/);
  assert.doesNotMatch(broken.stderr, /\n\s+at /); // no stack trace
});

const leavesTitle =
  'a face that leaves at 3 s: faceFrames 0 from the next window on; the answer from the windows that saw it';
test(leavesTitle, async () => {
  const gone = at('gone.mp4');
  ffmpeg('-i', franck, '-vf', "drawbox=enable='gte(t,3)':x=0:y=0:w=iw:h=ih:c=black:t=fill", '-an', gone);
  for (const extra of [[], ['--stream']]) {
    const r = await runCli(['predict', gone, '--run', t.run, '--clip', t.clip, '--json', ...extra], dir);
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    const windows = out.windows as Array<{ start: number; faceFrames: number; probabilities: Record<string, number> }>;
    assert.deepEqual(
      windows.map((w) => w.start),
      [0, 1, 2, 3, 4],
      `${extra}`,
    );
    // windows of 2 s, 4 frames at 0.25, 0.75, 1.25, 1.75 s into each: the face is in the frames before 3 s
    assert.deepEqual(
      windows.map((w) => w.faceFrames),
      [4, 4, 2, 0, 0],
      `${extra}`,
    );
    const seen = windows.filter((w) => w.faceFrames > 0);
    const overall = out.summary ?? out;
    assert.equal(overall.noFaceWindows, 2);
    for (const c of Object.keys(out.probabilities)) {
      const mean = seen.reduce((s, w) => s + w.probabilities[c]!, 0) / seen.length;
      assert.ok(Math.abs(out.probabilities[c] - mean) < 1e-6, `${extra} ${c}: ${out.probabilities[c]} vs ${mean}`);
    }
  }
  const text = await runCli(['predict', gone, '--run', t.run, '--clip', t.clip], dir);
  assert.equal(text.stdout.match(/ noFace/g)?.length, 2, text.stdout);
});

test('20 minutes read with --stream: the first windows come out in order long before the end', async () => {
  const long = at('twenty.mp4');
  ffmpeg('-stream_loop', '199', '-i', franck, '-c', 'copy', long); // 1,200 s
  const ous = spawn(process.execPath, [main, 'predict', long, '--run', t.run, '--clip', t.clip, '--stream', '--jsonl']);
  const lines: Array<Record<string, unknown>> = [];
  let [buf, stderr] = ['', ''];
  ous.stderr.on('data', (d: Buffer) => (stderr += d));
  ous.stdout.on('data', (d: Buffer) => {
    buf += d;
    for (let k = buf.indexOf('\n'); k >= 0; k = buf.indexOf('\n')) {
      lines.push(JSON.parse(buf.slice(0, k)));
      buf = buf.slice(k + 1);
      if (lines.length === 3) ous.kill('SIGINT'); // stop after the third window: the summary follows
    }
  });
  const code = await new Promise<number | null>((resolve) => ous.on('close', resolve));
  assert.equal(code, 0, stderr);
  const windows = lines.filter((l) => l.type === 'window');
  assert.deepEqual(
    windows.slice(0, 3).map((w) => [w.start, w.end]),
    [
      [0, 2],
      [1, 3],
      [2, 4],
    ],
  );
  const summary = lines[lines.length - 1]!;
  assert.equal(summary.type, 'summary');
  assert.ok((summary.duration as number) < 1200, 'stopped well before the end of the video');
  assert.equal(summary.dropped, 0); // a file read straight through drops nothing
});
