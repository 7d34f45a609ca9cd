// What a client of `ous serve` reads in an error: the API's words, not the command line's, and
// nothing about the server's memory. The predictor's messages name `ous predict`'s flags
// (`--window 0.001: ... use --window 0.67 or more`); over HTTP the same choices are query parameters.

/** `--window 0.5: ...` -> `window=0.5: ...`; `ous predict --all-persons` -> `persons=all`. */
export function apiWords(message: string): string {
  return message
    .replace(/(?:ous predict )?--all-persons/g, 'persons=all')
    .replace(/--(window|stride|person) (?=[\d.])/g, '$1=')
    .replace(/--(window|stride|person|box)\b/g, '$1');
}

/** ffmpeg's `[mov,mp4 @ 0x55d0c0a1e2c0]` -> `[mov,mp4]`: no pointer leaves the server. */
export function withoutAddresses(message: string): string {
  return message.replace(/\s*@\s*0x[0-9a-f]+/gi, '');
}
