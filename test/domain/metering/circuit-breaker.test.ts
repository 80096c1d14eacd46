import { strict as assert } from 'node:assert';
import { describe, mock, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { CircuitBreaker, type Transition } from '../../../src/domain/metering/circuit-breaker.js';

function breaker(resetTimeoutMs = 60_000): { b: CircuitBreaker; transitions: Transition[] } {
  const b = new CircuitBreaker({ failureThreshold: 3, resetTimeoutMs, successThreshold: 2 });
  const transitions: Transition[] = [];
  b.onTransition((t) => transitions.push(t));
  return { b, transitions };
}

describe('circuit breaker', () => {
  test('stays closed below the failure threshold, and a success resets the count', () => {
    const { b } = breaker();
    b.recordFailure('x');
    b.recordFailure('x');
    b.recordSuccess();
    b.recordFailure('x');
    b.recordFailure('x');
    assert.equal(b.state, 'closed');
    b.close();
  });

  test('opens after N consecutive failures and says why', () => {
    const { b, transitions } = breaker();
    for (let i = 0; i < 3; i++) b.recordFailure('publish timed out');
    assert.equal(b.state, 'open');
    assert.equal(transitions.length, 1);
    assert.match(transitions[0]?.reason ?? '', /3 consecutive failures, last: publish timed out/);
    b.close();
  });

  test('half-opens by its own timer, with no traffic at all', async () => {
    const { b, transitions } = breaker(50);
    for (let i = 0; i < 3; i++) b.recordFailure('down');
    await sleep(120);
    assert.equal(b.state, 'half_open');
    assert.deepEqual(transitions.map((t) => t.to), ['open', 'half_open']);
    b.close();
  });

  test('closes after M successes in half-open state', async () => {
    const { b } = breaker(20);
    for (let i = 0; i < 3; i++) b.recordFailure('down');
    await sleep(60);
    b.recordSuccess();
    assert.equal(b.state, 'half_open');
    b.recordSuccess();
    assert.equal(b.state, 'closed');
    b.close();
  });

  test('a failure while half-open reopens it and restarts the timer', async () => {
    const { b, transitions } = breaker(40);
    for (let i = 0; i < 3; i++) b.recordFailure('down');
    await sleep(80);
    b.recordFailure('still down');
    assert.equal(b.state, 'open');
    await sleep(80);
    assert.equal(b.state, 'half_open');
    assert.deepEqual(transitions.map((t) => t.to), ['open', 'half_open', 'open', 'half_open']);
    b.close();
  });

  test('an operator can force a probe without waiting for the timer', () => {
    const { b } = breaker();
    b.trip('connection lost');
    assert.equal(b.state, 'open');
    b.forceProbe();
    assert.equal(b.state, 'half_open');
    b.close();
  });

  describe('early probes (fake clock)', () => {
    function fake(): { b: CircuitBreaker; transitions: Transition[]; advance: (ms: number) => void; done: () => void } {
      mock.timers.enable({ apis: ['setTimeout'] });
      let now = 1_000_000;
      const b = new CircuitBreaker({ failureThreshold: 3, resetTimeoutMs: 30_000, successThreshold: 2, earlyProbeIntervalMs: 3000, now: () => now });
      const transitions: Transition[] = [];
      b.onTransition((t) => transitions.push(t));
      return {
        b, transitions,
        advance: (ms) => {
          now += ms;
          mock.timers.tick(ms);
        },
        done: () => {
          b.close();
          mock.timers.reset();
        },
      };
    }

    test('probeNow half-opens an open circuit at once and says why; the transition carries the signal', () => {
      const { b, transitions, advance, done } = fake();
      for (let i = 0; i < 3; i++) b.recordFailure('no leader');
      advance(5000);
      assert.equal(b.probeNow('leader_elected'), 'probing');
      assert.equal(b.state, 'half_open');
      const last = transitions.at(-1);
      assert.equal(last?.earlyProbe, 'leader_elected');
      assert.match(last?.reason ?? '', /early probe: leader_elected/);
      b.recordSuccess();
      b.recordSuccess();
      assert.equal(b.state, 'closed');
      done();
    });

    test('probeNow does nothing unless the circuit is open', () => {
      const { b, transitions, done } = fake();
      assert.equal(b.probeNow('reconnect'), 'ignored');
      b.trip('x');
      b.forceProbe();
      assert.equal(b.probeNow('reconnect'), 'ignored');
      assert.deepEqual(transitions.map((t) => t.to), ['open', 'half_open']);
      done();
    });

    test('a failed early probe reopens the circuit and restarts the 30 s timer', () => {
      const { b, transitions, advance, done } = fake();
      b.trip('connection lost');
      advance(20_000);
      b.probeNow('reconnect');
      b.recordFailure('publish timed out');
      assert.equal(b.state, 'open');
      advance(29_000);
      assert.equal(b.state, 'open', 'the timer restarted when the probe failed, it did not keep the old deadline');
      advance(1000);
      assert.equal(b.state, 'half_open');
      assert.match(transitions.at(-1)?.reason ?? '', /reset timeout of 30000 ms/);
      assert.equal(transitions.at(-1)?.earlyProbe, undefined);
      done();
    });

    test('at most one early probe per interval: a signal inside it is deferred to its end, not dropped, and signals do not pile up', () => {
      const { b, transitions, advance, done } = fake();
      b.trip('connection lost');
      assert.equal(b.probeNow('reconnect'), 'probing');
      b.recordFailure('no leader yet');
      advance(500);
      for (let i = 0; i < 20; i++) assert.equal(b.probeNow('stream_info'), 'deferred');
      assert.equal(b.state, 'open');
      advance(2499);
      assert.equal(b.state, 'open');
      advance(1);
      assert.equal(b.state, 'half_open');
      assert.deepEqual(transitions.filter((t) => t.earlyProbe !== undefined).map((t) => t.earlyProbe), ['reconnect', 'stream_info']);
      b.recordFailure('still no leader');
      advance(10_000);
      assert.equal(b.state, 'open', 'the 20 deferred signals caused one probe, not 20');
      done();
    });

    test('the reset timer still half-opens with no signal at all', () => {
      const { b, advance, done } = fake();
      b.trip('connection lost');
      advance(29_999);
      assert.equal(b.state, 'open');
      advance(1);
      assert.equal(b.state, 'half_open');
      done();
    });

    test('a deferred probe is dropped when the circuit closes meanwhile', () => {
      const { b, transitions, advance, done } = fake();
      b.trip('x');
      b.probeNow('reconnect');
      b.recordFailure('y');
      b.probeNow('leader_elected');
      b.forceProbe();
      b.recordSuccess();
      b.recordSuccess();
      assert.equal(b.state, 'closed');
      b.trip('z');
      advance(3000);
      assert.equal(b.state, 'open');
      assert.equal(transitions.filter((t) => t.earlyProbe !== undefined).length, 1);
      done();
    });
  });
});
