// The built-in benchmark measures what the paper claims: with informative scenes OUS beats the
// face-only baseline by at least 10 UAR points and the baseline stays under what a face can tell;
// with uninformative scenes (the cue at chance) the gap closes to within noise. Run at the demo's
// quick size (about 3 minutes each on 2 cores), then `ous demo --json`'s last line is checked.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { runDemo, DEMO_SIZES } from '../src/demo/run.js';
import { packageRoot } from '../src/util/paths.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ous-demo-'));
const nTest = DEMO_SIZES.quick.testPerClass * 7;
// Two standard errors of a difference of two accuracies near 0.7 on nTest clips each: the noise
// band of one run.
const noise = 2 * Math.sqrt((2 * 0.7 * 0.3) / nTest);

let informative: Awaited<ReturnType<typeof runDemo>> | undefined;

test('informative scenes, 3 seeds: median OUS − face only ≥ 10 UAR points; face only under its ceiling', async () => {
  // One training run is one draw: on the demo's faint face features a seed now and then stays on
  // the plateau where OUS knows only the scene's polarity (docs/DECISIONS.md, "The demo"). The claim
  // is about the distribution, so it is checked on the median of three seeds, each seed's gap
  // paired with its own baseline.
  const r = (informative = await runDemo({
    out: path.join(tmp, 'informative'),
    quick: true,
    seed: 0,
    seeds: 3,
    agreement: 0.9,
    progress: false,
    log: () => {},
  }));
  const median = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)]!;
  const gaps = r.seeds.map((s) => s.ous.uar - s.faceOnly.uar);
  assert.equal(gaps.length, 3);
  assert.ok(median(gaps) >= 0.1, `OUS − face only per seed: ${gaps.map((g) => g.toFixed(3)).join(', ')}`);
  // The ceiling is an expectation; one test split of nTest clips scatters around it.
  const faceOnly = median(r.seeds.map((s) => s.faceOnly.uar));
  assert.ok(
    faceOnly <= r.ceilings.face + noise / 2,
    `face only ${faceOnly.toFixed(3)} vs face ceiling ${r.ceilings.face.toFixed(3)}`,
  );
  for (const s of r.seeds) assert.ok(s.ous.uar <= r.ceilings.faceScene + noise / 2);
});

test('uninformative scenes (cue at chance): the gap closes to within noise', async () => {
  const r = await runDemo({
    out: path.join(tmp, 'chance'),
    quick: true,
    seed: 0,
    agreement: 0,
    progress: false,
    log: () => {},
  });
  assert.equal(r.ceilings.faceScene, r.ceilings.face);
  assert.ok(
    Math.abs(r.ous.uar - r.faceOnly.uar) <= noise,
    `OUS ${r.ous.uar.toFixed(3)} vs face only ${r.faceOnly.uar.toFixed(3)} (noise band ${noise.toFixed(3)})`,
  );
});

test('ous demo --json: the same seed repeats the same numbers; the last line holds them and the report', () => {
  // In the informative run's folder: its videos and features are reused (extraction resumes),
  // and OUS and the baseline are trained again from the same seed.
  const cli = path.join(packageRoot(), 'dist', 'src', 'cli', 'main.js');
  const out = spawnSync(
    process.execPath,
    [cli, 'demo', '--quick', '--json', '--seed', '0', '--out', path.join(tmp, 'informative')],
    { encoding: 'utf8', timeout: 15 * 60 * 1000 },
  );
  assert.equal(out.status, 0, out.stderr.slice(-2000));
  const line = JSON.parse(out.stdout.trim().split('\n').pop()!);
  assert.deepEqual(Object.keys(line), ['ous', 'faceOnly', 'ceilings', 'report', 'seeds', 'summary']);
  assert.deepEqual(line.seeds, [{ seed: 0, ous: line.ous, faceOnly: line.faceOnly }]);
  for (const v of [
    line.ous.uar,
    line.ous.war,
    line.faceOnly.uar,
    line.faceOnly.war,
    line.ceilings.face,
    line.ceilings.faceScene,
  ])
    assert.ok(v >= 0 && v <= 1);
  assert.ok(fs.existsSync(line.report));
  assert.ok(informative, 'the informative run finished');
  assert.deepEqual([line.ous, line.faceOnly], [informative!.ous, informative!.faceOnly]);
});
