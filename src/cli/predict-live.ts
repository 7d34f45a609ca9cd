// `ous predict` on a live source (a camera, '-', a network stream, a file with --live) or a file read
// straight through (--stream): the streaming predictor (src/predict/stream.ts) fed by a LiveSource,
// each window's line written as soon as it is classified (stdout to a pipe or a file is written at
// once in Node: nothing waits in a buffer). Ctrl-C or the stream's end: the summary of what was
// seen, exit 0. A stream that stalls or breaks: one line on stderr, the summary, exit 1.
import type { Predictor } from '../predict/predictor.js';
import { streamFps, warmUp, type StreamSummary, type StreamWindow } from '../predict/stream.js';
import { LiveSource } from '../video/live.js';
import { csvHeader, csvRow } from './predict.js';

export interface LiveArgs {
  source: string;
  unpaced: boolean; // --stream: a file read as fast as it is classified, nothing dropped
  window?: number;
  stride?: number;
  lookahead?: number;
  stall?: number; // seconds without a frame: the source stalled
  persons?: 'all';
  format: 'text' | 'json' | 'jsonl' | 'csv';
}

const pct = (v: number) => `${(100 * v).toFixed(1)}%`;

/** One window as the human-readable line. */
function textLine(w: StreamWindow, T: number, persons: boolean): string {
  const who = persons ? `person ${w.person}${w.main ? ' (main)' : ''} ` : '';
  return (
    `  ${who}${w.start.toFixed(1).padStart(6)}–${w.end.toFixed(1).padEnd(6)} ` +
    (w.faceFrames ? `${w.emotion} (${pct(w.probabilities[w.emotion]!)}) face ${w.faceFrames}/${T}` : 'noFace') +
    `  latency ${w.latency.toFixed(0)} ms  dropped ${w.dropped}/${T}\n`
  );
}

/** The summary of what was seen, in the text output. */
function textSummary(source: string, s: StreamSummary): string {
  const face = s.faceMissing
    ? ' [no face seen: not about a face]'
    : s.noFaceWindows
      ? ` (from the ${s.windowCount - s.noFaceWindows} windows that saw the face; ` +
        `${s.noFaceWindows} without one left out)`
      : '';
  const lines = [
    `${source}: ${s.windowCount ? `${s.emotion} (${pct(s.probabilities[s.emotion]!)})` : 'no window completed'}${face}`,
    `  ${s.frames} frames (${s.duration.toFixed(1)} s), ${s.windowCount} windows, ${s.dropped} frames dropped; ` +
      `latency p50 ${s.latency.p50.toFixed(0)} ms, p95 ${s.latency.p95.toFixed(0)} ms`,
    ...(s.persons ?? []).map(
      (p) =>
        `  person ${p.id}${p.main ? ' (main)' : ''}, ${p.first.toFixed(1)}–${p.last.toFixed(1)} s: ` +
        `${p.emotion} (${pct(p.probabilities[p.emotion]!)}) over ${p.windowCount} windows`,
    ),
  ];
  return lines.join('\n') + '\n';
}

export async function predictLive(predictor: Predictor, a: LiveArgs): Promise<number> {
  const classes = predictor.classNames;
  const T = predictor.recipe.frames;
  await warmUp(predictor);
  const live = new LiveSource(a.source, {
    fps: streamFps(predictor, a.window),
    unpaced: a.unpaced,
    stallSeconds: a.stall,
  });
  const stop = () => live.close(); // Ctrl-C: the frames already read are classified, then the summary
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  const persons = a.persons !== undefined;
  const out = (line: string) => process.stdout.write(line);
  if (a.format === 'csv') out(`${csvHeader(classes, persons)},latency_ms,dropped\n`);
  if (a.format === 'text')
    out(`${a.source}: ${a.unpaced ? 'streamed' : 'live'}, a window every ${a.stride ?? 1} s (Ctrl-C stops)\n`);
  const windows: StreamWindow[] = [];
  let s: StreamSummary;
  try {
    s = await predictor.predictStream(live, {
      window: a.window,
      stride: a.stride,
      lookahead: a.lookahead,
      persons: a.persons,
      dropped: () => live.dropped,
      onWindow: (w) => {
        const person = persons ? (w.person ?? undefined) : undefined;
        if (a.format === 'jsonl') out(JSON.stringify({ type: 'window', ...w }) + '\n');
        else if (a.format === 'csv') out(`${csvRow(w, classes, person)},${w.latency},${w.dropped}\n`);
        else if (a.format === 'text') out(textLine(w, T, persons));
        else windows.push(w);
      },
    });
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
    live.close();
  }
  if (s.broke) process.stderr.write(`ous: ${s.broke}\n`);
  if (s.faceMissing && s.windowCount)
    process.stderr.write(`ous: note: ${a.source}: no face seen: every window is the centre crop\n`);
  if (a.format === 'jsonl') out(JSON.stringify({ type: 'summary', source: a.source, ...s }) + '\n');
  else if (a.format === 'json') out(JSON.stringify({ source: a.source, ...s, windows }) + '\n');
  else if (a.format === 'text') out(textSummary(a.source, s));
  else process.stderr.write(textSummary(a.source, s));
  return s.broke ? 1 : 0;
}
