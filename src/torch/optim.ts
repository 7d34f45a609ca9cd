// Optimizers (SGD, Adam, AdamW) and learning-rate schedulers, with PyTorch's update rules and
// state, written over in-place tensor ops. Updates run under noGrad inside a tidy, so a step
// leaves no temporaries behind.
import { Tensor, keep, noGrad, tidy, zerosLike } from './tensor.js';

export interface ParamGroup<H> {
  params: Tensor[];
  hyper: H;
}

export type GroupSpec<H> = { params: Tensor[] } & Partial<H>;

/** What an optimizer saves: its per-parameter tensors, step counts and group hyper-parameters. */
export interface OptimizerState {
  tensors: Record<string, Tensor>; // "<param index>.<name>", e.g. "3.exp_avg"
  steps: Record<string, number>;
  groups: Array<Record<string, unknown>>;
}

export abstract class Optimizer<H extends { lr: number }> {
  readonly paramGroups: ParamGroup<H>[];
  protected readonly state = new Map<Tensor, { step: number; buffers: Map<string, Tensor> }>();

  constructor(params: Tensor[] | GroupSpec<H>[], defaults: H) {
    const specs = (
      params.length > 0 && params[0] instanceof Tensor ? [{ params: params as Tensor[] }] : params
    ) as GroupSpec<H>[];
    this.paramGroups = specs.map(({ params: ps, ...over }) => ({
      params: ps,
      hyper: { ...defaults, ...(over as unknown as Partial<H>) },
    }));
    const seen = new Set<Tensor>();
    for (const g of this.paramGroups) {
      if (!(g.hyper.lr >= 0)) throw new RangeError(`invalid learning rate ${g.hyper.lr}`);
      for (const p of g.params) {
        if (seen.has(p)) throw new Error('a parameter appears in more than one parameter group');
        seen.add(p);
      }
    }
  }

  /** Sets every parameter's gradient to none (as PyTorch's zero_grad(set_to_none=True)). */
  zeroGrad(): void {
    for (const g of this.paramGroups) for (const p of g.params) p.grad = undefined;
  }

  /** One update of every parameter that has a gradient. */
  step(): void {
    // One scope per parameter: its temporaries (Adam's denominator: one more tensor the size of
    // the parameter) are freed before the next parameter's are made, so memory the allocator has
    // just released (still in cache, no page faults) serves the next, and peak memory stays flat.
    noGrad(() => {
      for (const g of this.paramGroups) {
        for (const p of g.params) {
          tidy(() => {
            const grad = p.grad;
            if (!grad) return;
            let s = this.state.get(p);
            if (!s) this.state.set(p, (s = { step: 0, buffers: new Map() }));
            s.step += 1;
            this.update(p, grad, g.hyper, s.step, s.buffers);
          });
        }
      }
    });
  }

  /** The state buffer `name` of a parameter, created as zeros the first time. */
  protected buffer(buffers: Map<string, Tensor>, name: string, like: Tensor): Tensor {
    let b = buffers.get(name);
    if (!b) buffers.set(name, (b = keep(zerosLike(like))));
    return b;
  }

  protected abstract update(p: Tensor, grad: Tensor, h: H, step: number, buffers: Map<string, Tensor>): void;

  private allParams(): Tensor[] {
    return this.paramGroups.flatMap((g) => g.params);
  }

  stateDict(): OptimizerState {
    const tensors: Record<string, Tensor> = {};
    const steps: Record<string, number> = {};
    this.allParams().forEach((p, i) => {
      const s = this.state.get(p);
      if (!s) return;
      steps[i] = s.step;
      for (const [name, b] of s.buffers) tensors[`${i}.${name}`] = b;
    });
    let next = 0;
    const groups = this.paramGroups.map((g) => ({ ...g.hyper, params: g.params.map(() => next++) }));
    return { tensors, steps, groups };
  }

