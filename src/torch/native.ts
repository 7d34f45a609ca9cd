// Loads the libtorch addon (native/) and types its operation table. Only src/torch uses this file;
// everything else goes through Tensor.
import { createRequire } from 'node:module';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { packageRoot } from '../util/paths.js';
import { chooseOpenBlasCoretype, type BlasChoice } from './blas.js';

/** An opaque reference to one native tensor (a BigInt slot id, see native/src/addon.h). */
export type Handle = bigint & { readonly __tensorHandle: unique symbol };
type H = Handle;
type Opt<T> = T | undefined;
type Num = number | boolean;
type HN = H | Num;

export interface BuildInfo {
  torchVersion: string;
  cuda: boolean;
  cudaDevices: number;
  parallel: string;
  blasCorename: string; // OpenBLAS's kernels (openblas_get_corename); '' when the BLAS is not OpenBLAS
  blasConfig: string; // openblas_get_config: version and build options
  mkldnn: boolean; // oneDNN compiled in (at::hasMKLDNN)
  config: string; // at::show_config(): libtorch's build flags
}

/**
 * One row of the op table: the op's signature, for the compiler, and its arity (the number of
 * arguments it takes, optional ones included), which the compiler checks against the signature and
 * the loader against the addon's own row.
 */
interface Op<F> {
  readonly arity: number;
  readonly signature?: F;
}
const op = <F extends (...args: never[]) => unknown>(arity: Required<Parameters<F>>['length']): Op<F> => ({ arity });
const unary = op<(t: H) => H>(1);
const binary = op<(a: H, b: HN) => H>(2);

/**
 * The addon's ops: one row per row of native/src/ops.cc's table, in its order. The one list of
 * them on this side: `Native` is derived from it, `native`'s functions are made from it, and the
 * loader checks the addon's names and arities against it.
 */
