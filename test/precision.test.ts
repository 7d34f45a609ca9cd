// --precision: the vision tower in bf16 against OpenAI's float32 goldens (cosine ≥ 0.999), the
// hardware check of each precision, and a cache that holds one precision. The bf16 tower runs here
// through the model API (and the CLI with OUS_ALLOW_SLOW_BF16=1), whatever the CPU: the check is
// of accuracy, not speed.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { F, manualSeed, noGrad, parsePrecision, randn, tensor } from '../src/torch/index.js';
import { loadClip } from '../src/clip/load.js';
import { ClipModel } from '../src/clip/model.js';
import { clipConfigFor } from '../src/clip/config.js';
import { checkCacheOptions, cacheInfoOf, CacheWriter, FeatureCache } from '../src/data/cache.js';
import { cpuHasVnni, precisionMismatch } from '../src/torch/precision.js';
import { UsageError, UserError } from '../src/util/errors.js';
import { packageRoot } from '../src/util/paths.js';
import { allowSlowBf16 } from '../src/cli/env.js';
import { assertClose, fixture, goldenPixels, tinyCache } from './helpers.js';

const dir = fixture('clip-dev');
const golden = JSON.parse(fs.readFileSync(path.join(dir, 'golden.json'), 'utf8')) as {
  images: Array<{
    name: string;
    preprocessed_png: string;
    image_embeds: number[];
    pooled_output: number[];
    cls_after_ln_pre: number[];
    cls_after_block: number[][];
  }>;
  texts: Array<{ token_ids: number[]; eot_index: number; text_embeds: number[] }>;
};
const cli = path.join(packageRoot(), 'dist', 'src', 'cli', 'main.js');
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'ous-precision-'));
const at = (...p: string[]) => path.join(root, ...p);
test.after(() => fs.rmSync(root, { recursive: true, force: true }));

function ous(args: string[], env: Record<string, string> = {}): { status: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [cli, ...args], {
    encoding: 'utf8',
    env: { ...process.env, OUS_DEBUG: '', ...env },
  });
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

const pixelsOf = (file: string) => goldenPixels(path.join(dir, file));
const cosine = (a: number[], b: number[]) => F.cosineSimilarity(tensor([a]), tensor([b])).item();

const bf16VisionTitle =
  'bf16 vision tower: every golden image within cosine 0.999 of float32 (embedding, ' +
  'pooled, CLS after pre-LN and every block), outputs float32, text tower untouched';
test(bf16VisionTitle, async () => {
  const model = loadClip(path.join(dir, 'model')).setVisionDtype('bfloat16');
  const L = model.config.vision_config.num_hidden_layers;
  // Products in bf16; LayerNorm, the embeddings and the text tower stay float32.
  assert.equal(model.vision_model.encoder.layers[0]!.mlp.fc1.weight.dtype, 'bfloat16');
  assert.equal(model.visual_projection.weight.dtype, 'bfloat16');
  assert.equal(model.vision_model.encoder.layers[0]!.layer_norm1.weight!.dtype, 'float32');
  assert.equal(model.vision_model.embeddings.position_embedding.weight.dtype, 'float32');
  assert.equal(model.text_model.encoder.layers[0]!.mlp.fc1.weight.dtype, 'float32');
  let worst = 1;
  for (const g of golden.images) {
    const px = await pixelsOf(g.preprocessed_png);
    const out = noGrad(() =>
      model.encodeImage(
        px,
        Array.from({ length: L + 1 }, (_, k) => k),
      ),
    );
    for (const t of [out.imageEmbeds, out.pooled, ...out.blocks]) assert.equal(t.dtype, 'float32');
    const pairs: Array<[string, number[], number[]]> = [
      ['image_embeds', out.imageEmbeds.toFlatArray(), g.image_embeds],
      ['pooled', out.pooled.toFlatArray(), g.pooled_output],
      ['cls after ln_pre', out.blocks[0]!.select(1, 0).toFlatArray(), g.cls_after_ln_pre],
      ...g.cls_after_block.map((v, k): [string, number[], number[]] => [
        `cls after block ${k + 1}`,
        out.blocks[k + 1]!.select(1, 0).toFlatArray(),
        v,
      ]),
    ];
    for (const [what, a, b] of pairs) {
      const c = cosine(a, b);
      worst = Math.min(worst, c);
      assert.ok(c >= 0.999, `${g.name} ${what}: cosine ${c} to float32`);
    }
    // Not float32 to the last digit either: the tower did run in bf16.
    assert.ok(
      out.imageEmbeds.toFlatArray().some((v, i) => Math.abs(v - g.image_embeds[i]!) > 1e-4),
      `${g.name}: bf16 equals float32`,
    );
  }
  const t = golden.texts[0]!;
  const txt = noGrad(() => model.encodeText(tensor([t.token_ids], { dtype: 'int64' }), [t.eot_index]));
  assertClose(txt.textEmbeds.toFlatArray(), t.text_embeds, { atol: 1e-4, what: 'text embeds' });
  assert.ok(worst < 1);
});

