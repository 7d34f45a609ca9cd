// Every differentiable operation and module of the engine against float64 finite differences.
import { test } from 'node:test';
import { F, type Tensor, nn, tensor, cat, stack, where, einsum, manualSeed } from '../src/torch/index.js';
import { gradcheck, leaf } from './gradcheck.js';

const idx = (v: number[]) => tensor(v, { dtype: 'int64' });

test('elementwise operations', () => {
  const a = leaf([2, 3], 1);
  const b = leaf([2, 3], 2, { awayFromZero: 0.5 });
  const p = leaf([2, 3], 3, { positive: true });
  const z = leaf([2, 3], 4, { awayFromZero: 0.1 }); // kinks of relu/abs/clamp kept away
  gradcheck('add', ([x, y]) => x!.add(y!), [a, b]);
  gradcheck('add alpha', ([x, y]) => x!.add(y!, 2.5), [a, b]);
  gradcheck('add scalar', ([x]) => x!.add(3), [a]);
  gradcheck('sub', ([x, y]) => x!.sub(y!), [a, b]);
  gradcheck('rsub', ([x]) => x!.rsub(1), [a]);
  gradcheck('mul', ([x, y]) => x!.mul(y!), [a, b]);
  gradcheck('div', ([x, y]) => x!.div(y!), [a, b]);
  gradcheck('pow scalar', ([x]) => x!.pow(3), [a]);
  gradcheck('pow tensor', ([x, y]) => x!.pow(y!), [p, a]);
  gradcheck('neg', ([x]) => x!.neg(), [a]);
  gradcheck('exp', ([x]) => x!.exp(), [a]);
  gradcheck('log', ([x]) => x!.log(), [p]);
  gradcheck('sqrt', ([x]) => x!.sqrt(), [p]);
  gradcheck('rsqrt', ([x]) => x!.rsqrt(), [p]);
  gradcheck('abs', ([x]) => x!.abs(), [z]);
  gradcheck('sin', ([x]) => x!.sin(), [a]);
  gradcheck('cos', ([x]) => x!.cos(), [a]);
  gradcheck('tanh', ([x]) => x!.tanh(), [a]);
  gradcheck('sigmoid', ([x]) => x!.sigmoid(), [a]);
  gradcheck('relu', ([x]) => x!.relu(), [z]);
  gradcheck('gelu exact', ([x]) => x!.gelu(), [a]);
  gradcheck('gelu tanh', ([x]) => x!.gelu('tanh'), [a]);
  gradcheck('quick gelu', ([x]) => F.quickGelu(x!), [a]);
  gradcheck('clamp', ([x]) => x!.clamp(-0.05, 0.05), [z]);
  gradcheck('maximum', ([x, y]) => x!.maximum(y!), [a, b]);
  gradcheck('minimum', ([x, y]) => x!.minimum(y!), [a, b]);
  gradcheck('where', ([x, y]) => where(x!.gt(0), x!, y!), [z, b]);
  gradcheck('maskedFill', ([x]) => x!.maskedFill(x!.gt(0), 0), [z]);
  gradcheck('broadcast', ([x, y]) => x!.mul(y!), [leaf([2, 1, 3], 5), leaf([4, 1], 6)]);
});

test('linear algebra', () => {
  gradcheck('matmul 2d', ([x, y]) => x!.matmul(y!), [leaf([3, 4], 1), leaf([4, 2], 2)]);
  gradcheck('matmul batched', ([x, y]) => x!.matmul(y!), [leaf([2, 3, 4], 3), leaf([4, 2], 4)]);
  gradcheck('bmm', ([x, y]) => x!.bmm(y!), [leaf([2, 3, 4], 5), leaf([2, 4, 2], 6)]);
  gradcheck('linear', ([x, w, b]) => F.linear(x!, w!, b), [leaf([3, 4], 7), leaf([5, 4], 8), leaf([5], 9)]);
  gradcheck('einsum', ([x, y]) => einsum('bij,bjk->bik', x!, y!), [leaf([2, 2, 3], 10), leaf([2, 3, 2], 11)]);
});

