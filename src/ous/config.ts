// The OUS head's configuration (SPEC.md §4–§7): plain data, validated, every field with a default
// and a one-line meaning. A run saves the fully resolved config beside its checkpoint.
import { z } from 'zod';
import { UserError } from '../util/errors.js';
import { zodIssues } from '../util/fs.js';
import { DFEW_CLASSES, resolveClassSet } from '../data/classes.js';

export { POLARITIES } from '../data/classes.js';
const DFEW = resolveClassSet(DFEW_CLASSES);

export const OusConfig = z
  .object({
    model: z.enum(['ous', 'face-only']).default('ous'), // OUS, or the DFER-CLIP-like face-only baseline (SPEC.md §8)
    // words in the prompts, in label order (training takes them from the cache)
    classNames: z.array(z.string().min(1)).min(2).default(DFEW.classNames),
    // polarity label of each class (SPEC.md §1 choice; from the cache; null: none)
    polarityOfClass: z.array(z.number().int().min(0).max(2)).nullable().default(DFEW.polarityOfClass),
    // train the polarity head with L_pol (false: the ablation without polarity labels)
    polarity: z.boolean().default(true),
    frames: z.number().int().positive().default(16), // T, frames per clip
    framesLayers: z.number().int().positive().default(1), // Frames Encoder depth
    heads: z.number().int().positive().default(8), // attention heads of the Frames Encoder and the TFE
    scene: z.boolean().default(true), // use the scene stream (false: face features alone feed the TFE)
    // Type Fusion Encoder, or average pooling of its tokens (ablation "w/o TFE")
    fusion: z.enum(['tfe', 'avgpool']).default('tfe'),
    tfeLayers: z.number().int().positive().default(12), // L, TFE blocks
    tfeQueries: z.number().int().positive().default(16), // N_q, learnable queries shared by every block
    tfeResidual: z.boolean().default(false), // add residuals around attention and MLP (the paper's eqs. have none)
    promptLength: z.number().int().positive().default(64), // M, learned context vectors (the paper's, Table VI)
    promptPerClass: z.boolean().default(false), // one set of context vectors per class instead of one shared set
    tauCls: z.number().positive().default(0.01), // temperature of the prompt classifier
    tauNce: z.number().positive().default(0.07), // temperature of L_nce
    lambdaNce: z.number().min(0).default(1), // weight of L_nce in L_contrast
    loss: z.enum(['global', 'ce']).default('global'), // the α-switched multi-loss, or L_cls alone (ablation "L_ce")
    alpha: z.number().positive().default(2.0), // switch: back-propagate L_global while it exceeds α, else L_contrast
    // L_pol and L_nce over the batch: 'sum' as the paper's eqs. (1) and (3), or 'mean' (per clip, batch-size free)
    reduction: z.enum(['mean', 'sum']).default('sum'),
    // L_sim and L_nce also update the shared LSTM (false: as the paper lists what L_sim optimizes, the frame
    // encoder, linear and convolutional layers: the LSTM learns from L_cls and L_pol's path only)
    alignLstm: z.boolean().default(false),
    // (choice) the frozen features minus the training split's per-dimension mean, over its std (kept in the
    // checkpoint); off: SPEC
    standardize: z.boolean().default(false),
  })
  .strict()
  .superRefine((c, ctx) => {
    const dup = c.classNames.find((n, i) => c.classNames.indexOf(n) !== i);
    if (dup !== undefined)
      ctx.addIssue({ code: 'custom', path: ['classNames'], message: `names the class '${dup}' more than once` });
    if (c.polarityOfClass && c.polarityOfClass.length !== c.classNames.length)
      ctx.addIssue({
        code: 'custom',
        path: ['polarityOfClass'],
        message: `has ${c.polarityOfClass.length} entries for ${c.classNames.length} classes`,
      });
    if (c.polarity && !c.polarityOfClass)
      ctx.addIssue({
        code: 'custom',
        path: ['polarity'],
        message: 'needs polarity labels (polarityOfClass), and the classes have none',
      });
  });

export type OusConfig = z.infer<typeof OusConfig>;

/** The widths the head needs from the frozen encoder. */
export interface EncoderDims {
  embed: number; // E, CLIP's projection width (face_emb, scene_emb)
  visionWidth: number; // W, the vision tower's width (scene_low)
}

/** Validates a partial config (e.g. from a JSON file and --set overrides) and fills the defaults. */
export function resolveOusConfig(partial: unknown, source = 'config'): OusConfig {
  const r = OusConfig.safeParse(partial ?? {});
  if (!r.success) throw new UserError(`${source}: ${zodIssues(r.error)}`);
  return r.data;
}
