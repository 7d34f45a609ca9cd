// `ous predict VIDEO --run RUN`: the emotion of a video (one of the run's classes), the scene
// polarity, and how much the scene changed the decision; per window on a video longer than one
// window. The work is src/predict/, shared with `ous serve`.
import { parseArgs } from 'node:util';
import type { Command } from './command.js';
import { UsageError } from '../util/errors.js';
import { PRECISION_HELP } from './args.js';
import { Predictor, type Prediction, type PredictOptions } from '../predict/predictor.js';
import type { EnginePreference } from '../data/encoder.js';
import { parseOptionalDevice, parsePrecision, type Device, type Precision } from '../torch/index.js';
import { probeVideo } from '../video/decode.js';
import { checkBoxInFrame, parseBox } from '../util/box.js';
import { allowSlowBf16, enginePreference } from './env.js';

export type { Prediction } from '../predict/predictor.js';

/** One prediction with a freshly loaded run (the server keeps a Predictor instead). */
export async function predictVideo(video: string, runDir: string, opts: PredictOptions & { clip?: string; device?: Device; precision?: Precision; engine?: EnginePreference } = {}): Promise<Prediction> {
  return Predictor.load(runDir, { clip: opts.clip, device: opts.device, precision: opts.precision, engine: opts.engine }).predict(video, opts);
}

const seconds = (flag: string, v: string | undefined): number | undefined => {
  if (v === undefined) return undefined;
  const x = Number(v);
  if (!(x > 0)) throw new UsageError(`predict: ${flag} must be a positive number of seconds, not '${v}'`);
  return x;
};

export const predict: Command = {
  name: 'predict',
  summary: 'emotion, scene polarity, and how much the scene changed the decision, for one video',
  usage: `ous predict VIDEO --run RUN [--clip DIR] [--box "x y w h"] [--window 2] [--stride 1] [--device cpu|cuda] [--precision fp32|bf16|fp16] [--json]

  --run RUN      a folder made by ous train (it records everything inference needs)
  --clip DIR     the CLIP folder, when it is not where the run was trained (same weights: checked by hash)
  --box "x y w h"  a known face box in the video's own pixels (no detection)
  --window S     seconds one prediction covers on a longer video (2)
  --stride S     seconds between windows (1)
  --device D     cpu, or cuda[:N] with a CUDA build of libtorch
  --precision P  ${PRECISION_HELP}
  --json         one JSON object; windows[] is the timeline`,
  async run(argv) {
    const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, options: { run: { type: 'string' }, clip: { type: 'string' }, box: { type: 'string' }, window: { type: 'string' }, stride: { type: 'string' }, device: { type: 'string' }, precision: { type: 'string', default: 'fp32' }, json: { type: 'boolean' } } });
    if (positionals.length !== 1) throw new UsageError('predict: give one VIDEO');
    if (!values.run) throw new UsageError('predict: --run RUN is required (a folder made by ous train)');
    const device = parseOptionalDevice(values.device);
    const precision = parsePrecision(values.precision!, device ?? 'cpu', { allowSlowBf16: allowSlowBf16() });
    const box = values.box === undefined ? undefined : parseBox(values.box, 'predict: --box');
    if (box) {
      const { width, height } = probeVideo(positionals[0]!); // the box is in the video's own pixels
      checkBoxInFrame(box, width, height, 'predict: --box');
    }
    const r = await predictVideo(positionals[0]!, values.run, {
      clip: values.clip,
      faceBox: box,
      window: seconds('--window', values.window),
      stride: seconds('--stride', values.stride),
      device,
      precision,
      engine: enginePreference(),
    });
    if (r.warning) process.stderr.write(`ous: warning: ${r.warning}\n`);
    if (values.json) {
      process.stdout.write(JSON.stringify(r) + '\n');
      return 0;
    }
    const pct = (v: number) => `${(100 * v).toFixed(1)}%`;
    process.stdout.write(`${r.video}: ${r.emotion} (${pct(r.probabilities[r.emotion]!)})${r.faceMissing ? ' [no face found: centre crop]' : ''}\n`);
    process.stdout.write('  ' + Object.entries(r.probabilities).map(([n, v]) => `${n} ${pct(v)}`).join('  ') + '\n');
    if (r.summary.precision !== 'fp32') process.stdout.write(`  CLIP's vision tower in ${r.summary.precision}\n`);
    if (r.polarity) process.stdout.write('  scene polarity: ' + Object.entries(r.polarity).map(([n, v]) => `${n} ${pct(v)}`).join('  ') + '\n');
    if (r.sceneEffect) {
      process.stdout.write(`  the scene moved ${pct(r.sceneEffect.totalVariation)} of the probability; without it: ${r.sceneEffect.emotionWithoutScene}${r.sceneEffect.changedDecision ? ' (the scene changed the decision)' : ''}\n`);
    }
    if (r.windows.length > 1) {
      process.stdout.write(`  timeline (${r.summary.window} s windows every ${r.summary.stride} s):\n`);
      for (const w of r.windows) process.stdout.write(`    ${w.start.toFixed(1).padStart(6)}–${w.end.toFixed(1).padEnd(6)} ${w.emotion} (${pct(w.probabilities[w.emotion]!)})${w.sceneEffect?.changedDecision ? ` [without the scene: ${w.sceneEffect.emotionWithoutScene}]` : ''}\n`);
    }
    return 0;
  },
};
