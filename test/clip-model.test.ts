// CLIP towers against OpenAI's reference implementation (fixtures/clip-dev/golden.json, made with
// openai/CLIP's own model.py): embeddings, every block's CLS / end-of-text vector, logits, and
// CoOp prompt learning (features, gradients, the cross-entropy check).
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  F,
  type Tensor,
  cat,
  tensor,
  noGrad,
  manualSeed,
  loadSafetensors,
  saveSafetensors,
} from '../src/torch/index.js';
import { loadClip, saveClip, readClipConfig } from '../src/clip/load.js';
import { ClipModel } from '../src/clip/model.js';
import { clipConfigFor } from '../src/clip/config.js';
import { assertClose, fixture, goldenPixels } from './helpers.js';

interface GoldenImage {
  name: string;
  preprocessed_png: string;
  pixel_sum: number;
  image_embeds: number[];
  pooled_output: number[];
  cls_after_ln_pre: number[];
  cls_after_block: number[][];
}
interface GoldenText {
  text: string;
  token_ids: number[];
  eot_index: number;
  text_embeds: number[];
  pooled_output: number[];
  eot_after_embedding: number[];
  eot_after_block: number[][];
}
const dir = fixture('clip-dev');
const golden = JSON.parse(fs.readFileSync(path.join(dir, 'golden.json'), 'utf8')) as {
  images: GoldenImage[];
  texts: GoldenText[];
  logits_per_image: number[][];
  logits_image_order: string[];
  coop: {
    token_ids: number[][];
    eot_index: number[];
    ctx: number[][];
    text_features: number[][];
    grad_of_sum_text_features_wrt_ctx: number[][];
    ce_check: { images: string[]; labels: number[]; logits: number[][]; loss: number; grad_wrt_ctx: number[][] };
  };
};
const model = loadClip(path.join(dir, 'model'));
const L = model.config.vision_config.num_hidden_layers;
const Lt = model.config.text_config.num_hidden_layers;
const range = (n: number) => Array.from({ length: n + 1 }, (_, i) => i); // 0..n

// OpenAI's normalisation of the already resized and cropped PNGs, by hand (helpers.ts).
const pixelsOf = (file: string) => goldenPixels(path.join(dir, file));

const images = new Map<string, Tensor>();
test.before(async () => {
  for (const g of golden.images) images.set(g.name, await pixelsOf(g.preprocessed_png));
});

test('vision tower: image embeddings, pooled output and the CLS after pre-LN and every block', () => {
  for (const g of golden.images) {
    const px = images.get(g.name)!;
    assertClose([px.double().sum().item()], [g.pixel_sum], { atol: 1e-3, what: `${g.name} pixel sum` });
    const out = noGrad(() => model.encodeImage(px, range(L)));
    assertClose(out.imageEmbeds.toFlatArray(), g.image_embeds, { atol: 1e-4, what: `${g.name} image_embeds` });
    assertClose(out.pooled.toFlatArray(), g.pooled_output, { atol: 1e-4, what: `${g.name} pooled` });
    assertClose(out.blocks[0]!.select(1, 0).toFlatArray(), g.cls_after_ln_pre, {
      atol: 1e-4,
      what: `${g.name} cls after ln_pre`,
    });
    for (let k = 1; k <= L; k++) {
      assertClose(out.blocks[k]!.select(1, 0).toFlatArray(), g.cls_after_block[k - 1]!, {
        atol: 1e-4,
        what: `${g.name} cls after block ${k}`,
      });
    }
  }
});

test('text tower: text embeddings, pooled output, EOT vectors after embedding and every block', () => {
  for (const g of golden.texts) {
    const ids = tensor([g.token_ids], { dtype: 'int64' });
    const out = noGrad(() => model.encodeText(ids, [g.eot_index], range(Lt)));
    assertClose(out.textEmbeds.toFlatArray(), g.text_embeds, {
      atol: 1e-4,
      what: `"${g.text.slice(0, 20)}" text_embeds`,
    });
    assertClose(out.pooled.toFlatArray(), g.pooled_output, { atol: 1e-4, what: 'text pooled' });
    assertClose(out.blocks[0]!.select(1, g.eot_index).toFlatArray(), g.eot_after_embedding, {
      atol: 1e-4,
      what: 'eot after embedding',
    });
    for (let k = 1; k <= Lt; k++)
      assertClose(out.blocks[k]!.select(1, g.eot_index).toFlatArray(), g.eot_after_block[k - 1]!, {
        atol: 1e-4,
        what: `eot after block ${k}`,
      });
  }
});

