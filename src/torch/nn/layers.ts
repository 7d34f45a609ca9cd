// The standard layers, with PyTorch's parameter names, shapes, initialisation and semantics, so
// that a state dict saved by PyTorch loads here and gives the same outputs.
import * as F from '../functional.js';
import { native } from '../native.js';
import { Tensor, empty, noGrad, ones, zeros } from '../tensor.js';
import { Module, Parameter } from './module.js';

// U(-bound, bound): PyTorch's default for Linear/Conv (kaiming_uniform with a = √5 works out to
// bound = 1/√fan_in) and for LSTM (bound = 1/√hidden).
function uniform(shape: number[], bound: number): Parameter {
  return new Parameter(empty(shape).uniform_(-bound, bound));
}

export class Linear extends Module {
  readonly weight: Parameter; // [out, in]
  readonly bias?: Parameter; // [out]

  constructor(
    readonly inFeatures: number,
    readonly outFeatures: number,
    opts: { bias?: boolean } = {},
  ) {
    super();
    const bound = 1 / Math.sqrt(inFeatures);
    this.weight = uniform([outFeatures, inFeatures], bound);
    if (opts.bias ?? true) this.bias = uniform([outFeatures], bound);
  }

  forward(x: Tensor): Tensor {
    return F.linear(x, this.weight, this.bias);
  }
}

export class LayerNorm extends Module {
  readonly weight?: Parameter;
  readonly bias?: Parameter;
  readonly shape: number[];

  constructor(
    shape: number | number[],
    readonly eps = 1e-5,
    opts: { elementwiseAffine?: boolean } = {},
  ) {
    super();
    this.shape = [shape].flat();
    if (opts.elementwiseAffine ?? true) {
      this.weight = new Parameter(ones(this.shape));
      this.bias = new Parameter(zeros(this.shape));
    }
  }

  forward(x: Tensor): Tensor {
    return F.layerNorm(x, this.shape, this.weight, this.bias, this.eps);
  }
}

export class Embedding extends Module {
  readonly weight: Parameter; // [num, dim], N(0, 1) as PyTorch

  constructor(
    readonly numEmbeddings: number,
    readonly embeddingDim: number,
  ) {
    super();
    this.weight = new Parameter(empty([numEmbeddings, embeddingDim]).normal_(0, 1));
  }

  forward(ids: Tensor): Tensor {
    return F.embedding(this.weight, ids);
  }
}

export interface ConvLayerOptions {
  stride?: number;
  padding?: number;
  dilation?: number;
  groups?: number;
  bias?: boolean;
}

abstract class ConvNd extends Module {
  readonly weight: Parameter; // [out, in/groups, ...kernel]
  readonly bias?: Parameter;

  constructor(
    readonly inChannels: number,
    readonly outChannels: number,
    kernel: number[],
    readonly opts: ConvLayerOptions,
  ) {
    super();
    const groups = opts.groups ?? 1;
    if (inChannels % groups || outChannels % groups)
      throw new RangeError(`conv: channels ${inChannels}->${outChannels} not divisible by groups ${groups}`);
    const bound = 1 / Math.sqrt((inChannels / groups) * kernel.reduce((a, b) => a * b, 1));
    this.weight = uniform([outChannels, inChannels / groups, ...kernel], bound);
    if (opts.bias ?? true) this.bias = uniform([outChannels], bound);
  }
}

/** x [B, Cin, L] -> [B, Cout, L']. */
export class Conv1d extends ConvNd {
  constructor(inChannels: number, outChannels: number, kernelSize: number, opts: ConvLayerOptions = {}) {
    super(inChannels, outChannels, [kernelSize], opts);
  }

  forward(x: Tensor): Tensor {
    return F.conv1d(x, this.weight, this.bias, this.opts);
  }
}

/** x [B, Cin, H, W] -> [B, Cout, H', W']. */
export class Conv2d extends ConvNd {
  constructor(
    inChannels: number,
    outChannels: number,
    kernelSize: number | [number, number],
    opts: ConvLayerOptions = {},
  ) {
    super(inChannels, outChannels, Array.isArray(kernelSize) ? kernelSize : [kernelSize, kernelSize], opts);
  }

  forward(x: Tensor): Tensor {
    return F.conv2d(x, this.weight, this.bias, this.opts);
  }
}

export interface LSTMOptions {
  numLayers?: number;
  bias?: boolean;
  batchFirst?: boolean;
  dropout?: number;
  bidirectional?: boolean;
}

/**
 * PyTorch's LSTM (libtorch's own kernel), with its weight names: weight_ih_l{k}[_reverse]
 * [4H, in], weight_hh_l{k} [4H, H], bias_ih_l{k}, bias_hh_l{k} [4H]; gate order i, f, g, o.
 */
