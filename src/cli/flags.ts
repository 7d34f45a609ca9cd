// Every command's flags as data. One table per command gives node:util's parseArgs its options,
// the usage text its lines (with the defaults), and each value its check and type, so a flag is
// added in one place: a row of its command's table. The checks are the ones below, with one
// message shape for every command: "<cmd>: --flag must be <what>, not '<value>'" (exit 2).
import * as fs from 'node:fs';
import { parseArgs } from 'node:util';
import { UsageError, UserError } from '../util/errors.js';
import { MAX_FRAMES, SEED_MAX } from '../util/limits.js';
import { parseBox, type BoxXywh } from '../util/box.js';
import { parseOptionalDevice, type Device } from '../torch/index.js';

// ---------------------------------------------------------------------------------------------
// The checks.

/**
 * An integer flag in [min, max]. Number('') is 0, Number('1e3')
 * is 1000 and Number('0x10') is 16: only plain digits pass.
 */
export function intFlag(cmd: string, flag: string, raw: string, min = 0, max = Number.MAX_SAFE_INTEGER): number {
  const v = /^[+-]?\d+$/.test(raw.trim()) ? Number(raw) : NaN;
  if (!Number.isSafeInteger(v) || v < min || v > max) {
    const want =
      max < Number.MAX_SAFE_INTEGER
        ? `an integer from ${min} to ${max}${maxNames[max] ? ` (${maxNames[max]})` : ''}`
        : `an integer >= ${min}`;
    throw new UsageError(`${cmd}: --${flag} must be ${want}, not '${raw}'`);
  }
  return v;
}

// Why a maximum is what it is, for the message.
const maxNames: Record<number, string> = { [SEED_MAX]: 'seeds are 32-bit', [MAX_FRAMES]: 'MAX_FRAMES' };

/** A seed flag: a plain integer in 0..2^32-1. */
export const seedFlag = (cmd: string, raw: string): number => intFlag(cmd, 'seed', raw, 0, SEED_MAX);

/** A finite number flag in [min, max]: plain decimals only ('0x10', 'Infinity' and '' are refused; '1e-3' is fine). */
export function numberFlag(cmd: string, flag: string, raw: string, range: { min?: number; max?: number } = {}): number {
  const v = /^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$/.test(raw) ? Number(raw) : NaN;
  const { min = -Infinity, max = Infinity } = range;
  if (!Number.isFinite(v) || v < min || v > max) {
    const want =
      Number.isFinite(min) && Number.isFinite(max)
        ? `a number in [${min}, ${max}]`
        : Number.isFinite(min)
          ? `a number >= ${min}`
          : 'a number';
    throw new UsageError(`${cmd}: --${flag} must be ${want}, not '${raw}'`);
  }
  return v;
}

/** A positive number of seconds (plain decimals), at most `max`. */
export function secondsFlag(cmd: string, flag: string, raw: string, max = Infinity): number {
  const v = /^\s*(\d+\.?\d*|\.\d+)\s*$/.test(raw) ? Number(raw) : NaN;
  if (/^\s*[\d.]+e[+-]?\d+\s*$/i.test(raw))
    throw new UsageError(
      `${cmd}: --${flag} takes seconds in plain decimals (like 600 or 0.5), not exponent notation '${raw}'`,
    );
  if (!(v > 0 && v <= max))
    throw new UsageError(
      `${cmd}: --${flag} must be a positive number of ` +
        `seconds${Number.isFinite(max) ? ` up to ${max}` : ''}, not '${raw}'`,
    );
  return v;
}

/** An output folder: it may exist (as a folder), but must not be a file. */
export function outFolder(cmd: string, dir: string): string {
  if (fs.existsSync(dir) && !fs.statSync(dir).isDirectory())
    throw new UserError(`${cmd}: --out ${dir} is a file, not a folder`);
  return dir;
}

