// `ous predict VIDEO --run RUN`: the emotion of a video (one of the run's classes), the scene
// polarity, and how much the scene changed the decision; per window on a video longer than one
// window. The work is src/predict/, shared with `ous serve`.
import type { Command } from './command.js';
import { UsageError } from '../util/errors.js';
import { inputFile } from '../util/fs.js';
import { COMMON, parseFlags, usageText, type Flags } from './flags.js';
import { Predictor, type RecipeReport, type WindowPrediction } from '../predict/predictor.js';
import type { SubjectRule } from '../streams/recipe.js';
import { POLARITIES } from '../ous/config.js';
import { Progress } from '../util/progress.js';
import { onInterrupt } from '../util/interrupt.js';
import { allowSlowBf16, enginePreference } from './env.js';
import { parsePrecision } from '../torch/index.js';
import { parseSubjectRule } from './extract.js';
import { displayedSize } from '../video/decode.js';
import { checkBoxInFrame } from '../util/box.js';
import { isLiveOnly } from '../video/live.js';
import { predictLive } from './predict-live.js';

export type { Prediction } from '../predict/predictor.js';

/** RFC 4180 field: quoted when it holds a comma, a quote or a line break. */
const csvField = (v: string | number | boolean) => {
  const t = String(v);
  return /[",\r\n]/.test(t) ? `"${t.replace(/"/g, '""')}"` : t;
};

/** The CSV header for a run's classes: one row per window follows (csvRow). */
export function csvHeader(classes: string[], persons = false): string {
  const cols = [
    ...(persons ? ['person'] : []),
    'start',
    'end',
    'emotion',
    ...classes.map((c) => `p_${c}`),
    ...POLARITIES.map((p) => `polarity_${p}`),
    'scene_effect',
    'scene_changed_decision',
    'emotion_without_scene',
    'face_x',
    'face_y',
    'face_w',
    'face_h',
    'face_frames',
  ];
  return cols.map(csvField).join(',');
}

/** One window as a CSV row; polarity and the scene's effect are empty for a face-only run. */
export function csvRow(w: WindowPrediction, classes: string[], person?: number): string {
  const num = (v: number) => +v.toFixed(6);
  return [
    ...(person === undefined ? [] : [person]),
    num(w.start),
    num(w.end),
    w.emotion,
    ...classes.map((c) => num(w.probabilities[c]!)),
    ...POLARITIES.map((p) => (w.polarity ? num(w.polarity[p]!) : '')),
    w.sceneEffect ? num(w.sceneEffect.totalVariation) : '',
    w.sceneEffect ? w.sceneEffect.changedDecision : '',
    w.sceneEffect?.emotionWithoutScene ?? '',
    ...w.faceBox,
    w.faceFrames,
  ]
    .map(csvField)
    .join(',');
}

/** What the user should know about the streams: an assumed recipe, a subject other than the run's. */
function recipeNotes(r: RecipeReport, trained: SubjectRule): string[] {
  const words = (s: SubjectRule) => (Array.isArray(s) ? `"${s.join(' ')}"` : s);
  return [
    ...(r.note ? [r.note] : []),
    ...(r.subjectOverridden
      ? [`--subject ${words(r.subject)} replaces the subject the run was trained on (${words(trained)})`]
      : []),
  ];
}

const FLAGS = {
  run: {
    type: { kind: 'text' },
    value: 'RUN',
    required: true,
    help: 'a folder made by ous train (it records everything inference needs)',
  },
  clip: COMMON.clip,
  box: { type: { kind: 'box' }, value: '"x y w h"', help: "a known face box in the video's own pixels (no detection)" },
  subject: {
    type: { kind: 'text' },
    value: 'main|largest|center|"x y w h"',
    help: "which face to follow, in place of the run's (it follows the rule its cache was extracted with)",
  },
  'all-persons': {
    type: { kind: 'switch' },
    help:
      'a timeline for every person in the video, each with their own face and scene ' +
      '(persons[] in the JSON; a person column in CSV and JSON lines)',
  },
  person: {
    type: { kind: 'int', min: 0 },
    value: 'ID',
    help: 'the timeline of one person (ids as --all-persons lists them: by first appearance, then left to right)',
  },
  window: {
    type: { kind: 'seconds' },
    value: 'S',
    default: '2',
    help: 'seconds one prediction covers on a longer video',
  },
  stride: { type: { kind: 'seconds' }, value: 'S', default: '1', help: 'seconds between windows' },
  'max-seconds': COMMON.maxSeconds,
  device: COMMON.device,
  precision: COMMON.precision,
  json: { type: { kind: 'switch' }, help: 'one JSON object at the end; windows[] is the timeline' },
  jsonl: {
    type: { kind: 'switch' },
    help:
      'one JSON object per window as soon as it is classified ' +
      '({"type":"window",...}), then the summary ({"type":"summary",...})',
  },
  live: {
    type: { kind: 'switch' },
    help: 'read the file paced at real time, as a live stream (testing, demos)',
  },
  stream: {
    type: { kind: 'switch' },
    help:
      'read the file straight through the streaming path: the first window within seconds on any length ' +
      '(the main person chosen as it goes, not over the whole video)',
  },
  lookahead: {
    type: { kind: 'seconds' },
    value: 'S',
    help: 'live and --stream: seconds (2) of frames detected after a window before it is classified',
  },
  stall: {
    type: { kind: 'seconds' },
    value: 'S',
    help: 'a live source that sends no frame for this long has stalled: one line, the summary, exit 1 (10)',
  },
  csv: {
    type: { kind: 'switch' },
    help:
      'one row per window as soon as it is classified: start, end, emotion, ' +
      "each class's probability, polarity, the scene's effect, the face box",
  },
} as const satisfies Flags;

const noop = () => {};

/**
 * A --csv or --jsonl cut short by a signal ends with a line saying so (the CSV's starts with '#', the
 * comment readers skip), so a file written by a redirect cannot be taken for a whole timeline.
 */
function markIncomplete(o: { csv?: boolean; jsonl?: boolean }, signal: NodeJS.Signals, windows: number): string {
  const why = `interrupted by ${signal} after ${windows} window(s)`;
  if (o.jsonl) process.stdout.write(JSON.stringify({ type: 'incomplete', reason: why, windowCount: windows }) + '\n');
  else process.stdout.write(`# incomplete: ${why}\n`);
  return `the ${o.csv ? 'CSV' : 'JSON lines'} on stdout stop after ${windows} window(s), marked incomplete`;
}

export const predict: Command = {
  usage: usageText('predict', FLAGS, {
    positionals: 'VIDEO',
    notes:
      'Progress (the frames being detected, then window k of N with an ETA) goes to stderr. ' +
      'VIDEO may be live: - (stdin), /dev/videoN, or an rtsp/rtmp/udp/srt/http URL; each window is printed as ' +
      'it completes (a window is a span of source time) with its latency and the frames of its span dropped; ' +
      'Ctrl-C prints the summary. ' +
      'A stream that stalls or breaks: one line, the summary, exit 1.',
  }),
  async run(argv) {
    const { values, positionals } = parseFlags('predict', argv, FLAGS, { positionals: 'VIDEO' });
    if (positionals.length !== 1) throw new UsageError('predict: give one VIDEO');
    if ([values.json, values.jsonl, values.csv].filter(Boolean).length > 1)
      throw new UsageError('predict: give one of --json, --jsonl and --csv');
    const device = values.device;
    const precision = parsePrecision(values.precision, device ?? 'cpu', { allowSlowBf16: allowSlowBf16() });
    // A live source (stdin, a camera, a URL) is no file to check; a file's name is made safe for ffmpeg.
    const video = isLiveOnly(positionals[0]!) ? positionals[0]! : inputFile(positionals[0]!, { folder: true });
    if (values['all-persons'] && values.person !== undefined)
      throw new UsageError('predict: give --all-persons or --person ID, not both');
    const persons = values['all-persons'] ? ('all' as const) : values.person;
    if (persons !== undefined && values.box !== undefined)
      throw new UsageError('predict: --box is one known face; it does not go with --all-persons or --person');
    const box = values.box;
    const subject = values.subject !== undefined ? parseSubjectRule(values.subject, 'predict') : undefined;
    if (subject !== undefined && (box !== undefined || persons !== undefined))
      throw new UsageError('predict: --subject chooses one face; it does not go with --box, --all-persons or --person');
    if (box) {
      const { width, height } = await displayedSize(video); // the box is in the video's own pixels
      checkBoxInFrame(box, width, height, 'predict: --box');
    }
    const streaming = isLiveOnly(video) || values.live || values.stream;
    if (values.live && values.stream) throw new UsageError('predict: give --live or --stream, not both');
    if (streaming && (box !== undefined || subject !== undefined || typeof persons === 'number'))
      throw new UsageError('predict: a live or streamed source follows the main person or --all-persons only');
    if (!streaming && values.lookahead !== undefined)
      throw new UsageError('predict: --lookahead is for a live source or --stream');
    const predictor = Predictor.load(values.run, { clip: values.clip, device, precision, engine: enginePreference() });
    if (predictor.precisionNote) process.stderr.write(`predict: ${predictor.precisionNote}\n`);
    if (streaming)
      return predictLive(predictor, {
        source: video,
        unpaced: values.stream === true,
        window: values.window,
        stride: values.stride,
        lookahead: values.lookahead,
        stall: values.stall,
        persons: persons === 'all' ? 'all' : undefined,
        format: values.json ? 'json' : values.jsonl ? 'jsonl' : values.csv ? 'csv' : 'text',
      });
    const classes = predictor.classNames;
    if (values.csv) process.stdout.write(csvHeader(classes, persons !== undefined) + '\n');
    let detecting: Progress | undefined;
    let windows: Progress | undefined;
    let streamed = 0;
    const unhook =
      values.csv || values.jsonl ? onInterrupt((signal) => markIncomplete(values, signal, streamed)) : noop;
    const r = await predictor.predict(video, {
      faceBox: box,
      window: values.window,
      stride: values.stride,
      maxSeconds: values['max-seconds'],
      persons,
      subject,
      onProgress: (stage, _fraction, count) => {
        if (!count) return;
        if (stage === 'detect') {
          detecting ??= new Progress('detect', count.total, { unit: 'frames' });
          detecting.tick(count.done - detecting.count);
        } else if (stage === 'classify') {
          if (detecting) detecting.finish(), (detecting = undefined);
          windows ??= new Progress('window', count.total, { unit: 'windows' });
          windows.tick(count.done - windows.count);
        }
      },
      onWindow: (w, k, _total, person) => {
        if (values.jsonl)
          process.stdout.write(
            JSON.stringify({ type: 'window', ...(person === undefined ? {} : { person }), index: k, ...w }) + '\n',
          );
        if (values.csv) process.stdout.write(csvRow(w, classes, person) + '\n');
        streamed++;
      },
    });
    unhook();
    windows?.finish();
    for (const line of [r.warning, r.note])
      if (line) process.stderr.write(`ous: ${line === r.warning ? 'warning' : 'note'}: ${line}\n`);
    for (const line of recipeNotes(r.recipe, predictor.recipe.subject)) process.stderr.write(`ous: note: ${line}\n`);
    if (values.csv) return 0;
    if (values.jsonl) {
      const { windows: _timeline, ...summary } = r;
      // their windows were the lines before
      const persons = r.persons?.map(({ windows: w, ...p }) => ({ ...p, windowCount: w.length }));
      process.stdout.write(
        JSON.stringify({
          type: 'summary',
          ...summary,
          windowCount: r.windows.length,
          ...(persons ? { persons } : {}),
        }) + '\n',
      );
      return 0;
    }
    if (values.json) {
      process.stdout.write(JSON.stringify(r) + '\n');
      return 0;
    }
    const pct = (v: number) => `${(100 * v).toFixed(1)}%`;
    process.stdout.write(
      `${r.video}: ${r.emotion} (${pct(r.probabilities[r.emotion]!)})` +
        `${r.faceMissing ? ' [no face found: centre crop]' : ''}` +
        `${!r.faceMissing && r.summary.noFaceAnswer ? ' [no face seen: not about a face]' : ''}\n`,
    );
    if (r.summary.noFaceWindows && !r.summary.noFaceAnswer)
      process.stdout.write(
        `  from the ${r.windows.length - r.summary.noFaceWindows} windows that saw the face ` +
          `(${r.summary.noFaceWindows} without one left out)\n`,
      );
    process.stdout.write(
      '  ' +
        Object.entries(r.probabilities)
          .map(([n, v]) => `${n} ${pct(v)}`)
          .join('  ') +
        '\n',
    );
    process.stdout.write(`  faces: ${r.recipe.faces}\n`);
    if (r.summary.precision !== 'fp32') process.stdout.write(`  CLIP's vision tower in ${r.summary.precision}\n`);
    if (r.polarity)
      process.stdout.write(
        '  scene polarity: ' +
          Object.entries(r.polarity)
            .map(([n, v]) => `${n} ${pct(v)}`)
            .join('  ') +
          '\n',
      );
    if (r.sceneEffect) {
      process.stdout.write(
        `  the scene moved ${pct(r.sceneEffect.totalVariation)} of the probability; without it: ` +
          `${r.sceneEffect.emotionWithoutScene}` +
          `${r.sceneEffect.changedDecision ? ' (the scene changed the decision)' : ''}\n`,
      );
    }
    for (const p of r.persons ?? []) {
      process.stdout.write(
        `  person ${p.id}${p.main ? ' (main)' : ''}, ${p.first.toFixed(1)}–${p.last.toFixed(1)} s: ` +
          `${p.emotion} (${pct(p.probabilities[p.emotion]!)}) over ${p.windows.length} windows` +
          `${p.sceneEffect?.changedDecision ? `; without the scene: ${p.sceneEffect.emotionWithoutScene}` : ''}\n`,
      );
    }
    if (r.windows.length > 1 && !r.persons) {
      process.stdout.write(`  timeline (${r.summary.window} s windows every ${r.summary.stride} s):\n`);
      for (const w of r.windows)
        process.stdout.write(
          `    ${w.start.toFixed(1).padStart(6)}–${w.end.toFixed(1).padEnd(6)} ${w.emotion} ` +
            `(${pct(w.probabilities[w.emotion]!)})${w.faceFrames ? '' : ' noFace'}` +
            `${w.sceneEffect?.changedDecision ? ` [without the scene: ${w.sceneEffect.emotionWithoutScene}]` : ''}` +
            '\n',
        );
    }
    return 0;
  },
};
