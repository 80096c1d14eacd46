import { strict as assert } from 'node:assert';
import { describe, test } from 'node:test';
import { verifyStripeWebhook, WebhookPayloadError, WebhookSignatureError, type SignatureFailure } from '../../../src/adapters/stripe/signature.js';
import { nowS, SECRET, signed, stripeEvent } from './fixtures.js';

function failure(fn: () => unknown): SignatureFailure {
  try {
    fn();
  } catch (err) {
    if (err instanceof WebhookSignatureError) {
      assert.ok(!err.message.includes(SECRET), 'message must not contain the secret');
      return err.reason;
    }
    throw err;
  }
  throw new Error('expected a WebhookSignatureError');
}

describe('Stripe signature verification (official SDK, local HMAC)', () => {
  const event = stripeEvent('invoice.paid', { id: 'in_1' });

  test('a payload signed with the endpoint secret verifies and is parsed', () => {
    const { payload, headers } = signed(event);
    assert.deepEqual(verifyStripeWebhook(Buffer.from(payload), headers['stripe-signature'], SECRET), event);
  });

  test('a changed byte, another secret, a stale timestamp, a malformed, missing or repeated header are refused', () => {
    const { payload, headers } = signed(event);
    const header = headers['stripe-signature'];
    assert.equal(failure(() => verifyStripeWebhook(Buffer.from(payload.replace('in_1', 'in_2')), header, SECRET)), 'mismatch');
    assert.equal(failure(() => verifyStripeWebhook(Buffer.from(payload), signed(event, { secret: 'whsec_other' }).headers['stripe-signature'], SECRET)), 'mismatch');
    assert.equal(failure(() => verifyStripeWebhook(Buffer.from(payload), signed(event, { timestamp: nowS() - 301 }).headers['stripe-signature'], SECRET)), 'expired');
    assert.equal(failure(() => verifyStripeWebhook(Buffer.from(payload), 'garbage', SECRET)), 'malformed');
    assert.equal(failure(() => verifyStripeWebhook(Buffer.from(payload), 't=123', SECRET)), 'malformed');
    assert.equal(failure(() => verifyStripeWebhook(Buffer.from(payload), undefined, SECRET)), 'missing');
    assert.equal(failure(() => verifyStripeWebhook(Buffer.from(payload), [header, header], SECRET)), 'malformed');
    assert.equal(failure(() => verifyStripeWebhook(Buffer.alloc(0), header, SECRET)), 'empty');
  });

  test('a signature 4 minutes old is still accepted', () => {
    const { payload, headers } = signed(event, { timestamp: nowS() - 240 });
    assert.ok(verifyStripeWebhook(Buffer.from(payload), headers['stripe-signature'], SECRET));
  });

  test('a correctly signed body that is not JSON is a payload error, not a signature error', () => {
    const { payload, headers } = signed('not json');
    assert.throws(() => verifyStripeWebhook(Buffer.from(payload), headers['stripe-signature'], SECRET),
      (err: unknown) => err instanceof WebhookPayloadError && err.reason === 'json');
  });
});

describe('Stripe signature verification: headers the SDK chokes on', () => {
  test('an empty v1 signature (the SDK throws a plain Error) is a malformed signature, not a payload problem', () => {
    const { payload } = signed(stripeEvent('invoice.paid', { id: 'in_1' }));
    assert.equal(failure(() => verifyStripeWebhook(Buffer.from(payload), 't=0,v1=', SECRET)), 'malformed');
    assert.equal(failure(() => verifyStripeWebhook(Buffer.from(payload), `t=${nowS()},v1=`, SECRET)), 'malformed');
  });
});
