import { type JetStreamManager, type StreamConfig, DiscardPolicy, RetentionPolicy, StorageType } from '@nats-io/jetstream';
import { retryTransient, type RetryOptions } from './transient.js';

export const USAGE_STREAM = 'USAGE';
export const EVENTS_STREAM = 'EVENTS';
export const USAGE_DLQ_STREAM = 'USAGE_DLQ';

export const USAGE_SUBJECT_PREFIX = 'usage';
export const EVENTS_SUBJECT_PREFIX = 'kgent';
export const USAGE_DLQ_SUBJECT = 'usage-dlq.openmeter';

const NS_PER_S = 1_000_000_000;

export interface StreamOptions {
  readonly replicas: number;
  readonly usageDuplicateWindowS: number;
  readonly usageRetentionDays: number;
}

/** The stream definitions, in one place so `kgents bus init`, the service and the backup tool agree. */
export function streamConfigs(opts: StreamOptions): (Partial<StreamConfig> & { name: string })[] {
  const days = (n: number): number => n * 86_400 * NS_PER_S;
  return [
    {
      name: USAGE_STREAM,
      description: 'Usage events (CloudEvents), one per billable call; exported to OpenMeter.',
      subjects: [`${USAGE_SUBJECT_PREFIX}.>`],
      storage: StorageType.File,
      retention: RetentionPolicy.Limits,
      discard: DiscardPolicy.Old,
      num_replicas: opts.replicas,
      max_age: days(opts.usageRetentionDays),
      // Publishes reuse each event's id as Nats-Msg-Id, so a retry inside this window is dropped as a duplicate.
      duplicate_window: opts.usageDuplicateWindowS * NS_PER_S,
      allow_direct: true,
    },
    {
      name: EVENTS_STREAM,
      description: 'Domain events: key and tenant changes, webhook outcomes, audit records.',
      subjects: [`${EVENTS_SUBJECT_PREFIX}.>`],
      storage: StorageType.File,
      retention: RetentionPolicy.Limits,
      num_replicas: opts.replicas,
      max_age: days(400),
      duplicate_window: 86_400 * NS_PER_S,
    },
    {
      name: USAGE_DLQ_STREAM,
      description: 'Usage event batches OpenMeter rejected as invalid, with the reason in headers.',
      subjects: ['usage-dlq.>'],
      storage: StorageType.File,
      retention: RetentionPolicy.Limits,
      num_replicas: opts.replicas,
      max_age: days(90),
    },
  ];
}

export interface EnsureResult {
  readonly name: string;
  readonly action: 'created' | 'updated' | 'unchanged';
}

/** Creates each stream, or updates the settings that may change in place. Safe to run on every start. */
export async function ensureStreams(jsm: JetStreamManager, opts: StreamOptions, retry: RetryOptions = {}): Promise<EnsureResult[]> {
  const results: EnsureResult[] = [];
  for (const wanted of streamConfigs(opts)) results.push(await retryTransient(() => ensureStream(jsm, wanted), retry));
  return results;
}

async function ensureStream(jsm: JetStreamManager, wanted: Partial<StreamConfig> & { name: string }): Promise<EnsureResult> {
  const name = wanted.name;
  let existing: StreamConfig | undefined;
  try {
    existing = (await jsm.streams.info(name)).config;
  } catch (err) {
    if (!/stream not found/i.test(String(err))) throw err;
  }
  if (!existing) {
    await jsm.streams.add(wanted);
    return { name, action: 'created' };
  }
  const changed = (['subjects', 'max_age', 'duplicate_window', 'num_replicas', 'description', 'discard', 'allow_direct'] as const)
    .some((k) => wanted[k] !== undefined && JSON.stringify(wanted[k]) !== JSON.stringify(existing[k]));
  if (changed) {
    await jsm.streams.update(name, { ...existing, ...wanted });
    return { name, action: 'updated' };
  }
  return { name, action: 'unchanged' };
}

/** Subject of one usage event: usage.<tenant>.<type> (type may contain dots, e.g. agentese.invoke). */
export function usageSubject(tenant: string, type: string): string {
  return `${USAGE_SUBJECT_PREFIX}.${tenant}.${type}`;
}