test('reductions and normalisations', () => {
  const a = leaf([3, 4], 1);
  gradcheck('sum all', ([x]) => x!.sum(), [a]);
  gradcheck('sum dim', ([x]) => x!.sum(1, true), [a]);
  gradcheck('mean dims', ([x]) => x!.mean([0, 1]), [a]);
  gradcheck('var unbiased', ([x]) => x!.var(1), [a]);
  gradcheck('var biased', ([x]) => x!.var(0, { unbiased: false, keepdim: true }), [a]);
  gradcheck('norm', ([x]) => x!.norm(2, 1), [a]);
  gradcheck('logsumexp', ([x]) => x!.logsumexp(1), [a]);
  gradcheck('max', ([x]) => x!.max(), [a]);
  gradcheck('maxDim', ([x]) => x!.maxDim(1).values, [a]);
  gradcheck('minDim', ([x]) => x!.minDim(0).values, [a]);
  gradcheck('cumsum', ([x]) => x!.cumsum(1), [a]);
  gradcheck('softmax', ([x]) => x!.softmax(1), [a]);
  gradcheck('logSoftmax', ([x]) => x!.logSoftmax(0), [a]);
  gradcheck('normalize', ([x]) => F.normalize(x!, -1), [a]);
  gradcheck('cosineSimilarity', ([x, y]) => F.cosineSimilarity(x!, y!, 1), [a, leaf([3, 4], 2)]);
  gradcheck('layerNorm', ([x, w, b]) => F.layerNorm(x!, [4], w, b), [a, leaf([4], 3), leaf([4], 4)]);
});

test('shape operations', () => {
  const a = leaf([2, 3, 4], 1);
  const b = leaf([2, 3, 4], 2);
  gradcheck('view', ([x]) => x!.view(6, 4), [a]);
  gradcheck('reshape', ([x]) => x!.permute(2, 0, 1).reshape([4, 6]), [a]);
  gradcheck('transpose', ([x]) => x!.transpose(0, 2), [a]);
  gradcheck('cat', ([x, y]) => cat([x!, y!], 1), [a, b]);
  gradcheck('stack', ([x, y]) => stack([x!, y!], -1), [a, b]);
  gradcheck('split', ([x]) => x!.split([1, 3], 2)[1]!, [a]);
  gradcheck('chunk', ([x]) => x!.chunk(2, 2)[0]!.mul(x!.chunk(2, 2)[1]!), [a]);
  gradcheck('indexSelect', ([x]) => x!.indexSelect(2, idx([3, 0, 3])), [a]);
  gradcheck(
    'gather',
    ([x]) =>
      x!.gather(
        2,
        tensor(
          [
            [[1], [0], [3]],
            [[2], [2], [0]],
          ],
          { dtype: 'int64' },
        ),
      ),
    [a],
  );
  gradcheck('index', ([x]) => x!.index(idx([1, 0]), undefined, idx([2, 2])), [a]);
  gradcheck('narrow', ([x]) => x!.narrow(1, 1, 2), [a]);
  gradcheck('select', ([x]) => x!.select(0, 1), [a]);
  gradcheck('slice', ([x]) => x!.slice(2, 0, 4, 2), [a]);
  gradcheck('expand', ([x]) => x!.expand(3, 4), [leaf([1, 4], 3)]);
  gradcheck('squeeze/unsqueeze', ([x]) => x!.unsqueeze(1).squeeze(1).unsqueeze(0), [a]);
  gradcheck('flatten', ([x]) => x!.flatten(1), [a]);
  gradcheck('flip', ([x]) => x!.flip(0, 2), [a]);
  gradcheck('repeat', ([x]) => x!.repeat(2, 1), [leaf([2, 3], 4)]);
  gradcheck('tril/triu', ([x]) => x!.tril(0).add(x!.triu(1).mul(2)), [leaf([3, 3], 5)]);
});

