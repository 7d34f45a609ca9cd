// The training loop (SPEC.md §7): Adam, ReduceLROnPlateau on the validation loss, stop when the lr
// falls under minLr or at the epoch limit (or, optionally, when training accuracy passes a bar),
// keep the checkpoint with the lowest validation loss. With `emaDecay` set, validation, the
// checkpoint and the plateau rule see an exponential moving average of the weights instead of the
// weights themselves (DECISIONS.md, "Training"). One run folder holds everything:
//   config.json        the resolved configs, data sizes and versions
//   checkpoint.safetensors   the best weights (metadata: epoch, valLoss, the config it was trained with)
//   last.safetensors   weights + optimizer state (+ the average) + the loop's state, for --resume (one atomic file)
//   metrics.jsonl      one line per epoch: loss terms, phase shares, lr, train/val UAR and WAR
//   train.log          what was printed
// An interrupted run resumes from its last finished epoch and ends exactly as an uninterrupted one.
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  F,
  type Tensor,
  buildInfo,
  loadSafetensors,
  noGrad,
  optim,
  readSafetensorsHeader,
  saveSafetensors,
  tensor,
  tidy,
  type Device,
} from '../torch/index.js';
import type { FeatureDataset } from '../data/dataset.js';
import type { Head } from '../ous/model.js';
import { ousLoss, type LossPhase } from '../ous/losses.js';
import type { OusConfig } from '../ous/config.js';
import { metricsOf, type Metrics } from './metrics.js';
import type { TrainConfig } from '../ous/train-config.js';
import { rng, shuffled } from '../util/random.js';
import { readJson, writeFileAtomic } from '../util/fs.js';
import { settingsFingerprint, type EpochRecord } from '../runs/folder.js';
import { UserError } from '../util/errors.js';

export type { EpochRecord };

export interface TrainResult {
  epochs: EpochRecord[];
  bestEpoch: number;
  bestValLoss: number;
  stopReason: string;
}

export interface TrainOptions {
  head: Head;
  ous: OusConfig;
  train: TrainConfig;
  data: FeatureDataset;
  /**
   * The training clips, each one index or the indices of its views (augmented samplings: one is
   * drawn per clip per epoch, so an epoch is one pass over the clips whatever their views); the
   * validation clips.
   */
  split: { train: ReadonlyArray<number | readonly number[]>; val: number[] };
  outDir: string;
  resume?: boolean;
  device?: Device;
  /** Extra facts for config.json (data set name, cache path, ...). */
  info?: Record<string, unknown>;
  log?: (line: string) => void;
  /** Called after each epoch (tests use it to interrupt a run). */
  onEpoch?: (r: EpochRecord) => void;
}

/** Loss and metrics of the head on some clips, without gradients. */
export function evaluate(
  head: Head,
  data: FeatureDataset,
  indices: number[],
  opts: { batchSize?: number; device?: Device } = {},
): Metrics & { loss: number; predictions: number[] } {
  const wasTraining = head.training;
  head.eval();
  const predictions: number[] = [];
  let lossSum = 0;
  const bs = opts.batchSize ?? 64;
  noGrad(() => {
    for (let i = 0; i < indices.length; i += bs) {
      tidy(() => {
        const b = data.batch(indices.slice(i, i + bs), opts.device);
        const out = head.forward(b);
        lossSum += F.crossEntropy(out.logits, b.labels, { reduction: 'sum' }).item();
        predictions.push(...argmaxOf(out.logits));
      });
    }
  });
  head.train(wasTraining);
  const labels = indices.map((i) => data.labels[i]!);
  return {
    ...metricsOf(labels, predictions, head.config.classNames.length),
    loss: lossSum / Math.max(1, indices.length),
    predictions,
  };
}

const argmaxOf = (logits: Tensor): number[] => logits.argmax(1).toFlatArray();

interface LoopState {
  epoch: number; // epochs finished
  bestValLoss: number;
  bestEpoch: number;
  plateau: { best: number; numBadEpochs: number; cooldownCounter: number };
  optimizer: { steps: Record<string, number>; groups: Array<Record<string, unknown>> };
  averageUpdates?: number; // the weight average's update count (emaDecay set)
}

