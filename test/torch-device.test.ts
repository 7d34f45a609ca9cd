// Device placement without a GPU: every tensor a module keeps must be a registered Parameter or
// Buffer (what Module.to moves), checked by walking the module's own fields and by moving whole
// models to libtorch's 'meta' device; devices from the command line are checked against the build.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { Tensor, buildInfo, manualSeed, nn, noGrad, parseDevice, randn } from '../src/torch/index.js';
import { UserError } from '../src/util/errors.js';
import { OusHead, FaceOnlyHead } from '../src/ous/model.js';
import { PromptLearner } from '../src/ous/prompt.js';
import { resolveOusConfig } from '../src/ous/config.js';
import { loadClip } from '../src/clip/load.js';
import { packageRoot } from '../src/util/paths.js';
import { fixture, goldenTextTower } from './helpers.js';

/** Every tensor reachable from the module's own fields (through submodules and arrays), by path. */
function heldTensors(m: nn.Module, prefix = ''): Array<[string, Tensor]> {
  const out: Array<[string, Tensor]> = [];
  const visit = (v: unknown, name: string): void => {
    if (v instanceof Tensor) out.push([name, v]);
    else if (v instanceof nn.Module) out.push(...heldTensors(v, name));
    else if (Array.isArray(v)) v.forEach((x, i) => visit(x, `${name}.${i}`));
  };
  for (const [k, v] of Object.entries(m)) visit(v, prefix ? `${prefix}.${k}` : k);
  return out;
}

/** The tensors a module holds that to() would leave behind. */
const unregistered = (m: nn.Module) =>
  heldTensors(m)
    .filter(([, t]) => !(t instanceof nn.Parameter || t instanceof nn.Buffer))
    .map(([n]) => n);

const golden = JSON.parse((await import('node:fs')).readFileSync(fixture('clip-dev', 'golden.json'), 'utf8'));
const tower = goldenTextTower();
const dims = { embed: 32, visionWidth: 128 };
const base = { classNames: golden.coop.classnames, promptLength: 4, frames: 4, tfeLayers: 2, tfeQueries: 3, heads: 2 };

function models(): Array<[string, nn.Module]> {
  manualSeed(3);
  const clip = loadClip(fixture('clip-dev', 'model'));
  return [
    ['OusHead', new OusHead(resolveOusConfig(base), dims, tower)],
    ['FaceOnlyHead', new FaceOnlyHead(resolveOusConfig({ ...base, model: 'face-only' }), dims, tower)],
    ['PromptLearner', new PromptLearner(tower, golden.coop.classnames, { promptLength: 4 })],
    ['CLIP vision tower', clip.vision_model],
    ['CLIP text tower', clip.text_model],
    ['CLIP', clip],
  ];
}

test('every tensor a module holds is a registered parameter or buffer (so .to() moves it)', () => {
  const batch = { face: randn([2, 4, 32]), scene: randn([2, 4, 32]), low: randn([2, 4, 128]) };
  for (const [name, m] of models()) {
    assert.ok(heldTensors(m).length > 0, `${name}: holds tensors`);
    // Run it in eval mode first, so that anything it caches exists; to() must drop such caches.
    m.eval();
    noGrad(() =>
      m instanceof OusHead || m instanceof FaceOnlyHead
        ? m.forward(batch)
        : m instanceof PromptLearner
          ? m.textFeatures()
          : undefined,
    );
    m.to({ device: 'cpu' });
    assert.deepEqual(unregistered(m), [], `${name}: tensors that are neither Parameter nor Buffer`);
  }
});

test("to('meta') moves every tensor; non-persistent buffers stay out of the state dict", () => {
  for (const [name, m] of models()) {
    const before = m instanceof PromptLearner ? [...m.stateDict().keys()] : undefined;
    m.to({ device: 'meta' });
    const left = heldTensors(m)
      .filter(([, t]) => t.device !== 'meta')
      .map(([n, t]) => `${n} (${t.device})`);
    assert.deepEqual(left, [], `${name}: tensors left behind by to('meta')`);
    if (before) assert.deepEqual(before, ['ctx'], 'the prompt learner saves only its context vectors');
  }
});

test('parseDevice accepts what exists and names the flag otherwise', () => {
  assert.equal(parseDevice('cpu'), 'cpu');
  assert.throws(
    () => parseDevice('gpu'),
    (e: Error) => e instanceof UserError && e.message === "--device 'gpu': expected cpu, cuda or cuda:N",
  );
  assert.throws(() => parseDevice('cuda:x', '--on'), /^UserError: --on 'cuda:x': expected cpu, cuda or cuda:N$/);
  const { cuda, cudaDevices } = buildInfo();
  if (!cuda) {
    assert.throws(
      () => parseDevice('cuda'),
      (e: Error) => e instanceof UserError && /^--device cuda: this libtorch build has no CUDA/.test(e.message),
    );
  } else {
    assert.equal(parseDevice(`cuda:${cudaDevices - 1}`), `cuda:${cudaDevices - 1}`);
    assert.throws(() => parseDevice(`cuda:${cudaDevices}`), UserError);
  }
});

test('--device cuda without CUDA is one line from the command line', {
  skip: buildInfo().cuda && 'this build has CUDA',
}, () => {
  const cli = path.join(packageRoot(), 'dist', 'src', 'cli', 'main.js');
  for (const args of [
    ['predict', 'none.mp4', '--run', 'no-run', '--device', 'cuda'],
    ['train', '--cache', 'no-cache', '--out', 'no-run', '--device', 'cuda:1'],
  ]) {
    const r = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8' });
    assert.notEqual(r.status, 0, args.join(' '));
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 1, `${args[0]}: ${r.stderr}`);
    assert.match(lines[0]!, /--device cuda(:1)?: this libtorch build has no CUDA/);
  }
});
