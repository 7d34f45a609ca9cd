// PyTorch semantics: modules loaded from a state dict saved by PyTorch 1.13 give PyTorch's outputs
// and gradients (fixtures/torch/reference.safetensors, made by scripts/make_torch_fixtures.py).
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { F, type Tensor, nn, loadSafetensors, tensor } from '../src/torch/index.js';
import { assertClose, fixture } from './helpers.js';

const ref = loadSafetensors(fixture('torch', 'reference.safetensors'));
const get = (name: string): Tensor => {
  const t = ref.get(name);
  assert.ok(t, `fixture tensor ${name} is missing`);
  return t;
};
const sub = (prefix: string): Map<string, Tensor> =>
  new Map([...ref].filter(([k]) => k.startsWith(prefix + '.')).map(([k, v]) => [k.slice(prefix.length + 1), v]));
const close = (a: Tensor, name: string, atol = 1e-5) => {
  assert.deepEqual(a.shape, get(name).shape, `${name}: shape`);
  assertClose(a.toFlatArray(), get(name).toFlatArray(), { atol, what: name });
};

test('MLP (Linear, GELU exact and tanh): outputs and gradients', () => {
  const mlp = new nn.Sequential(new nn.Linear(5, 8), new nn.GELU(), new nn.Linear(8, 3), new nn.GELU('tanh'));
  const sd = sub('mlp');
  mlp.loadStateDict(new Map([...sd].filter(([k]) => /^\d+\./.test(k))));
  const x = get('mlp.input').clone().requiresGrad_(true);
  const y = mlp.forward(x);
  close(y, 'mlp.output');
  y.mul(get('mlp.out_weight')).sum().backward();
  close(x.grad!, 'mlp.grad_input');
  close(mlp.at(0).parameters()[0]!.grad!, 'mlp.grad_0.weight');
});

test('LSTM (2 layers, batch first): outputs, states and gradients', () => {
  const lstm = new nn.LSTM(6, 5, { numLayers: 2, batchFirst: true });
  lstm.loadStateDict(new Map([...sub('lstm')].filter(([k]) => /^(weight|bias)_/.test(k))));
  const x = get('lstm.input').clone().requiresGrad_(true);
  const { output, h, c } = lstm.forward(x, { h: get('lstm.h0'), c: get('lstm.c0') });
  close(output, 'lstm.output');
  close(h, 'lstm.h');
  close(c, 'lstm.c');
  output.pow(2).sum().backward();
  close(x.grad!, 'lstm.grad_input');
  const whh1 = [...lstm.namedParameters()].find(([n]) => n === 'weight_hh_l1')![1];
  close(whh1.grad!, 'lstm.grad_weight_hh_l1');
  close(lstm.forward(get('lstm.input')).output, 'lstm.output_zero_state');
});

test('MultiheadAttention: cross attention with a key padding mask, weights and gradients', () => {
  const mha = new nn.MultiheadAttention(8, 2);
  mha.loadStateDict(new Map([...sub('mha')].filter(([k]) => k.startsWith('in_proj') || k.startsWith('out_proj'))));
  const q = get('mha.query').clone().requiresGrad_(true);
  const kv = get('mha.kv');
  const pad = get('mha.pad').gt(0.5);
  const { output, weights } = mha.forwardWithWeights(q, kv, kv, { keyPaddingMask: pad });
  close(output, 'mha.output');
  close(weights, 'mha.weights');
  output.sum().backward();
  close(q.grad!, 'mha.grad_query');
  close(mha.in_proj_weight.grad!, 'mha.grad_in_proj_weight');
});

test('MultiheadAttention: batch-first self attention with a float causal mask', () => {
  const mha = new nn.MultiheadAttention(8, 4, { batchFirst: true });
  mha.loadStateDict(new Map([...sub('mha2')].filter(([k]) => k.startsWith('in_proj') || k.startsWith('out_proj'))));
  const s = get('mha2.input');
  const L = s.size(1);
  const rows = Array.from({ length: L }, (_, i) => Array.from({ length: L }, (_, j) => (j > i ? -Infinity : 0)));
  close(mha.forward(s, s, s, { attnMask: tensor(rows) }), 'mha2.output');
});

test('Conv1d -> LayerNorm and Conv2d with stride', () => {
  const conv = new nn.Conv1d(4, 6, 3, { padding: 1 });
  conv.loadStateDict(sub('conv'), { strict: false });
  const ln = new nn.LayerNorm(6);
  ln.loadStateDict(sub('ln'));
  close(ln.forward(conv.forward(get('conv.input')).transpose(1, 2)), 'conv_ln.output');
  const conv2 = new nn.Conv2d(3, 4, 3, { stride: 2, padding: 1 });
  conv2.loadStateDict(sub('conv2d'), { strict: false });
  close(conv2.forward(get('conv2d.input')), 'conv2d.output');
});

test('cross-entropy, plain and with label smoothing', () => {
  const logits = get('ce.logits');
  const target = get('ce.target').long();
  close(F.crossEntropy(logits, target), 'ce.mean', 1e-6);
  close(F.crossEntropy(logits, target, { labelSmoothing: 0.1 }), 'ce.smooth', 1e-6);
});
