// OUS_NUM_THREADS: how many threads libtorch and OpenBLAS use. Checked, not coerced: coercing `0`,
// `-1` or `abc` to one thread would hide the mistake, and `1000` makes every start take a minute (a
// pool of a thousand spinning threads on a few cores). More threads than logical cores never helps; the
// limit is four times the cores, so that a setting copied from a bigger machine still runs.
import * as os from 'node:os';
import { UserError } from './errors.js';

/** The most threads OUS_NUM_THREADS may ask for on this machine. */
export const maxThreads = (): number => 4 * os.availableParallelism();

/**
 * The thread count OUS_NUM_THREADS asks for (plain decimal digits,
 * 1..4×cores), or the number of cores when unset or empty.
 */
export function threadCount(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env.OUS_NUM_THREADS;
  const max = maxThreads();
  if (raw === undefined || raw.trim() === '') return os.availableParallelism();
  const n = /^\s*\d+\s*$/.test(raw) ? Number(raw) : NaN;
  if (!Number.isSafeInteger(n) || n < 1 || n > max)
    throw new UserError(
      `OUS_NUM_THREADS must be a whole number from 1 to ${max} (four times this machine's logical cores), not '${raw}'`,
    );
  return n;
}
