// Tensor: a PyTorch-shaped handle on one libtorch tensor, plus creation functions, scopes and
// grad mode. Names follow PyTorch in camelCase; negative dims count from the end as in PyTorch.
//
// Lifetimes: a Tensor owns one native reference. `dispose()` drops it now; V8 drops it when the
// Tensor is collected (native memory is reported to V8, so the GC sees it). `tidy(fn)` disposes
// every Tensor made inside fn except what fn returns and what is `keep()`-ed, which is how a
// training step keeps its memory flat.
import { blasChoice, native, oneDnnChoice, type Handle } from './native.js';

export type DType = 'float32' | 'float64' | 'float16' | 'bfloat16' | 'int64' | 'int32' | 'uint8' | 'bool';
/**
 * Where a tensor lives. 'meta' is libtorch's device of shapes
 * without data (tests use it to see that `.to()` moves everything).
 */
export type Device = 'cpu' | 'cuda' | `cuda:${number}` | 'meta';
export type TypedArray = Float32Array | Float64Array | Int32Array | BigInt64Array | Uint8Array;
export type NestedArray = number | boolean | NestedArray[];
type Shape = number[] | [number[]];

export interface TensorOptions {
  dtype?: DType;
  device?: Device;
  requiresGrad?: boolean;
}

const DTYPES = new Set<string>(['float32', 'float64', 'float16', 'bfloat16', 'int64', 'int32', 'uint8', 'bool']);

function checkDtype(d: string): DType {
  if (!DTYPES.has(d)) throw new TypeError(`unknown dtype '${d}': use one of ${[...DTYPES].join(', ')}`);
  return d as DType;
}

// `view(2, 3)` and `view([2, 3])` both work, as in PyTorch.
function dims(args: Shape): number[] {
  return (Array.isArray(args[0]) ? args[0] : args) as number[];
}

// ---- scopes ----

const scopes: Set<Tensor>[] = [];

// A Tensor made inside a scope is freed by that scope; one made outside any scope (or that
// outlives every scope) is left to the GC through `collected`. Registering only those saves the
// registry's cost on the many temporaries of a training step.
function track(t: Tensor): void {
  const scope = scopes[scopes.length - 1];
  if (scope) scope.add(t);
  else t.watchByGc();
}

// Every Tensor reachable from a scope's result (through arrays, plain objects and Maps) survives it.
function collect(value: unknown, out: Set<Tensor>, seen = new Set<unknown>()): void {
  if (value === null || typeof value !== 'object' || seen.has(value)) return;
  seen.add(value);
  if (value instanceof Tensor) out.add(value);
  else if (Array.isArray(value)) for (const v of value) collect(v, out, seen);
  else if (value instanceof Map) for (const v of value.values()) collect(v, out, seen);
  else if (Object.getPrototypeOf(value) === Object.prototype)
    for (const v of Object.values(value)) collect(v, out, seen);
}

/**
 * Runs fn and disposes every Tensor created inside it, except those it returns (anywhere inside
 * arrays, plain objects or Maps) and those marked with keep(). Returned tensors move to the
 * enclosing scope. fn must be synchronous.
 */
export function tidy<T>(fn: () => T): T {
  scopes.push(new Set());
  const survivors = new Set<Tensor>();
  try {
    const result = fn();
    if (result instanceof Promise) throw new TypeError('tidy() takes a synchronous function; await outside it');
    collect(result, survivors);
    return result;
  } finally {
    const scope = scopes.pop()!;
    for (const t of scope) {
      if (survivors.has(t) || t.isKept) track(t);
      else t.dispose();
    }
  }
}

/** Marks a tensor to outlive every enclosing tidy() (parameters, optimizer state, caches). */
export function keep<T extends Tensor>(t: T): T {
  t.isKept = true;
  return t;
}

// ---- grad mode ----

/** Runs fn with autograd recording off (inference, optimizer updates), restoring the previous mode. */
export function noGrad<T>(fn: () => T): T {
  const prev = native.gradEnabled();
  native.setGradEnabled(false);
  try {
    return fn();
  } finally {
    native.setGradEnabled(prev);
  }
}

