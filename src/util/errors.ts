// Errors a user can cause (a missing file, a bad config, a video that does not decode). The command
// line prints their message alone and exits non-zero; any other error is a bug and shows its stack.
export class UserError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'UserError';
  }
}
