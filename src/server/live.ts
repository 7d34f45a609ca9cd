// The page's camera mode (issue 33): a camera session runs the streaming predictor (predict/stream.ts)
// over the frames the page sends, in a process of its own (live-worker.ts), and hands back each window
// as it is classified. The transport is plain HTTP (docs/DECISIONS.md, Camera mode): the page POSTs
// its frames as small batches of JPEGs every quarter second and each answer carries the windows
// classified since the page's last one, so the same Host and Origin checks, per-client limits and
// OpenAPI document as every other route apply, and nothing new is needed on either side.
//
//   POST   /api/live                   start a session (LiveStart) -> 201 LiveStarted (once the model is loaded)
//   POST   /api/live/{id}/frames       a batch of frames (the binary format below) -> LiveUpdate
//   GET    /api/live/{id}?after=N      the windows after the N-th -> LiveUpdate
//   DELETE /api/live/{id}              the session ends: the windows it completes and the summary -> LiveUpdate
//
// A batch of frames is `application/octet-stream`: per frame, a 4-byte big-endian length L, an 8-byte
// big-endian float64 t (seconds of camera time since the session's first frame), then L bytes of JPEG.
//
// Limits: `sessions` live sessions at once (503 beyond, load shed), `perClient` per client address
// (429), a frame at most `maxFrameBytes`, a batch at most `maxBatch` frames, frames faster than twice
// the rate the session asks for dropped (counted), a session at most `maxSeconds` of camera time; a
// session no request touched for `idleMs` (a closed tab) ends and its process is freed.
import { fork, type ChildProcess } from 'node:child_process';
import * as crypto from 'node:crypto';
import type * as http from 'node:http';
import * as os from 'node:os';
import { fileURLToPath } from 'node:url';
import { extendZodWithOpenApi, type OpenAPIRegistry } from '@asteasolutions/zod-to-openapi';
import { z } from 'zod';
import type { StreamSummary, StreamWindow } from '../predict/stream.js';
import type { Device, Precision } from '../torch/index.js';
import type { EnginePreference } from '../clip/frame-encoder.js';
import { zodIssues } from '../util/fs.js';
import { MAX_SIDE } from '../video/decode.js';
import { clientAddress } from './clients.js';
import { HttpError } from './upload.js';
import { jsonReply, type Reply } from './http.js';
import { ErrorSchema } from './contract.js';

/** What a camera route reads of its request: the headers, the socket (the client's address), the body. */
type LiveRequest = Pick<http.IncomingMessage, 'headers' | 'socket'> & AsyncIterable<Buffer>;

extendZodWithOpenApi(z);

const Probabilities = z.record(z.number()).describe('class name -> probability');

export const LiveStartSchema = z
  .object({
    window: z.number().positive().max(60).optional().describe('seconds a window covers (2)'),
    stride: z.number().positive().max(60).optional().describe('seconds between window starts (1)'),
    lookahead: z
      .number()
      .min(0)
      .max(10)
      .optional()
      .describe('seconds of frames after a window before it is classified (2)'),
    persons: z
      .literal('all')
      .optional()
      .describe("'all': a window for every person whose face is in it, each naming its person (default: the main one)"),
  })
  .strict()
  .openapi('LiveStart');

export const LiveStartedSchema = z
  .object({
    id: z.string().describe('the session: name it in every later request'),
    fps: z.number().describe('frames per second to send (T / window): the predictor samples the windows at this rate'),
    frames: z.number().int().describe('T: frames per window'),
    maxFrameBytes: z.number().int(),
    maxBatch: z.number().int().describe('frames in one POST at most'),
    maxSeconds: z.number().describe('seconds of camera time a session may last'),
    idleSeconds: z.number().describe('a session no request touched for this long ends'),
  })
  .strict()
  .openapi('LiveStarted');

