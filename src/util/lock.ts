// A lock file held by a live process: `{pid, host, since}`, written whole under a temporary name
// and hard-linked into place, so it appears complete or not at all. A lock whose process has died
// (killed, out of memory, power lost) is detected by pid liveness on this host and taken over.
import * as fs from 'node:fs';
import * as os from 'node:os';
import { fsUserError } from './fs.js';
import { onInterrupt } from './interrupt.js';

export interface LockHolder {
  pid: number;
  host: string;
  since: string;
  file: string;
}

export const describeHolder = (l: LockHolder): string => `pid ${l.pid} on ${l.host} since ${l.since}`;

export function readLockFile(file: string): LockHolder | undefined {
  try {
    const j = JSON.parse(fs.readFileSync(file, 'utf8')) as Partial<LockHolder>;
    if (typeof j.pid !== 'number' || typeof j.host !== 'string') return undefined;
    return { pid: j.pid, host: j.host, since: String(j.since ?? '?'), file };
  } catch {
    return undefined; // gone, or being written this instant
  }
}

/** The lock's process is alive; one on another host cannot be checked and counts as alive. */
export function holderAlive(l: LockHolder): boolean {
  if (l.host !== os.hostname()) return true;
  if (l.pid === process.pid) return true;
  try {
    process.kill(l.pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Takes `file` for this process. Returns the release function, or the live holder when another
 * process has it. A dead holder's lock is removed (`onStale` is told) and taken.
 */
export function tryLock(
  file: string,
  onStale?: (dead: LockHolder) => void,
): { release: () => void } | { holder: LockHolder | undefined } {
  const me = JSON.stringify({ pid: process.pid, host: os.hostname(), since: new Date().toISOString() });
  for (let attempt = 0; attempt < 3; attempt++) {
    const tmp = `${file}.tmp-${process.pid}`;
    try {
      fs.writeFileSync(tmp, me);
      fs.linkSync(tmp, file);
      // Released when the command is interrupted too (after the hooks that keep its finished work).
      const release = () => {
        unhook();
        if (readLockFile(file)?.pid === process.pid) fs.rmSync(file, { force: true });
      };
      const unhook = onInterrupt(() => void release());
      return { release };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw fsUserError(err, file, 'cannot take the lock');
    } finally {
      fs.rmSync(tmp, { force: true });
    }
    const holder = readLockFile(file);
    if (holder && holderAlive(holder)) return { holder };
    if (!holder) {
      // Unreadable: being written this instant, or left empty by a crash. Only an old one is stale.
      const age = (() => {
        try {
          return Date.now() - fs.statSync(file).mtimeMs;
        } catch {
          return Infinity;
        }
      })();
      if (age < 5000) return { holder: undefined };
    } else onStale?.(holder);
    fs.rmSync(file, { force: true });
  }
  return { holder: readLockFile(file) };
}