test('running the text tower only up to the longest EOT equals running all 77 positions', () => {
  const ids = tensor(
    golden.texts.map((g) => g.token_ids),
    { dtype: 'int64' },
  );
  const eot = golden.texts.map((g) => g.eot_index);
  const short = noGrad(() => model.encodeText(ids, eot).textEmbeds);
  const full = noGrad(
    () => model.encodeTextEmbeddings(model.text_model.embedTokens(ids), eot, [], { fullLength: true }).textEmbeds,
  );
  // The same arithmetic in GEMMs of other shapes (the last block at the end-of-text row only):
  // equal up to float32 summation order, which libtorch 2.6's kernels change by ~1e-6 at |x| ~ 1.
  assertClose(short.toFlatArray(), full.toFlatArray(), {
    atol: 1e-6,
    rtol: 1e-5,
    what: 'truncated vs full text tower',
  });
  // One batch of texts of different lengths gives each text's own result.
  golden.texts.forEach((g, i) =>
    assertClose(short.select(0, i).toFlatArray(), g.text_embeds, { atol: 1e-4, what: `batched text ${i}` }),
  );
});

test('logits per image [7 images, 6 texts]', () => {
  const px = cat(
    golden.logits_image_order.map((n) => images.get(n)!),
    0,
  );
  const ids = tensor(
    golden.texts.map((g) => g.token_ids),
    { dtype: 'int64' },
  );
  const logits = noGrad(() =>
    model.logitsPerImage(
      model.encodeImage(px).imageEmbeds,
      model.encodeText(
        ids,
        golden.texts.map((g) => g.eot_index),
      ).textEmbeds,
    ),
  );
  assert.deepEqual(logits.shape, [7, 6]);
  assertClose(logits.toFlatArray(), golden.logits_per_image.flat(), { atol: 5e-4, what: 'logits_per_image' });
});

// CoOp: the embeddings of "X X X X <class>." with positions 1..4 replaced by learned context.
function coopFeatures(ctx: Tensor): Tensor {
  const c = golden.coop;
  const ids = tensor(c.token_ids, { dtype: 'int64' });
  const tok = model.text_model.embedTokens(ids); // [7, 77, Wt]
  const n = ctx.size(0);
  const prompts = cat(
    [
      tok.narrow(1, 0, 1),
      ctx.unsqueeze(0).expand(ids.size(0), n, ctx.size(1)),
      tok.narrow(1, 1 + n, tok.size(1) - 1 - n),
    ],
    1,
  );
  return model.encodeTextEmbeddings(prompts, c.eot_index).textEmbeds; // [7, E]
}

test('CoOp: text features from spliced context vectors and the gradient of their sum', () => {
  const ctx = tensor(golden.coop.ctx, { requiresGrad: true });
  const feats = coopFeatures(ctx);
  assertClose(feats.toFlatArray(), golden.coop.text_features.flat(), { atol: 1e-4, what: 'coop text_features' });
  feats.sum().backward();
  assertClose(ctx.grad!.toFlatArray(), golden.coop.grad_of_sum_text_features_wrt_ctx.flat(), {
    rtol: 1e-3,
    atol: 1e-6,
    what: 'd sum(features) / d ctx',
  });
  assert.equal(model.text_model.embeddings.token_embedding.weight.grad, undefined, 'the frozen tower gets no gradient');
});

test('CoOp: the cross-entropy check (loss, logits and gradient with respect to the context)', () => {
  const ce = golden.coop.ce_check;
  const ctx = tensor(golden.coop.ctx, { requiresGrad: true });
  const img = noGrad(
    () =>
      model.encodeImage(
        cat(
          ce.images.map((n) => images.get(n)!),
          0,
        ),
      ).imageEmbeds,
  );
  const logits = F.normalize(img)
    .matmul(F.normalize(coopFeatures(ctx)).mT)
    .mul(model.logit_scale.exp());
  assertClose(logits.toFlatArray(), ce.logits.flat(), { atol: 5e-4, what: 'ce logits' });
  const loss = F.crossEntropy(logits, tensor(ce.labels, { dtype: 'int64' }));
  assertClose([loss.item()], [ce.loss], { rtol: 1e-3, what: 'ce loss' });
  loss.backward();
  // atol: the gradient reaches 1.6, so float32 rounding alone is ~1e-6 on its small elements
  // (libtorch 2.6 is off by 8.5e-7 on one of 5e-4); 1e-5 still fails any real error.
  assertClose(ctx.grad!.toFlatArray(), ce.grad_wrt_ctx.flat(), { rtol: 1e-3, atol: 1e-5, what: 'd loss / d ctx' });
});

