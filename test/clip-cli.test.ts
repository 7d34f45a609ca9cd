// `ous clip embed` end to end: on the dev CLIP from original photos (through decode, Pillow-exact
// resize and the model) against OpenAI's goldens, and on a ViT-B/32-shaped random checkpoint in
// the real Hugging Face layout.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { manualSeed } from '../src/torch/index.js';
import { ClipModel } from '../src/clip/model.js';
import { CLIP_SHAPES, clipConfigFor } from '../src/clip/config.js';
import { saveClip } from '../src/clip/load.js';
import { packageRoot } from '../src/util/paths.js';
import { assertClose, fixture } from './helpers.js';

const cli = path.join(packageRoot(), 'dist', 'src', 'cli', 'main.js');
const ous = (...args: string[]) =>
  execFileSync(process.execPath, [cli, ...args], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
const golden = JSON.parse(fs.readFileSync(fixture('clip-dev', 'golden.json'), 'utf8'));

test('clip embed --json on the dev CLIP equals OpenAI: embeddings, every block CLS, ids, logits', () => {
  const names = ['grace_hopper_original', 'three_faces_original', 'solvay_einstein_gray'];
  const imgs = names.map((n) => golden.images.find((g: { name: string }) => g.name === n));
  const texts = golden.texts.slice(0, 3);
  const args = ['clip', 'embed', '--model', fixture('clip-dev', 'model'), '--json'];
  for (const g of imgs) args.push('--image', fixture('clip-dev', g.file));
  for (const t of texts) args.push('--text', t.text);
  const r = JSON.parse(
    ous(...args)
      .trim()
      .split('\n')
      .pop()!,
  );
  r.images.forEach((im: { embedding: number[]; blockCls: number[][] }, i: number) => {
    assertClose(im.embedding, imgs[i].image_embeds, { atol: 1e-4, what: `${names[i]} embedding` });
    assert.equal(im.blockCls.length, 5);
    im.blockCls.forEach((v, k) =>
      assertClose(v, imgs[i].cls_after_block[k], { atol: 1e-4, what: `${names[i]} block ${k + 1}` }),
    );
  });
  r.texts.forEach((t: { ids: number[]; embedding: number[] }, i: number) => {
    assert.deepEqual(t.ids, texts[i].token_ids);
    assertClose(t.embedding, texts[i].text_embeds, { atol: 1e-4, what: `text ${i}` });
  });
  const order: string[] = golden.logits_image_order;
  const expected = names.map((n) => golden.logits_per_image[order.indexOf(n)].slice(0, 3));
  assertClose(r.logitsPerImage.flat(), expected.flat(), { atol: 5e-4, what: 'logits' });
});

test('clip embed --precision int8 on the dev CLIP: embeddings and every block CLS near OpenAI (cosine)', () => {
  const names = ['grace_hopper_original', 'three_faces_original'];
  const imgs = names.map((n) => golden.images.find((g: { name: string }) => g.name === n));
  const args = ['clip', 'embed', '--model', fixture('clip-dev', 'model'), '--json', '--precision', 'int8'];
  for (const g of imgs) args.push('--image', fixture('clip-dev', g.file));
  const text = golden.texts[0];
  const r = JSON.parse(ous(...args, '--text', text.text));
  const cos = (a: number[], b: number[]) => {
    const dot = (x: number[], y: number[]) => x.reduce((s, v, i) => s + v * y[i]!, 0);
    return dot(a, b) / Math.sqrt(dot(a, a) * dot(b, b));
  };
  r.images.forEach((im: { embedding: number[]; blockCls: number[][] }, i: number) => {
    const e = cos(im.embedding, imgs[i].image_embeds);
    assert.ok(e >= 0.995 && e < 1 - 1e-9, `${names[i]} embedding cosine ${e} (int8 is not float32)`);
    assert.equal(im.blockCls.length, 5);
    im.blockCls.forEach((v, k) => {
      const c = cos(v, imgs[i].cls_after_block[k]);
      assert.ok(c >= 0.98, `${names[i]} block ${k + 1} cosine ${c}`);
    });
  });
  // the text tower stays float32
  assertClose(r.texts[0].embedding, text.text_embeds, { atol: 1e-4, what: 'text' });
});

test('clip embed runs on a ViT-B/32-shaped checkpoint (random weights, float16 file, HF layout)', () => {
  manualSeed(0);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ous-b32-'));
  try {
    const model = new ClipModel(clipConfigFor(CLIP_SHAPES['ViT-B/32']));
    saveClip(model, dir, { dtype: 'float16', filesFrom: fixture('clip-dev', 'model') });
    for (const p of model.parameters()) p.dispose();
    // The dev fixture's preprocessor says 32 px; a B/32 checkpoint says 224.
    fs.writeFileSync(
      path.join(dir, 'preprocessor_config.json'),
      JSON.stringify({ crop_size: { height: 224, width: 224 }, size: { shortest_edge: 224 }, resample: 3 }),
    );
    const r = JSON.parse(
      ous(
        'clip',
        'embed',
        '--model',
        dir,
        '--json',
        '--image',
        fixture('media', 'grace_hopper_512.jpg'),
        '--text',
        'a happy face',
      ),
    );
    assert.equal(r.images[0].embedding.length, 512);
    assert.equal(r.images[0].blockCls.length, 12);
    assert.equal(r.images[0].blockCls[0].length, 768);
    assert.equal(r.texts[0].embedding.length, 512);
    assert.ok(r.images[0].embedding.every(Number.isFinite));
    assert.equal(r.logitsPerImage.length, 1);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('clip embed: user errors exit 2 (usage) or 1 (a file) with one clear line', () => {
  const r = spawnSync(process.execPath, [cli, 'clip', 'embed', '--model', fixture('clip-dev')], { encoding: 'utf8' });
  assert.equal(r.status, 2);
  assert.match(r.stderr, /^ous: clip embed: give at least one --image FILE or --text STR\n$/);
  const r2 = spawnSync(process.execPath, [cli, 'clip', 'embed', '--model', fixture('clip-dev'), '--text', 'x'], {
    encoding: 'utf8',
  });
  assert.equal(r2.status, 1);
  assert.match(r2.stderr, /is not a CLIP checkpoint: config.json is missing/);
});
