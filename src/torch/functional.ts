// Neural-network functions (PyTorch's torch.nn.functional), as plain functions of tensors.
import { native } from './native.js';
import { Tensor, isGradEnabled } from './tensor.js';

const pair = (v: number | number[], n: number): number[] => (Array.isArray(v) ? v : Array(n).fill(v));

/** y = x Wᵀ + b, with W [out, in]. */
export function linear(x: Tensor, weight: Tensor, bias?: Tensor): Tensor {
  return new Tensor(native.linear(x.handle, weight.handle, bias?.handle));
}

/** LayerNorm over the trailing dims `shape`, biased variance, as PyTorch. */
export function layerNorm(x: Tensor, shape: number[], weight?: Tensor, bias?: Tensor, eps = 1e-5): Tensor {
  return new Tensor(native.layerNorm(x.handle, shape, weight?.handle, bias?.handle, eps));
}

export interface ConvOptions {
  stride?: number | number[];
  padding?: number | number[];
  dilation?: number | number[];
  groups?: number;
}

/** x [B, Cin, L], weight [Cout, Cin/groups, K] -> [B, Cout, L']. */
export function conv1d(x: Tensor, weight: Tensor, bias?: Tensor, o: ConvOptions = {}): Tensor {
  return new Tensor(
    native.conv1d(
      x.handle,
      weight.handle,
      bias?.handle,
      pair(o.stride ?? 1, 1),
      pair(o.padding ?? 0, 1),
      pair(o.dilation ?? 1, 1),
      o.groups ?? 1,
    ),
  );
}

/**
 * Constant padding of the trailing dims, PyTorch's order: pads = [left, right, top, bottom, ...]
 * from the last dim backwards.
 */
export function pad(x: Tensor, pads: number[], value = 0): Tensor {
  return new Tensor(native.pad(x.handle, pads, value));
}

/** x [B, Cin, H, W], weight [Cout, Cin/groups, Kh, Kw] -> [B, Cout, H', W']. */
export function conv2d(x: Tensor, weight: Tensor, bias?: Tensor, o: ConvOptions = {}): Tensor {
  return new Tensor(
    native.conv2d(
      x.handle,
      weight.handle,
      bias?.handle,
      pair(o.stride ?? 1, 2),
      pair(o.padding ?? 0, 2),
      pair(o.dilation ?? 1, 2),
      o.groups ?? 1,
    ),
  );
}

export function dropout(x: Tensor, p: number, training: boolean): Tensor {
  if (!(p >= 0 && p <= 1)) throw new RangeError(`dropout: p must be in [0, 1], got ${p}`);
  return p === 0 || !training ? x : new Tensor(native.dropout(x.handle, p, training));
}

export type Reduction = 'mean' | 'sum' | 'none';

/**
 * Cross-entropy of logits [N, C] (or [N, C, ...]) against class indices [N] (int64), with PyTorch's
 * options.
 */
export function crossEntropy(
  logits: Tensor,
  target: Tensor,
  o: { weight?: Tensor; reduction?: Reduction; ignoreIndex?: number; labelSmoothing?: number } = {},
): Tensor {
  return new Tensor(
    native.crossEntropy(
      logits.handle,
      target.handle,
      o.weight?.handle,
      o.reduction ?? 'mean',
      o.ignoreIndex ?? -100,
      o.labelSmoothing ?? 0,
    ),
  );
}

export function mseLoss(a: Tensor, b: Tensor, reduction: Reduction = 'mean'): Tensor {
  return new Tensor(native.mseLoss(a.handle, b.handle, reduction));
}

/** cos(a, b) along dim: a·b / max(‖a‖‖b‖, eps), as PyTorch. */
export function cosineSimilarity(a: Tensor, b: Tensor, dim = 1, eps = 1e-8): Tensor {
  return new Tensor(native.cosineSimilarity(a.handle, b.handle, dim, eps));
}

/** x / max(‖x‖_p, eps) along dim, as PyTorch's F.normalize. */
export function normalize(x: Tensor, dim = -1, p = 2, eps = 1e-12): Tensor {
  const n = x.norm(p, dim, true);
  const d = n.clampMin(eps);
  const out = x.div(d);
  n.dispose();
  d.dispose();
  return out;
}

export function softmax(x: Tensor, dim: number): Tensor {
  return x.softmax(dim);
}
export function logSoftmax(x: Tensor, dim: number): Tensor {
  return x.logSoftmax(dim);
}
export function gelu(x: Tensor, approximate: 'none' | 'tanh' = 'none'): Tensor {
  return x.gelu(approximate);
}
export function relu(x: Tensor): Tensor {
  return x.relu();
}
/**
 * x·sigmoid(1.702x): the GELU approximation OpenAI's CLIP was trained with, computed as
 * silu(1.702x)/1.702, because SiLU is one fused pass where sigmoid-then-multiply is two passes and
 * one [tokens, 4W] tensor more: 11% of the frozen vision tower's time. Without autograd
 * the SiLU runs in place; with it, SiLU keeps its input for backward, and only its output (which
 * backward does not read) is divided in place.
 */
export function quickGelu(x: Tensor): Tensor {
  const z = x.mul(1.702);
  if (!(x.requiresGrad && isGradEnabled())) return z.silu_().div_(1.702);
  const out = z.silu();
  z.dispose();
  return out.div_(1.702);
}
export function embedding(weight: Tensor, ids: Tensor): Tensor {
  return new Tensor(native.embedding(weight.handle, ids.handle));
}
export function oneHot(ids: Tensor, numClasses: number): Tensor {
  return new Tensor(native.oneHot(ids.handle, numClasses));
}

/**
 * softmax(q kᵀ · scale + mask) v over the last two dims: q [..., Lq, d], k [..., Lk, d],
 * v [..., Lk, dv] -> [..., Lq, dv]. `attnMask` is added to the scores when float, or keeps the
 * positions where it is true when bool; `isCausal` hides keys after each query.
 */
export function scaledDotProductAttention(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  o: { attnMask?: Tensor; isCausal?: boolean; dropoutP?: number; training?: boolean; scale?: number } = {},
): Tensor {
  return attention(q, k, v, o).output;
}

/** scaledDotProductAttention that also returns the attention weights [..., Lq, Lk]. */
export function attention(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  o: { attnMask?: Tensor; isCausal?: boolean; dropoutP?: number; training?: boolean; scale?: number } = {},
): { output: Tensor; weights: Tensor } {
  const d = q.size(-1);
  // Intermediates are freed here, so that attention used outside a tidy() leaves nothing behind.
  const temps: Tensor[] = [];
  const t = <T extends Tensor>(x: T): T => (temps.push(x), x);
  let scores = t(t(q.mul(o.scale ?? 1 / Math.sqrt(d))).matmul(t(k.mT))); // [..., Lq, Lk]
  if (o.isCausal) {
    const ones = t(new Tensor(native.ones([q.size(-2), k.size(-2)], 'bool', q.device)));
    scores = t(scores.maskedFill(t(ones.triu(1)), -Infinity)); // query i sees keys ≤ i
  }
  if (o.attnMask) {
    scores = t(
      o.attnMask.dtype === 'bool' ? scores.maskedFill(t(o.attnMask.logicalNot()), -Infinity) : scores.add(o.attnMask),
    );
  }
  let weights = scores.softmax(-1);
  if (o.dropoutP && o.training) {
    const w = dropout(weights, o.dropoutP, true);
    temps.push(weights);
    weights = w;
  }
  const output = weights.matmul(v);
  for (const x of temps) x.dispose();
  return { output, weights };
}
