// CLIP's vision tower as an ONNX graph, written from the weights a loaded ClipModel holds, for
// onnxruntime (the frozen encoder's fast path on CPU, ARCHITECTURE.md). The graph computes what
// ClipModel.encodeImage does, in float32:
//   tokens = [CLS; conv(pixels)] + positions -> pre-LN -> blocks -> post-LN(CLS) -> projection
// with each block x + attn(ln1(x)), then x + mlp(ln2(x)). It is written for onnxruntime's CPU
// kernels: the residual stream is kept as a matrix [N·L, W] so every Linear is one Gemm with its
// bias; attention is onnxruntime's fused Attention (q, k and v from one [W, 3W] product, the
// heads run in parallel), the activation its QuickGelu. Outputs: image_embeds [N, E] and, when
// asked, low [N, W], the token-mean of the residual stream after block k (0 = after pre-LN), the
// Polarity Encoder's input (SPEC.md §3).
import { cat, noGrad, tidy, type Tensor } from '../torch/index.js';
import { OnnxGraph } from '../torch/onnx.js';
import type { ClipModel } from './model.js';

const MS = 'com.microsoft'; // onnxruntime's contributed operators

/** The serialised ONNX model of `clip`'s vision tower (float32 weights only). */
export function visionTowerOnnx(clip: ClipModel, opts: { lowBlock?: number } = {}): Uint8Array {
  const vm = clip.vision_model;
  const cfg = vm.config;
  if (vm.dtype !== 'float32')
    throw new Error(`visionTowerOnnx: the vision tower is ${vm.dtype}; the ONNX graph is written from float32 weights`);
  const layers = vm.encoder.layers;
  const k = opts.lowBlock;
  if (k !== undefined && (!Number.isInteger(k) || k < 0 || k > layers.length))
    throw new RangeError(`visionTowerOnnx: lowBlock ${k} is not in 0..${layers.length}`);
  const W = cfg.hidden_size;
  const H = cfg.num_attention_heads;
  const P = cfg.patch_size;
  const L = (cfg.image_size / P) ** 2 + 1;
  const E = clip.config.projection_dim;
  const eps = { f: cfg.layer_norm_eps };

  const g = new OnnxGraph('clip_vision', 17).useDomain(MS, 1);
  // each constant's temporaries (views, the concatenated q/k/v) are freed as soon as it is written
  const c = (name: string, t: () => Tensor) => noGrad(() => tidy(() => g.constant(name, t().contiguous())));
  const ints = (name: string, v: number[]) => g.constant(name, { int64: v });
  const rows = ints('shape_rows', [-1, W]); // [N, L, W] <-> [N·L, W]
  const seqs = ints('shape_seqs', [-1, L, W]);
  const ln = (x: string, m: { weight?: Tensor; bias?: Tensor }, name: string) =>
    g.op('LayerNormalization', [x, c(`${name}.weight`, () => m.weight!), c(`${name}.bias`, () => m.bias!)], {
      axis: -1,
      epsilon: eps,
    });
  const linear = (x: string, m: { weight: Tensor; bias?: Tensor }, name: string) =>
    g.op('Gemm', [x, c(`${name}.weight`, () => m.weight), ...(m.bias ? [c(`${name}.bias`, () => m.bias!)] : [])], {
      transB: 1,
    });

  // Embeddings: patches [N, G², W], the class token in front, positions added.
  const pixels = g.input('pixels', 'float32', ['N', 3, cfg.image_size, cfg.image_size]);
  const conv = g.op('Conv', [pixels, c('patch_embedding.weight', () => vm.embeddings.patch_embedding.weight)], {
    strides: [P, P],
  }); // [N, W, G, G]
  const patches = g.op('Transpose', [g.op('Reshape', [conv, ints('shape_patches', [0, W, -1])])], { perm: [0, 2, 1] });
  const batch = g.op('Slice', [g.op('Shape', [pixels]), ints('zero', [0]), ints('one', [1])]); // [N]
  const clsShape = g.op('Concat', [batch, ints('one_w', [1, W])], { axis: 0 });
  // [N, 1, W]
  const cls = g.op('Expand', [c('class_embedding', () => vm.embeddings.class_embedding.view(1, 1, W)), clsShape]);
  const tokens = g.op('Add', [
    g.op('Concat', [cls, patches], { axis: 1 }),
    c('position_embedding', () => vm.embeddings.position_embedding.weight),
  ]);
  let x = g.op('Reshape', [ln(tokens, vm.pre_layrnorm, 'pre_layrnorm'), rows]); // [N·L, W]

  let low: string | undefined;
  // [N, W]
  const tokenMean = (v: string) => g.op('ReduceMean', [g.op('Reshape', [v, seqs])], { axes: [1], keepdims: 0 });
  if (k === 0) low = tokenMean(x);
  layers.forEach((layer, i) => {
    const name = `layers.${i}`;
    const a = layer.self_attn;
    // q, k, v weights side by side as the Attention op reads them: [W, 3W], bias [3W]
    const qkvW = c(`${name}.qkv.weight`, () => cat([a.q_proj.weight, a.k_proj.weight, a.v_proj.weight], 0).mT);
    const qkvB = c(`${name}.qkv.bias`, () => cat([a.q_proj.bias!, a.k_proj.bias!, a.v_proj.bias!], 0));
    const h = g.op('Reshape', [ln(x, layer.layer_norm1, `${name}.layer_norm1`), seqs]); // [N, L, W]
    const att = g.op('Attention', [h, qkvW, qkvB], { num_heads: H }, { domain: MS }); // [N, L, W]
    x = g.op('Add', [x, linear(g.op('Reshape', [att, rows]), a.out_proj, `${name}.out_proj`)]);
    const m = linear(ln(x, layer.layer_norm2, `${name}.layer_norm2`), layer.mlp.fc1, `${name}.fc1`);
    const act =
      cfg.hidden_act === 'quick_gelu'
        ? g.op('QuickGelu', [m], { alpha: { f: 1.702 } }, { domain: MS })
        : g.op('Gelu', [m], {}, { domain: MS });
    x = g.op('Add', [x, linear(act, layer.mlp.fc2, `${name}.fc2`)]);
    if (k === i + 1) low = tokenMean(x);
  });

  const clsOut = g.op('Gather', [g.op('Reshape', [x, seqs]), g.constant('cls_index', { int64: [0], dims: [] })], {
    axis: 1,
  }); // [N, W]
  // [N, E]
  const embeds = linear(ln(clsOut, vm.post_layernorm, 'post_layernorm'), clip.visual_projection, 'visual_projection');
  g.output(embeds, 'image_embeds', 'float32', ['N', E]);
  if (low !== undefined) g.output(low, 'low', 'float32', ['N', W]);
  return g.toBytes();
}
