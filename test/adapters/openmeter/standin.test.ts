import { strict as assert } from 'node:assert';
import { after, before, describe, test } from 'node:test';
import { startOpenMeterStandIn, type OpenMeterStandIn } from '../../harness/openmeter-standin.js';
import { API_KEY, makeEvent } from './fixtures.js';

async function post(standIn: OpenMeterStandIn, body: string, contentType = 'application/cloudevents-batch+json', key = API_KEY): Promise<Response> {
  return fetch(`${standIn.url}/api/v1/events`, { method: 'POST', headers: { 'content-type': contentType, authorization: `Bearer ${key}` }, body });
}

void describe('the OpenMeter stand-in follows the ingest contract', () => {
  let standIn: OpenMeterStandIn;
  before(async () => {
    standIn = await startOpenMeterStandIn({ apiKey: API_KEY });
  });
  after(async () => {
    await standIn.close();
  });

  void test('a batch is accepted with 204 and a re-sent event (same id and source) is stored once', async () => {
    const a = makeEvent('t1');
    const b = makeEvent('t2');
    const sameIdOtherSource = { ...a, source: 'another-service' };
    assert.equal((await post(standIn, JSON.stringify([a, b]))).status, 204);
    assert.equal((await post(standIn, JSON.stringify([a, sameIdOtherSource]))).status, 204);
    assert.equal((await post(standIn, JSON.stringify(b), 'application/cloudevents+json')).status, 204);
    assert.equal(standIn.received().length, 3, 'a, b and the same id from another source');
    assert.equal(standIn.deliveries, 5);
  });

  void test('a request without the right bearer token gets 401 problem+json and stores nothing', async () => {
    const storedBefore = standIn.received().length;
    const res = await post(standIn, JSON.stringify([makeEvent()]), 'application/cloudevents-batch+json', 'wrong');
    assert.equal(res.status, 401);
    assert.match(res.headers.get('content-type') ?? '', /application\/problem\+json/);
    const res2 = await fetch(`${standIn.url}/api/v1/events`, { method: 'POST', headers: { 'content-type': 'application/cloudevents+json' }, body: JSON.stringify(makeEvent()) });
    assert.equal(res2.status, 401);
    assert.equal(standIn.received().length, storedBefore);
  });

  void test('an event missing a required attribute makes the whole batch 400 problem+json naming it', async () => {
    const storedBefore = standIn.received().length;
    const { subject: _subject, ...noSubject } = makeEvent();
    const res = await post(standIn, JSON.stringify([makeEvent(), noSubject]));
    assert.equal(res.status, 400);
    assert.match(res.headers.get('content-type') ?? '', /application\/problem\+json/);
    const body = (await res.json()) as { title: string; status: number; detail: string };
    assert.equal(body.status, 400);
    assert.match(body.detail, /event 1 .*"subject"/);
    assert.equal(standIn.received().length, storedBefore, 'nothing of a rejected batch is stored');

    assert.equal((await post(standIn, JSON.stringify([{ ...makeEvent(), specversion: '0.3' }]))).status, 400);
    assert.equal((await post(standIn, '{not json')).status, 400);
    assert.equal((await post(standIn, JSON.stringify(makeEvent()))).status, 400, 'a batch must be an array');
    assert.equal((await post(standIn, JSON.stringify([makeEvent()]), 'application/json')).status, 400, 'unsupported content type');
  });

  void test('rejectIds, failFor and hangFor shape the answers', async () => {
    const bad = makeEvent();
    standIn.rejectIds([bad.id]);
    const rejected = await post(standIn, JSON.stringify([makeEvent(), bad]));
    assert.equal(rejected.status, 400);
    assert.match(((await rejected.json()) as { detail: string }).detail, new RegExp(bad.id));

    standIn.failFor(60_000, 429, { retryAfter: '3' });
    const limited = await post(standIn, JSON.stringify([makeEvent()]));
    assert.equal(limited.status, 429);
    assert.equal(limited.headers.get('retry-after'), '3');
    standIn.failFor(60_000);
    assert.equal((await post(standIn, JSON.stringify([makeEvent()]))).status, 500);
    standIn.failFor(0);

    const held = makeEvent();
    standIn.hangFor(300);
    const started = performance.now();
    assert.equal((await post(standIn, JSON.stringify([held]))).status, 204);
    assert.ok(performance.now() - started >= 250, 'held until the window ended');
    assert.ok(standIn.received().some((e) => e.id === held.id));
    assert.equal((await fetch(`${standIn.url}/api/v1/other`, { method: 'POST' })).status, 404);
  });
});