export class LSTM extends Module {
  readonly numLayers: number;
  readonly batchFirst: boolean;
  readonly bidirectional: boolean;
  readonly dropout: number;
  readonly hasBias: boolean;

  constructor(
    readonly inputSize: number,
    readonly hiddenSize: number,
    opts: LSTMOptions = {},
  ) {
    super();
    this.numLayers = opts.numLayers ?? 1;
    this.batchFirst = opts.batchFirst ?? false;
    this.bidirectional = opts.bidirectional ?? false;
    this.dropout = opts.dropout ?? 0;
    this.hasBias = opts.bias ?? true;
    const bound = 1 / Math.sqrt(hiddenSize);
    const self = this as unknown as Record<string, Parameter>;
    for (let l = 0; l < this.numLayers; l++) {
      for (const suffix of this.bidirectional ? ['', '_reverse'] : ['']) {
        const inp = l === 0 ? inputSize : hiddenSize * (this.bidirectional ? 2 : 1);
        self[`weight_ih_l${l}${suffix}`] = uniform([4 * hiddenSize, inp], bound);
        self[`weight_hh_l${l}${suffix}`] = uniform([4 * hiddenSize, hiddenSize], bound);
        if (this.hasBias) {
          self[`bias_ih_l${l}${suffix}`] = uniform([4 * hiddenSize], bound);
          self[`bias_hh_l${l}${suffix}`] = uniform([4 * hiddenSize], bound);
        }
      }
    }
  }

  /**
   * x [B, T, in] (batchFirst) or [T, B, in] -> output [.., T, dirs·H], and the last h and c
   * [layers·dirs, B, H]. h0/c0 default to zeros.
   */
  forward(x: Tensor, state?: { h: Tensor; c: Tensor }): { output: Tensor; h: Tensor; c: Tensor } {
    const params = this.parameters().map((p) => p.handle);
    const dirs = this.bidirectional ? 2 : 1;
    const batch = x.size(this.batchFirst ? 0 : 1);
    const own = !state;
    const h0 = state?.h ?? zeros([this.numLayers * dirs, batch, this.hiddenSize], { dtype: x.dtype, device: x.device });
    const c0 = state?.c ?? zeros([this.numLayers * dirs, batch, this.hiddenSize], { dtype: x.dtype, device: x.device });
    const [out, h, c] = native.lstm(
      x.handle,
      [h0.handle, c0.handle],
      params,
      this.hasBias,
      this.numLayers,
      this.dropout,
      this.training,
      this.bidirectional,
      this.batchFirst,
    );
    if (own) {
      h0.dispose();
      c0.dispose();
    }
    return { output: new Tensor(out), h: new Tensor(h), c: new Tensor(c) };
  }
}

/**
 * PyTorch's nn.MultiheadAttention: in_proj_weight [3E, E] (q, k, v rows), in_proj_bias [3E],
 * out_proj. Inputs [L, B, E], or [B, L, E] with batchFirst. A bool attnMask / keyPaddingMask
 * marks positions to HIDE (PyTorch's MHA convention).
 */
export class MultiheadAttention extends Module {
  readonly in_proj_weight: Parameter;
  readonly in_proj_bias?: Parameter;
  readonly out_proj: Linear;
  readonly headDim: number;
  readonly batchFirst: boolean;
  readonly dropout: number;

  constructor(
    readonly embedDim: number,
    readonly numHeads: number,
    opts: { bias?: boolean; batchFirst?: boolean; dropout?: number } = {},
  ) {
    super();
    if (embedDim % numHeads)
      throw new RangeError(`MultiheadAttention: embedDim ${embedDim} is not divisible by numHeads ${numHeads}`);
    this.headDim = embedDim / numHeads;
    this.batchFirst = opts.batchFirst ?? false;
    this.dropout = opts.dropout ?? 0;
    // xavier_uniform over [3E, E], zero biases, as PyTorch's _reset_parameters.
    this.in_proj_weight = uniform([3 * embedDim, embedDim], Math.sqrt(6 / (4 * embedDim)));
    const bias = opts.bias ?? true;
    if (bias) this.in_proj_bias = new Parameter(zeros([3 * embedDim]));
    this.out_proj = new Linear(embedDim, embedDim, { bias });
    noGrad(() => this.out_proj.bias?.zero_());
  }

  forward(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    opts: { attnMask?: Tensor; keyPaddingMask?: Tensor } = {},
  ): Tensor {
    // The per-head weights as computed, not their mean over heads: nothing reads them here.
    return this.forwardWithWeights(query, key, value, { ...opts, averageAttnWeights: false }).output;
  }

