// The stream recipe: everything that decides what a clip's face and scene streams are, as data.
// `ous extract` writes it into cache.json, `ous train` copies it into the run's config.json, and
// `ous predict`, `ous serve` and the per-person timelines build their streams from it
// (streams/index.ts), so that a run predicts on the streams it was trained on.
import { z } from 'zod';
import type { Box } from '../face/detector.js';
import { SUBJECT_RULES, squareBox, type SubjectRule } from '../face/tracks.js';

export const RECIPE_VERSION = 1;

/** The vision tower's precisions a recipe may name (int8: the tower's Linears as onnxruntime's integer products). */
export const RECIPE_PRECISIONS = ['fp32', 'bf16', 'fp16', 'int8'] as const;

const BoxSchema = z.tuple([z.number(), z.number(), z.number(), z.number()]);

/** Which face a clip is about (face/tracks.ts subjectTrack). */
export const SubjectRuleSchema: z.ZodType<SubjectRule> = z.union([z.enum(SUBJECT_RULES), BoxSchema]);
export type { SubjectRule };

/** A face crop around a face box: a square centred on the box (moved by `shift`), black past the frame's edge. */
export const CropSchema = z
  .object({
    shape: z.literal('square'),
    enlarge: z.number().min(-0.9).max(10), // side = the box's longer side × (1 + enlarge)
    shift: z.tuple([z.number(), z.number()]), // the square's centre = the box's centre + shift × side (x right, y down)
    padding: z.literal('black'),
  })
  .strict();
export type Crop = z.infer<typeof CropSchema>;

/** The crop the detector path has always made: the longer side × 1.25, centred (SPEC.md §2). */
export const DEFAULT_CROP: Crop = { shape: 'square', enlarge: 0.25, shift: [0, 0], padding: 'black' };

export const RecipeSchema = z
  .object({
    version: z.literal(RECIPE_VERSION),
    frames: z.number().int().positive(), // T
    // The evaluated clip: T segment middles over the whole clip (SPEC.md §2); a longer video at
    // prediction: windows of T frames sampled the same way over each window (predict/timeline.ts).
    sampling: z.literal('segment-middles'),
    subject: SubjectRuleSchema,
    face: z
      .object({
        // detector: SSD boxes linked into tracks; known-box: a manifest's box on every frame;
        // dataset-crops: the data set's own face crops (DFEW's clip_224x224) where it ships them
        source: z.enum(['detector', 'known-box', 'dataset-crops']),
        // dataset-crops only: the detector crop that matches the data set's crops best, measured on
        // the training clips' crops (the crops cannot exist at prediction); absent: not measured
        matched: z.object({ clips: z.number().int().positive(), crop: CropSchema }).strict().optional(),
      })
      .strict(),
    crop: CropSchema, // the detector's crop at extraction
    scene: z.enum(['mask', 'full']), // the face's crop square filled with CLIP's mean colour, or the frame whole
    processor: z
      .object({ resize: z.number().int().positive(), crop: z.number().int().positive() }) // shorter side, centre crop
      .strict(),
    polarityLayer: z.number().int().min(0), // k
    clipHash: z.string().min(1),
    classNames: z.array(z.string().min(1)).min(1),
    precision: z.enum(RECIPE_PRECISIONS).default('fp32'), // the vision tower's
  })
  .strict();
export type Recipe = z.infer<typeof RecipeSchema>;

/** The crop square around a face box. */
export const cropSquare = (box: Box, crop: Crop = DEFAULT_CROP): Box => squareBox(box, crop.enlarge, crop.shift);

/** The crop prediction makes with the detector: the matched one when training faces were the data set's crops. */
export function predictionCrop(r: Recipe): Crop {
  return r.face.source === 'dataset-crops' && r.face.matched ? r.face.matched.crop : r.crop;
}

const median = (v: number[]) => {
  const s = [...v].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

/** The crop matching many clips' measurements: the median of each number (robust to a few bad detections). */
export function matchCrops(fits: Crop[]): Recipe['face']['matched'] {
  if (!fits.length) return undefined;
  const round = (v: number) => Math.round(v * 1e4) / 1e4;
  return {
    clips: fits.length,
    crop: {
      shape: 'square',
      enlarge: round(median(fits.map((f) => f.enlarge))),
      shift: [round(median(fits.map((f) => f.shift[0]))), round(median(fits.map((f) => f.shift[1])))],
      padding: 'black',
    },
  };
}

/** The settings a run or cache made before the recipe existed records; the rest is what that version did. */
export interface OlderSettings {
  frames: number;
  scene: 'mask' | 'full';
  polarityLayer: number;
  clipHash: string;
  classNames: string[];
  subject?: SubjectRule;
  precision?: Recipe['precision'];
  processorSize?: number;
}

/** The recipe of a run or cache from before the recipe, and the one line that says what is assumed. */
export function assumedRecipe(o: OlderSettings, where: string): { recipe: Recipe; note: string } {
  const recipe: Recipe = {
    version: RECIPE_VERSION,
    frames: o.frames,
    sampling: 'segment-middles',
    subject: o.subject ?? 'main',
    face: { source: 'detector' },
    crop: DEFAULT_CROP,
    scene: o.scene,
    processor: { resize: o.processorSize ?? 224, crop: o.processorSize ?? 224 },
    polarityLayer: o.polarityLayer,
    clipHash: o.clipHash,
    classNames: o.classNames,
    precision: o.precision ?? 'fp32',
  };
  return {
    recipe,
    note:
      `${where} records no stream recipe (made before it): assuming ${describeFaces(recipe)}, ` +
      `scene ${recipe.scene}, T ${recipe.frames}`,
  };
}

const subjectWords = (s: SubjectRule) => (Array.isArray(s) ? `the face at box ${s.join(' ')}` : `the ${s} face`);
const cropWords = (c: Crop) =>
  `square crop ×${(1 + c.enlarge).toFixed(2)}` +
  (c.shift[0] || c.shift[1] ? ` shifted (${c.shift[0]}, ${c.shift[1]}) of its side` : '');

/** The faces a recipe predicts on, in words: subject, where the face comes from, the crop. */
export function describeFaces(r: Recipe, subject: SubjectRule = r.subject): string {
  const crop = predictionCrop(r);
  const from =
    r.face.source === 'dataset-crops'
      ? r.face.matched
        ? `detector crops matched to the data set's crops ` +
          `(${cropWords(crop)}, measured on ${r.face.matched.clips} clips)`
        : `detector crops (${cropWords(crop)}; the data set's crops were not measured)`
      : `detector crops (${cropWords(crop)})`;
  return `${subjectWords(subject)}, ${from}`;
}
