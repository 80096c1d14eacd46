import type { LoggerOptions } from 'pino';

/**
 * Paths pino blanks out. Keys travel in these headers; a test greps the logs for a live key to make
 * sure no code path logs one some other way.
 */
export const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers["x-api-key"]',
  'req.headers["stripe-signature"]',
  'req.headers.cookie',
  'headers.authorization',
  'headers["x-api-key"]',
  '*.apiKey',
  '*.secret',
  '*.password',
];

export function loggerOptions(level: string, instance: string): LoggerOptions {
  return {
    level,
    base: { instance },
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    timestamp: () => `,"time":"${new Date().toISOString()}"`,
    formatters: { level: (label) => ({ level: label }) },
  };
}
