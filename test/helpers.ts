// Shared by the tests: where the fixtures are, and small numeric comparisons with useful messages.
import * as path from 'node:path';
import * as assert from 'node:assert/strict';
import { packageRoot } from '../src/util/paths.js';

export function fixture(...parts: string[]): string {
  return path.join(packageRoot(), 'fixtures', ...parts);
}

/** Asserts |a - b| <= atol + rtol·|b| elementwise, naming the worst element when it fails. */
export function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, opts: { atol?: number; rtol?: number; what?: string } = {}): void {
  const { atol = 1e-6, rtol = 0, what = 'values' } = opts;
  assert.equal(actual.length, expected.length, `${what}: length ${actual.length} != ${expected.length}`);
  let worst = -1;
  let worstExcess = 0;
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i]!;
    const b = expected[i]!;
    const excess = Math.abs(a - b) - (atol + rtol * Math.abs(b));
    if (!(excess <= 0) && (worst < 0 || !(excess <= worstExcess))) {
      worst = i;
      worstExcess = excess;
    }
  }
  if (worst >= 0) {
    assert.fail(`${what}: element ${worst} is ${actual[worst]}, expected ${expected[worst]} (atol ${atol}, rtol ${rtol})`);
  }
}
