import { Redis, type RedisOptions } from 'ioredis';

export interface RedisClientOptions {
  /** A command slower than this is rejected with "Command timed out" (REDIS_COMMAND_TIMEOUT_MS). */
  readonly commandTimeoutMs: number;
  /** How long one TCP connect attempt may take before it is abandoned and retried. Default 2000. */
  readonly connectTimeoutMs?: number;
  /** Longest pause between reconnect attempts. Default 2000. */
  readonly maxReconnectDelayMs?: number;
  /** CLIENT SETNAME, visible in `CLIENT LIST`. */
  readonly connectionName?: string;
}

/** Backoff between reconnect attempts: 100 ms, 200 ms, ... capped; never gives up. */
export function reconnectDelayMs(attempt: number, capMs = 2000): number {
  return Math.min(Math.max(1, attempt) * 100, capMs);
}

/**
 * An ioredis client tuned for the request hot path, where a slow or absent Redis must cost a
 * request at most `commandTimeoutMs`:
 * - `enableOfflineQueue: false`: while disconnected a command fails at once instead of queueing;
 * - `commandTimeout`: a hung server (SIGSTOP, network black hole) fails a command after the timeout;
 * - `maxRetriesPerRequest: 0`: commands in flight when the connection drops fail rather than being resent;
 * - `retryStrategy`: reconnects forever with capped backoff, so the caller only watches 'ready';
 * - no auto-pipelining: the hot path already sends one batch script call per event-loop turn
 *   (ScriptBatcher), and ioredis' pipelining would hold that call back for one more turn;
 * - `lazyConnect`: nothing happens until `connectWithin()` (or the first command), so the caller
 *   chooses the deadline.
 * An 'error' listener is attached so connection errors never become unhandled 'error' events; the
 * client never logs, and `redactRedisUrl()` is what to use when the URL must appear in a log line.
 */
export function createRedisClient(url: string, options: RedisClientOptions): Redis {
  const cap = options.maxReconnectDelayMs ?? 2000;
  const redisOptions: RedisOptions = {
    lazyConnect: true,
    enableAutoPipelining: false,
    enableOfflineQueue: false,
    enableReadyCheck: true,
    commandTimeout: options.commandTimeoutMs,
    connectTimeout: options.connectTimeoutMs ?? 2000,
    maxRetriesPerRequest: 0,
    // TCP keepalive: lets the kernel notice a vanished peer on an idle connection.
    keepAlive: 10_000,
    retryStrategy: (attempt: number) => reconnectDelayMs(attempt, cap),
    reconnectOnError: null,
    autoResubscribe: false,
    showFriendlyErrorStack: false,
    ...(options.connectionName ? { connectionName: options.connectionName } : {}),
  };
  const client = new Redis(url, redisOptions);
  // Errors are reported through failed commands and the 'close'/'ready' events; this listener only
  // keeps an 'error' event without other listeners from crashing the process.
  client.on('error', () => undefined);
  return client;
}

/**
 * Starts connecting (when the client has not yet) and resolves true once the client is ready, or
 * false after `deadlineMs`. On false the client keeps reconnecting in the background.
 */
export function connectWithin(client: Redis, deadlineMs: number): Promise<boolean> {
  if (client.status === 'ready') return Promise.resolve(true);
  return new Promise<boolean>((resolve) => {
    const onReady = (): void => {
      clearTimeout(timer);
      resolve(true);
    };
    const timer = setTimeout(() => {
      client.off('ready', onReady);
      resolve(false);
    }, deadlineMs);
    timer.unref();
    client.once('ready', onReady);
    if (client.status === 'wait') {
      // A failed first attempt rejects this promise, but the retry strategy keeps trying and
      // 'ready' still arrives if the server shows up before the deadline.
      client.connect().catch(() => undefined);
    }
  });
}

/** Closes politely (QUIT) when the server answers, and in any case stops reconnecting. */
export async function closeRedisClient(client: Redis, graceMs = 500): Promise<void> {
  if (client.status === 'end') return;
  if (client.status === 'ready') {
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        client.quit(),
        new Promise((resolve) => {
          timer = setTimeout(resolve, graceMs);
        }),
      ]);
    } catch {
      // closing anyway
    } finally {
      clearTimeout(timer);
    }
  }
  client.disconnect(false);
}

/** The URL with any password replaced, for log lines and error messages. */
export function redactRedisUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return url.replace(/(\/\/[^:/@]*:)[^@]*@/, '$1***@');
  }
}

/** Removes credentials from text that may embed a Redis URL (error messages from libraries). */
export function redactSecrets(text: string): string {
  return text.replace(/(rediss?:\/\/[^:/@\s]*:)[^@\s]*@/g, '$1***@');
}

/** A Lua script registered with `defineCommand`: EVAL the first time on a connection, EVALSHA after. */
export type ScriptCall = (keys: readonly string[], args: readonly (string | number)[]) => Promise<unknown>;

type ScriptMethod = (...args: (string | number)[]) => Promise<unknown>;

/**
 * Registers `lua` on the client under `name` (once per client) and returns a typed caller. ioredis
 * sends EVAL the first time on each connection and EVALSHA afterwards, so a restarted server with an
 * empty script cache needs no special handling.
 * `numberOfKeys: 'variable'`: each call passes its own number of keys (the length of `keys`).
 */
export function defineScript(client: Redis, name: string, numberOfKeys: number | 'variable', lua: string): ScriptCall {
  const methods = client as unknown as Record<string, unknown>;
  if (typeof methods[name] !== 'function') client.defineCommand(name, numberOfKeys === 'variable' ? { lua } : { numberOfKeys, lua });
  const method = methods[name];
  if (typeof method !== 'function') throw new Error(`ioredis did not define the script command ${name}`);
  const call = method as ScriptMethod;
  if (numberOfKeys === 'variable') return (keys, args) => call.call(client, keys.length, ...keys, ...args);
  return (keys, args) => call.call(client, ...keys, ...args);
}
