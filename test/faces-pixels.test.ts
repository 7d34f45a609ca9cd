// Boxes are in the video's own pixels. A video wider than MAX_SIDE is decoded
// scaled down; `ous faces` must still report boxes in the original frame. The reference is
// independent of the decoder: the fixture clip's checked face box, placed by ffmpeg at a known
// offset and scale in a 2560-px-wide frame.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { packageRoot } from '../src/util/paths.js';
import { MAX_SIDE } from '../src/video/decode.js';
import { buildStreams } from '../src/streams/index.js';
import { fixture } from './helpers.js';

const cli = path.join(packageRoot(), 'dist', 'src', 'cli', 'main.js');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ous-faces-pixels-'));

test("ous faces on a 2560×576 video reports the face in the video's own pixels", async () => {
  // franck frames 0..8, scaled ×2 (720×576) and placed at x = 1600 on a black 2560×576 canvas.
  const wide = path.join(dir, 'wide.mp4');
  execFileSync('ffmpeg', [
    '-v',
    'error',
    '-y',
    '-i',
    fixture('media', 'franck_0-6s.mp4'),
    '-frames:v',
    '9',
    '-vf',
    'scale=720:576,pad=2560:576:1600:0',
    '-c:v',
    'libx264',
    '-preset',
    'ultrafast',
    '-pix_fmt',
    'yuv420p',
    wide,
  ]);
  assert.ok(2560 > MAX_SIDE, 'the test needs a frame the decoder scales down');
  // One sample of 9 frames is frame 4, whose face box was checked by eye in franck's pixels.
  const checked = JSON.parse(fs.readFileSync(fixture('media', 'franck_0-6s.faces.json'), 'utf8')).samples.find(
    (s: { frame: number }) => s.frame === 4,
  ).box as number[];
  const expected = [1600 + 2 * checked[0]!, 2 * checked[1]!, 2 * checked[2]!, 2 * checked[3]!];
  const found = JSON.parse(
    execFileSync(process.execPath, [cli, 'faces', wide, '--frames', '1', '--json'], { encoding: 'utf8' }),
  ) as Array<{ frame: number; box: number[] }>;
  assert.equal(found.length, 1);
  assert.equal(found[0]!.frame, 4);
  // The detector sees a resampled, letterboxed copy, so its box moves a little: the centre within
  // 24 px and the size within 30% (in the scaled-down frame's pixels the centre would be ~1000 px off).
  const [bx, by, bw, bh] = found[0]!.box as [number, number, number, number];
  const [ex, ey, ew, eh] = expected as [number, number, number, number];
  assert.ok(
    Math.abs(bx + bw / 2 - (ex + ew / 2)) <= 24 && Math.abs(by + bh / 2 - (ey + eh / 2)) <= 24,
    `box ${found[0]!.box}: centre vs expected ${expected}`,
  );
  assert.ok(
    Math.abs(bw / ew - 1) <= 0.3 && Math.abs(bh / eh - 1) <= 0.3,
    `box ${found[0]!.box}: size vs expected ${expected}`,
  );
  // The streams report the same pixels: the crop box contains the face, in the 2560-px frame.
  const s = await buildStreams(wide, { frames: 1 });
  assert.deepEqual([s.width, s.height], [2560, 576]);
  const [x, y, w, h] = s.frames[0]!.box;
  assert.ok(
    x <= ex + 24 && y <= ey + 24 && x + w >= ex + ew - 24 && y + h >= ey + eh - 24,
    `crop ${s.frames[0]!.box} holds the face ${expected}`,
  );
  // A known box given in the video's pixels selects the same face crop as detection does.
  const given = await buildStreams(wide, { frames: 1, faceBox: expected as [number, number, number, number] });
  const [gx, gy, gw] = given.frames[0]!.box;
  assert.ok(
    Math.abs(gx + gw / 2 - (ex + ew / 2)) <= 4 && Math.abs(gy + gw / 2 - (ey + eh / 2)) <= 4,
    `the crop from a known box ${given.frames[0]!.box} is centred on it (${expected})`,
  );
});

test('ous faces: every face by default, --max-faces N the N most confident', () => {
  const photo = fixture('media', 'trackingjs_3faces_600x346.jpg');
  const run = (...flags: string[]) =>
    JSON.parse(
      execFileSync(process.execPath, [cli, 'faces', photo, '--json', ...flags], { encoding: 'utf8' }),
    ) as Array<{
      score: number;
    }>;
  const all = run();
  assert.equal(all.length, 3);
  const two = run('--max-faces', '2');
  assert.deepEqual(
    two.map((d) => d.score),
    all
      .map((d) => d.score)
      .sort((a, b) => b - a)
      .slice(0, 2),
  );
});
