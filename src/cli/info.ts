// `ous info`: what a bug report needs about this machine and build: libtorch and its build flags,
// the BLAS and the kernels it runs (and how they were chosen), oneDNN, threads and OpenMP's wait
// policy, CUDA, ffmpeg,
// Node, the CPU. The benchmarks print infoHeader() above every table.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Command } from './command.js';
import { COMMON, parseFlags, usageText } from './flags.js';
import { packageRoot } from '../util/paths.js';
import { buildInfo } from '../torch/index.js';
import { readCpuInfo } from '../torch/blas.js';
import { onnxRuntime } from '../torch/onnxruntime.js';
import { enginePreference } from './env.js';

// The CPU flags that decide kernels (BLAS, oneDNN, bf16), in order of generation.
const SIMD = [
  'sse4_2',
  'avx',
  'avx2',
  'fma',
  'avx512f',
  'avx512bw',
  'avx512vl',
  'avx512_vnni',
  'avx512_bf16',
  'amx_bf16',
  'amx_tile',
  'asimd',
  'sve',
];

export interface SystemInfo {
  ous: string;
  node: string;
  os: string;
  cpu: { model: string; vendor: string; cores: number; simd: string[] };
  libtorch: { version: string; build: Record<string, string>; config: string };
  blas: {
    name: string;
    kernel: string | null;
    config: string | null;
    coretype: string | null;
    chosenBy: string;
    note: string | null;
  };
  onednn: { available: boolean; version: string | null; capped: { maxIsa: string; why: string } | null };
  threads: number;
  openmp: { waitPolicy: string | null; spinCount: string | null }; // as libgomp read them when libtorch loaded
  cuda: { available: boolean; devices: number };
  // the frozen CLIP tower's engine in float32 on the CPU, where installed
  onnxruntime: { version: string | null; note: string };
  ffmpeg: string | null; // first line of `ffmpeg -version`
}

/** libtorch's "Build settings: K=V, K=V, ..." line (CXX_FLAGS itself has commas) as a map. */
function buildSettings(config: string): Record<string, string> {
  const line = /Build settings: (.*)/.exec(config)?.[1] ?? '';
  return Object.fromEntries(
    [...line.matchAll(/(?:^|, )([A-Z0-9_]+)=(.*?)(?=, [A-Z0-9_]+=|,?\s*$)/g)].map((m) => [m[1]!, m[2]!]),
  );
}

