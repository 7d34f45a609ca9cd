// Real footage at real length, made at test time with ffmpeg from the talking-face clip: frame
// sampling of any size against the frames ffmpeg gives one at a time; a timeline over 3 and 20
// minutes with the number of windows computed by hand, each window equal to a prediction on its
// frames alone, and --csv/--jsonl agreeing with --json; videos that lie about their length refused
// in one line; one rule for stills.
import { before, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import sharp from 'sharp';
import { decodeFrames, probeVideo } from '../src/video/decode.js';
import { sampleIndices } from '../src/video/sampling.js';
import { Predictor, type WindowPrediction } from '../src/predict/predictor.js';
import { assertClose, fixture, runCli } from './helpers.js';
import { tinyRun, type TinyRun } from './serve-helpers.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ous-long-video-'));
const at = (...p: string[]) => path.join(dir, ...p);
const franck = fixture('media', 'franck_0-6s.mp4'); // 6 s, 24 fps, 360×288: 144 frames

function ffmpeg(...args: string[]): void {
  const r = spawnSync('ffmpeg', ['-v', 'error', '-y', ...args], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
}

/** The talking-face clip looped to `loops` × 6 s, stream-copied (no re-encoding: seconds to make). */
function looped(name: string, loops: number): string {
  ffmpeg('-stream_loop', String(loops - 1), '-i', franck, '-c', 'copy', at(name));
  return at(name);
}

const run = (args: string[]) => runCli(args, dir);

/** Frame `n` of `file` from its own ffmpeg process: one select term, so nothing of ours in the way. */
function ffmpegFrame(file: string, n: number, w: number, h: number): Buffer {
  const r = spawnSync(
    'ffmpeg',
    [
      '-v',
      'error',
      '-i',
      file,
      '-vf',
      `select='eq(n\\,${n})',scale=${w}:${h}:flags=area`,
      '-vsync',
      '0',
      '-frames:v',
      '1',
      '-f',
      'rawvideo',
      '-pix_fmt',
      'rgb24',
      'pipe:1',
    ],
    { maxBuffer: 1 << 26 },
  );
  assert.equal(r.status, 0, String(r.stderr));
  return r.stdout;
}

let t: TinyRun;
before(async () => {
  t = await tinyRun(at('tiny')); // T = 4 frames a window
});

test('a 101-frame and a 1,000-frame sample equal the frames ffmpeg gives one at a time', async () => {
  // 45 s at 120×96, re-encoded small so the one-frame-at-a-time reference stays quick: 1,080 frames.
  const file = at('small45.mp4');
  ffmpeg(
    '-stream_loop',
    '7',
    '-i',
    franck,
    '-t',
    '45',
    '-vf',
    'scale=120:96',
    '-c:v',
    'libx264',
    '-preset',
    'ultrafast',
    '-pix_fmt',
    'yuv420p',
    file,
  );
  const info = await probeVideo(file);
  assert.equal(info.frameCount, 1080);
  const few = sampleIndices(info.frameCount, 101);
  const got = await decodeFrames(file, info, few);
  assert.equal(got.frames.length, 101);
  for (const [k, n] of few.entries())
    assert.ok(
      Buffer.from(got.frames[k]!.data).equals(ffmpegFrame(file, n, 120, 96)),
      `frame ${n} of the 101-frame sample`,
    );
  // 1,000 frames: every one against ffmpeg's own numbered dump of the whole video, 25 of them one at a time too.
  const many = sampleIndices(info.frameCount, 1000);
  const all = await decodeFrames(file, info, many);
  fs.mkdirSync(at('dump'));
  ffmpeg('-i', file, '-vsync', '0', at('dump', 'f%05d.png'));
  for (const [k, n] of many.entries()) {
    const { data } = await sharp(at('dump', `f${String(n + 1).padStart(5, '0')}.png`))
      .removeAlpha()
      .raw()
      .toBuffer({ resolveWithObject: true });
    assert.ok(Buffer.from(all.frames[k]!.data).equals(data), `frame ${n} of the 1,000-frame sample against the dump`);
  }
  for (let k = 0; k < 1000; k += 40)
    assert.ok(
      Buffer.from(all.frames[k]!.data).equals(ffmpegFrame(file, many[k]!, 120, 96)),
      `frame ${many[k]} one at a time`,
    );
});

const threeMinutesTitle =
  '3 minutes: 179 windows by hand; --csv and --jsonl stream the ' +
  'same windows as --json; window 150 equals its frames alone';
test(threeMinutesTitle, async () => {
  const video = looped('three.mp4', 30); // 180 s
  const box = '100 50 200 200';
  const json = await run(['predict', video, '--run', t.run, '--box', box, '--json']);
  assert.equal(json.code, 0, json.stderr);
  const r = JSON.parse(json.stdout) as { windows: WindowPrediction[]; probabilities: Record<string, number> };
  // Window 2 s, stride 1 s over 180 s: starts 0, 1, ..., 178 -> 179 windows, the last ending with the video.
  assert.equal(r.windows.length, 179);
  assert.deepEqual([r.windows[0]!.start, r.windows[178]!.start, r.windows[178]!.end], [0, 178, 180]);
  const classes = Object.keys(r.probabilities);

  const jsonl = await run(['predict', video, '--run', t.run, '--box', box, '--jsonl']);
  assert.equal(jsonl.code, 0, jsonl.stderr);
  const lines = jsonl.stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  assert.equal(lines.length, 180);
  assert.deepEqual(
    lines.slice(0, -1).map((l) => l.type),
    new Array(179).fill('window'),
  );
  assert.equal(lines[179].type, 'summary');
  assert.equal(lines[179].emotion, JSON.parse(json.stdout).emotion);
  for (const [k, l] of lines.slice(0, -1).entries()) {
    assert.equal(l.index, k);
    const { type: _t, index: _i, ...w } = l;
    assert.deepEqual(w, r.windows[k], `jsonl window ${k}`);
  }

  const csv = await run(['predict', video, '--run', t.run, '--box', box, '--csv']);
  assert.equal(csv.code, 0, csv.stderr);
  const rows = csv.stdout
    .trim()
    .split('\n')
    .map((l) => l.split(','));
  const head = rows[0]!;
  assert.deepEqual(head.slice(0, 3), ['start', 'end', 'emotion']);
  assert.equal(rows.length, 180);
  for (const [k, row] of rows.slice(1).entries()) {
    const w = r.windows[k]!;
    const col = (name: string) => row[head.indexOf(name)]!;
    assert.deepEqual([Number(col('start')), Number(col('end')), col('emotion')], [w.start, w.end, w.emotion]);
    assertClose(
      classes.map((c) => Number(col(`p_${c}`))),
      classes.map((c) => w.probabilities[c]!),
      { atol: 1e-6, what: `csv row ${k}` },
    );
    assertClose(
      ['negative', 'neutral', 'positive'].map((p) => Number(col(`polarity_${p}`))),
      Object.values(w.polarity!),
      { atol: 1e-6 },
    );
    assert.equal(col('scene_changed_decision'), String(w.sceneEffect!.changedDecision));
    assert.deepEqual(
      ['face_x', 'face_y', 'face_w', 'face_h'].map((c) => Number(col(c))),
      w.faceBox,
    );
  }

  // Window 150 (150–152 s), T = 4 on the grid every 0.5 s at
  // (j + 0.5)·0.5 s: frames floor((j + 0.5)·12), j = 300..303.
  const frames = [300, 301, 302, 303].map((j) => Math.floor((j + 0.5) * 12));
  assert.deepEqual(frames, [3606, 3618, 3630, 3642]);
  fs.mkdirSync(at('w150'));
  for (const [k, n] of frames.entries()) {
    await sharp(ffmpegFrame(video, n, 360, 288), { raw: { width: 360, height: 288, channels: 3 } })
      .png()
      .toFile(at('w150', `f${k}.png`));
  }
  const alone = await Predictor.load(t.run).predict(at('w150'), {
    faceBox: box.split(' ').map(Number) as [number, number, number, number],
  });
  assertClose(Object.values(r.windows[150]!.probabilities), Object.values(alone.probabilities), {
    atol: 1e-5,
    what: 'window 150 vs its frames alone',
  });
  assertClose(Object.values(r.windows[150]!.polarity!), Object.values(alone.polarity!), {
    atol: 1e-5,
    what: 'polarity',
  });
  assertClose([r.windows[150]!.sceneEffect!.totalVariation], [alone.sceneEffect!.totalVariation], { atol: 1e-5 });
});

test('20 minutes: 1,197 windows streamed as JSON lines, windows that saw the same frames alike', async () => {
  const video = looped('twenty.mp4', 200); // 1,200 s
  const r = await run([
    'predict',
    video,
    '--run',
    t.run,
    '--box',
    '100 50 200 200',
    '--jsonl',
    '--window',
    '4',
    '--stride',
    '1',
  ]);
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  // Window 4 s, stride 1 s over 1,200 s: starts 0..1,196 -> 1,197 windows, then the summary.
  assert.equal(lines.length, 1198);
  assert.deepEqual([lines[0].start, lines[1196].start, lines[1196].end], [0, 1196, 1200]);
  assert.equal(lines[1197].type, 'summary');
  assert.equal(lines[1197].windowCount, 1197);
  // The clip repeats every 6 s: windows 6 s apart saw the same frames (grid step 1 s = 24 frames).
  assertClose(
    Object.values(lines[600].probabilities as Record<string, number>),
    Object.values(lines[6].probabilities as Record<string, number>),
    { atol: 1e-5, what: 'window 600 vs window 6' },
  );
  assert.match(r.stderr, /window 1197\/1197 windows/);
});

const oneMinuteDetectorTitle =
  '1 minute with the face detector: the face found on every grid frame, the track over the whole video';
test(oneMinuteDetectorTitle, async () => {
  const video = looped('one-minute.mp4', 10); // 60 s: 120 grid frames at T = 4
  const r = await run(['predict', video, '--run', t.run, '--json']);
  assert.equal(r.code, 0, r.stderr);
  const p = JSON.parse(r.stdout) as {
    faces: Array<{ box: number[]; detected: boolean }>;
    windows: WindowPrediction[];
    faceMissing: boolean;
  };
  assert.equal(p.faces.length, 120);
  assert.equal(p.faceMissing, false);
  assert.ok(
    p.faces.every((f) => f.detected),
    'a face on every grid frame',
  );
  // The face's centre as the fixture records it (checked by eye), inside every crop square.
  const known = JSON.parse(fs.readFileSync(fixture('media', 'franck_0-6s.faces.json'), 'utf8')).samples[0]
    .box as number[];
  const [cx, cy] = [known[0]! + known[2]! / 2, known[1]! + known[3]! / 2];
  for (const f of p.faces)
    assert.ok(
      f.box[0]! < cx && cx < f.box[0]! + f.box[2]! && f.box[1]! < cy && cy < f.box[1]! + f.box[3]!,
      `crop ${f.box} holds the face centre`,
    );
  assert.equal(p.windows.length, 59);
  assert.match(r.stderr, /detect 120\/120 frames/);
});

const lyingVideosTitle =
  'videos that lie about their length: a container claiming 10 hours for two frames, ' +
  'a raw .h264 with no duration; refused in one line';
test(lyingVideosTitle, async () => {
  // Two frames, the second stamped at 10 hours: the container says 36,001 s.
  ffmpeg(
    '-f',
    'lavfi',
    '-i',
    'color=c=gray:s=96x72:r=1',
    '-frames:v',
    '2',
    '-vf',
    'setpts=N*36000/TB',
    '-c:v',
    'libx264',
    '-pix_fmt',
    'yuv420p',
    '-vsync',
    'passthrough',
    at('ten-hours.mp4'),
  );
  // 90 s of raw H.264: no container, no duration at all.
  ffmpeg(
    '-f',
    'lavfi',
    '-i',
    'testsrc=s=96x72:r=25',
    '-t',
    '90',
    '-c:v',
    'libx264',
    '-preset',
    'ultrafast',
    '-f',
    'h264',
    at('raw.h264'),
  );
  for (const [args, seen] of [
    [['predict', at('ten-hours.mp4'), '--run', t.run], /longer than --max-seconds 10800 \(at least 3600[01]\.\d s/],
    [
      ['predict', at('raw.h264'), '--run', t.run, '--max-seconds', '60'],
      /longer than --max-seconds 60 \(at least 60\.\d s/,
    ],
    [['faces', at('raw.h264'), '--max-seconds', '60'], /--max-seconds 60/],
    [['streams', at('ten-hours.mp4'), '--out', at('s')], /--max-seconds 10800/],
  ] as const) {
    const r = await run([...args]);
    assert.equal(r.code, 1, `${args.join(' ')}: ${r.stderr}`);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, seen);
  }
  // Under the limit, the raw stream reads: 90 s measured from its packets at 25 fps.
  const ok = await run(['faces', at('raw.h264'), '--frames', '3', '--json']);
  assert.equal(ok.code, 0, ok.stderr);
});

const stillsTitle =
  'one rule for stills; an animated GIF is a video everywhere; ' +
  'a window shorter than T frames is refused with the minimum';
test(stillsTitle, async () => {
  ffmpeg('-i', franck, '-t', '2', '-vf', 'fps=10,scale=120:96', at('anim.gif')); // 20 frames
  ffmpeg('-i', franck, '-frames:v', '1', at('one.mp4'));
  const gif = await run(['faces', at('anim.gif'), '--frames', '20', '--json']);
  assert.equal(gif.code, 0, gif.stderr);
  assert.deepEqual(
    [...new Set((JSON.parse(gif.stdout) as Array<{ frame: number }>).map((d) => d.frame))],
    Array.from({ length: 20 }, (_, i) => i),
  );
  const streams = await run(['streams', at('anim.gif'), '--out', at('gif-streams'), '--frames', '4', '--json']);
  assert.equal(JSON.parse(streams.stdout).frameCount, 20);
  assert.equal(streams.stderr, '');
  const note = /a still image: its one frame stands for every sampled frame/;
  for (const still of [at('one.mp4'), fixture('media', 'grace_hopper_512.jpg')]) {
    const s = await run(['streams', still, '--out', at('still-streams'), '--frames', '4', '--json']);
    assert.equal(s.code, 0, s.stderr);
    assert.equal(JSON.parse(s.stdout).still, true);
    assert.equal(s.stderr.match(new RegExp(note, 'g'))?.length, 1, s.stderr);
    const p = await run(['predict', still, '--run', t.run, '--json']);
    assert.equal(p.code, 0, p.stderr);
    assert.match(JSON.parse(p.stdout).note, note);
  }
  // 24 fps, T = 4: a window needs 4/24 s; 0.01 s holds 0.24 frames.
  const tiny = await run(['predict', franck, '--run', t.run, '--window', '0.01']);
  assert.equal(tiny.code, 1);
  assert.match(
    tiny.stderr,
    /^ous: --window 0\.01: .*fewer than the 4 frames a window needs; use --window 0\.17 or more\n$/,
  );
});

test('bad --max-seconds values and two output formats at once are usage errors (exit 2, one line)', async () => {
  for (const [args, seen] of [
    [['faces', franck, '--max-seconds', '0'], /--max-seconds must be a positive number of seconds, not '0'/],
    [
      ['streams', franck, '--out', at('x'), '--max-seconds', '0x10'],
      /--max-seconds must be a positive number of seconds, not '0x10'/,
    ],
    [
      ['predict', franck, '--run', t.run, '--max-seconds', 'abc'],
      /--max-seconds must be a positive number of seconds, not 'abc'/,
    ],
    [['predict', franck, '--run', t.run, '--json', '--csv'], /give one of --json, --jsonl and --csv/],
  ] as const) {
    const r = await run([...args]);
    assert.equal(r.code, 2, r.stderr);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, seen);
  }
});
