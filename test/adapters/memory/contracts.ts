// Behaviour shared by the memory and Redis stores: both test files run these same checks, so the
// two implementations cannot drift apart.
import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import type { IdempotencyStore, LimitStore, StoredResponse } from '../../../src/domain/limits/ports.js';
import type { AdmissionDetail } from '../../../src/adapters/memory/gcra.js';

export interface LimitStoreUnderTest extends LimitStore {
  admit(req: Parameters<LimitStore['admit']>[0]): Promise<AdmissionDetail>;
}

export interface LimitHarness {
  /** A store whose quota counters live `quotaTtlMs`. */
  make(options: { quotaTtlMs?: number }): Promise<LimitStoreUnderTest>;
  /** Lets `ms` of store time pass (real sleep for Redis, a fake clock for memory). */
  advance(ms: number): Promise<void>;
}

let seq = 0;
/** Keys unique per test so tests sharing one server never see each other's state. */
export function uniqueKey(label: string): string {
  seq += 1;
  return `${label}-${process.pid}-${Date.now()}-${seq}`;
}

export function limitStoreContract(name: string, harness: LimitHarness): void {
  const T0 = Date.now();
  const req = (rateKey: string, limitPerMinute: number, now: number, quotaKey = uniqueKey('q'), quotaLimit = 1_000_000) =>
    ({ rateKey, limitPerMinute, quotaKey, quotaLimit, now });

  void test(`${name}: allows a full minute's worth at once, then refuses with retry-after of one emission interval`, async () => {
    const store = await harness.make({});
    const key = uniqueKey('burst');
    for (let i = 0; i < 120; i++) {
      const a = await store.admit(req(key, 120, T0));
      assert.equal(a.allowed, true, `request ${i + 1} of 120 should pass`);
      assert.equal(a.remaining, 119 - i);
      assert.equal(a.limit, 120);
    }
    const refused = await store.admit(req(key, 120, T0));
    assert.equal(refused.allowed, false);
    assert.equal(refused.reason, 'rate');
    assert.equal(refused.remaining, 0);
    assert.equal(refused.retryAfterMs, 500, 'emission interval for 120/min is 500 ms');
    assert.equal(refused.retryAfterS, 1);
    assert.equal(refused.resetMs, 60_000);
    assert.equal(refused.resetS, 60);
  });

  void test(`${name}: tokens refill one per emission interval`, async () => {
    const store = await harness.make({});
    const key = uniqueKey('refill');
    for (let i = 0; i < 60; i++) assert.equal((await store.admit(req(key, 60, T0))).allowed, true);
    assert.equal((await store.admit(req(key, 60, T0 + 999))).allowed, false, 'not yet a full interval');
    const one = await store.admit(req(key, 60, T0 + 1000));
    assert.equal(one.allowed, true, 'one token back after 1 s');
    assert.equal(one.remaining, 0);
    const again = await store.admit(req(key, 60, T0 + 1000));
    assert.equal(again.allowed, false);
    assert.equal(again.retryAfterMs, 1000);
    // Half a minute later half the bucket is back.
    const half = await store.admit(req(key, 60, T0 + 31_000));
    assert.equal(half.allowed, true);
    assert.equal(half.remaining, 29);
    // After a full idle minute the bucket is full again.
    const full = await store.admit(req(key, 60, T0 + 200_000));
    assert.equal(full.remaining, 59);
  });

  void test(`${name}: remaining and reset describe the bucket after the request`, async () => {
    const store = await harness.make({});
    const key = uniqueKey('headers');
    const first = await store.admit(req(key, 60, T0));
    assert.deepEqual(
      { allowed: first.allowed, remaining: first.remaining, resetS: first.resetS, resetMs: first.resetMs, retryAfterS: first.retryAfterS },
      { allowed: true, remaining: 59, resetS: 1, resetMs: 1000, retryAfterS: 0 },
    );
    assert.equal(first.reason, undefined);
    for (let i = 0; i < 9; i++) await store.admit(req(key, 60, T0));
    const tenth = await store.admit(req(key, 60, T0 + 500));
    assert.equal(tenth.remaining, 49);
    assert.equal(tenth.resetMs, 10_500, '11 intervals from T0, seen 500 ms later');
    assert.equal(tenth.resetS, 11);
  });

  void test(`${name}: a limit that does not divide a minute still allows exactly that many per minute`, async () => {
    const store = await harness.make({});
    const key = uniqueKey('seven');
    for (let i = 0; i < 7; i++) assert.equal((await store.admit(req(key, 7, T0))).allowed, true);
    const refused = await store.admit(req(key, 7, T0));
    assert.equal(refused.allowed, false);
    assert.ok(Math.abs(refused.retryAfterMs - 60_000 / 7) < 0.01, `retry after ${refused.retryAfterMs} ms`);
    assert.equal(refused.retryAfterS, 9);
  });

  void test(`${name}: keys are limited independently`, async () => {
    const store = await harness.make({});
    const a = uniqueKey('a');
    const b = uniqueKey('b');
    assert.equal((await store.admit(req(a, 1, T0))).allowed, true);
    assert.equal((await store.admit(req(a, 1, T0))).allowed, false);
    assert.equal((await store.admit(req(b, 1, T0))).allowed, true);
  });

  void test(`${name}: a quota refusal does not consume a rate-limit token`, async () => {
    const store = await harness.make({});
    const rateKey = uniqueKey('rk');
    const quotaKey = uniqueKey('quota');
    await store.admit(req(rateKey, 10, T0, quotaKey, 100));
    await store.addTokens(quotaKey, 100);
    for (let i = 0; i < 5; i++) {
      const refused = await store.admit(req(rateKey, 10, T0, quotaKey, 100));
      assert.equal(refused.allowed, false);
      assert.equal(refused.reason, 'quota');
      assert.equal(refused.quotaUsed, 100);
      assert.equal(refused.remaining, 9, 'the quota refusals left the bucket untouched');
      assert.equal(refused.retryAfterS, 0);
    }
    // With a raised quota (e.g. a tier upgrade) the same bucket still has its 9 tokens.
    for (let i = 0; i < 9; i++) assert.equal((await store.admit(req(rateKey, 10, T0, quotaKey, 1000))).allowed, true);
    assert.equal((await store.admit(req(rateKey, 10, T0, quotaKey, 1000))).reason, 'rate');
  });

  void test(`${name}: addTokens accumulates into quotaUsed and the quota refuses at the limit`, async () => {
    const store = await harness.make({});
    const rateKey = uniqueKey('rk');
    const quotaKey = uniqueKey('quota');
    assert.equal((await store.admit(req(rateKey, 600, T0, quotaKey, 1000))).quotaUsed, 0);
    await store.addTokens(quotaKey, 400);
    await store.addTokens(quotaKey, 599);
    await store.addTokens(quotaKey, 0);
    await store.addTokens(quotaKey, -5);
    const below = await store.admit(req(rateKey, 600, T0, quotaKey, 1000));
    assert.equal(below.quotaUsed, 999);
    assert.equal(below.allowed, true, 'used < limit: allowed');
    await store.addTokens(quotaKey, 0.5);
    const at = await store.admit(req(rateKey, 600, T0, quotaKey, 1000));
    assert.equal(at.quotaUsed, 1000, 'fractions are rounded up');
    assert.equal(at.allowed, false);
    assert.equal(at.reason, 'quota');
    assert.equal((await store.admit(req(rateKey, 600, T0, quotaKey, Number.POSITIVE_INFINITY))).allowed, true, 'Infinity: no quota');
    assert.equal((await store.admit(req(rateKey, 600, T0, uniqueKey('q0'), 0))).reason, 'quota', 'quota 0 refuses everything');
  });

  void test(`${name}: quota counters expire a fixed time after their first increment`, async () => {
    const store = await harness.make({ quotaTtlMs: 300 });
    const quotaKey = uniqueKey('expiring');
    await store.addTokens(quotaKey, 5);
    await harness.advance(200);
    await store.addTokens(quotaKey, 5);
    assert.equal((await store.admit(req(uniqueKey('rk'), 60, Date.now(), quotaKey))).quotaUsed, 10);
    await harness.advance(250);
    // 450 ms after the first increment: gone although the second was only 250 ms ago.
    assert.equal((await store.admit(req(uniqueKey('rk'), 60, Date.now(), quotaKey))).quotaUsed, 0);
  });

  void test(`${name}: invalid limits are rejected as RangeError`, async () => {
    const store = await harness.make({});
    await assert.rejects(store.admit(req(uniqueKey('x'), 0, T0)), RangeError);
    await assert.rejects(store.admit(req(uniqueKey('x'), Number.NaN, T0)), RangeError);
    await assert.rejects(store.admit(req(uniqueKey('x'), 10, T0, uniqueKey('q'), -1)), RangeError);
    await assert.rejects(store.admit(req('', 10, T0)), RangeError);
  });
}

