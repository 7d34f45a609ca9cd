// Named settings as data (in the spirit of open_clip's model configs): what a run trains with
// before its config file and --set. `ous train` uses `paper` unless told otherwise; the run's
// config.json records the preset's name beside the settings it resolved to. Each entry says where
// the value comes from: the paper's words (section or table), or why we chose it.
import type { OusConfig } from './config.js';
import type { TrainConfig } from './train-config.js';

export interface Preset {
  summary: string;
  ous: Partial<OusConfig>;
  train: Partial<TrainConfig>;
  /** Each field's source: "paper: ..." (its words, where) or "choice: ..." (why). */
  why: Record<string, string>;
}

/**
 * `paper`: the method of the paper ("Ours" in its Tables III and VI, the setup of its §IV-A). The
 * schema defaults (src/ous/config.ts, src/ous/train-config.ts) are these values; the preset spells them
 * out so that config.json and `ous train --help` show what "the paper's configuration" means.
 */
const paper: Preset = {
  summary: "the paper's method and training setup (the default of ous train)",
  ous: {
    promptLength: 64,
    tfeLayers: 12,
    loss: 'global',
    fusion: 'tfe',
    reduction: 'sum',
    alignLstm: false,
  },
  train: { lr: 0.002, batchSize: 16, epochs: 60, plateauFactor: 1 / 3, plateauPatience: 5, minLr: 1e-7 },
  why: {
    promptLength: 'paper: M = 64, the best length of Table VI, the row "Ours"',
    tfeLayers: 'paper: L = 12, Table III (the depth of the reported model)',
    loss: 'paper: eq. (4) and the α switch of §III-A',
    fusion: 'paper: the Type Fusion Encoder, §III-B',
    reduction: 'paper: eqs. (1) and (3) sum over the N clips of the batch',
    alignLstm: 'paper: "the similarity loss is used to optimize the frame encoder, linear, and convolutional layers"',
    lr: 'paper §IV-A: "an initial learning rate of 0.002"',
    batchSize: 'paper §IV-A: "a batch size of 16"',
    epochs: 'paper §IV-A: "trained for 60 epochs"',
    plateauFactor: 'paper §IV-A: "reduced to a third of its value"',
    plateauPatience: 'paper §IV-A: "did not decrease for five consecutive epochs"',
    minLr: 'paper §IV-A: "converged when the rate fell below 1e-7"',
  },
};

/**
 * `demo`: what the built-in demo needs to learn ~200 synthetic clips on 2 cores in minutes with
 * the random-weight dev CLIP (docs/DECISIONS.md, "The demo", has the measurements). Its epochs
 * come from the demo's size.
 */
const demo: Preset = {
  summary: 'the built-in demo: a small head that learns the synthetic benchmark in minutes on 2 cores',
  ous: {
    tfeLayers: 2,
    tfeQueries: 8,
    heads: 4,
    promptLength: 8,
    standardize: true,
    reduction: 'mean',
    alignLstm: true,
  },
  train: { plateauPatience: 25, emaDecay: 0.998 },
  why: {
    tfeLayers: 'choice: 2 blocks train in a minute on 2 cores',
    tfeQueries: 'choice: 8 queries, with the 2 blocks, for a head ~200 clips can fit',
    heads: "choice: 4 heads of 8 dimensions over the dev CLIP's E = 32",
    promptLength: 'choice: 8 context vectors suffice for 7 synthetic classes, and are 8 times cheaper than 64',
    standardize:
      "choice: the dev CLIP's embeddings of any two clips are nearly collinear; standardised, every " +
      'seed leaves the scene-only plateau within ~10 epochs',
    reduction: 'choice: the batch means the demo was measured with (α = 2 is set for means)',
    alignLstm: 'choice: the demo was measured with L_sim and L_nce reaching the LSTM',
    plateauPatience: 'choice: the plateau rule on the loss of ~22 validation clips cut the rate on the plateau',
    emaDecay: "choice: on ~200 clips a seed's two engines agree only when validation sees a moving average",
  },
};

export const PRESETS = { paper, demo } as const;
export type PresetName = keyof typeof PRESETS;
export const PRESET_NAMES = Object.keys(PRESETS) as PresetName[];
export const DEFAULT_PRESET: PresetName = 'paper';