  /** Also returns the attention weights [B, L, S] (averaged over heads) or [B, heads, L, S]. */
  forwardWithWeights(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    opts: { attnMask?: Tensor; keyPaddingMask?: Tensor; averageAttnWeights?: boolean } = {},
  ): { output: Tensor; weights: Tensor } {
    const E = this.embedDim;
    const H = this.numHeads;
    const d = this.headDim;
    // Work batch-first internally: [B, L, E].
    // (one transposed view per distinct input: project() fuses the products of the same tensor)
    const first = (t: Tensor) => (this.batchFirst ? t : t.transpose(0, 1));
    const q0 = first(query);
    const k0 = key === query ? q0 : first(key);
    const v0 = value === key ? k0 : first(value);
    const [B, L] = q0.shape as [number, number];
    const S = k0.size(1);
    const heads = (x: Tensor, n: number) => x.view(B, n, H, d).transpose(1, 2); // [B, H, n, d]
    const [q, k, v] = this.project(q0, k0, v0).map((x, i) => heads(x, i === 0 ? L : S)) as [Tensor, Tensor, Tensor];
    const mask = this.additiveMask(opts.attnMask, opts.keyPaddingMask, B, L, S, q.dtype);
    const att = F.attention(q, k, v, { attnMask: mask, dropoutP: this.dropout, training: this.training });
    const merged = att.output.transpose(1, 2).reshape(B, L, E); // [B, L, E]
    let output = this.out_proj.forward(merged);
    if (!this.batchFirst) output = output.transpose(0, 1);
    const weights = (opts.averageAttnWeights ?? true) ? att.weights.mean(1) : att.weights;
    return { output, weights };
  }

  /**
   * q, k, v = the input projections [B, n, E]. Inputs that are the same tensor share one product
   * with the rows of in_proj_weight they need (self-attention: one [3E, E] product; keys = values:
   * one [2E, E]), as PyTorch does: one larger GEMM runs faster than two or three small ones.
   */
  private project(query: Tensor, key: Tensor, value: Tensor): Tensor[] {
    const E = this.embedDim;
    const w = this.in_proj_weight; // [3E, E]: rows q, k, v
    const b = this.in_proj_bias;
    const rows = (from: number, n: number) => [w.narrow(0, from * E, n * E), b?.narrow(0, from * E, n * E)] as const;
    const linear = (x: Tensor, from: number, n: number) => {
      const y = F.linear(x, ...rows(from, n));
      return n === 1 ? [y] : y.chunk(n, -1);
    };
    if (query === key && key === value) return linear(query, 0, 3);
    if (key === value) return [...linear(query, 0, 1), ...linear(key, 1, 2)];
    return [...linear(query, 0, 1), ...linear(key, 1, 1), ...linear(value, 2, 1)];
  }

  // Both masks as one float mask broadcastable to [B, H, L, S]: 0 where allowed, -inf where hidden.
  private additiveMask(
    attnMask: Tensor | undefined,
    padMask: Tensor | undefined,
    B: number,
    L: number,
    S: number,
    dtype: string,
  ): Tensor | undefined {
    const toFloat = (m: Tensor) =>
      m.dtype === 'bool' ? zeros(m.shape, { dtype: dtype as 'float32' }).maskedFill(m, -Infinity) : m;
    let mask: Tensor | undefined;
    if (attnMask) {
      const m = toFloat(attnMask);
      mask = m.ndim === 2 ? m.view(1, 1, L, S) : m.view(B, this.numHeads, L, S);
    }
    if (padMask) {
      const p = toFloat(padMask).view(B, 1, 1, S);
      mask = mask ? mask.add(p) : p;
    }
    return mask;
  }
}

export class Dropout extends Module {
  constructor(readonly p = 0.5) {
    super();
  }

  forward(x: Tensor): Tensor {
    return F.dropout(x, this.p, this.training);
  }
}

export class GELU extends Module {
  constructor(readonly approximate: 'none' | 'tanh' = 'none') {
    super();
  }

  forward(x: Tensor): Tensor {
    return x.gelu(this.approximate);
  }
}

export class ReLU extends Module {
  forward(x: Tensor): Tensor {
    return x.relu();
  }
}

/** Anything with a one-tensor forward. */
export interface Layer extends Module {
  forward(x: Tensor): Tensor;
}

/** Runs its layers in order; their parameters are named "0.weight", "1.bias", ... as in PyTorch. */
export class Sequential extends Module {
  readonly length: number;

  constructor(...layers: Layer[]) {
    super();
    layers.forEach((m, i) => ((this as unknown as Record<string, Layer>)[String(i)] = m));
    this.length = layers.length;
  }

  at(i: number): Layer {
    return (this as unknown as Record<string, Layer>)[String(i)]!;
  }

  forward(x: Tensor): Tensor {
    let y = x;
    for (let i = 0; i < this.length; i++) y = this.at(i).forward(y);
    return y;
  }
}
