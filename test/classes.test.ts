// Any set of classes: labels matched through synonyms and case; polarities from SPEC.md §1's map
// (extended to MAFW) or given; a class with no polarity is a clear error; a made-up MAFW tree (11
// classes, 2 folds) extracts, trains and evaluates per fold and over the folds; a manifest with its
// own labels and polarity map trains and predicts with those names, and without polarity labels
// trains without L_pol; the synthetic benchmark with 11 classes runs end to end.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  DFEW_CLASSES,
  MAFW_CLASSES,
  labelIndex,
  parseClassList,
  parsePolarityMap,
  resolveClassSet,
} from '../src/data/classes.js';
import { readMafw } from '../src/data/datasets.js';
import { resolveOusConfig } from '../src/ous/config.js';
import { benchmarkClasses, ceilings, generateBenchmark } from '../src/synthetic/benchmark.js';
import { packageRoot } from '../src/util/paths.js';
import { UserError } from '../src/util/errors.js';
import { commands } from '../src/cli/commands.js';
import { writeReport } from '../src/report/report.js';
import { fixture } from './helpers.js';

const clip = fixture('clip-dev', 'model');
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'ous-classes-'));
const at = (...p: string[]) => path.join(root, ...p);

// The commands run in this process (one libtorch, one CLIP and detector load for the whole file);
// the text they print is captured. The test runner's own messages to its parent (buffers, written
// whenever the event loop turns) pass through. `ous(...)` rejects with the command's error.
async function ous(args: string[]): Promise<string> {
  const cmd = await commands.find((c) => c.name === args[0])!.load();
  const out: string[] = [];
  const write = process.stdout.write;
  process.stdout.write = ((s: string | Uint8Array, ...rest: never[]) =>
    typeof s === 'string'
      ? (out.push(s), true)
      : write.call(process.stdout, s, ...rest)) as typeof process.stdout.write;
  try {
    assert.equal(await cmd.run(args.slice(1)), 0, `ous ${args.join(' ')}`);
  } finally {
    process.stdout.write = write;
  }
  return out.join('');
}
const lastJson = (s: string) => JSON.parse(s.trim().split('\n').pop()!);
const readJson = (...p: string[]) => JSON.parse(fs.readFileSync(path.join(...p), 'utf8'));
const tiny = [
  '--set',
  'epochs=1',
  '--set',
  'tfeLayers=1',
  '--set',
  'promptLength=4',
  '--set',
  'heads=2',
  '--set',
  'valFraction=0.5',
];

// SPEC.md §1, written out: 0 negative, 1 neutral, 2 positive; MAFW's four extra classes are negative.
const SPEC_DFEW = {
  classNames: ['happiness', 'sadness', 'neutral', 'anger', 'surprise', 'disgust', 'fear'],
  polarityOfClass: [2, 0, 1, 0, 2, 0, 0],
};
const SPEC_MAFW = {
  classNames: [
    'anger',
    'disgust',
    'fear',
    'happiness',
    'neutral',
    'sadness',
    'surprise',
    'contempt',
    'anxiety',
    'helplessness',
    'disappointment',
  ],
  polarityOfClass: [0, 0, 0, 2, 1, 0, 2, 0, 0, 0, 0],
};

const labelMatchingTitle =
  'labels match classes in any case and through synonyms; ' +
  "known classes get SPEC.md's polarities; DFEW's defaults are unchanged";
