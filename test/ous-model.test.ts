// The OUS head's parts against hand computations: the Type Fusion Encoder against eqs. (5)–(10)
// written out in plain JS, the losses against their formulas, the α switch, and the prompt learner
// against OpenAI's CoOp goldens.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { F, type Tensor, tensor, noGrad, manualSeed, randn, optim } from '../src/torch/index.js';
import { TypeFusionEncoder, OusHead, FaceOnlyHead, FeatureStandardizer, buildHead } from '../src/ous/model.js';
import { PromptLearner } from '../src/ous/prompt.js';
import { nceLoss, similarityLoss, ousLoss } from '../src/ous/losses.js';
import { resolveOusConfig } from '../src/ous/config.js';
import { loadClipFolder } from '../src/clip/load.js';
import { assertClose, fixture, goldenTextTower } from './helpers.js';

// ---- plain-JS linear algebra for the hand computations ----
type M = number[][];
const mat = (t: Tensor): M => t.toArray() as M;
const mm = (a: M, b: M): M => a.map((r) => b[0]!.map((_, j) => r.reduce((s, v, k) => s + v * b[k]![j]!, 0)));
const tr = (a: M): M => a[0]!.map((_, j) => a.map((r) => r[j]!));
const addRow = (a: M, b: number[]): M => a.map((r) => r.map((v, j) => v + b[j]!));
const linear = (x: M, w: Tensor, b: Tensor): M => addRow(mm(x, tr(mat(w))), b.toFlatArray());
const layerNorm = (x: M, w: Tensor, b: Tensor): M => {
  const [g, be] = [w.toFlatArray(), b.toFlatArray()];
  return x.map((r) => {
    const mu = r.reduce((s, v) => s + v, 0) / r.length;
    const v = r.reduce((s, x2) => s + (x2 - mu) ** 2, 0) / r.length;
    return r.map((x2, j) => ((x2 - mu) / Math.sqrt(v + 1e-5)) * g[j]! + be[j]!);
  });
};
const softmaxRows = (a: M): M =>
  a.map((r) => {
    const m = Math.max(...r);
    const e = r.map((v) => Math.exp(v - m));
    const s = e.reduce((x, y) => x + y, 0);
    return e.map((v) => v / s);
  });

test('Type Fusion Encoder: 1 block, 2 queries, 3 tokens equals eqs. (5)-(10) computed by hand', () => {
  manualSeed(11);
  const E = 4;
  const heads = 2;
  const tfe = new TypeFusionEncoder(E, 1, 2, heads, false);
  const X = randn([1, 3, E]);
  const z = noGrad(() => tfe.forward(X));
  const blk = tfe.blocks[0]!;
  const Q = mat(tfe.queries); // [2, E]; q_1 = x_0 + Q = Q
  const kv = layerNorm(mat(X.select(0, 0)), blk.ln_kv.weight!, blk.ln_kv.bias!); // eq. (5)
  const [wq, wk, wv] = blk.attn.in_proj_weight.chunk(3, 0);
  const [bq, bk, bv] = blk.attn.in_proj_bias!.chunk(3, 0);
  const q = linear(Q, wq!, bq!);
  const k = linear(kv, wk!, bk!);
  const v = linear(kv, wv!, bv!);
  const d = E / heads;
  const headOut: M = Q.map(() => []);
  for (let h = 0; h < heads; h++) {
    const cols = (a: M) => a.map((r) => r.slice(h * d, (h + 1) * d));
    const p = softmaxRows(mm(cols(q), tr(cols(k))).map((r) => r.map((x) => x / Math.sqrt(d)))); // eq. (15)
    mm(p, cols(v)).forEach((r, i) => headOut[i]!.push(...r));
  }
  const attn = linear(headOut, blk.attn.out_proj.weight, blk.attn.out_proj.bias!);
  const o = layerNorm(attn, blk.ln_a.weight!, blk.ln_a.bias!); // eq. (7)
  const [fc1, , fc2] = [0, 1, 2].map((i) => blk.mlp.at(i) as unknown as { weight: Tensor; bias: Tensor });
  const hidden = linear(o, fc1!.weight, fc1!.bias).map((r) => r.map((x) => Math.max(0, x))); // eq. (9): ReLU
  const ff = linear(hidden, fc2!.weight, fc2!.bias); // eq. (8)
  const out = layerNorm(ff, blk.ln_c.weight!, blk.ln_c.bias!); // eq. (10)
  const expected = out[0]!.map((_, j) => (out[0]![j]! + out[1]![j]!) / 2); // mean over the 2 queries
  assertClose(z.toFlatArray(), expected, { atol: 1e-5, what: 'TFE output' });
});

