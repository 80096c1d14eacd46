import { hostname } from 'node:os';
import type { z } from 'zod';
import { CONFIG_VARS, type ConfigVarName } from './schema.js';

type Parsed<N extends ConfigVarName> = z.output<(typeof CONFIG_VARS)[N]['schema']>;
export type Config = Readonly<{ [N in ConfigVarName]: Parsed<N> }>;

export class ConfigError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

/** Parses the environment once; the result is frozen so no code path can drift from what boot saw. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env, overrides: Partial<Record<ConfigVarName, string>> = {}): Config {
  const out: Record<string, unknown> = {};
  const problems: string[] = [];
  for (const [name, spec] of Object.entries(CONFIG_VARS) as [ConfigVarName, (typeof CONFIG_VARS)[ConfigVarName]][]) {
    const raw = overrides[name] ?? env[name] ?? spec.default;
    const result = (spec.schema as z.ZodType).safeParse(raw);
    if (result.success) {
      out[name] = result.data;
    } else {
      for (const issue of result.error.issues) {
        problems.push(issue.message.startsWith(name) ? issue.message : `${name}: ${issue.message} (got "${String(raw)}")`);
      }
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);
  if (out.INSTANCE_ID === '') out.INSTANCE_ID = `${hostname()}-${process.pid}`;
  for (const value of Object.values(out)) if (value && typeof value === 'object') Object.freeze(value);
  return Object.freeze(out) as Config;
}
