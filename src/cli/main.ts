#!/usr/bin/env node
// The `ous` command line: finds the subcommand (one or two words) and runs it. A user error prints
// one line and exits 1 (2 for usage: a flag or its value); anything else is a bug and prints its
// stack. OUS_DEBUG=1 prints the stack of user errors too. Our other environment variables: env.ts.
// Nothing heavy is imported here: a command's module (and libtorch, when it uses tensors) loads only
// when that command runs or shows its usage.
import { commands } from './commands.js';
import { UserError } from '../util/errors.js';
import { fsErrorLine, isFsError, removeTempFiles } from '../util/fs.js';
import { runInterruptHooks } from '../util/interrupt.js';
import { endProgressLine } from '../util/progress.js';
import { numThreads } from './env.js';
import { setNumThreads } from '../torch/index.js';

function help(): string {
  const width = Math.max(...commands.map((c) => c.name.length));
  return (
    [
      'usage: ous <command> [options]',
      '',
      'commands:',
      ...commands.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
      '',
      'ous <command> --help shows its options.',
    ].join('\n') + '\n'
  );
}

/**
 * `--box -10 ...` or `--seed -1`: node's parseArgs refuses a value that starts with '-' after a
 * string flag; a value that reads as a number is joined as `--flag=value`, so that it reaches the
 * command's own check.
 */
function joinNegativeValues(args: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    const next = args[i + 1];
    if (/^--[^=]+$/.test(a) && next !== undefined && /^-[\d.]/.test(next)) {
      out.push(`${a}=${next}`);
      i++;
    } else out.push(a);
  }
  return out;
}

/** node:util parseArgs's errors (an unknown flag, a missing value) as one usage line. */
function parseArgsMessage(cmd: string, err: NodeJS.ErrnoException): string | undefined {
  if (!err.code?.startsWith('ERR_PARSE_ARGS_')) return undefined;
  const quoted = /'([^']+)'/.exec(err.message)?.[1];
  const see = `(see ous ${cmd} --help)`;
  if (err.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') return `ous ${cmd}: unknown option '${quoted}' ${see}`;
  if (err.code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL') return `ous ${cmd}: unexpected argument '${quoted}' ${see}`;
  // ERR_PARSE_ARGS_INVALID_OPTION_VALUE: "Option '--out <value>' argument missing",
  // "Option '--json' does not take an argument".
  return `ous ${cmd}: ${err.message
    .split('\n')[0]!
    .replace(/^Option /, 'option ')
    .replace(/\.$/, '')} ${see}`;
}

let running = '';

async function main(argv: string[]): Promise<number> {
  const threads = numThreads(); // OUS_NUM_THREADS, checked (one line when bad) before anything else
  if (argv.length === 0 || argv[0] === '--help' || argv[0] === '-h') {
    process.stdout.write(help());
    return argv.length === 0 ? 2 : 0;
  }
  // Longest match first, so "clip embed" wins over a hypothetical "clip".
  const sorted = [...commands].sort((a, b) => b.name.split(' ').length - a.name.split(' ').length);
  for (const cmd of sorted) {
    const words = cmd.name.split(' ');
    if (words.every((w, i) => argv[i] === w)) {
      const rest = argv.slice(words.length);
      const command = await cmd.load();
      if (rest.includes('--help') || rest.includes('-h')) {
        process.stdout.write(`usage: ${command.usage}\n\n${cmd.summary}\n`);
        return 0;
      }
      running = cmd.name;
      if (threads !== undefined) setNumThreads(threads); // loads libtorch
      return command.run(joinNegativeValues(rest));
    }
  }
  // A group word alone ("ous clip", "ous clip --help"): its subcommands.
  const group = commands.filter((c) => c.name.split(' ').length > 1 && c.name.split(' ')[0] === argv[0]);
  if (group.length) {
    const asked = argv.length === 1 || argv[1] === '--help' || argv[1] === '-h';
    if (asked && argv.length > 1) {
      const usages = await Promise.all(group.map(async (c) => (await c.load()).usage));
      process.stdout.write(
        `usage: ${usages.join('\n       ')}\n\n${group.map((c) => `${c.name}: ${c.summary}`).join('\n')}\n`,
      );
      return 0;
    }
    process.stderr.write(
      asked
        ? `ous ${argv[0]}: give a subcommand (${group.map((c) => c.name).join(', ')})\n`
        : `ous ${argv[0]}: unknown subcommand '${argv[1]}' ` +
            `(${group.map((c) => c.name).join(', ')}; see ous ${argv[0]} --help)\n`,
    );
    return 2;
  }
  process.stderr.write(`ous: unknown command '${argv[0]}' (see ous --help)\n`);
  return 2;
}

/** Keeps the finished work (the commands' hooks), releases locks, and says so on one line. */
function sayInterrupted(signal: NodeJS.Signals): void {
  endProgressLine();
  const kept = runInterruptHooks(signal);
  process.stderr.write(`ous: interrupted (${signal})${kept.length ? `: ${kept.join('; ')}` : ''}\n`);
}

// A closed stdout (`ous demo | head`): stop quietly, leaving no temporary files behind. Node
// ignores SIGPIPE, so the broken pipe arrives as an EPIPE error on the stream.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code !== 'EPIPE') throw err;
  removeTempFiles();
  process.exit(0);
});
for (const [signal, n] of [
  ['SIGINT', 2],
  ['SIGTERM', 15],
  ['SIGHUP', 1],
] as const) {
  process.once(signal, () => {
    // A command that shuts down on its own (ous serve finishes its jobs and exits 0) listens too.
    if (process.listenerCount(signal) > 0) return;
    sayInterrupted(signal);
    removeTempFiles();
    process.exit(128 + n);
  });
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    const debug = process.env.OUS_DEBUG === '1';
    const usage = running ? parseArgsMessage(running, err as NodeJS.ErrnoException) : undefined;
    if (usage) {
      process.stderr.write(usage + '\n' + (debug ? `${(err as Error).stack}\n` : ''));
      process.exitCode = 2;
    } else if (err instanceof UserError) {
      process.stderr.write(`ous: ${err.message}\n` + (debug ? `${err.stack}\n` : ''));
      process.exitCode = err.exitCode;
    } else if (isFsError(err)) {
      // A full disk, a read-only folder, a permission, a symlink loop: the user's to fix, so one
      // line naming the path and the real cause (code paths that know better throw a UserError).
      process.stderr.write(`ous: ${fsErrorLine(err)}\n` + (debug ? `${err.stack}\n` : ''));
      process.exitCode = 1;
    } else {
      process.stderr.write(`ous: internal error: ${(err as Error)?.stack ?? String(err)}\n`);
      process.exitCode = 1;
    }
  },
);
