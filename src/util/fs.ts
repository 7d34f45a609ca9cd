// File helpers shared by every layer: atomic writes, so that nothing half-written is ever left
// under a final name (an interrupted run leaves at most a `*.tmp-<pid>` file behind).
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { z } from 'zod';
import { UserError } from './errors.js';

/** Writes `data` to `file` through a temporary name in the same folder, then renames it. */
export function writeFileAtomic(file: string, data: string | Uint8Array): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.tmp-${process.pid}`;
  try {
    fs.writeFileSync(tmp, data);
    fs.renameSync(tmp, file);
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    throw err;
  }
}

/** Streams chunks into `file` through a temporary name, then renames it; for outputs too big for one buffer. */
export function writeChunksAtomic(file: string, chunks: Iterable<Uint8Array>): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.tmp-${process.pid}`;
  const fd = fs.openSync(tmp, 'w');
  try {
    for (const chunk of chunks) {
      let off = 0;
      while (off < chunk.length) off += fs.writeSync(fd, chunk, off, chunk.length - off);
    }
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fs.renameSync(tmp, file);
  } catch (err) {
    try { fs.closeSync(fd); } catch { /* already closed */ }
    fs.rmSync(tmp, { force: true });
    throw err;
  }
}

/** Reads and parses a JSON file, with an error that names the file. */
export function readJson<T = unknown>(file: string): T {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new UserError(`cannot read ${file}: ${e.code === 'ENOENT' ? 'no such file' : e.code === 'EISDIR' ? 'it is a folder, not a JSON file' : e.message}`);
  }
  try {
    return JSON.parse(text) as T;
  } catch (err) {
    throw new UserError(`${file} is not valid JSON: ${(err as Error).message}`);
  }
}

/** `issues` of a zod error as one line: "path: message; path: message". */
export function zodIssues(error: z.ZodError): string {
  return error.issues.map((i) => `${i.path.join('.') || '(top level)'}: ${i.message}`).join('; ');
}

/**
 * Reads a JSON file and validates it with its schema (never a cast): a file written by a newer
 * version (`version` above `maxVersion`) or of the wrong shape is one error that names the file.
 */
export function readJsonAs<S extends z.ZodTypeAny>(file: string, schema: S, what: string, maxVersion?: number): z.infer<S> {
  const json = readJson<unknown>(file);
  if (maxVersion !== undefined && json && typeof json === 'object' && 'version' in json) {
    const v = (json as { version: unknown }).version;
    if (typeof v !== 'number' || v > maxVersion) throw new UserError(`${file}: ${what} version ${JSON.stringify(v)} is not one this OUS-TS reads (up to ${maxVersion}); was it made by a newer version?`);
  }
  const r = schema.safeParse(json);
  if (!r.success) throw new UserError(`${file} is not a valid ${what}: ${zodIssues(r.error)}`);
  return r.data;
}

// Temporary files written by child processes (ffmpeg) outlive a synchronous try/finally: they are
// registered here and removed when the process exits, however it exits (the CLI calls
// removeTempFiles from its signal and broken-pipe handlers too).
const tempFiles = new Map<string, { kill(signal: NodeJS.Signals): boolean } | undefined>();
let exitHook = false;

/** Marks `file` (written by `writer`, killed first) for removal if the process ends before `untrackTempFile(file)`. */
export function trackTempFile(file: string, writer?: { kill(signal: NodeJS.Signals): boolean }): void {
  if (!exitHook) process.once('exit', removeTempFiles);
  exitHook = true;
  tempFiles.set(file, writer);
}

export function untrackTempFile(file: string): void {
  tempFiles.delete(file);
}

/** Stops the writers and removes every registered temporary file (synchronously: safe in an 'exit' handler). */
export function removeTempFiles(): void {
  for (const writer of tempFiles.values()) writer?.kill('SIGKILL');
  for (const f of tempFiles.keys()) fs.rmSync(f, { force: true });
  tempFiles.clear();
}
