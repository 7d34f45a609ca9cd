// Compute precision from user input (--precision), checked against the device and the CPU before
// any weights are cast: a precision the hardware runs only in slow scalar loops is refused at the
// flag, in one line, instead of running for hours.
//   fp32  everywhere
//   bf16  CUDA; CPU only with AVX512_BF16 or AMX-BF16 (oneDNN's bf16 kernels). Elsewhere libtorch
//         falls back to scalar loops, many times slower than fp32: refused unless the caller allows it
//         (allowSlowBf16: the CLI's OUS_ALLOW_SLOW_BF16=1, read in src/cli/env.ts).
//   fp16  CUDA only (libtorch has no CPU fp16 LayerNorm or matmul kernels).
//   int8  the CPU only, on onnxruntime (its integer MatMul kernels; clip/onnx.ts writes the graph,
//         clip/frame-encoder.ts refuses it without onnxruntime-node). The libtorch weights stay float32.
import { UsageError, UserError } from '../util/errors.js';
import { readCpuInfo, type CpuInfo } from './blas.js';
import type { Device, DType } from './tensor.js';

export const PRECISIONS = ['fp32', 'bf16', 'fp16', 'int8'] as const;
export type Precision = (typeof PRECISIONS)[number];

// int8: the libtorch module keeps float32 weights; only the ONNX graph holds int8 ones
const DTYPE_OF: Record<Precision, DType> = { fp32: 'float32', bf16: 'bfloat16', fp16: 'float16', int8: 'float32' };

/** The tensor dtype the libtorch vision tower holds its weights in at a precision. */
export function precisionDtype(p: Precision): DType {
  return DTYPE_OF[p];
}

/** The CPU flags that give oneDNN fast bf16 kernels (/proc/cpuinfo names). */
export function cpuHasFastBf16(cpu: Pick<CpuInfo, 'flags'>): boolean {
  return cpu.flags.has('avx512_bf16') || cpu.flags.has('amx_bf16');
}

/**
 * The CPU flags of VNNI (vpdpbusd: u8×s8 products summed in int32). Without them x86's u8×s8 path is
 * vpmaddubsw, whose pairwise sums saturate int16 with 8-bit weights: int8 weights get 7 bits there,
 * as onnxruntime's reduce_range does for the same reason.
 */
export function cpuHasVnni(cpu: Pick<CpuInfo, 'flags'>): boolean {
  return ['avx512_vnni', 'avx_vnni', 'amx_int8'].some((f) => cpu.flags.has(f));
}

/**
 * 'fp32', 'bf16', 'fp16' or 'int8' for a device: an unknown value is a usage error; a precision this
 * device runs slowly or not at all is a UserError naming the flag, what is lacking and the fix.
 * `allowSlowBf16` runs bf16 on a CPU without fast kernels all the same.
 */
export function parsePrecision(
  value: string,
  device: Device,
  o: { flag?: string; cpu?: Pick<CpuInfo, 'model' | 'flags'>; allowSlowBf16?: boolean } = {},
): Precision {
  const flag = o.flag ?? '--precision';
  if (!(PRECISIONS as readonly string[]).includes(value))
    throw new UsageError(`${flag} must be fp32, bf16, fp16 or int8, not '${value}'`);
  const p = value as Precision;
  if (p === 'int8' && device !== 'cpu')
    throw new UserError(`${flag} int8 runs on the CPU only (onnxruntime's integer kernels), not on ${device}`);
  if (p === 'fp32' || p === 'int8' || device.startsWith('cuda')) return p;
  if (p === 'fp16')
    throw new UserError(
      `${flag} fp16 runs on CUDA only (libtorch has no CPU fp16 kernels), not on ${device}: use ${flag} fp32`,
    );
  const cpu = o.cpu ?? readCpuInfo();
  if (cpuHasFastBf16(cpu) || o.allowSlowBf16) return p;
  throw new UserError(
    `${flag} bf16: this CPU (${cpu.model}) has no AVX512_BF16 or AMX, so libtorch would run ` +
      `bf16 in slow scalar loops: use ${flag} fp32 (or set OUS_ALLOW_SLOW_BF16=1 to run it anyway)`,
  );
}

/**
 * One line when a run's features were made at `trained` (absent: fp32, runs from before) and the
 * tower now runs at `now`, else undefined: not an error, the embeddings differ only slightly.
 */
export function precisionMismatch(trained: Precision | undefined, now: Precision): string | undefined {
  const was = trained ?? 'fp32';
  if (was === now) return undefined;
  return (
    `the run was trained on ${was} features and CLIP's vision tower runs in ${now} here ` +
    `(embeddings differ slightly; --precision ${was} matches the training)`
  );
}
