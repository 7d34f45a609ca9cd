// Optimizers and schedulers against their update rules computed by hand in plain JS doubles.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { type Tensor, noGrad, tensor, optim, tidy } from '../src/torch/index.js';
import { assertClose } from './helpers.js';

// A small least-squares problem: loss(w) = Σ_i (x_i·w − y_i)², gradient 2Xᵀ(Xw − y).
const X = [
  [1, 2],
  [3, -1],
  [0.5, 0.5],
];
const Y = [1, 2, -1];
function lossOf(w: Tensor): Tensor {
  return tensor(X, { dtype: 'float64' })
    .matmul(w)
    .sub(tensor(Y, { dtype: 'float64' }))
    .pow(2)
    .sum();
}
function gradByHand(w: number[]): number[] {
  const r = X.map((row, i) => row[0]! * w[0]! + row[1]! * w[1]! - Y[i]!);
  return [0, 1].map((j) => 2 * X.reduce((s, row, i) => s + row[j]! * r[i]!, 0));
}
function run(opt: optim.Optimizer<{ lr: number }>, w: Tensor, steps: number): number[][] {
  const trace: number[][] = [];
  for (let s = 0; s < steps; s++) {
    tidy(() => {
      opt.zeroGrad();
      lossOf(w).backward();
      opt.step();
    });
    trace.push(w.toFlatArray());
  }
  return trace;
}

test('Adam: first steps equal the update rule by hand (with L2 weight decay)', () => {
  const lr = 0.1,
    b1 = 0.9,
    b2 = 0.999,
    eps = 1e-8,
    wd = 0.05;
  const w = tensor([0.3, -0.2], { dtype: 'float64', requiresGrad: true });
  const got = run(new optim.Adam([w], { lr, betas: [b1, b2], eps, weightDecay: wd }), w, 4);
  let p = [0.3, -0.2],
    m = [0, 0],
    v = [0, 0];
  for (let t = 1; t <= 4; t++) {
    const g = gradByHand(p).map((gi, i) => gi + wd * p[i]!);
    m = m.map((mi, i) => b1 * mi + (1 - b1) * g[i]!);
    v = v.map((vi, i) => b2 * vi + (1 - b2) * g[i]! ** 2);
    p = p.map((pi, i) => pi - (lr * (m[i]! / (1 - b1 ** t))) / (Math.sqrt(v[i]! / (1 - b2 ** t)) + eps));
    assertClose(got[t - 1]!, p, { atol: 1e-12, what: `Adam step ${t}` });
  }
});

test('AdamW: decoupled weight decay', () => {
  const lr = 0.05,
    b1 = 0.8,
    b2 = 0.99,
    eps = 1e-8,
    wd = 0.1;
  const w = tensor([1, 2], { dtype: 'float64', requiresGrad: true });
  const got = run(new optim.AdamW([w], { lr, betas: [b1, b2], eps, weightDecay: wd }), w, 3);
  let p = [1, 2],
    m = [0, 0],
    v = [0, 0];
  for (let t = 1; t <= 3; t++) {
    const g = gradByHand(p);
    p = p.map((pi) => pi * (1 - lr * wd));
    m = m.map((mi, i) => b1 * mi + (1 - b1) * g[i]!);
    v = v.map((vi, i) => b2 * vi + (1 - b2) * g[i]! ** 2);
    p = p.map((pi, i) => pi - (lr * (m[i]! / (1 - b1 ** t))) / (Math.sqrt(v[i]! / (1 - b2 ** t)) + eps));
    assertClose(got[t - 1]!, p, { atol: 1e-12, what: `AdamW step ${t}` });
  }
});

test('SGD: momentum, dampening, Nesterov and weight decay', () => {
  const lr = 0.01,
    mu = 0.9,
    damp = 0.1,
    wd = 0.01;
  for (const nesterov of [false, true]) {
    const w = tensor([0.5, 0.5], { dtype: 'float64', requiresGrad: true });
    const got = run(
      new optim.SGD([w], { lr, momentum: mu, dampening: nesterov ? 0 : damp, weightDecay: wd, nesterov }),
      w,
      3,
    );
    let p = [0.5, 0.5],
      buf = [0, 0];
    for (let t = 1; t <= 3; t++) {
      const d = gradByHand(p).map((gi, i) => gi + wd * p[i]!);
      buf = t === 1 ? d : buf.map((b, i) => mu * b + (1 - (nesterov ? 0 : damp)) * d[i]!);
      const step = nesterov ? d.map((di, i) => di + mu * buf[i]!) : buf;
      p = p.map((pi, i) => pi - lr * step[i]!);
      assertClose(got[t - 1]!, p, { atol: 1e-12, what: `SGD nesterov=${nesterov} step ${t}` });
    }
  }
});

test('parameter groups keep their own learning rates', () => {
  const a = tensor([1], { dtype: 'float64', requiresGrad: true });
  const b = tensor([1], { dtype: 'float64', requiresGrad: true });
  const opt = new optim.SGD([{ params: [a] }, { params: [b], lr: 0.5 }], { lr: 0.1 });
  a.mul(1).sum().add(b.mul(1).sum()).backward(); // both gradients 1
  opt.step();
  assert.deepEqual([a.item(), b.item()], [0.9, 0.5]);
  assert.throws(() => new optim.SGD([{ params: [a] }, { params: [a] }], { lr: 1 }), /more than one parameter group/);
});

