import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';

/**
 * Ports handed out by this process; never handed out twice, so two servers started side by side
 * cannot be given the same port before either has bound it.
 */
const handedOut = new Set<number>();

/**
 * The range below the kernel's ephemeral range (where outgoing connections get their local ports).
 * A port the kernel picks for `listen(0)` comes from the ephemeral range, and in a busy test run an
 * outgoing connection can take it in the moment between our check and the server's bind (seen as
 * a nats-server exiting "before it was ready" in CI). Ports below that range are never used for
 * outgoing connections.
 */
function listenRange(): { from: number; to: number } | undefined {
  try {
    const low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    if (!Number.isInteger(low) || low <= 11_024) return undefined;
    return { from: Math.max(10_000, low - 12_000), to: low - 1 };
  } catch {
    return undefined;
  }
}

const range = listenRange();

function tryBind(port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(port, host, () => {
      const addr = srv.address();
      const bound = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(bound));
    });
  });
}

/**
 * A free loopback port for a server to bind: a random one below the ephemeral range when the
 * kernel tells us that range (Linux), else one the kernel picks. A tiny race remains with other
 * processes doing the same; callers retry on EADDRINUSE.
 */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  if (range) {
    for (let attempt = 0; attempt < 50; attempt++) {
      const port = range.from + Math.floor(Math.random() * (range.to - range.from + 1));
      if (handedOut.has(port)) continue;
      // reserved before the bind, so concurrent callers in this process cannot pick it meanwhile
      handedOut.add(port);
      try {
        await tryBind(port, host);
        return port;
      } catch {
        handedOut.delete(port); // taken by another process: try another
      }
    }
  }
  let port = await tryBind(0, host);
  for (let attempt = 0; attempt < 100 && handedOut.has(port); attempt++) port = await tryBind(0, host);
  handedOut.add(port);
  return port;
}
