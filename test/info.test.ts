// `ous info` against independent sources: Node's own version, `ffmpeg -version`, /proc/cpuinfo,
// and settings this test gives the child (threads, a user's OPENBLAS_CORETYPE).
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { packageRoot } from '../src/util/paths.js';
import type { SystemInfo } from '../src/cli/info.js';

const cli = path.join(packageRoot(), 'dist', 'src', 'cli', 'main.js');
// OpenMP's variables only as the test gives them: the child's loader decides the rest
const inherited = Object.fromEntries(
  Object.entries(process.env).filter(([k]) => k !== 'OMP_WAIT_POLICY' && k !== 'GOMP_SPINCOUNT'),
);
const ous = (args: string[], env: Record<string, string> = {}) =>
  execFileSync(process.execPath, [cli, ...args], { encoding: 'utf8', env: { ...inherited, ...env } });

test('ous info --json: versions, CPU, threads, BLAS kernel and CUDA from their sources', () => {
  const i = JSON.parse(
    ous(['info', '--json'], { OUS_NUM_THREADS: '1', OPENBLAS_CORETYPE: 'Prescott', OMP_WAIT_POLICY: 'ACTIVE' }),
  ) as SystemInfo;
  assert.equal(i.node, process.version);
  assert.equal(i.ffmpeg, execFileSync('ffmpeg', ['-version'], { encoding: 'utf8' }).split('\n')[0]!.trim());
  const cpuinfo = fs.readFileSync('/proc/cpuinfo', 'utf8');
  assert.equal(i.cpu.model, /^model name\s*:\s*(.*)$/m.exec(cpuinfo)?.[1]?.trim());
  const flags = new Set(/^flags\s*:\s*(.*)$/m.exec(cpuinfo)![1]!.split(/\s+/));
  assert.equal(i.cpu.simd.includes('avx2'), flags.has('avx2'));
  assert.equal(i.cpu.simd.includes('avx512f'), flags.has('avx512f'));
  assert.equal(i.threads, 1);
  // the user's policy, and no spin count overriding it
  assert.deepEqual(i.openmp, { waitPolicy: 'ACTIVE', spinCount: null });
  // show_config agrees with torch/version.h
  assert.equal(i.libtorch.version, i.libtorch.build.TORCH_VERSION ?? i.libtorch.version);
  assert.match(i.libtorch.version, /^\d+\.\d+\.\d+$/);
  if (process.arch === 'x64' && i.blas.config?.includes('DYNAMIC_ARCH')) {
    // OpenBLAS: the user's core type is the one that runs, and nothing was chosen over it.
    assert.equal(i.blas.kernel, 'Prescott');
    assert.deepEqual([i.blas.coretype, i.blas.chosenBy], ['Prescott', 'OPENBLAS_CORETYPE set by the user']);
    assert.match(i.blas.name, /^OpenBLAS \d+\.\d+\.\d+$/);
  }
  assert.equal(i.onednn.available, i.libtorch.build.USE_MKLDNN === 'ON');
  assert.equal(i.cuda.available, i.libtorch.build.USE_CUDA === 'ON');
  // onnxruntime: the version of the package npm installed (an optional dependency of the lockfile)
  const ortPackage = JSON.parse(
    fs.readFileSync(path.join(packageRoot(), 'node_modules', 'onnxruntime-node', 'package.json'), 'utf8'),
  ) as { version: string };
  assert.equal(i.onnxruntime.version, ortPackage.version);
});

test('ous info: OUS_ENGINE=libtorch rules onnxruntime out, and says so', () => {
  const i = JSON.parse(ous(['info', '--json'], { OUS_ENGINE: 'libtorch' })) as SystemInfo;
  assert.equal(i.onnxruntime.version, null);
  assert.match(i.onnxruntime.note, /OUS_ENGINE=libtorch/);
  assert.match(
    ous(['info'], { OUS_ENGINE: 'libtorch' }),
    /^onnxruntime +no \(libtorch runs CLIP's vision tower: OUS_ENGINE=libtorch\)$/m,
  );
});

test('ous info: one line per field; a stray argument is one line', () => {
  const text = ous(['info'], { OUS_NUM_THREADS: '2' });
  for (const key of ['libtorch', 'blas', 'onednn', 'threads', 'cuda', 'onnxruntime', 'ffmpeg', 'node', 'cpu'])
    assert.match(text, new RegExp(`^ *${key} +\\S`, 'm'), key);
  assert.match(text, /^threads +2; OpenMP PASSIVE wait, spin 1000$/m); // the loader's defaults (torch-blas.test.ts)
  assert.match(text, new RegExp(`^node +${process.version.replace(/\./g, '\\.')}$`, 'm'));
  assert.throws(
    () => execFileSync(process.execPath, [cli, 'info', 'extra'], { encoding: 'utf8', stdio: 'pipe' }),
    (e: { stderr: string }) =>
      e.stderr.trim().split('\n').length === 1 && /info: takes no arguments, got 'extra'/.test(e.stderr),
  );
});
