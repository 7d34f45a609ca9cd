// The shape every `ous` subcommand has. Each command lives in its own file under src/cli and is
// listed once in src/cli/commands.ts.
export interface Command {
  /** The word after `ous`, e.g. "demo" or "clip embed". */
  name: string;
  /** One line for `ous --help`. */
  summary: string;
  /** The full usage text printed by `ous NAME --help`. */
  usage: string;
  /** Runs with the arguments after the command name; resolves to the exit code. */
  run(argv: string[]): Promise<number>;
}