export const LiveWindowSchema = z
  .object({
    seq: z.number().int().describe("the window's place in the session (for ?after=)"),
    index: z.number().int(),
    person: z.number().int().nullable().describe("whose face (a person's id), null: none, the centre crop"),
    main: z.boolean(),
    start: z.number().describe('seconds of camera time: the window covers [start, end)'),
    end: z.number(),
    emotion: z.string(),
    probabilities: Probabilities,
    polarity: Probabilities.nullable(),
    sceneEffect: z
      .object({ totalVariation: z.number(), changedDecision: z.boolean(), emotionWithoutScene: z.string() })
      .strict()
      .nullable(),
    faceBox: z
      .tuple([z.number(), z.number(), z.number(), z.number()])
      .describe("[x, y, w, h]: the face crop at the window's middle frame, in the pixels of the frames sent"),
    faceFrames: z.number().int().describe("how many of the window's T frames had the face detected (0: no face)"),
    latency: z.number().describe("ms from the arrival of the window's last frame to the window classified"),
    dropped: z.number().int().describe("of the window's T frames, how many were dropped"),
    droppedTotal: z.number().int(),
  })
  .strict()
  .openapi('LiveWindow');

export const LiveSummarySchema = z
  .object({
    emotion: z.string(),
    probabilities: Probabilities,
    share: Probabilities,
    noFaceWindows: z.number().int().describe('windows without a face, left out of the answer'),
    noFaceAnswer: z.boolean().describe('no window saw a face: the answer is not about a face'),
    faceMissing: z.boolean(),
    frames: z.number().int(),
    dropped: z.number().int(),
    duration: z.number(),
    windowCount: z.number().int(),
    latency: z.object({ p50: z.number(), p95: z.number(), max: z.number() }).strict(),
    persons: z
      .array(
        z
          .object({
            id: z.number().int(),
            main: z.boolean().describe('the main person at the end (longest × largest over the session)'),
            emotion: z.string(),
            probabilities: Probabilities,
            windowCount: z.number().int(),
          })
          .strict(),
      )
      .optional()
      .describe("with persons 'all': each person's answer over their windows"),
  })
  .strict()
  .openapi('LiveSummary');

export const LiveUpdateSchema = z
  .object({
    id: z.string(),
    status: z.enum(['running', 'ended']),
    windows: z.array(LiveWindowSchema).describe('the windows after ?after= (every one without it)'),
    frames: z.number().int().describe('frames received'),
    dropped: z.number().int().describe('frames dropped: too fast, or the predictor was busy'),
    frameSize: z.tuple([z.number(), z.number()]).nullable().describe('[w, h] of the frames the boxes are in'),
    summary: LiveSummarySchema.optional().describe('once the session has ended'),
    error: z.string().optional().describe('why the session ended, when it was not asked to'),
  })
  .strict()
  .openapi('LiveUpdate');

export type LiveStart = z.infer<typeof LiveStartSchema>;
export type LiveWindow = z.infer<typeof LiveWindowSchema>;
export type LiveUpdate = z.infer<typeof LiveUpdateSchema>;

/** The routes above, for the generated OpenAPI document. */
export function registerLiveRoutes(registry: OpenAPIRegistry): void {
  const json = (schema: z.ZodTypeAny, description: string) => ({
    description,
    content: { 'application/json': { schema } },
  });
  const id = z.object({ id: z.string() });
  const after = z.object({ after: z.number().int().optional().describe('windows after this seq only') });
  registry.registerPath({
    method: 'post',
    path: '/api/live',
    summary: 'start a camera session',
    request: { body: { content: { 'application/json': { schema: LiveStartSchema } } } },
    responses: {
      201: json(LiveStartedSchema, 'the session, once its model is loaded'),
      400: json(ErrorSchema, 'the settings are not JSON, or not the schema'),
      429: json(ErrorSchema, 'this client address already has its camera session'),
      503: json(ErrorSchema, 'every camera session is taken (Retry-After), or the camera mode is off (none)'),
    },
  });
  registry.registerPath({
    method: 'post',
    path: '/api/live/{id}/frames',
    summary: 'a batch of camera frames',
    request: {
      params: id,
      query: after,
      body: {
        description: 'per frame: uint32 BE length, float64 BE t (s), the JPEG',
        content: { 'application/octet-stream': { schema: z.string().openapi({ format: 'binary' }) } },
      },
    },
    responses: { 200: json(LiveUpdateSchema, 'the windows classified since ?after=') },
  });
  registry.registerPath({
    method: 'get',
    path: '/api/live/{id}',
    summary: "a camera session's windows",
    request: { params: id, query: after },
    responses: { 200: json(LiveUpdateSchema, 'the windows classified since ?after=') },
  });
  registry.registerPath({
    method: 'delete',
    path: '/api/live/{id}',
    summary: 'end a camera session',
    request: { params: id },
    responses: { 200: json(LiveUpdateSchema, 'the last windows and the summary') },
  });
}

