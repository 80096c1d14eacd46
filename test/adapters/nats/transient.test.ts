import { strict as assert } from 'node:assert';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import { JetStreamApiError, jetstreamManager } from '@nats-io/jetstream';
import { connectNats, type NatsConnection } from '../../../src/adapters/nats/connection.js';
import { ensureStreams, streamConfigs } from '../../../src/adapters/nats/streams.js';
import { isTransientJetStreamError, retryTransient } from '../../../src/adapters/nats/transient.js';
import { startNatsCluster } from '../../harness/servers.js';

const STREAMS = { replicas: 3, usageDuplicateWindowS: 120, usageRetentionDays: 1 };

function named(name: string, message = name): Error {
  const err = new Error(message);
  err.name = name;
  return err;
}

void describe('JetStream administration while the cluster cannot answer yet', () => {
  test('timeouts, 503s and offline peers are transient, also as a cause; a refused or unanswered request is not', () => {
    assert.equal(isTransientJetStreamError(named('TimeoutError', 'timeout')), true);
    assert.equal(isTransientJetStreamError(new Error('request failed', { cause: named('TimeoutError') })), true);
    assert.equal(isTransientJetStreamError(new Error('request failed', { cause: named('NoRespondersError') })), false);
    assert.equal(isTransientJetStreamError(new JetStreamApiError({ code: 503, err_code: 10008, description: 'JetStream system temporarily unavailable' })), true);
    assert.equal(isTransientJetStreamError(new JetStreamApiError({ code: 500, err_code: 10005, description: 'no suitable peers for placement, peer offline' })), true);
    assert.equal(isTransientJetStreamError(new JetStreamApiError({ code: 400, err_code: 10058, description: 'stream name already in use with a different configuration' })), false);
    assert.equal(isTransientJetStreamError(new Error('boom')), false);
    assert.equal(isTransientJetStreamError('timeout'), false);
  });

  test('a refused step fails at once; a transient one is asked again until it succeeds or the deadline passes', async () => {
    let calls = 0;
    await assert.rejects(retryTransient(() => {
      calls++;
      return Promise.reject(new Error('bad request'));
    }), /bad request/);
    assert.equal(calls, 1);

    calls = 0;
    const retried: number[] = [];
    const value = await retryTransient(() => (++calls < 3 ? Promise.reject(named('TimeoutError')) : Promise.resolve('done')), { onRetry: (_err, attempt) => retried.push(attempt) });
    assert.equal(value, 'done');
    assert.deepEqual(retried, [1, 2]);

    calls = 0;
    await assert.rejects(retryTransient(() => {
      calls++;
      return Promise.reject(named('TimeoutError'));
    }, { deadlineMs: 300 }), { name: 'TimeoutError' });
    assert.ok(calls >= 2 && calls <= 4, `${calls} attempts within 300 ms`);
  });

  void describe('on a 3-node cluster with two nodes down', () => {
    let cluster: Awaited<ReturnType<typeof startNatsCluster>>;
    let conn: NatsConnection;

    before(async () => {
      cluster = await startNatsCluster(3);
      conn = await connectNats([cluster.urls[0] ?? ''], { name: 'transient-test' });
    });

    after(async () => {
      await conn.close();
      await cluster.cleanup();
    });

    test('ensureStreams waits for the quorum to come back and creates every replica-3 stream', async () => {
      const [, second, third] = cluster.servers;
      assert.ok(second && third);
      const jsm = await jetstreamManager(conn.nc, { timeout: 1000 });
      await Promise.all([second.stop(), third.stop()]);
      const retries: string[] = [];
      const ensuring = ensureStreams(jsm, STREAMS, {
        deadlineMs: 60_000,
        onRetry: (err) => retries.push(String(err)),
      });
      // Settled here so that a failure is not an unhandled rejection while the test sleeps.
      const settled = ensuring.then((results) => ({ results }), (error: unknown) => ({ error }));
      await sleep(2500);
      await Promise.all([second.start(), third.start()]);
      const outcome = await settled;
      if ('error' in outcome) throw outcome.error;
      const { results } = outcome;
      assert.deepEqual(results.map((r) => r.name), streamConfigs(STREAMS).map((c) => c.name));
      assert.ok(retries.length >= 1, 'the first requests found no quorum and were retried');
      for (const { name } of results) assert.equal((await jsm.streams.info(name)).config.num_replicas, 3);
    });
  });
});
