// `ous faces FILE`: every face the detector finds in a photo, or in the sampled frames of a video.
import * as fs from 'node:fs';
import { parseArgs } from 'node:util';
import type { Command } from './command.js';
import { UserError } from '../util/errors.js';
import { detectFaces } from '../face/detector.js';
import { decodeFrames, probeVideo, readImage } from '../video/decode.js';
import { sampleIndices } from '../video/sampling.js';

const IMAGE = /\.(jpe?g|png|webp|bmp|tiff?|gif|avif)$/i;

export const faces: Command = {
  name: 'faces',
  summary: 'detect faces in an image, or in the sampled frames of a video',
  usage: 'ous faces FILE [--frames 16] [--min-confidence 0.5] [--json]',
  async run(argv) {
    const { values, positionals } = parseArgs({
      args: argv,
      allowPositionals: true,
      options: { frames: { type: 'string', default: '16' }, 'min-confidence': { type: 'string', default: '0.5' }, json: { type: 'boolean' } },
    });
    const file = positionals[0];
    if (!file || positionals.length > 1) throw new UserError('faces: give one FILE (an image or a video)');
    if (!fs.existsSync(file)) throw new UserError(`${file}: no such file`);
    const minConfidence = Number(values['min-confidence']);
    const detections: Array<{ frame: number; box: number[]; score: number }> = [];
    if (IMAGE.test(file)) {
      for (const d of await detectFaces(await readImage(file), { minConfidence })) detections.push({ frame: 0, box: d.box.map((v) => Math.round(v * 10) / 10), score: d.score });
    } else {
      const info = probeVideo(file);
      const indices = sampleIndices(info.frameCount, Number(values.frames));
      const { frames } = await decodeFrames(file, info, indices);
      for (const [i, f] of frames.entries()) {
        for (const d of await detectFaces(f, { minConfidence })) detections.push({ frame: indices[i]!, box: d.box.map((v) => Math.round(v * 10) / 10), score: d.score });
      }
    }
    if (values.json) process.stdout.write(JSON.stringify(detections) + '\n');
    else for (const d of detections) process.stdout.write(`frame ${d.frame}: box [${d.box.join(', ')}] score ${d.score.toFixed(3)}\n`);
    if (!values.json && !detections.length) process.stdout.write('no face found\n');
    return 0;
  },
};
