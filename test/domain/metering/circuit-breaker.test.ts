import { strict as assert } from 'node:assert';
import { describe, test } from 'node:test';
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
});
