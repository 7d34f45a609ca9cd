// `--shard auto`: the shard read from each scheduler's variables, as Slurm and Kubernetes set them.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { resolveShard } from '../src/data/shard.js';

const at = (spec: string, env: Record<string, string>) => {
  const s = resolveShard(spec, env);
  return [s.index, s.count];
};

test('Slurm job arrays: SLURM_ARRAY_TASK_ID with _COUNT, or with _MIN/_MAX (and _STEP)', () => {
  // sbatch --array=0-7: tasks 0..7 are shards 1..8 of 8
  assert.deepEqual(
    at('auto', {
      SLURM_ARRAY_TASK_ID: '0',
      SLURM_ARRAY_TASK_COUNT: '8',
      SLURM_ARRAY_TASK_MIN: '0',
      SLURM_ARRAY_TASK_MAX: '7',
    }),
    [1, 8],
  );
  assert.deepEqual(at('auto', { SLURM_ARRAY_TASK_ID: '7', SLURM_ARRAY_TASK_COUNT: '8' }), [8, 8]);
  // --array=1-4 without _COUNT (older Slurm): from MIN/MAX
  assert.deepEqual(
    at('auto', { SLURM_ARRAY_TASK_ID: '3', SLURM_ARRAY_TASK_MIN: '1', SLURM_ARRAY_TASK_MAX: '4' }),
    [3, 4],
  );
  // --array=10-20:5 → tasks 10, 15, 20
  assert.deepEqual(
    at('auto', {
      SLURM_ARRAY_TASK_ID: '15',
      SLURM_ARRAY_TASK_MIN: '10',
      SLURM_ARRAY_TASK_MAX: '20',
      SLURM_ARRAY_TASK_STEP: '5',
    }),
    [2, 3],
  );
  assert.deepEqual(
    at('auto/4', { SLURM_ARRAY_TASK_ID: '3', SLURM_ARRAY_TASK_MIN: '1', SLURM_ARRAY_TASK_MAX: '4' }),
    [3, 4],
  );
  assert.throws(
    () => resolveShard('auto/5', { SLURM_ARRAY_TASK_ID: '3', SLURM_ARRAY_TASK_MIN: '1', SLURM_ARRAY_TASK_MAX: '4' }),
    /scheduler says 4 tasks/,
  );
  assert.throws(() => resolveShard('auto', { SLURM_ARRAY_TASK_ID: '3' }), /SLURM_ARRAY_TASK_COUNT/);
  assert.throws(
    () => resolveShard('auto', { SLURM_ARRAY_TASK_ID: 'x', SLURM_ARRAY_TASK_COUNT: '4' }),
    /SLURM_ARRAY_TASK_ID=x is not a whole number/,
  );
});

test('Kubernetes Indexed Jobs: JOB_COMPLETION_INDEX (0-based) with the count given as auto/N', () => {
  assert.deepEqual(at('auto/16', { JOB_COMPLETION_INDEX: '0' }), [1, 16]);
  assert.deepEqual(at('auto/16', { JOB_COMPLETION_INDEX: '15' }), [16, 16]);
  assert.throws(() => resolveShard('auto/16', { JOB_COMPLETION_INDEX: '16' }), /task 17 of 16/);
  assert.throws(() => resolveShard('auto', { JOB_COMPLETION_INDEX: '2' }), /--shard auto\/N/);
});

test('I/N as before; auto with no scheduler says what to do', () => {
  assert.deepEqual(at('2/3', { SLURM_ARRAY_TASK_ID: '0', SLURM_ARRAY_TASK_COUNT: '8' }), [2, 3]); // explicit wins
  assert.throws(() => resolveShard('auto', {}), /no scheduler index in the environment/);
  assert.throws(() => resolveShard('auto/0', { JOB_COMPLETION_INDEX: '0' }), /N ≥ 1/);
  assert.throws(() => resolveShard('4/3', {}), /--shard must be I\/N/);
});
