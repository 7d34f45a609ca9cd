// A stand-in for src/server/live-worker.ts in the session tests: the same IPC messages, no model.
// T = 4, a window per 4 frames received (start at the first's time), the summary when the session ends;
// with persons 'all', each window for two persons (0 the main one, 1 beside it) and a summary each.
import type { FromLive, ToLive } from '../src/server/live.js';

const send = (m: FromLive) => process.send!(m);
process.on('disconnect', () => process.exit(0));
let frames: number[] = [];
let k = 0;
let persons = [0];
const window = (start: number, person: number) => ({
  index: k,
  person,
  main: person === 0,
  start,
  end: start + 2,
  emotion: 'a',
  probabilities: { a: 0.6, b: 0.4 },
  polarity: null,
  sceneEffect: null,
  faceBox: [1 + 10 * person, 2, 3, 4] as [number, number, number, number],
  faceFrames: 4,
  latency: 5,
  dropped: 0,
  droppedTotal: 0,
});
process.on('message', (m: ToLive) => {
  if (m.type === 'init') {
    if (m.settings.persons === 'all') persons = [0, 1];
    send({ type: 'ready', fps: 2, frames: 4 });
  } else if (m.type === 'frame') {
    frames.push(m.t);
    if (frames.length < 4) return;
    for (const person of persons) send({ type: 'window', window: window(frames[0]!, person) });
    k++;
    frames = [];
  } else if (m.type === 'end') {
    const p = { a: 0.6, b: 0.4 };
    const each = (id: number) => ({
      ...{ id, main: id === 0, first: 0, last: 2 * k, windowCount: k, emotion: 'a', probabilities: p },
      ...{ polarity: null, sceneEffect: null, share: { a: 1, b: 0 } },
    });
    send({
      type: 'summary',
      summary: {
        emotion: 'a',
        probabilities: p,
        polarity: null,
        sceneEffect: null,
        share: { a: 1, b: 0 },
        noFaceWindows: 0,
        noFaceAnswer: false,
        faceMissing: false,
        frames: 4 * k,
        dropped: 0,
        duration: 2 * k,
        windowCount: k,
        latency: { p50: 5, p95: 5, max: 5 },
        main: 0,
        ...(persons.length > 1 ? { persons: persons.map(each) } : {}),
      },
    });
  }
});
