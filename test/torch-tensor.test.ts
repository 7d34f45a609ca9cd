// Tensor basics: hand-computed closed forms, dtypes and conversions, scopes, and errors that a
// user can cause (each must be a JavaScript error carrying libtorch's message, never a crash).
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import {
  F,
  type Tensor,
  tensor,
  zeros,
  ones,
  full,
  arange,
  randn,
  rand,
  randint,
  randperm,
  manualSeed,
  tidy,
  keep,
  noGrad,
  isGradEnabled,
  cat,
  setNumThreads,
  getNumThreads,
  buildInfo,
} from '../src/torch/index.js';
import { assertClose } from './helpers.js';

test('creation: nested arrays, typed arrays, shapes and dtypes', () => {
  const t = tensor([
    [1, 2, 3],
    [4, 5, 6],
  ]);
  assert.deepEqual(t.shape, [2, 3]);
  assert.equal(t.dtype, 'float32');
  assert.deepEqual(t.toArray(), [
    [1, 2, 3],
    [4, 5, 6],
  ]);
  assert.equal(tensor([true, false]).dtype, 'bool');
  assert.equal(tensor(7).item(), 7);
  assert.deepEqual(tensor(7).shape, []);
  assert.throws(() => tensor([[1, 2], [3]]), /ragged/);
  const f = tensor(new Float32Array([1, 2, 3, 4, 5, 6]), { shape: [3, 2] });
  assert.deepEqual(f.toArray(), [
    [1, 2],
    [3, 4],
    [5, 6],
  ]);
  const big = tensor(new BigInt64Array([1n, -2n, 9007199254740991n]));
  assert.equal(big.dtype, 'int64');
  assert.deepEqual([...(big.toTypedArray() as BigInt64Array)], [1n, -2n, 9007199254740991n]);
  assert.equal(tensor(new Uint8Array([255, 0])).dtype, 'uint8');
  assert.deepEqual(zeros([2, 2]).toFlatArray(), [0, 0, 0, 0]);
  assert.deepEqual(ones([3], { dtype: 'int64' }).toFlatArray(), [1, 1, 1]);
  assert.deepEqual(full([2], 2.5, { dtype: 'float64' }).toFlatArray(), [2.5, 2.5]);
  assert.deepEqual(arange(4).toFlatArray(), [0, 1, 2, 3]);
  assert.equal(arange(4).dtype, 'int64');
  assert.deepEqual(arange(0, 1, 0.25).toFlatArray(), [0, 0.25, 0.5, 0.75]);
  assert.throws(() => tensor([1], { dtype: 'float8' as never }), /unknown dtype/);
});

test('half precision, bfloat16 and bool round trips', () => {
  const x = tensor([1.5, -2.25, 1000]);
  assert.deepEqual(x.to('float16').toFlatArray(), [1.5, -2.25, 1000]);
  // bfloat16 keeps 8 mantissa bits: 1000 -> 1000, 1.001 -> 1.
  assert.deepEqual(tensor([1000, 1.001]).to('bfloat16').toFlatArray(), [1000, 1]);
  assert.deepEqual(tensor([0.5, -1, 2]).gt(0).toFlatArray(), [1, 0, 1]);
  assert.equal(x.to('float16').dtype, 'float16');
  assert.equal(x.double().dtype, 'float64');
});

test('random: seeded generators repeat, ranges hold', () => {
  manualSeed(42);
  const a = randn([5]).toFlatArray();
  manualSeed(42);
  assert.deepEqual(randn([5]).toFlatArray(), a);
  const u = rand([1000]).toFlatArray();
  assert.ok(u.every((v) => v >= 0 && v < 1));
  const r = randint(3, 7, [1000]).toFlatArray();
  assert.ok(r.every((v) => v >= 3 && v < 7 && Number.isInteger(v)));
  assert.deepEqual([...randperm(6).toFlatArray()].sort(), [0, 1, 2, 3, 4, 5]);
});