test('nothing assumes the fixture shapes: another geometry saves, loads and runs the same', () => {
  manualSeed(3);
  const cfg = clipConfigFor({
    embed: 24,
    vision: { width: 48, layers: 2, heads: 3, patch: 4, resolution: 20 },
    text: { width: 40, layers: 3, heads: 5 },
  });
  const m = new ClipModel(cfg).eval();
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ous-clip-'));
  saveClip(m, tmp, { dtype: 'float16' });
  assert.equal(readClipConfig(tmp).vision_config.patch_size, 4);
  const back = loadClip(tmp);
  const px = tensor(
    new Float32Array(2 * 3 * 20 * 20).map((_, i) => Math.sin(i)),
    { shape: [2, 3, 20, 20] },
  );
  const a = noGrad(() => m.encodeImage(px, [2]));
  const b = noGrad(() => back.encodeImage(px, [2]));
  assert.deepEqual(b.imageEmbeds.shape, [2, 24]);
  assert.deepEqual(b.blocks[0]!.shape, [2, 26, 48]); // 1 + (20/4)² tokens
  // Weights went through float16: results agree to half precision.
  assertClose(b.imageEmbeds.toFlatArray(), a.imageEmbeds.toFlatArray(), {
    atol: 2e-2,
    rtol: 2e-2,
    what: 'reloaded model',
  });
  const ids = tensor(
    [
      [5, 9, 7, 2, 0],
      [5, 3, 2, 0, 0],
    ],
    { dtype: 'int64' },
  );
  assert.deepEqual(noGrad(() => back.encodeText(ids, [3, 2])).textEmbeds.shape, [2, 24]);
  assert.throws(() => back.encodeImage(px, [3]), /block 3 does not exist/);
});

test('a sharded checkpoint (model.safetensors.index.json) loads like the single file', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ous-clip-shards-'));
  const all = loadSafetensors(path.join(dir, 'model', 'model.safetensors'));
  const keys = [...all.keys()];
  const half = Math.floor(keys.length / 2);
  const shards = [keys.slice(0, half), keys.slice(half)];
  const weightMap: Record<string, string> = {};
  shards.forEach((ks, i) => {
    const name = `model-0000${i + 1}-of-00002.safetensors`;
    saveSafetensors(path.join(tmp, name), new Map(ks.map((k) => [k, all.get(k)!])));
    for (const k of ks) weightMap[k] = name;
  });
  fs.writeFileSync(
    path.join(tmp, 'model.safetensors.index.json'),
    JSON.stringify({ metadata: {}, weight_map: weightMap }),
  );
  fs.copyFileSync(path.join(dir, 'model', 'config.json'), path.join(tmp, 'config.json'));
  const sharded = loadClip(tmp);
  const px = images.get('grace_hopper_exact')!;
  assertClose(noGrad(() => sharded.encodeImage(px).imageEmbeds).toFlatArray(), golden.images[1]!.image_embeds, {
    atol: 1e-4,
    what: 'sharded model',
  });
  fs.rmSync(path.join(tmp, 'model-00002-of-00002.safetensors'));
  assert.throws(() => loadClip(tmp), /names model-00002-of-00002.safetensors, which is missing/);
});

test('bad checkpoints give errors that name the folder, file and tensor', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ous-clip-bad-'));
  assert.throws(() => loadClip(path.join(tmp, 'nope')), /nope is not a folder/);
  assert.throws(() => loadClip(tmp), /is not a CLIP checkpoint: config.json is missing/);
  fs.writeFileSync(path.join(tmp, 'config.json'), JSON.stringify({ model_type: 'bert' }));
  assert.throws(() => loadClip(tmp), /config.json is not a usable CLIP config: model_type: model_type must be 'clip'/);
  const cfg = JSON.parse(fs.readFileSync(path.join(dir, 'model', 'config.json'), 'utf8'));
  fs.writeFileSync(path.join(tmp, 'config.json'), JSON.stringify(cfg));
  assert.throws(() => loadClip(tmp), /has no model.safetensors/);
  fs.copyFileSync(path.join(dir, 'model', 'model.safetensors'), path.join(tmp, 'model.safetensors'));
  cfg.vision_config.hidden_size = 96;
  cfg.vision_config.intermediate_size = 384;
  fs.writeFileSync(path.join(tmp, 'config.json'), JSON.stringify(cfg));
  assert.throws(
    () => loadClip(tmp),
    /model.safetensors: vision_model.embeddings.class_embedding has shape \[128\], the config implies \[96\]/,
  );
  cfg.vision_config.hidden_size = 128;
  cfg.vision_config.intermediate_size = 512;
  cfg.vision_config.num_hidden_layers = 6;
  fs.writeFileSync(path.join(tmp, 'config.json'), JSON.stringify(cfg));
  assert.throws(() => loadClip(tmp), /missing tensors: vision_model\.encoder\.layers\.5\./);
});
