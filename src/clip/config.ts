// CLIP's configuration as Hugging Face writes it (config.json of a CLIPModel), validated, with
// HF's defaults for absent fields. Every shape of the model comes from here; none is assumed.
import { z } from 'zod';
import { UserError } from '../util/errors.js';

const activation = z.enum(['quick_gelu', 'gelu']);

const towerFields = {
  hidden_size: z.number().int().positive(), // W: width of the residual stream
  intermediate_size: z.number().int().positive(), // MLP hidden width (4W in OpenAI's models)
  num_attention_heads: z.number().int().positive(),
  num_hidden_layers: z.number().int().positive(),
  hidden_act: activation.default('quick_gelu'), // OpenAI's CLIP was trained with quick GELU
  layer_norm_eps: z.number().positive().default(1e-5),
};

export const ClipTextConfig = z
  .object({
    ...towerFields,
    hidden_size: towerFields.hidden_size.default(512),
    intermediate_size: towerFields.intermediate_size.default(2048),
    num_attention_heads: towerFields.num_attention_heads.default(8),
    num_hidden_layers: towerFields.num_hidden_layers.default(12),
    vocab_size: z.number().int().positive().default(49408),
    max_position_embeddings: z.number().int().positive().default(77), // context length
  })
  .passthrough();

export const ClipVisionConfig = z
  .object({
    ...towerFields,
    hidden_size: towerFields.hidden_size.default(768),
    intermediate_size: towerFields.intermediate_size.default(3072),
    num_attention_heads: towerFields.num_attention_heads.default(12),
    num_hidden_layers: towerFields.num_hidden_layers.default(12),
    image_size: z.number().int().positive().default(224), // R
    patch_size: z.number().int().positive().default(32), // p; the grid is R/p per side
    num_channels: z.literal(3).default(3),
  })
  .passthrough();

export const ClipConfig = z
  .object({
    model_type: z.literal('clip', {
      errorMap: () => ({ message: "model_type must be 'clip' (a Hugging Face CLIPModel)" }),
    }),
    projection_dim: z.number().int().positive().default(512), // E: the shared embedding width
    logit_scale_init_value: z.number().default(2.6592),
    text_config: ClipTextConfig.default({}),
    vision_config: ClipVisionConfig.default({}),
  })
  .passthrough()
  .superRefine((c, ctx) => {
    for (const [name, t] of [
      ['text_config', c.text_config],
      ['vision_config', c.vision_config],
    ] as const) {
      if (t.hidden_size % t.num_attention_heads)
        ctx.addIssue({
          code: 'custom',
          path: [name],
          message: `hidden_size ${t.hidden_size} is not divisible by num_attention_heads ${t.num_attention_heads}`,
        });
    }
    const v = c.vision_config;
    if (v.image_size % v.patch_size)
      ctx.addIssue({
        code: 'custom',
        path: ['vision_config'],
        message: `image_size ${v.image_size} is not a multiple of patch_size ${v.patch_size}`,
      });
  });

export type ClipConfig = z.infer<typeof ClipConfig>;
export type ClipTextConfig = z.infer<typeof ClipTextConfig>;
export type ClipVisionConfig = z.infer<typeof ClipVisionConfig>;

/** Validates a parsed config.json; `source` names the file in the error. */
export function parseClipConfig(json: unknown, source: string): ClipConfig {
  const r = ClipConfig.safeParse(json);
  if (!r.success) {
    const why = r.error.issues.map((i) => `${i.path.join('.') || '(top level)'}: ${i.message}`).join('; ');
    throw new UserError(`${source} is not a usable CLIP config: ${why}`);
  }
  return r.data;
}

/** The config of a ViT CLIP of given sizes, e.g. for random-weight benchmarks and tests. */
export function clipConfigFor(shape: {
  embed: number;
  vision: { width: number; layers: number; heads: number; patch: number; resolution: number };
  text: { width: number; layers: number; heads: number };
}): ClipConfig {
  return parseClipConfig(
    {
      model_type: 'clip',
      projection_dim: shape.embed,
      text_config: {
        hidden_size: shape.text.width,
        intermediate_size: 4 * shape.text.width,
        num_attention_heads: shape.text.heads,
        num_hidden_layers: shape.text.layers,
      },
      vision_config: {
        hidden_size: shape.vision.width,
        intermediate_size: 4 * shape.vision.width,
        num_attention_heads: shape.vision.heads,
        num_hidden_layers: shape.vision.layers,
        patch_size: shape.vision.patch,
        image_size: shape.vision.resolution,
      },
    },
    'clipConfigFor',
  );
}

/** OpenAI's released shapes, for benchmarks and tests with random weights. */
export const CLIP_SHAPES = {
  'ViT-B/32': {
    embed: 512,
    vision: { width: 768, layers: 12, heads: 12, patch: 32, resolution: 224 },
    text: { width: 512, layers: 12, heads: 8 },
  },
  'ViT-B/16': {
    embed: 512,
    vision: { width: 768, layers: 12, heads: 12, patch: 16, resolution: 224 },
    text: { width: 512, layers: 12, heads: 8 },
  },
  'ViT-L/14': {
    embed: 768,
    vision: { width: 1024, layers: 24, heads: 16, patch: 14, resolution: 224 },
    text: { width: 768, layers: 12, heads: 12 },
  },
  'ViT-L/14-336': {
    embed: 768,
    vision: { width: 1024, layers: 24, heads: 16, patch: 14, resolution: 336 },
    text: { width: 768, layers: 12, heads: 12 },
  },
} as const;

/** A size in preprocessor_config.json: a number, or {shortest_edge} / {height, width} (newer transformers). */
const PreprocessorSize = z.union([
  z.number().int().positive(),
  z.object({ shortest_edge: z.number().int().positive() }).passthrough(),
  z.object({ height: z.number().int().positive(), width: z.number().int().positive() }).passthrough(),
]);
const rgb = z.tuple([z.number(), z.number(), z.number()]);

/** preprocessor_config.json of a Hugging Face CLIP folder (CLIPImageProcessor's fields; it has no version field). */
export const ClipPreprocessorConfig = z
  .object({
    size: PreprocessorSize.optional(),
    crop_size: PreprocessorSize.optional(),
    resample: z.number().int().optional(), // PIL's filter id; 3 = bicubic
    image_mean: rgb.optional(),
    image_std: rgb.refine((v) => v.every((x) => x > 0), 'every std must be > 0').optional(),
  })
  .passthrough()
  .refine((c) => c.size !== undefined || c.crop_size !== undefined, 'needs crop_size or size');
