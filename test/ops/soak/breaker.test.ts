import { strict as assert } from 'node:assert';
import { describe, test } from 'node:test';
import { analyseSoak } from '../../../src/ops/soak/analysis.js';
import { parsePrometheus } from '../../../src/ops/soak/prometheus.js';
import { extractSamples, type InstanceSample } from '../../../src/ops/soak/sampler.js';

// The API's /metrics as prom-client writes it (default labels last, as in src/observability/metrics.ts):
// the transitions counter has no line at all until the breaker first moves.
function scrape(at: number, circuit: { state: number; open?: number; half?: number; closed?: number; depth: number; redisOut?: number; redisBack?: number }): InstanceSample[] {
  const lines = [
    'kgents_process_resident_memory_bytes{instance="api-1"} 108240896',
    'kgents_nodejs_heap_size_used_bytes{instance="api-1"} 22641776',
    'kgents_nodejs_heap_space_size_used_bytes{space="new",instance="api-1"} 415040',
    'kgents_nodejs_gc_duration_seconds_count{instance="api-1",kind="major"} 1',
    `kgents_circuit_state{instance="api-1"} ${circuit.state}`,
    ...(circuit.open === undefined ? [] : [`kgents_circuit_transitions_total{to="open",instance="api-1"} ${circuit.open}`]),
    ...(circuit.half === undefined ? [] : [`kgents_circuit_transitions_total{to="half_open",instance="api-1"} ${circuit.half}`]),
    ...(circuit.closed === undefined ? [] : [`kgents_circuit_transitions_total{to="closed",instance="api-1"} ${circuit.closed}`]),
    `kgents_fallback_queue_depth{instance="api-1"} ${circuit.depth}`,
    ...(circuit.redisOut === undefined ? [] : [`kgents_dependency_mode_switches_total{component="redis",to="memory",instance="api-1"} ${circuit.redisOut}`]),
    ...(circuit.redisBack === undefined ? [] : [`kgents_dependency_mode_switches_total{component="redis",to="redis",instance="api-1"} ${circuit.redisBack}`]),
  ];
  return extractSamples('http://127.0.0.1:1', at, parsePrometheus(lines.join('\n')));
}

describe('soak: circuit breaker and fallback queue from /metrics', () => {
  test('counts transitions whose counter first appears during the soak, and reports the queue depth', () => {
    const start = 1_000_000;
    const samples = [
      ...scrape(start + 1000, { state: 0, depth: 0 }),
      ...scrape(start + 2000, { state: 2, open: 1, depth: 40 }),
      ...scrape(start + 3000, { state: 1, open: 1, half: 1, depth: 90 }),
      ...scrape(start + 4000, { state: 0, open: 1, half: 1, closed: 1, depth: 0 }),
    ];
    assert.equal(samples.length, 4);
    assert.equal(samples[0]?.instance, 'api-1');
    assert.equal(samples[0]?.youngBytes, 415040);
    const analysis = analyseSoak({ startAt: start, ranMs: 5000, windowMs: 1000, warmupMs: 1000, maxGrowthPct: 10, load: new Map(), samples });
    const c = analysis.circuits[0];
    assert.deepEqual(c?.transitions, { open: 1, half_open: 1, closed: 1 });
    assert.equal(c?.fallback_depth_max, 90);
    assert.equal(c?.fallback_depth_end, 0);
    assert.equal(c?.state_at_end, 0);
  });

  test('a counter already there at the first sample counts only what happened after it', () => {
    const start = 1_000_000;
    const samples = [
      ...scrape(start + 1000, { state: 0, open: 3, closed: 3, depth: 0 }),
      ...scrape(start + 2000, { state: 2, open: 4, closed: 3, depth: 5 }),
    ];
    const analysis = analyseSoak({ startAt: start, ranMs: 3000, windowMs: 1000, warmupMs: 1000, maxGrowthPct: 10, load: new Map(), samples });
    assert.deepEqual(analysis.circuits[0]?.transitions, { open: 1, closed: 0 });
  });

  test('Redis switching to memory and back during the soak is counted, across a restart of the instance', () => {
    const start = 1_000_000;
    const samples = [
      ...scrape(start + 1000, { state: 0, depth: 0, redisOut: 1, redisBack: 1 }),
      ...scrape(start + 2000, { state: 0, depth: 0, redisOut: 2, redisBack: 1 }),
      ...scrape(start + 3000, { state: 0, depth: 0, redisOut: 2, redisBack: 2 }),
      // the instance restarted: its counters start again from 0
      ...scrape(start + 4000, { state: 0, depth: 0, redisOut: 1 }),
    ];
    assert.deepEqual(samples[0]?.modeSwitches, { 'redis to memory': 1, 'redis to redis': 1 });
    const analysis = analyseSoak({ startAt: start, ranMs: 5000, windowMs: 1000, warmupMs: 1000, maxGrowthPct: 10, load: new Map(), samples });
    assert.deepEqual(analysis.circuits[0]?.mode_switches, { 'redis to memory': 2, 'redis to redis': 1 });
    assert.deepEqual(analysis.circuits[0]?.transitions, {});
  });
});
