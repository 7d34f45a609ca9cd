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

/** The addon's exports: one function per row of native/src/ops.cc. */
export interface Native {
  fromBytes(bytes: ArrayBufferView, dtype: string, shape: number[], device?: string): H;
  fromFile(path: string, offset: number, dtype: string, shape: number[]): H;
  toBytes(t: H): Buffer;
  item(t: H): number;
  zeros(shape: number[], dtype?: string, device?: string): H;
  ones(shape: number[], dtype?: string, device?: string): H;
  empty(shape: number[], dtype?: string, device?: string): H;
  full(shape: number[], value: Num, dtype?: string, device?: string): H;
  arange(start: number, end: number, step: number, dtype?: string, device?: string): H;
  randn(shape: number[], dtype?: string, device?: string): H;
  rand(shape: number[], dtype?: string, device?: string): H;
  randint(low: number, high: number, shape: number[], dtype?: string, device?: string): H;
  randperm(n: number, dtype?: string, device?: string): H;
  manualSeed(seed: number): void;

  shape(t: H): number[];
  dtype(t: H): string;
  device(t: H): string;
  requiresGrad(t: H): boolean;
  isLeaf(t: H): boolean;
  free(t: H): void;
  isFreed(t: H): boolean;
  reportToGc(t: H): void;

  to(t: H, dtype: Opt<string>, device: Opt<string>): H;
  contiguous(t: H, memoryFormat?: 'channels_last'): H;
  clone(t: H): H;
  detach(t: H): H;

  setRequiresGrad(t: H, on: boolean): void;
  backward(t: H, grad: Opt<H>, retainGraph: boolean): void;
  grad(t: H): H | undefined;
  setGrad(t: H, g: Opt<H>): void;
  gradEnabled(): boolean;
  setGradEnabled(on: boolean): void;

  copy_(dst: H, src: H): void;
  zero_(t: H): void;
  clamp_(t: H, min: Opt<number>, max: Opt<number>): void;
  silu_(t: H): void;
  fill_(t: H, v: Num): void;
  mul_(t: H, o: HN): void;
  div_(t: H, o: HN): void;
  add_(t: H, o: HN, alpha?: number): void;
  addcmul_(t: H, a: H, b: H, value: number): void;
  addcdiv_(t: H, a: H, b: H, value: number): void;
  normal_(t: H, mean: number, std: number): void;
  uniform_(t: H, lo: number, hi: number): void;
  maximum_(t: H, o: H): void;

  reshape(t: H, shape: number[]): H;
  view(t: H, shape: number[]): H;
  permute(t: H, dims: number[]): H;
  transpose(t: H, d0: number, d1: number): H;
  cat(ts: H[], dim: number): H;
  stack(ts: H[], dim: number): H;
  split(t: H, sizes: number | number[], dim: number): H[];
  chunk(t: H, n: number, dim: number): H[];
  indexSelect(t: H, dim: number, index: H): H;
  gather(t: H, dim: number, index: H): H;
  index(t: H, indices: Array<H | undefined>): H;
  narrow(t: H, dim: number, start: number, length: number): H;
  select(t: H, dim: number, i: number): H;
  slice(t: H, dim: number, start: number, end: number, step: number): H;
  expand(t: H, shape: number[]): H;
  squeeze(t: H, dim?: number): H;
  unsqueeze(t: H, dim: number): H;
  flatten(t: H, start: number, end: number): H;
  flip(t: H, dims: number[]): H;
  repeat(t: H, reps: number[]): H;
  tril(t: H, k: number): H;
  triu(t: H, k: number): H;
  embedding(weight: H, ids: H): H;
  oneHot(t: H, n: number): H;

  add(a: H, b: HN): H;
  sub(a: H, b: HN): H;
  mul(a: H, b: HN): H;
  div(a: H, b: HN): H;
  pow(a: H, b: HN): H;
  eq(a: H, b: HN): H;
  ne(a: H, b: HN): H;
  lt(a: H, b: HN): H;
  le(a: H, b: HN): H;
  gt(a: H, b: HN): H;
  ge(a: H, b: HN): H;
  rsub(a: H, b: number): H;
  maximum(a: H, b: H): H;
  minimum(a: H, b: H): H;
  neg(t: H): H;
  exp(t: H): H;
  log(t: H): H;
  sqrt(t: H): H;
  rsqrt(t: H): H;
  abs(t: H): H;
  sin(t: H): H;
  cos(t: H): H;
  tanh(t: H): H;
  sigmoid(t: H): H;
  relu(t: H): H;
  silu(t: H): H;
  floor(t: H): H;
  isfinite(t: H): H;
  isnan(t: H): H;
  logicalNot(t: H): H;
  logicalAnd(a: H, b: H): H;
  logicalOr(a: H, b: H): H;
  gelu(t: H, approximate: string): H;
  clamp(t: H, lo: Opt<number>, hi: Opt<number>): H;
  where(cond: H, a: HN, b: HN): H;
  maskedFill(t: H, mask: H, v: Num): H;

