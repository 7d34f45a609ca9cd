// `ous eval --per-clip FILE.csv`: every clip of the evaluated split with its true label, the
// predicted one and each class's probability, for error analysis, and the reference `ous predict`
// is held to (a clip no longer than one window gives the same probabilities on its video).
import { noGrad, tidy } from '../torch/index.js';
import { writeFileAtomic } from '../util/fs.js';
import type { LoadedRun } from './run.js';

const csvField = (v: string | number) => {
  const t = String(v);
  return /[",\r\n]/.test(t) ? `"${t.replace(/"/g, '""')}"` : t;
};

/** The head's class probabilities for clips `idx` of the run's cache, 256 clips a forward pass. */
function probabilities(run: LoadedRun, idx: number[]): number[][] {
  const out: number[][] = [];
  for (let i = 0; i < idx.length; i += 256)
    noGrad(() =>
      tidy(() => {
        const logits = run.head.forward(run.cache.data.batch(idx.slice(i, i + 256))).logits;
        out.push(...(logits.softmax(-1).toArray() as number[][])); // [B][C]
      }),
    );
  return out;
}

/** Writes FILE: clip,label,predicted,p_<class>... for the split's clips, in the cache's order. Returns the rows. */
export function writePerClip(file: string, run: LoadedRun, split: 'test' | 'val'): number {
  const idx = split === 'test' ? run.splits.test : run.splits.val;
  const names = run.conf.ous.classNames;
  const probs = probabilities(run, idx);
  const rows = idx.map((i, k) => {
    const p = probs[k]!;
    const predicted = p.indexOf(Math.max(...p));
    const record = run.cache.records[i]!;
    return [record.key, names[run.cache.data.labels[i]!]!, names[predicted]!, ...p.map((v) => +v.toPrecision(9))];
  });
  const header = ['clip', 'label', 'predicted', ...names.map((n) => `p_${n}`)];
  writeFileAtomic(file, [header, ...rows].map((r) => r.map(csvField).join(',')).join('\n') + '\n');
  return rows.length;
}
