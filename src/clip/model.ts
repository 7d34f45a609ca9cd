// CLIP (Radford et al.): a ViT image tower and a causal text tower, as OpenAI built them, with
// Hugging Face's parameter names so that a CLIPModel checkpoint loads key for key.
//   vision: patches + [CLS] + positions -> pre-LN -> blocks -> post-LN(CLS) -> projection
//   text:   tokens + positions -> causal blocks -> final LN -> row of end-of-text -> projection
// A block is pre-LN: x + attn(ln1(x)), then x + mlp(ln2(x)).
//
// Lower precision (--precision bf16|fp16, vision tower only): the convolution and Linear weights
// are cast (setVisionDtype) and their products run in that dtype; LayerNorm (with its weights),
// the class and position embeddings, the attention scores, softmax and weighted sum, and the
// residual stream stay float32, and so do the outputs. LayerNorm reads the float32 stream, so it
// needs no cast (libtorch 1.13 has no mixed-dtype LayerNorm; its bf16 one is off from
// float32-then-round by an ulp or more). OpenAI's fp16 CLIP keeps LayerNorm in
// float32 too but its residual stream in fp16; here it stays float32 as under PyTorch's autocast,
// since bf16's 8-bit mantissa rounds away a block's small update to a large entry, and the
// products, which are nearly all the work, are in the low dtype either way. In float32 none of
// this runs: the graph is unchanged.
import { F, type Tensor, cat, full, nn, tensor, tidy, type DType } from '../torch/index.js';
import type { ClipConfig, ClipTextConfig, ClipVisionConfig } from './config.js';

type TowerConfig = ClipTextConfig | ClipVisionConfig;

function activation(name: TowerConfig['hidden_act']): (x: Tensor) => Tensor {
  return name === 'quick_gelu' ? F.quickGelu : (x) => x.gelu();
}

/** x cast to the dtype of a Linear's weights (a no-op in float32): what its product runs in. */
function inputOf(lin: nn.Linear, x: Tensor): Tensor {
  return x.dtype === lin.weight.dtype ? x : x.to(lin.weight.dtype);
}

/** Multi-head self-attention with separate q/k/v projections (HF's layout of OpenAI's in_proj). */
export class ClipAttention extends nn.Module {
  readonly k_proj: nn.Linear;
  readonly v_proj: nn.Linear;
  readonly q_proj: nn.Linear;
  readonly out_proj: nn.Linear;
  readonly heads: number;

  constructor(cfg: TowerConfig) {
    super();
    const w = cfg.hidden_size;
    this.k_proj = new nn.Linear(w, w);
    this.v_proj = new nn.Linear(w, w);
    this.q_proj = new nn.Linear(w, w);
    this.out_proj = new nn.Linear(w, w);
    this.heads = cfg.num_attention_heads;
  }

  /** x [B, L, W] -> [B, L, W]; heads split W contiguously; mask [L, L] is added to the scores. */
  forward(x: Tensor, mask?: Tensor): Tensor {
    const [B, L, W] = x.shape as [number, number, number];
    // In bf16/fp16 the projections run in that dtype, but the scores, softmax and weighted sum in
    // float32: a score rounded to bf16 is off by up to 2⁻⁹ of its size, which exp() turns into a
    // relative error of the weight. They are O(L²·W) of the block's O(L·W²) work: this costs little.
    const low = this.q_proj.weight.dtype !== 'float32';
    const xin = inputOf(this.q_proj, x);
    // [B, H, L, d]
    const split = (t: Tensor) => (low ? t.float() : t).view(B, L, this.heads, W / this.heads).transpose(1, 2);
    const q = split(this.q_proj.forward(xin));
    const k = split(this.k_proj.forward(xin));
    const v = split(this.v_proj.forward(xin));
    const o = F.scaledDotProductAttention(q, k, v, { attnMask: mask }); // [B, H, L, d]
    // in the weights' dtype; the residual add promotes to float32
    return this.out_proj.forward(inputOf(this.out_proj, o.transpose(1, 2).reshape(B, L, W)));
  }

