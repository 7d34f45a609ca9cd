// The parity contract (issue 31): a run predicts on exactly the streams it was trained on. For a
// clip no longer than one window, `ous predict` on the video gives the probabilities the run gives
// on that clip's cached features (`ous eval --per-clip`), within 1e-4, on real footage: the
// talking face (one person), and each person of the talking face beside its mirror image (a cache
// extracted with --subject naming that person's half, against `ous predict --person ID`).
import { before, test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Prediction } from '../src/predict/predictor.js';
import { fixture, mirroredPair, recordTrainedConfig, runCli } from './helpers.js';
import { tinyRun, type TinyRun } from './serve-helpers.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ous-parity-'));
const at = (...p: string[]) => path.join(dir, ...p);
const franck = fixture('media', 'franck_0-6s.mp4'); // 360×288, 6 s, one face

let t: TinyRun;
let pair: string;
before(async () => {
  t = await tinyRun(at('tiny'));
  pair = mirroredPair(at('pair.mp4')); // 720×288: the clip on the left, its mirror image on the right
});

/** A cache of one test clip (and one training clip, which a cache's splits need), as `ous extract` makes it. */
async function cacheOf(video: string, name: string, extra: string[] = []): Promise<string> {
  const manifest = at(`${name}.csv`);
  fs.writeFileSync(manifest, `path,label,split\n${video},happy,test\n${t.clips[0]!.file},sad,train\n`);
  const out = at(name);
  const r = await runCli(
    ['extract', '--views', '1', '--dataset', 'manifest', '--manifest', manifest, '--clip', t.clip, '--out', out].concat(
      ['--frames', '4', '--polarity-layer', '4', '--views', '1', ...extra],
    ),
    dir,
  );
  assert.equal(r.code, 0, r.stderr);
  return out;
}

/** The run's probabilities on the cache's test clip `video`, from `ous eval --per-clip`. */
async function evalProbs(cache: string, video: string): Promise<number[]> {
  const csv = at(`${path.basename(cache)}.per-clip.csv`);
  const r = await runCli(['eval', '--run', t.run, '--cache', cache, '--per-clip', csv], dir);
  assert.equal(r.code, 0, r.stderr);
  const [header, ...rows] = fs.readFileSync(csv, 'utf8').trim().split('\n');
  assert.deepEqual(header!.split(',').slice(0, 3), ['clip', 'label', 'predicted']);
  // a clip's id is its path as the manifest gives it
  const row = rows.map((l) => l.split(',')).find((c) => path.resolve(dir, c[0]!) === path.resolve(video));
  assert.ok(row, `${video} in ${csv}`);
  assert.equal(row[1], 'happiness'); // the manifest's 'happy', by the class's own name
  return row.slice(3).map(Number);
}

async function predict(video: string, extra: string[] = []): Promise<Prediction> {
  const r = await runCli(['predict', video, '--run', t.run, '--window', '10', '--json', ...extra], dir);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as Prediction;
}

const maxDiff = (a: number[], b: number[]) => Math.max(...a.map((v, i) => Math.abs(v - b[i]!)));
// A tiny run's softmax can saturate on real footage, where absolute differences say little: log
// probabilities compare the small ones too (features stored in float16 move them by ~1e-3).
const maxLogDiff = (a: number[], b: number[]) => Math.max(...a.map((v, i) => Math.abs(Math.log(v / b[i]!))));

function assertParity(got: number[], cached: number[], what: string) {
  assert.ok(maxDiff(got, cached) <= 1e-4, `${what}: predict ${got} vs eval ${cached}`);
  assert.ok(maxLogDiff(got, cached) <= 1e-2, `${what}: log probabilities, predict ${got} vs eval ${cached}`);
}

test('one person: ous predict on the clip = the run on its cached features (≤ 1e-4)', async () => {
  const cached = await evalProbs(await cacheOf(franck, 'one'), franck);
  const p = await predict(franck);
  assert.equal(p.windows.length, 1, 'the clip is one window');
  assertParity(Object.values(p.probabilities), cached, 'one person');
  assert.equal(p.recipe.trainedOn, 'known-box'); // the tiny run's synthetic clips come with their boxes
  assert.deepEqual(p.recipe.subject, 'main');
});

