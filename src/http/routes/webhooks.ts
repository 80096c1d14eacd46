import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { Counter, type Registry } from 'prom-client';
import { verifyStripeWebhook, WebhookPayloadError, WebhookSignatureError } from '../../adapters/stripe/signature.js';
import type { Config } from '../../config/load.js';
import { isHandledType } from '../../domain/billing/intent.js';
import type { BillingBackend, TenantDirectory } from '../../domain/billing/ports.js';
import { parsePriceTiers } from '../../domain/billing/price-tiers.js';
import { StripeWebhookProcessor, type ProcessorOptions, type WebhookResult } from '../../domain/billing/processor.js';
import { readStripeEvent } from '../../domain/billing/stripe-event.js';
import { ApiError } from '../../errors/api-error.js';
import { sendError } from '../errors.js';

export const STRIPE_WEBHOOK_PATH = '/webhooks/stripe';
export const STRIPE_WEBHOOK_METRIC = 'kgents_stripe_webhooks_total';

export type WebhookOutcome =
  | 'applied' | 'stale' | 'skipped' | 'unmatched' | 'duplicate' | 'ignored'
  | 'rejected' | 'busy' | 'deferred' | 'failed' | 'unavailable';

export interface WebhookRouteDeps {
  readonly config: Pick<Config, 'STRIPE_WEBHOOK_SECRET' | 'STRIPE_PRICE_TIERS' | 'INSTANCE_ID'>;
  /**
   * The key store: finds a tenant already holding a Stripe customer id. With a file key store the
   * tenants are not in NATS KV, so `billing` is not used and handled events get 503.
   */
  readonly keys: TenantDirectory & { readonly kind: 'nats' | 'file' };
  /** `new NatsBillingBackend(nats, { replicas })` when the process has NATS; undefined: handled events get 503. */
  readonly billing: BillingBackend | undefined;
  /** ApiMetrics.registry: the counter `kgents_stripe_webhooks_total{type,outcome}` goes there. */
  readonly registry: Registry;
  /** Largest accepted webhook body. Default 1 MiB (Stripe events can exceed BODY_LIMIT_BYTES). */
  readonly bodyLimitBytes?: number;
  /** Lease, waits and clock; tests shorten them. */
  readonly processor?: Omit<ProcessorOptions, 'instance' | 'prices'>;
}

interface Ok {
  readonly received: true;
  readonly event_id: string;
  readonly outcome: WebhookOutcome;
  readonly duplicate?: true;
}