test('Type Fusion Encoder: the shared queries are re-added at every block', () => {
  manualSeed(12);
  const tfe = new TypeFusionEncoder(4, 2, 2, 1, false);
  const X = randn([1, 3, 4]);
  const z = noGrad(() => tfe.forward(X));
  const Q = tfe.queries.unsqueeze(0);
  const byHand = noGrad(() => {
    const x1 = tfe.blocks[0]!.forward(Q, X);
    return tfe.blocks[1]!.forward(x1.add(Q), X).mean(1);
  });
  assertClose(z.toFlatArray(), byHand.toFlatArray(), { atol: 0, what: 'two-block TFE' });
});

test('losses equal their formulas computed by hand', () => {
  const aS = [
    [1, 0],
    [0.5, 0.5],
    [0, 2],
  ];
  const aF = [
    [1, 1],
    [0, 1],
    [1, -1],
  ];
  const cos = (a: number[], b: number[]) => (a[0]! * b[0]! + a[1]! * b[1]!) / (Math.hypot(...a) * Math.hypot(...b));
  const tau = 0.07;
  let nce = 0;
  for (let i = 0; i < 3; i++) {
    const row = aF.map((f) => cos(aS[i]!, f) / tau);
    const lse = Math.log(row.reduce((s, v) => s + Math.exp(v), 0));
    nce += -(row[i]! - lse) / 3;
  }
  assertClose([nceLoss(tensor(aS), tensor(aF), tau).item()], [nce], { rtol: 1e-5, what: 'L_nce' });
  // eq. (3) as the paper writes it: the sum over the batch's N = 3 clips
  assertClose([nceLoss(tensor(aS), tensor(aF), tau, 'sum').item()], [3 * nce], { rtol: 1e-5, what: 'L_nce sum' });
  const sim = 1 - (cos(aF[0]!, aS[0]!) + cos(aF[1]!, aS[1]!) + cos(aF[2]!, aS[2]!)) / 3;
  assertClose([similarityLoss(tensor(aF), tensor(aS)).item()], [sim], { atol: 1e-6, what: 'L_sim' });
});

