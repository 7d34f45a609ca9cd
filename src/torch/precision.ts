// Compute precision from user input (--precision), checked against the device and the CPU before
// any weights are cast: a precision the hardware runs only in slow scalar loops is refused at the
// flag, in one line, instead of running for hours.
//   fp32  everywhere
//   bf16  CUDA; CPU only with AVX512_BF16 or AMX-BF16 (oneDNN's bf16 kernels). Elsewhere libtorch
//         falls back to scalar loops, many times slower than fp32: refused unless the caller allows it
//         (allowSlowBf16: the CLI's OUS_ALLOW_SLOW_BF16=1, read in src/cli/env.ts).
//   fp16  CUDA only (libtorch has no CPU fp16 LayerNorm or matmul kernels).
import { UsageError, UserError } from '../util/errors.js';
import { readCpuInfo, type CpuInfo } from './blas.js';
import type { Device, DType } from './tensor.js';

export const PRECISIONS = ['fp32', 'bf16', 'fp16'] as const;
export type Precision = (typeof PRECISIONS)[number];

const DTYPE_OF: Record<Precision, DType> = { fp32: 'float32', bf16: 'bfloat16', fp16: 'float16' };

/** The tensor dtype a precision computes in. */
export function precisionDtype(p: Precision): DType {
  return DTYPE_OF[p];
}

/** The CPU flags that give oneDNN fast bf16 kernels (/proc/cpuinfo names). */
export function cpuHasFastBf16(cpu: Pick<CpuInfo, 'flags'>): boolean {
  return cpu.flags.has('avx512_bf16') || cpu.flags.has('amx_bf16');
}

/**
 * 'fp32', 'bf16' or 'fp16' for a device: an unknown value is a usage error; a precision this
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
    throw new UsageError(`${flag} must be fp32, bf16 or fp16, not '${value}'`);
  const p = value as Precision;
  if (p === 'fp32' || device.startsWith('cuda')) return p;
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
