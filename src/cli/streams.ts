// `ous streams VIDEO --out DIR`: the face and scene streams of a clip as PNGs, with streams.json.
// Into a used folder: streams.json goes first and comes back last (so it only ever describes a
// complete set), and the stream PNGs of an earlier run that this one did not write are removed;
// files not named like ours (face_NN.png, scene_NN.png, streams.json) are never touched.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Command } from './command.js';
import { UsageError, UserError } from '../util/errors.js';
import { inputFile, writeFileAtomic } from '../util/fs.js';
import { buildStreams, stillNote, undecodedWarning, type StreamsOptions } from '../streams/index.js';
import { predictionCrop } from '../streams/recipe.js';
import { readRunConfig, runRecipe } from '../runs/folder.js';
import { COMMON, parseFlags, usageText, type Flags } from './flags.js';
import type { RgbFrame } from '../video/decode.js';
import { loadSharp } from '../util/sharp.js';

async function png(frame: RgbFrame): Promise<Buffer> {
  return loadSharp()(Buffer.from(frame.data.buffer, frame.data.byteOffset, frame.data.byteLength), {
    raw: { width: frame.width, height: frame.height, channels: 3 },
  })
    .png()
    .toBuffer();
}

const FLAGS = {
  out: { type: { kind: 'text' }, value: 'DIR', required: true, help: 'the folder for the PNGs and streams.json' },
  frames: COMMON.frames,
  scene: {
    type: { kind: 'choice', of: ['mask', 'full'] },
    default: 'mask',
    help: 'the scene with the face masked (SPEC), or whole',
  },
  run: {
    type: { kind: 'text' },
    value: 'RUN',
    help: "the streams as this run predicts on them: its recipe's T, scene, subject rule and face crop",
  },
  'max-seconds': COMMON.maxSeconds,
  json: COMMON.json,
} as const satisfies Flags;

/** The stream options a run's recipe gives (`--run`), with its note when the run predates the recipe. */
function runOptions(runDir: string): StreamsOptions {
  const { recipe, note } = runRecipe(runDir, readRunConfig(runDir, '--run'));
  if (note) process.stderr.write(`ous: note: ${note}\n`);
  return { frames: recipe.frames, scene: recipe.scene, subject: recipe.subject, crop: predictionCrop(recipe) };
}

export const streams: Command = {
  usage: usageText('streams', FLAGS, {
    positionals: 'VIDEO',
    notes:
      'Writes DIR/face_NN.png, DIR/scene_NN.png and DIR/streams.json, replacing the stream PNGs of an earlier ' +
      'run.\nA photo, or a one-frame GIF or video, is a still: its one frame stands for every sampled frame.',
  }),
  async run(argv) {
    const { values, positionals } = parseFlags('streams', argv, FLAGS, { positionals: 'VIDEO' });
    if (!positionals[0] || positionals.length > 1)
      throw new UsageError('streams: give one VIDEO (a video file or a folder of frames)');
    const video = inputFile(positionals[0], { folder: true });
    if (fs.existsSync(values.out) && !fs.statSync(values.out).isDirectory())
      throw new UserError(`streams: --out ${values.out} is a file; give a folder`);
    const opts = values.run !== undefined ? runOptions(values.run) : { frames: values.frames, scene: values.scene };
    const frames = opts.frames!;
    const s = await buildStreams(video, { ...opts, maxSeconds: values['max-seconds'] });
    const warning = undecodedWarning(s);
    if (warning) process.stderr.write(`ous: warning: ${warning}\n`);
    const note = stillNote(s);
    if (note) process.stderr.write(`ous: note: ${note}\n`);
    const pad = String(frames - 1).length;
    fs.rmSync(path.join(values.out, 'streams.json'), { force: true });
    const written = new Set<string>();
    for (const [i, f] of s.frames.entries()) {
      const n = String(i).padStart(Math.max(2, pad), '0');
      writeFileAtomic(path.join(values.out, `face_${n}.png`), await png(f.face));
      writeFileAtomic(path.join(values.out, `scene_${n}.png`), await png(f.scene));
      written.add(`face_${n}.png`).add(`scene_${n}.png`);
    }
    for (const f of fs.readdirSync(values.out))
      if (/^(face|scene)_\d+\.png$/.test(f) && !written.has(f)) fs.rmSync(path.join(values.out, f));
    const meta = {
      video: path.resolve(video),
      frames: s.frames.map((f) => ({ index: f.index, timeSec: f.timeSec, box: f.box, detected: f.detected })),
      faceMissing: s.faceMissing,
      otherFaces: s.otherFaces,
      fps: s.fps,
      frameCount: s.frameCount,
      width: s.width,
      height: s.height,
      missingFrames: s.missingFrames,
      undecodedFrames: s.undecodedFrames,
      still: s.still,
    };
    writeFileAtomic(path.join(values.out, 'streams.json'), JSON.stringify(meta, null, 2) + '\n');
    if (values.json) process.stdout.write(JSON.stringify(meta) + '\n');
    else {
      const found = s.frames.filter((f) => f.detected).length;
      process.stdout.write(
        `${video}: ${s.frames.length} frames of ${s.frameCount}; ` +
          `face ${s.faceMissing ? 'not found (centre crop)' : `detected in ${found}/${s.frames.length}`}; ` +
          `wrote ${values.out}\n`,
      );
    }
    return 0;
  },
};