export async function train(o: TrainOptions): Promise<TrainResult> {
  const { head, ous, train: cfg, data, split, outDir } = o;
  fs.mkdirSync(outDir, { recursive: true });
  const logFile = path.join(outDir, 'train.log');
  const log = (line: string) => {
    fs.appendFileSync(logFile, line + '\n');
    (o.log ?? ((l: string) => process.stderr.write(l + '\n')))(line);
  };
  const polarityOf = (labels: Tensor) => labels.toFlatArray().map((c) => ous.polarityOfClass![c]!);
  const lossCfg = { ...ous, loss: ous.model === 'face-only' ? ('ce' as const) : ous.loss };

  const trainable = head.parameters().filter((p) => p.requiresGrad);
  const opt = new optim.Adam(trainable, { lr: cfg.lr, betas: [cfg.beta1, cfg.beta2] });
  const average = cfg.emaDecay === null ? null : new optim.WeightAverage(trainable, cfg.emaDecay);
  const plateau = new optim.ReduceLROnPlateau(opt, { factor: cfg.plateauFactor, patience: cfg.plateauPatience });
  const lastFile = path.join(outDir, 'last.safetensors');
  const metricsFile = path.join(outDir, 'metrics.jsonl');
  let state: LoopState = {
    epoch: 0,
    bestValLoss: Infinity,
    bestEpoch: 0,
    plateau: plateau.stateDict(),
    optimizer: { steps: {}, groups: [] },
  };
  const records: EpochRecord[] = [];

  if (o.resume && fs.existsSync(lastFile)) {
    state = resumeFrom(lastFile, head, opt, plateau, average);
    const kept = fs.existsSync(metricsFile)
      ? fs
          .readFileSync(metricsFile, 'utf8')
          .split('\n')
          .filter(Boolean)
          .map((l) => JSON.parse(l) as EpochRecord)
          .filter((r) => r.epoch <= state.epoch)
      : [];
    records.push(...kept);
    writeFileAtomic(metricsFile, kept.map((r) => JSON.stringify(r) + '\n').join(''));
    log(`resumed after epoch ${state.epoch} (best ${state.bestValLoss.toFixed(4)} at epoch ${state.bestEpoch})`);
  } else {
    if (fs.existsSync(metricsFile)) fs.rmSync(metricsFile);
    writeFileAtomic(
      path.join(outDir, 'config.json'),
      JSON.stringify(
        {
          ous,
          train: cfg,
          dims: data.dims,
          split: { train: split.train.length, val: split.val.length },
          ...o.info,
          versions: { torch: buildInfo().torchVersion, node: process.version },
        },
        null,
        2,
      ) + '\n',
    );
  }

  // The checkpoint records the config it was trained with (config.json as written), so that a
  // config.json edited afterwards is found out (runs/folder.ts, checkpointFile).
  const trainedConfig = settingsFingerprint(readJson<Record<string, unknown>>(path.join(outDir, 'config.json')));
  let stopReason = `reached the epoch limit (${cfg.epochs})`;
  for (let epoch = state.epoch + 1; epoch <= cfg.epochs; epoch++) {
    const t0 = Date.now();
    // Data order depends only on the seed and the epoch, so a resumed run sees the same batches.
    const order = epochOrder(split.train, cfg.seed, epoch);
    head.train();
    const phases: Record<LossPhase, number> = { global: 0, contrast: 0, ce: 0 };
    const sums: Record<string, number> = {};
    let lossSum = 0;
    let steps = 0;
    const preds: number[] = [];
    for (const idx of batchesOf(order, cfg.batchSize)) {
      const step = tidy(() => {
        const b = data.batch(idx, o.device);
        const out = head.forward(b);
        const polarity = ous.polarity
          ? tensor(polarityOf(b.labels), { dtype: 'int64', device: b.labels.device })
          : null;
        const r = ousLoss(out, b.labels, polarity, lossCfg);
        const value = r.loss.item();
        if (!Number.isFinite(value)) return { value, phase: r.phase, terms: r.terms, preds: [] as number[] };
        opt.zeroGrad();
        r.loss.backward();
        opt.step();
        average?.update();
        return { value, phase: r.phase, terms: r.terms, preds: argmaxOf(out.logits) };
      });
      if (!Number.isFinite(step.value)) {
        // Only claim a checkpoint that exists: a run can diverge before its first epoch ends.
        const kept =
          state.bestEpoch > 0 && fs.existsSync(path.join(outDir, 'checkpoint.safetensors'))
            ? `The last good checkpoint is kept in ${outDir} (epoch ${state.bestEpoch}).`
            : 'No epoch finished, so there is no checkpoint.';
        const msg =
          `epoch ${epoch}, step ${steps + 1}: the loss is ${step.value} (terms ` +
          `${JSON.stringify(step.terms)}); stopping. ${kept} Try a lower learning rate (--set lr=...).`;
        log(msg);
        throw new UserError(msg);
      }
      phases[step.phase] += 1;
      for (const [k, v] of Object.entries(step.terms)) if (Number.isFinite(v)) sums[k] = (sums[k] ?? 0) + v;
      lossSum += step.value;
      steps += 1;
      preds.push(...step.preds);
    }
    const trainLabels = order.map((i) => data.labels[i]!);
    const trainM = metricsOf(trainLabels, preds, ous.classNames.length);
    // Validation and the checkpoint see the weights the run keeps: the average, when there is one.
    const validate = () => {
      const v = evaluate(head, data, split.val, { device: o.device, batchSize: cfg.batchSize * 4 });
      const best = v.loss < state.bestValLoss;
      if (best) {
        saveSafetensors(path.join(outDir, 'checkpoint.safetensors'), head.stateDict(), {
          epoch: String(epoch),
          valLoss: String(v.loss),
          ...trainedConfig,
        });
        state.bestValLoss = v.loss;
        state.bestEpoch = epoch;
      }
      return { ...v, best };
    };
    const val = average ? average.withAverages(validate) : validate();
    const { best } = val;
    const lr = opt.paramGroups[0]!.hyper.lr;
    plateau.step(val.loss);
    const record: EpochRecord = {
      epoch,
      lr,
      train: {
        loss: lossSum / steps,
        terms: Object.fromEntries(Object.entries(sums).map(([k, v]) => [k, v / steps])),
        phases: { global: phases.global / steps, contrast: phases.contrast / steps, ce: phases.ce / steps },
        uar: trainM.uar,
        war: trainM.war,
        clips: order.length,
        steps,
      },
      val: { loss: val.loss, uar: val.uar, war: val.war },
      best,
      seconds: (Date.now() - t0) / 1000,
    };
    records.push(record);
    fs.appendFileSync(metricsFile, JSON.stringify(record) + '\n');
    state.epoch = epoch;
    saveLast(lastFile, head, opt, plateau, average, state);
    log(
      `epoch ${epoch}/${cfg.epochs} lr ${lr.toExponential(2)} train loss ${record.train.loss.toFixed(4)} WAR ` +
        `${(trainM.war * 100).toFixed(1)} ` +
        `| val loss ${val.loss.toFixed(4)} UAR ${(val.uar * 100).toFixed(1)} WAR ` +
        `${(val.war * 100).toFixed(1)}${best ? ' *' : ''} ` +
        `| phases global ${(record.train.phases.global * 100).toFixed(0)}% contrast ` +
        `${(record.train.phases.contrast * 100).toFixed(0)}% | ${termsText(record.train.terms)}| ` +
        `${record.seconds.toFixed(1)}s`,
    );
    o.onEpoch?.(record);
    if (opt.paramGroups[0]!.hyper.lr < cfg.minLr) {
      stopReason = `the learning rate fell below ${cfg.minLr}`;
      break;
    }
    if (cfg.stopTrainAcc !== null && trainM.war > cfg.stopTrainAcc) {
      stopReason = `training accuracy ${trainM.war.toFixed(3)} passed ${cfg.stopTrainAcc}`;
      break;
    }
    await new Promise((r) => setImmediate(r)); // let finalizers, signals and progress run
  }
  log(`stopped: ${stopReason}; best epoch ${state.bestEpoch} (validation loss ${state.bestValLoss.toFixed(4)})`);
  return { epochs: records, bestEpoch: state.bestEpoch, bestValLoss: state.bestValLoss, stopReason };
}