export interface IdempotencyHarness {
  make(): Promise<IdempotencyStore>;
  advance(ms: number): Promise<void>;
}

/** A body that breaks any lossy encoding: multi-byte UTF-8, an astral emoji, NUL, CRLF, and 100 KB of JSON. */
export const TRICKY_BODY = `{"text":"héllo — 世界 🚀\\u0000","raw":"\0\r\n\t\\\\","pad":"${'x'.repeat(100_000)}"}`;

const response = (body = TRICKY_BODY): StoredResponse => ({
  status: 201,
  headers: { 'content-type': 'application/json; charset=utf-8', 'x-request-id': 'req-1' },
  body,
});

export function idempotencyStoreContract(name: string, harness: IdempotencyHarness): void {
  void test(`${name}: the first begin starts, a repeat is in progress, another request with the key is a mismatch`, async () => {
    const store = await harness.make();
    const key = uniqueKey('idem');
    assert.deepEqual(await store.begin(key, 'fp-1', 30), { state: 'started' });
    assert.deepEqual(await store.begin(key, 'fp-1', 30), { state: 'in_progress' });
    assert.deepEqual(await store.begin(key, 'fp-2', 30), { state: 'mismatch' });
  });

  void test(`${name}: a completed request replays status, headers and a byte-identical body`, async () => {
    const store = await harness.make();
    const key = uniqueKey('idem');
    assert.equal((await store.begin(key, 'fp-1', 30)).state, 'started');
    await store.complete(key, 'fp-1', response(), 60);
    const replay = await store.begin(key, 'fp-1', 30);
    assert.equal(replay.state, 'replay');
    if (replay.state !== 'replay') return;
    assert.equal(replay.response.status, 201);
    assert.deepEqual(replay.response.headers, response().headers);
    assert.equal(replay.response.body, TRICKY_BODY);
    assert.ok(Buffer.from(replay.response.body, 'utf8').equals(Buffer.from(TRICKY_BODY, 'utf8')), 'same bytes on the wire');
    assert.deepEqual(await store.begin(key, 'fp-other', 30), { state: 'mismatch' }, 'completed with another fingerprint');
  });

  void test(`${name}: an empty body replays as an empty body`, async () => {
    const store = await harness.make();
    const key = uniqueKey('idem');
    await store.begin(key, 'fp', 30);
    await store.complete(key, 'fp', { status: 204, headers: {}, body: '' }, 60);
    assert.deepEqual(await store.begin(key, 'fp', 30), { state: 'replay', response: { status: 204, headers: {}, body: '' } });
  });

  void test(`${name}: abandon lets a retry start again but never deletes a stored response`, async () => {
    const store = await harness.make();
    const key = uniqueKey('idem');
    await store.begin(key, 'fp', 30);
    await store.abandon(key);
    assert.deepEqual(await store.begin(key, 'fp', 30), { state: 'started' }, 'retry after a 5xx runs again');
    await store.complete(key, 'fp', response('{"ok":true}'), 60);
    await store.abandon(key);
    assert.equal((await store.begin(key, 'fp', 30)).state, 'replay');
    await store.abandon(uniqueKey('never-seen'));
  });

  void test(`${name}: a lock expires after its TTL and a stored response after its TTL`, async () => {
    const store = await harness.make();
    const key = uniqueKey('idem');
    await store.begin(key, 'fp', 0.2);
    await harness.advance(300);
    assert.deepEqual(await store.begin(key, 'fp', 30), { state: 'started' }, 'stale lock (crashed request) is taken over');
    await store.complete(key, 'fp', response('{}'), 0.2);
    assert.equal((await store.begin(key, 'fp', 30)).state, 'replay');
    await harness.advance(300);
    assert.deepEqual(await store.begin(key, 'fp', 30), { state: 'started' });
  });

  void test(`${name}: complete does not overwrite a key taken over by a different request`, async () => {
    const store = await harness.make();
    const key = uniqueKey('idem');
    await store.begin(key, 'fp-slow', 0.2);
    await harness.advance(300);
    assert.equal((await store.begin(key, 'fp-new', 30)).state, 'started');
    await store.complete(key, 'fp-slow', response('{"late":true}'), 60);
    assert.deepEqual(await store.begin(key, 'fp-new', 30), { state: 'in_progress' });
  });

  void test(`${name}: 50 concurrent begins with one key start exactly once`, async () => {
    const store = await harness.make();
    const key = uniqueKey('race');
    const results = await Promise.all(Array.from({ length: 50 }, () => store.begin(key, 'fp', 30)));
    const states = results.map((r) => r.state);
    assert.equal(states.filter((s) => s === 'started').length, 1);
    assert.equal(states.filter((s) => s === 'in_progress').length, 49);
  });

  void test(`${name}: invalid TTLs are rejected as RangeError`, async () => {
    const store = await harness.make();
    await assert.rejects(store.begin(uniqueKey('idem'), 'fp', 0), RangeError);
    await assert.rejects(store.complete(uniqueKey('idem'), 'fp', response('{}'), Number.NaN), RangeError);
  });
}