export function isGradEnabled(): boolean {
  return native.gradEnabled();
}

// ---- Tensor ----

type Operand = Tensor | number | boolean;
const h = (o: Operand): Handle | number | boolean => (o instanceof Tensor ? o.handle : o);

// Frees the native tensor of a Tensor that was collected without dispose(). Like every finalizer
// this runs only when the event loop turns, which is why loops should free through tidy().
const collected = new FinalizationRegistry<Handle>((handle) => native.free(handle));

export class Tensor {
  /** Set by keep(): never disposed by a scope. */
  isKept = false;
  private watched = false;

  constructor(readonly handle: Handle) {
    track(this);
  }

  /**
   * @internal Frees the native tensor when this object is collected without dispose(), and tells
   * V8 its size so that such tensors piling up make it collect. Tensors freed by a scope are not
   * reported: V8 would count a training step's temporaries and run full collections in a loop.
   */
  watchByGc(): void {
    if (this.watched) return;
    this.watched = true;
    collected.register(this, this.handle, this);
    native.reportToGc(this.handle);
  }

  // -- what it is --
  get shape(): number[] {
    return native.shape(this.handle);
  }
  get dtype(): DType {
    return native.dtype(this.handle) as DType;
  }
  get device(): Device {
    return native.device(this.handle) as Device;
  }
  get ndim(): number {
    return this.shape.length;
  }
  get isDisposed(): boolean {
    return native.isFreed(this.handle);
  }
  size(dim?: number): number {
    const s = this.shape;
    if (dim === undefined) return s.reduce((a, b) => a * b, 1);
    const d = dim < 0 ? s.length + dim : dim;
    if (d < 0 || d >= s.length) throw new RangeError(`dim ${dim} out of range for a tensor of shape [${s}]`);
    return s[d]!;
  }
  numel(): number {
    return this.size();
  }
  toString(): string {
    return `Tensor(shape=[${this.shape}], dtype=${this.dtype}, device=${this.device})`;
  }

  /** Drops this handle's reference now. Other handles on the same data stay valid. */
  dispose(): void {
    native.free(this.handle);
    if (this.watched) collected.unregister(this);
  }
  keep(): this {
    return keep(this);
  }

  // -- autograd --
  get requiresGrad(): boolean {
    return native.requiresGrad(this.handle);
  }
  set requiresGrad(on: boolean) {
    native.setRequiresGrad(this.handle, on);
  }
  requiresGrad_(on = true): this {
    native.setRequiresGrad(this.handle, on);
    return this;
  }
  get isLeaf(): boolean {
    return native.isLeaf(this.handle);
  }
  /** The accumulated gradient (a new handle on it), or undefined. */
  get grad(): Tensor | undefined {
    const g = native.grad(this.handle);
    return g === undefined ? undefined : new Tensor(g);
  }
  set grad(g: Tensor | undefined) {
    native.setGrad(this.handle, g?.handle);
  }
  backward(grad?: Tensor, opts: { retainGraph?: boolean } = {}): void {
    native.backward(this.handle, grad?.handle, opts.retainGraph ?? false);
  }
  detach(): Tensor {
    return new Tensor(native.detach(this.handle));
  }

  // -- conversion and reading back --
  to(target: DType | Device | { dtype?: DType; device?: Device }): Tensor {
    const o =
      typeof target === 'string'
        ? DTYPES.has(target)
          ? { dtype: target as DType }
          : { device: target as Device }
        : target;
    return new Tensor(native.to(this.handle, o.dtype, o.device));
  }
  float(): Tensor {
    return this.to('float32');
  }
  double(): Tensor {
    return this.to('float64');
  }
  long(): Tensor {
    return this.to('int64');
  }
  cpu(): Tensor {
    return this.to('cpu');
  }
  /** A contiguous copy (or this tensor's data if already so); 'channels_last' lays [N, C, H, W] out as NHWC. */
  contiguous(memoryFormat?: 'channels_last'): Tensor {
    return new Tensor(native.contiguous(this.handle, memoryFormat));
  }
  clone(): Tensor {
    return new Tensor(native.clone(this.handle));
  }

