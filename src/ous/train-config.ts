// Training and selection (SPEC.md §7), as plain validated data with defaults and meanings.
import { z } from 'zod';
import { UserError } from '../util/errors.js';
import { zodIssues } from '../util/fs.js';
import { SEED_MAX } from '../util/limits.js';

export const TrainConfig = z
  .object({
    lr: z.number().positive().default(0.002), // Adam's initial learning rate
    beta1: z.number().min(0).max(1).default(0.9),
    beta2: z.number().min(0).max(1).default(0.999),
    batchSize: z.number().int().positive().default(16),
    epochs: z.number().int().positive().default(60), // at most this many epochs
    plateauFactor: z
      .number()
      .positive()
      .lt(1)
      .default(1 / 3), // ReduceLROnPlateau on the validation loss
    plateauPatience: z.number().int().min(0).default(5),
    minLr: z.number().positive().default(1e-7), // stop once the lr falls below this
    // stratified, seeded share of the training split used for validation
    valFraction: z.number().gt(0).lt(1).default(0.1),
    // (choice) validation, the checkpoint and the plateau rule see an exponential moving average of the weights
    // with this decay per step (optim.WeightAverage); null: off, the trained weights themselves (SPEC)
    emaDecay: z.number().min(0).lt(1).nullable().default(null),
    // the paper's overfitting rule (0.8), off by default
    stopTrainAcc: z.number().gt(0).max(1).nullable().default(null),
    // initialisation, data order and the validation split (32-bit)
    seed: z.number().int().min(0).max(SEED_MAX).default(0),
  })
  .strict();

export type TrainConfig = z.infer<typeof TrainConfig>;

export function resolveTrainConfig(partial: unknown, source = 'train config'): TrainConfig {
  const r = TrainConfig.safeParse(partial ?? {});
  if (!r.success) throw new UserError(`${source}: ${zodIssues(r.error)}`);
  return r.data;
}
