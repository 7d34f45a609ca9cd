// `bench long`: `ous predict` on the talking-face clip looped to 1, 5 and 20 minutes at the ViT-B/32
// shape: seconds of video per second and the peak resident memory of the process, each length in a
// process of its own. Streaming holds a chunk of frames and the windows under way, so the peak should
// not grow with the video and the rate should not fall. The known face box leaves the detector out of
// the long rows (its cost per grid frame is the 1-minute row with detection).
import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { packageRoot } from '../src/util/paths.js';
import type { EnginePreference } from '../src/clip/frame-encoder.js';
import { vitB32Run } from './vitb32-run.js';

const cli = path.join(packageRoot(), 'dist', 'src', 'cli', 'main.js');
// The child reports its own peak RSS (kB) on exit: no /usr/bin/time needed.
const reportRss =
  'data:text/javascript,process.on("exit",()=>process.stderr.write("maxrss "+process.resourceUsage().maxRSS+"\\n"))';

function predict(args: string[]): Promise<{ seconds: number; rssMb: number; windows: number }> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const p = spawn(process.execPath, ['--import', reportRss, cli, 'predict', ...args, '--jsonl'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let windows = 0;
    let rest = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => {
      const lines = (rest + d.toString()).split('\n');
      rest = lines.pop()!;
      windows += lines.filter((l) => l.startsWith('{"type":"window"')).length;
    });
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    p.on('close', (code) => {
      const rss = /maxrss (\d+)/.exec(stderr);
      if (code !== 0 || !rss) reject(new Error(`predict failed (${code}): ${stderr.slice(-2000)}`));
      else resolve({ seconds: (performance.now() - t0) / 1000, rssMb: Number(rss[1]) / 1024, windows });
    });
  });
}

export async function benchLong(quick: boolean, engine: EnginePreference = 'auto'): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ous-bench-long-'));
  // the children read OUS_ENGINE themselves, as the CLI does
  const { run, clip, faceBox } = await vitB32Run(dir, engine);
  const minutes = quick ? [1, 5] : [1, 5, 20];
  const window = ['--window', '8', '--stride', '4'];
  console.log(
    '\nous predict on long videos, ViT-B/32 shape (random weights), ' +
      'the 4 s 640x360 talking-face clip looped; T = 16, 8 s windows every 4 s (2 grid frames a second)',
  );
  console.log('| video | detector | windows | wall | seconds of video / s | peak RSS |');
  console.log('|---|---|---|---|---|---|');
  const rows: Array<{ min: number; rssMb: number; rate: number }> = [];
  for (const min of minutes) {
    const video = path.join(dir, `long${min}.mp4`);
    execFileSync('ffmpeg', [
      '-v',
      'error',
      '-y',
      '-stream_loop',
      String(min * 15 - 1),
      '-i',
      clip,
      '-c',
      'copy',
      video,
    ]);
    for (const detect of min === 1 ? [false, true] : [false]) {
      const r = await predict([video, '--run', run, ...window, ...(detect ? [] : ['--box', faceBox.join(' ')])]);
      const rate = (60 * min) / r.seconds;
      if (!detect) rows.push({ min, rssMb: r.rssMb, rate });
      console.log(
        `| ${min} min | ${detect ? 'SSD, every grid frame' : 'none (a known box)'} | ${r.windows} ` +
          `| ${r.seconds.toFixed(1)} s | ${rate.toFixed(2)} | ${r.rssMb.toFixed(0)} MB |`,
      );
    }
  }
  const [first, last] = [rows[0]!, rows[rows.length - 1]!];
  console.log(
    `peak RSS at ${last.min} min / at ${first.min} min: ${(last.rssMb / first.rssMb).toFixed(3)}; ` +
      `rate at ${last.min} min / at ${first.min} min: ${(last.rate / first.rate).toFixed(3)}`,
  );
  fs.rmSync(dir, { recursive: true, force: true });
}