  loadStateDict(sd: OptimizerState): void {
    const params = this.allParams();
    if (sd.groups.length !== this.paramGroups.length)
      throw new Error(
        `optimizer state has ${sd.groups.length} parameter groups, this optimizer ${this.paramGroups.length}`,
      );
    sd.groups.forEach((g, i) => {
      const n = (g.params as number[]).length;
      if (n !== this.paramGroups[i]!.params.length)
        throw new Error(
          `optimizer state group ${i} has ${n} parameters, this optimizer ${this.paramGroups[i]!.params.length}`,
        );
      const { params: _, ...hyper } = g;
      Object.assign(this.paramGroups[i]!.hyper, hyper);
    });
    this.state.clear();
    for (const [key, t] of Object.entries(sd.tensors)) {
      const dot = key.indexOf('.');
      const p = params[Number(key.slice(0, dot))];
      if (!p) throw new Error(`optimizer state names parameter ${key.slice(0, dot)}, which does not exist`);
      if (t.shape.join() !== p.shape.join())
        throw new Error(`optimizer state ${key} has shape [${t.shape}], parameter [${p.shape}]`);
      let s = this.state.get(p);
      if (!s) this.state.set(p, (s = { step: sd.steps[key.slice(0, dot)] ?? 0, buffers: new Map() }));
      s.buffers.set(key.slice(dot + 1), keep(noGrad(() => t.detach().clone())));
    }
  }
}

export interface SGDOptions {
  lr: number;
  momentum: number;
  dampening: number;
  weightDecay: number;
  nesterov: boolean;
}

export class SGD extends Optimizer<SGDOptions> {
  constructor(params: Tensor[] | GroupSpec<SGDOptions>[], opts: Partial<SGDOptions> & { lr: number }) {
    super(params, { momentum: 0, dampening: 0, weightDecay: 0, nesterov: false, ...opts });
  }

  protected update(p: Tensor, grad: Tensor, h: SGDOptions, step: number, buffers: Map<string, Tensor>): void {
    let d = h.weightDecay ? grad.add(p.mul(h.weightDecay)) : grad;
    if (h.momentum) {
      const buf = this.buffer(buffers, 'momentum_buffer', p);
      if (step === 1) buf.copy_(d);
      else buf.mul_(h.momentum).add_(d, 1 - h.dampening);
      d = h.nesterov ? d.add(buf.mul(h.momentum)) : buf;
    }
    p.add_(d, -h.lr);
  }
}

export interface AdamOptions {
  lr: number;
  betas: [number, number];
  eps: number;
  weightDecay: number;
}

/** Adam (Kingma & Ba), with PyTorch's bias correction and eps placement; weight decay is L2 on the gradient. */
export class Adam extends Optimizer<AdamOptions> {
  protected decoupled = false;

  constructor(params: Tensor[] | GroupSpec<AdamOptions>[], opts: Partial<AdamOptions> = {}) {
    super(params, { lr: 1e-3, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0, ...opts });
  }

  protected update(p: Tensor, grad: Tensor, h: AdamOptions, step: number, buffers: Map<string, Tensor>): void {
    const [b1, b2] = h.betas;
    let g = grad;
    if (h.weightDecay && this.decoupled) p.mul_(1 - h.lr * h.weightDecay);
    else if (h.weightDecay) g = grad.add(p.mul(h.weightDecay));
    const m = this.buffer(buffers, 'exp_avg', p);
    const v = this.buffer(buffers, 'exp_avg_sq', p);
    m.mul_(b1).add_(g, 1 - b1); // m = β1·m + (1-β1)·g
    v.mul_(b2).addcmul_(g, g, 1 - b2); // v = β2·v + (1-β2)·g²
    const stepSize = h.lr / (1 - b1 ** step);
    const denom = v
      .sqrt()
      .div_(Math.sqrt(1 - b2 ** step))
      .add_(h.eps); // √v̂ + eps
    p.addcdiv_(m, denom, -stepSize);
  }
}

/** AdamW (Loshchilov & Hutter): decay applied to the weights directly, default 0.01 as PyTorch. */
export class AdamW extends Adam {
  constructor(params: Tensor[] | GroupSpec<AdamOptions>[], opts: Partial<AdamOptions> = {}) {
    super(params, { weightDecay: 0.01, ...opts });
    this.decoupled = true;
  }
}

