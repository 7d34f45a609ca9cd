// Devices from user input: one check against what this libtorch build and machine have, so that a
// wrong --device fails at the flag, in one line, instead of deep inside libtorch.
import { UserError } from '../util/errors.js';
import { native } from './native.js';
import type { Device } from './tensor.js';

/**
 * 'cpu', 'cuda' or 'cuda:N' (N below the number of visible GPUs), else a UserError naming the flag.
 * `cuda` needs a libtorch built with CUDA (README: Another libtorch) and a GPU the driver sees.
 */
export function parseDevice(value: string, flag = '--device'): Device {
  if (value === 'cpu') return 'cpu';
  const m = /^cuda(?::(\d+))?$/.exec(value);
  if (!m) throw new UserError(`${flag} '${value}': expected cpu, cuda or cuda:N`);
  const info = native.buildInfo();
  if (!info.cuda)
    throw new UserError(
      `${flag} ${value}: this libtorch build has no CUDA (build against a CUDA ` +
        `libtorch with LIBTORCH=DIR npm run build:native), or use ${flag} cpu`,
    );
  if (info.cudaDevices === 0)
    throw new UserError(
      `${flag} ${value}: libtorch has CUDA but sees no GPU (driver, CUDA_VISIBLE_DEVICES); use ${flag} cpu`,
    );
  if (m[1] !== undefined && Number(m[1]) >= info.cudaDevices) {
    throw new UserError(
      `${flag} ${value}: there ` +
        (info.cudaDevices === 1
          ? 'is 1 GPU (cuda:0)'
          : `are ${info.cudaDevices} GPUs (cuda:0 to cuda:${info.cudaDevices - 1})`),
    );
  }
  return value as Device;
}

/** parseDevice for an optional flag: undefined stays undefined (the caller's default). */
export function parseOptionalDevice(value: string | undefined, flag = '--device'): Device | undefined {
  return value === undefined ? undefined : parseDevice(value, flag);
}
