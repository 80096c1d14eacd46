import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ProcessPressureMonitor, type PressureSource } from '../adapters/local/pressure-monitor.js';
import type { Config } from '../config/load.js';
import { registerLoadMetrics } from '../observability/load-metrics.js';
import type { ApiMetrics } from '../observability/metrics.js';
import { sendError } from './errors.js';
import type { HealthRegistry } from './health.js';
import { LoadShedder } from './load-shedding.js';

/**
 * Installs load shedding: the pressure monitor, its metrics, health component and logs. Returns
 * `refuse`, which app.ts calls from its one onRequest hook (after the shutdown check, so a closing
 * instance still says so): true when it has answered the request with 503 ERR_OVERLOADED.
 */
export function installLoadShedding(app: FastifyInstance, config: Config, deps: { source?: PressureSource; metrics: ApiMetrics; health: HealthRegistry }): LoadShedding {
  const source = deps.source ?? new ProcessPressureMonitor({ sampleMs: config.SHED_SAMPLE_MS, memoryLimitBytes: config.MEMORY_LIMIT_BYTES });
  const shedder = new LoadShedder(source, {
    eventLoopDelayMs: config.SHED_EVENT_LOOP_DELAY_MS,
    heapRatio: config.SHED_HEAP_RATIO,
    rssRatio: config.SHED_RSS_RATIO,
    retryAfterS: config.SHED_RETRY_AFTER_S,
  });
  const read = () => {
    const s = shedder.state();
    return { overloaded: s.reason !== undefined, eventLoopDelayMs: s.sample.eventLoopDelayMs, heapLiveBytes: s.sample.heapLiveBytes, heapLimitBytes: s.sample.heapLimitBytes, heapRatio: s.heapRatio, heapUsedRatio: s.heapUsedRatio, rssRatio: s.rssRatio };
  };
  const { shed } = registerLoadMetrics(deps.metrics.registry, read);
  const counters = { event_loop: shed.labels({ reason: 'event_loop' }), heap: shed.labels({ reason: 'heap' }), memory: shed.labels({ reason: 'memory' }) };

  shedder.onChange((s) => {
    const fields = {
      component: 'load', reason: s.reason, event_loop_delay_ms: Math.round(s.sample.eventLoopDelayMs),
      heap_live_mb: Math.round(s.sample.heapLiveBytes / 1048576), heap_limit_mb: Math.round(s.sample.heapLimitBytes / 1048576),
      heap_live_ratio: round2(s.heapRatio), heap_used_ratio: round2(s.heapUsedRatio), rss_ratio: round2(s.rssRatio),
    };
    if (s.reason) app.log.warn(fields, 'overloaded: shedding new requests with 503 ERR_OVERLOADED');
    else app.log.info(fields, 'load back under the thresholds: admitting new requests');
  });
  deps.health.register('load', () => {
    const s = shedder.state();
    return {
      status: s.reason ? 'degraded' : 'ok', shedding: s.reason !== undefined, ...(s.reason && { reason: s.reason }),
      event_loop_delay_ms: Math.round(s.sample.eventLoopDelayMs), heap_live_ratio: round2(s.heapRatio), heap_used_ratio: round2(s.heapUsedRatio),
      ...(s.sample.memoryLimitBytes > 0 && { rss_ratio: round2(s.rssRatio) }),
    };
  });

  const refuse = (request: FastifyRequest, reply: FastifyReply): boolean => {
    // routeOptions builds an object on every read: only look at the route while shedding.
    const refusal = shedder.reason === undefined ? undefined : shedder.refusalFor(request.routeOptions.url);
    if (!refusal) return false;
    const reason = shedder.reason;
    if (reason) counters[reason].inc();
    // Answered here rather than thrown: the error handler logs every 5xx with a stack, which is
    // the last thing an overloaded process should spend its time on.
    void sendError(request, reply, refusal);
    return true;
  };
  app.addHook('onReady', (done) => {
    source.start();
    done();
  });
  app.addHook('onClose', (_instance, done) => {
    source.stop();
    done();
  });
  return { shedder, refuse };
}

export interface LoadShedding {
  readonly shedder: LoadShedder;
  refuse(request: FastifyRequest, reply: FastifyReply): boolean;
}

function round2(n: number): number {
  return Math.round(n * 100) / 100;
}
