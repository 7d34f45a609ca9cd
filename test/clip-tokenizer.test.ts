// The tokenizer against OpenAI's SimpleTokenizer ids in fixtures/clip-dev/golden.json.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ClipTokenizer, htmlUnescape } from '../src/clip/tokenizer.js';
import { fixture } from './helpers.js';

const golden = JSON.parse(fs.readFileSync(fixture('clip-dev', 'golden.json'), 'utf8')) as {
  texts: Array<{
    text: string;
    token_ids: number[];
    eot_index: number;
    n_tokens_untruncated: number;
    truncated: boolean;
  }>;
  tokenizer_extra: Array<{ text: string; bpe_ids: number[]; token_ids: number[] }>;
  coop: { prompts: string[]; token_ids: number[][] };
};
const tok = ClipTokenizer.fromFolder(fixture('clip-dev', 'model'));

test('token ids, EOT positions and lengths equal OpenAI for every golden text, truncation included', () => {
  for (const g of golden.texts) {
    const r = tok.tokenize(g.text);
    assert.deepEqual(r.ids, g.token_ids, JSON.stringify(g.text.slice(0, 40)));
    assert.equal(r.eotIndex, g.eot_index);
    assert.equal(r.nTokensUntruncated, g.n_tokens_untruncated);
  }
  assert.ok(
    golden.texts.some((g) => g.truncated),
    'the goldens include a truncated text',
  );
});

test('edge cases: contractions, digits, html entities, whitespace, literal special tokens, non-ASCII', () => {
  for (const g of golden.tokenizer_extra) {
    assert.deepEqual(tok.encode(g.text), g.bpe_ids, JSON.stringify(g.text));
    assert.deepEqual(tok.tokenize(g.text).ids, g.token_ids, JSON.stringify(g.text));
  }
});

test('CoOp prompts tokenize as OpenAI did', () => {
  golden.coop.prompts.forEach((p, i) => assert.deepEqual(tok.tokenize(p).ids, golden.coop.token_ids[i]));
});

test('a tokenizer.json with the same vocabulary and merges gives the same ids', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ous-tok-'));
  const vocab = JSON.parse(fs.readFileSync(fixture('clip-dev', 'model', 'vocab.json'), 'utf8'));
  const merges = fs
    .readFileSync(fixture('clip-dev', 'model', 'merges.txt'), 'utf8')
    .split('\n')
    .slice(1, 48895);
  fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify({ model: { type: 'BPE', vocab, merges } }));
  const fast = ClipTokenizer.fromFolder(dir);
  for (const g of [...golden.texts, ...golden.tokenizer_extra])
    assert.deepEqual(fast.tokenize(g.text).ids, g.token_ids);
  assert.throws(
    () => ClipTokenizer.fromFolder(path.join(dir, 'none')),
    /has no tokenizer: expected vocab.json and merges.txt, or tokenizer.json/,
  );
});

test('html unescape and decode', () => {
  assert.equal(htmlUnescape('a &amp;lt; b &#65;&#x42; &unknown; &#0;'), 'a &lt; b AB &unknown; \ufffd');
  assert.equal(tok.decode(tok.tokenize('A photo of a HAPPY face').ids), 'a photo of a happy face');
  assert.equal(tok.sotId, 49406);
  assert.equal(tok.eotId, 49407);
});