/** server -> session process */
export type ToLive =
  | { type: 'init'; settings: LiveSettings }
  | { type: 'frame'; t: number; jpeg: Uint8Array }
  | { type: 'end' };

/** session process -> server */
export type FromLive =
  | { type: 'ready'; fps: number; frames: number }
  | { type: 'window'; window: StreamWindow }
  | { type: 'summary'; summary: StreamSummary }
  | { type: 'fatal'; error: string; userError: boolean };

export interface LiveSettings {
  run: string;
  clip?: string;
  device?: Device;
  precision?: Precision;
  engine?: EnginePreference;
  threads: number;
  window?: number;
  stride?: number;
  lookahead?: number;
  persons?: 'all';
}

export interface LiveOptions {
  run: string;
  clip?: string;
  device?: Device;
  precision?: Precision;
  engine?: EnginePreference;
  maxSeconds: number; // camera time one session may last (the server's --max-seconds)
  sessions?: number; // live sessions at once (1; 0: the camera mode is off)
  perClient?: number; // live sessions one client address may hold (1)
  maxFrameBytes?: number; // one JPEG (512 KB)
  maxBatch?: number; // frames in one POST (32)
  idleMs?: number; // a session untouched this long ends (10 s)
  startMs?: number; // the model must load within this (60 s)
  workerModule?: string; // tests: a stand-in
  log: (line: string) => void;
}

/** A batch of frames: [u32 BE length][f64 BE t][JPEG] per frame. Refused whole when malformed. */
export function parseFrames(body: Buffer, maxFrameBytes: number, maxBatch: number): Array<{ t: number; jpeg: Buffer }> {
  const out: Array<{ t: number; jpeg: Buffer }> = [];
  for (let at = 0; at < body.length; ) {
    if (body.length - at < 12) throw new HttpError(400, 'a frame batch ends inside a frame header');
    const len = body.readUInt32BE(at);
    const t = body.readDoubleBE(at + 4);
    if (len > maxFrameBytes)
      throw new HttpError(413, `a frame of ${len} bytes passes the limit of ${maxFrameBytes} bytes`);
    if (!(Number.isFinite(t) && t >= 0)) throw new HttpError(400, `a frame's time must be seconds >= 0, not ${t}`);
    if (body.length - at - 12 < len) throw new HttpError(400, 'a frame batch ends inside a frame');
    out.push({ t, jpeg: body.subarray(at + 12, at + 12 + len) });
    if (out.length > maxBatch) throw new HttpError(413, `a batch holds at most ${maxBatch} frames`);
    at += 12 + len;
  }
  return out;
}

interface Session {
  id: string;
  addr: string;
  proc: ChildProcess;
  status: 'running' | 'ended';
  fps: number;
  windows: LiveWindow[];
  frames: number;
  dropped: number; // here: too fast or past the duration; the process's own drops come with each window
  lastT: number;
  frameSize: [number, number] | null;
  summary?: StreamSummary;
  error?: string;
  idle?: NodeJS.Timeout;
  ended: Promise<void>;
}

/** Reads a request body up to `limit` bytes (413 beyond). */
async function readBody(req: LiveRequest, limit: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length']);
  if (declared > limit)
    throw new HttpError(413, `the body passes the limit of ${limit} bytes`, { Connection: 'close' });
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of req as AsyncIterable<Buffer>) {
    n += c.length;
    if (n > limit) throw new HttpError(413, `the body passes the limit of ${limit} bytes`, { Connection: 'close' });
    chunks.push(c);
  }
  return Buffer.concat(chunks);
}

const KEEP_ENDED_MS = 60_000; // an ended session's windows stay readable this long

/** The camera sessions of one server. */
export class LiveSessions {
  private readonly sessions = new Map<string, Session>();
  private readonly o: Required<Omit<LiveOptions, 'clip' | 'device' | 'precision' | 'engine' | 'workerModule'>> &
    LiveOptions;

  constructor(o: LiveOptions) {
    this.o = {
      sessions: 1,
      perClient: 1,
      maxFrameBytes: 512 * 1024,
      maxBatch: 32,
      idleMs: 10_000,
      startMs: 60_000,
      ...o,
    };
  }

  /** Running sessions (for /api/health). */
  get running(): number {
    return [...this.sessions.values()].filter((s) => s.status === 'running').length;
  }

  /** The sessions this server takes at once (0: none, the camera mode is off). */
  get limit(): number {
    return this.o.sessions;
  }

