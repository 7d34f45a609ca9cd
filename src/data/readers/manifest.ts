// A manifest of one's own videos: a CSV of path,label[,split][,box], with one's own classes.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { UserError } from '../../util/errors.js';
import { DFEW_CLASSES, labelIndex } from '../classes.js';
import {
  duplicateProblems,
  fail,
  parseCsvLine,
  personId,
  readLines,
  realClip,
  resolveUnder,
  type ClipEntry,
  type Dataset,
} from './common.js';

/**
 * A manifest of one's own videos: CSV `path,label[,split][,box]` with a header; labels name one of
 * `classNames` (any case, synonyms folded) or give its index; paths absolute or relative to `root`
 * (default: the manifest's folder), a relative one may not leave it; split defaults to train; box,
 * when given, is a known face box "x y w h" for the whole clip (detection is skipped). Bad rows are
 * returned as failures rather than thrown, so the good clips still extract; the same clip on two
 * rows (symlinks followed) is an error naming both, since neither row's label can be trusted,
 * unless each row names another box: then each row is one person of the clip, with the id
 * `personId(path, box)` (`videos/a.mp4#xywh=12,30,20,22`); a clip listed once keeps its path as
 * its id, box or not, so existing caches extend as they were.
 */
export function readManifest(
  file: string,
  root?: string,
  classNames: readonly string[] = DFEW_CLASSES,
): { entries: ClipEntry[]; failed: Array<{ path: string; error: string }> } {
  const lines = readLines(file);
  if (lines.length < 2)
    throw new UserError(
      `${file}: no clips (${lines.length ? 'only the header line' : 'the file is empty'}); ` +
        'expected a header path,label[,split][,box] and one row per clip',
    );
  const header = parseCsvLine(lines[0]!).map((h) => h.trim().toLowerCase());
  const [iPath, iLabel, iSplit, iBox] = ['path', 'label', 'split', 'box'].map((c) => header.indexOf(c));
  if (iPath! < 0 || iLabel! < 0)
    throw new UserError(`${file}: the first line must name the columns path,label[,split]; found ${header.join(',')}`);
  // A column named twice (path,path,label) would silently read the first and ignore the other.
  const twiceNamed = header.filter((h, i) => h && header.indexOf(h) !== i);
  if (twiceNamed.length)
    throw new UserError(
      `${file}: the header names the column '${twiceNamed[0]}' twice ` +
        `(${header.join(',')}); each of path,label,split,box at most once`,
    );
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
      if (cols.length < Math.max(iPath!, iLabel!) + 1)
        throw new Error(`the row has ${cols.length} field(s), the header ${header.length} (${header.join(',')})`);
      if (!rel) throw new Error('empty path');
      // A URL is not downloaded: it would be read as a path under --root (http:/host/...).
      if (/^[a-z][a-z0-9+.-]*:\/\//i.test(rel))
        throw new Error(`'${rel}' is a URL; ous reads local files: download it and list its path`);
      const resolved = resolveUnder(base, rel);
      source = resolved.source;
      if (!fs.existsSync(source)) throw new Error(`${source} does not exist`);
      const label = labelIndex(
        cols[iLabel!] ?? '',
        classNames,
        '; a manifest with other classes names them with --classes a,b,c',
      );
      const splitRaw = iSplit! >= 0 ? (cols[iSplit!] ?? '').toLowerCase() || 'train' : 'train';
      if (splitRaw !== 'train' && splitRaw !== 'test') throw new Error(`split '${splitRaw}' is not train or test`);
      let faceBox: ClipEntry['faceBox'];
      const boxRaw = iBox! >= 0 ? (cols[iBox!] ?? '').trim() : '';
      if (boxRaw) {
        const b = boxRaw.split(/\s+/).map((v) => (/^[+-]?(\d+\.?\d*|\.\d+)$/.test(v) ? Number(v) : NaN));
        if (b.length !== 4 || !b.every(Number.isFinite) || b[2]! <= 0 || b[3]! <= 0)
          throw new Error(`box '${boxRaw}' is not "x y w h"`);
        faceBox = b as [number, number, number, number];
      }
      entries.push({ id: resolved.id, source, label, split: splitRaw, ...(faceBox ? { faceBox } : {}) });
      wheres.push(where);
    } catch (err) {
      failed.push({ path: source, error: `${where}: ${(err as Error).message}` });
    }
  });
  const twice = duplicateProblems(entries.map((e, i) => ({ where: wheres[i]!, source: e.source, box: e.faceBox })));
  if (twice.length) fail(`${file}: the same clip is listed more than once`, twice);
  const rows = new Map<string, number>(); // real path -> rows that list it
  const reals = entries.map((e) => realClip(e.source));
  for (const r of reals) rows.set(r, (rows.get(r) ?? 0) + 1);
  const ided = entries.map((e, i) => (rows.get(reals[i]!)! > 1 ? { ...e, id: personId(e.id, e.faceBox!) } : e));
  // A file that happens to be named like a person's id (a.mp4#xywh=1,2,3,4 beside a.mp4) would share its cache key.
  const byId = new Map<string, number>();
  const clash = ided.flatMap((e, i) => {
    const j = byId.get(e.id);
    byId.set(e.id, i);
    return j === undefined ? [] : [`${wheres[j]} and ${wheres[i]} would have the same id ${e.id}: rename the file`];
  });
  if (clash.length) fail(`${file}: two rows have the same clip id`, clash);
  return { entries: ided, failed };
}

export const manifest: Dataset = {
  name: 'manifest',
  title: 'manifest',
  input: 'manifest',
  read: (o) => readManifest(o.manifest!, o.root, o.classNames),
};
