// The OUS head (SPEC.md §4, the paper's Fig. 3), on cached frozen-encoder features:
//   face_emb, scene_emb [B, T, E] -> shared LSTM -> H_f, H_s
//   H_f -> Frames Encoder -> Z_f [B, T+1, E];  H_s -> (Frames Mean after alignment)
//   alignment A = Linear(GELU(Conv1d_k3(.))): F = A(Z_f), S = A(H_s); a_f = F[:, 0], a_s = mean_t S
//   scene_low [B, T, W] -> Polarity Encoder -> V_pol [B, E] -> polarity logits [B, 3]
//   X = [F; a_s; V_pol] + type embeddings -> Type Fusion Encoder -> z [B, E]
//   logits = cos(z, t_c) / τ_cls against the prompt learner's class features t_c.
// And the face-only baseline (SPEC.md §8): face_emb -> Frames Encoder -> CLS -> the same classifier.
import { F, type Tensor, cat, empty, noGrad, ones, tidy, zeros, nn } from '../torch/index.js';
import type { FeatureBatch } from '../data/dataset.js';
import type { EncoderDims, OusConfig } from './config.js';
import { PromptLearner, type FrozenTextTower } from './prompt.js';

/** A pre-LN transformer block: x + MHA(LN(x)), then x + MLP(LN(x)) with GELU and hidden 4E. */
class EncoderBlock extends nn.Module {
  readonly ln_1: nn.LayerNorm;
  readonly attn: nn.MultiheadAttention;
  readonly ln_2: nn.LayerNorm;
  readonly mlp: nn.Sequential;

  constructor(width: number, heads: number) {
    super();
    this.ln_1 = new nn.LayerNorm(width);
    this.attn = new nn.MultiheadAttention(width, heads, { batchFirst: true });
    this.ln_2 = new nn.LayerNorm(width);
    this.mlp = new nn.Sequential(new nn.Linear(width, 4 * width), new nn.GELU(), new nn.Linear(4 * width, width));
  }

  forward(x: Tensor): Tensor {
    const h = this.ln_1.forward(x);
    const y = x.add(this.attn.forward(h, h, h));
    return y.add(this.mlp.forward(this.ln_2.forward(y)));
  }
}

/** Frames Encoder: a learned CLS token and positions, then pre-LN blocks. [B, T, E] -> [B, T+1, E]. */
export class FramesEncoder extends nn.Module {
  readonly cls: nn.Parameter; // [E]
  readonly positions: nn.Parameter; // [T+1, E]
  readonly blocks: EncoderBlock[];

  constructor(width: number, frames: number, layers: number, heads: number) {
    super();
    this.cls = new nn.Parameter(empty([width]).normal_(0, 0.02));
    this.positions = new nn.Parameter(empty([frames + 1, width]).normal_(0, 0.02));
    this.blocks = Array.from({ length: layers }, () => new EncoderBlock(width, heads));
  }

  forward(x: Tensor): Tensor {
    const B = x.size(0);
    let h = cat([this.cls.view(1, 1, -1).expand(B, 1, -1), x], 1).add(this.positions); // [B, T+1, E]
    for (const b of this.blocks) h = b.forward(h);
    return h;
  }
}

/** Alignment A(X) = Linear(GELU(Conv1d_k3(X))) over the token axis, shared by both streams. */
export class Alignment extends nn.Module {
  readonly conv: nn.Conv1d;
  readonly fc: nn.Linear;

  constructor(width: number) {
    super();
    this.conv = new nn.Conv1d(width, width, 3, { padding: 1 });
    this.fc = new nn.Linear(width, width);
  }

  forward(x: Tensor): Tensor {
    const c = this.conv.forward(x.transpose(1, 2)).transpose(1, 2); // [B, n, E]
    return this.fc.forward(c.gelu());
  }
}

