// HTTP clients for the serve tests: full control over the body, the headers and the timing, and
// answers that always come back (a status, or 0 with the socket error), each within a time limit.
import * as http from 'node:http';
import * as net from 'node:net';
import { spawnSync } from 'node:child_process';

export interface Answer {
  status: number; // 0: no HTTP answer (the connection closed or failed)
  headers: http.IncomingHttpHeaders;
  body: any;
  ms: number;
  error?: string;
}

/** One request on its own connection; never rejects; an answer not complete within `timeoutMs` is status -1. */
export function request(
  url: string,
  opts: { method?: string; body?: Buffer; headers?: Record<string, string>; timeoutMs?: number } = {},
): Promise<Answer> {
  const t0 = performance.now();
  return new Promise((resolve) => {
    let settled = false;
    const done = (a: Omit<Answer, 'ms'>) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve({ ...a, ms: performance.now() - t0 });
    };
    const req = http.request(
      url,
      {
        method: opts.method ?? 'GET',
        agent: false,
        headers: { ...(opts.body ? { 'Content-Length': String(opts.body.length) } : {}), ...opts.headers },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (d) => chunks.push(d));
        res.on('error', (e) => done({ status: 0, headers: {}, body: null, error: e.message }));
        res.on('end', () => {
          const data = Buffer.concat(chunks).toString('utf8');
          let body: any = data;
          if (data && res.headers['content-type']?.startsWith('application/json')) body = JSON.parse(data);
          done({ status: res.statusCode!, headers: res.headers, body });
        });
      },
    );
    const timer = setTimeout(
      () => (req.destroy(), done({ status: -1, headers: {}, body: null, error: 'timeout' })),
      opts.timeoutMs ?? 30_000,
    );
    req.on('error', (e) => done({ status: 0, headers: {}, body: null, error: e.message }));
    req.end(opts.body);
  });
}

/** A multipart/form-data body with one text field and the file `data` named `filename`. */
export function multipart(data: Buffer, filename = 'clip.mp4', boundary = 'xYz0123'): { body: Buffer; type: string } {
  const body = Buffer.concat([
    Buffer.from(
      `--${boundary}\r\nContent-Disposition: form-data; name="note"\r\n\r\nhello\r\n--${boundary}\r\n` +
        `Content-Disposition: form-data; name="video"; filename="${filename}"\r\nContent-Type: video/mp4\r\n\r\n`,
    ),
    data,
    Buffer.from(`\r\n--${boundary}--\r\n`),
  ]);
  return { body, type: `multipart/form-data; boundary=${boundary}` };
}

/**
 * Raw bytes on a TCP connection; resolves when the server closes
 * it (with what it sent) or after `waitMs` (closed: false).
 */
export function rawConnection(
  port: number,
  bytes: string,
  waitMs: number,
): Promise<{ closed: boolean; ms: number; got: string }> {
  const t0 = performance.now();
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1', () => s.write(bytes));
    let got = '';
    s.on('data', (d) => (got += d));
    s.on('error', () => {});
    const timer = setTimeout(() => (s.destroy(), resolve({ closed: false, ms: performance.now() - t0, got })), waitMs);
    s.on('close', () => (clearTimeout(timer), resolve({ closed: true, ms: performance.now() - t0, got })));
  });
}

/** ffmpeg at test time (its arguments); throws with its stderr when it fails. */
export function ffmpeg(...args: string[]): void {
  const r = spawnSync('ffmpeg', ['-v', 'error', '-y', ...args], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ffmpeg ${args.join(' ')}: ${r.stderr}`);
}

export const quantile = (v: number[], q: number) =>
  [...v].sort((a, b) => a - b)[Math.min(v.length - 1, Math.floor(q * v.length))]!;
