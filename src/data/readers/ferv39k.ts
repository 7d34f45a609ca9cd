// FERV39k (SPEC.md §10): frame folders, DFEW's seven classes by name.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DFEW_CLASSES, labelIndex } from '../classes.js';
import { duplicateProblems, fail, readLines, resolveUnder, type ClipEntry, type Dataset } from './common.js';

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

export const ferv39k: Dataset = {
  name: 'ferv39k',
  title: 'FERV39k',
  input: 'root',
  classes: DFEW_CLASSES,
  read: (o) => ({ entries: readFerv39k(o.root!) }),
};
