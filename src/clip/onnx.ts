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
import { cat, noGrad, tensor, tidy, type Tensor } from '../torch/index.js';
import { OnnxGraph } from '../torch/onnx.js';
import { cpuHasVnni } from '../torch/precision.js';
import { readCpuInfo } from '../torch/blas.js';
import type { ClipModel } from './model.js';

const MS = 'com.microsoft'; // onnxruntime's contributed operators

/** Which products of the tower run on int8 (experiment knobs; see INT8 for the chosen plan). */
export interface Int8Plan {
  attention: 'fp32' | 'qattention' | 'mha'; // q/k/v projection: fp32 Attention, QAttention, or int8 q/k/v + MHA
  linears: Array<'out_proj' | 'fc1' | 'fc2'>;
  projection: boolean; // the visual projection
  weightBits: 7 | 8; // 7 where the CPU lacks VNNI (cpuHasVnni)
}

export const INT8: Omit<Int8Plan, 'weightBits'> = {
  attention: 'mha',
  linears: ['out_proj', 'fc1', 'fc2'],
  projection: false,
};

/**
 * Weights [out, in] quantised per output channel, symmetric: B [in, out] int8 (as the integer MatMul
 * family reads it) and scale [out], B·scale ≈ Wᵀ.
 */
export function quantiseWeights(w: Tensor, bits = 8): { q: Int8Array; scale: Float32Array; dims: [number, number] } {
  const top = 2 ** (bits - 1) - 1; // 127, or 63 at 7 bits
  const [O, I] = w.shape as [number, number];
  const v = w.contiguous().toTypedArray() as Float32Array;
  const q = new Int8Array(O * I);
  const scale = new Float32Array(O);
  for (let o = 0; o < O; o++) {
    let amax = 0;
    for (let i = 0; i < I; i++) amax = Math.max(amax, Math.abs(v[o * I + i]!));
    const s = amax > 0 ? amax / top : 1;
    scale[o] = s;
    for (let i = 0; i < I; i++) q[i * O + o] = Math.round(v[o * I + i]! / s);
  }
  return { q, scale, dims: [I, O] };
}

