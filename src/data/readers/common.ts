// What every data set reader shares: the clip entry it lists, its entry in the registry
// (src/data/datasets.ts), and small CSV and path helpers that check a listing before work starts.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { UserError } from '../../util/errors.js';
import { fsUserError, pathKind } from '../../util/fs.js';
import type { Split } from '../cache.js';

export interface ClipEntry {
  id: string; // unique within the data set
  source: string; // a video file or a folder of frames: the scene stream's source
  faceFrames?: string; // a folder of face crops the data set ships (DFEW's clip_224x224), used instead of detection
  faceBox?: [number, number, number, number]; // a known face box [x, y, w, h] for every frame: no detection
  label: number; // class index in the data set's class list (classes.ts)
  split: Split;
}

/** What `ous extract` gives a reader: the flags it asked for, checked, and the class list. */
export interface ReadOptions {
  root?: string; // --root (required when `input` is 'root'; the manifest's base otherwise)
  fold?: number; // --fold, 1..folds, for a data set with folds
  manifest?: string; // --manifest, when `input` is 'manifest'
  classNames: readonly string[]; // the data set's classes, or --classes
}

/** One data set in the registry: its --dataset name, the flags it needs, its classes, its reader. */
export interface Dataset {
  name: string; // the --dataset value
  title: string; // its name in messages ('DFEW')
  input: 'root' | 'manifest'; // what it is read from: --root DIR, or --manifest FILE.csv (with --root as its base)
  folds?: number; // --fold 1..folds (default 1); none: no --fold
  classes?: readonly string[]; // its own classes; none: --classes a,b,c, else DFEW's seven
  /** The clips, every problem of the listing reported at once (a UserError); `failed`: rows skipped, not fatal. */
  read(o: ReadOptions): { entries: ClipEntry[]; failed?: Array<{ path: string; error: string }> };
}

/** Minimal CSV: comma-separated, optional double quotes, no embedded newlines. */
export function parseCsvLine(line: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i]!;
    if (quoted) {
      if (ch === '"' && line[i + 1] === '"') (cur += '"'), i++;
      else if (ch === '"') quoted = false;
      else cur += ch;
    } else if (ch === '"') quoted = true;
    else if (ch === ',') out.push(cur), (cur = '');
    else cur += ch;
  }
  out.push(cur);
  return out.map((c) => c.trim());
}

export function readLines(file: string): string[] {
  // pathKind, not existsSync: a symlink loop or an unreadable path is said as such, and a FIFO is
  // refused before it is read (it blocks, or reads as an empty file).
  const kind = pathKind(file);
  if (kind === 'missing') throw new UserError(`missing ${file}`);
  if (kind === 'folder') throw new UserError(`${file} is a folder, not a list of clips`);
  if (kind !== 'file') throw new UserError(`${file} is ${kind.other}, not a list of clips (a regular file)`);
  try {
    return fs
      .readFileSync(file, 'utf8')
      .split(/\r?\n/)
      .filter((l) => l.trim() !== '');
  } catch (err) {
    throw fsUserError(err, file, 'cannot read');
  }
}

export function fail(what: string, problems: string[]): never {
  const shown = problems.slice(0, 50);
  throw new UserError(
    `${what}: ${problems.length} problem(s):\n  ${shown.join('\n  ')}` +
      `${problems.length > shown.length ? `\n  ... and ${problems.length - shown.length} more` : ''}`,
  );
}

/**
 * A listed path: relative ones resolve under `base` and may not leave it (`../../etc/passwd`);
 * absolute ones are taken as given. Returns the absolute path and the clip's id: the path relative
 * to `base` when inside it (so `c3.mp4` and `./c3.mp4` are one id), else the absolute path.
 */
