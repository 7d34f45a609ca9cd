// File helpers shared by every layer: atomic writes, so that nothing half-written is ever left
// under a final name (an interrupted run leaves at most a `*.tmp-<pid>` file behind).
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { z } from 'zod';
import { UserError } from './errors.js';

// What a failed file-system call means, in words. The codes a user can cause (a full disk, a
// read-only mount, permissions, a symlink loop) are said as such, never as a stack or "internal error".
const FS_CAUSES: Record<string, string> = {
  ENOSPC: 'no space left on the device',
  EDQUOT: 'the disk quota is exceeded',
  EFBIG: 'the file is too large for its file system',
  EROFS: 'the file system is read-only',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  ELOOP: 'a loop of symbolic links',
  ENOENT: 'no such file or folder',
  ENOTDIR: 'a part of the path is a file, not a folder',
  EISDIR: 'it is a folder, not a file',
  EEXIST: 'it already exists',
  ENAMETOOLONG: 'the name is too long',
  EMFILE: 'too many open files',
  ENFILE: 'too many open files',
  EIO: 'an input/output error (a failing disk or a lost network mount?)',
  EXDEV: 'it is on another file system',
  ENXIO: 'no such device (a FIFO or socket with no one at the other end?)',
  EBUSY: 'the file or device is busy',
};

/** A Node file-system error (one with an errno code this module can say in words). */
export function isFsError(err: unknown): err is NodeJS.ErrnoException {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return typeof code === 'string' && code in FS_CAUSES && typeof (err as NodeJS.ErrnoException).syscall === 'string';
}

/** "PATH: CAUSE" for a file-system error: the path the call was about (else `file`), and the cause in words. */
export function fsErrorLine(err: NodeJS.ErrnoException, file?: string): string {
  const where = err.path ?? file;
  const cause = FS_CAUSES[err.code ?? ''] ?? err.message;
  return where ? `${where}: ${cause}` : `${cause} (${err.syscall ?? 'a file operation'})`;
}

/** The error to throw for a failed file operation on `file`: a UserError naming the path and the real cause. */
export function fsUserError(err: unknown, file: string, doing?: string): unknown {
  if (!isFsError(err)) return err;
  // A write's error has no path (it is on a file descriptor); the temporary name is ours, not the user's.
  const e = {
    ...err,
    code: err.code,
    syscall: err.syscall,
    message: err.message,
    path: err.path && !err.path.includes('.tmp-') ? err.path : file,
  };
  return new UserError(`${doing ? `${doing} ` : ''}${fsErrorLine(e)}`, { cause: err });
}

/**
 * Creates `dir` (and its parents). mkdir -p under a read-only or unwritable parent can fail with
 * ENOENT, the wrong cause: the nearest existing parent is then asked why it cannot be written.
 */
export function ensureDir(dir: string): void {
  try {
    fs.mkdirSync(dir, { recursive: true });
  } catch (err) {
    if (!isFsError(err)) throw err;
    let parent = path.resolve(dir);
    while (path.dirname(parent) !== parent && !fs.existsSync(parent)) parent = path.dirname(parent);
    if (err.code === 'ENOENT' || err.code === 'EACCES' || err.code === 'EROFS') {
      try {
        fs.accessSync(parent, fs.constants.W_OK);
      } catch (why) {
        if (isFsError(why)) throw new UserError(`cannot create ${dir}: ${fsErrorLine(why, parent)}`, { cause: err });
      }
    }
    throw new UserError(`cannot create ${dir}: ${fsErrorLine(err, dir)}`, { cause: err });
  }
}

/**
 * What is at `file`, without following into errors: 'missing', 'file' (regular), 'folder', or
 * `other` naming what it is (a FIFO, a socket, a device). A path that cannot be looked at (a
 * symlink loop, a folder without permission) is a UserError naming the path and the real cause:
 * fs.existsSync says `false` for those, and "missing" would be the wrong reason.
 */
export function pathKind(file: string): 'missing' | 'file' | 'folder' | { other: string } {
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return 'missing';
    throw fsUserError(err, file, 'cannot read');
  }
  if (st.isFile()) return 'file';
  if (st.isDirectory()) return 'folder';
  return {
    other: st.isFIFO()
      ? 'a FIFO (named pipe)'
      : st.isSocket()
        ? 'a socket'
        : st.isCharacterDevice() || st.isBlockDevice()
          ? 'a device'
          : 'not a regular file',
  };
}