export function systemInfo(): SystemInfo {
  const b = buildInfo();
  const cpu = readCpuInfo();
  const osRelease = (() => {
    try {
      return /^PRETTY_NAME="?([^"\n]*)"?/m.exec(fs.readFileSync('/etc/os-release', 'utf8'))?.[1];
    } catch {
      return undefined;
    }
  })();
  let ffmpeg: string | null = null;
  try {
    ffmpeg = execFileSync('ffmpeg', ['-version'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
      .split('\n')[0]!
      .trim();
  } catch {}
  const build = buildSettings(b.config);
  const openblasVersion = /^OpenBLAS [\d.]+/.exec(b.blasConfig)?.[0];
  return {
    ous: JSON.parse(fs.readFileSync(path.join(packageRoot(), 'package.json'), 'utf8')).version,
    node: process.version,
    os: `${osRelease ?? os.type()} (${os.type()} ${os.release()}, ${process.arch})`,
    cpu: {
      model: cpu.model,
      vendor: cpu.vendor,
      cores: os.availableParallelism(),
      simd: SIMD.filter((f) => cpu.flags.has(f)),
    },
    libtorch: {
      version: b.torchVersion,
      build: Object.fromEntries(Object.entries(build).filter(([k]) => !/^(CXX_FLAGS|CXX_COMPILER)$/.test(k))),
      config: b.config,
    },
    blas: {
      name: openblasVersion ?? (build.BLAS_INFO ? `BLAS_INFO=${build.BLAS_INFO}` : 'unknown'),
      kernel: b.blasCorename || null,
      config: b.blasConfig || null,
      coretype: b.blasChoice.coretype ?? null,
      chosenBy: {
        user: 'OPENBLAS_CORETYPE set by the user',
        chosen: 'chosen from the CPU flags and checked (blas.ts)',
        openblas: "OpenBLAS's own detection",
      }[b.blasChoice.source],
      note: b.blasChoice.note ?? null,
    },
    onednn: {
      available: b.mkldnn,
      version: /(?:MKL-DNN|oneDNN) (v[\d.]+)/.exec(b.config)?.[1] ?? null,
      capped: b.oneDnnChoice.why ? { maxIsa: b.oneDnnChoice.maxIsa!, why: b.oneDnnChoice.why } : null,
    },
    threads: b.threads,
    openmp: { waitPolicy: process.env.OMP_WAIT_POLICY ?? null, spinCount: process.env.GOMP_SPINCOUNT ?? null },
    cuda: { available: b.cuda, devices: b.cudaDevices },
    onnxruntime: ortInfo(),
    ffmpeg,
  };
}

function ortInfo(): SystemInfo['onnxruntime'] {
  let found: ReturnType<typeof onnxRuntime>;
  try {
    found = onnxRuntime(enginePreference());
  } catch (err) {
    return { version: null, note: (err as Error).message }; // a bad OUS_ENGINE: shown, not fatal here
  }
  const { ort, why } = found;
  return ort
    ? {
        version: ort.env.versions.common,
        note: "runs CLIP's vision tower in fp32 and int8 on the CPU (OUS_ENGINE=libtorch: never)",
      }
    : { version: null, note: `libtorch runs CLIP's vision tower: ${why}` };
}

const openmp = (i: SystemInfo) =>
  `OpenMP ${i.openmp.waitPolicy ?? 'default'} wait, spin ${i.openmp.spinCount ?? 'default'}`;

/** One line for benchmark headers: CPU, threads, libtorch, BLAS kernel, oneDNN. */
const cappedBy = (cap: SystemInfo['onednn']['capped']) => (cap ? `, up to ${cap.maxIsa}: ${cap.why}` : '');

export function infoHeader(i = systemInfo()): string {
  const cap = i.onednn.capped;
  return (
    `${i.cpu.model} [${i.cpu.simd.join(' ')}], ${i.threads} threads (${openmp(i)}); ` +
    `libtorch ${i.libtorch.version}; ${i.blas.name} kernel ${i.blas.kernel ?? '?'} (${i.blas.chosenBy}); ` +
    `oneDNN ${i.onednn.available ? (i.onednn.version ?? 'yes') : 'no'}${cap ? ` (up to ${cap.maxIsa})` : ''}; ` +
    `${i.cuda.available ? `CUDA, ${i.cuda.devices} GPU(s)` : 'no CUDA'}; ` +
    `onnxruntime ${i.onnxruntime.version ?? 'no'}`
  );
}

export const info: Command = {
  usage: usageText('info', { json: COMMON.json }),
  async run(argv) {
    const { values } = parseFlags('info', argv, { json: COMMON.json });
    const i = systemInfo();
    if (values.json) {
      process.stdout.write(JSON.stringify(i) + '\n');
      return 0;
    }
    const flags = Object.entries(i.libtorch.build)
      .filter(([k]) => k.startsWith('USE_') || k === 'BLAS_INFO')
      .map(([k, v]) => `${k}=${v}`);
    const lines: Array<[string, string]> = [
      ['ous', i.ous],
      ['node', i.node],
      ['os', i.os],
      [
        'cpu',
        `${i.cpu.model} (${i.cpu.vendor || '?'}), ${i.cpu.cores} cores; ` +
          `${i.cpu.simd.join(' ') || 'no SIMD flags known'}`,
      ],
      ['libtorch', i.libtorch.version],
      ['  build', flags.join(' ')],
      ['blas', `${i.blas.name}, kernel ${i.blas.kernel ?? '? (not OpenBLAS)'}`],
      ['  coretype', `${i.blas.coretype ?? 'unset'}: ${i.blas.chosenBy}${i.blas.note ? ` (${i.blas.note})` : ''}`],
      [
        'onednn',
        i.onednn.available ? `yes, ${i.onednn.version ?? 'version unknown'}${cappedBy(i.onednn.capped)}` : 'no',
      ],
      ['threads', `${i.threads}; ${openmp(i)}`],
      [
        'cuda',
        i.cuda.available
          ? `yes, ${i.cuda.devices} device(s)` +
            `${i.cuda.devices ? ` (cuda:0${i.cuda.devices > 1 ? ` to cuda:${i.cuda.devices - 1}` : ''})` : ''}`
          : 'no (this libtorch build is CPU only)',
      ],
      [
        'onnxruntime',
        i.onnxruntime.version ? `${i.onnxruntime.version}: ${i.onnxruntime.note}` : `no (${i.onnxruntime.note})`,
      ],
      ['ffmpeg', i.ffmpeg ?? 'not found'],
    ];
    for (const [k, v] of lines) process.stdout.write(`${k.padEnd(12)} ${v}\n`);
    return 0;
  },
};
