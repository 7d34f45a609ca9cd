// A run's settings resolved from everything that names them, as one pure function (no file is read
// here: the caller reads them and passes their contents). Later sources win:
//   the preset  <  the run's own stored settings (on resume)  <  the config file  <  --set, --model, --seed
// and the cache decides what is the data's: its classes, their polarities and T. Every refusal is
// one line naming the key and where its value came from.
import { z } from 'zod';
import { resolveOusConfig, type OusConfig } from '../ous/config.js';
import { DEFAULT_PRESET, PRESETS, type PresetName } from '../ous/presets.js';
import { resolveTrainConfig, type TrainConfig } from '../ous/train-config.js';
import { UserError } from '../util/errors.js';

/** Settings over the defaults (and a run's stored ones on resume), each checked by its config's schema. */
export interface ConfigOverrides {
  ous?: Partial<OusConfig>;
  train?: Partial<TrainConfig>;
}

/** A config file (--config): {"ous": {...}, "train": {...}}; its fields are checked when resolved. */
export const ConfigFile = z
  .object({ ous: z.record(z.unknown()).optional(), train: z.record(z.unknown()).optional() })
  .strict();

/** What the cache says of its data (cache.json), and where it is. */
export interface CacheFacts {
  dir: string; // as given, for messages
  resolved: string; // the absolute path a run records
  frames: number;
  classNames: string[];
  polarityOfClass: number[] | null;
}

export interface RunConfigInputs {
  preset?: PresetName;
  /** The run's own settings, when resuming it (its config.json, resolved). */
  stored?: { preset?: string; ous: OusConfig; train: TrainConfig; cache: string };
  out?: string; // the run folder, for messages
  /** The config file's contents, and its path for messages. */
  file?: { path: string; ous?: Record<string, unknown>; train?: Record<string, unknown> };
  overrides?: ConfigOverrides;
  model?: OusConfig['model'];
  seed?: number;
  cache: CacheFacts;
}

/** The settings a run trains with, resolved and checked; the preset's name is recorded beside them. */
export function resolveRunConfig(i: RunConfigInputs): { preset: PresetName; ous: OusConfig; train: TrainConfig } {
  const { stored } = i;
  // A resumed run keeps its own preset (its settings are stored whole; the name is for the reader).
  if (stored && i.preset && stored.preset && i.preset !== stored.preset)
    throw new UserError(
      `train --resume: ${i.out} was trained from the preset '${stored.preset}', not '${i.preset}': ` +
        'train into another --out for the other preset',
    );
  const preset = (
    stored?.preset && stored.preset in PRESETS ? stored.preset : (i.preset ?? DEFAULT_PRESET)
  ) as PresetName;
  const raw = {
    ous: { ...PRESETS[preset].ous, ...stored?.ous, ...i.file?.ous, ...i.overrides?.ous } as Record<string, unknown>,
    train: { ...PRESETS[preset].train, ...stored?.train, ...i.file?.train, ...i.overrides?.train } as Record<
      string,
      unknown
    >,
  };
  if (i.model) raw.ous.model = i.model;
  if (i.seed !== undefined) raw.train.seed = i.seed;
  // On resume the run's own classes stand (the comparison below names a changed cache or classes).
  if (!stored) takeClassesFromCache(raw.ous, i.cache);
  // T comes from the cache: its features have that many frames per clip. (Settings the face-only
  // baseline does not use, such as tfeLayers, are accepted: one set of --set serves both models.)
  if (raw.ous.frames !== undefined && raw.ous.frames !== i.cache.frames) {
    throw new UserError(
      `frames comes from the cache (${i.cache.dir} has ${i.cache.frames} frames per clip), not ` +
        `${JSON.stringify(raw.ous.frames)}: extract again with --frames ${JSON.stringify(raw.ous.frames)} into ` +
        `another cache`,
    );
  }
  raw.ous.frames = i.cache.frames;
  const from = i.file ? `${i.file.path} and --set` : '--set';
  const ous = resolveOusConfig(raw.ous, `OUS config (${from})`);
  const train = resolveTrainConfig(raw.train, `training config (${from})`);
  if (stored) checkUnchanged(stored, { ous, train }, i);
  return { preset, ous, train };
}

/**
 * The classes are the cache's (one source of truth: set at extraction). A config that names other
 * classes is an error; a cache without polarity labels trains without L_pol.
 */
function takeClassesFromCache(ous: Record<string, unknown>, cache: CacheFacts): void {
  for (const key of ['classNames', 'polarityOfClass'] as const) {
    if (ous[key] !== undefined && JSON.stringify(ous[key]) !== JSON.stringify(cache[key]))
      throw new UserError(
        `${key} comes from the cache (${cache.dir}: ${JSON.stringify(cache[key])}), not ` +
          `${JSON.stringify(ous[key])}: set the classes when extracting (ous extract --classes, --polarity)`,
      );
    ous[key] = cache[key];
  }
  if (cache.polarityOfClass === null) {
    if (ous.polarity === true)
      throw new UserError(
        `polarity=true needs polarity labels, and ${cache.dir} has none (extracted with --no-polarity)`,
      );
    ous.polarity = false;
  }
}

/** A resumed run trains on with its own settings and cache; only a larger epoch limit may change. */
function checkUnchanged(
  stored: NonNullable<RunConfigInputs['stored']>,
  now: { ous: OusConfig; train: TrainConfig },
  i: RunConfigInputs,
): void {
  const diffs = configDiffs(stored, now).filter(
    (d) => !(d.key === 'train.epochs' && (d.now as number) > (d.was as number)),
  );
  if (stored.cache !== i.cache.resolved) diffs.unshift({ key: 'cache', was: stored.cache, now: i.cache.resolved });
  if (!diffs.length) return;
  const listed = diffs.map((d) => `${d.key} (run: ${JSON.stringify(d.was)}, now: ${JSON.stringify(d.now)})`);
  throw new UserError(
    `train --resume: ${i.out} was trained with other settings: ${listed.join('; ')}. ` +
      'Only a larger epochs may change on resume; train into another --out for the rest',
  );
}

/** Differences between two resolved configs, as "section.key: a -> b". */
function configDiffs(
  was: { ous: OusConfig; train: TrainConfig },
  now: { ous: OusConfig; train: TrainConfig },
): Array<{ key: string; was: unknown; now: unknown }> {
  const out: Array<{ key: string; was: unknown; now: unknown }> = [];
  for (const section of ['ous', 'train'] as const) {
    const a = was[section] as Record<string, unknown>;
    const b = now[section] as Record<string, unknown>;
    for (const k of new Set([...Object.keys(a), ...Object.keys(b)]))
      if (JSON.stringify(a[k]) !== JSON.stringify(b[k])) out.push({ key: `${section}.${k}`, was: a[k], now: b[k] });
  }
  return out;
}
