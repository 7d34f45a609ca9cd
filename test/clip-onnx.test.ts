// The frozen CLIP tower on onnxruntime (clip/onnx.ts, torch/onnx.ts, torch/onnxruntime.ts): the
// ONNX writer on a hand-computed graph, the vision tower's graph against OpenAI's reference
// outputs (fixtures/clip-dev/golden.json) at the same 1e-4 as libtorch's tower, and the two
// engines of FrameEncoder against each other on real photos.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { cat, noGrad, tensor } from '../src/torch/index.js';
import { OnnxGraph } from '../src/torch/onnx.js';
import { OnnxSession } from '../src/torch/onnxruntime.js';
import { loadClip } from '../src/clip/load.js';
import { visionTowerOnnx } from '../src/clip/onnx.js';
import { FrameEncoder, chooseEngine } from '../src/data/encoder.js';
import { readImage } from '../src/video/decode.js';
import { UserError } from '../src/util/errors.js';
import { enginePreference } from '../src/cli/env.js';
import { assertClose, fixture, goldenPixels } from './helpers.js';

const dir = fixture('clip-dev');
const golden = JSON.parse(fs.readFileSync(path.join(dir, 'golden.json'), 'utf8')) as {
  images: Array<{ name: string; preprocessed_png: string; image_embeds: number[] }>;
};

test('OnnxGraph: a Gemm with a float attribute, a negative reshape and two outputs, computed by hand', async () => {
  // y = 0.5 · x Wᵀ + b for x [2, 3], W [4, 3], b [4]; then y reshaped to [-1] and x·2 as a second output
  const x = [1, 2, 3, -1, 0.5, 4];
  const W = [1, 0, -1, 2, 1, 0, 0.5, 0.5, 0.5, -2, 3, 1];
  const b = [0.25, -1, 2, 0];
  const g = new OnnxGraph('t', 17);
  const xi = g.input('x', 'float32', ['N', 3]);
  const y = g.op(
    'Gemm',
    [xi, g.constant('W', tensor(Float32Array.from(W), { shape: [4, 3] })), g.constant('b', tensor(b))],
    { transB: 1, alpha: { f: 0.5 } },
  );
  g.output(g.op('Reshape', [y, g.constant('flat', { int64: [-1] })]), 'y', 'float32', [8]);
  g.output(g.op('Mul', [xi, g.constant('two', tensor([2]))]), 'x2', 'float32', ['N', 3]);
  const s = await OnnxSession.create(g.toBytes());
  const out = await s.run({ x: tensor(Float32Array.from(x), { shape: [2, 3] }) });
  const want: number[] = [];
  for (let i = 0; i < 2; i++)
    for (let j = 0; j < 4; j++)
      want.push(0.5 * (x[3 * i]! * W[3 * j]! + x[3 * i + 1]! * W[3 * j + 1]! + x[3 * i + 2]! * W[3 * j + 2]!) + b[j]!);
  assert.deepEqual(out.y!.shape, [8]);
  assertClose(out.y!.toFlatArray(), want, { atol: 1e-6, what: 'y' });
  assertClose(
    out.x2!.toFlatArray(),
    x.map((v) => 2 * v),
    { atol: 0, what: 'x2' },
  );
  await s.release();
  // Issue 37: onnxruntime's telemetry is off, so no empty /tmp/mat-debug-PID.log is left per process.
  assert.equal(fs.existsSync(`/tmp/mat-debug-${process.pid}.log`), false, 'no /tmp/mat-debug-PID.log');
});

const onnxGraphTitle =
  "the vision tower's ONNX graph on onnxruntime: OpenAI's image embeddings at 1e-4, the low block as libtorch's";
test(onnxGraphTitle, async () => {
  const clip = loadClip(path.join(dir, 'model'));
  // [n, 3, R, R]
  const px = cat(await Promise.all(golden.images.map((g) => goldenPixels(path.join(dir, g.preprocessed_png)))), 0);
  const L = clip.config.vision_config.num_hidden_layers;
  for (const k of [0, 1, L]) {
    const s = await OnnxSession.create(visionTowerOnnx(clip, { lowBlock: k }));
    const out = await s.run({ pixels: px });
    golden.images.forEach((g, i) =>
      assertClose(out.image_embeds!.select(0, i).toFlatArray(), g.image_embeds, {
        atol: 1e-4,
        what: `${g.name} image_embeds (low block ${k})`,
      }),
    );
    // libtorch's, checked against the goldens in clip-model
    const ref = noGrad(() => clip.encodeImage(px, [k]).blocks[0]!.mean(1));
    assertClose(out.low!.toFlatArray(), ref.toFlatArray(), { atol: 1e-4, what: `token-mean after block ${k}` });
    await s.release();
  }
  // without a low block the graph has one output
  const s = await OnnxSession.create(visionTowerOnnx(clip));
  assert.deepEqual(Object.keys(await s.run({ pixels: px.narrow(0, 0, 1) })), ['image_embeds']);
  await s.release();
  assert.throws(() => visionTowerOnnx(clip, { lowBlock: L + 1 }), new RegExp(`lowBlock ${L + 1} is not in 0..${L}`));
});

const frameEncoderTitle =
  'FrameEncoder: onnxruntime and libtorch give the same ' +
  'features for real photos; the engine is chosen as documented';
test(frameEncoderTitle, async () => {
  // OUS_ENGINE as the CLI reads it (src/cli/env.ts), then the choice
  assert.equal(chooseEngine('cpu', 'fp32', enginePreference({})), 'onnxruntime'); // installed with the lockfile
  assert.equal(chooseEngine('cpu', 'fp32', enginePreference({ OUS_ENGINE: 'libtorch' })), 'libtorch');
  assert.equal(chooseEngine('cpu', 'bf16', enginePreference({})), 'libtorch');
  assert.equal(chooseEngine('cuda', 'fp32', enginePreference({})), 'libtorch');
  assert.throws(
    () => chooseEngine('cpu', 'fp32', enginePreference({ OUS_ENGINE: 'onnx' })),
    (e: Error) =>
      e instanceof UserError && /OUS_ENGINE must be auto, libtorch or onnxruntime, not 'onnx'/.test(e.message),
  );
  assert.throws(
    () => chooseEngine('cuda', 'fp32', enginePreference({ OUS_ENGINE: 'onnxruntime' })),
    (e: Error) => e instanceof UserError && /fp32 on the CPU only, not fp32 on cuda/.test(e.message),
  );

  const frames = await Promise.all(
    ['grace_hopper_512.jpg', 'opencvdoc_smiling_man_434.jpg', 'trackingjs_3faces_600x346.jpg'].map((f) =>
      readImage(fixture('media', f)),
    ),
  );
  const ort = FrameEncoder.load(path.join(dir, 'model'), { batchSize: 2, engine: 'onnxruntime' }); // two batches: 2 + 1
  const lt = FrameEncoder.load(path.join(dir, 'model'), { batchSize: 2, engine: 'libtorch' });
  const a = await ort.encode(frames, 1);
  const b = await lt.encode(frames, 1);
  assert.deepEqual(a.emb.shape, [3, ort.dims.embed]);
  assertClose(a.emb.toFlatArray(), b.emb.toFlatArray(), { atol: 1e-4, what: 'image embeddings' });
  assertClose(a.low!.toFlatArray(), b.low!.toFlatArray(), { atol: 1e-4, what: 'token-mean after block 1' });
  await ort.release();
});
