import { setTimeout as sleep } from 'node:timers/promises';

/** JetStream's "no suitable peers for placement": a replica's peer is offline or has not joined yet. */
const NO_SUITABLE_PEERS = 10005;

/**
 * A request that timed out, JetStream's 503 ("temporarily unavailable"), or no peers to place
 * replicas on: what a cluster that is forming, or has lost its quorum for a moment, answers for a
 * few seconds. A refusal of the request itself (a bad configuration, a name in use) is not
 * transient, nor is a request nobody answers (a server without JetStream: better said at once). A
 * cluster too small for the replicas asked for answers "no suitable peers" for good: it fails at
 * the deadline with that error.
 */
export function isTransientJetStreamError(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    if (e.name === 'TimeoutError') return true;
    if ('status' in e && e.status === 503) return true;
    if ('code' in e && e.code === NO_SUITABLE_PEERS) return true;
  }
  return false;
}

/** What a start-up logs when JetStream cannot create or check its streams and buckets yet. */
export const JETSTREAM_NOT_READY = 'JetStream cannot create or check the streams yet (cluster forming or without quorum); retrying until the start-up deadline';

export interface RetryOptions {
  /** How long a JetStream that cannot answer yet is waited for (default 30 s). */
  readonly deadlineMs?: number;
  /** Told of each retry, with the error that caused it. */
  readonly onRetry?: (err: unknown, attempt: number) => void;
}

/**
 * Runs an idempotent JetStream administration step (create a stream or bucket if missing) until it
 * succeeds, a non-transient error, or the deadline: a step that timed out may have happened, and
 * asking again finds it done.
 */
export async function retryTransient<T>(step: () => Promise<T>, options: RetryOptions = {}): Promise<T> {
  const deadline = Date.now() + (options.deadlineMs ?? 30_000);
  for (let attempt = 1; ; attempt++) {
    try {
      return await step();
    } catch (err) {
      if (!isTransientJetStreamError(err) || Date.now() >= deadline) throw err;
      options.onRetry?.(err, attempt);
      await sleep(Math.min(250 * attempt, 2000));
    }
  }
}