// ---- learning-rate schedulers ----

type AnyOptimizer = Optimizer<{ lr: number }>;

/** Epoch-based schedulers: call step() once per epoch, after the optimizer's steps. */
abstract class EpochScheduler {
  readonly baseLrs: number[];
  lastEpoch = 0;

  constructor(protected readonly optimizer: AnyOptimizer) {
    this.baseLrs = optimizer.paramGroups.map((g) => g.hyper.lr);
  }

  protected abstract lrAt(base: number, epoch: number): number;

  step(): void {
    this.lastEpoch += 1;
    this.optimizer.paramGroups.forEach((g, i) => (g.hyper.lr = this.lrAt(this.baseLrs[i]!, this.lastEpoch)));
  }

  get lrs(): number[] {
    return this.optimizer.paramGroups.map((g) => g.hyper.lr);
  }

  stateDict(): { lastEpoch: number } {
    return { lastEpoch: this.lastEpoch };
  }

  loadStateDict(s: { lastEpoch: number }): void {
    this.lastEpoch = s.lastEpoch;
  }
}

/** lr = base · γ^⌊epoch / stepSize⌋. */
export class StepLR extends EpochScheduler {
  constructor(
    optimizer: AnyOptimizer,
    readonly stepSize: number,
    readonly gamma = 0.1,
  ) {
    super(optimizer);
  }

  protected lrAt(base: number, epoch: number): number {
    return base * this.gamma ** Math.floor(epoch / this.stepSize);
  }
}

/** lr = ηmin + (base − ηmin)(1 + cos(π·epoch/Tmax))/2 (the closed form of PyTorch's schedule). */
export class CosineAnnealingLR extends EpochScheduler {
  constructor(
    optimizer: AnyOptimizer,
    readonly tMax: number,
    readonly etaMin = 0,
  ) {
    super(optimizer);
  }

  protected lrAt(base: number, epoch: number): number {
    return this.etaMin + ((base - this.etaMin) * (1 + Math.cos((Math.PI * epoch) / this.tMax))) / 2;
  }
}

export interface PlateauOptions {
  mode: 'min' | 'max';
  factor: number;
  patience: number;
  threshold: number;
  thresholdMode: 'rel' | 'abs';
  cooldown: number;
  minLr: number;
  eps: number;
}

/** Cuts the lr by `factor` when a metric has not improved for `patience` epochs (PyTorch's rules). */
export class ReduceLROnPlateau {
  readonly opts: PlateauOptions;
  best: number;
  numBadEpochs = 0;
  cooldownCounter = 0;

  constructor(
    private readonly optimizer: AnyOptimizer,
    opts: Partial<PlateauOptions> = {},
  ) {
    this.opts = {
      mode: 'min',
      factor: 0.1,
      patience: 10,
      threshold: 1e-4,
      thresholdMode: 'rel',
      cooldown: 0,
      minLr: 0,
      eps: 1e-8,
      ...opts,
    };
    if (this.opts.factor >= 1) throw new RangeError('ReduceLROnPlateau: factor must be < 1');
    this.best = this.opts.mode === 'min' ? Infinity : -Infinity;
  }

  private isBetter(a: number): boolean {
    const { mode, threshold, thresholdMode } = this.opts;
    if (mode === 'min') return thresholdMode === 'rel' ? a < this.best * (1 - threshold) : a < this.best - threshold;
    return thresholdMode === 'rel' ? a > this.best * (1 + threshold) : a > this.best + threshold;
  }

