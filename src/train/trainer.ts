// The training loop (SPEC.md §7): Adam, ReduceLROnPlateau on the validation loss, stop when the lr
// falls under minLr or at the epoch limit (or, optionally, when training accuracy passes a bar),
// keep the checkpoint with the lowest validation loss. With `emaDecay` set, validation, the
// checkpoint and the plateau rule see an exponential moving average of the weights instead of the
// weights themselves (DECISIONS.md, "Training"). An epoch is trainEpoch (the steps) then validate;
// what is kept of it goes to the run folder through RunFolder (runs/run-folder.ts), which owns the
// files: config.json, the best checkpoint (metadata: epoch, valLoss, the config it was trained
// with), last.safetensors (weights, optimizer, average and loop state in one file, for --resume),
// metrics.jsonl and train.log.
// An interrupted run resumes from its last finished epoch and ends exactly as an uninterrupted one.
import { F, type Tensor, buildInfo, noGrad, optim, tensor, tidy, type Device } from '../torch/index.js';
import type { FeatureDataset } from '../data/dataset.js';
import type { Head } from '../ous/model.js';
import { ousLoss, type LossPhase } from '../ous/losses.js';
import type { OusConfig } from '../ous/config.js';
import { metricsOf, type Metrics } from './metrics.js';
import type { TrainConfig } from '../ous/train-config.js';
import { rng, shuffled } from '../util/random.js';
import { ensureDir } from '../util/fs.js';
import type { EpochRecord } from '../runs/folder.js';
import { RunFolder } from '../runs/run-folder.js';
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

/** What the steps of an epoch work on: the head, its optimizer and weight average, the data, the settings. */
export interface Loop {
  head: Head;
  data: FeatureDataset;
  ous: OusConfig;
  cfg: TrainConfig;
  opt: optim.Adam;
  average: optim.WeightAverage | null;
  device?: Device;
}

/** An epoch's training: its steps' losses, loss terms and phases, and the predictions in the clips' order. */
export interface EpochFit {
  steps: number;
  lossSum: number;
  sums: Record<string, number>;
  phases: Record<LossPhase, number>;
  preds: number[];
  /** The step whose loss was not finite, where the epoch stopped. */
  diverged?: { step: number; loss: number; terms: Record<string, number> };
}

/**
 * One pass over the training clips in `order` (SPEC.md §7): per batch, the head's forward pass,
 * the OUS loss, backward, Adam's step and the weight average's update. Stops at the first loss that
 * is not finite, before it reaches the weights.
 */
export function trainEpoch(l: Loop, order: number[]): EpochFit {
  const fit: EpochFit = { steps: 0, lossSum: 0, sums: {}, phases: { global: 0, contrast: 0, ce: 0 }, preds: [] };
  l.head.train();
  for (const idx of batchesOf(order, l.cfg.batchSize)) {
    const step = tidy(() => {
      const b = l.data.batch(idx, l.device);
      const out = l.head.forward(b);
      const r = ousLoss(out, b.labels, polarityLabels(l.ous, b.labels), lossConfig(l.ous));
      const loss = r.loss.item();
      if (!Number.isFinite(loss)) return { loss, phase: r.phase, terms: r.terms, preds: [] as number[] };
      l.opt.zeroGrad();
      r.loss.backward();
      l.opt.step();
      l.average?.update();
      return { loss, phase: r.phase, terms: r.terms, preds: argmaxOf(out.logits) };
    });
    if (!Number.isFinite(step.loss)) return { ...fit, diverged: { step: fit.steps + 1, ...step } };
    addStep(fit, step);
  }
  return fit;
}

function addStep(
  fit: EpochFit,
  step: { loss: number; phase: LossPhase; terms: Record<string, number>; preds: number[] },
) {
  fit.phases[step.phase] += 1;
  for (const [k, v] of Object.entries(step.terms)) if (Number.isFinite(v)) fit.sums[k] = (fit.sums[k] ?? 0) + v;
  fit.lossSum += step.loss;
  fit.steps += 1;
  fit.preds.push(...step.preds);
}

/** L_pol's labels: each clip's class mapped to its polarity (null when the run trains without L_pol). */
function polarityLabels(ous: OusConfig, labels: Tensor): Tensor | null {
  if (!ous.polarity) return null;
  const polarity = labels.toFlatArray().map((c) => ous.polarityOfClass![c]!);
  return tensor(polarity, { dtype: 'int64', device: labels.device });
}

/** The face-only baseline has only its classifier's cross-entropy to train with. */
const lossConfig = (ous: OusConfig): OusConfig => (ous.model === 'face-only' ? { ...ous, loss: 'ce' } : ous);

/**
 * Validation of the weights the run keeps: the average while it is lent (when there is one), else
 * the trained weights. `keep` runs while those weights are in place and says whether it kept them
 * (as the best checkpoint).
 */
