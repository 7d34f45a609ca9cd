// `ous serve`: the HTTP server, its state, start and shutdown. This process only moves bytes and
// bookkeeping; the model lives in worker processes (pool.ts, worker.ts), uploads are parsed and probed
// in upload.ts, so /api/health answers at once while they predict. The routes are a table of small
// handlers (routes.ts) over one state object made here; http.ts checks every caller and writes
// every answer with the security headers.
//
// Only requests naming this server (Host) are answered, and API POSTs from other origins are refused,
// so neither a web page the user visits nor a DNS-rebinding one can use it.
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { packageRoot } from '../util/paths.js';
import { UserError } from '../util/errors.js';
import type { ModelInfo } from './protocol.js';
import { JobPool, KEEP_JOBS_MS } from './pool.js';
import { HttpError, Limiter } from './upload.js';
import { ClientLimits } from './clients.js';
import { allowedHosts, answerClientError, listen, writeReply } from './http.js';
import { answer, type ServerState } from './routes.js';
import { makeSamples } from './samples.js';
import { LiveSessions } from './live.js';
import type { Device, Precision } from '../torch/index.js';
import type { EnginePreference } from '../clip/frame-encoder.js';

export { HttpError };
export { allowedHosts, hostName, SECURITY_HEADERS } from './http.js';

export interface ServeOptions {
  run: string;
  clip?: string;
  device?: Device; // where the workers run the models (cpu)
  precision?: Precision; // CLIP's vision tower (fp32)
  engine?: EnginePreference; // which engine runs CLIP's vision tower in the workers ('auto'; the CLI's OUS_ENGINE)
  host: string; // 127.0.0.1
  port: number; // 8080; 0 picks a free one
  publicHost?: string[]; // other names clients reach this server by (--public-host)
  workers: number; // 1
  queue: number; // jobs waiting beyond the running ones (8)
  maxUploadMb: number; // 200
  maxSeconds: number; // 600
  samples?: number; // sample clips to make (one per class, up to 7); 0 for none
  probes?: number; // uploads probed at once (2)
  maxConnections?: number; // open connections (256); more are refused at once
  headersTimeoutMs?: number; // a request's headers must arrive within this (10 s)
  requestTimeoutMs?: number; // a whole request, upload included (10 min)
  idleTimeoutMs?: number; // a connection silent this long is closed (60 s)
  perClientConnections?: number; // open connections one client address may hold (32)
  perClientUploads?: number; // uploads one client address may have arriving at once (2)
  minUploadKBps?: number; // an upload slower than this over a rate window is dropped with 408 (8 KB/s)
  cameraSessions?: number; // camera sessions at once (1; 0: the page's camera mode is off)
  rateWindowMs?: number; // the window the upload rate is measured over (10 s)
  keepJobsMs?: number; // a finished job's result stays readable this long (1 hour)
  tempRoot?: string; // where the server's temporary folder is made (the system's temp folder)
  workerModule?: string; // tests: a stand-in worker
  log?: (line: string) => void;
}

export interface Server {
  url: string;
  model: ModelInfo;
  tempDir: string;
  /**
   * Stops accepting jobs, fails queued ones, gives running ones `graceMs` to finish, answers polls for up
   * to `lingerMs` more so clients see how their jobs ended, then closes and deletes every temporary file.
   */
  shutdown(o?: { graceMs?: number; lingerMs?: number }): Promise<void>;
  /** shutdown() without grace or linger. */
  close(): Promise<void>;
  /** The worker processes' ids (tests kill one). */
  workerPids(): number[];
}

const STATIC = path.join(packageRoot(), 'src', 'server', 'static');

/** The one state object of a server about to listen: limits resolved, folders made, nothing started. */
function newState(o: ServeOptions, log: (line: string) => void): ServerState {
  const tempDir = fs.mkdtempSync(path.join(o.tempRoot ?? os.tmpdir(), 'ous-serve-'));
  const uploadsDir = path.join(tempDir, 'uploads');
  fs.mkdirSync(uploadsDir);
  const requestTimeout = o.requestTimeoutMs ?? 600_000;
  return {
    limits: {
      maxUploadMb: o.maxUploadMb,
      maxSeconds: o.maxSeconds,
      queue: o.queue,
      perClientUploads: o.perClientUploads ?? 2,
      uploadDeadlineMs: requestTimeout - 1000, // a JSON 408 before Node's own (bare) one
      minRate: { bytesPerSec: (o.minUploadKBps ?? 8) * 1024, windowMs: o.rateWindowMs ?? 10_000 },
      keepJobsMs: o.keepJobsMs ?? KEEP_JOBS_MS,
    },
    // the page's camera mode: a process per session, started by its route (live.ts)
    live: new LiveSessions({
      ...{ run: o.run, clip: o.clip, device: o.device, engine: o.engine, maxSeconds: o.maxSeconds },
      precision: o.precision ?? 'fp32',
      sessions: o.cameraSessions ?? 1,
      log,
    }),
    closing: false,
    endedWhileClosing: new Set(),
    samples: [],
    samplesReady: Promise.resolve(),
    // the names in the one folder, read once
    staticFiles: new Map(fs.readdirSync(STATIC).map((f) => [f, path.join(STATIC, f)])),
    uploadsDir,
    hosts: allowedHosts(o.host, o.publicHost),
    clients: new ClientLimits({ connections: o.perClientConnections ?? 32, uploads: o.perClientUploads ?? 2 }),
    probes: new Limiter(o.probes ?? 2),
    // how long callbacks wait for this event loop: what predictions would raise were they run here
    loopDelay: monitorEventLoopDelay({ resolution: 10 }),
    log,
  };
}

