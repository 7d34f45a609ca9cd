// Per-client limits of `ous serve`: one client address may hold only so many connections
// and so many uploads in flight, so a client that opens hundreds of slow connections, or trickles
// uploads into every queue place, shuts out itself and nobody else. The server-wide caps
// (maxConnections, --queue) stay as the last line; these keep one address below them.
import type * as http from 'node:http';
import type * as net from 'node:net';

export interface ClientLimitOptions {
  connections: number; // open connections one address may hold (32)
  uploads: number; // uploads one address may have arriving or being probed at once (2)
}

/** A client's address as counted: IPv4-mapped IPv6 ("::ffff:1.2.3.4") is the IPv4 address. */
export function clientAddress(socket: net.Socket): string {
  return (socket.remoteAddress ?? '?').replace(/^::ffff:/, '');
}

export class ClientLimits {
  private readonly open = new Map<string, number>();
  private readonly uploading = new Map<string, number>();

  constructor(readonly o: ClientLimitOptions) {}

  /** Counts `server`'s connections per address; one past the address's limit is closed at once. */
  watch(server: http.Server): void {
    server.on('connection', (socket: net.Socket) => {
      const addr = clientAddress(socket);
      const n = (this.open.get(addr) ?? 0) + 1;
      if (n > this.o.connections) return void socket.destroy();
      this.open.set(addr, n);
      socket.once('close', () => decrement(this.open, addr));
    });
  }

  /** A place for one more upload from `addr`, or undefined when it has its limit arriving already. */
  admitUpload(addr: string): { release: () => void } | undefined {
    const n = this.uploading.get(addr) ?? 0;
    if (n >= this.o.uploads) return undefined;
    this.uploading.set(addr, n + 1);
    let released = false;
    return { release: () => void (released || ((released = true), decrement(this.uploading, addr))) };
  }

  /** Connections and uploads of the address with the most (for /api/health). */
  busiest(): { connections: number; uploads: number } {
    return { connections: Math.max(0, ...this.open.values()), uploads: Math.max(0, ...this.uploading.values()) };
  }
}

function decrement(m: Map<string, number>, key: string): void {
  const n = (m.get(key) ?? 1) - 1;
  if (n > 0) m.set(key, n);
  else m.delete(key);
}
