import { Stripe } from 'stripe';

/** Stripe's own default, and what the issue asks for: a signature older than 5 minutes is refused. */
export const SIGNATURE_TOLERANCE_S = 300;

export type SignatureFailure = 'missing' | 'malformed' | 'expired' | 'mismatch' | 'empty';

/** The request is not provably from Stripe. `message` is safe to return: it never quotes the header or the secret. */
export class WebhookSignatureError extends Error {
  constructor(readonly reason: SignatureFailure) {
    super(SIGNATURE_MESSAGES[reason]);
    this.name = 'WebhookSignatureError';
  }
}

/** Correctly signed, but not a Stripe snapshot event we can read. */
export class WebhookPayloadError extends Error {
  constructor(readonly reason: 'json' | 'shape', message: string) {
    super(message);
    this.name = 'WebhookPayloadError';
  }
}

const SIGNATURE_MESSAGES: Readonly<Record<SignatureFailure, string>> = {
  missing: 'The Stripe-Signature header is missing.',
  malformed: 'The Stripe-Signature header is malformed (expected t=<timestamp>,v1=<signature>).',
  expired: `The Stripe-Signature timestamp is more than ${SIGNATURE_TOLERANCE_S} s old.`,
  mismatch: 'The Stripe-Signature does not match the payload.',
  empty: 'The request body is empty; there is nothing to verify.',
};

function failureOf(sdkMessage: string): SignatureFailure {
  if (/tolerance zone/i.test(sdkMessage)) return 'expired';
  if (/extract timestamp|expected scheme/i.test(sdkMessage)) return 'malformed';
  if (/no webhook payload/i.test(sdkMessage)) return 'empty';
  if (/no stripe-signature header/i.test(sdkMessage)) return 'missing';
  return 'mismatch';
}

/**
 * Verifies the Stripe-Signature header over the raw body with the official SDK (a local HMAC-SHA256:
 * no network) and returns the parsed JSON. Throws WebhookSignatureError or WebhookPayloadError.
 *
 * Verification and parsing are two steps (the SDK's `signature.verifyHeader`, then JSON.parse)
 * rather than `constructEvent`, because the SDK throws plain Errors on some malformed headers (an
 * empty `v1=`) as well as on some verified payloads: only the split tells an unverified request
 * (always 400 ERR_WEBHOOK_SIGNATURE) from a verified one that is not an event.
 */
export function verifyStripeWebhook(
  raw: Uint8Array,
  header: string | readonly string[] | undefined,
  secret: string,
  toleranceS: number = SIGNATURE_TOLERANCE_S,
): unknown {
  if (header === undefined || header === '') throw new WebhookSignatureError('missing');
  // Node joins repeated headers except a few; a list here means something unusual sent it twice.
  if (typeof header !== 'string') throw new WebhookSignatureError('malformed');
  if (raw.length === 0) throw new WebhookSignatureError('empty');
  const signature = Stripe.webhooks.signature;
  if (!signature) throw new Error('the Stripe SDK has no signature helper on this platform');
  try {
    signature.verifyHeader(raw, header, secret, toleranceS);
  } catch (err) {
    throw new WebhookSignatureError(err instanceof Stripe.errors.StripeSignatureVerificationError ? failureOf(err.message) : 'malformed');
  }
  try {
    return JSON.parse(Buffer.from(raw).toString('utf8')) as unknown;
  } catch {
    throw new WebhookPayloadError('json', 'The signed payload is not valid JSON.');
  }
}
