// The run folder as training writes it: one object that owns the run's files, so that the trainer
// says what it keeps (a config, an epoch, the best weights, the state to resume from) and never
// where or how. Every file but the log is written whole under a temporary name and renamed, so a
// run killed at any moment leaves each file as it was or as it was meant to be.
//
//   config.json              the resolved configs, dims, cache and CLIP paths, the stream recipe
//   checkpoint.safetensors   the best weights, and the config they were trained with (checked on load)
//   last.safetensors         weights + optimizer + loop state, for --resume (one file: never half of each)
//   metrics.jsonl            one line per finished epoch
//   train.log                what was printed (appended: a log cut short loses only its last line)
//   lock                     {pid, host, since} while a process trains the run
//
// Reading a run for inference needs none of this: runs/folder.ts.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { loadSafetensors, readSafetensorsHeader, saveSafetensors, type Tensor } from '../torch/index.js';
import { UserError } from '../util/errors.js';
import { ensureDir, isRegularFile, pathKind, readJson, writeFileAtomic } from '../util/fs.js';
import { describeHolder, tryLock } from '../util/lock.js';
import { isRunFolder, readEpochs, settingsFingerprint, type EpochRecord } from './folder.js';

export class RunFolder {
  /** The files `ous train` writes: what --force replaces (nothing else in the folder is deleted). */
  static readonly FILES = ['config.json', 'checkpoint.safetensors', 'last.safetensors', 'metrics.jsonl', 'train.log'];
  readonly configFile: string;
  readonly bestFile: string;
  readonly lastFile: string;
  readonly metricsFile: string;
  readonly logFile: string;

  constructor(readonly dir: string) {
    this.configFile = path.join(dir, 'config.json');
    this.bestFile = path.join(dir, 'checkpoint.safetensors');
    this.lastFile = path.join(dir, 'last.safetensors');
    this.metricsFile = path.join(dir, 'metrics.jsonl');
    this.logFile = path.join(dir, 'train.log');
  }

  /**
   * Locks the folder for this process while it trains it: a second `ous train --out R` is refused
   * with the holder's pid; a lock left by a killed process is taken over (`log` is told). Creates
   * the folder; `release` removes the lock, and the folder too when `release(true)` finds it empty.
   */
  lock(log: (line: string) => void = (l) => process.stderr.write(`ous: ${l}\n`)): (removeIfEmpty?: boolean) => void {
    const existed = pathKind(this.dir) === 'folder';
    ensureDir(this.dir);
    const file = path.join(this.dir, 'lock');
    const r = tryLock(file, (dead) =>
      log(`${this.dir}: took over the lock of a dead ous train (${describeHolder(dead)})`),
    );
    if ('holder' in r) {
      throw new UserError(
        `${this.dir} is being trained by another ous train (${r.holder ? describeHolder(r.holder) : file}): ` +
          `wait for it to finish, or use another --out; if no such process runs, delete ${file}`,
      );
    }
    return (removeIfEmpty = false) => {
      r.release();
      if (removeIfEmpty && !existed) {
        try {
          fs.rmdirSync(this.dir); // only when empty: never removes anything else
        } catch {
          /* not empty, or gone */
        }
      }
    };
  }

  /** True when the folder holds a run (its config.json), finished or not. */
  holdsRun(): boolean {
    return isRunFolder(this.dir);
  }

  /** True when the folder holds any file a run writes (an unfinished run's, without config.json). */
  hasRunFiles(): boolean {
    return fs.readdirSync(this.dir).some((f) => RunFolder.FILES.includes(f));
  }

  /** Removes the files a run writes, and only those. */
  removeRunFiles(): void {
    for (const f of RunFolder.FILES) fs.rmSync(path.join(this.dir, f), { force: true });
  }

  /** config.json as written (not resolved: runs/folder.ts's readRunConfig resolves it). */
  readConfigJson(): Record<string, unknown> {
    return readJson<Record<string, unknown>>(this.configFile);
  }

  writeConfig(json: Record<string, unknown>): void {
    writeFileAtomic(this.configFile, JSON.stringify(json, null, 2) + '\n');
  }

  /** What the checkpoints record of config.json, so that a config.json edited afterwards is found out. */
  trainedConfig(): Record<string, string> {
    return settingsFingerprint(this.readConfigJson());
  }

  /** The finished epochs (a last line cut short by a kill is dropped). */
  epochs(): EpochRecord[] {
    return readEpochs(this.dir);
  }

  /** A fresh run starts with no epochs (a file of a run replaced with --force would be read as its own). */
  forgetEpochs(): void {
    fs.rmSync(this.metricsFile, { force: true });
  }

  writeEpochs(records: readonly EpochRecord[]): void {
    writeFileAtomic(this.metricsFile, records.map((r) => JSON.stringify(r) + '\n').join(''));
  }

  /** Rewrites metrics.jsonl without a line cut short by a kill (a run from before whole-file writes). */
  repairEpochs(): void {
    if (!isRegularFile(this.metricsFile, 'metrics file')) return;
    const text = fs.readFileSync(this.metricsFile, 'utf8');
    const kept = this.epochs();
    if (kept.map((r) => JSON.stringify(r) + '\n').join('') !== text) this.writeEpochs(kept);
  }

  appendLog(line: string): void {
    fs.appendFileSync(this.logFile, line + '\n');
  }

  hasBest(): boolean {
    return isRegularFile(this.bestFile, 'checkpoint');
  }

  saveBest(weights: Map<string, Tensor>, metadata: Record<string, string>): void {
    saveSafetensors(this.bestFile, weights, metadata);
  }

  hasLast(): boolean {
    return isRegularFile(this.lastFile, 'training state');
  }

  saveLast(tensors: Map<string, Tensor>, metadata: Record<string, string>): void {
    saveSafetensors(this.lastFile, tensors, metadata);
  }

  /** last.safetensors: its tensors (the caller disposes them) and its metadata. */
  readLast(): { tensors: Map<string, Tensor>; metadata: Record<string, string> } {
    return { metadata: readSafetensorsHeader(this.lastFile).metadata, tensors: loadSafetensors(this.lastFile) };
  }
}
