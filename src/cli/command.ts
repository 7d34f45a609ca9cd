// The shape every `ous` subcommand's module exports. Each command lives in its own file under
// src/cli and is listed once, with its name and summary, in src/cli/commands.ts.
export interface Command {
  /** The full usage text printed by `ous NAME --help`. */
  usage: string;
  /** Runs with the arguments after the command name; resolves to the exit code. */
  run(argv: string[]): Promise<number>;
}