const bf16PatchTitle =
  'bf16 patch embedding sums in float32: a 32×32 patch ' +
  '(3072 products) within 1e-2 of float32 (a bf16 sum is off by ~6e-2)';
test(bf16PatchTitle, () => {
  manualSeed(0);
  const cfg = clipConfigFor({
    embed: 16,
    vision: { width: 64, layers: 1, heads: 2, patch: 32, resolution: 64 },
    text: { width: 16, layers: 1, heads: 2 },
  });
  const [a, b] = [new ClipModel(cfg), new ClipModel(cfg)];
  b.loadStateDict(a.stateDict());
  b.setVisionDtype('bfloat16');
  const px = randn([2, 3, 64, 64]);
  const [ea, eb] = noGrad(() => [a.vision_model.embeddings.forward(px), b.vision_model.embeddings.forward(px)]);
  assert.equal(eb.dtype, 'float32');
  // of the patches' part
  const rel = eb.sub(ea).norm().item() / ea.sub(a.vision_model.embeddings.position_embedding.weight).norm().item();
  assert.ok(rel < 1e-2, `relative error ${rel}`);
  assert.ok(rel > 0, 'bf16 equals float32');
});

const parsePrecisionTitle =
  'parsePrecision: fp32 anywhere; bf16 on CUDA or a CPU with AVX512_BF16/AMX ' +
  '(else refused unless OUS_ALLOW_SLOW_BF16=1); fp16 on CUDA only';
test(parsePrecisionTitle, () => {
  const avx2 = { model: 'AMD EPYC 7B13', flags: new Set(['avx2', 'fma', 'avx512f']) };
  const bf16 = { model: 'Xeon', flags: new Set(['avx2', 'avx512f', 'avx512_bf16']) };
  const amx = { model: 'Xeon', flags: new Set(['amx_bf16', 'amx_tile']) };
  assert.equal(parsePrecision('fp32', 'cpu', { cpu: avx2 }), 'fp32');
  assert.equal(parsePrecision('bf16', 'cpu', { cpu: bf16 }), 'bf16');
  assert.equal(parsePrecision('bf16', 'cpu', { cpu: amx }), 'bf16');
  assert.equal(parsePrecision('bf16', 'cuda:0', { cpu: avx2 }), 'bf16');
  assert.equal(parsePrecision('fp16', 'cuda', { cpu: avx2 }), 'fp16');
  assert.equal(
    parsePrecision('bf16', 'cpu', { cpu: avx2, allowSlowBf16: allowSlowBf16({ OUS_ALLOW_SLOW_BF16: '1' }) }),
    'bf16',
  );
  const refused = (fn: () => unknown, why: RegExp) =>
    assert.throws(fn, (e: Error) => {
      assert.ok(e instanceof UserError && !(e instanceof UsageError), `${e.name}: ${e.message}`);
      assert.match(e.message, why);
      assert.doesNotMatch(e.message, /\n/);
      return true;
    });
  refused(
    () => parsePrecision('bf16', 'cpu', { cpu: avx2 }),
    new RegExp(
      /^--precision bf16: this CPU \(AMD EPYC 7B13\) has no AVX512_BF16 or AMX/.source +
        /.*use --precision fp32.*OUS_ALLOW_SLOW_BF16=1/.source,
    ),
  );
  refused(
    () => parsePrecision('fp16', 'cpu', { cpu: bf16, allowSlowBf16: allowSlowBf16({ OUS_ALLOW_SLOW_BF16: '1' }) }),
    /^--precision fp16 runs on CUDA only.*use --precision fp32/,
  );
  assert.throws(
    () => parsePrecision('fp8', 'cuda', { cpu: bf16 }),
    (e: Error) => e instanceof UsageError && /--precision must be fp32, bf16, fp16 or int8, not 'fp8'/.test(e.message),
  );
});