  /** A copy of the values: Float32Array for float32/float16/bfloat16, BigInt64Array for int64, ... */
  toTypedArray(): TypedArray {
    const dt = this.dtype;
    if (dt === 'float16' || dt === 'bfloat16') return tidy(() => this.to('float32').toTypedArray());
    const buf = native.toBytes(this.handle);
    // the addon's copy is a buffer of its own: view it; copy again only if it shares an ArrayBuffer
    const whole = buf.byteOffset === 0 && buf.byteLength === buf.buffer.byteLength;
    const ab = whole ? buf.buffer : buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength);
    switch (dt) {
      case 'float32':
        return new Float32Array(ab);
      case 'float64':
        return new Float64Array(ab);
      case 'int64':
        return new BigInt64Array(ab);
      case 'int32':
        return new Int32Array(ab);
      default:
        return new Uint8Array(ab); // uint8, bool
    }
  }
  /** The values as plain numbers, flat. */
  toFlatArray(): number[] {
    const a = this.toTypedArray();
    return a instanceof BigInt64Array ? Array.from(a, Number) : Array.from(a as ArrayLike<number>);
  }
  /** The values as nested arrays of numbers, shaped like the tensor. */
  toArray(): NestedArray {
    const flat = this.toFlatArray();
    const s = this.shape;
    if (s.length === 0) return flat[0]!;
    let pos = 0;
    const build = (d: number): NestedArray[] => {
      const out: NestedArray[] = [];
      for (let i = 0; i < s[d]!; i++) out.push(d === s.length - 1 ? flat[pos++]! : build(d + 1));
      return out;
    };
    return build(0);
  }
  item(): number {
    return native.item(this.handle);
  }

  // -- elementwise --
  add(o: Operand, alpha = 1): Tensor {
    if (alpha !== 1) return this.add(o instanceof Tensor ? o.mul(alpha) : (o as number) * alpha);
    return new Tensor(native.add(this.handle, h(o)));
  }
  sub(o: Operand, alpha = 1): Tensor {
    if (alpha !== 1) return this.sub(o instanceof Tensor ? o.mul(alpha) : (o as number) * alpha);
    return new Tensor(native.sub(this.handle, h(o)));
  }
  /** other - this, for a number `other`. */
  rsub(o: number): Tensor {
    return new Tensor(native.rsub(this.handle, o));
  }
  mul(o: Operand): Tensor {
    return new Tensor(native.mul(this.handle, h(o)));
  }
  div(o: Operand): Tensor {
    return new Tensor(native.div(this.handle, h(o)));
  }
  pow(o: Operand): Tensor {
    return new Tensor(native.pow(this.handle, h(o)));
  }
  maximum(o: Tensor): Tensor {
    return new Tensor(native.maximum(this.handle, o.handle));
  }
  minimum(o: Tensor): Tensor {
    return new Tensor(native.minimum(this.handle, o.handle));
  }
  neg(): Tensor {
    return new Tensor(native.neg(this.handle));
  }
  exp(): Tensor {
    return new Tensor(native.exp(this.handle));
  }
  log(): Tensor {
    return new Tensor(native.log(this.handle));
  }
  sqrt(): Tensor {
    return new Tensor(native.sqrt(this.handle));
  }
  rsqrt(): Tensor {
    return new Tensor(native.rsqrt(this.handle));
  }
  abs(): Tensor {
    return new Tensor(native.abs(this.handle));
  }
  sin(): Tensor {
    return new Tensor(native.sin(this.handle));
  }
  cos(): Tensor {
    return new Tensor(native.cos(this.handle));
  }
  tanh(): Tensor {
    return new Tensor(native.tanh(this.handle));
  }
  sigmoid(): Tensor {
    return new Tensor(native.sigmoid(this.handle));
  }
  relu(): Tensor {
    return new Tensor(native.relu(this.handle));
  }
  /** x·σ(x) (SiLU, swish), one pass. */
  silu(): Tensor {
    return new Tensor(native.silu(this.handle));
  }
  /** GELU, exact (erf) by default or the tanh approximation. */
  gelu(approximate: 'none' | 'tanh' = 'none'): Tensor {
    return new Tensor(native.gelu(this.handle, approximate));
  }
  floor(): Tensor {
    return new Tensor(native.floor(this.handle));
  }
  clamp(min?: number, max?: number): Tensor {
    return new Tensor(native.clamp(this.handle, min, max));
  }
  clampMin(min: number): Tensor {
    return this.clamp(min, undefined);
  }
  eq(o: Operand): Tensor {
    return new Tensor(native.eq(this.handle, h(o)));
  }
  ne(o: Operand): Tensor {
    return new Tensor(native.ne(this.handle, h(o)));
  }
  lt(o: Operand): Tensor {
    return new Tensor(native.lt(this.handle, h(o)));
  }
  le(o: Operand): Tensor {
    return new Tensor(native.le(this.handle, h(o)));
  }
  gt(o: Operand): Tensor {
    return new Tensor(native.gt(this.handle, h(o)));
  }
  ge(o: Operand): Tensor {
    return new Tensor(native.ge(this.handle, h(o)));
  }
  logicalNot(): Tensor {
    return new Tensor(native.logicalNot(this.handle));
  }
  logicalAnd(o: Tensor): Tensor {
    return new Tensor(native.logicalAnd(this.handle, o.handle));
  }
  logicalOr(o: Tensor): Tensor {
    return new Tensor(native.logicalOr(this.handle, o.handle));
  }
  isfinite(): Tensor {
    return new Tensor(native.isfinite(this.handle));
  }
  isnan(): Tensor {
    return new Tensor(native.isnan(this.handle));
  }
  maskedFill(mask: Tensor, value: number | boolean): Tensor {
    return new Tensor(native.maskedFill(this.handle, mask.handle, value));
  }

  // -- linear algebra --
  matmul(o: Tensor): Tensor {
    return new Tensor(native.matmul(this.handle, o.handle));
  }
  bmm(o: Tensor): Tensor {
    return new Tensor(native.bmm(this.handle, o.handle));
  }

  // -- reductions (dim: one dim or several; all dims when omitted) --
  sum(dim?: number | number[], keepdim = false): Tensor {
    return new Tensor(dim === undefined ? native.sum(this.handle) : native.sum(this.handle, [dim].flat(), keepdim));
  }
  mean(dim?: number | number[], keepdim = false): Tensor {
    return new Tensor(dim === undefined ? native.mean(this.handle) : native.mean(this.handle, [dim].flat(), keepdim));
  }
  /** Variance; unbiased (Bessel's correction) by default, as in PyTorch. */
  var(dim?: number | number[], opts: { unbiased?: boolean; keepdim?: boolean } = {}): Tensor {
    const d = dim === undefined ? [...this.shape.keys()] : [dim].flat();
    return new Tensor(native.var(this.handle, d, opts.unbiased ?? true, opts.keepdim ?? false));
  }
  norm(p = 2, dim?: number | number[], keepdim = false): Tensor {
    const d = dim === undefined ? [...this.shape.keys()] : [dim].flat();
    return new Tensor(native.norm(this.handle, p, d, keepdim));
  }
  logsumexp(dim: number | number[], keepdim = false): Tensor {
    return new Tensor(native.logsumexp(this.handle, [dim].flat(), keepdim));
  }
  /** The largest value over all elements. */
  max(): Tensor {
    return new Tensor(native.max(this.handle));
  }
  min(): Tensor {
    return new Tensor(native.min(this.handle));
  }
  /** Largest values along dim and where they are, as PyTorch's `max(dim)`. */
  maxDim(dim: number, keepdim = false): { values: Tensor; indices: Tensor } {
    const [v, i] = native.maxDim(this.handle, dim, keepdim);
    return { values: new Tensor(v), indices: new Tensor(i) };
  }
  minDim(dim: number, keepdim = false): { values: Tensor; indices: Tensor } {
    const [v, i] = native.minDim(this.handle, dim, keepdim);
    return { values: new Tensor(v), indices: new Tensor(i) };
  }
  argmax(dim?: number, keepdim = false): Tensor {
    return new Tensor(native.argmax(this.handle, dim, keepdim));
  }
  argmin(dim?: number, keepdim = false): Tensor {
    return new Tensor(native.argmin(this.handle, dim, keepdim));
  }
  sort(dim = -1, descending = false): { values: Tensor; indices: Tensor } {
    const [v, i] = native.sort(this.handle, dim, descending);
    return { values: new Tensor(v), indices: new Tensor(i) };
  }
  cumsum(dim: number): Tensor {
    return new Tensor(native.cumsum(this.handle, dim));
  }
  all(): Tensor {
    return new Tensor(native.all(this.handle));
  }
  any(): Tensor {
    return new Tensor(native.any(this.handle));
  }
  softmax(dim: number): Tensor {
    return new Tensor(native.softmax(this.handle, dim));
  }
  logSoftmax(dim: number): Tensor {
    return new Tensor(native.logSoftmax(this.handle, dim));
  }

  // -- shape --
  view(...shape: Shape): Tensor {
    return new Tensor(native.view(this.handle, dims(shape)));
  }
  reshape(...shape: Shape): Tensor {
    return new Tensor(native.reshape(this.handle, dims(shape)));
  }
  permute(...order: Shape): Tensor {
    return new Tensor(native.permute(this.handle, dims(order)));
  }
  transpose(d0: number, d1: number): Tensor {
    return new Tensor(native.transpose(this.handle, d0, d1));
  }
  /** The last two dims swapped (PyTorch's `mT`). */
  get mT(): Tensor {
    return this.transpose(-2, -1);
  }
  expand(...shape: Shape): Tensor {
    return new Tensor(native.expand(this.handle, dims(shape)));
  }
  squeeze(dim?: number): Tensor {
    return new Tensor(native.squeeze(this.handle, dim));
  }
  unsqueeze(dim: number): Tensor {
    return new Tensor(native.unsqueeze(this.handle, dim));
  }
  flatten(start = 0, end = -1): Tensor {
    return new Tensor(native.flatten(this.handle, start, end));
  }
  narrow(dim: number, start: number, length: number): Tensor {
    return new Tensor(native.narrow(this.handle, dim, start, length));
  }
  select(dim: number, index: number): Tensor {
    return new Tensor(native.select(this.handle, dim, index));
  }
  /** Elements start..end (exclusive) with a step along dim, as `t[start:end:step]`. */
  slice(dim: number, start = 0, end = Number.MAX_SAFE_INTEGER, step = 1): Tensor {
    return new Tensor(native.slice(this.handle, dim, start, end, step));
  }
  indexSelect(dim: number, index: Tensor): Tensor {
    return new Tensor(native.indexSelect(this.handle, dim, index.handle));
  }
  gather(dim: number, index: Tensor): Tensor {
    return new Tensor(native.gather(this.handle, dim, index.handle));
  }
  /** Advanced indexing `t[i0, i1, ...]`; undefined keeps a dim whole, a bool tensor selects by mask. */
  index(...indices: Array<Tensor | undefined>): Tensor {
    return new Tensor(
      native.index(
        this.handle,
        indices.map((i) => i?.handle),
      ),
    );
  }
  split(sizes: number | number[], dim = 0): Tensor[] {
    return native.split(this.handle, sizes, dim).map((x) => new Tensor(x));
  }
  chunk(n: number, dim = 0): Tensor[] {
    return native.chunk(this.handle, n, dim).map((x) => new Tensor(x));
  }
  flip(...order: Shape): Tensor {
    return new Tensor(native.flip(this.handle, dims(order)));
  }
  repeat(...reps: Shape): Tensor {
    return new Tensor(native.repeat(this.handle, dims(reps)));
  }
  tril(k = 0): Tensor {
    return new Tensor(native.tril(this.handle, k));
  }
  triu(k = 0): Tensor {
    return new Tensor(native.triu(this.handle, k));
  }

  // -- in place (no new tensor; used by optimizers, initialisers and loading) --
  copy_(src: Tensor): this {
    native.copy_(this.handle, src.handle);
    return this;
  }
  zero_(): this {
    native.zero_(this.handle);
    return this;
  }
  clamp_(min?: number, max?: number): this {
    native.clamp_(this.handle, min, max);
    return this;
  }
  silu_(): this {
    native.silu_(this.handle);
    return this;
  }
  fill_(v: number | boolean): this {
    native.fill_(this.handle, v);
    return this;
  }
  mul_(o: Operand): this {
    native.mul_(this.handle, h(o));
    return this;
  }
  div_(o: Operand): this {
    native.div_(this.handle, h(o));
    return this;
  }
  add_(o: Operand, alpha = 1): this {
    native.add_(this.handle, h(o), alpha);
    return this;
  }
  addcmul_(a: Tensor, b: Tensor, value = 1): this {
    native.addcmul_(this.handle, a.handle, b.handle, value);
    return this;
  }
  addcdiv_(a: Tensor, b: Tensor, value = 1): this {
    native.addcdiv_(this.handle, a.handle, b.handle, value);
    return this;
  }
  normal_(mean = 0, std = 1): this {
    native.normal_(this.handle, mean, std);
    return this;
  }
  uniform_(lo = 0, hi = 1): this {
    native.uniform_(this.handle, lo, hi);
    return this;
  }
  maximum_(o: Tensor): this {
    native.maximum_(this.handle, o.handle);
    return this;
  }
}

