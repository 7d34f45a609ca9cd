// Which shard of an extraction this process is: `--shard I/N` as given, or `--shard auto` from the
// scheduler that started it, so that one job script serves every task of an array:
//   Slurm job arrays (sbatch --array=A-B[:S]): SLURM_ARRAY_TASK_ID, with SLURM_ARRAY_TASK_COUNT or
//     SLURM_ARRAY_TASK_MIN/_MAX (and _STEP): shard (ID − MIN)/STEP + 1 of the array's task count;
//   Kubernetes Indexed Jobs: JOB_COMPLETION_INDEX (0-based); the count is the Job's completions,
//     which Kubernetes does not put in the environment: `--shard auto/N`.
// `auto/N` also checks a Slurm array has N tasks. Clip i belongs to shard (i mod N) + 1.
import { UserError } from '../util/errors.js';

export interface Shard {
  index: number; // 1-based
  count: number;
  from?: string; // the variables it was read from (auto)
}

function int(env: NodeJS.ProcessEnv, name: string): number | undefined {
  const v = env[name];
  if (v === undefined || v === '') return undefined;
  if (!/^\d+$/.test(v.trim())) throw new UserError(`--shard auto: ${name}=${v} is not a whole number`);
  return Number(v);
}

/** "I/N" -> {index, count}, with a clear error. */
export function parseShard(s: string): { index: number; count: number } {
  const m = /^(\d+)\/(\d+)$/.exec(s);
  const [index, count] = m ? [Number(m[1]), Number(m[2])] : [0, 0];
  if (!m || count < 1 || index < 1 || index > count)
    throw new UserError(`--shard must be I/N with 1 ≤ I ≤ N, not '${s}'`);
  return { index, count };
}

/** `I/N`, `auto` or `auto/N` -> the shard, reading the scheduler's variables for auto. */
export function resolveShard(spec: string, env: NodeJS.ProcessEnv = process.env): Shard {
  const m = /^auto(?:\/(\d+))?$/.exec(spec);
  if (!m) return parseShard(spec);
  const given = m[1] === undefined ? undefined : Number(m[1]);
  if (given !== undefined && given < 1) throw new UserError(`--shard auto/N needs N ≥ 1, not '${spec}'`);
  const check = (s: Shard): Shard => {
    if (given !== undefined && given !== s.count)
      throw new UserError(`--shard ${spec}: the scheduler says ${s.count} tasks (${s.from}), not ${given}`);
    if (s.index < 1 || s.index > s.count)
      throw new UserError(`--shard ${spec}: task ${s.index} of ${s.count} (${s.from}) is out of range`);
    return s;
  };
  const id = int(env, 'SLURM_ARRAY_TASK_ID');
  if (id !== undefined) {
    const min = int(env, 'SLURM_ARRAY_TASK_MIN') ?? 0;
    const max = int(env, 'SLURM_ARRAY_TASK_MAX');
    const step = int(env, 'SLURM_ARRAY_TASK_STEP') ?? 1;
    const count =
      int(env, 'SLURM_ARRAY_TASK_COUNT') ?? (max !== undefined ? Math.floor((max - min) / step) + 1 : given);
    if (count === undefined)
      throw new UserError(
        '--shard auto: SLURM_ARRAY_TASK_ID is set but neither ' +
          'SLURM_ARRAY_TASK_COUNT nor SLURM_ARRAY_TASK_MAX: give --shard auto/N',
      );
    if ((id - min) % step)
      throw new UserError(`--shard auto: SLURM_ARRAY_TASK_ID=${id} is not on the array's step ${step} from ${min}`);
    return check({ index: (id - min) / step + 1, count, from: `SLURM_ARRAY_TASK_ID=${id}` });
  }
  const k8s = int(env, 'JOB_COMPLETION_INDEX');
  if (k8s !== undefined) {
    if (given === undefined)
      throw new UserError(
        `--shard auto: JOB_COMPLETION_INDEX=${k8s} gives the index but not the count: ` +
          "use --shard auto/N with N the Job's completions",
      );
    return check({ index: k8s + 1, count: given, from: `JOB_COMPLETION_INDEX=${k8s}` });
  }
  throw new UserError(
    `--shard ${spec}: no scheduler index in the environment (SLURM_ARRAY_TASK_ID or JOB_COMPLETION_INDEX): ` +
      'run it as a Slurm array task or a Kubernetes Indexed Job, or give --shard I/N',
  );
}