  /** Feeds one epoch's metric; returns true when the lr was reduced. */
  step(metric: number): boolean {
    if (this.isBetter(metric)) {
      this.best = metric;
      this.numBadEpochs = 0;
    } else this.numBadEpochs += 1;
    if (this.cooldownCounter > 0) {
      this.cooldownCounter -= 1;
      this.numBadEpochs = 0;
    }
    if (this.numBadEpochs <= this.opts.patience) return false;
    let reduced = false;
    for (const g of this.optimizer.paramGroups) {
      const next = Math.max(g.hyper.lr * this.opts.factor, this.opts.minLr);
      if (g.hyper.lr - next > this.opts.eps) {
        g.hyper.lr = next;
        reduced = true;
      }
    }
    this.cooldownCounter = this.opts.cooldown;
    this.numBadEpochs = 0;
    return reduced;
  }

  get lrs(): number[] {
    return this.optimizer.paramGroups.map((g) => g.hyper.lr);
  }

  stateDict(): { best: number; numBadEpochs: number; cooldownCounter: number } {
    return { best: this.best, numBadEpochs: this.numBadEpochs, cooldownCounter: this.cooldownCounter };
  }

  loadStateDict(s: { best: number; numBadEpochs: number; cooldownCounter: number }): void {
    Object.assign(this, s);
  }
}

// ---- weight averaging ----

/**
 * An exponential moving average of parameters (Polyak averaging; PyTorch's swa_utils.AveragedModel
 * with an EMA rule): after each optimizer step, avg = d·avg + (1 − d)·p. The n-th update uses
 * d = min(decay, (1 + n) / (4 + n)): until the decay caps it, the average spans about the last third
 * of the steps so far (1 / (1 − d) = (4 + n) / 3), so it leaves the initial weights early and still
 * averages over many steps. (TensorFlow's (1 + n) / (10 + n) spans a ninth; on the demo it left the
 * runs more path-dependent: docs/DECISIONS.md, "The demo".) `withAverages` lends the averages to the
 * parameters for a while (evaluation, saving) and puts the trained weights back.
 */
export class WeightAverage {
  readonly averages: Tensor[];
  updates = 0;

  /**
   * `written` is called each time `withAverages` writes the parameters (lending the averages, then
   * putting the trained weights back): the parameters change in place, so whatever was derived from
   * them (a module's cached outputs: `nn.Module.weightsChanged`) must be dropped there.
   */
  constructor(
    readonly params: Tensor[],
    readonly decay: number,
    private readonly opts: { written?: () => void } = {},
  ) {
    if (!(decay >= 0 && decay < 1)) throw new RangeError(`WeightAverage: decay must be in [0, 1), not ${decay}`);
    this.averages = noGrad(() => params.map((p) => keep(p.detach().clone())));
  }

  /** Folds the parameters' current values into the averages (call after each optimizer step). */
  update(): void {
    this.updates += 1;
    const d = Math.min(this.decay, (1 + this.updates) / (4 + this.updates));
    noGrad(() =>
      tidy(() => {
        this.averages.forEach((a, i) => a.mul_(d).add_(this.params[i]!, 1 - d));
      }),
    );
  }

  /** Runs fn with the averaged weights in the parameters, then restores the trained ones. */
  withAverages<T>(fn: () => T): T {
    const trained = noGrad(() =>
      this.params.map((p, i) => {
        const kept = keep(p.detach().clone());
        p.copy_(this.averages[i]!);
        return kept;
      }),
    );
    this.opts.written?.();
    try {
      return fn();
    } finally {
      noGrad(() =>
        trained.forEach((t, i) => {
          this.params[i]!.copy_(t);
          t.dispose();
        }),
      );
      this.opts.written?.();
    }
  }

  /** The averages by parameter index ("0", "1", ...) and the update count, for a resumable state. */
  stateDict(): { tensors: Record<string, Tensor>; updates: number } {
    return { tensors: Object.fromEntries(this.averages.map((a, i) => [String(i), a])), updates: this.updates };
  }

  loadStateDict(s: { tensors: Record<string, Tensor>; updates: number }): void {
    noGrad(() =>
      this.averages.forEach((a, i) => {
        const t = s.tensors[String(i)];
        if (!t || t.shape.join(',') !== a.shape.join(','))
          throw new Error(`loadStateDict(WeightAverage): average ${i} is missing or has another shape`);
        a.copy_(t);
      }),
    );
    this.updates = s.updates;
  }
}
