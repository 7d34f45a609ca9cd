// cache.json validated when read (never cast): a cache from a newer OUS-TS, or a hand-edited or
// truncated one, is one error that names the file.
import { z } from 'zod';
import { readJsonAs } from '../util/fs.js';
import { PRECISIONS } from '../torch/index.js';
import type { CacheInfo } from './cache.js';
import { RecipeSchema } from '../streams/recipe.js';

export const CACHE_VERSION = 1;

export const CacheInfoSchema = z
  .object({
    version: z.literal(CACHE_VERSION),
    clip: z.object({ path: z.string().min(1), hash: z.string().min(1) }),
    precision: z.enum(PRECISIONS).optional(), // absent: fp32 (caches made before --precision)
    frames: z.number().int().positive(),
    scene: z.enum(['mask', 'full']),
    views: z.number().int().positive(),
    polarityLayer: z.number().int().min(0),
    dataset: z.string().min(1),
    fold: z.number().int().optional(),
    classNames: z.array(z.string().min(1)).min(1),
    polarityOfClass: z.array(z.number().int().min(0).max(2)).nullable(), // null: extracted with --no-polarity
    subject: z
      .union([z.enum(['largest', 'center']), z.tuple([z.number(), z.number(), z.number(), z.number()])])
      .optional(), // absent: main
    recipe: RecipeSchema.optional(), // absent: made before the recipe
    dims: z.object({
      frames: z.number().int().positive(),
      embed: z.number().int().positive(),
      visionWidth: z.number().int().positive(),
    }),
  })
  .passthrough()
  .superRefine((c, ctx) => {
    // Two classes of one name would train as one word in two prompts (a 100% "UAR" on nothing).
    const dup = c.classNames.find((n, i) => c.classNames.indexOf(n) !== i);
    if (dup !== undefined)
      ctx.addIssue({ code: 'custom', path: ['classNames'], message: `names the class '${dup}' more than once` });
    if (c.polarityOfClass && c.polarityOfClass.length !== c.classNames.length)
      ctx.addIssue({
        code: 'custom',
        path: ['polarityOfClass'],
        message: `has ${c.polarityOfClass.length} entries for ${c.classNames.length} classes`,
      });
  });

// The schema and the CacheInfo interface describe the same file.
const sameShape = (v: z.infer<typeof CacheInfoSchema>): CacheInfo => v;

/** Reads CACHE/cache.json, validated, with its version checked. */
export function readCacheInfo(file: string): CacheInfo {
  return sameShape(readJsonAs(file, CacheInfoSchema, 'feature cache description', CACHE_VERSION));
}
