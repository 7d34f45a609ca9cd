// Errors a user can cause (a missing file, a bad config, a video that does not decode). The command
// line prints their message alone and exits non-zero; any other error is a bug and shows its stack.
export class UserError extends Error {
  /** The process exit code: 1 = could not run (a file, a config, the data); 2 = usage (a flag or its value). */
  readonly exitCode: number = 1;

  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'UserError';
  }
}

/** A bad command line: a missing or unknown flag, a flag value of the wrong kind. Exit code 2. */
export class UsageError extends UserError {
  override readonly exitCode: number = 2;

  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'UsageError';
  }
}