test(labelMatchingTitle, () => {
  assert.deepEqual(
    ['Happy', 'SADNESS', 'neutral', 'angry', 'Surprised', 'disgusted', 'fearful', '6'].map((l) =>
      labelIndex(l, DFEW_CLASSES),
    ),
    [0, 1, 2, 3, 4, 5, 6, 6],
  );
  assert.deepEqual(
    ['anger', 'Happiness', 'happy', 'Contempt', 'anxious', 'helpless', 'Disappointed'].map((l) =>
      labelIndex(l, MAFW_CLASSES),
    ),
    [0, 3, 3, 7, 8, 9, 10],
  );
  // A class named with a synonym still matches its other spellings.
  assert.equal(labelIndex('Happiness', ['sad', 'happy']), 1);
  assert.throws(
    () => labelIndex('grumpy', DFEW_CLASSES),
    /unknown label 'grumpy' \(the classes are happiness, sadness, .*, fear, or 0\.\.6\)/,
  );
  assert.throws(() => labelIndex('7', DFEW_CLASSES), /unknown label '7'/);
  assert.throws(() => labelIndex('contempt', DFEW_CLASSES), /unknown label 'contempt'/);

  assert.deepEqual(resolveClassSet(DFEW_CLASSES), SPEC_DFEW);
  assert.deepEqual(resolveClassSet(MAFW_CLASSES), SPEC_MAFW);
  // What a DFEW run trains with when nothing is said, and the synthetic benchmark's seven classes.
  const d = resolveOusConfig({});
  assert.deepEqual({ classNames: d.classNames, polarityOfClass: d.polarityOfClass }, SPEC_DFEW);
  assert.equal(d.polarity, true);
  assert.deepEqual(benchmarkClasses(), SPEC_DFEW);

  assert.deepEqual(parseClassList(' Pain , no pain'), ['Pain', 'no pain']);
  assert.throws(() => parseClassList('happy,Happiness'), /'happy' and 'Happiness' are the same class/);
  assert.throws(() => parseClassList('pain'), /two or more class names/);
  assert.deepEqual(
    [...parsePolarityMap('Pain=Negative, no pain=positive')],
    [
      ['pain', 0],
      ['no pain', 2],
    ],
  );
  assert.throws(() => parsePolarityMap('pain=negative,Pain=neutral'), /--polarity gives 'Pain' twice/);
  assert.throws(
    () => parsePolarityMap('pain=bad'),
    /--polarity expects class=negative\|neutral\|positive items .*not 'pain=bad'/,
  );
  // Given polarities win over the known map; a polarity for a class that is not there is an error.
  assert.deepEqual(
    resolveClassSet(['pain', 'happy'], { polarity: parsePolarityMap('pain=negative,happy=neutral') }).polarityOfClass,
    [0, 1],
  );
  assert.throws(
    () => resolveClassSet(['pain', 'calm'], { polarity: parsePolarityMap('pain=negative,fear=negative') }),
    /--polarity names 'fear', not among the classes \(pain, calm\)/,
  );
  assert.deepEqual(resolveClassSet(['pain', 'calm'], { noPolarity: true }), {
    classNames: ['pain', 'calm'],
    polarityOfClass: null,
  });
  assert.throws(
    () => resolveOusConfig({ classNames: ['a', 'b'], polarityOfClass: null }),
    /polarity: needs polarity labels/,
  );
});

const unknownPolarityTitle =
  'a class with no known polarity and none given is a one-line error that says how to give it; nothing is written';
test(unknownPolarityTitle, async () => {
  fs.writeFileSync(at('pain.csv'), 'path,label\nx.mp4,pain\n');
  const args = [
    'extract',
    '--views', // one view (the default is 5): these tests are not about augmentation
    '1',
    '--dataset',
    'manifest',
    '--manifest',
    at('pain.csv'),
    '--classes',
    'pain,no pain,neutral',
    '--clip',
    clip,
    '--out',
    at('cache-pain'),
  ];
  const r = spawnSync(process.execPath, [path.join(packageRoot(), 'dist', 'src', 'cli', 'main.js'), ...args], {
    encoding: 'utf8',
  });
  assert.equal(r.status, 1);
  assert.equal(
    r.stderr,
    "ous: no polarity is known for 'pain', 'no pain': give each with --polarity pain=negative,no pain=negative " +
      '(negative, neutral or positive), or extract with --no-polarity to train without the polarity loss\n',
  );
  assert.equal(fs.existsSync(at('cache-pain')), false);
  await assert.rejects(
    ous(['extract', '--dataset', 'dfew', '--root', root, '--classes', 'a,b', '--clip', clip, '--out', at('cache-x')]),
    (e: Error) => e instanceof UserError && /^extract: --classes is for --dataset manifest/.test(e.message),
  );
});

