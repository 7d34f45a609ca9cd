// FERV39k (SPEC.md §10): frame folders, DFEW's seven classes by name.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DFEW_CLASSES, labelIndex } from '../classes.js';
import { UserError } from '../../util/errors.js';
import { duplicateProblems, fail, imageSize, readLines, resolveUnder, type ClipEntry, type Dataset } from './common.js';

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
  const crops = faceCropSign(root, entries);
  if (crops)
    throw new UserError(
      `FERV39k at ${root}: the clips listed are face crops (${crops}), and the scene stream cannot be built from ` +
        'a face crop (SPEC.md §10): point --root at the folder of the full video frames (the scene folders such as ' +
        '0_Daily/, with 4_setups/ beside them)',
    );
  return entries;
}

/**
 * Why these clips look like FERV39k's face crops rather than its scene frames, or '' when they do
 * not: a folder named for faces on their path (its face-crop tree), or first frames that are all
 * square (a crop; video frames are wider than high). The first few clips decide: reading every
 * frame's header of 39k clips would cost more than the answer is worth.
 */
function faceCropSign(root: string, entries: ClipEntry[]): string {
  const named = [path.basename(path.resolve(root)), ...(entries[0]?.id.split(/[\\/]/) ?? [])].find((s) =>
    /face/i.test(s),
  );
  if (named !== undefined) return `their path has the folder '${named}'`;
  const sizes = entries.slice(0, 3).map((e) => {
    let files: string[] = [];
    try {
      files = fs.readdirSync(e.source).filter((f) => /\.(jpe?g|png)$/i.test(f));
    } catch {
      // a video file, or a folder it cannot read: extraction says what is wrong with it
    }
    const first = files.sort()[0];
    return first === undefined ? undefined : imageSize(path.join(e.source, first));
  });
  const square = sizes.every((s) => s !== undefined && s[0] === s[1]);
  return sizes.length && square ? `their frames are square, ${sizes[0]![0]}x${sizes[0]![1]}` : '';
}

export const ferv39k: Dataset = {
  name: 'ferv39k',
  title: 'FERV39k',
  input: 'root',
  classes: DFEW_CLASSES,
  read: (o) => ({ entries: readFerv39k(o.root!) }),
};
