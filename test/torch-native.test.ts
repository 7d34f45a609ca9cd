// The op table has one source, OPS (src/torch/native.ts): the loader checks the addon's names and
// arities (native/src/ops.cc's rows) against it, and the addon holds each op to its arity.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { chooseOneDnn, native, OPS, opTableDifferences } from '../src/torch/native.js';
import { tensor } from '../src/torch/index.js';
import { packageRoot } from '../src/util/paths.js';

const arities = (): Record<string, number> =>
  Object.fromEntries(Object.entries(OPS).map(([name, row]) => [name, row.arity]));

test('the difference check names an op on one side only and an arity that differs', () => {
  assert.deepEqual(opTableDifferences(arities(), OPS), []);
  assert.deepEqual(opTableDifferences({ ...arities(), frobnicate: 1 }, OPS), ['frobnicate: in the addon, not in OPS']);
  const { liveHandles: _, ...less } = arities();
  assert.deepEqual(opTableDifferences(less, OPS), ['liveHandles: in OPS, not in the addon']);
  assert.deepEqual(opTableDifferences({ ...arities(), getNumThreads: 1 }, OPS), [
    'getNumThreads: the addon takes 1 argument(s), OPS 0',
  ]);
});

test("the built addon's table is OPS, and the addon refuses more arguments than an op's arity", () => {
  tensor([1]).dispose(); // the first op loads the addon (and checks its table: a mismatch throws here)
  const file = path.join(packageRoot(), 'native', 'build', 'Release', 'ous_torch.node');
  const addon = createRequire(import.meta.url)(file) as { opArities: Record<string, number> };
  assert.equal(Object.keys(addon.opArities).length, Object.keys(OPS).length);
  assert.deepEqual(opTableDifferences(addon.opArities, OPS), []);
  assert.equal(native.add, (addon as unknown as typeof native).add, 'after loading, native holds the addon functions');
  assert.throws(
    () => (native.getNumThreads as (...a: unknown[]) => number)(1),
    (e: Error) => e instanceof TypeError && e.message === 'getNumThreads takes at most 0 argument(s), got 1',
  );
});

test('oneDNN 3 is capped at AVX only where the CPU lists no cache sizes and the user set no cap', () => {
  const v2 = 'Build settings: ... oneDNN v2.6.3 (Git Hash ...)';
  const v3 = 'Build settings: ... oneDNN v3.7.2 (Git Hash N/A)';
  assert.deepEqual(chooseOneDnn(v2, false, {}), {}); // oneDNN 2 divides by no cache size
  assert.deepEqual(chooseOneDnn(v3, true, {}), {}); // caches listed: nothing to avoid
  const capped = chooseOneDnn(v3, false, {});
  assert.equal(capped.maxIsa, 'AVX');
  assert.match(capped.why!, /oneDNN v3 divides by the CPU's cache sizes/);
  assert.deepEqual(chooseOneDnn(v3, false, { ONEDNN_MAX_CPU_ISA: 'AVX2' }), {});
  assert.deepEqual(chooseOneDnn(v3, false, { DNNL_MAX_CPU_ISA: 'AVX2' }), {});
});
