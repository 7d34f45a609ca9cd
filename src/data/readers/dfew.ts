// DFEW (SPEC.md §10): five folds, seven classes, face crops shipped beside the videos.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { UserError } from '../../util/errors.js';
import { DFEW_CLASSES } from '../classes.js';
import { duplicateProblems, fail, parseCsvLine, readLines, type ClipEntry, type Dataset } from './common.js';

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
      if (!(Number.isInteger(label) && label >= 1 && label <= 7))
        return void problems.push(`${csv}:${n + 2}: label '${cols[iLabel]}' is not 1..7`);
      const video = path.join(root, 'Clip', 'original', `${id}.mp4`);
      if (!fs.existsSync(video)) return void problems.push(`${csv}:${n + 2}: ${video} is missing`);
      const faces = path.join(root, 'Clip', 'clip_224x224', id);
      entries.push({
        id,
        source: video,
        faceFrames: fs.existsSync(faces) ? faces : undefined,
        label: label - 1,
        split,
      });
    });
  }
  problems.push(...duplicateProblems(entries.map((e) => ({ where: `video ${e.id} (${e.split})`, source: e.source }))));
  if (problems.length) fail(`DFEW at ${root}, fold ${fold}`, problems);
  return entries;
}

export const dfew: Dataset = {
  name: 'dfew',
  title: 'DFEW',
  input: 'root',
  folds: 5,
  classes: DFEW_CLASSES,
  read: (o) => ({ entries: readDfew(o.root!, o.fold!) }),
};
