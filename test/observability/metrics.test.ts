import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { ApiMetrics } from '../../src/observability/metrics.js';

test('a dependency\'s mode switches are counted by the mode entered; the first mode set and repeats are not switches', async () => {
  const metrics = new ApiMetrics('test', 'i-1');
  metrics.setMode('redis', 'redis', ['redis', 'memory']);
  metrics.setMode('redis', 'redis', ['redis', 'memory']);
  metrics.setMode('nats', 'fallback', ['jetstream', 'fallback']);
  metrics.setMode('redis', 'memory', ['redis', 'memory']);
  metrics.setMode('redis', 'redis', ['redis', 'memory']);
  metrics.setMode('redis', 'memory', ['redis', 'memory']);
  const text = await metrics.registry.metrics();
  assert.match(text, /kgents_dependency_mode_switches_total\{component="redis",to="memory",instance="i-1"\} 2\n/);
  assert.match(text, /kgents_dependency_mode_switches_total\{component="redis",to="redis",instance="i-1"\} 1\n/);
  assert.doesNotMatch(text, /kgents_dependency_mode_switches_total\{component="nats"/);
  assert.match(text, /kgents_dependency_mode\{component="redis",mode="memory",instance="i-1"\} 1\n/);
});
