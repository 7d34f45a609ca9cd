// Checks on the source itself, where the compiler cannot see: that src/torch reads no environment
// variable of ours, that no line of the code is over 120 characters, and that no function of
// src/server or src/predict is longer than a screen. (The addon's op table is
// checked against src/torch/native.ts's OPS when it loads: test/torch-native.test.ts.)
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import ts from 'typescript';
import { packageRoot } from '../src/util/paths.js';

test('src/torch reads no environment variable of ours; only the addon loader sets OpenMP/OpenBLAS ones', () => {
  const dir = path.join(packageRoot(), 'src', 'torch');
  const files = fs.readdirSync(dir, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.ts'));
  // set before libtorch loads (src/cli/env.ts says why); onnxruntime.ts switches off onnxruntime's
  // telemetry before that library loads (else it leaves an empty /tmp/mat-debug-PID.log per process)
  const loader = new Set(['native.ts', 'blas.ts', 'onnxruntime.ts']);
  for (const f of files) {
    const code = fs.readFileSync(path.join(dir, f), 'utf8').replace(/^\s*(\/\/|\*).*$/gm, ''); // comments aside
    assert.doesNotMatch(
      code,
      /\benv\.OUS_|\benv\[['"]OUS_/,
      `src/torch/${f} reads an OUS_ variable: read it in src/cli/env.ts and pass it down`,
    );
    if (!loader.has(f))
      assert.doesNotMatch(
        code,
        /process\.env/,
        `src/torch/${f} reads process.env: read it in src/cli/env.ts and pass it down`,
      );
  }
});

test('no line of the code is over 120 characters (Biome wraps code; strings and comments are ours)', () => {
  const exts = /\.(ts|js|cjs|mjs|py|sh|css|html|cc|h)$/;
  const long: string[] = [];
  for (const top of ['src', 'test', 'bench', 'scripts', path.join('native', 'src')]) {
    const dir = path.join(packageRoot(), top);
    for (const f of fs.readdirSync(dir, { recursive: true, encoding: 'utf8' })) {
      if (!exts.test(f) || f.split(path.sep).includes('fixtures')) continue;
      const file = path.join(dir, f);
      if (!fs.statSync(file).isFile()) continue;
      fs.readFileSync(file, 'utf8')
        .split('\n')
        .forEach((line, i) => {
          if ([...line].length > 120) long.push(`${path.join(top, f)}:${i + 1} (${[...line].length})`);
        });
    }
  }
  assert.deepEqual(long, []);
});

/** Each function, method, accessor and arrow in `code` longer than `most` lines (a nested one counted whole). */
function longFunctions(file: string, code: string, most: number): string[] {
  const sf = ts.createSourceFile(file, code, ts.ScriptTarget.Latest, true);
  const long: string[] = [];
  const visit = (n: ts.Node): void => {
    if (ts.isFunctionLike(n) && 'body' in n && n.body) {
      const first = sf.getLineAndCharacterOfPosition(n.getStart(sf)).line;
      const lines = sf.getLineAndCharacterOfPosition(n.end).line - first + 1;
      const name = 'name' in n && n.name ? (n.name as ts.Node).getText(sf) : ts.SyntaxKind[n.kind];
      if (lines > most) long.push(`${file}:${first + 1} ${name} (${lines} lines)`);
    }
    ts.forEachChild(n, visit);
  };
  visit(sf);
  return long;
}

const MOST_LINES = 80; // a function fits on a screen; a longer one is steps with names (STYLE.md)

test('the length check finds a long function, a long method and a long arrow, and passes short ones', () => {
  const body = (n: number) => Array.from({ length: n }, (_, i) => `  x += ${i};`).join('\n');
  const code =
    `function long() {\n  let x = 0;\n${body(96)}\n  return x;\n}\n` +
    `class C {\n  method(): number {\n    let x = 0;\n${body(90)}\n    return x;\n  }\n}\n` +
    `const arrow = async () => {\n  let x = 0;\n${body(85)}\n};\n` +
    `function short() {\n  let x = 0;\n${body(70)}\n  return x;\n}\n`;
  const found = longFunctions('synthetic.ts', code, MOST_LINES);
  assert.deepEqual(
    found.map((f) => f.replace(/ \(.*/, '')),
    ['synthetic.ts:1 long', 'synthetic.ts:102 method', 'synthetic.ts:197 ArrowFunction'],
  );
  assert.match(found[0]!, /\(100 lines\)/);
});

test(`no function in src/server or src/predict is over ${MOST_LINES} lines`, () => {
  const long: string[] = [];
  for (const top of [path.join('src', 'server'), path.join('src', 'predict')]) {
    const dir = path.join(packageRoot(), top);
    for (const f of fs.readdirSync(dir, { recursive: true, encoding: 'utf8' }).filter((x) => x.endsWith('.ts')))
      long.push(...longFunctions(path.join(top, f), fs.readFileSync(path.join(dir, f), 'utf8'), MOST_LINES));
  }
  assert.deepEqual(long, []);
});

test("every import between src's folders points down the layers of docs/ARCHITECTURE.md", () => {
  // The layer block lists the folders top to bottom, peers on one line ("train/  report/"); util/ may be
  // used by any layer (it is the bottom row). A folder of src/ missing from the block fails too, so
  // the document keeps every folder.
  const doc = fs.readFileSync(path.join(packageRoot(), 'docs', 'ARCHITECTURE.md'), 'utf8');
  const block = /## Layers[^\n]*\n```\n([\s\S]*?)```/.exec(doc)?.[1];
  assert.ok(block, 'docs/ARCHITECTURE.md has no layer block under "## Layers"');
  const rank = new Map<string, number>();
  block.split('\n').forEach((line, row) => {
    const column = /^(?:[a-z-]+\/ +)+/.exec(line)?.[0] ?? ''; // the folders; the rest of the line describes them
    for (const m of column.matchAll(/([a-z-]+)\//g)) rank.set(m[1]!, -row);
  });
  const src = path.join(packageRoot(), 'src');
  const folders = fs.readdirSync(src, { withFileTypes: true }).filter((d) => d.isDirectory());
  assert.deepEqual(
    folders.map((d) => d.name).filter((f) => !rank.has(f)),
    [],
    'folders of src/ missing from the layer block of docs/ARCHITECTURE.md',
  );
  const upward: string[] = [];
  for (const f of fs.readdirSync(src, { recursive: true, encoding: 'utf8' })) {
    if (!f.endsWith('.ts')) continue;
    const from = f.split(path.sep)[0]!;
    if (!rank.has(from)) continue; // src/index.ts: the package's entry may use every layer
    const code = fs.readFileSync(path.join(src, f), 'utf8');
    for (const m of code.matchAll(/(?:from|import\(?)\s*'(\.{1,2}\/[^']+)'/g)) {
      const target = path.relative(src, path.join(src, path.dirname(f), m[1]!)).split(path.sep);
      const to = target.length > 1 ? target[0]! : '';
      if (rank.has(to) && rank.get(to)! > rank.get(from)!)
        upward.push(`src/${f} imports ${m[1]} (${to}/ is above ${from}/)`);
    }
  }
  assert.deepEqual(upward, []);
});
