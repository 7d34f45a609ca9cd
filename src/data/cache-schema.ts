// The feature cache's files as zod schemas, and their types inferred from them (one source for
// each): every file is validated when read, never cast, so that a cache from a newer OUS-TS, or a
// hand-edited or truncated file, is one error that names the file and the key.
import { z } from 'zod';
import { readJson, readJsonAs, zodIssues } from '../util/fs.js';
import { UserError } from '../util/errors.js';
import { PRECISIONS } from '../torch/index.js';
import { CropSchema, RecipeSchema } from '../streams/recipe.js';

export const CACHE_VERSION = 1;

const Split = z.enum(['train', 'test']);
export type Split = z.infer<typeof Split>;
const BoxTuple = z.tuple([z.number(), z.number(), z.number(), z.number()]); // [x, y, w, h]

/** Everything that changes the features: a cache made with other options is not reused. */
const CacheOptionsShape = {
  clip: z.object({ path: z.string().min(1), hash: z.string().min(1) }),
  precision: z.enum(PRECISIONS).optional(), // the vision tower's (--precision); absent: fp32 (caches before it)
  frames: z.number().int().positive(), // T
  scene: z.enum(['mask', 'full']),
  views: z.number().int().positive(), // augmented views stored per training clip (1 = the original only)
  polarityLayer: z.number().int().min(0), // k: scene_low is the mean over tokens of the residual stream after block k
  dataset: z.string().min(1), // dfew | ferv39k | mafw | manifest
  fold: z.number().int().optional(),
  classNames: z.array(z.string().min(1)).min(1), // the words the prompts use, in label order (classes.ts)
  polarityOfClass: z.array(z.number().int().min(0).max(2)).nullable(), // null: extracted with --no-polarity
  // which face a clip is about (--subject); absent: main
  subject: z.union([z.enum(['largest', 'center']), BoxTuple]).optional(),
};
const CacheOptionsSchema = z.object(CacheOptionsShape);
export type CacheOptions = z.infer<typeof CacheOptionsSchema>;

export const CacheInfoSchema = z
  .object({
    ...CacheOptionsShape,
    version: z.literal(CACHE_VERSION),
    recipe: RecipeSchema.optional(), // how the streams were made, as data (streams/recipe.ts); absent: made before it
    dims: z.object({
      frames: z.number().int().positive(),
      embed: z.number().int().positive(),
      visionWidth: z.number().int().positive(),
    }),
  })
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

export type CacheInfo = z.infer<typeof CacheInfoSchema>;

/** Reads CACHE/cache.json, validated, with its version checked. */
export function readCacheInfo(file: string): CacheInfo {
  return readJsonAs(file, CacheInfoSchema, 'feature cache description', CACHE_VERSION);
}

/** One clip of the cache (one view of it when views > 1): a part's metadata holds its clips' records. */
export const ClipRecordSchema = z.object({
  key: z.string().min(1), // unique in the cache: the clip's id, plus "#v<n>" for augmented views
  path: z.string(),
  label: z.number().int().min(0),
  polarity: z.number().int().min(0).max(2).nullable(), // null when the cache has no polarity labels
  split: Split,
  view: z.number().int().min(0), // 0 = the original
  faceMissing: z.boolean(),
  boxes: z.array(BoxTuple.nullable()), // face box per sampled frame, [x, y, w, h]
  // the chosen face track (-1: none) among the clip's tracks, by the cache's subject rule
  // (absent: made before --subject)
  subject: z.object({ track: z.number().int(), tracks: z.number().int().min(0) }).optional(),
  // the data set's face crop as a crop of the detector's box found in it (recipe.ts fitCrop): the
  // measurements training takes the median of, for the detector crop prediction uses
  shippedFit: CropSchema.optional(),
});
export type ClipRecord = z.infer<typeof ClipRecordSchema>;

/** A clip that failed to extract (failed-<shard>.json), or a listing's row that names no usable clip. */
export const FailedClipSchema = z.object({
  path: z.string(),
  error: z.string(),
  // the clip's id, only when its video is listed once per person (readers/common.ts personId): which person failed
  key: z.string().optional(),
});
export type FailedClip = z.infer<typeof FailedClipSchema>;

/** One clip (view) of the data set's current listing: what the index says about it. */
const ListedClipSchema = ClipRecordSchema.pick({
  key: true,
  path: true,
  label: true,
  polarity: true,
  split: true,
  view: true,
}).extend({ shard: z.string() });
export type ListedClip = z.infer<typeof ListedClipSchema>;

/** listing.json: every clip the data set lists now, in order, and the rows it rejected. */
export const ListingSchema = z.object({
  version: z.literal(1),
  shards: z.number().int().positive(), // N of the extraction that wrote it: clip i belongs to shard i mod N
  clips: z.array(ListedClipSchema),
  rejected: z.array(FailedClipSchema), // rows of the listing that name no usable clip (bad manifest rows)
});
export type Listing = z.infer<typeof ListingSchema>;

/** index.json, written by merge: what training reads. */
export const CacheIndexSchema = z.object({
  version: z.literal(2),
  listing: z.string(), // sha256 of listing.json when merged: a later extraction makes the index stale
  parts: z.array(z.string()),
  clips: z.array(ListedClipSchema.omit({ shard: true, view: true }).extend({ part: z.string() })),
  failed: z.array(FailedClipSchema),
  missing: z.array(z.string()), // listed keys in no part and not failed (merged with --allow-partial)
});
export type CacheIndex = z.infer<typeof CacheIndexSchema>;

export const readListingFile = (file: string): Listing => readJsonAs(file, ListingSchema, 'cache listing');
export const readFailedFile = (file: string): FailedClip[] =>
  readJsonAs(file, z.array(FailedClipSchema), 'list of failed clips');

/** index.json: one written by an older ous (another version) is told apart from a broken one. */
export function readIndexFile(file: string, older: string): CacheIndex {
  const json = readJson<unknown>(file);
  const version = json && typeof json === 'object' ? (json as { version?: unknown }).version : undefined;
  if (version !== 2) throw new UserError(`${file} was written by an older ous: ${older}`);
  const r = CacheIndexSchema.safeParse(json);
  if (!r.success) throw new UserError(`${file} is not a valid cache index: ${zodIssues(r.error)}`);
  return r.data;
}

/** A part's clip records (its safetensors metadata 'clips'), validated. */
export function parsePartRecords(file: string, meta: string | undefined): ClipRecord[] {
  if (!meta) throw new UserError(`${file} is not a part of a feature cache (no clip records)`);
  let json: unknown;
  try {
    json = JSON.parse(meta);
  } catch (err) {
    throw new UserError(`${file}: its clip records (metadata 'clips') are not valid JSON: ${(err as Error).message}`);
  }
  const r = z.array(ClipRecordSchema).safeParse(json);
  if (!r.success)
    throw new UserError(`${file}: its clip records (metadata 'clips') are not valid: ${zodIssues(r.error)}`);
  return r.data;
}
