// Which frames of a clip OUS looks at (SPEC.md §2): T segments over the N frames, TSN-style.
//   test:  index_i = floor(N/T/2 + i·N/T), the middle of segment i
//   train: one random index inside each segment
//   N < T: the frames 0..N-1, then the last frame repeated up to T.

export type SamplingMode = 'test' | 'train';

export function sampleIndices(
  n: number,
  t: number,
  mode: SamplingMode = 'test',
  random: () => number = Math.random,
): number[] {
  if (!(Number.isInteger(n) && n >= 1))
    throw new RangeError(`sampleIndices: a clip needs at least one frame, got ${n}`);
  if (!(Number.isInteger(t) && t >= 1)) throw new RangeError(`sampleIndices: T must be a positive integer, got ${t}`);
  if (n < t) return Array.from({ length: t }, (_, i) => Math.min(i, n - 1));
  return Array.from({ length: t }, (_, i) => {
    if (mode === 'test') return Math.floor((n * (2 * i + 1)) / (2 * t)); // = floor(N/T/2 + i·N/T), in integers
    const start = Math.floor((i * n) / t);
    const end = Math.floor(((i + 1) * n) / t); // exclusive; end > start since N ≥ T
    return start + Math.floor(random() * (end - start));
  });
}
