// `bench live`: `ous predict FILE --live` on the talking face looped and re-timed to 25 fps, paced
// at real time as a camera would deliver it, for the dev CLIP and a ViT-B/32-shaped tower: windows
// per second kept up with (against the stride's 1 a second), latency p50/p95 as the CLI reports it,
// frames dropped, and the process's resident memory sampled every 5 s (flat when nothing piles up).
import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { packageRoot } from '../src/util/paths.js';
import type { EnginePreference } from '../src/clip/frame-encoder.js';
import { vitB32Run } from './vitb32-run.js';

const cli = path.join(packageRoot(), 'dist', 'src', 'cli', 'main.js');

const rssMb = (pid: number): number => {
  const m = /VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : 0;
};

interface LiveRow {
  windows: number;
  seconds: number;
  p50: number;
  p95: number;
  dropped: number;
  rss: number[];
}

function live(run: string, video: string): Promise<LiveRow> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const p = spawn(process.execPath, [cli, 'predict', video, '--live', '--run', run, '--jsonl']);
    const latencies: number[] = [];
    const rss: number[] = [];
    let [rest, stderr, dropped] = ['', '', 0];
    const sampler = setInterval(() => rss.push(rssMb(p.pid!)), 5000);
    p.stdout.on('data', (d: Buffer) => {
      const lines = (rest + d.toString()).split('\n');
      rest = lines.pop()!;
      for (const l of lines.filter((x) => x.startsWith('{"type":"window"'))) {
        const w = JSON.parse(l);
        latencies.push(w.latency);
        dropped = w.droppedTotal;
      }
    });
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    p.on('close', (code) => {
      clearInterval(sampler);
      if (code !== 0) return reject(new Error(`predict --live failed (${code}): ${stderr.slice(-2000)}`));
      const s = [...latencies].sort((a, b) => a - b);
      const q = (f: number) => s[Math.min(s.length - 1, Math.floor(f * s.length))] ?? 0;
      resolve({ windows: s.length, seconds: (performance.now() - t0) / 1000, p50: q(0.5), p95: q(0.95), dropped, rss });
    });
  });
}

export async function benchLive(quick: boolean, engine: EnginePreference): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ous-bench-live-'));
  const seconds = quick ? 60 : 180;
  const src = path.join(packageRoot(), 'fixtures', 'media', 'franck_0-6s.mp4');
  const video = path.join(dir, 'paced25.mp4');
  const loops = String(Math.ceil(seconds / 6) - 1);
  execFileSync('ffmpeg', [
    '-v',
    'error',
    '-y',
    '-stream_loop',
    loops,
    '-i',
    src,
    '-r',
    '25',
    '-t',
    String(seconds),
    video,
  ]);
  console.log(`\nLive (ous predict --live, a ${seconds} s source at 25 fps paced at real time, one run each)`);
  console.log('| tower | windows/s (stride 1 s) | latency p50 | p95 | dropped | RSS MB every 5 s |');
  console.log('|---|---|---|---|---|---|');
  for (const [name, dev] of [
    ['dev CLIP', true],
    ['ViT-B/32 shape', false],
  ] as const) {
    const r = await vitB32Run(path.join(dir, dev ? 'dev' : 'b32'), engine, dev);
    const row = await live(r.run, video);
    const rss = row.rss.map((v) => v.toFixed(0));
    console.log(
      `| ${name} | ${(row.windows / seconds).toFixed(2)} (${row.windows} in ${row.seconds.toFixed(0)} s) | ` +
        `${row.p50.toFixed(0)} ms | ${row.p95.toFixed(0)} ms | ${row.dropped} | ${rss.join(' ')} |`,
    );
  }
  fs.rmSync(dir, { recursive: true, force: true });
}
