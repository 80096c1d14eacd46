import type { LoadJob } from './load-types.js';
import type { ServerName, Stack } from './stack.js';

/** The routes the benchmarks load, shared by bench/run.ts (throughput) and bench/alloc.ts (allocation). */
export const TARGET_NAMES = ['bare', 'bare-post', 'health', 'health-saas', 'resolve', 'invoke', 'invoke-routed', 'invoke-nometer', 'io-floor'] as const;
export type TargetName = (typeof TARGET_NAMES)[number];

export interface Target {
  readonly name: TargetName;
  readonly description: string;
  readonly server: ServerName;
  /** Throughput goal as a fraction of bare Fastify's, in the same run. */
  readonly goal?: number;
  job(stack: Stack): Omit<LoadJob, 'connections' | 'durationS' | 'timeoutS'>;
  /** A sanity check of one response before any load. */
  check(status: number, body: string): boolean;
}

export const INVOKE_BODY = JSON.stringify({ path: 'world.house.manifest', observer: { archetype: 'architect' }, kwargs: {} });

export const TARGETS: readonly Target[] = [
  {
    name: 'bare', description: 'bare Fastify: GET / -> {hello:"world"}, logger off', server: 'bare',
    job: (s) => ({ url: `${s.bareUrl}/`, method: 'GET', headers: {} }),
    check: (status, body) => status === 200 && body.includes('world'),
  },
  {
    name: 'bare-post', description: 'bare Fastify: POST /echo with invoke\'s JSON body (parsed, schema-checked), small JSON answer: the floor of any JSON POST route', server: 'bare',
    job: (s) => ({ url: `${s.bareUrl}/echo`, method: 'POST', headers: { 'content-type': 'application/json' }, body: INVOKE_BODY }),
    check: (status, body) => status === 200 && body.includes('tokens_used'),
  },
  {
    name: 'health', description: 'GET /health', server: 'api', goal: 0.9,
    job: (s) => ({ url: `${s.apiUrl}/health`, method: 'GET', headers: {} }),
    check: (status, body) => status === 200 && body.includes('"ok"'),
  },
  {
    name: 'health-saas', description: 'GET /health/saas (the original\'s baseline route)', server: 'api',
    job: (s) => ({ url: `${s.apiUrl}/health/saas`, method: 'GET', headers: {} }),
    check: (status, body) => status === 200 && body.includes('components'),
  },
  {
    name: 'resolve', description: 'GET /v1/agentese/resolve?path=world.house.manifest&archetype=architect (API key, scope read)', server: 'api',
    job: (s) => ({ url: `${s.apiUrl}/v1/agentese/resolve?path=world.house.manifest&archetype=architect`, method: 'GET', headers: { 'x-api-key': s.apiKey } }),
    check: (status, body) => status === 200 && body.includes('manifest'),
  },
  {
    name: 'invoke', description: 'POST /v1/agentese/invoke (API key, scope write; rate limit + quota in Redis, tokens added)', server: 'api', goal: 0.5,
    job: (s) => ({ url: `${s.apiUrl}/v1/agentese/invoke`, method: 'POST', headers: { 'x-api-key': s.apiKey, 'content-type': 'application/json' }, body: INVOKE_BODY }),
    check: (status, body) => status === 200 && body.includes('tokens_used'),
  },
  {
    name: 'invoke-routed', description: 'the same invoke through Fastify\'s router instead of its fast path (src/http/fast-invoke.ts): a query string, which the fast path hands over; what the fast path saves', server: 'api',
    job: (s) => ({ url: `${s.apiUrl}/v1/agentese/invoke?via=router`, method: 'POST', headers: { 'x-api-key': s.apiKey, 'content-type': 'application/json' }, body: INVOKE_BODY }),
    check: (status, body) => status === 200 && body.includes('tokens_used'),
  },
  {
    name: 'invoke-nometer', description: 'POST /v1/agentese/invoke on the same API without a usage meter (bench/api-without-metering.ts): auth, rate limit, quota, tokens, no usage event', server: 'api-nometer',
    job: (s) => ({ url: `${s.apiNoMeterUrl}/v1/agentese/invoke`, method: 'POST', headers: { 'x-api-key': s.apiKey, 'content-type': 'application/json' }, body: INVOKE_BODY }),
    check: (status, body) => status === 200 && body.includes('tokens_used'),
  },
  {
    name: 'io-floor', description: 'the I/O floor of a metered call (bench/io-floor-server.ts): plain node:http, invoke\'s body parsed, one awaited Redis command and one awaited JetStream publish per event-loop turn, nothing else; no invoke can be faster', server: 'io-floor',
    job: (s) => ({ url: `${s.ioFloorUrl}/invoke`, method: 'POST', headers: { 'content-type': 'application/json' }, body: INVOKE_BODY }),
    check: (status, body) => status === 200 && body.includes('tokens_used'),
  },
];

/** One request before any load: the target answers what it should (a wrong key or route fails here, not as 4xx under load). */
export async function checkTarget(stack: Stack, target: Target): Promise<void> {
  const job = target.job(stack);
  const res = await fetch(job.url, { method: job.method, headers: job.headers, ...(job.body !== undefined && { body: job.body }), signal: AbortSignal.timeout(5000) });
  const body = await res.text();
  if (!target.check(res.status, body)) throw new Error(`${target.name}: unexpected response ${res.status}: ${body.slice(0, 300)}`);
}

/** A positive integer option of a bench tool, or its usage error (exit 2). */
export function positiveOption(tool: string, name: string, raw: string): number {
  const n = Number(raw);
  if (!Number.isInteger(n) || n <= 0) {
    process.stderr.write(`${tool}: --${name} must be a positive integer, got "${raw}"\n`);
    process.exit(2);
  }
  return n;
}

/** The targets a comma-separated --targets option names, in the bench's order; an unknown name is a usage error (exit 2). */
export function selectTargets(tool: string, list: string): readonly Target[] {
  const names = list.split(',').map((t) => t.trim()).filter((t) => t !== '');
  for (const name of names) {
    if (!(TARGET_NAMES as readonly string[]).includes(name)) {
      process.stderr.write(`${tool}: unknown target "${name}"; choose from ${TARGET_NAMES.join(', ')}\n`);
      process.exit(2);
    }
  }
  return TARGETS.filter((t) => names.includes(t.name));
}