// ---- creation ----

function finish(t: Tensor, opts: TensorOptions): Tensor {
  if (opts.requiresGrad) t.requiresGrad_(true);
  return t;
}

function arrayDtype(a: TypedArray): DType {
  if (a instanceof Float32Array) return 'float32';
  if (a instanceof Float64Array) return 'float64';
  if (a instanceof Int32Array) return 'int32';
  if (a instanceof BigInt64Array) return 'int64';
  return 'uint8';
}

function inferShape(data: NestedArray): number[] {
  const shape: number[] = [];
  let d: NestedArray = data;
  while (Array.isArray(d)) {
    shape.push(d.length);
    d = d[0] as NestedArray;
  }
  return shape;
}

// The staging tensor is ours alone, so free it at once rather than wait for the GC.
function converted(t: Tensor, dtype: DType, device?: Device): Tensor {
  const out = t.to({ dtype, device });
  t.dispose();
  return out;
}

/**
 * A tensor from nested arrays (shape inferred, ragged input rejected) or from a typed array with
 * `shape`. Numbers default to float32 and booleans to bool; pass `dtype` for anything else.
 */
export function tensor(data: NestedArray | TypedArray, opts: TensorOptions & { shape?: number[] } = {}): Tensor {
  if (ArrayBuffer.isView(data)) {
    const src = arrayDtype(data);
    const shape = opts.shape ?? [data.length];
    const t = new Tensor(native.fromBytes(data, src, shape));
    const want = opts.dtype ?? src;
    return finish(want === src && !opts.device ? t : converted(t, checkDtype(want), opts.device), opts);
  }
  const shape = inferShape(data);
  const flat = (Array.isArray(data) ? (data as unknown[]).flat(Infinity) : [data]) as Array<number | boolean>;
  const expected = shape.reduce((a, b) => a * b, 1);
  if (flat.length !== expected)
    throw new RangeError(
      `tensor(): ragged nested array (shape [${shape}] needs ${expected} values, got ${flat.length})`,
    );
  const isBool = flat.length > 0 && typeof flat[0] === 'boolean';
  const dtype = checkDtype(opts.dtype ?? (isBool ? 'bool' : 'float32'));
  const f64 = Float64Array.from(flat, Number);
  const t = new Tensor(native.fromBytes(f64, 'float64', shape));
  return finish(dtype === 'float64' && !opts.device ? t : converted(t, dtype, opts.device), opts);
}

