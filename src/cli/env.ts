// The environment variables of ours, read here at the CLI edge and passed down as options: no
// module under src/torch, src/data or below reads them. Each command reads the ones it needs when
// it starts (so a bad OUS_ENGINE stops only the commands that choose an engine); main.ts checks the
// thread count before anything else and applies it when a command runs (not for --help, which
// loads no libtorch). `ous serve` hands its workers the same policy
// explicitly (ServeOptions.engine; each worker's thread count is the server's).
//   OUS_ENGINE=auto|libtorch|onnxruntime  which engine runs CLIP's vision tower (encoder.ts)
//   OUS_ALLOW_SLOW_BF16=1                 --precision bf16 on a CPU without fast bf16 kernels
//   OUS_NUM_THREADS=N                     libtorch's (and onnxruntime's) threads; the cores by default
//   OUS_DEBUG=1                           the stack of user errors too (main.ts)
// The exception: the addon's loader (src/torch/native.ts, blas.ts) sets OpenMP's and OpenBLAS's own
// variables before libtorch loads, since those libraries read them only then.
import { ENGINE_PREFERENCES, type EnginePreference } from '../torch/onnxruntime.js';
import { setNumThreads } from '../torch/index.js';
import { UserError } from '../util/errors.js';
import { threadCount } from '../util/threads.js';

/** OUS_ENGINE ('auto' when unset or empty); any other value is a one-line UserError. */
export function enginePreference(env: NodeJS.ProcessEnv = process.env): EnginePreference {
  const want = env.OUS_ENGINE || 'auto';
  if (!(ENGINE_PREFERENCES as readonly string[]).includes(want))
    throw new UserError(`OUS_ENGINE must be auto, libtorch or onnxruntime, not '${want}'`);
  return want as EnginePreference;
}

/** OUS_ALLOW_SLOW_BF16=1. */
export function allowSlowBf16(env: NodeJS.ProcessEnv = process.env): boolean {
  return env.OUS_ALLOW_SLOW_BF16 === '1';
}

/** OUS_NUM_THREADS (checked: util/threads.ts), or undefined when unset or empty (libtorch then uses every core). */
export function numThreads(env: NodeJS.ProcessEnv = process.env): number | undefined {
  return env.OUS_NUM_THREADS?.trim() ? threadCount(env) : undefined;
}

/** Sets libtorch's thread count from OUS_NUM_THREADS, when it is set. */
export function applyThreads(env: NodeJS.ProcessEnv = process.env): void {
  const n = numThreads(env);
  if (n !== undefined) setNumThreads(n);
}
