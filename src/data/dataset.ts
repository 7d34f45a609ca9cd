// What training reads: per-clip frozen-encoder features (SPEC.md §3) and labels, batched as
// tensors. The feature cache implements this; tests build one in memory.
import { type Tensor, tensor, tidy, type Device } from '../torch/index.js';
import { rng, shuffled } from '../util/random.js';

export interface FeatureBatch {
  face: Tensor; // face_emb [B, T, E], float32
  scene: Tensor; // scene_emb [B, T, E]
  low: Tensor; // scene_low [B, T, W]
  labels: Tensor; // [B] int64
}

export interface FeatureDataset {
  readonly size: number;
  readonly labels: readonly number[]; // class index of each clip
  readonly dims: { frames: number; embed: number; visionWidth: number };
  /** The clips at `indices`, stacked; float32 on `device`. */
  batch(indices: number[], device?: Device): FeatureBatch;
}

/** A data set held in memory as stacked tensors [N, T, ·] (any float dtype; batches are float32). */
export class TensorDataset implements FeatureDataset {
  readonly size: number;
  readonly dims: { frames: number; embed: number; visionWidth: number };
  private readonly labelTensor: Tensor;

  constructor(
    private readonly face: Tensor,
    private readonly scene: Tensor,
    private readonly low: Tensor,
    readonly labels: readonly number[],
  ) {
    this.size = face.size(0);
    for (const [name, t] of [
      ['scene', scene],
      ['low', low],
    ] as const) {
      if (t.size(0) !== this.size || t.size(1) !== face.size(1))
        throw new RangeError(`TensorDataset: ${name} has shape [${t.shape}], face [${face.shape}]`);
    }
    if (labels.length !== this.size)
      throw new RangeError(`TensorDataset: ${labels.length} labels for ${this.size} clips`);
    this.dims = { frames: face.size(1), embed: face.size(2), visionWidth: low.size(2) };
    for (const t of [face, scene, low]) t.keep();
    this.labelTensor = tensorOfLabels(labels).keep();
  }

  batch(indices: number[], device?: Device): FeatureBatch {
    return tidy(() => {
      const idx = tensorOfLabels(indices);
      const pick = (t: Tensor) => t.indexSelect(0, idx).to({ dtype: 'float32', device });
      return {
        face: pick(this.face),
        scene: pick(this.scene),
        low: pick(this.low),
        labels: this.labelTensor.indexSelect(0, idx).to({ device }),
      };
    });
  }
}

function tensorOfLabels(v: readonly number[]): Tensor {
  return tensor([...v], { dtype: 'int64' });
}

/**
 * A stratified, seeded split of `indices` (SPEC.md §7: validation = 10% of each class of the
 * training split): at least one clip of a class goes to validation when the class has two or more.
 */
export function stratifiedSplit(
  indices: readonly number[],
  labels: readonly number[],
  fraction: number,
  seed: number,
): { train: number[]; val: number[] } {
  const byClass = new Map<number, number[]>();
  for (const i of indices) {
    const c = labels[i]!;
    if (!byClass.has(c)) byClass.set(c, []);
    byClass.get(c)!.push(i);
  }
  const random = rng(seed);
  const train: number[] = [];
  const val: number[] = [];
  for (const c of [...byClass.keys()].sort((a, b) => a - b)) {
    const members = shuffled(byClass.get(c)!, random);
    const k = members.length >= 2 ? Math.max(1, Math.round(members.length * fraction)) : 0;
    val.push(...members.slice(0, k));
    train.push(...members.slice(k));
  }
  return { train: train.sort((a, b) => a - b), val: val.sort((a, b) => a - b) };
}