  /**
   * The same attention for one query row per sequence: x [B, L, W] (keys and values from every
   * row), xq [B, 1, W] (the queries) -> [B, 1, W]; mask [B, 1, 1, L] is added to the scores.
   */
  forwardRow(x: Tensor, xq: Tensor, mask: Tensor): Tensor {
    const [B, L, W] = x.shape as [number, number, number];
    const split = (t: Tensor, n: number) => t.view(B, n, this.heads, W / this.heads).transpose(1, 2); // [B, H, n, d]
    const o = F.scaledDotProductAttention(
      split(this.q_proj.forward(xq), 1),
      split(this.k_proj.forward(x), L),
      split(this.v_proj.forward(x), L),
      { attnMask: mask },
    ); // [B, H, 1, d]
    return this.out_proj.forward(o.transpose(1, 2).reshape(B, 1, W));
  }
}

export class ClipMlp extends nn.Module {
  readonly fc1: nn.Linear;
  readonly fc2: nn.Linear;
  private readonly act: (x: Tensor) => Tensor;

  constructor(cfg: TowerConfig) {
    super();
    this.fc1 = new nn.Linear(cfg.hidden_size, cfg.intermediate_size);
    this.fc2 = new nn.Linear(cfg.intermediate_size, cfg.hidden_size);
    this.act = activation(cfg.hidden_act);
  }

  forward(x: Tensor): Tensor {
    return this.fc2.forward(this.act(this.fc1.forward(inputOf(this.fc1, x))));
  }
}

export class ClipEncoderLayer extends nn.Module {
  readonly self_attn: ClipAttention;
  readonly layer_norm1: nn.LayerNorm;
  readonly mlp: ClipMlp;
  readonly layer_norm2: nn.LayerNorm;

  constructor(cfg: TowerConfig) {
    super();
    this.self_attn = new ClipAttention(cfg);
    this.layer_norm1 = new nn.LayerNorm(cfg.hidden_size, cfg.layer_norm_eps);
    this.mlp = new ClipMlp(cfg);
    this.layer_norm2 = new nn.LayerNorm(cfg.hidden_size, cfg.layer_norm_eps);
  }

  forward(x: Tensor, mask?: Tensor): Tensor {
    const h = x.add(this.self_attn.forward(this.layer_norm1.forward(x), mask));
    return h.add(this.mlp.forward(this.layer_norm2.forward(h)));
  }

  /**
   * The block's output at one row per sequence: x [B, L, W], rows [B] (int64), mask [B, 1, 1, L]
   * -> [B, 1, W]. Equal to forward(x, causal) at those rows, without the MLP and queries of the
   * others (the text tower's last block is read at the end-of-text token alone).
   */
  forwardRow(x: Tensor, rows: Tensor, mask: Tensor): Tensor {
    const [B, , W] = x.shape as [number, number, number];
    const at = (t: Tensor) => t.gather(1, rows.view(B, 1, 1).expand(B, 1, W)); // [B, 1, W]
    const a = this.layer_norm1.forward(x);
    const h = at(x).add(this.self_attn.forwardRow(a, at(a), mask));
    return h.add(this.mlp.forward(this.layer_norm2.forward(h)));
  }
}

export class ClipEncoder extends nn.Module {
  readonly layers: ClipEncoderLayer[];

  constructor(cfg: TowerConfig) {
    super();
    this.layers = Array.from({ length: cfg.num_hidden_layers }, () => new ClipEncoderLayer(cfg));
  }

  /**
   * Runs the blocks. `keep` selects residual streams to return, in request order: k is the stream
   * after block k, and 0 the stream entering block 1.
   */
  forward(
    x: Tensor,
    opts: { mask?: Tensor; keep?: number[]; blocks?: number } = {},
  ): { output: Tensor; kept: Tensor[] } {
    const keep = opts.keep ?? [];
    const run = opts.blocks ?? this.layers.length; // the first `blocks` blocks only
    for (const k of keep)
      if (!(Number.isInteger(k) && k >= 0 && k <= run)) throw new RangeError(`block ${k} does not exist (0..${run})`);
    const kept = new Map<number, Tensor>([[0, x]]);
    let h = x;
    this.layers.slice(0, run).forEach((layer, i) => {
      // One scope per block: its temporaries are freed as soon as the block is done, so a deep
      // tower reuses the same memory block after block instead of holding every activation of
      // the forward. Under autograd the graph keeps what backward needs, whatever the handles.
      const next = tidy(() => layer.forward(h, opts.mask));
      if (h !== x && !keep.includes(i)) h.dispose();
      h = next;
      if (keep.includes(i + 1)) kept.set(i + 1, h);
    });
    return { output: h, kept: keep.map((k) => kept.get(k)!) };
  }
}

