import type { FastifyBaseLogger } from 'fastify';
import type { Bindings, ChildLoggerOptions, Level } from 'pino';

interface LevelAware {
  isLevelEnabled?(level: string): boolean;
}

/**
 * The request logger Fastify hands each request (`request.log`), made only when something logs.
 * Fastify's default builds a pino child per request (serialising its bindings, request_id here),
 * and with request logging limited to errors (LOG_REQUESTS) almost no request ever uses it: that
 * was a few µs of every request in the profile. A line logged through this one is identical to one
 * logged through an eager child.
 */
class LazyChildLogger implements FastifyBaseLogger {
  private real: FastifyBaseLogger | undefined;

  constructor(private readonly parent: FastifyBaseLogger, private readonly bindings: Bindings) {}

  private get logger(): FastifyBaseLogger {
    this.real ??= this.parent.child(this.bindings);
    return this.real;
  }

  get level(): string {
    return this.real?.level ?? this.parent.level;
  }

  set level(value: string) {
    this.logger.level = value;
  }

  private write(level: Level, args: unknown[]): void {
    // Skip making the child for a line its level would drop anyway.
    if (!this.real && (this.parent as LevelAware).isLevelEnabled?.(level) === false) return;
    this.logger[level](...(args as [string]));
  }

  fatal(...args: unknown[]): void {
    this.write('fatal', args);
  }

  error(...args: unknown[]): void {
    this.write('error', args);
  }

  warn(...args: unknown[]): void {
    this.write('warn', args);
  }

  info(...args: unknown[]): void {
    this.write('info', args);
  }

  debug(...args: unknown[]): void {
    this.write('debug', args);
  }

  trace(...args: unknown[]): void {
    this.write('trace', args);
  }

  silent(): void {
    // pino's silent level logs nothing
  }

  child(bindings: Bindings, options?: ChildLoggerOptions): FastifyBaseLogger {
    return this.logger.child(bindings, options);
  }
}

/** Fastify `childLoggerFactory`: lazy unless the route sets logger options (logLevel, serializers). */
export function lazyChildLogger(logger: FastifyBaseLogger, bindings: Bindings, options: ChildLoggerOptions): FastifyBaseLogger {
  for (const _key in options) return logger.child(bindings, options);
  return new LazyChildLogger(logger, bindings);
}
