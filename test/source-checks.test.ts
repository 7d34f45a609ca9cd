// Checks on the source itself, where the compiler cannot see: that src/torch reads no environment
// variable of ours, and that no line of the code is over 120 characters. (The addon's op table is
// checked against src/torch/native.ts's OPS when it loads: test/torch-native.test.ts.)
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { packageRoot } from '../src/util/paths.js';

test('src/torch reads no environment variable of ours; only the addon loader sets OpenMP/OpenBLAS ones', () => {
  const dir = path.join(packageRoot(), 'src', 'torch');
  const files = fs.readdirSync(dir, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.ts'));
  // set before libtorch loads (src/cli/env.ts says why); onnxruntime.ts switches off onnxruntime's
  // telemetry before that library loads (issue 37: its empty /tmp/mat-debug-PID.log)
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