function webhookCounter(registry: Registry): Counter<'type' | 'outcome'> {
  const existing = registry.getSingleMetric(STRIPE_WEBHOOK_METRIC);
  if (existing instanceof Counter) return existing;
  return new Counter({
    name: STRIPE_WEBHOOK_METRIC,
    help: 'Stripe webhook deliveries by event type (handled types; `other` for the rest, `unknown` before verification) and outcome.',
    labelNames: ['type', 'outcome'] as const,
    registers: [registry],
  });
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * POST /webhooks/stripe, in its own encapsulated scope so that only this route reads its body as
 * raw bytes (the signature covers the exact bytes); the rest of the app keeps its JSON parser.
 * Registers synchronously on an app that is not ready yet. Throws a ConfigError for a malformed
 * STRIPE_PRICE_TIERS.
 *
 * Answers: 200 once the effect is durably recorded (or the event is a duplicate, or of a type that
 * changes nothing); 400 ERR_WEBHOOK_SIGNATURE when the signature does not verify; 400
 * ERR_INVALID_JSON / ERR_VALIDATION for a signed payload that is not a Stripe event; 503
 * ERR_WEBHOOK_UNAVAILABLE when it cannot be recorded now (Stripe retries).
 */
export function webhookRoutes(app: FastifyInstance, deps: WebhookRouteDeps): void {
  const prices = parsePriceTiers(deps.config.STRIPE_PRICE_TIERS);
  const secret = deps.config.STRIPE_WEBHOOK_SECRET;
  const counter = webhookCounter(deps.registry);
  const bodyLimit = deps.bodyLimitBytes ?? 1024 * 1024;
  const billing = deps.keys.kind === 'nats' ? deps.billing : undefined;
  const processor = new StripeWebhookProcessor(billing, deps.keys, { ...deps.processor, instance: deps.config.INSTANCE_ID, prices });

  const reject = (request: FastifyRequest, reply: FastifyReply, type: string, outcome: WebhookOutcome, error: ApiError): FastifyReply => {
    counter.inc({ type, outcome });
    return sendError(request, reply, error);
  };

  const handle = async (request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> => {
    if (secret === '') {
      return reject(request, reply, 'unknown', 'unavailable',
        new ApiError('ERR_WEBHOOK_UNAVAILABLE', 'Stripe webhooks are not configured on this server (STRIPE_WEBHOOK_SECRET is empty).', undefined, { 'retry-after': '3600' }));
    }
    const raw = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
    let parsed: unknown;
    try {
      parsed = verifyStripeWebhook(raw, request.headers['stripe-signature'], secret);
    } catch (err) {
      if (err instanceof WebhookSignatureError) {
        request.log.warn({ reason: err.reason }, 'stripe webhook rejected: signature not verified');
        return reject(request, reply, 'unknown', 'rejected', new ApiError('ERR_WEBHOOK_SIGNATURE', err.message));
      }
      if (err instanceof WebhookPayloadError) {
        return reject(request, reply, 'unknown', 'rejected', new ApiError(err.reason === 'json' ? 'ERR_INVALID_JSON' : 'ERR_VALIDATION', err.message));
      }
      throw err;
    }
    const read = readStripeEvent(parsed);
    if (!read.ok) return reject(request, reply, 'unknown', 'rejected', new ApiError('ERR_VALIDATION', `The signed payload is not a Stripe event: ${read.error}.`));
    const event = read.event;
    const type = isHandledType(event.type) ? event.type : 'other';

    const result: WebhookResult = await processor.process(event);
    const fields = { stripe_event_id: event.id, stripe_event_type: event.type };
    switch (result.kind) {
      case 'recorded': {
        counter.inc({ type, outcome: result.outcome });
        request.log.info({ ...fields, outcome: result.outcome, tenant: result.tenant, changed: result.changed, reason: result.reason }, 'stripe webhook recorded');
        return reply.code(200).send({ received: true, event_id: event.id, outcome: result.outcome } satisfies Ok);
      }
      case 'duplicate':
        counter.inc({ type, outcome: 'duplicate' });
        request.log.info({ ...fields, outcome: 'duplicate', recorded_outcome: result.outcome }, 'stripe webhook already recorded');
        return reply.code(200).send({ received: true, event_id: event.id, outcome: 'duplicate', duplicate: true } satisfies Ok);
      case 'ignored':
        counter.inc({ type, outcome: 'ignored' });
        return reply.code(200).send({ received: true, event_id: event.id, outcome: 'ignored' } satisfies Ok);
      case 'retry': {
        const log = { ...fields, outcome: result.reason, ...(result.error !== undefined && { err: errorText(result.error) }) };
        if (result.reason === 'failed' || result.reason === 'unavailable') request.log.warn(log, 'stripe webhook not recorded; Stripe will retry');
        else request.log.info(log, 'stripe webhook deferred; Stripe will retry');
        return reject(request, reply, type, result.reason,
          new ApiError('ERR_WEBHOOK_UNAVAILABLE', result.message, { reason: result.reason }, { 'retry-after': String(result.retryAfterS) }));
      }
    }
  };

  void app.register((scope, _opts, done) => {
    // Only here: the raw bytes, for the signature. Everything else about JSON stays the app's.
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('application/json', { parseAs: 'buffer', bodyLimit }, (_req, body, next) => next(null, body));
    scope.post(STRIPE_WEBHOOK_PATH, { bodyLimit }, handle);
    done();
  });
}
