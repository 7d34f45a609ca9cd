// The upload route of `ous serve` under 500 seeded random truncations and mutations of a valid
// multipart body (a stand-in worker predicts what is accepted): every request is answered within
// seconds (no hang), none with a 5xx, the server stays healthy, and no file is left behind.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startServer } from '../src/server/server.js';
import { rng } from '../src/util/random.js'; // mulberry32: a failure is reproducible from its case number
import { ffmpeg, multipart, request } from './serve-http.js';

const stub = fileURLToPath(new URL('./serve-stub-worker.js', import.meta.url));

/** One mutation of `body`: cut it, flip/insert/delete bytes, duplicate or drop a stretch, or break the boundary. */
function mutate(body: Buffer, r: () => number): { body: Buffer; kind: string } {
  const at = () => Math.floor(r() * body.length);
  const kind = ['truncate', 'flip', 'insert', 'delete', 'duplicate', 'boundary', 'header', 'several'][
    Math.floor(r() * 8)
  ]!;
  let b = Buffer.from(body);
  const once = (k: string) => {
    switch (k) {
      case 'truncate':
        b = b.subarray(0, at());
        break;
      case 'flip': {
        const i = Math.floor(r() * b.length);
        b[i] = Math.floor(r() * 256);
        break;
      }
      case 'insert': {
        const i = Math.floor(r() * b.length);
        const junk = Buffer.from(Array.from({ length: 1 + Math.floor(r() * 64) }, () => Math.floor(r() * 256)));
        b = Buffer.concat([b.subarray(0, i), junk, b.subarray(i)]);
        break;
      }
      case 'delete': {
        const i = Math.floor(r() * b.length);
        b = Buffer.concat([b.subarray(0, i), b.subarray(i + 1 + Math.floor(r() * 512))]);
        break;
      }
      case 'duplicate': {
        const i = Math.floor(r() * b.length);
        const n = Math.floor(r() * 2048);
        b = Buffer.concat([b.subarray(0, i + n), b.subarray(i, i + n), b.subarray(i + n)]);
        break;
      }
      case 'boundary': {
        // Damage one of the delimiters (the parser's hardest inputs).
        const s = b.toString('latin1');
        const hits = [...s.matchAll(/--xYz0123/g)].map((m) => m.index!);
        const i = hits[Math.floor(r() * hits.length)]! + 2 + Math.floor(r() * 7);
        b[i] = r() < 0.5 ? 0x2d : Math.floor(r() * 256);
        break;
      }
      case 'header': {
        const s = b.toString('latin1');
        const i = s.indexOf('Content-Disposition', s.indexOf('filename') - 80);
        b = Buffer.concat([
          b.subarray(0, i),
          Buffer.from(
            ['Content-Type: ', 'filename*=', '\r\n\r\n', '\u0000', 'name="', ';;;'][Math.floor(r() * 6)]!,
            'latin1',
          ),
          b.subarray(i),
        ]);
        break;
      }
    }
  };
  if (kind === 'several')
    for (let k = 0; k < 3; k++) once(['truncate', 'flip', 'insert', 'delete', 'duplicate'][Math.floor(r() * 5)]!);
  else once(kind);
  return { body: b, kind };
}

test('fuzz: 500 seeded mutations of a valid multipart upload: never a hang, never a 5xx, no file left', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ous-fuzz-'));
  const clip = path.join(dir, 'clip.mp4');
  ffmpeg('-f', 'lavfi', '-i', 'testsrc=size=64x48:rate=8', '-t', '2', '-pix_fmt', 'yuv420p', clip);
  const valid = multipart(fs.readFileSync(clip));
  const server = await startServer({
    tempRoot: dir, // its own temp folder: other servers on this machine use the system one
    run: 'RUN',
    host: '127.0.0.1',
    port: 0,
    workers: 1,
    queue: 64,
    maxUploadMb: 1,
    maxSeconds: 60,
    samples: 0,
    workerModule: stub,
    log: () => {},
    requestTimeoutMs: 2500,
    headersTimeoutMs: 2000,
  });
  const counts: Record<string, number> = {};
  const accepted: string[] = [];
  try {
    const r = rng(23);
    const cases = Array.from({ length: 500 }, (_, i) => ({ i, ...mutate(valid.body, r), lie: r() < 0.05 }));
    // Four clients at a time, each case its own connection.
    let next = 0;
    const client = async () => {
      while (next < cases.length) {
        const c = cases[next++]!;
        // One in twenty declare a Content-Length other than what they send (short: the request timeout ends it).
        const length = c.lie ? String(c.body.length + 1 + (c.i % 100)) : String(c.body.length);
        const a = await request(`${server.url}/api/predict`, {
          method: 'POST',
          body: c.body,
          headers: { 'Content-Type': valid.type, 'Content-Length': length },
          timeoutMs: 15_000,
        });
        assert.notEqual(a.status, -1, `case ${c.i} (${c.kind}) hung`);
        assert.ok(a.status < 500, `case ${c.i} (${c.kind}): ${a.status} ${JSON.stringify(a.body)}`);
        if (a.status > 0)
          assert.ok(
            (typeof a.body === 'object' && typeof a.body.error === 'string') || a.status === 202,
            `case ${c.i} (${c.kind}): ${a.status} ${String(a.body).slice(0, 200)} ${JSON.stringify(a.headers)}`,
          );
        const key = `${c.kind} ${a.status}`;
        counts[key] = (counts[key] ?? 0) + 1;
        if (a.status === 202) accepted.push(a.body.id);
      }
    };
    await Promise.all(Array.from({ length: 4 }, client));
    assert.equal((await request(`${server.url}/api/health`, { timeoutMs: 1000 })).status, 200);
    // Accepted jobs end (a stand-in worker), and with them their files.
    for (const id of accepted) {
      for (;;) {
        const j = await request(`${server.url}/api/jobs/${id}`);
        if (j.body.status === 'done' || j.body.status === 'failed') break;
        await new Promise((res) => setTimeout(res, 20));
      }
    }
    process.stderr.write(`# fuzz: ${JSON.stringify(Object.fromEntries(Object.entries(counts).sort()))}\n`);
    assert.ok(
      accepted.length > 0 && accepted.length < 500,
      `${accepted.length} accepted: the mutations reach both sides`,
    );
    assert.deepEqual(fs.readdirSync(path.join(server.tempDir, 'uploads')), [], 'no upload left');
  } finally {
    await server.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
  assert.ok(!fs.existsSync(server.tempDir));
});
