// The job queue and the worker pool of `ous serve`: jobs wait in order, each worker process holds
// the model once and predicts one job at a time; a worker that dies fails its job and is replaced.
// Admission counts uploads still arriving as well as queued jobs, so a flood is refused before its
// bodies are read. Shutdown fails what has not started and gives running jobs a grace period.
import { fork, type ChildProcess } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import { fileURLToPath } from 'node:url';
import { UserError } from '../util/errors.js';
import type { Prediction, Stage, WindowPrediction } from '../predict/predictor.js';
import type { Box } from '../face/detector.js';
import type { z } from 'zod';
import type { JobSchema } from './contract.js';
import type { FromWorker, ModelInfo, ToWorker, WorkerSettings } from './protocol.js';
import { apiWords, withoutAddresses } from './messages.js';

export type Status = 'queued' | 'running' | 'done' | 'failed';

export interface Job {
  id: string;
  status: Status;
  stage?: Stage;
  progress: number; // 0..1 within the stage
  // classified so far, in order (each person's, with ?persons=all)
  windows: Array<WindowPrediction & { person?: number }>;
  windowsTotal?: number;
  personTotals?: Map<number | undefined, number>; // each person's windows, as their first window says
  dir?: string; // its upload folder, deleted when it ends
  file: string;
  name: string; // what the result calls the video: the upload's file name or the sample's, never a server path
  duration?: number; // seconds, from the upload's probe (the page's timeline axis while the job runs)
  window?: number;
  stride?: number;
  faceBox?: Box;
  persons?: 'all' | number; // every person (?persons=all) or one (?person=ID)
  result?: Prediction;
  error?: string;
  created: number;
  started?: number;
  finished?: number;
}

/** A job as GET /api/jobs/{id} answers it (contract.ts JobSchema). */
export type JobView = z.infer<typeof JobSchema>;

export interface PoolOptions extends Omit<WorkerSettings, 'threads'> {
  workers: number;
  queue: number; // jobs that may wait beyond the running ones
  keepJobsMs?: number; // how long a finished job's result stays readable (1 hour)
  workerModule?: string; // the worker's script (tests give a stand-in)
  log: (line: string) => void;
}

interface Worker {
  proc: ChildProcess;
  ready: boolean;
  served: boolean; // was ready once
  job?: Job;
}

// Finished jobs are remembered for GET /api/jobs/{id} for this long after they end, whatever other
// clients send meanwhile (a count would let any client push out others' results). The queue bounds
// how fast jobs finish, so this bounds the memory too (a long video's result is ~1 KB a window).
export const KEEP_JOBS_MS = 3_600_000;

export class JobPool {
  readonly jobs = new Map<string, Job>();
  private readonly queue: Job[] = [];
  private readonly workers: Worker[] = [];
  private reserved = 0; // uploads admitted and still arriving or being probed
  private closing = false;
  private durations: number[] = []; // seconds of recent jobs, for Retry-After
  model?: ModelInfo;
  private readonly idle = new Set<() => void>();

  private constructor(private readonly o: PoolOptions) {}

  /** Starts the workers; resolves once one has loaded the model (rejects if none can). */
  static async start(o: PoolOptions): Promise<JobPool> {
    const pool = new JobPool(o);
    let firstReady!: () => void;
    let fatal!: (e: Error) => void;
    const ready = new Promise<void>((res, rej) => ((firstReady = res), (fatal = rej)));
    for (let i = 0; i < o.workers; i++) pool.spawn(i, firstReady, fatal);
    try {
      await ready;
    } catch (err) {
      await pool.kill();
      throw err;
    }
    return pool;
  }

  get shuttingDown(): boolean {
    return this.closing;
  }

  /** A place for one more upload, or the reason there is none (the caller answers 503). */
  admit(): { release: () => void } | undefined {
    const idleWorkers = this.workers.filter((w) => w.ready && !w.job).length;
    if (this.closing || this.queue.length + this.reserved >= this.o.queue + idleWorkers) return undefined;
    this.reserved++;
    let released = false;
    return { release: () => void (released || ((released = true), this.reserved--)) };
  }

