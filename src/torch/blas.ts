// OpenBLAS's kernels chosen on purpose. With OPENBLAS_CORETYPE unset, OpenBLAS picks its kernels
// from the CPU it recognises, and an older OpenBLAS on a newer CPU falls back to the slowest ones
// (Debian's 0.3.21 runs Prescott SSE3 kernels on an AVX-512 Xeon: 3× slower). So before
// libtorch loads (OpenBLAS reads the variable once, at load) we choose from /proc/cpuinfo's flags.
// A choice is trusted only after a child process with it set has passed a float64 GEMM check
// against a naive product (blas-check.ts): once loaded, kernels cannot be switched back, so a
// wrong one must be caught before this process loads it. The verdict is cached per machine.
// A user's OPENBLAS_CORETYPE always wins and is never checked or changed.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeFileAtomic } from '../util/fs.js';

export interface CpuInfo {
  model: string;
  vendor: string; // GenuineIntel, AuthenticAMD, ...
  flags: Set<string>;
}

/** How OPENBLAS_CORETYPE came to be what it is in this process. */
export interface BlasChoice {
  coretype?: string; // what OPENBLAS_CORETYPE is (undefined: OpenBLAS decides)
  source: 'user' | 'chosen' | 'openblas'; // user's env; chosen here and checked; left to OpenBLAS
  note?: string; // why a candidate was rejected, or why none was tried
}

export function readCpuInfo(text = readProcCpuinfo()): CpuInfo {
  const field = (k: string) => new RegExp(`^${k}\\s*:\\s*(.*)$`, 'm').exec(text)?.[1]?.trim() ?? '';
  return {
    model: field('model name') || os.cpus()[0]?.model || 'unknown',
    vendor: field('vendor_id'),
    flags: new Set(field('flags').split(/\s+/).filter(Boolean)),
  };
}

function readProcCpuinfo(): string {
  try {
    return fs.readFileSync('/proc/cpuinfo', 'utf8');
  } catch {
    return '';
  }
}

/**
 * OpenBLAS core types to try, best first, for an x86-64 CPU's flags: AVX-512 (F, BW, VL, DQ, CD) ->
 * SkylakeX, with AVX512_BF16 first Cooperlake (OpenBLAS >= 0.3.10; an OpenBLAS that does not know
 * it reports another core and the next candidate is taken); AVX2 + FMA -> Zen on AMD, else
 * Haswell (the same kernels, tuned blocking). Anything else: none (OpenBLAS's own detection).
 */
export function coretypeCandidates(cpu: Pick<CpuInfo, 'vendor' | 'flags'>): string[] {
  const has = (...f: string[]) => f.every((x) => cpu.flags.has(x));
  const out: string[] = [];
  if (has('avx512f', 'avx512bw', 'avx512vl', 'avx512dq', 'avx512cd')) {
    if (has('avx512_bf16')) out.push('Cooperlake');
    out.push('SkylakeX');
  }
  if (has('avx2', 'fma')) out.push(...(cpu.vendor === 'AuthenticAMD' ? ['Zen', 'Haswell'] : ['Haswell']));
  return out;
}

/** What a child process with OPENBLAS_CORETYPE = coretype reports (blas-check.ts prints it). */
export interface CoretypeCheck {
  corename: string; // openblas_get_corename() in the child
  ok: boolean; // float64 GEMM within 1e-10 relative of the naive product
  worst: number; // largest error relative to the bound's scale
}

export function checkCoretypeInChild(coretype: string): CoretypeCheck | { error: string } {
  const script = fileURLToPath(new URL('./blas-check.js', import.meta.url));
  const r = spawnSync(process.execPath, [script], {
    encoding: 'utf8',
    env: { ...process.env, OPENBLAS_CORETYPE: coretype, OMP_NUM_THREADS: '1' },
    timeout: 60_000,
  });
  const last = r.stdout?.trim().split('\n').pop() ?? '';
  try {
    return JSON.parse(last) as CoretypeCheck;
  } catch {
    return { error: `check exited ${r.status ?? r.signal}: ${(r.stderr ?? '').trim().split('\n').pop() ?? ''}` };
  }
}

/** Candidates in order; the first whose child reports that core (case aside) and passes the GEMM. */
export function pickCoretype(
  candidates: string[],
  check: (c: string) => CoretypeCheck | { error: string },
): BlasChoice {
  const notes: string[] = [];
  for (const c of candidates) {
    const r = check(c);
    if ('error' in r) notes.push(`${c}: ${r.error}`);
    else if (r.corename === '') return { source: 'openblas', note: "libtorch's BLAS is not OpenBLAS" };
    else if (r.corename.toLowerCase() !== c.toLowerCase())
      notes.push(`${c}: this OpenBLAS runs '${r.corename}' for it`);
    else if (!r.ok) notes.push(`${c}: float64 GEMM off by ${r.worst.toExponential(2)} relative`);
    else return { coretype: c, source: 'chosen', note: notes.length ? notes.join('; ') : undefined };
  }
  return {
    source: 'openblas',
    note: candidates.length ? `no candidate passed (${notes.join('; ')})` : 'no candidate for this CPU',
  };
}

function cacheFile(cpu: CpuInfo, addon: string): string {
  let stamp = '';
  try {
    stamp = String(fs.statSync(addon).mtimeMs);
  } catch {}
  const key = createHash('sha256')
    .update([cpu.model, [...cpu.flags].sort().join(' '), addon, stamp].join('\n'))
    .digest('hex')
    .slice(0, 16);
  const base = process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache');
  return path.join(base, 'ous', `blas-${key}.json`);
}

/**
 * Sets OPENBLAS_CORETYPE for this process when the user has not, and says how it was decided.
 * Call before the addon loads. `addon` (the .node file) keys the cached verdict.
 */
export function chooseOpenBlasCoretype(addon: string): BlasChoice {
  const user = process.env.OPENBLAS_CORETYPE;
  if (user) return { coretype: user, source: 'user' };
  if (process.arch !== 'x64') return { source: 'openblas', note: `no choice made on ${process.arch}` };
  const cpu = readCpuInfo();
  const file = cacheFile(cpu, addon);
  let choice: BlasChoice | undefined;
  try {
    choice = JSON.parse(fs.readFileSync(file, 'utf8')) as BlasChoice;
  } catch {
    choice = pickCoretype(coretypeCandidates(cpu), checkCoretypeInChild);
    // A wrong result or a crash is worth a line; an OpenBLAS that runs another core for a name is not.
    if (choice.source === 'openblas' && /GEMM off|check exited/.test(choice.note ?? ''))
      process.stderr.write(`ous: OpenBLAS kernels left to OpenBLAS: ${choice.note}\n`);
    try {
      fs.mkdirSync(path.dirname(file), { recursive: true });
      writeFileAtomic(file, JSON.stringify(choice));
    } catch {} // an unwritable cache only means checking again next time
  }
  if (choice.coretype) process.env.OPENBLAS_CORETYPE = choice.coretype;
  return choice;
}