export class ClipVisionEmbeddings extends nn.Module {
  readonly class_embedding: nn.Parameter; // [W]
  readonly patch_embedding: nn.Conv2d; // [W, 3, p, p], no bias
  readonly position_embedding: nn.Embedding; // [G²+1, W]
  readonly patch: number;

  constructor(cfg: ClipVisionConfig) {
    super();
    const w = cfg.hidden_size;
    const grid = cfg.image_size / cfg.patch_size;
    this.class_embedding = new nn.Parameter(full([w], 0).normal_(0, w ** -0.5));
    this.patch_embedding = new nn.Conv2d(cfg.num_channels, w, cfg.patch_size, { stride: cfg.patch_size, bias: false });
    this.position_embedding = new nn.Embedding(grid * grid + 1, w);
    this.patch = cfg.patch_size;
  }

  /**
   * pixels [B, 3, R, R] -> tokens [B, 1 + G², W] (float32), patch index = row·G + col. The pixels
   * are cast to the patch weights' dtype; the class and position embeddings stay float32.
   */
  forward(pixels: Tensor): Tensor {
    const B = pixels.size(0);
    const dt = this.patch_embedding.weight.dtype;
    const patches =
      dt === 'float32'
        ? this.patch_embedding.forward(pixels).flatten(2).transpose(1, 2)
        : tidy(() => this.patchesAsMatmul(pixels.to(dt)).float()); // [B, G², W]
    const cls = this.class_embedding.view(1, 1, -1).expand(B, 1, -1); // [B, 1, W]
    return cat([cls, patches], 1).add(this.position_embedding.weight); // [B, 1+G², W]
  }

  /**
   * The patch convolution as one product, for bf16/fp16: libtorch's CPU bf16 convolution sums in
   * bf16 (1.13: relative error 6e-2 on 32×32 patches, against 2e-3 for the same product as a
   * matmul, which sums in float32). With stride = kernel the patches are a reshape of the pixels.
   * pixels [B, C, R, R] -> [B, G², W].
   */
  private patchesAsMatmul(pixels: Tensor): Tensor {
    const [B, C, R] = pixels.shape as [number, number, number];
    const p = this.patch;
    const G = Math.floor(R / p); // as the convolution, pixels past G·p are not read
    const x = pixels
      .narrow(2, 0, G * p)
      .narrow(3, 0, G * p)
      .reshape(B, C, G, p, G, p)
      .permute(0, 2, 4, 1, 3, 5)
      .reshape(B, G * G, C * p * p); // [B, G², C·p·p], (c, y, x) order as the weight
    return F.linear(x, this.patch_embedding.weight.flatten(1)); // weight [W, C·p·p]
  }
}

export interface VisionOutput {
  imageEmbeds: Tensor; // [B, E], after the projection, not normalised
  pooled: Tensor; // [B, W], post-LN of the CLS token
  blocks: Tensor[]; // residual streams [B, 1+G², W] after the requested blocks (0 = after pre-LN), in request order
}

export class ClipVisionTransformer extends nn.Module {
  readonly embeddings: ClipVisionEmbeddings;
  readonly pre_layrnorm: nn.LayerNorm; // (HF's spelling)
  readonly encoder: ClipEncoder;
  readonly post_layernorm: nn.LayerNorm;

  constructor(readonly config: ClipVisionConfig) {
    super();
    this.embeddings = new ClipVisionEmbeddings(config);
    this.pre_layrnorm = new nn.LayerNorm(config.hidden_size, config.layer_norm_eps);
    this.encoder = new ClipEncoder(config);
    this.post_layernorm = new nn.LayerNorm(config.hidden_size, config.layer_norm_eps);
  }

  /** The dtype the products run in: float32, or what setVisionDtype cast the weights to. */
  get dtype(): DType {
    return this.embeddings.patch_embedding.weight.dtype;
  }