/** The serialised ONNX model of `clip`'s vision tower (float32 weights only). */
export function visionTowerOnnx(
  clip: ClipModel,
  opts: { lowBlock?: number; blockCls?: boolean; int8?: Partial<Int8Plan> | boolean } = {},
): Uint8Array {
  const plan: Int8Plan | undefined = opts.int8
    ? { ...INT8, weightBits: cpuHasVnni(readCpuInfo()) ? 8 : 7, ...(opts.int8 === true ? {} : opts.int8) }
    : undefined;
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
  // x [M, K] · Wᵀ + b with W int8 per output channel and x quantised to uint8 per tensor at run time
  const qlinear = (x: string, w: () => Tensor, bias: Tensor | undefined, name: string) => {
    const { q, scale, dims } = noGrad(() => tidy(() => quantiseWeights(w(), plan!.weightBits)));
    const B = g.constant(`${name}.weight_q`, { int8: q, dims });
    const s = g.constant(`${name}.weight_scale`, tensor(scale));
    const b = bias ? c(`${name}.bias`, () => bias) : '';
    return g.op('DynamicQuantizeMatMul', [x, B, s, '', b], {}, { domain: MS });
  };
  const lin = (x: string, m: { weight: Tensor; bias?: Tensor }, name: string, int8: boolean) =>
    int8 ? qlinear(x, () => m.weight, m.bias, name) : linear(x, m, name);
  const q8 = (part: 'out_proj' | 'fc1' | 'fc2') => plan?.linears.includes(part) ?? false;

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

  type Attn = ClipModel['vision_model']['encoder']['layers'][number]['self_attn'];
  // h [N·L, W] -> attention over each image's tokens [N, L, W]
  const attention = (h: string, a: Attn, name: string): string => {
    const qkv = () => cat([a.q_proj.weight, a.k_proj.weight, a.v_proj.weight], 0); // [3W, W]
    const qkvB = c(`${name}.qkv.bias`, () => cat([a.q_proj.bias!, a.k_proj.bias!, a.v_proj.bias!], 0));
    const mode = plan?.attention ?? 'fp32';
    if (mode === 'mha') {
      const p = qlinear(h, qkv, undefined, `${name}.qkv`); // [N·L, 3W]
      const pb = g.op('Add', [p, qkvB]);
      const [q, k, v] = g.ops('Split', [pb, ints(`${name}.split`, [W, W, W])], 3, { axis: 1 });
      const s3 = (t: string) => g.op('Reshape', [t, seqs]);
      return g.op('MultiHeadAttention', [s3(q!), s3(k!), s3(v!)], { num_heads: H }, { domain: MS });
    }
    const hs = g.op('Reshape', [h, seqs]); // [N, L, W]
    if (mode === 'qattention') {
      const { q, scale, dims } = noGrad(() => tidy(() => quantiseWeights(qkv(), plan!.weightBits)));
      const [hq, hs8, hz] = g.ops('DynamicQuantizeLinear', [hs], 3);
      const Wq = g.constant(`${name}.qkv.weight_q`, { int8: q, dims });
      const ws = g.constant(`${name}.qkv.weight_scale`, tensor(scale));
      return g.op('QAttention', [hq!, Wq, qkvB, hs8!, ws, '', hz!], { num_heads: H }, { domain: MS });
    }
    const qkvW = c(`${name}.qkv.weight`, () => qkv().mT); // [W, 3W], as the Attention op reads it
    return g.op('Attention', [hs, qkvW, qkvB], { num_heads: H }, { domain: MS });
  };

  let low: string | undefined;
  const clsIndex = g.constant('cls_index', { int64: [0], dims: [] });
  const clsOf = (v: string) => g.op('Gather', [g.op('Reshape', [v, seqs]), clsIndex], { axis: 1 }); // [N, W]
  const blockCls: string[] = []; // the class token after each block, [N, 1, W] each
  const axis1 = opts.blockCls ? ints('axis_1', [1]) : '';
  // [N, W]
  const tokenMean = (v: string) => g.op('ReduceMean', [g.op('Reshape', [v, seqs])], { axes: [1], keepdims: 0 });
  if (k === 0) low = tokenMean(x);
  layers.forEach((layer, i) => {
    const name = `layers.${i}`;
    const a = layer.self_attn;
    // q, k, v weights side by side as the Attention op reads them: [W, 3W], bias [3W]
    const h1 = ln(x, layer.layer_norm1, `${name}.layer_norm1`); // [N·L, W]
    const att = attention(h1, a, name); // [N, L, W]
    x = g.op('Add', [x, lin(g.op('Reshape', [att, rows]), a.out_proj, `${name}.out_proj`, q8('out_proj'))]);
    const m = lin(ln(x, layer.layer_norm2, `${name}.layer_norm2`), layer.mlp.fc1, `${name}.fc1`, q8('fc1'));
    const act =
      cfg.hidden_act === 'quick_gelu'
        ? g.op('QuickGelu', [m], { alpha: { f: 1.702 } }, { domain: MS })
        : g.op('Gelu', [m], {}, { domain: MS });
    x = g.op('Add', [x, lin(act, layer.mlp.fc2, `${name}.fc2`, q8('fc2'))]);
    if (k === i + 1) low = tokenMean(x);
    if (opts.blockCls) blockCls.push(g.op('Unsqueeze', [clsOf(x), axis1]));
  });

  const clsOut = clsOf(x);
  // [N, E]
  const post = ln(clsOut, vm.post_layernorm, 'post_layernorm');
  const embeds = lin(post, clip.visual_projection, 'visual_projection', plan?.projection ?? false);
  g.output(embeds, 'image_embeds', 'float32', ['N', E]);
  if (low !== undefined) g.output(low, 'low', 'float32', ['N', W]);
  if (opts.blockCls) g.output(g.op('Concat', blockCls, { axis: 1 }), 'block_cls', 'float32', ['N', layers.length, W]);
  return g.toBytes();
}