const elevenClassesTitle =
  'the synthetic benchmark with 11 classes: its ceilings by hand, then extract, train and evaluate end to end';
test(elevenClassesTitle, async () => {
  // Face alone: 9 distinct faces for 11 balanced classes. Face and scene: the two ambiguous pairs
  // (different polarities) as in the 7-class case, every other class alone with its face.
  assert.equal(ceilings(0.9, 11).face.war, 9 / 11);
  const pair = 2 * (0.9 + 0.1 / 3) + 0.1 / 3;
  assert.ok(Math.abs(ceilings(0.9, 11).faceScene.war - (7 + 2 * pair) / 11) < 1e-12);
  const bench = await generateBenchmark(
    {
      out: at('bench11'),
      seed: 1,
      trainPerClass: 2,
      testPerClass: 1,
      frames: 2,
      width: 48,
      height: 36,
      agreement: 0.9,
      classes: 11,
    },
    { progress: false },
  );
  assert.equal(bench.clips.length, 33);
  assert.deepEqual([...new Set(bench.clips.map((c) => c.label))], [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  const names = benchmarkClasses(11).classNames;
  assert.deepEqual(names, [...SPEC_DFEW.classNames, 'contempt', 'anxiety', 'helplessness', 'disappointment']);
  const e = lastJson(
    await ous([
      'extract',
      '--views',
      '1',
      '--dataset',
      'manifest',
      '--manifest',
      bench.manifest,
      '--classes',
      names.join(','),
      '--clip',
      clip,
      '--out',
      at('cache11'),
      '--frames',
      '2',
      '--json',
    ]),
  );
  assert.deepEqual([e.done, e.failed.length], [33, 0]);
  assert.deepEqual(readJson(at('cache11'), 'cache.json').polarityOfClass, [2, 0, 1, 0, 2, 0, 0, 0, 0, 0, 0]);
  await ous(['train', '--cache', at('cache11'), '--out', at('run11'), ...tiny]);
  const m = lastJson(await ous(['eval', '--run', at('run11'), '--json']));
  assert.deepEqual(Object.keys(m.perClassRecall), names);
  assert.equal(m.n, 11);
  assert.equal(m.confusion.length, 11);
  assert.ok(m.confusion.every((row: number[]) => row.length === 11 && row.reduce((a, b) => a + b, 0) === 1));
  assert.equal(readJson(at('run11'), 'config.json').ous.classNames.length, 11);
});

const ownLabelsTitle =
  'a manifest with its own labels and polarity map trains and ' +
  'predicts with those names; --no-polarity trains without L_pol';
test(ownLabelsTitle, async () => {
  // Videos of three drawn faces, relabelled with the user's own words (mixed case).
  const bench = await generateBenchmark(
    {
      out: at('bench3'),
      seed: 2,
      trainPerClass: 3,
      testPerClass: 1,
      frames: 2,
      width: 48,
      height: 36,
      agreement: 0.9,
      classes: 3,
    },
    { progress: false },
  );
  const word = ['Smile', 'FROWN', 'blank'];
  const rows = bench.clips.map(
    (c) => `${path.relative(at('bench3'), c.file)},${word[c.label]},${c.split},${c.faceBox.join(' ')}`,
  );
  fs.writeFileSync(at('bench3', 'mine.csv'), ['path,label,split,box', ...rows].join('\n') + '\n');
  const classes = ['frown', 'smile', 'blank']; // label order is the --classes order, not the manifest's
  const base = [
    'extract',
    '--views',
    '1',
    '--dataset',
    'manifest',
    '--manifest',
    at('bench3', 'mine.csv'),
    '--classes',
    classes.join(','),
    '--clip',
    clip,
    '--frames',
    '2',
    '--json',
  ];
  await ous([...base, '--out', at('cache-mine'), '--polarity', 'smile=positive,frown=negative,blank=neutral']);
  const info = readJson(at('cache-mine'), 'cache.json');
  assert.deepEqual([info.classNames, info.polarityOfClass], [classes, [0, 2, 1]]);

  await ous(['train', '--cache', at('cache-mine'), '--out', at('run-mine'), ...tiny]);
  const conf = readJson(at('run-mine'), 'config.json').ous;
  assert.deepEqual([conf.classNames, conf.polarityOfClass, conf.polarity], [classes, [0, 2, 1], true]);
  const firstTerms = (run: string) =>
    JSON.parse(fs.readFileSync(path.join(run, 'metrics.jsonl'), 'utf8').split('\n')[0]!).train.terms;
  assert.ok(Number.isFinite(firstTerms(at('run-mine')).pol), 'L_pol is trained');
  const m = lastJson(await ous(['eval', '--run', at('run-mine'), '--json']));
  assert.deepEqual(Object.keys(m.perClassRecall), classes);
  const text = await ous(['eval', '--run', at('run-mine')]);
  assert.match(text, /recall frown [\d.-]+ +smile [\d.-]+ +blank /);
  assert.match(text, /in the order frown, smile, blank\)\n +frown +\d+ +\d+ +\d+\n +smile/);
  const test0 = bench.clips.find((c) => c.split === 'test')!;
  const p = lastJson(
    await ous(['predict', test0.file, '--run', at('run-mine'), '--box', test0.faceBox.join(' '), '--json']),
  );
  assert.deepEqual(Object.keys(p.probabilities), classes);
  assert.ok(classes.includes(p.emotion) && classes.includes(p.sceneEffect.emotionWithoutScene));
  assert.deepEqual(Object.keys(p.polarity), ['negative', 'neutral', 'positive']);
  const report = await writeReport({
    title: 'mine',
    runs: [{ name: 'mine', dir: at('run-mine') }],
    out: at('report-mine'),
  });
  assert.match(fs.readFileSync(report.markdown, 'utf8'), /^\| +\| UAR \| WAR \| frown \| smile \| blank \|$/m);
  const confusion = fs.readFileSync(at('report-mine', 'figures', 'confusion-mine.svg'), 'utf8');
  assert.ok(classes.every((c) => confusion.includes(`>${c}</text>`)) && !confusion.includes('>happiness<'));

  // The classes come from the cache: a config naming others is an error.
  await assert.rejects(
    ous(['train', '--cache', at('cache-mine'), '--out', at('run-clash'), '--set', 'classNames=["a","b","c"]']),
    new RegExp(
      /^UserError: classNames comes from the cache \(.*\["frown","smile","blank"\]\)/.source +
        /, not \["a","b","c"\]: set the classes when extracting/.source,
    ),
  );

  // Without polarity labels: the cache records none, training drops L_pol, predict shows no polarity.
  await ous([...base, '--out', at('cache-nopol'), '--no-polarity']);
  assert.equal(readJson(at('cache-nopol'), 'cache.json').polarityOfClass, null);
  await ous(['train', '--cache', at('cache-nopol'), '--out', at('run-nopol'), ...tiny]);
  assert.equal(readJson(at('run-nopol'), 'config.json').ous.polarity, false);
  const noPol = firstTerms(at('run-nopol'));
  assert.ok(!('pol' in noPol) && Number.isFinite(noPol.sim), JSON.stringify(noPol));
  const q = lastJson(
    await ous(['predict', test0.file, '--run', at('run-nopol'), '--box', test0.faceBox.join(' '), '--json']),
  );
  assert.equal(q.polarity, null);
  await assert.rejects(
    ous(['train', '--cache', at('cache-nopol'), '--out', at('run-forced'), '--set', 'polarity=true']),
    /polarity=true needs polarity labels, and .*cache-nopol has none/,
  );
  // The same ablation on a cache that has polarity labels: --set polarity=false.
  await ous(['train', '--cache', at('cache-mine'), '--out', at('run-ablate'), ...tiny, '--set', 'polarity=false']);
  assert.ok(!('pol' in firstTerms(at('run-ablate'))));
});

// A made-up MAFW tree: a clip of each class (a colour each), and a second clip of anger and disgust
// so that each fold's training split has classes with two clips (for validation). Fold 1 tests
// classes 2..6, fold 2 classes 6..10; class 6 is tested in both folds (its one clip).
const colours = ['red', 'green', 'blue', 'yellow', 'orange', 'purple', 'white', 'gray', 'pink', 'brown', 'cyan'];
const FOLD_TESTS = [
  [2, 3, 4, 5, 6],
  [6, 7, 8, 9, 10],
];
function mafwTree(dir: string): void {
  fs.mkdirSync(path.join(dir, 'data', 'clips'), { recursive: true });
  const clips = [...MAFW_CLASSES.keys(), 0, 1].map((cls, i) => ({
    file: `${String(i + 1).padStart(5, '0')}.mp4`,
    cls,
  }));
  for (const c of clips) {
    execFileSync('ffmpeg', [
      '-v',
      'error',
      '-y',
      '-f',
      'lavfi',
      '-i',
      `color=c=${colours[c.cls]}:size=32x24:rate=5`,
      '-t',
      '0.4',
      '-pix_fmt',
      'yuv420p',
      path.join(dir, 'data', 'clips', c.file),
    ]);
  }
  FOLD_TESTS.forEach((tested, i) => {
    const lists = path.join(dir, 'Train & Test Set', 'single', 'no_caption', `set_${i + 1}`);
    fs.mkdirSync(lists, { recursive: true });
    for (const split of ['train', 'test']) {
      const mine = clips.filter((c) => tested.includes(c.cls) === (split === 'test'));
      fs.writeFileSync(
        path.join(lists, `${split}.txt`),
        mine.map((c) => `${c.file} ${MAFW_CLASSES[c.cls]}`).join('\n') + '\n',
      );
    }
  });
}

const mafwTitle =
  'MAFW: the reader checks everything first; two folds extract, train and evaluate; eval --folds averages them';
test(mafwTitle, async () => {
  const mafw = at('MAFW');
  mafwTree(mafw);
  const f1 = readMafw(mafw, 1);
  assert.equal(f1.length, 13);
  assert.deepEqual(
    f1.filter((e) => e.split === 'test').map((e) => [e.id, e.label]),
    [
      ['00003', 2],
      ['00004', 3],
      ['00005', 4],
      ['00006', 5],
      ['00007', 6],
    ],
  );
  assert.deepEqual(
    f1.filter((e) => e.split === 'train').map((e) => e.label),
    [0, 1, 7, 8, 9, 10, 0, 1],
  );
  assert.ok(f1.every((e) => e.source === path.join(mafw, 'data', 'clips', `${e.id}.mp4`)));

  // A broken fold: a missing clip, an unknown emotion, a malformed line, a clip listed twice, no test.txt: all at once.
  const bad = path.join(mafw, 'Train & Test Set', 'single', 'no_caption', 'set_3');
  fs.mkdirSync(bad, { recursive: true });
  fs.writeFileSync(
    path.join(bad, 'train.txt'),
    '00001.mp4 anger\n09999.mp4 fear\n00002.mp4 grumpy\n00003.mp4\n00001.mp4 anger\n',
  );
  assert.throws(
    () => readMafw(mafw, 3),
    (err: Error) => {
      assert.ok(err instanceof UserError);
      assert.match(err.message, /^MAFW at .*, fold 3: 5 problem\(s\):/);
      for (const p of [
        /train\.txt:2: .*09999\.mp4 is missing/,
        /train\.txt:3: unknown label 'grumpy'/,
        /train\.txt:4: expected "<clip file> <emotion>", found '00003\.mp4'/,
        /train\.txt:5: 00001\.mp4 is listed again \(first at .*train\.txt:1\)/,
        /set_3\/test\.txt is missing/,
      ])
        assert.match(err.message, p);
      return true;
    },
  );
  assert.throws(() => readMafw(mafw, 6), /MAFW has folds 1\.\.5, not 6/);

  const runs: string[] = [];
  for (const k of [1, 2]) {
    const e = lastJson(
      await ous([
        'extract',
        '--views',
        '1',
        '--dataset',
        'mafw',
        '--root',
        mafw,
        '--fold',
        String(k),
        '--clip',
        clip,
        '--out',
        at(`cache-mafw-${k}`),
        '--frames',
        '1',
        '--json',
      ]),
    );
    assert.deepEqual([e.done, e.failed.length], [13, 0]);
    const info = readJson(at(`cache-mafw-${k}`), 'cache.json');
    assert.deepEqual(
      [info.dataset, info.fold, info.classNames, info.polarityOfClass],
      ['mafw', k, SPEC_MAFW.classNames, SPEC_MAFW.polarityOfClass],
    );
    await ous(['train', '--cache', at(`cache-mafw-${k}`), '--out', at(`run-mafw-${k}`), ...tiny]);
    runs.push(at(`run-mafw-${k}`));
  }
  const each = [];
  for (const r of runs) each.push(lastJson(await ous(['eval', '--run', r, '--json'])));
  assert.deepEqual(
    each.map((m) => m.n),
    [5, 5],
  );
  const all = lastJson(await ous(['eval', '--folds', ...runs, '--json']));
  assert.deepEqual(Object.keys(all.mean.perClassRecall), SPEC_MAFW.classNames);
  assert.ok(Math.abs(all.mean.uar - (each[0].uar + each[1].uar) / 2) < 1e-12);
  assert.ok(Math.abs(all.mean.war - (each[0].war + each[1].war) / 2) < 1e-12);
  // A class tested in one fold only keeps that fold's recall; class 6, tested in both, is their mean;
  // classes never tested have none.
  const recall = (m: { perClassRecall: Record<string, number | null> }, c: number) =>
    m.perClassRecall[SPEC_MAFW.classNames[c]!];
  assert.equal(recall(all.mean, 2), recall(each[0], 2));
  assert.equal(recall(all.mean, 10), recall(each[1], 10));
  assert.ok(Math.abs(recall(all.mean, 6)! - (recall(each[0], 6)! + recall(each[1], 6)!) / 2) < 1e-12);
  assert.equal(recall(all.mean, 0), null);
  // Folds of different data sets, the same fold twice, or other settings do not average: one line says what differs.
  await assert.rejects(
    ous(['eval', '--folds', runs[0]!, at('run11'), '--json']),
    /eval --folds averages distinct folds of one data set .*: dataset \(.*run-mafw-1: "mafw", .*run11: "\w+"\)/,
  );
  fs.cpSync(runs[0]!, at('run-mafw-1b'), { recursive: true });
  await assert.rejects(
    ous(['eval', '--folds', ...runs, at('run-mafw-1b'), '--json']),
    /eval --folds .*: .*run-mafw-1 and .*run-mafw-1b are both fold 1$/m,
  );
  fs.cpSync(runs[1]!, at('run-mafw-2b'), { recursive: true });
  const edited = JSON.parse(fs.readFileSync(at('run-mafw-2b', 'config.json'), 'utf8'));
  fs.writeFileSync(
    at('run-mafw-2b', 'config.json'),
    JSON.stringify({ ...edited, train: { ...edited.train, lr: 0.1 } }),
  );
  await assert.rejects(
    ous(['eval', '--folds', runs[0]!, at('run-mafw-2b'), '--json']),
    /eval --folds .*: train\.lr \(.*run-mafw-1: 0\.002, .*run-mafw-2b: 0\.1\)$/m,
  );
});