/** Polarity Encoder: scene_low [B, T, W] -> Linear -> GELU -> Linear -> mean over T -> V_pol [B, E]. */
export class PolarityEncoder extends nn.Module {
  readonly fc1: nn.Linear;
  readonly fc2: nn.Linear;

  constructor(visionWidth: number, width: number) {
    super();
    this.fc1 = new nn.Linear(visionWidth, width);
    this.fc2 = new nn.Linear(width, width);
  }

  forward(low: Tensor): Tensor {
    return this.fc2.forward(this.fc1.forward(low).gelu()).mean(1);
  }
}

/** One cross-type attention block, the paper's eqs. (5)–(10). */
export class TypeFusionBlock extends nn.Module {
  readonly ln_kv: nn.LayerNorm;
  readonly attn: nn.MultiheadAttention;
  readonly ln_a: nn.LayerNorm;
  readonly mlp: nn.Sequential; // W2·ReLU(W1·x + b1) + b2, hidden 4E (eq. 9)
  readonly ln_c: nn.LayerNorm;

  constructor(
    width: number,
    heads: number,
    readonly residual: boolean,
  ) {
    super();
    this.ln_kv = new nn.LayerNorm(width);
    this.attn = new nn.MultiheadAttention(width, heads, { batchFirst: true });
    this.ln_a = new nn.LayerNorm(width);
    this.mlp = new nn.Sequential(new nn.Linear(width, 4 * width), new nn.ReLU(), new nn.Linear(4 * width, width));
    this.ln_c = new nn.LayerNorm(width);
  }

  /** q [B, Nq, E] attends to the tokens X [B, n, E]. */
  forward(q: Tensor, tokens: Tensor): Tensor {
    const kv = this.ln_kv.forward(tokens); // eq. (5): keys and values are normalised first
    const att = this.attn.forward(q, kv, kv); // eq. (15)
    const o = this.ln_a.forward(this.residual ? q.add(att) : att); // eq. (7)
    const ff = this.mlp.forward(o); // eqs. (8)-(9)
    return this.ln_c.forward(this.residual ? o.add(ff) : ff); // eq. (10)
  }
}

/**
 * Type Fusion Encoder: learnable queries Q [Nq, E], ONE tensor shared by every block and re-added
 * to each block's input (q_i = x_{i-1} + Q, x_0 = 0, as DETR re-adds its object queries); the
 * output is the mean over queries of the last block's output.
 */
export class TypeFusionEncoder extends nn.Module {
  readonly queries: nn.Parameter; // [Nq, E] ~ N(0, 0.02²) (eq. 6)
  readonly blocks: TypeFusionBlock[];

  constructor(width: number, layers: number, numQueries: number, heads: number, residual: boolean) {
    super();
    this.queries = new nn.Parameter(empty([numQueries, width]).normal_(0, 0.02));
    this.blocks = Array.from({ length: layers }, () => new TypeFusionBlock(width, heads, residual));
  }

  forward(tokens: Tensor): Tensor {
    const B = tokens.size(0);
    const Q = this.queries.unsqueeze(0).expand(B, -1, -1); // [B, Nq, E]
    let x: Tensor | undefined;
    for (const block of this.blocks) x = block.forward(x ? x.add(Q) : Q, tokens);
    return x!.mean(1); // [B, E]
  }
}

export interface HeadOutput {
  logits: Tensor; // [B, C], cos(z, t_c) / τ_cls
  polarityLogits?: Tensor; // [B, 3]
  aFace?: Tensor; // a_f [B, E], aligned face CLS
  aScene?: Tensor; // a_s [B, E], aligned scene mean (V_st)
  // The four stages of the paper's Fig. 4 (SPEC.md §9), for embeddings of the feature space.
  stages: { encoder: Tensor; framesCls: Tensor; aligned: Tensor; fused: Tensor };
}