export function validate(
  l: Loop,
  indices: number[],
  keep: (v: { loss: number }) => boolean,
): ReturnType<typeof evaluate> & { best: boolean } {
  const run = () => {
    const v = evaluate(l.head, l.data, indices, { device: l.device, batchSize: l.cfg.batchSize * 4 });
    return { ...v, best: keep(v) };
  };
  return l.average ? l.average.withAverages(run) : run();
}

export async function train(o: TrainOptions): Promise<TrainResult> {
  const { head, train: cfg, split } = o;
  const run = new RunFolder(o.outDir);
  ensureDir(run.dir);
  const log = (line: string) => {
    run.appendLog(line);
    (o.log ?? ((l: string) => process.stderr.write(l + '\n')))(line);
  };
  const trainable = head.parameters().filter((p) => p.requiresGrad);
  const l: Loop = {
    head,
    data: o.data,
    ous: o.ous,
    cfg,
    opt: new optim.Adam(trainable, { lr: cfg.lr, betas: [cfg.beta1, cfg.beta2] }),
    // Lending the average writes the weights in place: the head drops what it derived from them.
    average:
      cfg.emaDecay === null
        ? null
        : new optim.WeightAverage(trainable, cfg.emaDecay, { written: () => head.weightsChanged() }),
    device: o.device,
  };
  const plateau = new optim.ReduceLROnPlateau(l.opt, { factor: cfg.plateauFactor, patience: cfg.plateauPatience });
  const { state, records } =
    o.resume && run.hasLast() ? resume(run, l, plateau, log) : start(run, o, plateau.stateDict());
  const trainedConfig = run.trainedConfig();
  let stopReason = `reached the epoch limit (${cfg.epochs})`;
  for (let epoch = state.epoch + 1; epoch <= cfg.epochs; epoch++) {
    const t0 = Date.now();
    // Data order depends only on the seed and the epoch, so a resumed run sees the same batches.
    const order = epochOrder(split.train, cfg.seed, epoch);
    const fit = trainEpoch(l, order);
    if (fit.diverged) throw divergence(run, state, epoch, fit.diverged, log);
    const val = validate(l, split.val, (v) => {
      if (!(v.loss < state.bestValLoss)) return false;
      run.saveBest(head.stateDict(), { epoch: String(epoch), valLoss: String(v.loss), ...trainedConfig });
      state.bestValLoss = v.loss;
      state.bestEpoch = epoch;
      return true;
    });
    const lr = l.opt.paramGroups[0]!.hyper.lr;
    plateau.step(val.loss);
    const record = epochRecord(epoch, lr, order, fit, val, l, (Date.now() - t0) / 1000);
    records.push(record);
    run.writeEpochs(records);
    state.epoch = epoch;
    saveLast(run, l, plateau, state);
    log(epochLine(record, cfg.epochs));
    o.onEpoch?.(record);
    const stop = stopRule(l.opt.paramGroups[0]!.hyper.lr, record.train.war, cfg);
    if (stop) {
      stopReason = stop;
      break;
    }
    await new Promise((r) => setImmediate(r)); // let finalizers, signals and progress run
  }
  log(`stopped: ${stopReason}; best epoch ${state.bestEpoch} (validation loss ${state.bestValLoss.toFixed(4)})`);
  return { epochs: records, bestEpoch: state.bestEpoch, bestValLoss: state.bestValLoss, stopReason };
}

/** A fresh run: no epochs yet, and config.json written with everything the run was made of. */
function start(
  run: RunFolder,
  o: TrainOptions,
  plateau: LoopState['plateau'],
): { state: LoopState; records: EpochRecord[] } {
  run.forgetEpochs();
  run.writeConfig({
    ous: o.ous,
    train: o.train,
    dims: o.data.dims,
    split: { train: o.split.train.length, val: o.split.val.length },
    ...o.info,
    versions: { torch: buildInfo().torchVersion, node: process.version },
  });
  const state = { epoch: 0, bestValLoss: Infinity, bestEpoch: 0, plateau, optimizer: { steps: {}, groups: [] } };
  return { state, records: [] };
}

/** A run picked up after its last finished epoch: its state, and the epochs up to it (later ones go). */
function resume(
  run: RunFolder,
  l: Loop,
  plateau: optim.ReduceLROnPlateau,
  log: (line: string) => void,
): { state: LoopState; records: EpochRecord[] } {
  const state = resumeFrom(run, l, plateau);
  const records = run.epochs().filter((r) => r.epoch <= state.epoch);
  run.writeEpochs(records);
  log(`resumed after epoch ${state.epoch} (best ${state.bestValLoss.toFixed(4)} at epoch ${state.bestEpoch})`);
  return { state, records };
}

