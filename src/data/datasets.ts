// The data sets `ous extract --dataset` reads (SPEC.md §10). Each reader turns a layout into a
// list of clips (where the video or frames are, the label, the split) and checks the whole list
// before any work starts, reporting every missing or unreadable entry at once. A new data set is
// one file in src/data/readers/ (its reader and its `Dataset` entry, see common.ts) and one line
// in DATASETS below; `ous extract` takes its flags, checks and messages from the entry.
import { dfew } from './readers/dfew.js';
import { ferv39k } from './readers/ferv39k.js';
import { mafw } from './readers/mafw.js';
import { manifest } from './readers/manifest.js';
import type { Dataset } from './readers/common.js';

export type { ClipEntry, Dataset, ReadOptions } from './readers/common.js';
export { readDfew } from './readers/dfew.js';
export { readFerv39k } from './readers/ferv39k.js';
export { readMafw } from './readers/mafw.js';
export { readManifest } from './readers/manifest.js';

/** Every data set, in the order usage and messages list them. */
export const DATASETS: readonly Dataset[] = [dfew, ferv39k, mafw, manifest];

/** The data set called `name`, or undefined. */
export function datasetNamed(name: string | undefined): Dataset | undefined {
  return DATASETS.find((d) => d.name === name);
}

/** "a, b and c" (or "a, b or c"): names listed in a message. */
export function listNames(names: readonly string[], last: 'and' | 'or'): string {
  return names.length > 1 ? `${names.slice(0, -1).join(', ')} ${last} ${names.at(-1)}` : (names[0] ?? '');
}
