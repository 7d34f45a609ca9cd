// The built-in scene-guided benchmark: the paper's "Rigid Cognitive Problem" made measurable.
// Each clip is a real video file (ffmpeg, h264) of a drawn face whose expression unfolds over time,
// in a scene. By design some faces are ambiguous: surprise and fear share one face, sadness and
// neutral another, so the face alone cannot tell them apart. The scene carries a polarity cue
// (bright and sunny with flowers / grey / dark with rain) that shows the true emotion's polarity
// with probability `agreement`, else a random polarity. The generator also computes the accuracy
// ceilings of a perfect observer: from the face alone, and from face plus scene. `classes: N` draws
// the first N of DFEW's seven and MAFW's four others (each of those with a face of its own).
// `persons: 2` puts two faces of different emotions side by side in one scene, each labelled, so
// that per-person accuracy can be measured: the scene sets one mood for both (see generateBenchmark).
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { rng } from '../util/random.js';
import { trackTempFile, untrackTempFile, writeFileAtomic } from '../util/fs.js';
import { Progress } from '../util/progress.js';
import { UserError } from '../util/errors.js';
import { canonicalClass, resolveClassSet, type ClassSet } from '../data/classes.js';

/** The classes it can draw, as its manifests spell them: DFEW's seven (the default), then MAFW's four others. */
export const CLASSES = [
  'happy',
  'sad',
  'neutral',
  'angry',
  'surprise',
  'disgust',
  'fear',
  'contempt',
  'anxiety',
  'helplessness',
  'disappointment',
] as const;
/** Which drawn face each class shows: classes sharing a face are indistinguishable by the face. */
// happy | sad = neutral | angry | surprise = fear | disgust | one face each for the rest
const FACE_OF = [0, 1, 1, 2, 3, 4, 3, 5, 6, 7, 8];

/** The class set of a benchmark with the first `n` classes: the prompt words and polarities (SPEC.md §1). */
export function benchmarkClasses(n = 7): ClassSet {
  if (!(Number.isInteger(n) && n >= 2 && n <= CLASSES.length))
    throw new UserError(`the synthetic benchmark has 2..${CLASSES.length} classes, not ${n}`);
  return resolveClassSet(CLASSES.slice(0, n).map(canonicalClass));
}

// The drawn expressions at full intensity.
interface Expression {
  mouthCurve: number; // + smile, − frown
  mouthOpen: number; // 0 closed .. 1 wide open
  brow: number; // + raised, − lowered toward the nose (anger)
  eyeOpen: number; // eye height scale
  skew: number; // mouth raised on one side (disgust)
}
const FACES: Expression[] = [
  { mouthCurve: 1, mouthOpen: 0.25, brow: 0.1, eyeOpen: 0.8, skew: 0 }, // happy
  { mouthCurve: -0.45, mouthOpen: 0, brow: 0.35, eyeOpen: 0.75, skew: 0 }, // sad / neutral
  { mouthCurve: -0.6, mouthOpen: 0.15, brow: -1, eyeOpen: 0.7, skew: 0 }, // angry
  { mouthCurve: 0, mouthOpen: 1, brow: 1, eyeOpen: 1.4, skew: 0 }, // surprise / fear
  { mouthCurve: -0.3, mouthOpen: 0.1, brow: -0.4, eyeOpen: 0.55, skew: 0.8 }, // disgust
  { mouthCurve: 0.35, mouthOpen: 0, brow: 0, eyeOpen: 0.9, skew: -0.8 }, // contempt: a one-sided smirk
  { mouthCurve: -0.2, mouthOpen: 0.35, brow: 0.6, eyeOpen: 1.2, skew: 0 }, // anxiety
  { mouthCurve: -0.8, mouthOpen: 0, brow: 0.8, eyeOpen: 0.6, skew: 0 }, // helplessness
  { mouthCurve: -0.9, mouthOpen: 0, brow: -0.2, eyeOpen: 0.45, skew: 0 }, // disappointment: eyes down
];
const REST: Expression = { mouthCurve: 0, mouthOpen: 0, brow: 0, eyeOpen: 1, skew: 0 };

export interface SyntheticOptions {
  out: string;
  seed: number;
  trainPerClass: number;
  testPerClass: number;
  frames: number; // frames per video
  width: number;
  height: number;
  // the scene shows the true polarity with this probability,
  // else a uniformly random one (0: an uninformative scene)
  agreement: number;
  classes?: number; // the first N of CLASSES (7)
  persons?: 1 | 2; // faces per scene (1); 2: two faces side by side, each with its own label
}