/** The error of a loss that is not finite, which claims a checkpoint only where one exists. */
function divergence(
  run: RunFolder,
  state: LoopState,
  epoch: number,
  d: NonNullable<EpochFit['diverged']>,
  log: (line: string) => void,
): UserError {
  // A run can diverge before its first epoch ends.
  const kept =
    state.bestEpoch > 0 && run.hasBest()
      ? `The last good checkpoint is kept in ${run.dir} (epoch ${state.bestEpoch}).`
      : 'No epoch finished, so there is no checkpoint.';
  const msg =
    `epoch ${epoch}, step ${d.step}: the loss is ${d.loss} (terms ` +
    `${JSON.stringify(d.terms)}); stopping. ${kept} Try a lower learning rate (--set lr=...).`;
  log(msg);
  return new UserError(msg);
}

function epochRecord(
  epoch: number,
  lr: number,
  order: number[],
  fit: EpochFit,
  val: { loss: number; uar: number; war: number; best: boolean },
  l: Loop,
  seconds: number,
): EpochRecord {
  const m = metricsOf(
    order.map((i) => l.data.labels[i]!),
    fit.preds,
    l.ous.classNames.length,
  );
  const mean = (v: number) => v / fit.steps;
  return {
    epoch,
    lr,
    train: {
      loss: mean(fit.lossSum),
      terms: Object.fromEntries(Object.entries(fit.sums).map(([k, v]) => [k, mean(v)])),
      phases: { global: mean(fit.phases.global), contrast: mean(fit.phases.contrast), ce: mean(fit.phases.ce) },
      uar: m.uar,
      war: m.war,
      clips: order.length,
      steps: fit.steps,
    },
    val: { loss: val.loss, uar: val.uar, war: val.war },
    best: val.best,
    seconds,
  };
}

function epochLine(r: EpochRecord, epochs: number): string {
  const pct = (v: number, digits = 1) => (v * 100).toFixed(digits);
  return (
    `epoch ${r.epoch}/${epochs} lr ${r.lr.toExponential(2)} train loss ${r.train.loss.toFixed(4)} WAR ` +
    `${pct(r.train.war)} | val loss ${r.val.loss.toFixed(4)} UAR ${pct(r.val.uar)} WAR ${pct(r.val.war)}` +
    `${r.best ? ' *' : ''} | phases global ${pct(r.train.phases.global, 0)}% contrast ` +
    `${pct(r.train.phases.contrast, 0)}% | ${termsText(r.train.terms)}| ${r.seconds.toFixed(1)}s`
  );
}

/** Why training stops after this epoch, or '' to go on. */
function stopRule(lr: number, trainWar: number, cfg: TrainConfig): string {
  if (lr < cfg.minLr) return `the learning rate fell below ${cfg.minLr}`;
  if (cfg.stopTrainAcc !== null && trainWar > cfg.stopTrainAcc)
    return `training accuracy ${trainWar.toFixed(3)} passed ${cfg.stopTrainAcc}`;
  return '';
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
function saveLast(run: RunFolder, l: Loop, plateau: optim.ReduceLROnPlateau, state: LoopState): void {
  const os = l.opt.stateDict();
  const tensors = new Map<string, Tensor>();
  for (const [k, t] of l.head.stateDict()) tensors.set(`model.${k}`, t);
  for (const [k, t] of Object.entries(os.tensors)) tensors.set(`optim.${k}`, t);
  const avg = l.average?.stateDict();
  for (const [k, t] of Object.entries(avg?.tensors ?? {})) tensors.set(`average.${k}`, t);
  const s: LoopState = {
    ...state,
    plateau: plateau.stateDict(),
    optimizer: { steps: os.steps, groups: os.groups },
    ...(avg ? { averageUpdates: avg.updates } : {}),
  };
  run.saveLast(tensors, {
    state: JSON.stringify(s, (_, v) => (v === Infinity ? 'Infinity' : v === -Infinity ? '-Infinity' : v)),
  });
}

function resumeFrom(run: RunFolder, l: Loop, plateau: optim.ReduceLROnPlateau): LoopState {
  const { tensors: all, metadata } = run.readLast();
  try {
    if (!metadata.state) throw new Error(`${run.lastFile} has no training state; delete it to start over`);
    const state = JSON.parse(metadata.state, (_, v) =>
      v === 'Infinity' ? Infinity : v === '-Infinity' ? -Infinity : v,
    ) as LoopState;
    const pick = (prefix: string) =>
      new Map([...all].filter(([k]) => k.startsWith(prefix)).map(([k, v]) => [k.slice(prefix.length), v]));
    l.head.loadStateDict(pick('model.'));
    l.opt.loadStateDict({
      tensors: Object.fromEntries(pick('optim.')),
      steps: state.optimizer.steps,
      groups: state.optimizer.groups,
    });
    plateau.loadStateDict(state.plateau);
    if (l.average) {
      if (state.averageUpdates === undefined)
        throw new Error(
          `loadStateDict(WeightAverage): ${run.lastFile} has no weight average (trained without emaDecay)`,
        );
      l.average.loadStateDict({ tensors: Object.fromEntries(pick('average.')), updates: state.averageUpdates });
    }
    return state;
  } finally {
    for (const t of all.values()) t.dispose();
  }
}
