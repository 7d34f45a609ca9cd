// Progress for long work: a one-line bar with rate and ETA on a terminal, plain lines otherwise
// (CI logs, pipes). Written to stderr so that `--json` output on stdout stays machine-readable.

export interface ProgressOptions {
  /** What is being counted, e.g. "clips". */
  unit?: string;
  /** Minimum milliseconds between two plain-text lines when not on a TTY. */
  plainEveryMs?: number;
  /** Where to write; stderr by default. Tests pass a sink. */
  stream?: NodeJS.WritableStream & { isTTY?: boolean };
  /** Print nothing at all (e.g. library use). */
  silent?: boolean;
}

// The stream whose last write was a bar without its newline (a terminal), if any.
let openLine: NodeJS.WritableStream | undefined;

/** Ends a progress bar left mid-line (an interrupted command), so what follows starts on its own line. */
export function endProgressLine(): void {
  openLine?.write('\n');
  openLine = undefined;
}

export class Progress {
  private done = 0;
  private readonly start = Date.now();
  private lastPrint = 0;
  private readonly stream: NodeJS.WritableStream & { isTTY?: boolean };
  private readonly unit: string;
  private readonly plainEveryMs: number;
  private readonly silent: boolean;

  constructor(
    private readonly label: string,
    private readonly total: number,
    opts: ProgressOptions = {},
  ) {
    this.stream = opts.stream ?? process.stderr;
    this.unit = opts.unit ?? 'items';
    this.plainEveryMs = opts.plainEveryMs ?? 5000;
    this.silent = opts.silent ?? false;
  }

  /** Advances by `n` and redraws; `note` is a short free text (e.g. the share of time per stage). */
  tick(n = 1, note = ''): void {
    this.done += n;
    this.render(note, false);
  }

  /** Prints the final line. */
  finish(note = ''): void {
    this.render(note, true);
  }

  /** Items done so far. */
  get count(): number {
    return this.done;
  }

  /** Items per second so far. */
  get rate(): number {
    const s = (Date.now() - this.start) / 1000;
    return s > 0 ? this.done / s : 0;
  }

  private render(note: string, final: boolean): void {
    if (this.silent) return;
    const now = Date.now();
    const tty = this.stream.isTTY === true;
    if (!final && !tty && now - this.lastPrint < this.plainEveryMs) return;
    if (!final && tty && now - this.lastPrint < 100) return;
    this.lastPrint = now;
    const rate = this.rate;
    const left = this.total - this.done;
    const eta = rate > 0 && left > 0 ? formatSeconds(left / rate) : final ? '0s' : '?';
    const pct = this.total > 0 ? Math.floor((100 * this.done) / this.total) : 100;
    const text =
      `${this.label} ${this.done}/${this.total} ${this.unit} ` +
      `(${pct}%) ${rate.toFixed(2)} ${this.unit}/s ETA ${eta}${note ? ' ' + note : ''}`;
    if (tty) {
      const width = 24;
      const filled = this.total > 0 ? Math.round((width * this.done) / this.total) : width;
      const bar = '#'.repeat(filled) + '.'.repeat(width - filled);
      this.stream.write(`\r[${bar}] ${text}\x1b[K${final ? '\n' : ''}`);
      openLine = final ? undefined : this.stream;
    } else {
      this.stream.write(text + '\n');
    }
  }
}

export function formatSeconds(s: number): string {
  if (!Number.isFinite(s)) return '?';
  if (s < 60) return `${s.toFixed(0)}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(Math.round(s % 60)).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}