/**
 * A video or image given to read: throws a UserError with the real reason when it is not a regular
 * file with bytes in it (a symlink loop is a loop, not "no such file"; /dev/zero or a FIFO is a
 * device or a FIFO, not "empty"). Returns the path as ffmpeg must get it: one that starts with '-'
 * (`ous predict -- -dash.mp4`) gets './' before it, or ffmpeg would read it as an option.
 */
export function inputFile(file: string, o: { folder?: boolean } = {}): string {
  const kind = pathKind(file); // ELOOP and EACCES come out of it as their own reasons
  if (kind === 'missing') throw new UserError(`${file}: no such file`);
  if (kind === 'folder' && o.folder) return file.startsWith('-') ? `./${file}` : file; // a folder of frames
  if (kind === 'folder') throw new UserError(`${file}: is a folder, not a video or image file`);
  if (kind !== 'file') throw new UserError(`${file}: it is ${kind.other}, not a video or image file`);
  if (fs.statSync(file).size === 0) throw new UserError(`${file}: the file is empty`);
  return file.startsWith('-') ? `./${file}` : file;
}

/**
 * Throws unless `file` is a regular file: `what` names it in
 * the message ("run config"). Returns false when missing.
 */
export function isRegularFile(file: string, what = 'file'): boolean {
  const k = pathKind(file);
  if (k === 'missing') return false;
  if (k === 'file') return true;
  if (k === 'folder') throw new UserError(`${file} is a folder, not a ${what}`);
  throw new UserError(`${file} is ${k.other}, not a regular file (${what})`);
}

/** Writes `data` to `file` through a temporary name in the same folder, then renames it. */
export function writeFileAtomic(file: string, data: string | Uint8Array): void {
  ensureDir(path.dirname(file));
  const tmp = `${file}.tmp-${process.pid}`;
  try {
    fs.writeFileSync(tmp, data);
    fs.renameSync(tmp, file);
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    throw fsUserError(err, file, 'cannot write');
  }
}

/** Streams chunks into `file` through a temporary name, then renames it; for outputs too big for one buffer. */
export function writeChunksAtomic(file: string, chunks: Iterable<Uint8Array>): void {
  ensureDir(path.dirname(file));
  const tmp = `${file}.tmp-${process.pid}`;
  let fd: number;
  try {
    fd = fs.openSync(tmp, 'w');
  } catch (err) {
    throw fsUserError(err, file, 'cannot write');
  }
  try {
    for (const chunk of chunks) {
      let off = 0;
      while (off < chunk.length) off += fs.writeSync(fd, chunk, off, chunk.length - off);
    }
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fs.renameSync(tmp, file);
  } catch (err) {
    try {
      fs.closeSync(fd);
    } catch {
      /* already closed */
    }
    fs.rmSync(tmp, { force: true });
    throw fsUserError(err, file, 'cannot write');
  }
}

/** Reads and parses a JSON file, with an error that names the file. */
export function readJson<T = unknown>(file: string): T {
  let text: string;
  // A FIFO would block (or read as empty), a folder is not JSON: said before reading.
  const kind = pathKind(file);
  if (kind === 'missing') throw new UserError(`cannot read ${file}: no such file`);
  if (kind === 'folder') throw new UserError(`cannot read ${file}: it is a folder, not a JSON file`);
  if (kind !== 'file') throw new UserError(`cannot read ${file}: it is ${kind.other}, not a regular file`);
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw fsUserError(err, file, 'cannot read');
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
export function readJsonAs<S extends z.ZodTypeAny>(
  file: string,
  schema: S,
  what: string,
  maxVersion?: number,
): z.infer<S> {
  const json = readJson<unknown>(file);
  if (maxVersion !== undefined && json && typeof json === 'object' && 'version' in json) {
    const v = (json as { version: unknown }).version;
    if (typeof v !== 'number' || v > maxVersion)
      throw new UserError(
        `${file}: ${what} version ${JSON.stringify(v)} is not one this OUS-TS reads ` +
          `(up to ${maxVersion}); was it made by a newer version?`,
      );
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