test('parsePrecision: int8 on any CPU (onnxruntime), refused on CUDA; VNNI read from the CPU flags', () => {
  const avx2 = { model: 'AMD EPYC 7B13', flags: new Set(['avx2', 'fma']) };
  assert.equal(parsePrecision('int8', 'cpu', { cpu: avx2 }), 'int8');
  assert.throws(
    () => parsePrecision('int8', 'cuda:0', { cpu: avx2 }),
    (e: Error) => e instanceof UserError && /^--precision int8 runs on the CPU only.*not on cuda:0$/.test(e.message),
  );
  assert.equal(cpuHasVnni(avx2), false);
  assert.equal(cpuHasVnni({ flags: new Set(['avx2', 'avx_vnni']) }), true);
  assert.equal(cpuHasVnni({ flags: new Set(['avx512f', 'avx512_vnni']) }), true);
});

test('a run trained on fp32 features predicting in int8 says so in one line, and the other way round', () => {
  assert.equal(precisionMismatch(undefined, 'fp32'), undefined); // a run from before the field: fp32
  assert.equal(precisionMismatch('int8', 'int8'), undefined);
  assert.match(
    precisionMismatch(undefined, 'int8')!,
    /^the run was trained on fp32 features and CLIP's vision tower runs in int8 here .*--precision fp32/,
  );
  assert.match(precisionMismatch('int8', 'fp32')!, /trained on int8 features .* runs in fp32 here .*--precision int8/);
});

const fp16OnCpuTitle =
  '--precision fp16 on the CPU: ous extract, predict, ' +
  'clip embed and serve exit 1 with one line, before reading or creating anything';
test(fp16OnCpuTitle, () => {
  const cases = [
    [
      'extract',
      '--views', // one view (the default is 5): these tests are not about augmentation
      '1',
      '--dataset',
      'manifest',
      '--manifest',
      at('none.csv'),
      '--clip',
      fixture('clip-dev', 'model'),
      '--out',
      at('cache-fp16'),
      '--precision',
      'fp16',
    ],
    ['predict', at('none.mp4'), '--run', at('no-run'), '--precision', 'fp16'],
    ['serve', '--run', at('no-run'), '--port', '0', '--precision', 'fp16'],
    [
      'clip',
      'embed',
      '--model',
      fixture('clip-dev', 'model'),
      '--image',
      fixture('media', 'grace_hopper_512.jpg'),
      '--precision',
      'fp16',
    ],
  ];
  for (const args of cases) {
    const r = ous(args);
    assert.equal(r.status, 1, `${args[0]}: ${r.stderr}`);
    assert.match(
      r.stderr,
      new RegExp(
        /^ous: --precision fp16 runs on CUDA only \(libtorch has no CPU fp16 kernels\)/.source +
          /, not on cpu: use --precision fp32\n$/.source,
      ),
      args[0],
    );
    assert.equal(r.stdout, '');
  }
  const bad = ous([
    'clip',
    'embed',
    '--model',
    fixture('clip-dev', 'model'),
    '--image',
    fixture('media', 'grace_hopper_512.jpg'),
    '--precision',
    'half',
  ]);
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /^ous: --precision must be fp32, bf16, fp16 or int8, not 'half'\n$/);
  assert.equal(fs.existsSync(at('cache-fp16')), false);
});

const cachePrecisionTitle =
  'a cache holds one precision: cache.json records it, a cache without the field is fp32, ' +
  'and extending one with another is refused in one line';
