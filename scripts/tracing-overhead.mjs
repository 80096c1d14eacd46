#!/usr/bin/env node
// CPU time per POST /v1/agentese/invoke through app.inject, tracing off vs on, in alternating rounds
// (after `npm run build`). Spans go to a sink in a child process, so its CPU is not counted here.
// Usage: node scripts/tracing-overhead.mjs [rounds=7] [requests-per-round=4000] [sampler-ratio=1]
// See docs/observability.md ("Measured overhead").
import { spawn } from 'node:child_process';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { URL } from 'node:url';

const dist = new URL('../dist/', import.meta.url).href;
const { buildApp } = await import(`${dist}src/http/app.js`);
const { loadConfig } = await import(`${dist}src/config/load.js`);
const { MemoryLimitStore } = await import(`${dist}src/adapters/memory/limit-store.js`);
const { MemoryIdempotencyStore } = await import(`${dist}src/adapters/memory/idempotency-store.js`);
const { MemoryKeyStore } = await import(`${dist}test/harness/memory-key-store.js`);
const { createKey } = await import(`${dist}test/harness/fixtures.js`);
const { ApiMetrics } = await import(`${dist}src/observability/metrics.js`);
const { startTracing } = await import(`${dist}src/runtime/tracing.js`);

const rounds = Number(process.argv[2] ?? 7);
const perRound = Number(process.argv[3] ?? 4000);
const ratio = process.argv[4] ?? '1';

const sinkCode = "const s=require('node:http').createServer((q,r)=>{q.resume();q.on('end',()=>r.writeHead(200,{'content-type':'application/json'}).end('{}'))});s.listen(0,'127.0.0.1',()=>console.log(s.address().port))";
const sink = spawn(process.execPath, ['-e', sinkCode], { stdio: ['ignore', 'pipe', 'inherit'] });
const sinkPort = await new Promise((resolve) => sink.stdout.once('data', (d) => resolve(Number(String(d).trim()))));

const devnull = new Writable({ write(_c, _e, cb) { cb(); } });
async function make(traced) {
  const env = {
    LOG_LEVEL: 'info', INSTANCE_ID: 'overhead', RATE_LIMITS: 'free=60,pro=60,enterprise=100000000', TOKEN_QUOTAS: 'free=1,pro=1,enterprise=1000000000000000',
    ...(traced && { OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${sinkPort}`, OTEL_BSP_SCHEDULE_DELAY: '200', OTEL_TRACES_SAMPLER: 'parentbased_traceidratio', OTEL_TRACES_SAMPLER_ARG: ratio }),
  };
  const config = loadConfig({}, env);
  const keys = new MemoryKeyStore();
  const metrics = new ApiMetrics('overhead', 'overhead');
  const tracing = startTracing(config, metrics.registry, pino({ level: 'warn' }, devnull), 'overhead');
  const app = buildApp(config, { keys, limits: new MemoryLimitStore(), idempotency: new MemoryIdempotencyStore(), metrics, logDestination: devnull, ...(tracing && { tracer: tracing.tracer }) });
  await app.ready();
  const { key } = await createKey(keys, 'overhead', 'enterprise', ['read', 'write']);
  return { app, key, tracing };
}

const body = JSON.stringify({ path: 'world.house.manifest', observer: { archetype: 'architect' }, kwargs: {} });
async function round(x, n) {
  const c0 = process.cpuUsage();
  for (let i = 0; i < n; i++) {
    const r = await x.app.inject({ method: 'POST', url: '/v1/agentese/invoke', payload: body, headers: { 'x-api-key': x.key, 'content-type': 'application/json' } });
    if (r.statusCode !== 200) throw new Error(r.body);
  }
  const c = process.cpuUsage(c0);
  return (c.user + c.system) / n;
}

const off = await make(false);
const on = await make(true);
await round(off, 3000);
await round(on, 3000);
const res = { off: [], on: [] };
for (let r = 0; r < rounds; r++) {
  res.off.push(await round(off, perRound));
  res.on.push(await round(on, perRound));
}
const med = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
const exported = (await on.app.inject('/metrics')).body.split('\n').find((l) => l.startsWith('kgents_tracing_spans_exported_total'));
console.log(JSON.stringify({
  sampler_ratio: Number(ratio), us_per_invoke_off: res.off.map((v) => +v.toFixed(1)), us_per_invoke_on: res.on.map((v) => +v.toFixed(1)),
  median_off: +med(res.off).toFixed(1), median_on: +med(res.on).toFixed(1), delta_us: +(med(res.on) - med(res.off)).toFixed(1), exported,
}));
await on.tracing?.shutdown(1000);
sink.kill();
process.exit(0);