export const OPS = {
  fromBytes: op<(bytes: ArrayBufferView, dtype: string, shape: number[], device?: string) => H>(4),
  fromFile: op<(path: string, offset: number, dtype: string, shape: number[]) => H>(4),
  toBytes: op<(t: H) => Buffer>(1),
  item: op<(t: H) => number>(1),
  zeros: op<(shape: number[], dtype?: string, device?: string) => H>(3),
  ones: op<(shape: number[], dtype?: string, device?: string) => H>(3),
  empty: op<(shape: number[], dtype?: string, device?: string) => H>(3),
  full: op<(shape: number[], value: Num, dtype?: string, device?: string) => H>(4),
  arange: op<(start: number, end: number, step: number, dtype?: string, device?: string) => H>(5),
  randn: op<(shape: number[], dtype?: string, device?: string) => H>(3),
  rand: op<(shape: number[], dtype?: string, device?: string) => H>(3),
  randint: op<(low: number, high: number, shape: number[], dtype?: string, device?: string) => H>(5),
  randperm: op<(n: number, dtype?: string, device?: string) => H>(3),
  manualSeed: op<(seed: number) => void>(1),

  shape: op<(t: H) => number[]>(1),
  dtype: op<(t: H) => string>(1),
  device: op<(t: H) => string>(1),
  requiresGrad: op<(t: H) => boolean>(1),
  isLeaf: op<(t: H) => boolean>(1),
  free: op<(t: H) => void>(1),
  isFreed: op<(t: H) => boolean>(1),
  reportToGc: op<(t: H) => void>(1),

  to: op<(t: H, dtype: Opt<string>, device: Opt<string>) => H>(3),
  contiguous: op<(t: H, memoryFormat?: 'channels_last') => H>(2),
  clone: unary,
  detach: unary,

  setRequiresGrad: op<(t: H, on: boolean) => void>(2),
  backward: op<(t: H, grad: Opt<H>, retainGraph: boolean) => void>(3),
  grad: op<(t: H) => H | undefined>(1),
  setGrad: op<(t: H, g: Opt<H>) => void>(2),
  gradEnabled: op<() => boolean>(0),
  setGradEnabled: op<(on: boolean) => void>(1),

  copy_: op<(dst: H, src: H) => void>(2),
  zero_: op<(t: H) => void>(1),
  clamp_: op<(t: H, min: Opt<number>, max: Opt<number>) => void>(3),
  silu_: op<(t: H) => void>(1),
  fill_: op<(t: H, v: Num) => void>(2),
  mul_: op<(t: H, o: HN) => void>(2),
  div_: op<(t: H, o: HN) => void>(2),
  add_: op<(t: H, o: HN, alpha?: number) => void>(3),
  addcmul_: op<(t: H, a: H, b: H, value: number) => void>(4),
  addcdiv_: op<(t: H, a: H, b: H, value: number) => void>(4),
  normal_: op<(t: H, mean: number, std: number) => void>(3),
  uniform_: op<(t: H, lo: number, hi: number) => void>(3),
  maximum_: op<(t: H, o: H) => void>(2),

  reshape: op<(t: H, shape: number[]) => H>(2),
  view: op<(t: H, shape: number[]) => H>(2),
  permute: op<(t: H, dims: number[]) => H>(2),
  transpose: op<(t: H, d0: number, d1: number) => H>(3),
  cat: op<(ts: H[], dim: number) => H>(2),
  stack: op<(ts: H[], dim: number) => H>(2),
  split: op<(t: H, sizes: number | number[], dim: number) => H[]>(3),
  chunk: op<(t: H, n: number, dim: number) => H[]>(3),
  indexSelect: op<(t: H, dim: number, index: H) => H>(3),
  gather: op<(t: H, dim: number, index: H) => H>(3),
  index: op<(t: H, indices: Array<H | undefined>) => H>(2),
  narrow: op<(t: H, dim: number, start: number, length: number) => H>(4),
  select: op<(t: H, dim: number, i: number) => H>(3),
  slice: op<(t: H, dim: number, start: number, end: number, step: number) => H>(5),
  expand: op<(t: H, shape: number[]) => H>(2),
  squeeze: op<(t: H, dim?: number) => H>(2),
  unsqueeze: op<(t: H, dim: number) => H>(2),
  flatten: op<(t: H, start: number, end: number) => H>(3),
  flip: op<(t: H, dims: number[]) => H>(2),
  repeat: op<(t: H, reps: number[]) => H>(2),
  tril: op<(t: H, k: number) => H>(2),
  triu: op<(t: H, k: number) => H>(2),
  embedding: op<(weight: H, ids: H) => H>(2),
  oneHot: op<(t: H, n: number) => H>(2),

  add: binary,
  sub: binary,
  mul: binary,
  div: binary,
  pow: binary,
  eq: binary,
  ne: binary,
  lt: binary,
  le: binary,
  gt: binary,
  ge: binary,
  rsub: op<(a: H, b: number) => H>(2),
  maximum: op<(a: H, b: H) => H>(2),
  minimum: op<(a: H, b: H) => H>(2),
  neg: unary,
  exp: unary,
  log: unary,
  sqrt: unary,
  rsqrt: unary,
  abs: unary,
  sin: unary,
  cos: unary,
  tanh: unary,
  sigmoid: unary,
  relu: unary,
  silu: unary,
  floor: unary,
  isfinite: unary,
  isnan: unary,
  logicalNot: unary,
  logicalAnd: op<(a: H, b: H) => H>(2),
  logicalOr: op<(a: H, b: H) => H>(2),
  gelu: op<(t: H, approximate: string) => H>(2),
  clamp: op<(t: H, lo: Opt<number>, hi: Opt<number>) => H>(3),
  where: op<(cond: H, a: HN, b: HN) => H>(3),
  maskedFill: op<(t: H, mask: H, v: Num) => H>(3),

  matmul: op<(a: H, b: H) => H>(2),
  bmm: op<(a: H, b: H) => H>(2),
  linear: op<(x: H, w: H, b: Opt<H>) => H>(3),
  einsum: op<(eq: string, ts: H[]) => H>(2),

  sum: op<(t: H, dims?: number[], keepdim?: boolean) => H>(3),
  mean: op<(t: H, dims?: number[], keepdim?: boolean) => H>(3),
  var: op<(t: H, dims: number[], unbiased: boolean, keepdim: boolean) => H>(4),
  norm: op<(t: H, p: number, dims: number[], keepdim: boolean) => H>(4),
  logsumexp: op<(t: H, dims: number[], keepdim: boolean) => H>(3),
  max: unary,
  min: unary,
  maxDim: op<(t: H, dim: number, keepdim: boolean) => [H, H]>(3),
  minDim: op<(t: H, dim: number, keepdim: boolean) => [H, H]>(3),
  argmax: op<(t: H, dim?: number, keepdim?: boolean) => H>(3),
  argmin: op<(t: H, dim?: number, keepdim?: boolean) => H>(3),
  sort: op<(t: H, dim: number, descending: boolean) => [H, H]>(3),
  cumsum: op<(t: H, dim: number) => H>(2),
  all: unary,
  any: unary,

  softmax: op<(t: H, dim: number) => H>(2),
  logSoftmax: op<(t: H, dim: number) => H>(2),
  layerNorm: op<(x: H, shape: number[], w: Opt<H>, b: Opt<H>, eps: number) => H>(5),
  conv1d: op<(x: H, w: H, b: Opt<H>, stride: number[], padding: number[], dilation: number[], groups: number) => H>(7),
  pad: op<(x: H, pads: number[], value: number) => H>(3),
  conv2d: op<(x: H, w: H, b: Opt<H>, stride: number[], padding: number[], dilation: number[], groups: number) => H>(7),
  lstm: op<
    (
      x: H,
      hx: H[],
      params: H[],
      hasBiases: boolean,
      numLayers: number,
      dropout: number,
      train: boolean,
      bidirectional: boolean,
      batchFirst: boolean,
    ) => [H, H, H]
  >(9),
  dropout: op<(x: H, p: number, train: boolean) => H>(3),
  crossEntropy:
    op<(logits: H, target: H, weight: Opt<H>, reduction: string, ignoreIndex: number, labelSmoothing: number) => H>(6),
  mseLoss: op<(a: H, b: H, reduction: string) => H>(3),
  cosineSimilarity: op<(a: H, b: H, dim: number, eps: number) => H>(4),

  setNumThreads: op<(n: number) => void>(1),
  getNumThreads: op<() => number>(0),
  buildInfo: op<() => BuildInfo>(0),
  liveHandles: op<() => number>(0),
};

