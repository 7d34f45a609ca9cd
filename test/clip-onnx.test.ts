// The frozen CLIP tower on onnxruntime (clip/onnx.ts, torch/onnx.ts, torch/onnxruntime.ts): the
// ONNX writer on a hand-computed graph, the vision tower's graph against OpenAI's reference
// outputs (fixtures/clip-dev/golden.json) at the same 1e-4 as libtorch's tower, and the two
// engines of FrameEncoder against each other on real photos.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { cat, noGrad, tensor, type Tensor } from '../src/torch/index.js';
import { OnnxGraph } from '../src/torch/onnx.js';
import { OnnxSession } from '../src/torch/onnxruntime.js';
import { loadClip } from '../src/clip/load.js';
import { quantiseWeights, visionTowerOnnx } from '../src/clip/onnx.js';
import { FrameEncoder, chooseEngine } from '../src/clip/frame-encoder.js';
import { decodeFrames, probeVideo, readImage } from '../src/video/decode.js';
import { UserError } from '../src/util/errors.js';
import { enginePreference } from '../src/cli/env.js';
import { assertClose, fixture, goldenPixels } from './helpers.js';

const dir = fixture('clip-dev');
const golden = JSON.parse(fs.readFileSync(path.join(dir, 'golden.json'), 'utf8')) as {
  images: Array<{ name: string; preprocessed_png: string; image_embeds: number[]; cls_after_block: number[][] }>;
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

test('quantiseWeights: per output channel, symmetric, laid out [in, out]; 7 bits where the CPU lacks VNNI', () => {
  // W [2, 3]: row 0's largest |w| is 2, row 1's 0.6 (no value falls half-way between two steps)
  const w = tensor(Float32Array.from([1.2, -2, 0.5, 0.25, 0, -0.6]), { shape: [2, 3] });
  const q8 = quantiseWeights(w);
  assert.deepEqual(q8.dims, [3, 2]);
  assertClose(Array.from(q8.scale), [2 / 127, 0.6 / 127], { atol: 1e-8, what: 'scales' });
  // 1.2·127/2 = 76.2, 0.5·127/2 = 31.75, 0.25·127/0.6 = 52.9
  assert.deepEqual(Array.from(q8.q), [76, 53, -127, 0, 32, -127]);
  const q7 = quantiseWeights(w, 7);
  assertClose(Array.from(q7.scale), [2 / 63, 0.6 / 63], { atol: 1e-8, what: '7-bit scales' });
  // 1.2·63/2 = 37.8, 0.5·63/2 = 15.75, 0.25·63/0.6 = 26.25
  assert.deepEqual(Array.from(q7.q), [38, 26, -63, 0, 16, -63]);
});

const cos = (a: number[], b: number[]) => {
  let [d, na, nb] = [0, 0, 0];
  a.forEach((x, i) => {
    d += x * b[i]!;
    na += x * x;
    nb += b[i]! * b[i]!;
  });
  return d / Math.sqrt(na * nb);
};
/** Row cosines of two [n, D] tensors; their median and minimum. */
const rowCosines = (a: Tensor, b: Tensor) => {
  const [x, y] = [a.toArray() as number[][], b.toArray() as number[][]];
  const c = x.map((r, i) => cos(r, y[i]!)).sort((p, q) => p - q);
  return { median: c[c.length >> 1]!, min: c[0]! };
};

const int8GraphTitle =
  'the int8 graph (8-bit weights, and the 7 bits of a CPU without VNNI): the class token after ' +
  'every block and the embeddings near OpenAI on the goldens';
test(int8GraphTitle, async () => {
  const clip = loadClip(path.join(dir, 'model'));
  const imgs = golden.images;
  const px = cat(await Promise.all(imgs.map((g) => goldenPixels(path.join(dir, g.preprocessed_png)))), 0);
  const L = clip.config.vision_config.num_hidden_layers;
  // the blocks' Linear weights, nearly all of the tower, take 1 byte instead of 4
  const ratio = visionTowerOnnx(clip, { int8: true }).length / visionTowerOnnx(clip).length;
  assert.ok(ratio < 0.5, `int8 graph ${ratio} of the float32 one's size`);
  for (const weightBits of [0, 8, 7] as const) {
    const int8 = weightBits ? { weightBits } : false; // 0: float32
    const s = await OnnxSession.create(visionTowerOnnx(clip, { int8, blockCls: true }));
    const out = await s.run({ pixels: px });
    await s.release();
    assert.deepEqual(out.block_cls!.shape, [imgs.length, L, clip.config.vision_config.hidden_size]);
    const want = tensor(imgs.map((g) => g.image_embeds));
    const wantCls = tensor(imgs.map((g) => g.cls_after_block));
    if (!int8) {
      // float32: OpenAI's outputs to 1e-4, the new output included
      assertClose(out.block_cls!.toFlatArray(), wantCls.toFlatArray(), { atol: 1e-4, what: 'class token a block' });
      continue;
    }
    const e = rowCosines(out.image_embeds!, want);
    const bits = `${weightBits}-bit weights`;
    assert.ok(e.median >= 0.995 && e.min >= 0.98, `${bits}: image_embeds cosine to OpenAI ${JSON.stringify(e)}`);
    for (let k = 0; k < L; k++) {
      const b = rowCosines(out.block_cls!.select(1, k), wantCls.select(1, k));
      assert.ok(b.min >= 0.98, `${bits}: class token after block ${k + 1} ${JSON.stringify(b)}`);
    }
  }
});

test('FrameEncoder --precision int8: real frames within cosine 0.995 (median) and 0.98 (min) of fp32', async () => {
  assert.equal(chooseEngine('cpu', 'int8'), 'onnxruntime');
  for (const [device, prefer] of [
    ['cpu', 'libtorch'],
    ['cuda', 'auto'],
  ] as const)
    assert.throws(
      () => chooseEngine(device, 'int8', prefer),
      (e: Error) =>
        e instanceof UserError && /^--precision int8 runs CLIP's vision tower on onnxruntime/.test(e.message),
    );
  // photos and frames of a talking-head video: faces, scenes, a grey wall
  const frames = await Promise.all(
    ['grace_hopper_512.jpg', 'opencvdoc_smiling_man_434.jpg', 'trackingjs_3faces_600x346.jpg'].map((f) =>
      readImage(fixture('media', f)),
    ),
  );
  const video = fixture('media', 'franck_0-6s.mp4');
  const info = await probeVideo(video);
  const at = Array.from({ length: 9 }, (_, i) => Math.floor((i * info.frameCount) / 9));
  frames.push(...(await decodeFrames(video, info, at)).frames);
  const fp32 = FrameEncoder.load(path.join(dir, 'model'), { engine: 'onnxruntime' });
  const int8 = FrameEncoder.load(path.join(dir, 'model'), { precision: 'int8' });
  assert.equal(int8.engine, 'onnxruntime');
  const L = fp32.clip.config.vision_config.num_hidden_layers;
  // every low block k the Polarity Encoder may read (0 = after pre-LN), the embeddings with each
  for (let k = 0; k <= L; k++) {
    const [a, b] = [await fp32.encode(frames, k), await int8.encode(frames, k)];
    const e = rowCosines(b.emb, a.emb);
    const low = rowCosines(b.low!, a.low!);
    assert.ok(e.median >= 0.995 && e.min >= 0.98, `embeddings (low block ${k}): ${JSON.stringify(e)}`);
    assert.ok(low.median >= 0.995 && low.min >= 0.98, `token-mean after block ${k}: ${JSON.stringify(low)}`);
  }
  await fp32.release();
  await int8.release();
});
