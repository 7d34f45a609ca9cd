// Readers for the data set layouts of SPEC.md §10. Each turns a layout into a list of clips
// (where the video or frames are, the label, the split) and checks the whole list before any
// work starts, reporting every missing or unreadable entry at once.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { UserError } from '../util/errors.js';
import { fsUserError, pathKind } from '../util/fs.js';
import type { Split } from './cache.js';
import { DFEW_CLASSES, MAFW_CLASSES, labelIndex } from './classes.js';

export interface ClipEntry {
  id: string; // unique within the data set
  source: string; // a video file or a folder of frames: the scene stream's source
  faceFrames?: string; // a folder of face crops the data set ships (DFEW's clip_224x224), used instead of detection
  faceBox?: [number, number, number, number]; // a known face box [x, y, w, h] for every frame: no detection
  label: number; // class index in the data set's class list (classes.ts)
  split: Split;
}

/** Minimal CSV: comma-separated, optional double quotes, no embedded newlines. */
function parseCsvLine(line: string): string[] {
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

function readLines(file: string): string[] {
  // pathKind, not existsSync: a symlink loop or an unreadable path is said as such, and a FIFO is
  // refused before it is read (it blocks, or reads as an empty file).
  const kind = pathKind(file);
  if (kind === 'missing') throw new UserError(`missing ${file}`);
  if (kind === 'folder') throw new UserError(`${file} is a folder, not a list of clips`);
  if (kind !== 'file') throw new UserError(`${file} is ${kind.other}, not a list of clips (a regular file)`);
  try {
    return fs.readFileSync(file, 'utf8').split(/\r?\n/).filter((l) => l.trim() !== '');
  } catch (err) {
    throw fsUserError(err, file, 'cannot read');
  }
}

function fail(what: string, problems: string[]): never {
  const shown = problems.slice(0, 50);
  throw new UserError(`${what}: ${problems.length} problem(s):\n  ${shown.join('\n  ')}${problems.length > shown.length ? `\n  ... and ${problems.length - shown.length} more` : ''}`);
}

/**
 * A listed path: relative ones resolve under `base` and may not leave it (`../../etc/passwd`);
 * absolute ones are taken as given. Returns the absolute path and the clip's id: the path relative
 * to `base` when inside it (so `c3.mp4` and `./c3.mp4` are one id), else the absolute path.
 */
function resolveUnder(base: string, listed: string): { source: string; id: string } {
  const source = path.resolve(base, listed);
  const rel = path.relative(path.resolve(base), source);
  const inside = rel !== '' && rel !== '..' && !rel.startsWith(`..${path.sep}`) && !path.isAbsolute(rel);
  if (!inside && !path.isAbsolute(listed)) throw new Error(`'${listed}' leaves the root ${base} (a relative path must stay under --root; give an absolute path to read elsewhere)`);
  return { source, id: inside ? rel : source };
}

/**
 * The same clip listed twice, after following symlinks: one problem per extra listing, naming
 * both places (`where` is file:line, or the data set's id).
 */
function duplicateProblems(items: Array<{ where: string; source: string }>): string[] {
  const first = new Map<string, { where: string; source: string }>();
  const problems: string[] = [];
  for (const it of items) {
    let real: string;
    try {
      real = fs.realpathSync(it.source);
    } catch {
      real = path.resolve(it.source);
    }
    const other = first.get(real);
    if (other) problems.push(`${other.where} and ${it.where} are the same clip (${real}${other.source !== it.source ? `, listed as ${other.source} and ${it.source}` : ''})`);
    else first.set(real, it);
  }
  return problems;
}

/**
 * DFEW: EmoLabel_DataSplit/{train,test}(single-labeled)/set_<fold>.csv (video_name,label 1..7),
 * Clip/original/<id>.mp4 (the scene), Clip/clip_224x224/<id>/ (face crops, when present).
 */
export function readDfew(root: string, fold: number): ClipEntry[] {
  if (!(fold >= 1 && fold <= 5)) throw new UserError(`DFEW has folds 1..5, not ${fold}`);
  const entries: ClipEntry[] = [];
  const problems: string[] = [];
  for (const split of ['train', 'test'] as const) {
    const csv = path.join(root, 'EmoLabel_DataSplit', `${split}(single-labeled)`, `set_${fold}.csv`);
    const lines = readLines(csv);
    const header = parseCsvLine(lines[0]!);
    const [iName, iLabel] = [header.indexOf('video_name'), header.indexOf('label')];
    if (iName < 0 || iLabel < 0) problems.push(`${csv}: expected columns video_name,label, found ${header.join(',')}`);
    lines.slice(1).forEach((line, n) => {
      const cols = parseCsvLine(line);
      const id = cols[iName]!.padStart(5, '0');
      const label = Number(cols[iLabel]);
      if (!(Number.isInteger(label) && label >= 1 && label <= 7)) return void problems.push(`${csv}:${n + 2}: label '${cols[iLabel]}' is not 1..7`);
      const video = path.join(root, 'Clip', 'original', `${id}.mp4`);
      if (!fs.existsSync(video)) return void problems.push(`${csv}:${n + 2}: ${video} is missing`);
      const faces = path.join(root, 'Clip', 'clip_224x224', id);
      entries.push({ id, source: video, faceFrames: fs.existsSync(faces) ? faces : undefined, label: label - 1, split });
    });
  }
  problems.push(...duplicateProblems(entries.map((e) => ({ where: `video ${e.id} (${e.split})`, source: e.source }))));
  if (problems.length) fail(`DFEW at ${root}, fold ${fold}`, problems);
  return entries;
}

/**
 * FERV39k: 4_setups/All_scenes/{train,test}_All.csv, lines "<relative clip dir> <EmotionName>"
 * (space-separated, no header); the frames are under the data set root.
 */
export function readFerv39k(root: string): ClipEntry[] {
  const entries: ClipEntry[] = [];
  const wheres: string[] = []; // file:line of each entry
  const problems: string[] = [];
  for (const split of ['train', 'test'] as const) {
    const list = path.join(root, '4_setups', 'All_scenes', `${split}_All.csv`);
    readLines(list).forEach((line, n) => {
      const m = /^(.*\S)\s+(\S+)$/.exec(line.trim());
      if (!m) return void problems.push(`${list}:${n + 1}: expected "<clip dir> <emotion>"`);
      let label: number;
      try {
        label = labelIndex(m[2]!, DFEW_CLASSES);
      } catch (err) {
        return void problems.push(`${list}:${n + 1}: ${(err as Error).message}`);
      }
      let dir: string;
      try {
        dir = resolveUnder(root, m[1]!).source;
      } catch (err) {
        return void problems.push(`${list}:${n + 1}: ${(err as Error).message}`);
      }
      if (!fs.existsSync(dir)) return void problems.push(`${list}:${n + 1}: ${dir} is missing`);
      entries.push({ id: m[1]!, source: dir, label, split });
      wheres.push(`${list}:${n + 1}`);
    });
  }
  problems.push(...duplicateProblems(entries.map((e, i) => ({ where: wheres[i]!, source: e.source }))));
  if (problems.length) fail(`FERV39k at ${root}`, problems);
  return entries;
}

/** MAFW's split folder as shipped, and as some copies rename it (no spaces or ampersand). */
const MAFW_SPLIT_DIRS = ['Train & Test Set', 'Train_Test_Set'];

/**
 * MAFW, the single-label set: `Train & Test Set/single/no_caption/set_<fold>/{train,test}.txt`,
 * lines "<clip file> <emotion>" (space-separated, no header, e.g. "00025.mp4 anger"); the clips are
 * data/clips/<clip file>. Classes in MAFW_CLASSES' order.
 */
export function readMafw(root: string, fold: number): ClipEntry[] {
  if (!(Number.isInteger(fold) && fold >= 1 && fold <= 5)) throw new UserError(`MAFW has folds 1..5, not ${fold}`);
  const candidates = MAFW_SPLIT_DIRS.map((d) => path.join(root, d, 'single', 'no_caption', `set_${fold}`));
  const dir = candidates.find((d) => fs.existsSync(d)) ?? candidates[0]!;
  const entries: ClipEntry[] = [];
  const problems: string[] = [];
  const seen = new Map<string, string>();
  for (const split of ['train', 'test'] as const) {
    const list = path.join(dir, `${split}.txt`);
    if (!fs.existsSync(list)) {
      problems.push(`${list} is missing`);
      continue;
    }
    readLines(list).forEach((line, n) => {
      const where = `${list}:${n + 1}`;
      const m = /^(\S+)\s+(\S+)$/.exec(line.trim());
      if (!m) return void problems.push(`${where}: expected "<clip file> <emotion>", found '${line.trim()}'`);
      let label: number;
      try {
        label = labelIndex(m[2]!, MAFW_CLASSES);
      } catch (err) {
        return void problems.push(`${where}: ${(err as Error).message}`);
      }
      const file = path.extname(m[1]!) ? m[1]! : `${m[1]}.mp4`;
      const id = path.basename(file, path.extname(file));
      const first = seen.get(id);
      if (first) return void problems.push(`${where}: ${file} is listed again (first at ${first})`);
      seen.set(id, where);
      const video = path.join(root, 'data', 'clips', file);
      if (!fs.existsSync(video)) return void problems.push(`${where}: ${video} is missing`);
      entries.push({ id, source: video, label, split });
    });
  }
  if (problems.length) fail(`MAFW at ${root}, fold ${fold}`, problems);
  return entries;
}

/**
 * A manifest of one's own videos: CSV `path,label[,split][,box]` with a header; labels name one of
 * `classNames` (any case, synonyms folded) or give its index; paths absolute or relative to `root`
 * (default: the manifest's folder), a relative one may not leave it; split defaults to train; box,
 * when given, is a known face box "x y w h" for the whole clip (detection is skipped). Bad rows are
 * returned as failures rather than thrown, so the good clips still extract; the same clip on two
 * rows (symlinks followed) is an error naming both, since neither row's label can be trusted.
 */
export function readManifest(file: string, root?: string, classNames: readonly string[] = DFEW_CLASSES): { entries: ClipEntry[]; failed: Array<{ path: string; error: string }> } {
  const lines = readLines(file);
  if (lines.length < 2) throw new UserError(`${file}: no clips (${lines.length ? 'only the header line' : 'the file is empty'}); expected a header path,label[,split][,box] and one row per clip`);
  const header = parseCsvLine(lines[0]!).map((h) => h.trim().toLowerCase());
  const [iPath, iLabel, iSplit, iBox] = ['path', 'label', 'split', 'box'].map((c) => header.indexOf(c));
  if (iPath! < 0 || iLabel! < 0) throw new UserError(`${file}: the first line must name the columns path,label[,split]; found ${header.join(',')}`);
  // A column named twice (path,path,label) would silently read the first and ignore the other.
  const twiceNamed = header.filter((h, i) => h && header.indexOf(h) !== i);
  if (twiceNamed.length) throw new UserError(`${file}: the header names the column '${twiceNamed[0]}' twice (${header.join(',')}); each of path,label,split,box at most once`);
  const base = root ?? path.dirname(file);
  const entries: ClipEntry[] = [];
  const failed: Array<{ path: string; error: string }> = [];
  const wheres: string[] = []; // file:line of each entry
  lines.slice(1).forEach((line, n) => {
    const cols = parseCsvLine(line);
    const rel = cols[iPath!] ?? '';
    let source = path.resolve(base, rel);
    const where = `${file}:${n + 2}`;
    try {
      // A short row would read its missing label as '' ("unknown label ''"): say the real cause.
      if (cols.length < Math.max(iPath!, iLabel!) + 1) throw new Error(`the row has ${cols.length} field(s), the header ${header.length} (${header.join(',')})`);
      if (!rel) throw new Error('empty path');
      // A URL is not downloaded: it would be read as a path under --root (http:/host/...).
      if (/^[a-z][a-z0-9+.-]*:\/\//i.test(rel)) throw new Error(`'${rel}' is a URL; ous reads local files: download it and list its path`);
      const resolved = resolveUnder(base, rel);
      source = resolved.source;
      if (!fs.existsSync(source)) throw new Error(`${source} does not exist`);
      const label = labelIndex(cols[iLabel!] ?? '', classNames, '; a manifest with other classes names them with --classes a,b,c');
      const splitRaw = iSplit! >= 0 ? (cols[iSplit!] ?? '').toLowerCase() || 'train' : 'train';
      if (splitRaw !== 'train' && splitRaw !== 'test') throw new Error(`split '${splitRaw}' is not train or test`);
      let faceBox: ClipEntry['faceBox'];
      const boxRaw = iBox! >= 0 ? (cols[iBox!] ?? '').trim() : '';
      if (boxRaw) {
        const b = boxRaw.split(/\s+/).map((v) => (/^[+-]?(\d+\.?\d*|\.\d+)$/.test(v) ? Number(v) : NaN));
        if (b.length !== 4 || !b.every(Number.isFinite) || b[2]! <= 0 || b[3]! <= 0) throw new Error(`box '${boxRaw}' is not "x y w h"`);
        faceBox = b as [number, number, number, number];
      }
      entries.push({ id: resolved.id, source, label, split: splitRaw, ...(faceBox ? { faceBox } : {}) });
      wheres.push(where);
    } catch (err) {
      failed.push({ path: source, error: `${where}: ${(err as Error).message}` });
    }
  });
  const twice = duplicateProblems(entries.map((e, i) => ({ where: wheres[i]!, source: e.source })));
  if (twice.length) fail(`${file}: the same clip is listed more than once`, twice);
  return { entries, failed };
}
