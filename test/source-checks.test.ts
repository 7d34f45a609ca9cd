// Checks on the source itself, where the compiler cannot see: the `Native` interface
// (src/torch/native.ts) against the addon's export table (native/src/ops.cc), by name and by the
// number of arguments each op reads; that src/torch reads no environment variable of ours; and
// that no line of the code is over 120 characters.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { packageRoot } from '../src/util/paths.js';

const read = (...p: string[]) => fs.readFileSync(path.join(packageRoot(), ...p), 'utf8');

/** The `Native` interface: each method's name, its parameter count, and how many are required. */
export function nativeInterfaceOps(ts: string): Map<string, { params: number; required: number }> {
  const start = ts.indexOf('export interface Native {');
  assert.ok(start >= 0, 'src/torch/native.ts: no `export interface Native {`');
  // A signature the formatter wrapped (one parameter a line) is joined back onto one line first.
  const body = ts.slice(start, ts.indexOf('\n}', start)).replace(
    /\(\n([^)]*?),?\n {2}\)/g,
    (_, inner: string) =>
      `(${inner
        .trim()
        .split(/,\s*\n\s*/)
        .join(', ')})`,
  );
  const ops = new Map<string, { params: number; required: number }>();
  for (const m of body.matchAll(/^ {2}(\w+)\((.*)\):/gm)) {
    const params = m[2]!.split(/,\s*(?![^<]*>)/).filter((p) => p.trim());
    assert.ok(!ops.has(m[1]!), `Native.${m[1]} is declared twice`);
    ops.set(m[1]!, { params: params.length, required: params.filter((p) => !p.split(':')[0]!.includes('?')).length });
  }
  return ops;
}

/**
 * ops.cc's `kOps` table: each op's name and the number of arguments it reads (one past the
 * highest index any `a.<accessor>(i)` of its body reads; UNARY takes 1, BINARY 2). An entry that
 * names a function (`{"lstm", lstm}`) is read from that function's body.
 */
export function addonTableOps(cc: string): Map<string, number> {
  const start = cc.indexOf('const OpEntry kOps[]');
  assert.ok(start >= 0, 'native/src/ops.cc: no `const OpEntry kOps[]` table');
  const table = cc.slice(start, cc.indexOf('\n};', start));
  const ops = new Map<string, number>();
  for (const entry of table.split(/\n {4}(?=\{"|UNARY\(|BINARY\()/).slice(1)) {
    const m = /^(?:\{"(\w+)",\s*(\w+)?|(UNARY|BINARY)\("(\w+)")/.exec(entry);
    assert.ok(m, `ops.cc: cannot read the table entry ${entry.slice(0, 60)}`);
    const name = (m[1] ?? m[4])!;
    let body = entry;
    if (m[3]) body = m[3] === 'UNARY' ? 'a.t(0)' : 'a.t(0) a.t(1)';
    else if (m[2]) {
      const fn = new RegExp(`\\nV ${m[2]}\\(A& a\\) \\{([\\s\\S]*?)\\n\\}`).exec(cc);
      assert.ok(fn, `ops.cc: the op ${name} names ${m[2]}, whose body is not found`);
      body = fn[1]!;
    }
    const used = [...body.matchAll(/\ba\.\w+\((\d+)(?:,\s*(\d+))?/g)].flatMap((u) => [
      Number(u[1]),
      ...(u[2] ? [Number(u[2])] : []),
    ]);
    assert.ok(!ops.has(name), `ops.cc: the op ${name} is in the table twice`);
    ops.set(name, used.length ? Math.max(...used) + 1 : 0);
  }
  return ops;
}

/** Every difference between the two, one line each. */
export function nativeTableDifferences(ts: string, cc: string): string[] {
  const iface = nativeInterfaceOps(ts);
  const table = addonTableOps(cc);
  const out: string[] = [];
  for (const name of table.keys())
    if (!iface.has(name)) out.push(`${name}: in ops.cc's table, not in the Native interface`);
  for (const [name, sig] of iface) {
    const n = table.get(name);
    if (n === undefined) out.push(`${name}: in the Native interface, not in ops.cc's table`);
    else if (n !== sig.params)
      out.push(`${name}: ops.cc reads ${n} argument(s), the Native interface declares ${sig.params}`);
  }
  return out;
}

test('the Native interface and ops.cc export the same ops, each with the same number of arguments', () => {
  const [ts, cc] = [read('src', 'torch', 'native.ts'), read('native', 'src', 'ops.cc')];
  assert.ok(
    addonTableOps(cc).size > 100,
    'ops.cc: fewer than 100 ops read: the parser no longer understands the table',
  );
  assert.deepEqual(nativeTableDifferences(ts, cc), []);
});

test('the check fails when one side gains an op, loses one, or changes its arguments', () => {
  const [ts, cc] = [read('src', 'torch', 'native.ts'), read('native', 'src', 'ops.cc')];
  const ccPlus = cc.replace(
    '    {"liveHandles",',
    '    {"frobnicate", [](A& a) -> V { return a.ret(a.t(0)); }},\n    {"liveHandles",',
  );
  assert.deepEqual(nativeTableDifferences(ts, ccPlus), ["frobnicate: in ops.cc's table, not in the Native interface"]);
  const tsPlus = ts.replace('  liveHandles(): number;', '  liveHandles(): number;\n  frobnicate(t: H): H;');
  assert.deepEqual(nativeTableDifferences(tsPlus, cc), ["frobnicate: in the Native interface, not in ops.cc's table"]);
  assert.deepEqual(nativeTableDifferences(tsPlus, ccPlus), []);
  const tsArity = ts.replace(/^ {2}getNumThreads\(\): number;/m, '  getNumThreads(t: H): number;');
  assert.deepEqual(nativeTableDifferences(tsArity, cc), [
    'getNumThreads: ops.cc reads 0 argument(s), the Native interface declares 1',
  ]);
});

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
