// onnxruntime-node (an optional dependency) running graphs written by onnx.ts, fed and answering
// with our tensors. It runs the frozen CLIP vision tower in float32 on the CPU, where its kernels
// are faster than libtorch's (ARCHITECTURE.md, DECISIONS.md); everything that trains, and every
// other device or precision, stays on libtorch. Whether to use it is the caller's preference
// (the CLI reads it from OUS_ENGINE, src/cli/env.ts):
//   auto         onnxruntime where it is installed
//   libtorch     never (to compare, or to rule it out)
//   onnxruntime  required: an error where it is not installed
import { createRequire } from 'node:module';
import { Tensor, getNumThreads, tensor } from './tensor.js';
import { UserError } from '../util/errors.js';

type Ort = typeof import('onnxruntime-node');

export const ENGINE_PREFERENCES = ['auto', 'libtorch', 'onnxruntime'] as const;
export type EnginePreference = (typeof ENGINE_PREFERENCES)[number];

let loaded: { ort: Ort | null; why: string } | undefined;

/**
 * onnxruntime-node, or null with the reason (not installed, or the preference is libtorch).
 * Preferring onnxruntime without the package is a UserError.
 */
export function onnxRuntime(want: EnginePreference = 'auto'): { ort: Ort | null; why: string } {
  if (want === 'libtorch') return { ort: null, why: 'OUS_ENGINE=libtorch' };
  if (!loaded) {
    // Its telemetry (on by default in the Linux build) leaves an empty /tmp/mat-debug-<pid>.log per
    // process; it is read from the environment when the library loads, so set before it does.
    process.env.ORT_DISABLE_TELEMETRY ??= '1';
    try {
      loaded = { ort: createRequire(import.meta.url)('onnxruntime-node') as Ort, why: 'installed' };
    } catch (err) {
      loaded = { ort: null, why: `onnxruntime-node is not installed (${(err as Error).message.split('\n')[0]})` };
    }
  }
  if (want === 'onnxruntime' && !loaded.ort)
    throw new UserError(`OUS_ENGINE=onnxruntime: ${loaded.why}; install it (npm ci installs it) or unset OUS_ENGINE`);
  return loaded;
}

/** An onnxruntime session on the CPU with libtorch's thread count; inputs and outputs float32. */
export class OnnxSession {
  private constructor(
    private readonly ort: Ort,
    private readonly session: import('onnxruntime-node').InferenceSession,
  ) {}

  static async create(model: Uint8Array): Promise<OnnxSession> {
    const { ort, why } = onnxRuntime();
    if (!ort) throw new Error(`OnnxSession: ${why}`);
    const session = await ort.InferenceSession.create(model, {
      executionProviders: ['cpu'],
      intraOpNumThreads: getNumThreads(),
      interOpNumThreads: 1,
      graphOptimizationLevel: 'all',
    });
    return new OnnxSession(ort, session);
  }

  get version(): string {
    return this.ort.env.versions.common;
  }

  /**
   * float32 inputs (CPU tensors, copied; or arrays with their shape, not copied), float32 CPU
   * tensors out, named as in the graph.
   */
  async run(feeds: Record<string, Tensor | { data: Float32Array; shape: number[] }>): Promise<Record<string, Tensor>> {
    const input = (t: Tensor | { data: Float32Array; shape: number[] }) =>
      t instanceof Tensor
        ? new this.ort.Tensor('float32', t.toTypedArray() as Float32Array, t.shape)
        : new this.ort.Tensor('float32', t.data, t.shape);
    const inputs = Object.fromEntries(Object.entries(feeds).map(([k, t]) => [k, input(t)]));
    const out = await this.session.run(inputs);
    return Object.fromEntries(
      Object.entries(out).map(([k, v]) => [k, tensor(v.data as Float32Array, { shape: [...v.dims] })]),
    );
  }

  release(): Promise<void> {
    return this.session.release();
  }
}
