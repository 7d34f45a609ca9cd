// OUS's losses (SPEC.md §6), each a small function of the head's outputs:
//   L_cls      cross-entropy of the prompt logits
//   L_nce      eq. (3): −Σ_i log softmax_j(cos(a_s_i, a_f_j)/τ)[i]   (reduction 'sum'; 'mean': over i)
//   L_sim      eq. (2): 1 − mean_i cos(a_f_i, a_s_i)
//   L_pol      eq. (1): −Σ_i log p_i(polarity_i)                         (reduction 'sum'; 'mean': over i)
//   L_contrast = L_cls + λ·L_nce;  L_global = L_sim + L_pol + L_contrast
// and the α switch: back-propagate L_global while it exceeds α, else L_contrast.
import { F, type Tensor, arange } from '../torch/index.js';
import type { OusConfig } from './config.js';
import type { HeadOutput } from './model.js';

/** eq. (3): InfoNCE of aligned scene features against aligned face features over the batch. */
export function nceLoss(aScene: Tensor, aFace: Tensor, tau: number, reduction: Reduction = 'mean'): Tensor {
  const sim = F.normalize(aScene).matmul(F.normalize(aFace).mT).div(tau); // [B, B], row i: scene i vs every face
  return F.crossEntropy(sim, arange(aScene.size(0), undefined, 1, { device: aScene.device }), { reduction });
}

/** How L_pol and L_nce gather the batch: the paper's eqs. (1) and (3) sum over its N clips. */
type Reduction = OusConfig['reduction'];

/** eq. (2): one minus the mean cosine similarity of matching face and scene features. */
export function similarityLoss(aFace: Tensor, aScene: Tensor): Tensor {
  return F.cosineSimilarity(aFace, aScene, 1).mean().rsub(1);
}

export type LossPhase = 'global' | 'contrast' | 'ce';

export interface LossResult {
  /** What is back-propagated this step. */
  loss: Tensor;
  phase: LossPhase;
  /** Every term's value, for logging. */
  terms: Record<'cls' | 'nce' | 'sim' | 'pol' | 'contrast' | 'global', number>;
}

/**
 * The training objective of one batch. `loss: 'ce'` (the ablation, and the face-only baseline)
 * is L_cls alone; without scene outputs the scene terms are absent and L_cls is the loss too.
 * Without polarity labels (`polarity` null: the ablation `polarity: false`) L_pol is absent from L_global.
 */
export function ousLoss(
  out: HeadOutput,
  labels: Tensor,
  polarity: Tensor | null,
  cfg: Pick<OusConfig, 'loss' | 'alpha' | 'tauNce' | 'lambdaNce' | 'reduction'>,
): LossResult {
  const cls = F.crossEntropy(out.logits, labels);
  const terms = { cls: cls.item(), nce: NaN, sim: NaN, pol: NaN, contrast: NaN, global: NaN };
  if (cfg.loss === 'ce' || !out.aScene || !out.aFace || !out.polarityLogits) return { loss: cls, phase: 'ce', terms };
  const nce = nceLoss(out.aScene, out.aFace, cfg.tauNce, cfg.reduction);
  const sim = similarityLoss(out.aFace, out.aScene);
  const pol = polarity ? F.crossEntropy(out.polarityLogits, polarity, { reduction: cfg.reduction }) : null;
  const contrast = cls.add(nce.mul(cfg.lambdaNce));
  const global = (pol ? sim.add(pol) : sim).add(contrast);
  Object.assign(terms, {
    nce: nce.item(),
    sim: sim.item(),
    pol: pol ? pol.item() : NaN,
    contrast: contrast.item(),
    global: global.item(),
  });
  return terms.global > cfg.alpha
    ? { loss: global, phase: 'global', terms }
    : { loss: contrast, phase: 'contrast', terms };
}