  /**
   * GET / DELETE /api/live/{id}, and POST /api/live/{id}/frames (`frames`): the session's windows after
   * `?after=` (routes.ts routes here; the caller's Host and Origin are checked there).
   */
  async answer(id: string, method: string, url: URL, req: LiveRequest, frames = false): Promise<Reply> {
    const s = this.sessions.get(id);
    if (!s) throw new HttpError(404, `no camera session '${id.slice(0, 100)}' (unknown, or ended a while ago)`);
    const after = Number(url.searchParams.get('after') ?? -1);
    if (frames) await this.frames(s, req);
    else if (method === 'DELETE') await this.end(s);
    this.touch(s);
    return jsonReply(200, this.update(s, Number.isInteger(after) ? after : -1));
  }

  /** POST /api/live: starts a camera session with the body's settings. */
  async start(req: LiveRequest): Promise<Reply> {
    const body = (await readBody(req, 4096)).toString('utf8').trim();
    let parsed: unknown;
    try {
      parsed = body ? JSON.parse(body) : {};
    } catch {
      throw new HttpError(400, 'the body must be JSON: {"window"?, "stride"?, "lookahead"?, "persons"?}');
    }
    const r = LiveStartSchema.safeParse(parsed);
    if (!r.success) throw new HttpError(400, `the session's settings: ${zodIssues(r.error)}`);
    if (this.o.sessions === 0)
      throw new HttpError(503, 'this server takes no camera sessions (its camera mode is off)');
    const addr = clientAddress(req.socket);
    const mine = [...this.sessions.values()].filter((s) => s.addr === addr && s.status === 'running').length;
    if (mine >= this.o.perClient)
      throw new HttpError(429, `this address already has ${mine} camera session(s): end one first`, {
        'Retry-After': String(Math.ceil(this.o.idleMs / 1000)),
      });
    if (this.running >= this.o.sessions)
      throw new HttpError(503, `every camera session is taken (${this.o.sessions}): retry later`, {
        'Retry-After': '10',
      });
    const s = this.spawn(addr, r.data);
    const ready = await this.ready(s);
    this.touch(s);
    return jsonReply(201, {
      id: s.id,
      fps: ready.fps,
      frames: ready.frames,
      maxFrameBytes: this.o.maxFrameBytes,
      maxBatch: this.o.maxBatch,
      maxSeconds: this.o.maxSeconds,
      idleSeconds: this.o.idleMs / 1000,
    });
  }

  private spawn(addr: string, start: LiveStart): Session {
    const module = this.o.workerModule ?? fileURLToPath(new URL('./live-worker.js', import.meta.url));
    const proc = fork(module, [], { serialization: 'advanced', stdio: ['ignore', 'ignore', 'pipe', 'ipc'] });
    proc.stderr!.on('data', (d: Buffer) => this.o.log(`serve live: ${String(d).trimEnd()}`));
    let done!: () => void;
    const s: Session = {
      id: crypto.randomUUID(),
      addr,
      proc,
      status: 'running',
      fps: 0,
      windows: [],
      frames: 0,
      dropped: 0,
      lastT: -Infinity,
      frameSize: null,
      ended: new Promise<void>((r) => (done = r)),
    };
    this.sessions.set(s.id, s);
    proc.on('message', (m: FromLive) => {
      if (m.type === 'window') s.windows.push({ seq: s.windows.length, ...m.window });
      else if (m.type === 'summary') (s.summary = m.summary), proc.disconnect();
      else if (m.type === 'fatal') s.error = m.userError ? m.error : 'the camera session failed';
    });
    proc.on('exit', () => {
      s.status = 'ended';
      clearTimeout(s.idle);
      done();
      setTimeout(() => this.sessions.delete(s.id), KEEP_ENDED_MS).unref();
    });
    const threads = Math.max(1, os.availableParallelism?.() ?? os.cpus().length);
    const { run, clip, device, precision, engine } = this.o;
    const settings: LiveSettings = { run, clip, device, precision, engine, threads, ...start };
    proc.send({ type: 'init', settings } satisfies ToLive);
    return s;
  }