/** One face of a two-person clip. */
export interface SyntheticPerson {
  label: number;
  // first: drawn first (labels balanced over the classes;
  // the cue follows their polarity); second: their companion
  role: 'first' | 'second';
  faceBox: [number, number, number, number]; // the drawn face's box, the same in every frame
}

export interface SyntheticClip {
  file: string;
  label: number;
  split: 'train' | 'test';
  cue: number; // the polarity the scene shows
  faceBox: [number, number, number, number]; // the drawn face's box, the same in every frame
  // two-person clips: both faces, left to right; label and faceBox above
  // are the first-drawn person's (the scene follows their polarity)
  persons?: SyntheticPerson[];
}

export interface Ceilings {
  face: { war: number; uar: number };
  faceScene: { war: number; uar: number };
}

/** The ceilings of each person of a two-person clip (their labels are not distributed alike). */
export interface PersonCeilings {
  first: Ceilings;
  second: Ceilings;
}

type Rgb = [number, number, number];

class Canvas {
  readonly data: Uint8Array;
  constructor(
    readonly w: number,
    readonly h: number,
    bg: Rgb,
  ) {
    this.data = new Uint8Array(w * h * 3);
    for (let i = 0; i < w * h; i++) this.data.set(bg, i * 3);
  }
  /** Pixels inside an axis-aligned ellipse. */
  ellipse(cx: number, cy: number, rx: number, ry: number, c: Rgb): void {
    for (let y = Math.max(0, Math.floor(cy - ry)); y <= Math.min(this.h - 1, Math.ceil(cy + ry)); y++) {
      for (let x = Math.max(0, Math.floor(cx - rx)); x <= Math.min(this.w - 1, Math.ceil(cx + rx)); x++) {
        if (((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 <= 1) this.data.set(c, (y * this.w + x) * 3);
      }
    }
  }
  line(x0: number, y0: number, x1: number, y1: number, c: Rgb, thick = 1): void {
    const n = Math.ceil(Math.hypot(x1 - x0, y1 - y0) * 2) + 1;
    for (let i = 0; i <= n; i++)
      this.ellipse(x0 + ((x1 - x0) * i) / n, y0 + ((y1 - y0) * i) / n, thick / 2 + 0.3, thick / 2 + 0.3, c);
  }
}

function lerp(a: Expression, b: Expression, t: number): Expression {
  const m = (k: keyof Expression) => a[k] + (b[k] - a[k]) * t;
  return {
    mouthCurve: m('mouthCurve'),
    mouthOpen: m('mouthOpen'),
    brow: m('brow'),
    eyeOpen: m('eyeOpen'),
    skew: m('skew'),
  };
}

interface FaceDraw {
  cx: number;
  cy: number;
  r: number;
  skin: Rgb;
  face: Expression;
  drift: number; // px the face moves right over the clip
}

interface ClipDraw {
  cue: number;
  bg: Rgb;
  faces: FaceDraw[];
  objects: number[];
}

function drawFrame(o: SyntheticOptions, d: ClipDraw, t: number): Uint8Array {
  const cv = new Canvas(o.width, o.height, d.bg);
  const { w, h } = cv;
  // The scene's polarity cue: sun and flowers, a plain grey wall, or dark rain.
  if (d.cue === 2) {
    cv.ellipse(w * 0.12, h * 0.16, h * 0.12, h * 0.12, [255, 230, 60]);
    d.objects.forEach((x, i) => cv.ellipse(x * w, h * 0.9, 2.5, 2.5, i % 2 ? [230, 40, 120] : [250, 250, 250]));
  } else if (d.cue === 0) {
    d.objects.forEach((x) => cv.line(x * w, 0, x * w - h * 0.15, h, [120, 130, 160], 1));
  } else {
    cv.ellipse(w * 0.88, h * 0.2, h * 0.1, h * 0.16, [128, 128, 128]);
  }
  for (const f of d.faces) drawFace(cv, f, t);
  return cv.data;
}

function drawFace(cv: Canvas, d: FaceDraw, t: number): void {
  const { w, h } = cv;
  // The face: its expression unfolds from rest to full over the first 70% of the clip.
  const e = lerp(REST, d.face, Math.min(1, t / 0.7));
  const cx = d.cx + d.drift * t;
  const { cy, r } = d;
  // A hood of one fixed colour around the head: the face crop (the face box enlarged by 25%) then
  // shows the face and the hood only, so the scene's cue cannot reach the face stream.
  const hood = r * 1.55;
  for (let y = Math.max(0, Math.floor(cy - hood)); y < Math.min(h, Math.ceil(cy + hood)); y++) {
    for (let x = Math.max(0, Math.floor(cx - hood)); x < Math.min(w, Math.ceil(cx + hood)); x++)
      cv.data.set([70, 60, 55], (y * w + x) * 3);
  }
  cv.ellipse(cx, cy, r, r * 1.1, d.skin);
  const dark: Rgb = [30, 20, 20];
  for (const side of [-1, 1]) {
    const ex = cx + side * r * 0.38;
    const ey = cy - r * 0.2;
    cv.ellipse(ex, ey, r * 0.15, Math.max(0.8, r * 0.13 * e.eyeOpen), dark);
    // Brows: raised brows sit higher; lowered ones slant down toward the nose.
    const by = ey - r * (0.3 + 0.12 * Math.max(0, e.brow));
    const innerDrop = r * 0.15 * Math.max(0, -e.brow);
    cv.line(ex - side * r * 0.2, by + innerDrop, ex + side * r * 0.2, by, dark, 2);
  }
  const my = cy + r * 0.45;
  const hw = r * 0.42;
  if (e.mouthOpen > 0.3) cv.ellipse(cx, my, hw * (0.6 + 0.2 * e.mouthOpen), r * 0.28 * e.mouthOpen, [90, 10, 20]);
  for (let i = -10; i <= 10; i++) {
    const u = i / 10;
    const x = cx + u * hw;
    // a smile dips in the middle
    const y = my + e.mouthCurve * r * 0.3 * (1 - u * u) - e.skew * r * 0.2 * u - e.mouthCurve * r * 0.15;
    cv.ellipse(x, y, 1.4, 1.4, [120, 20, 30]);
  }
}

/** The box that covers a face wherever it drifts during the clip. */
function faceBoxOf(f: FaceDraw): [number, number, number, number] {
  const x0 = Math.min(f.cx, f.cx + f.drift) - f.r;
  return [Math.round(x0), Math.round(f.cy - f.r * 1.1), Math.round(2 * f.r + Math.abs(f.drift)), Math.round(2.2 * f.r)];
}

function writeVideo(file: string, o: SyntheticOptions, frames: Uint8Array[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const tmp = `${file}.tmp-${process.pid}.mp4`;
    const p = spawn(
      'ffmpeg',
      [
        '-v',
        'error',
        '-y',
        '-f',
        'rawvideo',
        '-pix_fmt',
        'rgb24',
        '-s',
        `${o.width}x${o.height}`,
        '-r',
        '8',
        '-i',
        'pipe:0',
        '-c:v',
        'libx264',
        '-crf',
        '12',
        '-pix_fmt',
        'yuv444p',
        tmp,
      ],
      { stdio: ['pipe', 'ignore', 'pipe'] },
    );
    trackTempFile(tmp, p); // ffmpeg writes it while we wait: stopped and removed if the process ends first
    let err = '';
    p.stderr.on('data', (d: Buffer) => (err += d.toString()));
    p.on('error', reject);
    p.on('close', (code) => {
      untrackTempFile(tmp);
      if (code === 0) {
        fs.renameSync(tmp, file);
        resolve();
      } else {
        fs.rmSync(tmp, { force: true });
        reject(new Error(`ffmpeg could not write ${file}: ${err.trim()}`));
      }
    });
    p.stdin.on('error', () => {}); // ffmpeg exiting early: its exit code and stderr say why
    for (const f of frames) p.stdin.write(f);
    p.stdin.end();
  });
}

/** The classes a first-drawn person of class `first` may be paired with (drawn uniformly): one scene, one mood. */
function companions(first: number, polarity: number[]): number[] {
  const others = polarity.map((_, c) => c).filter((c) => c !== first);
  const same = others.filter((c) => polarity[c] === polarity[first]);
  return same.length ? same : others;
}

/**
 * A perfect observer's accuracy given the joint probability of (class, cue), joint[c][s]: it
 * decides the most probable class of the face group (ties to the lower index), alone or with the
 * cue; recall per class, UAR over the classes that occur, WAR weighted by their probability.
 */
function observer(joint: number[][]): Ceilings {
  const classes = joint.length;
  const prior = joint.map((row) => row.reduce((a, b) => a + b, 0));
  const present = prior.map((_, c) => c).filter((c) => prior[c]! > 0);
  const groups = [...new Set(FACE_OF.slice(0, classes))];
  const rates = (useCue: boolean) => {
    const hit = new Array<number>(classes).fill(0); // P(decided = c, class = c)
    for (const g of groups) {
      const members = [...Array(classes).keys()].filter((c) => FACE_OF[c] === g);
      for (const s of useCue ? [0, 1, 2] : [-1]) {
        const score = (c: number) => (useCue ? joint[c]![s]! : prior[c]!);
        const best = members.reduce((a, b) => (score(b) > score(a) ? b : a));
        hit[best]! += score(best);
      }
    }
    const recall = present.map((c) => hit[c]! / prior[c]!);
    return { war: hit.reduce((a, b) => a + b, 0), uar: recall.reduce((a, b) => a + b, 0) / recall.length };
  };
  return { face: rates(false), faceScene: rates(true) };
}

/** Both persons' ceilings in the two-person benchmark (the first's equal ceilings()). */
export function twoPersonCeilings(agreement: number, classes = 7): PersonCeilings {
  const polarity = benchmarkClasses(classes).polarityOfClass!;
  const cueGiven = (c: number, s: number) => (s === polarity[c] ? agreement : 0) + (1 - agreement) / 3;
  const first = polarity.map((_, c) => [0, 1, 2].map((s) => cueGiven(c, s) / classes));
  const second = polarity.map(() => [0, 0, 0]);
  polarity.forEach((_, a) => {
    const pool = companions(a, polarity);
    for (const b of pool) for (const s of [0, 1, 2]) second[b]![s]! += cueGiven(a, s) / classes / pool.length;
  });
  return { first: observer(first), second: observer(second) };
}

/** A perfect observer's accuracy: from the face group alone, and from the face group and the cue. */
export function ceilings(agreement: number, classes = 7): Ceilings {
  const polarity = benchmarkClasses(classes).polarityOfClass!;
  const cueGiven = (c: number, s: number) => (s === polarity[c] ? agreement : 0) + (1 - agreement) / 3;
  const groups = [...new Set(FACE_OF.slice(0, classes))];
  // Decide per observation the most probable class (ties to the lower index); recall per class.
  const recall = (useCue: boolean) => {
    const r = new Array<number>(classes).fill(0);
    for (const g of groups) {
      const members = [...Array(classes).keys()].filter((c) => FACE_OF[c] === g);
      for (const s of useCue ? [0, 1, 2] : [-1]) {
        const score = (c: number) => (useCue ? cueGiven(c, s) : 1);
        const best = members.reduce((a, b) => (score(b) > score(a) ? b : a));
        r[best]! += useCue ? cueGiven(best, s) : 1;
      }
    }
    return r;
  };
  const face = recall(false);
  const scene = recall(true);
  const mean = (v: number[]) => v.reduce((a, b) => a + b, 0) / v.length;
  // Classes are balanced, so WAR equals UAR here.
  return { face: { war: mean(face), uar: mean(face) }, faceScene: { war: mean(scene), uar: mean(scene) } };
}

/**
 * Writes the videos, a manifest (path,label,split,box) and benchmark.json; returns what it made.
 * Two persons (`persons: 2`): the first-drawn person's labels are balanced over the classes and
 * the scene's cue follows their polarity, as with one person; the second person's label is
 * another class of the same polarity where the class set has one (happy with surprise, the
 * negative ones among themselves), else any other class (a neutral person's companion): one scene,
 * one mood, two different emotions. Sides are drawn at random; `persons` lists them left to right
 * (the order person tracks number them). manifest.csv names the first-drawn person of each clip
 * with its box (so a one-subject data set extracts as today); persons.csv
 * (path,person,label,split,box,role) names both. `ceilings` are the first-drawn person's;
 * `personCeilings` gives both (the companion's labels are not balanced: never neutral among DFEW's seven).
 */
export async function generateBenchmark(
  o: SyntheticOptions,
  opts: { progress?: boolean } = {},
): Promise<{ manifest: string; clips: SyntheticClip[]; ceilings: Ceilings; personCeilings?: PersonCeilings }> {
  const n = o.classes ?? 7;
  const polarity = benchmarkClasses(n).polarityOfClass!;
  const random = rng(o.seed);
  const u = (a: number, b: number) => a + (b - a) * random();
  const clips: SyntheticClip[] = [];
  fs.mkdirSync(path.join(o.out, 'videos'), { recursive: true });
  const plan: Array<{ label: number; split: 'train' | 'test' }> = [];
  for (const split of ['train', 'test'] as const) {
    for (let k = 0; k < (split === 'train' ? o.trainPerClass : o.testPerClass); k++)
      for (let c = 0; c < n; c++) plan.push({ label: c, split });
  }
  const progress = new Progress('generate', plan.length, { unit: 'videos', silent: opts.progress === false });
  const writing = new Set<Promise<void>>();
  for (const [i, { label, split }] of plan.entries()) {
    const cue = random() < o.agreement ? polarity[label]! : Math.floor(random() * 3);
    const bright = u(0.92, 1.08);
    const base: Rgb = cue === 2 ? [240, 190, 90] : cue === 1 ? [150, 150, 150] : [40, 50, 90];
    const bg = base.map((v) => Math.max(0, Math.min(255, Math.round(v * bright + u(-6, 6))))) as Rgb;
    const skin = (): Rgb => [Math.round(u(215, 235)), Math.round(u(170, 190)), Math.round(u(130, 150))];
    let faces: FaceDraw[];
    let persons: SyntheticPerson[] | undefined;
    if (o.persons === 2) {
      const pool = companions(label, polarity);
      const other = pool[Math.floor(random() * pool.length)]!;
      // Smaller faces, one in each half (hoods 1.55 r wide apart); the first-drawn person's side at random.
      const labels = random() < 0.5 ? [label, other] : [other, label];
      faces = labels.map((c, k) => ({
        cx: (k === 0 ? u(0.25, 0.29) : u(0.71, 0.75)) * o.width,
        cy: u(0.5, 0.56) * o.height,
        r: u(0.15, 0.17) * o.height,
        skin: skin(),
        face: FACES[FACE_OF[c]!]!,
        drift: u(-0.01, 0.01) * o.width,
      }));
      persons = labels.map((c, k) => ({
        label: c,
        role: c === label ? 'first' : 'second',
        faceBox: faceBoxOf(faces[k]!),
      }));
    } else {
      const r = u(0.23, 0.25) * o.height;
      faces = [
        {
          cx: u(0.47, 0.53) * o.width,
          cy: u(0.48, 0.52) * o.height,
          r,
          skin: skin(),
          face: FACES[FACE_OF[label]!]!,
          drift: u(-0.01, 0.01) * o.width,
        },
      ];
    }
    const d: ClipDraw = { cue, bg, faces, objects: Array.from({ length: 5 }, () => u(0.05, 0.95)) };
    const frames = Array.from({ length: o.frames }, (_, f) => drawFrame(o, d, o.frames > 1 ? f / (o.frames - 1) : 1));
    const named = persons ? persons.map((p) => CLASSES[p.label]).join('+') : CLASSES[label];
    const file = path.join(o.out, 'videos', `${split}_${String(i).padStart(4, '0')}_${named}.mp4`);
    // Encoders run a few at a time: spawning ffmpeg, not drawing, is what takes the time.
    if (!fs.existsSync(file)) {
      if (writing.size >= 4) await Promise.race(writing);
      const job: Promise<void> = writeVideo(file, o, frames).then(() => void writing.delete(job));
      writing.add(job);
    }
    const faceBox = persons ? persons.find((p) => p.role === 'first')!.faceBox : faceBoxOf(faces[0]!);
    clips.push({ file, label, split, cue, faceBox, ...(persons ? { persons } : {}) });
    progress.tick();
  }
  await Promise.all(writing);
  progress.finish();
  const manifest = path.join(o.out, 'manifest.csv');
  writeFileAtomic(
    manifest,
    [
      'path,label,split,box',
      ...clips.map((c) => `${path.relative(o.out, c.file)},${CLASSES[c.label]},${c.split},${c.faceBox.join(' ')}`),
    ].join('\n') + '\n',
  );
  if (o.persons === 2) {
    const rows = clips.flatMap((c) =>
      c.persons!.map(
        (p, k) =>
          `${path.relative(o.out, c.file)},${k},${CLASSES[p.label]},${c.split},${p.faceBox.join(' ')},${p.role}`,
      ),
    );
    writeFileAtomic(path.join(o.out, 'persons.csv'), ['path,person,label,split,box,role', ...rows].join('\n') + '\n');
  }
  const personCeilings = o.persons === 2 ? { personCeilings: twoPersonCeilings(o.agreement, n) } : {};
  const result = { manifest, clips, ceilings: ceilings(o.agreement, n), ...personCeilings };
  writeFileAtomic(
    path.join(o.out, 'benchmark.json'),
    JSON.stringify(
      {
        options: o,
        ceilings: result.ceilings,
        ...personCeilings,
        clips: clips.map((c) => ({ ...c, file: path.relative(o.out, c.file) })),
      },
      null,
      1,
    ) + '\n',
  );
  return result;
}