test('closed forms: softmax, logSoftmax, layerNorm, var, cross-entropy, cosine, GELU', () => {
  // softmax([0, ln 2, ln 3]) = [1, 2, 3] / 6.
  assertClose(
    tensor([0, Math.log(2), Math.log(3)])
      .softmax(0)
      .toFlatArray(),
    [1 / 6, 2 / 6, 3 / 6],
    { atol: 1e-7 },
  );
  assertClose(
    tensor([0, Math.log(2), Math.log(3)])
      .logSoftmax(0)
      .toFlatArray(),
    [Math.log(1 / 6), Math.log(2 / 6), Math.log(3 / 6)],
    { atol: 1e-6 },
  );
  // layerNorm([1, 2, 3, 4]): mean 2.5, biased variance 1.25.
  const s = Math.sqrt(1.25 + 1e-5);
  assertClose(F.layerNorm(tensor([1, 2, 3, 4]), [4]).toFlatArray(), [-1.5 / s, -0.5 / s, 0.5 / s, 1.5 / s], {
    atol: 1e-6,
  });
  const lnw = F.layerNorm(tensor([1, 2, 3, 4]), [4], tensor([2, 2, 2, 2]), tensor([1, 1, 1, 1]));
  assertClose(lnw.toFlatArray(), [1 - 3 / s, 1 - 1 / s, 1 + 1 / s, 1 + 3 / s], { atol: 1e-6 });
  assert.equal(tensor([1, 2, 3, 4]).var().item(), Math.fround(5 / 3));
  assert.equal(tensor([1, 2, 3, 4]).var(0, { unbiased: false }).item(), 1.25);
  // cross-entropy of logits [0, 0, ln 2] for class 2: -log(2/4).
  const ce = F.crossEntropy(tensor([[0, 0, Math.log(2)]]), tensor([2], { dtype: 'int64' }));
  assertClose([ce.item()], [Math.log(2)], { atol: 1e-6 });
  assertClose([F.cosineSimilarity(tensor([[1, 0]]), tensor([[1, 1]])).item()], [Math.SQRT1_2], { atol: 1e-7 });
  // GELU(1) = Φ(1) = 0.8413447460685429; tanh form 0.8411919906082768.
  assertClose([tensor([1], { dtype: 'float64' }).gelu().item()], [0.8413447460685429], { atol: 1e-12 });
  assertClose([tensor([1], { dtype: 'float64' }).gelu('tanh').item()], [0.8411919906082768], { atol: 1e-12 });
  assertClose(F.normalize(tensor([[3, 4]])).toFlatArray(), [0.6, 0.8], { atol: 1e-7 });
  // SiLU x·σ(x) and CLIP's quick GELU x·σ(1.702x), in float64 against the formula, with and without
  // autograd (quickGelu runs in place when no gradient is tracked) and leaving its input unchanged.
  const xs = [-6, -1.5, -0.25, 0, 0.5, 2, 7];
  const sig = (v: number) => 1 / (1 + Math.exp(-v));
  assertClose(
    tensor(xs, { dtype: 'float64' }).silu().toFlatArray(),
    xs.map((v) => v * sig(v)),
    { atol: 1e-14 },
  );
  const quick = xs.map((v) => v * sig(1.702 * v));
  const x64 = tensor(xs, { dtype: 'float64' });
  assertClose(noGrad(() => F.quickGelu(x64)).toFlatArray(), quick, { atol: 1e-14 });
  assert.deepEqual(x64.toFlatArray(), xs);
  assertClose(F.quickGelu(tensor(xs, { dtype: 'float64', requiresGrad: true })).toFlatArray(), quick, { atol: 1e-14 });
});

test('reductions and indexing by hand', () => {
  const t = tensor([
    [1, 5, 3],
    [4, 2, 6],
  ]);
  assert.deepEqual(t.sum(0).toFlatArray(), [5, 7, 9]);
  assert.deepEqual(t.mean(1).toFlatArray(), [3, 4]);
  assert.deepEqual(t.argmax(1).toFlatArray(), [1, 2]);
  assert.deepEqual(t.maxDim(0).indices.toFlatArray(), [1, 0, 1]);
  assert.equal(t.max().item(), 6);
  assert.deepEqual(t.sort(1).values.toFlatArray(), [1, 3, 5, 2, 4, 6]);
  assert.deepEqual(t.index(tensor([true, false])).toArray(), [[1, 5, 3]]);
  assert.deepEqual(t.transpose(0, 1).toArray(), [
    [1, 4],
    [5, 2],
    [3, 6],
  ]);
  assert.deepEqual(t.slice(1, 0, 3, 2).toArray(), [
    [1, 3],
    [4, 6],
  ]);
  assert.deepEqual(cat([t, t], 0).shape, [4, 3]);
  assert.deepEqual(t.matmul(tensor([[1], [0], [1]])).toFlatArray(), [4, 10]);
});