test('the α switch back-propagates L_global above α and L_contrast below; "ce" is L_cls alone', () => {
  const out = {
    logits: tensor([
      [2, 0, 0],
      [0, 1, 0],
    ]),
    polarityLogits: tensor([
      [0, 0, 3],
      [1, 0, 0],
    ]),
    aFace: tensor([
      [1, 0],
      [0, 1],
    ]),
    aScene: tensor([
      [1, 0.2],
      [0.1, 1],
    ]),
    stages: {} as never,
  };
  const labels = tensor([0, 1], { dtype: 'int64' });
  const pol = tensor([2, 0], { dtype: 'int64' });
  const cfg = { loss: 'global' as const, tauNce: 0.07, lambdaNce: 1, alpha: 2, reduction: 'mean' as const };
  const r = ousLoss(out, labels, pol, cfg);
  // reduction 'sum' (eqs. 1 and 3): L_pol and L_nce are N = 2 times their means; L_cls and L_sim are not
  const summed = ousLoss(out, labels, pol, { ...cfg, reduction: 'sum' }).terms;
  assertClose(
    [summed.pol, summed.nce, summed.cls, summed.sim],
    [2 * r.terms.pol, 2 * r.terms.nce, r.terms.cls, r.terms.sim],
    {
      rtol: 1e-6,
    },
  );
  const cls = F.crossEntropy(out.logits, labels).item();
  assertClose([r.terms.cls], [cls], { atol: 1e-7 });
  assertClose([r.terms.contrast], [r.terms.cls + r.terms.nce], { atol: 1e-6 });
  assertClose([r.terms.global], [r.terms.sim + r.terms.pol + r.terms.contrast], { atol: 1e-6 });
  const above = ousLoss(out, labels, pol, { ...cfg, alpha: r.terms.global - 1e-3 });
  assert.equal(above.phase, 'global');
  assertClose([above.loss.item()], [r.terms.global], { atol: 1e-6 });
  const below = ousLoss(out, labels, pol, { ...cfg, alpha: r.terms.global + 1e-3 });
  assert.equal(below.phase, 'contrast');
  assertClose([below.loss.item()], [r.terms.contrast], { atol: 1e-6 });
  const ce = ousLoss(out, labels, pol, { ...cfg, loss: 'ce' });
  assert.equal(ce.phase, 'ce');
  assertClose([ce.loss.item()], [cls], { atol: 1e-7 });
});

// The dev CLIP's frozen text tower, with the golden token ids standing in for the tokenizer.
const golden = JSON.parse(fs.readFileSync(fixture('clip-dev', 'golden.json'), 'utf8'));
const tower = goldenTextTower();

test('PromptLearner equals OpenAI CoOp: features from the golden context, and gradients reach only ctx', () => {
  const pl = new PromptLearner(tower, golden.coop.classnames, { promptLength: 4 });
  assert.deepEqual(pl.prompts.slice(0, 2), golden.coop.prompts.slice(0, 2));
  noGrad(() => pl.ctx.copy_(tensor(golden.coop.ctx)));
  const feats = pl.textFeatures();
  assertClose(feats.toFlatArray(), golden.coop.text_features.flat(), { atol: 1e-4, what: 'prompt learner features' });
  feats.sum().backward();
  assertClose(pl.ctx.grad!.toFlatArray(), golden.coop.grad_of_sum_text_features_wrt_ctx.flat(), {
    rtol: 1e-3,
    atol: 1e-6,
    what: 'd/d ctx',
  });
  assert.deepEqual(
    [...pl.namedParameters()].map(([n]) => n),
    ['ctx'],
    'CLIP is not part of the learner',
  );
  // Eval mode computes the features once; loading new weights invalidates them.
  pl.eval();
  const a = pl.textFeatures();
  assert.equal(pl.textFeatures(), a);
  pl.loadStateDict({ ctx: tensor(golden.coop.ctx).mul(2) });
  assert.notEqual(pl.textFeatures(), a);
  assert.equal(
    new PromptLearner(tower, golden.coop.classnames, { promptLength: 4, perClass: true }).ctx.shape.join(),
    '7,4,64',
  );
});

test('lending averaged weights gives the text features of the averaged weights (no mode switch needed)', () => {
  // The average holds the golden context; the trained weights are twice it. In eval mode the learner
  // caches its features: the lent average must not be read through the trained weights' cache, and
  // the trained weights' features come back once the average is taken back.
  const pl = new PromptLearner(tower, golden.coop.classnames, { promptLength: 4 });
  noGrad(() => pl.ctx.copy_(tensor(golden.coop.ctx)));
  const average = new optim.WeightAverage([pl.ctx], 0.5, { written: () => pl.weightsChanged() });
  noGrad(() => pl.ctx.copy_(tensor(golden.coop.ctx).mul(2)));
  pl.eval();
  const trained = pl.textFeatures().toFlatArray();
  assert.ok(Math.abs(trained[0]! - golden.coop.text_features[0][0]) > 1e-3, 'the trained features differ');
  const lent = average.withAverages(() => pl.textFeatures().toFlatArray());
  assertClose(lent, golden.coop.text_features.flat(), { atol: 1e-4, what: 'features of the averaged weights' });
  assertClose(pl.textFeatures().toFlatArray(), trained, { atol: 0, what: 'features of the trained weights again' });
});