test('neural-network functions', () => {
  gradcheck('conv1d', ([x, w, b]) => F.conv1d(x!, w!, b, { padding: 1 }), [
    leaf([2, 3, 5], 1),
    leaf([4, 3, 3], 2),
    leaf([4], 3),
  ]);
  gradcheck(
    'conv1d stride/dilation/groups',
    ([x, w]) => F.conv1d(x!, w!, undefined, { stride: 2, dilation: 2, groups: 2 }),
    [leaf([1, 4, 9], 4), leaf([2, 2, 2], 5)],
  );
  gradcheck('conv2d', ([x, w, b]) => F.conv2d(x!, w!, b, { stride: 2, padding: 1 }), [
    leaf([1, 2, 5, 5], 6),
    leaf([3, 2, 3, 3], 7),
    leaf([3], 8),
  ]);
  gradcheck('embedding', ([w]) => F.embedding(w!, idx([2, 0, 2])), [leaf([4, 3], 9)]);
  const target = idx([0, 2, 1]);
  gradcheck('crossEntropy', ([x]) => F.crossEntropy(x!, target), [leaf([3, 4], 10)]);
  gradcheck(
    'crossEntropy smoothing sum',
    ([x]) => F.crossEntropy(x!, target, { labelSmoothing: 0.2, reduction: 'sum' }),
    [leaf([3, 4], 11)],
  );
  gradcheck(
    'crossEntropy weighted',
    ([x]) => F.crossEntropy(x!, target, { weight: tensor([1, 2, 0.5, 1], { dtype: 'float64' }) }),
    [leaf([3, 4], 12)],
  );
  gradcheck('mseLoss', ([x, y]) => F.mseLoss(x!, y!), [leaf([3, 2], 13), leaf([3, 2], 14)]);
  gradcheck('dropout (same mask each evaluation)', ([x]) => F.dropout(x!, 0.3, true), [leaf([4, 5], 15)], { seed: 7 });
  const q = leaf([2, 3, 4], 16);
  const k = leaf([2, 5, 4], 17);
  const v = leaf([2, 5, 3], 18);
  gradcheck('scaledDotProductAttention', ([a, b, c]) => F.scaledDotProductAttention(a!, b!, c!), [q, k, v]);
  const qs = leaf([1, 4, 4], 19);
  gradcheck('attention causal', ([a]) => F.scaledDotProductAttention(a!, a!, a!, { isCausal: true }), [qs]);
  const keepMask = tensor([
    [true, false, true, true, true],
    [true, true, true, false, false],
    [false, true, true, true, true],
  ]);
  gradcheck('attention bool mask', ([a, b, c]) => F.scaledDotProductAttention(a!, b!, c!, { attnMask: keepMask }), [
    q,
    k,
    v,
  ]);
});

// Modules: gradients with respect to inputs and to every parameter (as float64).
function checkModule(name: string, m: nn.Module, forward: (...x: Tensor[]) => Tensor, inputs: Tensor[]): void {
  m.to({ dtype: 'float64' });
  const params = m.parameters();
  gradcheck(
    name,
    (xs) => {
      // Finite differences pass perturbed copies of a parameter: swap them in (no graph is being
      // recorded then), run, and restore. The autograd pass passes the parameters themselves.
      const swaps = xs
        .slice(inputs.length)
        .map((x, i) => [params[i]!, x] as const)
        .filter(([p, x]) => p !== x);
      const saved = swaps.map(([p]) => p.clone());
      swaps.forEach(([p, x]) => p.detach().copy_(x));
      try {
        return forward(...xs.slice(0, inputs.length));
      } finally {
        swaps.forEach(([p], i) => p.detach().copy_(saved[i]!));
      }
    },
    [...inputs, ...params],
  );
}

test('modules: Linear, LayerNorm, Conv1d, Conv2d, Sequential', () => {
  manualSeed(0);
  const lin = new nn.Linear(3, 2);
  checkModule('Linear', lin, (x) => lin.forward(x), [leaf([2, 3], 1)]);
  const ln = new nn.LayerNorm(4);
  checkModule('LayerNorm', ln, (x) => ln.forward(x), [leaf([2, 4], 2)]);
  const c1 = new nn.Conv1d(2, 3, 3, { padding: 1 });
  checkModule('Conv1d', c1, (x) => c1.forward(x), [leaf([1, 2, 4], 3)]);
  const c2 = new nn.Conv2d(2, 2, 2);
  checkModule('Conv2d', c2, (x) => c2.forward(x), [leaf([1, 2, 3, 3], 4)]);
  const seq = new nn.Sequential(new nn.Linear(3, 4), new nn.GELU(), new nn.Linear(4, 2));
  checkModule('Sequential', seq, (x) => seq.forward(x), [leaf([2, 3], 5)]);
});

test('LSTM: inputs and every weight', () => {
  manualSeed(1);
  const lstm = new nn.LSTM(3, 2, { numLayers: 2, batchFirst: true });
  checkModule('LSTM', lstm, (x) => lstm.forward(x).output, [leaf([2, 4, 3], 6)]);
  const bi = new nn.LSTM(2, 2, { bidirectional: true });
  checkModule('LSTM bidirectional, last state', bi, (x) => bi.forward(x).h, [leaf([3, 1, 2], 7)]);
});

test('MultiheadAttention: inputs and weights, with a key padding mask', () => {
  manualSeed(2);
  const mha = new nn.MultiheadAttention(4, 2);
  const pad = tensor([
    [false, false, true],
    [false, false, false],
  ]);
  checkModule('MultiheadAttention', mha, (q, kv) => mha.forward(q, kv, kv, { keyPaddingMask: pad }), [
    leaf([2, 2, 4], 8),
    leaf([3, 2, 4], 9),
  ]);
});
