// OpenBLAS kernels chosen on purpose (blas.ts): the flag -> core type mapping on hand-written flag
// sets, the pick over candidates with stand-in checks, the GEMM check's own sensitivity, and the
// real check in children. OPENBLAS_CORETYPE of this process is never touched: children get theirs.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { buildInfo } from '../src/torch/index.js';
import { checkCoretypeInChild, coretypeCandidates, pickCoretype, readCpuInfo } from '../src/torch/blas.js';
import { checkGemm, gemmError } from '../src/torch/blas-check.js';
import { packageRoot } from '../src/util/paths.js';

const flags = (s: string) => new Set(s.split(' '));
const AVX2 = 'sse sse2 ssse3 sse4_1 sse4_2 avx avx2 fma';
const AVX512 = `${AVX2} avx512f avx512dq avx512cd avx512bw avx512vl`;

test('core types from CPU flags', () => {
  assert.deepEqual(coretypeCandidates({ vendor: 'GenuineIntel', flags: flags(`${AVX512} avx512_bf16 avx512_vnni`) }), [
    'Cooperlake',
    'SkylakeX',
    'Haswell',
  ]); // Xeon (Cooper Lake, Sapphire Rapids)
  // Skylake-SP
  assert.deepEqual(coretypeCandidates({ vendor: 'GenuineIntel', flags: flags(AVX512) }), ['SkylakeX', 'Haswell']);
  // EPYC Zen 2/3
  assert.deepEqual(coretypeCandidates({ vendor: 'AuthenticAMD', flags: flags(AVX2) }), ['Zen', 'Haswell']);
  assert.deepEqual(coretypeCandidates({ vendor: 'GenuineIntel', flags: flags(AVX2) }), ['Haswell']);
  assert.deepEqual(coretypeCandidates({ vendor: 'GenuineIntel', flags: flags('sse sse2 avx avx2') }), []); // no FMA
  // AVX-512 F alone (Knights Landing) is not SkylakeX
  assert.deepEqual(coretypeCandidates({ vendor: 'GenuineIntel', flags: flags(`${AVX2} avx512f`) }), ['Haswell']);
  assert.deepEqual(coretypeCandidates({ vendor: '', flags: new Set() }), []);
  const cpu = readCpuInfo('vendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC\nflags\t\t: fpu avx2 fma\n');
  assert.deepEqual([cpu.vendor, cpu.model, [...cpu.flags]], ['AuthenticAMD', 'AMD EPYC', ['fpu', 'avx2', 'fma']]);
});

test('the first candidate that runs as itself and passes the GEMM wins', () => {
  const ok = (corename: string) => ({ corename, ok: true, worst: 1e-17 });
  assert.deepEqual(
    pickCoretype(['Cooperlake', 'SkylakeX'], (c) => (c === 'Cooperlake' ? ok('Prescott') : ok('SKYLAKEX'))),
    {
      coretype: 'SkylakeX',
      source: 'chosen',
      note: "Cooperlake: this OpenBLAS runs 'Prescott' for it",
    },
  );
  const bad = pickCoretype(['SkylakeX', 'Haswell'], (c) =>
    c === 'SkylakeX' ? { corename: c, ok: false, worst: 0.5 } : { error: 'check exited 134: Illegal instruction' },
  );
  assert.equal(bad.source, 'openblas');
  assert.equal(bad.coretype, undefined);
  assert.match(bad.note!, /SkylakeX: float64 GEMM off by 5\.00e-1 relative; Haswell: check exited 134/);
  assert.deepEqual(
    pickCoretype([], () => assert.fail('no check without candidates')),
    { source: 'openblas', note: 'no candidate for this CPU' },
  );
  assert.deepEqual(
    pickCoretype(['Haswell'], () => ok('')),
    { source: 'openblas', note: "libtorch's BLAS is not OpenBLAS" },
  );
});

test('the GEMM check: exact on a hand product, catches one wrong element', () => {
  // [[1, 2], [3, 4]] · [[5, 6], [7, 8]] = [[19, 22], [43, 50]]
  assert.equal(gemmError([1, 2, 3, 4], [5, 6, 7, 8], [19, 22, 43, 50], 2, 2, 2), 0);
  // 5e-8 off in c_11, whose scale is Σ|a b| = 3·6 + 4·8 = 50: 1e-9 relative, over the 1e-10 bound.
  assert.ok(Math.abs(gemmError([1, 2, 3, 4], [5, 6, 7, 8], [19, 22, 43, 50 + 5e-8], 2, 2, 2) - 1e-9) < 1e-15);
  assert.equal(gemmError([1], [1], [NaN], 1, 1, 1), Infinity);
  const here = checkGemm();
  assert.ok(here.ok && here.worst < 1e-13, `this process's kernels: worst ${here.worst}`);
});

test("a child checks a core type; the user's OPENBLAS_CORETYPE wins untouched", {
  skip:
    !(process.arch === 'x64' && buildInfo().blasConfig.includes('DYNAMIC_ARCH')) &&
    'needs an x86-64 OpenBLAS built with DYNAMIC_ARCH',
}, () => {
  const r = checkCoretypeInChild('Prescott'); // SSE3: runs on every x86-64
  assert.ok(!('error' in r), JSON.stringify(r));
  assert.equal(r.corename, 'Prescott');
  assert.ok(r.ok && r.worst < 1e-13);
  const script =
    "import('./dist/src/torch/index.js').then((t) => console.log(JSON.stringify([t.buildInfo().blasChoice, " +
    't.buildInfo().blasCorename, process.env.OPENBLAS_CORETYPE])))';
  const out = spawnSync(process.execPath, ['-e', script], {
    encoding: 'utf8',
    cwd: packageRoot(),
    env: { ...process.env, OPENBLAS_CORETYPE: 'Prescott' },
  });
  assert.deepEqual(JSON.parse(out.stdout), [{ coretype: 'Prescott', source: 'user' }, 'Prescott', 'Prescott']);
});

test("libgomp's wait policy: passive with a short spin, unless the user set either", () => {
  const script =
    "import('./dist/src/torch/index.js').then((t) => { t.getNumThreads(); " +
    'console.log(JSON.stringify([process.env.OMP_WAIT_POLICY ?? null, process.env.GOMP_SPINCOUNT ?? null])); })';
  const run = (vars: Record<string, string>) => {
    const env: NodeJS.ProcessEnv = { ...process.env, ...vars };
    // this process's own were set by its loader
    for (const k of ['OMP_WAIT_POLICY', 'GOMP_SPINCOUNT']) if (!(k in vars)) delete env[k];
    const out = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', cwd: packageRoot(), env });
    assert.equal(out.status, 0, out.stderr);
    return JSON.parse(out.stdout) as [string | null, string | null];
  };
  assert.deepEqual(run({}), ['PASSIVE', '1000']);
  // a spin count would override the user's policy
  assert.deepEqual(run({ OMP_WAIT_POLICY: 'ACTIVE' }), ['ACTIVE', null]);
  assert.deepEqual(run({ GOMP_SPINCOUNT: '0' }), [null, '0']);
});
