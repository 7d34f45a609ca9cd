// The stream recipe (src/streams/recipe.ts): the crop square's closed form, how a data set's face
// crops are measured around the detector's box (on DFEW-layout crops made from real footage with a
// known geometry), the median a run records, what an older run is assumed to be, and the data set's
// crops taken at the scene frames' own positions.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { buildStreamViews } from '../src/streams/index.js';
import { assumedRecipe, cropSquare, DEFAULT_CROP, matchCrops, type Crop } from '../src/streams/recipe.js';
import sharp from 'sharp';
import { fixture } from './helpers.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ous-recipe-'));
const franck = fixture('media', 'franck_0-6s.mp4'); // 360×288, 144 frames at 24 fps

const crop = (enlarge: number, shift: [number, number]): Crop => ({
  shape: 'square',
  enlarge,
  shift,
  padding: 'black',
});

test('the crop square: the longer side × (1 + enlarge), centred on the box, moved by shift × side', () => {
  assert.deepEqual(cropSquare([100, 50, 40, 80]), [70, 40, 100, 100]); // 80 × 1.25 = 100 around (120, 90)
  assert.deepEqual(cropSquare([100, 50, 40, 80], crop(0, [0.1, -0.2])), [88, 34, 80, 80]); // centre (128, 74)
  // the median of each number, robust to one bad measurement
  assert.deepEqual(matchCrops([crop(0.2, [0, 0.1]), crop(0.4, [0.02, 0.12]), crop(3, [0.5, -1])]), {
    clips: 3,
    crop: crop(0.4, [0.02, 0.1]),
  });
  assert.equal(matchCrops([]), undefined);
});

test('a run or cache from before the recipe: what that version did, said in one line', () => {
  const { recipe, note } = assumedRecipe(
    { frames: 16, scene: 'mask', polarityLayer: 4, clipHash: 'abc', classNames: ['a', 'b'] },
    'R/config.json',
  );
  assert.deepEqual(
    [recipe.subject, recipe.face.source, recipe.crop, recipe.precision],
    ['main', 'detector', DEFAULT_CROP, 'fp32'],
  );
  assert.equal(
    note,
    'R/config.json records no stream recipe (made before it): assuming the main face, ' +
      'detector crops (square crop ×1.25), scene mask, T 16',
  );
});

const measureTitle =
  "DFEW-layout face crops of real footage, cut at a known geometry: matched around the detector's box " +
  "in the scene frame, they give that geometry back; the crops sit at the scene frames' positions";
test(measureTitle, async () => {
  // Frame 76's face (fixtures/media/franck_0-6s.faces.json): [115, 80, 131, 166], centre (180.5, 163).
  // A 216 px square at (72, 38), 224×224 like DFEW's clip_224x224: enlarge 216/166 − 1, its centre
  // (180, 146) is (−0.5, −17) px from the face's centre, (−0.0023, −0.0787) of its side.
  const faces = path.join(dir, 'clip_224x224', '00001');
  fs.mkdirSync(faces, { recursive: true });
  execFileSync('ffmpeg', ['-v', 'error', '-i', franck, '-vf', 'crop=216:216:72:38,scale=224:224', `${faces}/%d.png`]);
  assert.equal(fs.readdirSync(faces).length, 144, 'one crop per frame, as DFEW ships them');
  const [measured] = await buildStreamViews(franck, { frames: 16, faceFrames: faces }, [{ mode: 'test', seed: 0 }]);
  const fit = measured!.shippedFit!;
  assert.ok(Math.abs(fit.enlarge - (216 / 166 - 1)) < 0.06, `enlarge ${fit.enlarge}`);
  assert.ok(Math.abs(fit.shift[0] - -0.0023) < 0.03, `shift x ${fit.shift[0]}`);
  assert.ok(Math.abs(fit.shift[1] - -0.0787) < 0.03, `shift y ${fit.shift[1]}`);
  // Crops whose grey level is their frame number: a view's face crop k is the crop of its own
  // scene frame k, for the test sampling and for train samplings (no second random draw).
  const numbered = path.join(dir, 'numbered');
  fs.mkdirSync(numbered);
  for (let i = 0; i < 144; i++)
    await sharp({ create: { width: 8, height: 8, channels: 3, background: { r: i, g: i, b: i } } })
      .png()
      .toFile(path.join(numbered, `${i + 1}.png`));
  const views = await buildStreamViews(
    franck,
    { frames: 16, faceFrames: numbered, scene: 'full', faceBox: [0, 0, 8, 8] },
    [
      { mode: 'test', seed: 0 },
      { mode: 'train', seed: 2 },
      { mode: 'train', seed: 3 },
    ],
  );
  for (const v of views)
    assert.deepEqual(
      v.frames.map((f) => f.face.data[0]),
      v.frames.map((f) => f.index),
    );
  assert.notDeepEqual(
    views[1]!.frames.map((f) => f.index),
    views[0]!.frames.map((f) => f.index),
    'train draws',
  );
});
