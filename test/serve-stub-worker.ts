// A stand-in for src/server/worker.ts in the pool and route tests: the same IPC messages, no model.
// A job's behaviour is read from its file: {"seconds": s, "windows": k, "crash": bool, "fail": "why"}.
// It reports every stage with moving fractions and streams each window before its result.
import * as fs from 'node:fs';
import type { FromWorker, ToWorker, WorkerSettings } from '../src/server/protocol.js';

const send = (m: FromWorker) => process.send!(m);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
let settings: WorkerSettings | undefined;

process.on('disconnect', () => process.exit(0));
let chain = Promise.resolve();
process.on('message', (m: ToWorker) => {
  if (m.type === 'init') {
    settings = m.settings;
    if (settings.run === 'fatal') return send({ type: 'fatal', error: 'no such run', userError: true });
    // The settings come back in the model info, so a test can see they arrived over IPC.
    return send({
      type: 'ready',
      model: {
        run: 'stub',
        classes: ['a', 'b'],
        polarities: ['positive', 'negative', 'neutral'],
        encoder: {
          clipHash: 'x',
          precision: settings.precision,
          embed: 4,
          visionWidth: 4,
          frames: 4,
          scene: 'mask',
          polarityLayer: 1,
        },
        config: { settings, env: Object.keys(process.env).filter((k) => k.startsWith('OUS_SERVE')) },
      },
    });
  }
  if (m.type !== 'job') return;
  chain = chain.then(async () => {
    const spec = (() => {
      try {
        return JSON.parse(fs.readFileSync(m.file, 'utf8')) as {
          seconds?: number;
          windows?: number;
          crash?: boolean;
          fail?: string;
        };
      } catch {
        return {};
      }
    })();
    if (spec.crash) process.exit(3);
    const k = spec.windows ?? 3;
    const step = ((spec.seconds ?? 0.05) * 1000) / (4 * 4 + k);
    for (const stage of ['decode', 'detect', 'encode'] as const) {
      for (let i = 0; i < 4; i++) {
        send({ type: 'progress', id: m.id, stage, fraction: i / 4 });
        await sleep(step);
      }
    }
    if (spec.fail) {
      send({ type: 'failed', id: m.id, error: `${spec.fail} in ${m.file}`, userError: true });
      return;
    }
    if (m.persons === 'all') return twoPersons(m.id, k, step);
    const windows = [];
    for (let i = 0; i < k; i++) {
      send({ type: 'progress', id: m.id, stage: 'classify', fraction: i / k });
      const w = stubWindow(i, i % 2 ? 'b' : 'a');
      windows.push(w);
      send({ type: 'window', id: m.id, window: w, k: i, total: k });
      await sleep(step);
    }
    send({ type: 'done', id: m.id, result: stubResult(m.file, k, windows) });
  });
});

/** Window i, [i, i + 2) s: `emotion` at 0.6, the other class at 0.4, a face in all 4 frames. */
function stubWindow(i: number, emotion: 'a' | 'b') {
  return {
    start: i,
    end: i + 2,
    emotion,
    probabilities: emotion === 'a' ? { a: 0.6, b: 0.4 } : { a: 0.4, b: 0.6 },
    polarity: null,
    sceneEffect: null,
    faceBox: [20, 10, 40, 40] as [number, number, number, number],
    faceFrames: 4,
  };
}

/** The prediction of a k-window video, as the real worker's `done` carries it (`more`: persons=all's fields). */
function stubResult(video: string, k: number, windows: Array<ReturnType<typeof stubWindow>>, more = {}) {
  return {
    video,
    emotion: 'a',
    probabilities: { a: 0.6, b: 0.4 },
    polarity: null,
    sceneEffect: null,
    faceMissing: false,
    duration: k + 1,
    width: 96,
    height: 72,
    windows,
    faces: [{ time: 0, box: [20, 10, 40, 40] as [number, number, number, number], detected: true }],
    summary: {
      window: 2,
      stride: 1,
      frames: 4,
      share: { a: 1, b: 0 },
      precision: 'fp32' as const,
      noFaceWindows: 0,
      noFaceAnswer: false,
    },
    recipe: {
      faces: 'the main face, detector crops (square crop ×1.25)',
      subject: 'main' as const,
      subjectOverridden: false,
      trainedOn: 'detector' as const,
      crop: { shape: 'square' as const, enlarge: 0.25, shift: [0, 0] as [number, number], padding: 'black' as const },
      scene: 'mask' as const,
      frames: 4,
    },
    ...more,
  };
}

/**
 * ?persons=all as the real worker streams it: person 0 with k windows and person 1 with k - 1,
 * interleaved, each window saying its own person's total, and the classify stage counting both.
 */
async function twoPersons(id: string, k: number, step: number): Promise<void> {
  const totals = [k, k - 1];
  const windows: Array<Array<ReturnType<typeof stubWindow>>> = [[], []];
  for (let i = 0; i < k; i++) {
    for (const person of [0, 1]) {
      if (i >= totals[person]!) continue;
      const w = stubWindow(i, 'a');
      windows[person]!.push(w);
      send({ type: 'window', id, window: w, k: i, total: totals[person]!, person });
      const done = windows[0]!.length + windows[1]!.length;
      send({ type: 'progress', id, stage: 'classify', fraction: done / (2 * k - 1), total: 2 * k - 1 });
      await sleep(step);
    }
  }
  const persons = [0, 1].map((p) => ({
    id: p,
    main: p === 0,
    first: 0,
    last: k,
    emotion: 'a',
    probabilities: { a: 0.6, b: 0.4 },
    polarity: null,
    sceneEffect: null,
    share: { a: 1, b: 0 },
    windows: windows[p],
    faces: [{ time: 0, box: [10 + 40 * p, 10, 30, 30], detected: true }],
  }));
  send({ type: 'done', id, result: stubResult('x', k, windows[0]!, { persons }) as never });
}