test('OUS head and the face-only baseline: shapes, parameters, and the scene switch', () => {
  manualSeed(5);
  const dims = { embed: 32, visionWidth: 128 };
  const base = {
    classNames: golden.coop.classnames,
    promptLength: 4,
    frames: 4,
    tfeLayers: 2,
    tfeQueries: 3,
    heads: 2,
  };
  const batch = { face: randn([3, 4, 32]), scene: randn([3, 4, 32]), low: randn([3, 4, 128]) };
  const head = new OusHead(resolveOusConfig(base), dims, tower);
  const out = head.forward(batch);
  assert.deepEqual(out.logits.shape, [3, 7]);
  assert.deepEqual(out.polarityLogits!.shape, [3, 3]);
  assert.deepEqual(out.stages.fused.shape, [3, 32]);
  const names = [...head.namedParameters()].map(([n]) => n);
  for (const n of [
    'lstm.weight_ih_l0',
    'frames_encoder.cls',
    'alignment.conv.weight',
    'polarity_encoder.fc1.weight',
    'fusion.queries',
    'fusion.blocks.1.ln_c.weight',
    'prompt_learner.ctx',
  ]) {
    assert.ok(names.includes(n), `parameter ${n}`);
  }
  const noScene = new OusHead(resolveOusConfig({ ...base, scene: false }), dims, tower).forward(batch);
  assert.equal(noScene.aScene, undefined);
  const pooled = new OusHead(resolveOusConfig({ ...base, fusion: 'avgpool' }), dims, tower);
  assert.ok(![...pooled.namedParameters()].some(([n]) => n.startsWith('fusion.')));
  const face = new FaceOnlyHead(resolveOusConfig({ ...base, model: 'face-only' }), dims, tower);
  assert.deepEqual(face.forward(batch).logits.shape, [3, 7]);
  assert.throws(() => resolveOusConfig({ tfeLayer: 3 }), /Unrecognized key/);
  assert.throws(() => resolveOusConfig({ polarityOfClass: [0, 1] }), /polarityOfClass: has 2 entries for 7 classes/);
});

test('alignLstm false: L_sim and L_nce reach the Frames Encoder and the alignment but not the LSTM', () => {
  const dims = { embed: 32, visionWidth: 128 };
  const base = {
    classNames: golden.coop.classnames,
    promptLength: 4,
    frames: 4,
    tfeLayers: 1,
    tfeQueries: 2,
    heads: 2,
  };
  const batch = { face: randn([3, 4, 32]), scene: randn([3, 4, 32]), low: randn([3, 4, 128]) };
  const gradNorms = (alignLstm: boolean) => {
    manualSeed(9);
    const head = new OusHead(resolveOusConfig({ ...base, alignLstm }), dims, tower);
    head.train();
    const out = head.forward(batch);
    similarityLoss(out.aFace!, out.aScene!)
      .add(nceLoss(out.aScene!, out.aFace!, 0.07))
      .backward();
    const norm = (name: string) => {
      const p = [...head.namedParameters()].find(([n]) => n === name)![1];
      return p.grad ? p.grad.abs().sum().item() : 0;
    };
    return {
      lstm: norm('lstm.weight_ih_l0'),
      frames: norm('frames_encoder.cls'),
      conv: norm('alignment.conv.weight'),
      aFace: out.aFace!.toFlatArray(),
    };
  };
  const apart = gradNorms(false);
  const through = gradNorms(true);
  assert.equal(apart.lstm, 0);
  assert.ok(apart.frames > 0 && apart.conv > 0, JSON.stringify(apart));
  assert.ok(through.lstm > 0);
  assertClose(apart.aFace, through.aFace, { atol: 0, what: 'the same a_f either way' });
});

