// `ous clip embed`: CLIP image and text embeddings, the class token after every vision block, and
// the image-text logits, for files and strings.
import type { Command } from './command.js';
import { COMMON, parseFlags, usageText, type Flags } from './flags.js';
import { UsageError } from '../util/errors.js';
import { cat, noGrad, parsePrecision, precisionDtype, tensor, tidy, type Precision } from '../torch/index.js';
import { loadClip } from '../clip/load.js';
import { ClipTokenizer } from '../clip/tokenizer.js';
import { ClipImageProcessor } from '../clip/image-processor.js';
import { allowSlowBf16 } from './env.js';
import { chooseEngine } from '../clip/frame-encoder.js';
import { visionTowerOnnx } from '../clip/onnx.js';
import { OnnxSession } from '../torch/onnxruntime.js';

export interface EmbedResult {
  images: Array<{ path: string; embedding: number[]; blockCls: number[][] }>;
  // truncated: the text had more tokens than CLIP's context; its embedding is of the first ones only
  texts: Array<{ text: string; ids: number[]; embedding: number[]; truncated?: { tokens: number; kept: number } }>;
  logitsPerImage: number[][];
}

/** Embeddings of images and texts; the vision tower runs in `precision` (text always in fp32). */
export async function clipEmbed(
  modelDir: string,
  images: string[],
  texts: string[],
  opts: { precision?: Precision } = {},
): Promise<EmbedResult> {
  const precision = opts.precision ?? 'fp32';
  if (precision === 'int8') chooseEngine('cpu', 'int8'); // onnxruntime, or a UserError saying why not
  const model = loadClip(modelDir).setVisionDtype(precisionDtype(precision));
  const processor = ClipImageProcessor.fromFolder(modelDir);
  const tokenizer = ClipTokenizer.fromFolder(modelDir);
  const ctx = model.config.text_config.max_position_embeddings;
  const layers = model.config.vision_config.num_hidden_layers;
  const R = processor.size;
  const pixels = await Promise.all(images.map((f) => processor.preprocessFile(f)));
  const tokenized = texts.map((t) => tokenizer.tokenize(t, ctx));
  const px = () => cat(pixels.map((p) => tensor(p.pixels, { shape: [1, 3, R, R] })));
  // int8: onnxruntime's graph, which gives the class token after each block as one [n, layers, W] output
  const int8 =
    precision === 'int8' && images.length
      ? await OnnxSession.create(visionTowerOnnx(model, { int8: true, blockCls: true })).then(async (s) => {
          const out = await s.run({ pixels: noGrad(() => tidy(px)) });
          await s.release();
          const cls = Array.from({ length: layers }, (_, k) => out.block_cls!.select(1, k));
          return { imageEmbeds: out.image_embeds!, cls };
        })
      : undefined;
  return noGrad(() =>
    tidy(() => {
      const libtorch = () => {
        const o = model.encodeImage(
          px(),
          Array.from({ length: layers }, (_, k) => k + 1),
        );
        return { imageEmbeds: o.imageEmbeds, cls: o.blocks.map((b) => b.select(1, 0)) }; // [n, W] a block
      };
      const img = !images.length ? undefined : (int8 ?? libtorch());
      const txt = texts.length
        ? model.encodeText(
            tensor(
              tokenized.map((t) => t.ids),
              { dtype: 'int64' },
            ),
            tokenized.map((t) => t.eotIndex),
          )
        : undefined;
      const rows = (t: { toArray(): unknown }) => t.toArray() as number[][];
      return {
        images: images.map((p, i) => ({
          path: p,
          embedding: rows(img!.imageEmbeds)[i]!,
          blockCls: img!.cls.map((b) => b.select(0, i).toFlatArray()),
        })),
        texts: texts.map((t, i) => ({
          text: t,
          ids: tokenized[i]!.ids,
          embedding: rows(txt!.textEmbeds)[i]!,
          ...(tokenized[i]!.nTokensUntruncated > ctx
            ? { truncated: { tokens: tokenized[i]!.nTokensUntruncated, kept: ctx } }
            : {}),
        })),
        logitsPerImage: img && txt ? rows(model.logitsPerImage(img.imageEmbeds, txt.textEmbeds)) : [],
      };
    }),
  );
}

const FLAGS = {
  model: { type: { kind: 'text' }, value: 'DIR', required: true, help: 'a Hugging Face CLIP folder' },
  image: { type: { kind: 'text' }, value: 'FILE', multiple: true, help: 'an image to embed; repeatable' },
  text: { type: { kind: 'text' }, value: 'STR', multiple: true, help: 'a text to embed; repeatable' },
  precision: {
    ...COMMON.precision,
    help:
      'the vision tower in fp32, bf16 (a CPU with AVX512_BF16 or AMX), int8 (onnxruntime) ' +
      'or fp16 (CUDA; this command runs on the CPU)',
  },
  json: COMMON.json,
} as const satisfies Flags;

/** A text CLIP read only the start of, said once on stderr. */
function truncationNote(t: { text: string; truncated?: { tokens: number; kept: number } }): string {
  const start = t.text.length > 40 ? `${t.text.slice(0, 40)}…` : t.text;
  return (
    `--text "${start}" is ${t.truncated!.tokens} tokens; CLIP reads the first ${t.truncated!.kept} ` +
    '(start and end tokens included), so its embedding is of that part only'
  );
}

export const clipEmbedCommand: Command = {
  usage: usageText('clip embed', FLAGS),
  async run(argv) {
    const { values } = parseFlags('clip embed', argv, FLAGS);
    const [images, texts] = [values.image, values.text];
    if (!images.length && !texts.length)
      throw new UsageError('clip embed: give at least one --image FILE or --text STR');
    const precision = parsePrecision(values.precision, 'cpu', { allowSlowBf16: allowSlowBf16() });
    const r = await clipEmbed(values.model, images, texts, { precision });
    for (const t of r.texts) if (t.truncated) process.stderr.write(`ous: note: ${truncationNote(t)}\n`);
    if (values.json) {
      process.stdout.write(JSON.stringify(r) + '\n');
      return 0;
    }
    const head = (v: number[]) =>
      `[${v
        .slice(0, 4)
        .map((x) => x.toFixed(4))
        .join(', ')}, ...] (${v.length})`;
    for (const i of r.images) process.stdout.write(`image ${i.path}: ${head(i.embedding)}\n`);
    for (const t of r.texts) process.stdout.write(`text "${t.text}": ${head(t.embedding)}\n`);
    if (r.logitsPerImage.length) {
      process.stdout.write('logits per image (rows: images, columns: texts):\n');
      for (const row of r.logitsPerImage)
        process.stdout.write('  ' + row.map((x) => x.toFixed(3).padStart(9)).join(' ') + '\n');
    }
    return 0;
  },
};
