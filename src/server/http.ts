// What `ous serve` does to every request and answer, whatever the route: the caller checks (Host,
// Origin, Sec-Fetch-Site), the security headers, an answer as data (`Reply`) and the one function
// that writes it; Node's own refusals answered in the same shape; binding the port.
import * as fs from 'node:fs';
import type * as http from 'node:http';
import * as os from 'node:os';
import type { Duplex } from 'node:stream';
import { UserError } from '../util/errors.js';
import { HttpError } from './upload.js';
import { withoutAddresses } from './messages.js';

/** On every answer: no sniffing, nothing but the page's own files, no framing, no referrer. */
export const SECURITY_HEADERS: Record<string, string> = {
  'X-Content-Type-Options': 'nosniff',
  // media-src blob: plays the user's own file from the page; nothing else leaves this origin.
  'Content-Security-Policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; media-src 'self' blob:; " +
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
  'X-Frame-Options': 'DENY',
  'Referrer-Policy': 'no-referrer',
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Resource-Policy': 'same-origin',
};

/** An answer as data: a JSON body, or a file from the server's own folders (its body read when sent). */
export interface Reply {
  status: number;
  headers: Record<string, string>;
  body?: unknown; // JSON
  file?: { path: string; type: string };
}

export const jsonReply = (status: number, body: unknown, headers: Record<string, string> = {}): Reply => ({
  status,
  headers,
  body,
});

export const fileReply = (path: string, type: string): Reply => ({ status: 200, headers: {}, file: { path, type } });

/** A refusal as its client reads it: the reason in the API's words, no memory addresses. */
export const errorReply = (e: HttpError): Reply =>
  jsonReply(e.status, { error: withoutAddresses(e.message) }, e.headers);

/** Writes `reply` (with the security headers); a HEAD gets the headers only. */
export function writeReply(res: http.ServerResponse, reply: Reply, head: boolean): void {
  const h = { ...SECURITY_HEADERS, ...reply.headers };
  if (reply.file) {
    const { path, type } = reply.file;
    res.writeHead(reply.status, { ...h, 'Content-Type': type, 'Content-Length': fs.statSync(path).size });
    if (head) return void res.end();
    return void fs
      .createReadStream(path)
      .on('error', () => res.destroy())
      .pipe(res);
  }
  const data = JSON.stringify(reply.body);
  res.writeHead(reply.status, {
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': Buffer.byteLength(data),
    'Cache-Control': 'no-store',
    ...h,
  });
  res.end(data);
}

/** The host names (lower case, no port, IPv6 without brackets) a request's Host may give. */
export function allowedHosts(bound: string, publicHost: string[] = []): Set<string> {
  const names = new Set(['localhost', '127.0.0.1', '::1', hostName(bound), ...publicHost.map(hostName)]);
  // Bound to every interface: each of this machine's addresses names it.
  if (bound === '0.0.0.0' || bound === '::')
    for (const list of Object.values(os.networkInterfaces()))
      for (const a of list ?? []) names.add(a.address.toLowerCase());
  return names;
}

/** A Host header's name: "[::1]:8080" -> "::1", "Example.org:80" -> "example.org". */
export function hostName(host: string): string {
  const h = host.trim().toLowerCase();
  if (h.startsWith('[')) return h.slice(1, h.indexOf(']') < 0 ? undefined : h.indexOf(']'));
  return h.replace(/:\d*$/, '');
}

/** The parts of a request the caller checks read. */
export type Caller = Pick<http.IncomingMessage, 'headers' | 'rawHeaders' | 'method'>;

/** How many Host headers a request sent (Node keeps the first of several; two are refused, RFC 9112 §3.2). */
function hostHeaders(req: Caller): number {
  let n = 0;
  for (let i = 0; i < req.rawHeaders.length; i += 2) if (req.rawHeaders[i]!.toLowerCase() === 'host') n++;
  return n;
}

