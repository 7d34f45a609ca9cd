// PromptLearner (CoOp, Zhou et al.): M learned context vectors [V]_1..[V]_M spliced before each
// class name, run through CLIP's frozen text tower to give one text feature per class (paper
// eq. 11, SPEC.md §5). Only the context vectors train.
import { type Tensor, cat, empty, noGrad, tensor, nn } from '../torch/index.js';

/** What the learner needs of CLIP: its tokenizer and the frozen text tower. */
export interface FrozenTextTower {
  /** OpenAI's tokenize of one text: ids padded to the context, and the end-of-text position. */
  tokenize(text: string): { ids: number[]; eotIndex: number };
  /** Token embeddings [N, L, Wt] of ids [N, L]. */
  embedTokens(ids: Tensor): Tensor;
  /** Text features [N, E] from token embeddings and end-of-text positions. */
  encode(tokenEmbeds: Tensor, eotIndex: number[]): Tensor;
  width: number; // Wt
}

export class PromptLearner extends nn.Module {
  readonly ctx: nn.Parameter; // [M, Wt] shared, or [C, M, Wt] per class; N(0, 0.02²)
  readonly promptLength: number;
  readonly prompts: string[];
  // Frozen, computed once: the embeddings of "X … X {name}." with the X rows to be replaced.
  // Buffers, so that to() moves them; not persistent: the text tower recomputes them.
  private readonly prefix: nn.Buffer; // [C, 1, Wt] start-of-text
  private readonly suffix: nn.Buffer; // [C, L-1-M, Wt] class name, ".", end-of-text, padding
  private readonly eotIndex: number[];
  private readonly encode: FrozenTextTower['encode'];
  private cached?: Tensor;

  constructor(tower: FrozenTextTower, classNames: string[], opts: { promptLength: number; perClass?: boolean }) {
    super();
    const M = opts.promptLength;
    this.promptLength = M;
    this.prompts = classNames.map((name) => `${'X '.repeat(M)}${name}.`);
    const tokenized = this.prompts.map((p) => tower.tokenize(p));
    const xId = tower.tokenize('X').ids[1]!;
    tokenized.forEach((t, c) => {
      const xs = t.ids.slice(1, 1 + M);
      if (xs.length !== M || xs.some((id) => id !== xId))
        throw new Error(`prompt for '${classNames[c]}' does not start with ${M} placeholder tokens`);
      if (t.eotIndex === t.ids.length - 1 && t.ids.length <= M + 2)
        throw new Error(`prompt length ${M} leaves no room for the class name '${classNames[c]}'`);
    });
    this.eotIndex = tokenized.map((t) => t.eotIndex);
    const L = Math.max(...this.eotIndex) + 1; // the tower never needs positions past the last EOT
    const embeds = noGrad(() =>
      tower.embedTokens(
        tensor(
          tokenized.map((t) => t.ids.slice(0, L)),
          { dtype: 'int64' },
        ),
      ),
    ); // [C, L, Wt]
    this.prefix = new nn.Buffer(embeds.narrow(1, 0, 1).contiguous(), { persistent: false });
    this.suffix = new nn.Buffer(embeds.narrow(1, 1 + M, L - 1 - M).contiguous(), { persistent: false });
    embeds.dispose();
    const shape = opts.perClass ? [classNames.length, M, tower.width] : [M, tower.width];
    this.ctx = new nn.Parameter(empty(shape).normal_(0, 0.02));
    this.encode = tower.encode;
  }

  /**
   * The class text features t_c [C, E] (not normalised). In eval mode they are computed once and
   * reused until clearTextFeatures(); in training they carry the graph to ctx.
   */
  textFeatures(): Tensor {
    if (!this.training && this.cached) return this.cached;
    const C = this.prefix.size(0);
    const ctx = this.ctx.ndim === 2 ? this.ctx.unsqueeze(0).expand(C, -1, -1) : this.ctx; // [C, M, Wt]
    const run = () => this.encode(cat([this.prefix, ctx, this.suffix], 1), this.eotIndex);
    if (this.training) return run();
    this.cached = noGrad(run).keep();
    return this.cached;
  }

  /**
   * Drops the cached text features. The cache is a function of ctx, which changes under it: by
   * loadStateDict and to() (through stateChanged), and by in-place writes this module cannot see,
   * such as a weight average lent for validation and taken back, whose owner calls
   * Module.weightsChanged (the trainer passes it as WeightAverage's `written`), so that averaged
   * weights are never evaluated with the trained weights' features whatever mode the head is in.
   * A mode switch clears it too; Adam's steps run in training mode, where nothing is cached.
   */
  clearTextFeatures(): void {
    this.cached?.dispose();
    this.cached = undefined;
  }

  protected override stateChanged(): void {
    this.clearTextFeatures();
  }
}
