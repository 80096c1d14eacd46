/**
 * The I/O floor of a metered call (target io-floor), run as its own process by bench/lib/stack.ts:
 * a plain `node:http` server that does only the input and output every metered invoke must do
 * before its 200, each by the cheapest means this repository has, and nothing else:
 *   - reads the POST body and parses it (JSON.parse);
 *   - one Redis round trip, awaited: the requests of one event-loop turn share one command (INCRBY
 *     of a counter by their number), as the service's limit store sends a turn's admissions as one
 *     script call (src/adapters/redis/script-batch.ts);
 *   - one usage event per request, made durable before the answer: the events of one event-loop
 *     turn are one JetStream message, published with the service's own publisher and awaited (as
 *     the service's meter batches them);
 *   - a small JSON answer.
 * No Fastify, authentication, validation, AGENTESE, token charge, metrics or logging. No
 * implementation of the service can be faster on the same machine than this, so `invoke x io-floor`
 * says what the service's own code costs and `io-floor x bare` what the required round trips cost.
 *
 * Env: PORT (required), HOST (default 127.0.0.1), REDIS_URL, NATS_URLS (required). The USAGE stream
 * must exist (in the bench the API has created it), as the events go to it.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { Redis } from 'ioredis';
import { connectNats } from '../src/adapters/nats/connection.js';
import { JetStreamUsagePublisher } from '../src/adapters/nats/usage-publisher.js';
import { usageEvent, type UsageEvent } from '../src/domain/metering/usage-event.js';
import { encodeUsageMessage } from '../src/domain/metering/usage-message.js';
import { uniqueId } from '../src/domain/unique-id.js';
import { keepTickObjectShape } from '../src/runtime/tick-shape.js';

const port = Number(process.env.PORT);
const redisUrl = process.env.REDIS_URL ?? '';
const natsUrl = process.env.NATS_URLS ?? '';
if (!Number.isInteger(port) || port <= 0 || redisUrl === '' || natsUrl === '') {
  process.stderr.write('io-floor-server: set PORT, REDIS_URL and NATS_URLS\n');
  process.exit(2);
}
const host = process.env.HOST ?? '127.0.0.1';
// As the API and the bare server do (see bench/bare-server.ts).
keepTickObjectShape();

const TENANT = 'bench-floor';
const COUNTER = 'kg:bench:floor';

const redis = new Redis(redisUrl, { maxRetriesPerRequest: 1 });
const nats = await connectNats([natsUrl], { name: 'bench-io-floor' });
const publisher = new JetStreamUsagePublisher(nats, 5000);

/**
 * What the requests of one event-loop turn share: their items, and one promise for the round trip
 * that `send` makes with all of them at the end of the turn (setImmediate).
 */
function perTurn<T>(send: (items: readonly T[]) => Promise<unknown>): (item: T) => Promise<unknown> {
  let turn: { readonly items: T[]; readonly done: Promise<unknown> } | undefined;
  return (item) => {
    if (!turn) {
      const items: T[] = [];
      const done = new Promise((resolve, reject) => {
        setImmediate(() => {
          turn = undefined;
          send(items).then(resolve, reject);
        });
      });
      turn = { items, done };
    }
    turn.items.push(item);
    return turn.done;
  };
}

const counted = perTurn<number>((items) => redis.incrby(COUNTER, items.length));
const durable = perTurn<UsageEvent>((events) => {
  const first = events[0];
  if (!first) return Promise.resolve();
  return publisher.publish({ id: first.id, subject: first.subject, type: first.type }, encodeUsageMessage(events));
});

function reply(res: ServerResponse, status: number, body: string): void {
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': String(Buffer.byteLength(body)) });
  res.end(body);
}

async function call(res: ServerResponse, started: number, text: string): Promise<void> {
  const body = JSON.parse(text) as { path?: unknown };
  const path = typeof body.path === 'string' ? body.path : '';
  await counted(1);
  await durable(usageEvent({
    id: uniqueId(), type: 'agentese.invoke', tenant: TENANT, time: Date.now(),
    data: { path, aspect: null, tokens: 1, status: 200, latency_ms: Math.round((performance.now() - started) * 100) / 100, key_prefix: 'iofloor0', request_id: '' },
  }));
  reply(res, 200, `{"path":${JSON.stringify(path)},"tokens_used":1,"cached":false}`);
}

const server = createServer((req: IncomingMessage, res: ServerResponse) => {
  if (req.method !== 'POST') {
    reply(res, 200, '{"status":"ok"}');
    return;
  }
  const started = performance.now();
  let text = '';
  req.setEncoding('utf8');
  req.on('data', (chunk: string) => {
    text += chunk;
  });
  req.on('end', () => {
    call(res, started, text).catch((err: unknown) => reply(res, 500, JSON.stringify({ error: String(err) })));
  });
});

const stop = (): void => {
  server.close();
  void Promise.allSettled([redis.quit(), nats.close()]).then(() => process.exit(0));
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);

server.listen(port, host, () => process.stdout.write(`io-floor server listening on http://${host}:${port}\n`));
