#!/usr/bin/env node
// The `ous` command line: finds the subcommand (one or two words) and runs it. User errors print
// their message and exit 1; anything else is a bug and prints its stack.
import { commands } from './commands.js';
import { UserError } from '../util/errors.js';

function help(): string {
  const width = Math.max(...commands.map((c) => c.name.length));
  return ['usage: ous <command> [options]', '', 'commands:', ...commands.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`), '', 'ous <command> --help shows its options.'].join('\n') + '\n';
}

async function main(argv: string[]): Promise<number> {
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
      if (rest.includes('--help') || rest.includes('-h')) {
        process.stdout.write(`usage: ${cmd.usage}\n\n${cmd.summary}\n`);
        return 0;
      }
      return cmd.run(rest);
    }
  }
  process.stderr.write(`ous: unknown command '${argv.join(' ')}'\n\n${help()}`);
  return 2;
}

main(process.argv.slice(2)).then(
  (code) => { process.exitCode = code; },
  (err: unknown) => {
    if (err instanceof UserError) process.stderr.write(`ous: ${err.message}\n`);
    else process.stderr.write(`ous: internal error: ${(err as Error)?.stack ?? String(err)}\n`);
    process.exitCode = 1;
  },
);
