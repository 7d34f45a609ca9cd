// Flag values checked once, with one message shape for every command:
// "<cmd>: --flag must be <what>, not '<value>'" (a usage error, exit code 2).
import * as fs from 'node:fs';
import { UsageError, UserError } from '../util/errors.js';
import { MAX_FRAMES, SEED_MAX } from '../util/limits.js';

/** An integer flag in [min, max]. Number('') is 0, Number('1e3') is 1000 and Number('0x10') is 16: only plain digits pass. */
export function intFlag(cmd: string, flag: string, raw: string, min = 0, max = Number.MAX_SAFE_INTEGER): number {
  const v = /^[+-]?\d+$/.test(raw.trim()) ? Number(raw) : NaN;
  if (!Number.isSafeInteger(v) || v < min || v > max) {
    const want = max < Number.MAX_SAFE_INTEGER ? `an integer from ${min} to ${max}${maxNames[max] ? ` (${maxNames[max]})` : ''}` : `an integer >= ${min}`;
    throw new UsageError(`${cmd}: --${flag} must be ${want}, not '${raw}'`);
  }
  return v;
}

// Why a maximum is what it is, for the message.
const maxNames: Record<number, string> = { [SEED_MAX]: 'seeds are 32-bit', [MAX_FRAMES]: 'MAX_FRAMES' };

/** A seed flag: a plain integer in 0..2^32-1. */
export const seedFlag = (cmd: string, raw: string): number => intFlag(cmd, 'seed', raw, 0, SEED_MAX);

/** A frame-count flag: a plain integer in 1..MAX_FRAMES. */
export const framesFlag = (cmd: string, raw: string, flag = 'frames'): number => intFlag(cmd, flag, raw, 1, MAX_FRAMES);

/** A finite number flag in [min, max]: plain decimals only ('0x10', 'Infinity' and '' are refused; '1e-3' is fine). */
export function numberFlag(cmd: string, flag: string, raw: string, range: { min?: number; max?: number } = {}): number {
  const v = /^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$/.test(raw) ? Number(raw) : NaN;
  const { min = -Infinity, max = Infinity } = range;
  if (!Number.isFinite(v) || v < min || v > max) {
    const want = Number.isFinite(min) && Number.isFinite(max) ? `a number in [${min}, ${max}]` : Number.isFinite(min) ? `a number >= ${min}` : 'a number';
    throw new UsageError(`${cmd}: --${flag} must be ${want}, not '${raw}'`);
  }
  return v;
}

/** An output folder: it may exist (as a folder), but must not be a file. */
export function outFolder(cmd: string, dir: string): string {
  if (fs.existsSync(dir) && !fs.statSync(dir).isDirectory()) throw new UserError(`${cmd}: --out ${dir} is a file, not a folder`);
  return dir;
}

/** What --precision means, for the usage of the commands that run CLIP's vision tower for a run. */
export const PRECISION_HELP = "CLIP's vision tower in fp32 (default), bf16 (CUDA, or a CPU with AVX512_BF16 or AMX) or fp16 (CUDA)";

/** The longest video predict, faces and streams read unless --max-seconds says otherwise: 3 hours. */
export const DEFAULT_MAX_SECONDS = 3 * 3600;

/** --max-seconds: measured from the video's packets and again while decoding, never from its metadata. */
export function maxSecondsFlag(cmd: string, raw: string | undefined): number {
  if (raw === undefined) return DEFAULT_MAX_SECONDS;
  const v = /^\s*\d+(\.\d+)?\s*$/.test(raw) ? Number(raw) : NaN;
  if (!(v > 0)) throw new UsageError(`${cmd}: --max-seconds must be a positive number of seconds, not '${raw}'`);
  return v;
}

export const MAX_SECONDS_HELP = `refuse a video longer than this many seconds, measured from what it holds, not its metadata (${DEFAULT_MAX_SECONDS})`;
