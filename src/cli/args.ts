// Flag values checked once, with one message shape for every command:
// "<cmd>: --flag must be <what>, not '<value>'" (a usage error, exit code 2).
import * as fs from 'node:fs';
import { UsageError, UserError } from '../util/errors.js';

/** An integer flag, at least `min`. Number('') is 0 and Number('1e3') is 1000: only plain digits pass. */
export function intFlag(cmd: string, flag: string, raw: string, min = 0): number {
  const v = /^[+-]?\d+$/.test(raw.trim()) ? Number(raw) : NaN;
  if (!Number.isSafeInteger(v) || v < min) throw new UsageError(`${cmd}: --${flag} must be an integer >= ${min}, not '${raw}'`);
  return v;
}

/** A finite number flag in [min, max]. */
export function numberFlag(cmd: string, flag: string, raw: string, range: { min?: number; max?: number } = {}): number {
  const v = raw.trim() === '' ? NaN : Number(raw);
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
