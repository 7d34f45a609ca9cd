// What a command does when it is interrupted (Ctrl-C, SIGTERM, SIGHUP): finished work is kept and
// said, a stream cut short is marked as incomplete, held locks are released. A hook runs
// synchronously in the signal handler (between two of the command's own steps: JavaScript runs one
// thing at a time) and may return a line for the user.

type Hook = (signal: NodeJS.Signals) => string | undefined;
const hooks: Hook[] = [];

/** Runs `hook` if the process is interrupted before the returned function removes it. */
export function onInterrupt(hook: Hook): () => void {
  hooks.push(hook);
  return () => {
    const i = hooks.indexOf(hook);
    if (i >= 0) hooks.splice(i, 1);
  };
}

/** Runs every hook (the latest first) and returns their lines; a hook that throws says why in its place. */
export function runInterruptHooks(signal: NodeJS.Signals): string[] {
  const lines: string[] = [];
  for (const hook of hooks.splice(0).reverse()) {
    try {
      const line = hook(signal);
      if (line) lines.push(line);
    } catch (err) {
      lines.push(`could not keep everything: ${(err as Error).message}`);
    }
  }
  return lines;
}