test('two persons: ous predict --person ID = the run on a cache extracted with that person as subject', async () => {
  const halves: Array<[number, string]> = [
    [0, '0 0 360 288'],
    [1, '360 0 360 288'],
  ];
  const got: number[][] = [];
  const cached: number[][] = [];
  for (const [id, half] of halves) {
    cached.push(await evalProbs(await cacheOf(pair, `pair-${id}`, ['--subject', half]), pair));
    const p = await predict(pair, ['--person', String(id)]);
    const person = p.persons!.find((x) => x.id === id)!;
    assert.equal(person.windows.length, 1);
    got.push(Object.values(person.probabilities));
    assertParity(got[id]!, cached[id]!, `person ${id}`);
  }
  // The check tells the persons apart: one person's answer is not the other's cached features'.
  assert.ok(maxLogDiff(got[0]!, cached[1]!) > 1e-2, `person 0's ${got[0]} vs person 1's cache ${cached[1]}`);
});

const recipeTitle =
  "the run carries its cache's recipe; predict follows its subject rule (--subject overrides it, " +
  'and says so); a run from before the recipe predicts as before, with a note of what is assumed';
test(recipeTitle, async () => {
  const config = JSON.parse(fs.readFileSync(path.join(t.run, 'config.json'), 'utf8'));
  const cache = JSON.parse(fs.readFileSync(path.join(config.cache, 'cache.json'), 'utf8'));
  assert.deepEqual(config.recipe, cache.recipe);
  assert.deepEqual([config.recipe.subject, config.recipe.frames, config.recipe.scene], ['main', 4, 'mask']);
  // The same run with its recipe's subject edited, on the three-faces photo (faces at x 52, 228, 458).
  const photo = fixture('media', 'trackingjs_3faces_600x346.jpg');
  const withSubject = (name: string, subject: unknown) => {
    const run = at(name);
    fs.cpSync(t.run, run, { recursive: true });
    const c = { ...config, recipe: subject === undefined ? undefined : { ...config.recipe, subject } };
    fs.writeFileSync(path.join(run, 'config.json'), JSON.stringify(c));
    recordTrainedConfig(run); // as if trained so: the checkpoint's record covers the recipe
    return run;
  };
  const go = async (run: string, extra: string[] = []) => {
    const r = await runCli(['predict', photo, '--run', run, '--json', ...extra], dir);
    assert.equal(r.code, 0, r.stderr);
    return { p: JSON.parse(r.stdout) as Prediction, stderr: r.stderr };
  };
  const centreX = (b: number[]) => b[0]! + b[2]! / 2;
  const centre = await go(withSubject('run-center', 'center'));
  assert.equal(centre.p.recipe.subject, 'center');
  assert.ok(Math.abs(centreX(centre.p.faces[0]!.box) - 272) < 15, `the centre face: ${centre.p.faces[0]!.box}`);
  const right = await go(withSubject('run-box', [440, 40, 120, 140]));
  assert.ok(Math.abs(centreX(right.p.faces[0]!.box) - 501) < 15, `the face the box names: ${right.p.faces[0]!.box}`);
  // ous streams --run shows the streams that run predicts on: the same face square
  const shown = await runCli(['streams', photo, '--run', at('run-box'), '--out', at('streams-box')], dir);
  assert.equal(shown.code, 0, shown.stderr);
  const streams = JSON.parse(fs.readFileSync(at('streams-box', 'streams.json'), 'utf8'));
  assert.equal(streams.frames.length, 4, "the run's T");
  assert.deepEqual(streams.frames[0].box, right.p.faces[0]!.box);
  const over = await go(withSubject('run-center-2', 'center'), ['--subject', '440 40 120 140']);
  assert.deepEqual(over.p.faces[0]!.box, right.p.faces[0]!.box);
  assert.equal(over.p.recipe.subjectOverridden, true);
  assert.match(over.stderr, /--subject "440 40 120 140" replaces the subject the run was trained on \(center\)/);
  const old = await go(withSubject('run-old', undefined));
  assert.match(old.stderr, /config\.json records no stream recipe \(made before it\): assuming the main face/);
});
