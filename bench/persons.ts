// `bench persons`: `ous predict --all-persons` on the talking-face clip tiled 1, 3 and 10 times side
// by side (180×144 a face), at the ViT-B/32 shape: seconds of video per second, the persons found,
// and the cost of each extra person over one. Detection runs once per grid frame whatever the count,
// so an extra person costs the encoder's share: their face crop and their own masked scene.
import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { EnginePreference } from '../src/clip/frame-encoder.js';
import { packageRoot } from '../src/util/paths.js';
import { vitB32Run } from './vitb32-run.js';

const cli = path.join(packageRoot(), 'dist', 'src', 'cli', 'main.js');

/** The clip tiled `n` times, 5 a row, each 180×144. */
function tiled(src: string, n: number, out: string): void {
  const cols = Math.min(n, 5);
  const at = (k: number) => `${(k % cols) * 180}_${Math.floor(k / cols) * 144}`;
  const inputs = Array.from({ length: n }, (_, k) => `[t${k}]`).join('');
  const graph =
    n === 1
      ? '[0:v]scale=180:144[v]'
      : `[0:v]scale=180:144,split=${n}${inputs};${inputs}xstack=inputs=${n}` +
        `:layout=${Array.from({ length: n }, (_, k) => at(k)).join('|')}[v]`;
  execFileSync('ffmpeg', [
    '-v',
    'error',
    '-y',
    '-i',
    src,
    '-filter_complex',
    graph,
    '-map',
    '[v]',
    '-c:v',
    'libx264',
    '-pix_fmt',
    'yuv420p',
    out,
  ]);
}

function predict(args: string[]): Promise<{ seconds: number; persons: number }> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const p = spawn(process.execPath, [cli, 'predict', ...args, '--all-persons', '--json'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let [stdout, stderr] = ['', ''];
    p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    p.on('close', (code) => {
      if (code !== 0) return reject(new Error(`predict failed (${code}): ${stderr.slice(-2000)}`));
      resolve({ seconds: (performance.now() - t0) / 1000, persons: (JSON.parse(stdout).persons as unknown[]).length });
    });
  });
}

export async function benchPersons(quick: boolean, engine: EnginePreference = 'auto'): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ous-bench-persons-'));
  const { run } = await vitB32Run(dir, engine);
  const src = path.join(packageRoot(), 'fixtures', 'media', 'franck_0-6s.mp4');
  const counts = quick ? [1, 3] : [1, 3, 10];
  console.log(
    '\nous predict --all-persons, ViT-B/32 shape (random weights), the 6 s talking-face clip tiled N times ' +
      '(180x144 a face); T = 16, 2 s windows every 1 s, the SSD detector on every grid frame',
  );
  console.log('| faces | persons found | wall | seconds of video / s | extra seconds per extra person |');
  console.log('|---|---|---|---|---|');
  let one = 0;
  for (const n of counts) {
    const video = path.join(dir, `faces${n}.mp4`);
    tiled(src, n, video);
    const r = await predict([video, '--run', run]);
    if (n === 1) one = r.seconds;
    console.log(
      `| ${n} | ${r.persons} | ${r.seconds.toFixed(1)} s | ${(6 / r.seconds).toFixed(3)} ` +
        `| ${n === 1 ? '' : ((r.seconds - one) / (n - 1)).toFixed(2) + ' s'} |`,
    );
  }
  fs.rmSync(dir, { recursive: true, force: true });
}
