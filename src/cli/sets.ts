// `--set key=value` (train, ablate): the command line's way of overriding a config field, parsed
// into the typed overrides trainRun takes. `ous.x` / `train.x`, or a bare key found in one of the
// two configs; each value is JSON when it parses as JSON (else the string) and is checked against
// its field here, so a bad one is a usage error naming the --set.
import type { z } from 'zod';
import { OusConfig } from '../ous/config.js';
import { TrainConfig } from '../ous/train-config.js';
import type { ConfigOverrides } from '../train/config.js';
import { UsageError } from '../util/errors.js';

export function parseSets(sets: readonly string[]): ConfigOverrides {
  const out: { ous: Record<string, unknown>; train: Record<string, unknown> } = { ous: {}, train: {} };
  const fields = {
    ous: OusConfig.innerType().shape as Record<string, z.ZodTypeAny>,
    train: TrainConfig.shape as Record<string, z.ZodTypeAny>,
  };
  const ousKeys = Object.keys(fields.ous);
  const trainKeys = Object.keys(fields.train);
  for (const s of sets) {
    const eq = s.indexOf('=');
    if (eq < 1) throw new UsageError(`--set expects key=value, not '${s}'`);
    let key = s.slice(0, eq);
    const raw = s.slice(eq + 1);
    let value: unknown;
    try {
      value = JSON.parse(raw);
    } catch {
      value = raw;
    }
    let section: 'ous' | 'train';
    if (key.startsWith('ous.') || key.startsWith('train.'))
      [section, key] = key.split('.', 2) as ['ous' | 'train', string];
    else if (ousKeys.includes(key)) section = 'ous';
    else if (trainKeys.includes(key)) section = 'train';
    else
      throw new UsageError(
        `--set: unknown key '${key}' (OUS: ${ousKeys.join(', ')}; training: ${trainKeys.join(', ')})`,
      );
    const field = fields[section][key];
    if (!field)
      throw new UsageError(
        `--set: '${key}' is not a field of the ${section === 'ous' ? 'OUS' : 'training'} config ` +
          `(${Object.keys(fields[section]).join(', ')})`,
      );
    // A count or a seed is plain digits: epochs=1e9 or seed=1e3 is a slip, not a number one means
    // (a whole-number field is one that takes 1 but not 0.5). lr=1e-3 stays fine.
    const wholeNumber = field.safeParse(1).success && !field.safeParse(0.5).success;
    if (wholeNumber && typeof value === 'number' && !/^\s*-?\d+\s*$/.test(raw))
      throw new UsageError(`--set ${s}: ${key} takes a whole number in plain digits, not '${raw}'`);
    const r = field.safeParse(value);
    if (!r.success)
      throw new UsageError(
        `--set ${s}: ${r.error.issues.map((i) => i.message.charAt(0).toLowerCase() + i.message.slice(1)).join('; ')}`,
      );
    out[section][key] = value;
  }
  return out as ConfigOverrides;
}
