// Module: named parameters, buffers and submodules, found from the object's own fields in the
// order they were assigned, so that names follow the code (`fc1.weight`) and match checkpoints.
import { native } from '../native.js';
import { Tensor, keep, noGrad, type Device, type DType } from '../tensor.js';

/** A trainable tensor of a module: kept alive past every tidy(), gradient on. */
export class Parameter extends Tensor {
  constructor(t: Tensor) {
    // A fresh leaf handle on t's data: t itself may be a non-leaf or owned by a scope.
    super(native.detach(t.handle));
    t.dispose();
    keep(this);
    this.requiresGrad_(true);
  }
}

/**
 * A tensor that belongs to a module's state but does not train (e.g. running statistics). Every
 * tensor a module keeps is a Parameter or a Buffer, so that `to()` moves it. A non-persistent
 * buffer (PyTorch's `register_buffer(persistent=False)`) is derived, not saved: it stays out of
 * the state dict.
 */
export class Buffer extends Tensor {
  readonly persistent: boolean;
  constructor(t: Tensor, opts: { persistent?: boolean } = {}) {
    super(native.detach(t.handle));
    t.dispose();
    keep(this);
    this.persistent = opts.persistent ?? true;
  }
}

export interface LoadReport {
  missing: string[];
  unexpected: string[];
}

export abstract class Module {
  training = true;

  /** Direct children, parameters and buffers, from own fields (arrays of modules count too). */
  private *entries(): Generator<[string, Module | Parameter | Buffer]> {
    for (const [key, value] of Object.entries(this)) {
      if (value instanceof Module || value instanceof Parameter || value instanceof Buffer) yield [key, value];
      else if (Array.isArray(value) && value.length > 0 && value.every((v) => v instanceof Module)) {
        for (let i = 0; i < value.length; i++) yield [`${key}.${i}`, value[i] as Module];
      }
    }
  }

  *namedModules(prefix = ''): Generator<[string, Module]> {
    yield [prefix, this];
    for (const [key, v] of this.entries())
      if (v instanceof Module) yield* v.namedModules(prefix ? `${prefix}.${key}` : key);
  }

  *namedParameters(prefix = ''): Generator<[string, Parameter]> {
    for (const [key, v] of this.entries()) {
      const name = prefix ? `${prefix}.${key}` : key;
      if (v instanceof Parameter) yield [name, v];
      else if (v instanceof Module) yield* v.namedParameters(name);
    }
  }

  *namedBuffers(prefix = ''): Generator<[string, Buffer]> {
    for (const [key, v] of this.entries()) {
      const name = prefix ? `${prefix}.${key}` : key;
      if (v instanceof Buffer) yield [name, v];
      else if (v instanceof Module) yield* v.namedBuffers(name);
    }
  }

  parameters(): Parameter[] {
    return [...this.namedParameters()].map(([, p]) => p);
  }

  /** Number of scalar parameters (trainable only, by default). */
  numParameters(trainableOnly = true): number {
    return this.parameters()
      .filter((p) => !trainableOnly || p.requiresGrad)
      .reduce((n, p) => n + p.numel(), 0);
  }

  train(on = true): this {
    for (const [, m] of this.namedModules()) {
      m.training = on;
      m.stateChanged();
    }
    return this;
  }

  /** Called on every module after train()/eval() and loadStateDict(): drop anything derived from the weights. */
  protected stateChanged(): void {}

  /**
   * Says that the weights were written in place by code the module does not see (an optimizer's
   * step, a weight average lent and taken back): every module drops what it derived from them.
   */
  weightsChanged(): this {
    for (const [, m] of this.namedModules()) m.stateChanged();
    return this;
  }

  eval(): this {
    return this.train(false);
  }

  /** Freezes (or unfreezes) every parameter: no gradients are computed for them. */
  requiresGrad_(on: boolean): this {
    for (const p of this.parameters()) p.requiresGrad_(on);
    return this;
  }

  zeroGrad(): void {
    for (const p of this.parameters()) p.grad = undefined;
  }

  /** Parameters and buffers by dotted name. The tensors are the module's own (not copies). */
  stateDict(): Map<string, Tensor> {
    const out = new Map<string, Tensor>();
    for (const [n, p] of this.namedParameters()) out.set(n, p);
    for (const [n, b] of this.namedBuffers()) if (b.persistent) out.set(n, b);
    return out;
  }

  /**
   * Copies values into the module's tensors, converting dtype and device. Shape mismatches are
   * always an error; with `strict` (default) so are missing and unexpected keys. Every problem is
   * reported at once.
   */
  loadStateDict(state: Map<string, Tensor> | Record<string, Tensor>, opts: { strict?: boolean } = {}): LoadReport {
    const strict = opts.strict ?? true;
    const src = state instanceof Map ? state : new Map(Object.entries(state));
    const own = this.stateDict();
    const missing = [...own.keys()].filter((k) => !src.has(k));
    const unexpected = [...src.keys()].filter((k) => !own.has(k));
    const mismatched: string[] = [];
    for (const [k, t] of own) {
      const s = src.get(k);
      if (s && s.shape.join(',') !== t.shape.join(','))
        mismatched.push(`${k}: checkpoint [${s.shape}] vs model [${t.shape}]`);
    }
    const problems: string[] = [];
    if (mismatched.length) problems.push(`shape mismatch: ${mismatched.join('; ')}`);
    if (strict && missing.length) problems.push(`missing keys: ${missing.join(', ')}`);
    if (strict && unexpected.length) problems.push(`unexpected keys: ${unexpected.join(', ')}`);
    if (problems.length) throw new Error(`loadStateDict(${this.constructor.name}): ${problems.join('. ')}`);
    noGrad(() => {
      for (const [k, t] of own) {
        const s = src.get(k);
        if (s) t.copy_(s);
      }
    });
    for (const [, m] of this.namedModules()) m.stateChanged();
    return { missing, unexpected };
  }

  /**
   * Moves every parameter and buffer to a device and/or dtype, in place: each field gets the moved
   * tensor (an optimizer made before holds the old ones, as in PyTorch). Anything derived from the
   * weights is dropped (stateChanged).
   */
  to(target: { dtype?: DType; device?: Device }): this {
    for (const [, m] of this.namedModules()) {
      for (const [key, v] of Object.entries(m)) {
        if (v instanceof Parameter || v instanceof Buffer) {
          const moved = v.to(target);
          const replacement =
            v instanceof Parameter ? new Parameter(moved) : new Buffer(moved, { persistent: v.persistent });
          if (v instanceof Parameter) replacement.requiresGrad_(v.requiresGrad);
          (m as unknown as Record<string, Tensor>)[key] = replacement;
          v.dispose();
        }
      }
      m.stateChanged();
    }
    return this;
  }
}
