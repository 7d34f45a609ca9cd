// MAFW (SPEC.md §10): the single-label set, five folds, eleven classes.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { UserError } from '../../util/errors.js';
import { MAFW_CLASSES, labelIndex } from '../classes.js';
import { fail, readLines, type ClipEntry, type Dataset } from './common.js';

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

export const mafw: Dataset = {
  name: 'mafw',
  title: 'MAFW',
  input: 'root',
  folds: 5,
  classes: MAFW_CLASSES,
  read: (o) => ({ entries: readMafw(o.root!, o.fold!) }),
};
