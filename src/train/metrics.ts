// The field's metrics (SPEC.md §1): WAR = overall accuracy, UAR = mean per-class recall (rows of the
// confusion matrix, normalised), per-class recall, and the confusion matrix itself.

export interface Metrics {
  uar: number; // fraction in [0, 1]
  war: number;
  perClassRecall: number[]; // NaN for a class with no sample
  confusion: number[][]; // [true class][predicted class] counts
  n: number;
}

export function confusionMatrix(
  labels: ArrayLike<number>,
  predictions: ArrayLike<number>,
  numClasses: number,
): number[][] {
  if (labels.length !== predictions.length)
    throw new RangeError(`${labels.length} labels but ${predictions.length} predictions`);
  const m = Array.from({ length: numClasses }, () => new Array<number>(numClasses).fill(0));
  for (let i = 0; i < labels.length; i++) m[labels[i]!]![predictions[i]!]! += 1;
  return m;
}

/** UAR averages over the classes that have samples (a class absent from the split has no recall). */
export function metricsOf(labels: ArrayLike<number>, predictions: ArrayLike<number>, numClasses: number): Metrics {
  const confusion = confusionMatrix(labels, predictions, numClasses);
  const perClassRecall = confusion.map((row, c) => {
    const total = row.reduce((a, b) => a + b, 0);
    return total ? row[c]! / total : NaN;
  });
  const present = perClassRecall.filter((r) => !Number.isNaN(r));
  const correct = confusion.reduce((s, row, c) => s + row[c]!, 0);
  return {
    uar: present.length ? present.reduce((a, b) => a + b, 0) / present.length : NaN,
    war: labels.length ? correct / labels.length : NaN,
    perClassRecall,
    confusion,
    n: labels.length,
  };
}

/** Each row divided by its sum (the paper's Fig. 5); rows without samples stay zero. */
export function rowNormalised(confusion: number[][]): number[][] {
  return confusion.map((row) => {
    const s = row.reduce((a, b) => a + b, 0);
    return row.map((v) => (s ? v / s : 0));
  });
}

/** A metric over several runs of one setting (seeds): the field reports mean ± std, with the range. */
export interface Spread {
  n: number;
  mean: number;
  std: number; // sample standard deviation (n − 1); NaN for one run
  min: number;
  max: number;
}

export function spreadOf(values: readonly number[]): Spread {
  const n = values.length;
  if (!n) throw new RangeError('spreadOf: no values');
  const mean = values.reduce((a, b) => a + b, 0) / n;
  const std = n > 1 ? Math.sqrt(values.reduce((a, v) => a + (v - mean) ** 2, 0) / (n - 1)) : NaN;
  return { n, mean, std, min: Math.min(...values), max: Math.max(...values) };
}

/** "94.3 ± 2.1 (min 90.0, max 97.1)" in percent points, for fractions. */
export function formatSpread(s: Spread, digits = 1): string {
  const p = (v: number) => (100 * v).toFixed(digits);
  return `${p(s.mean)} ± ${Number.isNaN(s.std) ? '-' : p(s.std)} (min ${p(s.min)}, max ${p(s.max)})`;
}
