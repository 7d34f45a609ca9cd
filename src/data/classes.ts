// The classes of a data set as data: their names (the words the prompts use, in label order) and
// each class's scene polarity (SPEC.md §1). The feature cache records them; training takes them from
// the cache. Labels are matched to classes case-insensitively through the usual synonyms, so a
// manifest may say "Happy" where the class is "happiness".
import { UserError } from '../util/errors.js';

/** Scene polarity classes: 0 negative, 1 neutral, 2 positive. */
export const POLARITIES = ['negative', 'neutral', 'positive'] as const;
const [NEG, NEU, POS] = [0, 1, 2];

export interface ClassSet {
  classNames: string[]; // words in the prompts, in label order
  polarityOfClass: number[] | null; // polarity label of each class; null: no polarity labels (trains without L_pol)
}

// Known emotions: the word used in prompts, its other spellings, and its polarity (SPEC.md §1's
// choice, extended to MAFW's four extra classes, all negative).
const KNOWN: Array<{ name: string; synonyms: string[]; polarity: number }> = [
  { name: 'happiness', synonyms: ['happy'], polarity: POS },
  { name: 'sadness', synonyms: ['sad'], polarity: NEG },
  { name: 'neutral', synonyms: [], polarity: NEU },
  { name: 'anger', synonyms: ['angry'], polarity: NEG },
  { name: 'surprise', synonyms: ['surprised'], polarity: POS },
  { name: 'disgust', synonyms: ['disgusted'], polarity: NEG },
  { name: 'fear', synonyms: ['fearful'], polarity: NEG },
  { name: 'contempt', synonyms: ['contemptuous'], polarity: NEG },
  { name: 'anxiety', synonyms: ['anxious'], polarity: NEG },
  { name: 'helplessness', synonyms: ['helpless'], polarity: NEG },
  { name: 'disappointment', synonyms: ['disappointed'], polarity: NEG },
];
const CANONICAL = new Map(KNOWN.flatMap((k) => [k.name, ...k.synonyms].map((w) => [w, k.name] as const)));
const KNOWN_POLARITY = new Map(KNOWN.map((k) => [k.name, k.polarity]));

/** DFEW's seven classes in DFEW's order (SPEC.md §1); FERV39k and plain manifests use them too. */
export const DFEW_CLASSES: readonly string[] = [
  'happiness',
  'sadness',
  'neutral',
  'anger',
  'surprise',
  'disgust',
  'fear',
];
/** MAFW's eleven single-label classes in the order of its papers and code. */
export const MAFW_CLASSES: readonly string[] = [
  'anger',
  'disgust',
  'fear',
  'happiness',
  'neutral',
  'sadness',
  'surprise',
  'contempt',
  'anxiety',
  'helplessness',
  'disappointment',
];

/** The form two spellings of one class share: lower case, synonyms folded ("Happy" -> "happiness"). */
export function canonicalClass(word: string): string {
  const s = word.trim().toLowerCase();
  return CANONICAL.get(s) ?? s;
}

/** A label (a class name in any case or spelling, or an index 0..C-1) -> its class index; `hint` ends the error. */
export function labelIndex(raw: string, classNames: readonly string[], hint = ''): number {
  const s = canonicalClass(raw);
  const i = classNames.findIndex((c) => canonicalClass(c) === s);
  if (i >= 0) return i;
  if (/^\d+$/.test(s) && Number(s) < classNames.length) return Number(s);
  throw new Error(
    `unknown label '${raw}' (the classes are ${classNames.join(', ')}, or 0..${classNames.length - 1})${hint}`,
  );
}

/** `--classes a,b,c`: the class words in label order. */
export function parseClassList(s: string): string[] {
  const names = s.split(',').map((n) => n.trim());
  if (names.length < 2 || names.some((n) => !n))
    throw new UserError(`--classes must list two or more class names separated by commas, not '${s}'`);
  const seen = new Map<string, string>();
  for (const n of names) {
    const other = seen.get(canonicalClass(n));
    if (other) throw new UserError(`--classes: '${other}' and '${n}' are the same class`);
    seen.set(canonicalClass(n), n);
  }
  return names;
}

/** `--polarity contempt=negative,calm=neutral` -> class (canonical) -> polarity index. */
export function parsePolarityMap(s: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const item of s.split(',')) {
    const m = /^\s*([^=]+?)\s*=\s*(\S+)\s*$/.exec(item);
    const p = m ? (POLARITIES as readonly string[]).indexOf(m[2]!.toLowerCase()) : -1;
    if (!m || p < 0)
      throw new UserError(
        `--polarity expects class=negative|neutral|positive items separated by commas, not '${item.trim()}'`,
      );
    if (out.has(canonicalClass(m[1]!))) throw new UserError(`--polarity gives '${m[1]}' twice`);
    out.set(canonicalClass(m[1]!), p);
  }
  return out;
}

/**
 * The class set of a data set: polarities from `polarity` where given, else from the known map;
 * `noPolarity` records none (training then has no L_pol). A class with neither is an error that
 * says how to give it.
 */
export function resolveClassSet(
  classNames: readonly string[],
  o: { polarity?: Map<string, number>; noPolarity?: boolean } = {},
): ClassSet {
  if (o.noPolarity) {
    if (o.polarity?.size) throw new UserError('--polarity and --no-polarity exclude each other');
    return { classNames: [...classNames], polarityOfClass: null };
  }
  const given = o.polarity ?? new Map<string, number>();
  const stray = [...given.keys()].filter((k) => !classNames.some((c) => canonicalClass(c) === k));
  if (stray.length)
    throw new UserError(
      `--polarity names ${stray.map((k) => `'${k}'`).join(', ')}, not among the classes (${classNames.join(', ')})`,
    );
  const missing: string[] = [];
  const polarityOfClass = classNames.map((c) => {
    const p = given.get(canonicalClass(c)) ?? KNOWN_POLARITY.get(canonicalClass(c));
    if (p === undefined) missing.push(c);
    return p ?? -1;
  });
  if (missing.length) {
    const example = missing.map((c) => `${c}=negative`).join(',');
    throw new UserError(
      `no polarity is known for ${missing.map((c) => `'${c}'`).join(', ')}: ` +
        `give each with --polarity ${example} (negative, neutral or positive), ` +
        'or extract with --no-polarity to train without the polarity loss',
    );
  }
  return { classNames: [...classNames], polarityOfClass };
}
