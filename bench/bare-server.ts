/**
 * The baseline: a bare Fastify hello-world with the logger off, run as its own process by
 * bench/run.ts. Same Fastify version as the API, so the ratio isolates what the API adds.
 * Env: PORT (required), HOST (default 127.0.0.1).
 */
import Fastify from 'fastify';
import { keepTickObjectShape } from '../src/runtime/tick-shape.js';

const port = Number(process.env.PORT);
if (!Number.isInteger(port) || port <= 0) {
  process.stderr.write('bare-server: set PORT\n');
  process.exit(2);
}
const host = process.env.HOST ?? '127.0.0.1';
// As the API does (TICK_SHAPE_KEEP): an idle bare server would otherwise fall into nextTick's slow
// path after a few full GCs and make the API look faster than it is by comparison.
keepTickObjectShape();

const app = Fastify({ logger: false });
app.get('/', () => ({ hello: 'world' }));
// The floor of a JSON POST route (target bare-post): invoke's body read, parsed and schema-checked,
// a small JSON answer; no auth, Redis, NATS or AGENTESE.
app.post<{ Body: { path: string; observer?: Record<string, unknown>; kwargs?: Record<string, unknown> } }>('/echo', {
  schema: {
    body: {
      type: 'object', required: ['path'], additionalProperties: false,
      properties: { path: { type: 'string', minLength: 1, maxLength: 512 }, observer: { type: 'object' }, kwargs: { type: 'object' } },
    },
  },
}, (request) => ({ path: request.body.path, tokens_used: 1, cached: false }));

const stop = (): void => {
  void app.close().then(() => process.exit(0));
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);

app.listen({ port, host }).then(
  (address) => process.stdout.write(`bare fastify listening on ${address}\n`),
  (err: unknown) => {
    process.stderr.write(`bare-server: ${String(err)}\n`);
    process.exit(1);
  },
);
