// `ous serve` benchmark: predictions per second and p50/p99 latency (upload to result) for a 4 s
// 360p clip with a real face, at the ViT-B/32 shape (random weights, a run trained one epoch on
// them), with 1 and 2 worker processes, and /api/health's latency under that load; then a burst of
// concurrent uploads against --queue 2: how fast the refusals come and /api/health's latency from
// a client during the burst and while the accepted jobs run.
import * as http from 'node:http';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { buildInfo } from '../src/torch/index.js';
import type { EnginePreference } from '../src/clip/frame-encoder.js';
import { startServer } from '../src/server/server.js';
import { vitB32Run } from './vitb32-run.js';

const quantile = (v: number[], q: number) =>
  [...v].sort((a, b) => a - b)[Math.min(v.length - 1, Math.floor(q * v.length))]!;

async function getJson(url: string, init?: RequestInit): Promise<any> {
  const r = await fetch(url, init);
  return { status: r.status, body: await r.json() };
}

/** /api/health polled every `everyMs` until stop(); `times` holds each answer's latency (ms) so far. */
function pollHealth(url: string, everyMs: number): { times: number[]; stop: () => Promise<number[]> } {
  const times: number[] = [];
  let busy = true;
  const loop = (async () => {
    while (busy) {
      const t0 = performance.now();
      await getJson(`${url}/api/health`);
      times.push(performance.now() - t0);
      await new Promise((r) => setTimeout(r, everyMs));
    }
  })();
  return { times, stop: async () => ((busy = false), await loop, times) };
}

export async function benchServe(quick: boolean, engine: EnginePreference = 'auto'): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ous-bench-serve-'));
  const { run, clip } = await vitB32Run(dir, engine);
  const video = fs.readFileSync(clip);
  const jobs = quick ? 2 : 8;
  console.log(
    '\nous serve, ViT-B/32 shape (random weights), ' +
      'a 4 s 640x360 clip with one face, T = 16, 2 s windows every 1 s (3 windows)',
  );
  const backend = /ATen parallel backend: (\S+)/.exec(buildInfo().parallel)?.[1] ?? '?';
  console.log(
    `${os.cpus()[0]?.model ?? 'cpu'}, ${os.availableParallelism()} cores, libtorch ${buildInfo().torchVersion} ` +
      `(${backend}, OpenBLAS kernel: OPENBLAS_CORETYPE=${process.env.OPENBLAS_CORETYPE ?? 'auto'}); ` +
      'each worker gets cores / workers threads, at nice 10',
  );
  console.log('| workers | jobs | predictions/s | p50 latency | p99 latency | health p50 | health p99 |');
  console.log('|---|---|---|---|---|---|---|');
  for (const workers of [1, 2]) {
    const server = await startServer({
      run,
      engine,
      host: '127.0.0.1',
      port: 0,
      workers,
      queue: jobs,
      maxUploadMb: 50,
      maxSeconds: 60,
      samples: 0,
      log: () => {},
    });
    const health = pollHealth(server.url, 50);
    const latencies: number[] = [];
    const t0 = performance.now();
    // As many clients as workers, each sending its share one after another.
    await Promise.all(
      Array.from({ length: workers }, async (_, c) => {
        for (let i = c; i < jobs; i += workers) {
          const s = performance.now();
          const { status, body } = await getJson(`${server.url}/api/predict`, { method: 'POST', body: video });
          if (status !== 202) throw new Error(`predict answered ${status}: ${JSON.stringify(body)}`);
          for (;;) {
            const j = await getJson(`${server.url}/api/jobs/${body.id}`);
            if (j.body.status === 'failed') throw new Error(j.body.error);
            if (j.body.status === 'done') break;
            await new Promise((r) => setTimeout(r, 50));
          }
          latencies.push((performance.now() - s) / 1000);
        }
      }),
    );
    const total = (performance.now() - t0) / 1000;
    const times = await health.stop();
    await server.close();
    console.log(
      `| ${workers} | ${jobs} | ${(jobs / total).toFixed(3)} | ` +
        `${quantile(latencies, 0.5).toFixed(1)} s | ${quantile(latencies, 0.99).toFixed(1)} s | ` +
        `${quantile(times, 0.5).toFixed(1)} ms | ${quantile(times, 0.99).toFixed(1)} ms |`,
    );
  }
  await burst(run, video, quick ? 30 : 50);
  fs.rmSync(dir, { recursive: true, force: true });
}

/**
 * A POST on its own connection (node:http, as curl would: fetch's
 * pooling adds ~150 ms a request in a burst); its status and time.
 */
function post(url: string, body: Buffer): Promise<{ status: number; id?: string; ms: number }> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const req = http.request(
      url,
      { method: 'POST', agent: false, headers: { 'Content-Length': String(body.length) } },
      (res) => {
        let data = '';
        res.on('data', (d) => (data += d));
        res.on('end', () => resolve({ status: res.statusCode!, id: JSON.parse(data).id, ms: performance.now() - t0 }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** `n` uploads at once on --queue 2, one worker; health polled every 25 ms from here meanwhile. */
async function burst(run: string, video: Buffer, n: number): Promise<void> {
  const server = await startServer({
    run,
    host: '127.0.0.1',
    port: 0,
    workers: 1,
    queue: 2,
    maxUploadMb: 50,
    maxSeconds: 60,
    samples: 0,
    log: () => {},
  });
  const polling = pollHealth(server.url, 25);
  const health = polling.times;
  const t0 = performance.now();
  const answers = await Promise.all(Array.from({ length: n }, () => post(`${server.url}/api/predict`, video)));
  const answered = (performance.now() - t0) / 1000;
  const refused = answers.filter((a) => a.status === 503).map((a) => a.ms);
  const accepted = answers.filter((a) => a.status === 202);
  const duringBurst = health.length;
  for (const a of accepted) {
    for (;;) {
      const j = await getJson(`${server.url}/api/jobs/${a.id}`);
      if (j.body.status === 'done' || j.body.status === 'failed') break;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  await polling.stop();
  const loop = (await getJson(`${server.url}/api/health`)).body.eventLoopDelayMs;
  await server.close();
  console.log(
    `\nburst: ${n} concurrent uploads of that clip on --queue 2, 1 worker (all answered in ${answered.toFixed(2)} s)`,
  );
  console.log(
    '| accepted | refused (503) | refusal p50 | refusal max | health p50 | ' +
      'health p95 | health p99 | health max | polls | server event loop p99 |',
  );
  console.log('|---|---|---|---|---|---|---|---|---|---|');
  console.log(
    `| ${accepted.length} | ${refused.length} | ${refused.length ? quantile(refused, 0.5).toFixed(0) : '-'} ` +
      `ms | ${refused.length ? Math.max(...refused).toFixed(0) : '-'} ms | ` +
      `${quantile(health, 0.5).toFixed(1)} ms | ${quantile(health, 0.95).toFixed(1)} ms | ` +
      `${quantile(health, 0.99).toFixed(1)} ms | ${Math.max(...health).toFixed(1)} ms | ${health.length} ` +
      `(${duringBurst} during the burst) | ${loop.p99} ms |`,
  );
}