test(cachePrecisionTitle, () => {
  // A cache as written before --precision: no field, read as fp32.
  const old = at('old-cache');
  tinyCache(old);
  const info = cacheInfoOf(old);
  assert.equal(info.precision, undefined);
  const { version, dims, ...options } = info;
  assert.ok(checkCacheOptions(old, options)); // fp32 (absent) extends it
  assert.ok(checkCacheOptions(old, { ...options, precision: 'fp32' }));
  assert.throws(
    () => checkCacheOptions(old, { ...options, precision: 'bf16' }),
    (e: Error) =>
      e instanceof UserError &&
      new RegExp(
        /made with other options: precision \(cache: fp32, now: bf16; --precision fp32 extends it\)/.source +
          /\. Use another --out folder/.source,
      ).test(e.message) &&
      !e.message.includes('\n'),
  );
  assert.throws(
    () => new CacheWriter(old, { version, dims, ...options, precision: 'fp16' }, 'all'),
    /precision \(cache: fp32, now: fp16/,
  );
  assert.throws(() => checkCacheOptions(old, { ...options, precision: 'int8' }), /precision \(cache: fp32, now: int8;/);

  // Through the CLI: a colour clip extracted in bf16 (slow loops allowed here), then the same
  // clip in float32 into another cache: the cache says bf16, the features agree to cosine 0.999.
  fs.mkdirSync(at('videos'), { recursive: true });
  for (const c of ['red', 'blue'])
    execFileSync('ffmpeg', [
      '-v',
      'error',
      '-y',
      '-f',
      'lavfi',
      '-i',
      `testsrc=size=64x48:rate=5`,
      '-vf',
      `drawbox=c=${c}:t=8`,
      '-t',
      '1',
      '-pix_fmt',
      'yuv420p',
      at('videos', `${c}.mp4`),
    ]);
  fs.writeFileSync(at('one.csv'), 'path,label,split\nvideos/red.mp4,happy,test\n');
  fs.writeFileSync(at('two.csv'), 'path,label,split\nvideos/red.mp4,happy,test\nvideos/blue.mp4,sad,test\n');
  const args = (manifest: string, out: string, ...more: string[]) => [
    'extract',
    '--views',
    '1',
    '--dataset',
    'manifest',
    '--manifest',
    at(manifest),
    '--root',
    root,
    '--clip',
    fixture('clip-dev', 'model'),
    '--out',
    at(out),
    '--frames',
    '2',
    '--json',
    ...more,
  ];
  const slow = { OUS_ALLOW_SLOW_BF16: '1' };
  let r = ous(args('one.csv', 'bf16', '--precision', 'bf16'), slow);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(cacheInfoOf(at('bf16')).precision, 'bf16');
  r = ous(args('one.csv', 'fp32'));
  assert.equal(r.status, 0, r.stderr);
  assert.equal(cacheInfoOf(at('fp32')).precision, 'fp32');
  r = ous(args('one.csv', 'int8', '--precision', 'int8'));
  assert.equal(r.status, 0, r.stderr);
  assert.equal(cacheInfoOf(at('int8')).precision, 'int8');
  const fa = FeatureCache.open(at('fp32')).data.batch([0]);
  for (const [dir, min] of [
    ['bf16', 0.999],
    ['int8', 0.98],
  ] as const) {
    const fb = FeatureCache.open(at(dir)).data.batch([0]);
    for (const k of ['face', 'scene', 'low'] as const) {
      const c = F.cosineSimilarity(fa[k].flatten(0, 1), fb[k].flatten(0, 1)).min().item(); // per frame
      assert.ok(c >= min, `${dir} ${k}: cosine ${c}`);
    }
  }
  // A new clip into the bf16 cache at fp32: refused before anything is written.
  r = ous(args('two.csv', 'bf16'));
  assert.equal(r.status, 1, r.stderr);
  assert.match(
    r.stderr,
    new RegExp(
      /^ous: \S+ was made with other options: precision \(cache: bf16, now: fp32; /.source +
        /--precision bf16 extends it\)\. Use another --out folder, or delete this one to rebuild it\.\n$/.source,
    ),
  );
  assert.equal(FeatureCache.open(at('bf16')).records.length, 1);
});