test('optimizer state save and load continues exactly', () => {
  const w1 = tensor([0.3, -0.2], { dtype: 'float64', requiresGrad: true });
  const o1 = new optim.Adam([w1], { lr: 0.1 });
  const full = run(o1, w1, 5);
  const w2 = tensor([0.3, -0.2], { dtype: 'float64', requiresGrad: true });
  const o2 = new optim.Adam([w2], { lr: 0.1 });
  run(o2, w2, 2);
  const saved = o2.stateDict();
  assert.deepEqual(Object.keys(saved.tensors).sort(), ['0.exp_avg', '0.exp_avg_sq']);
  const w3 = tensor(w2.toFlatArray(), { dtype: 'float64', requiresGrad: true });
  const o3 = new optim.Adam([w3], { lr: 123 });
  o3.loadStateDict(saved);
  assert.equal(o3.paramGroups[0]!.hyper.lr, 0.1);
  const rest = run(o3, w3, 3);
  assertClose(rest[2]!, full[4]!, { atol: 0, what: 'resumed Adam' });
  assert.throws(() => new optim.Adam([w3, w1], {}).loadStateDict(saved), /has 1 parameters, this optimizer 2/);
});

test('StepLR and CosineAnnealingLR follow their formulas', () => {
  const w = tensor([1], { requiresGrad: true });
  const o = new optim.SGD([w], { lr: 1 });
  const step = new optim.StepLR(o, 2, 0.5);
  const lrs = [];
  for (let e = 0; e < 5; e++) {
    step.step();
    lrs.push(o.paramGroups[0]!.hyper.lr);
  }
  assert.deepEqual(lrs, [1, 0.5, 0.5, 0.25, 0.25]);
  const o2 = new optim.SGD([w], { lr: 0.1 });
  const cos = new optim.CosineAnnealingLR(o2, 4, 0.01);
  const got = [];
  for (let e = 0; e < 4; e++) {
    cos.step();
    got.push(o2.paramGroups[0]!.hyper.lr);
  }
  assertClose(
    got,
    [1, 2, 3, 4].map((e) => 0.01 + (0.09 * (1 + Math.cos((Math.PI * e) / 4))) / 2),
    { atol: 1e-15 },
  );
});

test('ReduceLROnPlateau: patience, threshold, cooldown and the floor', () => {
  const w = tensor([1], { requiresGrad: true });
  const o = new optim.SGD([w], { lr: 0.002 });
  const s = new optim.ReduceLROnPlateau(o, { factor: 1 / 3, patience: 2, cooldown: 1, minLr: 1e-4 });
  // best 1.0; 0.99995 is not better by the 1e-4 relative threshold, so it counts as bad.
  const metrics = [1.0, 0.99995, 1.1, 1.2, 0.5, 0.6, 0.7, 0.8, 0.9, 1, 1, 1, 1, 1, 1, 1];
  const lrs = metrics.map((m) => (s.step(m), o.paramGroups[0]!.hyper.lr));
  // Bad epochs: 1, 2, 3 -> reduce after the 3rd bad (epoch index 3); epoch 4 improves (0.5);
  // 5, 6, 7 bad -> reduce at index 7; cooldown 1 swallows index 8; 9, 10, 11 bad -> 0.002/27 is
  // below minLr, so index 11 lands on the 1e-4 floor and stays there.
  const third = 0.002 / 3,
    ninth = 0.002 / 9,
    floor = 1e-4;
  assertClose(
    lrs,
    [0.002, 0.002, 0.002, third, third, third, third, ninth, ninth, ninth, ninth, floor, floor, floor, floor, floor],
    { rtol: 1e-12 },
  );
});

test('WeightAverage: the moving average with its warm-up, by hand; withAverages lends it and restores', () => {
  const w = tensor([0.5, -1], { dtype: 'float64', requiresGrad: true });
  const avg = new optim.WeightAverage([w], 0.7);
  const values = [
    [1, 2],
    [3, -4],
    [-2, 0.25],
    [7, 7],
    [0.5, -3],
    [-1, 2],
    [0, 1],
  ];
  let a = [0.5, -1];
  values.forEach((v, i) => {
    noGrad(() => w.copy_(tensor(v, { dtype: 'float64' })));
    avg.update();
    const n = i + 1;
    const d = Math.min(0.7, (1 + n) / (4 + n)); // 2/5, 3/6, 4/7, 5/8, 6/9, 7/10, then the decay 0.7 (8/11 is over it)
    a = a.map((ai, j) => d * ai + (1 - d) * v[j]!);
    assertClose(avg.averages[0]!.toFlatArray(), a, { atol: 1e-15, what: `average after update ${n}` });
  });
  const inside = avg.withAverages(() => w.toFlatArray());
  assertClose(inside, a, { atol: 0, what: 'the parameter inside withAverages' });
  assert.deepEqual(w.toFlatArray(), [0, 1], 'the trained weights are back');
  assert.throws(() => avg.withAverages(() => assert.fail('boom')), /boom/);
  assert.deepEqual(w.toFlatArray(), [0, 1], 'restored after a throw too');
  const other = new optim.WeightAverage([tensor([9, 9], { dtype: 'float64' })], 0.7);
  other.loadStateDict(avg.stateDict());
  assert.deepEqual(other.averages[0]!.toFlatArray(), avg.averages[0]!.toFlatArray());
  assert.equal(other.updates, 7);
  assert.throws(() => other.loadStateDict({ tensors: {}, updates: 1 }), /average 0 is missing/);
  assert.throws(() => new optim.WeightAverage([w], 1), /decay must be in \[0, 1\)/);
});