/** What --precision means, for the usage of the commands that run CLIP's vision tower for a run. */
export const PRECISION_HELP =
  "CLIP's vision tower in fp32, bf16 (CUDA, or a CPU with AVX512_BF16 or AMX), fp16 (CUDA) " +
  'or int8 (CPU, onnxruntime)';

/** The longest video predict, faces and streams read unless --max-seconds says otherwise: 3 hours. */
export const DEFAULT_MAX_SECONDS = 3 * 3600;

export const MAX_SECONDS_HELP =
  'refuse a video longer than this many seconds, measured from what it holds, not its metadata';

// ---------------------------------------------------------------------------------------------
// The tables.

/** What a flag's value must be, and so what it parses to. */
export type FlagType =
  | { kind: 'text' } // any string: a path, a name, a host
  | { kind: 'switch' } // present or not
  | { kind: 'int'; min?: number; max?: number } // plain digits
  | { kind: 'number'; min?: number; max?: number } // plain decimals
  | { kind: 'seconds'; max?: number } // a positive plain decimal
  | { kind: 'choice'; of: readonly string[] }
  | { kind: 'box' } // "x y w h" in the video's own pixels
  | { kind: 'device' }; // cpu, cuda, cuda:N

export interface Flag {
  type: FlagType;
  help: string; // one line for the usage text
  value?: string; // the usage's placeholder for the value: DIR, N, "x y w h"
  default?: string; // as it would be typed; shown in the usage
  multiple?: boolean; // repeatable: the values come as an array
  required?: boolean; // the command cannot run without it (it is checked, named in the message)
  hidden?: boolean; // parsed but left out of the synopsis line (shown in the list below it)
}

export type Flags = Record<string, Flag>;

type Parsed<T extends FlagType> = T extends { kind: 'switch' }
  ? boolean
  : T extends { kind: 'int' | 'number' | 'seconds' }
    ? number
    : T extends { kind: 'box' }
      ? BoxXywh
      : T extends { kind: 'device' }
        ? Device
        : T extends { kind: 'choice'; of: readonly (infer C)[] }
          ? C
          : string;

/** The values of a table: arrays for repeatable flags, always set for switches, defaults and required flags. */
export type Values<F extends Flags> = {
  [K in keyof F]: F[K] extends { multiple: true }
    ? Parsed<F[K]['type']>[]
    : F[K] extends { type: { kind: 'switch' } } | { default: string } | { required: true }
      ? Parsed<F[K]['type']>
      : Parsed<F[K]['type']> | undefined;
};

/** One value through its flag's check. */
function check(cmd: string, name: string, f: Flag, raw: string): unknown {
  const t = f.type;
  switch (t.kind) {
    case 'text':
    case 'switch':
      return raw;
    case 'int':
      return intFlag(cmd, name, raw, t.min ?? 0, t.max);
    case 'number':
      return numberFlag(cmd, name, raw, t);
    case 'seconds':
      return secondsFlag(cmd, name, raw, t.max);
    case 'choice':
      if (!t.of.includes(raw)) throw new UsageError(`${cmd}: --${name} must be ${t.of.join(' or ')}, not '${raw}'`);
      return raw;
    case 'box':
      return parseBox(raw, `${cmd}: --${name}`);
    case 'device':
      // The form is usage (exit 2); whether this machine has that device is checked after (exit 1).
      if (!/^(cpu|cuda(:\d+)?)$/.test(raw))
        throw new UsageError(`${cmd}: --${name} must be cpu, cuda or cuda:N, not '${raw}'`);
      return parseOptionalDevice(raw);
  }
}

/**
 * Parses `argv` with a command's table: unknown flags and missing values are node:util's usage
 * errors (main.ts words them), every value is checked, `required` flags must be there.
 * Positionals are refused unless `positionals` names what they are.
 */