  /** pixels [B, 3, R, R] -> pooled [B, W] and the kept residual streams, float32 in every precision. */
  forward(pixels: Tensor, keep: number[] = []): { pooled: Tensor; blocks: Tensor[] } {
    const x = this.pre_layrnorm.forward(this.embeddings.forward(pixels)); // [B, 1+G², W]
    const { output, kept } = this.encoder.forward(x, { keep });
    return { pooled: this.post_layernorm.forward(output.select(1, 0)), blocks: kept };
  }
}

export interface TextOutput {
  textEmbeds: Tensor; // [N, E], not normalised
  pooled: Tensor; // [N, Wt], final LN at the end-of-text token
  // residual streams [N, L', Wt] after the requested blocks
  // (0 = token + position embeddings; L' = longest EOT + 1)
  blocks: Tensor[];
}

export class ClipTextEmbeddings extends nn.Module {
  readonly token_embedding: nn.Embedding; // [vocab, Wt]
  readonly position_embedding: nn.Embedding; // [context, Wt]

  constructor(cfg: ClipTextConfig) {
    super();
    this.token_embedding = new nn.Embedding(cfg.vocab_size, cfg.hidden_size);
    this.position_embedding = new nn.Embedding(cfg.max_position_embeddings, cfg.hidden_size);
  }
}

export class ClipTextTransformer extends nn.Module {
  readonly embeddings: ClipTextEmbeddings;
  readonly encoder: ClipEncoder;
  readonly final_layer_norm: nn.LayerNorm;

  constructor(readonly config: ClipTextConfig) {
    super();
    this.embeddings = new ClipTextEmbeddings(config);
    this.encoder = new ClipEncoder(config);
    this.final_layer_norm = new nn.LayerNorm(config.hidden_size, config.layer_norm_eps);
  }

  /** Token embeddings [N, L, Wt] of ids [N, L] (int64): what prompt learning splices into. */
  embedTokens(ids: Tensor): Tensor {
    return this.embeddings.token_embedding.forward(ids);
  }

  /**
   * The text tower from token embeddings [N, L, Wt] (L ≤ context) and each row's end-of-text
   * position. The mask is causal, so tokens after the last EOT change nothing: only the first
   * max(eot)+1 positions are run, unless `fullLength` (which gives the same result, slower).
   */
  forward(
    tokenEmbeds: Tensor,
    eotIndex: number[],
    keep: number[] = [],
    opts: { fullLength?: boolean } = {},
  ): { pooled: Tensor; blocks: Tensor[] } {
    const N = tokenEmbeds.size(0);
    if (eotIndex.length !== N)
      throw new RangeError(`text tower: ${N} sequences but ${eotIndex.length} end-of-text positions`);
    if (tokenEmbeds.size(1) > this.config.max_position_embeddings)
      throw new RangeError(
        `text tower: ${tokenEmbeds.size(1)} tokens, the context is ${this.config.max_position_embeddings}`,
      );
    if (Math.max(...eotIndex) >= tokenEmbeds.size(1) || Math.min(...eotIndex) < 0)
      throw new RangeError(`text tower: an end-of-text position is outside the ${tokenEmbeds.size(1)} tokens`);
    const L = opts.fullLength ? tokenEmbeds.size(1) : Math.max(...eotIndex) + 1;
    const pos = this.embeddings.position_embedding.weight.narrow(0, 0, L); // [L, Wt]
    const x = tokenEmbeds.narrow(1, 0, L).add(pos); // [N, L, Wt]
    const causal = full([L, L], -Infinity, { dtype: x.dtype, device: x.device }).triu(1); // query i sees keys ≤ i
    const rows = tensor(eotIndex, { dtype: 'int64', device: x.device }); // [N]
    const last = this.encoder.layers.length;
    if (keep.includes(last) || opts.fullLength) {
      const { output, kept } = this.encoder.forward(x, { mask: causal, keep });
      const atEot = output.gather(1, rows.view(N, 1, 1).expand(N, 1, output.size(2))).squeeze(1); // [N, Wt]
      return { pooled: this.final_layer_norm.forward(atEot), blocks: kept };
    }
    // Only the end-of-text row of the last block is read: its queries and MLP run for that row
    // alone (1 of L rows), forward and backward; its keys and values still cover every row.
    const { output, kept } = this.encoder.forward(x, { mask: causal, keep, blocks: last - 1 });
    const eotMask = tensor(
      Float32Array.from({ length: N * L }, (_, i) => (i % L <= eotIndex[Math.floor(i / L)]! ? 0 : -Infinity)),
      { shape: [N, 1, 1, L], device: x.device },
    ); // row i sees keys ≤ eot_i
    // [N, Wt]
    const atEot = tidy(() => this.encoder.layers[last - 1]!.forwardRow(output, rows, eotMask.to(x.dtype)).squeeze(1));
    return { pooled: this.final_layer_norm.forward(atEot), blocks: kept };
  }
}

