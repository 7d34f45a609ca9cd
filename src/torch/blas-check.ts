// The numeric check of the BLAS kernels this process loaded: a float64 GEMM on odd-sized random
// matrices (partial tiles on every edge) against a naive triple loop. Run as a script, it prints
// {corename, ok, worst} as JSON: blas.ts runs it in a child with a candidate OPENBLAS_CORETYPE.
import { fileURLToPath } from 'node:url';
import { native } from './native.js';
import { tensor } from './tensor.js';
import { rng } from '../util/random.js';

/**
 * max over elements of |C - C_ref| / Σ_k |A_ik B_kj| for C = A·B in float64: a correct kernel
 * gives ~1e-16 (rounding); a wrong one gives O(1). ok when under `tol` (1e-10).
 */
export function checkGemm(m = 97, k = 203, n = 131, tol = 1e-10, seed = 1): { ok: boolean; worst: number } {
  const r = rng(seed);
  const a = Array.from({ length: m * k }, () => 2 * r() - 1);
  const b = Array.from({ length: k * n }, () => 2 * r() - 1);
  const A = tensor(new Float64Array(a), { shape: [m, k] });
  const B = tensor(new Float64Array(b), { shape: [k, n] });
  const C = A.matmul(B);
  const c = C.toFlatArray();
  for (const t of [A, B, C]) t.dispose();
  const worst = gemmError(a, b, c, m, k, n);
  return { ok: worst <= tol, worst };
}

/** max_ij |c_ij - Σ_k a_ik b_kj| / Σ_k |a_ik b_kj| for row-major a [m, k], b [k, n], c [m, n]; NaN gives Infinity. */
export function gemmError(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  c: ArrayLike<number>,
  m: number,
  k: number,
  n: number,
): number {
  let worst = 0;
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      let scale = 0;
      for (let p = 0; p < k; p++) {
        const v = a[i * k + p]! * b[p * n + j]!;
        s += v;
        scale += Math.abs(v);
      }
      const e = Math.abs(c[i * n + j]! - s) / (scale || 1);
      worst = Number.isNaN(e) ? Infinity : Math.max(worst, e);
    }
  }
  return worst;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  native.setNumThreads(1); // one thread: the check is of the kernel, not of threading
  process.stdout.write(JSON.stringify({ corename: native.buildInfo().blasCorename, ...checkGemm() }) + '\n');
}
