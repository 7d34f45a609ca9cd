// CLIP's byte-level BPE tokenizer, as OpenAI's SimpleTokenizer does it:
//   html-unescape twice, strip; collapse whitespace, strip, lowercase; split with CLIP's regex;
//   map each piece's UTF-8 bytes to GPT-2's printable characters; merge by rank with "</w>"
//   marking the end of a word; look the pieces up in the vocabulary.
// It reads vocab.json + merges.txt (or a Hugging Face tokenizer.json) from a model folder.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { UserError } from '../util/errors.js';
import { readJson } from '../util/fs.js';

const SPLIT = /<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+/giu;
const SOT = '<|startoftext|>';
const EOT = '<|endoftext|>';

/** GPT-2's map from the 256 byte values to printable characters that BPE works on. */
function bytesToUnicode(): string[] {
  const keep: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) keep.push(b);
  for (let b = 0xa1; b <= 0xac; b++) keep.push(b);
  for (let b = 0xae; b <= 0xff; b++) keep.push(b);
  const out = new Array<string>(256);
  let n = 0;
  for (let b = 0; b < 256; b++) out[b] = String.fromCodePoint(keep.includes(b) ? b : 256 + n++);
  return out;
}

// Named entities of everyday text; Python's html.unescape knows all of HTML5's (numeric
// references are handled in full below).
const ENTITIES: Record<string, string> = {
  amp: '&',
  lt: '<',
  gt: '>',
  quot: '"',
  apos: "'",
  nbsp: '\u00a0',
  copy: '©',
  reg: '®',
  trade: '™',
  hellip: '…',
  mdash: '—',
  ndash: '–',
  lsquo: '‘',
  rsquo: '’',
  ldquo: '“',
  rdquo: '”',
  laquo: '«',
  raquo: '»',
  euro: '€',
  pound: '£',
  yen: '¥',
  cent: '¢',
  deg: '°',
  times: '×',
  divide: '÷',
  middot: '·',
  bull: '•',
  para: '¶',
  sect: '§',
  iexcl: '¡',
  iquest: '¿',
  eacute: 'é',
  egrave: 'è',
  agrave: 'à',
  ccedil: 'ç',
  uuml: 'ü',
  ouml: 'ö',
  auml: 'ä',
  szlig: 'ß',
  ntilde: 'ñ',
  hearts: '♥',
};

/** Python's html.unescape for numeric references and the named entities above. */
export function htmlUnescape(s: string): string {
  return s.replace(/&(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[a-zA-Z][a-zA-Z0-9]*;)/g, (m, body: string) => {
    if (body[0] === '#') {
      const hex = body[1] === 'x' || body[1] === 'X';
      const code = parseInt(body.slice(hex ? 2 : 1).replace(';', ''), hex ? 16 : 10);
      // As Python: invalid code points and surrogates become U+FFFD.
      if (!(code > 0 && code <= 0x10ffff) || (code >= 0xd800 && code <= 0xdfff)) return '\ufffd';
      return String.fromCodePoint(code);
    }
    const name = body.slice(0, -1);
    return ENTITIES[name] ?? m;
  });
}

/** OpenAI's basic_clean + whitespace_clean + lower (ftfy.fix_text is the identity on clean text). */
export function cleanText(text: string): string {
  return htmlUnescape(htmlUnescape(text)).trim().replace(/\s+/gu, ' ').trim().toLowerCase();
}

export interface Tokenized {
  ids: number[]; // contextLength ids: [SOT] + bpe + [EOT], padded with 0
  eotIndex: number; // where EOT is (the row the text tower reads)
  nTokensUntruncated: number; // length of [SOT] + bpe + [EOT] before truncation
}

export class ClipTokenizer {
  private readonly ranks: Map<string, number>;
  private readonly byteChars = bytesToUnicode();
  private readonly decoder: Map<number, string>;
  private readonly cache = new Map<string, string[]>([
    [SOT, [SOT]],
    [EOT, [EOT]],
  ]);
  readonly sotId: number;
  readonly eotId: number;

  constructor(
    private readonly vocab: Map<string, number>,
    merges: Array<[string, string]>,
  ) {
    this.ranks = new Map(merges.map(([a, b], i) => [`${a} ${b}`, i]));
    this.decoder = new Map([...vocab].map(([k, v]) => [v, k]));
    const need = (tok: string) =>
      vocab.get(tok) ??
      (() => {
        throw new Error(`the vocabulary has no ${tok}`);
      })();
    this.sotId = need(SOT);
    this.eotId = need(EOT);
  }

