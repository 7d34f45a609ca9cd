// Gradient check against central finite differences in float64: the independent reference for
// every differentiable operation of the engine.
import * as assert from 'node:assert/strict';
import { type Tensor, noGrad, tensor, tidy, randn, manualSeed } from '../src/torch/index.js';

export interface GradcheckOptions {
  eps?: number;
  atol?: number;
  rtol?: number;
  /** Seed to set before every evaluation (for random ops such as dropout). */
  seed?: number;
}

/**
 * Checks d(sum(f(xs) · w))/dxs from autograd against central differences, for a fixed random w.
 * `inputs` are float64 tensors; each one that has requiresGrad is checked.
 */
export function gradcheck(
  name: string,
  f: (xs: Tensor[]) => Tensor,
  inputs: Tensor[],
  opts: GradcheckOptions = {},
): void {
  const { eps = 1e-6, atol = 1e-6, rtol = 1e-4 } = opts;
  tidy(() => {
    const run = (xs: Tensor[]): Tensor => {
      if (opts.seed !== undefined) manualSeed(opts.seed);
      return f(xs);
    };
    const out0 = noGrad(() => run(inputs));
    manualSeed(12345);
    const w = randn(out0.shape, { dtype: 'float64' });
    const scalar = (xs: Tensor[]) => run(xs).mul(w).sum();

    for (const x of inputs) x.grad = undefined;
    scalar(inputs).backward();
    inputs.forEach((x, k) => {
      if (!x.requiresGrad) return;
      const analytic = x.grad ? x.grad.toFlatArray() : new Array<number>(x.numel()).fill(0);
      const base = x.toFlatArray();
      const shape = x.shape;
      for (let i = 0; i < base.length; i++) {
        const at = (delta: number): number =>
          tidy(() => {
            const v = base.slice();
            v[i] = v[i]! + delta;
            const xs = inputs.map((y, j) => (j === k ? tensor(Float64Array.from(v), { shape }) : y));
            return noGrad(() => scalar(xs).item());
          });
        const numeric = (at(eps) - at(-eps)) / (2 * eps);
        const a = analytic[i]!;
        assert.ok(
          Math.abs(a - numeric) <= atol + rtol * Math.abs(numeric),
          `${name}: d/dinput${k}[${i}] autograd ${a} vs finite difference ${numeric}`,
        );
      }
    });
  });
}

/** A float64 leaf with gradient, values N(0, 1) (seeded), optionally shifted away from 0. */
export function leaf(shape: number[], seed: number, opts: { awayFromZero?: number; positive?: boolean } = {}): Tensor {
  manualSeed(seed);
  let t = randn(shape, { dtype: 'float64' });
  if (opts.positive) t = t.abs().add(0.5);
  if (opts.awayFromZero) {
    const s = t.ge(0).to('float64').mul(2).sub(1); // sign, with 0 -> +1
    t = t.add(s.mul(opts.awayFromZero));
  }
  return t.detach().requiresGrad_(true).keep();
}