/** Host: one, naming this server (421 otherwise), so a DNS-rebinding page cannot reach it. */
function checkHost(req: Caller, hosts: Set<string>): void {
  const host = req.headers.host;
  if (hostHeaders(req) > 1)
    throw new HttpError(400, 'the request has more than one Host header: send one', { Connection: 'close' });
  // HTTP/1.0 may omit Host (Node refuses HTTP/1.1 without it); browsers always send it.
  if (host !== undefined && !hosts.has(hostName(host)))
    throw new HttpError(
      421,
      `this server does not answer for the host '${host.slice(0, 100)}' ` +
        '(start it with --public-host NAME to add a name)',
      { Connection: 'close' },
    );
}

/** Origin and Sec-Fetch-Site of a write: this origin, or not a browser (curl, scripts). */
function checkOrigin(req: Caller, hosts: Set<string>): void {
  const { host, origin } = req.headers;
  const site = req.headers['sec-fetch-site'];
  if (site !== undefined && site !== 'same-origin' && site !== 'none')
    throw new HttpError(403, `requests from other sites are refused (Sec-Fetch-Site: ${site})`, {
      Connection: 'close',
    });
  if (origin === undefined) return;
  let same = false;
  try {
    const u = new URL(origin);
    same =
      (u.protocol === 'http:' || u.protocol === 'https:') &&
      host !== undefined &&
      u.host === host.toLowerCase() &&
      hosts.has(hostName(u.host));
  } catch {
    // 'null' or garbage: not this origin
  }
  if (!same)
    throw new HttpError(403, `requests from another origin (${origin.slice(0, 100)}) are refused`, {
      Connection: 'close',
    });
}

/** The caller checks every request passes before any route: Host always; Origin for writes. */
export function checkCaller(req: Caller, hosts: Set<string>): void {
  checkHost(req, hosts);
  const method = req.method ?? 'GET';
  if (method !== 'GET' && method !== 'HEAD') checkOrigin(req, hosts);
}

/**
 * Node's own refusals (a malformed request, headers too large, a request timeout), answered like
 * every other refusal: a JSON body with the reason and the security headers, then the connection closes.
 */
export function answerClientError(err: NodeJS.ErrnoException, socket: Duplex): void {
  const busy = (socket as { _httpMessage?: { headersSent?: boolean } })._httpMessage;
  if (err.code === 'ECONNRESET' || !socket.writable || busy?.headersSent) return void socket.destroy();
  const [status, reason, why] =
    err.code === 'HPE_HEADER_OVERFLOW'
      ? [431, 'Request Header Fields Too Large', 'the request headers are larger than 16 KB']
      : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? [408, 'Request Timeout', 'the request did not arrive in time']
        : [400, 'Bad Request', `the request is malformed (${String(err.code ?? 'unreadable').replace(/^HPE_/, '')})`];
  const body = JSON.stringify({ error: why });
  const headers = {
    ...SECURITY_HEADERS,
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': String(Buffer.byteLength(body)),
    'Cache-Control': 'no-store',
    Connection: 'close',
  };
  const head = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`);
  socket.end(`HTTP/1.1 ${status} ${reason}\r\n${head.join('')}\r\n${body}`);
}

/** Binds `server`, turning the usual failures into one line. */
export function listen(server: http.Server, port: number, host: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => {
      const why: Record<string, string> = {
        EADDRINUSE:
          `serve: port ${port} on ${host} is in use: stop what uses it, ` +
          'or pick another with --port (0 picks a free one)',
        EADDRNOTAVAIL:
          `serve: --host ${host} is not an address of this machine ` +
          '(127.0.0.1 for this machine only, 0.0.0.0 for every interface)',
        ENOTFOUND: `serve: --host ${host} is not an address or a name this machine resolves`,
        EAI_AGAIN: `serve: --host ${host} cannot be resolved now (name service unavailable)`,
        EACCES:
          `serve: not allowed to listen on port ${port} of ${host} ` +
          '(ports below 1024 need privileges): pick another with --port',
      };
      reject(why[err.code ?? ''] ? new UserError(why[err.code!]!) : err);
    });
    server.listen(port, host, () => resolve());
  });
}