/** cos(z, t_c) / τ for every class: the prompt classifier. z [B, E], text [C, E] -> [B, C]. */
export function promptLogits(z: Tensor, text: Tensor, tau: number): Tensor {
  return F.normalize(z).matmul(F.normalize(text).mT).div(tau);
}

export class OusHead extends nn.Module {
  readonly lstm: nn.LSTM;
  readonly frames_encoder: FramesEncoder;
  readonly alignment: Alignment;
  readonly polarity_encoder: PolarityEncoder;
  readonly polarity_head: nn.Linear;
  readonly type_embedding: nn.Parameter; // [3, E]: face, scene, polarity
  readonly fusion?: TypeFusionEncoder;
  readonly prompt_learner: PromptLearner;
  readonly standardizer?: FeatureStandardizer;

  constructor(
    readonly config: OusConfig,
    dims: EncoderDims,
    text: FrozenTextTower,
  ) {
    super();
    const E = dims.embed;
    if (config.standardize) this.standardizer = new FeatureStandardizer(dims);
    this.lstm = new nn.LSTM(E, E, { batchFirst: true });
    this.frames_encoder = new FramesEncoder(E, config.frames, config.framesLayers, config.heads);
    this.alignment = new Alignment(E);
    this.polarity_encoder = new PolarityEncoder(dims.visionWidth, E);
    this.polarity_head = new nn.Linear(E, 3);
    this.type_embedding = new nn.Parameter(zeros([3, E]).normal_(0, 0.02));
    if (config.fusion === 'tfe')
      this.fusion = new TypeFusionEncoder(E, config.tfeLayers, config.tfeQueries, config.heads, config.tfeResidual);
    this.prompt_learner = new PromptLearner(text, config.classNames, {
      promptLength: config.promptLength,
      perClass: config.promptPerClass,
    });
  }

  forward(input: Pick<FeatureBatch, 'face' | 'scene' | 'low'>): HeadOutput {
    const b = this.standardizer ? this.standardizer.forward(input) : input;
    const Hf = this.lstm.forward(b.face).output; // [B, T, E]
    const Zf = this.frames_encoder.forward(Hf); // [B, T+1, E]
    const Fa = this.alignment.forward(Zf); // [B, T+1, E]
    // alignLstm false: L_sim and L_nce see the same values through a copy of the path that starts
    // after the LSTM, so their gradients reach the Frames Encoder and the alignment but not the LSTM.
    const apart = !this.config.alignLstm && this.training;
    const aFace = apart
      ? this.alignment.forward(this.frames_encoder.forward(Hf.detach())).select(1, 0)
      : Fa.select(1, 0);
    const type = (i: number) => this.type_embedding.select(0, i);
    let tokens = Fa.add(type(0));
    let aScene: Tensor | undefined;
    let polarityLogits: Tensor | undefined;
    if (this.config.scene) {
      const Hs = this.lstm.forward(b.scene).output; // [B, T, E], the same LSTM
      const Vst = this.alignment.forward(Hs).mean(1); // Frames Mean after alignment: V_st [B, E]
      aScene = apart ? this.alignment.forward(Hs.detach()).mean(1) : Vst;
      const vPol = this.polarity_encoder.forward(b.low); // [B, E]
      polarityLogits = this.polarity_head.forward(vPol); // [B, 3]
      tokens = cat([tokens, Vst.add(type(1)).unsqueeze(1), vPol.add(type(2)).unsqueeze(1)], 1); // [B, T+3, E]
    }
    const z = this.fusion ? this.fusion.forward(tokens) : tokens.mean(1); // [B, E]
    const logits = promptLogits(z, this.prompt_learner.textFeatures(), this.config.tauCls);
    return {
      logits,
      polarityLogits,
      aFace,
      aScene,
      stages: { encoder: b.face.mean(1), framesCls: Zf.select(1, 0), aligned: aFace, fused: z },
    };
  }
}