  matmul(a: H, b: H): H;
  bmm(a: H, b: H): H;
  linear(x: H, w: H, b: Opt<H>): H;
  einsum(eq: string, ts: H[]): H;

  sum(t: H, dims?: number[], keepdim?: boolean): H;
  mean(t: H, dims?: number[], keepdim?: boolean): H;
  var(t: H, dims: number[], unbiased: boolean, keepdim: boolean): H;
  norm(t: H, p: number, dims: number[], keepdim: boolean): H;
  logsumexp(t: H, dims: number[], keepdim: boolean): H;
  max(t: H): H;
  min(t: H): H;
  maxDim(t: H, dim: number, keepdim: boolean): [H, H];
  minDim(t: H, dim: number, keepdim: boolean): [H, H];
  argmax(t: H, dim?: number, keepdim?: boolean): H;
  argmin(t: H, dim?: number, keepdim?: boolean): H;
  sort(t: H, dim: number, descending: boolean): [H, H];
  cumsum(t: H, dim: number): H;
  all(t: H): H;
  any(t: H): H;

  softmax(t: H, dim: number): H;
  logSoftmax(t: H, dim: number): H;
  layerNorm(x: H, shape: number[], w: Opt<H>, b: Opt<H>, eps: number): H;
  conv1d(x: H, w: H, b: Opt<H>, stride: number[], padding: number[], dilation: number[], groups: number): H;
  pad(x: H, pads: number[], value: number): H;
  conv2d(x: H, w: H, b: Opt<H>, stride: number[], padding: number[], dilation: number[], groups: number): H;
  lstm(
    x: H,
    hx: H[],
    params: H[],
    hasBiases: boolean,
    numLayers: number,
    dropout: number,
    train: boolean,
    bidirectional: boolean,
    batchFirst: boolean,
  ): [H, H, H];
  dropout(x: H, p: number, train: boolean): H;
  crossEntropy(logits: H, target: H, weight: Opt<H>, reduction: string, ignoreIndex: number, labelSmoothing: number): H;
  mseLoss(a: H, b: H, reduction: string): H;
  cosineSimilarity(a: H, b: H, dim: number, eps: number): H;

  setNumThreads(n: number): void;
  getNumThreads(): number;
  buildInfo(): BuildInfo;
  liveHandles(): number;
}

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

function load(): Native {
  if (process.env.OMP_WAIT_POLICY === undefined && process.env.GOMP_SPINCOUNT === undefined)
    Object.assign(process.env, OPENMP_ENV);
  const file = path.join(packageRoot(), 'native', 'build', 'Release', 'ous_torch.node');
  if (!fs.existsSync(file)) {
    throw new Error(
      `the libtorch addon is not built (${file} is missing). Run 'bash scripts/setup' ` +
        `(installs libtorch-dev and builds), or 'npm run build:native' if libtorch is already installed.`,
    );
  }
  blasChoice = chooseOpenBlasCoretype(file);
  try {
    const addon = createRequire(import.meta.url)(file) as Native;
    addon.setNumThreads(os.availableParallelism()); // the CLI applies OUS_NUM_THREADS (src/cli/env.ts)
    return addon;
  } catch (err) {
    throw new Error(
      `cannot load the libtorch addon ${file}: ${(err as Error).message}\n` +
        `Fixes: install the runtime (apt-get install libtorch-dev libopenblas0-pthread); if you built against ` +
        `LIBTORCH=<dir>, keep that folder in place; after changing libtorch, rebuild with 'npm run build:native'.`,
    );
  }
}

/** How OPENBLAS_CORETYPE was decided for this process (blas.ts). */
export let blasChoice: BlasChoice = { source: 'openblas' };
export const native: Native = load();
