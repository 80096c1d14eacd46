import { asError } from '../../errors/as-error.js';
import type { ScriptCall } from './client.js';

/**
 * One operation of a batch: its keys, its fields (op code first; no ':' or ';' in them) and how many
 * reply items it takes. The script knows how many keys each op code has.
 */
export interface BatchOp {
  readonly keys: readonly string[];
  readonly args: readonly (string | number)[];
  readonly replyItems: number;
}

/**
 * Turns an op's part of the batch's flat reply (its `replyItems` items from `at`) into what its
 * caller gets; `context` is the value given with the op. Throwing rejects that op alone.
 */
export type ReplyDecoder<T, C> = (reply: readonly unknown[], at: number, context: C) => T;

interface Queued {
  /** Counter ops (addToCounter) own their args array: a merge changes its amount in place. */
  readonly op: BatchOp;
  /** Set for counter ops a following add to the same key is merged into (see addToCounter). */
  readonly mergeKey: string | undefined;
  readonly decode: ReplyDecoder<unknown, unknown>;
  readonly context: unknown;
  readonly reply: Promise<unknown>;
  readonly resolve: (value: unknown) => void;
  readonly reject: (err: Error) => void;
}

/**
 * Sends every op issued during one turn of the event loop as one call of a batch script (KEYS: the
 * distinct keys of its ops, in order of first use; ARGV[1]: the ops packed as
 * `code:key:...:field:...;...`, each op's keys as their 1-based positions in KEYS, then its other
 * fields) and has each op's decoder read its items of the flat reply. Why: under load the per-command cost (ioredis' command object,
 * argument encoding and reply parsing, Redis' own command dispatch and script call) was the largest
 * part of a request after the HTTP work itself; ioredis' auto-pipelining shared the socket writes
 * but none of that.
 * The flush waits for `setImmediate`, i.e. until the requests read in this poll phase have queued
 * theirs: no added latency beyond the current turn. A failing call fails every op in it, which is
 * what each of them would have seen from the same Redis on its own.
 * Each op's promise resolves to what its decoder makes of its items, read in place: no slice of
 * the reply and no further promise per op to convert it.
 */
export class ScriptBatcher {
  private queue: Queued[] = [];
  private scheduled = false;

  constructor(private readonly script: ScriptCall, private readonly maxOps = 256) {}

  run<T, C>(op: BatchOp, decode: ReplyDecoder<T, C>, context: C): Promise<T> {
    return this.enqueue(op, undefined, decode, context);
  }

  /**
   * Queues `code:amount:tail` on one counter key (KEYS: [key]), except that when the op queued
   * right before this one (and not sent yet) is an add to the same key, the amount is added to it
   * in place and both callers get its reply. For increments, where two in a row equal one: nothing
   * else runs between them, so the order of every op in the batch, and what each one sees, is
   * unchanged. Sums are capped at 2^53 - 1 (the script's doubles hold no larger integer exactly).
   * Why in place: the charges of one turn's requests arrive back to back, and an op object per
   * merge was most of a charge's allocation.
   */
  addToCounter<T>(key: string, code: string, amount: number, tail: string | number, decode: ReplyDecoder<T, undefined>): Promise<T> {
    const last = this.queue[this.queue.length - 1];
    if (last?.mergeKey === key && last.op.args[0] === code) {
      const args = last.op.args as (string | number)[];
      args[1] = Math.min(Number(args[1]) + amount, Number.MAX_SAFE_INTEGER);
      // The same key and code: the caller's decoder is the op's (one per code).
      return last.reply as Promise<T>;
    }
    return this.enqueue({ keys: [key], args: [code, Math.min(amount, Number.MAX_SAFE_INTEGER), tail], replyItems: 1 }, key, decode, undefined);
  }

  private enqueue<T, C>(op: BatchOp, mergeKey: string | undefined, decode: ReplyDecoder<T, C>, context: C): Promise<T> {
    let resolve: (value: unknown) => void = () => undefined;
    let reject: (err: Error) => void = () => undefined;
    const reply = new Promise<unknown>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    this.queue.push({ op, mergeKey, decode: decode as ReplyDecoder<unknown, unknown>, context, reply, resolve, reject });
    if (this.queue.length >= this.maxOps) this.flush();
    else if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.flushLater);
    }
    return reply as Promise<T>;
  }

  private readonly flushLater = (): void => this.flush();

  private flush(): void {
    this.scheduled = false;
    const batch = this.queue;
    if (batch.length === 0) return;
    this.queue = [];
    // Each distinct key once in KEYS, ops naming theirs by position: a busy key's requests of one
    // turn add nothing to the command but their fields (ioredis' cost is per argument).
    const keys: string[] = [];
    const position = new Map<string, number>();
    let packed = '';
    let items = 0;
    for (const { op } of batch) {
      let text = String(op.args[0]);
      for (const k of op.keys) {
        let at = position.get(k);
        if (at === undefined) {
          at = keys.push(k);
          position.set(k, at);
        }
        text += `:${at}`;
      }
      for (let i = 1; i < op.args.length; i++) text += `:${op.args[i]}`;
      packed += packed === '' ? text : `;${text}`;
      items += op.replyItems;
    }
    const args = [packed];
    let sent: Promise<unknown>;
    try {
      sent = this.script(keys, args);
    } catch (err) {
      sent = Promise.reject(asError(err));
    }
    sent.then((reply) => {
      if (!Array.isArray(reply) || reply.length !== items) {
        const err = new Error(`unexpected reply from the Redis batch script (${Array.isArray(reply) ? `${reply.length} items, expected ${items}` : typeof reply})`);
        for (const q of batch) q.reject(err);
        return;
      }
      let at = 0;
      for (const q of batch) {
        let value: unknown;
        try {
          value = q.decode(reply, at, q.context);
        } catch (err) {
          q.reject(asError(err));
          at += q.op.replyItems;
          continue;
        }
        q.resolve(value);
        at += q.op.replyItems;
      }
    }, (err: unknown) => {
      const error = asError(err);
      for (const q of batch) q.reject(error);
    });
  }
}
