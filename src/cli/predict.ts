// `ous predict VIDEO --run RUN`: the 7-class emotion of a video, the scene polarity, and how much
// the scene changed the decision. "Changed" is measured by running the same head again with an
// uninformative scene (every scene frame replaced by CLIP's mean colour): the difference between
// the two probability vectors (total variation) and whether the top class moved.
import { parseArgs } from 'node:util';
import type { Command } from './command.js';
import { UserError } from '../util/errors.js';
import { loadRun } from '../train/run.js';
import { FrameEncoder } from '../data/encoder.js';
import { buildStreams, CLIP_MEAN_RGB, undecodedWarning } from '../streams/index.js';
import { POLARITIES } from '../ous/config.js';
import { noGrad, tidy } from '../torch/index.js';
import type { RgbFrame } from '../video/decode.js';

export interface Prediction {
  video: string;
  emotion: string;
  probabilities: Record<string, number>;
  polarity: Record<string, number> | null; // null for the face-only baseline
  sceneEffect: { totalVariation: number; changedDecision: boolean; emotionWithoutScene: string } | null;
  faceMissing: boolean;
  warning?: string; // frames the decoder could not deliver (truncated or corrupt file)
}

export async function predictVideo(video: string, runDir: string, opts: { faceBox?: [number, number, number, number] } = {}): Promise<Prediction> {
  const { conf, head, cache } = loadRun(runDir);
  const encoder = FrameEncoder.load(conf.clip);
  const s = await buildStreams(video, { frames: cache.info.frames, scene: cache.info.scene, faceBox: opts.faceBox });
  const blank = (f: RgbFrame): RgbFrame => {
    const data = new Uint8Array(f.data.length);
    for (let i = 0; i < data.length; i += 3) data.set(CLIP_MEAN_RGB, i);
    return { data, width: f.width, height: f.height };
  };
  const T = s.frames.length;
  const k = cache.info.polarityLayer;
  const { emb, low } = noGrad(() => encoder.encode([...s.frames.map((f) => f.face), ...s.frames.map((f) => f.scene), ...s.frames.map((f) => blank(f.scene))], k));
  const names = conf.ous.classNames;
  return noGrad(() =>
    tidy(() => {
      const face = emb.narrow(0, 0, T).unsqueeze(0); // [1, T, E]
      const run = (from: number) => head.forward({ face, scene: emb.narrow(0, from, T).unsqueeze(0), low: low!.narrow(0, from, T).unsqueeze(0) });
      const withScene = run(T);
      const p = withScene.logits.softmax(-1).select(0, 0).toFlatArray();
      const top = (v: number[]) => v.indexOf(Math.max(...v));
      const polarity = withScene.polarityLogits ? withScene.polarityLogits.softmax(-1).select(0, 0).toFlatArray() : null;
      let sceneEffect: Prediction['sceneEffect'] = null;
      if (conf.ous.model === 'ous' && conf.ous.scene) {
        const q = run(2 * T).logits.softmax(-1).select(0, 0).toFlatArray();
        sceneEffect = { totalVariation: p.reduce((acc, v, i) => acc + Math.abs(v - q[i]!), 0) / 2, changedDecision: top(p) !== top(q), emotionWithoutScene: names[top(q)]! };
      }
      return {
        video,
        emotion: names[top(p)]!,
        probabilities: Object.fromEntries(names.map((n, i) => [n, p[i]!])),
        polarity: polarity ? Object.fromEntries(POLARITIES.map((n, i) => [n, polarity[i]!])) : null,
        sceneEffect,
        faceMissing: s.faceMissing,
        ...(undecodedWarning(s) ? { warning: undecodedWarning(s) } : {}),
      };
    }),
  );
}

export const predict: Command = {
  name: 'predict',
  summary: 'emotion, scene polarity, and how much the scene changed the decision, for one video',
  usage: 'ous predict VIDEO --run RUN [--box "x y w h"] [--json]',
  async run(argv) {
    const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, options: { run: { type: 'string' }, box: { type: 'string' }, json: { type: 'boolean' } } });
    if (positionals.length !== 1) throw new UserError('predict: give one VIDEO');
    if (!values.run) throw new UserError('predict: --run RUN is required (a folder made by ous train)');
    const box = values.box?.trim().split(/\s+/).map(Number);
    if (box && (box.length !== 4 || !box.every(Number.isFinite))) throw new UserError(`predict: --box must be "x y w h", not '${values.box}'`);
    const r = await predictVideo(positionals[0]!, values.run, { faceBox: box as [number, number, number, number] | undefined });
    if (r.warning) process.stderr.write(`ous: warning: ${r.warning}\n`);
    if (values.json) {
      process.stdout.write(JSON.stringify(r) + '\n');
      return 0;
    }
    const pct = (v: number) => `${(100 * v).toFixed(1)}%`;
    process.stdout.write(`${r.video}: ${r.emotion} (${pct(r.probabilities[r.emotion]!)})${r.faceMissing ? ' [no face found: centre crop]' : ''}\n`);
    process.stdout.write('  ' + Object.entries(r.probabilities).map(([n, v]) => `${n} ${pct(v)}`).join('  ') + '\n');
    if (r.polarity) process.stdout.write('  scene polarity: ' + Object.entries(r.polarity).map(([n, v]) => `${n} ${pct(v)}`).join('  ') + '\n');
    if (r.sceneEffect) {
      process.stdout.write(`  the scene moved ${pct(r.sceneEffect.totalVariation)} of the probability; without it: ${r.sceneEffect.emotionWithoutScene}${r.sceneEffect.changedDecision ? ' (the scene changed the decision)' : ''}\n`);
    }
    return 0;
  },
};