/**
 * One epoch's training clips in the order they are trained: the clips shuffled by (seed, epoch),
 * then one view of each drawn by (seed, epoch) as well (clips of one view draw nothing).
 */
export function epochOrder(clips: ReadonlyArray<number | readonly number[]>, seed: number, epoch: number): number[] {
  const draw = rng(seed * 1000003 + epoch + 0x5eed);
  return shuffled(clips, rng(seed * 1000003 + epoch)).map((c) =>
    typeof c === 'number' ? c : c.length === 1 ? c[0]! : c[Math.floor(draw() * c.length)]!,
  );
}

/**
 * Batches of `size` in order; a last batch of one clip joins the one before it: alone it would
 * give L_nce = 0 (one scene against one face) and a batch statistic of one clip to the α switch.
 */
export function batchesOf(order: readonly number[], size: number): number[][] {
  const out: number[][] = [];
  for (let i = 0; i < order.length; i += size) out.push(order.slice(i, i + size));
  if (out.length > 1 && out.at(-1)!.length === 1) out.at(-2)!.push(...out.pop()!);
  return out;
}

/** The loss terms of an epoch (means over its steps) that are present: a plateau shows in which term sits still. */
function termsText(terms: Record<string, number>): string {
  const shown = ['cls', 'nce', 'sim', 'pol'].filter((k) => terms[k] !== undefined);
  return shown.length > 1 ? `${shown.map((k) => `${k} ${terms[k]!.toFixed(3)}`).join(' ')} ` : '';
}