/** The whole CLIP: both towers, their projections into the shared space, and the logit scale. */
export class ClipModel extends nn.Module {
  readonly text_model: ClipTextTransformer;
  readonly vision_model: ClipVisionTransformer;
  readonly visual_projection: nn.Linear; // [E, W], no bias
  readonly text_projection: nn.Linear; // [E, Wt], no bias
  readonly logit_scale: nn.Parameter; // [] (log of the inverse temperature)

  constructor(readonly config: ClipConfig) {
    super();
    this.text_model = new ClipTextTransformer(config.text_config);
    this.vision_model = new ClipVisionTransformer(config.vision_config);
    this.visual_projection = new nn.Linear(config.vision_config.hidden_size, config.projection_dim, { bias: false });
    this.text_projection = new nn.Linear(config.text_config.hidden_size, config.projection_dim, { bias: false });
    this.logit_scale = new nn.Parameter(full([], config.logit_scale_init_value));
  }

  get imageSize(): number {
    return this.config.vision_config.image_size;
  }

  /**
   * pixels [B, 3, R, R] (CLIP-normalised) -> image embeddings [B, E] and, on request, block
   * outputs; float32 whatever the tower's dtype.
   */
  encodeImage(pixels: Tensor, keepBlocks: number[] = []): VisionOutput {
    const { pooled, blocks } = this.vision_model.forward(pixels, keepBlocks);
    if (this.visual_projection.weight.dtype === 'float32')
      return { imageEmbeds: this.visual_projection.forward(pooled), pooled, blocks };
    return {
      imageEmbeds: tidy(() => this.visual_projection.forward(inputOf(this.visual_projection, pooled)).float()),
      pooled,
      blocks,
    };
  }

  /**
   * Runs the vision tower and its projection in `dtype` from now on: their convolution and Linear
   * weights are cast in place (the float32 copies are dropped: reload to go back); LayerNorm,
   * the class and position embeddings and the whole text tower stay float32. Once per model.
   */
  setVisionDtype(dtype: DType): this {
    if (dtype === this.vision_model.dtype) return this;
    if (this.vision_model.dtype !== 'float32')
      throw new Error(
        `setVisionDtype(${dtype}): the vision tower is already ${this.vision_model.dtype}; reload the model`,
      );
    for (const root of [this.vision_model, this.visual_projection]) {
      for (const [, m] of root.namedModules()) if (m instanceof nn.Linear || m instanceof nn.Conv2d) m.to({ dtype });
    }
    return this;
  }

  /** ids [N, L] (int64, OpenAI's tokenize) with each row's EOT position -> text embeddings [N, E]. */
  encodeText(ids: Tensor, eotIndex: number[], keepBlocks: number[] = []): TextOutput {
    return this.encodeTextEmbeddings(this.text_model.embedTokens(ids), eotIndex, keepBlocks);
  }

  /** Token embeddings [N, L, Wt] (e.g. with learned context vectors spliced in) -> [N, E]. */
  encodeTextEmbeddings(
    tokenEmbeds: Tensor,
    eotIndex: number[],
    keepBlocks: number[] = [],
    opts: { fullLength?: boolean } = {},
  ): TextOutput {
    const { pooled, blocks } = this.text_model.forward(tokenEmbeds, eotIndex, keepBlocks, opts);
    return { textEmbeds: this.text_projection.forward(pooled), pooled, blocks };
  }

  /** exp(logit_scale) · normalised images [B, E] × normalised texts [N, E]ᵀ -> [B, N]. */
  logitsPerImage(imageEmbeds: Tensor, textEmbeds: Tensor): Tensor {
    return tidy(() => F.normalize(imageEmbeds).matmul(F.normalize(textEmbeds).mT).mul(this.logit_scale.exp()));
  }
}