// ---- the OUS head by hand: one LSTM for both streams, a_s = mean_t A(H_s) ----
const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));
// erf to ~1e-7 (Abramowitz & Stegun 7.1.26), for the exact GELU 0.5·x·(1 + erf(x/√2)).
const erf = (x: number) => {
  const t = 1 / (1 + 0.3275911 * Math.abs(x));
  const y =
    1 -
    ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * Math.exp(-x * x);
  return x < 0 ? -y : y;
};
const gelu = (x: number) => 0.5 * x * (1 + erf(x / Math.SQRT2));

/** PyTorch's LSTM over the rows of x [T, E] (gates in the order i, f, g, o), from zero state. */
function lstmByHand(x: M, wih: Tensor, whh: Tensor, bih: Tensor, bhh: Tensor): M {
  const H = whh.size(1);
  let h = new Array<number>(H).fill(0);
  let c = new Array<number>(H).fill(0);
  const out: M = [];
  for (const xt of x) {
    const g = linear([xt], wih, bih)[0]!.map((v, j) => v + linear([h], whh, bhh)[0]![j]!);
    const gate = (k: number, j: number) => g[k * H + j]!;
    c = c.map((cj, j) => sigmoid(gate(1, j)) * cj + sigmoid(gate(0, j)) * Math.tanh(gate(2, j)));
    h = c.map((cj, j) => sigmoid(gate(3, j)) * Math.tanh(cj));
    out.push(h);
  }
  return out;
}

/** A(X) = Linear(GELU(Conv1d_k3,pad1(X))) over the token axis; X [n, E]. */
function alignmentByHand(x: M, convW: Tensor, convB: Tensor, fcW: Tensor, fcB: Tensor): M {
  const w = convW.toArray() as number[][][]; // [out, in, 3]
  const b = convB.toFlatArray();
  const conv = x.map((_, t) =>
    w.map((wo, o) =>
      wo.reduce(
        (s, wi, i) => s + [0, 1, 2].reduce((s2, k) => s2 + (x[t + k - 1] ? wi[k]! * x[t + k - 1]![i]! : 0), 0),
        b[o]!,
      ),
    ),
  );
  return linear(
    conv.map((r) => r.map(gelu)),
    fcW,
    fcB,
  );
}

test('OUS head by hand: one LSTM serves both streams, and a_s = mean_t A(H_s)', () => {
  manualSeed(21);
  const dims = { embed: 32, visionWidth: 128 };
  const head = new OusHead(
    resolveOusConfig({
      classNames: golden.coop.classnames,
      promptLength: 4,
      frames: 3,
      tfeLayers: 1,
      tfeQueries: 2,
      heads: 2,
    }),
    dims,
    tower,
  );
  const batch = { face: randn([1, 3, 32]), scene: randn([1, 3, 32]), low: randn([1, 3, 128]) };
  const out = noGrad(() => head.forward(batch));
  // Exactly one LSTM's weights in the head.
  assert.deepEqual(
    [...head.namedParameters()].map(([n]) => n).filter((n) => n.includes('lstm')),
    ['lstm.weight_ih_l0', 'lstm.weight_hh_l0', 'lstm.bias_ih_l0', 'lstm.bias_hh_l0'],
  );
  const { lstm, alignment: al } = head;
  const w = new Map(lstm.namedParameters());
  const lstmOf = (x: Tensor) =>
    lstmByHand(
      mat(x.select(0, 0)),
      w.get('weight_ih_l0')!,
      w.get('weight_hh_l0')!,
      w.get('bias_ih_l0')!,
      w.get('bias_hh_l0')!,
    );
  const A = (x: M) => alignmentByHand(x, al.conv.weight, al.conv.bias!, al.fc.weight, al.fc.bias!);
  // Scene: a_s = mean over t of A(H_s), H_s from the shared LSTM.
  const S = A(lstmOf(batch.scene));
  const aScene = S[0]!.map((_, j) => S.reduce((s, r) => s + r[j]!, 0) / S.length);
  assertClose(out.aScene!.toFlatArray(), aScene, { atol: 1e-5, what: 'a_s' });
  // Face: a_f = A(FramesEncoder(H_f))[0], H_f from the same LSTM's weights.
  const Zf = noGrad(() => head.frames_encoder.forward(tensor([lstmOf(batch.face)])));
  assertClose(out.aFace!.toFlatArray(), A(mat(Zf.select(0, 0)))[0]!, { atol: 1e-5, what: 'a_f' });
});