/**
 * The frozen features standardised by the training split's statistics (config `standardize`): each
 * of face_emb, scene_emb, scene_low minus its per-dimension mean, over its std. The statistics are
 * buffers, so the checkpoint carries them to eval, predict and serve. Why: the frozen encoder's
 * embeddings can be nearly collinear (every clip's within a few degrees), which leaves the head on
 * a long plateau where only the scene's polarity is learnt (docs/DECISIONS.md, "The demo").
 */
export class FeatureStandardizer extends nn.Module {
  readonly face_mean: nn.Buffer; // [E]
  readonly face_std: nn.Buffer;
  readonly scene_mean: nn.Buffer; // [E]
  readonly scene_std: nn.Buffer;
  readonly low_mean: nn.Buffer; // [W]
  readonly low_std: nn.Buffer;

  constructor(dims: EncoderDims) {
    super();
    [this.face_mean, this.scene_mean, this.low_mean] = [dims.embed, dims.embed, dims.visionWidth].map(
      (n) => new nn.Buffer(zeros([n])),
    );
    [this.face_std, this.scene_std, this.low_std] = [dims.embed, dims.embed, dims.visionWidth].map(
      (n) => new nn.Buffer(ones([n])),
    );
  }

  /** Sets the statistics from training features: face, scene [N, T, E], low [N, T, W]. */
  fit(b: Pick<FeatureBatch, 'face' | 'scene' | 'low'>): void {
    noGrad(() =>
      tidy(() => {
        for (const [x, mean, std] of [
          [b.face, this.face_mean, this.face_std],
          [b.scene, this.scene_mean, this.scene_std],
          [b.low, this.low_mean, this.low_std],
        ] as const) {
          const rows = x.reshape([-1, x.size(-1)]); // [N·T, D]
          mean.copy_(rows.mean(0));
          // a constant dimension stays as it is, centred
          std.copy_(rows.var(0, { unbiased: false }).sqrt().clampMin(1e-6));
        }
      }),
    );
  }

  forward(b: Pick<FeatureBatch, 'face' | 'scene' | 'low'>): Pick<FeatureBatch, 'face' | 'scene' | 'low'> {
    return {
      face: b.face.sub(this.face_mean).div(this.face_std),
      scene: b.scene.sub(this.scene_mean).div(this.scene_std),
      low: b.low.sub(this.low_mean).div(this.low_std),
    };
  }
}

/** The face-only baseline: face_emb -> Frames Encoder -> CLS -> the same prompt classifier. */
export class FaceOnlyHead extends nn.Module {
  readonly frames_encoder: FramesEncoder;
  readonly prompt_learner: PromptLearner;
  readonly standardizer?: FeatureStandardizer;

  constructor(
    readonly config: OusConfig,
    dims: EncoderDims,
    text: FrozenTextTower,
  ) {
    super();
    if (config.standardize) this.standardizer = new FeatureStandardizer(dims);
    this.frames_encoder = new FramesEncoder(dims.embed, config.frames, config.framesLayers, config.heads);
    this.prompt_learner = new PromptLearner(text, config.classNames, {
      promptLength: config.promptLength,
      perClass: config.promptPerClass,
    });
  }

  forward(input: Pick<FeatureBatch, 'face' | 'scene' | 'low'>): HeadOutput {
    const b = this.standardizer ? this.standardizer.forward(input) : input;
    const cls = this.frames_encoder.forward(b.face).select(1, 0); // [B, E]
    const logits = promptLogits(cls, this.prompt_learner.textFeatures(), this.config.tauCls);
    return { logits, stages: { encoder: b.face.mean(1), framesCls: cls, aligned: cls, fused: cls } };
  }
}

export type Head = OusHead | FaceOnlyHead;

export function buildHead(config: OusConfig, dims: EncoderDims, text: FrozenTextTower): Head {
  return config.model === 'face-only' ? new FaceOnlyHead(config, dims, text) : new OusHead(config, dims, text);
}