test('scopes: tidy frees what it does not return, keep() survives, results move up', () => {
  let inner!: Tensor;
  let kept!: Tensor;
  let escaped!: Tensor;
  const out = tidy(() => {
    escaped = tidy(() => {
      inner = ones([2]).mul(3);
      kept = keep(zeros([1]));
      return { a: [inner.add(1)] };
    }).a[0]!;
    return escaped.mul(2);
  });
  assert.equal(inner.isDisposed, true);
  assert.equal(kept.isDisposed, false);
  assert.equal(escaped.isDisposed, true, 'a result of the inner scope belongs to the outer one');
  assert.deepEqual(out.toFlatArray(), [8, 8]);
  assert.throws(() => inner.add(1), /disposed/);
  assert.throws(() => tidy(() => Promise.resolve(1) as never), /synchronous/);
  // A throwing fn still frees its tensors.
  let leaked!: Tensor;
  assert.throws(
    () =>
      tidy(() => {
        leaked = ones([1]);
        throw new Error('boom');
      }),
    /boom/,
  );
  assert.equal(leaked.isDisposed, true);
});

test('autograd: backward, grad, detach, noGrad', () => {
  const x = tensor([1, 2, 3], { requiresGrad: true });
  const y = x.mul(x).sum(); // dy/dx = 2x
  y.backward();
  assert.deepEqual(x.grad!.toFlatArray(), [2, 4, 6]);
  x.mul(3).sum().backward(); // accumulates
  assert.deepEqual(x.grad!.toFlatArray(), [5, 7, 9]);
  x.grad = undefined;
  assert.equal(x.grad, undefined);
  assert.equal(x.detach().requiresGrad, false);
  noGrad(() => {
    assert.equal(isGradEnabled(), false);
    assert.equal(x.mul(2).requiresGrad, false);
  });
  assert.equal(isGradEnabled(), true);
  const v = tensor([1, 1, 1]);
  const z = x.mul(2);
  z.backward(v); // non-scalar with an explicit gradient
  assert.deepEqual(x.grad!.toFlatArray(), [2, 2, 2]);
});

test('user errors throw JavaScript errors with libtorch messages', () => {
  assert.throws(() => ones([2, 3]).matmul(ones([2, 3])), /mat1 and mat2 shapes cannot be multiplied \(2x3 and 2x3\)/);
  assert.throws(() => ones([2]).add(ones([3])), /size of tensor a \(2\) must match/);
  assert.throws(
    () => tensor([1, 2], { requiresGrad: true }).mul(2).backward(),
    /grad can be implicitly created only for scalar outputs/,
  );
  assert.throws(() => F.crossEntropy(ones([2, 3]), ones([2])), /expected scalar type Long|Expected.*Long|nll_loss/i);
  assert.throws(() => ones([2, 3]).view(4), /shape '\[4\]' is invalid for input of size 6/);
  assert.throws(() => ones([2]).to('cuda').item(), /CUDA|cuda/);
  assert.throws(() => ones([1]).size(3), /out of range/);
});

test('threads and build information', () => {
  const n = getNumThreads();
  setNumThreads(1);
  assert.equal(getNumThreads(), 1);
  setNumThreads(n);
  assert.throws(() => setNumThreads(0), /positive integer/);
  assert.match(buildInfo().torchVersion, /^\d+\.\d+\.\d+$/);
});

test('pad, in-place clamp and the channels-last layout, by hand', () => {
  const x = tensor([
    [1, 2],
    [3, 4],
  ]).view(1, 1, 2, 2);
  // [left, right, top, bottom]: one column left, none right, none top, two rows below, filled with 9
  assert.deepEqual(F.pad(x, [1, 0, 0, 2], 9).toArray(), [
    [
      [
        [9, 1, 2],
        [9, 3, 4],
        [9, 9, 9],
        [9, 9, 9],
      ],
    ],
  ]);
  const y = tensor([-3, 0.5, 7, 6]);
  assert.equal(y.clamp_(0, 6), y);
  assert.deepEqual(y.toArray(), [0, 0.5, 6, 6]);
  // [1, 2, 2, 2] in NHWC memory: the same values, channels interleaved in memory
  const c = arange(8).view(1, 2, 2, 2);
  const cl = c.contiguous('channels_last');
  assert.deepEqual(cl.toArray(), c.toArray());
  // a view of the NHWC order exists only where memory is in that order
  assert.deepEqual(cl.permute(0, 2, 3, 1).view(-1).toArray(), [0, 4, 1, 5, 2, 6, 3, 7]);
  assert.throws(() => c.permute(0, 2, 3, 1).view(-1));
  assert.throws(() => (c as unknown as { contiguous(f: string): Tensor }).contiguous('nhwc'), /channels_last/);
});