/** The HTTP server over `s`: Node's timeouts and connection caps, every request through routes.ts answer. */
function httpServer(s: ServerState, o: ServeOptions): http.Server {
  const server = http.createServer(
    {
      headersTimeout: o.headersTimeoutMs ?? 10_000,
      requestTimeout: o.requestTimeoutMs ?? 600_000,
      keepAliveTimeout: 5_000,
      connectionsCheckingInterval: Math.min(1_000, o.headersTimeoutMs ?? 1_000),
      maxHeaderSize: 16 * 1024,
    },
    (req, res) =>
      void answer(s, req)
        .then((reply) => {
          writeReply(res, reply, req.method === 'HEAD');
          // A refused upload is not read to its end: the connection closes once the answer is out.
          if (reply.headers.Connection === 'close') res.on('finish', () => req.socket.destroySoon());
        })
        .catch((err: Error) => {
          s.log(`serve: ${err.stack ?? err}`); // a file gone between its route and its sending
          res.destroy();
        }),
  );
  server.timeout = o.idleTimeoutMs ?? 60_000; // a connection that says nothing for this long is closed
  server.maxConnections = o.maxConnections ?? 256;
  s.clients.watch(server);
  server.on('clientError', answerClientError);
  return server;
}

export async function startServer(o: ServeOptions): Promise<Server> {
  const log = o.log ?? ((l: string) => process.stderr.write(l + '\n'));
  if (!net.isIP(o.host) && o.host !== 'localhost' && !/^[a-z0-9.-]+$/i.test(o.host))
    throw new UserError(`serve: --host '${o.host}' is not an address or a host name`);
  const s = newState(o, log);
  const tempDir = path.dirname(s.uploadsDir);
  const server = httpServer(s, o);
  // Bind first: a port in use or a bad --host is one line, before any worker exists.
  try {
    await listen(server, o.port, o.host);
  } catch (err) {
    fs.rmSync(tempDir, { recursive: true, force: true });
    throw err;
  }
  s.loopDelay.enable();
  // The sample clips are drawn in the background once the port is ours.
  s.samplesReady = makeSamples(path.join(tempDir, 'samples'), o.samples ?? 4, log).then((list) => {
    s.samples = list;
  });
  try {
    s.pool = await JobPool.start({
      run: o.run,
      clip: o.clip,
      device: o.device,
      precision: o.precision ?? 'fp32',
      maxSeconds: o.maxSeconds,
      engine: o.engine,
      workers: o.workers,
      queue: o.queue,
      keepJobsMs: o.keepJobsMs,
      workerModule: o.workerModule,
      log,
    });
  } catch (err) {
    s.loopDelay.disable();
    server.close();
    server.closeAllConnections();
    await s.samplesReady;
    fs.rmSync(tempDir, { recursive: true, force: true });
    throw err;
  }
  return new RunningServer(s, server, tempDir);
}

class RunningServer implements Server {
  readonly url: string;
  readonly model: ModelInfo;
  private closed?: Promise<void>;

  constructor(
    private readonly s: ServerState,
    private readonly server: http.Server,
    readonly tempDir: string,
  ) {
    const addr = server.address() as { port: number; address: string };
    const host = addr.address.includes(':') ? `[${addr.address}]` : addr.address;
    this.url = `http://${host}:${addr.port}`;
    this.model = s.pool!.model!;
  }

  shutdown(o: { graceMs?: number; lingerMs?: number } = {}): Promise<void> {
    this.closed ??= this.stop(o.graceMs ?? 0, o.lingerMs ?? 0);
    return this.closed;
  }

  close(): Promise<void> {
    return this.shutdown();
  }

  workerPids(): number[] {
    return this.s.pool!.workerPids();
  }

  private async stop(graceMs: number, lingerMs: number): Promise<void> {
    const { s, server } = this;
    const pool = s.pool!;
    s.closing = true;
    // Every job still open is owed one poll that shows how it ended (a poll before it ends does not count).
    for (const j of pool.jobs.values())
      if (j.status === 'queued' || j.status === 'running') s.endedWhileClosing.add(j.id);
    await Promise.all([pool.drain(graceMs), s.live.close()]);
    // Answer polls a little longer, so each client sees how its job ended (or until all have).
    const until = Date.now() + lingerMs;
    while (s.endedWhileClosing.size && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
    s.loopDelay.disable();
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
    await pool.kill();
    await s.samplesReady;
    fs.rmSync(this.tempDir, { recursive: true, force: true });
  }
}