export function zeros(shape: number[], opts: TensorOptions = {}): Tensor {
  return finish(new Tensor(native.zeros(shape, opts.dtype, opts.device)), opts);
}
export function ones(shape: number[], opts: TensorOptions = {}): Tensor {
  return finish(new Tensor(native.ones(shape, opts.dtype, opts.device)), opts);
}
export function empty(shape: number[], opts: TensorOptions = {}): Tensor {
  return finish(new Tensor(native.empty(shape, opts.dtype, opts.device)), opts);
}
export function full(shape: number[], value: number | boolean, opts: TensorOptions = {}): Tensor {
  return finish(new Tensor(native.full(shape, value, opts.dtype, opts.device)), opts);
}
/** arange(end) or arange(start, end, step); int64 unless a dtype is given, as PyTorch does for integers. */
export function arange(start: number, end?: number, step = 1, opts: TensorOptions = {}): Tensor {
  const [lo, hi] = end === undefined ? [0, start] : [start, end];
  const dtype =
    opts.dtype ?? (Number.isInteger(lo) && Number.isInteger(hi) && Number.isInteger(step) ? 'int64' : 'float32');
  return finish(new Tensor(native.arange(lo, hi, step, dtype, opts.device)), opts);
}
export function randn(shape: number[], opts: TensorOptions = {}): Tensor {
  return finish(new Tensor(native.randn(shape, opts.dtype, opts.device)), opts);
}
export function rand(shape: number[], opts: TensorOptions = {}): Tensor {
  return finish(new Tensor(native.rand(shape, opts.dtype, opts.device)), opts);
}
/** Integers uniformly in [low, high), int64. */
export function randint(low: number, high: number, shape: number[], opts: { device?: Device } = {}): Tensor {
  return new Tensor(native.randint(low, high, shape, 'int64', opts.device));
}
export function randperm(n: number, opts: { device?: Device } = {}): Tensor {
  return new Tensor(native.randperm(n, 'int64', opts.device));
}
/** Seeds libtorch's generators (CPU and CUDA). */
export function manualSeed(seed: number): void {
  native.manualSeed(seed);
}
export function zerosLike(t: Tensor): Tensor {
  return zeros(t.shape, { dtype: t.dtype, device: t.device });
}
export function onesLike(t: Tensor): Tensor {
  return ones(t.shape, { dtype: t.dtype, device: t.device });
}

