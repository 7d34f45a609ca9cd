// Training-step benchmark on cached features (what `ous train` runs every step): OUS at ViT-B/32
// and ViT-L/14 widths, batch 16, T 16, prompt lengths 16 and 64, random weights, beside the same
// step in PyTorch (bench/reference.py `ous_train`: the same head, CoOp through the frozen text
// tower truncated at the last end-of-text, the same losses and α switch, Adam), run alternately.
import { nn, optim, randn, randint, tensor, tidy, manualSeed, getNumThreads } from '../src/torch/index.js';
import { CLIP_SHAPES, clipConfigFor } from '../src/clip/config.js';
import { ClipTextTransformer } from '../src/clip/model.js';
import { ClipTokenizer } from '../src/clip/tokenizer.js';
import { OusHead } from '../src/ous/model.js';
import { resolveOusConfig } from '../src/ous/config.js';
import { ousLoss } from '../src/ous/losses.js';
import { packageRoot } from '../src/util/paths.js';
import * as path from 'node:path';
import { compare, printTable, timeIt, type Row, type TorchReference } from './lib.js';

// `OUS_BENCH_TRAIN=ViT-L/14:64` runs one row (profiling); steps at L/14 widths take seconds.
const only = process.env.OUS_BENCH_TRAIN;

export async function benchTrain(torch: TorchReference | null, quick: boolean): Promise<void> {
  manualSeed(0);
  const tok = ClipTokenizer.fromFolder(path.join(packageRoot(), 'fixtures', 'clip-dev', 'model'));
  const rows: Row[] = [];
  const iters = quick ? 1 : 2;
  for (const name of ['ViT-B/32', 'ViT-L/14'] as const) {
    const shape = CLIP_SHAPES[name];
    const cfg = clipConfigFor(shape);
    const text = new ClipTextTransformer(cfg.text_config).eval().requiresGrad_(false);
    const proj = new nn.Linear(shape.text.width, shape.embed, { bias: false }).requiresGrad_(false);
    const tower = {
      tokenize: (t: string) => tok.tokenize(t),
      embedTokens: (ids: Parameters<ClipTextTransformer['embedTokens']>[0]) => text.embedTokens(ids),
      encode: (e: Parameters<ClipTextTransformer['embedTokens']>[0], eot: number[]) =>
        proj.forward(text.forward(e, eot).pooled),
      width: shape.text.width,
    };
    for (const promptLength of quick ? [16] : [16, 64]) {
      if (only && only !== `${name}:${promptLength}`) continue;
      const ous = resolveOusConfig({ promptLength });
      const head = new OusHead(ous, { embed: shape.embed, visionWidth: shape.vision.width }, tower);
      const opt = new optim.Adam(head.parameters(), { lr: 2e-3 });
      const batch = {
        face: randn([16, 16, shape.embed]).keep(),
        scene: randn([16, 16, shape.embed]).keep(),
        low: randn([16, 16, shape.vision.width]).keep(),
      };
      const labels = randint(0, 7, [16]).keep();
      const polarity = tensor(
        labels.toFlatArray().map((c) => ous.polarityOfClass![c]!),
        { dtype: 'int64' },
      ).keep();
      const step = () =>
        tidy(() => {
          const r = ousLoss(head.forward(batch), labels, polarity, ous);
          opt.zeroGrad();
          r.loss.backward();
          opt.step();
        });
      head.train();
      const args = {
        embed: shape.embed,
        vision_width: shape.vision.width,
        text_width: shape.text.width,
        text_layers: shape.text.layers,
        text_heads: shape.text.heads,
        prompt_length: promptLength,
        eot: head.prompt_learner.prompts.map((p) => tok.tokenize(p).eotIndex),
      };
      // Five rounds, alternating which side goes first (the median of the rounds' ratios); two warm-up
      // steps (the first allocates Adam's state and faults in fresh memory on both sides).
      const ours = () => timeIt(step, { iters, warmup: 2 });
      rows.push(
        await compare(
          `${name} widths, prompt length ${promptLength}`,
          ours,
          torch,
          'ous_train',
          args,
          iters,
          quick ? 1 : 5,
          2,
        ),
      );
      for (const p of head.parameters()) p.dispose();
      for (const t of [batch.face, batch.scene, batch.low, labels, polarity]) t.dispose();
    }
    for (const p of [...text.parameters(), ...proj.parameters()]) p.dispose();
  }
  printTable(
    `OUS training step on cached features (batch 16, T 16, random weights, Adam; ${getNumThreads()} threads)`,
    rows,
  );
}