  private ready(s: Session): Promise<{ fps: number; frames: number }> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => fail('the model did not load in time'), this.o.startMs);
      const fail = (why: string) => {
        clearTimeout(timer);
        s.proc.kill('SIGKILL');
        reject(new HttpError(503, `the camera session could not start: ${why}`, { 'Retry-After': '10' }));
      };
      s.proc.on('message', (m: FromLive) => {
        if (m.type === 'ready') {
          clearTimeout(timer);
          s.fps = m.fps;
          resolve(m);
        } else if (m.type === 'fatal') fail(m.userError ? m.error : 'the model failed to load');
      });
      s.proc.on('exit', () => fail('its process ended'));
    });
  }

  private async frames(s: Session, req: LiveRequest): Promise<void> {
    const body = await readBody(req, this.o.maxBatch * (this.o.maxFrameBytes + 12));
    const batch = parseFrames(body, this.o.maxFrameBytes, this.o.maxBatch);
    if (s.status !== 'running') return;
    for (const f of batch) {
      s.frames++;
      // twice the rate the session asked for at most; past the duration limit nothing more
      if (f.t < s.lastT + 0.5 / s.fps || f.t > this.o.maxSeconds) {
        s.dropped++;
        continue;
      }
      s.lastT = f.t;
      s.frameSize ??= decodedSize(jpegSize(f.jpeg));
      s.proc.send({ type: 'frame', t: f.t, jpeg: f.jpeg } satisfies ToLive);
    }
    if (s.lastT >= this.o.maxSeconds - 1e-9 || batch.some((f) => f.t > this.o.maxSeconds)) {
      s.error = `the session reached its limit of ${this.o.maxSeconds} s (--max-seconds)`;
      void this.end(s);
    }
  }

  /** Ends a session: the windows its frames complete, then the summary (a stuck process is killed). */
  private async end(s: Session): Promise<void> {
    if (s.proc.connected) s.proc.send({ type: 'end' } satisfies ToLive);
    const kill = setTimeout(() => s.proc.kill('SIGKILL'), 30_000);
    await s.ended;
    clearTimeout(kill);
  }

  /** A session no request touches for idleMs (its tab was closed) ends. */
  private touch(s: Session): void {
    clearTimeout(s.idle);
    if (s.status !== 'running') return;
    s.idle = setTimeout(() => {
      s.error ??= `no request for ${this.o.idleMs / 1000} s: the session ended`;
      void this.end(s);
    }, this.o.idleMs);
  }

  private update(s: Session, after: number): LiveUpdate {
    const { emotion, probabilities, share, noFaceWindows, noFaceAnswer, faceMissing, frames, dropped } =
      s.summary ?? ({} as StreamSummary);
    const summary = s.summary && {
      emotion,
      probabilities,
      share,
      noFaceWindows,
      noFaceAnswer,
      faceMissing,
      frames,
      dropped: dropped + s.dropped,
      duration: s.summary.duration,
      windowCount: s.summary.windowCount,
      latency: s.summary.latency,
      ...(s.summary.persons && {
        persons: s.summary.persons.map(({ id, main, emotion, probabilities, windowCount }) => {
          return { id, main, emotion, probabilities, windowCount };
        }),
      }),
    };
    const last = s.windows[s.windows.length - 1];
    return {
      id: s.id,
      status: s.status,
      windows: s.windows.filter((w) => w.seq > after),
      frames: s.frames,
      dropped: s.dropped + (last?.droppedTotal ?? 0),
      frameSize: s.frameSize,
      ...(summary ? { summary } : {}),
      ...(s.error ? { error: s.error } : {}),
    };
  }

  /** Ends every session (the server's shutdown). */
  async close(): Promise<void> {
    await Promise.all([...this.sessions.values()].map((s) => this.end(s)));
  }
}

/** The size a frame is decoded at (live-worker.ts: the longer side at most MAX_SIDE). */
function decodedSize(size: [number, number] | null): [number, number] | null {
  if (!size) return null;
  const k = Math.min(1, MAX_SIDE / Math.max(...size));
  return [Math.round(size[0] * k), Math.round(size[1] * k)];
}

/** A JPEG's [width, height] from its SOF marker (the pixels the boxes are in), null when not found. */
export function jpegSize(b: Buffer): [number, number] | null {
  for (let i = 2; i + 9 < b.length; ) {
    if (b[i] !== 0xff) return null;
    const marker = b[i + 1]!;
    if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc)
      return [b.readUInt16BE(i + 7), b.readUInt16BE(i + 5)];
    i += 2 + b.readUInt16BE(i + 2);
  }
  return null;
}