// ---- functions of several tensors ----

export function cat(ts: Tensor[], dim = 0): Tensor {
  return new Tensor(
    native.cat(
      ts.map((t) => t.handle),
      dim,
    ),
  );
}
export function stack(ts: Tensor[], dim = 0): Tensor {
  return new Tensor(
    native.stack(
      ts.map((t) => t.handle),
      dim,
    ),
  );
}
export function where(cond: Tensor, a: Operand, b: Operand): Tensor {
  return new Tensor(native.where(cond.handle, h(a), h(b)));
}
export function einsum(equation: string, ...ts: Tensor[]): Tensor {
  return new Tensor(
    native.einsum(
      equation,
      ts.map((t) => t.handle),
    ),
  );
}
export function matmul(a: Tensor, b: Tensor): Tensor {
  return a.matmul(b);
}

// ---- runtime ----

export function setNumThreads(n: number): void {
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`setNumThreads: expected a positive integer, got ${n}`);
  native.setNumThreads(n);
}
export function getNumThreads(): number {
  return native.getNumThreads();
}
export function cudaIsAvailable(): boolean {
  return native.buildInfo().cuda;
}
/** libtorch's build, OpenBLAS's kernels and how they were chosen (blas.ts), oneDNN, threads, CUDA. */
export function buildInfo() {
  return { ...native.buildInfo(), blasChoice, oneDnnChoice, threads: native.getNumThreads() };
}
/** How many native tensor handles are alive (neither disposed nor collected): what a leak test watches. */
export function liveTensorCount(): number {
  return native.liveHandles();
}