export function parseFlags<const F extends Flags>(
  cmd: string,
  argv: string[],
  flags: F,
  o: { positionals?: string } = {},
): { values: Values<F>; positionals: string[] } {
  const options = Object.fromEntries(
    Object.entries(flags).map(([name, f]) => [
      name,
      {
        type: f.type.kind === 'switch' ? ('boolean' as const) : ('string' as const),
        ...(f.multiple ? { multiple: true } : {}),
      },
    ]),
  );
  const parsed = parseArgs({ args: argv, options, allowPositionals: true });
  if (!o.positionals && parsed.positionals.length)
    throw new UsageError(`${cmd}: takes no arguments, got '${parsed.positionals.join(' ')}'`);
  const values: Record<string, unknown> = {};
  for (const [name, f] of Object.entries(flags)) {
    const got = (parsed.values as Record<string, string | boolean | Array<string | boolean> | undefined>)[name];
    if (f.type.kind === 'switch') values[name] = got === true;
    else if (f.multiple) values[name] = ((got as string[] | undefined) ?? []).map((raw) => check(cmd, name, f, raw));
    else if (got !== undefined) values[name] = check(cmd, name, f, got as string);
    else if (f.default !== undefined) values[name] = check(cmd, name, f, f.default);
    else if (f.required)
      throw new UsageError(`${cmd}: --${name}${f.value ? ` ${f.value}` : ''} is required (${f.help})`);
  }
  return { values: values as Values<F>, positionals: parsed.positionals };
}

const placeholder = (name: string, f: Flag) =>
  f.type.kind === 'switch'
    ? `--${name}`
    : `--${name} ${f.value ?? (f.type.kind === 'choice' ? f.type.of.join('|') : 'VALUE')}`;

/**
 * The usage text of a command from its table: the synopsis (required flags bare, the others in
 * brackets with their defaults), then one line per flag, then `notes`.
 */
export function usageText(cmd: string, flags: Flags, o: { positionals?: string; notes?: string } = {}): string {
  const synopsis = Object.entries(flags)
    .filter(([, f]) => !f.hidden)
    .map(([name, f]) => {
      const text =
        f.default !== undefined && f.type.kind !== 'choice' ? `--${name} ${f.default}` : placeholder(name, f);
      return f.required ? text : `[${text}]${f.multiple ? '...' : ''}`;
    });
  const rows = Object.entries(flags).map(
    ([name, f]) => [placeholder(name, f), f.help + (f.default !== undefined ? ` (${f.default})` : '')] as const,
  );
  const width = Math.min(28, Math.max(...rows.map(([k]) => k.length)));
  const lines = rows.map(([k, h]) => `  ${k.padEnd(width)}  ${h}`);
  return [
    `ous ${cmd}${o.positionals ? ` ${o.positionals}` : ''} ${synopsis.join(' ')}`,
    '',
    ...lines,
    ...(o.notes ? ['', o.notes] : []),
  ].join('\n');
}

// Rows that several commands share.
export const COMMON = {
  json: { type: { kind: 'switch' }, help: 'one JSON object on stdout' },
  device: { type: { kind: 'device' }, value: 'cpu|cuda', help: 'cpu, or cuda[:N] with a CUDA build of libtorch' },
  // checked against the device by parsePrecision
  precision: { type: { kind: 'text' }, value: 'fp32|bf16|fp16|int8', default: 'fp32', help: PRECISION_HELP },
  maxSeconds: { type: { kind: 'seconds' }, value: 'S', default: String(DEFAULT_MAX_SECONDS), help: MAX_SECONDS_HELP },
  frames: {
    type: { kind: 'int', min: 1, max: MAX_FRAMES },
    value: 'T',
    default: '16',
    help: 'frames sampled per clip',
  },
  seed: { type: { kind: 'int', min: 0, max: SEED_MAX }, value: 'N', help: 'the random seed' },
  clip: {
    type: { kind: 'text' },
    value: 'DIR',
    help: 'the CLIP folder (Hugging Face layout), when not where the run was trained (checked by hash)',
  },
} as const satisfies Flags;
