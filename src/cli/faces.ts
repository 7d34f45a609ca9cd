// `ous faces FILE`: every face the detector finds in a photo, or in the sampled frames of a video.
// Boxes are in the file's own pixels, though frames wider than MAX_SIDE are detected scaled down.
import * as fs from 'node:fs';
import { parseArgs } from 'node:util';
import type { Command } from './command.js';
import { UsageError, UserError } from '../util/errors.js';
import { rescaleBox } from '../util/box.js';
import { detectFaces } from '../face/detector.js';
import { decodeFrames, probeVideo, readImage, uprightSize, type RgbFrame } from '../video/decode.js';
import { sampleIndices } from '../video/sampling.js';
import { framesFlag, numberFlag } from './args.js';

const IMAGE = /\.(jpe?g|png|webp|bmp|tiff?|gif|avif)$/i;

export const faces: Command = {
  name: 'faces',
  summary: 'detect faces in an image, or in the sampled frames of a video',
  usage: 'ous faces FILE [--frames 16] [--min-confidence 0.5] [--json]   (boxes [x, y, w, h] in the file\'s own pixels)',
  async run(argv) {
    const { values, positionals } = parseArgs({
      args: argv,
      allowPositionals: true,
      options: { frames: { type: 'string', default: '16' }, 'min-confidence': { type: 'string', default: '0.5' }, json: { type: 'boolean' } },
    });
    const file = positionals[0];
    if (!file || positionals.length > 1) throw new UsageError('faces: give one FILE (an image or a video)');
    const frameCount = framesFlag('faces', values.frames!);
    const minConfidence = numberFlag('faces', 'min-confidence', values['min-confidence']!, { min: 0, max: 1 });
    if (!fs.existsSync(file)) throw new UserError(`${file}: no such file`);
    const detections: Array<{ frame: number; box: number[]; score: number }> = [];
    const detect = async (index: number, frame: RgbFrame, source: { width: number; height: number }) => {
      for (const d of await detectFaces(frame, { minConfidence })) detections.push({ frame: index, box: rescaleBox(d.box, frame, source).map((v) => Math.round(v * 10) / 10), score: d.score });
    };
    if (IMAGE.test(file)) {
      const [width, height] = await uprightSize(file);
      await detect(0, await readImage(file), { width, height });
    } else {
      const info = probeVideo(file);
      const indices = sampleIndices(info.frameCount, frameCount);
      const { frames } = await decodeFrames(file, info, indices);
      for (const [i, f] of frames.entries()) await detect(indices[i]!, f, info);
    }
    if (values.json) process.stdout.write(JSON.stringify(detections) + '\n');
    else for (const d of detections) process.stdout.write(`frame ${d.frame}: box [${d.box.join(', ')}] score ${d.score.toFixed(3)}\n`);
    if (!values.json && !detections.length) process.stdout.write('no face found\n');
    return 0;
  },
};