/** The addon's functions, typed by OPS. */
export type Native = { [K in keyof typeof OPS]: (typeof OPS)[K] extends Op<infer F> ? F : never };

/**
 * libgomp's wait policy, read once when libtorch loads it. Its default (threads spin ~300k
 * iterations between parallel regions) was measured to starve OpenBLAS's threads on 2-core
 * machines, 2× slower (ARCHITECTURE.md); fully passive threads sleep at once, so every parallel
 * elementwise op pays a futex wake-up: 3× slower at half a million floats (~130 vs ~40 µs an
 * `add_`). A short spin (1000 iterations, some µs) keeps them awake through a chain of small ops
 * and takes nothing measurable from a GEMM. Applied only where the user set no policy.
 */
const OPENMP_ENV = { OMP_WAIT_POLICY: 'PASSIVE', GOMP_SPINCOUNT: '1000' } as const;

// The one place under src/torch that touches the environment (with blas.ts's OPENBLAS_CORETYPE):
// OpenMP and OpenBLAS read their variables once, when libtorch loads, so the loader must set them
// here, before that. None of them is ours; ours (OUS_ENGINE, OUS_NUM_THREADS, ...) are read at the
// CLI edge (src/cli/env.ts) and passed down.

/** The addon's table (name → arity, its `opArities`) against OPS: every difference, one line each. */
export function opTableDifferences(addon: Record<string, number>, ours: Record<string, Op<unknown>>): string[] {
  const out: string[] = [];
  for (const name of Object.keys(addon)) if (!(name in ours)) out.push(`${name}: in the addon, not in OPS`);
  for (const [name, { arity }] of Object.entries(ours)) {
    const n = addon[name];
    if (n === undefined) out.push(`${name}: in OPS, not in the addon`);
    else if (n !== arity) out.push(`${name}: the addon takes ${n} argument(s), OPS ${arity}`);
  }
  return out;
}

function addonFile(): string {
  const file = path.join(packageRoot(), 'native', 'build', 'Release', 'ous_torch.node');
  if (fs.existsSync(file)) return file;
  throw new Error(
    `the libtorch addon is not built (${file} is missing). Run 'bash scripts/setup' ` +
      `(installs libtorch-dev and builds), or 'npm run build:native' if libtorch is already installed.`,
  );
}

