import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { modeSwitches } from '../../bench/lib/mode-switches.js';

test('the bench reads dependency mode switches from /metrics text, summed by component and mode entered', () => {
  const text = [
    '# HELP kgents_dependency_mode_switches_total Switches ...',
    '# TYPE kgents_dependency_mode_switches_total counter',
    'kgents_dependency_mode_switches_total{component="redis",to="memory",instance="bench"} 2',
    'kgents_dependency_mode_switches_total{component="redis",to="redis",instance="bench"} 1',
    'kgents_dependency_mode_switches_total{instance="x",component="nats",to="fallback"} 1',
    'kgents_dependency_mode{component="redis",mode="memory",instance="bench"} 0',
  ].join('\n');
  assert.deepEqual([...modeSwitches(text)], [['redis -> memory', 2], ['redis -> redis', 1], ['nats -> fallback', 1]]);
  assert.equal(modeSwitches('kgents_dependency_mode{component="redis",mode="redis"} 1\n').size, 0);
});