const standardizerTitle =
  "FeatureStandardizer: the training features' per-dimension mean and std, by hand; it rides in the state dict";
test(standardizerTitle, () => {
  const dims = { embed: 2, visionWidth: 1 };
  const s = new FeatureStandardizer(dims);
  // Two clips of two frames: face dims (1, 10), (3, 10), (5, 10), (7, 10) -> mean (4, 10), std (√5, 0 -> 1e-6).
  const face = tensor([
    [
      [1, 10],
      [3, 10],
    ],
    [
      [5, 10],
      [7, 10],
    ],
  ]);
  const scene = tensor([
    [
      [0, 2],
      [0, 2],
    ],
    [
      [2, 2],
      [2, 2],
    ],
  ]); // mean (1, 2), std (1, 0)
  const low = tensor([
    [[1], [2]],
    [[3], [4]],
  ]); // mean 2.5, std √1.25
  s.fit({ face, scene, low });
  assertClose(s.face_mean.toFlatArray(), [4, 10], { atol: 1e-6 });
  assertClose(s.face_std.toFlatArray(), [Math.sqrt(5), 1e-6], { atol: 1e-7, rtol: 1e-5 });
  assertClose(s.low_std.toFlatArray(), [Math.sqrt(1.25)], { rtol: 1e-6 });
  const out = s.forward({ face, scene, low });
  assertClose(
    out.face.toFlatArray(),
    [-3, 0, -1, 0, 1, 0, 3, 0].map((v, i) => (i % 2 ? v : v / Math.sqrt(5))),
    { atol: 1e-5 },
  );
  assertClose(out.scene.toFlatArray(), [-1, 0, -1, 0, 1, 0, 1, 0], { atol: 1e-5 });
  assert.deepEqual([...s.stateDict().keys()].sort(), [
    'face_mean',
    'face_std',
    'low_mean',
    'low_std',
    'scene_mean',
    'scene_std',
  ]);
  // A head with the option holds one, and its checkpoint keys say so; without it, none.
  const text = loadClipFolder(fixture('clip-dev', 'model')).textTower;
  const on = buildHead(
    resolveOusConfig({ standardize: true, tfeLayers: 1, tfeQueries: 2, heads: 2, promptLength: 2, frames: 2 }),
    { embed: 32, visionWidth: 128 },
    text,
  );
  assert.ok([...on.stateDict().keys()].includes('standardizer.face_mean'));
  const off = buildHead(
    resolveOusConfig({ tfeLayers: 1, tfeQueries: 2, heads: 2, promptLength: 2, frames: 2 }),
    { embed: 32, visionWidth: 128 },
    text,
  );
  assert.ok(![...off.stateDict().keys()].some((k) => k.startsWith('standardizer')));
});

test('the schema defaults are the paper preset: a config resolved without a preset is the paper method', async () => {
  const { PRESETS } = await import('../src/ous/presets.js');
  const { resolveTrainConfig } = await import('../src/ous/train-config.js');
  assert.deepEqual(resolveOusConfig(PRESETS.paper.ous), resolveOusConfig({}));
  assert.deepEqual(resolveTrainConfig(PRESETS.paper.train), resolveTrainConfig({}));
  // and each of its fields says where it comes from
  for (const k of [...Object.keys(PRESETS.paper.ous), ...Object.keys(PRESETS.paper.train)])
    assert.match(PRESETS.paper.why[k] ?? '', /^paper/, k);
});