/** Loads the addon (setting OpenMP's and OpenBLAS's variables first) and checks its table against OPS. */
function load(): Native {
  if (process.env.OMP_WAIT_POLICY === undefined && process.env.GOMP_SPINCOUNT === undefined)
    Object.assign(process.env, OPENMP_ENV);
  const file = addonFile();
  blasChoice = chooseOpenBlasCoretype(file);
  let addon: Native & { opArities?: Record<string, number> };
  try {
    addon = createRequire(import.meta.url)(file);
  } catch (err) {
    throw new Error(
      `cannot load the libtorch addon ${file}: ${(err as Error).message}\n` +
        `Fixes: install the runtime (apt-get install libtorch-dev libopenblas0-pthread); if you built against ` +
        `LIBTORCH=<dir>, keep that folder in place; after changing libtorch, rebuild with 'npm run build:native'.`,
    );
  }
  const differences = opTableDifferences(addon.opArities ?? {}, OPS);
  if (differences.length)
    throw new Error(
      `the libtorch addon ${file} does not match src/torch/native.ts's OPS (${differences.slice(0, 5).join('; ')}` +
        `${differences.length > 5 ? `; ${differences.length - 5} more` : ''}): rebuild it with 'npm run build:native'`,
    );
  addon.setNumThreads(os.availableParallelism()); // the CLI applies OUS_NUM_THREADS (src/cli/env.ts)
  oneDnnChoice = chooseOneDnn(addon.buildInfo().config);
  // oneDNN reads its variable at its first primitive, which comes after this (a convolution, a bf16 GEMM).
  if (oneDnnChoice.maxIsa) process.env.ONEDNN_MAX_CPU_ISA = oneDnnChoice.maxIsa;
  return addon;
}

/** The instruction sets oneDNN may use in this process, and why they are capped; set when the addon loads. */
export let oneDnnChoice: { maxIsa?: string; why?: string } = {};

/**
 * oneDNN 3 (Debian 13's libtorch 2.6) sizes the blocks of its AVX2 and AVX-512 convolutions by the
 * CPU's cache sizes and divides by them: on a CPU that reports none (some virtual machines; Linux then
 * lists no /sys/devices/system/cpu/cpu0/cache either) every convolution dies with SIGFPE. There oneDNN
 * is capped at AVX, whose kernels need no cache size (measured: the face finder then runs at about half
 * its AVX-512 speed; libtorch's own kernels without oneDNN were 10x slower). oneDNN 2 (Debian 12)
 * does not divide by them. A user's own ONEDNN_MAX_CPU_ISA (or DNNL_MAX_CPU_ISA) is left alone.
 */
export function chooseOneDnn(
  config: string,
  cachesListed = fs.existsSync('/sys/devices/system/cpu/cpu0/cache/index0/size'),
  env: NodeJS.ProcessEnv = process.env,
): { maxIsa?: string; why?: string } {
  const major = Number(/(?:MKL-DNN|oneDNN) v(\d+)/.exec(config)?.[1] ?? 0);
  if (major < 3 || cachesListed || env.ONEDNN_MAX_CPU_ISA !== undefined || env.DNNL_MAX_CPU_ISA !== undefined)
    return {};
  return { maxIsa: 'AVX', why: `oneDNN v${major} divides by the CPU's cache sizes, and this CPU reports none` };
}

/** How OPENBLAS_CORETYPE was decided for this process (blas.ts); set when the addon loads. */
export let blasChoice: BlasChoice = { source: 'openblas' };

/**
 * The addon's functions. Importing this file loads nothing: each function starts as a stub that
 * loads the addon (libtorch, OpenBLAS, the BLAS check's child process: about a second) on the first
 * call of any op and then puts the addon's own functions in place, so later calls go straight to C++.
 * `ous --help` and programs that never touch a tensor never pay for it.
 */
export const native = Object.fromEntries(
  Object.keys(OPS).map((name) => [
    name,
    (...args: unknown[]) => {
      loadOnce();
      return (native[name as keyof Native] as (...a: unknown[]) => unknown)(...args);
    },
  ]),
) as Native;

let loaded = false;
function loadOnce(): void {
  if (loaded) return;
  const addon = load();
  for (const name of Object.keys(OPS) as Array<keyof Native>) (native as Record<string, unknown>)[name] = addon[name];
  loaded = true;
}
