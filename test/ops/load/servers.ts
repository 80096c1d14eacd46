import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface TestServer {
  readonly url: string;
  readonly server: Server;
  /** Requests seen, by path (without query). */
  readonly paths: Map<string, number>;
  close(): Promise<void>;
}

/** A loopback HTTP server; `handler` answers (default: 200 "ok"). Counts requests by path. */
export async function startServer(handler?: (req: IncomingMessage, res: ServerResponse) => void): Promise<TestServer> {
  const paths = new Map<string, number>();
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    paths.set(path, (paths.get(path) ?? 0) + 1);
    if (handler) handler(req, res);
    else res.end('ok');
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`, server, paths,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}