  /**
   * Cancels a job its client no longer wants (the page's "cancel" after a reload): a queued one leaves
   * the queue; a running one's worker is stopped (and replaced), so it does not stay busy. False when
   * the job has already ended.
   */
  cancel(job: Job): boolean {
    if (job.status !== 'queued' && job.status !== 'running') return false;
    const i = this.queue.indexOf(job);
    if (i >= 0) this.queue.splice(i, 1);
    const w = this.workers.find((x) => x.job === job);
    this.finish(job, { status: 'failed', error: 'cancelled by its client' });
    if (w) {
      w.job = undefined;
      w.ready = false; // until its replacement has loaded the model
      w.proc.kill('SIGKILL');
    }
    return true;
  }

  /** Forgets jobs that ended more than keepJobsMs ago. */
  sweep(now = Date.now()): void {
    const keep = this.o.keepJobsMs ?? KEEP_JOBS_MS;
    for (const [id, j] of this.jobs) if (j.finished !== undefined && now - j.finished > keep) this.jobs.delete(id);
  }

  /** Queues a job (its admission released by the caller after this). */
  submit(j: Pick<Job, 'file' | 'name' | 'dir' | 'duration' | 'window' | 'stride' | 'faceBox' | 'persons'>): Job {
    const job: Job = { ...j, id: crypto.randomUUID(), status: 'queued', progress: 0, windows: [], created: Date.now() };
    this.jobs.set(job.id, job);
    this.queue.push(job);
    this.dispatch();
    return job;
  }

  view(job: Job): JobView {
    return {
      id: job.id,
      status: job.status,
      position: job.status === 'queued' ? this.queue.indexOf(job) + 1 : 0,
      stage: job.stage ?? null,
      progress: job.progress,
      duration: job.duration ?? null,
      windows: job.windows,
      windowsTotal: job.windowsTotal ?? null,
      ...(job.status === 'done' ? { result: job.result } : {}),
      ...(job.status === 'failed' ? { error: job.error } : {}),
    };
  }

  health(): { workers: number; busy: number; queued: number; uploading: number; queue: number } {
    return {
      workers: this.workers.filter((w) => w.ready).length,
      busy: this.workers.filter((w) => w.job).length,
      queued: this.queue.length,
      uploading: this.reserved,
      queue: this.o.queue,
    };
  }

  /** Seconds until a place is likely free: recent jobs' mean time × the jobs ahead / workers. */
  retryAfter(): string {
    const mean = this.durations.length ? this.durations.reduce((a, b) => a + b, 0) / this.durations.length : 10;
    return String(Math.max(1, Math.ceil((mean * (this.queue.length + this.reserved + 1)) / this.o.workers)));
  }

  workerPids(): number[] {
    return this.workers.map((w) => w.proc.pid!);
  }

