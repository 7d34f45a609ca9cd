// `ous faces FILE`: every face the detector finds in a photo, or in the sampled frames of a video.
// Boxes are in the file's own pixels, though frames wider than MAX_SIDE are detected scaled down.
// Every face found by default: a cap is --max-faces (face/detector.ts says how a frame is looked at).
import type { Command } from './command.js';
import { UsageError } from '../util/errors.js';
import { inputFile } from '../util/fs.js';
import { rescaleBox } from '../util/box.js';
import { detectFaces } from '../face/detector.js';
import { isImageFile } from '../video/decode.js';
import { sampleIndices } from '../video/sampling.js';
import { openClip, stillNote } from '../streams/index.js';
import { COMMON, parseFlags, usageText, type Flags } from './flags.js';

const FLAGS = {
  frames: { ...COMMON.frames, help: 'frames sampled from a video, any number up to the maximum' },
  'min-confidence': {
    type: { kind: 'number', min: 0, max: 1 },
    value: 'P',
    default: '0.5',
    help: "the detector's threshold",
  },
  'max-faces': {
    type: { kind: 'int', min: 0 },
    value: 'N',
    default: '0',
    help: 'at most this many faces a frame, the most confident; 0 is no limit',
  },
  'max-seconds': COMMON.maxSeconds,
  json: COMMON.json,
} as const satisfies Flags;

export const faces: Command = {
  usage: usageText('faces', FLAGS, {
    positionals: 'FILE',
    notes:
      "Boxes [x, y, w, h] are in the file's own pixels. A photo, or a one-frame GIF or video, " +
      'is a still: its one frame is looked at once. An animated GIF is a video.',
  }),
  async run(argv) {
    const { values, positionals } = parseFlags('faces', argv, FLAGS, { positionals: 'FILE' });
    if (!positionals[0] || positionals.length > 1) throw new UsageError('faces: give one FILE (an image or a video)');
    const file = inputFile(positionals[0]);
    const [frameCount, minConfidence, maxSeconds] = [values.frames, values['min-confidence'], values['max-seconds']];
    const maxResults = values['max-faces'] || Infinity;
    const clip = await openClip(file, { maxSeconds });
    const own = await clip.ownSize(0);
    const detections: Array<{ frame: number; box: number[]; score: number }> = [];
    // Every sampled frame once (a still's one frame once), read one at a time.
    await clip.forEach(sampleIndices(clip.frameCount, frameCount), async (index, frame) => {
      for (const d of await detectFaces(frame, { minConfidence, maxResults }))
        detections.push({
          frame: index,
          box: rescaleBox(d.box, frame, own).map((v) => Math.round(v * 10) / 10),
          score: d.score,
        });
    });
    const note = stillNote({ still: clip.frameCount === 1 && !isImageFile(file), source: file });
    if (note) process.stderr.write(`ous: note: ${note}\n`);
    if (values.json) process.stdout.write(JSON.stringify(detections) + '\n');
    else
      for (const d of detections)
        process.stdout.write(`frame ${d.frame}: box [${d.box.join(', ')}] score ${d.score.toFixed(3)}\n`);
    if (!values.json && !detections.length) process.stdout.write('no face found\n');
    return 0;
  },
};