export function resolveUnder(base: string, listed: string): { source: string; id: string } {
  const source = path.resolve(base, listed);
  const rel = path.relative(path.resolve(base), source);
  const inside = rel !== '' && rel !== '..' && !rel.startsWith(`..${path.sep}`) && !path.isAbsolute(rel);
  if (!inside && !path.isAbsolute(listed))
    throw new Error(
      `'${listed}' leaves the root ${base} (a relative path must stay under --root; ` +
        'give an absolute path to read elsewhere)',
    );
  return { source, id: inside ? rel : source };
}

/**
 * A listed clip's real path (symlinks followed; as resolved when
 * it cannot be followed): what makes two listings one clip.
 */
export function realClip(source: string): string {
  try {
    return fs.realpathSync(source);
  } catch {
    return path.resolve(source);
  }
}

/**
 * The id of one person of a clip listed more than once: the clip's id and the person's face box as
 * a W3C media fragment (`videos/a.mp4#xywh=12,30,20,22`). Why the box and not a row number: the
 * box is what the row says about the person, so reordering a manifest keeps every id (and cache key).
 */
export function personId(clipId: string, box: readonly number[]): string {
  return `${clipId}#xywh=${box.join(',')}`;
}

/**
 * The same clip listed twice, after following symlinks: one problem per extra listing, naming
 * both places (`where` is file:line, or the data set's id). A clip may be listed more than once
 * when each of its rows names another face box (`box`): each row is then one person of the clip.
 * Two rows with the same box, or one with a box and one without, are the same listing twice.
 */
export function duplicateProblems(items: Array<{ where: string; source: string; box?: readonly number[] }>): string[] {
  const first = new Map<string, { where: string; source: string }>(); // real path + box -> its first listing
  // real path -> its first listing, and whether that had a box
  const boxed = new Map<string, { where: string; box: boolean }>();
  const problems: string[] = [];
  for (const it of items) {
    const real = realClip(it.source);
    const box = it.box ? ` (box ${it.box.join(' ')})` : '';
    const other = first.get(real + box);
    const mixed = boxed.get(real);
    if (other)
      problems.push(
        `${other.where} and ${it.where} are the same clip${box} ` +
          `(${real}${other.source !== it.source ? `, listed as ${other.source} and ${it.source}` : ''})`,
      );
    else if (mixed && mixed.box !== Boolean(it.box))
      problems.push(
        `${mixed.where} and ${it.where} list the same clip (${real}), one with a box and one without: ` +
          "a clip listed once per person names each person's box on every row",
      );
    else first.set(real + box, it);
    if (!mixed) boxed.set(real, { where: it.where, box: Boolean(it.box) });
  }
  return problems;
}

/**
 * Width and height of a JPEG or PNG from its header (no decoding), or undefined for another format
 * or a header it cannot read: enough to tell a face crop (square) from a video frame.
 */
export function imageSize(file: string): [number, number] | undefined {
  let b: Buffer;
  try {
    const fd = fs.openSync(file, 'r');
    try {
      b = Buffer.alloc(65536);
      b = b.subarray(0, fs.readSync(fd, b, 0, b.length, 0));
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    return undefined;
  }
  // PNG: the signature, then IHDR's width and height (big-endian)
  if (b.length >= 24 && b.readUInt32BE(0) === 0x89504e47) return [b.readUInt32BE(16), b.readUInt32BE(20)];
  if (b.length < 4 || b[0] !== 0xff || b[1] !== 0xd8) return undefined;
  // JPEG: walk the segments to a start-of-frame marker (SOF0..SOF15 less DHT, JPG, DAC): height, then width
  for (let i = 2; i + 9 < b.length; ) {
    if (b[i] !== 0xff) return undefined;
    const marker = b[i + 1]!;
    if (marker >= 0xc0 && marker <= 0xcf && ![0xc4, 0xc8, 0xcc].includes(marker))
      return [b.readUInt16BE(i + 7), b.readUInt16BE(i + 5)];
    i += 2 + b.readUInt16BE(i + 2);
  }
  return undefined;
}