// One file holds the weights, the optimizer's tensors and the loop state (in the metadata), so a
// resume never sees weights from one epoch and state from another.
function saveLast(
  file: string,
  head: Head,
  opt: optim.Adam,
  plateau: optim.ReduceLROnPlateau,
  average: optim.WeightAverage | null,
  state: LoopState,
): void {
  const os = opt.stateDict();
  const tensors = new Map<string, Tensor>();
  for (const [k, t] of head.stateDict()) tensors.set(`model.${k}`, t);
  for (const [k, t] of Object.entries(os.tensors)) tensors.set(`optim.${k}`, t);
  const avg = average?.stateDict();
  for (const [k, t] of Object.entries(avg?.tensors ?? {})) tensors.set(`average.${k}`, t);
  const s: LoopState = {
    ...state,
    plateau: plateau.stateDict(),
    optimizer: { steps: os.steps, groups: os.groups },
    ...(avg ? { averageUpdates: avg.updates } : {}),
  };
  saveSafetensors(file, tensors, {
    state: JSON.stringify(s, (_, v) => (v === Infinity ? 'Infinity' : v === -Infinity ? '-Infinity' : v)),
  });
}

function resumeFrom(
  file: string,
  head: Head,
  opt: optim.Adam,
  plateau: optim.ReduceLROnPlateau,
  average: optim.WeightAverage | null,
): LoopState {
  const meta = readSafetensorsHeader(file).metadata.state;
  if (!meta) throw new Error(`${file} has no training state; delete it to start over`);
  const state = JSON.parse(meta, (_, v) =>
    v === 'Infinity' ? Infinity : v === '-Infinity' ? -Infinity : v,
  ) as LoopState;
  const all = loadSafetensors(file);
  const pick = (prefix: string) =>
    new Map([...all].filter(([k]) => k.startsWith(prefix)).map(([k, v]) => [k.slice(prefix.length), v]));
  head.loadStateDict(pick('model.'));
  opt.loadStateDict({
    tensors: Object.fromEntries(pick('optim.')),
    steps: state.optimizer.steps,
    groups: state.optimizer.groups,
  });
  plateau.loadStateDict(state.plateau);
  if (average) {
    if (state.averageUpdates === undefined)
      throw new Error(`loadStateDict(WeightAverage): ${file} has no weight average (trained without emaDecay)`);
    average.loadStateDict({ tensors: Object.fromEntries(pick('average.')), updates: state.averageUpdates });
  }
  for (const t of all.values()) t.dispose();
  return state;
}