  /**
   * Stops taking jobs: queued ones fail now (the reason says to send them again), running ones get
   * `graceMs` to finish, then fail and their workers are stopped. Resolves when no job runs.
   */
  async drain(graceMs: number): Promise<void> {
    this.closing = true;
    for (const job of this.queue.splice(0))
      this.finish(job, {
        status: 'failed',
        error: 'the server is shutting down and did not start this job: send it again later',
      });
    if (this.workers.some((w) => w.job)) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => (this.idle.delete(done), resolve()), graceMs);
        const done = () => {
          if (this.workers.some((w) => w.job)) return;
          clearTimeout(timer);
          this.idle.delete(done);
          resolve();
        };
        this.idle.add(done);
      });
    }
    for (const w of this.workers) {
      if (!w.job) continue;
      this.finish(w.job, {
        status: 'failed',
        error:
          `the server shut down before this job finished (it waited ${graceMs / 1000} s, ` +
          '--grace-seconds): send it again later',
      });
      w.job = undefined;
    }
  }

  /** Stops every worker (a job still running fails) and deletes the remaining upload folders. */
  async kill(): Promise<void> {
    this.closing = true;
    await Promise.all(
      this.workers.map(
        (w) =>
          new Promise<void>((resolve) => {
            if (w.proc.exitCode !== null || w.proc.signalCode !== null) return resolve();
            w.proc.once('exit', () => resolve());
            w.proc.kill('SIGTERM');
          }),
      ),
    );
    for (const job of this.queue.splice(0)) this.finish(job, { status: 'failed', error: 'the server shut down' });
  }

  private finish(job: Job, patch: Partial<Job>): void {
    Object.assign(job, patch, { finished: Date.now() });
    if (job.started && job.status === 'done') this.durations.push((job.finished! - job.started) / 1000);
    if (this.durations.length > 20) this.durations.shift();
    if (job.dir) fs.rmSync(job.dir, { recursive: true, force: true });
    job.dir = undefined;
    this.sweep();
  }

  private dispatch(): void {
    for (const w of this.workers) {
      if (this.closing || !w.ready || w.job || !this.queue.length) continue;
      const job = this.queue.shift()!;
      w.job = job;
      Object.assign(job, { status: 'running', started: Date.now(), stage: 'decode', progress: 0 });
      const m: ToWorker = {
        type: 'job',
        id: job.id,
        file: job.file,
        window: job.window,
        stride: job.stride,
        faceBox: job.faceBox,
        persons: job.persons,
      };
      w.proc.send(m);
    }
    if (!this.workers.some((w) => w.job)) for (const f of [...this.idle]) f();
  }

  private spawn(slot: number, firstReady: () => void, fatal: (e: Error) => void): void {
    const o = this.o;
    const module = o.workerModule ?? fileURLToPath(new URL('./worker.js', import.meta.url));
    const proc = fork(module, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    // Inference yields the CPU to the HTTP loop: the workers run at a lower priority (nice 10), so
    // /api/health and uploads are answered at once even when the workers use every core.
    try {
      os.setPriority(proc.pid!, 10);
    } catch {
      // not allowed here: they run at the server's priority
    }
    const settings: WorkerSettings = {
      run: o.run,
      clip: o.clip,
      device: o.device,
      precision: o.precision,
      maxSeconds: o.maxSeconds,
      engine: o.engine,
      threads: Math.max(1, Math.floor(os.availableParallelism() / o.workers)),
    };
    proc.send({ type: 'init', settings } satisfies ToWorker);
    const w: Worker = { proc, ready: false, served: false };
    this.workers[slot] = w;
    proc.on('message', (m: FromWorker) => {
      if (m.type === 'ready') {
        w.ready = w.served = true;
        this.model = m.model;
        firstReady();
        this.dispatch();
      } else if (m.type === 'fatal') {
        if (this.model) o.log(`serve: a worker cannot load the model: ${m.error}`);
        else fatal(m.userError ? new UserError(m.error) : new Error(m.error));
      } else if (w.job && m.id === w.job.id) {
        const job = w.job;
        if (m.type === 'progress') {
          Object.assign(job, { stage: m.stage, progress: m.fraction });
          if (m.total !== undefined) job.windowsTotal = m.total;
        } else if (m.type === 'window') windowArrived(job, m);
        else {
          w.job = undefined;
          if (m.type === 'done')
            this.finish(job, {
              status: 'done',
              result: { ...m.result, video: job.name },
              progress: 1,
              windowsTotal: job.windows.length || m.result.windows.length,
            });
          else this.finish(job, { status: 'failed', error: publicError(m.error, job) });
          this.dispatch();
        }
      }
    });
    proc.on('error', () => {}); // a send to a worker that just died: its exit handler does the rest
    proc.on('exit', (code, signal) => {
      const why = signal ?? `exit code ${code}`;
      if (w.job)
        this.finish(w.job, { status: 'failed', error: `the worker stopped (${why}) while predicting this video` });
      w.job = undefined;
      const wasReady = w.ready;
      w.ready = false;
      this.dispatch();
      if (this.closing) return;
      if (!this.model) return fatal(new Error(`a worker stopped before the model loaded (${why})`));
      o.log(`serve: worker ${proc.pid} stopped (${why}); starting another`);
      // One that never got ready (the model stopped loading) is retried slowly, not in a tight loop.
      if (wasReady || w.served) this.spawn(slot, firstReady, fatal);
      else setTimeout(() => this.closing || this.spawn(slot, firstReady, fatal), 5000).unref();
    });
  }
}

/**
 * A streamed window: kept in order; the total is every person's windows (with ?persons=all each
 * person's first window says how many they have, until the classify stage counts them all).
 */
function windowArrived(job: Job, m: Extract<FromWorker, { type: 'window' }>): void {
  job.windows.push(m.person === undefined ? m.window : { ...m.window, person: m.person });
  job.personTotals ??= new Map();
  job.personTotals.set(m.person, m.total);
  const known = [...job.personTotals.values()].reduce((a, b) => a + b, 0);
  job.windowsTotal = Math.max(job.windowsTotal ?? 0, known);
}

/** A job's failure as its client reads it: the upload's name for the server's path, the API's words. */
function publicError(error: string, job: Job): string {
  return apiWords(withoutAddresses(error.split(job.file).join(job.name)));
}