  /**
   * From a model folder: vocab.json + merges.txt, or tokenizer.json. merges.txt holds a header
   * line, then as many merges as the vocabulary implies (size − 2·256 − 2 special tokens), as
   * OpenAI's and HF's readers both take.
   */
  static fromFolder(dir: string): ClipTokenizer {
    const vocabFile = path.join(dir, 'vocab.json');
    const mergesFile = path.join(dir, 'merges.txt');
    const fastFile = path.join(dir, 'tokenizer.json');
    if (fs.existsSync(vocabFile) && fs.existsSync(mergesFile)) {
      const vocab = new Map(Object.entries(vocabOf(readJson(vocabFile), vocabFile)));
      const count = vocab.size - 2 * 256 - 2;
      const lines = fs
        .readFileSync(mergesFile, 'utf8')
        .split('\n')
        .slice(1, 1 + count);
      if (lines.length !== count)
        throw new UserError(
          `${mergesFile} has ${lines.length} merges, the ${vocab.size}-token vocabulary needs ${count}`,
        );
      return new ClipTokenizer(
        vocab,
        lines.map((l) => l.split(' ') as [string, string]),
      );
    }
    if (fs.existsSync(fastFile)) {
      const json = readJson<{ model?: { vocab?: unknown; merges?: unknown } } | null>(fastFile);
      if (!json?.model?.vocab || !Array.isArray(json.model.merges))
        throw new UserError(`${fastFile} has no model.vocab / model.merges (not a BPE tokenizer)`);
      const merges = (json.model.merges as unknown[]).map((m) =>
        typeof m === 'string' ? (m.split(' ') as [string, string]) : (m as [string, string]),
      );
      return new ClipTokenizer(new Map(Object.entries(vocabOf(json.model.vocab, `${fastFile}: model.vocab`))), merges);
    }
    throw new UserError(`${dir} has no tokenizer: expected vocab.json and merges.txt, or tokenizer.json`);
  }

  // OpenAI's bpe(): repeatedly merge the lowest-ranked adjacent pair.
  private bpe(piece: string): string[] {
    const hit = this.cache.get(piece);
    if (hit) return hit;
    const chars = [...piece];
    let word = [...chars.slice(0, -1), chars[chars.length - 1] + '</w>'];
    while (word.length > 1) {
      let best = -1;
      let bestRank = Infinity;
      for (let i = 0; i < word.length - 1; i++) {
        const r = this.ranks.get(`${word[i]} ${word[i + 1]}`);
        if (r !== undefined && r < bestRank) (bestRank = r), (best = i);
      }
      if (best < 0) break;
      const [first, second] = [word[best]!, word[best + 1]!];
      const merged: string[] = [];
      for (let i = 0; i < word.length; ) {
        if (word[i] === first && word[i + 1] === second) merged.push(first + second), (i += 2);
        else merged.push(word[i]!), (i += 1);
      }
      word = merged;
    }
    this.cache.set(piece, word);
    return word;
  }

  /** BPE ids of a text, without the start and end tokens. */
  encode(text: string): number[] {
    const ids: number[] = [];
    for (const m of cleanText(text).matchAll(SPLIT)) {
      const piece =
        m[0] === SOT || m[0] === EOT ? m[0] : Array.from(Buffer.from(m[0], 'utf8'), (b) => this.byteChars[b]!).join('');
      for (const tok of this.bpe(piece)) {
        const id = this.vocab.get(tok);
        if (id === undefined) throw new Error(`token '${tok}' is not in the vocabulary`);
        ids.push(id);
      }
    }
    return ids;
  }

  /** OpenAI's tokenize(truncate=True): [SOT] + bpe + [EOT], cut to the context with EOT kept last, 0-padded. */
  tokenize(text: string, contextLength = 77): Tokenized {
    const all = [this.sotId, ...this.encode(text), this.eotId];
    const ids = all.slice(0, contextLength);
    if (all.length > contextLength) ids[contextLength - 1] = this.eotId;
    const eotIndex = ids.length - 1;
    while (ids.length < contextLength) ids.push(0);
    return { ids, eotIndex, nTokensUntruncated: all.length };
  }

  tokenizeBatch(texts: string[], contextLength = 77): { ids: Int32Array; eotIndex: number[] } {
    const ids = new Int32Array(texts.length * contextLength);
    const eotIndex = texts.map((t, i) => {
      const r = this.tokenize(t, contextLength);
      ids.set(r.ids, i * contextLength);
      return r.eotIndex;
    });
    return { ids, eotIndex };
  }

  /** Text of ids (for debugging): special tokens and padding are dropped, "</w>" becomes a space. */
  decode(ids: number[]): string {
    const byteOf = new Map(this.byteChars.map((c, b) => [c, b]));
    const text = ids
      .filter((id) => id !== this.sotId && id !== this.eotId && id !== 0)
      .map((id) => this.decoder.get(id) ?? '')
      .join('');
    const bytes = [...text.replace(/<\/w>/g, ' ')].map((c) => (c === ' ' ? 0x20 : (byteOf.get(c) ?? 0x3f)));
    return Buffer.from(bytes).toString('utf8').trim();
  }
}

/** A vocabulary is an object of token -> integer id; anything else (an array, strings for ids) is named, not cast. */
function vocabOf(json: unknown, where: string): Record<string, number> {
  if (!json || typeof json !== 'object' || Array.isArray(json))
    throw new UserError(
      `${where} is not a CLIP vocabulary: expected an object of token -> id, ` +
        `not ${Array.isArray(json) ? 'an array' : json === null ? 'null' : typeof json}`,
    );
  const bad = Object.entries(json).find(([, v]) => !Number.isInteger(v) || (v as number) < 0);
  if (bad)
    throw new UserError(
      `${where} is not a CLIP vocabulary: ` +
        `token ${JSON.stringify(bad[0])} has id ${JSON.stringify(bad[1])}, not a whole number`,
    );
  return json as Record<string, number>;
}
