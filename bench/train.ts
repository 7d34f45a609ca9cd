// Training-step benchmark on cached features (what `ous train` runs every step): OUS at ViT-B/32
// and ViT-L/14 widths, batch 16, prompt lengths 16 and 64, with random weights; and the share of a
// step spent in the frozen text tower (prompt learning runs it forward and backward every step).
import { nn, optim, randn, randint, tensor, tidy, manualSeed, noGrad, type Tensor } from '../src/torch/index.js';
import { CLIP_SHAPES, clipConfigFor } from '../src/clip/config.js';
import { ClipTextTransformer } from '../src/clip/model.js';
import { ClipTokenizer } from '../src/clip/tokenizer.js';
import { OusHead } from '../src/ous/model.js';
import { resolveOusConfig } from '../src/ous/config.js';
import { ousLoss } from '../src/ous/losses.js';
import { packageRoot } from '../src/util/paths.js';
import * as path from 'node:path';
import { timeIt } from './lib.js';

export async function benchTrain(quick: boolean): Promise<void> {
  manualSeed(0);
  const tok = ClipTokenizer.fromFolder(path.join(packageRoot(), 'fixtures', 'clip-dev', 'model'));
  console.log('\nOUS training step on cached features (batch 16, T 16, random weights)');
  console.log('encoder widths   prompt  step (ms)  steps/s  text tower share');
  for (const name of ['ViT-B/32', 'ViT-L/14'] as const) {
    const shape = CLIP_SHAPES[name];
    const cfg = clipConfigFor(shape);
    const text = new ClipTextTransformer(cfg.text_config).eval().requiresGrad_(false);
    const proj = new nn.Linear(shape.text.width, shape.embed, { bias: false }).requiresGrad_(false);
    const tower = {
      tokenize: (t: string) => tok.tokenize(t),
      embedTokens: (ids: Tensor) => text.embedTokens(ids),
      encode: (e: Tensor, eot: number[]) => proj.forward(text.forward(e, eot).pooled),
      width: shape.text.width,
    };
    for (const promptLength of quick ? [16] : [16, 64]) {
      const ous = resolveOusConfig({ promptLength });
      const head = new OusHead(ous, { embed: shape.embed, visionWidth: shape.vision.width }, tower);
      const opt = new optim.Adam(head.parameters(), { lr: 2e-3 });
      const batch = { face: randn([16, 16, shape.embed]).keep(), scene: randn([16, 16, shape.embed]).keep(), low: randn([16, 16, shape.vision.width]).keep() };
      const labels = randint(0, 7, [16]).keep();
      const polarity = tensor(labels.toFlatArray().map((c) => ous.polarityOfClass![c]!), { dtype: 'int64' }).keep();
      const step = () =>
        tidy(() => {
          const r = ousLoss(head.forward(batch), labels, polarity, ous);
          opt.zeroGrad();
          r.loss.backward();
          opt.step();
        });
      head.train();
      const full = timeIt(step, { iters: quick ? 2 : 4, warmup: 1 });
      // The same step with the class text features computed once and frozen: the difference is
      // what the text tower costs (its forward and the backward to the context vectors).
      head.prompt_learner.eval();
      noGrad(() => head.prompt_learner.textFeatures());
      const cached = timeIt(step, { iters: quick ? 2 : 4, warmup: 1 });
      console.log(`${name.padEnd(16)} ${String(promptLength).padStart(6)}  ${(full * 1e3).toFixed(0).padStart(9)}  ${(1 / full).toFixed(2).padStart(7)}  ${((100 * (full - cached)) / full).toFixed(0).padStart(15)}%`);
      for (const p of head.parameters()) p.dispose();
    }
    for (const p of [...text.parameters(), ...proj.parameters()]) p.dispose();
  }
}
